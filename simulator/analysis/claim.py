"""Check a published or rumoured training claim ("model X took H GPU-hours for T tokens on GPU Y").

From the claim alone: tokens/s per GPU, model TFLOP/s per GPU under three FLOP conventions (6ND;
6ND plus causal attention, costsim's model FLOPs; hardware FLOPs with the recomputation of the layout
costsim picks) and MFU against the dense BF16 and FP8 peaks, and the wall-clock days on the stated
GPU count. Against evidence: where the claim's MFU sits among the published runs of
`costsim validate public`, and the claim against costsim's two GPU-hour numbers: the achievable run (best layout
on the software stack) and the expected run (the layout practitioners use, realized as published whole runs were).

Verdict (thresholds from the validation data, never from the claim):
  implausible  the claim needs more FLOP/s than the GPU's dense peak at its precision; or it is below the
               achievable run by more than the step model's largest error on the published step-level figures
               AND needs a higher MFU than every published run reached
  optimistic   below the achievable run by more than that error, within the MFU published runs reached
  frontier     between the achievable and the expected run: what a frontier-tuned stack and layout can do
  plausible    at or above the expected run (claims above it often cover more than the pre-training run)
MFU for these comparisons is against the dense peak of the claim's precision (FP8 peak for FP8 runs),
the same basis on which the published runs are ranked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simulator.analysis.public_runs import case_scenario, evaluate, reported_mfu, summary
from simulator.errors import CostsimError, InfeasibleError, InputError, LayoutError
from simulator.inputs.arguments import is_whole
from simulator.inputs.assumptions import DEFAULT, Assumptions
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import DEFAULT_SEQ_LEN, check_training_precision, make_job
from simulator.inputs.published import PublishedRun, public_cases
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.model.flops import flop_utilization, parameter_counts
from simulator.model.layer_work import token_flops
from simulator.run.basis_notes import MEMORY_MISS
from simulator.run.estimate import Estimate, as_if_it_fitted, estimate_scenario
from simulator.run.scenario import Scenario
from simulator.units import GIGA, GPU_HOURS_RANGE, MAX_GPUS, SECONDS_PER_DAY, SECONDS_PER_HOUR, TERA

HEADLINE_CONVENTION = "6nd_causal_attention"


@dataclass(frozen=True)
class ConventionRates:
    """Implied FLOP rate per GPU under one FLOP-counting convention."""

    name: str
    description: str
    flops_per_token: float
    flop_per_s_per_gpu: float
    mfu_bf16: float
    mfu_fp8: float | None

    def to_dict(self) -> dict:
        return {
            "description": self.description,
            "flops_per_token": self.flops_per_token,
            "tflops_per_gpu": self.flop_per_s_per_gpu / TERA,
            "mfu_bf16": self.mfu_bf16,
            "mfu_fp8": self.mfu_fp8,
        }


SEARCHED_BASIS = "the best layout"
PUBLISHED_BASIS = "the published layout, unpublished fields searched"
PLAN_BASIS = "each stage's plan layout, unstated fields searched"
"""What a claim's achievable run holds of its layout (`achievable_basis`): the stack's best layout where costsim searched
it, the published run's where the claim is that run on its GPU, a plan's stages' where the claim covers a plan."""


@dataclass(frozen=True)
class Prediction:
    """costsim's two numbers for the claimed run (expected and achievable) and where the layout came from."""

    estimate: Estimate
    """The expected run: the layout practitioners use, realized."""
    layout_source: str
    achievable: Estimate | None = None
    """The achievable run: the best layout the stack offers, as modelled (the fields a published layout states held)."""
    achievable_basis: str = SEARCHED_BASIS
    """What the achievable run's layout is, in words: the best one, or the published run's with the rest searched."""

    @property
    def gpu_hours(self) -> float:
        return self.estimate.gpu_hours

    @property
    def achievable_gpu_hours(self) -> float:
        return (self.achievable or self.estimate).gpu_hours

    @property
    def num_gpus(self) -> int:
        return self.estimate.job.num_gpus

    def to_dict(self) -> dict:
        e = self.estimate
        return {
            "gpu_hours": e.gpu_hours,
            "expected_gpu_hours": e.gpu_hours,
            "achievable_gpu_hours": self.achievable_gpu_hours,
            "achievable_layout": (self.achievable or e).layout.to_dict(),
            "stack": e.stack,
            "ideal_gpu_hours": e.ideal_gpu_hours,
            "num_gpus": e.job.num_gpus,
            "seq_len": e.job.seq_len,
            "global_batch_tokens": e.job.global_batch_tokens,
            "layout": e.layout.to_dict(),
            "layout_source": self.layout_source,
            "achievable_basis": self.achievable_basis,
        }


