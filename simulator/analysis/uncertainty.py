"""Uncertainty bands: P10/P50/P90 of GPU-hours, wall-clock days and dollars, and a tornado of inputs.

Every uncertain input has a documented distribution with its source or the reason for it
(`default_inputs`). The full step model is scalar (a few ms to tens of ms per fixed-layout
evaluation), so 10,000 joint draws go through a surrogate built from real model evaluations:

1. evaluate the model at the nominal point, and one input at a time at seven or eight values of that
   input (its lowest and highest drawn value, its P10, P30, P50, P70, P90 and nominal value) with the
   others nominal. The P10 and P90 evaluations are the tornado chart.
2. per input and output, log(output / nominal output) is interpolated piecewise-linearly in the
   input's value (in log(value) for lognormal inputs);
3. a joint draw's log output is the nominal one plus the sum of the per-input responses (the inputs
   combine multiplicatively), plus pairwise interaction terms of the four inputs that move the run
   most (exact at their P10/P90 corners), vectorized over all draws with numpy;
4. failure rate, restart and checkpoint time go through the goodput model exactly, draw by draw
   (they interact strongly at large scale);
5. the surrogate is checked against the full model at a few joint draws; its error is reported.

The parallel layout stays fixed at the estimate's layout during the draws: the band describes
the run as planned, not a layout re-chosen for each draw.

`propagate` works on any `evaluate(assumptions, rates, usd_per_gpu_hour, tokens) -> (gpu_hours,
wall_clock_days, cost_usd)` callable, so plans and claims can reuse it; `band_for_estimate` wires it
to one estimate.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from simulator.errors import InputError
from simulator.inputs.arguments import is_number, is_whole
from simulator.inputs.assumptions import Assumptions, fitted_document
from simulator.inputs.job import tensor_scaled_fp8
from simulator.inputs.specs import ASSUMPTION, HardwareProfile, ModelSpec
from simulator.model.efficiency import DeviceRates
from simulator.units import DEFAULT_DRAWS, KILO, SECONDS_PER_DAY, format_count

OUTPUTS = ("gpu_hours", "wall_clock_days", "cost_usd")
MIN_DRAWS = 100  # fewer draws cannot place a P10 and a P90 with any precision
MAX_DRAWS = 1_000_000
DEFAULT_CHECKS = 20
MAX_CHECKS = 1000
"""Joint draws evaluated with the full model to measure the surrogate's error."""
TAIL_Q = 0.001  # lognormal draws are clipped to their 0.1% and 99.9% quantiles, where the surrogate was evaluated
Z_P90 = statistics.NormalDist().inv_cdf(0.9)

Evaluate = Callable[[Assumptions, DeviceRates, float, float], Sequence[float]]
"""evaluate(assumptions, rates, usd_per_gpu_hour, tokens) -> (gpu_hours, wall_clock_days, cost_usd)."""


# --------------------------------------------------------------------------- distributions


@dataclass(frozen=True)
class Triangular:
    """Triangular on [low, high] with its mode at the nominal value: bounded inputs with a best guess."""

    low: float
    mode: float
    high: float

    def quantile(self, q: float) -> float:
        lo, c, hi = self.low, self.mode, self.high
        if hi <= lo:
            return c
        split = (c - lo) / (hi - lo)
        if q <= split:
            return lo + math.sqrt(q * (hi - lo) * (c - lo))
        return hi - math.sqrt((1 - q) * (hi - lo) * (hi - c))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.high <= self.low:
            return np.full(n, self.mode)
        return rng.triangular(self.low, self.mode, self.high, n)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    def describe(self) -> str:
        if self.high <= self.low:
            return f"fixed at {_g(self.mode)}"
        return f"triangular, min {_g(self.low)}, mode {_g(self.mode)}, max {_g(self.high)}"


@dataclass(frozen=True)
class LogNormal:
    """log(x) normal around log(median): positive inputs known to within a factor."""

    median: float
    sigma: float
    """Standard deviation of log(x); P90 / P50 = exp(1.2816 sigma)."""

    def quantile(self, q: float) -> float:
        if self.sigma <= 0:
            return self.median
        return self.median * math.exp(self.sigma * statistics.NormalDist().inv_cdf(q))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        z_max = statistics.NormalDist().inv_cdf(1 - TAIL_Q)
        return self.median * np.exp(self.sigma * np.clip(rng.standard_normal(n), -z_max, z_max))

    @property
    def bounds(self) -> tuple[float, float]:
        return self.quantile(TAIL_Q), self.quantile(1 - TAIL_Q)

    def describe(self) -> str:
        if self.sigma <= 0:
            return f"fixed at {_g(self.median)}"
        return f"lognormal, median {_g(self.median)}, P10 {_g(self.quantile(0.1))}, P90 {_g(self.quantile(0.9))}"


Distribution = Triangular | LogNormal


def _g(x: float) -> str:
    return format_count(x) if abs(x) >= KILO else f"{x:.3g}"


def times_over(median: float, factor: float) -> LogNormal:
    """Lognormal whose P10 and P90 are median / factor and median x factor."""
    return LogNormal(median, math.log(factor) / Z_P90)


def around(nominal: float, low_factor: float, high_factor: float, cap: float = math.inf) -> Triangular:
    """Triangular from nominal x low_factor to min(nominal x high_factor, cap), mode at the nominal."""
    return Triangular(nominal * low_factor, nominal, max(nominal, min(nominal * high_factor, cap)))


@dataclass(frozen=True)
class UncertainInput:
    name: str
    """Key: an Assumptions field, or attention_efficiency, hbm_efficiency, network_efficiency, usd_per_gpu_hour, tokens."""
    label: str
    unit: str
    nominal: float
    """The value the estimate used."""
    dist: Distribution
    source: str
    """Why this distribution: the data it comes from, or that it is an assumption."""

    @property
    def degenerate(self) -> bool:
        low, high = self.dist.bounds
        return high <= low

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "unit": self.unit,
            "nominal": self.nominal,
            "distribution": self.dist.describe(),
            "p10": self.dist.quantile(0.1),
            "p90": self.dist.quantile(0.9),
            "source": self.source,
        }


# --------------------------------------------------------------------------- the documented inputs

