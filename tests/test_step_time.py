"""Step time terms (simulator/model/step_time.py), each against a closed form written out with round numbers.

Setup: a 4-layer model with h = 64 (4 query heads and 2 KV heads of 16, SwiGLU of width 128, vocabulary 1000),
micro-batches of 2 x 128 tokens, and a device whose GEMMs are compute-bound with no per-kernel cost
(BF16 5e14 FLOP/s achieved, FP8 1e15, FP16 2.5e14), attention at 4e14 FLOP/s, HBM 1e12 B/s, NVLink 1e11 B/s,
NIC 1e10 B/s, 8 GPUs per NVLink domain and 10 us per collective. Assumptions: overlap efficiency 0.5,
communication SM fraction 0.2, MoE imbalance 1.25, block-FP8 GEMM factor 0.8.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import simulator.model.step_time as st
from simulator.inputs.assumptions import BASE
from simulator.inputs.job import Job
from simulator.inputs.specs import ModelSpec
from simulator.model.comms import Fabric
from simulator.model.efficiency import DeviceRates
from simulator.model.flops import parameter_counts
from simulator.model.layout import Layout, Layouts
from simulator.model.step_time import (
    Context,
    ItemTime,
    _dp_and_optimizer_s,
    _dropout_bytes,
    _gemm_time,
    _group_step,
    _layer_comm,
    _on_partitioned_sms,
    _pp_exposed_s,
    _sm_dilation,
    by_recompute,
    cp_group,
    dp_group,
    embed_time,
    ep_group,
    evaluate,
    head_time,
    item_cost_proxy,
    item_time,
    layer_time,
    memory_bound_bytes,
    micro_batch_share,
    model_items,
    pp_group,
    static_sm_partition,
    step,
    tp_group,
)

# The module is being refactored: a helper or two changed name or signature. Resolve them once here.
kv_width = getattr(st, "kv_width", None) or st._kv_width


def attention_core_s(ctx: Context, kind: str = "dense"):
    try:
        return st._attention_core_s(ctx, kind)
    except TypeError:  # before the per-kind signature
        return st._attention_core_s(ctx)


BASE_SPEC = dict(
    source="synthetic test model",
    n_layers=4,
    d_model=64,
    vocab_size=1000,
    n_heads=4,
    n_kv_heads=2,
    head_dim=16,
    ffn="swiglu",
    d_ff=128,
    tied_embeddings=False,
)
DENSE = ModelSpec.model_validate({**BASE_SPEC, "name": "tiny-dense"})
# One dense layer then three MoE layers: 8 routed experts of width 32, top-2, one shared expert of width 32.
MOE_BLOCK = {"n_routed_experts": 8, "top_k": 2, "d_ff_expert": 32, "n_shared_experts": 1, "first_dense_layers": 1}
MOE = ModelSpec.model_validate({**BASE_SPEC, "name": "tiny-moe", "moe": MOE_BLOCK})
MLA = ModelSpec.model_validate(
    {
        **BASE_SPEC,
        "name": "tiny-mla",
        "n_kv_heads": 4,
        "attention": "mla",
        "mla": {"q_lora_rank": 24, "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8},
    }  # fmt: skip
)

UP, OUT, LAT = 1e11, 1e10, 1e-5
FABRIC = Fabric(UP, OUT, 8, LAT)
BF16, FP8, FP16, ATTN, HBM = 5e14, 1e15, 2.5e14, 4e14, 1e12
RATES = DeviceRates(
    name="round",
    peak_flop_per_s={"bf16": 1e15, "fp16": 1e15, "fp8": 2e15},
    gemm_efficiency={"bf16": 0.5, "fp16": 0.25, "fp8": 0.5},
    attention_flop_per_s=ATTN,
    hbm_bytes_per_s=HBM,
    fabric=FABRIC,
    kernel_overhead_s=0.0,
    source="test",
    gemm_operand_bytes_per_s=1e30,  # GEMMs compute-bound: time = 2 m n k count / rate
)
A = replace(
    BASE,
    overlap_efficiency=0.5,
    comm_sm_fraction=0.2,
    moe_imbalance=1.25,
    fp8_gemm_factor=0.8,
    fp8_quantize_unfused=0.5,
    memory_reserved_bytes=1e9,
)
T = 256  # tokens per micro-batch: 2 sequences of 128

# Forward GEMM FLOPs per token of a dense layer: qkv 64 x 128, out 64 x 64, gate+up 64 x 256, down 128 x 64.
ATTN_PROJ_FLOPS = 2 * (64 * 128 + 64 * 64)  # 24576
FFN_FLOPS = 2 * (64 * 256 + 128 * 64)  # 49152
CORE_FLOPS = 2 * 64 * 4 * (16 + 16)  # causal attention core at s = 128: 16384
# Memory-bound bytes per token of a dense layer (BF16): norms and residuals 10 x 2h, RoPE 2 x 2 (4 + 2) x 16,
# SwiGLU read gate and up, write product 3 x 2 x 128.
DENSE_MEMORY = 10 * 2 * 64 + 2 * 2 * (4 + 2) * 16 + 3 * 2 * 128  # 2432


def job(precision="bf16", recipe=None, kernel="flash", dropout=0.0, sequences=16, seq_len=128) -> Job:
    return Job(
        num_gpus=8,
        tokens=1e9,
        seq_len=seq_len,
        global_batch_tokens=sequences * seq_len,
        precision=precision,
        attention_kernel=kernel,
        dropout=dropout,
        fp8_recipe=recipe,
    )


def ctx(model=DENSE, layout=None, rates=RATES, a=A, **job_args) -> Context:
    return Context(model, job(**job_args), layout or Layout(micro_batch_size=2), rates, a)


class Recorder:
    """The rates with every GEMM call recorded as (m, n, k, dtype, count, compute_factor)."""

    def __init__(self, inner: DeviceRates):
        self.inner, self.calls = inner, []

    def gemm_s(self, m, n, k, dtype, count=1.0, compute_factor=1.0, weight_gemm=False):
        self.calls.append((float(m), float(n), float(k), dtype, float(count), float(compute_factor)))
        return self.inner.gemm_s(m, n, k, dtype, count, compute_factor, weight_gemm)

    @property
    def forward_calls(self):
        """The forward GEMM of each weight GEMM: step_time times each as forward, input gradient, weight gradient."""
        return self.calls[0::3]

    def __getattr__(self, name):
        return getattr(self.inner, name)


def one_collective(op_factor: float, size_bytes: float, bw: float) -> float:
    """alpha + factor x S / busBW."""
    return LAT + op_factor * size_bytes / bw


# --------------------------------------------------------------------------- context and groups


def test_tokens_per_micro_batch_is_b_times_s_over_cp():
    assert ctx(layout=Layout(micro_batch_size=2, cp=2)).tokens_per_micro_batch == 2 * 128 / 2


def test_gemm_dtype_is_fp8_only_for_eligible_gemms_of_fp8_jobs():
    c = ctx(precision="fp8", recipe="tensor")
    assert (c.gemm_dtype(True), c.gemm_dtype(False)) == ("fp8", "bf16")
    assert ctx(precision="fp16").gemm_dtype(True) == "fp16"
    assert ctx().gemm_dtype(True) == "bf16"


def test_block_scaled_fp8_gemms_run_at_the_block_scaling_factor():
    """1000^3 FP8: 2e9 / 1e15 per-tensor; / (1e15 x 0.8) with DeepSeek-V3 block scaling; BF16 when not eligible."""
    assert ctx(precision="fp8", recipe="tensor").gemm_s(1000, 1000, 1000, True) == pytest.approx(2e9 / FP8)
    assert ctx(precision="fp8", recipe="block").gemm_s(1000, 1000, 1000, True) == pytest.approx(2e9 / (FP8 * 0.8))
    assert ctx(precision="fp8", recipe="block").gemm_s(1000, 1000, 1000, False, 2) == pytest.approx(2 * 2e9 / BF16)
    assert ctx(precision="fp16").gemm_s(1000, 1000, 1000, True) == pytest.approx(2e9 / FP16)


def test_communicators_follow_megatron_rank_order_tp_cp_ep_dp_pp():
    """Dense layers: TP, CP, DP, PP in Megatron's order. Expert layers (EP > 1, expert TP 1): the folded grid of
    Megatron-core (arXiv:2504.14960), EP on consecutive ranks and expert DP = TP x CP x DP / EP past them."""
    lay = Layout(tp=2, cp=2, dp=8, ep=4, pp=2)
    assert (tp_group(lay).size, tp_group(lay).stride) == (2, 1)
    assert (cp_group(lay).size, cp_group(lay).stride) == (2, 2)
    assert (ep_group(lay).size, ep_group(lay).stride) == (4, 1)
    assert (dp_group(lay).size, dp_group(lay).stride) == (16, 2)  # DP x CP replicas of dense weights
    assert (dp_group(lay, expert=True).size, dp_group(lay, expert=True).stride) == (8, 4)  # 2 x 2 x 8 / 4, past EP
    assert (pp_group(lay).size, pp_group(lay).stride) == (2, 2 * 2 * 8)
    no_ep = Layout(tp=2, cp=2, dp=8, ep=1, pp=2)  # experts TP-sharded: replicated as dense weights are
    assert (dp_group(no_ep, expert=True).size, dp_group(no_ep, expert=True).stride) == (16, 2)


def test_folded_expert_grid_puts_ep_on_consecutive_ranks():
    """Qwen3-235B in NeMo RL (TP 2, CP 2, EP 16, PP 8 on 128 GPUs: DP 4): EP 16 spans TP x CP x DP = 16 ranks per stage,
    consecutive (Megatron's expert rank order with expert TP 1), so each expert has one replica per stage; EP 16
    cannot be carved out of DP x CP = 8 alone."""
    lay = Layout(tp=2, cp=2, dp=4, ep=16, pp=8)
    assert (ep_group(lay).size, ep_group(lay).stride) == (16, 1)
    assert (dp_group(lay, expert=True).size, dp_group(lay, expert=True).stride) == (1, 16)
    assert (dp_group(lay).size, dp_group(lay).stride) == (8, 2)  # dense weights: DP x CP as before
    wider = Layout(tp=4, cp=1, dp=8, ep=16, pp=2)  # expert DP = 4 x 8 / 16 = 2, past the 16 EP ranks
    assert (dp_group(wider, expert=True).size, dp_group(wider, expert=True).stride) == (2, 16)


# --------------------------------------------------------------------------- GEMMs


def test_gemm_time_shards_column_n_and_row_k_by_tp():
    """TP 2 (Megatron): qkv [256 x 64] . [64 x 128/2], out [256 x 64/2] . [.. x 64], gate+up n 256/2, down k 128/2."""
    rec = Recorder(RATES)
    g = _gemm_time(ctx(layout=Layout(tp=2, micro_batch_size=2), rates=rec), "dense")
    assert rec.forward_calls == [
        (256, 64, 64, "bf16", 1, 1),
        (256, 64, 32, "bf16", 1, 1),
        (256, 128, 64, "bf16", 1, 1),
        (256, 64, 64, "bf16", 1, 1),
    ]
    # Each forward [m x k].[k x n] is followed by its input gradient [m x n].[n x k] and weight gradient [k x m].[m x n].
    for (m, n, k, *_), dgrad, wgrad in zip(rec.calls[0::3], rec.calls[1::3], rec.calls[2::3], strict=True):
        assert (dgrad[:3], wgrad[:3]) == ((m, k, n), (k, n, m))
    assert g.forward_s == pytest.approx(T * (ATTN_PROJ_FLOPS + FFN_FLOPS) / 2 / BF16, rel=1e-12)
    assert g.forward_parts["attention_proj"] == pytest.approx(T * ATTN_PROJ_FLOPS / 2 / BF16, rel=1e-12)
    assert g.forward_parts["dense_ffn"] == pytest.approx(T * FFN_FLOPS / 2 / BF16, rel=1e-12)
    # The test rates have no inner-dimension term and these GEMMs are compute-bound: each gradient costs a forward.
    assert g.input_grad_s == pytest.approx(g.forward_s, rel=1e-12)
    assert g.weight_grad_s == pytest.approx(g.forward_s, rel=1e-12)


def test_routed_experts_without_ep_are_tp_sharded_with_t_k_over_e_tokens_each():
    """TP 2, EP 1: each of the 8 local experts gets t k EP / E x imbalance = 256 x 2 / 8 x 1.25 = 80 tokens;
    the expert GEMMs are TP-sharded (gate+up n 64/2, down k 32/2). Router replicated; shared expert TP-sharded."""
    rec = Recorder(RATES)
    _gemm_time(ctx(MOE, Layout(tp=2, micro_batch_size=2), rates=rec), "moe")
    assert rec.forward_calls[2:] == [
        (256, 8, 64, "bf16", 1, 1),  # router
        (256, 32, 64, "bf16", 1, 1),  # shared gate+up, column
        (256, 64, 16, "bf16", 1, 1),  # shared down, row
        (80, 32, 64, "bf16", 8, 1),
        (80, 64, 16, "bf16", 8, 1),
    ]


def test_routed_experts_with_ep_split_tokens_over_tp_and_experts_over_ep():
    """TP 2, EP 4: 2 local experts, each t k EP / E x 1.25 / TP = 256 x 2 x 4 / 8 x 1.25 / 2 = 160 tokens, whole."""
    rec = Recorder(RATES)
    g = _gemm_time(ctx(MOE, Layout(tp=2, ep=4, dp=4, micro_batch_size=2), rates=rec), "moe")
    parts = g.forward_parts
    assert rec.forward_calls[-2:] == [(160, 64, 64, "bf16", 2, 1), (160, 64, 32, "bf16", 2, 1)]
    # Routed FLOPs: t x k x 1.25 x 2 (64 x 64 + 32 x 64) / TP.
    assert parts["routed_experts"] == pytest.approx(T * 2 * 1.25 * 2 * (64 * 64 + 32 * 64) / 2 / BF16, rel=1e-12)
    assert parts["router"] == pytest.approx(T * 2 * 64 * 8 / BF16, rel=1e-12)


# --------------------------------------------------------------------------- memory-bound kernels


def test_memory_bound_bytes_of_a_dense_layer_per_tp_rank():
    """docs/model.md §7.6: (norms + residuals 10 x 2h + RoPE 2 x 2 (n + n_kv) d + SwiGLU 3 x 2 x d_ff) x t / TP."""
    assert DENSE_MEMORY == 2432
    assert memory_bound_bytes(ctx(layout=Layout(tp=2, micro_batch_size=2)), "dense") == DENSE_MEMORY * T / 2


def test_memory_bound_bytes_of_a_plain_ffn_read_one_write_one():
    gelu = ModelSpec.model_validate({**BASE_SPEC, "name": "tiny-gelu", "ffn": "gelu"})
    per_token = 10 * 2 * 64 + 2 * 2 * 6 * 16 + 2 * 2 * 128
    assert memory_bound_bytes(ctx(gelu), "dense") == per_token * T


def test_memory_bound_bytes_of_an_moe_layer_add_routed_copies_shared_expert_and_permutes():
    """Routed: k x imbalance x 3 x 2 x d_e = 2 x 1.25 x 192; shared 3 x 2 x 32; permute and un-permute 4 x 2h x k."""
    per_token = 10 * 2 * 64 + 2 * 2 * 6 * 16 + 2 * 1.25 * 3 * 2 * 32 + 3 * 2 * 32 + 4 * 2 * 64 * 2
    assert memory_bound_bytes(ctx(MOE), "moe") == pytest.approx(per_token * T, rel=1e-12)


def test_fp8_quantize_passes_of_an_moe_layer_count_each_routed_copy():
    """FP8 GEMM inputs per token: qkv 64 + out 64 + shared 64 + 32 + routed (64 + 32) x top-2 (router in BF16) = 416."""
    per_token = 10 * 2 * 64 + 2 * 2 * 6 * 16 + 2 * 1.25 * 3 * 2 * 32 + 3 * 2 * 32 + 4 * 2 * 64 * 2 + 0.5 * 3.0 * 416 / 3
    c = ctx(MOE, precision="fp8", recipe="tensor")
    assert memory_bound_bytes(c, "moe") == pytest.approx(per_token * T, rel=1e-12)


def test_fp8_adds_the_unfused_quantize_passes_over_gemm_inputs():
    """Unfused share 0.5 x 3 B per element x GEMM inputs (64 + 64 + 64 + 128 = 320 per token) / 3 per forward."""
    extra = 0.5 * 3.0 * 320 / 3
    assert memory_bound_bytes(ctx(precision="fp8", recipe="tensor"), "dense") == pytest.approx((DENSE_MEMORY + extra) * T)


def test_rope_bytes_only_for_rotary_models():
    """ALiBi is added inside the attention kernel and learned positions at the input: no RoPE pass in the layer."""
    alibi = ModelSpec.model_validate({**BASE_SPEC, "name": "tiny-alibi", "position_embedding": "alibi"})
    assert memory_bound_bytes(ctx(alibi), "dense") == (DENSE_MEMORY - 2 * 2 * (4 + 2) * 16) * T


def test_bias_gradients_read_each_biased_output_once_per_step():
    """docs/model.md §7.6: the bias add runs in the GEMM epilogue; the backward reads 2 B per output element of each
    biased GEMM for the bias gradient, charged per forward as 2/3 B. QKV 64 + 2 x 32 = 128 (attention_bias),
    out 64 (output_bias), SwiGLU up 256 + down 64 (ffn_bias): 512 elements per token."""
    biased = ModelSpec.model_validate(
        {**BASE_SPEC, "name": "tiny-bias", "attention_bias": True, "output_bias": True, "ffn_bias": True}
    )
    assert st.bias_width(biased, st.layer_work(biased, 128)["dense"], 1.25) == 128 + 64 + 256 + 64
    extra = 2 / 3 * 512
    assert memory_bound_bytes(ctx(biased), "dense") == pytest.approx((DENSE_MEMORY + extra) * T, rel=1e-12)
    # Routed experts with biases: top-k x imbalance copies of up and down (gate+up 64 + down 64) per token.
    moe_bias = ModelSpec.model_validate({**BASE_SPEC, "name": "tiny-moe-bias", "moe": MOE_BLOCK, "ffn_bias": True})
    work = st.layer_work(moe_bias, 128)["moe"]
    assert st.bias_width(moe_bias, work, 1.25) == pytest.approx(2 * 1.25 * (64 + 64) + (64 + 64))


def test_zero3_casts_and_predivides_each_weight_gradient_once_per_micro_batch():
    """FSDP's fp32 reduce dtype: read 2 B, write 4 B per weight on the GPU (here TP 2: (8192 + 4096 + 16384 +
    8192) / 2 = 18432); over a DP group of 2 or more its reduce_scatter_hook also divides the unsharded fp32 gradient
    in place (read 4 B, write 4 B): 6 + 8 = 14 B per weight, charged per forward as / 3. ZeRO-2 (FSDP SHARD_GRAD_OP)
    pays the same; ZeRO 0-1 accumulate inside the wgrad GEMM: nothing."""
    assert st.grad_handling_bytes_per_param(4, 4.0) == 14 and st.grad_handling_bytes_per_param(1, 4.0) == 6
    # A BF16 reduce dtype (Composer PURE): no cast, the pre-divide reads and writes 2 B.
    assert st.grad_handling_bytes_per_param(4, 2.0) == 4 and st.grad_handling_bytes_per_param(1, 2.0) == 0
    weights = (64 * 128 + 64 * 64 + 64 * 256 + 128 * 64) / 2
    lay = Layout(tp=2, dp=4, micro_batch_size=2, zero_stage=3)
    assert float(st.gradient_cast_bytes(ctx(layout=lay), "dense")) == pytest.approx(14 * weights / 3)
    assert memory_bound_bytes(ctx(layout=lay), "dense") == pytest.approx(DENSE_MEMORY * T / 2 + 14 * weights / 3)
    assert float(st.gradient_cast_bytes(ctx(layout=replace(lay, zero_stage=2)), "dense")) == pytest.approx(14 * weights / 3)
    assert float(st.gradient_cast_bytes(ctx(layout=replace(lay, zero_stage=1)), "dense")) == 0.0
    # DP 1: the pre-divide factor is 1, nothing to divide; the cast stays.
    assert float(st.gradient_cast_bytes(ctx(layout=replace(lay, dp=1)), "dense")) == pytest.approx(6 * weights / 3)
    # Routed experts: all 8 experts of the layer, over EP 2 (whole) or TP-sharded without EP; their DP group is
    # DP x CP / EP: 4 / 2 = 2 here (divided), 4 / 4 = 1 with EP 4 (cast only).
    moe_lay = Layout(ep=2, dp=4, micro_batch_size=2, zero_stage=3)
    dense_part = 64 * 128 + 64 * 64 + 64 * 8 + 64 * 64 + 32 * 64  # attention, router, shared expert
    experts = 8 * (64 * 64 + 32 * 64) / 2
    assert float(st.gradient_cast_bytes(ctx(MOE, moe_lay), "moe")) == pytest.approx(14 * (dense_part + experts) / 3)
    ep4 = replace(moe_lay, ep=4)
    expected = (14 * dense_part + 6 * 8 * (64 * 64 + 32 * 64) / 4) / 3
    assert float(st.gradient_cast_bytes(ctx(MOE, ep4), "moe")) == pytest.approx(expected)


def test_layouts_that_differ_only_in_whether_dp_divides_gradients_get_their_own_item_times():
    """ZeRO-3 at DP 1 (no pre-divide) and DP 2 in one batch: each as if alone (the item-time classes tell them apart)."""
    counts = parameter_counts(DENSE)
    j = job(sequences=16)
    lays = [Layout(dp=1, micro_batch_size=2, zero_stage=3), Layout(dp=2, micro_batch_size=2, zero_stage=3)]
    both = evaluate(DENSE, j, Layouts.of(lays), RATES, counts, A).breakdown_s["memory_bound"]
    alone = [step(DENSE, j, lay, RATES, counts, A).breakdown_s["memory_bound"] for lay in lays]
    np.testing.assert_allclose(both, alone, rtol=1e-12)
    assert alone[1] / 2 > alone[0] / 8  # per micro-batch (8 at DP 1, 4 at DP 2) DP 2 moves more


def test_elementwise_kernels_pay_the_launch_cost_forward_and_backward():
    """docs/model.md §7.6: 2 norms + 2 residual adds + RoPE on q and k + SwiGLU (activation and product) = 8 launches
    forward, 16 backward; plus 2 residual dropouts with dropout, MoE routing (4) and one bias-gradient reduction per
    biased GEMM backward. Each costs kernel_overhead_s (here 1 us) in the layer's forward and backward."""
    assert st.memory_bound_kernels(ctx(), "dense") == (8.0, 16.0)
    assert st.memory_bound_kernels(ctx(dropout=0.1), "dense") == (10.0, 20.0)
    gelu = ModelSpec.model_validate({**BASE_SPEC, "name": "tiny-gelu-alibi", "ffn": "gelu", "position_embedding": "alibi"})
    assert st.memory_bound_kernels(ctx(gelu), "dense") == (5.0, 10.0)
    # MoE layer: routed and shared experts (2 x 2) + routing (4) + norms and residuals (4) + RoPE (2) = 14.
    assert st.memory_bound_kernels(ctx(MOE), "moe") == (14.0, 28.0)
    biased = ModelSpec.model_validate({**BASE_SPEC, "name": "tiny-bias-k", "attention_bias": True, "ffn_bias": True})
    assert st.memory_bound_kernels(ctx(biased), "dense") == (8.0, 16.0 + 1 + 2)
    launched = replace(RATES, kernel_overhead_s=1e-6)
    g, a, m = _dense_layer_closed_form()
    g += 4e-6  # the 4 GEMM kernels pay the launch cost too
    t = layer_time(ctx(rates=launched), "dense")
    assert t.forward_s == pytest.approx(g + a + m + 8e-6, rel=1e-12)
    assert t.backward_s == pytest.approx(2 * g + 2.5 * a + 2 * m + 16e-6, rel=1e-12)
    assert t.parts["kernel_launch"] == pytest.approx(24e-6)
    full = layer_time(ctx(layout=Layout(micro_batch_size=2, recompute="full"), rates=launched), "dense")
    assert full.parts["recompute"] == pytest.approx(g + a + m + 8e-6, rel=1e-12)  # the forward launches again


