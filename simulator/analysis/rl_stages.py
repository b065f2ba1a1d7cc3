"""Estimating the RL and generation stages of a plan (docs/model.md §17): each phase of the response-length schedule
as rollouts of the RL step model (simulator/run/rl.py), summed over the stage's steps, with GPU-hours split into
generation, log-prob passes, training, refit, idle and failures, dollars, the band the stated inputs give, and the
assumptions the numbers rest on.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

from simulator.errors import CostsimError, InfeasibleError, InputError
from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.catalog import gpus_with, load_hardware
from simulator.inputs.plan_file import (
    RL_GENERATION_FIELDS,
    RL_TRAINING_FIELDS,
    GenerationStage,
    Plan,
    ResponsePhase,
    RLStage,
    in_plan_terms,
)
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.inputs.stacks import load_stack
from simulator.model.efficiency import device_rates
from simulator.model.serve.decode import DECODE_STEP_OVERHEAD_S
from simulator.model.serve.search import Given
from simulator.run.cost import CostOptions, Pricing, Rate, pricing
from simulator.run.estimate import Estimate, estimate_expected, mfu_basis
from simulator.run.goodput import goodput
from simulator.run.rl import (
    SPLIT_PARTS,
    Generation,
    Logprob,
    Offload,
    Rollout,
    colocated_refit_s,
    combine,
    engine_sleep_wake_s,
    generate,
    generation_setup,
    logprob,
    out_and_back_s,
    reference_swap_s,
    refit_model_bytes,
    refit_s,
    training_state_offload,
)
from simulator.run.scenario import resolve
from simulator.units import GIB, SECONDS_PER_DAY, SECONDS_PER_HOUR
from simulator.vocab import SERVE_PRECISIONS

BAND_POINTS = ("value", "low", "high")
"""The stated, banded inputs (mean response length, long-tail factor) are taken at their values, then all at their
low ends, then all at their high ends."""


@dataclass(frozen=True)
class PhaseResult:
    """One phase of the response-length schedule at the stated values: its steps, one rollout's parts, the totals."""

    phase: ResponsePhase
    steps: int
    rollouts: float
    generation: Generation
    logprob: Logprob | None
    training: Estimate | None
    training_s: float
    """Training seconds of one rollout: minibatches x inner epochs x the optimizer step."""
    refit_s: float
    rollout: Rollout
    offload: Offload | None = None
    """The trainer's state moved out before the refit and back before training (offload_training_state), else None."""
    engine_sleep_wake_s: float = 0.0
    """Colocated: the rollout engine's weights to host after generation and back before the refit (half each way)."""
    logprob_offload: Offload | None = None
    """The optimizer states moved to host before the log-prob passes and back before training
    (offload_optimizer_for_logprob, where the states are not out already), else None."""

    def to_dict(self) -> dict:
        out = {
            "from_step": self.phase.from_step,
            "steps": self.steps,
            "rollouts": self.rollouts,
            "mean_response_len": self.phase.mean_response_len.value,
            "max_response_len": self.phase.max_response_len,
            "rollout_wall_s": self.rollout.wall_s,
            "generation": self.generation.to_dict(),
            "refit_s": self.refit_s,
            "offload": self.offload.to_dict() if self.offload else None,
            "engine_sleep_wake_s": self.engine_sleep_wake_s,
            "logprob_offload": self.logprob_offload.to_dict() if self.logprob_offload else None,
            "gpu_hours": {k: self.rollouts * v / SECONDS_PER_HOUR for k, v in self.rollout.gpu_s.items()},
        }
        if self.training is not None:
            e = self.training
            out["logprob"] = self.logprob.to_dict() if self.logprob else None
            out["training"] = {
                "optimizer_step_s": e.step_time_s,
                "seconds_per_rollout": self.training_s,
                "seq_len": e.job.seq_len,
                "sequences_per_step": round(e.job.global_batch_tokens / e.job.seq_len),
                "layout": e.layout.to_dict(),
                "mfu": e.mfu,
                "mfu_basis": mfu_basis(e.job.precision),  # as estimate's; an RL stage may train in FP8
                "mfu_bf16_peak": e.mfu_bf16_peak,
                "memory_per_gpu_gib": e.step.memory.total_bytes / GIB,
                "notes": e.notes,  # not all_notes: the stage's own goodput covers the stage, not one step's estimate
            }
        return out