MEASURED_SPREAD = (0.9, 1.1)
"""Hardware efficiency terms measured by a microbenchmark: x0.9 to x1.1. Assumption: covers run-to-run and
shape-mix spread of microbenchmarks and the gap between a benchmark and the same kernel inside training."""
ASSUMED_SPREAD = (0.7, 1.3)
"""Hardware efficiency terms that are assumptions in the profile: x0.7 to x1.3. Assumption; for attention on
H100 this spans FlashAttention-2 (~0.35 of BF16 peak) to FlashAttention-3 training (~0.65; FA3 forward 0.6-0.75)."""


def gemm_sustain_sigma(path: Path | None = None) -> tuple[float, str]:
    """RMS of the leave-one-out log errors of the gemm_sustain fit, and where it comes from. `path`: a fitted constants
    file (default: the shipped one), read by the one checked reader (assumptions.fitted_document): a bad file is its
    SpecError, never an assumed spread."""
    fitted = fitted_document(path)
    sigma = fitted.gemm_sustain_sigma
    return sigma, (
        f"lognormal around the fitted value; sigma = RMS of the {len(fitted.cases)} leave-one-out log errors of "
        f"`costsim fit` ({sigma:.1%}, simulator/data/fitted_constants.yaml): how far the fitted rate misses a run it did not see"
    )


def _fit_sigma(key: str, path: Path | None) -> tuple[float, int]:
    """(sigma, runs it rests on) of the fit record `key` of the checked fitted constants file (fitted_document)."""
    record = fitted_document(path).record(key)
    return record.sigma, record.constrained_by


def realization_sigma(path: Path | None = None) -> tuple[float, str]:
    """The realization fit's sigma (RMS of its leave-one-out log errors) and where it comes from."""
    sigma, n = _fit_sigma("realization_fit", path)
    return sigma, (
        f"lognormal around the fitted value; sigma = RMS of the {n} leave-one-out log errors of the whole runs `costsim fit` "
        f"fitted it to ({sigma:.1%}, simulator/data/fitted_constants.yaml): how far runs like this one scatter around it"
    )


def host_time_sigma(path: Path | None = None, key: str = "expert_launch_fit") -> tuple[float, str]:
    """A host-time fit's sigma (jackknife standard error of its log; `key`: expert_launch_fit, expert_quantize_fit or
    step_host_fit) and where it comes from."""
    sigma, n = _fit_sigma(key, path)
    return sigma, (
        f"lognormal around the fitted value; sigma = jackknife standard error of its log from the {n} leave-one-out "
        f"refits of `costsim fit` ({sigma:.1%}, simulator/data/fitted_constants.yaml; docs/model.md §7.8-7.9)"
    )


HOST_TIME_INPUTS = (
    ("expert_launch_host_s", "expert_launch_fit", "host time per expert GEMM launch"),
    ("expert_quantize_host_s", "expert_quantize_fit", "per-expert FP8 quantize time"),
    ("step_host_s", "step_host_fit", "host time per optimizer step"),
)
"""The fitted host times a run's rates can charge: (DeviceRates field, its fit in fitted_constants.yaml, what)."""


def _host_time_inputs(rates: DeviceRates, current_scaled: bool) -> list[UncertainInput]:
    """The fitted host times, drawn where the run's stack charges them: the expert launch where it launches experts one
    by one, the quantization too where the run is in FP8 with the tensor recipe (`current_scaled`) and the stack scales
    it by the current amax, the per-step host time where the stack has one."""
    out = []
    for name, key, what in HOST_TIME_INPUTS:
        value = getattr(rates, name) if name != "expert_quantize_host_s" or current_scaled else 0.0
        if value > 0:
            sigma, source = host_time_sigma(key=key)
            out.append(UncertainInput(name, what, "s", value, LogNormal(value, sigma), source))
    return out


def _hardware_term(nominal: float, measured: bool, cap: float, what: str) -> tuple[Distribution, str]:
    low, high = MEASURED_SPREAD if measured else ASSUMED_SPREAD
    kind = "measured" if measured else "an assumption in the hardware profile"
    return around(nominal, low, high, cap), f"{what} is {kind}: x{low}-x{high} around it, capped at {cap:.3g}"