@dataclass(frozen=True)
class ClaimResult:
    model: str
    gpu: str
    gpu_hours: float
    tokens: float
    num_gpus: int | None
    precision: str
    precision_source: str
    implied_tokens_per_s_per_gpu: float
    conventions: dict[str, ConventionRates]
    mfu_at_precision: float
    implied_wall_clock_s: float | None
    percentile: float
    n_published: int
    best_published_id: str
    best_published_mfu: float
    prediction: Prediction | None
    validation_max_abs_error: float
    verdict: str
    reason: str
    plan: str | None = None
    """With `costsim claim --plan`: the plan the claim is checked against (all its stages, or `stages`)."""
    stages: tuple[str, ...] | None = None
    claimed_usd: float | None = None
    """With --usd: the dollar claim; gpu_hours is then claimed_usd / usd_per_gpu_hour."""
    usd_per_gpu_hour: float | None = None
    price_source: str | None = None
    gpu_hours_source: str = "--gpu-hours"

    @property
    def headline(self) -> ConventionRates:
        return self.conventions[HEADLINE_CONVENTION]

    @property
    def ratio_to_prediction(self) -> float | None:
        """Claimed / predicted GPU-hours."""
        return self.gpu_hours / self.prediction.gpu_hours if self.prediction else None

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "gpu": self.gpu,
            "claimed_gpu_hours": self.gpu_hours,
            "tokens": self.tokens,
            "num_gpus": self.num_gpus,
            "precision": self.precision,
            "precision_source": self.precision_source,
            "implied_tokens_per_s_per_gpu": self.implied_tokens_per_s_per_gpu,
            "implied_tflops_per_gpu": self.headline.flop_per_s_per_gpu / TERA,
            "flops_convention": HEADLINE_CONVENTION,
            "mfu_bf16": self.headline.mfu_bf16,
            "mfu_fp8": self.headline.mfu_fp8,
            "mfu_at_claimed_precision": self.mfu_at_precision,
            "flops_conventions": {k: v.to_dict() for k, v in self.conventions.items()},
            "implied_days": None if self.implied_wall_clock_s is None else self.implied_wall_clock_s / SECONDS_PER_DAY,
            "percentile": self.percentile,
            "percentile_basis": f"MFU at the run's own precision peak among {self.n_published} published runs "
            "(costsim validate public)",
            "best_published": {"id": self.best_published_id, "mfu": self.best_published_mfu},
            "predicted_gpu_hours": self.prediction.gpu_hours if self.prediction else None,
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "ratio_claim_to_prediction": self.ratio_to_prediction,
            "validation_max_abs_error": self.validation_max_abs_error,
            "verdict": self.verdict,
            "reason": self.reason,
            "plan": self.plan,
            "stages": list(self.stages) if self.stages else None,
            "scope": (
                f"plan {self.plan}: " + ("all stages" if self.stages is None else ", ".join(self.stages))
                if self.plan
                else "one run (pre-training)"
            ),
            "claimed_usd": self.claimed_usd,
            "usd_per_gpu_hour": self.usd_per_gpu_hour,
            "price_source": self.price_source,
            "gpu_hours_source": self.gpu_hours_source,
        }


def with_dollars(
    result: ClaimResult, claimed_usd: float | None, usd_per_gpu_hour: float, price_source: str, hours_from_usd: bool
):
    """The result with its price: a dollar claim's GPU-hours were claimed_usd / usd_per_gpu_hour (stated)."""
    source = (
        f"--usd {claimed_usd:,.0f} / {usd_per_gpu_hour:.2f} USD per GPU-hour ({price_source})"
        if hours_from_usd
        else "--gpu-hours"
    )
    return replace(
        result, claimed_usd=claimed_usd, usd_per_gpu_hour=usd_per_gpu_hour, price_source=price_source, gpu_hours_source=source
    )


