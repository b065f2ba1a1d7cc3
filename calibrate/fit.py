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

The fitting itself lives in simulator/inputs/calibration.py (numpy only, below the step model), so that the
loader recomputes the fit of every calibration file it reads and refuses a file whose stored fit differs; this
module adds the GEMM fit quality, which needs the step model's roofline (simulator.model.efficiency).
"""

from __future__ import annotations

import numpy as np

from simulator.inputs.calibration import (
    BIN_LN_WIDTH,
    MIN_RELATIVE,
    Fit,
    GemmFit,
    GemmSample,
    Samples,
    binned_curve,
    curve_at,
    fit_attention,
    fit_collective_op,
    fit_collectives,
    fit_memory,
    gemm_rates,
)
from simulator.inputs.calibration import fit_all as _fit_all
from simulator.inputs.calibration import fit_quality as quality
from simulator.model.efficiency import gemm_bytes_moved, gemm_roofline_s

__all__ = [
    "BIN_LN_WIDTH",
    "MIN_RELATIVE",
    "binned_curve",
    "fit_all",
    "fit_attention",
    "fit_collective_op",
    "fit_collectives",
    "fit_gemm",
    "fit_memory",
    "quality",
]


def fit_gemm(samples: list[GemmSample], kernel_overhead_s: float, operand_bytes_per_s: float) -> GemmFit:
    """`operand_bytes_per_s`: the bandwidth of the roofline's memory term (a large copy)."""
    best, curve = gemm_rates(samples, kernel_overhead_s)
    flops = np.array([s.flops for s in samples])
    t = np.array([s.fitted_s for s in samples])
    moved = np.array([gemm_bytes_moved(s.m, s.n, s.k, s.dtype) for s in samples])
    predicted = gemm_roofline_s(flops, best * curve_at(curve, flops), moved, operand_bytes_per_s, kernel_overhead_s)
    return GemmFit(best_flop_per_s=best, curve=curve, quality=quality(predicted, t))


def fit_all(
    samples: Samples,
    overhead_s: float,
    weights: dict[str, float] | None,
    reference: str | None,
    notes: list[str] | None = None,
) -> Fit:
    """The whole fit of `samples`, GEMM quality included. `weights`: each memory-bound kernel's share of the step's
    memory-bound bytes (calibrate.memory_kernels.step_weights of `reference`); needed where there are memory samples."""
    return _fit_all(samples, overhead_s, weights, reference, notes, gemm_fit=fit_gemm)