def default_inputs(
    hw: HardwareProfile,
    assumptions: Assumptions,
    rates: DeviceRates,
    usd_per_gpu_hour: float,
    tokens: float,
    price_fixed: bool | str = False,
    tokens_spread: float = 0.0,
    expected: bool = False,
    expert_launch: bool = False,
    current_scaled: bool = False,
) -> list[UncertainInput]:
    """The uncertain inputs of one run with their distributions and sources. Nominal = what the estimate used.

    `price_fixed`: True (the user gave the price) or a sentence saying why the price is held fixed. `expected`: the
    run is an expected one, so the realization of whole runs (the spread of what runs like it realized) is drawn too.
    `expert_launch`: draw the fitted host times where the rates charge them (a single run's band; a plan's stages scale
    other GPUs' rates by factors, which do not carry them): per expert GEMM launch, per optimizer step, and with
    `current_scaled` (the run is in FP8 with the tensor recipe) the per-expert quantization time too.
    """
    a = assumptions
    sigma, sigma_source = gemm_sustain_sigma()
    calibrated = not rates.source.startswith("defaults")
    eff = hw.efficiency
    attention = rates.attention_flop_per_s / hw.peak_flop_per_s("bf16")
    hbm = rates.hbm_bytes_per_s / hw.hbm_bytes_per_s
    bus = max(
        rates.fabric.scale_up_bytes_per_s / hw.scale_up_bytes_per_s, rates.fabric.scale_out_bytes_per_s / hw.scale_out_bytes_per_s
    )
    att_dist, att_src = _hardware_term(
        attention, calibrated or eff.attention.source != ASSUMPTION, 0.95, f"{hw.name} attention efficiency"
    )
    hbm_dist, hbm_src = _hardware_term(hbm, calibrated or eff.hbm.source != ASSUMPTION, 1.0, f"{hw.name} HBM efficiency")
    net_measured = calibrated or ASSUMPTION not in (eff.scale_up_bus.source, eff.scale_out_bus.source)
    net_dist, net_src = _hardware_term(1.0, net_measured, 1.0 / bus, f"{hw.name} collective bus efficiency")
    inputs = [
        UncertainInput(
            "gemm_sustain",
            "sustained GEMM efficiency",
            "fraction of best GEMM",
            a.gemm_sustain,
            LogNormal(a.gemm_sustain, sigma),
            sigma_source,
        ),
        UncertainInput(
            "fp8_gemm_factor",
            "FP8 block-scaled GEMM factor",
            "fraction of best FP8 GEMM",
            a.fp8_gemm_factor,
            Triangular(min(1 / 1.2, a.fp8_gemm_factor), a.fp8_gemm_factor, max(1.0, a.fp8_gemm_factor)),
            "DeepGEMM README (2025-02): its kernels ran 1.0-1.2x faster than the internal CUTLASS kernels of the "
            "DeepSeek-V3 era, so that era's FP8 GEMMs ran at 1/1.2 = 0.83 to 1.0 of the best",
        ),
        UncertainInput(
            "overlap_efficiency",
            "communication overlap efficiency",
            "fraction of window",
            a.overlap_efficiency,
            Triangular(min(0.7, a.overlap_efficiency), a.overlap_efficiency, 1.0),
            "assumption: between 70% of an overlap window really hiding communication and perfect overlap",
        ),
        UncertainInput(
            "comm_sm_fraction",
            "SM share taken by communication",
            "fraction of SMs",
            a.comm_sm_fraction,
            Triangular(min(0.08, a.comm_sm_fraction), a.comm_sm_fraction, max(0.25, a.comm_sm_fraction)),
            "DeepSeek-V3 report §3.2.2 used 20 of 132 SMs (0.15); 0.08-0.25 (about 10-33 SMs) is an assumption "
            "covering leaner kernels and heavier NCCL channel counts",
        ),
        UncertainInput(
            "moe_imbalance",
            "MoE load imbalance (busiest / mean)",
            "ratio",
            a.moe_imbalance,
            Triangular(1.0, max(1.0, a.moe_imbalance), max(1.3, a.moe_imbalance)),
            "assumption: from perfect balance (1.0) to the busiest expert-parallel rank getting 30% more tokens than the mean",
        ),
        UncertainInput(
            "attention_efficiency", "attention kernel efficiency", "fraction of BF16 peak", attention, att_dist, att_src
        ),
        UncertainInput("hbm_efficiency", "HBM bandwidth efficiency", "fraction of HBM peak", hbm, hbm_dist, hbm_src),
        UncertainInput("network_efficiency", "network bandwidth achieved", "x nominal", 1.0, net_dist, net_src),
        UncertainInput(
            "failures_per_gpu_hour",
            "failure rate",
            "interruptions per GPU-hour",
            a.failures_per_gpu_hour,
            times_over(a.failures_per_gpu_hour, 2.0),
            "Llama 3 §3.3.4 rate (419 unexpected interruptions, 54 days, 16,384 GPUs); its Poisson counting error is "
            "only ±5%, but rates differ between clusters and GPU generations: P10-P90 = /2 to x2 is an assumption",
        ),
        UncertainInput(
            "restart_s",
            "restart time after a failure",
            "s",
            a.restart_s,
            times_over(a.restart_s, 2.0),
            "assumption: /2 to x2 at P10-P90 (docs/model.md §9 examples use 5 and 10 minutes)",
        ),
        UncertainInput(
            "checkpoint_blocking_s",
            "blocking time per checkpoint",
            "s",
            a.checkpoint_blocking_s,
            times_over(a.checkpoint_blocking_s, 3.0),
            "assumption: /3 to x3 at P10-P90 (asynchronous checkpointing blocks seconds; docs/model.md §9 also uses 60 s)",
        ),
        *_realization_input(a, expected),
        *(_host_time_inputs(rates, current_scaled) if expert_launch else []),
        _price_input(hw, usd_per_gpu_hour, price_fixed),
        UncertainInput(
            "tokens",
            "training tokens",
            "tokens",
            tokens,
            LogNormal(tokens, tokens_spread),
            f"user-given relative spread (--tokens-spread {tokens_spread:g}; lognormal sigma)",
        ),
    ]
    return inputs


def _realization_input(a: Assumptions, expected: bool) -> list[UncertainInput]:
    if not expected:
        return []
    sigma, source = realization_sigma()
    return [
        UncertainInput(
            "realization",
            "realized / modelled step time of runs like this",
            "ratio",
            a.realization,
            LogNormal(a.realization, sigma),
            source,
        )  # fmt: skip
    ]


def _price_input(hw: HardwareProfile, usd_per_gpu_hour: float, fixed: bool | str) -> UncertainInput:
    if fixed:
        dist: Distribution = Triangular(usd_per_gpu_hour, usd_per_gpu_hour, usd_per_gpu_hour)
        source = fixed if isinstance(fixed, str) else "given with --usd-per-gpu-hour: held fixed"
    else:
        dist = times_over(usd_per_gpu_hour, 1.25)
        source = (
            f"{hw.name} profile price ({hw.price.kind}, {hw.price.date}); P10-P90 = /1.25 to x1.25 is an assumption "
            "for choosing among offers at one date (H100 reserved rates spanned $1.52-$1.85 in 2026-04, "
            "techplained; on-demand spans 4x, codesota)"
        )
    return UncertainInput("usd_per_gpu_hour", "GPU price", "USD per GPU-hour", usd_per_gpu_hour, dist, source)


def check_options(draws: int, seed: int, tokens_spread: float) -> None:
    for name, value in (("draws", draws), ("seed", seed)):
        if not is_whole(value):
            raise InputError(f"{name}={value!r} must be a whole number")
    if not is_number(tokens_spread):
        raise InputError(f"tokens_spread={tokens_spread!r} must be a number")
    if not MIN_DRAWS <= draws <= MAX_DRAWS:
        raise InputError(
            f"--draws {draws} is out of range [{MIN_DRAWS}, {MAX_DRAWS:,}]; P10 and P90 need at least {MIN_DRAWS} draws "
            f"(default {DEFAULT_DRAWS:,})"
        )
    if not 0 <= seed < 2**32:
        raise InputError(f"--seed {seed} is out of range [0, 2^32); use a non-negative integer such as 0")
    if not (0.0 <= tokens_spread <= 1.0) or math.isnan(tokens_spread):
        raise InputError(
            f"--tokens-spread {tokens_spread} is out of range [0, 1]; it is the relative spread (lognormal sigma) "
            "of the token count, e.g. 0.1 for about ±10%"
        )