PRICE_AGREEMENT = 0.01
"""How far a stated price may differ from --usd / --gpu-hours when all three are given (rounding in a quote)."""


def claim_price(
    gpu_hours: float | None, usd: float | None, usd_per_gpu_hour: float | None, price_source: str | None, stated: bool
) -> tuple[float | None, str | None]:
    """The price a claim is read at. Given both GPU-hours and dollars, the claim itself sets it (usd / gpu_hours); a
    price the user also stated (`stated`) must agree with that within PRICE_AGREEMENT, and a quoted default gives way.
    Otherwise the price as chosen (the user's, the plan's quote or the GPU profile's)."""
    if gpu_hours is None or usd is None:
        return usd_per_gpu_hour, price_source
    if not usd > 0:
        raise InputError(f"--usd {usd:g} must be positive")
    implied = usd / gpu_hours
    if stated and usd_per_gpu_hour is not None and abs(usd_per_gpu_hour / implied - 1) > PRICE_AGREEMENT:
        raise InputError(
            f"--usd {usd:,.0f} / --gpu-hours {gpu_hours:,.0f} is ${implied:.2f} per GPU-hour, but --usd-per-gpu-hour is "
            f"${usd_per_gpu_hour:g}; give two of the three, or numbers that agree"
        )
    return implied, f"implied by the claim: --usd {usd:,.0f} / --gpu-hours {gpu_hours:,.0f}"


def claimed_gpu_hours(gpu_hours: float | None, usd: float | None, usd_per_gpu_hour: float) -> float:
    """The claim in GPU-hours: --gpu-hours as given, else --usd / the price. One of the two is needed."""
    if gpu_hours is not None:
        return gpu_hours
    if usd is None:
        raise InputError("give the claim as --gpu-hours (e.g. 2.788M) or as --usd (e.g. 5.576M)")
    if not usd > 0:
        raise InputError(f"--usd {usd:g} must be positive")
    if not usd_per_gpu_hour > 0:
        raise InputError(
            f"--usd {usd:,.0f} needs a price above $0 per GPU-hour to become GPU-hours, got ${usd_per_gpu_hour:g}; give "
            "--usd-per-gpu-hour above 0 (e.g. 2), or the claim as --gpu-hours"
        )
    gpu_hours = usd / usd_per_gpu_hour
    low, high = GPU_HOURS_RANGE
    if not low <= gpu_hours <= high:
        raise InputError(
            f"--usd {usd:,.0f} at ${usd_per_gpu_hour:g} per GPU-hour is {gpu_hours:.3g} GPU-hours, outside "
            f"{low:g}-{high:.0e}; check --usd and --usd-per-gpu-hour (a GPU-hour rents for about $1-10)"
        )
    return gpu_hours


# ------------------------------------------------------------------ arithmetic from the claim alone


def implied_tokens_per_s_per_gpu(tokens: float, gpu_hours: float) -> float:
    return tokens / (gpu_hours * SECONDS_PER_HOUR)


def implied_wall_clock_s(gpu_hours: float, num_gpus: int) -> float:
    return gpu_hours * SECONDS_PER_HOUR / num_gpus


def convention_rates(
    model: ModelSpec, hw: HardwareProfile, seq_len: int, tokens_per_s_per_gpu: float, recompute: str | None
) -> dict[str, ConventionRates]:
    """The three conventions; `recompute` is the predicted layout's mode (None: no layout, full recompute as the bound)."""
    counts = parameter_counts(model)
    tf = token_flops(model, seq_len)
    per_token = {
        "6nd": (6.0 * counts.activated, f"6 x activated parameters ({counts.activated / GIGA:.1f}B), no attention"),
        "6nd_causal_attention": (
            tf.training_flops,
            "costsim model FLOPs: every GEMM x 3 (6ND) plus causal attention (s/2 keys per query), LM head, router, MTP",
        ),
        "hardware": (
            tf.hardware_flops(recompute or "full"),
            f"model FLOPs plus the forward recomputed under '{recompute}' recomputation (costsim's layout)"
            if recompute
            else "model FLOPs plus full recomputation (upper bound: no layout without --num-gpus)",
        ),
    }
    bf16 = hw.peak_flop_per_s("bf16")
    fp8 = hw.peak_flop_per_s("fp8") if hw.has_dtype("fp8") else None
    out = {}
    for name, (flops, description) in per_token.items():
        rate = flops * tokens_per_s_per_gpu
        mfu_bf16 = flop_utilization(flops, tokens_per_s_per_gpu, bf16)
        mfu_fp8 = flop_utilization(flops, tokens_per_s_per_gpu, fp8) if fp8 else None
        out[name] = ConventionRates(name, description, flops, rate, mfu_bf16, mfu_fp8)
    return out


