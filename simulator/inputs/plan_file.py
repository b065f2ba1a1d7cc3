"""Plan files: a training run as stages (pre-training, context extension, fine-tuning, RL), read from YAML.

A plan names the model, the GPU, an optional rental price, and a list of stages. A training stage (the default
kind) gives its tokens, sequence length, batch, precision, GPU count and the layout fields that were published (the
rest are searched). An RL stage (`kind: rl`) gives a GRPO-style loop: prompts and samples per step, prompt and
response lengths by phase of steps, log-prob passes, training on the generated tokens, the GPUs of generation and
training (docs/model.md §17). A generation stage (`kind: generation`) only generates (SFT data by rejection
sampling). `reported` entries quote published GPU-hours for the whole plan or a group of stages; `base` names the
plan that produced the starting checkpoint. Shipped plans live in plans/ and are found by name; analysis/plans.py
estimates them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator

from simulator.errors import SpecError
from simulator.inputs.arguments import reference
from simulator.inputs.data_files import model_dir, plan_dir, yaml_files
from simulator.inputs.files import is_dir, read_yaml, refuse_other_kind, validate
from simulator.inputs.specs import Name, one_line, prose
from simulator.inputs.stacks import load_stack
from simulator.units import (
    GPU_HOURS_RANGE,
    MAX_GPUS,
    MAX_USD_PER_GPU_HOUR,
    MIN_USD_PER_GPU_HOUR,
    SECONDS_PER_HOUR,
    TOKENS_RANGE,
    count_in_range,
)
from simulator.vocab import LAYOUT_FIELDS, Fp8Recipe, KvDtype, Precision, Recompute, Schedule, ServePrecision


def _count(value: object) -> float:
    """14.8T, 300B, 62914560 or 1.5e12 (PyYAML reads 1.5e12 as a string), in (0, 1e17]; pydantic names the field."""
    return count_in_range(value, 0.0, 1e17, low_open=True)


Count = Annotated[float, BeforeValidator(_count)]
HoursCount = Annotated[float, BeforeValidator(lambda v: count_in_range(v, *GPU_HOURS_RANGE))]
"""A published figure (GPU-hours, or dollars on the same scale), in the range `costsim claim --gpu-hours` takes (1e-300
printed a 300-digit error)."""


MAX_TEXT_CHARS = 20_000
"""Prose fields of a plan (sources, quotes, notes): the shipped plans' longest is under 1,000 characters; a hostile file's
megabyte of text would be printed in every table."""
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS), AfterValidator(prose)]
Ref = Annotated[str, Field(min_length=1, max_length=1_000), AfterValidator(one_line)]
"""A shipped name or a file path: one line."""


class _Schema(BaseModel):
    # strict: a count is an integer and a flag true/false (not 1 or "yes"); no number is inf or NaN
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Reported(_Schema):
    """Published GPU-hours (and dollars) for the whole plan, or for the stages listed."""

    gpu_hours: HoursCount
    cost_usd: HoursCount | None = None
    stages: list[str] | None = None
    """Stage names this number covers; absent: the whole plan."""
    source: Text
    quote: Text
    note: Text | None = None
    gpu: Ref | None = None
    """The GPU the figure was run on, where the source names it."""
    num_gpus: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
    wall_hours: Annotated[float, Field(gt=0, le=1e6)] | None = None
    """Wall-clock hours the source states for these stages."""

    @property
    def wall_clock_s(self) -> float | None:
        return None if self.wall_hours is None else self.wall_hours * SECONDS_PER_HOUR


class TrainingLayout(_Schema):
    """The layout fields a training stage publishes (an RL stage's `training_layout`); fields left out are searched."""

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

    def layout(self) -> dict:
        return {k: getattr(self, k) for k in LAYOUT_FIELDS}


class Stage(TrainingLayout):
    kind: Literal["training"] = "training"
    """A training stage (the default kind): tokens through the training step model."""
    name: Name
    tokens: Count
    seq_len: Annotated[int, Field(ge=1, le=10_000_000)]
    global_batch_tokens: Count
    precision: Precision = "bf16"
    num_gpus: Annotated[int, Field(ge=1, le=MAX_GPUS)]
    gpu: Ref | None = None
    """Overrides the plan's GPU for this stage."""
    fp8_recipe: Fp8Recipe | None = None
    """FP8 scaling (default: the model's published recipe, else per-tensor)."""
    ran_at_layout: bool = False
    """The stage's source states that the run trained at the layout fields the stage states: where costsim's memory
    model finds no layout that fits, the stage is costed as if the memory were there and says so, as `validate
    public` predicts a published run (Llama 3.1 405B's 8K stage ran TP8 PP16 without activation checkpointing, which
    the memory model puts above 80 GiB); without it such a stage is refused."""
    source: Text | None = None
    """Where this stage's numbers come from."""
    notes: Text | None = None
    """Assumptions made where the source is silent."""

    @model_validator(mode="after")
    def _states_the_layout_it_ran_at(self) -> Stage:
        missing = [f for f in RAN_AT_LAYOUT_FIELDS if getattr(self, f) is None]
        if self.ran_at_layout and missing:
            raise ValueError(
                f"ran_at_layout: true says the run trained at the stage's layout, but the stage does not state "
                f"{', '.join(missing)}; state them as the source gives them, or drop ran_at_layout (a stage that ran "
                "is costed as if it fitted only at the layout it states)"
            )
        return self


RAN_AT_LAYOUT_FIELDS = ("tp", "pp", "cp", "zero_stage", "recompute")
"""What a stage that sets ran_at_layout must state: the degrees and the memory choices that decide whether a layout
fits (expert parallelism too for an MoE model, checked where the model is known, plans.run_stage); a micro-batch or
virtual-stage count the source leaves out is searched, within the memory the least-needing choice asks for."""


# --------------------------------------------------------------------------- RL and generation stages

MAX_STAGES = 100
"""Most stages a plan may have (the shipped ones have 1-6): each is a layout search of up to ~2 s, so a file of
thousands ran for hours."""
MAX_RESPONSE_PHASES = 200
"""Most response-length phases a plan may have in all its stages (DeepSeek-R1's schedule needs a handful): each is a
rollout and a training estimate of its own, about 0.06 s, so 200 keep a plan within seconds (a review's stage of
1,000 phases ran for 61 s)."""

MAX_TOKENS = 10_000_000
"""Longest prompt or response a stage may state (10M tokens)."""
MAX_STEPS = 100_000_000
Tokens = Annotated[int, Field(ge=1, le=MAX_TOKENS)]


class Banded(_Schema):
    """A stated input with the band it may lie in (low <= value <= high) and where the numbers come from; the
    estimate is made at `value`, and again at `low` and at `high` for the stage's band."""

    value: Annotated[float, Field(gt=0, le=MAX_TOKENS)]
    low: Annotated[float, Field(gt=0, le=MAX_TOKENS)]
    high: Annotated[float, Field(gt=0, le=MAX_TOKENS)]
    source: Text | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Banded:
        if not self.low <= self.value <= self.high:
            raise ValueError(
                f"the band must hold its value: low {self.low:g} <= value {self.value:g} <= high {self.high:g} is "
                "false; set low at or below value and high at or above it"
            )
        return self


class ResponsePhase(_Schema):
    """Responses from `from_step` on (until the next phase): their mean length (a stated, banded input) and the cap
    they are cut at."""

    from_step: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 0
    mean_response_len: Banded
    """Mean generated tokens per response in this phase."""
    max_response_len: Tokens
    """The cap: no response is longer (DeepSeek-R1-Zero: 32,768 before step 8,200, 65,536 after)."""


class GenerationLayout(_Schema):
    """The rollout engine's decode deployment: TP x attention-DP x PP GPUs (docs/model.md §16.1); fields left out are
    searched."""

    tp: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
    dp: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
    pp: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
    max_sequences_per_engine: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    """The engine's cap on sequences in flight in one TP group (vLLM `max_num_seqs`); None: memory alone limits the
    batch."""


class _Generating(_Schema):
    """What every stage that generates states: the rollout engine and the lengths of what it generates."""

    name: Name
    num_gpus: Annotated[int, Field(ge=1, le=MAX_GPUS)]
    """All GPUs of the stage (generation and training together)."""
    gpu: Ref | None = None
    """Overrides the plan's GPU for this stage."""
    samples_per_prompt: Annotated[int, Field(ge=1, le=100_000)]
    mean_prompt_len: Annotated[float, Field(ge=1, le=MAX_TOKENS)]
    """Mean prompt tokens (a stated input)."""
    long_tail_factor: Banded
    """Length of the slowest response of a rollout / the mean response length (capped at the cap): a stated, banded
    input. The rollout ends when the slowest response does (docs/model.md §17.2)."""
    generation_precision: ServePrecision = "bf16"
    """Weights and GEMMs of the rollout engine: bf16, fp8 or fp4 (NVFP4 on Blackwell; docs/model.md §16.14)."""
    kv_dtype: KvDtype = "bf16"
    generation_memory_fraction: Annotated[float, Field(gt=0.05, le=1.0)] = 1.0
    """Share of a GPU's memory the rollout engine may fill (vLLM's gpu_memory_utilization; 1: all of it)."""
    mtp_depth: Annotated[int, Field(ge=0, le=8)] = 0
    """MTP draft tokens per decode step (self-speculative decoding with the model's MTP modules)."""
    mtp_accept: Annotated[float, Field(ge=0.0, le=0.999)] | None = None
    """Share of drafted tokens accepted (DeepSeek-V3 reports 85-90% for its MTP module)."""
    two_batch_overlap: bool = True
    """Whether the rollout engine hides the MoE exchange under a second micro-batch where that is faster (DeepSeek's
    and SGLang's engines do; vLLM only with --enable-dbo). False: one micro-batch, the exchange exposed (docs/model.md
    §16.5)."""
    generation_layout: GenerationLayout = GenerationLayout()
    source: Text | None = None
    notes: Text | None = None

    def _check_generating(self, caps: list[int]) -> None:
        tail = self.long_tail_factor
        if tail.low < 1 or tail.high > 100:
            raise ValueError(
                f"long_tail_factor is the slowest response's length over the mean, so 1 to 100; got low {tail.low:g}, "
                f"high {tail.high:g}: set the band within [1, 100]"
            )
        if self.mtp_depth and self.mtp_accept is None:
            raise ValueError(
                f"mtp_depth {self.mtp_depth} needs mtp_accept, the share of drafted tokens accepted (DeepSeek-V3 "
                "reports 0.85-0.90 for its MTP module); add mtp_accept"
            )
        if self.mtp_accept is not None and not self.mtp_depth:
            raise ValueError(
                "mtp_accept is given but mtp_depth is 0; give mtp_depth (draft tokens per step) or remove mtp_accept"
            )
        if self.mean_prompt_len + max(caps) > MAX_TOKENS:
            raise ValueError(f"mean_prompt_len + max_response_len exceeds {MAX_TOKENS:,} tokens; shorten them")


MAX_GENERATED_TOKENS = TOKENS_RANGE[1]
"""Most tokens a stage may generate: the cap on --tokens (DeepSeek-R1-Zero generated some 10^11)."""


def _check_generated(responses: float, phases: list[ResponsePhase], what: str) -> None:
    tokens = responses * max(p.mean_response_len.high for p in phases)
    if tokens > MAX_GENERATED_TOKENS:
        raise ValueError(
            f"{what} = {tokens:.3g} generated tokens, above {MAX_GENERATED_TOKENS:.0e} (DeepSeek-R1-Zero's RL generated "
            "about 1e11); check the counts and lower them"
        )


def _check_phases(phases: list[ResponsePhase], steps: int | None) -> None:
    starts = [p.from_step for p in phases]
    if starts[0] != 0:
        raise ValueError(f"response_lengths must start at step 0 (the first phase has from_step {starts[0]}); set it to 0")
    if starts != sorted(set(starts)):
        raise ValueError(f"response_lengths: from_step must increase from phase to phase, got {starts}; order the phases")
    if steps is not None and starts[-1] >= steps:
        raise ValueError(
            f"response_lengths: a phase starts at step {starts[-1]:,}, at or after the stage's {steps:,} steps; "
            "start every phase before the last step"
        )
    for p in phases:
        mean = p.mean_response_len
        if mean.low < 1:
            raise ValueError(
                f"response_lengths from step {p.from_step:,}: a mean response of {mean.low:g} tokens is under one token; "
                "give the mean response length (and its band) in tokens, 1 or more"
            )
        if mean.high > p.max_response_len:
            which = "mean" if mean.value > p.max_response_len else "band's high end of the mean"
            shown = mean.value if mean.value > p.max_response_len else mean.high
            raise ValueError(
                f"response_lengths from step {p.from_step:,}: the {which} response length {shown:,.0f} is above the cap "
                f"max_response_len {p.max_response_len:,}; no response is longer than the cap, so lower the mean (and "
                "its band) or raise the cap"
            )


class RLStage(_Generating):
    """A GRPO-style RL stage: each step trains on prompts_per_step x samples_per_prompt responses; a rollout generates
    the responses of `minibatches_per_rollout` steps at once (docs/model.md §17)."""

    kind: Literal["rl"]
    steps: Annotated[int, Field(ge=1, le=MAX_STEPS)]
    """Optimizer steps (DeepSeek-R1-Zero: 10,400)."""
    prompts_per_step: Annotated[int, Field(ge=1, le=10_000_000)]
    """Prompts per optimizer step (DeepSeek-R1-Zero: 32 questions, 512 responses a step)."""
    minibatches_per_rollout: Annotated[int, Field(ge=1, le=100_000)] = 1
    """Optimizer steps trained on the responses of one rollout (DeepSeek-R1-Zero: 8,192 outputs in 16 mini-batches)."""
    inner_epochs: Annotated[int, Field(ge=1, le=100)] = 1
    """Passes of training over each rollout: a rollout trains minibatches_per_rollout x inner_epochs of the stage's
    optimizer steps (so `steps` / that many rollouts)."""
    response_lengths: list[ResponsePhase] = Field(min_length=1, max_length=MAX_RESPONSE_PHASES)
    """The response-length schedule: one phase per change of the mean or of the cap."""
    reference_logprobs: bool = True
    """A forward pass of the reference model over every response (the KL term)."""
    old_policy_logprobs: bool = True
    """A forward pass of the policy before the update (the importance ratio of the clipped objective)."""
    reward_model_passes: Annotated[int, Field(ge=0, le=8)] = 0
    """Forward passes of reward models of the policy's architecture over every response (0: rule-based rewards)."""
    colocated: bool = True
    """Generation and training on the same GPUs, one after the other (weights refit in between)."""
    offload_training_state: bool = False
    """Colocated only: the trainer moves its optimizer states to host memory before each refit and back before
    training, and its weights to a pinned host copy and back (NeMo RL's Megatron backend: `offload_before_refit`,
    `offload_after_refit`, `prepare_for_training`), to leave the GPUs to the rollout engine (docs/model.md §17.4). The
    engine's own weights go to host memory and back on every colocated stage (vLLM sleep level 1, as NeMo RL calls it)."""
    offload_optimizer_for_logprob: bool = False
    """The trainer moves its optimizer states to host memory before the log-prob passes and back before training, every
    rollout, colocated or not (NeMo RL's Megatron worker up to v0.4.0: `prepare_for_lp_inference` called
    `offload_before_refit`; pull request #1404 made it the option `offload_optimizer_for_logprob`, off by default). Where
    offload_training_state is set the states are already on the host then, so it adds nothing (docs/model.md §17.4)."""
    generation_gpus: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = None
    """With colocated false: the GPUs that only generate; the other num_gpus - generation_gpus train."""
    policy: Literal["on_policy", "one_step_off_policy"] = "on_policy"
    """on_policy: each step generates with the latest weights (synchronous); one_step_off_policy: generation of step
    n+1 overlaps training on step n (needs separate generation GPUs)."""
    precision: Precision = "bf16"
    """Training GEMM precision."""
    fp8_recipe: Fp8Recipe | None = None
    training_layout: TrainingLayout = TrainingLayout()
    training_stack: Ref | None = None
    """Software stack preset (costsim list stacks) of the training and log-prob passes; None: today's. NeMo RL's
    Megatron backend of 2025-26 is megatron-core-2025 (experts launched one GEMM at a time, docs/model.md §7.8)."""

    @property
    def responses_per_step(self) -> int:
        return self.prompts_per_step * self.samples_per_prompt

    @property
    def training_gpus(self) -> int:
        return self.num_gpus if self.colocated else self.num_gpus - (self.generation_gpus or 0)

    @property
    def rollout_gpus(self) -> int:
        return self.num_gpus if self.colocated else (self.generation_gpus or 0)

    @model_validator(mode="after")
    def _consistent(self) -> RLStage:
        per_rollout = self.minibatches_per_rollout * self.inner_epochs
        if per_rollout > self.steps:
            raise ValueError(
                f"minibatches_per_rollout {self.minibatches_per_rollout:,} x inner_epochs {self.inner_epochs:,} = "
                f"{per_rollout:,} optimizer steps per rollout is more than the stage's {self.steps:,} steps: a rollout "
                "feeds at most every step of the stage; give at most the steps"
            )
        _check_phases(self.response_lengths, self.steps)
        self._check_generating([p.max_response_len for p in self.response_lengths])
        what = "steps / inner_epochs x prompts_per_step x samples_per_prompt x the longest mean response (its band's high end)"
        responses = float(self.steps) / self.inner_epochs * self.prompts_per_step * self.samples_per_prompt
        _check_generated(responses, self.response_lengths, what)
        if self.colocated and self.generation_gpus is not None:
            raise ValueError(
                f"generation_gpus {self.generation_gpus} is given but colocated is true (generation and training share "
                "all num_gpus); remove generation_gpus, or set colocated: false"
            )
        if not self.colocated:
            if self.generation_gpus is None:
                raise ValueError(
                    "colocated is false but generation_gpus is missing; add generation_gpus (the GPUs that only generate)"
                )
            if self.generation_gpus >= self.num_gpus:
                raise ValueError(
                    f"generation_gpus {self.generation_gpus:,} leaves no training GPUs of num_gpus {self.num_gpus:,}; "
                    "give generation_gpus below num_gpus"
                )
        if self.offload_training_state and not self.colocated:
            raise ValueError(
                "offload_training_state moves the trainer's state out of the way of generation on the same GPUs, so it "
                "needs colocated: true; remove it or set colocated: true"
            )
        if self.policy == "one_step_off_policy" and self.colocated:
            raise ValueError(
                "policy one_step_off_policy overlaps generation with training, which needs GPUs of their own; set "
                "colocated: false with generation_gpus, or policy: on_policy"
            )
        if self.fp8_recipe is not None and self.precision != "fp8":
            raise ValueError(f"fp8_recipe applies to precision fp8 only (got {self.precision}); remove it or set precision: fp8")
        if self.training_stack is not None:
            try:
                load_stack(self.training_stack)
            except SpecError as e:
                raise ValueError(f"training_stack: {e}") from None
        return self


class GenerationStage(_Generating):
    """Generation only, on all num_gpus (SFT data by rejection sampling): prompts x samples_per_prompt responses."""

    kind: Literal["generation"]
    prompts: Annotated[int, Field(ge=1, le=10**12)]
    response_length: ResponsePhase
    """The mean response length (banded) and the cap."""

    @property
    def rollout_gpus(self) -> int:
        return self.num_gpus

    @model_validator(mode="after")
    def _consistent(self) -> GenerationStage:
        _check_phases([self.response_length], None)
        self._check_generating([self.response_length.max_response_len])
        _check_generated(float(self.prompts) * self.samples_per_prompt, [self.response_length],
                         "prompts x samples_per_prompt x the mean response (its band's high end)")  # fmt: skip
        return self


def _stage_kind(value: object) -> str:
    """The kind of a stage entry: its `kind` key, training when absent; a `kind` that is not text as its YAML spelling,
    which matches no kind, so the error lists the kinds there are."""
    kind = value.get("kind", "training") if isinstance(value, dict) else getattr(value, "kind", "training")
    return kind if isinstance(kind, str) else repr(kind)


AnyStage = Annotated[
    Annotated[Stage, Tag("training")] | Annotated[RLStage, Tag("rl")] | Annotated[GenerationStage, Tag("generation")],
    Discriminator(_stage_kind),
]


class BasePlan(_Schema):
    """The plan that produced this plan's starting checkpoint (DeepSeek-R1 starts from DeepSeek-V3-Base)."""

    plan: Ref
    """A shipped plan name."""
    stages: list[str] | None = None
    """The stages of that plan the checkpoint comes from (absent: all)."""
    note: Text | None = None


class Plan(_Schema):
    name: Name
    display_name: Text | None = None
    source: Text
    model: Ref
    """Shipped model name, or a spec YAML / config.json path or a Hugging Face model folder (relative to the plan file)."""
    gpu: Ref
    usd_per_gpu_hour: Annotated[float, Field(ge=MIN_USD_PER_GPU_HOUR, le=MAX_USD_PER_GPU_HOUR)] | None = None
    """The plan's quoted price of a GPU-hour of `gpu`; a stage on another GPU takes that GPU's profile price."""
    price_source: Text | None = None
    experiments_multiplier: Annotated[float, Field(ge=1, le=100)] | None = None
    experiments_source: Text | None = None
    reported: list[Reported] = []
    base: BasePlan | None = None
    """Not estimated with this plan and not in its totals: named so the output can set its reported cost beside."""
    stages: list[AnyStage] = Field(min_length=1, max_length=MAX_STAGES)
    notes: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(dupes)}; give each stage its own name")
        whole = [r for r in self.reported if not r.stages]
        if len(whole) > 1:
            raise ValueError(
                f"reported has {len(whole)} figures for the whole plan (no stages); the error is taken against one: keep "
                "one, or give the others the stages they cover"
            )
        for r in self.reported:
            unknown = [n for n in r.stages or [] if n not in names]
            if unknown:
                raise ValueError(
                    f"reported.stages names unknown stages {unknown}; the stages are {names}: name stages from that "
                    "list, or leave reported.stages out for a figure that covers the whole plan"
                )
        if self.usd_per_gpu_hour is not None and not self.price_source:
            raise ValueError("usd_per_gpu_hour needs a price_source; add price_source: who quotes the price, and when")
        phases = sum(len(s.response_lengths) for s in self.stages if isinstance(s, RLStage))
        if phases > MAX_RESPONSE_PHASES:
            raise ValueError(
                f"the plan's RL stages have {phases:,} response-length phases in all, above {MAX_RESPONSE_PHASES:,} (each "
                "is a rollout and a training estimate of its own); merge phases whose lengths barely differ"
            )
        if self.experiments_multiplier is not None and not self.experiments_source:
            raise ValueError(
                "experiments_multiplier needs an experiments_source; add experiments_source: where the multiplier comes from"
            )
        return self