# --------------------------------------------------------------------------- applying input values


@dataclass(frozen=True)
class Point:
    """Everything `evaluate` takes."""

    assumptions: Assumptions
    rates: DeviceRates
    usd_per_gpu_hour: float
    tokens: float


def scale_rates(rates: DeviceRates, gemm: float, fp8: float, attention: float, hbm: float, network: float) -> DeviceRates:
    """Device rates with each term multiplied by its factor (GEMM efficiency capped at 1)."""
    gemm_eff = {d: min(1.0, e * gemm * (fp8 if d == "fp8" else 1.0)) for d, e in rates.gemm_efficiency.items()}
    fabric = replace(
        rates.fabric,
        scale_up_bytes_per_s=rates.fabric.scale_up_bytes_per_s * network,
        scale_out_bytes_per_s=rates.fabric.scale_out_bytes_per_s * network,
        # Measured all-reduce times (docs/model.md §4.2) move with the drawn network efficiency as the bandwidths do.
        all_reduce_floors=tuple(f.slowed(1.0 / network) for f in rates.fabric.all_reduce_floors),
    )
    operand = getattr(rates, "gemm_operand_bytes_per_s", None)  # a calibration's GEMM operand bandwidth, if any
    return replace(
        rates,
        gemm_efficiency=gemm_eff,
        attention_flop_per_s=rates.attention_flop_per_s * attention,
        hbm_bytes_per_s=rates.hbm_bytes_per_s * hbm,
        fabric=fabric,
        **({"gemm_operand_bytes_per_s": operand * hbm} if operand else {}),
    )


def apply(base: Point, inputs: Sequence[UncertainInput], values: dict[str, float]) -> Point:
    """The point with the given input values; inputs not in `values` stay nominal."""
    nominal = {i.name: i.nominal for i in inputs}

    def ratio(name: str) -> float:
        return values[name] / nominal[name] if name in values and nominal.get(name) else 1.0

    fields = set(Assumptions.__dataclass_fields__)
    a = replace(base.assumptions, **{k: v for k, v in values.items() if k in fields})
    rates = scale_rates(
        base.rates,
        gemm=ratio("gemm_sustain"),
        fp8=1.0,  # the block-scaling factor acts through Assumptions.fp8_gemm_factor, on block-scaled FP8 only
        attention=ratio("attention_efficiency"),
        hbm=ratio("hbm_efficiency"),
        network=ratio("network_efficiency"),
    )
    rates = replace(rates, **{name: values[name] for name, _, _ in HOST_TIME_INPUTS if name in values})
    return Point(a, rates, base.usd_per_gpu_hour * ratio("usd_per_gpu_hour"), base.tokens * ratio("tokens"))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Band:
    p10: float
    p50: float
    p90: float

    def to_dict(self) -> dict[str, float]:
        return {"p10": self.p10, "p50": self.p50, "p90": self.p90}


@dataclass(frozen=True)
class TornadoBar:
    """The outputs with one input at its P10 and at its P90, the others nominal (full model, no surrogate)."""

    name: str
    label: str
    low_value: float
    high_value: float
    at_low: dict[str, float]
    at_high: dict[str, float]

    def swing(self, output: str = "cost_usd") -> float:
        return abs(math.log(self.at_high[output] / self.at_low[output]))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "input_p10": self.low_value,
            "input_p90": self.high_value,
            "at_input_p10": self.at_low,
            "at_input_p90": self.at_high,
        }


@dataclass(frozen=True)
class Response:
    """log(output / nominal) of each output at each evaluated value of one input."""

    name: str
    values: np.ndarray
    log_ratio: np.ndarray
    """Shape (len(values), len(OUTPUTS))."""
    log_x: bool
    """Interpolate in log(value) (lognormal inputs: price and tokens then act exactly as powers)."""

    def at(self, x: np.ndarray) -> np.ndarray:
        xs, grid = (np.log(x), np.log(self.values)) if self.log_x else (x, self.values)
        return np.stack([np.interp(xs, grid, self.log_ratio[:, j]) for j in range(len(OUTPUTS))], axis=-1)


@dataclass(frozen=True)
class SurrogateCheck:
    evaluations: int
    """Full-model evaluations: nominal, one-at-a-time grid points and checks."""
    checks: int
    """Joint draws evaluated with the full model to check it."""
    max_abs_error: dict[str, float]
    rms_error: dict[str, float]
    exact_goodput: bool = False
    """Reliability inputs applied exactly per draw through the goodput model."""

    def to_dict(self) -> dict:
        method = (
            "per-input piecewise-linear log responses from one-at-a-time full-model evaluations, combined "
            "multiplicatively with pairwise interaction terms of the four inputs that move the run most"
            + ("; failure rate, restart and checkpoint time through the exact goodput model" if self.exact_goodput else "")
        )
        return {
            "method": method,
            "evaluations": self.evaluations,
            "checks": self.checks,
            "max_abs_error": self.max_abs_error,
            "rms_error": self.rms_error,
        }


@dataclass(frozen=True)
class UncertaintyResult:
    draws: int
    seed: int
    nominal: dict[str, float]
    bands: dict[str, Band]
    tornado: list[TornadoBar]
    """Inputs that move the answer, largest cost swing first."""
    inputs: list[UncertainInput]
    surrogate: SurrogateCheck
    model_evaluation_s: float
    """Wall time of the full-model evaluations (building and checking the surrogate)."""
    draw_s: float
    """Wall time of drawing the inputs and evaluating the surrogate for every draw."""
    notes: list[str] = field(default_factory=list)
    samples: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Every draw's outputs (not in to_dict)."""
    claim: dict | None = None
    """With `costsim claim --uncertainty`: where the claimed GPU-hours fall in the band (claim_position())."""

    def to_dict(self) -> dict:
        moving = {b.name for b in self.tornado}
        claim = {"claim": self.claim} if self.claim is not None else {}
        return {
            "draws": self.draws,
            "seed": self.seed,
            "nominal": self.nominal,
            **{k: b.to_dict() for k, b in self.bands.items()},
            "tornado": [b.to_dict() for b in self.tornado],
            "inputs": [i.to_dict() | {"moves_answer": i.name in moving} for i in self.inputs],
            "surrogate": self.surrogate.to_dict(),
            "model_evaluation_s": self.model_evaluation_s,
            "draw_s": self.draw_s,
            "notes": self.notes,
            **claim,
        }


