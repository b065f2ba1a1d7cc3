"""Parameter counts and FLOPs per token, by component.

Convention (docs/model.md §2.1: Kaplan 2020 §2.1, Narayanan 2021 Eq. 3, Megatron-LM
`num_floating_point_operations`): a GEMM [M x K] . [K x N] costs 2·M·K·N FLOPs; training runs
every GEMM three times (forward, input gradient, weight gradient), so training model FLOPs are
3 x forward FLOPs. The attention core (QK^T and A·V) is counted *causal*: each query attends
to s/2 keys on average (s_eff = s/2, the Megatron-LM and FlashAttention convention); the
non-causal (PaLM) count is available with `causal=False`. Norms, softmax, activation functions
and the input embedding lookup are not counted as FLOPs (they are memory-bound, modelled as
bytes). The router GEMM is counted (Megatron omits it; 0.25% for DeepSeek-V3).

Model FLOPs (the MFU basis) exclude recomputation; hardware FLOPs add the forward FLOPs of what
is recomputed (Korthikanti et al. 2022 §6, PaLM App. B).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.inputs.specs import ModelSpec

Sharding = Literal["column", "row", "replicated", "vocab"]
LayerKind = Literal["dense", "moe", "mtp"]


@dataclass(frozen=True)
class Gemm:
    """One weight GEMM of a layer, seen from one token.

    `multiplicity` is how many times a token passes through it (top_k for a routed expert).
    `sharding` says how tensor parallelism splits it: column (N / tp), row (K / tp),
    vocab (N / tp, vocabulary-parallel head) or replicated (router).
    """

    name: str
    component: str
    k: int
    n: int
    sharding: Sharding
    multiplicity: int = 1
    routed: bool = False
    fp8_eligible: bool = True
    recomputed_in_selective: bool = False

    @property
    def forward_flops_per_token(self) -> float:
        return 2.0 * self.k * self.n * self.multiplicity


# ------------------------------------------------------------------ GEMMs per layer


def attention_gemms(model: ModelSpec) -> list[Gemm]:
    """Projections of one attention block (docs/model.md §2.2, GQA/MHA and MLA rows)."""
    h = model.d_model
    if model.attention == "mla":
        return _mla_gemms(model)
    h_q = model.n_heads * model.head_dim
    h_kv = model.n_kv_heads * model.head_dim
    return [
        Gemm("qkv_proj", "attention_proj", h, h_q + 2 * h_kv, "column"),
        Gemm("out_proj", "attention_proj", h_q, h, "row"),
    ]


def _mla_gemms(model: ModelSpec) -> list[Gemm]:
    """MLA (DeepSeek-V2 §2.1 / V3 Eq. 1-11): low-rank q and kv, explicit up-projections in training."""
    h, n, mla = model.d_model, model.n_heads, model.mla
    assert mla is not None
    d_qk = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    gemms = []
    if mla.q_lora_rank is None:
        gemms.append(Gemm("q_proj", "attention_proj", h, n * d_qk, "column"))
    else:
        gemms.append(Gemm("q_down", "attention_proj", h, mla.q_lora_rank, "replicated"))
        gemms.append(Gemm("q_up", "attention_proj", mla.q_lora_rank, n * d_qk, "column", recomputed_in_selective=True))
    gemms += [
        Gemm("kv_down", "attention_proj", h, mla.kv_lora_rank + mla.qk_rope_head_dim, "replicated"),
        Gemm(
            "kv_up",
            "attention_proj",
            mla.kv_lora_rank,
            n * (mla.qk_nope_head_dim + mla.v_head_dim),
            "column",
            recomputed_in_selective=True,
        ),
        Gemm("out_proj", "attention_proj", n * mla.v_head_dim, h, "row"),
    ]
    return gemms


def ffn_gemms(model: ModelSpec, width: int, component: str, multiplicity: int = 1, routed: bool = False) -> list[Gemm]:
    """Gated FFNs (SwiGLU, GeGLU) have gate+up and down; plain ones fc1 and fc2."""
    h = model.d_model
    up_width = 2 * width if model.gated_ffn else width
    return [
        Gemm(f"{component}_up", component, h, up_width, "column", multiplicity, routed),
        Gemm(f"{component}_down", component, width, h, "row", multiplicity, routed),
    ]


def ffn_kind(model: ModelSpec, kind: LayerKind) -> LayerKind:
    """The FFN a layer kind carries: an MTP module's block is the model's MoE block, or dense without MoE."""
    if kind == "mtp":
        return "moe" if model.moe is not None else "dense"
    return kind


def layer_gemms(model: ModelSpec, kind: LayerKind) -> list[Gemm]:
    gemms = attention_gemms(model)
    if kind == "mtp":
        # MTP module k (V3 Eq. 21): M_k in R^{d x 2d} merges the previous depth with the next token's embedding.
        gemms.insert(0, Gemm("mtp_proj", "mtp", 2 * model.d_model, model.d_model, "replicated"))
    if ffn_kind(model, kind) == "dense":
        return gemms + ffn_gemms(model, model.d_ff, "dense_ffn")
    moe = model.moe
    assert moe is not None
    gemms.append(Gemm("router", "router", model.d_model, moe.n_routed_experts, "replicated", fp8_eligible=False))
    if moe.shared_width:
        gemms += ffn_gemms(model, moe.shared_width, "shared_experts")
    if moe.shared_expert_gate:
        gemms.append(Gemm("shared_gate", "router", model.d_model, 1, "replicated", fp8_eligible=False))
    gemms += ffn_gemms(model, moe.d_ff_expert, "routed_experts", moe.top_k, routed=True)
    return gemms


def head_gemm(model: ModelSpec) -> Gemm:
    # V3 keeps the output head in BF16 (§3.3.1), as do all FP8 recipes we know of.
    return Gemm("lm_head", "lm_head", model.d_model, model.vocab_size, "vocab", fp8_eligible=False)


# ------------------------------------------------------------------ attention core


def effective_keys(seq_len: int, causal: bool = True, sliding_window: int | None = None) -> float:
    """Average number of keys each query attends to (docs/model.md §2.3)."""
    s = float(seq_len)
    if sliding_window is not None and sliding_window < seq_len:
        w = float(sliding_window)
        # Causal window: the first w queries see i keys, the rest see w.
        return (w * w / 2 + (s - w) * w) / s if causal else w
    return s / 2 if causal else s


def attention_core_dims(model: ModelSpec) -> tuple[int, int]:
    """(query/key head dim, value head dim)."""
    if model.attention == "mla":
        mla = model.mla
        assert mla is not None
        return mla.qk_nope_head_dim + mla.qk_rope_head_dim, mla.v_head_dim
    return model.head_dim, model.head_dim


def attention_core_forward_flops_per_token(model: ModelSpec, seq_len: int, causal: bool = True) -> float:
    """QK^T and A·V: 2·s_eff·n_q·(d_qk + d_v) per token and layer. GQA does not reduce it."""
    d_qk, d_v = attention_core_dims(model)
    s_eff = effective_keys(seq_len, causal, model.sliding_window)
    return 2.0 * s_eff * model.n_heads * (d_qk + d_v)


# ------------------------------------------------------------------ utilization


def flop_utilization(flops_per_token, tokens_per_s_per_gpu, peak_flop_per_s):
    """Achieved FLOP/s per GPU over a dense peak: MFU with model FLOPs per token (no recomputation), HFU with
    hardware FLOPs (recomputation included) (Chowdhery et al. 2022, PaLM, App. B; Korthikanti et al. 2022 §6).
    The one definition behind every MFU costsim reports; scalars or arrays."""
    return flops_per_token * tokens_per_s_per_gpu / peak_flop_per_s


# ------------------------------------------------------------------ layers


def layer_kinds(model: ModelSpec) -> list[LayerKind]:
    """The kind of every transformer layer, in order (MTP modules are not layers of the trunk)."""
    return ["moe" if model.is_moe_layer(i) else "dense" for i in range(model.n_layers)]


# ------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts. `total` and `activated` exclude MTP modules (as papers report them)."""

    embedding: float
    head: float
    dense_per_layer: float
    """Non-expert parameters of a dense layer (attention + FFN + norms)."""
    moe_nonexpert_per_layer: float
    """Attention, router, shared experts and norms of one MoE layer."""
    expert_per_layer: float
    """All routed experts of one MoE layer."""
    n_dense_layers: int
    n_moe_layers: int
    final_norm: float
    mtp_depth: int
    mtp_per_depth: float
    """All parameters of one MTP module (projection, norms, block), its routed experts included."""
    mtp_expert_per_depth: float
    """The routed experts of one MTP module."""
    activated_expert_per_layer: float

    @property
    def total(self) -> float:
        return (
            self.embedding
            + self.head
            + self.final_norm
            + self.n_dense_layers * self.dense_per_layer
            + self.n_moe_layers * (self.moe_nonexpert_per_layer + self.expert_per_layer)
        )

    @property
    def activated(self) -> float:
        return self.total - self.n_moe_layers * (self.expert_per_layer - self.activated_expert_per_layer)

    @property
    def activated_without_input_embedding(self) -> float:
        """Activated matmul weights only: the convention of DeepSeek's '37B activated' (docs/model.md §2.6)."""
        return self.activated - self.embedding

    @property
    def total_with_mtp(self) -> float:
        return self.total + self.mtp

    @property
    def mtp(self) -> float:
        """Parameters of all MTP modules."""
        return self.mtp_depth * self.mtp_per_depth


