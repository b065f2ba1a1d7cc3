"""Published training runs (validation/public_runs.yaml) and costsim's prediction of each, in its reported unit.

A case is one published run: the job and the layout fields its source states, the metric it reports
(GPU-hours, wall-clock days, MLPerf time-to-train, tokens/s or TFLOP/s per GPU, step time) and the
reported value with a quote. Layout fields a source leaves out are searched, never guessed. The two
datasets that already ship (Megatron-LM 2021 Table 1, Llama 3 Table 4; simulator/validation.py) are
part of the set through the YAML's `includes`.

Error convention: predicted / reported - 1 in the reported metric's unit, so for times a positive
error means costsim is slower than the run, for rates that it is faster.

API for fitting: `public_cases()` and `predict_case(case, assumptions)`.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from simulator.analysis.validation import PublishedRun, eq3_flops_per_step, llama3_runs, megatron_2021_runs, metric_value
from simulator.errors import SpecError
from simulator.inputs.assumptions import DEFAULT, FITTED_PATH, Assumptions
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.data_files import validation_dir
from simulator.inputs.files import read_yaml
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.model.flops import flop_utilization
from simulator.model.layer_work import token_flops
from simulator.model.layout import Job
from simulator.run.estimate import Estimate, estimate
from simulator.units import SECONDS_PER_DAY, SECONDS_PER_HOUR, SECONDS_PER_MINUTE, TERA, count_in_range

TARGET_MEDIAN_ABS_ERROR = 0.15
TARGET_MAX_ABS_ERROR = 0.40
"""Issue 5's target for the published-run validation, with global constants only."""


@dataclass(frozen=True)
class Metric:
    unit: str
    time: bool
    """True for durations (GPU-hours, days, minutes, seconds), False for rates."""


METRICS: dict[str, Metric] = {
    "gpu_hours": Metric("GPU-hours", True),
    "wall_clock_days": Metric("days", True),
    "time_to_train_minutes": Metric("minutes", True),
    "step_time_s": Metric("s per step", True),
    "tokens_per_s_per_gpu": Metric("tokens/s per GPU", False),
    "model_tflop_per_s_per_gpu": Metric("model TFLOP/s per GPU (causal attention)", False),
    "eq3_tflop_per_s_per_gpu": Metric("TFLOP/s per GPU (Narayanan Eq. 3, recompute included)", False),
}
FAILURE_METRICS = ("gpu_hours", "wall_clock_days", "time_to_train_minutes")
"""Metrics that span a whole run, where `includes_failures` chooses goodput-applied or ideal figures."""


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    quote: str
    model: str
    """Shipped model name or a spec / config.json path."""
    gpu: str
    job: Job
    layout: dict
    """The layout fields the source states; estimate() searches the others."""
    metric: str
    reported: float
    includes_failures: bool | None = None
    why: str = ""

    @property
    def unit(self) -> str:
        return METRICS[self.metric].unit


@dataclass(frozen=True)
class Exclusion:
    id: str
    reason: str


# ------------------------------------------------------------------ loading


def dataset_path() -> Path:
    return validation_dir() / "public_runs.yaml"


# Shipped datasets a `includes:` entry may name, with the loader that reads them.
INCLUDES: dict[str, Callable[[], list[PublishedRun]]] = {
    "megatron2021/runs.yaml": megatron_2021_runs,
    "llama3_table4.yaml": llama3_runs,
}

_INCLUDED_WHY = {
    "eq3_tflop_per_s_per_gpu": "Per-GPU throughput counted with Narayanan Eq. 3 (recomputation included), 2021 stack: FP16, "
    "materialised attention, dropout 0.1; micro-batch and virtual stages from NVIDIA's run_table_1.sh.",
    "model_tflop_per_s_per_gpu": "Step-level model TFLOP/s per GPU (no failures); 4 virtual stages and micro-batch 1 are "
    "assumed (validation/llama3_table4.yaml).",
}


def _from_published_run(run: PublishedRun) -> Case:
    return Case(
        id=run.id,
        source=run.source,
        quote=f"{run.reported:g} TFLOP/s per GPU ({run.job.num_gpus} GPUs, batch {run.job.global_batch_sequences})",
        model=run.model,
        gpu=run.gpu,
        job=run.job,
        layout=dict(run.layout),
        metric=run.metric,
        reported=float(run.reported),
        why=_INCLUDED_WHY.get(run.metric, ""),
    )


def _require(entry: dict, key: str, where: str):
    if key not in entry or entry[key] is None:
        raise SpecError(f"{where}: missing field `{key}`")
    return entry[key]


def _number(entry: dict, key: str, where: str, minimum: float = 0.0) -> float:
    """A number above `minimum`; strings such as 14.8e12 (YAML 1.1 reads it as text) or 14.8T are parsed."""
    try:
        return count_in_range(_require(entry, key, where), minimum, math.inf, low_open=True)
    except ValueError as e:
        raise SpecError(f"{where}: `{key}` = {e}") from None


