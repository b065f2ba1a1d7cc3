"""What each command prints with `--format json`: one pydantic model per document, with its fields' meaning and
units (in the field names, as the JSON has them).

The commands build their documents as plain dicts (the results' to_dict); these models describe and check them, and
`costsim schema COMMAND` prints a model's JSON Schema. An object whose keys are fixed forbids any other key, so a key
added to a document without its model fails the tests (tests/test_output_schema.py) instead of drifting unnoticed;
open-ended objects (breakdowns keyed by component, cost inputs keyed by name) are typed as mappings. A key that only
some documents carry (an `uncertainty` band, a plan's reported total) is optional: absent or null.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from simulator.errors import InputError
from simulator.vocab import Fp8Recipe, KvAdmission, Precision, Recompute, Schedule

SCHEMA_VERSION: Final = 3
"""The layout version of every JSON document; the same number as cli.options.SCHEMA_VERSION (tested). 3 (2026-12):
`serve`'s prefill layout (prefill.layout, and fleet's and claim's copies of it) has `dp`, the attention groups, and
its `ep` is now the expert-parallel degree, tp x dp for a MoE model as decode's is (it held the attention groups; the
two differ where tp > 1). 2 (2026-12):
`validate public`'s whole_run median_abs_error, max_abs_error and median_abs_error_without_flagged are in-sample, as
every other track's are (they were leave-one-out; that is now median_abs_error_leave_one_out and its kin), and its
top-level median_abs_leave_one_out_error is named median_abs_error_leave_one_out_fitted_cases (the median over the
n_fitted_cases alone); `fleet`'s predicted prefill rate (rates.prefill.serve.tokens_per_s_per_gpu and the per-node
rate) includes the time loading the day's cache hits (it was the prefill passes' rate alone)."""


class _Fixed(BaseModel):
    """A JSON object whose keys are fixed: a key the model does not name is an error."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, protected_namespaces=())


class Document(_Fixed):
    """A command's whole JSON document."""

    schema_version: Literal[3]
    """Layout version of the document: raised when a field is renamed, removed or changes meaning (new fields do not
    change it)."""


# --------------------------------------------------------------------------- shared parts


class Layout(_Fixed):
    """A parallel layout: every field set."""

    tp: int
    """Tensor-parallel degree."""
    pp: int
    """Pipeline-parallel degree (stages)."""
    dp: int
    """Data-parallel degree."""
    ep: int
    """Expert-parallel degree (1 for a dense model)."""
    cp: int
    """Context-parallel degree."""
    zero_stage: int
    """ZeRO stage (0-3; 1 = distributed optimizer)."""
    micro_batch_size: int
    """Sequences per micro-batch."""
    schedule: Schedule
    """Pipeline schedule."""
    recompute: Recompute
    """Activation recomputation."""
    vpp: int
    """Virtual pipeline stages per rank (interleaved schedule; 1 otherwise)."""
    tp_overlap: bool
    """TP collectives overlapped with the adjacent GEMMs."""


class PartialLayout(_Fixed):
    """Some fields of a layout (a published or reference layout): the ones not given are absent."""

    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    ep: int | None = None
    cp: int | None = None
    zero_stage: int | None = None
    micro_batch_size: int | None = None
    schedule: Schedule | None = None
    recompute: Recompute | None = None
    vpp: int | None = None
    tp_overlap: bool | None = None


class PriceQuote(_Fixed):
    """The price of a GPU-hour with its kind and date."""

    usd_per_gpu_hour: float
    """Dollars per GPU-hour."""
    kind: str
    """on-demand, reserved or assumed (a profile quote), given (--usd-per-gpu-hour), quoted (a plan's own price),
    tco, or mixed (stages priced differently)."""
    date: str | None
    """YYYY-MM of a profile quote; null for the other kinds."""
    flagged: bool
    """Not the kind of price asked for (--rental, default on-demand): its dollars do not compare like with like."""
    label: str
    """Kind and date in a few characters, as tables show them."""


class Sourced(_Fixed):
    """A cost input with where it comes from."""

    value: float
    source: str


class CostBlock(_Fixed):
    """The cost of the GPU-hours on the chosen basis, with the other basis, energy, CO2 and the whole-program cost."""

    basis: Literal["rental", "tco"]
    """Cost basis (--pricing)."""
    cost_usd: float
    """Dollars on the chosen basis."""
    usd_per_gpu_hour: float
    """Dollars per GPU-hour on the chosen basis (a plan total: blended over its stages)."""
    price_source: str
    price_quote: PriceQuote
    components_usd: dict[str, float]
    """Dollars by component: rental, or gpus, servers, network and energy for TCO."""
    rental_cost_usd: float
    """Dollars at the rental price."""
    tco_cost_usd: float | None
    """Dollars at the total cost of ownership; null where the GPU has no purchase price."""
    energy_mwh: float
    """Facility energy, MWh."""
    co2_t: float
    """CO2 at the grid intensity, tonnes."""
    inputs: dict[str, Sourced]
    """Every input of the price, the energy and the CO2, by name (usd_per_gpu_hour, tdp_w, pue, ...)."""
    experiments_multiplier: float | None = None
    """With --experiments-multiplier: whole program = final run x this; the program_* fields follow from it."""
    program_gpu_hours: float | None = None
    program_cost_usd: float | None = None
    program_energy_mwh: float | None = None
    program_co2_t: float | None = None


class Goodput(_Fixed):
    """Failures, restarts and checkpoints."""

    ettr: float
    """Effective training time ratio: productive / total wall-clock time."""
    job_mtbf_hours: float
    """Mean time between failures of the whole job, hours."""
    checkpoint_interval_hours: float
    """Checkpoint interval, hours (Young-Daly)."""
    expected_failures: float
    """Failures expected over the run."""


class Headline(_Fixed):
    """A run's headline numbers and layout (the achievable run beside the expected one)."""

    basis: Literal["achievable", "expected"]
    """achievable: the best layout the stack offers, as modelled, with TP-communication overlap off unless the layout
    gives it (`costsim search` tries both, and can find a faster layout); expected: the usual layout, realized."""
    stack: str
    """Software stack (costsim list stacks)."""
    layout: Layout
    gpu_hours: float
    ideal_gpu_hours: float
    """GPU-hours without failures and restarts."""
    wall_clock_days: float
    cost_usd: float
    step_time_s: float
    tokens_per_s_per_gpu: float
    model_tflop_per_s_per_gpu: float
    mfu: float
    """Model FLOPs utilisation against the dense peak of the precision used (fraction)."""
    mfu_basis: str
    """The peak `mfu` is against (dense BF16, FP16 or FP8), as the document's top-level `mfu_basis`."""
    mfu_bf16_peak: float
    """MFU against the dense BF16 peak whatever the precision: the basis most published FP8 figures use."""
    memory_per_gpu_gib: float


class Assumptions(_Fixed):
    """The global efficiency and reliability assumptions used (simulator/inputs/assumptions.py)."""

    gemm_sustain: float
    fp8_gemm_factor: float
    fp8_quantize_unfused: float
    kernel_overhead_s: float
    overlap_efficiency: float
    param_gather_overlap: float
    comm_sm_fraction: float
    expert_launch_host_s: float
    expert_quantize_host_s: float
    step_host_s: float
    """Time per optimizer step beyond the per-layer model, charged on stacks with `step_host: fitted` (docs/model.md
    §7.9); the fitted value, whether or not this run's stack charges it (the step-time breakdown's `step_host` says)."""
    moe_imbalance: float
    memory_reserved_bytes: float
    failures_per_gpu_hour: float
    checkpoint_blocking_s: float
    realization: float
    """Realized / modelled step time of runs like this one (the expected run's factor)."""
    refit_export_bytes_per_s: float
    """The RL refit's floor: the trainer's weight-export rate (docs/model.md §17.4)."""
    pageable_copy_bytes_per_s: float
    """Per GPU: tensors copied one by one to and from pageable host memory (an RL trainer's optimizer offload, §17.4)."""
    pinned_copy_bytes_per_s: float
    """Per GPU: copies to and from pinned host memory (the trainer's weight offload, §17.4)."""
    restart_s: float
    realization_by_generation: dict[str, float] | None = None
    """Fitted realization per GPU generation, where the fit has one."""