# --------------------------------------------------------------------------- TP, CP and EP communication


def _tp_one(tp: int) -> float:
    """One SP all-gather of b s h BF16 over TP ranks in one domain: alpha + (tp-1)/tp x 256 x 64 x 2 / B_nvlink."""
    return one_collective((tp - 1) / tp, T * 64 * 2, UP)


def test_sequence_parallel_tp_runs_10_collectives_per_layer():
    """Korthikanti §4.2.2 + the wgrad all-gather redo: 4 forward + 6 backward all-gathers/reduce-scatters."""
    exposed, hidden, parts = _layer_comm(ctx(layout=Layout(tp=4, micro_batch_size=2)), "dense", 1.0, 1.0, 1.0)
    assert parts["tp_comm"] == pytest.approx(10 * _tp_one(4), rel=1e-12)
    assert exposed == pytest.approx(10 * _tp_one(4), rel=1e-12)
    assert hidden == 0.0 and parts["cp_comm"] == 0.0
    assert "ep_comm" not in parts


def test_full_recompute_repeats_the_4_forward_tp_collectives():
    lay = Layout(tp=4, micro_batch_size=2, recompute="full")
    _, _, parts = _layer_comm(ctx(layout=lay), "dense", 1.0, 1.0, 1.0)
    assert parts["tp_comm"] == pytest.approx(14 * _tp_one(4), rel=1e-12)


