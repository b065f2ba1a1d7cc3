"""RL stages in plans (issue 12 item 4; docs/model.md §17): the step arithmetic from the component functions, the
response-length schedule, the GPU-hours split, the shipped DeepSeek-R1 plan, bad stages refused with one line, and
the NeMo RL validation rows' errors as computed.
"""

from __future__ import annotations

import copy
import json
import math
import statistics
from pathlib import Path

import pytest
import yaml
from cli_support import clean_error, invoke
from pydantic import ValidationError

from simulator import api
from simulator.analysis.plans import run_plan
from simulator.analysis.rl_stages import SEQ_LEN_ROUND, training_seq_len
from simulator.errors import CostsimError, InfeasibleError, InputError, SpecError
from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.plan_file import RLStage, load_plan
from simulator.model.efficiency import device_rates
from simulator.outputs import SCHEMA_VERSION, PlanOutput, ValidateRLOutput
from simulator.run.estimate import estimate_expected
from simulator.run.rl import (
    SPLIT_PARTS,
    colocated_refit_s,
    combine,
    engine_sleep_wake_s,
    reference_swap_s,
    refit_model_bytes,
    refit_s,
    trainer_forward_s,
    training_state_offload,
)
from simulator.run.scenario import resolve
from simulator.units import SECONDS_PER_HOUR, format_count

# A small RL stage: Llama 3.1 8B on 16 H100, 8 optimizer steps of 16 prompts x 8 samples, two per rollout.
SMALL_RL = {
    "name": "small-rl",
    "kind": "rl",
    "num_gpus": 16,
    "steps": 8,
    "prompts_per_step": 16,
    "samples_per_prompt": 8,
    "minibatches_per_rollout": 2,
    "inner_epochs": 1,
    "mean_prompt_len": 100,
    "response_lengths": [
        {"from_step": 0, "mean_response_len": {"value": 500, "low": 400, "high": 700}, "max_response_len": 2048},
        {"from_step": 4, "mean_response_len": {"value": 900, "low": 700, "high": 1200}, "max_response_len": 4096},
    ],
    "long_tail_factor": {"value": 3.0, "low": 1.0, "high": 4.0},
    "training_layout": {"tp": 1, "pp": 1},
}
SMALL_PLAN = {
    "name": "small-rl-plan",
    "source": "test",
    "model": "llama-3.1-8b",
    "gpu": "h100-sxm",
    "usd_per_gpu_hour": 2.5,
    "price_source": "test quote",
    "stages": [SMALL_RL],
}


def _write(tmp_path: Path, plan: dict) -> str:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return str(path)


def _run(tmp_path: Path, **stage_changes):
    plan = copy.deepcopy(SMALL_PLAN)
    plan["stages"][0].update(stage_changes)
    spec, path = load_plan(_write(tmp_path, plan))
    return run_plan(spec, path)


def test_steps_are_optimizer_steps_whatever_the_inner_epochs(tmp_path):
    """`steps` counts optimizer steps: with inner_epochs 2 a rollout trains twice as many of them, so the stage has half
    the rollouts and the same training GPU-hours (a review found inner_epochs 2 doubled the training: 200 optimizer
    steps charged for 100)."""
    one = _run(tmp_path).rl_stages[0]
    two = _run(tmp_path, inner_epochs=2).rl_stages[0]
    assert sum(p.rollouts for p in two.phases) == pytest.approx(sum(p.rollouts for p in one.phases) / 2)
    assert two.gpu_hours_split["training"] == pytest.approx(one.gpu_hours_split["training"], rel=1e-9)
    assert two.gpu_hours_split["generation"] == pytest.approx(one.gpu_hours_split["generation"] / 2, rel=1e-9)
    with pytest.raises(SpecError, match="inner_epochs 8 = 16 optimizer steps per rollout"):
        _run(tmp_path, inner_epochs=8)


def test_a_plan_has_at_most_200_response_phases_in_all(tmp_path):
    """Each response-length phase is a rollout and a training estimate (~0.06 s): a review's stage of 1,000 phases ran
    for 61 s, so a plan takes at most 200 in all its stages."""
    phase = SMALL_RL["response_lengths"][0]
    stage = SMALL_RL | {"steps": 1000, "response_lengths": [phase | {"from_step": i} for i in range(101)]}
    plan = SMALL_PLAN | {"stages": [stage, stage | {"name": "again"}]}
    with pytest.raises(SpecError, match="202 response-length phases in all, above 200"):
        load_plan(_write(tmp_path, plan))


def test_a_colocated_engine_leaves_room_for_a_trainer_that_stays(tmp_path):
    """Colocated without offloading, the trainer's weights, gradients and optimizer states stay on the GPU while the
    engine generates (a review's engine filled 71 GiB of 80 beside a 72 GiB trainer): the engine's memory and the
    trainer's resident state fit in the GPU together; offloading gives the engine the whole GPU again; a trainer that
    leaves no room is refused with the fix."""
    big = {
        "prompts_per_step": 512,
        "minibatches_per_rollout": 1,
        "steps": 4,
        "response_lengths": [
            {"from_step": 0, "mean_response_len": {"value": 2000, "low": 1000, "high": 3000}, "max_response_len": 8192}
        ],
    }
    stays = _run(tmp_path, **big).rl_stages[0].phases[0]
    m = stays.training.step.memory
    resident = m.weights_bytes + m.gradients_bytes + m.optimizer_bytes
    assert stays.generation.memory_per_gpu_bytes + resident <= 80 * 2**30 * (1 + 1e-9)
    moved = _run(tmp_path, offload_training_state=True, **big).rl_stages[0].phases[0]
    assert moved.generation.memory_per_gpu_bytes > stays.generation.memory_per_gpu_bytes
    with pytest.raises(InfeasibleError, match="set offload_training_state: true"):
        _run(tmp_path, num_gpus=8, generation_memory_fraction=0.6, training_layout={"tp": 1, "pp": 1, "zero_stage": 1}, **big)
    # More than 5% left but too little for the engine: its refusal names the trainer's share and the fix (a review).
    with pytest.raises(InfeasibleError, match=r"the trainer keeps [\d.]+ GiB per GPU resident.*offload_training_state"):
        squeezed = {k: v for k, v in SMALL_RL.items() if k != "training_layout"} | {"num_gpus": 2, "prompts_per_step": 32}
        run_plan(*load_plan(_write(tmp_path, SMALL_PLAN | {"stages": [squeezed]})))


def test_stage_refusals_name_the_plan_fields_not_flags(tmp_path):
    """A plan takes no flags: a review's refusals of an RL stage named --tp (for generation_layout.tp) and advised
    --micro-batch-size; each names the stage's field now, generation and training apart."""
    with pytest.raises(CostsimError, match=r"generation_layout\.tp 3 does not divide the 32 attention heads"):
        _run(tmp_path, generation_layout={"tp": 3})
    with pytest.raises(CostsimError, match=r"training: no valid layout .*: training GPUs 16 is not divisible by TP x PP"):
        _run(tmp_path, training_layout={"tp": 3, "pp": 1})


def test_a_rollout_stops_at_a_learned_position_table(tmp_path):
    """GPT-3's 2,048 learned positions: a 100-token prompt and a 4,096-token cap cannot be generated (as serve refuses
    the request); a 1,900-token cap can."""
    plan = copy.deepcopy(SMALL_PLAN) | {"model": "gpt3-175b"}
    plan["stages"][0] |= {"num_gpus": 64, "training_layout": {"tp": 8, "pp": 8}}
    with pytest.raises(
        InputError, match="past gpt3-175b's learned position table of 2,048; lower max_response_len to at most 1,948"
    ):
        run_plan(*load_plan(_write(tmp_path, plan)))


def test_a_rollout_stops_at_a_rope_models_context(tmp_path):
    """ModelSpec.served_positions: a RoPE model's stated context bounds a rollout as it bounds a served request (Llama 2 7B's
    config.json: 4,096 positions); the refusal names the context, not a learned table, and no rotary-positions fix."""
    plan = copy.deepcopy(SMALL_PLAN) | {"model": "llama-2-7b"}
    stage = plan["stages"][0]
    stage["response_lengths"] = [{**stage["response_lengths"][0], "max_response_len": 8192}]
    with pytest.raises(InputError, match="past llama-2-7b's context \\(max_position_embeddings\\) of 4,096") as e:
        run_plan(*load_plan(_write(tmp_path, plan)))
    assert "rotary" not in str(e.value)


# --------------------------------------------------------------------------- the step arithmetic


def test_combine_colocated_is_the_sum_and_split_off_policy_the_max_plus_refit():
    # generation 10 s busy + 2 s tail, logprob 3 s, training 5 s, refit 1 s; 16 GPUs, 8 of them generating when split
    co = combine(10, 2, 3, 5, 1, 16, 8, colocated=True, off_policy=False)
    assert co.wall_s == 10 + 2 + 3 + 5 + 1
    assert co.gpu_s == {"generation": 160, "logprob": 48, "training": 80, "refit": 16, "idle": 16 * 2}
    sync = combine(10, 2, 3, 5, 1, 16, 8, colocated=False, off_policy=False)
    assert sync.wall_s == 21
    assert sync.gpu_s == {"generation": 80, "logprob": 24, "training": 40, "refit": 16, "idle": 16 * 21 - 160}
    off = combine(10, 2, 3, 5, 1, 16, 8, colocated=False, off_policy=True)
    assert off.wall_s == max(10 + 2, 3 + 5) + 1 == 13
    assert off.gpu_s["idle"] == 16 * 13 - (80 + 24 + 40 + 16)
    slow_training = combine(4, 0, 3, 20, 1, 16, 8, colocated=False, off_policy=True)
    assert slow_training.wall_s == 3 + 20 + 1
    # The schedule names every part validate rl splits out, the state's trips included (a review found the prep terms
    # missing from the formula the JSON states, which then did not give the predicted step).
    assert "max(generation, logprob prep + logprob + training prep + training) + refit" in off.schedule
    assert "step = generation + logprob prep + logprob + training prep + training + refit" in co.schedule


