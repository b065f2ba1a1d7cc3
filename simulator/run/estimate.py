"""The one orchestrator: a Scenario (model, hardware, job, fixed layout fields, price) -> Estimate."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace

from simulator.errors import InfeasibleError, LayoutError, SpecError
from simulator.inputs.assumptions import DEFAULT, Assumptions
from simulator.inputs.job import Job, tensor_scaled_fp8, with_fp8_recipe
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.inputs.stacks import LayoutLimits
from simulator.model.efficiency import DeviceRates, device_rates
from simulator.model.flops import ParamCounts, flop_utilization, parameter_counts
from simulator.model.layer_work import token_flops
from simulator.model.layout import Layout, check_layout
from simulator.model.memory import check_fits
from simulator.model.step_time import StepResult, step
from simulator.run.basis_notes import MEMORY_MISS
from simulator.run.cost import Pricing, pricing
from simulator.run.goodput import Goodput, goodput, goodput_notes
from simulator.run.sanity import (
    fp16_for_bf16_note,
    learned_positions_note,
    pooled_realization_note,
    published_total_note,
    sanity_notes,
)
from simulator.run.scenario import Scenario
from simulator.run.search import search
from simulator.units import GIB, MICRO, SECONDS_PER_DAY, SECONDS_PER_HOUR, TERA
from simulator.vocab import LAYOUT_FIELDS


def mfu_basis(precision: str) -> str:
    """What an MFU is a fraction of: the dense peak of the precision the GEMMs run in."""
    return f"dense {precision.upper()} peak"


@dataclass(frozen=True)
class Estimate:
    model: str
    gpu: str
    job: Job
    layout: Layout
    params: ParamCounts
    flops_per_token: float
    hardware_flops_per_token: float
    flops_by_component: dict[str, float]
    step: StepResult
    rates: DeviceRates
    peak_bf16_flop_per_s: float
    peak_fp8_flop_per_s: float | None
    pricing: Pricing
    """The price of a GPU-hour, chosen once for the run (simulator.run.cost.pricing)."""
    goodput: Goodput
    assumptions: Assumptions
    gpu_memory_bytes: float
    layout_chosen_by_search: bool = False
    candidates_evaluated: int = 1
    notes: list[str] = field(default_factory=list)
    basis: str = "achievable"
    """achievable: the best layout the stack offers, as modelled (TP communication overlap off unless given: see
    `estimate`); expected: the layout practitioners run on it, realized (see `realization`)."""
    realization: float = 1.0
    """Realized / modelled step time of runs like this one: the global constant `costsim fit` fits to published whole
    runs (Assumptions.realization); 1 for an achievable estimate."""
    stack: str = "current"

    @property
    def ettr(self) -> float:
        return self.goodput.ettr

    @property
    def step_time_s(self) -> float:
        return self.step.step_time_s * self.realization

    @property
    def breakdown_s(self) -> dict[str, float]:
        """Seconds per step by component; an expected run adds the realization gap (what runs like it lost beyond the
        model's terms), so the parts sum to step_time_s."""
        gap = self.step_time_s - self.step.step_time_s
        return self.step.breakdown_s | ({"realization_gap": gap} if gap else {})

    def headline(self) -> dict:
        """The numbers an analyst reads first, with the layout: what `achievable` holds in the JSON."""
        return {
            "basis": self.basis,
            "stack": self.stack,
            "layout": self.layout.to_dict(),
            "gpu_hours": self.gpu_hours,
            "ideal_gpu_hours": self.ideal_gpu_hours,
            "wall_clock_days": self.wall_clock_s / SECONDS_PER_DAY,
            "cost_usd": self.cost_usd,
            "step_time_s": self.step_time_s,
            "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
            "model_tflop_per_s_per_gpu": self.model_flop_per_s_per_gpu / TERA,
            "mfu": self.mfu,
            "mfu_basis": mfu_basis(self.job.precision),
            "mfu_bf16_peak": self.mfu_bf16_peak,
            "memory_per_gpu_gib": self.step.memory.total_bytes / GIB,
        }

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.job.tokens_per_s_per_gpu(self.step_time_s)

    @property
    def model_flop_per_s_per_gpu(self) -> float:
        return self.flops_per_token * self.tokens_per_s_per_gpu

    @property
    def peak_flop_per_s(self) -> float:
        """Dense peak of the precision the GEMMs run in: FP8's for an FP8 run, the 16-bit peak otherwise (FP16 and
        BF16 share their tensor cores on every shipped profile)."""
        if self.job.precision == "fp8" and self.peak_fp8_flop_per_s:
            return self.peak_fp8_flop_per_s
        return self.peak_bf16_flop_per_s

    @property
    def mfu(self) -> float:
        """Model FLOPs utilisation against the dense peak of the precision used (never above 1 for a valid run: an
        FP8 run against the BF16 peak can be, H20 101-112%). The BF16-basis figure is `mfu_bf16_peak`."""
        return flop_utilization(self.flops_per_token, self.tokens_per_s_per_gpu, self.peak_flop_per_s)

    @property
    def hfu(self) -> float:
        """Hardware FLOPs (recomputation included) utilisation against the dense peak of the precision used."""
        return flop_utilization(self.hardware_flops_per_token, self.tokens_per_s_per_gpu, self.peak_flop_per_s)

    @property
    def mfu_bf16_peak(self) -> float:
        """MFU against the dense BF16 peak whatever the precision: the basis many papers quote."""
        return flop_utilization(self.flops_per_token, self.tokens_per_s_per_gpu, self.peak_bf16_flop_per_s)

    @property
    def all_notes(self) -> list[str]:
        """The notes and what the goodput model cannot say of the run (goodput_notes), derived from it: an RL stage's
        per-step training estimate shows `notes` alone, since the stage's own goodput covers the stage."""
        return [*self.notes, *goodput_notes(self.goodput, self.ideal_wall_clock_s, self.assumptions)]

    @property
    def ideal_wall_clock_s(self) -> float:
        return self.job.steps * self.step_time_s

    @property
    def wall_clock_s(self) -> float:
        return self.ideal_wall_clock_s / self.ettr

    @property
    def ideal_gpu_hours(self) -> float:
        return self.job.gpu_hours(self.step_time_s)

    @property
    def gpu_hours(self) -> float:
        return self.job.gpu_hours(self.step_time_s, self.ettr)

    @property
    def usd_per_gpu_hour(self) -> float:
        return self.pricing.usd_per_gpu_hour

    @property
    def price_source(self) -> str:
        return self.pricing.rate.source

    @property
    def cost_usd(self) -> float:
        return self.pricing.cost_usd(self.gpu_hours)

    @property
    def cost(self) -> dict:
        """The cost block: chosen basis, the other basis, energy, CO2, program cost (Pricing.block)."""
        return self.pricing.block(self.gpu_hours)

    def pipeline_ranks(self) -> list[dict]:
        """What each pipeline rank holds (embedding, layers by kind, head, MTP) and its busy seconds per step."""
        return [
            {"rank": r, "items": dict(Counter(items)), "busy_s_per_step": busy}
            for r, (items, busy) in enumerate(zip(self.step.stage_items, self.step.rank_busy_s, strict=True))
        ]

    def to_dict(self) -> dict:
        mem = {k: v / GIB for k, v in self.step.memory.by_component_bytes().items()}
        out = {
            "model": self.model,
            "gpu": self.gpu,
            "basis": self.basis,
            "stack": self.stack,
            "realization": self.realization,
            "num_gpus": self.job.num_gpus,
            "tokens": self.job.tokens,
            "seq_len": self.job.seq_len,
            "global_batch_tokens": self.job.global_batch_tokens,
            "precision": self.job.precision,
            "fp8_recipe": self.job.fp8_recipe if self.job.precision == "fp8" else None,
            "layout": self.layout.to_dict(),
            "layout_chosen_by_search": self.layout_chosen_by_search,
            "candidates_evaluated": self.candidates_evaluated,
            "params_total": self.params.total,
            "params_activated": self.params.activated,
            "flops_per_token": self.flops_per_token,
            "flops_convention": "model FLOPs per token, forward + backward (3x forward), causal attention "
            "(s/2 keys per query), LM head, router and MTP included, no recomputation",
            "hardware_flops_per_token": self.hardware_flops_per_token,
            "flops_per_token_by_component": self.flops_by_component,
            "flops_6nd_per_token": 6.0 * self.params.activated,
            "total_model_flops": self.flops_per_token * self.job.tokens,
            "steps": self.job.steps,
            "micro_batches": self.step.micro_batches,
            "step_time_s": self.step_time_s,
            "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
            "model_tflop_per_s_per_gpu": self.model_flop_per_s_per_gpu / TERA,
            "mfu": self.mfu,
            "hfu": self.hfu,
            "mfu_basis": mfu_basis(self.job.precision),
            "mfu_bf16_peak": self.mfu_bf16_peak,
            "memory_per_gpu_gib": mem["total"],
            "memory_breakdown_gib": mem,
            "gpu_memory_gib": self.gpu_memory_bytes / GIB,
            "ideal_gpu_hours": self.ideal_gpu_hours,
            "gpu_hours": self.gpu_hours,
            "ideal_wall_clock_days": self.ideal_wall_clock_s / SECONDS_PER_DAY,
            "wall_clock_days": self.wall_clock_s / SECONDS_PER_DAY,
            "goodput": {
                "ettr": self.ettr,
                "job_mtbf_hours": self.goodput.job_mtbf_s / SECONDS_PER_HOUR,
                "checkpoint_interval_hours": self.goodput.checkpoint_interval_s / SECONDS_PER_HOUR,
                "expected_failures": self.goodput.expected_failures,
            },
            "usd_per_gpu_hour": self.usd_per_gpu_hour,
            "price_source": self.price_source,
            "price_quote": self.pricing.quote,
            "cost_usd": self.cost_usd,
            "cost": self.cost,
            "breakdown": self.breakdown_s,
            "stage_layers": [len([i for i in r if i not in ("embed", "head")]) for r in self.step.stage_items],
            "pipeline_ranks": self.pipeline_ranks(),
            "efficiency_source": self.rates.source,
            "assumptions": self.assumptions.to_dict(),
            "notes": self.all_notes,
        }
        return out


@dataclass(frozen=True)
class RunEstimates:
    """The two numbers of a run: what it can cost (achievable) and what runs like it did cost (expected)."""

    expected: Estimate
    achievable: Estimate

    def to_dict(self) -> dict:
        """The expected run's document, with the achievable run's headline numbers and layout under `achievable`."""
        return self.expected.to_dict() | {"achievable": self.achievable.headline()}


def estimate_achievable(s: Scenario) -> Estimate:
    """The best layout the scenario's software stack offers (user-fixed fields held), as modelled, without TP
    communication overlap unless the layout gives it (`estimate`; `costsim search` tries both)."""
    return estimate(
        s.model, s.hardware, s.job, s.layout, s.pricing, s.assumptions, s.rates, s.stack.offers, stack=s.stack.name,
        memory_limit_bytes=s.memory_limit_bytes,
    )  # fmt: skip


def estimate_expected(s: Scenario) -> Estimate:
    """The layout practitioners run on the stack (activation checkpointing, TP inside a node, no TP overlap; the
    user's fields held), its step time scaled by the fitted realization of published whole runs. Where no such
    layout fits, the stack's best layout that fits stands in (said in the notes)."""
    args = (s.model, s.hardware, s.job, s.layout, s.pricing, s.assumptions, s.rates)
    kw = {"realization": s.assumptions.realization, "basis": "expected", "stack": s.stack.name}
    kw |= {"memory_limit_bytes": s.memory_limit_bytes}
    try:
        return estimate(*args, s.stack.practice_limits, **kw)
    except (InfeasibleError, LayoutError):
        est = estimate(*args, s.stack.offers, **kw)
        note = (
            f"no layout of the usual practice on stack {s.stack.name} fits or divides; the expected run uses the best "
            "layout the stack offers"
        )
        return replace(est, notes=[*est.notes, note])


def estimate_scenario(s: Scenario) -> RunEstimates:
    """Both numbers of a resolved scenario (simulator.run.scenario)."""
    expected = estimate_expected(s)
    notes = (learned_positions_note(s.model, s.job.seq_len), published_total_note(s.model),
             fp16_for_bf16_note(s.hardware, s.job.precision),
             # the fitted table itself: the scenario's assumptions hold only the value for_generation took from it
             pooled_realization_note(s.hardware, dict(DEFAULT.realization_by_generation)), s.stack.beyond_note(s.layout),
             current_scaling_note(s), per_expert_launch_note(s, expected))  # fmt: skip
    for note in notes:
        if note:
            expected = replace(expected, notes=[*expected.notes, note])
    return RunEstimates(expected, estimate_achievable(s))


LARGEST_PUBLISHED_MEMORY_MISS = 1.22
"""The largest memory need, over its GPU's, of a published run that ran in costsim's memory model (validate public:
Llama 3 Table 4 at 8,192 GPUs, 97.8 GiB against 80; tested against validate public's cases)."""
MAX_MEMORY_MISS = 1.5
"""The most memory, over its GPU's, that a run that ran may need in costsim's memory model: past the largest miss on
published runs (LARGEST_PUBLISHED_MEMORY_MISS) with room, a layout needing 1.5x or more is not the model's miss but a
layout that could not have run as stated (a reporting boundary, not fitted)."""
AS_IF_FITTED_TRIES = 3
"""Refusals as_if_it_fitted answers by raising the memory it allows (the expected run's practice layout, then the
achievable run's wider search, each may name its own least need); a fourth is not a memory-model miss."""


def as_if_it_fitted(run, s: Scenario):
    """`run(s)` (an estimate function of a scenario: estimate_scenario, estimate_expected, ...) for a run that ran as
    stated: where costsim's memory model finds no layout that fits, the run is estimated with just the memory the
    least-needing layout asks for, and every estimate in the result says so (MEMORY_MISS and the refusal), instead of
    refusing a run that happened (validate public's published runs; a plan stage with `ran_at_layout`). Just that
    memory, not unlimited: the fields the source leaves out (micro-batch, virtual stages) are then the least-memory
    choices, not the fastest ones a bigger GPU would allow."""
    refusal, capacity = None, s.memory_limit_bytes
    for _ in range(AS_IF_FITTED_TRIES):
        try:
            result = run(replace(s, memory_limit_bytes=capacity))
            break
        except InfeasibleError as e:
            if e.needed_bytes is None or (capacity is not None and e.needed_bytes <= capacity):
                raise
            if e.needed_bytes > MAX_MEMORY_MISS * s.hardware.memory_bytes:
                raise InfeasibleError(
                    f"{e.finding}: {e.needed_bytes / s.hardware.memory_bytes:.1f}x the GPU's memory, beyond the "
                    f"{MAX_MEMORY_MISS:g}x a run that ran may need (costsim's memory model misses published runs by "
                    f"at most {LARGEST_PUBLISHED_MEMORY_MISS:g}x), so the layout as stated could not have run; check its "
                    "degrees, ZeRO stage and recomputation",
                    e.finding,
                    e.needed_bytes,
                ) from None
            refusal = refusal or e.finding  # what does not fit, without the fix a run that ran has no use for
            capacity = e.needed_bytes * (1.0 + 1e-9)  # the search's vectorized sums may differ in the last bits
    else:
        raise InfeasibleError(f"{refusal}; and no layout fits the memory it needs")
    if refusal is None:
        return result
    note = f"{MEMORY_MISS} {refusal}"
    if isinstance(result, RunEstimates):
        return RunEstimates(*(replace(r, notes=[*r.notes, note]) for r in (result.expected, result.achievable)))
    return replace(result, notes=[*result.notes, note])


PER_EXPERT_STACK = "megatron-core-2025"
"""The stack whose per-expert GEMM launches an MoE estimate on a grouped stack is compared with (docs/model.md §7.8)."""
PER_EXPERT_NOTE_RATIO = 1.05
"""The slowdown on PER_EXPERT_STACK from which an estimate says so: below it the difference is within the model's
own error."""


def current_scaling_note(s: Scenario) -> str | None:
    """An FP8 tensor-recipe MoE run on a stack that scales that recipe by the current amax and launches experts one by
    one pays each expert's quantization on the host (docs/model.md §7.8); say that this is the assumption, since the
    stack's framework also offers delayed scaling (Megatron-LM's default), which casts all experts in one kernel."""
    if s.model.moe is None or s.rates.expert_quantize_host_s <= 0 or not tensor_scaled_fp8(s.job.precision, s.job.fp8_recipe):
        return None
    return (
        f"FP8 tensor recipe on stack {s.stack.name} taken as current scaling (Megatron-Bridge's FP8-CS): each local "
        f"expert is quantized apart, {s.rates.expert_quantize_host_s / MICRO:.0f} us of host time per expert GEMM on top "
        "of its launch, which sets the step only where the host outlasts the GPU (docs/model.md §7.8); delayed scaling "
        "(Megatron-LM's default) casts all experts in one kernel and would not pay it; --fp8-recipe block does not either"
    )


def per_expert_launch_note(s: Scenario, est: Estimate) -> str | None:
    """For an MoE run on a stack that runs experts as one grouped GEMM: how much longer the same layout's step takes
    where each local expert's GEMM is launched from the host (Megatron-Core of 2025 to early 2026), when that is 5% or
    more. NVIDIA's own Megatron-Bridge MoE recipes of those containers ran that way (validation/megatron_bridge.yaml)."""
    from simulator.inputs.stacks import load_stack
    from simulator.run.scenario import stack_rates

    moe = s.model.moe
    if moe is None or s.stack.expert_gemm_launch == "per_expert":
        return None
    # Only the expert launches differ: the run's own per-step host time (its stack's, §7.9) stays.
    rates = replace(stack_rates(s.rates, load_stack(PER_EXPERT_STACK), s.assumptions), step_host_s=s.rates.step_host_s)
    if rates.expert_launch_host_s <= 0:
        return None
    fixed = est.layout.to_dict()
    slow = estimate(s.model, s.hardware, s.job, fixed, s.pricing, s.assumptions, rates, None,
                    memory_limit_bytes=math.inf)  # fmt: skip
    ratio = slow.step.step_time_s / est.step.step_time_s
    if ratio < PER_EXPERT_NOTE_RATIO:
        return None
    local = moe.n_routed_experts / est.layout.ep
    current_scaled = tensor_scaled_fp8(s.job.precision, s.job.fp8_recipe) and rates.expert_quantize_host_s > 0
    quantized = ", and quantizes each expert's FP8 input apart by its current amax" if current_scaled else ""
    return (
        f"MoE, {local:g} local experts per GPU: this stack runs them as one grouped GEMM; on Megatron-Core of 2025 to "
        f"early 2026 (--stack {PER_EXPERT_STACK}), which launches each local expert's GEMM from the host after the "
        f"dispatcher's sync{quantized}, the same layout's step takes {ratio:.2f}x as long (docs/model.md §7.8)"
    )


def estimate(
    model: ModelSpec,
    hw: HardwareProfile,
    job: Job,
    layout: dict | None = None,
    price: Pricing | None = None,
    assumptions: Assumptions = DEFAULT,
    rates: DeviceRates | None = None,
    limits: LayoutLimits | None = None,
    realization: float = 1.0,
    basis: str = "achievable",
    stack: str = "current",
    memory_limit_bytes: float | None = None,
) -> Estimate:
    """Estimate a run. `layout` holds the layout fields the user fixed; the rest are searched within `limits` (what
    the software stack allows; None: everything). `price`: the price chosen for the run (default: the profile's
    rental quote).

    TP communication overlap is the exception: it is a feature of the software stack that none of the
    validation runs used (Megatron-LM 2021, Llama 3), so it is off unless asked for (`costsim search`
    tries both)."""
    given = {k: v for k, v in (layout or {}).items() if v is not None}
    given.setdefault("tp_overlap", False)
    job = with_fp8_recipe(job, model)
    hw.peak_flop_per_s(job.precision)  # unknown dtype on this GPU -> SpecError
    rates = rates or device_rates(hw, assumptions)
    counts = parameter_counts(model)
    capacity = hw.memory_bytes if memory_limit_bytes is None else memory_limit_bytes
    chosen, result, n_eval = _resolve_layout(model, hw, job, given, rates, counts, assumptions, limits, capacity)
    check_finite_step(result.step_time_s, result.breakdown_s, hw.name)
    tf = token_flops(model, job.seq_len)
    return Estimate(
        model=model.name,
        gpu=hw.name,
        job=job,
        layout=chosen,
        params=counts,
        flops_per_token=tf.training_flops,
        hardware_flops_per_token=tf.hardware_flops(chosen.recompute),
        flops_by_component=tf.training_by_component(),
        step=result,
        rates=rates,
        peak_bf16_flop_per_s=hw.peak_flop_per_s("bf16"),
        peak_fp8_flop_per_s=hw.peak_flop_per_s("fp8") if hw.has_dtype("fp8") else None,
        pricing=price or pricing(hw),
        goodput=goodput(job.num_gpus, job.steps * result.step_time_s * realization, assumptions),
        assumptions=assumptions,
        layout_chosen_by_search=n_eval > 1 or any(k not in given for k in ("tp", "pp")),
        candidates_evaluated=n_eval,
        gpu_memory_bytes=hw.memory_bytes,
        notes=sanity_notes(
            result.step_time_s, result.breakdown_s, result.rank_busy_s, result.stage_items, result.memory, hw.memory_bytes
        ),
        basis=basis,
        realization=realization,
        stack=stack,
    )


def check_finite_step(step_time_s: float, breakdown_s: dict[str, float], gpu: str) -> None:
    """A step time that is not a positive finite number is never reported (issue 13: `inf` days, `$infP`): the
    inputs that produced it are named instead. Schema bounds keep valid profiles away from this; it is the last
    guard."""
    if math.isfinite(step_time_s) and step_time_s > 0:
        return
    bad = sorted(k for k, v in breakdown_s.items() if not math.isfinite(v) or v < 0)
    raise SpecError(
        f"the step time on {gpu} comes out {step_time_s!r} (terms {', '.join(bad) or 'none named'}): a rate of the "
        "hardware profile or calibration is zero or not finite; check its bandwidths, peaks and latencies"
    )


def _resolve_layout(
    model, hw, job, given, rates, counts, assumptions, limits=None, capacity=None
) -> tuple[Layout, StepResult, int]:
    """Evaluate the given layout, or search the fields the user left out."""
    missing = set(LAYOUT_FIELDS) - set(given) - {"dp"}
    if given.get("schedule", "interleaved") != "interleaved":
        missing.discard("vpp")
    if model.moe is None:
        missing.discard("ep")
    if not missing:
        lay = _complete(given, job)
        check_layout(model, job, lay)
        result = step(model, job, lay, rates, counts, assumptions)
        check_fits(result.memory, capacity or hw.memory_bytes, hw.name, lay)
        return lay, result, 1
    return search_best(model, hw, job, given, rates, counts, assumptions, limits, capacity)


def _complete(given: dict, job: Job) -> Layout:
    lay = Layout(**{k: v for k, v in given.items() if k in LAYOUT_FIELDS})
    if "dp" not in given:
        denom = lay.tp * lay.pp * lay.cp
        if job.num_gpus % denom:
            raise LayoutError(
                f"--num-gpus {job.num_gpus} is not divisible by TP x PP x CP = {lay.tp} x {lay.pp} x {lay.cp} = {denom}; "
                f"pick degrees that divide {job.num_gpus}"
            )
        lay = replace(lay, dp=job.num_gpus // denom)
    return lay


def search_best(model, hw, job, given, rates, counts, assumptions, limits=None, capacity=None) -> tuple[Layout, StepResult, int]:
    """The fastest layout that fits in `capacity` bytes (default: the GPU's; ties: less memory), from the vectorized
    search within `limits`."""
    result = search(model, hw, job, given, assumptions, rates, counts=counts, limits=limits, memory_limit_bytes=capacity)
    best = result.best()
    if best is None:
        smallest = result.closest()
        lay = result.layouts.at(smallest)
        try:
            check_fits(step(model, job, lay, rates, counts, assumptions).memory, hw.memory_bytes, hw.name, lay, True)
        except InfeasibleError as e:
            found = f"none of the {result.n_valid} valid layouts fits in memory; the one needing the least: "
            raise InfeasibleError(found + str(e), found + e.finding, e.needed_bytes) from None
        raise InfeasibleError("no layout fits")  # unreachable: check_fits raised
    lay = result.layouts.at(best)
    return lay, step(model, job, lay, rates, counts, assumptions), result.n_valid
