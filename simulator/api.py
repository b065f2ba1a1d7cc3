"""The front door: estimate, plan, search, claim, compare and validate as functions returning result objects.
The command line calls these same functions, so a notebook and `costsim` give the same numbers for the same
options (tests/test_api.py checks the dollars under every pricing option).

    from simulator import api as cs

    r = cs.estimate("deepseek-v3", gpu="h800", num_gpus=2048, tokens="14.8T", precision="fp8",
                    tp=1, pp=16, ep=64, schedule="dualpipe", usd_per_gpu_hour=2, uncertainty=True)
    r.gpu_hours, r.wall_clock_days, r.cost_usd      # numbers
    r.to_dict()                                     # everything `costsim estimate --format json` prints
    r.to_frame()                                    # pandas: one row
    r.breakdown_frame(), r.tornado_frame()          # step-time components; uncertainty tornado
    r.write_report("out/")                          # what `costsim report` writes

Pricing options are those of `costsim estimate`: pricing="rental" or "tco", rental="on-demand"/"reserved",
usd_per_gpu_hour, gpu_purchase_usd, pue, usd_per_kwh, grid_kg_co2_per_kwh, experiments_multiplier.

Every result has `.to_dict()` (plain JSON-able data) and `.to_frame()` (a pandas DataFrame of its natural rows:
one row for an estimate, one per stage for a plan, one per layout for a search, one per FLOP convention for a
claim, one per factor for a comparison, one per published run for a validation). Errors are
simulator.errors.CostsimError subclasses with a message that names the problem and a fix. pandas is imported
only by `.to_frame()`. (`simulator.notebook` is the same module under its former name.)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from typing import Any

from simulator.errors import InputError
from simulator.inputs.arguments import flag, integer
from simulator.model.layout import Layout
from simulator.report.tables import flatten
from simulator.run import cost
from simulator.units import DEFAULT_DRAWS, GPU_HOURS_RANGE, MAX_GPUS, SECONDS_PER_DAY, TOKENS_RANGE, count_in_range

LAYOUT_KEYS = tuple(f.name for f in fields(Layout))


def _number(name: str, value: Any, bounds: tuple[float, float] = TOKENS_RANGE) -> float:
    """A count given as a number or a string with a suffix ('14.8T'), in the same range as on the command line."""
    try:
        return count_in_range(value, *bounds)
    except ValueError as e:
        raise InputError(f"{name}={e}") from None


def _gpus(num_gpus: Any) -> int:
    return integer("num_gpus", num_gpus, 1, MAX_GPUS)


def _check_layout_keys(layout: dict) -> None:
    unknown = sorted(set(layout) - set(LAYOUT_KEYS))
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)}; layout fields are {', '.join(LAYOUT_KEYS)}")


def _batch(global_batch_tokens: Any) -> float | None:
    return None if global_batch_tokens is None else _number("global_batch_tokens", global_batch_tokens)


def _plain_numbers(fn):
    """The API's arguments with numpy and Fraction numbers as the Python ones they stand for (simulator.inputs.arguments
    .plain_number), so that a number of any of those types gives the dollars and the JSON a Python number gives; an
    argument the function does not take is an InputError naming it, as the functions with **options give."""
    import functools
    import inspect

    from simulator.inputs.arguments import plain_number

    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            signature.bind(*args, **kwargs)
        except TypeError as e:
            taken = ", ".join(
                p for p in signature.parameters if signature.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD
            )
            raise InputError(f"{fn.__name__}(): {e}; it takes {taken}") from None
        return fn(*(plain_number(a) for a in args), **{k: plain_number(v) for k, v in kwargs.items()})

    return wrapper


@_plain_numbers
def cost_options(
    pricing: str = "rental",
    rental: str | None = None,
    usd_per_gpu_hour: float | None = None,
    gpu_purchase_usd: float | None = None,
    pue: float | None = None,
    usd_per_kwh: float | None = None,
    grid_kg_co2_per_kwh: float | None = None,
    experiments_multiplier: float | None = None,
) -> cost.CostOptions:
    """The cost options of `costsim estimate` (--pricing, --rental, --usd-per-gpu-hour, the TCO inputs), checked."""
    return cost.CostOptions(
        pricing, usd_per_gpu_hour, gpu_purchase_usd, pue, usd_per_kwh, grid_kg_co2_per_kwh, experiments_multiplier, rental
    )


def _frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame([flatten(r) for r in rows])


TIMING_KEYS = ("model_evaluation_s", "draw_s")
"""Wall-clock timings of a band: on the band object (band.draw_s), never in a document, so that the same inputs
give the same bytes (`costsim estimate --verbose` prints them on stderr)."""


def _with_band(d: dict, band) -> dict:
    """A result's document with its uncertainty band (when one was asked for) under "uncertainty"."""
    if band is not None:
        d["uncertainty"] = {k: v for k, v in band.to_dict().items() if k not in TIMING_KEYS}
    return d