def test_refit_broadcasts_every_full_bf16_weight_over_all_gpus():
    """docs/model.md §17.4: t_refit = latency + params x 2 B / busBW(all GPUs), the NeMo RL v0.4 Megatron-to-vLLM
    refit (every HF tensor exported whole; split GPUs: broadcast from training rank 0). Would fail if the bytes, the
    broadcast's bus factor (1) or the group changed."""
    from simulator.model.comms import Fabric
    from simulator.model.flops import parameter_counts

    dsv3 = load_model("deepseek-v3")
    assert refit_model_bytes(dsv3) == parameter_counts(dsv3).total * 2
    assert refit_model_bytes(dsv3) == pytest.approx(1.342e12, rel=1e-3)  # 671.0B parameters in BF16
    fabric = Fabric(scale_up_bytes_per_s=400e9, scale_out_bytes_per_s=40e9, domain_gpus=8, latency_s=20e-6)
    fast = 1e30  # an export that never limits: the transport alone
    # inside one node: NVLink; across nodes: min(NVLink, 8 ranks x NIC) = 320 GB/s; factor 1 at any size
    assert refit_s(1e12, 8, fabric, fast) == pytest.approx(20e-6 + 1e12 / 400e9, rel=1e-12)
    assert refit_s(1e12, 256, fabric, fast) == pytest.approx(20e-6 + 1e12 / 320e9, rel=1e-12)
    assert refit_s(1e12, 1, fabric, fast) == pytest.approx(0.0, abs=1e-12)  # nothing to send
    assert refit_s(1e12, 1, fabric, 100e9) == pytest.approx(10.0, rel=1e-12)  # the export still runs
    # colocated: an all-gather of the whole model over the TP x PP x EP training ranks, bus factor (M - 1) / M
    assert colocated_refit_s(1e12, 8, fabric, fast) == pytest.approx(20e-6 + 7 / 8 * 1e12 / 400e9, rel=1e-12)
    assert colocated_refit_s(1e12, 256, fabric, fast) == pytest.approx(20e-6 + 255 / 256 * 1e12 / 320e9, rel=1e-12)
    assert colocated_refit_s(1e12, 1, fabric, fast) == pytest.approx(0.0, abs=1e-12)  # one GPU: nothing to gather
    assert colocated_refit_s(1e12, 1, fabric, 100e9) == pytest.approx(10.0, rel=1e-12)  # but the export still runs
    # the export overlaps the transport, so the slower of the two sets the time, in both modes
    assert refit_s(1e12, 256, fabric, 100e9) == pytest.approx(1e12 / 100e9, rel=1e-12)
    assert colocated_refit_s(1e12, 256, fabric, 100e9) == pytest.approx(1e12 / 100e9, rel=1e-12)
    assert refit_s(1e12, 256, fabric, 1e12) == pytest.approx(20e-6 + 1e12 / 320e9, rel=1e-12)


# NVIDIA-NeMo/RL pull request #1379 (2025-10): split-GPU refit with the export overlapping the broadcast, measured per
# refit. The PR states neither the GPUs nor the recipe; the GPU counts below (the v0.4 one-step-off rows') and H100 are
# assumptions, and the export sets the time at any count the broadcast is faster at.
REFIT_MEASURED_S = {"deepseek-v3": 14.0, "qwen3-235b-a22b": 5.5}


def test_refit_export_rate_against_the_two_measured_refits():
    """Assumptions.refit_export_bytes_per_s (90 GB/s) against the two refits PR #1379 measured. In sample: each within
    7% (DeepSeek-V3 +6.5%, Qwen3-235B -5.0%). Leave one out: the rate one refit implies predicts the other within 13%
    (DeepSeek-V3 +12.1%, Qwen3-235B -10.8%). The export, not the broadcast, sets both on the H100 profile (at the
    assumed 512 and 256 GPUs), so these are the refit_s values."""
    hw = load_hardware("h100-sxm")
    rates = device_rates(hw, DEFAULT.for_generation(hw.generation))
    model_bytes = {m: refit_model_bytes(load_model(m)) for m in REFIT_MEASURED_S}
    gpus = {"deepseek-v3": 512, "qwen3-235b-a22b": 256}
    for m, measured in REFIT_MEASURED_S.items():
        predicted = refit_s(model_bytes[m], gpus[m], rates.fabric, DEFAULT.refit_export_bytes_per_s)
        assert predicted == pytest.approx(model_bytes[m] / DEFAULT.refit_export_bytes_per_s, rel=1e-12)
        assert abs(predicted / measured - 1) <= 0.07, (m, predicted)
    for held_out, measured in REFIT_MEASURED_S.items():
        (other,) = set(REFIT_MEASURED_S) - {held_out}
        rate = model_bytes[other] / REFIT_MEASURED_S[other]
        assert abs(model_bytes[held_out] / rate / measured - 1) <= 0.13, held_out


# NVIDIA-NeMo/RL pull request #1267 (the ZMQ colocated refit that r0.4.0 picked as #1409), its author in the review
# thread of 2025-10-18: "the complete DeepSeek-V3 refitting takes ~35 seconds with over 175 distinct IPC transfers".
# The layout is not named; taken as the v0.4 on-policy H100 row's (256 GPUs, vLLM TP 32), the one colocated
# DeepSeek-V3 recipe at the v0.4.0 tag. Out of sample: nothing in costsim is set from it.
COLOCATED_REFIT_MEASURED_S = 35.0


def test_colocated_deepseek_v3_refit_against_the_one_published_time(rl_validation_doc):
    """The refit validate rl books for the v0.4 on-policy DeepSeek-V3 row (colocated_refit_s's export and gather, the
    optimizer's way out, the engine's wake: the span of NeMo RL's refit_policy_generation) against PR #1267's ~35 s:
    -9.9% today; tolerance 20%, as the figure is approximate and its layout assumed. It also says the refit is not
    where that row's missing 55 s are (docs/model.md §17.7)."""
    row = next(c for c in rl_validation_doc["cases"] if c["id"] == "nemo-rl-v0.4-deepseek-v3-h100x256-on-policy")
    refit = row["split"]["refit"]
    assert abs(refit / COLOCATED_REFIT_MEASURED_S - 1) <= 0.20, refit
    assert row["reported"] - row["predicted"] > 2 * abs(refit - COLOCATED_REFIT_MEASURED_S)


def test_colocated_step_is_generation_plus_logprob_plus_training_plus_refit(tmp_path):
    r = _run(tmp_path).rl_stages[0]
    model, hw = load_model("llama-3.1-8b"), load_hardware("h100-sxm")
    assumptions = DEFAULT.for_generation(hw.generation)
    rates = device_rates(hw, assumptions)
    p = r.phases[0]
    g = p.generation
    responses = 16 * 8 * 2
    assert g.responses == responses and g.gpus == 16
    # generation: the mean length at the layout's tokens/s per GPU, then the tail at its per-sequence speed
    assert g.bulk_s == pytest.approx(responses * 500 / (16 * g.tokens_per_s_per_gpu), rel=1e-12)
    assert g.tail_len == 3.0 * 500
    assert g.tail_s == pytest.approx((1500 - 500) / g.tokens_per_s_per_user, rel=1e-12)
    assert g.layout["batch_per_gpu"] <= responses / 16
    # training: two optimizer steps of the training step model at prompt + response tokens per sequence
    seq_len = training_seq_len(100 + 500)
    assert seq_len == 640 and seq_len % SEQ_LEN_ROUND == 0
    tokens = 128.0 * seq_len
    e = estimate_expected(resolve(model, hw, 16, tokens, seq_len=seq_len, global_batch_tokens=tokens,
                                  layout={"tp": 1, "pp": 1}))  # fmt: skip
    assert p.training_s == pytest.approx(2 * 1 * e.step_time_s, rel=1e-12)
    # log-probs: reference and old policy, each a forward-only pass through the trainer at its layout, and the
    # reference weights swapped in from host memory and the policy's back
    assert p.logprob.forward_s == pytest.approx(
        2 * trainer_forward_s(model, rates, assumptions, responses, seq_len, e.layout, "bf16"), rel=1e-12
    )
    swap = reference_swap_s(e.step.memory.weights_bytes, assumptions)
    assert p.logprob.seconds == pytest.approx(p.logprob.forward_s + swap, rel=1e-12)
    # refit, colocated: every training rank assembles the full weights from its TP x PP x EP peers (TP1 PP1: nothing to
    # gather), no faster than the trainer exports them (Assumptions.refit_export_bytes_per_s)
    assert (e.layout.tp, e.layout.pp, e.layout.ep) == (1, 1, 1)
    assert p.refit_s == pytest.approx(refit_model_bytes(model) / assumptions.refit_export_bytes_per_s, rel=1e-9)
    # colocated: the engine's weights to host and back around the refit (vLLM sleep level 1)
    sleep = engine_sleep_wake_s(g.weight_bytes_per_gpu, assumptions)
    assert p.engine_sleep_wake_s == sleep
    assert p.rollout.wall_s == pytest.approx(g.seconds + p.logprob.seconds + p.training_s + p.refit_s + sleep, rel=1e-12)
    # the stage: rollouts of each phase, one after another, then failures (ETTR)
    walls = sum(q.rollouts * q.rollout.wall_s for q in r.phases)
    assert [q.rollouts for q in r.phases] == [2.0, 2.0]
    assert r.wall_clock_s == pytest.approx(walls / r.ettr, rel=1e-12)
    assert r.gpu_hours == pytest.approx(16 * walls / SECONDS_PER_HOUR / r.ettr, rel=1e-12)


def test_training_state_offload_is_optimizer_bytes_over_pageable_plus_weights_over_pinned():
    """training_state_offload: each way, optimizer bytes at Assumptions.pageable_copy_bytes_per_s (2.2 GB/s, the geometric
    mean of NVIDIA-NeMo/RL issue #3976's 1.8 GB/s and sgl-project/sglang#32032's 2.8 GB/s, rounded) plus weight bytes
    at pinned_copy_bytes_per_s (55 GB/s, #3976's pinned benchmark)."""
    a = DEFAULT
    assert a.pageable_copy_bytes_per_s == pytest.approx((1.8e9 * 2.8e9) ** 0.5, rel=0.03)
    assert a.pinned_copy_bytes_per_s == 55e9
    off = training_state_offload(44e9, 11e9, a)
    assert off.to_host_s == pytest.approx(44e9 / a.pageable_copy_bytes_per_s + 11e9 / 55e9, rel=1e-12) == off.back_s
    assert off.to_host_s == pytest.approx(20.2, rel=1e-12)
    assert training_state_offload(0.0, 0.0, a).to_host_s == 0.0


def test_offloading_stage_adds_the_way_out_to_the_refit_and_the_way_back_before_training(tmp_path):
    """A colocated stage with offload_training_state: the trainer's optimizer and weight bytes (the training estimate's
    memory) go out before the refit and back before training; the step grows by both, the parts say where."""
    plain = _run(tmp_path).rl_stages[0].phases[0]
    r = _run(tmp_path, offload_training_state=True).rl_stages[0]
    p = r.phases[0]
    memory = p.training.step.memory
    off = training_state_offload(memory.optimizer_bytes, memory.weights_bytes, DEFAULT)
    assert p.offload == off and off.to_host_s > 1.0
    assert p.rollout.wall_s == pytest.approx(plain.rollout.wall_s + off.to_host_s + off.back_s, rel=1e-9)
    assert p.to_dict()["offload"]["back_s"] == pytest.approx(off.back_s, rel=1e-12)
    assert plain.offload is None and plain.to_dict()["offload"] is None
    names = {a["name"]: a["value"] for a in r.assumptions}
    assert names["offload_training_state"] is True