def percentile(value: float, population: list[float]) -> float:
    """Share of the population below `value` (ties count half), in percent."""
    below = sum(p < value for p in population)
    ties = sum(p == value for p in population)
    return 100.0 * (below + 0.5 * ties) / len(population)


FAR_ABOVE_EXPECTED = 10.0
"""A claim this many times the expected run is not one run's cost: a reporting boundary (an order of magnitude), not a
fitted figure; the realization of published whole runs (docs/model.md §12.2) lies far inside it."""


def verdict(
    mfu_at_precision: float,
    precision: str,
    best_id: str,
    best_mfu: float,
    claimed_gpu_hours: float,
    achievable_gpu_hours: float | None,
    expected_gpu_hours: float | None,
    max_abs_error: float,
    achievable_basis: str = SEARCHED_BASIS,
) -> tuple[str, str]:
    """(implausible | optimistic | frontier | plausible, reason): where the claim sits against costsim's two numbers.

    Below the achievable run by more than the step model's largest error on published throughput on the claim's GPU
    vendor (`max_abs_error`):
    optimistic, or implausible when it also needs more MFU than any published run. Below the achievable run by less
    than that error, or between the achievable and the expected run: frontier (a frontier-tuned stack can do it; runs
    like it usually cost more); the reason says which. At or above the
    expected run: plausible; beyond it by more than the whole runs' spread suggests a figure that covers more than
    one run."""
    need = f"needs {mfu_at_precision:.1%} MFU against the dense {precision.upper()} peak"
    best = f"best published run {best_id} at {best_mfu:.1%}"
    if mfu_at_precision > 1.0:
        return "implausible", f"{need}: more FLOP/s than the GPU has"
    if achievable_gpu_hours is None or expected_gpu_hours is None:
        if mfu_at_precision > best_mfu:
            return "implausible", f"{need}, above every published run ({best}); no costsim prediction (pass --num-gpus)"
        return "plausible", f"{need}, within published runs ({best}); no costsim prediction (pass --num-gpus)"
    a, e = achievable_gpu_hours, expected_gpu_hours
    place = (
        f"claimed {claimed_gpu_hours:,.0f} GPU-hours against costsim's achievable {a:,.0f} (on the stack at {achievable_basis}) "
        f"and expected {e:,.0f} (what runs like it realized)"
    )
    if claimed_gpu_hours < a * (1.0 - max_abs_error):
        margin = f"{1 - claimed_gpu_hours / a:.0%} below the achievable run, beyond the step model's {max_abs_error:.0%} error"
        if mfu_at_precision > best_mfu:
            return "implausible", f"{place}: {margin}, and it {need}, above every published run ({best})"
        return "optimistic", f"{place}: {margin}; it {need}, within published runs ({best})"
    if claimed_gpu_hours < a:
        return "frontier", (
            f"{place}: {1 - claimed_gpu_hours / a:.0%} below the achievable run, within the step model's "
            f"{max_abs_error:.0%} error on published throughput: reachable only by a stack faster than costsim's "
            f"achievable run; it {need}"
        )
    if claimed_gpu_hours < e:
        return "frontier", f"{place}: between the two, reachable with a frontier-tuned stack and layout; it {need}"
    if claimed_gpu_hours > FAR_ABOVE_EXPECTED * e:
        return "plausible", (
            f"{place}: {claimed_gpu_hours / e:,.0f}x what runs like it realized, an order of magnitude beyond any "
            f"realization: the figure likely covers more than this run (ablations, failed runs, other work) or more "
            f"tokens than stated; it {need}"
        )
    return "plausible", f"{place}: at or above what runs like it realized; it {need}"