class _Result:
    """Base: `to_dict()` is the data, `to_frame()` its natural rows as a DataFrame."""

    def to_dict(self) -> dict:
        raise NotImplementedError

    def rows(self) -> list[dict]:
        raise NotImplementedError

    def to_frame(self):
        return _frame(self.rows())

    def to_json(self) -> str:
        from simulator.report.tables import to_json

        return to_json(self.to_dict())


# --------------------------------------------------------------------------- estimate


@dataclass(frozen=True)
class EstimateResult(_Result):
    runs: Any
    """The simulator.run.estimate.RunEstimates: expected and achievable."""
    scenario: Any
    """The simulator.run.scenario.Scenario it was made from (model spec, hardware, rates, job, pricing)."""
    uncertainty: Any = None
    """simulator.analysis.uncertainty.UncertaintyResult when asked for (uncertainty=True)."""

    @property
    def estimate(self):
        """The expected run (simulator.run.estimate.Estimate): what runs like this one realized."""
        return self.runs.expected

    @property
    def achievable(self):
        """The achievable run: the best layout the software stack offers, as modelled, without TP-communication overlap
        unless tp_overlap is given (api.search tries both)."""
        return self.runs.achievable

    @property
    def model_spec(self):
        return self.scenario.model

    @property
    def hardware(self):
        return self.scenario.hardware

    @property
    def gpu_hours(self) -> float:
        return self.estimate.gpu_hours

    @property
    def wall_clock_days(self) -> float:
        return self.estimate.wall_clock_s / SECONDS_PER_DAY

    @property
    def cost_usd(self) -> float:
        return self.estimate.cost_usd

    @property
    def mfu(self) -> float:
        return self.estimate.mfu

    @property
    def layout(self) -> dict:
        return self.estimate.layout.to_dict()

    def to_dict(self) -> dict:
        return _with_band(self.runs.to_dict(), self.uncertainty)

    def rows(self) -> list[dict]:
        """The CSV row: the same columns for every model and with or without --uncertainty (issue 13): every
        step-time and FLOP component (0 where it does not arise) and the P10/P50/P90 columns (empty without a band)."""
        from simulator.analysis.uncertainty import OUTPUTS
        from simulator.vocab import FLOP_COMPONENTS, STEP_COMPONENTS

        d = self.to_dict()
        d.pop("uncertainty", None)
        d["breakdown"] = {k: d["breakdown"].get(k, 0.0) for k in STEP_COMPONENTS} | d["breakdown"]
        flops = d["flops_per_token_by_component"]
        d["flops_per_token_by_component"] = {k: flops.get(k, 0.0) for k in FLOP_COMPONENTS} | flops
        bands = self.uncertainty.bands if self.uncertainty is not None else {}
        for k in OUTPUTS:
            band = bands.get(k)
            d |= {f"{k}_{p}": getattr(band, p) if band else None for p in ("p10", "p50", "p90")}
        return [d]

    def breakdown_frame(self):
        """Step-time components of the slowest pipeline rank: seconds per step and share."""
        total = self.estimate.step_time_s
        rows = [{"component": k, "seconds_per_step": v, "share": v / total} for k, v in self.estimate.breakdown_s.items()]
        return _frame(sorted(rows, key=lambda r: -r["seconds_per_step"]))

    def tornado_frame(self):
        """Each uncertain input at its P10 and P90 (others nominal): the outputs. Needs uncertainty=True."""
        if self.uncertainty is None:
            raise InputError("no uncertainty band: call estimate(..., uncertainty=True)")
        return _frame([b.to_dict() for b in self.uncertainty.tornado])

    def write_report(
        self,
        output: str,
        force: bool = False,
        draws: int = DEFAULT_DRAWS,
        seed: int = 0,
        command: str = "simulator.api",
        given: dict | None = None,
    ) -> dict:
        """Write report.md, report.html and the PNG charts into `output` (as `costsim report`).

        `given`: the layout fields the user fixed, kept by the report's scaling curve (None: the whole layout)."""
        from simulator.report.document import write_report
        from simulator.vocab import LAYOUT_FIELDS

        output, force = _report_target(output, force)
        if given is not None and (not isinstance(given, dict) or not set(given) <= set(LAYOUT_FIELDS)):
            raise InputError(f"given={given!r} must be a dict of layout fields ({', '.join(LAYOUT_FIELDS)}) or None")
        layout = self.estimate.layout.to_dict()
        differs = {k: v for k, v in (given or {}).items() if v is not None and layout.get(k) != v}
        if differs:  # the scaling curve holds these fields: they must be this estimate's
            raise InputError(f"given={differs!r} is not this estimate's layout ({layout}); pass the fields it was run with")
        if not isinstance(command, str):
            raise InputError(f"command={command!r} must be text (the command line the report names)")
        band = self.uncertainty or _band(self.estimate, self.scenario, 0.0, draws, seed)
        return write_report(self.estimate, self.model_spec, self.hardware, band, output, force, command, given, self.achievable)

    def __repr__(self) -> str:
        e = self.estimate
        return (
            f"EstimateResult({e.model} on {e.job.num_gpus} x {e.gpu}: {e.gpu_hours:,.0f} GPU-hours, "
            f"{self.wall_clock_days:.1f} days, ${e.cost_usd:,.0f}, MFU {e.mfu:.1%}, {e.layout.describe()})"
        )