class PipelineRank(_Fixed):
    rank: int
    items: dict[str, int]
    """What the rank holds: embed, head, mtp and layers by kind, with their counts."""
    busy_s_per_step: float


# --------------------------------------------------------------------------- uncertainty band


class Outputs(_Fixed):
    """The three outputs a band is drawn for."""

    gpu_hours: float
    wall_clock_days: float
    cost_usd: float


class Band(_Fixed):
    p10: float
    p50: float
    p90: float


class TornadoBar(_Fixed):
    """The outputs with one input at its P10 and at its P90, the others nominal."""

    name: str
    label: str
    input_p10: float
    input_p90: float
    at_input_p10: Outputs
    at_input_p90: Outputs


class UncertainInput(_Fixed):
    """One drawn input: its distribution and where it comes from."""

    name: str
    label: str
    unit: str
    nominal: float
    """The value the estimate used."""
    distribution: str
    p10: float
    p90: float
    source: str
    moves_answer: bool
    """Whether it is among the tornado's inputs."""


class Surrogate(_Fixed):
    """How the draws were evaluated, and the surrogate's error against the full model."""

    method: str
    evaluations: int
    """Full-model evaluations."""
    checks: int
    """Joint draws checked with the full model."""
    max_abs_error: Outputs
    """Largest |relative error| of the surrogate on the checks, per output."""
    rms_error: Outputs


class ClaimPosition(_Fixed):
    """Where a claim's GPU-hours fall in the predicted band (claim --uncertainty)."""

    claimed_gpu_hours: float
    share_of_draws_below: float
    """Share of the draws predicting fewer GPU-hours than the claim."""
    position: Literal["below P10", "between P10 and P50", "between P50 and P90", "above P90"]
    ratio_to_p50: float


class Uncertainty(_Fixed):
    """P10/P50/P90 of GPU-hours, days and dollars over joint draws of the uncertain inputs (--uncertainty)."""

    draws: int
    seed: int
    nominal: Outputs
    gpu_hours: Band
    wall_clock_days: Band
    cost_usd: Band
    tornado: list[TornadoBar]
    """Inputs that move the answer, largest cost swing first."""
    inputs: list[UncertainInput]
    surrogate: Surrogate
    notes: list[str]
    claim: ClaimPosition | None = None


# --------------------------------------------------------------------------- estimate


class EstimateOutput(Document):
    """`costsim estimate MODEL --format json`: the expected run (the layout practitioners use on the stack, realized),
    with the achievable run's headline under `achievable`."""

    model: str
    gpu: str
    """Hardware profile id."""
    basis: Literal["expected"]
    stack: str
    realization: float
    """Realized / modelled step time applied to this run."""
    num_gpus: int
    tokens: float
    """Training tokens."""
    seq_len: int
    global_batch_tokens: float
    """Tokens per optimizer step."""
    precision: Precision
    fp8_recipe: Fp8Recipe | None
    """FP8 scaling recipe; null unless the precision is fp8."""
    layout: Layout
    layout_chosen_by_search: bool
    candidates_evaluated: int
    params_total: float
    params_activated: float
    flops_per_token: float
    """Model FLOPs per token, forward and backward (flops_convention)."""
    flops_convention: str
    hardware_flops_per_token: float
    """Model FLOPs plus recomputation."""
    flops_per_token_by_component: dict[str, float]
    """Model FLOPs per token by component (simulator.vocab.FLOP_COMPONENTS; those that arise)."""
    flops_6nd_per_token: float
    """6 x activated parameters, for comparison."""
    total_model_flops: float
    steps: float
    """Optimizer steps."""
    micro_batches: int
    """Micro-batches per step per pipeline."""
    step_time_s: float
    tokens_per_s_per_gpu: float
    model_tflop_per_s_per_gpu: float
    mfu: float
    """Model FLOPs utilisation against the dense peak of the precision used (mfu_basis)."""
    hfu: float
    """Hardware FLOPs utilisation (recomputation included), same basis."""
    mfu_basis: str
    mfu_bf16_peak: float
    """MFU against the dense BF16 peak whatever the precision."""
    memory_per_gpu_gib: float
    memory_breakdown_gib: dict[str, float]
    """Memory per GPU by component (weights, gradients, optimizer, activations, other, total), GiB."""
    gpu_memory_gib: float
    ideal_gpu_hours: float
    """GPU-hours without failures and restarts."""
    gpu_hours: float
    ideal_wall_clock_days: float
    wall_clock_days: float
    goodput: Goodput
    usd_per_gpu_hour: float
    price_source: str
    price_quote: PriceQuote
    cost_usd: float
    cost: CostBlock
    breakdown: dict[str, float]
    """Seconds per step by component on the slowest pipeline rank (simulator.vocab.STEP_COMPONENTS; those that
    arise); they sum to step_time_s."""
    stage_layers: list[int]
    """Transformer layers on each pipeline stage."""
    pipeline_ranks: list[PipelineRank]
    efficiency_source: str
    assumptions: Assumptions
    notes: list[str]
    """Where the answer leans on something worth a look."""
    achievable: Headline
    """The achievable run: the best layout the stack offers, as modelled, without TP-communication overlap unless
    --tp-overlap is given; `costsim search` tries both and its best is never slower."""
    uncertainty: Uncertainty | None = None
    """With --uncertainty."""


# --------------------------------------------------------------------------- estimate --plan


class PlanStage(_Fixed):
    """One training stage of a plan: its expected run, its cost and its achievable run."""

    name: str
    kind: Literal["training"]
    gpu: str
    num_gpus: int
    tokens: float
    seq_len: int
    global_batch_tokens: float
    precision: Precision
    steps: float
    layout: Layout
    layout_chosen_by_search: bool
    flops_per_token: float
    total_model_flops: float
    step_time_s: float
    tokens_per_s_per_gpu: float
    model_tflop_per_s_per_gpu: float
    mfu: float
    mfu_basis: str
    mfu_bf16_peak: float
    memory_per_gpu_gib: float
    ideal_gpu_hours: float
    gpu_hours: float
    gpu_hours_split: dict[str, float]
    """GPU-hours by part: training, and failures (ETTR)."""
    ideal_wall_clock_days: float
    wall_clock_days: float
    goodput: Goodput
    peak_flop_per_s: float
    """Dense peak of the stage's GPU at its precision."""
    usd_per_gpu_hour: float
    cost_usd: float
    cost: CostBlock
    source: str | None
    notes: str | None
    """The plan's own notes on the stage: what its sources leave out."""
    estimate_notes: list[str] = []
    """What the training model says of the stage's expected run (exposed communication, a memory-model miss where
    the stage ran at its layout, MFU beyond published runs, ...), as `estimate` prints them."""
    ran_at_layout: bool = False
    """The stage's source states the run trained at its layout (costed as if it fitted where the memory model says
    it does not)."""
    achievable: Headline | None = None


