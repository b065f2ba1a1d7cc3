"""Fit microbenchmark samples into the simulator's efficiency model (numpy only).

- GEMM, per dtype: the best measured rate P (training mean of forward, input- and weight-gradient
  GEMMs) and a relative-efficiency curve r(FLOPs per call) such that the simulator's roofline
  t = max(F / (P·r(F)), bytes / B_mem) + t_kernel reproduces the samples: r_i = F_i / (P·(t_i - t_kernel)),
  medians in bins of a factor 1.5 in F, interpolated in log F (efficiency.DeviceRates.gemm_s).
- Attention (BF16): a forward-equivalent rate and a relative curve in forward FLOPs fitted on forward +
  backward time, and the median measured backward / forward ratio (DeviceRates.attention_s).
- Memory-bound kernels: each kernel's achieved bandwidth in the simulator's byte accounting, combined
  as a harmonic mean weighted by each kernel's share of the memory-bound bytes of one training step of
  the reference model: the rate at which the step model's memory time comes out right for that mix.
- Collectives, per tier and op: t = alpha + factor(op, n)·S / busBW (simulator.model.comms), least squares on
  relative error.

Fit quality is the median and maximum |model - measured| / measured over the samples.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from simulator.inputs.calibration import (
    AttentionFit,
    AttentionSample,
    CollectiveOpFit,
    CollectiveSample,
    CollectiveTierFit,
    CurveFit,
    FitQuality,
    GemmFit,
    GemmSample,
    MemoryFit,
    MemorySample,
)
from simulator.model.comms import bus_factor
from simulator.model.efficiency import gemm_bytes_moved, gemm_roofline_s

BIN_LN_WIDTH = math.log(1.5)  # points a factor 2 apart stay in separate bins
MIN_RELATIVE = 1e-4


def binned_curve(work: np.ndarray, relative: np.ndarray) -> CurveFit:
    """Median relative efficiency in bins a factor 1.5 wide in work, at the bins' median work."""
    order = np.argsort(work)
    lw, rel = np.log(work[order]), relative[order]
    xs: list[float] = []
    ys: list[float] = []
    start = 0
    for i in range(1, len(lw) + 1):
        if i == len(lw) or lw[i] - lw[start] >= BIN_LN_WIDTH:
            x = float(np.median(lw[start:i]))
            if not xs or x > xs[-1]:
                xs.append(x)
                ys.append(float(np.clip(np.median(rel[start:i]), MIN_RELATIVE, 1.0)))
            start = i
    return CurveFit(work=[math.exp(x) for x in xs], relative=ys)


def quality(predicted: np.ndarray, measured: np.ndarray) -> FitQuality:
    err = np.abs(predicted - measured) / measured
    return FitQuality(samples=len(err), median_abs_error=float(np.median(err)), max_abs_error=float(err.max()))


def _interp(curve: CurveFit, work: np.ndarray) -> np.ndarray:
    xs, ys = curve.as_curve()
    return np.interp(np.log(work), xs, ys)


def fit_gemm(samples: list[GemmSample], kernel_overhead_s: float, operand_bytes_per_s: float) -> GemmFit:
    """`operand_bytes_per_s`: the bandwidth of the roofline's memory term (a large copy)."""
    flops = np.array([s.flops for s in samples])
    t = np.array([s.training_s for s in samples])
    moved = np.array([gemm_bytes_moved(s.m, s.n, s.k, s.dtype) for s in samples])
    # The compute term's rate: time less the fixed kernel cost (at most half of it, against noise on tiny GEMMs).
    compute_s = np.maximum(t - kernel_overhead_s, 0.5 * t)
    best = float(np.max(flops / compute_s))
    rel = flops / (best * compute_s)
    curve = binned_curve(flops, rel)
    predicted = gemm_roofline_s(flops, best * _interp(curve, flops), moved, operand_bytes_per_s, kernel_overhead_s)
    return GemmFit(best_flop_per_s=best, curve=curve, quality=quality(predicted, t))


def fit_attention(samples: list[AttentionSample]) -> AttentionFit:
    """Fitted on forward + backward time, the part of the step the attention kernel takes.

    The backward / forward ratio is the median measured one; the rate is forward-equivalent:
    forward time = F / (P·r(F)), backward = ratio x forward.
    """
    flops = np.array([s.forward_flops for s in samples])
    fwd = np.array([s.forward.median_s for s in samples])
    bwd = np.array([s.backward.median_s for s in samples])
    ratio = float(np.median(bwd / fwd))
    total = fwd + bwd
    best = float(np.max(flops * (1.0 + ratio) / total))
    curve = binned_curve(flops, flops * (1.0 + ratio) / (best * total))
    predicted = flops / (best * _interp(curve, flops)) * (1.0 + ratio)
    return AttentionFit(forward_flop_per_s=best, backward_over_forward=ratio, curve=curve, quality=quality(predicted, total))


def fit_memory(samples: list[MemorySample], weights: dict[str, float], reference: str) -> MemoryFit:
    by_kernel: dict[str, list[float]] = defaultdict(list)
    for s in samples:
        by_kernel[s.kernel].append(s.bytes_per_s)
    rates = {k: float(np.median(v)) for k, v in by_kernel.items()}
    copy = rates.pop("copy", None)
    present = {k: w for k, w in weights.items() if k in rates and w > 0}
    if not present:
        raise ValueError("no memory-bound kernel was measured")
    total = sum(present.values())
    effective = total / sum(w / rates[k] for k, w in present.items())
    return MemoryFit(
        copy_bytes_per_s=copy,
        memory_bound_bytes_per_s=effective,
        by_kernel_bytes_per_s=rates,
        weights={k: w / total for k, w in present.items()},
        reference=reference,
    )


def fit_collective_op(samples: list[CollectiveSample]) -> CollectiveOpFit:
    n = samples[0].world_size
    x = np.array([bus_factor(s.op, n) * s.size_bytes for s in samples])  # bus bytes
    t = np.array([s.timing.median_s for s in samples])
    # Minimise sum(((alpha + gamma·x) - t) / t)^2 with gamma = 1 / busBW.
    a = np.stack([1.0 / t, x / t], axis=1)
    (alpha, gamma), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    if alpha < 0:
        alpha, gamma = 0.0, float(np.sum(x / t) / np.sum((x / t) ** 2))
    if gamma <= 0:  # latency-bound over the whole range: bandwidth from the largest message
        i = int(np.argmax(x))
        gamma = float(t[i] / x[i])
        alpha = 0.0
    busbw = 1.0 / gamma
    return CollectiveOpFit(latency_s=float(alpha), busbw_bytes_per_s=busbw, quality=quality(alpha + x / busbw, t))


def fit_collectives(samples: list[CollectiveSample]) -> dict[str, CollectiveTierFit]:
    groups: dict[str, dict[str, list[CollectiveSample]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        groups[s.tier][s.op].append(s)
    out = {}
    for tier, ops in groups.items():
        by_op = {op: fit_collective_op(v) for op, v in ops.items() if len(v) >= 2}
        if not by_op:
            continue
        first = next(iter(ops.values()))[0]
        out[tier] = CollectiveTierFit(
            backend=first.backend,
            world_size=first.world_size,
            by_op=by_op,  # type: ignore[arg-type]
            latency_s=float(np.median([f.latency_s for f in by_op.values()])),
            busbw_bytes_per_s=float(np.median([f.busbw_bytes_per_s for f in by_op.values()])),
        )
    return out