def test_offload_optimizer_for_logprob_moves_the_optimizer_around_the_logprob_passes(tmp_path):
    """offload_optimizer_for_logprob (NeMo RL up to v0.4.0: prepare_for_lp_inference called offload_before_refit): the
    optimizer states go to pageable host memory before the log-prob passes and come back before training, every rollout.
    On split GPUs this is the trainer's time (synchronous: the step grows by both ways; one step off: hidden only under
    a longer generation); where offload_training_state already has the states out it adds nothing."""
    split = {"colocated": False, "generation_gpus": 8}
    plain = _run(tmp_path, **split).rl_stages[0].phases[0]
    r = _run(tmp_path, offload_optimizer_for_logprob=True, **split).rl_stages[0]
    p = r.phases[0]
    trip = training_state_offload(float(p.training.step.memory.optimizer_bytes), 0.0, DEFAULT)
    assert p.logprob_offload == trip and trip.to_host_s > 1.0 and plain.logprob_offload is None
    assert p.rollout.wall_s == pytest.approx(plain.rollout.wall_s + 2 * trip.to_host_s, rel=1e-9)
    assert p.to_dict()["logprob_offload"]["to_host_s"] == pytest.approx(trip.to_host_s, rel=1e-12)
    assert {a["name"]: a["value"] for a in r.assumptions}["offload_optimizer_for_logprob"] is True
    off = _run(tmp_path, policy="one_step_off_policy", offload_optimizer_for_logprob=True, **split).rl_stages[0].phases[0]
    g, lp, train = off.generation.seconds, off.logprob.seconds, off.training_s
    assert off.rollout.wall_s == pytest.approx(max(g, lp + train + 2 * trip.to_host_s) + off.refit_s, rel=1e-12)
    colocated = _run(tmp_path, offload_training_state=True).rl_stages[0].phases[0]
    both = _run(tmp_path, offload_training_state=True, offload_optimizer_for_logprob=True).rl_stages[0].phases[0]
    assert both.logprob_offload is None and both.rollout.wall_s == colocated.rollout.wall_s
    # Colocated with the states kept on the GPUs between rollouts: the trip is paid, as on split GPUs.
    kept = _run(tmp_path).rl_stages[0].phases[0]
    moved = _run(tmp_path, offload_optimizer_for_logprob=True).rl_stages[0].phases[0]
    own = training_state_offload(float(moved.training.step.memory.optimizer_bytes), 0.0, DEFAULT)  # 16 GPUs, not 8
    assert moved.logprob_offload == own and own.to_host_s > 1.0
    assert moved.rollout.wall_s == pytest.approx(kept.rollout.wall_s + 2 * own.to_host_s, rel=1e-9)


def test_the_plan_table_names_the_optimizers_trip_around_the_logprob_passes(tmp_path):
    """estimate --plan's rollout line names every part of the step: with offload_optimizer_for_logprob, the optimizer's
    way out and back (it summed to the rollout without being named)."""
    from simulator.report.rl_table import rl_plan_table

    r = _run(tmp_path, colocated=False, generation_gpus=8, offload_optimizer_for_logprob=True)
    trip = r.rl_stages[0].phases[0].logprob_offload
    text = rl_plan_table(r.to_dict())
    assert f"optimizer to host before the log-prob passes {trip.to_host_s:.1f} s and back {trip.back_s:.1f} s" in text
    assert "optimizer to host before the log-prob passes" not in rl_plan_table(_run(tmp_path).to_dict())


def test_nemo_rl_v040_split_rows_pay_the_optimizers_trip_around_the_logprob_passes(rl_validation_doc):
    """The v0.4 rows ran the v0.4.0 tag's Megatron worker, whose prepare_for_lp_inference moved the optimizer states to
    the host (NVIDIA-NeMo/RL pull request #1404, never picked into the r0.4.0 branch, made it optional and off): each
    one-step-off v0.4 row books the way out as logprob_prep and the way back in training_prep, and the assumptions
    name those rows; the v0.5 and v0.6 rows pay neither."""
    from simulator.inputs.serving_cases import rl_cases

    for case in rl_cases():
        one_step_off = case.policy == "one_step_off_policy"
        assert case.offload_optimizer_for_logprob is (one_step_off and case.id.startswith("nemo-rl-v0.4-")), case.id
    rows = {c["id"]: c for c in rl_validation_doc["cases"]}
    for case_id in [k for k in DOCUMENTED_ERRORS if k.endswith("-1-off")]:
        split = rows[case_id]["split"]
        assert split["logprob_prep"] == pytest.approx(split["training_prep"], rel=1e-12) and split["logprob_prep"] > 5.0
    (trip,) = [a for a in rl_validation_doc["assumptions"] if a["name"] == "offload_optimizer_for_logprob"]
    assert trip["value"] == {"set_on": sorted(k for k in DOCUMENTED_ERRORS if k.endswith("-1-off"))}


def test_a_colocated_engine_sleeps_and_wakes_every_rollout_and_a_split_one_does_not(tmp_path):
    """NeMo RL puts vLLM to sleep whenever generation shares the trainer's GPUs, offload or not: the colocated step
    grows by engine_sleep_wake_s of the engine's weights per GPU, booked with the refit; split GPUs keep the engine
    awake."""
    colocated = _run(tmp_path).rl_stages[0].phases[0]
    sleep = engine_sleep_wake_s(colocated.generation.weight_bytes_per_gpu, DEFAULT)
    assert colocated.engine_sleep_wake_s == sleep > 0.0 and colocated.offload is None
    assert colocated.to_dict()["engine_sleep_wake_s"] == sleep
    parts = colocated.rollout.gpu_s
    assert parts["refit"] == pytest.approx(16 * (colocated.refit_s + sleep), rel=1e-12)
    split = _run(tmp_path, colocated=False, generation_gpus=8).rl_stages[0].phases[0]
    assert split.engine_sleep_wake_s == 0.0


def test_validate_rl_books_the_sleep_in_generation_and_the_wake_in_the_refit(rl_validation_doc):
    """NeMo RL times finish_generation (the sleep) inside its generation timer and the wake inside
    prepare_for_generation with the refit (grpo.py at cff17f8): half of the engine's copies each way."""
    from simulator.analysis.rl_validation import _run_case
    from simulator.inputs.serving_cases import rl_cases

    case = next(c for c in rl_cases() if c.id == "nemo-rl-v0.4-deepseek-v3-h100x256-on-policy")
    phase = _run_case(case, False).phases[0]
    half = phase.engine_sleep_wake_s / 2
    row = next(c for c in rl_validation_doc["cases"] if c["id"] == case.id)
    assert row["split"]["generation"] == pytest.approx(phase.generation.seconds + half, rel=1e-12)
    assert row["split"]["refit"] == pytest.approx(phase.refit_s + phase.offload.to_host_s + half, rel=1e-12)


def test_engine_sleep_is_two_pinned_copies_of_the_engines_weights():
    """engine_sleep_wake_s: vLLM's sleep(level=1) copies each weight allocation to pinned host memory and wake_up copies
    it back (NeMo RL v0.4 vllm_worker.py at cff17f8; vllm/device_allocator/cumem.py): 2 x bytes at
    Assumptions.pinned_copy_bytes_per_s, the KV cache dropped, not copied."""
    assert engine_sleep_wake_s(11e9, DEFAULT) == pytest.approx(2 * 11e9 / 55e9, rel=1e-12) == pytest.approx(0.4)
    assert engine_sleep_wake_s(0.0, DEFAULT) == 0.0


def test_generation_reports_the_engines_weights_per_gpu(tmp_path):
    """The engine's weights per GPU are the serving memory model's at the chosen layout: Llama 3.1 8B's BF16 weights
    whole on each TP 1 engine (8.03B parameters x 2 B, within 1%)."""
    g = _run(tmp_path, generation_layout={"tp": 1}).rl_stages[0].phases[0].generation
    assert g.layout["tp"] == 1
    assert g.weight_bytes_per_gpu == pytest.approx(8.03e9 * 2, rel=0.01)
    assert g.to_dict()["weight_gib_per_gpu"] == pytest.approx(g.weight_bytes_per_gpu / 2**30, rel=1e-12)


def test_reference_swap_is_three_pinned_copies_of_the_trainers_weights(tmp_path):
    """reference_swap_s: NeMo RL's Megatron worker (cff17f8) saves the policy's weights to pinned host memory, loads
    the reference's and restores the policy's: 3 x a training GPU's weight bytes at the pinned rate, added to the
    log-prob passes where the stage runs a reference pass, and absent without one."""
    assert reference_swap_s(5.5e9, DEFAULT) == pytest.approx(3 * 5.5e9 / 55e9, rel=1e-12) == pytest.approx(0.3)
    with_ref = _run(tmp_path).rl_stages[0].phases[0]
    without = _run(tmp_path, reference_logprobs=False).rl_stages[0].phases[0]
    swap = reference_swap_s(with_ref.training.step.memory.weights_bytes, DEFAULT)
    assert with_ref.logprob.reference_swap_s == swap > 0.1
    assert with_ref.logprob.seconds == pytest.approx(with_ref.logprob.forward_s + swap, rel=1e-12)
    assert with_ref.to_dict()["logprob"]["reference_swap_s"] == swap
    assert without.logprob.reference_swap_s == 0.0


def test_offload_needs_colocated_generation(tmp_path):
    out = _error(tmp_path, offload_training_state=True, colocated=False, generation_gpus=8)
    assert "offload_training_state" in out and "colocated: true" in out


def test_split_gpus_sum_on_policy_and_overlap_one_step_off(tmp_path):
    sync = _run(tmp_path, colocated=False, generation_gpus=8).rl_stages[0]
    off = _run(tmp_path, colocated=False, generation_gpus=8, policy="one_step_off_policy").rl_stages[0]
    for r in (sync, off):
        assert r.to_dict()["training_gpus"] == 8 and r.phases[0].generation.gpus == 8
    for a, b in zip(sync.phases, off.phases, strict=True):
        g, lp, train, refit = a.generation.seconds, a.logprob.seconds, a.training_s, a.refit_s
        assert a.rollout.wall_s == pytest.approx(g + lp + train + refit, rel=1e-12)
        assert b.rollout.wall_s == pytest.approx(max(g, lp + train) + refit, rel=1e-12)
        # split: training rank 0 broadcasts every full weight over all 16 GPUs (NeMo RL's collective refit)
        hw = load_hardware("h100-sxm")
        rates = device_rates(hw, DEFAULT.for_generation(hw.generation))
        model_bytes = refit_model_bytes(load_model("llama-3.1-8b"))
        assert refit == pytest.approx(refit_s(model_bytes, 16, rates.fabric, DEFAULT.refit_export_bytes_per_s), rel=1e-12)
    assert off.gpu_hours < sync.gpu_hours


# --------------------------------------------------------------------------- the response-length schedule