class RLPhase(_Fixed):
    """One phase of an RL stage's response-length schedule at the stated values (docs/model.md §17)."""

    from_step: int
    steps: int
    rollouts: float
    mean_response_len: float
    max_response_len: int
    rollout_wall_s: float
    """Wall seconds of one rollout and the training on it."""
    generation: dict
    """The rollout's generation: responses, GPUs, lengths, decode layout, tokens/s, prefill, bulk and tail seconds."""
    refit_s: float
    offload: dict | None = None
    """The trainer's state moved to host memory before the refit and back before training (offload_training_state):
    optimizer_bytes, weight_bytes, to_host_s, back_s per GPU; None where the stage keeps it on the GPUs."""
    engine_sleep_wake_s: float = 0.0
    """Colocated: the rollout engine's weights to pinned host memory after generation and back before the refit."""
    logprob_offload: dict | None = None
    """The optimizer states moved to host memory before the log-prob passes and back before training
    (offload_optimizer_for_logprob): optimizer_bytes, weight_bytes (0), to_host_s, back_s per GPU; None where they stay."""
    gpu_hours: dict[str, float]
    """The phase's GPU-hours by part (before failures)."""
    logprob: dict | None = None
    training: dict | None = None


class RLPlanStage(_Fixed):
    """An RL or generation stage of a plan (docs/model.md §17): GPU-hours split by part, the band of the stated
    inputs, dollars, the phases and the assumptions."""

    name: str
    kind: Literal["rl", "generation"]
    gpu: str
    num_gpus: int
    generation_gpus: int
    training_gpus: int | None = None
    colocated: bool | None = None
    policy: Literal["on_policy", "one_step_off_policy"] | None = None
    steps: int | None = None
    responses_per_step: int | None = None
    responses_per_rollout: int | None = None
    responses: int | None = None
    """A generation stage's responses (prompts x samples)."""
    schedule: str | None = None
    """How a step's parts combine: colocated or split, synchronous or one-step off-policy."""
    step_time_s: float | None = None
    """Mean wall seconds per optimizer step (before failures)."""
    generated_tokens: float
    gpu_hours: float
    gpu_hours_split: dict[str, float]
    """GPU-hours by part: generation, logprob, training, refit, idle, failures; they sum to gpu_hours."""
    gpu_hours_share: dict[str, float]
    gpu_hours_band: dict[str, float]
    """GPU-hours with the banded inputs at their value, low and high ends."""
    ideal_gpu_hours: float
    wall_clock_days: float
    ettr: float
    usd_per_gpu_hour: float
    cost_usd: float
    cost: CostBlock
    phases: list[RLPhase]
    assumptions: list[dict]
    source: str | None
    notes: str | None


class BasePlanOutput(_Fixed):
    """The plan the starting checkpoint comes from, with its published figures (not in this plan's totals)."""

    plan: str
    display_name: str | None
    stages: list[str] | Literal["all"]
    note: str | None
    reported: list[dict]
    in_totals: Literal[False]
    estimate_with: str


class PlanAchievable(_Fixed):
    """The plan's totals with every stage at its achievable layout."""

    gpu_hours: float
    ideal_gpu_hours: float
    wall_clock_days: float
    cost_usd: float
    error_vs_reported: float | None = None
    """GPU-hours / the reported whole-plan GPU-hours - 1, where the plan reports one."""


class ReportedCheck(_Fixed):
    """A published GPU-hour figure the plan quotes, against the prediction."""

    stages: list[str] | Literal["all"]
    reported_gpu_hours: float
    predicted_gpu_hours: float
    error: float
    """predicted / reported - 1."""
    achievable_gpu_hours: float
    reported_cost_usd: float | None
    source: str
    quote: str
    note: str | None
    gpu: str | None = None
    num_gpus: int | None = None
    unlike: str | None = None
    """Where the figure's GPU or GPU count differs from the stages it covers: what differs (the error then compares
    unlike runs); null: none stated differs."""
    reported_wall_hours: float | None = None
    predicted_wall_hours: float | None = None


class PlanOutput(Document):
    """`costsim estimate --plan PLAN --format json`: every stage, the totals (stages run one after another) and cost."""

    plan: str
    display_name: str | None
    plan_file: str
    source: str
    model: str
    gpu: str
    """The plan's default GPU (a stage may name another)."""
    stages: list[Annotated[PlanStage | RLPlanStage, Field(discriminator="kind")]]
    tokens: float
    """Tokens of the training stages."""
    total_model_flops: float
    ideal_gpu_hours: float
    gpu_hours: float
    gpu_hours_split: dict[str, float]
    """GPU-hours by part over every stage (generation, logprob, training, refit, idle, failures)."""
    wall_clock_days: float
    usd_per_gpu_hour: float
    cost_usd: float
    cost: CostBlock
    achievable: PlanAchievable
    reported: list[ReportedCheck]
    notes: str | None
    caveats: list[str] = []
    """What the validation data say beyond the plan's stated inputs (an MoE model's RL stages read as a lower bound)."""
    reported_gpu_hours: float | None = None
    """The reported whole-plan GPU-hours, where the plan quotes one."""
    error_vs_reported: float | None = None
    base: BasePlanOutput | None = None
    uncertainty: Uncertainty | None = None


# --------------------------------------------------------------------------- search


class Candidate(_Fixed):
    """One valid layout, in rank order (fits first)."""

    rank: int
    layout: Layout
    feasible: bool
    """Fits in GPU memory."""
    step_time_s: float
    gpu_hours: float
    cost_usd: float
    mfu: float
    memory_per_gpu_gib: float
    reason: str
    """Why it does not fit; empty when it does."""


class BestCandidate(Candidate):
    breakdown_s: dict[str, float]
    """Seconds per step by component."""


class Closest(_Fixed):
    """When nothing fits: the layout needing the least memory."""

    layout: Layout
    memory_per_gpu_gib: float
    reason: str


class TermDifference(_Fixed):
    term: str
    reference_minus_best_s: float


class WhySlower(_Fixed):
    """Why the best layout beats the reference: per-term step-time differences, largest first."""

    reference_layout: Layout
    best_layout: Layout
    reference_step_time_s: float
    best_step_time_s: float
    slower_by: float
    """reference / best step time - 1."""
    terms_s: list[TermDifference]
    summary: str


class SearchReference(_Fixed):
    """Where the reference layout (--reference, else the model's published one) ranks."""

    layout: PartialLayout
    source: str
    rank: int | None
    """Null when no valid layout matches it on this cluster (then `note` says so)."""
    note: str | None = None
    feasible: bool | None = None
    step_time_s: float | None = None
    in_top_10_feasible: bool | None = None
    why_slower: WhySlower | None = None


class SearchExpected(_Fixed):
    """The expected run among the candidates: the best layout of the stack's practice, realized."""

    layout: Layout
    realization: float
    step_time_s: float
    gpu_hours: float
    cost_usd: float


class SearchOutput(Document):
    """`costsim search --format json`: every valid layout, ranked, with the best's breakdown."""

    model: str
    gpu: str
    num_gpus: int
    tokens: float
    seq_len: int
    global_batch_tokens: float
    precision: Precision
    objective: Literal["time", "cost"]
    grid_size: int
    """Layouts in the grid before the rules."""
    invalid_by_rule: dict[str, int]
    """Layouts ruled out, by rule."""
    evaluated: int
    feasible: int
    gpu_memory_gib: float
    best: BestCandidate | None
    """Null when no layout fits (then `closest` is given)."""
    reference: SearchReference | None
    candidates: list[Candidate]
    """Best first: the --top of them (JSON and CSV default 1,000; `evaluated` says how many there were)."""
    closest: Closest | None = None
    stack: str
    price_quote: PriceQuote
    expected: SearchExpected | None
    """Null when no layout of the stack's practice is valid."""


# --------------------------------------------------------------------------- sweep


