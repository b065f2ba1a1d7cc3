"""Decode microbenchmarks (serving): GEMMs of few tokens against the weights of real layers, and the attention of one
query token per sequence against a KV cache.

A decode step reads every layer's own weights and every sequence's own cache once, so nothing it reads is in a
cache when it is read. A benchmark that calls one GEMM on one weight again and again would read it from L2 (50 MB
on an H100/H200) or a CPU's L3 and report a bandwidth no step sees. Here each call reads the next copy from a
pool of copies larger than the caches (`Pool`, `pool_bytes`): the weights and caches rotate.

The all-to-all of decode's expert dispatch is measured with the collectives (calibrate/collectives.py), where a
process group of two or more ranks exists.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel

from calibrate.device import DTYPES, FP4, FP8
from calibrate.gemm import nvfp4_operand, nvfp4_product, nvfp4_scale_elements, random_fp4_bytes
from calibrate.generation import DECODE_BACKENDS
from calibrate.timing import Budget, graph_replay, measure, per_call, randn
from simulator.inputs.calibration import DecodeAttentionSample, DecodeGemmSample, Workload
from simulator.model.flops import head_gemm, layer_gemms, layer_kinds
from simulator.units import MEBI

CPU_POOL_BYTES = 64 * MEBI
"""Larger than the last-level cache of the CPUs this runs on (a 2-core cloud VM shares a 32-55 MiB L3)."""
GPU_POOL_MIN_BYTES = 512 * MEBI
"""At least 4x the L2 of any current GPU (H100/H200 50 MiB, B200 126 MiB)."""


def pool_bytes(device: torch.device, smoke: bool = False) -> int:
    """Bytes each benchmark point rotates its weights or caches over."""
    if device.type != "cuda":
        return CPU_POOL_BYTES // 4 if smoke else CPU_POOL_BYTES
    l2 = int(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 0)
    return max(GPU_POOL_MIN_BYTES, 8 * l2)


@dataclass(frozen=True)
class DecodeShape:
    """One decode GEMM: m tokens against a weight [n, k] of `origin`'s layers."""

    m: int
    n: int
    k: int
    origin: str