# ------------------------------------------------------------------ evidence: published runs and costsim's prediction


def _matching_cases(cases: list[PublishedRun], model: ModelSpec, hw: HardwareProfile) -> list[PublishedRun]:
    """Published cases of the same model, those on the same GPU first, whole-run GPU-hour cases before others."""
    same_model = [c for c in cases if c.model == model.name]
    return sorted(same_model, key=lambda c: (load_hardware(c.gpu).name != hw.name, c.metric != "gpu_hours"))


def _prediction(
    spec: ModelSpec,
    hw: HardwareProfile,
    tokens: float,
    num_gpus: int | None,
    precision: str,
    match: PublishedRun | None,
    assumptions: Assumptions,
) -> Prediction | None:
    """costsim's estimate with the published layout of a matching case where there is one, else a searched layout."""
    if match is not None and tokens < match.job.global_batch_tokens:
        # Fewer tokens than one step of the published run: its layout and batch do not describe this run; with a
        # GPU count, search at the model's own defaults (make_job refuses tokens below one of its steps), else none.
        if num_gpus is None:
            return None
        runs = _searched(spec, hw, num_gpus, tokens, None, None, precision, assumptions)
        return Prediction(runs.expected, f"searched by costsim (fewer tokens than one step of {match.id})", runs.achievable)
    if match is not None and load_hardware(match.gpu).name == hw.name:
        n = num_gpus or match.job.num_gpus
        job = replace(match.job, num_gpus=n, tokens=tokens, precision=precision)
        layout = {k: v for k, v in match.layout.items() if k != "dp" or n == match.job.num_gpus}
        case = replace(match, job=job, layout=layout)
        scenario = case_scenario(case, assumptions, spec, hw)  # the claim's own spec and profile
        # The published run trained at its layout on its GPUs: where costsim's memory model refuses that layout, it is
        # costed as if it fitted, as validate public and a plan stage that ran at its layout cost it (a user's spec or
        # another GPU count is not that run, and is searched below).
        ran = n == match.job.num_gpus and precision == match.job.precision and spec == load_model(match.model)
        try:
            runs = as_if_it_fitted(estimate_scenario, scenario) if ran else estimate_scenario(scenario)
            source = f"published layout of {match.id} ({match.source}); unpublished fields searched"
            if any(note.startswith(MEMORY_MISS) for note in runs.expected.notes):
                source += "; the run trained at it, which costsim's memory model refuses: costed as if it fitted"
            return Prediction(runs.expected, source, runs.achievable, PUBLISHED_BASIS)
        except CostsimError:
            if num_gpus is None:  # a user's spec under a published name may not take that layout: no prediction
                return None
            # The published layout does not divide or fit this GPU count: search all of it below.
    if num_gpus is None:
        return None
    if match is not None:  # the published run's sequence and batch on the claim's GPUs
        try:
            runs = _searched(spec, hw, num_gpus, tokens, match.job.seq_len, match.job.global_batch_tokens, precision,
                             assumptions)  # fmt: skip
            return Prediction(runs.expected, f"searched by costsim (sequence and batch of {match.id})", runs.achievable)
        except (LayoutError, InfeasibleError):
            pass  # they do not divide or fit these GPUs: the model's defaults below
    try:
        runs = _searched(spec, hw, num_gpus, tokens, None, None, precision, assumptions)
    except (LayoutError, InfeasibleError) as e:
        raise type(e)(_no_layout_text(spec, hw, num_gpus, match, e)) from None
    how = f" (the model's default sequence and batch: {match.id}'s do not fit)" if match else ""
    return Prediction(runs.expected, "searched by costsim" + how, runs.achievable)


def _searched(spec, hw, num_gpus, tokens, seq_len, batch, precision, assumptions):
    """Both runs of the claim's job on `num_gpus`, every layout field searched (seq_len, batch None: the defaults)."""
    job = make_job(spec, num_gpus, tokens, seq_len, batch, precision)
    return estimate_scenario(Scenario.of(spec, hw, job, None, assumptions=assumptions))