# --------------------------------------------------------------------------- messages in the plan's terms

LAYOUT_FLAGS = ("tp", "pp", "dp", "ep", "cp", "vpp", "zero-stage", "micro-batch-size", "schedule", "recompute", "tp-overlap")
TRAINING_STAGE_FIELDS = {f"--{f}": f.replace("-", "_") for f in LAYOUT_FLAGS} | {
    "--num-gpus": "num_gpus", "--tokens": "tokens", "--seq-len": "seq_len", "--global-batch-tokens": "global_batch_tokens",
    "--precision": "precision", "--fp8-recipe": "fp8_recipe",
}  # fmt: skip
"""The command-line flags the training model's messages name, as a plan's training stage names them."""
RL_TRAINING_FIELDS = {f"--{f}": f"training_layout.{f.replace('-', '_')}" for f in LAYOUT_FLAGS} | {
    "--num-gpus": "training GPUs",  # num_gpus, less generation_gpus where split
    "--global-batch-tokens": "prompts_per_step x samples_per_prompt", "--precision": "precision",
    "--fp8-recipe": "fp8_recipe", "--stack": "training_stack",
}  # fmt: skip
"""The same, as an RL stage names the fields of its training."""
RL_GENERATION_FIELDS = {
    "--tp": "generation_layout.tp", "--dp": "generation_layout.dp", "--pp": "generation_layout.pp",
    "--num-gpus": "num_gpus", "--precision": "generation_precision", "--kv-dtype": "kv_dtype",
    "--mtp-depth": "mtp_depth", "--mtp-accept": "mtp_accept", "--input-len": "mean_prompt_len",
    "--output-len": "mean_response_len", "--batch-per-gpu": "generation_layout.max_sequences_per_engine",
}  # fmt: skip
"""The serving model's flags, as an RL or generation stage names the fields of its rollout."""


