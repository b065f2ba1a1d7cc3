"""Attention microbenchmarks: causal scaled_dot_product_attention forward and backward.

The forward is timed as training runs it (inputs that require grad); the backward is timed alone by
re-running autograd on one retained graph, so its time excludes the forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from calibrate.device import DTYPES
from calibrate.timing import Budget, measure, randn
from simulator.inputs.calibration import AttentionSample


@dataclass(frozen=True)
class AttentionShape:
    batch: int
    heads: int
    kv_heads: int
    seq_len: int
    head_dim: int


def shapes(batch: int, heads: int, kv_heads: int, head_dims: list[int], seq_lens: list[int]) -> list[AttentionShape]:
    """A sweep over sequence lengths at a fixed batch and head count, so that FLOPs per call (what the
    simulator's attention curve is keyed on) grow as s^2 and map back to one sequence length."""
    return [AttentionShape(batch, heads, kv_heads, s, d) for d in head_dims for s in seq_lens]


def bench(shape: AttentionShape, dtype: str, device: torch.device, budget: Budget) -> AttentionSample:
    dt = DTYPES[dtype]
    b, h, kv, s, d = shape.batch, shape.heads, shape.kv_heads, shape.seq_len, shape.head_dim
    # Laid out as the model hands them over: [b, s, heads, d] viewed as [b, heads, s, d].
    q = randn((b, s, h, d), dt, device).transpose(1, 2).requires_grad_(True)
    k = randn((b, s, kv, d), dt, device).transpose(1, 2).requires_grad_(True)
    v = randn((b, s, kv, d), dt, device).transpose(1, 2).requires_grad_(True)
    gqa = kv != h

    def forward():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)

    fwd = measure(forward, device, budget)
    out = forward()
    grad_out = randn(tuple(out.shape), dt, device)

    def backward():
        return torch.autograd.grad(out, (q, k, v), grad_out, retain_graph=True)

    bwd = measure(backward, device, budget)
    return AttentionSample(
        batch=b,
        heads=h,
        kv_heads=kv,
        seq_len=s,
        head_dim=d,
        dtype=dtype,
        forward=fwd,
        backward=bwd,  # type: ignore[arg-type]
    )
