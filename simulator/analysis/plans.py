"""Estimating a plan (inputs.plan_file): every stage on its GPU, one after another, with totals and cost, and the
published GPU-hours the plan quotes set beside the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from simulator.analysis.published_mfu import with_mfu_notes
from simulator.errors import CostsimError
from simulator.inputs.catalog import load_model
from simulator.inputs.plan_file import Plan, Stage, model_ref
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.run.cost import CostOptions, Rate, rental_rate, sum_blocks
from simulator.run.estimate import Estimate, estimate_scenario
from simulator.run.scenario import resolve
from simulator.units import SECONDS_PER_DAY

# --------------------------------------------------------------------------- estimating


@dataclass(frozen=True)
class StageResult:
    stage: Stage
    estimate: Estimate
    """The expected run of the stage."""
    hw: HardwareProfile
    cost: dict
    achievable: Estimate | None = None
    """The achievable run of the stage (the best layout the stack offers)."""

    @property
    def peak_flop_per_s(self) -> float:
        """Dense peak of the stage's GPU at the stage's precision."""
        return self.hw.peak_flop_per_s(self.stage.precision)

    def to_dict(self) -> dict:
        e = self.estimate
        d = e.to_dict()
        keys = (
            "gpu",
            "num_gpus",
            "tokens",
            "seq_len",
            "global_batch_tokens",
            "precision",
            "steps",
            "layout",
            "layout_chosen_by_search",
            "flops_per_token",
            "total_model_flops",
            "step_time_s",
            "tokens_per_s_per_gpu",
            "model_tflop_per_s_per_gpu",
            "mfu",
            "mfu_basis",
            "mfu_bf16_peak",
            "memory_per_gpu_gib",
            "ideal_gpu_hours",
            "gpu_hours",
            "ideal_wall_clock_days",
            "wall_clock_days",
            "goodput",
        )
        out = {"name": self.stage.name, **{k: d[k] for k in keys if k in d}}
        out["peak_flop_per_s"] = self.peak_flop_per_s
        out["usd_per_gpu_hour"] = self.cost["usd_per_gpu_hour"]
        out["cost_usd"] = self.cost["cost_usd"]
        out["cost"] = self.cost
        out["source"] = self.stage.source
        out["notes"] = self.stage.notes
        if self.achievable is not None:
            out["achievable"] = self.achievable.headline()
        return out


@dataclass(frozen=True)
class PlanResult:
    plan: Plan
    path: Path
    stages: list[StageResult]
    cost: dict
    options: CostOptions

    @property
    def gpu_hours(self) -> float:
        return sum(s.estimate.gpu_hours for s in self.stages)

    @property
    def ideal_gpu_hours(self) -> float:
        return sum(s.estimate.ideal_gpu_hours for s in self.stages)

    @property
    def wall_clock_s(self) -> float:
        """Stages run one after another."""
        return sum(s.estimate.wall_clock_s for s in self.stages)

    @property
    def tokens(self) -> float:
        return sum(s.estimate.job.tokens for s in self.stages)

    @property
    def total_model_flops(self) -> float:
        return sum(s.estimate.flops_per_token * s.estimate.job.tokens for s in self.stages)

    @property
    def productive_peak_flop_per_s(self) -> float:
        """Dense precision peak averaged over the stages, weighted by their productive GPU-time."""
        return sum(s.peak_flop_per_s * s.estimate.ideal_gpu_hours for s in self.stages) / self.ideal_gpu_hours

    def predicted_gpu_hours(self, stage_names: list[str] | None, achievable: bool = False) -> float:
        names = set(stage_names or [s.stage.name for s in self.stages])
        return sum((s.achievable if achievable else s.estimate).gpu_hours for s in self.stages if s.stage.name in names)

    def achievable_summary(self) -> dict:
        """The plan's totals with every stage at its achievable layout, each stage at its own price."""
        runs = [s.achievable or s.estimate for s in self.stages]
        out = {
            "gpu_hours": sum(e.gpu_hours for e in runs),
            "ideal_gpu_hours": sum(e.ideal_gpu_hours for e in runs),
            "wall_clock_days": sum(e.wall_clock_s for e in runs) / SECONDS_PER_DAY,
            "cost_usd": sum(e.gpu_hours * s.cost["usd_per_gpu_hour"] for e, s in zip(runs, self.stages, strict=True)),
        }
        reported = self.reported_total_gpu_hours
        if reported is not None:
            out["error_vs_reported"] = out["gpu_hours"] / reported - 1.0
        return out

    def reported_checks(self) -> list[dict]:
        out = []
        for r in self.plan.reported:
            predicted = self.predicted_gpu_hours(r.stages)
            out.append(
                {
                    "stages": r.stages or "all",
                    "reported_gpu_hours": r.gpu_hours,
                    "predicted_gpu_hours": predicted,
                    "error": predicted / r.gpu_hours - 1.0,
                    "achievable_gpu_hours": self.predicted_gpu_hours(r.stages, achievable=True),
                    "reported_cost_usd": r.cost_usd,
                    "source": r.source,
                    "quote": r.quote,
                    "note": r.note,
                }
            )
        return out

    @property
    def reported_total_gpu_hours(self) -> float | None:
        whole = [r for r in self.plan.reported if not r.stages]
        return whole[0].gpu_hours if whole else None

    def to_dict(self) -> dict:
        p = self.plan
        out = {
            "plan": p.name,
            "display_name": p.display_name,
            "plan_file": str(self.path),
            "source": p.source,
            "model": self.stages[0].estimate.model,
            "gpu": p.gpu,
            "stages": [s.to_dict() for s in self.stages],
            "tokens": self.tokens,
            "total_model_flops": self.total_model_flops,
            "ideal_gpu_hours": self.ideal_gpu_hours,
            "gpu_hours": self.gpu_hours,
            "wall_clock_days": self.wall_clock_s / SECONDS_PER_DAY,
            "usd_per_gpu_hour": self.cost["usd_per_gpu_hour"],
            "cost_usd": self.cost["cost_usd"],
            "cost": self.cost,
            "achievable": self.achievable_summary(),
            "reported": self.reported_checks(),
            "notes": p.notes,
        }
        reported = self.reported_total_gpu_hours
        if reported is not None:
            out["reported_gpu_hours"] = reported
            out["error_vs_reported"] = self.gpu_hours / reported - 1.0
        return out


