"""Plan files: a training run as stages (pre-training, context extension, fine-tuning, RL), read from YAML.

A plan names the model, the GPU, an optional rental price, and a list of stages with their tokens, sequence
length, batch, precision, GPU count and the layout fields that were published (the rest are searched).
`reported` entries quote published GPU-hours for the whole plan or a group of stages. Shipped plans live in
plans/ and are found by name; analysis/plans.py estimates them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from simulator.errors import SpecError
from simulator.inputs.data_files import plan_dir
from simulator.inputs.files import read_yaml, validate
from simulator.units import MAX_GPUS, MAX_USD_PER_GPU_HOUR, count_in_range
from simulator.vocab import LAYOUT_FIELDS, Fp8Recipe, Precision, Recompute, Schedule


def _count(value: object) -> float:
    """14.8T, 300B, 62914560 or 1.5e12 (PyYAML reads 1.5e12 as a string), in (0, 1e17]; pydantic names the field."""
    return count_in_range(value, 0.0, 1e17, low_open=True)


Count = Annotated[float, BeforeValidator(_count)]


class _Schema(BaseModel):
    # strict: a count is an integer and a flag true/false (not 1 or "yes"); no number is inf or NaN
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


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
    tp: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
    pp: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
    dp: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
    ep: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
    cp: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
    zero_stage: Annotated[int, Field(ge=0, le=3)] | None = None
    micro_batch_size: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
    schedule: Schedule | None = None
    vpp: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
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
            raise ValueError(f"stage names must be unique; repeated: {', '.join(dupes)}; give each stage its own name")
        for r in self.reported:
            unknown = [n for n in r.stages or [] if n not in names]
            if unknown:
                raise ValueError(
                    f"reported.stages names unknown stages {unknown}; the stages are {names}: name stages from that "
                    "list, or leave reported.stages out for a figure that covers the whole plan"
                )
        if self.usd_per_gpu_hour is not None and not self.price_source:
            raise ValueError("usd_per_gpu_hour needs a price_source; add price_source: who quotes the price, and when")
        if self.experiments_multiplier is not None and not self.experiments_source:
            raise ValueError(
                "experiments_multiplier needs an experiments_source; add experiments_source: where the multiplier comes from"
            )
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
