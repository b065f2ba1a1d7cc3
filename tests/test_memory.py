"""Memory per GPU (simulator/model/memory.py): model states with ZeRO sharding and activations per token,
each against a hand count on tiny synthetic models (Korthikanti et al. 2022 Table 2 as generalised in
docs/model.md §3.3; Megatron-LM theoretical_memory_usage.py for the 18 B/parameter states)."""

from __future__ import annotations

import pytest

from simulator.errors import InfeasibleError
from simulator.inputs.specs import ModelSpec
from simulator.model.flops import ParamCounts
from simulator.model.layout import Layout
from simulator.model.memory import (
    MemoryBreakdown,
    activation_bytes_per_token,
    check_fits,
    layer_params_on_rank,
    model_state_bytes,
    optimizer_step_bytes_per_param,
    state_bytes_per_param,
    unfused_attention_bytes_per_token,
)

BASE = dict(
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
# h = 64, 4 query heads and 2 KV heads of 16: h_q = 64, h_kv = 32; SwiGLU FFN of width 128.
DENSE = ModelSpec.model_validate({**BASE, "name": "tiny-dense"})
GELU = ModelSpec.model_validate({**BASE, "name": "tiny-gelu", "ffn": "gelu"})
# 8 routed experts of width 32, top-2, one shared expert of width 32.
MOE = ModelSpec.model_validate(
    {**BASE, "name": "tiny-moe", "moe": {"n_routed_experts": 8, "top_k": 2, "d_ff_expert": 32, "n_shared_experts": 1}}
)
MOE_NO_SHARED = ModelSpec.model_validate(
    {**BASE, "name": "tiny-moe-ns", "moe": {"n_routed_experts": 8, "top_k": 2, "d_ff_expert": 32}}
)
# MLA: q latent 24, kv latent 16, nope 8 + rope 4 = d_qk 12, v 8.
MLA_BLOCK = {"q_lora_rank": 24, "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8}
MLA = ModelSpec.model_validate({**BASE, "name": "tiny-mla", "n_kv_heads": 4, "attention": "mla", "mla": MLA_BLOCK})
MLA_NO_Q_LORA = ModelSpec.model_validate(
    {**BASE, "name": "tiny-mla-noq", "n_kv_heads": 4, "attention": "mla", "mla": {**MLA_BLOCK, "q_lora_rank": None}}
)
FP8_BLOCK_BYTES = 1 + 4 / 128  # an FP8 element with its share of a 1x128 fp32 scale


# --------------------------------------------------------------------------- model states


def test_mixed_precision_adam_keeps_2_4_12_bytes_per_parameter():
    """Megatron theoretical_memory_usage: BF16 weight 2 B, fp32 gradient 4 B, master + 2 moments 12 B = 18 B."""
    assert state_bytes_per_param("bf16") == (2.0, 4.0, 12.0)
    assert state_bytes_per_param("fp8", "tensor") == (2.0, 4.0, 12.0)  # per-tensor FP8 keeps fp32 states
    assert state_bytes_per_param("fp8", None) == (2.0, 4.0, 12.0)


def test_deepseek_v3_block_fp8_keeps_bf16_moments_2_4_8_bytes():
    """DeepSeek-V3 §3.3.3: fp32 master (4 B) + BF16 moments (2 x 2 B) = 8 B of optimizer state."""
    assert state_bytes_per_param("fp8", "block") == (2.0, 4.0, 8.0)
    assert state_bytes_per_param("bf16", "block") == (2.0, 4.0, 12.0)  # the recipe only matters under FP8


def test_adamw_step_traffic_is_2_optimizer_plus_gradient_plus_weight():
    """docs/model.md §7.6: read + write the optimizer states (2 x 12), read the gradient (4), write the weight (2) = 30 B;
    with BF16 moments 2 x 8 + 4 + 2 = 22 B."""
    assert optimizer_step_bytes_per_param("bf16") == 30.0
    assert optimizer_step_bytes_per_param("fp8", "block") == 22.0


# dense 1000 and expert 800 parameters on one GPU; DP 4 x CP 2 = 8 dense replicas, 8 / EP 2 = 4 expert replicas.
SHARDING = Layout(dp=4, cp=2, ep=2)


def test_zero0_replicates_every_state():
    w, g, o = model_state_bytes(1000.0, 800.0, Layout(dp=4, cp=2, ep=2, zero_stage=0), "bf16")
    assert (w, g, o) == (2 * 1800.0, 4 * 1800.0, 12 * 1800.0)


def test_zero1_shards_optimizer_over_dp_cp_for_dense_and_dp_cp_over_ep_for_experts():
    """ZeRO §5 stage 1: optimizer 12 x (1000/8 + 800/4) = 12 x 325 = 3900 B; weights and gradients whole."""
    w, g, o = model_state_bytes(1000.0, 800.0, Layout(dp=4, cp=2, ep=2, zero_stage=1), "bf16")
    assert (w, g, o) == (3600.0, 7200.0, 3900.0)


def test_zero2_also_shards_gradients():
    w, g, o = model_state_bytes(1000.0, 800.0, Layout(dp=4, cp=2, ep=2, zero_stage=2), "bf16")
    assert (w, g, o) == (3600.0, 4 * 325.0, 3900.0)


def test_zero3_also_shards_weights():
    w, g, o = model_state_bytes(1000.0, 800.0, Layout(dp=4, cp=2, ep=2, zero_stage=3), "fp8", "block")
    assert (w, g, o) == (2 * 325.0, 4 * 325.0, 8 * 325.0)


COUNTS = ParamCounts(
    embedding=8000.0,
    head=16000.0,
    dense_per_layer=4000.0,
    moe_nonexpert_per_layer=3000.0,
    expert_per_layer=64000.0,
    n_dense_layers=1,
    n_moe_layers=3,
    final_norm=64.0,
    mtp_depth=1,
    mtp_per_depth=70000.0,
    mtp_expert_per_depth=64000.0,
    activated_expert_per_layer=16000.0,
)


def test_layer_params_on_rank_divide_dense_by_tp():
    lay = Layout(tp=4)
    assert layer_params_on_rank(COUNTS, "embed", lay) == (2000.0, 0.0)
    assert layer_params_on_rank(COUNTS, "head", lay) == ((16000.0 + 64.0) / 4, 0.0)  # head and final norm
    assert layer_params_on_rank(COUNTS, "dense", lay) == (1000.0, 0.0)


def test_routed_experts_are_sharded_by_tp_without_ep_and_by_ep_with_it():
    d, e = layer_params_on_rank(COUNTS, "moe", Layout(tp=4))
    assert (d, e) == (750.0, 16000.0)  # experts TP-sharded: 64000 / 4
    d, e = layer_params_on_rank(COUNTS, "moe", Layout(tp=4, ep=8, dp=8))
    assert (d, e) == (750.0, 8000.0)  # EP 8 owns 1/8 of the experts; no expert TP
    assert layer_params_on_rank(COUNTS, "moe", Layout(tp=4, ep=2, dp=2)) == (750.0, 32000.0)  # EP 2, not TP 4


def test_mtp_module_splits_into_dense_and_expert_parameters():
    """(70000 - 64000) / TP 2 dense; 64000 / EP 4 expert."""
    assert layer_params_on_rank(COUNTS, "mtp", Layout(tp=2, ep=4, dp=4)) == (3000.0, 16000.0)
    assert layer_params_on_rank(COUNTS, "mtp", Layout(tp=2)) == (3000.0, 32000.0)


def test_unknown_item_is_refused():
    with pytest.raises(ValueError):
        layer_params_on_rank(COUNTS, "router", Layout())


# --------------------------------------------------------------------------- activations


def test_unfused_attention_keeps_5_bytes_per_score_with_dropout_and_2_without():
    """Korthikanti Table 2, 5 a s^2 b per layer: per token 5 x heads x s = 5 x 4 x 128; without dropout only the
    BF16 softmax output: 2 x 4 x 128."""
    assert unfused_attention_bytes_per_token(DENSE, 128, 0.1) == 5 * 4 * 128
    assert unfused_attention_bytes_per_token(DENSE, 128, 0.0) == 2 * 4 * 128


def test_embedding_and_head_keep_no_layer_activations():
    for item in ("embed", "head"):
        assert activation_bytes_per_token(DENSE, item, "none", "bf16") == 0.0


def test_full_recompute_keeps_only_the_layer_input_2h():
    """Korthikanti Table 2: 2sbh per layer, 2 h per token = 128 B."""
    assert activation_bytes_per_token(DENSE, "dense", "full", "bf16") == 2 * 64
    assert activation_bytes_per_token(MOE, "moe", "full", "fp8") == 2 * 64


# Standard attention, BF16 (docs/model.md §3.3): norm input 2h + projection input 2h + q, k, v 2(h_q + 2 h_kv)
# + out-projection input 2 h_q + fp32 log-sum-exp 4 n = 128 + 128 + 256 + 128 + 16 = 656.
ATTENTION_BF16 = 2 * 64 + 2 * 64 + 2 * (64 + 2 * 32) + 2 * 64 + 4 * 4
# SwiGLU FFN, BF16: norm input 2h + up input 2h + gate and up pre-activations 2 x 2 x 128 + down input 2 x 128 = 1024.
SWIGLU_BF16 = 2 * 64 + 2 * 64 + 2 * 2 * 128 + 2 * 128


def test_dense_layer_without_recompute_is_attention_plus_gated_ffn():
    assert ATTENTION_BF16 == 656 and SWIGLU_BF16 == 1024
    assert activation_bytes_per_token(DENSE, "dense", "none", "bf16") == ATTENTION_BF16 + SWIGLU_BF16


def test_selective_recompute_drops_the_activation_function_output():
    """Selective recompute redoes the activation function: the down-projection input (2 x 128 B) goes."""
    expected = ATTENTION_BF16 + SWIGLU_BF16 - 2 * 128
    assert activation_bytes_per_token(DENSE, "dense", "selective", "bf16") == expected


def test_fp8_caches_gemm_inputs_at_1_03125_bytes():
    """DeepSeek-V3 §3.3.3: GEMM inputs cached in FP8 with 1x128 scales. Attention: 128 + 66 + 256 + 66 + 16;
    FFN: 128 + 66 + 512 + 132."""
    g = FP8_BLOCK_BYTES
    attention = 2 * 64 + g * 64 + 2 * (64 + 64) + g * 64 + 4 * 4
    ffn = 2 * 64 + g * 64 + 2 * 2 * 128 + g * 128
    assert activation_bytes_per_token(DENSE, "dense", "none", "fp8") == pytest.approx(attention + ffn, rel=1e-12)
    assert attention + ffn == pytest.approx(1370.0)


def test_plain_gelu_ffn_keeps_one_pre_activation():
    """Two-matrix FFN: pre-activation 2 x 128 instead of 2 x 2 x 128."""
    ffn = 2 * 64 + 2 * 64 + 2 * 128 + 2 * 128
    assert activation_bytes_per_token(GELU, "dense", "none", "bf16") == ATTENTION_BF16 + ffn


def test_moe_layer_keeps_router_input_routed_copies_and_shared_expert():
    """docs/model.md §3.3 MoE row: 2h + k (g h + inner(d_e)) + (g h + inner(d_shared)), inner = pre 2 x 2 d + out 2 d.
    2 x 64 + 2 x (128 + 192) + (128 + 192) = 1088."""
    inner = 2 * 2 * 32 + 2 * 32
    ffn = 2 * 64 + 2 * (2 * 64 + inner) + (2 * 64 + inner)
    assert ffn == 1088
    assert activation_bytes_per_token(MOE, "moe", "none", "bf16") == ATTENTION_BF16 + ffn
    # Without a shared expert the last term goes.
    assert activation_bytes_per_token(MOE_NO_SHARED, "moe", "none", "bf16") == ATTENTION_BF16 + 2 * 64 + 2 * (128 + inner)


def test_moe_layer_under_selective_recompute_drops_each_activation_output():
    inner = 2 * 2 * 32
    ffn = 2 * 64 + 2 * (2 * 64 + inner) + (2 * 64 + inner)
    assert activation_bytes_per_token(MOE, "moe", "selective", "bf16") == ATTENTION_BF16 + ffn


def test_dense_layer_of_an_moe_model_has_a_dense_ffn():
    assert activation_bytes_per_token(MOE, "dense", "none", "bf16") == ATTENTION_BF16 + SWIGLU_BF16


def test_mtp_module_adds_its_two_inputs():
    """An MTP module (V3 Eq. 21) also keeps the two normalised inputs of its projection: 2 x 2h = 256 B."""
    moe_layer = activation_bytes_per_token(MOE, "moe", "none", "bf16")
    assert activation_bytes_per_token(MOE, "mtp", "none", "bf16") == moe_layer + 2 * 2 * 64


def test_mla_attention_keeps_latents_and_rebuilds_qkv_under_selective_recompute():
    """MLA (V3 §3.2.3): norm + projection input 2h + 2h, latents 2(q_lora + kv_lora + rope) = 2 x 44, the
    up-projected q, k, v 2 n (2 d_qk + d_v) = 2 x 4 x 32 unless selective recompute rebuilds them,
    out-projection input 2 n d_v = 64, log-sum-exp 4 n = 16."""
    stored = 2 * 64 + 2 * 64 + 2 * (24 + 16 + 4)
    none = stored + 2 * 4 * (2 * 12 + 8) + 2 * 4 * 8 + 4 * 4
    selective = stored + 2 * 4 * 8 + 4 * 4
    assert activation_bytes_per_token(MLA, "dense", "none", "bf16") == none + SWIGLU_BF16
    assert activation_bytes_per_token(MLA, "dense", "selective", "bf16") == selective + SWIGLU_BF16 - 2 * 128
    # Without a q latent (DeepSeek-V2-Lite) only the kv latent and the rope key are stored.
    no_q = 2 * 64 + 2 * 64 + 2 * (16 + 4) + 2 * 4 * (2 * 12 + 8) + 2 * 4 * 8 + 4 * 4
    assert activation_bytes_per_token(MLA_NO_Q_LORA, "dense", "none", "bf16") == no_q + SWIGLU_BF16


# --------------------------------------------------------------------------- totals and fitting


def test_memory_breakdown_total_is_the_sum_of_its_parts():
    mem = MemoryBreakdown(1.0 * 2**30, 2.0 * 2**30, 3.0 * 2**30, 4.0 * 2**30, 5.0 * 2**30)
    assert mem.total_bytes == 15.0 * 2**30
    assert {k: v / 2**30 for k, v in mem.by_component_bytes().items()} == {
        "weights": 1.0, "gradients": 2.0, "optimizer": 3.0, "activations": 4.0, "other": 5.0, "total": 15.0,
    }  # fmt: skip


MEM = MemoryBreakdown(10.0, 20.0, 30.0, 40.0, 50.0)  # 150 B


def test_a_breakdown_fits_up_to_and_including_the_capacity():
    check_fits(MEM, 150.0, "GPU", Layout())  # does not raise
    with pytest.raises(InfeasibleError, match="needs 150 B per GPU.*has 149 B, 1 B short"):
        check_fits(MEM, 149.0, "GPU", Layout())


def _remedies(layout: Layout, searched: bool = False) -> str:
    with pytest.raises(InfeasibleError) as err:
        check_fits(MEM, 100.0, "GPU", layout, searched)
    return str(err.value).split(" short. Try ", 1)[1]


def test_not_fitting_names_every_remedy_that_applies():
    lay = Layout(dp=4, ep=2, zero_stage=1, micro_batch_size=2, recompute="none")
    assert _remedies(lay) == (
        "a higher --zero-stage, larger --tp/--pp/--ep, --recompute selective or full, a smaller --micro-batch-size "
        "or more GPUs; or leave the layout flags out and let costsim search."
    )


def test_not_fitting_names_only_the_remedies_left():
    """No data parallelism, full recompute, micro-batch 1: only model parallelism or more GPUs help."""
    assert _remedies(Layout(recompute="full"), searched=True) == "larger --tp/--pp or more GPUs."
    assert _remedies(Layout(dp=4, zero_stage=3, recompute="selective")).startswith("larger --tp/--pp, --recompute full or")
    assert _remedies(Layout(cp=2, zero_stage=2, recompute="full")).startswith("a higher --zero-stage, larger --tp/--pp or")