# --------------------------------------------------------------------------- propagation

RELIABILITY = ("failures_per_gpu_hour", "restart_s", "checkpoint_blocking_s")
"""Inputs of the goodput model. With goodput GPU counts given, they are applied exactly to every draw (goodput()),
because failures and restart time interact strongly at large scale (a product term in the waste)."""


def require_price(usd_per_gpu_hour: float) -> None:
    """Refuse a band priced at $0 per GPU-hour: the dollar band is drawn relative to the price."""
    if not usd_per_gpu_hour > 0:
        raise InputError(
            f"an uncertainty band (estimate --uncertainty, and every report) needs a price above $0 per GPU-hour (its "
            f"dollar band is drawn relative to it), and this estimate's is ${usd_per_gpu_hour:g} (--usd-per-gpu-hour 0, "
            "or no list price for this GPU): give --usd-per-gpu-hour above 0 (or leave out estimate's --uncertainty)"
        )


def _outputs(evaluate: Evaluate, p: Point) -> np.ndarray:
    out = np.asarray(evaluate(p.assumptions, p.rates, p.usd_per_gpu_hour, p.tokens), dtype=float)
    if out.shape == (len(OUTPUTS),) and out[0] > 0 and out[2] == 0:
        require_price(0.0)
    if out.shape != (len(OUTPUTS),) or not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise InputError(f"the model gave {out.tolist()} for (gpu_hours, wall_clock_days, cost_usd); expected 3 positive numbers")
    return out


GRID_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
"""Where each input's one-at-a-time response is evaluated, besides its extremes and its nominal value."""


def _grid(inp: UncertainInput) -> np.ndarray:
    low, high = inp.dist.bounds
    return np.unique(np.array([low, *(inp.dist.quantile(q) for q in GRID_QUANTILES), inp.nominal, high]))


def _response(evaluate: Evaluate, base: Point, inputs: Sequence[UncertainInput], inp: UncertainInput, nominal: np.ndarray):
    """One-at-a-time full-model evaluations of one input: (Response, evaluations).

    The extremes go first: an input that moves nothing there (the FP8 factor of a BF16 run) is not evaluated further.
    """
    xs = _grid(inp)
    ys = np.zeros((len(xs), len(OUTPUTS)))
    n = 0
    for k in [0, len(xs) - 1, *range(1, len(xs) - 1)]:
        if k == 1 and not np.any(np.abs(ys) > 1e-12):
            break
        if xs[k] != inp.nominal:
            ys[k] = np.log(_outputs(evaluate, apply(base, inputs, {inp.name: float(xs[k])})) / nominal)
            n += 1
    return Response(inp.name, xs, ys, isinstance(inp.dist, LogNormal)), n


@dataclass(frozen=True)
class GoodputShare:
    """Part of a run on `num_gpus` GPUs, with its share of each ideal output (GPU-hours, days, dollars)."""

    num_gpus: int
    weights: tuple[float, float, float]


GoodputGroups = int | Sequence[GoodputShare] | None
"""The goodput model inside `evaluate`: one GPU count (an estimate), shares of several (a plan), or None (unknown)."""


def _shares(goodput: GoodputGroups) -> list[GoodputShare]:
    if goodput is None:
        return []
    if isinstance(goodput, int):
        return [GoodputShare(goodput, (1.0, 1.0, 1.0))]
    return list(goodput)


@dataclass(frozen=True)
class Surrogate:
    """Outputs at any input values: ideal nominal x exp(sum of per-input responses) / exact goodput."""

    nominal: np.ndarray
    """Outputs with every input nominal, before the goodput factor when goodput shares are set."""
    responses: list[Response]
    assumptions: Assumptions
    shares: list[GoodputShare]
    pairs: list[Pair] = field(default_factory=list)

    def __call__(self, values: dict[str, np.ndarray], n: int) -> np.ndarray:
        log_out = np.zeros((n, len(OUTPUTS)))
        for r in self.responses:
            if r.name in values:
                log_out += r.at(values[r.name])
        for p in self.pairs:
            if p.a.name in values and p.b.name in values:
                log_out += p.at(values)
        out = self.nominal * np.exp(log_out)
        if self.shares:
            # Each part's ideal output stretched by its own ETTR: sum over parts of weight / ETTR.
            factor = sum(np.outer(1.0 / self._ettr(values, s.num_gpus, n), s.weights) for s in self.shares)
            out *= factor
        return out

    def _ettr(self, values: dict[str, np.ndarray], num_gpus: int, n: int) -> np.ndarray:
        from simulator.run.goodput import ettr

        cols = {k: values[k] for k in RELIABILITY if k in values}
        out = np.empty(n)
        for i in range(n):
            out[i] = ettr(num_gpus, replace(self.assumptions, **{k: float(v[i]) for k, v in cols.items()}))
        return out


PAIR_INPUTS = 4
"""Interaction terms are fitted for every pair of the this many inputs that move the run most."""
SEPARABLE = ("tokens", "usd_per_gpu_hour")
"""Inputs that scale the outputs exactly (GPU-hours in proportion to tokens, dollars to price): no interactions."""


def build_surrogate(evaluate, base, inputs, goodput_gpus: GoodputGroups) -> tuple[Surrogate, int]:
    """The surrogate and the number of full-model evaluations it took."""
    shares = _shares(goodput_gpus)
    exact = set(RELIABILITY) if shares else set()
    ideal = replace(base, assumptions=replace(base.assumptions, failures_per_gpu_hour=0.0)) if shares else base
    nominal = _outputs(evaluate, ideal)
    responses, n = [], 1
    for inp in inputs:
        if inp.degenerate or inp.name in exact:
            continue
        r, k = _response(evaluate, ideal, inputs, inp, nominal)
        n += k
        if np.any(np.abs(r.log_ratio) > 1e-12):  # inputs that do not move this run (FP8 factor of a BF16 run) drop out
            responses.append(r)
    pairs, k = _pairs(evaluate, ideal, inputs, responses, nominal)
    return Surrogate(nominal, responses, base.assumptions, shares, pairs), n + k