def in_plan_terms(message: str, fields: dict[str, str]) -> str:
    """A message of the command-line models with each flag it names replaced by the plan field that sets it (a plan
    takes no flags: '--tp 3 does not divide' reads 'generation_layout.tp 3 does not divide')."""
    return re.sub(r"--[a-z][a-z0-9-]*", lambda m: fields.get(m.group(0), m.group(0)), message)


# --------------------------------------------------------------------------- loading


def plan_ids() -> dict[str, Path]:
    return yaml_files(plan_dir())


def load_plan_file(path: Path) -> Plan:
    """A plan file, its hardware-profile paths (`gpu:` of the plan and of each stage) taken relative to the file, as
    its model path is (`model_ref`)."""
    if is_dir(path):
        raise SpecError(f"{path}: is a directory; pass a plan YAML file")
    raw = read_yaml(path)
    refuse_other_kind(raw, path, "a plan", "stages")
    plan = validate(raw, Plan, path)
    stages = [s.model_copy(update={"gpu": beside(s.gpu, path)}) if s.gpu else s for s in plan.stages]
    reported = [r.model_copy(update={"gpu": beside(r.gpu, path)}) if r.gpu else r for r in plan.reported]
    return plan.model_copy(update={"gpu": beside(plan.gpu, path), "stages": stages, "reported": reported})


