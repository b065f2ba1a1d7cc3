"""simulator/data/fitted_constants.yaml, read and checked in one place.

`costsim fit` writes the file; estimates read its five constants (assumptions.DEFAULT) and the uncertainty band reads
each fit's spread (analysis/uncertainty.py). Both take what `load` returns, a FittedConstantsFile: the whole document
checked against the schema below, strictly (a number is a number, not text or true; no NaN or inf; a key the fit does
not write is refused and named), each value inside a physical range, the realization's per-generation table present and
keyed by GPU generations the hardware profiles have, and each record's counts matching its cases. Anything else is one
SpecError naming the file, the key, the value and the fix; nothing falls back to a default (docs/model.md §12).
"""

from __future__ import annotations

import datetime
import difflib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo

from simulator.errors import SpecError
from simulator.inputs import data_files
from simulator.inputs.files import read_yaml
from simulator.inputs.schema_errors import format_errors, short
from simulator.units import MILLI

REFIT_FIX = (
    "regenerate it with `costsim fit` (about a minute), or restore the shipped copy "
    "(`git checkout -- simulator/data/fitted_constants.yaml` in a checkout; reinstall costsim otherwise)"
)


@dataclass(frozen=True)
class FittedRange:
    """The values a fitted constant may take in fitted_constants.yaml, and what it is."""

    low: float
    high: float
    low_open: bool
    meaning: str

    def holds(self, x: float) -> bool:
        return math.isfinite(x) and (self.low < x if self.low_open else self.low <= x) and x <= self.high

    def text(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, " + (f"{self.high:g}]" if math.isfinite(self.high) else "inf)")

    def field(self) -> FieldInfo:
        """The pydantic bounds of this range."""
        return Field(gt=self.low, le=self.high) if self.low_open else Field(ge=self.low, le=self.high)


FITTED_RANGES: dict[str, FittedRange] = {
    # A sustained share of the best-shape microbenchmark rate, within the fit's own grid (analysis/fit.py GRID is built
    # from this range: 0.55 to 1.00 by 0.01; the parabola that refines the best grid point moves it at most half a step
    # toward a neighbour, so a fitted value never leaves the grid). Above 1 a GEMM inside training would beat the best
    # shape measured alone (efficiency.py caps the product at the peak, so more would be clamped silently). Below about
    # half the best-shape rate a run is not GEMM-bound training at all (tiny shapes, a host-bound stack): the step model
    # charges those losses in their own terms, so a sustained share that low is a broken file, not a fit.
    "gemm_sustain": FittedRange(0.55, 1.0, False, "in-training GEMM rate / best-shape microbenchmark rate"),
    # Realized / modelled step time of whole runs. Above 1 is what runs lose beyond the model; a fit a little below 1
    # is possible (the model a little slow), but a whole run at twice the modelled speed is beyond any error of the
    # step model (steady-state track, max 35% on NVIDIA GPUs), and 10 would be runs at a tenth of it, six times past
    # the fitted 1.3-1.7: a file outside [0.5, 10] is broken, not fitted.
    "realization": FittedRange(0.5, 10.0, False, "realized / modelled step time of whole runs"),
    # Host times in seconds, not negative. A GPU kernel launch costs about 4 us (kernel_overhead_s); 1 ms per expert
    # GEMM would be 250 of them, far past the fit grids' ends (200 and 400 us): a unit slip (us written as s or ms).
    "expert_launch_host_s": FittedRange(0.0, 1 * MILLI, False, "host time per expert GEMM launch, in seconds"),
    "expert_quantize_host_s": FittedRange(0.0, 1 * MILLI, False, "per-expert FP8 quantize host time, in seconds"),
    # Per optimizer step: the fit grid ends at 200 ms and the steps it is fitted to last about a second, so a second
    # of host time per step would be most of them; the fitted 47 ms written in ms (47) is refused.
    "step_host_s": FittedRange(0.0, 1.0, False, "host time per optimizer step, in seconds"),
}
"""Each constant `costsim fit` writes to fitted_constants.yaml, and the values a file may give it."""

# A fit's spread is the standard deviation of log(value) (the band draws the value lognormally: P90 / P50 =
# exp(1.2816 sigma)). The fitted ones are 0.04-0.24. At 2 the band's P90 is 13x its median and P10-P90 spans 166x,
# wider than the whole physical range of realization (20x): past it the file is broken, not fitted (1e6 overflowed
# the band's quantiles). 0 is a fit whose leave-one-out refits all landed on one value; the band then draws the value
# itself.
SIGMA_RANGE = FittedRange(0.0, 2.0, False, "standard deviation of log(value)")
MIN_CASES = 2
"""Runs a fit needs (fit.py fits nothing with fewer): one run has no leave-one-out error, so no spread."""

FIT_RECORDS = {
    "realization_fit": "realization",
    "expert_launch_fit": "expert_launch_host_s",
    "expert_quantize_fit": "expert_quantize_host_s",
    "step_host_fit": "step_host_s",
}
"""The fit records whose `sigma` the uncertainty band draws (analysis/uncertainty.py), and the constant each fits."""


