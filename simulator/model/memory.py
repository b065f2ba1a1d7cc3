"""Memory per GPU: weights, gradients, optimizer states, activations, and what else is reserved.

Model states (docs/model.md §3.1): mixed-precision Adam keeps a 16-bit weight (2 B), an fp32 main
gradient (4 B), an fp32 master weight and two fp32 moments (12 B) = 18 B per parameter
(Megatron-LM `theoretical_memory_usage.py`). DeepSeek-V3's FP8 recipe keeps the moments in BF16
(§3.3.3): 2 + 4 + 4 + 4 = 14 B. ZeRO (Rajbhandari et al. 2020 §5) shards the optimizer (stage 1,
the Megatron distributed optimizer), plus gradients (2), plus weights (3) over the data-parallel
group: DP x CP ranks for dense parameters, TP x CP x DP / EP for routed experts with EP > 1 (the folded expert grid,
layout.folded_expert_grid), DP x CP with EP 1 (layout.data_parallel_sizes).

Activations (Korthikanti et al. 2022 Table 2, generalised in docs/model.md §3.3 for flash attention,
SwiGLU, GQA, MoE and MLA), per token and layer, divided by TP (sequence parallelism) and CP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import InfeasibleError
from simulator.inputs.specs import ModelSpec
from simulator.model.flops import ParamCounts
from simulator.model.layout import Layout, data_parallel_sizes
from simulator.units import BLOCK_FP8_BYTES_PER_ELEMENT, BYTES_PER_ELEMENT, format_bytes
from simulator.vocab import Precision, Recompute

# Bytes per element of a BF16 activation, of an FP8-cached GEMM input with 1x128 fp32 scales
# (DeepSeek-V3 §3.3.3), and of the fp32 log-sum-exp flash attention keeps.
ACT_BYTES = BYTES_PER_ELEMENT["bf16"]
FP8_ACT_BYTES = BLOCK_FP8_BYTES_PER_ELEMENT
LSE_BYTES = BYTES_PER_ELEMENT["fp32"]
# Logits in BF16 plus their fp32 copy for the cross-entropy (docs/model.md §3.5, logits buffer).
LOGIT_BYTES = 6.0


@dataclass(frozen=True)
class MemoryBreakdown:
    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    other_bytes: float
    """Logits buffer, CUDA context, communication buffers and fragmentation."""

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.gradients_bytes + self.optimizer_bytes + self.activations_bytes + self.other_bytes

    def by_component_bytes(self) -> dict[str, float]:
        return {
            "weights": self.weights_bytes,
            "gradients": self.gradients_bytes,
            "optimizer": self.optimizer_bytes,
            "activations": self.activations_bytes,
            "other": self.other_bytes,
            "total": self.total_bytes,
        }


def state_bytes_per_param(precision: Precision, fp8_recipe: str | None = None) -> tuple[float, float, float]:
    """(weight, gradient, optimizer) bytes per parameter before sharding. Per-tensor FP8 (Transformer Engine)
    casts BF16 weights each step and keeps the usual fp32 states; DeepSeek-V3's block recipe keeps BF16 moments."""
    if precision == "fp8" and fp8_recipe == "block":
        return 2.0, 4.0, 8.0  # fp32 master + BF16 Adam moments (DeepSeek-V3 §3.3.3)
    return 2.0, 4.0, 12.0  # fp32 master + fp32 Adam moments


def optimizer_step_bytes_per_param(precision: Precision, fp8_recipe: str | None = None) -> float:
    """HBM traffic of a fused AdamW step per owned parameter (docs/model.md §7.6): read the master weight, both
    moments and the fp32 gradient; write master and moments back and the low-precision weight copy.
    30 B with fp32 moments; 22 B with DeepSeek-V3's BF16 moments."""
    w, g, o = state_bytes_per_param(precision, fp8_recipe)
    return 2 * o + g + w


def model_state_bytes(
    dense_params: float, expert_params: float, layout: Layout, precision: Precision, fp8_recipe: str | None = None
) -> tuple[float, float, float]:
    """(weights, gradients, optimizer) bytes on one GPU holding these (already TP/EP/PP-sharded) parameters."""
    w, g, o = state_bytes_per_param(precision, fp8_recipe)
    d_dense, d_expert = data_parallel_sizes(layout)
    z = layout.zero_stage

    def shard(per_param: float, stage_needed: int):
        sharded = per_param * (dense_params / d_dense + expert_params / d_expert)
        return np.where(z >= stage_needed, sharded, per_param * (dense_params + expert_params))

    return shard(w, 3), shard(g, 2), shard(o, 1)


def layer_params_on_rank(counts: ParamCounts, item: str, layout: Layout) -> tuple[float, float]:
    """(dense, expert) parameters of one pipeline item on one GPU, after TP and EP sharding."""
    tp = layout.tp
    if item == "embed":
        return counts.embedding / tp, 0.0
    if item == "head":
        return (counts.head + counts.final_norm) / tp, 0.0
    if item == "dense":
        return counts.dense_per_layer / tp, 0.0
    expert_shard = np.where(layout.ep > 1, layout.ep, tp)  # experts TP-sharded only without EP
    if item == "moe":
        return counts.moe_nonexpert_per_layer / tp, counts.expert_per_layer / expert_shard
    if item == "mtp":  # one item per MTP depth
        return (counts.mtp_per_depth - counts.mtp_expert_per_depth) / tp, counts.mtp_expert_per_depth / expert_shard
    raise ValueError(item)