@dataclass(frozen=True)
class RLStageResult:
    """An RL or generation stage estimated: per phase, totals, the split, the band and the cost."""

    stage: RLStage | GenerationStage
    hw: HardwareProfile
    phases: list[PhaseResult]
    gpu_hours_split: dict[str, float]
    """GPU-hours by part (SPLIT_PARTS and failures); they sum to gpu_hours."""
    wall_clock_s: float
    ettr: float
    band_gpu_hours: dict[str, float]
    """GPU-hours with every banded input at its value, low end and high end."""
    cost: dict
    assumptions: list[dict]

    @property
    def kind(self) -> str:
        return self.stage.kind

    @property
    def gpu_hours(self) -> float:
        return sum(self.gpu_hours_split.values())

    @property
    def ideal_gpu_hours(self) -> float:
        """GPU-hours without the failures ETTR charges."""
        return self.gpu_hours - self.gpu_hours_split["failures"]

    @property
    def num_gpus(self) -> int:
        return self.stage.num_gpus

    def to_dict(self) -> dict:
        s = self.stage
        split = self.gpu_hours_split
        out: dict = {
            "name": s.name,
            "kind": s.kind,
            "gpu": self.hw.name,
            "num_gpus": s.num_gpus,
            "generation_gpus": s.rollout_gpus,
        }
        if isinstance(s, RLStage):
            out |= {
                "training_gpus": s.training_gpus,
                "colocated": s.colocated,
                "policy": s.policy,
                "steps": s.steps,
                "responses_per_step": s.responses_per_step,
                "responses_per_rollout": s.responses_per_step * s.minibatches_per_rollout,
                "schedule": self.phases[0].rollout.schedule,
                "step_time_s": self.wall_clock_s * self.ettr / s.steps,
            }
        else:
            out |= {"responses": s.prompts * s.samples_per_prompt}
        out |= {
            "generated_tokens": sum(p.rollouts * p.generation.responses * p.generation.response_len for p in self.phases),
            "gpu_hours": self.gpu_hours,
            "gpu_hours_split": split,
            "gpu_hours_share": {k: v / self.gpu_hours for k, v in split.items()},
            "gpu_hours_band": self.band_gpu_hours,
            "ideal_gpu_hours": self.ideal_gpu_hours,
            "wall_clock_days": self.wall_clock_s / SECONDS_PER_DAY,
            "ettr": self.ettr,
            "usd_per_gpu_hour": self.cost["usd_per_gpu_hour"],
            "cost_usd": self.cost["cost_usd"],
            "cost": self.cost,
            "phases": [p.to_dict() for p in self.phases],
            "assumptions": self.assumptions,
            "source": s.source,
            "notes": s.notes,
        }
        return out


# --------------------------------------------------------------------------- estimating


def _phases(stage: RLStage | GenerationStage) -> list[tuple[ResponsePhase, float]]:
    """(phase, steps in it); a generation stage is one phase of one 'step' (the whole data set)."""
    if isinstance(stage, GenerationStage):
        return [(stage.response_length, 1.0)]
    starts = [p.from_step for p in stage.response_lengths] + [stage.steps]
    return [(p, float(starts[i + 1] - starts[i])) for i, p in enumerate(stage.response_lengths)]