def load_plan(plan: str) -> tuple[Plan, Path]:
    """A shipped plan by name, or a path to a plan YAML. Returns the plan and its file."""
    plan = reference("plan", plan, "a plan name or a plan YAML path")
    path = Path(plan)
    # OSError-safe checks: a name the file system refuses (256+ characters, a NUL byte) is an unknown plan
    if path.suffix in (".yaml", ".yml") and (os.path.exists(path) or "/" in plan):
        return load_plan_file(path), path
    ids = plan_ids()
    key = plan.strip().lower()
    if key not in ids and is_dir(path):
        load_plan_file(path)  # names the folder
    if key not in ids:
        shipped = ", ".join(ids) or "none"
        raise SpecError(f"unknown plan {plan!r}; shipped plans: {shipped}. Pass one of these names or a plan YAML path.")
    return load_plan_file(ids[key]), ids[key]


def beside(ref: str, plan_path: Path, model: bool = False) -> str:
    """A relative YAML/JSON path in a plan (or a fleet), read beside that file where a file is there; for a `model`, a relative
    folder beside the plan file too (a Hugging Face model's folder, read for its config.json), unless the reference is
    a shipped model name (which comes first, as in catalog.load_model). Anything else as given (a shipped name, an
    absolute path, or a path from the working directory). A name the file system refuses (256+ characters, a NUL
    byte) is left as given, for the loader's 'unknown ...' message."""
    path = Path(ref)
    if path.is_absolute():
        return ref
    next_to = plan_path.parent / path
    if path.suffix in (".yaml", ".yml", ".json"):
        if os.path.exists(next_to):
            return str(next_to)
    elif model and is_dir(next_to) and ref.strip().lower() not in yaml_files(model_dir()):
        return str(next_to)
    return ref


def model_ref(plan: Plan, plan_path: Path) -> str:
    """Spec paths and model folders in a plan are relative to the plan file."""
    return beside(plan.model, plan_path, model=True)