class SweepExpected(_Fixed):
    gpu_hours: float
    cost_usd: float
    wall_clock_days: float
    layout: Layout


class SweepRow(_Fixed):
    """The best (achievable) layout of one GPU type and cluster size; the numbers are null when nothing fits."""

    gpu: str
    num_gpus: int
    feasible: bool
    layout: Layout | None
    step_time_s: float | None
    wall_clock_days: float | None
    gpu_hours: float | None
    cost_usd: float | None
    mfu: float | None
    memory_per_gpu_gib: float | None
    candidates: int
    reason: str
    exposed_comm_s: float | None
    """Communication on the critical path per step, plus the SM share overlapped communication takes."""
    usd_per_gpu_hour: float | None
    price_kind: str | None
    price_date: str | None
    price_flagged: bool
    expected: SweepExpected | None = None
    """The expected run on this cluster."""


class SweepAnswer(_Fixed):
    """The answer to --deadline-days or --budget-usd."""

    value: float
    answer: SweepRow | None
    reason: str


class SweepOutput(Document):
    """`costsim sweep --format json`: one row per GPU type and cluster size."""

    model: str
    precision: Precision
    rows: list[SweepRow]
    deadline_days: SweepAnswer | None = None
    """With --deadline-days: the cheapest cluster finishing in time."""
    budget_usd: SweepAnswer | None = None
    """With --budget-usd: the fastest cluster within the budget."""


# --------------------------------------------------------------------------- claim


class ConventionRates(_Fixed):
    """The claim's implied FLOP rate per GPU under one FLOP-counting convention."""

    description: str
    flops_per_token: float
    tflops_per_gpu: float
    mfu_bf16: float
    mfu_fp8: float | None


class BestPublished(_Fixed):
    id: str
    mfu: float


class StageHours(_Fixed):
    name: str
    expected_gpu_hours: float
    achievable_gpu_hours: float


class ClaimPrediction(_Fixed):
    """costsim's two numbers for the claimed run (or the plan's stages it covers)."""

    gpu_hours: float
    expected_gpu_hours: float
    achievable_gpu_hours: float
    achievable_layout: Layout
    stack: str
    ideal_gpu_hours: float
    num_gpus: int
    seq_len: int
    global_batch_tokens: float
    layout: Layout
    layout_source: str
    achievable_basis: str
    """The achievable run's layout in words: 'the best layout' (searched), the published run's or the plan stages'."""
    stages: list[StageHours] | None = None
    """With --plan: each covered stage's two numbers."""


class ClaimOutput(Document):
    """`costsim claim --format json`: implied rates, rank among published runs, costsim's prediction and the verdict."""

    model: str
    gpu: str
    claimed_gpu_hours: float
    tokens: float
    num_gpus: int | None
    precision: str
    """The claim's precision (plans: the stages' joined with +)."""
    precision_source: str
    implied_tokens_per_s_per_gpu: float
    implied_tflops_per_gpu: float
    """Under flops_convention."""
    flops_convention: str
    mfu_bf16: float
    mfu_fp8: float | None
    mfu_at_claimed_precision: float
    flops_conventions: dict[str, ConventionRates]
    """By convention: 6nd, 6nd_causal_attention (costsim's model FLOPs), hardware."""
    implied_days: float | None
    percentile: float
    """Percentile of the claim's MFU among the published runs."""
    percentile_basis: str
    best_published: BestPublished
    predicted_gpu_hours: float | None
    prediction: ClaimPrediction | None
    """Null without --num-gpus (or a plan)."""
    ratio_claim_to_prediction: float | None
    validation_max_abs_error: float
    verdict: Literal["implausible", "optimistic", "frontier", "plausible"]
    reason: str
    plan: str | None
    stages: list[str] | None
    scope: str
    claimed_usd: float | None
    usd_per_gpu_hour: float | None
    price_source: str | None
    gpu_hours_source: str
    uncertainty: Uncertainty | None = None


# --------------------------------------------------------------------------- compare


class RunSummary(_Fixed):
    """A plan's totals as one run."""

    name: str
    gpu: str
    precision: str
    tokens: float
    flops_per_token: float
    total_model_flops: float
    peak_flop_per_s: float
    achieved_flop_per_s_per_gpu: float
    efficiency: float
    goodput: float
    ideal_gpu_hours: float
    gpu_hours: float
    reported_gpu_hours: float | None


class Factors(_Fixed):
    """The five factors whose product is the GPU-hours ratio a / b."""

    flops_per_token: float
    tokens: float
    peak: float
    efficiency: float
    goodput: float


class FactorDetail(_Fixed):
    factor: Literal["flops_per_token", "tokens", "peak", "efficiency", "goodput"]
    meaning: str
    a: float
    b: float
    value: float
    """The factor: a / b, or b / a for the inverse ones (peak, efficiency, goodput)."""


class CompareAchievable(_Fixed):
    """The same comparison of the achievable runs."""

    ratio: float
    factors: Factors
    factor_details: list[FactorDetail]
    product_of_factors: float
    a_gpu_hours: float
    b_gpu_hours: float


class CompareOutput(Document):
    """`costsim compare A B --format json`: GPU-hours of A / B as a product of five factors."""

    basis: Literal["expected"]
    a: RunSummary
    b: RunSummary
    ratio: float
    ratio_basis: str
    factors: Factors
    factor_details: list[FactorDetail]
    product_of_factors: float
    reported_ratio: float | None = None
    """Where both plans report GPU-hours."""
    achievable: CompareAchievable


# --------------------------------------------------------------------------- validate public


class PublicCase(_Fixed):
    """One published run predicted in the unit it reports."""

    id: str
    source: str
    quote: str
    model: str
    gpu: str
    num_gpus: int
    precision: Precision
    tokens: float
    seq_len: int
    global_batch_tokens: float
    metric: Literal[
        "gpu_hours",
        "wall_clock_days",
        "time_to_train_minutes",
        "step_time_s",
        "tokens_per_s_per_gpu",
        "model_tflop_per_s_per_gpu",
        "eq3_tflop_per_s_per_gpu",
    ]
    unit: str
    includes_failures: bool | None
    reported: float
    predicted: float
    error: float
    """predicted / reported - 1 in the metric's unit."""
    leave_one_out_error: float | None
    fitted_constants: list[str]
    layout_published: PartialLayout
    layout: Layout
    """The layout predicted: the published fields, the rest searched."""
    layout_searched: bool
    why: str
    memory_model_miss: str | None
    track: Literal["steady_state", "whole_run"]
    scope: Literal["run", "broader"]


class SizeTrendFit(_Fixed):
    """The trend of log(1 + error) against log(parameters) over a family of rows (analysis.size_trend)."""

    n: int
    pearson_r: float
    slope_per_e_fold: float
    slope_standard_error: float
    p_value: float
    """Two-sided permutation p-value of r (fixed seed)."""
    trend_present: bool
    """p_value below analysis.size_trend.TREND_ALPHA."""


class PartialSizeTrend(SizeTrendFit):
    controls: list[str]
    """The row settings held fixed (regressed out of both sides)."""


class SizeTrend(SizeTrendFit):
    family: str
    convention: str
    partial: PartialSizeTrend
    """The trend with the row's recomputation, GPU count and GPU type held fixed: size's own share."""


