"""`costsim validate rl`: predict the published RL figures of validation/rl.yaml with the RL stage model (docs/model.md
§17).

A benchmark step (NeMo RL's GRPO rows) becomes one rollout of an RL stage built from what the row and its recipe state:
model, GPU, GPUs (and the generation GPUs when split), on- or one-step off-policy, responses per rollout (G-GBS) and
per optimizer step (T-GBS), the generation TP and the training layout fields given, the sequence cap and the mean
generated length. The stated assumptions where the row is silent are the module's constants below, each sourced;
none is chosen from the step times. The prediction is the rollout's wall time.

A whole RL stage of the DeepSeek-R1 recipe (wall hours, GPU-hours) is predicted by the shipped plan
plans/deepseek-r1.yaml: its stages that the figure covers. Those plans state their mean response lengths as banded
inputs read from a figure, so their errors are reported beside the benchmark rows, not in the target.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from simulator.analysis.rl_stages import RLStageResult, run_generating_stage, training_seq_len
from simulator.errors import CostsimError, LayoutError
from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.catalog import load_model
from simulator.inputs.plan_file import Plan, RLStage
from simulator.inputs.serving_cases import TRAINING_DEGREES, RLCase, rl_cases
from simulator.run.cost import CostOptions
from simulator.run.rl import out_and_back_s
from simulator.units import SECONDS_PER_HOUR

TARGET_MAX_ABS_ERROR = 0.30
"""Issue 12 item 4: every NeMo RL GRPO step time within 30%."""
MEAN_PROMPT_LEN = 122.0
"""Prompt tokens of a math RL question: DeepSeek-R1's mathematics RL prompts average 122 tokens (Nature 2025,
Supplementary B.3.1, 'The average number of prompt tokens is 122.'). OpenMathInstruct-2 problems are of the same kind;
NeMo RL's chain-of-thought wrapper (examples/prompts/cot.txt) adds about 30 tokens, not counted. Assumption."""
NEMO_MEMORY_FRACTION = {True: 0.6, False: 0.8}
"""vLLM gpu_memory_utilization of the NeMo RL v0.4 recipes (commit cff17f8): 0.6 from examples/configs/
grpo_math_1B.yaml, which the on-policy (colocated) recipes inherit; the one-step off-policy recipes set 0.8 for their
generation GPUs. Keyed by colocated."""
NEMO_SOURCE = "NVIDIA-NeMo/RL"
PLAN = "deepseek-r1"
LATER_RELEASE = "later-release"
"""The track of NeMo RL steps from releases after v0.4 (RLCase.in_target false): predicted, outside the target."""
PHASE_BREAKDOWN = "phase-breakdown"
"""The track of steps whose source gives seconds by phase (RLCase.reported_phases): each phase predicted against its
own figure, outside the target."""
PHASES = {"generation": "generation_s", "training": "training_s", "logprob": "logprob_s", "refit": "refit_s"}
"""The step's parts as the rollout splits them (Outcome.split) and the ReportedPhases field each is compared with. The
generation part includes the prompts' prefill and the long tail."""
PLAN_CASES = {
    "deepseek-r1-zero-rl-h800x512": ["r1-zero-rl"],
    "deepseek-r1-rl-h800x512": [
        "r1-cold-start-sft", "r1-rl-reasoning", "r1-rejection-sampling-sft", "r1-rl-all-scenarios",
        "r1-rl-all-scenarios-preference",
    ],
    "deepseek-r1-sft-data-creation-h800": ["sft-data-generation"],
}  # fmt: skip
"""The stages of plans/deepseek-r1.yaml each DeepSeek-R1 figure covers."""


@dataclass(frozen=True)
class Outcome:
    case: RLCase
    predicted: float | None
    why_not: str | None = None
    track: str = "benchmark"
    """benchmark: a NeMo RL v0.4 step (the target); later-release: a step of a later NeMo RL release (reported beside
    it); plan: a DeepSeek-R1 stage through plans/deepseek-r1.yaml."""
    band: tuple[float, float] | None = None
    """The prediction with the banded inputs at their low and high ends."""
    split: dict | None = None
    """Seconds (benchmark) of the rollout by part, or GPU-hours (plan)."""
    detail: dict | None = None

    @property
    def error(self) -> float | None:
        return None if self.predicted is None else self.predicted / self.case.reported - 1.0


