"""FLOPs and parameter counts (simulator/model/flops.py) of tiny synthetic models, counted by hand: 2·K·N FLOPs per
token per weight GEMM (Kaplan 2020 §2.1; Narayanan 2021 Eq. 3), the causal attention core 2·s_eff·n·(d_qk + d_v)
with s_eff = s/2, training = 3 x forward (tests/test_flops_torch.py cross-checks real modules with torch)."""

from __future__ import annotations

import pytest

from simulator.inputs.specs import ModelSpec
from simulator.model.flops import (
    Gemm,
    attention_core_dims,
    attention_core_forward_flops_per_token,
    attention_gemms,
    effective_keys,
    ffn_gemms,
    ffn_kind,
    flop_utilization,
    head_gemm,
    layer_gemms,
    layer_kinds,
    parameter_counts,
)
from simulator.model.layer_work import TokenFlops, token_flops

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
# h = 64, h_q = 4 x 16 = 64, h_kv = 2 x 16 = 32, SwiGLU of width 128, vocabulary 1000, 4 layers.
DENSE = ModelSpec.model_validate({**BASE, "name": "tiny-dense"})
MOE_BLOCK = {"n_routed_experts": 8, "top_k": 2, "d_ff_expert": 32, "n_shared_experts": 1, "first_dense_layers": 1}
MOE = ModelSpec.model_validate({**BASE, "name": "tiny-moe", "moe": MOE_BLOCK})
MLA_BLOCK = {"q_lora_rank": 24, "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8}
MLA = ModelSpec.model_validate({**BASE, "name": "tiny-mla", "n_kv_heads": 4, "attention": "mla", "mla": MLA_BLOCK})


def _shapes(gemms: list[Gemm]) -> list[tuple]:
    return [(g.name, g.k, g.n, g.sharding, g.multiplicity, g.routed, g.fp8_eligible, g.recomputed_in_selective) for g in gemms]


# --------------------------------------------------------------------------- GEMMs


def test_gemm_forward_flops_per_token_are_2kn_times_multiplicity():
    assert Gemm("x", "c", 64, 256, "column").forward_flops_per_token == 2 * 64 * 256
    assert Gemm("x", "c", 64, 256, "column", multiplicity=3).forward_flops_per_token == 2 * 64 * 256 * 3


def test_gqa_attention_projections_are_qkv_h_by_hq_plus_2hkv_and_out_hq_by_h():
    assert _shapes(attention_gemms(DENSE)) == [
        ("qkv_proj", 64, 64 + 2 * 32, "column", 1, False, True, False),
        ("out_proj", 64, 64, "row", 1, False, True, False),
    ]


def test_mla_projections_follow_the_latent_ranks():
    """DeepSeek-V2 §2.1: q 64 -> 24 -> 4 x (8 + 4); kv 64 -> 16 + 4, 16 -> 4 x (8 + 8); out 4 x 8 -> 64."""
    assert _shapes(attention_gemms(MLA)) == [
        ("q_down", 64, 24, "replicated", 1, False, True, False),
        ("q_up", 24, 48, "column", 1, False, True, True),
        ("kv_down", 64, 20, "replicated", 1, False, True, False),
        ("kv_up", 16, 64, "column", 1, False, True, True),
        ("out_proj", 32, 64, "row", 1, False, True, False),
    ]
    no_q = ModelSpec.model_validate(
        {**BASE, "name": "tiny-mla-noq", "n_kv_heads": 4, "attention": "mla", "mla": {**MLA_BLOCK, "q_lora_rank": None}}
    )
    assert _shapes(attention_gemms(no_q))[0] == ("q_proj", 64, 48, "column", 1, False, True, False)


def test_gated_ffn_up_projection_is_twice_the_width():
    assert _shapes(ffn_gemms(DENSE, 128, "ffn")) == [
        ("ffn_up", 64, 256, "column", 1, False, True, False),
        ("ffn_down", 128, 64, "row", 1, False, True, False),
    ]
    gelu = ModelSpec.model_validate({**BASE, "name": "tiny-gelu", "ffn": "gelu"})
    assert [(g.k, g.n) for g in ffn_gemms(gelu, 128, "ffn")] == [(64, 128), (128, 64)]


def test_moe_layer_has_router_shared_gate_and_top_k_routed_experts():
    gated = ModelSpec.model_validate({**BASE, "name": "tiny-qwen-moe", "moe": {**MOE_BLOCK, "shared_expert_gate": True}})
    assert _shapes(layer_gemms(gated, "moe"))[2:] == [
        ("router", 64, 8, "replicated", 1, False, False, False),
        ("shared_experts_up", 64, 64, "column", 1, False, True, False),
        ("shared_experts_down", 32, 64, "row", 1, False, True, False),
        ("shared_gate", 64, 1, "replicated", 1, False, False, False),
        ("routed_experts_up", 64, 64, "column", 2, True, True, False),
        ("routed_experts_down", 32, 64, "row", 2, True, True, False),
    ]
    no_shared = ModelSpec.model_validate({**BASE, "name": "m", "moe": {**MOE_BLOCK, "n_shared_experts": 0}})
    assert [g.name for g in layer_gemms(no_shared, "moe")][2:] == ["router", "routed_experts_up", "routed_experts_down"]


def test_mtp_module_prepends_its_2h_to_h_projection():
    """DeepSeek-V3 Eq. 21: M_k in R^{d x 2d}; the block is the MoE block (dense without MoE)."""
    gemms = layer_gemms(MOE, "mtp")
    assert _shapes(gemms)[0] == ("mtp_proj", 128, 64, "replicated", 1, False, True, False)
    assert [g.name for g in gemms[1:]] == [g.name for g in layer_gemms(MOE, "moe")]
    assert [g.name for g in layer_gemms(DENSE, "mtp")[1:]] == [g.name for g in layer_gemms(DENSE, "dense")]
    assert ffn_kind(MOE, "mtp") == "moe" and ffn_kind(DENSE, "mtp") == "dense" and ffn_kind(MOE, "dense") == "dense"


def test_lm_head_is_vocab_parallel_h_by_v_in_bf16():
    assert _shapes([head_gemm(DENSE)]) == [("lm_head", 64, 1000, "vocab", 1, False, False, False)]


# --------------------------------------------------------------------------- attention core


def test_effective_keys_causal_is_s_over_2_and_full_is_s():
    assert effective_keys(100) == 50.0
    assert effective_keys(100, causal=False) == 100.0


def test_effective_keys_with_a_sliding_window():
    """Causal window w = 40 over s = 100: (w²/2 + (s - w) w) / s = (800 + 2400) / 100 = 32; non-causal: w."""
    assert effective_keys(100, True, 40) == pytest.approx(32.0)
    assert effective_keys(100, False, 40) == 40.0
    assert effective_keys(100, True, 100) == 50.0  # a window as long as the sequence changes nothing
    assert effective_keys(100, True, 200) == 50.0


def test_attention_core_is_2_s_eff_heads_dqk_plus_dv():
    """GQA: 2 x 64 x 4 x (16 + 16) = 16384 per token at s = 128 (causal); MLA: 2 x 64 x 4 x (12 + 8)."""
    assert attention_core_forward_flops_per_token(DENSE, 128) == 2 * 64 * 4 * 32
    assert attention_core_forward_flops_per_token(DENSE, 128, causal=False) == 2 * 128 * 4 * 32
    assert attention_core_dims(MLA) == (12, 8)
    assert attention_core_forward_flops_per_token(MLA, 128) == 2 * 64 * 4 * 20


# --------------------------------------------------------------------------- whole model

# Per dense layer: qkv 64 x 128, out 64 x 64, up 64 x 256, down 128 x 64.
ATTN_PROJ = 2 * (64 * 128 + 64 * 64)  # 24576
DENSE_FFN = 2 * (64 * 256 + 128 * 64)  # 49152
CORE_128 = 2 * 64 * 4 * 32  # 16384
HEAD = 2 * 64 * 1000  # 128000


def test_token_flops_sum_components_over_layers():
    tf = token_flops(DENSE, 128)
    assert tf.forward_by_component == {
        "attention_proj": 4 * ATTN_PROJ, "dense_ffn": 4 * DENSE_FFN, "attention_core": 4 * CORE_128, "lm_head": HEAD,
    }  # fmt: skip
    assert tf.forward_flops == 4 * (ATTN_PROJ + DENSE_FFN + CORE_128) + HEAD  # 488448
    assert tf.training_flops == 3 * 488448
    assert tf.training_by_component()["lm_head"] == 3 * HEAD
    assert tf.attention_convention == "causal"
    assert token_flops(DENSE, 128, causal=False).attention_convention == "full"


def test_recompute_adds_the_core_selective_or_every_layer_forward_full():
    """Korthikanti §5: selective redoes the attention core; full redoes each layer's forward (not the head)."""
    tf = token_flops(DENSE, 128)
    assert tf.recompute_by_mode == {"none": 0.0, "selective": 4 * CORE_128, "full": 4 * (ATTN_PROJ + DENSE_FFN + CORE_128)}
    assert tf.hardware_flops("none") == tf.training_flops
    assert tf.hardware_flops("full") == 3 * 488448 + 4 * (ATTN_PROJ + DENSE_FFN + CORE_128)
    assert TokenFlops({"x": 1.0}).hardware_flops("selective") == 3.0  # no recompute table: nothing added


def test_mla_selective_recompute_also_redoes_the_up_projections():
    """DeepSeek-V3 §3.2.3: per layer core 2 x 64 x 4 x 20 plus q_up 2 x 24 x 48 and kv_up 2 x 16 x 64."""
    tf = token_flops(MLA, 128)
    assert tf.recompute_by_mode["selective"] == 4 * (2 * 64 * 4 * 20 + 2 * 24 * 48 + 2 * 16 * 64)


def test_mtp_modules_add_a_layer_its_projection_and_a_head_per_depth():
    mtp2 = ModelSpec.model_validate({**BASE, "name": "tiny-mtp", "mtp_depth": 2})
    per_depth = 2 * 128 * 64 + ATTN_PROJ + DENSE_FFN + CORE_128 + HEAD
    assert token_flops(mtp2, 128).forward_by_component["mtp"] == 2 * per_depth
    assert "mtp" not in token_flops(mtp2, 128, include_mtp=False).forward_by_component


def test_layer_kinds_follow_first_dense_layers_and_frequency():
    assert layer_kinds(MOE) == ["dense", "moe", "moe", "moe"]
    every_other = ModelSpec.model_validate({**BASE, "name": "m", "moe": {**MOE_BLOCK, "layer_freq": 2}})
    assert layer_kinds(every_other) == ["dense", "moe", "dense", "moe"]


# --------------------------------------------------------------------------- parameters

# RMSNorm: h per norm, two per layer. Dense layer: 64 x 128 + 64 x 64 + 64 x 256 + 128 x 64 + 2 x 64 = 36992.
DENSE_LAYER = 64 * 128 + 64 * 64 + 64 * 256 + 128 * 64 + 2 * 64


def test_dense_parameter_count_is_embedding_head_norm_and_layers():
    c = parameter_counts(DENSE)
    assert (c.embedding, c.head, c.final_norm, c.dense_per_layer) == (64000, 64000, 64, DENSE_LAYER)
    assert c.total == 64000 + 64000 + 64 + 4 * DENSE_LAYER
    assert c.activated == c.total
    assert c.activated_without_input_embedding == c.total - 64000
    assert c.mtp == 0 and c.total_with_mtp == c.total
    assert (c.mtp_depth, c.mtp_per_depth, c.mtp_expert_per_depth) == (0, 0.0, 0.0)


def test_tied_embeddings_have_no_separate_head():
    tied = ModelSpec.model_validate({**BASE, "name": "t", "tied_embeddings": True})
    assert parameter_counts(tied).head == 0
    assert parameter_counts(tied).total == 64000 + 64 + 4 * DENSE_LAYER


def test_biases_layernorm_qk_norm_and_learned_positions_are_counted():
    """LayerNorm: weight and bias (2h per norm); q/k/v bias h_q + 2 h_kv = 128; output bias h = 64; qk-norm 2 x 16;
    gated FFN bias 2 x 128 + 64; learned positions 256 x 64; embedding LayerNorm 2 x 64."""
    spec = ModelSpec.model_validate(
        {
            **BASE,
            "name": "gpt",
            "norm": "layernorm",
            "attention_bias": True,
            "output_bias": True,
            "qk_norm": True,
            "ffn_bias": True,
            "position_embedding": "learned",
            "max_position_embeddings": 256,
            "embedding_norm": True,
        }  # fmt: skip
    )
    c = parameter_counts(spec)
    assert c.dense_per_layer == DENSE_LAYER - 2 * 64 + 2 * 2 * 64 + 128 + 64 + 32 + (2 * 128 + 64)
    assert c.embedding == 64000 + 256 * 64 + 2 * 64
    assert c.final_norm == 2 * 64
    gelu_bias = ModelSpec.model_validate({**BASE, "name": "g", "ffn": "gelu", "ffn_bias": True})
    assert parameter_counts(gelu_bias).dense_per_layer == (64 * 128 + 64 * 64) + (64 * 128 + 128 * 64 + 128 + 64) + 128


def test_moe_parameters_split_into_nonexpert_and_expert():
    """Non-expert: attention 12288 + norms 128 + router 64 x 8 + shared expert 64 x 64 + 32 x 64;
    one routed expert 64 x 64 + 32 x 64 = 6144; 8 experts; top-2 activated."""
    c = parameter_counts(MOE)
    expert = 64 * 64 + 32 * 64
    assert c.moe_nonexpert_per_layer == 12288 + 128 + 512 + expert
    assert c.expert_per_layer == 8 * expert
    assert c.activated_expert_per_layer == 2 * expert
    assert (c.n_dense_layers, c.n_moe_layers) == (1, 3)
    assert c.total == 64000 + 64000 + 64 + DENSE_LAYER + 3 * (12288 + 128 + 512 + expert + 8 * expert)
    assert c.activated == c.total - 3 * 6 * expert
    gated = ModelSpec.model_validate({**BASE, "name": "q", "moe": {**MOE_BLOCK, "shared_expert_gate": True}})
    assert parameter_counts(gated).moe_nonexpert_per_layer == c.moe_nonexpert_per_layer + 64


def test_mtp_module_parameters_are_three_norms_projection_and_block():
    """V3: two RMSNorms on the inputs and a final one (3h), the 2h -> h projection (2h²) and one block."""
    spec = ModelSpec.model_validate({**BASE, "name": "mtp", "moe": MOE_BLOCK, "mtp_depth": 1})
    c = parameter_counts(spec)
    assert c.mtp_per_depth == 3 * 64 + 2 * 64 * 64 + c.moe_nonexpert_per_layer + c.expert_per_layer
    assert c.mtp_expert_per_depth == c.expert_per_layer
    assert c.total_with_mtp == c.total + c.mtp_per_depth
    dense_mtp = parameter_counts(ModelSpec.model_validate({**BASE, "name": "d", "mtp_depth": 2}))
    assert dense_mtp.mtp == 2 * (3 * 64 + 2 * 64 * 64 + DENSE_LAYER)
    assert dense_mtp.mtp_expert_per_depth == 0


def test_mla_parameters_add_the_latent_norms():
    """Projections 64 x 24 + 24 x 48 + 64 x 20 + 16 x 64 + 32 x 64, plus RMSNorms on the latents 24 + 16."""
    attention = 64 * 24 + 24 * 48 + 64 * 20 + 16 * 64 + 32 * 64 + 24 + 16
    assert parameter_counts(MLA).dense_per_layer == attention + 64 * 256 + 128 * 64 + 2 * 64


def test_mla_without_a_q_latent_has_no_q_latent_norm():
    """DeepSeek-V2-Lite style: q projected directly (64 x 48), only the kv latent (16) is normalised."""
    no_q = ModelSpec.model_validate(
        {**BASE, "name": "tiny-mla-noq", "n_kv_heads": 4, "attention": "mla", "mla": {**MLA_BLOCK, "q_lora_rank": None}}
    )
    attention = 64 * 48 + 64 * 20 + 16 * 64 + 32 * 64 + 16
    assert parameter_counts(no_q).dense_per_layer == attention + 64 * 256 + 128 * 64 + 2 * 64


def test_flop_utilization_is_flops_per_token_times_tokens_per_second_over_peak():
    """PaLM App. B: MFU = 6N-style FLOPs per token x tokens/s per GPU / peak = 1e9 x 4e5 / 1e15 = 0.4."""
    assert flop_utilization(1e9, 4e5, 1e15) == pytest.approx(0.4, rel=1e-12)