def _band(est, scenario, tokens_spread: float, draws: int, seed: int):
    from simulator.analysis.uncertainty import band_for_estimate

    fixed = cost.price_held_fixed(scenario.costs)
    return band_for_estimate(est, scenario.model, scenario.hardware, fixed, tokens_spread, draws, seed)


@_plain_numbers
def estimate(
    model: str,
    gpu: str,
    num_gpus: int,
    tokens: float | str,
    *,
    seq_len: int | None = None,
    global_batch_tokens: float | str | None = None,
    precision: str = "bf16",
    fp8_recipe: str | None = None,
    attention_kernel: str | None = None,
    dropout: float = 0.0,
    calibration: str | None = None,
    stack: str | None = None,
    pricing: str = "rental",
    rental: str | None = None,
    usd_per_gpu_hour: float | None = None,
    gpu_purchase_usd: float | None = None,
    pue: float | None = None,
    usd_per_kwh: float | None = None,
    grid_kg_co2_per_kwh: float | None = None,
    experiments_multiplier: float | None = None,
    uncertainty: bool = False,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    tokens_spread: float = 0.0,
    **layout: Any,
) -> EstimateResult:
    """Estimate one training run, as `costsim estimate`. Layout fields (tp, pp, dp, ep, cp, zero_stage,
    micro_batch_size, schedule, recompute, vpp, tp_overlap) given as keywords are fixed; the others are searched.
    `stack`: the software stack (`costsim list stacks`; default today's): what the search may use (the achievable
    run) and what practitioners ran on it (the expected run). `calibration`: a file from `costsim calibrate` whose
    measured rates replace the profile's efficiency terms."""
    from simulator.analysis.published_mfu import with_mfu_notes
    from simulator.analysis.uncertainty import check_options
    from simulator.run.estimate import estimate_scenario
    from simulator.run.scenario import resolve

    if flag("uncertainty", uncertainty):
        check_options(draws, seed, tokens_spread)
    else:
        _no_band_options(draws, seed, tokens_spread)
    _check_layout_keys(layout)
    costs = cost_options(
        pricing, rental, usd_per_gpu_hour, gpu_purchase_usd, pue, usd_per_kwh, grid_kg_co2_per_kwh, experiments_multiplier
    )
    scenario = resolve(
        model, gpu, _gpus(num_gpus), _number("tokens", tokens),
        seq_len=seq_len, global_batch_tokens=_batch(global_batch_tokens), precision=precision, fp8_recipe=fp8_recipe,
        attention_kernel=attention_kernel, dropout=dropout, layout=layout, costs=costs, calibration=calibration, stack=stack,
    )  # fmt: skip
    runs = with_mfu_notes(estimate_scenario(scenario), scenario.hardware)
    band = _band(runs.expected, scenario, tokens_spread, draws, seed) if uncertainty else None
    return EstimateResult(runs, scenario, band)


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class PlanResult(_Result):
    plan: Any
    """The simulator.analysis.plans.PlanResult (every stage's Estimate, totals, cost)."""
    uncertainty: Any = None

    @property
    def gpu_hours(self) -> float:
        return self.plan.gpu_hours

    @property
    def cost_usd(self) -> float:
        return self.plan.cost["cost_usd"]

    def to_dict(self) -> dict:
        return _with_band(self.plan.to_dict(), self.uncertainty)

    def rows(self) -> list[dict]:
        """One row per stage, the whole plan's band on each (empty without one)."""
        from simulator.report.tables import plan_rows

        return plan_rows(self.to_dict())

    def write_report(
        self,
        output: str,
        force: bool = False,
        draws: int = DEFAULT_DRAWS,
        seed: int = 0,
        command: str = "simulator.api",
        compare_with: str | None = None,
    ) -> dict:
        """Write report.md, report.html and the PNG charts of the plan into `output` (as `costsim report --plan`):
        stages, the published claim checked, a comparison with the plan `compare_with` (a name or YAML) if given."""
        from simulator.analysis.uncertainty import band_for_plan
        from simulator.report.document import write_plan_report

        output, force = _report_target(output, force)
        band = self.uncertainty or band_for_plan(self.plan, cost.price_held_fixed(self.plan.options), 0.0, draws, seed)
        other = _plan_result(compare_with).plan if compare_with is not None else None
        return write_plan_report(self.plan, band, output, force, command, other)