def test_tp_overlap_hides_collectives_behind_3_gemm_passes_up_to_the_overlap_efficiency():
    """Window = 0.5 x the GEMMs' three passes (forward, input and weight gradient: 60 us) = 30 us: exposed 10 x one -
    30 us, hidden 30 us."""
    lay = Layout(tp=4, micro_batch_size=2, tp_overlap=True)
    exposed, hidden, parts = _layer_comm(ctx(layout=lay), "dense", 1.0, 1.0, 60e-6)
    assert 10 * _tp_one(4) > 30e-6
    assert exposed == pytest.approx(10 * _tp_one(4) - 30e-6, rel=1e-12)
    assert hidden == pytest.approx(30e-6, rel=1e-12)
    # A window longer than the communication hides all of it.
    exposed, hidden, _ = _layer_comm(ctx(layout=lay), "dense", 1.0, 1.0, 1e-3)
    assert exposed == 0.0 and hidden == pytest.approx(10 * _tp_one(4), rel=1e-12)


def test_context_parallel_moves_k_and_v_three_times():
    """CP 2 (TP 1): all-gather of K and V, 2 x t_local x CP x h_kv x 2 B = 2 x 128 x 2 x 32 x 2; forward all-gather,
    backward re-gather and reduce-scatter of dK, dV: 3 x (alpha + 1/2 x S / B_nvlink)."""
    c = ctx(layout=Layout(cp=2, micro_batch_size=2))
    assert c.tokens_per_micro_batch == 128
    _, _, parts = _layer_comm(c, "dense", 1.0, 1.0, 1.0)
    assert parts["cp_comm"] == pytest.approx(3 * one_collective(0.5, 2 * 128 * 2 * 32 * 2, UP), rel=1e-12)
    assert parts["tp_comm"] == 0.0
    # With TP 2 the K, V shards gathered are per TP rank: half the bytes, over ranks 2 apart.
    _, _, parts = _layer_comm(ctx(layout=Layout(cp=2, tp=2, micro_batch_size=2)), "dense", 1.0, 1.0, 1.0)
    assert parts["cp_comm"] == pytest.approx(3 * one_collective(0.5, 2 * 128 * 2 * 32 * 2 / 2, UP), rel=1e-12)


def test_kv_width_is_kv_heads_times_head_dim_or_mla_half_of_qk_plus_v():
    assert kv_width(DENSE) == 2 * 16
    assert kv_width(MLA) == 4 * (8 + 4 + 8) // 2


def _ep_one_way(tokens: float, ep: int, dispatch_bytes: float) -> float:
    """In-domain dispatch + combine: 2 alpha + T x k (1 - 1/EP) x h (b_dispatch + 2) / B_nvlink."""
    return 2 * LAT + tokens * 2 * (1 - 1 / ep) * 64 * (dispatch_bytes + 2.0) / UP


def test_expert_parallel_all_to_all_is_twice_one_way():
    """Forward dispatch + combine and their backward mirror: 2 x one-way, for MoE layers only."""
    c = ctx(MOE, Layout(ep=4, dp=4, micro_batch_size=2))
    exposed, hidden, parts = _layer_comm(c, "moe", 1.0, 1.0, 1.0)
    assert parts["ep_comm"] == pytest.approx(2 * _ep_one_way(T, 4, 2.0), rel=1e-12)
    assert exposed == pytest.approx(2 * _ep_one_way(T, 4, 2.0), rel=1e-12)
    assert hidden == 0.0
    _, _, dense_parts = _layer_comm(c, "dense", 1.0, 1.0, 1.0)
    assert "ep_comm" not in dense_parts
    _, _, mtp_parts = _layer_comm(c, "mtp", 1.0, 1.0, 1.0)
    assert mtp_parts["ep_comm"] == parts["ep_comm"]


def test_expert_parallel_tokens_are_split_over_tp_and_block_fp8_dispatches_1_03125_bytes():
    """DeepSeek-V3 §3.3.4: FP8 dispatch with 1x128 fp32 scales, BF16 combine. With TP 2 each rank dispatches t / 2."""
    c = ctx(MOE, Layout(ep=4, dp=4, micro_batch_size=2), precision="fp8", recipe="block")
    _, _, parts = _layer_comm(c, "moe", 1.0, 1.0, 1.0)
    assert parts["ep_comm"] == pytest.approx(2 * _ep_one_way(T, 4, 1 + 4 / 128), rel=1e-12)
    c = ctx(MOE, Layout(tp=2, ep=2, dp=2, micro_batch_size=2), precision="fp8", recipe="tensor")
    _, _, parts = _layer_comm(c, "moe", 1.0, 1.0, 1.0)
    assert parts["ep_comm"] == pytest.approx(2 * _ep_one_way(T / 2, 2, 2.0), rel=1e-12)


