"""Training plans: a run as stages (pre-training, context extension, fine-tuning, RL), each estimated on its own.

A plan YAML names the model, the GPU, an optional rental price, and a list of stages with their tokens,
sequence length, batch, precision, GPU count and the layout fields that were published (the rest are
searched). `reported` entries quote published GPU-hours for the whole plan or a group of stages, so the
output can show the predicted total against them. Shipped plans live in plans/ and are found by name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from simulator.errors import CostsimError, SpecError
from simulator.inputs.catalog import load_model
from simulator.inputs.data_files import plan_dir
from simulator.inputs.files import read_yaml, validate
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.run.cost import CostOptions, Rate, rental_rate, sum_blocks
from simulator.run.estimate import Estimate, estimate_scenario
from simulator.run.scenario import resolve
from simulator.units import MAX_GPUS, MAX_USD_PER_GPU_HOUR, SECONDS_PER_DAY, count_in_range
from simulator.vocab import LAYOUT_FIELDS, Fp8Recipe, Precision, Recompute, Schedule


def _count(value: object) -> float:
    """14.8T, 300B, 62914560 or 1.5e12 (PyYAML reads 1.5e12 as a string), in (0, 1e17]; pydantic names the field."""
    return count_in_range(value, 0.0, 1e17, low_open=True)


Count = Annotated[float, BeforeValidator(_count)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reported(_Schema):
    """Published GPU-hours (and dollars) for the whole plan, or for the stages listed."""

    gpu_hours: Count
    cost_usd: Count | None = None
    stages: list[str] | None = None
    """Stage names this number covers; absent: the whole plan."""
    source: str
    quote: str
    note: str | None = None


class Stage(_Schema):
    name: str = Field(min_length=1)
    tokens: Count
    seq_len: Annotated[int, Field(ge=1, le=10_000_000)]
    global_batch_tokens: Count
    precision: Precision = "bf16"
    num_gpus: Annotated[int, Field(ge=1, le=MAX_GPUS)]
    gpu: str | None = None
    """Overrides the plan's GPU for this stage."""
    tp: Annotated[int, Field(ge=1)] | None = None
    pp: Annotated[int, Field(ge=1)] | None = None
    dp: Annotated[int, Field(ge=1)] | None = None
    ep: Annotated[int, Field(ge=1)] | None = None
    cp: Annotated[int, Field(ge=1)] | None = None
    zero_stage: Annotated[int, Field(ge=0, le=3)] | None = None
    micro_batch_size: Annotated[int, Field(ge=1)] | None = None
    schedule: Schedule | None = None
    vpp: Annotated[int, Field(ge=1)] | None = None
    recompute: Recompute | None = None
    tp_overlap: bool | None = None
    """TP communication overlapped with GEMMs (default off, as in estimate)."""
    fp8_recipe: Fp8Recipe | None = None
    """FP8 scaling (default: the model's published recipe, else per-tensor)."""
    source: str | None = None
    """Where this stage's numbers come from."""
    notes: str | None = None
    """Assumptions made where the source is silent."""

    def layout(self) -> dict:
        return {k: getattr(self, k) for k in LAYOUT_FIELDS}


class Plan(_Schema):
    name: str = Field(min_length=1)
    display_name: str | None = None
    source: str
    model: str
    """Shipped model name, or a spec YAML / config.json path (relative to the plan file)."""
    gpu: str
    usd_per_gpu_hour: Annotated[float, Field(gt=0, le=MAX_USD_PER_GPU_HOUR)] | None = None
    price_source: str | None = None
    experiments_multiplier: Annotated[float, Field(ge=1, le=100)] | None = None
    experiments_source: str | None = None
    reported: list[Reported] = []
    stages: list[Stage] = Field(min_length=1)
    notes: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(dupes)}")
        for r in self.reported:
            unknown = [n for n in r.stages or [] if n not in names]
            if unknown:
                raise ValueError(f"reported.stages names unknown stages {unknown}; the stages are {names}")
        if self.usd_per_gpu_hour is not None and not self.price_source:
            raise ValueError("usd_per_gpu_hour needs a price_source (who quotes the price, and when)")
        if self.experiments_multiplier is not None and not self.experiments_source:
            raise ValueError("experiments_multiplier needs an experiments_source")
        return self


# --------------------------------------------------------------------------- loading


def plan_ids() -> dict[str, Path]:
    return {p.stem: p for p in sorted(plan_dir().glob("*.yaml"))}


def load_plan_file(path: Path) -> Plan:
    if path.is_dir():
        raise SpecError(f"{path}: is a directory; pass a plan YAML file")
    return validate(read_yaml(path), Plan, path)


def load_plan(plan: str) -> tuple[Plan, Path]:
    """A shipped plan by name, or a path to a plan YAML. Returns the plan and its file."""
    path = Path(plan)
    if path.suffix in (".yaml", ".yml") and (path.exists() or "/" in plan):
        return load_plan_file(path), path
    ids = plan_ids()
    key = plan.strip().lower()
    if key not in ids:
        shipped = ", ".join(ids) or "none"
        raise SpecError(f"unknown plan {plan!r}; shipped plans: {shipped}. Pass one of these names or a plan YAML path.")
    return load_plan_file(ids[key]), ids[key]


def model_ref(plan: Plan, plan_path: Path) -> str:
    """Spec paths in a plan are relative to the plan file."""
    ref = Path(plan.model)
    if ref.suffix in (".yaml", ".yml", ".json") and not ref.is_absolute():
        beside = plan_path.parent / ref
        if beside.exists():
            return str(beside)
    return plan.model


# --------------------------------------------------------------------------- estimating


@dataclass(frozen=True)
class StageResult:
    stage: Stage
    estimate: Estimate
    hw: HardwareProfile
    cost: dict

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
            "mfu_fp8_peak",
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

    def predicted_gpu_hours(self, stage_names: list[str] | None) -> float:
        names = set(stage_names or [s.stage.name for s in self.stages])
        return sum(s.estimate.gpu_hours for s in self.stages if s.stage.name in names)

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
        est = estimate_scenario(scenario)
    except CostsimError as e:
        raise type(e)(f"plan {plan.name}, stage {stage.name!r}: {e}") from None
    return StageResult(stage, est, scenario.hardware, est.cost)


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