def test_response_length_schedule_steps_and_caps(tmp_path):
    r = _run(tmp_path, long_tail_factor={"value": 4.0, "low": 1.0, "high": 4.0}).rl_stages[0]
    first, second = r.phases
    # steps 0-3 then 4-7: four optimizer steps each, two per rollout
    assert (first.steps, second.steps) == (4, 4) and (first.rollouts, second.rollouts) == (2.0, 2.0)
    # the slowest response is 4 x the mean, cut at the phase's cap: 2,000 under the 2,048 cap; 3,600 under 4,096
    assert first.generation.tail_len == 2000 and second.generation.tail_len == 3600
    r2 = _run(tmp_path, long_tail_factor={"value": 5.0, "low": 1.0, "high": 5.0}).rl_stages[0]
    assert r2.phases[0].generation.tail_len == 2048  # capped before the cap changes
    assert r2.phases[1].generation.tail_len == 4096
    # longer responses after the change: a longer rollout and a longer training step
    assert second.rollout.wall_s > first.rollout.wall_s
    assert second.training.job.seq_len == training_seq_len(100 + 900) > first.training.job.seq_len


def test_r1_zero_schedule_changes_cap_at_step_8200():
    plan, _ = load_plan("deepseek-r1")
    zero = next(s for s in plan.stages if s.name == "r1-zero-rl")
    caps = [(p.from_step, p.max_response_len) for p in zero.response_lengths]
    assert caps[-1] == (8200, 65536) and all(cap == 32768 for step, cap in caps[:-1] if step < 8200)
    assert (zero.steps, zero.prompts_per_step, zero.samples_per_prompt, zero.minibatches_per_rollout) == (10400, 32, 16, 16)


# --------------------------------------------------------------------------- the shipped DeepSeek-R1 plan


@pytest.fixture(scope="module")
def r1():
    return api.plan("deepseek-r1").plan


def test_r1_plan_estimates_finite_positive_numbers(r1):
    d = r1.to_dict()
    assert [s["name"] for s in d["stages"]] == [s.name for s in r1.plan.stages]
    kinds = {s["name"]: s["kind"] for s in d["stages"]}
    assert kinds["r1-zero-rl"] == "rl" and kinds["sft-data-generation"] == "generation"
    assert kinds["r1-rejection-sampling-sft"] == "training"
    for s in d["stages"]:
        assert math.isfinite(s["gpu_hours"]) and s["gpu_hours"] > 0, s["name"]
        assert math.isfinite(s["cost_usd"]) and s["cost_usd"] > 0, s["name"]
        assert s["cost_usd"] == pytest.approx(2.0 * s["gpu_hours"], rel=1e-9)  # the plan's $2 per H800-hour
    for s in r1.rl_stages:
        band = s.band_gpu_hours
        assert 0 < band["low"] < band["value"] < band["high"]
        assert all(v > 0 for v in (s.gpu_hours_split["generation"], s.gpu_hours_split["idle"]))
    assert d["cost_usd"] == pytest.approx(2.0 * d["gpu_hours"], rel=1e-9)
    PlanOutput.model_validate(json.loads(json.dumps({"schema_version": SCHEMA_VERSION, **d})))


def test_gpu_hours_split_sums_to_the_total(r1):
    d = r1.to_dict()
    for s in d["stages"]:
        assert sum(s["gpu_hours_split"].values()) == pytest.approx(s["gpu_hours"], rel=1e-12), s["name"]
        if s["kind"] != "training":
            assert set(s["gpu_hours_split"]) == {*SPLIT_PARTS, "failures"}
            assert sum(s["gpu_hours_share"].values()) == pytest.approx(1.0, rel=1e-12)
            assert all(v >= 0 for v in s["gpu_hours_split"].values())
    assert sum(s["gpu_hours"] for s in d["stages"]) == pytest.approx(d["gpu_hours"], rel=1e-12)
    assert sum(d["gpu_hours_split"].values()) == pytest.approx(d["gpu_hours"], rel=1e-12)


def test_r1_plan_quotes_the_published_cost_and_names_its_base(r1):
    d = r1.to_dict()
    by_stages = {tuple(r["stages"]) if r["stages"] != "all" else "all": r for r in d["reported"]}
    zero = by_stages[("r1-zero-rl",)]
    assert (zero["reported_gpu_hours"], zero["gpu"], zero["num_gpus"], zero["reported_wall_hours"]) == (
        512 * 198, "h800", 512, 198,
    )  # fmt: skip
    assert "512 GPUs running at full tilt for 198 hours" in zero["quote"]
    assert by_stages["all"]["reported_gpu_hours"] == 512 * 198 + 512 * 80 + 5000
    assert by_stages["all"]["reported_cost_usd"] == 294000
    assert zero["predicted_wall_hours"] == pytest.approx(r1.rl_stages[0].wall_clock_s / SECONDS_PER_HOUR, rel=1e-12)
    base = d["base"]
    assert base["plan"] == "deepseek-v3" and base["in_totals"] is False
    assert sum(r["gpu_hours"] for r in base["reported"]) == 2664000 + 119000  # V3 Table 1: pre-training + extension


def test_estimate_plan_json_and_table_show_the_split():
    r = invoke("estimate", "--plan", "deepseek-r1", "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    PlanOutput.model_validate(d)
    assert d["gpu_hours"] > 0 and d["cost_usd"] > 0
    assert set(d["gpu_hours_split"]) == {*SPLIT_PARTS, "failures"}
    table = invoke("estimate", "--plan", "deepseek-r1")
    assert table.exit_code == 0, table.output
    header = next(line for line in table.output.splitlines() if line.startswith("stage"))
    for part in ("generation", "logprob", "training", "refit", "idle", "band"):
        assert part in header
    assert "r1-zero-rl" in table.output and "not in this plan's totals" in table.output
    assert "training state to host" in table.output  # the RL stages' offload (Supplementary B.2)


def test_the_rl_plan_table_prints_the_training_notes():
    """The training model's notes of an RL stage (here r1-zero-rl's exposed communication) were in the JSON only (a
    review): the table prints each stage's once."""
    d = json.loads(invoke("estimate", "--plan", "deepseek-r1", "--format", "json").output)
    notes = {n for p in d["stages"][0]["phases"] for n in (p["training"] or {}).get("notes", [])}
    assert notes
    table = invoke("estimate", "--plan", "deepseek-r1").output
    assert "training notes" in table and all(table.count(n) == 1 for n in notes)


def test_the_rl_plan_table_shows_the_cost_block():
    """A review found `--experiments-multiplier 3` and `--pricing tco` left the RL plan's table byte-identical (the cost
    block of every other plan table was missing): the basis, the rate, the other basis, energy and the program."""
    plain = invoke("estimate", "--plan", "deepseek-r1").output
    assert "cost basis   rental" in plain and "energy" in plain and "program" not in plain
    program = invoke("estimate", "--plan", "deepseek-r1", "--experiments-multiplier", "3").output
    assert "program      x3" in program
    tco = invoke("estimate", "--plan", "deepseek-r1", "--pricing", "tco").output
    assert "TCO components" in tco and "TCO components" not in plain


def test_training_plans_are_unchanged_in_kind():
    d = api.plan("llama-3.1-405b").plan.to_dict()
    assert all(s["kind"] == "training" for s in d["stages"])
    assert set(d["gpu_hours_split"]) == {"training", "failures"}


def test_analyses_of_training_stages_refuse_rl_plans(r1):
    with pytest.raises(InputError, match="covers plans of training stages only; plan deepseek-r1 has RL"):
        r1.require_training_only("compare")
    out = clean_error(invoke("estimate", "--plan", "deepseek-r1", "--uncertainty", "--draws", "100"), error="prefix")
    assert len(out.strip().splitlines()) == 1 and "r1-zero-rl" in out


# --------------------------------------------------------------------------- bad stages


def _error(tmp_path: Path, **changes) -> str:
    plan = copy.deepcopy(SMALL_PLAN)
    stage = plan["stages"][0]
    for key, value in changes.items():
        if value is None:
            stage.pop(key)
        else:
            stage[key] = value
    out = clean_error(invoke("estimate", "--plan", _write(tmp_path, plan)), error="prefix")
    assert len(out.strip().splitlines()) == 1, out
    return out


def test_unknown_key_is_refused_with_the_field_it_resembles(tmp_path):
    out = _error(tmp_path, sampels_per_prompt=8)
    assert "stages.0.sampels_per_prompt" in out and "did you mean samples_per_prompt?" in out
    assert ".rl." not in out  # the union's tag is not part of the path


def test_zero_samples_is_refused_with_the_range(tmp_path):
    out = _error(tmp_path, samples_per_prompt=0)
    assert "set stages.0.samples_per_prompt to an integer between 1 and 100,000" in out


def test_a_cap_below_the_mean_response_length_is_refused(tmp_path):
    phases = copy.deepcopy(SMALL_RL["response_lengths"])
    phases[1]["max_response_len"] = 800
    out = _error(tmp_path, response_lengths=phases)
    assert "mean response length 900 is above the cap max_response_len 800" in out and "raise the cap" in out


def test_gpu_counts_that_do_not_fit_the_model_are_refused(tmp_path):
    plan = copy.deepcopy(SMALL_PLAN)
    plan["model"] = "deepseek-v3"
    plan["stages"][0]["num_gpus"] = 8
    plan["stages"][0]["offload_training_state"] = True  # the engine may take the whole GPU: its refusal is the first
    out = clean_error(invoke("estimate", "--plan", _write(tmp_path, plan)), error="prefix")
    assert len(out.strip().splitlines()) == 1, out
    assert "stage 'small-rl': the 8 generation GPUs cannot hold deepseek-v3" in out and "give more GPUs" in out
    # Without offloading, the trainer's resident state is sized first (the engine's memory is what it leaves).
    plan["stages"][0]["offload_training_state"] = False
    out = clean_error(invoke("estimate", "--plan", _write(tmp_path, plan)), error="prefix")
    assert len(out.strip().splitlines()) == 1 and "stage 'small-rl': training: none of the" in out
    assert "Try larger training_layout.tp/training_layout.pp" in out  # the plan's fields, not the flags --tp/--pp


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"colocated": False}, "colocated is false but generation_gpus is missing"),
        ({"colocated": False, "generation_gpus": 16}, "leaves no training GPUs"),
        ({"generation_gpus": 8}, "generation_gpus 8 is given but colocated is true"),
        ({"policy": "one_step_off_policy"}, "policy one_step_off_policy overlaps generation with training"),
        ({"kind": "rlhf"}, "kind 'rlhf' is not a kind this field takes"),
        ({"mtp_depth": 1}, "mtp_depth 1 needs mtp_accept"),
        ({"long_tail_factor": {"value": 0.5, "low": 0.5, "high": 2.0}}, "long_tail_factor is the slowest response"),
        ({"long_tail_factor": {"value": 3.0, "low": 3.5, "high": 4.0}}, "the band must hold its value"),
    ],
)
def test_inconsistent_stages_are_refused_with_one_line(tmp_path, changes, needle):
    assert needle in _error(tmp_path, **changes)


def test_phases_must_start_at_zero_and_increase(tmp_path):
    phases = copy.deepcopy(SMALL_RL["response_lengths"])
    phases[0]["from_step"] = 1
    assert "must start at step 0" in _error(tmp_path, response_lengths=phases)
    phases[0]["from_step"], phases[1]["from_step"] = 0, 8
    assert "at or after the stage's 8 steps" in _error(tmp_path, response_lengths=phases)