def layer_weights(w: Workload) -> list[tuple[int, int]]:
    """The (n, k) of every weight GEMM of `w.model` on one GPU at tensor parallelism w.tp, the head included. A routed
    expert is one expert's whole GEMM (experts are spread over GPUs whole, not split)."""
    spec = w.model
    gemms = [g for kind in sorted(set(layer_kinds(spec))) for g in layer_gemms(spec, kind)] + [head_gemm(spec)]  # type: ignore[arg-type]
    out: list[tuple[int, int]] = []
    for g in gemms:
        n, k = g.n, g.k
        if not g.routed and g.sharding in ("column", "vocab"):
            n = -(-n // w.tp)
        elif not g.routed and g.sharding == "row":
            k = -(-k // w.tp)
        if (n, k) not in out:
            out.append((n, k))
    return out


def gemm_shapes(workloads: list[Workload], tokens: list[int]) -> list[DecodeShape]:
    """Every (n, k) of the workloads' layers at each token count, each (m, n, k) once."""
    seen: set[tuple[int, int, int]] = set()
    out = []
    for w in workloads:
        for n, k in layer_weights(w):
            for m in tokens:
                if (m, n, k) not in seen:
                    seen.add((m, n, k))
                    out.append(DecodeShape(m, n, k, w.model.name))
    return out


@dataclass(frozen=True)
class DecodeAttentionShape:
    batch: int
    heads: int
    kv_heads: int
    context: int
    head_dim: int


def attention_shapes(ref: Workload, batches: list[int], contexts: list[int]) -> list[DecodeAttentionShape]:
    """The reference model's heads at each batch x context: KV bytes per call grow as batch x context."""
    m = ref.model
    return [DecodeAttentionShape(b, m.n_heads, m.n_kv_heads, c, m.head_dim) for b in batches for c in contexts]


class Pool:
    """One flat buffer per dtype of `size_bytes`, cut into copies of a tensor shape: each call takes the next copy."""

    def __init__(self, device: torch.device, size_bytes: int) -> None:
        self.device = device
        self.size_bytes = size_bytes
        self.buffers: dict[str, torch.Tensor] = {}

    def _buffer(self, dtype: str) -> torch.Tensor:
        if dtype not in self.buffers:
            if dtype == FP4:
                self.buffers[dtype] = random_fp4_bytes((self.size_bytes,), self.device)
                return self.buffers[dtype]
            dt = torch.float8_e4m3fn if dtype == FP8 else DTYPES[dtype]
            elements = self.size_bytes // torch.tensor([], dtype=dt).element_size()
            self.buffers[dtype] = randn((elements,), dt, self.device)
        return self.buffers[dtype]

    def copies(self, shape: tuple[int, ...], dtype: str, per_copy: int = 1) -> list[tuple[torch.Tensor, ...]]:
        """Disjoint groups of `per_copy` tensors of `shape` covering the pool (or one fresh group when larger)."""
        size = 1
        for d in shape:
            size *= d
        buf = self._buffer(dtype)
        count = buf.numel() // (size * per_copy)
        if count < 2:  # larger than the pool: no cache holds it either
            fresh = random_fp4_bytes if dtype == FP4 else (lambda s, d: randn(s, buf.dtype, d))
            return [tuple(fresh(shape, self.device) for _ in range(per_copy))]
        flat = buf[: count * size * per_copy].view(count, per_copy, size)
        return [tuple(flat[i, j].view(shape) for j in range(per_copy)) for i in range(count)]


GPU_BURST = 32
"""Decode calls timed together on a GPU, at least: a single call between two events measures the launch latency (about
25 us on an H200 VM, 2026-12-04, flat for every GEMM of 1-256 tokens) rather than the kernel reading its operands."""
MAX_GRAPH_CALLS = 4096
"""The most calls one graph captures (DecodeGemmSample.calls_per_timing's bound)."""


def burst(device: torch.device) -> int:
    """Calls per timing: GPU_BURST on a GPU; 1 on a CPU, where a call returns when its work is done."""
    return GPU_BURST if device.type == "cuda" else 1


def graph_calls(copies: int) -> int:
    """Calls a GPU sample captures in one CUDA graph: every copy of the pool once, so a replay reads as many bytes as
    the pool holds (more than the L2) and the next replay finds none of them cached; at least GPU_BURST (a copy
    larger than the pool is read again and again, and no cache holds it either)."""
    return int(min(MAX_GRAPH_CALLS, max(GPU_BURST, copies)))


def _rotating(calls: list[Callable[[], object]]) -> Callable[[], object]:
    cycle = itertools.cycle(calls)
    return lambda: next(cycle)()


def _timed(calls: list[Callable[[], object]], device: torch.device, budget: Budget) -> dict:
    """The timing of a decode sample, `calls` rotating. On a GPU they are captured in one CUDA graph and timed as its
    replays, as an engine runs a decode step (timing.graph_replay); where a capture fails (an op that cannot be
    captured), as a burst of GPU_BURST calls queued from the host, and the sample says which (cuda_graph)."""
    replay = None
    if device.type == "cuda":
        captured = graph_calls(len(calls))
        try:
            replay = graph_replay(_rotating(calls), captured, device)
        except RuntimeError:  # not capturable here: queued from the host instead
            pass
    if replay is not None:
        return {"timing": per_call(measure(replay, device, budget), captured), "calls_per_timing": captured,
                "cuda_graph": True}  # fmt: skip
    n = burst(device)
    return {"timing": measure(_rotating(calls), device, budget, calls_per_timing=n), "calls_per_timing": n}


def bench_gemm(shape: DecodeShape, dtype: str, device: torch.device, budget: Budget, pool: Pool) -> DecodeGemmSample:
    """Y = X . W^T as nn.Linear runs it (FP8: torch._scaled_mm, per-tensor scales, BF16 output; FP4: NVFP4 W4A4 as
    calibrate.gemm times it, the weight's values and block scales both rotating), W rotating."""
    m, n, k = shape.m, shape.n, shape.k
    if dtype == FP4:
        x, x_blocks, x_scale = nvfp4_operand(m, k, device)
        one = torch.tensor(1.0, device=device)
        values = pool.copies((n, k // 2), FP4)
        blocks = pool.copies((nvfp4_scale_elements(n, k),), FP8)
        # Each copy's product is built once, so a timed call enqueues only the GEMM (strict=False: the cycle is endless).
        calls = [
            nvfp4_product(x, x_blocks, x_scale, w.view(torch.float4_e2m1fn_x2), s, one)
            for (w,), (s,) in zip(values, itertools.cycle(blocks), strict=False)
        ]
    elif dtype == FP8:
        one = torch.tensor(1.0, device=device)
        x = randn((m, k), torch.float8_e4m3fn, device)
        calls = [
            (lambda w=w: torch._scaled_mm(x, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
            for (w,) in pool.copies((n, k), dtype)
        ]
    else:
        x = randn((m, k), DTYPES[dtype], device)
        calls = [(lambda w=w: F.linear(x, w)) for (w,) in pool.copies((n, k), dtype)]
    return DecodeGemmSample(m=m, n=n, k=k, dtype=dtype, origin=shape.origin, **_timed(calls, device, budget))  # type: ignore[arg-type]


def bench_attention(
    shape: DecodeAttentionShape, dtype: str, device: torch.device, budget: Budget, pool: Pool
) -> DecodeAttentionSample:
    """scaled_dot_product_attention with one query token per sequence over the whole cache (no mask), the cache
    rotating; K and V laid out [batch, kv_heads, context, head_dim] as a contiguous cache holds them."""
    b, h, kv, c, d = shape.batch, shape.heads, shape.kv_heads, shape.context, shape.head_dim
    dt = DTYPES[dtype]
    q = randn((b, h, 1, d), dt, device)
    gqa = kv != h

    def attend(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with sdpa_kernel(DECODE_BACKENDS):  # what generation runs (calibrate/generation.py)
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)

    calls = [(lambda k=k, v=v: attend(k, v)) for k, v in pool.copies((b, kv, c, d), dtype, per_copy=2)]
    return DecodeAttentionSample(
        batch=b,
        heads=h,
        kv_heads=kv,
        context=c,
        head_dim=d,
        dtype=dtype,
        **_timed(calls, device, budget),  # type: ignore[arg-type]
    )