def _norm_params(model: ModelSpec, width: int) -> int:
    return 2 * width if model.norm == "layernorm" else width


def _attention_params(model: ModelSpec) -> float:
    weights = sum(g.k * g.n for g in attention_gemms(model))
    if model.attention == "mla":
        mla = model.mla
        assert mla is not None
        # RMSNorms on the compressed latents (V3 config: q_a_layernorm, kv_a_layernorm).
        weights += (mla.q_lora_rank or 0) + mla.kv_lora_rank
        return weights
    h_q = model.n_heads * model.head_dim
    h_kv = model.n_kv_heads * model.head_dim
    if model.attention_bias:
        weights += h_q + 2 * h_kv
    if model.output_bias:
        weights += model.d_model
    if model.qk_norm:
        weights += 2 * model.head_dim
    return weights


def _ffn_params(model: ModelSpec, width: int) -> float:
    weights = sum(g.k * g.n for g in ffn_gemms(model, width, "ffn"))
    if model.ffn_bias:
        weights += (2 * width if model.gated_ffn else width) + model.d_model
    return weights


def parameter_counts(model: ModelSpec) -> ParamCounts:
    h = model.d_model
    norms = 2 * _norm_params(model, h)
    attention = _attention_params(model)
    embedding = model.vocab_size * h
    if model.position_embedding == "learned":
        embedding += (model.max_position_embeddings or 0) * h
    if model.embedding_norm:
        embedding += _norm_params(model, h)
    head = 0 if model.tied_embeddings else model.vocab_size * h
    dense = attention + _ffn_params(model, model.d_ff) + norms
    moe_nonexpert = expert = activated_expert = 0.0
    if model.moe is not None:
        moe = model.moe
        moe_nonexpert = attention + norms + h * moe.n_routed_experts
        if moe.shared_width:
            moe_nonexpert += _ffn_params(model, moe.shared_width)
        if moe.shared_expert_gate:
            moe_nonexpert += h
        one_expert = _ffn_params(model, moe.d_ff_expert)
        expert = moe.n_routed_experts * one_expert
        activated_expert = moe.top_k * one_expert
    mtp = mtp_expert = 0.0
    if model.mtp_depth:
        # Each MTP module: two RMSNorms on its inputs, the 2h -> h projection, one block, a final norm.
        block = moe_nonexpert + expert if model.moe is not None else dense
        mtp = 3 * _norm_params(model, h) + 2 * h * h + block
        mtp_expert = expert
    return ParamCounts(
        embedding=embedding,
        head=head,
        dense_per_layer=dense,
        moe_nonexpert_per_layer=moe_nonexpert,
        expert_per_layer=expert,
        n_dense_layers=model.n_dense_layers,
        n_moe_layers=model.n_moe_layers,
        final_norm=_norm_params(model, h),
        mtp_depth=model.mtp_depth,
        mtp_per_depth=mtp,
        mtp_expert_per_depth=mtp_expert,
        activated_expert_per_layer=activated_expert,
    )