def _no_layout_text(spec: ModelSpec, hw: HardwareProfile, num_gpus: int, match: PublishedRun | None, e) -> str:
    """Why a claim has no prediction on its GPU count, in claim's own terms (it has no layout or batch options)."""
    tried = ""
    if match is not None:
        j = match.job
        tried = (f"at {match.id}'s batch ({j.global_batch_tokens / j.seq_len:,.0f} sequences of {j.seq_len:,} tokens) "
                 "and ")  # fmt: skip
    memory = isinstance(e, InfeasibleError)
    why = e.finding if memory else "the batch does not divide over them"
    fix = "more GPUs in --num-gpus" if memory else "a --num-gpus that divides the batch"
    hint = f", such as the {match.job.num_gpus:,} the run used" if match is not None and match.job.num_gpus != num_gpus else ""
    return (
        f"costsim finds no layout of {spec.name} on {num_gpus:,} x {hw.name} {tried}at costsim's default batch: {why}; "
        f"give claim {fix}{hint}, or leave --num-gpus out for the implied rates alone"
    )


_EVIDENCE: dict[int, tuple[dict[str, float], str, dict[str, float]]] = {}


def _evidence(assumptions: Assumptions, vendors: set[str]) -> tuple[dict[str, float], str, float]:
    """MFU of every published run, the best one, and the step model's largest error on the steady-state runs on GPUs
    of the claim's vendors (computed once per assumptions object: the published runs do not change within a process).

    Per vendor because one vendor's stack says little about another's: a single AMD MI250X row 84% off (Poro 34B,
    docs/model.md §14) would otherwise widen every NVIDIA claim's 'optimistic' cut-off from 34% to 84%. A vendor
    without steady-state rows takes the largest error over all of them."""
    key = id(assumptions)
    if key not in _EVIDENCE or assumptions is not DEFAULT:
        cases = public_cases()
        published = {c.id: reported_mfu(c) for c in cases}
        best_id = max(published, key=published.__getitem__)
        steady = [c for c in cases if c.track == "steady_state"]
        worst: dict[str, float] = {"*": summary(results := evaluate(steady, assumptions))["max_abs_error"]}
        for r in results:
            vendor = load_hardware(r.case.gpu).vendor
            worst[vendor] = max(worst.get(vendor, 0.0), abs(r.error))
        _EVIDENCE[key] = (published, best_id, worst)
    published, best_id, worst = _EVIDENCE[key]
    return published, best_id, max(worst.get(v, worst["*"]) for v in vendors)


def _ranking(mfu: float, published: dict[str, float], best_id: str) -> dict:
    """Where a claim's MFU ranks among the published runs (ClaimResult fields)."""
    return {
        "percentile": percentile(mfu, list(published.values())),
        "n_published": len(published),
        "best_published_id": best_id,
        "best_published_mfu": published[best_id],
    }