class Track(_Fixed):
    """One validation track: its cases, errors and targets. Keys without `_leave_one_out` are in-sample (each case's
    `error`); with it, each case that constrained a fitted constant is at its leave-one-out error (whole runs: the
    realization's), the others in-sample."""

    n: int
    median_abs_error: float | None
    """Median |error| in-sample: of the cases' `error`."""
    max_abs_error: float | None
    """Largest |error| in-sample."""
    median_abs_error_leave_one_out: float | None
    """Median |error| with every case a constant was fitted on at its leave-one-out error."""
    max_abs_error_leave_one_out: float | None
    """Largest |error| with every case a constant was fitted on at its leave-one-out error."""
    target: dict[str, float]
    """Each target by the key it bounds (medians: at most; band_coverage and n: at least; size_trend_p_value: the size
    trend's p-value at least)."""
    meets_target: bool
    n_flagged: int | None = None
    """Whole runs: cases whose figure covers more than the run (scope `broader`): shown, not fitted."""
    median_abs_error_without_flagged: float | None = None
    """Whole runs: median |error| in-sample over the cases that are not flagged."""
    median_abs_error_leave_one_out_without_flagged: float | None = None
    """Whole runs: median |error| leave-one-out over the cases that are not flagged (issue 11's target)."""
    band_coverage: float | None = None
    """Whole runs: share of the cases whose leave-one-out error lies inside the P10-P90 band."""
    band: str | None = None
    size_trend: SizeTrend | None = None
    """Steady state: whether the llm-foundry rows' error drifts with model size (issue 11's target)."""


class Tracks(_Fixed):
    steady_state: Track
    whole_run: Track


class Excluded(_Fixed):
    id: str
    reason: str


class ValidatePublicOutput(Document):
    """`costsim validate public --format json`: every published run predicted, the tracks and the summary."""

    cases: list[PublicCase]
    tracks: Tracks
    n_cases: int
    median_abs_error: float
    max_abs_error: float
    worst_case: str
    n_fitted_cases: int
    """Cases that constrained a fitted constant (costsim fit): those with a leave_one_out_error."""
    median_abs_error_leave_one_out_fitted_cases: float | None
    """Median |leave_one_out_error| over those n_fitted_cases alone (the tracks' median_abs_error_leave_one_out also
    counts each other case in-sample); null when no case constrained a fit."""
    error_convention: str
    meets_target: bool
    excluded: list[Excluded]


# --------------------------------------------------------------------------- validate local, calibrate check


class AssumptionsChanged(_Fixed):
    gemm_sustain: float
    memory_reserved_bytes: float


class LocalCase(_Fixed):
    """One small transformer trained here, against the step model."""

    case: str
    recompute: Literal["none", "full"]
    """Activation recomputation the case trained with (full: one checkpoint per layer)."""
    params: float
    layers: int
    d_model: int
    batch: int
    seq_len: int
    measured_step_time_s: float
    measured_spread: float
    predicted_step_time_s: float
    error: float
    """predicted / measured - 1."""
    predicted_breakdown_s: dict[str, float]
    first_loss: float
    last_loss: float
    measured_peak_memory_bytes: float | None = None
    """On a GPU."""
    predicted_peak_memory_bytes: float | None = None
    memory_error: float | None = None


class RecomputeCost(_Fixed):
    """What full recomputation added to a case that also ran without it."""

    case: str
    base: str
    measured_extra_s: float
    predicted_extra_s: float
    measured_over_predicted: float | None
    """None where the step model charges no extra time."""


class LocalDecodeCase(_Fixed):
    """One small transformer generating here with a KV cache, against `costsim serve`'s decode step."""

    case: str
    params: float
    layers: int
    d_model: int
    batch: int
    """Sequences, one new token each per step."""
    prompt_len: int
    new_tokens: int
    timed_steps: int
    mean_context: float
    """Cached positions per sequence over the timed steps (serve's input + output / 2)."""
    measured_step_time_s: float
    measured_spread: float
    predicted_step_time_s: float
    error: float
    """predicted / measured - 1."""
    predicted_breakdown_s: dict[str, float]


class ValidateLocalOutput(Document):
    """`costsim validate local --format json`: small real transformers trained here against the simulator."""

    device: str
    device_kind: Literal["cpu", "cuda"]
    cpu_threads: int | None
    calibration: str
    calibration_date: str
    efficiency_source: str
    assumptions_changed: AssumptionsChanged
    steps: int
    warmup_steps: int
    cases: list[LocalCase]
    median_abs_error: float | None
    """None when only decode cases ran (--case)."""
    target_median_abs_error: float
    median_abs_memory_error: float | None
    target_memory_error: float | None
    skipped: list[str]
    """Cases that did not fit this GPU's memory."""
    recompute_costs: list[RecomputeCost]
    serving_efficiency_source: str
    """The rates of the decode prediction: the calibration with its serving fits."""
    decode_cases: list[LocalDecodeCase]
    decode_median_abs_error: float | None


class RateDrift(_Fixed):
    rate: str
    stored: float
    measured: float
    drift: float
    """measured / stored - 1."""
    tolerance: float
    """The drift allowed to this rate (the serving tolerance for the decode rates)."""
    ok: bool


class CalibrateCheckOutput(Document):
    """`costsim calibrate check FILE --format json`: a stored calibration measured again."""

    file: str
    stored_device: str
    stored_date: str
    measured_device: str | None
    tolerance: float
    serving_tolerance: float
    """The drift allowed to the decode (serving) rates, latency-bound points that drift more between runs."""
    fit_matches_samples: bool
    fit_mismatches: list[str]
    device_matches: bool | None
    device_mismatches: list[str]
    rates: list[RateDrift]
    not_measured_again: list[str]
    not_fitted_again: list[str]
    """Decode GEMM fits of the file that this run found no memory-bound point for: listed, not failed."""
    timed_otherwise: list[str]
    """Decode rates the file's samples were timed another way than now's (queued from the host, not CUDA graphs):
    not compared (their ratio is the change of method), listed; recalibrate to check them."""
    ok: bool


# --------------------------------------------------------------------------- list


class GpuEntry(_Fixed):
    id: str
    name: str
    dense_tflop_per_s_bf16: float
    dense_tflop_per_s_fp8: float | None
    dense_tflop_per_s_fp4: float | None
    """NVFP4, Blackwell only; serving only (costsim serve --precision fp4)."""
    memory_gib: float
    scale_up_gb_per_s_per_direction: float
    scale_out_gbit_per_s_per_gpu: float
    usd_per_gpu_hour: float
    price_kind: str
    price_date: str
    generation: str | None
    aliases: str
    """Space-separated."""


class GpusOutput(Document):
    """`costsim list gpus --format json`."""

    gpus: list[GpuEntry]


class ModelEntry(_Fixed):
    name: str
    params_total: int
    params_activated: int
    n_layers: int
    d_model: int
    attention: Literal["MHA", "GQA", "MQA", "MLA"]
    ffn: str
    moe_routed_experts: int | None
    moe_top_k: int | None


class ModelsOutput(Document):
    """`costsim list models --format json`."""

    models: list[ModelEntry]


class StackEntry(_Fixed):
    name: str
    default: bool
    description: str
    attention: str
    fp8: str
    """FP8 recipes, space-separated."""
    expert_gemm_launch: str
    """grouped (one kernel for a MoE layer's local experts) or per_expert (one host launch each, docs/model.md §7.8)."""
    fp8_tensor_scaling: str
    """How the tensor FP8 recipe scales: delayed (amax history) or current (each tensor's own amax, §7.8)."""
    sources: str
    """Semicolon-separated."""


class StacksOutput(Document):
    """`costsim list stacks --format json`."""

    stacks: list[StackEntry]


class PlanEntry(_Fixed):
    """A shipped plan (costsim estimate --plan NAME)."""

    name: str
    model: str
    gpu: str
    stages: list[str]
    kinds: list[Literal["training", "rl", "generation"]]
    reported_gpu_hours: float | None
    """The published GPU-hours of the whole plan, where its file quotes one."""
    source: str


class PlansOutput(Document):
    """`costsim list plans --format json`."""

    plans: list[PlanEntry]