def test_dualpipe_hides_all_to_all_behind_the_paired_chunk_up_to_the_overlap_efficiency():
    """V3 §3.2.1: window = 0.5 x (F + B); exposed = max(0, ep - window), hidden = min(ep, window)."""
    lay = Layout(ep=4, dp=4, pp=2, micro_batch_size=2, schedule="dualpipe")
    ep = 2 * _ep_one_way(T, 4, 2.0)
    exposed, hidden, parts = _layer_comm(ctx(MOE, lay), "moe", 10e-6, 20e-6, 1.0)
    assert ep > 15e-6
    assert parts["ep_comm"] == pytest.approx(ep - 15e-6, rel=1e-12)
    assert hidden == pytest.approx(15e-6, rel=1e-12)
    exposed, hidden, _ = _layer_comm(ctx(MOE, lay), "moe", 1e-3, 1e-3, 1.0)
    assert exposed == 0.0 and hidden == pytest.approx(ep, rel=1e-12)


# --------------------------------------------------------------------------- attention core and dropout


def test_flash_attention_core_is_core_flops_per_tp_rank_over_the_attention_rate():
    """2 s_eff n (d_qk + d_v) x t / TP = 16384 x 256 / 2 FLOPs at 4e14; backward 2.5 x (FA convention)."""
    fwd, bwd = attention_core_s(ctx(layout=Layout(tp=2, micro_batch_size=2)))
    assert fwd == pytest.approx(CORE_FLOPS * T / 2 / ATTN, rel=1e-12)
    assert bwd == pytest.approx(2.5 * CORE_FLOPS * T / 2 / ATTN, rel=1e-12)


def test_unfused_attention_is_two_batched_gemms_and_softmax_traffic_per_score():
    """Megatron 2021: QK^T [s x d] . [d x s] and A.V [s x s] . [s x d] for b n / TP = 4 heads x sequences:
    2 x 4 x 2 x 128 x 128 x 16 FLOPs; softmax 4 B per score forward, 6 B backward; backward GEMMs 2x."""
    gemm = 2 * 4 * 2 * 128 * 128 * 16 / BF16
    scores = 4 * 128 * 128
    fwd, bwd = attention_core_s(ctx(layout=Layout(tp=2, micro_batch_size=2), kernel="unfused"))
    assert fwd == pytest.approx(gemm + scores * 4.0 / HBM, rel=1e-12)
    assert bwd == pytest.approx(2 * gemm + scores * 6.0 / HBM, rel=1e-12)
    # Dropout on the probabilities adds 5 B per score each way.
    fwd, bwd = attention_core_s(ctx(layout=Layout(tp=2, micro_batch_size=2), kernel="unfused", dropout=0.1))
    assert fwd == pytest.approx(gemm + scores * 9.0 / HBM, rel=1e-12)
    assert bwd == pytest.approx(2 * gemm + scores * 11.0 / HBM, rel=1e-12)


def test_unfused_attention_under_context_parallelism_scores_local_queries_against_all_keys():
    """CP 2: softmax traffic over 64 local queries x 128 keys per head and sequence, 4 B per score forward, 6 B
    backward. (GEMMs made free here, so only the score traffic is timed.)"""
    free_gemms = replace(RATES, peak_flop_per_s={"bf16": 1e40, "fp16": 1e40, "fp8": 1e40})
    fwd, bwd = attention_core_s(ctx(layout=Layout(cp=2, micro_batch_size=2), rates=free_gemms, kernel="unfused"))
    scores = 2 * 4 * 64 * 128
    assert fwd == pytest.approx(scores * 4.0 / HBM, rel=1e-9)
    assert bwd == pytest.approx(scores * 6.0 / HBM, rel=1e-9)


def test_residual_dropout_traffic_is_2_times_5_bytes_per_element():
    assert _dropout_bytes(ctx()) == 0.0
    assert _dropout_bytes(ctx(layout=Layout(tp=2, micro_batch_size=2), dropout=0.1)) == 2 * 5.0 * 64 * T / 2


def test_by_recompute_picks_each_layouts_mode():
    lays = Layouts.of([Layout(recompute="full"), Layout(recompute="none"), Layout(recompute="selective")])
    np.testing.assert_array_equal(by_recompute(lays, {"none": 1.0, "selective": 2.0, "full": 3.0}), [3.0, 1.0, 2.0])


# --------------------------------------------------------------------------- layer, head, embedding


def _dense_layer_closed_form(tp: int = 1):
    g = T * (ATTN_PROJ_FLOPS + FFN_FLOPS) / tp / BF16
    a = T * CORE_FLOPS / tp / ATTN
    m = T * DENSE_MEMORY / tp / HBM
    return g, a, m


def test_layer_forward_is_gemms_plus_core_plus_memory_and_backward_twice_gemms_and_memory():
    """F = G + A + M; B = 2G + 2.5A + 2M (no recompute); W = G."""
    g, a, m = _dense_layer_closed_form()
    t = layer_time(ctx(), "dense")
    assert t.forward_s == pytest.approx(g + a + m, rel=1e-12)
    assert t.backward_s == pytest.approx(2 * g + 2.5 * a + 2 * m, rel=1e-12)
    assert t.weight_grad_s == pytest.approx(g, rel=1e-12)
    assert t.exposed_comm_s == 0.0
    assert t.parts["attention_proj"] == pytest.approx(3 * T * ATTN_PROJ_FLOPS / BF16, rel=1e-12)
    assert t.parts["attention_core"] == pytest.approx(3.5 * a, rel=1e-12)
    assert t.parts["memory_bound"] == pytest.approx(3 * m, rel=1e-12)
    assert t.parts["recompute"] == 0.0 and t.parts["comm_sm_contention"] == 0.0


def test_selective_recompute_redoes_the_core_and_half_the_memory_bound_work():
    """Korthikanti §5: backward += A + M/2 (GQA has no up-projections to redo)."""
    g, a, m = _dense_layer_closed_form()
    t = layer_time(ctx(layout=Layout(micro_batch_size=2, recompute="selective")), "dense")
    assert t.backward_s == pytest.approx(2 * g + 2.5 * a + 2 * m + a + m / 2, rel=1e-12)
    assert t.parts["recompute"] == pytest.approx(a + m / 2, rel=1e-12)


def test_selective_recompute_of_mla_also_redoes_the_up_projections():
    """DeepSeek-V3 §3.2.3: q_up [t x 24] . [24 x 48] and kv_up [t x 16] . [16 x 64] run again."""
    base = layer_time(ctx(MLA), "dense")
    sel = layer_time(ctx(MLA, Layout(micro_batch_size=2, recompute="selective")), "dense")
    a = T * 2 * 64 * 4 * (12 + 8) / ATTN
    ups = 2 * T * (24 * 48 + 16 * 64) / BF16
    m = base.parts["memory_bound"] / 3
    assert sel.parts["recompute"] == pytest.approx(a + ups + m / 2, rel=1e-12)


def test_full_recompute_redoes_the_whole_forward():
    g, a, m = _dense_layer_closed_form()
    t = layer_time(ctx(layout=Layout(micro_batch_size=2, recompute="full")), "dense")
    assert t.backward_s == pytest.approx(2 * g + 2.5 * a + 2 * m + (g + a + m), rel=1e-12)


def test_hidden_communication_slows_compute_by_f_times_its_share():
    """docs/model.md §5.2 contention: slowdown = 1 + f x min(1, hidden / (F + B)), f = 0.2; TP 4 with overlap."""
    g, a, m = _dense_layer_closed_form(4)
    f0, b0 = g + a + m, 2 * g + 2.5 * a + 2 * m
    tp_comm = 10 * _tp_one(4)
    window = 0.5 * 3 * g
    hidden = min(tp_comm, window)
    slowdown = 1 + 0.2 * min(1.0, hidden / (f0 + b0))
    t = layer_time(ctx(layout=Layout(tp=4, micro_batch_size=2, tp_overlap=True)), "dense")
    assert slowdown > 1.0
    assert t.forward_s == pytest.approx(f0 * slowdown, rel=1e-12)
    assert t.backward_s == pytest.approx(b0 * slowdown, rel=1e-12)
    assert t.weight_grad_s == pytest.approx(g * slowdown, rel=1e-12)
    assert t.exposed_comm_s == pytest.approx(tp_comm - window, rel=1e-12)
    assert t.parts["comm_sm_contention"] == pytest.approx((slowdown - 1) * (f0 + b0), rel=1e-12)
    assert t.parts["tp_comm"] == pytest.approx(tp_comm - window, rel=1e-12)


def test_lm_head_is_a_vocab_parallel_gemm_plus_cross_entropy_traffic():
    """Head [t x h] . [h x V/TP] in BF16 and 30 B per logit of cross-entropy, half forward, half backward."""
    g = 2 * T * 64 * 1000 / 2 / BF16
    ce = 30.0 * T * 1000 / 2 / HBM
    t = head_time(ctx(layout=Layout(tp=2, micro_batch_size=2), precision="fp8", recipe="tensor"))
    assert (t.forward_s, t.backward_s, t.weight_grad_s, t.exposed_comm_s) == pytest.approx((g + ce / 2, 2 * g + ce / 2, g, 0))
    assert t.parts == pytest.approx({"lm_head": 3 * g + ce, "kernel_launch": 0.0})
    # Each of the 6 cross-entropy kernels (upcast, log-softmax, loss and their gradients) pays the launch cost, half
    # in the forward and half in the backward.
    launched = replace(RATES, kernel_overhead_s=1e-6)
    t = head_time(ctx(layout=Layout(tp=2, micro_batch_size=2), rates=launched))
    # The head GEMM pays one launch forward and two backward (dgrad, wgrad) besides.
    assert (t.forward_s, t.backward_s) == pytest.approx((g + 1e-6 + ce / 2 + 3e-6, 2 * (g + 1e-6) + ce / 2 + 3e-6))
    assert t.parts["kernel_launch"] == pytest.approx(6e-6)


def test_embedding_is_a_lookup_read_and_write_of_2_bytes_per_element():
    s = 2 * 2 * T * 64 / 2 / HBM
    t = embed_time(ctx(layout=Layout(tp=2, micro_batch_size=2)))
    assert (t.forward_s, t.backward_s, t.weight_grad_s, t.exposed_comm_s) == pytest.approx((s, 2 * s, 0, 0))
    assert t.parts == pytest.approx({"embedding": 3 * s})


def test_item_times_add_field_by_field_and_merge_parts():
    s = ItemTime(1.0, 2.0, 3.0, 4.0, {"a": 1.0, "b": 2.0}) + ItemTime(10.0, 20.0, 30.0, 40.0, {"b": 5.0, "c": 7.0})
    assert (s.forward_s, s.backward_s, s.weight_grad_s, s.exposed_comm_s) == (11.0, 22.0, 33.0, 44.0)
    assert s.parts == {"a": 1.0, "b": 7.0, "c": 7.0}