class _Training:
    """The training step model of an RL stage, one estimate per sequence length (cached: the band's three points
    and repeated phases share them)."""

    def __init__(self, plan: Plan, spec: ModelSpec, stage: RLStage, hw: HardwareProfile, opts: CostOptions, quoted):
        self.plan, self.spec, self.stage, self.hw, self.opts, self.quoted = plan, spec, stage, hw, opts, quoted
        self.at = functools.lru_cache(maxsize=None)(self._estimate)

    def _estimate(self, seq_len: int) -> Estimate:
        s = self.stage
        batch_tokens = float(s.responses_per_step * seq_len)
        try:
            scenario = resolve(
                self.spec, self.hw, s.training_gpus, batch_tokens, seq_len=seq_len, global_batch_tokens=batch_tokens,
                precision=s.precision, fp8_recipe=s.fp8_recipe, layout=s.training_layout.layout(), costs=self.opts,
                quoted=self.quoted, stack=s.training_stack,
            )  # fmt: skip
            return estimate_expected(scenario)
        except CostsimError as e:
            raise type(e)(f"training: {in_plan_terms(str(e), RL_TRAINING_FIELDS)}") from None


def _generate(*args) -> Generation:
    """run.rl.generate, its refusals naming the stage's fields (generation_layout.tp, not --tp)."""
    try:
        return generate(*args)
    except CostsimError as e:
        raise type(e)(in_plan_terms(str(e), RL_GENERATION_FIELDS)) from None


MIN_ENGINE_MEMORY_FRACTION = 0.05
"""The least share of a GPU's memory a rollout engine is given (the schema's floor of generation_memory_fraction)."""


def trainer_resident_bytes(e: Estimate) -> float:
    """What a trainer that does not offload keeps on each GPU between its steps: weights, gradient buffer, optimizer
    states (its activations are freed)."""
    m = e.step.memory
    return m.weights_bytes + m.gradients_bytes + m.optimizer_bytes


def engine_memory_fraction(stage: RLStage, e: Estimate, hw: HardwareProfile) -> float:
    """The share of a GPU's memory the rollout engine of a colocated stage that does not offload its trainer may fill:
    the stage's generation_memory_fraction, less what the trainer keeps resident (its weights, gradient buffer and
    optimizer states stay while the engine generates beside them)."""
    resident = trainer_resident_bytes(e)
    left = stage.generation_memory_fraction - resident / hw.memory_bytes
    if left <= MIN_ENGINE_MEMORY_FRACTION:
        raise InfeasibleError(
            f"the trainer keeps {resident / GIB:,.1f} GiB per GPU resident (weights, gradients, optimizer states) beside "
            f"the colocated rollout engine, leaving {max(left, 0.0):.0%} of the {hw.memory_bytes / GIB:,.0f} GiB for it; "
            "set offload_training_state: true (the state goes to host memory during the rollout, as NeMo RL's Megatron "
            "backend does), train on more GPUs, or set colocated: false"
        )
    return left