def _no_band_options(draws: object, seed: object, tokens_spread: object) -> None:
    """As the command line: draws, seed and tokens_spread only apply with uncertainty=True (they were ignored)."""
    given = [f"{k}={v!r}" for k, v, default in (("draws", draws, DEFAULT_DRAWS), ("seed", seed, 0),
                                               ("tokens_spread", tokens_spread, 0.0)) if v != default]  # fmt: skip
    if given:
        raise InputError(f"{', '.join(given)} only apply with uncertainty=True; add it or drop them")


def _report_target(output: object, force: object) -> tuple[str, bool]:
    """write_report's folder (text or a pathlib.Path) and `force` (True or False: 'no' would overwrite), checked
    before the band is drawn."""
    if not isinstance(output, str | os.PathLike) or not str(output):
        raise InputError(f"output={output!r} must be a folder path (text or a pathlib.Path)")
    return str(output), flag("force", force)


@_plain_numbers
def plan(
    plan: str,
    *,
    pricing: str = "rental",
    rental: str | None = None,
    usd_per_gpu_hour: float | None = None,
    gpu_purchase_usd: float | None = None,
    pue: float | None = None,
    usd_per_kwh: float | None = None,
    grid_kg_co2_per_kwh: float | None = None,
    experiments_multiplier: float | None = None,
    uncertainty: bool = False,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    tokens_spread: float = 0.0,
) -> PlanResult:
    """A shipped plan by name or a plan YAML: every stage estimated, totals and cost, as `costsim estimate --plan`."""
    from simulator.analysis.plans import run_plan
    from simulator.analysis.uncertainty import band_for_plan, check_options
    from simulator.inputs.plan_file import load_plan

    if flag("uncertainty", uncertainty):
        check_options(draws, seed, tokens_spread)
    else:
        _no_band_options(draws, seed, tokens_spread)
    costs = cost_options(
        pricing, rental, usd_per_gpu_hour, gpu_purchase_usd, pue, usd_per_kwh, grid_kg_co2_per_kwh, experiments_multiplier
    )
    spec, path = load_plan(plan)
    result = run_plan(spec, path, costs)
    band = None
    if uncertainty:
        band = band_for_plan(result, cost.price_held_fixed(costs), tokens_spread, draws, seed)
    return PlanResult(result, band)