def test_mtp_item_is_its_layer_plus_a_head():
    mtp = ModelSpec.model_validate({**BASE_SPEC, "name": "tiny-mtp", "mtp_depth": 1})
    c = ctx(mtp)
    layer, head = layer_time(c, "mtp"), head_time(c)
    t = item_time(c, "mtp")
    assert t.forward_s == pytest.approx(layer.forward_s + head.forward_s, rel=1e-12)
    assert t.weight_grad_s == pytest.approx(layer.weight_grad_s + head.weight_grad_s, rel=1e-12)
    # The MTP projection [t x 2h] . [2h x h] (replicated) is in the layer: 2 x 256 x 128 x 64 FLOPs.
    assert layer.parts["mtp"] == pytest.approx(3 * 2 * T * 128 * 64 / BF16, rel=1e-12)


# --------------------------------------------------------------------------- static SM partition


def test_static_sm_partition_only_under_dualpipe_with_ep_and_experts():
    dual_ep = Layout(ep=2, dp=2, pp=2, micro_batch_size=2, schedule="dualpipe")
    assert static_sm_partition(ctx(MOE, dual_ep))
    assert not static_sm_partition(ctx(MOE, replace(dual_ep, ep=1)))
    assert not static_sm_partition(ctx(MOE, replace(dual_ep, schedule="1f1b")))
    assert not static_sm_partition(ctx(DENSE, replace(dual_ep, ep=1)))


def test_static_sm_partition_dilates_compute_by_1_over_1_minus_f():
    """DeepSeek-V3 §3.2.2 (20 of 132 SMs for all-to-all): compute runs 1 / (1 - 0.2) = 1.25x longer."""
    dual_ep = Layout(ep=2, dp=2, pp=2, micro_batch_size=2, schedule="dualpipe")
    assert _sm_dilation(ctx(MOE, dual_ep)) == pytest.approx(1.25)
    assert _sm_dilation(ctx(MOE, replace(dual_ep, schedule="1f1b"))) == 1.0
    t = _on_partitioned_sms(ctx(MOE, dual_ep), ItemTime(1.0, 2.0, 0.5, 0.25, {"comm_sm_contention": 0.1}))
    assert (t.forward_s, t.backward_s, t.weight_grad_s, t.exposed_comm_s) == pytest.approx((1.25, 2.5, 0.625, 0.25))
    assert t.parts["comm_sm_contention"] == pytest.approx(0.1 + 0.25 * 3.0)


def test_under_a_static_partition_the_dualpipe_window_is_the_dilated_compute():
    """The MoE layer's own compute, dilated 1.25x, is the window the all-to-all hides behind (no extra contention)."""
    dual_ep = Layout(ep=2, dp=2, pp=2, micro_batch_size=2, schedule="dualpipe")
    plain = layer_time(ctx(MOE, replace(dual_ep, schedule="1f1b")), "moe")  # same compute, nothing hidden
    t = layer_time(ctx(MOE, dual_ep), "moe")
    assert t.forward_s == pytest.approx(plain.forward_s, rel=1e-12)  # dilation is applied in item_time
    ep = plain.parts["ep_comm"]
    window = 0.5 * 1.25 * (plain.forward_s + plain.backward_s)
    assert t.parts["ep_comm"] == pytest.approx(max(0.0, ep - window), rel=1e-12, abs=1e-18)
    assert item_time(ctx(MOE, dual_ep), "moe").forward_s == pytest.approx(1.25 * plain.forward_s, rel=1e-12)


# --------------------------------------------------------------------------- items and pipeline


def test_model_items_are_embedding_layers_head_and_mtp_modules():
    mtp = ModelSpec.model_validate({**BASE_SPEC, "name": "m", "moe": MOE_BLOCK, "mtp_depth": 2})
    assert model_items(mtp) == ["embed", "dense", "moe", "moe", "moe", "head", "mtp", "mtp"]


def test_item_cost_proxy_is_forward_flops_per_token_of_each_item():
    proxy = item_cost_proxy(DENSE, 128)
    assert proxy["dense"] == ATTN_PROJ_FLOPS + FFN_FLOPS + CORE_FLOPS
    assert proxy["head"] == 2 * 64 * 1000
    assert proxy["embed"] == pytest.approx(1e-6 * 2 * 64 * 1000)  # a tiny weight: the largest item x 1e-6
    mtp = ModelSpec.model_validate({**BASE_SPEC, "name": "m", "mtp_depth": 2})
    assert item_cost_proxy(mtp, 128)["mtp"] == 2 * 128 * 64 + ATTN_PROJ_FLOPS + FFN_FLOPS + CORE_FLOPS + 2 * 64 * 1000


def test_micro_batch_share_is_half_under_dualpipe():
    lays = Layouts.of([Layout(schedule="dualpipe", pp=2), Layout(schedule="1f1b"), Layout(schedule="interleaved")])
    np.testing.assert_array_equal(micro_batch_share(lays), [0.5, 1.0, 1.0])


def _send(stride_bw: float) -> float:
    """One activation send of t h 2 B / TP = 256 x 64 x 2 / 2 = 16384 B."""
    return LAT + 16384 / stride_bw


def test_pipeline_sends_fill_and_drain_2_p_minus_1_times_v():
    """Interleaved, PP 4, v 2: 2 (p-1) v = 12 sends on the critical path (async P2P hides the steady state)."""
    lay = Layout(tp=2, pp=4, dp=1, vpp=2, micro_batch_size=2, schedule="interleaved")
    assert _pp_exposed_s(ctx(layout=lay), 8) == pytest.approx(12 * _send(UP), rel=1e-12)


def test_plain_1f1b_also_exposes_2m_sends_beyond_the_overlap():
    """1F1B: 2 (p-1) + 2 m (1 - 0.5) sends; PP neighbours 2 x 4 = 8 GPUs apart cross the NIC."""
    lay = Layout(tp=2, pp=4, dp=4, micro_batch_size=2)
    assert _pp_exposed_s(ctx(layout=lay), 8) == pytest.approx((2 * 3 + 2 * 8 * 0.5) * _send(OUT), rel=1e-12)
    assert _pp_exposed_s(ctx(layout=replace(lay, pp=1)), 8) == 0.0


# --------------------------------------------------------------------------- data parallelism and optimizer

P = 1e6  # dense parameters on the GPU: 4 MB of fp32 gradients, 2 MB of BF16 weights


def _ar(n: int, size: float, bw: float = UP) -> float:
    return LAT + 2 * (n - 1) / n * size / bw


def _rs(n: int, size: float, bw: float = UP) -> float:
    return LAT + (n - 1) / n * size / bw


def _dp(c, dense, expert, f, b, m, buckets=1.0):
    """(DP seconds per step, optimizer seconds) from _dp_and_optimizer_s."""
    return _dp_and_optimizer_s(c, dense, expert, f, b, m, buckets)


def test_zero0_all_reduces_fp32_gradients_with_one_bucket_exposed():
    """Llama 3 §3.3.2: fp32 all-reduce 2 (n-1)/n x 4P over DP 4. One bucket: nothing can hide (its gradients are
    ready only when the backward ends)."""
    c = ctx(layout=Layout(dp=4, zero_stage=0, micro_batch_size=2))
    ar = _ar(4, 4 * P)
    exposed, _ = _dp(c, P, 0.0, 1.0, 1.0, 4, buckets=1)
    assert exposed == pytest.approx(ar, rel=1e-12)


def test_zero0_hides_all_but_the_last_bucket_under_the_last_backward_only():
    """docs/model.md §5.1: window = B (not F + B); 4 buckets: 3/4 of the all-reduce may hide, up to 0.5 x B.
    B = 30 us: hidden 15 us, exposed ar - 15 us, plus the SMs the hidden part takes: 0.2 x 15 us (§5.2)."""
    c = ctx(layout=Layout(dp=4, zero_stage=0, micro_batch_size=2))
    ar = _ar(4, 4 * P)
    assert 0.75 * ar > 15e-6
    exposed, _ = _dp(c, P, 0.0, 10e-6, 30e-6, 4, buckets=4)
    assert exposed == pytest.approx(ar - 15e-6 + 0.2 * 15e-6, rel=1e-12)
    # A long backward hides all but the last bucket; the hidden 3/4 still costs 0.2 x its time in SMs.
    exposed, _ = _dp(c, P, 0.0, 1.0, 1.0, 4, buckets=4)
    assert exposed == pytest.approx(ar / 4 + 0.2 * 0.75 * ar, rel=1e-12)


def test_dp_traffic_per_zero_stage_follows_zero_section_7():
    """ZeRO §7: stage 0 all-reduces 4P; stages 1-2 reduce-scatter 4P and all-gather the updated 2P after the step;
    stage 3 all-gathers 2P before every forward and backward (2m), with no gather after the step (the weights stay
    sharded). Stages 2-3 keep only a gradient shard, so they reduce-scatter 4P after every micro-batch's backward
    (m = 4) instead of accumulating over micro-batches as stages 0-1 do (FSDP outside no_sync; DeepSpeed#338)."""
    for zero, reduce, gather, zero3 in (
        (0, _ar(4, 4 * P), 0.0, 0.0),
        (1, _rs(4, 4 * P), _rs(4, 2 * P), 0.0),
        (2, 4 * _rs(4, 4 * P), _rs(4, 2 * P), 0.0),
        (3, 4 * _rs(4, 4 * P), 0.0, 2 * 4 * _rs(4, 2 * P)),
    ):
        t = st.dp_traffic_s(ctx(layout=Layout(dp=4, zero_stage=zero, micro_batch_size=2)), P, 0.0, 4)
        assert (float(t.reduce_s), float(t.param_gather_s), float(t.zero3_gathers_s)) == pytest.approx(
            (reduce, gather, zero3), rel=1e-12
        ), zero