def _quoted_price(plan: Plan) -> Rate | None:
    """The plan's own price with who quotes it (None: the plan quotes none)."""
    if plan.usd_per_gpu_hour is None:
        return None
    return rental_rate(plan.usd_per_gpu_hour, f"plan {plan.name}: {plan.price_source}")


def run_stage(plan: Plan, spec: ModelSpec, stage: Stage, opts: CostOptions) -> StageResult:
    """One stage on its GPU; `spec` is the plan's model, loaded once for every stage."""
    try:
        scenario = resolve(
            spec,
            stage.gpu or plan.gpu,
            stage.num_gpus,
            stage.tokens,
            seq_len=stage.seq_len,
            global_batch_tokens=stage.global_batch_tokens,
            precision=stage.precision,
            fp8_recipe=stage.fp8_recipe,
            layout=stage.layout(),
            costs=opts,
            quoted=_quoted_price(plan),
        )
        runs = with_mfu_notes(estimate_scenario(scenario), scenario.hardware)
    except CostsimError as e:
        raise type(e)(f"plan {plan.name}, stage {stage.name!r}: {e}") from None
    return StageResult(stage, runs.expected, scenario.hardware, runs.expected.cost, runs.achievable)


def run_plan(plan: Plan, plan_path: Path, opts: CostOptions | None = None) -> PlanResult:
    """Estimate every stage; totals are sums (stages run one after another)."""
    opts = opts or CostOptions()
    if opts.experiments_multiplier is None and plan.experiments_multiplier is not None:
        opts = replace(opts, experiments_multiplier=plan.experiments_multiplier)
    try:
        spec = load_model(model_ref(plan, plan_path))
    except CostsimError as e:
        raise type(e)(f"plan {plan.name}: {e}") from None
    stages = [run_stage(plan, spec, s, replace(opts, experiments_multiplier=None)) for s in plan.stages]
    gpu_hours = sum(s.estimate.gpu_hours for s in stages)
    total = sum_blocks([s.cost for s in stages], gpu_hours, opts.experiments_multiplier)
    return PlanResult(plan, plan_path, stages, total, opts)