@dataclass(frozen=True)
class Pair:
    """Interaction of two inputs in log output: exact at the four (P10/P90, P10/P90) corners, zero on the axes.

    With u = -1 at an input's P10, 0 at its nominal value and +1 at its P90 (linear in between and beyond),
    the term is corner[quadrant] x |u_a| x |u_b|.
    """

    a: UncertainInput
    b: UncertainInput
    corners: np.ndarray
    """Shape (2, 2, len(OUTPUTS)): [a at P10 / P90, b at P10 / P90]."""

    def at(self, values: dict[str, np.ndarray]) -> np.ndarray:
        ua, ub = _u(self.a, values[self.a.name]), _u(self.b, values[self.b.name])
        corner = self.corners[(ua > 0).astype(int), (ub > 0).astype(int)]
        return corner * (np.abs(ua) * np.abs(ub))[:, None]


def _u(inp: UncertainInput, x: np.ndarray) -> np.ndarray:
    lo, hi, c = inp.dist.quantile(0.1), inp.dist.quantile(0.9), inp.nominal
    return np.where(x >= c, (x - c) / max(hi - c, 1e-300), (x - c) / max(c - lo, 1e-300))


def _pairs(evaluate, base, inputs, responses: list[Response], nominal: np.ndarray) -> tuple[list[Pair], int]:
    """Interaction terms between the inputs that move the run most: four full-model evaluations per pair."""
    by_name = {i.name: i for i in inputs}
    moving = [r for r in responses if r.name not in SEPARABLE]
    top = sorted(moving, key=lambda r: -float(np.ptp(r.log_ratio[:, 0])))[:PAIR_INPUTS]
    pairs, n = [], 0
    for i, ra in enumerate(top):
        for rb in top[i + 1 :]:
            a, b = by_name[ra.name], by_name[rb.name]
            corners = np.zeros((2, 2, len(OUTPUTS)))
            for ia, xa in enumerate((a.dist.quantile(0.1), a.dist.quantile(0.9))):
                for ib, xb in enumerate((b.dist.quantile(0.1), b.dist.quantile(0.9))):
                    full = np.log(_outputs(evaluate, apply(base, inputs, {a.name: xa, b.name: xb})) / nominal)
                    corners[ia, ib] = full - ra.at(np.array([xa]))[0] - rb.at(np.array([xb]))[0]
                    n += 1
            pairs.append(Pair(a, b, corners))
    return pairs, n


def _tornado(surrogate: Surrogate, inputs: Sequence[UncertainInput]) -> list[TornadoBar]:
    """Outputs at each input's P10 and P90, others nominal. Exact: these are evaluated grid points (or exact goodput)."""
    nominal = {i.name: np.array([i.nominal]) for i in inputs}
    bars = []
    for inp in inputs:
        lo, hi = inp.dist.quantile(0.1), inp.dist.quantile(0.9)
        at_lo = surrogate(nominal | {inp.name: np.array([lo])}, 1)[0]
        at_hi = surrogate(nominal | {inp.name: np.array([hi])}, 1)[0]
        if not inp.degenerate and np.any(np.abs(np.log(at_hi / at_lo)) > 1e-12):
            bars.append(TornadoBar(inp.name, inp.label, lo, hi, _named(at_lo), _named(at_hi)))
    return sorted(bars, key=lambda b: -b.swing())


def _named(values: np.ndarray) -> dict[str, float]:
    return {k: float(v) for k, v in zip(OUTPUTS, values, strict=True)}