def test_gradients_reduce_in_the_jobs_gradient_reduce_bytes():
    """Job.gradient_reduce_bytes: BF16 reductions (Composer PURE) move half the fp32 bytes; weights still gather in
    BF16."""
    lay = Layout(dp=4, zero_stage=3, micro_batch_size=2)
    fp32 = st.dp_traffic_s(ctx(layout=lay), P, 0.0, 4)
    c = ctx(layout=lay)
    bf16 = st.dp_traffic_s(Context(c.model, replace(c.job, gradient_reduce_bytes=2.0), lay, c.rates, c.assumptions), P, 0.0, 4)
    assert float(bf16.reduce_s) == pytest.approx(4 * _rs(4, 2 * P), rel=1e-12)
    assert float(bf16.reduce_s) < float(fp32.reduce_s)
    assert float(bf16.zero3_gathers_s) == pytest.approx(float(fp32.zero3_gathers_s), rel=1e-12)


@pytest.mark.parametrize("zero", [1, 2])
def test_zero1_and_2_reduce_scatter_gradients_and_all_gather_bf16_weights(zero):
    """Megatron distributed optimizer (ZeRO-1): reduce-scatter 4P + all-gather 2P, each (n-1)/n over DP 4; ZeRO-2
    reduce-scatters each of the m = 4 micro-batches' gradients; one bucket and no window: all exposed."""
    c = ctx(layout=Layout(dp=4, zero_stage=zero, micro_batch_size=2))
    exposed, _ = _dp(c, P, 0.0, 0.0, 0.0, 4)
    reductions = 4 if zero == 2 else 1
    assert exposed == pytest.approx(reductions * _rs(4, 4 * P) + _rs(4, 2 * P), rel=1e-12)


def test_zero2_reductions_hide_under_every_micro_batchs_backward():
    """docs/model.md §5.1: ZeRO-2's per-micro-batch reductions run under each backward, W = m·B + o·F; ZeRO-1's single
    reduction only under the last backward, W = B + o·F."""
    f, b = 2e-6, 3e-6
    assert float(st.dp_window_s(Layout(dp=4, zero_stage=2), f, b, 4, 1.0)) == pytest.approx(4 * b + f)
    assert float(st.dp_window_s(Layout(dp=4, zero_stage=1), f, b, 4, 1.0)) == pytest.approx(b + f)
    assert float(st.dp_window_s(Layout(dp=4, zero_stage=3), f, b, 4, 1.0)) == pytest.approx(4 * (f + b))


def test_zero1_weight_gather_hides_only_under_the_next_forward_when_overlapped():
    """Window B + F (the gather after the step runs under the next step's first forward, Megatron
    --overlap-param-gather); without that overlap the window is B and the gather is exposed whole."""
    lay = Layout(dp=4, zero_stage=1, micro_batch_size=2)
    rs, ag = _rs(4, 4 * P), _rs(4, 2 * P)
    f, b = 20e-6, 10e-6  # windows 0.5 x 30 us (overlapped) and 0.5 x 10 us (not)
    assert 0.5 * (rs + ag) > 15e-6 and 0.5 * rs > 5e-6
    exposed, _ = _dp(ctx(layout=lay), P, 0.0, f, b, 4, buckets=2)
    assert exposed == pytest.approx(rs + ag - 15e-6 + 0.2 * 15e-6, rel=1e-12)
    no_overlap = replace(A, param_gather_overlap=0.0)
    exposed, _ = _dp(ctx(layout=lay, a=no_overlap), P, 0.0, f, b, 4, buckets=2)
    assert exposed == pytest.approx(rs + ag - 5e-6 + 0.2 * 5e-6, rel=1e-12)
    # The same compute twice as long: the overlapped gather fully hides but for its first chunk; without the
    # overlap the whole gather stays exposed.
    exposed, _ = _dp(ctx(layout=lay, a=no_overlap), P, 0.0, 1.0, 1.0, 4, buckets=2)
    assert exposed == pytest.approx(rs / 2 + ag + 0.2 * rs / 2, rel=1e-12)


def test_zero3_regathers_weights_2m_times_per_step_in_one_shared_window():
    """ZeRO §7: ZeRO-3 all-gathers the weights for each micro-batch's forward and backward, 2 m gathers, and
    reduce-scatters each micro-batch's gradients, m reductions; no gather after the step. Everything shares one
    window, m (F + B), counted once."""
    c = ctx(layout=Layout(dp=4, zero_stage=3, micro_batch_size=2))
    total = 4 * _rs(4, 4 * P) + 2 * 4 * _rs(4, 2 * P)
    exposed, _ = _dp(c, P, 0.0, 0.0, 0.0, 4)
    assert exposed == pytest.approx(total, rel=1e-12)
    f, b = 5e-6, 5e-6  # window 0.5 x 4 x 10 us = 20 us, shared by the reduction and the gathers
    exposed, _ = _dp(c, P, 0.0, f, b, 4, buckets=8)
    assert 7 / 8 * total > 20e-6
    assert exposed == pytest.approx(total - 20e-6 + 0.2 * 20e-6, rel=1e-12)


def test_hidden_dp_traffic_takes_no_extra_sms_under_a_static_partition():
    """DualPipe with EP: communication runs on the SMs set aside for it (docs/model.md §5.3), so hiding DP traffic
    costs no contention."""
    lay = Layout(ep=2, dp=2, pp=2, micro_batch_size=2, schedule="dualpipe", zero_stage=0)
    ar = _ar(2, 4 * P)
    exposed, _ = _dp(ctx(MOE, lay), P, 0.0, 1.0, 1.0, 4, buckets=4)
    assert exposed == pytest.approx(ar / 4, rel=1e-12)


def test_gradient_buckets_are_the_layers_on_the_rank_at_least_one():
    counts_matrix = np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 1.0]])  # embed + 3 layers; the head alone
    kinds = ["embed", "dense", "head"]
    np.testing.assert_array_equal(st.gradient_buckets(kinds, counts_matrix, np.array([0, 1])), [3.0, 1.0])


def test_expert_gradients_reduce_over_dp_cp_over_ep_ranks_strided_by_tp_ep():
    """DP 8, EP 4: expert replicas 8 / 4 = 2, ranks 4 apart (one domain); all-reduce 2 (1/2) x 4E."""
    c = ctx(MOE, Layout(dp=8, ep=4, zero_stage=0, micro_batch_size=2))
    exposed, _ = _dp_and_optimizer_s(c, 0.0, P, 0.0, 0.0, 4)
    assert exposed == pytest.approx(_ar(2, 4 * P), rel=1e-12)
    both, _ = _dp_and_optimizer_s(c, P, P, 0.0, 0.0, 4)
    assert both == pytest.approx(_ar(2, 4 * P) + _ar(8, 4 * P), rel=1e-12)


def test_optimizer_step_streams_30_bytes_per_owned_parameter():
    """docs/model.md §7.6: 30 B per parameter at HBM speed; ZeRO >= 1 owns dense / (DP x CP) and expert / (DP x CP / EP)."""
    c0 = ctx(MOE, Layout(dp=4, cp=2, ep=2, zero_stage=0, micro_batch_size=2))
    _, opt = _dp_and_optimizer_s(c0, P, 2 * P, 0.0, 0.0, 4)
    assert opt == pytest.approx(30 * 3 * P / HBM, rel=1e-12)
    c1 = ctx(MOE, Layout(dp=4, cp=2, ep=2, zero_stage=1, micro_batch_size=2))
    _, opt = _dp_and_optimizer_s(c1, P, 2 * P, 0.0, 0.0, 4)
    assert opt == pytest.approx(30 * (P / 8 + 2 * P / 4) / HBM, rel=1e-12)
    c1_block = ctx(MOE, Layout(dp=4, cp=2, ep=2, zero_stage=1, micro_batch_size=2), precision="fp8", recipe="block")
    _, opt = _dp_and_optimizer_s(c1_block, P, 2 * P, 0.0, 0.0, 4)
    assert opt == pytest.approx(22 * (P / 8 + 2 * P / 4) / HBM, rel=1e-12)


def test_no_parameters_no_data_parallel_traffic():
    c = ctx(layout=Layout(dp=4, zero_stage=3, micro_batch_size=2))
    exposed, opt = _dp_and_optimizer_s(c, 0.0, 0.0, 0.0, 0.0, 4)
    assert exposed == 0.0 and opt == 0.0


# --------------------------------------------------------------------------- the step


def test_group_step_is_m_times_the_slowest_rank_plus_bubble_pp_dp_and_optimizer():
    """T_step = m (F + B + C)_slowest + bubble((p-1)(F' + B')) + PP + DP + optimizer, F' = F + C/2, B' = B + C/2.

    The slowest rank is chosen on F + B + C: here rank 0 only because of the embedding's exposed communication."""
    lay = Layouts.of([Layout(pp=2, dp=1, micro_batch_size=2)])
    c = Context(DENSE, job(), lay, RATES, A)
    kinds = ["dense", "embed", "head"]
    counts_matrix = np.array([[2.0, 1.0, 0.0], [2.0, 0.0, 1.0]])  # rank 0: embed + 2 layers; rank 1: 2 layers + head
    per_kind = {
        "forward_s": np.array([[1.0], [0.1], [0.5]]),
        "backward_s": np.array([[2.0], [0.2], [1.0]]),
        "weight_grad_s": np.array([[1.0], [0.0], [0.5]]),
        "exposed_comm_s": np.array([[0.2], [2.0], [0.0]]),
        "part:x": np.array([[1.0], [0.0], [2.0]]),
    }
    m = np.array([8])
    total, parts = _group_step(c, counts_matrix, per_kind, parameter_counts(DENSE), kinds, m)
    # Rank 0: F 2.1, B 4.2, C 2.4 (8.7 in all) against rank 1's 7.9; without C rank 1 would be slower.
    fwd, bwd, comm = 2.1, 4.2, 2.4
    f, b = fwd + comm / 2, bwd + comm / 2
    assert parts["pipeline_bubble"] == pytest.approx([1 * (f + b)])
    assert parts["x"] == pytest.approx([8 * 2.0])  # the part summed over the slowest rank's items, m times
    expected = 8 * (fwd + bwd + comm) + (f + b) + parts["pp_comm_exposed"] + parts["dp_comm_exposed"] + parts["optimizer"]
    assert total == pytest.approx(expected, rel=1e-12)
    assert parts["pp_comm_exposed"] == pytest.approx(_pp_exposed_s(c, m), rel=1e-12)
    # DualPipe ranks run half their micro-batches through each of their two stages.
    dual = Context(DENSE, job(), Layouts.of([Layout(pp=2, dp=1, micro_batch_size=2, schedule="dualpipe")]), RATES, A)
    total, parts = _group_step(dual, counts_matrix, per_kind, parameter_counts(DENSE), kinds, m)
    assert parts["x"] == pytest.approx([0.5 * 8 * 2.0])