NEMO_RL_TRAINING_STACK = "megatron-core-2025"
"""The stack of every NeMo RL figure here: its Megatron backend (v0.3 to v0.6, 2025-07 to 2026-05) trains and scores
through Megatron-Core and Transformer Engine's GroupedLinear after the dropless dispatcher's host sync (docs/model.md
§7.8). For v0.6 this is an assumption: Transformer Engine's single-kernel grouped GEMMs (2026-03 on) may have reached
its container."""


def stage_for(case: RLCase) -> RLStage:
    """The RL stage of one NeMo RL benchmark step: one rollout of G-GBS responses trained in T-GBS optimizer steps,
    micro-batches of sequences_per_pack sequences where the recipe states its micro-batch."""
    raw = _stage_fields(case)
    stage = RLStage.model_validate(raw)
    tl = case.training_layout
    if tl is None or tl.micro_batch_size is None or case.max_seq_len is None:
        return stage
    raw["training_layout"]["micro_batch_size"] = sequences_per_pack(stage, case.max_seq_len, tl.micro_batch_size)
    return RLStage.model_validate(raw)


def _stage_fields(case: RLCase) -> dict:
    """The RLStage fields of a case, the training micro-batch as the recipe states it."""
    samples = case.samples_per_prompt or 1
    train_batch = case.train_global_batch or case.generation_batch
    gen_batch = case.generation_batch or train_batch
    assert train_batch and gen_batch and case.max_seq_len and case.mean_generation_seq_len
    cap = case.max_seq_len - round(MEAN_PROMPT_LEN)
    mean = case.mean_generation_seq_len
    colocated = bool(case.colocated) if case.colocated is not None else True
    gl, tl = case.generation_layout, case.training_layout
    raw = {
        "kind": "rl",
        "name": case.id,
        "num_gpus": case.num_gpus,
        "steps": gen_batch // train_batch,
        "prompts_per_step": train_batch // samples,
        "samples_per_prompt": samples,
        "minibatches_per_rollout": gen_batch // train_batch,
        "mean_prompt_len": MEAN_PROMPT_LEN,
        "response_lengths": [
            {"from_step": 0, "mean_response_len": {"value": mean, "low": mean, "high": mean}, "max_response_len": cap}
        ],
        # The slowest of thousands of samples reaches the cap (NeMo RL truncates there); the band runs down to no tail.
        "long_tail_factor": {"value": cap / mean, "low": 1.0, "high": cap / mean},
        "reference_logprobs": True,  # grpo_math_1B.yaml: reference_policy_kl_penalty 0.01
        "old_policy_logprobs": True,  # NeMo RL computes the previous policy's log-probs every step
        "colocated": colocated,
        # NeMo RL's Megatron worker moves the optimizer out of colocated generation's way every step (§17.4).
        "offload_training_state": colocated,
        "offload_optimizer_for_logprob": case.offload_optimizer_for_logprob,
        "policy": case.policy or "on_policy",
        "precision": case.precision_train or "bf16",
        "generation_precision": case.precision_generation or "bf16",
        "generation_memory_fraction": case.generation_memory_fraction or NEMO_MEMORY_FRACTION[colocated],
        "generation_layout": gl.model_dump(exclude={"ep"}) | {"dp": 1} if gl else {},
        "training_layout": {k: v for k, v in (tl.model_dump() if tl else {}).items() if v is not None},
        "training_stack": NEMO_RL_TRAINING_STACK,
        "source": case.source,
    }
    if not colocated:
        raw["generation_gpus"] = case.generation_gpus
    if case.fp8_recipe is not None:
        raw["fp8_recipe"] = case.fp8_recipe
    return raw


