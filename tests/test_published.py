"""Published numbers the estimate engine must reproduce. Each test cites paper and table and states its tolerance."""

from __future__ import annotations

import statistics
from dataclasses import replace

import pytest
import yaml

from simulator import api
from simulator.analysis.validation import predict
from simulator.inputs.assumptions import BASE, DEFAULT, FITTED_PATH
from simulator.inputs.catalog import load_model
from simulator.inputs.published import megatron_2021_runs, throughput_runs
from simulator.model.flops import parameter_counts
from simulator.model.layer_work import token_flops


def test_gpt3_training_compute_6nd():
    # Brown et al. 2020 (arXiv:2005.14165) Table D.1: 3.14e23 FLOPs for 300B tokens, 6ND basis. Tolerance 3%.
    counts = parameter_counts(load_model("gpt3-175b"))
    assert 6 * counts.total * 300e9 == pytest.approx(3.14e23, rel=0.03)


def test_deepseek_v3_flops_per_token():
    # docs/model.md §2.7 from DeepSeek-V3 (arXiv:2412.19437) config: 250.4 GFLOP/token main model, 260.6 with MTP,
    # causal attention at s = 4096; DeepSeek's own figure is 250 (Zhao et al. 2025, arXiv:2505.09343). Tolerance 1%.
    tf = token_flops(load_model("deepseek-v3"), 4096)
    main = tf.training_flops - 3 * tf.forward_by_component["mtp"]
    assert main == pytest.approx(250.4e9, rel=0.01)
    assert tf.training_flops == pytest.approx(260.6e9, rel=0.01)
    # Selective recompute of the MLA up-projections adds ~6.8 GFLOP (docs/model.md §2.7) on top of the attention core.
    core = tf.forward_by_component["attention_core"]
    assert tf.recompute_by_mode["selective"] - core == pytest.approx(6.8e9, rel=0.03)


def test_llama_405b_flops_per_token():
    # docs/model.md §2.7 (Llama 3, arXiv:2407.21783, Table 3 shapes): 2524 GFLOP at 8K and 2473 at 4K, causal. Tolerance 1%.
    model = load_model("llama-3.1-405b")
    assert token_flops(model, 8192).training_flops == pytest.approx(2524e9, rel=0.01)
    assert token_flops(model, 4096).training_flops == pytest.approx(2473e9, rel=0.01)
    # Full (PaLM) convention at 8K: 2625 GFLOP.
    assert token_flops(model, 8192, causal=False).training_flops == pytest.approx(2625e9, rel=0.01)


@pytest.fixture(scope="module")
def llama_405b():
    # Llama 3 (arXiv:2407.21783) Table 4: 400 BF16 model TFLOP/s per GPU on 16,384 H100s, TP8 PP16 CP1, 16M-token batch;
    # model card (meta-llama/llama-models MODEL_CARD.md): 30.84M H100-hours for 15.6T tokens.
    job = {"seq_len": 8192, "global_batch_tokens": 16777216, "precision": "bf16"}
    # Issue 11: the published figures are checked against the achievable run (best layout on today's stack, the
    # published fields held); the expected run (what runs like it realized) is the headline and sits above it.
    runs = api.estimate("llama-3.1-405b", "h100-sxm", 16384, 15.6e12, **job, tp=8, pp=16, cp=1)
    assert runs.achievable.gpu_hours < runs.estimate.gpu_hours
    return runs.achievable


def test_llama_405b_tflops_within_10_percent(llama_405b):
    tflops = llama_405b.flops_per_token * llama_405b.tokens_per_s_per_gpu / 1e12
    assert tflops == pytest.approx(400, rel=0.10)


def test_llama_405b_gpu_hours_within_15_percent(llama_405b):
    assert llama_405b.gpu_hours == pytest.approx(30.84e6, rel=0.15)
    # Goodput from Llama 3 §3.3.4's interruption rate: '>90% effective training time' at 16K GPUs.
    assert 0.88 <= llama_405b.ettr <= 0.93


@pytest.fixture(scope="module")
def deepseek_v3():
    # DeepSeek-V3 (arXiv:2412.19437) Table 1: 2,664K H800-hours of pre-training, $2 per GPU-hour; §3.2 layout.
    return api.estimate(
        "deepseek-v3",
        "h800",
        2048,
        14.8e12,
        seq_len=4096,
        global_batch_tokens=62914560,
        precision="fp8",
        **{"tp": 1, "pp": 16, "ep": 64, "schedule": "dualpipe"},
        usd_per_gpu_hour=2.0,
    ).achievable


def test_deepseek_v3_cost_is_price_times_hours(deepseek_v3):
    assert deepseek_v3.cost_usd == pytest.approx(2.0 * deepseek_v3.gpu_hours, rel=1e-12)


def test_deepseek_v3_gpu_hours_within_10_percent(deepseek_v3):
    """DeepSeek-V3 Technical Report (arXiv:2412.19437) Table 1: 2,664K H800 GPU-hours of pre-training.
    Tolerance 10% (the issue's target). No constant is fitted to this run: what sets it beyond the fitted
    gemm_sustain is published fact (FP8 block recipe, DualPipe with 20 of 132 SMs held for the all-to-all,
    node-limited dispatch, the integer stage layout) or a documented assumption (simulator/assumptions.py).
    README "How good is it?" shows how far each documented assumption moves it."""
    error = deepseek_v3.gpu_hours / 2.664e6 - 1
    assert abs(error) <= 0.10, f"DeepSeek-V3 GPU-hours error {error:+.1%}"
    assert deepseek_v3.step.memory.total_bytes <= 80 * 2**30


def test_megatron_2021_table1_median_within_15_percent():
    # Narayanan et al. 2021 (arXiv:2104.04473) Table 1: per-GPU TFLOP/s (Eq. 3 FLOPs) of ten GPT configurations
    # on A100-80GB with full recompute. Target: median |error| <= 15%.
    errors = [predict(run, DEFAULT) / run.reported - 1 for run in megatron_2021_runs()]
    assert len(errors) == 10
    assert statistics.median(abs(e) for e in errors) <= 0.15
    assert max(abs(e) for e in errors) <= 0.15


def test_fitted_constant_matches_current_model():
    """The stored fit must describe the current model: its in-sample errors are reproduced within 0.5 points.

    If this fails, the model changed without `costsim fit` being rerun.
    """
    doc = yaml.safe_load(FITTED_PATH.read_text())
    assert doc["constrained_by"] >= 2
    runs = {r.id: r for r in throughput_runs()}
    assert set(runs) == {c["id"] for c in doc["cases"]}
    fitted = replace(BASE, gemm_sustain=doc["gemm_sustain"])
    for case in doc["cases"]:
        error = predict(runs[case["id"]], fitted) / case["reported"] - 1
        assert error == pytest.approx(case["in_sample_error"], abs=0.005), case["id"]
        assert abs(case["leave_one_out_error"]) < 0.15, case["id"]
