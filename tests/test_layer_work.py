"""Per-layer work (simulator/model/layer_work.py) built once per layer kind and shared by the FLOP count, the
training step model and the forward-only path (simulator/model/forward.py)."""

from __future__ import annotations

import pytest

from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import make_job
from simulator.model import flops
from simulator.model import layer_work as lw
from simulator.model.efficiency import device_rates
from simulator.model.forward import forward_comm_s, forward_context, forward_layer_s, forward_pass
from simulator.model.layer_work import layer_work, token_flops
from simulator.model.layout import Layout
from simulator.model.step_time import Context, layer_time
from simulator.run.estimate import estimate

LLAMA_8B = load_model("llama-3.1-8b")
LLAMA_70B = load_model("llama-3.1-70b")
V3 = load_model("deepseek-v3")
H100 = load_hardware("h100-sxm")
RATES = device_rates(H100, DEFAULT)


def test_one_entry_per_layer_kind_and_built_once():
    assert set(layer_work(LLAMA_70B, 8192)) == {"dense"}
    assert set(layer_work(V3, 4096)) == {"dense", "moe", "mtp"}
    assert layer_work(V3, 4096) is layer_work(V3, 4096)  # cached: the same dict, not rebuilt


def test_dense_layer_gemm_flops_are_two_per_weight():
    """Forward GEMM FLOPs of a Llama layer = 2 x its matmul weights (the layer's parameters minus its two RMSNorms)."""
    w = layer_work(LLAMA_8B, 8192)["dense"]
    weights = flops.parameter_counts(LLAMA_8B).dense_per_layer - 2 * LLAMA_8B.d_model
    assert w.gemm_flops == 2 * weights
    # Causal attention core at s = 8192: 2 x s/2 keys x 32 heads x (128 + 128) per token.
    assert w.attention_core_flops == 2 * 4096 * 32 * (128 + 128)


def test_token_flops_is_the_layer_counts_times_the_work_of_each_kind():
    """DeepSeek-V3: 3 dense + 58 MoE layers, the head, one MTP module with its own head."""
    work, tf = layer_work(V3, 4096), token_flops(V3, 4096)
    head = flops.head_gemm(V3).forward_flops_per_token
    expected = 3 * work["dense"].forward_flops + 58 * work["moe"].forward_flops + head + (work["mtp"].forward_flops + head)
    assert tf.forward_flops == pytest.approx(expected, rel=1e-15)
    assert tf.recompute_by_mode["selective"] == pytest.approx(
        3 * work["dense"].selective_recompute_flops + 58 * work["moe"].selective_recompute_flops, rel=1e-15
    )


def test_the_mla_selective_recompute_adds_the_up_projections():
    w = layer_work(V3, 4096)["moe"]
    ups = sum(g.forward_flops_per_token for g in w.gemms if g.name in ("q_up", "kv_up"))
    assert ups > 0 and w.selective_recompute_flops == w.attention_core_flops + ups


def test_an_estimate_builds_each_kind_s_gemms_once(monkeypatch):
    """An 80-layer model has one layer kind: a fixed-layout estimate builds its GEMM list once (it was 486 times)."""
    calls = []

    def counting(model, kind):
        calls.append(kind)
        return flops.layer_gemms(model, kind)

    lw._layer_work.cache_clear()
    monkeypatch.setattr(lw, "layer_gemms", counting)
    job = make_job(LLAMA_70B, 64, 1e12, 8192, None, "bf16")
    estimate(LLAMA_70B, H100, job, {"tp": 8, "pp": 4, "cp": 1, "zero_stage": 1, "micro_batch_size": 1, "schedule": "1f1b",
                                     "recompute": "none"})  # fmt: skip
    lw._layer_work.cache_clear()
    assert calls == ["dense"]


def test_forward_layer_compute_is_the_training_layers_forward():
    """Without parallelism there is nothing to communicate or hide: the forward path's layer is the training step's
    forward of the same layer, to the last bit."""
    ctx = forward_context(LLAMA_8B, RATES, seq_len=4096, sequences=2)
    training = layer_time(ctx, "dense")
    assert sum(forward_layer_s(ctx, "dense").values()) == pytest.approx(float(training.forward_s), rel=1e-12)


def test_forward_tp_traffic_is_four_of_the_training_layers_ten_collectives():
    """Sequence parallelism: 4 collectives forward (AG + RS around attention and the FFN), 10 in a training layer
    (4 forward, 6 backward with the weight-gradient re-gathers; Korthikanti et al. 2022 §4.2.2)."""
    ctx = forward_context(LLAMA_70B, RATES, seq_len=8192, sequences=1, tp=8)
    training_tp = float(layer_time(ctx, "dense").parts["tp_comm"])
    assert forward_comm_s(ctx, "dense")["tp_comm"] == pytest.approx(0.4 * training_tp, rel=1e-12)


def test_a_moe_forward_pass_dispatches_and_combines_once():
    job = make_job(V3, 64, 1e12, 4096, None, "fp8")
    ctx_train = Context(V3, job, Layout(tp=1, ep=8, dp=8, micro_batch_size=1), device_rates(load_hardware("h800"), DEFAULT),
                        DEFAULT)  # fmt: skip
    ctx = forward_context(V3, ctx_train.rates, 4096, 1, ep=8, precision="fp8")
    comm = forward_comm_s(ctx, "moe")
    # The training layer charges dispatch + combine forward and again backward (2 x one way), no DualPipe overlap.
    assert comm["ep_comm"] == pytest.approx(float(layer_time(ctx_train, "moe").parts["ep_comm"]) / 2, rel=1e-12)
    assert "ep_comm" not in forward_comm_s(ctx, "dense")


def test_forward_pass_adds_every_layer_the_embedding_and_the_head():
    ctx = forward_context(LLAMA_70B, RATES, seq_len=8192, sequences=1, tp=8)
    p = forward_pass(ctx)
    layer = sum(forward_layer_s(ctx, "dense").values())
    assert p.seconds == pytest.approx(80 * layer + p.by_component_s["embedding"] + p.by_component_s["lm_head"], rel=1e-12)
    assert p.tokens == 8192
    # The pass is at least as long as its FLOPs at the dense peak (2 x activated params per token, on 8 GPUs).
    assert p.seconds > token_flops(LLAMA_70B, 8192).forward_flops * 8192 / 8 / H100.peak_flop_per_s("bf16")
