"""Per-layer work: what one layer of each kind does per token, before any parallel layout is applied.

A model has at most three layer kinds (dense, MoE, MTP module), however many layers it has. Their weight GEMMs,
attention-core FLOPs and the FP8 quantization traffic are computed here once per kind and shared by the FLOP
count (flops.token_flops), the training step model (step_time, for one layout or a whole search) and the
forward-only path (forward.py: prefill and scoring passes for serving and RL).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from simulator.inputs.specs import ModelSpec
from simulator.model.flops import (
    Gemm,
    LayerKind,
    attention_core_forward_flops_per_token,
    ffn_kind,
    head_gemm,
    layer_gemms,
    layer_kinds,
)
from simulator.vocab import Recompute


@dataclass(frozen=True)
class LayerWork:
    """One layer of a kind, seen from one token (forward pass)."""

    kind: LayerKind
    ffn: LayerKind
    """The FFN the layer carries: dense, or moe (an MTP module carries the model's own block)."""
    gemms: tuple[Gemm, ...]
    attention_core_flops: float
    """QK^T and A·V FLOPs per token at the sequence length (causal unless asked otherwise)."""

    @property
    def gemm_flops(self) -> float:
        return sum(g.forward_flops_per_token for g in self.gemms)

    @property
    def forward_flops(self) -> float:
        return self.gemm_flops + self.attention_core_flops

    @property
    def selective_recompute_flops(self) -> float:
        """Selective recompute redoes the attention core (Korthikanti et al. 2022 §5) and, for MLA, the
        up-projections (DeepSeek-V3 §3.2.3)."""
        return self.attention_core_flops + sum(g.forward_flops_per_token for g in self.gemms if g.recomputed_in_selective)

    @property
    def fp8_input_elements(self) -> float:
        """Input elements per token of the GEMMs that run in FP8 (what per-tensor quantization passes read)."""
        return float(sum(g.k * g.multiplicity for g in self.gemms if g.fp8_eligible))

    def forward_flops_by_component(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for g in self.gemms:
            out[g.component] = out.get(g.component, 0.0) + g.forward_flops_per_token
        out["attention_core"] = self.attention_core_flops
        return out


def model_layer_kinds(model: ModelSpec) -> tuple[LayerKind, ...]:
    """The layer kinds a model has: dense and/or moe, and mtp where it has MTP modules."""
    kinds: list[LayerKind] = []
    if model.n_dense_layers:
        kinds.append("dense")
    if model.n_moe_layers:
        kinds.append("moe")
    if model.mtp_depth:
        kinds.append("mtp")
    return tuple(kinds)


def layer_work(model: ModelSpec, seq_len: int, causal: bool = True) -> Mapping[LayerKind, LayerWork]:
    """Every layer kind of `model` at `seq_len`, built once (cached: specs are immutable)."""
    return _layer_work(model, seq_len, causal)  # one cache key however the arguments are passed


@functools.lru_cache(maxsize=64)
def _layer_work(model: ModelSpec, seq_len: int, causal: bool) -> Mapping[LayerKind, LayerWork]:
    core = attention_core_forward_flops_per_token(model, seq_len, causal)
    kinds = model_layer_kinds(model)
    work = {kind: LayerWork(kind, ffn_kind(model, kind), tuple(layer_gemms(model, kind)), core) for kind in kinds}
    return MappingProxyType(work)  # shared by every caller, so read-only


# ------------------------------------------------------------------ per-token totals


@dataclass(frozen=True)
class TokenFlops:
    """Forward FLOPs per token by component, for the whole model (all layers, all heads)."""

    forward_by_component: dict[str, float]
    recompute_by_mode: dict[str, float] = field(default_factory=dict)
    attention_convention: str = "causal"

    @property
    def forward_flops(self) -> float:
        return sum(self.forward_by_component.values())

    @property
    def training_flops(self) -> float:
        """Model FLOPs per token, forward + backward, no recomputation (the MFU basis)."""
        return 3.0 * self.forward_flops

    def hardware_flops(self, recompute: Recompute) -> float:
        """Training FLOPs plus the forward FLOPs the recompute mode repeats (Korthikanti et al. 2022 §6)."""
        return self.training_flops + self.recompute_by_mode.get(recompute, 0.0)

    def training_by_component(self) -> dict[str, float]:
        return {k: 3.0 * v for k, v in self.forward_by_component.items()}


def token_flops(model: ModelSpec, seq_len: int, causal: bool = True, include_mtp: bool = True) -> TokenFlops:
    """Forward FLOPs per token of the whole model by component, plus what each recompute mode adds: each layer
    kind's work times the number of layers of that kind."""
    work = layer_work(model, seq_len, causal)
    counts = Counter(layer_kinds(model))  # in order of first appearance, so components keep the layers' order
    total: dict[str, float] = {}
    full_recompute = selective = 0.0
    for kind, n in counts.items():
        w = work[kind]
        for k, v in w.forward_flops_by_component().items():
            total[k] = total.get(k, 0.0) + n * v
        full_recompute += n * w.forward_flops
        selective += n * w.selective_recompute_flops
    head = head_gemm(model).forward_flops_per_token
    total["lm_head"] = head
    if include_mtp and model.mtp_depth:
        total["mtp"] = (work["mtp"].forward_flops + head) * model.mtp_depth
    # Full recompute re-runs every transformer layer's forward, not the head (Megatron).
    return TokenFlops(
        forward_by_component=total,
        recompute_by_mode={"none": 0.0, "selective": selective, "full": full_recompute},
        attention_convention="causal" if causal else "full",
    )