class WorkloadLengths(_Fixed):
    """The lengths a workload is costed at (simulator/model/serve/workload.py, docs/model.md §16.15), tokens."""

    mean_input_len: float
    mean_output_len: float
    prefill_input_len: float
    """E[I^2] / E[I]: the token-weighted prompt the prefill is costed at."""
    decode_input_len: float
    """E[O I] / E[O]: the output-weighted prompt of a decode slot."""
    decode_output_len: float
    """E[O^2] / E[O]: the length-biased output of a decode slot."""
    decode_context_len: float
    """decode_input_len + decode_output_len / 2: the KV a running sequence holds on average."""
    max_input_len: float
    max_output_len: float
    max_context_len: float


class WorkloadEntry(WorkloadLengths):
    """A shipped workload (costsim serve --workload NAME)."""

    name: str
    display_name: str | None
    source: str


class WorkloadsOutput(Document):
    """`costsim list workloads --format json`."""

    workloads: list[WorkloadEntry]


class WorkloadEcho(WorkloadLengths):
    """The workload a serve request took its lengths from."""

    name: str
    """The shipped name or the path given."""
    display_name: str | None
    source: str
    sliding_window: int | None
    """The model's sliding window, tokens (null: none)."""
    decode_window_positions: float | None
    """Under a sliding window, the positions a decode step reads per sequence, averaged exactly over the workload's
    decode slots (what decode_context_len becomes once each sequence's cache stops at the window)."""


# --------------------------------------------------------------------------- serving (costsim serve, validate serve, fleet)


class ServeRequestEcho(_Fixed):
    input_len: float
    """Prompt tokens per request (with a workload, its mean)."""
    output_len: float
    workload: WorkloadEcho | None
    """The length distribution, where --workload gave one (input_len and output_len are then its means)."""
    cache_hit_rate: float
    phase: Literal["both", "prefill", "decode"]
    deployment: Literal["disaggregated", "colocated"]
    kv_dtype: Literal["bf16", "fp8"]
    mtp_depth: int
    mtp_accept: float | None
    two_batch_overlap: bool
    """Whether the engine may hide the MoE exchange under a second micro-batch (--no-two-batch-overlap: it does not)."""
    kv_admission: KvAdmission
    """What a running sequence holds of the KV pool: the tokens it has, or its prompt and whole output (TensorRT-LLM)."""
    kv_memory_fraction: float
    """The KV pool's share of the memory left after weights, activations and the reserve."""
    host_s_per_sequence: float
    """The engine's host time per running sequence per decode step (0: hidden at any batch)."""
    min_tokens_per_s_per_user: float | None
    """The per-user speed target (from --tpot-ms or --min-tokens-per-s-per-user); null: none."""
    ttft_s: float | None


class PrefillLayout(_Fixed):
    tp: int
    dp: int
    """Attention data-parallel groups per stage (1 where a MoE model's experts are TP-sharded, and for a dense one)."""
    pp: int
    ep: int
    """Expert-parallel degree: tp x dp for a MoE model whose experts spread whole over the stage; 1 TP-sharded."""
    gpus: int
    precision: str


class Prefill(_Fixed):
    input_tokens_per_s_per_gpu: float
    """Prompt tokens per second per GPU, cache hits included."""
    computed_tokens_per_s_per_gpu: float
    """Tokens the prefill pass computes per second per GPU: the prompts' cache misses in whole tokens, at least one a
    prompt (what computing a token costs, the alternative to loading a cached one)."""
    uncached_tokens_per_s_per_gpu: float
    """The prompts' cache misses per second per GPU: input_tokens_per_s_per_gpu x (1 - the cache-hit rate), the mean
    misses the passes serve; usd_per_million_input_tokens is priced at it over gpu_time_held_per_prefill, so a day's
    misses at that price cost what its passes hold."""
    gpu_time_held_per_prefill: float
    """GPU time a prompt's prefill holds over its own pass time: above 1 for a co-located MoE deployment with attention
    DP, where a group's prefill stalls the stage's other groups (docs/model.md §16.7); 1 otherwise."""
    cached_token_gpu_s: float
    """GPU-seconds of one cache-hit token besides the pass: loading its KV over the GPU's network link, or computing
    it where that is cheaper (what usd_per_million_cached_input_tokens prices); input_tokens_per_s_per_gpu leaves it
    out, so a day's prefill GPU time is input / that rate + cache hits x this."""
    ttft_s: float
    """The forward pass that holds a request, plus the KV transfer when disaggregated (with a workload, a pass at the
    token-weighted prompt)."""
    prompts_per_pass: int
    layout: PrefillLayout
    memory_per_gpu_gib: dict[str, float]
    """A prefill GPU's memory by component, as the decode's memory_per_gpu_gib: weights, kv_cache (the cache its pass
    writes; co-located, the decode's cache it joins), activations (co-located, the larger of the pass's and the
    decode's), reserved, kv_pool_unused (with a KV pool of less than the free memory) and total."""
    breakdown_s: dict[str, float]
    """Seconds of one prefill pass by component; they sum to the pass (ttft_s less any KV transfer). `ep_comm` is the
    expert exchange its overlap leaves exposed, `comm_sm_contention` what the hidden part costs the compute."""


class DecodeLayout(_Fixed):
    tp: int
    dp: int
    """Attention data-parallel groups per stage."""
    pp: int
    ep: int
    gpus: int
    precision: str


class Decode(_Fixed):
    output_tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    tpot_s: float
    batch_per_gpu: float
    """Sequences per GPU in one micro-batch."""
    stage_time_s: float
    """One decode step of one micro-batch on a GPU of the busiest stage."""
    micro_batches: int
    """1, or 2 where the step's sequences run as two halves, one's EP exchange hidden under the other's compute."""
    layout: DecodeLayout
    breakdown_s: dict[str, float]


class PerRequest(_Fixed):
    gpu_s: float
    prefill_gpu_s: float
    cached_input_gpu_s: float
    """Loading the request's cache hits."""
    decode_gpu_s: float
    usd: float
    """At the utilization given, as the $/M figures."""
    output_tokens_per_s_per_gpu: float
    """Output tokens per busy GPU-second with prefill included (offline benchmarks' figure)."""
    total_tokens_per_s_per_gpu: float


class KindMargin(_Fixed):
    list_usd_per_million: float
    cost_usd_per_million: float
    margin: float | None
    """List price / modelled cost - 1; null when the cost is 0 (a GPU-hour priced at 0)."""


class ListPrices(_Fixed):
    sheet: str
    model: str
    provider: str
    date: str
    source: str
    by_kind: dict[str, KindMargin]
    flag: str | None = None
    """Where the sheet prices another architecture than the one served (or names none): what differs."""


class CurvePoint(_Fixed):
    tokens_per_s_per_user: float
    tokens_per_s_per_gpu: float


class Assumption(_Fixed):
    name: str
    value: Any
    source: str


class ServeOutput(Document):
    """`costsim serve MODEL --format json`: prefill and decode rates per GPU, latency, memory, $ per million tokens."""

    model: str
    gpu: str
    request: ServeRequestEcho
    kv_cache_bytes_per_token: float
    prefill: Prefill | None = None
    usd_per_million_input_tokens: float | None = None
    """Dollars per million uncached input tokens: the prompt tokens prefill computes (cache misses), at its computed
    rate (a co-located MoE deployment's over gpu_time_held_per_prefill, the stage time a prefill holds). Not per input
    token of every kind: cache hits are priced by usd_per_million_cached_input_tokens, and all
    input at hit rate h costs (1 - h) x this + h x that. This one rises with h, as the missed tokens attend
    over a longer cached prefix."""
    usd_per_million_cached_input_tokens: float | None = None
    """Dollars per million cached (cache-hit) input tokens: loading their KV over the GPU's network link, or
    computing them where that is cheaper."""
    decode: Decode | None = None
    memory_per_gpu_gib: dict[str, float] | None = None
    usd_per_million_output_tokens: float | None = None
    curve: list[CurvePoint] | None = None
    per_request: PerRequest | None = None
    utilization: float
    list_prices: ListPrices | None = None
    usd_per_gpu_hour: float
    price: CostBlock
    """The cost of one GPU-hour on the chosen basis: cost_usd is usd_per_gpu_hour, energy_mwh and co2_t that hour's."""
    candidates_evaluated: int
    assumptions: list[Assumption]