def hardware_generations() -> frozenset[str]:
    """The GPU generations of the hardware profiles (their `generation` field, what Assumptions.for_generation looks
    up): the shipped ones and those under $COSTSIM_DATA_DIR. Read from the YAML alone, so a profile that is broken in
    another field does not stop every estimate; its own errors come when it is used."""
    folders = [data_files.shipped_hardware_dir()]
    try:
        folders.append(data_files.hardware_dir())
    except SpecError:  # a COSTSIM_DATA_DIR that is not a folder is named where a profile is looked up
        pass
    out = set()
    for folder in dict.fromkeys(folders):
        for path in sorted(Path(folder).glob("*.yaml")):
            try:
                raw = read_yaml(path)
            except SpecError:
                continue
            generation = raw.get("generation") if isinstance(raw, dict) else None
            if isinstance(generation, str):
                out.add(generation)
    return frozenset(out)


# --------------------------------------------------------------------------- the schema


GemmSustain = Annotated[float, FITTED_RANGES["gemm_sustain"].field()]
Realization = Annotated[float, FITTED_RANGES["realization"].field()]
ExpertLaunchHost = Annotated[float, FITTED_RANGES["expert_launch_host_s"].field()]
ExpertQuantizeHost = Annotated[float, FITTED_RANGES["expert_quantize_host_s"].field()]
StepHost = Annotated[float, FITTED_RANGES["step_host_s"].field()]
Sigma = Annotated[float, SIGMA_RANGE.field()]
RunCount = Annotated[int, Field(ge=1)]
"""`constrained_by`: how many runs the fit rests on (one line each under its `cases`)."""
AbsError = Annotated[float, Field(ge=0)]
RelError = Annotated[float, Field(gt=-1)]
"""predicted / reported - 1: above -1 (a prediction of nothing), finite; its log is what the band's spread is of."""
Text = Annotated[str, Field(min_length=1)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False, use_attribute_docstrings=True)


class FitCase(_Record):
    """One run a fit rests on, with its errors."""

    id: Text
    source: Text
    metric: Text
    generation: Text | None = None
    """The run's GPU generation (the realization's cases; 'unknown' for a profile without one)."""
    reported: Annotated[float, Field(gt=0)]
    in_sample_error: RelError
    leave_one_out_error: RelError


def _counted(constrained_by: int, cases: list[FitCase], where: str) -> None:
    if constrained_by != len(cases):
        raise ValueError(
            f"{where}constrained_by is {constrained_by} but {len(cases)} cases are listed (it counts the runs the fit "
            "rests on, one case each)"
        )


class GenerationFit(_Record):
    """The realization fitted to one GPU generation's whole runs."""

    value: Realization
    constrained_by: RunCount
    median_abs_in_sample_error: AbsError
    median_abs_leave_one_out_error: AbsError
    max_abs_leave_one_out_error: AbsError


class FitRecord(_Record):
    """A constant fitted after gemm_sustain: its value, spread, method and runs."""

    constant: Text
    value: float
    sigma: Sigma
    """Standard deviation of log(value): what the uncertainty band draws."""
    method: Text
    constrained_by: RunCount
    median_abs_in_sample_error: AbsError
    median_abs_leave_one_out_error: AbsError
    max_abs_leave_one_out_error: AbsError
    cases: Annotated[list[FitCase], Field(min_length=MIN_CASES)]

    @model_validator(mode="after")
    def _cases_counted(self) -> FitRecord:
        _counted(self.constrained_by, self.cases, "")
        return self