_plan_result = plan  # `claim` and `report` take a `plan` argument that hides the function


# --------------------------------------------------------------------------- search


@dataclass(frozen=True)
class SearchResult(_Result):
    search: Any
    """The simulator.run.search.SearchResult (numpy arrays of every valid layout)."""
    document: dict = field(repr=False)
    """What `costsim search --format json` prints (simulator.report.search_doc.search_document), less schema_version."""

    @property
    def best(self) -> dict | None:
        return self.document["best"]

    @property
    def candidates(self) -> list[dict]:
        return self.document["candidates"]

    def to_dict(self) -> dict:
        return self.document

    def rows(self) -> list[dict]:
        return self.candidates


@_plain_numbers
def search(
    model: str,
    gpu: str,
    num_gpus: int,
    tokens: float | str,
    *,
    seq_len: int | None = None,
    global_batch_tokens: float | str | None = None,
    precision: str = "bf16",
    fp8_recipe: str | None = None,
    objective: str = "time",
    usd_per_gpu_hour: float | None = None,
    rental: str | None = None,
    stack: str | None = None,
    reference: str | None = None,
    top: int | None = None,
    progress: Any = None,
    **layout: Any,
) -> SearchResult:
    """Every valid layout of the run the stack offers, ranked (fits first, then by step time or by cost), as `costsim
    search`: the same document as its JSON. `reference`: a layout to rank against the best, as
    'tp=1,pp=16,ep=64' (None: the model's published layout); `top` keeps only the first rows in `candidates` (None:
    all); `progress(done, total)` is called as the layouts are evaluated."""
    from simulator.inputs.stacks import load_stack
    from simulator.report.search_doc import expected_entry, parse_reference, search_document
    from simulator.run.scenario import resolve
    from simulator.run.search import search as run_search

    _check_layout_keys(layout)
    limit = None if top is None else integer("top", top, 1, 2**62)
    if reference is not None and not isinstance(reference, str):
        raise InputError(f"reference={reference!r} must be a layout as text, e.g. 'tp=1,pp=16,ep=64', or None")
    if progress is not None and not callable(progress):
        raise InputError(f"progress={progress!r} must be a function of (done, total), or None")
    sw = load_stack(stack)
    # Resolved as `costsim estimate` resolves a run (the stack's attention kernel and FP8 recipe, the GPU's rates), so
    # a row's layout typed into `estimate` gives the row's numbers.
    s = resolve(
        model, gpu, _gpus(num_gpus), _number("tokens", tokens), seq_len=seq_len,
        global_batch_tokens=_batch(global_batch_tokens), precision=precision, fp8_recipe=fp8_recipe, layout=layout,
        costs=cost_options(usd_per_gpu_hour=usd_per_gpu_hour, rental=rental), stack=sw,
    )  # fmt: skip
    ref, ref_source = parse_reference(reference, s.model)
    result = run_search(s.model, s.hardware, s.job, s.layout, s.assumptions, s.rates, s.pricing, objective,
                        progress=progress, limits=sw.offers)  # fmt: skip
    doc = search_document(s.model, s.hardware, s.job, result, ref, ref_source, limit)
    doc["stack"] = sw.name
    doc["price_quote"] = s.pricing.quote
    doc["expected"] = expected_entry(result, sw, s.layout, s.hardware.generation)
    return SearchResult(result, doc)


# --------------------------------------------------------------------------- claim, compare, validate


@dataclass(frozen=True)
class ClaimResult(_Result):
    claim: Any
    """The simulator.analysis.claim.ClaimResult."""
    uncertainty: Any = None

    @property
    def verdict(self) -> str:
        return self.claim.verdict

    def to_dict(self) -> dict:
        return _with_band(self.claim.to_dict(), self.uncertainty)

    def rows(self) -> list[dict]:
        """One row per FLOP convention: the implied TFLOP/s per GPU and MFU under it."""
        return [{"convention": k, **v} for k, v in self.claim.to_dict()["flops_conventions"].items()]