class ServeCase(_Fixed):
    id: str
    source: str
    model: str
    gpu: str
    num_gpus: int | None
    phase: str
    metric: str
    unit: str
    reported: float
    predicted: float | None
    error: float | None
    """predicted / reported - 1; null when not predicted."""
    predicted_layout: dict[str, Any] | None
    not_predicted_because: str | None
    assumptions: list[str]
    why: str


class ServeTarget(_Fixed):
    n: int
    median_abs_error: float
    max_abs_error: float


class ServeErrors(_Fixed):
    """A group of serving figures' errors (serve_validation._error_summary): a format's curated figures, a grid column."""

    n: int
    median_error: float
    """Signed: above 0, costsim is faster than the figures."""
    median_abs_error: float
    max_abs_error: float


class ServeGridCell(_Fixed):
    id: str
    model: str
    gpu: str
    tp: int
    precision: str
    input_len: int
    output_len: int
    reported: float
    """Output tokens/s per GPU (the table's TP-group total / its GPUs)."""
    predicted: float | None
    error: float | None
    not_predicted_because: str | None


class ServeGridColumn(ServeErrors):
    """One column of a grid table: one model on one GPU, TP group and format."""

    model: str
    gpu: str
    tp: int
    precision: str


class ServeGrid(_Fixed):
    """The throughput grid (validation/serving_grid.yaml): every measured cell of TensorRT-LLM's perf-overview
    tables, predicted as the curated cases are; outside the target."""

    in_target: bool
    n_cells: int
    n_predicted: int
    median_error: float | None = None
    median_abs_error: float | None = None
    max_abs_error: float | None = None
    worst_cell: str | None = None
    within_20_percent: int | None = None
    within_50_percent: int | None = None
    not_predicted_because: dict[str, int]
    """Cells not predicted, counted by reason."""
    by_column: list[ServeGridColumn]
    cells: list[ServeGridCell]


class ValidateServeOutput(Document):
    """`costsim validate serve --format json`: every published serving figure predicted, with the error and the
    targets."""

    cases: list[ServeCase]
    n_cases: int
    n_not_predicted: int
    median_abs_error: float | None
    max_abs_error: float | None
    worst_case: str | None
    by_precision: dict[str, ServeErrors]
    """The predicted figures of each serving precision (bf16, fp8, fp4) apart."""
    error_convention: str
    target: ServeTarget
    meets_target: bool
    grid: ServeGrid | None = None
    """The throughput grid's cells and summary (`costsim validate serve` fills it; outside the target)."""


class FleetOutput(Document):
    """`costsim fleet FLEET --format json`: a day of serving closed from token volumes, deployment units, rates and
    prices."""

    fleet: str
    display_name: str | None = None
    file: str
    source: str
    window: str | None = None
    model: str
    gpu: str
    period: str
    rounding: str
    tokens: dict[str, float]
    deployment: dict[str, Any]
    rates: dict[str, dict[str, Any]]
    """Per phase: value, unit, source ('given in FILE' or the serve command that predicted it), predicted."""
    node_hours: dict[str, float]
    node_hours_unrounded: dict[str, float]
    average_nodes: dict[str, float]
    peak_nodes: dict[str, float]
    gpu_hours: float
    usd_per_gpu_hour: float
    gpu_price_source: str
    cost_usd: float
    prices: dict[str, Any]
    revenue_usd: float
    revenue_by_kind_usd: dict[str, float]
    margin: float
    """Revenue / cost - 1."""
    hourly: list[dict[str, Any]]
    units_at_average: dict[str, int]
    published: dict[str, Any] | None = None
    notes: list[str] | None = None


# --------------------------------------------------------------------------- RL (costsim validate rl, docs/model.md §17.7)


class RLCaseOutput(_Fixed):
    """One published RL figure and its prediction."""

    id: str
    track: Literal["benchmark", "later-release", "phase-breakdown", "plan"]
    """benchmark: a NeMo RL v0.4 GRPO step (the target); later-release: a step of a later NeMo RL release, reported
    beside the target; phase-breakdown: a step whose source gives its seconds by phase (outside the target); plan: a
    DeepSeek-R1 stage through plans/deepseek-r1.yaml."""
    source: str
    evidence: Literal["primary", "secondary"]
    model: str
    gpu: str
    num_gpus: int | None
    metric: str
    unit: str
    reported: float
    predicted: float | None
    error: float | None
    """predicted / reported - 1; null when not predicted."""
    band: list[float] | None
    """The prediction with the banded inputs (long tail) at their low and high ends."""
    split: dict | None
    """Seconds of the step by part (benchmark), or the stages and their GPU-hours (plan)."""
    detail: dict | None
    not_predicted_because: str | None
    assumptions: list[str]
    reported_phases: dict[str, float] | None
    """The source's seconds by phase (generation_s, training_s, logprob_s, refit_s), where it gives them."""
    phase_errors: dict[str, float] | None
    """Predicted / reported - 1 per phase (generation, training, logprob, refit), where the source gives them."""


class RLAssumption(_Fixed):
    name: str
    value: float | int | str | dict
    source: str


class LaterReleaseSummary(_Fixed):
    """The NeMo RL steps of releases after v0.4, predicted with the same rules and reported beside the target."""

    n: int
    median_abs_error: float | None
    max_abs_error: float | None
    within_30_percent: int


class PhaseBreakdownSummary(LaterReleaseSummary):
    """The steps whose source gives seconds by phase: step-time errors as for a track, and each phase's median signed
    error (predicted / reported - 1)."""

    median_phase_error: dict[str, float | None]


class ValidateRLOutput(Document):
    """`costsim validate rl --format json`: every published RL figure predicted, and the summary of the NeMo RL steps."""

    cases: list[RLCaseOutput]
    n_cases: int
    """Benchmark steps predicted."""
    n_not_predicted: int
    median_abs_error: float | None
    max_abs_error: float | None
    worst_case: str | None
    within_target: int
    """Benchmark steps within the target."""
    error_convention: str
    target: dict
    meets_target: bool
    later_release: LaterReleaseSummary
    """The steps of later NeMo RL releases (outside the target)."""
    phase_breakdown: PhaseBreakdownSummary
    """The steps whose source gives seconds by phase (outside the target)."""
    assumptions: list[RLAssumption]


# --------------------------------------------------------------------------- price claims (costsim claim --cheaper)


Kind = Literal["input", "cached_input", "output"]


class ByKind(_Fixed):
    """One figure per token kind."""

    input: float
    cached_input: float
    output: float


class ByKindAndMix(ByKind):
    """One figure per token kind and one for the token mix."""

    mix: float


class OffPeak(_Fixed):
    window_utc: str
    list_usd_per_million: ByKind


class Sheet(_Fixed):
    """A price sheet of prices/ as the claim reads it."""

    id: str
    file: str
    model: str
    provider: str
    date: str
    model_spec: str | None
    source: str
    evidence: Literal["primary", "secondary"]
    list_usd_per_million: ByKindAndMix
    """Standard-hour list prices by kind (cached input at the input price where the sheet has none) and at the mix."""
    cached_input_billed_as_input: bool
    off_peak: OffPeak | None = None


