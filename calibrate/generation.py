"""Generation with a KV cache on the local trainer's model (calibrate/transformer.py): prefill once, then decode
steps of one token per sequence, as an inference engine runs them (without its batching and scheduling).

The weights, norms, RoPE and SwiGLU are the trainer's; attention reads a preallocated cache [batch, kv_heads,
positions, head_dim] per layer through scaled_dot_product_attention with one query token (no mask: a new token
attends to every cached position). Each step samples greedily on the device. This is the closed loop of the decode
step of `costsim serve` (validate local's decode cases).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from calibrate import transformer
from simulator.inputs.specs import ModelSpec


def build(spec: ModelSpec, max_len: int, device: torch.device) -> transformer.DecoderLM:
    """The trainer's model in BF16 on `device`, for inference (no optimizer), RoPE tables for `max_len` positions."""
    with device:
        model = transformer.DecoderLM(spec, max_len)
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    nn.init.normal_(p, std=0.02)
    return model.to(device=device, dtype=torch.bfloat16).eval()


class KVCache:
    """Keys and values of every layer for `batch` sequences of up to `max_len` positions."""

    def __init__(self, spec: ModelSpec, batch: int, max_len: int, device: torch.device) -> None:
        shape = (batch, spec.n_kv_heads, max_len, spec.head_dim)
        self.k = [torch.zeros(shape, dtype=torch.bfloat16, device=device) for _ in range(spec.n_layers)]
        self.v = [torch.zeros(shape, dtype=torch.bfloat16, device=device) for _ in range(spec.n_layers)]
        self.length = 0


def _block(block: transformer.Block, x: torch.Tensor, cache: KVCache, layer: int, start: int) -> torch.Tensor:
    """One layer over the new positions start .. start + s - 1 of x [b, s, d], their K and V written to the cache."""
    b, s, _ = x.shape
    hd, heads, kv = block.head_dim, block.heads, block.kv_heads
    q, k, v = block.qkv(block.norm1(x)).split([heads * hd, kv * hd, kv * hd], dim=-1)
    cos, sin = block.rope.cos[start : start + s], block.rope.sin[start : start + s]
    q = transformer.rotate(q.view(b, s, heads, hd).transpose(1, 2), cos, sin)
    k = transformer.rotate(k.view(b, s, kv, hd).transpose(1, 2), cos, sin)
    end = start + s
    cache.k[layer][:, :, start:end] = k
    cache.v[layer][:, :, start:end] = v.view(b, s, kv, hd).transpose(1, 2)
    keys, values = cache.k[layer][:, :, :end], cache.v[layer][:, :, :end]
    # A prompt attends causally among its own positions; a decode token (s = 1) to every cached one.
    a = F.scaled_dot_product_attention(q, keys, values, is_causal=s > 1, enable_gqa=kv != heads)
    x = x + block.out(a.transpose(1, 2).reshape(b, s, heads * hd))
    gate, up = block.up(block.norm2(x)).chunk(2, dim=-1)
    return x + block.down(F.silu(gate) * up)


DECODE_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
"""Attention backends of generation: all but cuDNN's. cuDNN builds an execution plan for every new shape (see
pytorch/pytorch#155958, TORCH_CUDNN_SDPA_AVOID_RECOMPILE), and a decode step's key length grows by one each step: on
an H200 with torch 2.11 every step then took about 80 ms whatever the model and batch (validate local, 2026-12-04).
Inference engines run flash-decoding kernels (FlashAttention, FlashInfer) instead; so does this loop."""


def forward(model: transformer.DecoderLM, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Logits of the last position of tokens [b, s], appended to the cache; s > 1 is a prefill, s = 1 a decode step."""
    start = cache.length
    x = model.embed(tokens)
    with sdpa_kernel(DECODE_BACKENDS):
        for i, block in enumerate(model.blocks):
            x = _block(block, x, cache, i, start)
    cache.length = start + tokens.shape[1]
    return model.head(model.norm(x[:, -1:]))[:, 0]


@torch.inference_mode()
def prefill(model: transformer.DecoderLM, prompt: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """The first generated token of each sequence (greedy)."""
    return forward(model, prompt, cache).argmax(-1, keepdim=True)


@torch.inference_mode()
def decode_step(model: transformer.DecoderLM, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """The next token of each sequence (greedy) after `token` [b, 1]."""
    return forward(model, token, cache).argmax(-1, keepdim=True)