class RealizationFit(FitRecord):
    by_generation: dict[str, GenerationFit]
    """The realization per GPU generation with enough whole runs; a GPU of a generation not here takes `value`, and
    its estimate says so (sanity.pooled_realization_note). Required, so a file that lost the block is refused; empty
    where the fit found no generation with enough runs (a user's validation set), which every estimate then says."""

    @field_validator("by_generation")
    @classmethod
    def _known_generations(cls, table: dict[str, GenerationFit], info: ValidationInfo) -> dict[str, GenerationFit]:
        known = (info.context or {}).get("generations")
        if known is None:
            known = hardware_generations()
        for generation in table:
            if generation not in known:
                close = difflib.get_close_matches(generation, sorted(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(
                    f"{short(generation)} is not the generation of any hardware profile{hint}, so no GPU would take "
                    f"its realization; the generations are {', '.join(sorted(known))}"
                )
        return table

    @model_validator(mode="after")
    def _generations_counted(self) -> RealizationFit:
        for generation, fit in self.by_generation.items():
            runs = sum(c.generation == generation for c in self.cases)
            if fit.constrained_by != runs:
                raise ValueError(
                    f"by_generation.{generation}.constrained_by is {fit.constrained_by} but {runs} of the cases are on "
                    f"{generation}"
                )
        return self


class FittedConstantsFile(_Record):
    """The whole of fitted_constants.yaml: the five constants, gemm_sustain's fit (its runs and errors at the top
    level) and each other constant's fit record."""

    gemm_sustain: GemmSustain
    realization: Realization
    expert_launch_host_s: ExpertLaunchHost
    expert_quantize_host_s: ExpertQuantizeHost
    step_host_s: StepHost
    fitted_on: Text
    """The date (YYYY-MM-DD) a fitted value last moved."""
    command: Text
    constrained_by: RunCount
    median_abs_in_sample_error: AbsError
    median_abs_leave_one_out_error: AbsError
    max_abs_leave_one_out_error: AbsError
    cases: Annotated[list[FitCase], Field(min_length=MIN_CASES)]
    """gemm_sustain's runs: the RMS of their leave-one-out log errors is its spread."""
    realization_fit: RealizationFit
    expert_launch_fit: FitRecord
    expert_quantize_fit: FitRecord
    step_host_fit: FitRecord

    @field_validator("fitted_on")
    @classmethod
    def _a_date(cls, value: str) -> str:
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            raise ValueError("is not a date written YYYY-MM-DD") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FittedConstantsFile:
        _counted(self.constrained_by, self.cases, "")
        for key, constant in FIT_RECORDS.items():
            record: FitRecord = getattr(self, key)
            if record.constant != constant:
                raise ValueError(f"{key}.constant is {short(record.constant)}; the record fits {constant}")
            if record.value != getattr(self, constant):
                raise ValueError(
                    f"{key}.value is {record.value:g} but {constant} is {getattr(self, constant):g} (`costsim fit` writes "
                    "the same value in both)"
                )
        sigma = self.gemm_sustain_sigma
        if not SIGMA_RANGE.holds(sigma):
            raise ValueError(
                f"the RMS of cases[*].leave_one_out_error as log errors (gemm_sustain's spread) is {sigma:g}, outside "
                f"{SIGMA_RANGE.text()} ({SIGMA_RANGE.meaning})"
            )
        return self

    @property
    def gemm_sustain_sigma(self) -> float:
        """RMS of the log leave-one-out errors of gemm_sustain's runs: how far the fitted rate misses a run it did not
        see."""
        errors = [math.log1p(c.leave_one_out_error) for c in self.cases]
        return math.sqrt(sum(e * e for e in errors) / len(errors))

    def fits(self) -> list[tuple[str, list[FitCase]]]:
        """(constant, the runs it was fitted to) of each fit: gemm_sustain's, then each record's."""
        return [("gemm_sustain", self.cases)] + [(getattr(self, key).constant, getattr(self, key).cases) for key in FIT_RECORDS]

    def record(self, key: str) -> FitRecord:
        """The fit record `key` (FIT_RECORDS)."""
        if key not in FIT_RECORDS:
            raise KeyError(f"{key} is not a fit record; one of {', '.join(FIT_RECORDS)}")
        return getattr(self, key)

    def assumption_values(self) -> dict:
        """The Assumptions fields this file sets: the five constants and the realization per GPU generation."""
        by_generation = tuple(sorted((g, f.value) for g, f in self.realization_fit.by_generation.items()))
        return {key: getattr(self, key) for key in FITTED_RANGES} | {"realization_by_generation": by_generation}


# --------------------------------------------------------------------------- reading


def parse(doc: object, where: str, fix: str = REFIT_FIX, generations: frozenset[str] | None = None) -> FittedConstantsFile:
    """`doc` (a fitted_constants document) checked; one SpecError naming `where`, each bad key, its value and `fix`
    otherwise (`costsim fit` checks what it would write the same way). `generations`: the GPU generations the
    realization may be fitted to (default: the hardware profiles', hardware_generations)."""
    if not isinstance(doc, dict):  # an empty file reads as None: its document is missing
        given = "missing" if doc is None else f"{short(doc)}, not a mapping"
        raise SpecError(f"{where}: the document is {given} (`costsim fit` writes a mapping of the fitted constants); {fix}")
    try:
        return FittedConstantsFile.model_validate(doc, context={"generations": generations})
    except ValidationError as e:
        text = " ".join(f"{where}: {format_errors(FittedConstantsFile, e)}; {fix}".split())
        raise SpecError(text) from None


def load(path: Path) -> FittedConstantsFile:
    """The fitted_constants.yaml at `path`, checked (parse); a SpecError naming the file and the fix when it is missing,
    unreadable, not YAML or not what `costsim fit` writes."""
    if not os.path.lexists(path):
        raise SpecError(
            f"{path}: the fitted constants file is missing (estimates read gemm_sustain, realization and the host times "
            f"from it); {REFIT_FIX}"
        )
    try:
        doc = read_yaml(path)
    except SpecError as e:
        raise SpecError(f"{e}; {REFIT_FIX}") from None
    return parse(doc, str(path))