def test_step_of_a_single_gpu_is_m_items_plus_optimizer():
    """PP 1, DP 1: T = m (embed + 4 layers + head) + 30 B x all parameters / HBM; no bubble, DP or PP terms."""
    counts = parameter_counts(DENSE)
    j = job(sequences=16)
    lay = Layout(micro_batch_size=2)
    res = step(DENSE, j, lay, RATES, counts, A)
    g, a, m_ = _dense_layer_closed_form()
    layer = (g + a + m_) + (2 * g + 2.5 * a + 2 * m_)
    head = 3 * (2 * T * 64 * 1000 / BF16) + 30.0 * T * 1000 / HBM
    embed = 3 * 2 * 2 * T * 64 / HBM
    assert res.micro_batches == 8
    expected = 8 * (embed + 4 * layer + head) + 30 * counts.total / HBM
    assert res.step_time_s == pytest.approx(expected, rel=1e-12)
    assert res.breakdown_s["optimizer"] == pytest.approx(30 * counts.total / HBM, rel=1e-12)
    assert "pipeline_bubble" not in res.breakdown_s and "dp_comm_exposed" not in res.breakdown_s
    assert sum(res.breakdown_s.values()) == pytest.approx(res.step_time_s, rel=1e-12)
    assert res.rank_busy_s == pytest.approx([8 * (embed + 4 * layer + head)], rel=1e-12)


@pytest.mark.parametrize(
    "layout",
    [
        Layout(tp=2, pp=2, dp=2, micro_batch_size=2, zero_stage=1, tp_overlap=True),
        Layout(tp=1, pp=2, dp=4, ep=2, micro_batch_size=1, schedule="dualpipe", zero_stage=3, recompute="selective"),
        Layout(tp=1, pp=4, dp=2, ep=2, micro_batch_size=1, schedule="interleaved", vpp=1, recompute="full"),
    ],
)
def test_the_breakdown_adds_up_to_the_step_time(layout):
    j = job(sequences=16)
    layout = replace(layout, vpp=1)
    res = step(MOE, j, layout, RATES, parameter_counts(MOE), A)
    assert sum(res.breakdown_s.values()) == pytest.approx(res.step_time_s, rel=1e-9)


def test_evaluate_returns_each_layout_in_the_order_given():
    """Layouts grouped by (PP, v, schedule) internally come back in their input order, each as if alone."""
    counts = parameter_counts(DENSE)
    j = job(sequences=16)
    lays = [
        Layout(pp=2, dp=4, micro_batch_size=2),
        Layout(tp=2, pp=1, dp=4, micro_batch_size=1),
        Layout(pp=2, dp=2, tp=2, micro_batch_size=2, schedule="interleaved", vpp=2),
        Layout(pp=1, dp=8, micro_batch_size=2, zero_stage=3),
        Layout(pp=2, dp=4, micro_batch_size=1, recompute="full"),
    ]
    out = evaluate(DENSE, j, Layouts.of(lays), RATES, counts, A)
    alone = [step(DENSE, j, lay, RATES, counts, A) for lay in lays]
    np.testing.assert_allclose(out.step_time_s, [r.step_time_s for r in alone], rtol=1e-12)
    np.testing.assert_allclose(out.memory.total_bytes, [r.memory.total_bytes for r in alone], rtol=1e-12)
    np.testing.assert_array_equal(out.micro_batches, [r.micro_batches for r in alone])
    np.testing.assert_allclose(out.breakdown_s["optimizer"], [r.breakdown_s["optimizer"] for r in alone], rtol=1e-12)
    assert [int(x) for x in out.micro_batches] == [2, 4, 4, 1, 4]  # 16 sequences / (b x d)


# --------------------------------------------------------------------------- busiest-rank memory


def test_memory_of_a_single_gpu_is_18_bytes_per_parameter_plus_layer_activations_and_logits():
    """PP 1, ZeRO-1 over DP 1: 2 + 4 + 12 B per parameter; activations 4 layers x 1680 B x t (1F1B, one in flight);
    logits 6 B x t x V; plus 1 GB reserved."""
    counts = parameter_counts(DENSE)
    mem = step(DENSE, job(), Layout(micro_batch_size=2), RATES, counts, A).memory
    assert mem.weights_bytes == pytest.approx(2 * counts.total)
    assert mem.gradients_bytes == pytest.approx(4 * counts.total)
    assert mem.optimizer_bytes == pytest.approx(12 * counts.total)
    assert mem.activations_bytes == pytest.approx(4 * 1680 * T)
    assert mem.other_bytes == pytest.approx(6.0 * T * 1000 + 1e9)


def test_memory_under_full_recompute_keeps_layer_inputs_plus_one_full_layer():
    mem = step(DENSE, job(), Layout(micro_batch_size=2, recompute="full"), RATES, parameter_counts(DENSE), A).memory
    assert mem.activations_bytes == pytest.approx(4 * 2 * 64 * T + 1680 * T)


def test_memory_of_unfused_attention_adds_the_score_matrices_without_recompute():
    counts = parameter_counts(DENSE)
    mem = step(DENSE, job(kernel="unfused"), Layout(micro_batch_size=2), RATES, counts, A).memory
    assert mem.activations_bytes == pytest.approx(4 * (1680 + 2 * 4 * 128) * T)
    mem = step(DENSE, job(kernel="unfused"), Layout(micro_batch_size=2, recompute="selective"), RATES, counts, A).memory
    assert mem.activations_bytes == pytest.approx(4 * (1680 - 2 * 128) * T)


def test_pipelined_memory_is_the_busiest_rank_with_p_micro_batches_in_flight():
    """PP 2, TP 2, DP 2, 1F1B: rank 0 holds embed + 3 layers with min(p, m) = 2 micro-batches in flight; rank 1
    holds 1 layer + head with 1 in flight and the logits 6 B x t x V / TP. Activations per layer: 1680 B x t / TP
    (SP); states 2 + 4 + 12 / DP B per parameter (ZeRO-1)."""
    counts = parameter_counts(DENSE)
    lay = Layout(tp=2, pp=2, dp=2, micro_batch_size=2)
    res = step(DENSE, job(), lay, RATES, counts, A)
    # Balanced by forward FLOPs: layers 90112 each, head 128000: [embed 3 layers] [layer head].
    assert res.stage_items == [["embed", "dense", "dense", "dense"], ["dense", "head"]]
    rank0_params = (counts.embedding + 3 * counts.dense_per_layer) / 2
    rank1_params = (counts.dense_per_layer + counts.head + counts.final_norm) / 2
    rank0 = (2 + 4 + 12 / 2) * rank0_params + 3 * 1680 * (T / 2) * 2 + 1e9
    rank1 = (2 + 4 + 12 / 2) * rank1_params + 1 * 1680 * (T / 2) * 1 + 6.0 * T * 1000 / 2 + 1e9
    assert rank0 > rank1
    assert res.memory.total_bytes == pytest.approx(rank0, rel=1e-12)
    assert res.memory.activations_bytes == pytest.approx(3 * 1680 * (T / 2) * 2, rel=1e-12)
    assert res.memory.other_bytes == pytest.approx(1e9)  # the head (and its logits) sit on the other rank


def test_dualpipe_memory_holds_both_stages_and_p_plus_1_micro_batches():
    """DeepSeek-V3 Table 2: PP + 1 micro-batches in flight, in units of one of the rank's two stage chunks."""
    counts = parameter_counts(DENSE)
    lay = Layout(pp=2, dp=4, micro_batch_size=2, schedule="dualpipe")
    res = step(DENSE, job(), lay, RATES, counts, A)
    # Each rank holds two stages (both copies): every rank has 4 layers' worth; in flight 3 micro-batches of a chunk.
    assert res.memory.activations_bytes == pytest.approx(4 * 1680 * T / 2 * 3, rel=1e-12)


def test_interleaved_memory_counts_in_flight_micro_batches_of_all_the_ranks_layers():
    """Megatron theoretical_memory_usage: the interleaved factor p (1 + (p-1)/(p v)) multiplies the activations of ALL
    the rank's layers, not of one chunk. 8 layers, PP 2, v 2, m 8: rank 0 holds chunks 0 and 2 (5 layers: the head,
    heavier than a layer, shares the last chunk with fewer layers), 2 (p-1) + (v-1) p + 1 = 5 chunk micro-batches =
    2.5 micro-batches of its 5 layers (the old code divided by v: 1.25)."""
    counts = parameter_counts(EIGHT_LAYERS)
    lay = Layout(pp=2, dp=4, micro_batch_size=2, schedule="interleaved", vpp=2)
    res = step(EIGHT_LAYERS, job(sequences=64), lay, RATES, counts, A)
    assert res.stage_items[0].count("dense") == 5
    assert res.memory.activations_bytes == pytest.approx(5 * 1680 * T * 2.5, rel=1e-12)


def test_an_item_without_work_costs_nothing():
    t = ItemTime()
    assert (t.forward_s, t.backward_s, t.weight_grad_s, t.exposed_comm_s, t.parts) == (0.0, 0.0, 0.0, 0.0, {})