def assess_claim(
    model: str,
    gpu: str,
    gpu_hours: float,
    tokens: float,
    num_gpus: int | None = None,
    precision: str | None = None,
    assumptions: Assumptions = DEFAULT,
) -> ClaimResult:
    if not gpu_hours > 0:
        raise InputError(f"--gpu-hours {gpu_hours:g} must be positive")
    if not tokens > 0:
        raise InputError(f"--tokens {tokens:g} must be positive")
    if num_gpus is not None and not is_whole(num_gpus):
        raise InputError(f"--num-gpus {num_gpus!r} must be a whole number of GPUs, e.g. 2048")
    if num_gpus is not None and not 1 <= num_gpus <= MAX_GPUS:
        raise InputError(f"--num-gpus {num_gpus} is out of range [1, {MAX_GPUS:,}]; give the GPU count the claim ran on")
    spec, hw = load_model(model), load_hardware(gpu)
    cases = public_cases()
    matches = _matching_cases(cases, spec, hw)
    match = matches[0] if matches else None
    if precision is None:
        precision, precision_source = (
            (match.job.precision, f"published run {match.id}") if match else ("bf16", "default (no published run of this model)")
        )
    else:
        check_training_precision(precision)
        precision_source = "--precision"
    peak = hw.peak_flop_per_s(precision)  # SpecError when the GPU lacks this precision

    prediction = _prediction(spec, hw, tokens, num_gpus, precision, match, assumptions)
    seq_len = (
        prediction.estimate.job.seq_len
        if prediction
        else (match.job.seq_len if match else spec.default_seq_len or DEFAULT_SEQ_LEN)
    )
    recompute = prediction.estimate.layout.recompute if prediction else None
    tps = implied_tokens_per_s_per_gpu(tokens, gpu_hours)
    conventions = convention_rates(spec, hw, seq_len, tps, recompute)
    mfu = flop_utilization(conventions[HEADLINE_CONVENTION].flops_per_token, tps, peak)

    published, best_id, max_abs_error = _evidence(assumptions, {hw.vendor})
    achievable = prediction.achievable_gpu_hours if prediction else None
    expected = prediction.gpu_hours if prediction else None
    basis = prediction.achievable_basis if prediction else SEARCHED_BASIS
    label, reason = verdict(mfu, precision, best_id, published[best_id], gpu_hours, achievable, expected, max_abs_error,
                            basis)  # fmt: skip
    return ClaimResult(
        model=spec.name,
        gpu=hw.name,
        gpu_hours=gpu_hours,
        tokens=tokens,
        num_gpus=num_gpus,
        precision=precision,
        precision_source=precision_source,
        implied_tokens_per_s_per_gpu=tps,
        conventions=conventions,
        mfu_at_precision=mfu,
        implied_wall_clock_s=implied_wall_clock_s(gpu_hours, num_gpus) if num_gpus else None,
        **_ranking(mfu, published, best_id),
        prediction=prediction,
        validation_max_abs_error=max_abs_error,
        verdict=label,
        reason=reason,
    )


# ------------------------------------------------------------------ a claim about a whole plan


@dataclass(frozen=True)
class PlanPrediction:
    """costsim's two numbers for the stages of a plan a claim covers (all stages unless named)."""

    result: object
    """simulator.analysis.plans.PlanResult."""
    stages: tuple[str, ...] | None

    def selected(self) -> list:
        """The StageResults the claim covers, in the plan's order."""
        names = set(self.stages or [s.stage.name for s in self.result.stages])
        return [s for s in self.result.stages if s.stage.name in names]

    @property
    def gpu_hours(self) -> float:
        return sum(s.estimate.gpu_hours for s in self.selected())

    @property
    def achievable_gpu_hours(self) -> float:
        return sum((s.achievable or s.estimate).gpu_hours for s in self.selected())

    @property
    def num_gpus(self) -> int:
        return max(s.estimate.job.num_gpus for s in self.selected())

    achievable_basis = PLAN_BASIS
    """Each stage's achievable run holds the layout its plan states (Prediction.achievable_basis)."""

    @property
    def estimate(self):
        """The largest selected stage's expected run (its layout and sequence stand for the plan where one is needed)."""
        return max(self.selected(), key=lambda s: s.estimate.gpu_hours).estimate

    def to_dict(self) -> dict:
        sel = self.selected()
        e = self.estimate
        return {
            "gpu_hours": self.gpu_hours,
            "expected_gpu_hours": self.gpu_hours,
            "achievable_gpu_hours": self.achievable_gpu_hours,
            "achievable_layout": next(s.achievable or s.estimate for s in sel if s.estimate is e).layout.to_dict(),
            "stack": e.stack,
            "ideal_gpu_hours": sum(s.estimate.ideal_gpu_hours for s in sel),
            "num_gpus": self.num_gpus,
            "seq_len": e.job.seq_len,
            "global_batch_tokens": e.job.global_batch_tokens,
            "layout": e.layout.to_dict(),
            "layout_source": f"plan {self.result.plan.name}: each stage's layout ({self.result.plan.source})"
            + "".join(
                f"; stage {s.stage.name} trained at its layout, which costsim's memory model refuses: costed as if it fitted"
                for s in sel
                if any(n.startswith(MEMORY_MISS) for n in s.estimate.notes)
            ),  # fmt: skip
            "achievable_basis": self.achievable_basis,
            "stages": [
                {
                    "name": s.stage.name,
                    "expected_gpu_hours": s.estimate.gpu_hours,
                    "achievable_gpu_hours": (s.achievable or s.estimate).gpu_hours,
                }
                for s in sel
            ],
        }