def _case(entry: object, index: int, path: Path) -> Case:
    if not isinstance(entry, dict):
        raise SpecError(f"{path}: cases[{index}] must be a mapping, got {type(entry).__name__}")
    where = f"{path}: case {entry.get('id', index)!r}"
    metric = _require(entry, "metric", where)
    if metric not in METRICS:
        raise SpecError(f"{where}: unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    includes_failures = entry.get("includes_failures")
    if metric in FAILURE_METRICS and not isinstance(includes_failures, bool):
        raise SpecError(f"{where}: metric {metric} needs `includes_failures: true|false` (goodput applied or not)")
    layout = entry.get("layout") or {}
    if not isinstance(layout, dict):
        raise SpecError(f"{where}: `layout` must be a mapping of published layout fields")
    job = Job(
        num_gpus=int(_number(entry, "num_gpus", where)),
        tokens=_number(entry, "tokens", where),
        seq_len=int(_number(entry, "seq_len", where)),
        global_batch_tokens=_number(entry, "global_batch_tokens", where),
        precision=_require(entry, "precision", where),
    )
    return Case(
        id=str(_require(entry, "id", where)),
        source=str(_require(entry, "source", where)),
        quote=str(_require(entry, "quote", where)),
        model=str(_require(entry, "model", where)),
        gpu=str(_require(entry, "gpu", where)),
        job=job,
        layout=dict(layout),
        metric=metric,
        reported=_number(entry, "reported", where),
        includes_failures=includes_failures,
        why=str(entry.get("why", "")),
    )


def _document(path: Path | None = None) -> tuple[Path, dict]:
    path = path or dataset_path()
    doc = read_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        raise SpecError(f"{path}: expected a mapping with a `cases:` list")
    return path, doc


def public_cases(path: Path | None = None) -> list[Case]:
    """Every case: the included shipped datasets first, then the YAML's own cases. Ids are unique."""
    path, doc = _document(path)
    cases: list[Case] = []
    for name in doc.get("includes") or []:
        if name not in INCLUDES:
            raise SpecError(f"{path}: unknown include {name!r}; known: {', '.join(INCLUDES)}")
        cases += [_from_published_run(r) for r in INCLUDES[name]()]
    cases += [_case(e, i, path) for i, e in enumerate(doc["cases"])]
    seen: set[str] = set()
    for c in cases:
        if c.id in seen:
            raise SpecError(f"{path}: case id {c.id!r} appears twice")
        seen.add(c.id)
    return cases


def excluded_runs(path: Path | None = None) -> list[Exclusion]:
    path, doc = _document(path)
    return [Exclusion(str(e.get("id")), str(e.get("reason", "")).strip()) for e in doc.get("excluded") or []]


# ------------------------------------------------------------------ prediction


@functools.lru_cache(maxsize=64)
def _model(name: str) -> ModelSpec:
    return load_model(name)


@functools.lru_cache(maxsize=64)
def _hardware(name: str) -> HardwareProfile:
    return load_hardware(name)


def case_estimate(case: Case, assumptions: Assumptions = DEFAULT) -> Estimate:
    """costsim's estimate of the case's job at its published layout (unpublished fields searched)."""
    return estimate(_model(case.model), _hardware(case.gpu), case.job, case.layout, assumptions=assumptions)


def metric_from_estimate(case: Case, est: Estimate) -> float:
    """The estimate expressed in the case's reported metric and unit."""
    return metric_value(case.metric, _model(case.model), est, case.includes_failures)


def predict_case(case: Case, assumptions: Assumptions = DEFAULT) -> float:
    """costsim's prediction of the case, in the unit of its reported metric."""
    return metric_from_estimate(case, case_estimate(case, assumptions))


# ------------------------------------------------------------------ what the reported number implies


def reported_tokens_per_s_per_gpu(case: Case) -> float:
    """Training tokens per second per GPU that the reported number implies (failures included where it includes them)."""
    job, r, m = case.job, case.reported, case.metric
    if m == "tokens_per_s_per_gpu":
        return r
    if m == "step_time_s":
        return job.tokens_per_s_per_gpu(r)
    if m == "gpu_hours":
        return job.tokens / (r * SECONDS_PER_HOUR)
    if m == "wall_clock_days":
        return job.tokens / (r * SECONDS_PER_DAY * job.num_gpus)
    if m == "time_to_train_minutes":
        return job.tokens / (r * SECONDS_PER_MINUTE * job.num_gpus)
    if m == "model_tflop_per_s_per_gpu":
        return r * TERA / token_flops(_model(case.model), job.seq_len).training_flops
    if m == "eq3_tflop_per_s_per_gpu":
        eq3_per_token = eq3_flops_per_step(_model(case.model), job) / (job.global_batch_sequences * job.seq_len)
        return r * TERA / eq3_per_token
    raise SpecError(f"unknown metric {m!r}")


def reported_mfu(case: Case) -> float:
    """costsim model FLOPs (causal attention) at the reported rate / dense peak of the precision the run used.

    The peak of the run's own precision (FP8 for FP8 runs) puts 16-bit and FP8 runs on one scale:
    the share of what the GPU could do in the arithmetic the run chose.
    """
    flops_per_token = token_flops(_model(case.model), case.job.seq_len).training_flops
    peak = _hardware(case.gpu).peak_flop_per_s(case.job.precision)
    return flop_utilization(flops_per_token, reported_tokens_per_s_per_gpu(case), peak)


# ------------------------------------------------------------------ leave-one-out errors of fitted constants


def _fit_constant_name(fit: dict) -> str:
    """The fitted constant of a fit record: its `constant` key, else its first numeric field that is not a statistic."""
    if isinstance(fit.get("constant"), str):
        return fit["constant"]
    for k, v in fit.items():
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "constrained_by" and "error" not in k:
            return k
    return "fitted constant"


def _fit_records(node: object):
    """Every mapping with a `cases:` list of per-case errors, at any depth of fitted_constants.yaml."""
    if isinstance(node, dict):
        if isinstance(node.get("cases"), list):
            yield node
        for v in node.values():
            if isinstance(v, dict | list):
                yield from _fit_records(v)
    elif isinstance(node, list):
        for v in node:
            yield from _fit_records(v)


def leave_one_out_errors(path: Path = FITTED_PATH) -> dict[str, list[dict]]:
    """Case id -> [{constant, in_sample_error, leave_one_out_error}] for every fit that the case constrained."""
    if not path.exists():
        return {}
    out: dict[str, list[dict]] = {}
    for fit in _fit_records(read_yaml(path)):
        name = _fit_constant_name(fit)
        for c in fit["cases"]:
            if isinstance(c, dict) and "id" in c and c.get("leave_one_out_error") is not None:
                out.setdefault(str(c["id"]), []).append(
                    {
                        "constant": name,
                        "in_sample_error": c.get("in_sample_error"),
                        "leave_one_out_error": float(c["leave_one_out_error"]),
                    }
                )
    return out


# ------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class CaseResult:
    case: Case
    predicted: float
    layout: dict
    layout_searched: bool
    fits: list[dict] = field(default_factory=list)
    """Fits of global constants this case constrained, with its leave-one-out error in each."""

    @property
    def error(self) -> float:
        return self.predicted / self.case.reported - 1.0

    @property
    def leave_one_out_error(self) -> float | None:
        """The largest |leave-one-out error| over the fits the case constrained (None when it constrained none)."""
        if not self.fits:
            return None
        return max((f["leave_one_out_error"] for f in self.fits), key=abs)

    def to_dict(self) -> dict:
        c = self.case
        return {
            "id": c.id,
            "source": c.source,
            "quote": c.quote,
            "model": c.model,
            "gpu": c.gpu,
            "num_gpus": c.job.num_gpus,
            "precision": c.job.precision,
            "tokens": c.job.tokens,
            "seq_len": c.job.seq_len,
            "global_batch_tokens": c.job.global_batch_tokens,
            "metric": c.metric,
            "unit": c.unit,
            "includes_failures": c.includes_failures,
            "reported": c.reported,
            "predicted": self.predicted,
            "error": self.error,
            "leave_one_out_error": self.leave_one_out_error,
            "fitted_constants": [f["constant"] for f in self.fits],
            "layout_published": c.layout,
            "layout": self.layout,
            "layout_searched": self.layout_searched,
            "why": c.why,
        }


def evaluate(
    cases: list[Case] | None = None, assumptions: Assumptions = DEFAULT, fitted_path: Path = FITTED_PATH
) -> list[CaseResult]:
    cases = public_cases() if cases is None else cases
    loo = leave_one_out_errors(fitted_path)
    results = []
    for case in cases:
        est = case_estimate(case, assumptions)
        results.append(
            CaseResult(
                case=case,
                predicted=metric_from_estimate(case, est),
                layout=est.layout.to_dict(),
                layout_searched=est.candidates_evaluated > 1,
                fits=loo.get(case.id, []),
            )
        )
    return results


def summary(results: list[CaseResult]) -> dict:
    if not results:
        raise SpecError("no published cases to summarise; check validation/public_runs.yaml")
    abs_errors = [abs(r.error) for r in results]
    worst = max(results, key=lambda r: abs(r.error))
    loo = [abs(r.leave_one_out_error) for r in results if r.leave_one_out_error is not None]
    median = statistics.median(abs_errors)
    return {
        "n_cases": len(results),
        "median_abs_error": median,
        "max_abs_error": max(abs_errors),
        "worst_case": worst.case.id,
        "target": {"median_abs_error": TARGET_MEDIAN_ABS_ERROR, "max_abs_error": TARGET_MAX_ABS_ERROR},
        "meets_target": median <= TARGET_MEDIAN_ABS_ERROR and max(abs_errors) <= TARGET_MAX_ABS_ERROR,
        "n_fitted_cases": len(loo),
        "median_abs_leave_one_out_error": statistics.median(loo) if loo else None,
        "error_convention": "predicted / reported - 1 in the reported metric's unit",
    }


def report(results: list[CaseResult], exclusions: list[Exclusion]) -> dict:
    """The `validate public` document: cases, summary and the runs left out with their reasons."""
    return {
        "cases": [r.to_dict() for r in results],
        **summary(results),
        "excluded": [{"id": e.id, "reason": e.reason} for e in exclusions],
    }