@_plain_numbers
def claim(
    model: str | None = None,
    gpu: str | None = None,
    gpu_hours: float | str | None = None,
    tokens: float | str | None = None,
    *,
    num_gpus: int | None = None,
    precision: str | None = None,
    uncertainty: bool = False,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    usd: float | str | None = None,
    usd_per_gpu_hour: float | None = None,
    plan: str | None = None,
    stages: list[str] | None = None,
) -> ClaimResult:
    """Check a published claim 'this model took G GPU-hours for T tokens on this GPU', as `costsim claim`.

    `usd`: the claim in dollars instead of (or beside) GPU-hours; GPU-hours = usd / the price (`usd_per_gpu_hour`,
    else the plan's quoted price, else the GPU profile's default quote), stated in the result.
    `plan`: a shipped plan or plan YAML; the claim is checked against the whole plan (every stage, or `stages`),
    whose model, GPU, tokens and GPU counts replace `model`, `gpu`, `tokens` and `num_gpus`."""
    from simulator.analysis.claim import assess_claim, assess_plan_claim, claim_price, claimed_gpu_hours, with_dollars
    from simulator.analysis.uncertainty import band_for_claim, band_for_plan_claim, check_options

    hours = None if gpu_hours is None else _number("gpu_hours", gpu_hours, GPU_HOURS_RANGE)
    dollars = None if usd is None else _number("usd", usd, GPU_HOURS_RANGE)
    if plan is not None:
        flags = (("MODEL", model), ("--gpu", gpu), ("--tokens", tokens), ("--num-gpus", num_gpus))
        given = [n for n, v in flags if v is not None]
        given += ["--precision"] if precision is not None else []
        if given:
            raise InputError(f"--plan {plan} sets the model, GPU, tokens, GPU counts and precision; leave out {', '.join(given)}")
        if flag("uncertainty", uncertainty):
            check_options(draws, seed, 0.0)
        if stages is not None and (not isinstance(stages, list | tuple) or not all(isinstance(s, str) for s in stages)):
            raise InputError(f"stages={stages!r} must be a list of stage names, e.g. ['pre-training']")
        result = _plan_result(plan, usd_per_gpu_hour=usd_per_gpu_hour).plan
        rate, source = result.cost["usd_per_gpu_hour"], result.cost["price_source"]
        rate, source = claim_price(hours, dollars, rate, source, usd_per_gpu_hour is not None)
        checked = assess_plan_claim(result, claimed_gpu_hours(hours, dollars, rate), stages)
        implied = rate if hours is not None and dollars is not None else None  # else the plan's own prices
        band = band_for_plan_claim(checked, draws, seed, implied) if uncertainty else None
        return ClaimResult(with_dollars(checked, dollars, rate, source, hours is None), band)
    missing = [n for n, v in (("MODEL", model), ("--gpu", gpu), ("--tokens", tokens)) if v is None]
    if missing:
        raise InputError(f"give {', '.join(missing)} (or --plan NAME to check a claim against a whole plan)")
    if stages:
        raise InputError("stages name stages of a plan; give --plan NAME with them")
    if flag("uncertainty", uncertainty):
        check_options(draws, seed, 0.0)
    if dollars is not None or usd_per_gpu_hour is not None:
        from simulator.inputs.catalog import load_hardware

        price = cost.chosen_rental_rate(load_hardware(gpu), cost_options(usd_per_gpu_hour=usd_per_gpu_hour))
        rate, source = price.usd_per_gpu_hour, price.source
    else:
        rate, source = None, None
    rate, source = claim_price(hours, dollars, rate, source, usd_per_gpu_hour is not None)
    hours = claimed_gpu_hours(hours, dollars, rate if rate is not None else 1.0)
    result = assess_claim(model, gpu, hours, _number("tokens", tokens), num_gpus, precision)  # checks num_gpus
    if rate is not None:
        result = with_dollars(result, dollars, rate, source, gpu_hours is None)
    band = band_for_claim(result, model, gpu, draws, seed) if uncertainty else None
    return ClaimResult(result, band)


@dataclass(frozen=True)
class CompareResult(_Result):
    data: dict

    @property
    def ratio(self) -> float:
        return self.data["ratio"]

    def to_dict(self) -> dict:
        return json.loads(json.dumps(self.data))

    def rows(self) -> list[dict]:
        """One row per factor; their product is the GPU-hours ratio a / b."""
        return list(self.data["factor_details"])