def sequences_per_pack(stage: RLStage, pack_tokens: int, packs: int) -> int:
    """Sequences of the stage's mean length per micro-batch of `packs` packs under NeMo RL's sequence packing
    (grpo_math_1B.yaml: `sequence_packing.enabled`, `train_mb_tokens` = `pack_tokens` (max_total_sequence_length) x
    train_micro_batch_size): as many as fit, lowered to the largest count dividing each data-parallel rank's
    sequences per optimizer step where the stated degrees give that rank count (`packs` where they do not)."""
    seq = training_seq_len(stage.mean_prompt_len + stage.response_lengths[0].mean_response_len.value)
    fit = max(1, pack_tokens * packs // seq)
    lay = stage.training_layout
    if None in (lay.tp, lay.cp, lay.pp):
        return packs
    dp, rest = divmod(stage.training_gpus, lay.tp * lay.cp * lay.pp)
    if rest or dp < 1 or stage.responses_per_step % dp:
        return packs
    per_rank = stage.responses_per_step // dp
    return max(d for d in range(1, fit + 1) if per_rank % d == 0)


def _plan_for(case: RLCase, searched_training: bool = False) -> Plan:
    stage = stage_for(case).model_dump(exclude_none=True)
    if searched_training:
        # The degrees are searched; the recipe's recompute, schedule, micro-batch and optimizer sharding still hold.
        stage["training_layout"] = {k: v for k, v in stage.get("training_layout", {}).items() if k not in TRAINING_DEGREES}
    return Plan.model_validate(
        {"name": f"validate-rl-{case.id}", "source": case.source, "model": case.model, "gpu": case.gpu, "stages": [stage]}
    )


def _unsupported(case: RLCase) -> str | None:
    if case.training_backend == "dtensor":
        return ("NeMo RL's DTensor training backend (PyTorch FSDP2 with tensor and sequence parallelism) is not modelled: "
                "no costsim stack is fitted to it, so its training and log-prob phases have no prediction")  # fmt: skip
    if case.metric != "step_time_s":
        return None if case.id in PLAN_CASES else f"metric {case.metric} is predicted for the DeepSeek-R1 stages only"
    needed = ("num_gpus", "generation_batch", "samples_per_prompt", "max_seq_len", "mean_generation_seq_len")
    missing = [n for n in needed if getattr(case, n) is None]
    if missing:
        return f"the source does not state {', '.join(missing)}"
    if case.precision_train not in (None, "bf16", "fp8"):
        return "FP4 training is not modelled (FP4 serves only: docs/model.md §16.14)"
    return None


def predict_step(case: RLCase) -> Outcome:
    """One benchmark step: the rollout's wall seconds (no failures: one step), with the band of the long tail.

    Where the stated training layout breaks one of costsim's layout rules, its degrees are searched instead (the
    recipe's recompute, micro-batch, schedule and ZeRO stage kept) and the outcome says so."""
    note = None
    try:
        r = _run_case(case, False)
    except LayoutError as e:
        note = (
            f"the stated training layout breaks a costsim layout rule ({str(e).splitlines()[-1].strip(' -')}); searched instead"
        )
        try:
            r = _run_case(case, True)
        except CostsimError as e2:
            return Outcome(case, None, f"the RL stage model refused it: {e2}")
    except CostsimError as e:
        return Outcome(case, None, f"the RL stage model refused it: {e}")
    out = _step_outcome(case, r)
    if note and out.detail is not None:
        out.detail["training_layout_note"] = note
    return out


def _run_case(case: RLCase, searched_training: bool) -> RLStageResult:
    plan = _plan_for(case, searched_training)
    stage = plan.stages[0]
    assert isinstance(stage, RLStage)
    return run_generating_stage(plan, load_model(case.model), stage, CostOptions(), None)


def _step_outcome(case: RLCase, r: RLStageResult) -> Outcome:
    phase = r.phases[0]
    rollouts = phase.rollouts  # 1: one benchmark step is one rollout
    wall = r.wall_clock_s * r.ettr / rollouts
    per_gpu_hour = wall / sum(r.gpu_hours_split[k] for k in r.gpu_hours_split if k != "failures")
    band = tuple(sorted(r.band_gpu_hours[p] * r.ettr * per_gpu_hour for p in ("low", "high")))
    g = phase.generation
    # As NeMo RL's timers split the step: the state's way out is part of the refit (prepare_for_generation), its way
    # back is training_prep, apart from policy_training.
    out_s, back_s = out_and_back_s(phase.offload)
    # The optimizer's round trip around the log-prob passes: out in logprob_inference_prep, back in training_prep.
    lp_out_s, lp_back_s = out_and_back_s(phase.logprob_offload)
    # The engine's sleep runs inside NeMo RL's generation timer (finish_generation), its wake inside
    # prepare_for_generation with the refit (grpo.py at cff17f8).
    sleep_s = wake_s = phase.engine_sleep_wake_s / 2
    parts = {"generation": g.seconds + sleep_s, "generation_tail": g.tail_s,
             "logprob_prep": lp_out_s, "logprob": phase.logprob.seconds if phase.logprob else 0.0,
             "training": phase.training_s, "refit": phase.refit_s + out_s + wake_s,
             "training_prep": back_s + lp_back_s}  # fmt: skip
    detail = {"schedule": phase.rollout.schedule, "generation_layout": g.layout,
              "output_tokens_per_s_per_gpu": g.tokens_per_s_per_gpu,
              "training_layout": phase.training.layout.to_dict() if phase.training else None,
              "optimizer_step_s": phase.training.step_time_s if phase.training else None}  # fmt: skip
    return Outcome(case, wall, None, "benchmark", band, parts, detail)  # type: ignore[arg-type]


def predict_plan(cases: list[RLCase]) -> list[Outcome]:
    """The DeepSeek-R1 figures through the shipped plan: wall hours or GPU-hours of the stages each covers."""
    from simulator.analysis.plans import run_plan
    from simulator.inputs.plan_file import load_plan

    if not cases:
        return []
    try:
        plan, path = load_plan(PLAN)
        result = run_plan(plan, path)
    except CostsimError as e:
        return [Outcome(c, None, f"plans/{PLAN}.yaml could not be estimated: {e}", "plan") for c in cases]
    out = []
    for c in cases:
        names = PLAN_CASES[c.id]
        chosen = [s for s in result.all_stages if s.stage.name in names]
        if len(chosen) != len(names):
            out.append(Outcome(c, None, f"plans/{PLAN}.yaml lacks stages {names}", "plan"))
            continue
        gpu_hours = sum(s.gpu_hours for s in chosen)
        if c.metric == "gpu_hours":
            predicted = gpu_hours
        else:
            predicted = result.predicted_wall_clock_s(names) / SECONDS_PER_HOUR
        out.append(Outcome(c, predicted, None, "plan", None, {"gpu_hours": gpu_hours, "stages": names}))
    return out


def labelled(outcome: Outcome) -> Outcome:
    """A benchmark step whose source gives its phases (RLCase.reported_phases) goes on the phase-breakdown track, one
    of a later release (RLCase.in_target false) on the later-release track, predicted or not; every other outcome
    keeps its track."""
    if outcome.track == "benchmark" and outcome.case.reported_phases is not None:
        return dataclasses.replace(outcome, track=PHASE_BREAKDOWN)
    if outcome.track == "benchmark" and not outcome.case.in_target:
        return dataclasses.replace(outcome, track=LATER_RELEASE)
    return outcome


def phase_errors(outcome: Outcome) -> dict[str, float] | None:
    """Predicted / reported - 1 of each phase of a step whose source gives its phases (PHASES); None otherwise."""
    reported = outcome.case.reported_phases
    if reported is None or outcome.split is None:
        return None
    return {part: outcome.split[part] / getattr(reported, field) - 1.0 for part, field in PHASES.items()}


def _phase_summary(outcomes: list[Outcome]) -> dict:
    """The phase-breakdown track: its step times as _summary gives them, and per phase the median signed error."""
    rows = [o for o in outcomes if o.track == PHASE_BREAKDOWN and o.error is not None]
    errors = [e for e in (phase_errors(o) for o in rows) if e]
    by_phase = {p: statistics.median(e[p] for e in errors) if errors else None for p in PHASES}
    return _summary([abs(o.error) for o in rows if o.error is not None]) | {"median_phase_error": by_phase}


def evaluate() -> list[Outcome]:
    cases = rl_cases()
    outcomes: list[Outcome] = []
    plan_cases = []
    for c in cases:
        why = _unsupported(c)
        if why:
            outcomes.append(labelled(Outcome(c, None, why)))
        elif c.id in PLAN_CASES:
            plan_cases.append(c)
        else:
            outcomes.append(labelled(predict_step(c)))
    by_id = {o.case.id: o for o in [*outcomes, *predict_plan(plan_cases)]}
    return [by_id[c.id] for c in cases]


def _summary(abs_errors: list[float]) -> dict:
    """n, median and max |error|, and how many are within the target's 30%."""
    return {
        "n": len(abs_errors),
        "median_abs_error": statistics.median(abs_errors) if abs_errors else None,
        "max_abs_error": max(abs_errors) if abs_errors else None,
        "within_30_percent": sum(e <= TARGET_MAX_ABS_ERROR for e in abs_errors),
    }


def report(outcomes: list[Outcome]) -> dict:
    rows = []
    for o in outcomes:
        c = o.case
        rows.append({
            "id": c.id, "track": o.track, "source": c.source, "evidence": c.evidence, "model": c.model, "gpu": c.gpu,
            "num_gpus": c.num_gpus, "metric": c.metric, "unit": c.unit, "reported": c.reported, "predicted": o.predicted,
            "error": o.error, "band": list(o.band) if o.band else None, "split": o.split, "detail": o.detail,
            "not_predicted_because": o.why_not, "assumptions": list(c.assumptions),
            "reported_phases": c.reported_phases.model_dump() if c.reported_phases else None,
            "phase_errors": phase_errors(o),
        })  # fmt: skip
    bench = [o for o in outcomes if o.track == "benchmark" and o.error is not None]
    errors = [abs(o.error) for o in bench if o.error is not None]
    worst = max(bench, key=lambda o: abs(o.error or 0.0), default=None)
    later = _summary([abs(o.error) for o in outcomes if o.track == LATER_RELEASE and o.error is not None])
    target = _summary(errors)
    return {
        "cases": rows,
        "n_cases": target["n"],
        "n_not_predicted": sum(o.predicted is None for o in outcomes),
        "median_abs_error": target["median_abs_error"],
        "max_abs_error": target["max_abs_error"],
        "worst_case": worst.case.id if worst else None,
        "within_target": target["within_30_percent"],
        "error_convention": "predicted / reported - 1 in the reported metric's unit",
        "target": {"max_abs_error": TARGET_MAX_ABS_ERROR, "track": "benchmark (NeMo RL GRPO step times)"},
        "meets_target": bool(errors) and max(errors) <= TARGET_MAX_ABS_ERROR,
        "later_release": later,
        "phase_breakdown": _phase_summary(outcomes),
        "assumptions": [
            {"name": "mean_prompt_len", "value": MEAN_PROMPT_LEN, "source": "DeepSeek-R1 Suppl. B.3.1 (math prompts)"},
            {
                "name": "generation_memory_fraction",
                "value": {"colocated": 0.6, "split": 0.8},
                "source": "NeMo RL v0.4 recipes, vLLM gpu_memory_utilization (a case's own value where its recipe sets one)",
            },
            {
                "name": "long_tail",
                "value": "the slowest response reaches the cap (max_seq_len - prompt); band: no tail",
                "source": "assumption: thousands of samples per step, truncated at the cap",
            },
            {"name": "logprob_passes", "value": 2, "source": "reference (KL 0.01, grpo_math_1B.yaml) and previous policy"},
            {
                "name": "training_stack",
                "value": NEMO_RL_TRAINING_STACK,
                "source": "NeMo RL's Megatron backend (Megatron-Core with Transformer Engine's GroupedLinear, docs/model.md "
                "§7.8); for the v0.6 rows an assumption",
            },
            {
                "name": "offload_training_state",
                "value": {
                    "colocated": True,
                    "split": False,
                    "pageable_copy_bytes_per_s": DEFAULT.pageable_copy_bytes_per_s,
                    "pinned_copy_bytes_per_s": DEFAULT.pinned_copy_bytes_per_s,
                },
                "source": "NeMo RL's Megatron worker moves the optimizer to host memory before each colocated refit and "
                "back before training (cff17f8); copy rates from NVIDIA-NeMo/RL#3976 and sgl-project/sglang#32032, not "
                "from these rows (docs/model.md §17.4)",
            },
            {
                "name": "offload_optimizer_for_logprob",
                "value": {"set_on": sorted(o.case.id for o in outcomes if o.case.offload_optimizer_for_logprob)},
                "source": "the rows that set it (the v0.4 one-step-off rows): the r0.4.0 branch's Megatron worker moves "
                "the optimizer to host memory before the log-prob passes and back before training (NVIDIA-NeMo/RL#1404, "
                "first released in v0.5.0, made it an option, off); colocated rows have it out already (docs/model.md "
                "§17.4)",
            },
        ],  # fmt: skip
    }