def _rollout(stage: RLStage | GenerationStage, spec: ModelSpec, hw: HardwareProfile, phase: ResponsePhase,
             mean_len: float, tail_factor: float, training: _Training | None, phase_steps: float) -> PhaseResult:  # fmt: skip
    assumptions = DEFAULT.for_generation(hw.generation)
    rates = device_rates(hw, assumptions)
    setup = generation_setup(spec, hw, rates, assumptions, stage.mean_prompt_len, mean_len, stage.kv_dtype,
                             stage.mtp_depth, stage.mtp_accept or 0.0, stage.two_batch_overlap)  # fmt: skip
    tail_len = min(float(phase.max_response_len), tail_factor * mean_len)
    gl = stage.generation_layout
    given = Given(gl.tp, gl.dp, gl.pp, max_replica_sequences=gl.max_sequences_per_engine)
    if isinstance(stage, GenerationStage):
        responses = float(stage.prompts * stage.samples_per_prompt)
        gen = _generate(setup, responses, stage.num_gpus, tail_len, stage.generation_precision, given,
                        stage.generation_memory_fraction)  # fmt: skip
        rollout = combine(gen.busy_s, gen.tail_s, 0.0, 0.0, 0.0, stage.num_gpus, stage.num_gpus, True, False)
        rollout = Rollout(rollout.wall_s, rollout.gpu_s, "generation only: time = prefill + decode + tail")
        return PhaseResult(phase, 0, 1.0, gen, None, None, 0.0, 0.0, rollout)
    assert training is not None
    responses = float(stage.responses_per_step * stage.minibatches_per_rollout)
    seq_len = training_seq_len(stage.mean_prompt_len + mean_len)
    if stage.colocated and not stage.offload_training_state:  # the engine gets what the trainer leaves: size it first
        e = training.at(seq_len)
        try:
            gen = _generate(setup, responses, stage.rollout_gpus, tail_len, stage.generation_precision, given,
                            engine_memory_fraction(stage, e, hw))  # fmt: skip
        except InfeasibleError as err:
            raise InfeasibleError(
                f"{err} (the trainer keeps {trainer_resident_bytes(e) / GIB:,.1f} GiB per GPU resident beside the engine; "
                "offload_training_state: true gives the engine the whole GPU)"
            ) from None
    else:  # the engine may fill its share whatever the trainer needs (a model it cannot hold is named first)
        gen = _generate(setup, responses, stage.rollout_gpus, tail_len, stage.generation_precision, given,
                        stage.generation_memory_fraction)  # fmt: skip
        e = training.at(seq_len)
    training_s = stage.minibatches_per_rollout * stage.inner_epochs * e.step_time_s
    passes = int(stage.reference_logprobs) + int(stage.old_policy_logprobs) + stage.reward_model_passes
    # The log-prob passes run at the trainer's rates (its stack's attention kernel and expert launches), generation at
    # the engine's.
    lp = logprob(spec, e.rates, assumptions, passes, responses, seq_len, stage.training_gpus, e.layout,
                 stage.precision, e.job.fp8_recipe)  # fmt: skip
    if stage.reference_logprobs:
        # The reference model's weights live in host memory and are swapped in for its pass (§17.3).
        lp = replace(lp, reference_swap_s=reference_swap_s(float(e.step.memory.weights_bytes), assumptions))
    offload, engine = None, 0.0
    if stage.colocated:
        # The rollout engine leaves its memory to the trainer: its weights to host and back around the refit (§17.4).
        engine = engine_sleep_wake_s(gen.weight_bytes_per_gpu, assumptions)
        # The ranks holding distinct pieces of the model: TP shards of the dense weights and the EP group's experts,
        # which on the folded expert grid (layout.folded_expert_grid) lie on consecutive ranks across the TP ones.
        shards = e.layout.pp * math.lcm(e.layout.tp, e.layout.ep)
        refit = colocated_refit_s(refit_model_bytes(spec), shards, rates.fabric, assumptions.refit_export_bytes_per_s)
        if stage.offload_training_state:
            memory = e.step.memory
            offload = training_state_offload(float(memory.optimizer_bytes), float(memory.weights_bytes), assumptions)
    else:
        refit = refit_s(refit_model_bytes(spec), stage.num_gpus, rates.fabric, assumptions.refit_export_bytes_per_s)
    # The state goes out as part of the refit (NeMo RL times both as prepare_for_generation) and comes back before
    # training (training_prep).
    out_s, back_s = out_and_back_s(offload)
    out_s += engine
    lp_offload = None
    if stage.offload_optimizer_for_logprob and offload is None:
        # Out before the log-prob passes (NeMo RL's logprob_inference_prep), back before training (training_prep): on
        # the trainer's side of the step, so a one-step-off rollout hides it only under a longer generation.
        lp_offload = training_state_offload(float(e.step.memory.optimizer_bytes), 0.0, assumptions)
    lp_out_s, lp_back_s = out_and_back_s(lp_offload)
    rollout = combine(gen.busy_s, gen.tail_s, lp.seconds + lp_out_s, training_s + back_s + lp_back_s, refit + out_s,
                      stage.num_gpus, stage.rollout_gpus, stage.colocated, stage.policy == "one_step_off_policy")  # fmt: skip
    # `steps` are optimizer steps: a rollout trains minibatches_per_rollout x inner_epochs of them.
    rollouts = phase_steps / (stage.minibatches_per_rollout * stage.inner_epochs)
    return PhaseResult(phase, int(phase_steps), rollouts, gen, lp, e, training_s,
                       refit, rollout, offload, engine, lp_offload)  # fmt: skip


