"""KV-cache bytes per token and per GPU (docs/model.md §16.2).

    MHA/GQA: 2 x n_kv_heads x head_dim x bytes per layer        (Scaling Book, inference.md: "2 · bytes · H · K · L · T")
    MLA:     (kv_lora_rank + qk_rope_head_dim) x bytes per layer (DeepSeek-V3 §2.1.1: only c^KV and k^R are cached)

Sliding-window layers keep at most the window. With tensor parallelism a GQA cache splits by KV heads (replicated once
TP exceeds them); an MLA latent is shared by all heads, so every TP rank holds all of it, which is why MLA serving
uses data parallelism for attention (DeepSeek's inference system, open-infra-index day 6).
"""

from __future__ import annotations

import numpy as np

from simulator.inputs.specs import ModelSpec
from simulator.units import BYTES_PER_ELEMENT


def kv_elements_per_token_per_layer(model: ModelSpec) -> int:
    """Cached elements one token adds to one layer."""
    if model.attention == "mla":
        assert model.mla is not None
        return model.mla.kv_lora_rank + model.mla.qk_rope_head_dim
    return 2 * model.n_kv_heads * model.head_dim


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str) -> float:
    """Bytes one token adds to the whole model's cache (all layers, one replica, unsharded)."""
    return float(model.n_layers * kv_elements_per_token_per_layer(model) * BYTES_PER_ELEMENT[kv_dtype])


def cached_positions(model: ModelSpec, context_len):
    """Positions a layer holds for a sequence of `context_len` tokens (a sliding window caps them)."""
    if model.sliding_window is None:
        return np.asarray(context_len, dtype=float)
    return np.minimum(np.asarray(context_len, dtype=float), float(model.sliding_window))


def kv_shard(model: ModelSpec, tp):
    """Fraction of a sequence's cache one TP rank holds: 1 / min(tp, n_kv_heads) for GQA, 1 for MLA."""
    if model.attention == "mla":
        return np.ones_like(np.asarray(tp, dtype=float))
    return 1.0 / np.minimum(np.asarray(tp, dtype=float), float(model.n_kv_heads))