def assess_plan_claim(
    result, gpu_hours: float, stages: list[str] | None = None, assumptions: Assumptions = DEFAULT
) -> ClaimResult:
    """A claim about a whole plan (simulator.analysis.plans.PlanResult), or about the named stages of it: the claim's
    implied rates over those stages' tokens (FLOPs per token weighted by each stage's tokens, peaks by each stage's
    ideal GPU-hours) and the verdict against the sum of their achievable and expected runs."""
    if not gpu_hours > 0:
        raise InputError(f"--gpu-hours {gpu_hours:g} must be positive")
    result.require_training_only("claim --plan")
    known = [s.stage.name for s in result.stages]
    unknown = [str(n) for n in stages or [] if n not in known]
    if unknown:
        raise InputError(f"plan {result.plan.name} has no stage {', '.join(unknown)}; its stages are {', '.join(known)}")
    from simulator.inputs.plan_file import model_ref

    prediction = PlanPrediction(result, tuple(stages) if stages else None)
    sel = prediction.selected()
    spec = load_model(model_ref(result.plan, result.path))
    tokens = sum(s.estimate.job.tokens for s in sel)
    tps = implied_tokens_per_s_per_gpu(tokens, gpu_hours)
    per_stage = [convention_rates(spec, s.hw, s.estimate.job.seq_len, tps, s.estimate.layout.recompute) for s in sel]
    ideal = [s.estimate.ideal_gpu_hours for s in sel]

    def peak(dtype: str | None) -> float | None:
        if dtype is not None and not all(s.hw.has_dtype(dtype) for s in sel):
            return None
        peaks = [s.hw.peak_flop_per_s(dtype or s.stage.precision) for s in sel]
        return sum(p * w for p, w in zip(peaks, ideal, strict=True)) / sum(ideal)

    bf16, fp8, own = peak("bf16"), peak("fp8"), peak(None)
    conventions = {}
    modes = list(dict.fromkeys(s.estimate.layout.recompute for s in sel))
    for name in per_stage[0]:
        flops = sum(c[name].flops_per_token * s.estimate.job.tokens for c, s in zip(per_stage, sel, strict=True)) / tokens
        rate = flops * tps
        first = per_stage[0][name].description
        if name == "hardware" and len(modes) > 1:  # the stages recompute differently: name each mode, not the first's
            first = f"model FLOPs plus the forward recomputed under each stage's recomputation ({', '.join(modes)})"
        description = f"{first}; averaged over the stages' tokens"
        conventions[name] = ConventionRates(name, description, flops, rate, rate / bf16, rate / fp8 if fp8 else None)
    mfu = conventions[HEADLINE_CONVENTION].flop_per_s_per_gpu / own
    precisions = list(dict.fromkeys(s.stage.precision for s in sel))
    published, best_id, max_abs_error = _evidence(assumptions, {s.hw.vendor for s in sel})
    label, reason = verdict(
        mfu, "+".join(precisions), best_id, published[best_id], gpu_hours,
        prediction.achievable_gpu_hours, prediction.gpu_hours, max_abs_error, prediction.achievable_basis,
    )  # fmt: skip
    gpus = {s.estimate.job.num_gpus for s in sel}
    share = gpu_hours / prediction.gpu_hours
    wall = sum(s.estimate.gpu_hours * share * SECONDS_PER_HOUR / s.estimate.job.num_gpus for s in sel)
    return ClaimResult(
        model=spec.name,
        gpu=result.plan.gpu,
        gpu_hours=gpu_hours,
        tokens=tokens,
        num_gpus=gpus.pop() if len(gpus) == 1 else None,
        precision="+".join(precisions),
        precision_source=f"plan {result.plan.name}",
        implied_tokens_per_s_per_gpu=tps,
        conventions=conventions,
        mfu_at_precision=mfu,
        implied_wall_clock_s=wall,
        **_ranking(mfu, published, best_id),
        prediction=prediction,
        validation_max_abs_error=max_abs_error,
        verdict=label,
        reason=reason,
        plan=result.plan.name,
        stages=tuple(stages) if stages else None,
    )