@_plain_numbers
def compare(a: str, b: str) -> CompareResult:
    """GPU-hours of plan a / plan b as a product of five factors, as `costsim compare` (plan names or YAML paths)."""
    from simulator.analysis.compare import compare_plans

    return CompareResult(compare_plans(plan(a).plan, plan(b).plan))


@dataclass(frozen=True)
class ValidationResult(_Result):
    data: dict

    @property
    def median_abs_error(self) -> float:
        return self.data["median_abs_error"]

    def to_dict(self) -> dict:
        return self.data

    def rows(self) -> list[dict]:
        """One row per published run: reported, predicted, error."""
        return self.data["cases"]


@_plain_numbers
def validate(kind: str = "public") -> ValidationResult:
    """Compare the model with published runs, as `costsim validate public` (the only kind that needs no GPU)."""
    from simulator.analysis import public_runs

    if kind != "public":
        raise InputError(f"validate kind {kind!r} is unknown; use 'public' (local calibration runs use the CLI on a GPU)")
    from simulator.inputs.published import excluded_runs

    results = public_runs.evaluate()
    return ValidationResult(public_runs.report(results, excluded_runs()))


# --------------------------------------------------------------------------- serve


@dataclass(frozen=True)
class ServeResult(_Result):
    estimate: Any
    """The simulator.run.serve.ServeEstimate: the chosen prefill and decode deployments and the whole search."""

    def to_dict(self) -> dict:
        return self.estimate.to_dict()

    def rows(self) -> list[dict]:
        """One row: the request, the chosen layouts' rates and the dollars (breakdowns and memory flattened; the curve and
        the assumptions left out: curve_frame has the curve). The
        columns are the same for every model, phase and request at one cost basis: every field of the output model
        (empty where the phase or option does not arise), every forward-pass component of the prefill and every
        memory component (0 where there is none), and with a price sheet every token kind's list price and margin.
        The cost basis (--pricing) and a price sheet add their own columns. No schema_version: like .to_dict() and
        every other command's CSV, the row is the result, not the JSON document's envelope."""
        from simulator.inputs.serving_cases import PRICE_KEYS
        from simulator.outputs import ServeOutput
        from simulator.report.tables import schema_row
        from simulator.vocab import DECODE_COMPONENTS, FORWARD_COMPONENTS, SERVE_MEMORY_COMPONENTS

        d = self.to_dict()
        if d.get("prefill") is not None:
            parts, shown = d["prefill"]["breakdown_s"], d["prefill"]["memory_per_gpu_gib"]
            d["prefill"] = d["prefill"] | {
                "breakdown_s": {k: parts.get(k, 0.0) for k in FORWARD_COMPONENTS} | parts,
                "memory_per_gpu_gib": {k: shown.get(k, 0.0) for k in SERVE_MEMORY_COMPONENTS},
            }
        if d.get("memory_per_gpu_gib") is not None:
            d["memory_per_gpu_gib"] = {k: d["memory_per_gpu_gib"].get(k, 0.0) for k in SERVE_MEMORY_COMPONENTS}
        vocabularies = {"prefill.breakdown_s": FORWARD_COMPONENTS, "decode.breakdown_s": DECODE_COMPONENTS,
                        "memory_per_gpu_gib": SERVE_MEMORY_COMPONENTS, "list_prices.by_kind": tuple(PRICE_KEYS),
                        "prefill.memory_per_gpu_gib": SERVE_MEMORY_COMPONENTS}  # fmt: skip
        return [schema_row(d, ServeOutput, vocabularies, exclude=("schema_version", "curve", "assumptions"))]

    def curve_frame(self):
        """The throughput-interactivity curve: tokens/s per GPU against tokens/s per user."""
        import pandas as pd

        return pd.DataFrame(self.to_dict().get("curve", []))