def unfused_attention_bytes_per_token(model: ModelSpec, seq_len: int, dropout: float) -> float:
    """Materialised attention keeps the softmax output (2 B) and, with dropout, its mask (1 B) and output (2 B)
    per score: Korthikanti et al. 2022 Table 2's 5·a·s²·b term, per token. Selective recompute removes it."""
    mask = 1.0  # byte per score
    return (2 * ACT_BYTES + mask if dropout > 0 else ACT_BYTES) * model.n_heads * seq_len


def activation_bytes_per_token(model: ModelSpec, item: str, recompute: Recompute, precision: Precision) -> float:
    """Activation bytes one token leaves behind in one layer for the backward pass (no TP/CP division)."""
    if item in ("embed", "head"):
        return 0.0
    h = model.d_model
    if recompute == "full":
        return ACT_BYTES * h  # only the layer input (Korthikanti Table 2: 2sbh)
    gemm_in = FP8_ACT_BYTES if precision == "fp8" else ACT_BYTES
    attention = _attention_activation(model, recompute, gemm_in)
    if item == "dense" or model.moe is None:
        ffn = _ffn_activation(model, model.d_ff, recompute, gemm_in)
    else:
        moe = model.moe
        ffn = ACT_BYTES * h + moe.top_k * (gemm_in * h + _ffn_inner(model, moe.d_ff_expert, recompute, gemm_in))
        if moe.shared_width:
            ffn += gemm_in * h + _ffn_inner(model, moe.shared_width, recompute, gemm_in)
    extra = 2 * ACT_BYTES * h if item == "mtp" else 0.0
    return attention + ffn + extra


def _attention_activation(model: ModelSpec, recompute: Recompute, gemm_in: float) -> float:
    h = model.d_model
    n = model.n_heads
    stored = ACT_BYTES * h + gemm_in * h  # norm input, projection input
    if model.attention == "mla":
        mla = model.mla
        assert mla is not None
        d_qk = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        stored += ACT_BYTES * ((mla.q_lora_rank or 0) + mla.kv_lora_rank + mla.qk_rope_head_dim)
        if recompute == "none":  # selective recompute rebuilds Q, K, V from the latents (V3 §3.2.3)
            stored += ACT_BYTES * n * (2 * d_qk + mla.v_head_dim)
        return stored + gemm_in * n * mla.v_head_dim + LSE_BYTES * n
    h_q, h_kv = n * model.head_dim, model.n_kv_heads * model.head_dim
    return stored + ACT_BYTES * (h_q + 2 * h_kv) + gemm_in * h_q + LSE_BYTES * n


def _ffn_inner(model: ModelSpec, width: int, recompute: Recompute, gemm_in: float) -> float:
    """Pre-activations, and the activation output unless selective recompute redoes the activation function."""
    pre = ACT_BYTES * (2 * width if model.gated_ffn else width)
    out = 0.0 if recompute == "selective" else gemm_in * width
    return pre + out


def _ffn_activation(model: ModelSpec, width: int, recompute: Recompute, gemm_in: float) -> float:
    h = model.d_model
    return ACT_BYTES * h + gemm_in * h + _ffn_inner(model, width, recompute, gemm_in)


def check_fits(mem: MemoryBreakdown, capacity_bytes: float, gpu_name: str, layout: Layout, searched: bool = False) -> None:
    if mem.total_bytes <= capacity_bytes:
        return
    over = mem.total_bytes - capacity_bytes
    finding = (
        f"layout {layout.describe()} does not fit: needs {format_bytes(mem.total_bytes)} per GPU on the busiest rank "
        f"(weights {format_bytes(mem.weights_bytes)}, gradients {format_bytes(mem.gradients_bytes)}, "
        f"optimizer {format_bytes(mem.optimizer_bytes)}, activations {format_bytes(mem.activations_bytes)}, "
        f"other {format_bytes(mem.other_bytes)}) but {gpu_name} has {format_bytes(capacity_bytes)}, "
        f"{format_bytes(over)} short"
    )
    fix = f"Try {_remedies(layout)}" + ("." if searched else "; or leave the layout flags out and let costsim search.")
    raise InfeasibleError(f"{finding}. {fix}", finding, mem.total_bytes)


def _remedies(layout: Layout) -> str:
    """What could make this layout fit: only the changes that apply to it."""
    out = []
    if layout.dp * layout.cp > 1 and layout.zero_stage < 3:
        out.append("a higher --zero-stage")
    out.append("larger --tp/--pp" + ("/--ep" if layout.ep > 1 else ""))
    if layout.recompute != "full":
        out.append("--recompute selective or full" if layout.recompute == "none" else "--recompute full")
    if layout.micro_batch_size > 1:
        out.append("a smaller --micro-batch-size")
    out.append("more GPUs")
    return ", ".join(out[:-1]) + " or " + out[-1]