def test_kv_width_of_mla_rounds_down_to_whole_elements():
    """n (d_nope + d_rope + d_v) // 2 = 3 x 19 // 2 = 28."""
    odd = ModelSpec.model_validate(
        {
            **BASE_SPEC,
            "name": "odd-mla",
            "n_heads": 3,
            "n_kv_heads": 3,
            "attention": "mla",
            "mla": {"q_lora_rank": 24, "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 3, "v_head_dim": 8},
        }  # fmt: skip
    )
    assert kv_width(odd) == 28


def test_selective_recompute_of_mla_up_projections_is_tp_sharded():
    """TP 2: q_up [t x 24] . [24 x 48/2] and kv_up [t x 16] . [16 x 64/2]."""
    lay = Layout(tp=2, micro_batch_size=2, recompute="selective")
    base = layer_time(ctx(MLA, replace(lay, recompute="none")), "dense")
    sel = layer_time(ctx(MLA, lay), "dense")
    a = T * 2 * 64 * 4 * (12 + 8) / 2 / ATTN
    ups = 2 * T * (24 * 48 + 16 * 64) / 2 / BF16
    m = base.parts["memory_bound"] / 3
    assert sel.parts["recompute"] == pytest.approx(a + ups + m / 2, rel=1e-12)


def test_tp_overlap_window_under_a_static_partition_is_the_dilated_gemm_time():
    """DualPipe with EP and TP overlap: the TP window is 0.5 x 3 x G x 1.25 (GEMMs on 80% of the SMs)."""
    lay = Layout(tp=2, ep=2, dp=2, pp=2, micro_batch_size=2, schedule="dualpipe", tp_overlap=True)
    g = T * (ATTN_PROJ_FLOPS + FFN_FLOPS) / 2 / BF16
    tp_comm = 10 * _tp_one(2)
    window = 0.5 * 3 * g * 1.25
    assert tp_comm > window
    t = layer_time(ctx(MOE, lay), "dense")
    assert t.parts["tp_comm"] == pytest.approx(tp_comm - window, rel=1e-12)
    assert t.parts["comm_sm_contention"] == 0.0  # the partition is charged in item_time, not as contention


def test_evaluate_reports_progress_once_per_layout():
    seen = []
    lays = [Layout(pp=2, dp=4, micro_batch_size=2), Layout(pp=1, dp=8, micro_batch_size=2), Layout(pp=2, dp=4)]
    evaluate(DENSE, job(), Layouts.of(lays), RATES, parameter_counts(DENSE), A, progress=seen.append)
    assert sum(seen) == 3


def _grid() -> list[Layout]:
    """Valid layouts of the tiny MoE model on 8 GPUs: every field the item times and the rank maps read varies."""
    out = []
    for tp, pp, ep, mbs, rec, sched, overlap in (
        (1, 1, 1, 1, "none", "1f1b", False),
        (2, 1, 1, 2, "selective", "1f1b", True),
        (2, 2, 2, 1, "full", "1f1b", False),
        (1, 2, 2, 2, "none", "dualpipe", False),
        (1, 4, 2, 1, "selective", "zb-h1", False),
        (2, 2, 1, 1, "none", "interleaved", True),
        (1, 2, 4, 1, "full", "interleaved", False),
        (1, 4, 1, 2, "none", "1f1b", False),
        (4, 1, 2, 1, "none", "1f1b", True),
        (1, 1, 8, 1, "selective", "1f1b", False),
        (2, 4, 1, 1, "full", "dualpipe", True),
        (1, 8, 1, 1, "none", "1f1b", False),
        (1, 2, 1, 2, "full", "1f1b", False),
    ):
        dp = 8 // (tp * pp)
        vpp = 2 if sched == "interleaved" else 1
        out.append(Layout(tp=tp, pp=pp, dp=dp, ep=ep, micro_batch_size=mbs, schedule=sched, recompute=rec,
                          vpp=vpp, tp_overlap=overlap, zero_stage=(tp + pp) % 4))  # fmt: skip
    return out


def test_evaluate_of_many_layouts_matches_each_layout_alone():
    """The search evaluates layouts in groups keyed by (PP, v, schedule) and item-time classes keyed by TP, CP, EP,
    micro-batch, recompute, TP overlap and DualPipe; every layout must come out as if evaluated alone."""
    counts = parameter_counts(MOE)
    j = job(sequences=64)
    lays = _grid()
    lays = lays[::2] + lays[1::2]  # groups not contiguous
    out = evaluate(MOE, j, Layouts.of(lays), RATES, counts, A)
    for i, lay in enumerate(lays):
        alone = step(MOE, j, lay, RATES, counts, A)
        assert out.step_time_s[i] == pytest.approx(alone.step_time_s, rel=1e-12), lay
        assert out.memory.total_bytes[i] == pytest.approx(alone.memory.total_bytes, rel=1e-12), lay


def test_data_parallel_traffic_and_optimizer_follow_the_rank_holding_most_parameters():
    """PP 2, DP 4, ZeRO-1 over the MoE model: the optimizer streams 30 B per owned parameter of the rank with the
    most (dense + expert) parameters, dense over DP 4 and experts over DP 4 / EP 2."""
    counts = parameter_counts(MOE)
    lay = Layout(pp=2, dp=4, ep=2, micro_batch_size=2)
    res = step(MOE, job(), lay, RATES, counts, A)
    owned = []
    for items in res.stage_items:
        dense = expert = 0.0
        for item in items:
            if item == "embed":
                dense += counts.embedding
            elif item == "head":
                dense += counts.head + counts.final_norm
            elif item == "dense":
                dense += counts.dense_per_layer
            else:
                dense += counts.moe_nonexpert_per_layer
                expert += counts.expert_per_layer / 2
        owned.append((dense + expert, dense / 4 + expert / 2))
    busiest = max(owned)[1]
    assert res.breakdown_s["optimizer"] == pytest.approx(30 * busiest / HBM, rel=1e-12)


def test_busiest_rank_is_the_one_with_most_dense_plus_expert_parameters():
    """Embedding rank: 64000 dense; MoE-layer rank: 19072 dense + 49152 expert = 68224: the MoE rank is busiest."""
    counts = parameter_counts(MOE)
    assert (counts.embedding, counts.moe_nonexpert_per_layer, counts.expert_per_layer) == (64000, 19072, 49152)
    c = Context(MOE, job(), Layouts.of([Layout(pp=2, dp=4, micro_batch_size=2)]), RATES, A)
    dense, expert = st._busiest_params(c, ["embed", "moe"], np.array([[1.0, 0.0], [0.0, 1.0]]), counts)
    assert (float(dense[0]), float(expert[0])) == (19072.0, 49152.0)


# A model whose dense layer keeps far more activations than its MoE layers (d_ff 1024 against experts of 32).
WIDE_DENSE = ModelSpec.model_validate({**BASE_SPEC, "name": "wide-dense", "d_ff": 1024, "moe": MOE_BLOCK})
WIDE_FULL = 2 * 64 + 2 * 64 + 2 * (64 + 64) + 2 * 64 + 4 * 4 + (2 * 64 + 2 * 64 + 2 * 2 * 1024 + 2 * 1024)  # 7056


def _peak(ranks: list[list[str]], kinds: list[str], counts_matrix, layout: Layout):
    lays = Layouts.of([layout])
    c = Context(WIDE_DENSE, job(), lays, RATES, A)
    return st._peak_memory(
        c,
        ranks,
        np.arange(len(ranks)),
        kinds,
        np.asarray(counts_matrix, dtype=float),
        parameter_counts(WIDE_DENSE),
        np.array([8]),
    )


def test_full_recompute_keeps_the_largest_layer_held_by_the_busiest_rank():
    """Under full recompute a rank holds the layer inputs (2h per token and layer) of its in-flight micro-batches
    plus the full activations of the largest layer *it holds* while that one is recomputed."""
    lay = Layout(pp=2, dp=4, micro_batch_size=2, recompute="full")
    kinds = ["dense", "moe"]
    # Rank 1 holds six MoE layers (the most parameters) and no dense layer: its largest layer is an MoE layer.
    mem = _peak([["dense"], ["moe"] * 6], kinds, [[1, 0], [0, 6]], lay)
    moe_full = activation_full("moe")
    assert moe_full < WIDE_FULL
    assert mem.activations_bytes == pytest.approx(6 * 128 * T * 1 + moe_full * T, rel=1e-12)
    # One dense layer on rank 0, busiest by its activations: its one layer counts.
    mem = _peak([["dense"], ["moe"]], kinds, [[1, 0], [0, 1]], lay)
    assert mem.activations_bytes == pytest.approx(1 * 128 * T * 2 + WIDE_FULL * T, rel=1e-12)


def activation_full(kind: str) -> float:
    from simulator.model.memory import activation_bytes_per_token

    return activation_bytes_per_token(WIDE_DENSE, kind, "none", "bf16")


EIGHT_LAYERS = ModelSpec.model_validate({**BASE_SPEC, "name": "tiny-8", "n_layers": 8})


@pytest.mark.parametrize(
    "lays",
    [
        # Only plain 1F1B: no layout is interleaved, so v_max = 1.
        [Layout(pp=1, dp=8), Layout(pp=2, dp=4), Layout(pp=4, dp=2)],
        # Interleaving with 2 and 3 virtual stages beside ZB-H1, 1F1B and DualPipe.
        [
            Layout(pp=2, dp=4, schedule="zb-h1"),
            Layout(pp=4, dp=2),
            Layout(pp=2, dp=4, schedule="interleaved", vpp=3),
            Layout(pp=2, dp=4, schedule="interleaved", vpp=2),
            Layout(pp=4, dp=2, schedule="dualpipe"),
        ],
    ],
)
def test_evaluate_keeps_every_pipeline_shape_apart(lays):
    """Each (PP, v, schedule) has its own layers-to-ranks map; a batch mixing them must match each alone."""
    counts = parameter_counts(EIGHT_LAYERS)
    j = job(sequences=64)
    out = evaluate(EIGHT_LAYERS, j, Layouts.of(lays), RATES, counts, A)
    for i, lay in enumerate(lays):
        assert out.step_time_s[i] == pytest.approx(step(EIGHT_LAYERS, j, lay, RATES, counts, A).step_time_s, rel=1e-12), lay


def test_a_rank_without_layers_keeps_no_recompute_buffer():
    """Full recompute: a rank holding only the head (or the embedding) has no layer to recompute."""
    lay = Layout(pp=2, dp=4, micro_batch_size=2, recompute="full")
    mem = _peak([["head"], ["embed"]], ["embed", "head"], [[0, 1], [1, 0]], lay)
    assert mem.activations_bytes == 0.0
    assert mem.other_bytes == pytest.approx(6.0 * T * 1000 + 1e9)  # the head rank: logits and the reserve


def test_evaluate_keeps_item_time_classes_apart():
    """Item times are shared by layouts with equal (TP, CP, EP, micro-batch, recompute, TP overlap, DualPipe);
    EP 4 with micro-batches of 1 and EP 1 with micro-batches of 2 are different classes."""
    counts = parameter_counts(MOE)
    j = job(sequences=64)
    lays = [
        Layout(pp=2, dp=4, ep=4, micro_batch_size=1, recompute="full"),
        Layout(pp=2, dp=4, ep=1, micro_batch_size=2, recompute="full"),
    ]
    out = evaluate(MOE, j, Layouts.of(lays), RATES, counts, A)
    for i, lay in enumerate(lays):
        assert out.step_time_s[i] == pytest.approx(step(MOE, j, lay, RATES, counts, A).step_time_s, rel=1e-12), lay