@_plain_numbers
def serve(model: str, gpu: str, *, pricing: str = "rental", rental: str | None = None,
          usd_per_gpu_hour: float | None = None, gpu_purchase_usd: float | None = None,
          **request: Any) -> ServeResult:  # fmt: skip
    """Serve `model` on `gpu`, as `costsim serve` (same keyword names as its flags: input_len, output_len or
    workload, cache_hit_rate, phase, deployment, precision, kv_dtype, tp, dp, pp, ep, num_gpus, batch_per_gpu,
    max_batch_per_gpu, redundant_experts, mtp_depth, mtp_accept, two_batch_overlap, kv_admission, kv_memory_fraction,
    host_s_per_sequence, tpot_s, ttft_s,
    min_tokens_per_s_per_user, utilization, price_sheet, calibration; latency targets in seconds)."""
    from simulator.run.serve import ServeRequest
    from simulator.run.serve import serve as run_serve

    known = {f.name for f in fields(ServeRequest) if f.init} - {"model", "gpu", "cost"}
    unknown = sorted(set(request) - known)
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)}; serve takes {', '.join(sorted(known))}")
    options = cost_options(pricing, rental, usd_per_gpu_hour, gpu_purchase_usd)
    return ServeResult(run_serve(ServeRequest(model, gpu, **request, cost=options)))


@dataclass(frozen=True)
class FleetResult(_Result):
    day: Any
    """The simulator.run.fleet.FleetDay: the fleet file, the per-node rates (given or predicted), prices."""

    @property
    def cost_usd(self) -> float:
        return self.to_dict()["cost_usd"]

    @property
    def margin(self) -> float:
        return self.to_dict()["margin"]

    def to_dict(self) -> dict:
        return self.day.to_dict()

    def rows(self) -> list[dict]:
        """One row per hour of the day: tokens, nodes and units per phase, cost and revenue."""
        return self.day.rows()


@_plain_numbers
def fleet(fleet: str | dict, *, predict_rates: bool = False, usd_per_gpu_hour: float | None = None) -> FleetResult:
    """A day of a serving fleet's traffic, as `costsim fleet`: a shipped fleet name, a fleet YAML path, or the file's
    content as a dict. Node-hours, cost, revenue and margin; `predict_rates` replaces the file's per-node rates
    with costsim serve's predictions."""
    from simulator.run.fleet import fleet_day

    # flag(): a string such as "no" is truthy, and would predict
    return FleetResult(fleet_day(fleet, predict_rates=flag("predict_rates", predict_rates), usd_per_gpu_hour=usd_per_gpu_hour))


@dataclass(frozen=True)
class PriceClaimResult(_Result):
    claim: Any
    """The simulator.analysis.price_claim.PriceClaim."""

    @property
    def within_price_ratio(self) -> bool:
        return self.to_dict()["within_price_ratio"]

    def to_dict(self) -> dict:
        return self.claim.to_dict()

    def rows(self) -> list[dict]:
        """One row: the whole claim flattened (nested fields as a.b; the assumptions as JSON text)."""
        return [flatten(self.to_dict())]


@_plain_numbers
def price_claim(a: str, b: str, ratio: float | str, *, mix: str | None = None, cache_hit_rate: float | None = None,
                gpu: str | None = None, a_model: str | None = None, b_model: str | None = None,
                usd_per_gpu_hour: float | None = None, workload: str | None = None) -> PriceClaimResult:  # fmt: skip
    """Check 'A is `ratio` times cheaper than B' between two price sheets (prices/*.yaml ids), as
    `costsim claim --cheaper A B --ratio N`: the list-price ratio B / A per token kind and for a token mix (`mix`
    'IN:OUT', `cache_hit_rate`; default DeepSeek's published day), and the modelled serving cost and margin of each
    side whose architecture is known (`a_model` / `b_model` state one in its place) on `gpu`. `ratio`: a number or
    a range such as '20-50'. `workload`: the request lengths both sides are costed at (a shipped workload or a
    workload YAML, as serve's); default: a shipped fleet's serve block, else serve's default lengths."""
    from simulator.analysis.price_claim import assess_price_claim

    return PriceClaimResult(assess_price_claim(a, b, ratio, mix=mix, cache_hit_rate=cache_hit_rate, gpu=gpu,
                                               a_model=a_model, b_model=b_model, usd_per_gpu_hour=usd_per_gpu_hour,
                                               workload=workload))  # fmt: skip


__all__ = [
    "ClaimResult",
    "CompareResult",
    "EstimateResult",
    "FleetResult",
    "PlanResult",
    "PriceClaimResult",
    "SearchResult",
    "ServeResult",
    "ValidationResult",
    "claim",
    "compare",
    "cost_options",
    "estimate",
    "fleet",
    "plan",
    "price_claim",
    "search",
    "serve",
    "validate",
]