# --------------------------------------------------------------------------- validation against published RL figures

DOCUMENTED_ERRORS = {
    # docs/model.md §17.7: predicted / reported - 1 of each NeMo RL v0.4 GRPO step time, as computed
    "nemo-rl-v0.4-llama-3.1-8b-h100x16-on-policy": -0.028,
    "nemo-rl-v0.4-llama-3.1-8b-h100x16-1-off": 0.307,
    "nemo-rl-v0.4-qwen3-32b-h100x32-on-policy": -0.096,
    "nemo-rl-v0.4-qwen3-32b-h100x64-1-off": 0.222,
    "nemo-rl-v0.4-qwen3-235b-a22b-h100x128-on-policy": -0.328,
    "nemo-rl-v0.4-qwen3-235b-a22b-h100x256-1-off": 0.026,
    "nemo-rl-v0.4-qwen3-30b-a3b-h100x32-on-policy": 0.012,
    "nemo-rl-v0.4-qwen3-30b-a3b-h100x32-1-off": 0.295,
    "nemo-rl-v0.4-deepseek-v3-h100x256-on-policy": -0.355,
    "nemo-rl-v0.4-deepseek-v3-h100x512-1-off": -0.245,
}
ERROR_TOLERANCE = 0.005
"""How far a row's error may move (other parts of the model change) before docs/model.md §17.7 must be updated."""


@pytest.fixture(scope="module")
def rl_validation_doc():
    from simulator.analysis import rl_validation

    return rl_validation.report(rl_validation.evaluate())


def test_nemo_rl_rows_errors_as_documented(rl_validation_doc):
    """The issue's target (every NeMo RL step within 30%) is not met: seven of ten rows are; the two on-policy MoE rows
    (DeepSeek-V3, Qwen3-235B-A22B) are too fast and the one-step-off Llama 3.1 8B row too slow (+30.7% since the two
    Llama 8B whole runs joined the Hopper realization, 2026-12-07; +28.0% before).
    This pins each row's error to the value docs/model.md §17.7 reports."""
    rows = {c["id"]: c for c in rl_validation_doc["cases"] if c["track"] == "benchmark"}
    assert set(rows) == set(DOCUMENTED_ERRORS)
    for case_id, documented in DOCUMENTED_ERRORS.items():
        row = rows[case_id]
        assert row["predicted"] is not None, row["not_predicted_because"]
        assert row["error"] == pytest.approx(documented, abs=ERROR_TOLERANCE), case_id
        low, high = row["band"]
        assert 0 < low <= row["predicted"] * (1 + 1e-9) and row["predicted"] <= high * (1 + 1e-9)
    assert rl_validation_doc["median_abs_error"] == pytest.approx(0.233, abs=ERROR_TOLERANCE)  # §17.7 and README
    within = sum(abs(e) <= 0.30 for e in DOCUMENTED_ERRORS.values())
    assert rl_validation_doc["within_target"] == within == 7
    assert rl_validation_doc["meets_target"] is False


def test_nemo_rl_row_is_one_rollout_of_its_stated_batch():
    from simulator.analysis.rl_validation import MEAN_PROMPT_LEN, stage_for
    from simulator.inputs.serving_cases import rl_cases

    case = next(c for c in rl_cases() if c.id == "nemo-rl-v0.4-llama-3.1-8b-h100x16-on-policy")
    stage = stage_for(case)
    # G-GBS 2,048 responses per rollout, T-GBS 512 per optimizer step: 4 optimizer steps, one rollout
    assert stage.prompts_per_step * stage.samples_per_prompt == 512 and stage.minibatches_per_rollout == 4
    assert stage.steps == 4 and stage.colocated and stage.generation_memory_fraction == 0.6
    assert stage.response_lengths[0].max_response_len == 4096 - round(MEAN_PROMPT_LEN)
    off = stage_for(next(c for c in rl_cases() if c.id == "nemo-rl-v0.4-llama-3.1-8b-h100x16-1-off"))
    assert (off.colocated, off.generation_gpus, off.policy) == (False, 8, "one_step_off_policy")


def test_deepseek_r1_figures_are_predicted_through_the_plan(rl_validation_doc, r1):
    rows = {c["id"]: c for c in rl_validation_doc["cases"] if c["track"] == "plan"}
    zero = rows["deepseek-r1-zero-rl-h800x512"]
    assert zero["predicted"] == pytest.approx(r1.rl_stages[0].wall_clock_s / SECONDS_PER_HOUR, rel=1e-9)
    assert rows["deepseek-r1-sft-data-creation-h800"]["predicted"] == pytest.approx(
        next(s.gpu_hours for s in r1.rl_stages if s.stage.name == "sft-data-generation"), rel=1e-9
    )


