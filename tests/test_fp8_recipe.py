"""FP8 recipes: per-tensor scaling (Transformer Engine) against DeepSeek-V3's fine-grained block scaling."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import Job, make_job
from simulator.model.memory import state_bytes_per_param
from simulator.run.estimate import estimate

V3 = load_model("deepseek-v3")
LLAMA = load_model("llama-3.1-70b")
H800 = load_hardware("h800")
V3_LAYOUT = {"tp": 1, "pp": 16, "ep": 64, "cp": 1, "zero_stage": 2, "micro_batch_size": 1, "schedule": "dualpipe",
             "recompute": "selective"}  # fmt: skip


def test_recipe_defaults_to_the_published_one():
    assert make_job(V3, 2048, 14.8e12, 4096, 62914560, "fp8").fp8_recipe == "block"  # DeepSeek-V3 §3.3
    assert make_job(LLAMA, 64, 1e12, 8192, None, "fp8").fp8_recipe == "tensor"
    assert make_job(V3, 2048, 14.8e12, 4096, 62914560, "fp8", fp8_recipe="tensor").fp8_recipe == "tensor"


def test_block_scaling_keeps_bf16_moments_and_per_tensor_keeps_fp32():
    # DeepSeek-V3 §3.3.3: BF16 Adam moments, fp32 master weights and gradients: 2 + 4 + 8 B.
    assert state_bytes_per_param("fp8", "block") == (2.0, 4.0, 8.0)
    # Per-tensor FP8 casts the BF16 weights each step and keeps the usual mixed-precision states.
    assert state_bytes_per_param("fp8", "tensor") == state_bytes_per_param("bf16") == (2.0, 4.0, 12.0)


def test_block_scaling_is_slower_by_the_documented_factor_and_uses_less_memory():
    job = Job(2048, 14.8e12, 4096, 62914560, "fp8")
    block = estimate(V3, H800, replace(job, fp8_recipe="block"), V3_LAYOUT)
    tensor = estimate(V3, H800, replace(job, fp8_recipe="tensor"), V3_LAYOUT)
    assert block.job.fp8_recipe == "block" and tensor.job.fp8_recipe == "tensor"
    assert block.step_time_s > tensor.step_time_s
    # Only GEMM compute slows (by at most 1/factor); the rest is unchanged, so the whole step slows by less.
    assert block.step_time_s < tensor.step_time_s / DEFAULT.fp8_gemm_factor
    assert block.step.memory.optimizer_bytes < tensor.step.memory.optimizer_bytes  # ZeRO-2 shards both
    assert block.to_dict()["fp8_recipe"] == "block"


def test_a_recipe_without_fp8_is_refused():
    from simulator.errors import InputError

    with pytest.raises(InputError, match="--precision fp8 only"):
        make_job(LLAMA, 64, 1e12, 8192, None, "bf16", fp8_recipe="block")


def test_bf16_jobs_ignore_the_recipe():
    job = make_job(LLAMA, 64, 1e12, 8192, None, "bf16")
    assert estimate(LLAMA, load_hardware("h100-sxm"), job, {"tp": 8, "pp": 1, "cp": 1}).to_dict()["fp8_recipe"] is None


def test_optimizer_step_traffic_follows_the_state_bytes():
    from simulator.model.memory import optimizer_step_bytes_per_param

    # docs/model.md §7.6: fused AdamW reads master, m, v (fp32) and the fp32 gradient, writes master, m, v and the
    # BF16 weight: 16 + 14 = 30 B. DeepSeek-V3's BF16 moments (§3.3.3) save 2 B each way per moment: 22 B.
    assert optimizer_step_bytes_per_param("bf16") == 30.0
    assert optimizer_step_bytes_per_param("fp8", "tensor") == 30.0
    assert optimizer_step_bytes_per_param("fp8", "block") == 22.0