def _draw(inputs: Sequence[UncertainInput], rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {i.name: i.dist.sample(rng, n) for i in inputs}


def _check(evaluate, base, inputs, surrogate: Surrogate, seed: int, checks: int) -> tuple[dict, dict]:
    """Surrogate vs full model at `checks` joint draws: (max |error|, rms error) per output."""
    values = _draw(inputs, np.random.default_rng([seed, 1]), checks)
    predicted = surrogate(values, checks)
    full = np.array([_outputs(evaluate, apply(base, inputs, {k: float(v[i]) for k, v in values.items()})) for i in range(checks)])
    err = predicted / full - 1.0
    return (
        {k: float(np.max(np.abs(err[:, j]))) for j, k in enumerate(OUTPUTS)},
        {k: float(np.sqrt(np.mean(err[:, j] ** 2))) for j, k in enumerate(OUTPUTS)},
    )


def propagate(
    evaluate: Evaluate,
    base: Point,
    inputs: Sequence[UncertainInput],
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    checks: int = DEFAULT_CHECKS,
    notes: Sequence[str] = (),
    goodput_gpus: GoodputGroups = None,
) -> UncertaintyResult:
    """P10/P50/P90 of the outputs over `draws` joint draws of `inputs`, through the checked surrogate.

    `goodput_gpus`: the GPU count of the goodput model inside `evaluate` (or GoodputShare parts for runs in
    parts on different GPU counts); the reliability inputs are then applied exactly per draw instead of
    through the surrogate.
    """
    check_options(draws, seed, 0.0)
    if not 0 <= checks <= MAX_CHECKS:
        raise InputError(f"checks = {checks} is out of range [0, {MAX_CHECKS}]")
    t0 = time.perf_counter()
    nominal = _outputs(evaluate, base)
    surrogate, n_eval = build_surrogate(evaluate, base, inputs, goodput_gpus)
    max_err, rms_err = _check(evaluate, base, inputs, surrogate, seed, checks) if checks else ({}, {})
    t1 = time.perf_counter()
    out = surrogate(_draw(inputs, np.random.default_rng(seed), draws), draws)
    p10, p50, p90 = np.percentile(out, [10, 50, 90], axis=0)
    draw_s = time.perf_counter() - t1
    return UncertaintyResult(
        draws=draws,
        seed=seed,
        nominal=_named(nominal),
        bands={k: Band(float(p10[j]), float(p50[j]), float(p90[j])) for j, k in enumerate(OUTPUTS)},
        tornado=_tornado(surrogate, inputs),
        inputs=list(inputs),
        surrogate=SurrogateCheck(1 + n_eval + checks, checks, max_err, rms_err, bool(_shares(goodput_gpus))),
        model_evaluation_s=t1 - t0,
        draw_s=draw_s,
        notes=list(notes),
        samples={k: out[:, j] for j, k in enumerate(OUTPUTS)},
    )


# --------------------------------------------------------------------------- one estimate


def estimate_evaluator(model: ModelSpec, hw: HardwareProfile, est) -> Evaluate:
    """Re-run `est` (an Estimate) at other inputs with its layout held fixed."""
    from simulator.run.estimate import estimate

    layout = est.layout.to_dict()

    def evaluate(a: Assumptions, rates: DeviceRates, usd_per_gpu_hour: float, tokens: float) -> tuple[float, float, float]:
        realization = a.realization if est.basis == "expected" else 1.0
        e = estimate(model, hw, replace(est.job, tokens=tokens), layout, est.pricing, a, rates, realization=realization,
                     memory_limit_bytes=math.inf)  # fmt: skip  # the layout is held: its memory was judged once
        return e.gpu_hours, e.wall_clock_s / SECONDS_PER_DAY, e.gpu_hours * usd_per_gpu_hour

    return evaluate


def band_for_estimate(
    est,
    model: ModelSpec | str,
    hw: HardwareProfile | str,
    price_fixed: bool | str = False,
    tokens_spread: float = 0.0,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    checks: int = DEFAULT_CHECKS,
    usd_per_gpu_hour: float | None = None,
) -> UncertaintyResult:
    """Uncertainty band of an Estimate. `model` and `hw` are the spec and profile it was made from (or their names).
    The price is the one the estimate was priced at (its Pricing: rental or TCO; price_fixed says whether and why it
    is held fixed), or `usd_per_gpu_hour` where given (a claim's own price)."""
    from simulator.inputs.catalog import load_hardware, load_model

    check_options(draws, seed, tokens_spread)
    model = load_model(str(model)) if isinstance(model, str | Path) else model
    hw = load_hardware(str(hw)) if isinstance(hw, str | Path) else hw
    price = est.usd_per_gpu_hour if usd_per_gpu_hour is None else usd_per_gpu_hour
    require_price(price)
    base = Point(est.assumptions, est.rates, price, est.job.tokens)
    inputs = default_inputs(
        hw,
        est.assumptions,
        est.rates,
        price,
        est.job.tokens,
        price_fixed,
        tokens_spread,
        est.basis == "expected",
        expert_launch=True,
        current_scaled=tensor_scaled_fp8(est.job.precision, est.job.fp8_recipe),
    )
    notes = [f"layout held fixed at {est.layout.describe()} for every draw"]
    return propagate(estimate_evaluator(model, hw, est), base, inputs, draws, seed, checks, notes, est.job.num_gpus)


# --------------------------------------------------------------------------- plans and claims


def rate_factors(rates: DeviceRates, base: DeviceRates) -> dict[str, float]:
    """The factors scale_rates applied to `base` to give `rates` (so they can be applied to another GPU's rates)."""
    dtype = "bf16" if "bf16" in base.gemm_efficiency else next(iter(base.gemm_efficiency))
    gemm = rates.gemm_efficiency[dtype] / base.gemm_efficiency[dtype]
    fp8 = rates.gemm_efficiency["fp8"] / base.gemm_efficiency["fp8"] / gemm if "fp8" in base.gemm_efficiency else 1.0
    return {
        "gemm": gemm,
        "fp8": fp8,
        "attention": rates.attention_flop_per_s / base.attention_flop_per_s,
        "hbm": rates.hbm_bytes_per_s / base.hbm_bytes_per_s,
        "network": rates.fabric.scale_out_bytes_per_s / base.fabric.scale_out_bytes_per_s,
    }


def plan_evaluator(result, usd_per_gpu_hour: float | None = None) -> tuple[Evaluate, Point]:
    """Evaluate for a PlanResult (simulator.analysis.plans): every stage re-run with its layout fixed, stages summed.

    The drawn rates are applied to each stage's own GPU as factors; tokens and price scale every stage alike.
    Returns the callable and its nominal point (the first stage's assumptions and rates, the plan's tokens and
    its GPU-hour-weighted price). `usd_per_gpu_hour`, where given, prices every stage instead (a claim's price)."""
    result.require_training_only("the uncertainty band (--uncertainty, report)")
    from simulator.inputs.catalog import load_model
    from simulator.inputs.plan_file import model_ref
    from simulator.run.estimate import estimate

    spec = load_model(model_ref(result.plan, result.path))
    uniform = usd_per_gpu_hour is not None
    stages = [(s.estimate, s.hw, usd_per_gpu_hour if uniform else s.cost["usd_per_gpu_hour"]) for s in result.stages]
    first = stages[0][0]
    tokens0 = sum(e.job.tokens for e, _, _ in stages)
    price0 = usd_per_gpu_hour if uniform else result.cost["cost_usd"] / result.gpu_hours
    require_price(price0)

    def evaluate(a: Assumptions, rates: DeviceRates, usd_per_gpu_hour: float, tokens: float) -> tuple[float, float, float]:
        f = rate_factors(rates, first.rates)
        # The realization is drawn around the first stage's generation's and applied to each stage's own as a factor
        # (an Ampere stage beside a Hopper one keeps its 1.30 where Hopper's is 1.74), as the rates are.
        realized = a.realization / first.assumptions.realization
        hours = wall_s = usd = 0.0
        for e, hw, price in stages:
            r = scale_rates(e.rates, **f)
            job = replace(e.job, tokens=e.job.tokens * tokens / tokens0)
            realization = e.assumptions.realization * realized if e.basis == "expected" else 1.0
            # The layout is held, and its memory was judged once (a stage that ran at its layout is costed as if it
            # fitted, plans.run_stage); the drawn rates do not change what it holds.
            s = estimate(spec, hw, job, e.layout.to_dict(), e.pricing, a, r, realization=realization,
                         memory_limit_bytes=math.inf)  # fmt: skip
            usd += s.gpu_hours * (price * usd_per_gpu_hour / price0)
            hours, wall_s = hours + s.gpu_hours, wall_s + s.wall_clock_s
        return hours, wall_s / SECONDS_PER_DAY, usd

    return evaluate, Point(first.assumptions, first.rates, price0, tokens0)


def band_for_plan(
    result,
    price_fixed: bool | str = False,
    tokens_spread: float = 0.0,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    checks: int = DEFAULT_CHECKS,
    usd_per_gpu_hour: float | None = None,
) -> UncertaintyResult:
    """Uncertainty band of a whole plan (all stages). Reliability inputs are exact when every stage has one GPU count.
    `usd_per_gpu_hour`, where given, prices every stage (a claim's price) instead of each stage's own."""
    check_options(draws, seed, tokens_spread)
    evaluate, base = plan_evaluator(result, usd_per_gpu_hour)
    first = result.stages[0]
    quoted = first.cost["price_quote"]["kind"] == "quoted"  # the plan's quote prices the first stage (not another GPU)
    if quoted and not price_fixed:
        price_fixed = f"the plan's quoted price is held fixed ({result.plan.price_source})"
    inputs = default_inputs(
        first.hw, base.assumptions, base.rates, base.usd_per_gpu_hour, base.tokens, price_fixed, tokens_spread,
        first.estimate.basis == "expected",
    )  # fmt: skip
    notes = [f"every stage keeps its layout for every draw ({len(result.stages)} stages, run one after another)"]
    if len({s.hw.name for s in result.stages}) > 1:
        notes.append(
            f"hardware efficiencies and the realization are drawn for {first.hw.name} and applied to every stage's GPU "
            "and generation as factors"
        )
    return propagate(evaluate, base, inputs, draws, seed, checks, notes, plan_goodput_shares(result))


def plan_goodput_shares(result) -> list[GoodputShare]:
    """Each GPU count's share of the plan's ideal GPU-hours, days and dollars (stages on one count merged)."""
    ideal: dict[int, np.ndarray] = {}
    for s in result.stages:
        e = s.estimate
        part = np.array([e.ideal_gpu_hours, e.ideal_wall_clock_s, e.ideal_gpu_hours * s.cost["usd_per_gpu_hour"]])
        ideal[e.job.num_gpus] = ideal.get(e.job.num_gpus, 0.0) + part
    total = sum(ideal.values())
    return [GoodputShare(n, tuple(float(x) for x in part / total)) for n, part in ideal.items()]


def claim_position(claimed_gpu_hours: float, samples: np.ndarray, band: Band) -> dict:
    """Where a claim falls in the predicted GPU-hours: the share of draws predicting fewer, the band segment it lies
    in, and claim / P50."""
    share = float(np.mean(samples <= claimed_gpu_hours))
    if claimed_gpu_hours < band.p10:
        where = "below P10"
    elif claimed_gpu_hours < band.p50:
        where = "between P10 and P50"
    elif claimed_gpu_hours <= band.p90:
        where = "between P50 and P90"
    else:
        where = "above P90"
    return {
        "claimed_gpu_hours": claimed_gpu_hours,
        "share_of_draws_below": share,
        "position": where,
        "ratio_to_p50": claimed_gpu_hours / band.p50,
    }


def _place_claim(band: UncertaintyResult, claimed_gpu_hours: float) -> UncertaintyResult:
    """The band with the claim's position in its GPU-hours (a field and a note)."""
    g = band.bands["gpu_hours"]
    pos = claim_position(claimed_gpu_hours, band.samples["gpu_hours"], g)
    note = (
        f"{pos['share_of_draws_below']:.1%} of the draws predict fewer GPU-hours than the claimed {claimed_gpu_hours:,.0f} "
        f"(P10 {g.p10:,.0f}, P90 {g.p90:,.0f}): the claim lies {pos['position']}; "
        f"claim / prediction P50 = {pos['ratio_to_p50']:.2f}"
    )
    return replace(band, notes=[*band.notes, note], claim=pos)


def band_for_claim(
    result, model: ModelSpec | str, hw: HardwareProfile | str, draws: int = DEFAULT_DRAWS, seed: int = 0
) -> UncertaintyResult:
    """Uncertainty band of costsim's prediction for a claim (analysis.claim.ClaimResult), and where the claim falls in it.

    The band is drawn around the prediction's own estimate; `model` and `hw` are what the claim was checked with. The band's
    notes say at which percentile of the predicted GPU-hours the claimed GPU-hours lie. Its dollars are at the claim's
    price where it has one (stated, or implied by --usd and --gpu-hours), else at the estimate's.
    """
    p = result.prediction
    if p is None:
        raise InputError("--uncertainty needs costsim's prediction of the claim: pass --num-gpus (the GPUs the claim ran on)")
    # a claim is judged in GPU-hours: at a claimed price of $0 the dollars stay at the estimate's price, not refused
    price = result.usd_per_gpu_hour if result.usd_per_gpu_hour else None
    band = band_for_estimate(p.estimate, model, hw, price_fixed=True, draws=draws, seed=seed, usd_per_gpu_hour=price)
    return _place_claim(band, result.gpu_hours)


CLAIM_PRICE_FIXED = "held fixed: a claim is checked in GPU-hours (the price only turns --usd into GPU-hours)"


def band_for_plan_claim(
    result, draws: int = DEFAULT_DRAWS, seed: int = 0, usd_per_gpu_hour: float | None = None
) -> UncertaintyResult:
    """Uncertainty band of costsim's prediction for a claim about a plan (analysis.claim.assess_plan_claim): the band of
    the stages the claim covers (every stage keeps its layout), and where the claimed GPU-hours fall in it. Its dollars
    are at `usd_per_gpu_hour` where given (a price the claim implies), else at each stage's price."""
    p = result.prediction
    stages = p.selected()
    plan = replace(p.result, stages=stages)
    band = band_for_plan(plan, CLAIM_PRICE_FIXED, draws=draws, seed=seed, usd_per_gpu_hour=usd_per_gpu_hour)
    if len(stages) < len(p.result.stages):
        band = replace(band, notes=[*band.notes, f"band of the stages the claim covers: {', '.join(result.stages)}"])
    return _place_claim(band, result.gpu_hours)