class Sheets(_Fixed):
    a: Sheet
    b: Sheet


class ClaimedRatio(_Fixed):
    text: str
    low: float
    high: float
    low_as_stated: float
    """The lowest value the stated digits stand for ('20' stands for 19.5-20.5)."""
    high_as_stated: float


class Mix(_Fixed):
    input_tokens: float
    output_tokens: float
    input_share: float
    cache_hit_rate: float
    shares: ByKind
    """Share of all tokens by kind."""
    source: str


class Span(_Fixed):
    """The ratios every token mix lies between."""

    lowest: float
    lowest_kind: Kind
    highest: float
    highest_kind: Kind


class PublishedBasis(_Fixed):
    """The inputs a published margin was reached at (its fleet file's)."""

    usd_per_gpu_hour: float
    cache_hit_rate: float
    input_share: float
    """Input tokens (cache hits included) over all tokens."""
    request: dict[str, Any]
    """The fleet's serve request (lengths, latency target) the modelled margin stands for."""


class PublishedMargin(_Fixed):
    margin: float
    source: str
    notes: str | None
    basis: PublishedBasis
    differs: list[str]
    """Each input of this claim's modelled margin that is not the published one's (GPU price, cache hits, mix,
    request); empty where the two margins are comparable."""


class KnownCost(_Fixed):
    """A side whose architecture is known (its sheet's model_spec, or one the user states): costsim serve's costs."""

    sheet: str
    model: str
    unknown_architecture: Literal[False]
    architecture: str
    architecture_source: str
    gpu: str
    usd_per_gpu_hour: float
    gpu_price_source: str
    request: dict[str, Any]
    """The costsim serve options (its keyword names)."""
    request_source: str
    deployment_source: str
    layouts: dict[str, dict[str, Any]]
    usd_per_million_input_tokens: float
    usd_per_million_cached_input_tokens: float
    usd_per_million_output_tokens: float
    usd_per_million_mix: float
    margin: float
    """List price / modelled cost - 1 at the mix."""
    margin_by_kind: ByKind
    serve_command: str
    """The costsim serve command that reports the same costs and margins."""
    published_margin: PublishedMargin | None
    fp4_formats: dict[str, Any] | None = None
    """Where a chosen deployment is fp4: which GEMMs it puts in which format (docs/model.md §16.14)."""


class BandEntry(_Fixed):
    usd_per_million_by_kind: ByKind
    usd_per_million_mix: float
    meaning: str


class PriceBand(_Fixed):
    break_even: BandEntry
    at_other_side_margin: BandEntry | None = None


class UnknownCost(_Fixed):
    """A side whose architecture is not published: no cost, only what its list price bounds."""

    sheet: str
    model: str
    unknown_architecture: Literal[True]
    reason: str
    assumption_band: PriceBand


class Costs(_Fixed):
    a: KnownCost | UnknownCost
    b: KnownCost | UnknownCost


class CostRatio(_Fixed):
    """Cost B / A: modelled where both are known, else the ratios the unknown side's band gives."""

    modelled: ByKindAndMix | None = None
    break_even: ByKindAndMix | None = None
    at_other_side_margin: ByKindAndMix | None = None


class PriceClaimOutput(Document):
    """`costsim claim --cheaper A B --ratio N --format json`: list-price ratios, the claim against them, modelled costs,
    margins."""

    claim: str
    sheets: Sheets
    claimed_ratio: ClaimedRatio
    mix: Mix
    price_ratio: ByKindAndMix
    """List price B / A by token kind and at the mix."""
    price_ratio_span: Span
    within_price_ratio: bool
    """The claimed figure or range meets the span every token mix lies in."""
    mix_ratio_within_claim: bool
    off_peak_price_ratio: ByKindAndMix | None
    gpu: str | None
    gpu_source: str
    cost: Costs
    cost_ratio: CostRatio | None
    verdict: str
    verdict_price: str
    verdict_cost: str
    assumptions: list[Assumption]


# --------------------------------------------------------------------------- the commands


COMMANDS: Final[dict[str, type[Document]]] = {
    "estimate": EstimateOutput,
    "estimate --plan": PlanOutput,
    "search": SearchOutput,
    "sweep": SweepOutput,
    "claim": ClaimOutput,
    "compare": CompareOutput,
    "validate public": ValidatePublicOutput,
    "validate local": ValidateLocalOutput,
    "calibrate check": CalibrateCheckOutput,
    "list gpus": GpusOutput,
    "list models": ModelsOutput,
    "list stacks": StacksOutput,
    "list plans": PlansOutput,
    "list workloads": WorkloadsOutput,
    "serve": ServeOutput,
    "validate serve": ValidateServeOutput,
    "fleet": FleetOutput,
    "validate rl": ValidateRLOutput,
    "claim --cheaper": PriceClaimOutput,
}
"""The JSON document of each command that prints one, by the command as typed."""


def subcommands(group: str) -> list[str]:
    """The described commands of a command group ('validate' -> 'validate public', 'validate local', ...); [] for a
    word that is no group (an option such as estimate --plan is not a subcommand)."""
    return [c for c in COMMANDS if c.split()[0] == group and len(c.split()) > 1 and not c.split()[1].startswith("-")]


def _names(key: str, tokens: list[str], flags: set[str]) -> bool:
    """Whether the command as typed (its tokens and its options' names) is the COMMANDS key `key`: it starts with the
    key's words, and gives each option the key holds (estimate --plan)."""
    key_words = [t for t in key.split() if not t.startswith("-")]
    return tokens[: len(key_words)] == key_words and all(t in flags for t in key.split() if t.startswith("-"))


def command_name(command: str) -> str:
    """The COMMANDS key of a command as typed, with its arguments and options ('estimate llama-3-8b --gpu h100' ->
    'estimate', 'estimate --plan p.yaml' -> 'estimate --plan'): the longest key it names; InputError naming the known
    ones (a group's own, for 'validate foo') otherwise. The arguments and other options do not change the document."""
    tokens = command.split()
    tokens = tokens[1:] if tokens[:1] == ["costsim"] else tokens
    words = [t for t in tokens if not t.startswith("-")]
    flags = {t.split("=", 1)[0] for t in tokens if t.startswith("-")}
    named = [key for key in COMMANDS if _names(key, tokens, flags)]
    if named:
        return max(named, key=lambda key: len(key.split()))
    typed = " ".join(tokens)
    if not typed:  # 'costsim schema costsim': the program's name alone names no command
        raise InputError(f"name a command after 'costsim schema' (e.g. estimate); the commands are {_known()}")
    group = subcommands(words[0]) if words else []
    if group:
        listed = ", ".join(f"'{c}'" for c in group)
        raise InputError(f"no JSON output is described for '{typed}'; {words[0]}'s commands with one are {listed}")
    raise InputError(f"no JSON output is described for '{typed}'; the commands are {_known()}")


def _known() -> str:
    return ", ".join(f"'{c}'" for c in COMMANDS)


def output_model(command: str) -> type[Document]:
    """The model of `command`'s JSON document ('estimate', 'list gpus', 'search --gpu h100', ...; command_name)."""
    return COMMANDS[command_name(command)]


def json_schema(command: str) -> dict:
    """The JSON Schema (draft 2020-12) of `command`'s document, with the schema version it describes."""
    name = command_name(command)
    body = COMMANDS[name].model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"costsim {name} --format json",
        "schema_version": SCHEMA_VERSION,
        **{k: v for k, v in body.items() if k != "title"},
    }
