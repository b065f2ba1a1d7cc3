"""Why one run costs more GPU-hours than another: the ratio as a product of factors.

For a run (a whole plan: every stage),

    GPU-hours = tokens x FLOPs per token / (peak x efficiency x goodput) / 3600

with, summed over the stages,
    tokens           total training tokens
    FLOPs per token  total model FLOPs / tokens (a token-weighted mean over the stages)
    peak             dense peak of each stage's GPU at its precision, weighted by productive GPU-time
    efficiency       model FLOP/s per GPU while training productively / that peak
    goodput          productive GPU-hours / GPU-hours (failures, checkpoints, restarts)

This is an identity, so the ratio of two runs' GPU-hours is exactly the product of the five ratios
(the peak, efficiency and goodput ratios inverted: more of them means fewer GPU-hours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.analysis.plans import PlanResult
from simulator.units import SECONDS_PER_HOUR


@dataclass(frozen=True)
class RunSummary:
    name: str
    gpu: str
    precision: str
    tokens: float
    model_flops: float
    peak_flop_per_s: float
    ideal_gpu_hours: float
    gpu_hours: float
    reported_gpu_hours: float | None

    @property
    def flops_per_token(self) -> float:
        return self.model_flops / self.tokens

    @property
    def achieved_flop_per_s_per_gpu(self) -> float:
        return self.model_flops / (self.ideal_gpu_hours * SECONDS_PER_HOUR)

    @property
    def efficiency(self) -> float:
        return self.achieved_flop_per_s_per_gpu / self.peak_flop_per_s

    @property
    def goodput(self) -> float:
        return self.ideal_gpu_hours / self.gpu_hours

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "gpu": self.gpu,
            "precision": self.precision,
            "tokens": self.tokens,
            "flops_per_token": self.flops_per_token,
            "total_model_flops": self.model_flops,
            "peak_flop_per_s": self.peak_flop_per_s,
            "achieved_flop_per_s_per_gpu": self.achieved_flop_per_s_per_gpu,
            "efficiency": self.efficiency,
            "goodput": self.goodput,
            "ideal_gpu_hours": self.ideal_gpu_hours,
            "gpu_hours": self.gpu_hours,
            "reported_gpu_hours": self.reported_gpu_hours,
        }


def summarize(result: PlanResult, basis: str = "expected") -> RunSummary:
    """A plan's totals as one run; `basis` "achievable" takes every stage at its achievable layout (same model FLOPs
    and peaks, the achievable run's GPU-hours)."""
    hours = result.achievable_summary() if basis == "achievable" else None
    return RunSummary(
        name=result.plan.name,
        gpu="+".join(dict.fromkeys(s.hw.name for s in result.stages)),
        precision="+".join(dict.fromkeys(s.stage.precision for s in result.stages)),
        tokens=result.tokens,
        model_flops=result.total_model_flops,
        peak_flop_per_s=result.productive_peak_flop_per_s,
        ideal_gpu_hours=hours["ideal_gpu_hours"] if hours else result.ideal_gpu_hours,
        gpu_hours=hours["gpu_hours"] if hours else result.gpu_hours,
        reported_gpu_hours=result.reported_total_gpu_hours,
    )


def compare_plans(a: PlanResult, b: PlanResult) -> dict:
    """The comparison of the expected runs (top level) and of the achievable runs (under `achievable`: the ratio,
    its factors and both runs' GPU-hours)."""
    a.require_training_only("compare")
    b.require_training_only("compare")
    expected = compare(summarize(a), summarize(b))
    achievable = compare(summarize(a, "achievable"), summarize(b, "achievable"))
    keep = ("ratio", "factors", "factor_details", "product_of_factors")
    return (
        {"basis": "expected"}
        | expected
        | {
            "achievable": {k: achievable[k] for k in keep}
            | {"a_gpu_hours": achievable["a"]["gpu_hours"], "b_gpu_hours": achievable["b"]["gpu_hours"]}
        }
    )


# name, what it is, whether a larger value means more GPU-hours
FACTORS: tuple[tuple[str, str, bool], ...] = (
    ("flops_per_token", "model FLOPs per token", True),
    ("tokens", "training tokens", True),
    ("peak", "dense peak at the precision used (inverse)", False),
    ("efficiency", "achieved model FLOP/s / peak while training (inverse)", False),
    ("goodput", "productive / total GPU-time (inverse)", False),
)


def _value(s: RunSummary, name: str) -> float:
    return {
        "flops_per_token": s.flops_per_token,
        "tokens": s.tokens,
        "peak": s.peak_flop_per_s,
        "efficiency": s.efficiency,
        "goodput": s.goodput,
    }[name]


def compare(a: RunSummary, b: RunSummary) -> dict:
    """GPU-hours of a / b and the five factors whose product is that ratio."""
    factors: dict[str, float] = {}
    details = []
    for name, meaning, direct in FACTORS:
        va, vb = _value(a, name), _value(b, name)
        factor = va / vb if direct else vb / va
        factors[name] = factor
        details.append({"factor": name, "meaning": meaning, "a": va, "b": vb, "value": factor})
    ratio = a.gpu_hours / b.gpu_hours
    out = {
        "a": a.to_dict(),
        "b": b.to_dict(),
        "ratio": ratio,
        "ratio_basis": "predicted GPU-hours (costsim estimates of every stage of each plan)",
        "factors": factors,
        "factor_details": details,
        "product_of_factors": math.prod(factors.values()),
    }
    if a.reported_gpu_hours and b.reported_gpu_hours:
        out["reported_ratio"] = a.reported_gpu_hours / b.reported_gpu_hours
    return out