def test_validate_rl_command_prints_table_and_json():
    import typer
    from typer.testing import CliRunner

    from cli import rl

    app, validate_app = typer.Typer(), typer.Typer()
    app.add_typer(validate_app, name="validate")
    rl.register(app, validate_app)
    runner = CliRunner()
    table = runner.invoke(app, ["validate", "rl"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "7 within 30%" in table.output and "not met" in table.output
    assert "39 steps of later NeMo RL releases" in table.output and "31 within 30%" in table.output
    assert "7 steps with published phase times (track phase-breakdown" in table.output
    assert "nemo-rl-v0.3-qwen3-30b-a3b-h100x64-phases" in table.output and "training 50 s +8%" in table.output
    assert "+ training prep 15.8 + train 5 + refit 31.5 s" in table.output  # DeepSeek-V3 on 256 H100: the offload each way
    assert "max(gen 44 (tail 21), logprob prep 15.7 + logprob 2 + training prep 15.7 + train 5) + refit 14.9 s" in table.output
    doc = json.loads(runner.invoke(app, ["validate", "rl", "--format", "json"]).output)
    assert doc["n_cases"] == 10 and doc["target"]["max_abs_error"] == 0.30
    ValidateRLOutput.model_validate(doc)
    with pytest.raises(ValidationError, match="new_key"):
        ValidateRLOutput.model_validate({**doc, "new_key": 1})


def test_nemo_rl_rows_train_with_their_recipe_settings(rl_validation_doc):
    """The recipes (NVIDIA-NeMo/RL cff17f8, examples/configs/recipes/llm/performance/) set train_micro_batch_size 1, no
    virtual stages and the distributed optimizer; activation_checkpointing true (DeepSeek-V3, Qwen3-235B, Llama 3.1 8B)
    is Megatron full recomputation. These hold in the layout costsim trains with, also where the stated degrees break a
    costsim layout rule and the degrees are searched (test_rl_stated_layout_breaking_a_rule_keeps_its_settings)."""
    rows = {c["id"]: c["detail"] for c in rl_validation_doc["cases"] if c["track"] in ("benchmark", "later-release")}
    assert len(rows) == len(DOCUMENTED_ERRORS) + LATER_RELEASE_SUMMARY["n"]
    checkpointed = ("deepseek-v3", "qwen3-235b", "llama-3.1-8b")
    for case_id, detail in rows.items():
        lay = detail["training_layout"]
        # Llama 3.1 8B packs two of its ~1,200-token sequences per micro-batch (test_sequence_packing_per_micro_batch).
        assert lay["micro_batch_size"] == (2 if "llama-3.1-8b" in case_id else 1) and lay["zero_stage"] == 1, case_id
        assert lay["recompute"] == ("full" if any(m in case_id for m in checkpointed) else "none"), case_id
        assert lay["pp"] == 1 or (lay["schedule"], lay["vpp"]) == ("1f1b", 1), case_id
    # Qwen3-235B's EP 16 spans TP x CP x DP = 2 x 2 x 4 (a folded expert grid): its stated degrees hold.
    stated = rows["nemo-rl-v0.4-qwen3-235b-a22b-h100x128-on-policy"]
    assert "training_layout_note" not in stated
    assert {k: stated["training_layout"][k] for k in ("tp", "cp", "ep", "pp", "dp")} == dict(tp=2, cp=2, ep=16, pp=8, dp=4)


def test_rl_stated_layout_breaking_a_rule_keeps_its_settings():
    """EP 32 cannot divide TP x CP x DP = 16 on 128 GPUs at TP 2, CP 2, PP 8: the degrees are searched, and the recipe's
    recompute, micro-batch, schedule and ZeRO stage still hold."""
    from simulator.analysis.rl_validation import predict_step
    from simulator.inputs.serving_cases import rl_cases

    case = next(c for c in rl_cases() if c.id == "nemo-rl-v0.4-qwen3-235b-a22b-h100x128-on-policy")
    broken = case.model_copy(update={"training_layout": case.training_layout.model_copy(update={"ep": 32})})
    out = predict_step(broken)
    assert out.predicted is not None and "searched instead" in out.detail["training_layout_note"]
    assert "EP = 32" in out.detail["training_layout_note"]
    lay = out.detail["training_layout"]
    assert (lay["recompute"], lay["micro_batch_size"], lay["zero_stage"]) == ("full", 1, 1)
    assert lay["pp"] == 1 or lay["schedule"] == "1f1b"


def test_rl_case_training_layout_rejects_an_unknown_recompute_mode():
    from pydantic import ValidationError

    from simulator.inputs.serving_cases import TrainingLayout

    assert TrainingLayout(tp=2, recompute="full", schedule="1f1b").recompute == "full"
    with pytest.raises(ValidationError):
        TrainingLayout(recompute="some")


LATER_RELEASE_SUMMARY = {"n": 39, "within_30_percent": 31, "median_abs_error": 0.216}
"""docs/model.md §17.7: the NeMo RL v0.5 steps (performance-summary.md at NVIDIA-NeMo/RL 9dbd9adc9, table 'Nemo RL v0.5',
H100 and GB200 BF16 and H100 FP8 GRPO, 22 rows) and v0.6 steps (66059ab, table 'Nemo RL v0.6', H100 and GB200 BF16,
H100 FP8, 17 rows), predicted beside the v0.4 target; median within ERROR_TOLERANCE."""

V05_ERRORS = {
    # docs/model.md §17.7: predicted / reported - 1 of each NeMo RL v0.5 H100 and GB200 BF16 GRPO step (9dbd9adc9), the
    # recipes at that commit; tolerance ERROR_TOLERANCE. Outside the target; nothing fitted to them.
    "nemo-rl-v0.5-h100x16-llama-3.1-8b-on-policy": -0.027,
    "nemo-rl-v0.5-h100x16-llama-3.1-8b-1-off": 0.316,
    "nemo-rl-v0.5-h100x256-deepseek-v3-on-policy": -0.259,
    "nemo-rl-v0.5-h100x512-deepseek-v3-1-off": -0.093,
    "nemo-rl-v0.5-h100x128-qwen3-235b-a22b-on-policy": -0.211,
    "nemo-rl-v0.5-h100x256-qwen3-235b-a22b-1-off": 0.219,
    "nemo-rl-v0.5-h100x32-qwen3-30b-a3b-on-policy": -0.104,
    "nemo-rl-v0.5-h100x32-qwen3-30b-a3b-1-off": 0.148,
    "nemo-rl-v0.5-h100x32-qwen3-32b-on-policy": -0.030,
    "nemo-rl-v0.5-h100x64-qwen3-32b-1-off": 0.255,
    "nemo-rl-v0.5-h100x512-deepseek-v3-fp8-1-off": -0.263,
    "nemo-rl-v0.5-h100x16-llama-3.1-8b-fp8-1-off": 0.130,
    "nemo-rl-v0.5-gb200x8-llama-3.1-8b-on-policy": -0.160,
    "nemo-rl-v0.5-gb200x8-llama-3.1-8b-1-off": -0.138,
    "nemo-rl-v0.5-gb200x128-deepseek-v3-on-policy": -0.126,
    "nemo-rl-v0.5-gb200x256-deepseek-v3-1-off": -0.321,
    "nemo-rl-v0.5-gb200x64-qwen3-235b-a22b-on-policy": -0.216,
    "nemo-rl-v0.5-gb200x128-qwen3-235b-a22b-1-off": -0.365,
    "nemo-rl-v0.5-gb200x16-qwen3-30b-a3b-on-policy": -0.324,
    "nemo-rl-v0.5-gb200x32-qwen3-30b-a3b-1-off": -0.487,
    "nemo-rl-v0.5-gb200x16-qwen3-32b-on-policy": -0.253,
    "nemo-rl-v0.5-gb200x32-qwen3-32b-1-off": -0.233,
}


def test_nemo_rl_v05_rows_as_documented(rl_validation_doc):
    rows = {c["id"]: c for c in rl_validation_doc["cases"] if c["id"].startswith("nemo-rl-v0.5-")}
    assert set(rows) == set(V05_ERRORS)
    for case_id, documented in V05_ERRORS.items():
        assert rows[case_id]["track"] == "later-release"
        assert rows[case_id]["error"] == pytest.approx(documented, abs=ERROR_TOLERANCE), case_id


def test_later_nemo_rl_release_is_reported_beside_the_target(rl_validation_doc):
    later = [c for c in rl_validation_doc["cases"] if c["track"] == "later-release"]
    assert len(later) == LATER_RELEASE_SUMMARY["n"]
    assert all(c["id"].startswith(("nemo-rl-v0.5-", "nemo-rl-v0.6-")) for c in later)
    assert all(c["predicted"] is not None for c in later), [c["not_predicted_because"] for c in later]
    summary = rl_validation_doc["later_release"]
    assert summary["n"] == LATER_RELEASE_SUMMARY["n"]
    assert summary["within_30_percent"] == LATER_RELEASE_SUMMARY["within_30_percent"]
    assert summary["median_abs_error"] == pytest.approx(LATER_RELEASE_SUMMARY["median_abs_error"], abs=ERROR_TOLERANCE)
    # The target counts the v0.4 rows only, whatever the later rows give.
    assert rl_validation_doc["n_cases"] == len(DOCUMENTED_ERRORS)


def test_rl_case_memory_fraction_comes_from_its_recipe():
    from simulator.analysis.rl_validation import NEMO_MEMORY_FRACTION, stage_for
    from simulator.inputs.serving_cases import rl_cases

    cases = {c.id: c for c in rl_cases()}
    # grpo-deepseek-v3-32n4g.yaml (GB200) sets vllm_cfg.gpu_memory_utilization 0.3
    assert stage_for(cases["nemo-rl-v0.6-gb200x128-deepseek-v3-on-policy"]).generation_memory_fraction == 0.3
    default = stage_for(cases["nemo-rl-v0.4-deepseek-v3-h100x256-on-policy"]).generation_memory_fraction
    assert default == NEMO_MEMORY_FRACTION[True] == 0.6
    split = stage_for(cases["nemo-rl-v0.4-deepseek-v3-h100x512-1-off"]).generation_memory_fraction
    assert split == NEMO_MEMORY_FRACTION[False] == 0.8


def test_nemo_rl_colocated_steps_move_the_training_state_out_and_back(rl_validation_doc):
    """NeMo RL's Megatron worker offloads the optimizer before each colocated refit and reloads it before training
    (docs/model.md §17.4): every colocated row's refit part holds the way out and its training_prep the way back; the
    split rows of v0.5 on keep their state on the GPUs (v0.4's move it around the log-prob passes, tested below)."""
    from simulator.analysis.rl_validation import stage_for
    from simulator.inputs.serving_cases import rl_cases

    for case in rl_cases():
        if case.num_gpus and case.id.startswith("nemo-rl-"):
            assert stage_for(case).offload_training_state is bool(case.colocated), case.id
    rows = {c["id"]: c for c in rl_validation_doc["cases"]}
    on, off = rows["nemo-rl-v0.4-deepseek-v3-h100x256-on-policy"], rows["nemo-rl-v0.5-h100x512-deepseek-v3-1-off"]
    assert on["split"]["training_prep"] > 10.0 and on["split"]["refit"] > off["split"]["refit"] + 10.0
    assert off["split"]["training_prep"] == 0.0 == off["split"]["logprob_prep"]
    # the parts add up to the step (the generation holds its tail)
    parts = sum(v for k, v in on["split"].items() if k != "generation_tail")
    assert parts == pytest.approx(on["predicted"], rel=1e-9)
    (offload,) = [a for a in rl_validation_doc["assumptions"] if a["name"] == "offload_training_state"]
    assert offload["value"]["pageable_copy_bytes_per_s"] == DEFAULT.pageable_copy_bytes_per_s


V06_DEEPSEEK_STEP_S = {
    # docs/model.md §17.7: costsim's on-policy DeepSeek-V3 steps beside NeMo RL v0.6's (performance-summary.md at
    # 66059ab: H100 134 s on 256 GPUs, 111 s on 512; GB200 108 s on 128, 98.7 s on 256), from which a + b / GPUs gives
    # the part more GPUs do not shorten (reported 88-89 s, costsim 49 and 38 s, 15 s of each the refit).
    "nemo-rl-v0.6-h100x256-deepseek-v3-on-policy": 99.1,
    "nemo-rl-v0.6-h100x512-deepseek-v3-on-policy": 74.0,
    "nemo-rl-v0.6-gb200x128-deepseek-v3-on-policy": 111.1,
    "nemo-rl-v0.6-gb200x256-deepseek-v3-on-policy": 74.6,
}


def test_later_release_deepseek_steps_as_documented(rl_validation_doc):
    rows = {c["id"]: c for c in rl_validation_doc["cases"]}
    for case_id, seconds in V06_DEEPSEEK_STEP_S.items():
        assert rows[case_id]["predicted"] == pytest.approx(seconds, rel=0.01), case_id
    fixed = {}
    for platform, (small, large) in {"h100": (256, 512), "gb200": (128, 256)}.items():
        a, b = (rows[f"nemo-rl-v0.6-{platform}x{n}-deepseek-v3-on-policy"] for n in (small, large))
        # Doubling the GPUs halves b / GPUs: a = 2 T(2N) - T(N).
        fixed[platform] = (2 * b["reported"] - a["reported"], 2 * b["predicted"] - a["predicted"])
    assert fixed["h100"][0] == pytest.approx(88.0) and fixed["gb200"][0] == pytest.approx(89.4)
    assert fixed["h100"][1] == pytest.approx(48.9, abs=0.5) and fixed["gb200"][1] == pytest.approx(38.2, abs=0.5)
    assert rl_validation_doc["later_release"]["max_abs_error"] == pytest.approx(0.491, abs=ERROR_TOLERANCE)


def test_a_later_release_step_is_labelled_later_release_predicted_or_not():
    from simulator.analysis.rl_validation import LATER_RELEASE, Outcome, labelled
    from simulator.inputs.serving_cases import rl_cases

    cases = {c.id: c for c in rl_cases()}
    later, target = cases["nemo-rl-v0.6-h100x256-deepseek-v3-on-policy"], cases["nemo-rl-v0.4-deepseek-v3-h100x256-on-policy"]
    assert labelled(Outcome(later, None, "not modelled")).track == LATER_RELEASE
    assert labelled(Outcome(later, 50.0)).track == LATER_RELEASE
    assert labelled(Outcome(target, None, "not modelled")).track == "benchmark"
    assert labelled(Outcome(later, 1.0, None, "plan")).track == "plan"


def test_sequence_packing_per_micro_batch():
    """NeMo RL packs sequences into micro-batches of up to max_total_sequence_length tokens (grpo_math_1B.yaml).
    Llama 3.1 8B: 122 + 1,060 tokens round to 1,280, three fit in 4,096, and each of the 8 DP ranks trains 64 of the
    512 sequences per optimizer step, so two per micro-batch (the largest count dividing 64). DeepSeek-V3: 896 tokens,
    one fits in 1,536."""
    from simulator.analysis.rl_validation import stage_for
    from simulator.inputs.serving_cases import rl_cases

    def micro_batch(case) -> int:
        return stage_for(case).training_layout.micro_batch_size

    cases = {c.id: c for c in rl_cases()}
    llama = cases["nemo-rl-v0.4-llama-3.1-8b-h100x16-on-policy"]
    assert micro_batch(llama) == 2
    assert micro_batch(cases["nemo-rl-v0.4-llama-3.1-8b-h100x16-1-off"]) == 2  # 8 training GPUs: DP 4, 128 each
    assert micro_batch(cases["nemo-rl-v0.4-deepseek-v3-h100x256-on-policy"]) == 1
    unstated = llama.model_copy(update={"training_layout": llama.training_layout.model_copy(update={"pp": None})})
    assert micro_batch(unstated) == 1  # the DP rank count is unknown without every degree
    # Two packs per micro-batch fit six 1,280-token sequences; 64 per DP rank: the largest divisor up to 6 is 4.
    two_packs = llama.model_copy(update={"training_layout": llama.training_layout.model_copy(update={"micro_batch_size": 2})})
    assert micro_batch(two_packs) == 4
    odd_batch = llama.model_copy(update={"train_global_batch": 520})  # 520 / 32 samples: 16 prompts, 512 trained
    assert micro_batch(odd_batch) == 2
    long = llama.model_copy(update={"mean_generation_seq_len": 3900.0})  # 122 + 3,900 round to a whole pack: one
    assert micro_batch(long) == 1


def test_split_rl_case_must_state_its_generation_gpus():
    from pydantic import ValidationError

    from simulator.inputs.serving_cases import rl_cases

    case = next(c for c in rl_cases() if c.id == "nemo-rl-v0.4-llama-3.1-8b-h100x16-1-off")
    with pytest.raises(ValidationError, match="generation_gpus is not given"):
        type(case).model_validate({**case.model_dump(), "generation_gpus": None})


def test_an_engine_cap_limits_the_rollout_batch(rl_validation_doc):
    """grpo-deepseek-v3-64n8g-fp8-async-1off.yaml (NVIDIA-NeMo/RL 66059ab) caps vLLM at max_num_seqs 32 per TP16
    engine, two sequences per GPU: as many as 512 responses on 256 generation GPUs give anyway. At a cap of 16 the
    engines run one sequence per GPU and the rollout takes longer."""
    from simulator.analysis.rl_validation import predict_step, stage_for
    from simulator.inputs.serving_cases import rl_cases

    row = next(c for c in rl_validation_doc["cases"] if c["id"] == "nemo-rl-v0.6-h100x512-deepseek-v3-fp8-1-off")
    assert row["detail"]["generation_layout"]["batch_per_gpu"] == pytest.approx(2.0)
    case = next(c for c in rl_cases() if c.id == row["id"])
    stage = stage_for(case)
    assert stage.generation_layout.max_sequences_per_engine == 32 and stage.fp8_recipe == "block"
    tighter = case.generation_layout.model_copy(update={"max_sequences_per_engine": 16})
    capped = predict_step(case.model_copy(update={"generation_layout": tighter}))
    assert capped.detail["generation_layout"]["batch_per_gpu"] == pytest.approx(1.0)
    assert capped.split["generation"] > row["split"]["generation"]


def test_plan_generation_layout_refuses_a_zero_engine_cap():
    from pydantic import ValidationError

    from simulator.inputs.plan_file import GenerationLayout

    assert GenerationLayout(tp=8, max_sequences_per_engine=64).max_sequences_per_engine == 64
    with pytest.raises(ValidationError):
        GenerationLayout(tp=8, max_sequences_per_engine=0)


DOCUMENTED_PHASE_ERRORS = {
    # docs/model.md §17.7: predicted / reported - 1 of each phase of the NeMo-RL v0.3 post's GRPO steps (NVIDIA-NeMo blog
    # 'NeMo-RL V0.3', 2025-07-21, table of step times by phase). Outside the target; the tolerance is ERROR_TOLERANCE.
    "nemo-rl-v0.3-llama-3.1-8b-h100x8-phases": {"generation": 0.029, "training": 0.414, "logprob": -0.154, "refit": 0.248},
    "nemo-rl-v0.3-llama-3.1-70b-h100x64-phases": {"generation": 0.098, "training": 0.331, "logprob": -0.280, "refit": -0.388},
    "nemo-rl-v0.3-qwen3-32b-h100x64-phases": {"generation": -0.282, "training": 0.326, "logprob": -0.160, "refit": -0.442},
    "nemo-rl-v0.3-qwen3-30b-a3b-h100x64-phases": {"generation": -0.328, "training": 0.082, "logprob": -0.088, "refit": -0.690},
    "nemo-rl-v0.3-llama-3.3-70b-16k-h100x128-phases": {
        "generation": -0.058, "training": -0.526, "logprob": -0.882, "refit": -0.676,
    },
    # A third party's reruns of the 8B and 70B Megatron rows (NVIDIA-NeMo/RL issue #959, 'Megatron (Our rerun)').
    "nemo-rl-v0.3-llama-3.1-8b-h100x8-rerun-phases": {"generation": 0.072, "training": 0.466, "logprob": -0.154, "refit": -0.220},
    "nemo-rl-v0.3-llama-3.1-70b-h100x64-rerun-phases": {
        "generation": 0.060, "training": 0.202, "logprob": -0.352, "refit": -0.671,
    },
}  # fmt: skip
DTENSOR_PHASE_ROWS = {
    # The blog's PyT DTensor rows and issue #959's reruns of them: listed on the track, not predicted (no DTensor stack).
    "nemo-rl-v0.3-llama-3.1-8b-h100x8-dtensor-phases", "nemo-rl-v0.3-llama-3.1-70b-h100x64-dtensor-phases",
    "nemo-rl-v0.3-llama-3.1-8b-h100x8-dtensor-rerun-phases", "nemo-rl-v0.3-llama-3.1-70b-h100x64-dtensor-rerun-phases",
}  # fmt: skip


def test_phase_breakdown_rows_as_documented(rl_validation_doc):
    """Each phase of the v0.3 steps against its own published figure, as docs/model.md §17.7 reports it; the rows are
    on their own track, outside the target and outside the later-release summary."""
    from simulator.analysis.rl_validation import PHASES

    rows = {c["id"]: c for c in rl_validation_doc["cases"] if c["track"] == "phase-breakdown"}
    assert set(rows) == set(DOCUMENTED_PHASE_ERRORS) | DTENSOR_PHASE_ROWS
    for case_id in DTENSOR_PHASE_ROWS:
        assert rows.pop(case_id)["not_predicted_because"].startswith("NeMo RL's DTensor training backend")
    for case_id, documented in DOCUMENTED_PHASE_ERRORS.items():
        row = rows[case_id]
        for part, field in PHASES.items():
            assert row["phase_errors"][part] == pytest.approx(row["split"][part] / row["reported_phases"][field] - 1)
            assert row["phase_errors"][part] == pytest.approx(documented[part], abs=ERROR_TOLERANCE), (case_id, part)
    summary = rl_validation_doc["phase_breakdown"]
    assert summary["n"] == len(DOCUMENTED_PHASE_ERRORS) and summary["within_30_percent"] == 7
    for part in PHASES:
        median = statistics.median(d[part] for d in DOCUMENTED_PHASE_ERRORS.values())
        assert summary["median_phase_error"][part] == pytest.approx(median, abs=ERROR_TOLERANCE)
    assert rl_validation_doc["n_cases"] == len(DOCUMENTED_ERRORS)
    assert rl_validation_doc["later_release"]["n"] == LATER_RELEASE_SUMMARY["n"]


def test_the_moe_gap_closes_with_per_expert_launches_at_the_trainers_micro_batches(rl_validation_doc):
    """The v0.3 breakdown (docs/model.md §17.7): at the same GPUs, lengths and batch, the MoE Qwen3-30B-A3B's
    generation is as far off as the dense Qwen3-32B's (within 10 points). Its training (-54%) and log-prob passes
    (-73%) were far further off than the dense 4K-token rows' until §7.8's per-expert launches were charged (fitted on
    pre-training rows only) and the log-prob passes were timed at the trainer's micro-batches (§17.3): now neither is
    further off than the dense rows' (training +29..+37%, log-probs -17..-31%)."""
    rows = {c["id"]: c["phase_errors"] for c in rl_validation_doc["cases"] if c["track"] == "phase-breakdown"}
    moe = rows["nemo-rl-v0.3-qwen3-30b-a3b-h100x64-phases"]
    dense = [rows[f"nemo-rl-v0.3-{m}-phases"] for m in ("llama-3.1-8b-h100x8", "llama-3.1-70b-h100x64", "qwen3-32b-h100x64")]
    assert abs(moe["generation"] - rows["nemo-rl-v0.3-qwen3-32b-h100x64-phases"]["generation"]) <= 0.10
    for part in ("training", "logprob"):
        assert abs(moe[part]) <= max(abs(d[part]) for d in dense), part


def test_a_forward_only_pipeline_fills_once():
    """trainer_forward_s: m micro-batches per pipeline (rounded up) take (m + (PP - 1) / v) stage times, a stage being
    the forward pass of one micro-batch on a TP x CP group over PP (v interleaved virtual stages, 1 for 1F1B)."""
    from simulator.model.forward import forward_context, forward_pass
    from simulator.model.layout import Layout

    model, rates = load_model("llama-3.1-70b"), device_rates(load_hardware("h100-sxm"), DEFAULT)
    lay = Layout(tp=4, pp=4, dp=2, cp=1, micro_batch_size=2)
    fp = forward_pass(forward_context(model, rates, 2048, 2, tp=4, ep=1, cp=1, assumptions=DEFAULT)).seconds
    for responses, m in ((64, 16), (63, 16), (3, 1)):
        got = trainer_forward_s(model, rates, DEFAULT, responses, 2048, lay, "bf16")
        assert got == pytest.approx((m + 4 - 1) * fp / 4, rel=1e-12), responses
    flat = Layout(tp=4, pp=1, dp=8, micro_batch_size=2)
    assert trainer_forward_s(model, rates, DEFAULT, 64, 2048, flat, "bf16") == pytest.approx(4 * fp, rel=1e-12)
    # interleaved: the fill is (PP - 1) chunks of 1 / v of a stage
    chunks = Layout(tp=4, pp=4, dp=2, micro_batch_size=2, schedule="interleaved", vpp=5)
    got = trainer_forward_s(model, rates, DEFAULT, 64, 2048, chunks, "bf16")
    assert got == pytest.approx((16 + 3 / 5) * fp / 4, rel=1e-12)


def test_reported_phases_need_a_step_time_outside_the_target():
    import yaml
    from pydantic import ValidationError

    from simulator.inputs.serving_cases import RLCase, rl_path

    raw = next(c for c in yaml.safe_load(rl_path().read_text())["cases"] if c.get("reported_phases"))
    RLCase.model_validate(raw)
    with pytest.raises(ValidationError, match="reported_phases is a breakdown of a step time outside the target"):
        RLCase.model_validate(raw | {"in_target": True})
    with pytest.raises(ValidationError, match="reported_phases is a breakdown"):
        RLCase.model_validate(raw | {"metric": "wall_hours"})
    with pytest.raises(ValidationError):
        RLCase.model_validate(raw | {"reported_phases": raw["reported_phases"] | {"refit_s": -1}})


def test_the_moe_caveat_states_what_validate_rl_finds(rl_validation_doc):
    """The caveat's figures are validate rl's own (NeMo RL performance-summary.md, v0.4-v0.6 tables, every DeepSeek-V3
    and Qwen3-235B-A22B step, both policies, H100 and GB200): reported / predicted at most 1.7x, median 1.3x, and 1.2-1.6x
    for the on-policy H100 steps, each to one decimal. A change that moves these rows must restate the caveat."""
    from simulator.analysis.plans import MOE_RL_CAVEAT

    rows = [c for c in rl_validation_doc["cases"] if c["model"] in ("deepseek-v3", "qwen3-235b-a22b")
            and c["track"] != "plan" and c["predicted"]]  # fmt: skip
    ratios = [c["reported"] / c["predicted"] for c in rows]
    on_policy_h100 = [c["reported"] / c["predicted"] for c in rows if c["gpu"] == "h100-sxm" and "on-policy" in c["id"]]
    assert len(rows) == 26 and len(on_policy_h100) == 8
    assert f"up to {max(ratios):.1f}x" in MOE_RL_CAVEAT
    assert f"median {statistics.median(ratios):.1f}x over its {len(rows)} steps" in MOE_RL_CAVEAT
    assert f"on-policy H100 steps {min(on_policy_h100):.1f}-{max(on_policy_h100):.1f}x" in MOE_RL_CAVEAT
    # "its H100 Qwen3-30B-A3B steps come within 30%" (a review found the claim made of all of them, two GB200 steps
    # beyond): the GB200 ones beyond 30% are stated with their errors.
    small = [c for c in rl_validation_doc["cases"] if c["model"] == "qwen3-30b-a3b" and c["predicted"]]
    assert all(abs(c["error"]) <= 0.30 for c in small if c["gpu"] == "h100-sxm") and "its H100 Qwen3-30B-A3B" in MOE_RL_CAVEAT
    gb200 = [c for c in small if c["gpu"] == "gb200"]
    beyond = sorted(c["reported"] / c["predicted"] for c in gb200 if abs(c["error"]) > 0.30)
    assert f"two of its {len(gb200)} GB200".replace(" 4 ", " four ") in MOE_RL_CAVEAT and len(beyond) == 2
    assert f"steps took {beyond[0]:.1f}x and {beyond[1]:.1f}x as long as costsim predicts" in MOE_RL_CAVEAT


def test_an_moe_rl_plan_carries_the_lower_bound_caveat_and_a_dense_one_does_not(r1, tmp_path):
    """docs/model.md §17.7: most published MoE RL steps took far longer than costsim predicts, so a plan whose RL stages
    run an MoE model says so in its JSON (`caveats`) and table; a dense model's RL plan carries no caveat."""
    from simulator.analysis.plans import MOE_RL_CAVEAT
    from simulator.report.rl_table import rl_plan_table

    d = r1.to_dict()
    assert d["caveats"] == [MOE_RL_CAVEAT] and "lower bound" in MOE_RL_CAVEAT
    assert f"caveat: {MOE_RL_CAVEAT}" in rl_plan_table(d)
    dense = _run(tmp_path).to_dict()
    assert dense["caveats"] == [] and "caveat:" not in rl_plan_table(dense)


def test_the_moe_caveat_reads_a_spec_file_beside_the_plan(tmp_path):
    """A plan may name a model spec file beside it (plan_file.model_ref); the caveat loads that file, not a shipped name:
    an MoE spec under a name costsim does not ship still gets the caveat, with no error."""
    from simulator.analysis.plans import MOE_RL_CAVEAT

    spec = yaml.safe_load((Path(__file__).resolve().parent.parent / "model_specs" / "qwen3-30b-a3b.yaml").read_text())
    spec["name"] = "my-own-moe"
    (tmp_path / "my-moe.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    plan = copy.deepcopy(SMALL_PLAN) | {"model": "my-moe.yaml"}
    loaded, path = load_plan(_write(tmp_path, plan))
    assert run_plan(loaded, path).to_dict()["caveats"] == [MOE_RL_CAVEAT]


def test_nemo_rl_trains_on_the_2025_megatron_stack_and_a_stage_may_name_its_stack():
    """Every NeMo RL figure trains and scores on megatron-core-2025 (docs/model.md §7.8), whose per-expert launches
    lengthen an MoE model's training; a stage naming a stack costsim does not have is refused with the names."""
    from simulator.analysis.rl_stages import run_generating_stage
    from simulator.analysis.rl_validation import NEMO_RL_TRAINING_STACK, _plan_for
    from simulator.inputs.serving_cases import rl_cases
    from simulator.run.cost import CostOptions

    cases = {c.id: c for c in rl_cases() if c.metric == "step_time_s"}
    assert NEMO_RL_TRAINING_STACK == "megatron-core-2025"
    plan = _plan_for(cases["nemo-rl-v0.4-qwen3-30b-a3b-h100x32-on-policy"])
    stage = plan.stages[0]
    assert stage.training_stack == NEMO_RL_TRAINING_STACK

    def training_s(st) -> float:
        return run_generating_stage(plan, load_model("qwen3-30b-a3b"), st, CostOptions(), None).phases[0].training_s

    assert training_s(stage) > 1.5 * training_s(stage.model_copy(update={"training_stack": None}))
    with pytest.raises(ValidationError, match="training_stack: unknown stack 'megatron-2099'.*megatron-core-2025"):
        RLStage.model_validate(stage.model_dump() | {"training_stack": "megatron-2099"})


def test_a_stage_may_roll_out_on_an_engine_without_two_batch_overlap(tmp_path):
    """`two_batch_overlap: false` (vLLM without --enable-dbo) reaches the rollout's serving model; a dense model has
    no MoE exchange to hide, so its rollout is the same either way."""
    from simulator.run.rl import generation_setup

    hw, spec = load_hardware("h100-sxm"), load_model("deepseek-v3")
    rates = device_rates(hw, DEFAULT)
    assert generation_setup(spec, hw, rates, DEFAULT, 100, 500, two_batch_overlap=False).ep_overlap is False
    assert generation_setup(spec, hw, rates, DEFAULT, 100, 500).ep_overlap is True
    off, on = _run(tmp_path, two_batch_overlap=False), _run(tmp_path)
    assert [p.generation.seconds for p in off.rl_stages[0].phases] == [p.generation.seconds for p in on.rl_stages[0].phases]


def test_fewer_responses_than_engines_decode_one_sequence_per_engine():
    """A review gave a generation stage 4 responses on 512 GPUs at TP8 PP2 (32 engines): the batch per GPU fell to
    4 / 512, an eighth of a sequence per engine, which decoded faster per user than one sequence does. A TP group now
    decodes at least one sequence, and the rollout takes no less than one response alone takes to its tail length."""
    from simulator.model.serve.search import Given
    from simulator.run.rl import generate, generation_setup

    hw = load_hardware("h800")
    assumptions = DEFAULT.for_generation(hw.generation)
    setup = generation_setup(load_model("deepseek-v3"), hw, device_rates(hw, assumptions), assumptions, 200, 6000)
    few = generate(setup, 4.0, 512, 15_000.0, "fp8", Given(8, None, 2))
    assert few.layout["tp"] * few.layout["batch_per_gpu"] == pytest.approx(1.0)
    assert few.bulk_s + few.tail_s >= 15_000.0 / few.tokens_per_s_per_user * (1 - 1e-9)
    # with responses enough for every engine, the batch is theirs (the cap), as before
    full = generate(setup, 512.0 * 4, 512, 15_000.0, "fp8", Given(8, None, 2))
    assert full.layout["batch_per_gpu"] == pytest.approx(4.0) and full.tokens_per_s_per_user < few.tokens_per_s_per_user


def test_a_rollout_that_cannot_fit_names_every_part_and_only_fixes_that_apply():
    """A review found the refusal naming weights and KV cache but not the 3 GiB reserve its total held, advising fp8
    weights to a stage already in fp8 and an FP8 KV cache where the cache was 0.1 GiB of a 3.8 GiB excess, and a
    searched field printed as 'pp None'."""
    from simulator.model.serve.search import Given
    from simulator.run.rl import generate, generation_setup

    hw = load_hardware("h800")
    assumptions = DEFAULT.for_generation(hw.generation)
    setup = generation_setup(load_model("deepseek-v3"), hw, device_rates(hw, assumptions), assumptions, 200, 1000)
    with pytest.raises(InfeasibleError) as err:
        generate(setup, 64.0, 8, 2000.0, "fp8", Given())
    text = str(err.value)
    assert "activations and reserve 3.0 GiB" in text and text.endswith("give more GPUs")
    # a long response's KV cache that halving could cover: the FP8 cache and shorter responses are advised
    long = generation_setup(load_model("llama-3.1-405b"), hw, device_rates(hw, assumptions), assumptions, 200, 1_000_000)
    with pytest.raises(InfeasibleError) as err:
        generate(long, 64.0, 8, 1_000_000.0, "fp8", Given(8, None, None))
    assert "kv_dtype fp8" in str(err.value) and "shorter responses (mean_response_len, max_response_len)" in str(err.value)
    with pytest.raises(InfeasibleError, match=r"a narrower generation_precision \(fp8\)"):
        generate(setup, 64.0, 8, 2000.0, "bf16", Given())
    with pytest.raises(CostsimError, match=r"fields given \(tp 2, dp 512, pp searched\)"):
        generate(setup, 64.0, 512, 2000.0, "fp8", Given(2, 512, None))


def test_a_phases_split_holds_what_the_table_says_it_holds():
    """A review could not rebuild the plan table's 'refit 4%' from the printed 'refit 14.91 s': the split books the
    training state's way to the host and the engine's sleep and wake with the refit, and its way back with training
    (combine). Per rollout: refit GPU-seconds = GPUs x (refit + state out + sleep and wake), training = GPUs x
    (training + state back); the table's footnote says so, and its MFU names its basis."""
    d = api.plan("deepseek-r1").to_dict()
    stage = d["stages"][0]
    p, gpus = stage["phases"][0], stage["num_gpus"]
    per_rollout_s = {k: v * 3600 / p["rollouts"] / gpus for k, v in p["gpu_hours"].items()}
    off = p["offload"]
    assert per_rollout_s["refit"] == pytest.approx(p["refit_s"] + off["to_host_s"] + p["engine_sleep_wake_s"])
    assert per_rollout_s["training"] == pytest.approx(p["training"]["seconds_per_rollout"] + off["back_s"])
    assert p["training"]["mfu_basis"] == "dense FP8 peak" and p["training"]["mfu_bf16_peak"] > p["training"]["mfu"]
    table = invoke("estimate", "--plan", "deepseek-r1").output
    assert "refit holds the training state's way to the host and the engine's sleep and wake" in table
    assert f"MFU {p['training']['mfu']:.1%} of the dense FP8 peak" in table


def test_a_plan_with_rl_stages_gets_a_report(tmp_path):
    """`costsim report --plan deepseek-r1` refused (the uncertainty band covers training plans only) where investors
    forward a report of R1's post-training cost. rl_report writes one: the totals, every stage with its band and split,
    the published figures beside the prediction, each rollout, validate rl's accuracy and the caveats, the same
    numbers as estimate --plan; the draws and comparisons of training plans are refused by name."""
    out = tmp_path / "r"
    r = invoke("report", "--plan", "deepseek-r1", "--output", str(out))
    assert r.exit_code == 0, r.output
    d = api.plan("deepseek-r1").to_dict()
    md = (out / "report.md").read_text()
    for text in (f"**{format_count(d['gpu_hours'])} GPU-hours**", "## Published figures beside the prediction",
                 f"{d['reported'][0]['error']:+.1%}", "## How close costsim comes on published RL steps",
                 "within 30%", d["caveats"][0], "refit holds the training state's way to the host",
                 f"mean step {d['stages'][0]['step_time_s']:.1f} s", "`validation/rl.yaml`"):  # fmt: skip
        assert text in md, text
    assert all(f"| {s['name']} | {s['kind']} |" in md for s in d["stages"]) and len(d["stages"]) == 7
    assert (out / "rl_split.png").stat().st_size > 1000
    assert "data:image/png;base64" in (out / "report.html").read_text()
    for extra in (("--draws", "500"), ("--compare-with", "deepseek-v3"), ("--seed", "3")):
        msg = clean_error(invoke("report", "--plan", "deepseek-r1", "--output", str(tmp_path / "x"), *extra), error="prefix")
        assert f"leave out {extra[0]}" in msg and not (tmp_path / "x").exists()