SEQ_LEN_ROUND = 128
"""Training sequences are padded to a multiple of this many tokens (NeMo RL's sequence packing rounds to 64; 128 also
lets load-balanced context parallelism split a sequence into 2 x CP chunks up to CP 64). Assumption."""


def training_seq_len(tokens: float) -> int:
    """Prompt + mean response tokens, rounded up to SEQ_LEN_ROUND."""
    return int(-(-tokens // SEQ_LEN_ROUND) * SEQ_LEN_ROUND)


def _banded(b, point: str) -> float:
    return float(getattr(b, point))


def run_generating_stage(plan: Plan, spec: ModelSpec, stage: RLStage | GenerationStage, opts: CostOptions,
                         quoted: Rate | None) -> RLStageResult:  # fmt: skip
    """An RL or generation stage of `plan` on its GPU; errors name the plan and the stage."""
    try:
        return _run(plan, spec, stage, opts, quoted)
    except CostsimError as e:
        raise type(e)(f"plan {plan.name}, stage {stage.name!r}: {e}") from None


def _check_positions(spec: ModelSpec, stage: RLStage | GenerationStage) -> None:
    """A rollout cannot run past the model's positions (ModelSpec.served_positions, as `costsim serve` refuses such a
    request: a learned table, or a RoPE model's stated context; ALiBi models are not bound). The longest sequence is a
    prompt of the mean length and a response at the cap."""
    table = spec.served_positions
    if table is None:
        return
    what = "learned position table" if spec.position_embedding == "learned" else "context (max_position_embeddings)"
    field = "response_lengths" if isinstance(stage, RLStage) else "response_length"
    phases = stage.response_lengths if isinstance(stage, RLStage) else [stage.response_length]
    prompt = math.ceil(stage.mean_prompt_len)
    for p in phases:
        if prompt + p.max_response_len > table:
            raise InputError(
                f"{field} from step {p.from_step:,}: a {prompt:,}-token prompt and a response at the cap max_response_len "
                f"{p.max_response_len:,} take {prompt + p.max_response_len:,} positions, past {spec.name}'s {what} of "
                f"{table:,}; lower max_response_len to at most {max(table - prompt, 0):,} (or mean_prompt_len)"
                + (", or use a model with rotary positions" if spec.position_embedding == "learned" else "")
            )


def _run(plan: Plan, spec: ModelSpec, stage: RLStage | GenerationStage, opts: CostOptions, quoted: Rate | None) -> RLStageResult:
    hw = load_hardware(stage.gpu or plan.gpu)
    for precision in {stage.generation_precision, getattr(stage, "precision", "bf16"), stage.kv_dtype}:
        if not hw.has_dtype(precision):
            have = ", ".join(p for p in SERVE_PRECISIONS if hw.has_dtype(p))
            raise InputError(
                f"{hw.name} has no {precision} support; set the stage's precisions to formats it has ({have}) or use a "
                f"GPU with {precision.upper()} ({gpus_with(precision)})"
            )
    if stage.mtp_depth and not spec.mtp_depth:
        raise InputError(f"mtp_depth {stage.mtp_depth} needs MTP modules in the model; {spec.name} has none (mtp_depth 0)")
    _check_positions(spec, stage)
    training = _Training(plan, spec, stage, hw, opts, quoted) if isinstance(stage, RLStage) else None
    totals: dict[str, dict[str, float]] = {}
    walls: dict[str, float] = {}
    detail: list[PhaseResult] = []
    for point in BAND_POINTS:
        split = dict.fromkeys(SPLIT_PARTS, 0.0)
        wall = 0.0
        for phase, steps in _phases(stage):
            mean = _banded(phase.mean_response_len, point)
            tail = _banded(stage.long_tail_factor, point)
            r = _rollout(stage, spec, hw, phase, mean, tail, training, steps)
            for k, v in r.rollout.gpu_s.items():
                split[k] += r.rollouts * v / SECONDS_PER_HOUR
            wall += r.rollouts * r.rollout.wall_s
            if point == "value":
                detail.append(r)
        totals[point], walls[point] = split, wall
    assumptions = DEFAULT.for_generation(hw.generation)
    g = goodput(stage.num_gpus, walls["value"], assumptions)
    band = {p: sum(totals[p].values()) / goodput(stage.num_gpus, walls[p], assumptions).ettr for p in BAND_POINTS}
    split = dict(totals["value"])
    split["failures"] = sum(split.values()) * (1.0 / g.ettr - 1.0)
    price: Pricing = pricing(hw, opts, quoted)
    gpu_hours = sum(split.values())
    return RLStageResult(stage, hw, detail, split, walls["value"] / g.ettr, g.ettr, band, price.block(gpu_hours),
                         stage_assumptions(stage, detail))  # fmt: skip


def stage_assumptions(stage: RLStage | GenerationStage, phases: list[PhaseResult]) -> list[dict]:
    """What the stage's numbers rest on, each with its value and where it comes from."""
    tail = stage.long_tail_factor
    out = [
        {"name": "mean_prompt_len", "value": stage.mean_prompt_len, "source": stage.source or "the plan"},
        {"name": "mean_response_len", "value": [p.phase.mean_response_len.model_dump() for p in phases],
         "source": "stated and banded in the plan (per phase)"},
        {"name": "long_tail_factor", "value": tail.model_dump(),
         "source": "stated and banded in the plan: slowest response / mean, capped at the cap"},
        {"name": "generation", "value": "costsim serve's decode model at prompt + response / 2 of context",
         "source": "docs/model.md §16, §17.2"},
        {"name": "generation_memory_fraction", "value": stage.generation_memory_fraction,
         "source": "the plan (share of GPU memory the rollout engine fills)"},
        {"name": "tail_speed", "value": "tokens/s per sequence at the rollout's batch",
         "source": "assumption: conservative, the batch thins as responses finish (docs/model.md §17.2)"},
        {"name": "prefill", "value": "every response's prompt computed", "source": "assumption (prompts are short)"},
        {"name": "decode_step_overhead_s", "value": DECODE_STEP_OVERHEAD_S, "source": "as costsim serve (§16.3)"},
    ]  # fmt: skip
    if isinstance(stage, RLStage):
        out += [
            {"name": "training", "value": "the expected run of the training step model at prompt + mean response "
             "tokens per sequence, the stage's responses per optimizer step", "source": "docs/model.md §8, §17.3"},
            {"name": "logprob_passes", "value": int(stage.reference_logprobs) + int(stage.old_policy_logprobs)
             + stage.reward_model_passes, "source": "the plan (reference, old policy, reward models)"},
            {"name": "logprob_layout", "value": "the trainer's layout, forward only: its micro-batches on TP x CP groups "
             "with experts over EP, the pipeline filled once", "source": "docs/model.md §8.4, §17.3"},
            {"name": "training_stack", "value": load_stack(stage.training_stack).name, "source": "the plan (default: "
             "today's stack); megatron-core-2025 launches each local expert's GEMM from the host, docs/model.md §7.8"},
            {"name": "refit", "value": "every full weight in BF16 to every GPU of the stage, as one broadcast over "
             "them", "source": "NeMo RL v0.4 Megatron-to-vLLM refit (HF export), docs/model.md §17.4"},
            {"name": "offload_training_state", "value": stage.offload_training_state, "source": "the plan; where true "
             "the optimizer states go to pageable host memory and back at Assumptions.pageable_copy_bytes_per_s and "
             "the weights to a pinned copy at pinned_copy_bytes_per_s, each way per step (docs/model.md §17.4)"},
            {"name": "offload_optimizer_for_logprob", "value": stage.offload_optimizer_for_logprob, "source": "the "
             "plan; where true and the states are not already out, the optimizer states go to pageable host memory "
             "before the log-prob passes and back before training, each rollout (NeMo RL's r0.4.0 branch, §17.4)"},
            {"name": "schedule", "value": phases[0].rollout.schedule, "source": "docs/model.md §17.5"},
        ]  # fmt: skip
    return out
