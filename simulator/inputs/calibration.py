"""Calibration files: the schema `costsim calibrate` writes and the estimator reads (no torch here).

A calibration holds the raw microbenchmark samples of one device (GEMMs, attention, memory-bound
kernels, collectives, and the decode regime of serving: GEMMs of few tokens, decode attention over a KV cache,
the all-to-all of few tokens per rank), where and how they were measured (device, driver, CUDA, torch and NCCL
versions, date; never a host name), the efficiency model fitted to them (fit_all below, numpy only;
calibrate/fit.py adds the GEMM fit quality), and one
SHA-256 over all of it. `calibrated_device` turns it into the hardware profile and DeviceRates an
estimate runs on; the rates' `source` names the file, so every estimate says what it used.

Integrity (`load_calibration` -> `verify`): every number is finite and in a physical range; the hash
must match the content; the provenance must be consistent in itself (a CPU has threads and no CUDA; a
GPU names a shipped profile whose memory and device name agree) and the measured rates must be
possible on the profile it names (a CPU relabelled as an H100 runs at 0.1% of its peak); and the fit
is recomputed from the samples (fit_all, numpy only) and must be the stored fit (all but the GEMM
fit quality, which needs the step model: `costsim calibrate check` compares that too). A hash
cannot stop someone who recomputes it: the recomputed fit and the plausibility of the provenance are
what do. What remains possible is a file whose samples were all invented consistently for the device
it names.

On a GPU the calibration replaces the per-GPU efficiency terms of the shipped profile (peaks and
links stay the datasheet's; memory-bound kernels run at the measured copy bandwidth); the global
assumptions (gemm_sustain, FP8 factor, overlap) still apply.
On a CPU there is no profile: the device is described by the calibration itself, with the best
measured GEMM rate per dtype as its peak.

The serving fits (`decode_gemm`, `decode_attention`, `decode_all_to_all`; schema version 3) are applied by
`costsim serve --calibration` only (efficiency.calibrated_rates(..., serving=True)); `estimate` reads the
training fits as before. A version 2 file (no serving measurements) is still read, hashed as version 2 hashed it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.errors import InputError, SpecError
from simulator.inputs.arguments import reference
from simulator.inputs.catalog import hardware_ids, load_hardware_file
from simulator.inputs.files import cannot_create_in, is_dir, read_json, refused_name
from simulator.inputs.specs import DensePeaks, EfficiencyDefaults, HardwareProfile, ModelSpec, Price, ScaleOut, ScaleUp, Sourced
from simulator.units import BYTES_PER_ELEMENT, GIB, GIGA, MICRO, TERA
from simulator.vocab import SERVING_ONLY_DTYPES, Dtype, PeakDtype

SCHEMA = "costsim-calibration"
SCHEMA_VERSION = 3
"""2: one `sha256` over the whole file (version 1 hashed the samples only). 3: the serving measurements
(samples and fit `decode_gemm`, `decode_attention`, `decode_all_to_all`)."""
READ_VERSIONS = (2, 3)
"""Versions this costsim reads: 2 has no serving measurements and is hashed without their keys."""
SERVING_KEYS = ("decode_gemm", "decode_attention", "decode_all_to_all")
"""Keys of `samples` and of `fit` that schema version 3 added."""
CPU_DEVICE = "cpu"
"""What `--gpu` names when the calibration was measured on a CPU: the device is the calibration itself."""

Positive = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
# Physical ranges, far outside anything a real device measures (every float is also finite: allow_inf_nan=False).
Seconds = Annotated[float, Field(gt=0, le=3600)]
FlopRate = Annotated[float, Field(gt=0, le=1e17)]
"""100 PFLOP/s: 10x the densest FP8 peak of any accelerator."""
ByteRate = Annotated[float, Field(gt=0, le=1e14)]
"""100 TB/s: 10x the fastest HBM."""
Dim = Annotated[int, Field(ge=1, le=2**24)]
Name = Annotated[str, Field(max_length=200)]
Version = Annotated[str, Field(max_length=64)]
CollectiveOp = Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv"]
DECODE_MAX_TOKENS = 256
"""Tokens per GEMM of the decode regime that `costsim calibrate` measures (M = 1 .. this)."""
Tier = Literal["scale_up", "scale_out"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- samples


class Timing(_Model):
    """Seconds per call over the timed repeats (after warm-up)."""

    median_s: Seconds
    min_s: Seconds
    spread: Annotated[float, Field(ge=0, le=100)]
    """Interquartile range / median of the repeats."""
    repeats: Annotated[int, Field(ge=1, le=10**6)]

    @model_validator(mode="after")
    def _min_below_median(self) -> Timing:
        if self.min_s > self.median_s:
            raise ValueError(f"min_s {self.min_s:.4g} is above median_s {self.median_s:.4g}; a fastest repeat cannot be")
        return self


class GemmSample(_Model):
    m: Dim
    n: Dim
    k: Dim
    dtype: PeakDtype
    """A format with a dense peak in the profiles: the training formats and fp4 (NVFP4, W4A4, Blackwell)."""
    forward: Timing
    """Y[m,n] = X[m,k] . W[n,k]^T, as nn.Linear runs it."""
    input_grad: Timing
    """dX[m,k] = dY[m,n] . W[n,k]."""
    weight_grad: Timing
    """dW[n,k] = dY[m,n]^T . X[m,k]."""
    origin: Name = "sweep"
    """`sweep`, or the model whose GEMM this is (--model)."""

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k

    @property
    def training_s(self) -> float:
        """Mean of the three GEMMs of training (forward, input gradient, weight gradient: same FLOPs, other inner
        dimensions; the step model times each at its own shape, docs/model.md §7.4)."""
        return (self.forward.median_s + self.input_grad.median_s + self.weight_grad.median_s) / 3.0

    @property
    def fitted_s(self) -> float:
        """The time the GEMM fit reads: the training mean, or for a format costsim runs only in serving (fp4) the
        forward alone, the one GEMM a served model runs."""
        return self.forward.median_s if self.dtype in SERVING_ONLY_DTYPES else self.training_s


class AttentionSample(_Model):
    batch: Annotated[int, Field(ge=1, le=2**16)]
    heads: Annotated[int, Field(ge=1, le=2**14)]
    kv_heads: Annotated[int, Field(ge=1, le=2**14)]
    seq_len: Annotated[int, Field(ge=1, le=2**22)]
    head_dim: Annotated[int, Field(ge=1, le=2**12)]
    dtype: Dtype
    forward: Timing
    backward: Timing

    @property
    def forward_flops(self) -> float:
        """Causal FLOPs, FlashAttention convention: 4·b·h·s²·d / 2 (flops.attention_core_forward_flops_per_token)."""
        return 4.0 * self.batch * self.heads * self.seq_len**2 * self.head_dim / 2.0


class MemorySample(_Model):
    kernel: Annotated[str, Field(max_length=64)]
    """copy, layer, cross_entropy, embedding or optimizer (forward + backward)."""
    dtype: Dtype
    elements: Annotated[int, Field(ge=1, le=10**13)]
    counted_bytes: Annotated[float, Field(gt=0, le=1e15)]
    """Bytes the simulator counts for this kernel, forward and backward (copy: read + write)."""
    timing: Timing
    launches: Annotated[int, Field(ge=0, le=100_000)] = 0
    """Kernel launches inside each timed call that the step model charges apart, at the kernel overhead (a layer's
    elementwise kernels, cross-entropy's): the fit takes their cost out of the time, as it does for GEMMs."""

    @property
    def bytes_per_s(self) -> float:
        return self.counted_bytes / self.timing.median_s

    def busy_bytes_per_s(self, kernel_overhead_s: float) -> float:
        """Counted bytes over the time less the launches (at least half the time, against noise)."""
        return self.counted_bytes / float(busy_s(self.timing.median_s, self.launches * kernel_overhead_s))


class CollectiveSample(_Model):
    op: CollectiveOp
    backend: Annotated[str, Field(max_length=32)]
    world_size: Annotated[int, Field(ge=2, le=1 << 20)]
    tier: Tier
    size_bytes: Annotated[float, Field(gt=0, le=1e13)]
    """S as nccl-tests defines it (the full array; per-rank buffer for all-to-all and send/recv)."""
    timing: Timing
    """Slowest rank's median."""
    algbw_bytes_per_s: ByteRate
    """S / median time."""
    busbw_bytes_per_s: ByteRate
    """algbw x the nccl-tests bus factor of the op at world_size."""


def operand_bytes(m, n, k, dtype: str):
    """HBM bytes of one GEMM [m x k] . [k x n]: both operands in `dtype`, the output in BF16 (the same count as
    simulator.model.efficiency.gemm_bytes_moved, which sits above this module)."""
    return BYTES_PER_ELEMENT[dtype] * (m * k + k * n) + BYTES_PER_ELEMENT["bf16"] * m * n


class DecodeGemmSample(_Model):
    """One forward GEMM of a decode step, Y[m,n] = X[m,k] . W[n,k]^T with few tokens m. Each call reads another copy
    of W from a pool larger than the caches, as each layer of a model reads its own weights."""

    m: Annotated[int, Field(ge=1, le=DECODE_MAX_TOKENS)]
    n: Dim
    k: Dim
    dtype: PeakDtype
    timing: Timing
    origin: Name = "reference"
    """The model whose layer this (n, k) is."""
    calls_per_timing: Annotated[int, Field(ge=1, le=4096)] = 1
    """Calls run back to back inside each timing (timing is per call). Above 1 the launches queue behind the kernels,
    as in a decode step, so no launch latency is in the time (calibrate/decode.py GPU_BURST)."""
    cuda_graph: bool = False
    """The calls were captured in one CUDA graph and timed as its replays, as engines run a decode step: no host
    dispatch in the time. False: queued from the host (which on the H200 of 2026-12-04 set a 20-28 us floor per call)
    or, with calls_per_timing 1, timed alone."""

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k

    @property
    def bytes_moved(self) -> float:
        return float(operand_bytes(self.m, self.n, self.k, self.dtype))


class DecodeAttentionSample(_Model):
    """scaled_dot_product_attention of one decode step: `batch` sequences, one query token each, against a KV cache of
    `context` positions (no mask). Each call reads another copy of the cache from a pool larger than the caches."""

    batch: Annotated[int, Field(ge=1, le=2**16)]
    heads: Annotated[int, Field(ge=1, le=2**14)]
    kv_heads: Annotated[int, Field(ge=1, le=2**14)]
    context: Annotated[int, Field(ge=1, le=2**22)]
    head_dim: Annotated[int, Field(ge=1, le=2**12)]
    dtype: Dtype
    timing: Timing
    calls_per_timing: Annotated[int, Field(ge=1, le=4096)] = 1
    """As DecodeGemmSample.calls_per_timing."""
    cuda_graph: bool = False
    """As DecodeGemmSample.cuda_graph."""

    @property
    def kv_bytes(self) -> float:
        """K and V read by the step: batch x context x kv_heads x head_dim x 2 x element bytes."""
        return 2.0 * self.batch * self.context * self.kv_heads * self.head_dim * BYTES_PER_ELEMENT[self.dtype]

    @property
    def flops(self) -> float:
        """Q.K^T and P.V for one query token per sequence and head: 4 x head_dim per key."""
        return 4.0 * self.batch * self.heads * self.context * self.head_dim


class DecodeAllToAllSample(_Model):
    """One all_to_all_single of decode's expert dispatch: `tokens_per_rank` tokens, each sent as `copies_per_token`
    routed copies of `hidden` elements (low-latency kernels send every copy on its own), split evenly over the ranks."""

    backend: Annotated[str, Field(max_length=32)]
    world_size: Annotated[int, Field(ge=2, le=1 << 20)]
    tier: Tier
    tokens_per_rank: Annotated[int, Field(ge=1, le=1 << 20)]
    copies_per_token: Annotated[int, Field(ge=1, le=1024)]
    hidden: Annotated[int, Field(ge=1, le=1 << 20)]
    element_bytes: Annotated[int, Field(ge=1, le=8)]
    size_bytes: Annotated[float, Field(gt=0, le=1e13)]
    """The per-rank buffer sent: tokens x copies x hidden x element bytes, rounded up to whole elements per rank."""
    timing: Timing
    """Slowest rank's median."""


MAX_SAMPLES = 100_000
"""Per benchmark: a full calibration has a few hundred."""


class Samples(_Model):
    gemm: Annotated[list[GemmSample], Field(max_length=MAX_SAMPLES)] = []
    attention: Annotated[list[AttentionSample], Field(max_length=MAX_SAMPLES)] = []
    memory: Annotated[list[MemorySample], Field(max_length=MAX_SAMPLES)] = []
    collectives: Annotated[list[CollectiveSample], Field(max_length=MAX_SAMPLES)] = []
    decode_gemm: Annotated[list[DecodeGemmSample], Field(max_length=MAX_SAMPLES)] = []
    """Schema version 3 on: the serving measurements."""
    decode_attention: Annotated[list[DecodeAttentionSample], Field(max_length=MAX_SAMPLES)] = []
    decode_all_to_all: Annotated[list[DecodeAllToAllSample], Field(max_length=MAX_SAMPLES)] = []


# --------------------------------------------------------------------------- fit


class CurveFit(_Model):
    """Relative efficiency against work per call (FLOPs), interpolated in log space, clamped at the ends."""

    work: Annotated[list[Annotated[float, Field(gt=0, le=1e20)]], Field(max_length=10_000)]
    relative: Annotated[list[Fraction], Field(max_length=10_000)]

    @model_validator(mode="after")
    def _paired_and_sorted(self) -> CurveFit:
        if len(self.work) != len(self.relative) or not self.work:
            raise ValueError(f"{len(self.work)} work values but {len(self.relative)} relative efficiencies")
        if any(b <= a for a, b in zip(self.work, self.work[1:], strict=False)):
            raise ValueError("curve work values must be strictly ascending")
        return self

    def as_curve(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return tuple(math.log(w) for w in self.work), tuple(self.relative)


class FitQuality(_Model):
    samples: Annotated[int, Field(ge=1, le=MAX_SAMPLES)]
    median_abs_error: Annotated[float, Field(ge=0, le=1e6)]
    """Median |model - measured| / measured over the samples."""
    max_abs_error: Annotated[float, Field(ge=0, le=1e6)]


class GemmFit(_Model):
    best_flop_per_s: FlopRate
    """Best measured rate (training mean of the three GEMMs, less the kernel overhead); the peak of a CPU."""
    curve: CurveFit
    quality: FitQuality


class AttentionFit(_Model):
    forward_flop_per_s: FlopRate
    """Forward-equivalent rate, causal FLOPs (FA convention): forward + backward time of the best point
    = F x (1 + backward_over_forward) / this."""
    backward_over_forward: Annotated[float, Field(gt=0, le=100)]
    """Median measured backward / forward time."""
    curve: CurveFit
    quality: FitQuality
    """On forward + backward time."""


class MemoryFit(_Model):
    copy_bytes_per_s: ByteRate | None = None
    """Large device-to-device copy (read + write): the achievable HBM / DRAM bandwidth."""
    memory_bound_bytes_per_s: ByteRate
    """Achieved bandwidth of the memory-bound kernels of a training step, weighted as the simulator counts
    their bytes (`weights`): what DeviceRates.memory_s runs at."""
    by_kernel_bytes_per_s: Annotated[dict[Annotated[str, Field(max_length=64)], ByteRate], Field(max_length=100)]
    weights: Annotated[dict[Annotated[str, Field(max_length=64)], Annotated[float, Field(ge=0, le=1)]], Field(max_length=100)]
    """Share of each kernel in the simulator's memory-bound bytes of one step of `reference` (they sum to 1)."""
    reference: Name


class CollectiveOpFit(_Model):
    latency_s: Annotated[float, Field(ge=0, le=1)]
    busbw_bytes_per_s: ByteRate
    quality: FitQuality


class CollectiveTierFit(_Model):
    backend: Annotated[str, Field(max_length=32)]
    world_size: Annotated[int, Field(ge=2, le=1 << 20)]
    by_op: dict[CollectiveOp, CollectiveOpFit]
    latency_s: Annotated[float, Field(ge=0, le=1)]
    """Median latency over the ops."""
    busbw_bytes_per_s: ByteRate
    """Median bus bandwidth over the ops."""


class DecodeGemmFit(_Model):
    """GEMMs of few tokens: t = max(F / (P·r(F)), bytes / (B·q(bytes))) + t_kernel, with P and r the dtype's GEMM fit
    and q a curve of the achieved operand bandwidth against bytes moved per call, fitted on the points whose compute
    term at P·r is under half their time (the memory-bound ones)."""

    operand_bytes_per_s: ByteRate
    """B: the best achieved operand bandwidth of a memory-bound point (bytes moved / (t - t_kernel))."""
    curve: CurveFit
    """q: relative operand bandwidth against bytes moved per call."""
    memory_bound_points: Annotated[int, Field(ge=1, le=MAX_SAMPLES)]
    quality: FitQuality
    """Over every decode GEMM point of the dtype, memory- or compute-bound."""


class DecodeAttentionFit(_Model):
    """Decode attention as a read of its KV cache: t = kv_bytes / (B·q(kv_bytes)) + t_kernel."""

    kv_bytes_per_s: ByteRate
    """B: the best achieved KV bytes per second (kv_bytes / (t - t_kernel))."""
    curve: CurveFit
    """q: relative bandwidth against KV bytes read per call."""
    quality: FitQuality


class DecodeAllToAllFit(_Model):
    """t = latency + size / bandwidth over the decode all-to-all points of one tier, least squares on relative error."""

    backend: Annotated[str, Field(max_length=32)]
    world_size: Annotated[int, Field(ge=2, le=1 << 20)]
    latency_s: Annotated[float, Field(ge=0, le=1)]
    """What `costsim serve --calibration` charges per dispatch and per combine of the EP exchange."""
    bytes_per_s: ByteRate
    """Per-rank buffer bytes per second beyond the latency."""
    quality: FitQuality


class Fit(_Model):
    gemm: dict[PeakDtype, GemmFit]
    kernel_overhead_s: Annotated[float, Field(ge=0, le=0.1)]
    """Time of a tiny GEMM: the fixed cost of one kernel (launch, dispatch)."""
    attention: AttentionFit | None = None
    memory: MemoryFit | None = None
    collectives: dict[Tier, CollectiveTierFit] = {}
    decode_gemm: dict[PeakDtype, DecodeGemmFit] = {}
    """Schema version 3 on: the serving fits (applied by costsim serve --calibration)."""
    decode_attention: DecodeAttentionFit | None = None
    decode_all_to_all: dict[Tier, DecodeAllToAllFit] = {}

    @model_validator(mode="after")
    def _has_bf16(self) -> Fit:
        if "bf16" not in self.gemm:
            raise ValueError("no bf16 GEMM fit: the step model needs it (the BF16 GEMM benchmark failed or was skipped)")
        return self


# --------------------------------------------------------------------------- the fit (numpy only)
#
# Here, below the model, so that every load recomputes the fit from the samples without torch and without the step
# model (calibrate/fit.py adds the GEMM fit quality, which needs the model's roofline). See calibrate/fit.py for
# what each fit means.

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


def fit_quality(predicted: np.ndarray, measured: np.ndarray) -> FitQuality:
    err = np.abs(predicted - measured) / measured
    return FitQuality(samples=len(err), median_abs_error=float(np.median(err)), max_abs_error=float(err.max()))


def curve_at(curve: CurveFit, work: np.ndarray) -> np.ndarray:
    xs, ys = curve.as_curve()
    return np.interp(np.log(work), xs, ys)


def gemm_rates(samples: list[GemmSample], kernel_overhead_s: float) -> tuple[float, CurveFit]:
    """(best rate P, relative curve r(F)) of one dtype's GEMM samples: r_i = F_i / (P·(t_i - t_kernel))."""
    flops = np.array([s.flops for s in samples])
    t = np.array([s.fitted_s for s in samples])
    # The compute term's rate: time less the fixed kernel cost (at most half of it, against noise on tiny GEMMs).
    compute_s = busy_s(t, kernel_overhead_s)
    best = float(np.max(flops / compute_s))
    return best, binned_curve(flops, flops / (best * compute_s))


def fit_attention(samples: list[AttentionSample]) -> AttentionFit:
    """Fitted on forward + backward time; the backward / forward ratio is the median measured one."""
    flops = np.array([s.forward_flops for s in samples])
    fwd = np.array([s.forward.median_s for s in samples])
    bwd = np.array([s.backward.median_s for s in samples])
    ratio = float(np.median(bwd / fwd))
    total = fwd + bwd
    best = float(np.max(flops * (1.0 + ratio) / total))
    curve = binned_curve(flops, flops * (1.0 + ratio) / (best * total))
    predicted = flops / (best * curve_at(curve, flops)) * (1.0 + ratio)
    return AttentionFit(forward_flop_per_s=best, backward_over_forward=ratio, curve=curve, quality=fit_quality(predicted, total))


def fit_memory(
    samples: list[MemorySample], weights: dict[str, float], reference: str, kernel_overhead_s: float = 0.0
) -> MemoryFit:
    by_kernel: dict[str, list[float]] = {}
    for s in samples:
        by_kernel.setdefault(s.kernel, []).append(s.busy_bytes_per_s(kernel_overhead_s))
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


def nccl_bus_factor(op: str, n: int) -> float:
    """nccl-tests bus-bandwidth factor (simulator.model.comms.bus_factor, here for the loader, which sits below it)."""
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op == "send_recv":
        return 1.0
    return (n - 1) / n


def latency_bandwidth(x: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """(alpha, bandwidth) of t = alpha + x / bandwidth, least squares on relative error."""
    # Minimise sum(((alpha + gamma·x) - t) / t)^2 with gamma = 1 / bandwidth.
    a = np.stack([1.0 / t, x / t], axis=1)
    (alpha, gamma), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    if alpha < 0:
        alpha, gamma = 0.0, float(np.sum(x / t) / np.sum((x / t) ** 2))
    if gamma <= 0:  # latency-bound over the whole range: bandwidth from the largest message
        i = int(np.argmax(x))
        gamma = float(t[i] / x[i])
        alpha = 0.0
    return float(alpha), 1.0 / gamma


def fit_collective_op(samples: list[CollectiveSample]) -> CollectiveOpFit:
    """t = alpha + factor(op, n)·S / busBW, least squares on relative error."""
    n = samples[0].world_size
    x = np.array([nccl_bus_factor(s.op, n) * s.size_bytes for s in samples])  # bus bytes
    t = np.array([s.timing.median_s for s in samples])
    alpha, busbw = latency_bandwidth(x, t)
    return CollectiveOpFit(latency_s=alpha, busbw_bytes_per_s=busbw, quality=fit_quality(alpha + x / busbw, t))


def fit_collectives(samples: list[CollectiveSample]) -> dict[str, CollectiveTierFit]:
    groups: dict[str, dict[str, list[CollectiveSample]]] = {}
    for s in samples:
        groups.setdefault(s.tier, {}).setdefault(s.op, []).append(s)
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


DECODE_MEMORY_BOUND = 0.5
"""A decode GEMM point is memory-bound (and fits the operand-bandwidth curve) when its compute term at the dtype's
GEMM fit is under this share of its time less the kernel cost."""


def busy_s(t, fixed_s):
    """Time less its fixed launch cost `fixed_s` (at least half of it, against noise on tiny calls)."""
    return np.maximum(t - fixed_s, 0.5 * t)


def launch_s(samples: list[DecodeGemmSample] | list[DecodeAttentionSample], kernel_overhead_s: float) -> np.ndarray:
    """The fixed cost in each sample's time: a kernel launch for a call timed alone, none for calls timed back to back
    (their launches queue behind the kernels)."""
    return np.array([kernel_overhead_s if s.calls_per_timing == 1 else 0.0 for s in samples])


def fit_decode_gemm(samples: list[DecodeGemmSample], gemm: GemmFit, kernel_overhead_s: float) -> DecodeGemmFit | None:
    """The operand-bandwidth curve of one dtype's decode GEMMs (DecodeGemmFit), or None without a memory-bound point."""
    flops = np.array([s.flops for s in samples])
    moved = np.array([s.bytes_moved for s in samples])
    t = np.array([s.timing.median_s for s in samples])
    launch = launch_s(samples, kernel_overhead_s)
    busy = busy_s(t, launch)
    compute = flops / (gemm.best_flop_per_s * curve_at(gemm.curve, flops))
    bound = compute < DECODE_MEMORY_BOUND * busy
    if not bound.any():
        return None
    achieved = moved[bound] / busy[bound]
    best = float(achieved.max())
    curve = binned_curve(moved[bound], achieved / best)
    predicted = np.maximum(compute, moved / (best * curve_at(curve, moved))) + launch
    return DecodeGemmFit(
        operand_bytes_per_s=best, curve=curve, memory_bound_points=int(bound.sum()), quality=fit_quality(predicted, t)
    )


def fit_decode_attention(samples: list[DecodeAttentionSample], kernel_overhead_s: float) -> DecodeAttentionFit:
    kv = np.array([s.kv_bytes for s in samples])
    t = np.array([s.timing.median_s for s in samples])
    launch = launch_s(samples, kernel_overhead_s)
    achieved = kv / busy_s(t, launch)
    best = float(achieved.max())
    curve = binned_curve(kv, achieved / best)
    predicted = kv / (best * curve_at(curve, kv)) + launch
    return DecodeAttentionFit(kv_bytes_per_s=best, curve=curve, quality=fit_quality(predicted, t))


def fit_decode_all_to_all(samples: list[DecodeAllToAllSample]) -> dict[str, DecodeAllToAllFit]:
    """Per tier with two or more points: latency and bandwidth of t = latency + size / bandwidth."""
    out = {}
    for tier in sorted({s.tier for s in samples}):
        points = [s for s in samples if s.tier == tier]
        if len(points) < 2:
            continue
        x = np.array([s.size_bytes for s in points])
        t = np.array([s.timing.median_s for s in points])
        alpha, bandwidth = latency_bandwidth(x, t)
        out[tier] = DecodeAllToAllFit(
            backend=points[0].backend,
            world_size=points[0].world_size,
            latency_s=alpha,
            bytes_per_s=bandwidth,
            quality=fit_quality(alpha + x / bandwidth, t),
        )
    return out


GemmFitter = Callable[[list[GemmSample], float, float], GemmFit]
"""fit(samples of one dtype, kernel overhead, operand bytes/s) -> GemmFit (calibrate.fit.fit_gemm)."""


def _gemm_fit_unrated(samples: list[GemmSample], kernel_overhead_s: float, operand_bytes_per_s: float) -> GemmFit:
    """Rates and curve without the quality (which needs the model's roofline): quality errors left at 0."""
    best, curve = gemm_rates(samples, kernel_overhead_s)
    return GemmFit(
        best_flop_per_s=best, curve=curve, quality=FitQuality(samples=len(samples), median_abs_error=0, max_abs_error=0)
    )


UNCHECKED_ON_LOAD = re.compile(r"^fit\.gemm\.[^.]+\.quality\.(median|max)_abs_error$")
"""What the loader cannot recompute without the step model (the GEMM fit quality; costsim calibrate check does)."""


def fit_all(
    samples: Samples,
    kernel_overhead_s: float,
    weights: dict[str, float] | None,
    reference: str | None,
    notes: list[str] | None = None,
    gemm_fit: GemmFitter = _gemm_fit_unrated,
) -> Fit:
    """The whole fit of `samples`. `weights`: each memory-bound kernel's share of the step's memory-bound bytes
    (calibrate.memory_kernels.step_weights of `reference`); needed where there are memory samples."""
    notes = [] if notes is None else notes
    memory = None
    if samples.memory:
        if weights is None or reference is None:
            raise ValueError(f"{len(samples.memory)} memory-bound kernel samples but no kernel weights to combine them")
        memory = fit_memory(list(samples.memory), weights, reference, kernel_overhead_s)
    # The GEMM roofline's memory term streams operands at copy bandwidth (DeviceRates.gemm_operand_bytes_per_s).
    mem_rate = (memory.copy_bytes_per_s or memory.memory_bound_bytes_per_s) if memory else 1e12
    gemms = {}
    for dtype in sorted({s.dtype for s in samples.gemm}):
        points = [s for s in samples.gemm if s.dtype == dtype]
        if len(points) < 2:
            notes.append(f"{dtype} GEMM: only {len(points)} point measured, no fit")
            continue
        gemms[dtype] = gemm_fit(points, kernel_overhead_s, mem_rate)
    if "bf16" not in gemms:
        raise InputError("no BF16 GEMM could be measured on this device (see the notes above); nothing to calibrate")
    atts = [s for s in samples.attention if s.dtype == "bf16"]
    decode_gemm = {}
    for dtype in sorted({s.dtype for s in samples.decode_gemm}):
        points = [s for s in samples.decode_gemm if s.dtype == dtype]
        if dtype not in gemms:
            notes.append(f"{dtype} decode GEMM: no {dtype} GEMM fit to split compute from memory time, no fit")
            continue
        fitted = fit_decode_gemm(points, gemms[dtype], kernel_overhead_s)
        if fitted is None:
            notes.append(f"{dtype} decode GEMM: no memory-bound point among {len(points)}, no operand-bandwidth fit")
            continue
        decode_gemm[dtype] = fitted
    return Fit(
        gemm=gemms,  # type: ignore[arg-type]
        kernel_overhead_s=kernel_overhead_s,
        attention=fit_attention(atts) if atts else None,
        memory=memory,
        collectives=fit_collectives(list(samples.collectives)),  # type: ignore[arg-type]
        decode_gemm=decode_gemm,  # type: ignore[arg-type]
        decode_attention=(
            fit_decode_attention(list(samples.decode_attention), kernel_overhead_s) if samples.decode_attention else None
        ),
        decode_all_to_all=fit_decode_all_to_all(list(samples.decode_all_to_all)),  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- file


class Provenance(_Model):
    device_kind: Literal["cpu", "cuda"]
    device_name: Name
    device_count: Annotated[int, Field(ge=1, le=100_000)]
    device_memory_bytes: Annotated[float, Field(gt=0, le=1e14)] | None = None
    hardware_profile: Name | None = None
    """The shipped profile this GPU is (None on a CPU, or an unknown GPU)."""
    cpu_threads: Annotated[int, Field(ge=1, le=100_000)] | None = None
    driver_version: Version | None = None
    cuda_version: Version | None = None
    torch_version: Version
    nccl_version: Version | None = None
    python_version: Version
    os: Name
    """Operating system and release; never a host name."""
    date: Annotated[str, Field(max_length=40)]
    """UTC, ISO 8601."""
    mode: Literal["quick", "full", "smoke"]
    model: Name | None = None
    """--model whose GEMM shapes were added, if any."""
    wall_s: Annotated[float, Field(ge=0, le=10**6)]
    costsim_version: Version
    # The GPU's state at the end of the run (nvidia-smi), which moves its rates: an H200 measured 11% faster cold than
    # hot two minutes later (2026-12-04), and a power limit below the board's caps the clocks. None: not known.
    gpu_power_limit_w: Annotated[float, Field(gt=0, le=10_000)] | None = None
    gpu_sm_clock_mhz: Annotated[float, Field(gt=0, le=10_000)] | None = None
    """The SM clock as the run ended (under load, after the warm-up and the benchmarks)."""
    gpu_max_sm_clock_mhz: Annotated[float, Field(gt=0, le=10_000)] | None = None
    gpu_temperature_c: Annotated[float, Field(ge=-50, le=150)] | None = None
    gpu_ecc_mode: Version | None = None
    gpu_mig_mode: Version | None = None
    cudnn_version: Version | None = None

    @field_validator("date")
    @classmethod
    def _iso_date(cls, v: str) -> str:
        try:
            when = datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"date {v!r} is not an ISO 8601 date and time (e.g. 2026-01-31T12:00:00+00:00)") from None
        if when.tzinfo is None:
            raise ValueError(f"date {v!r} has no time zone (calibrations record UTC, e.g. 2026-01-31T12:00:00+00:00)")
        return v


class Workload(_Model):
    """A model and one micro-batch of it on one GPU: where shapes are taken from."""

    model: ModelSpec
    batch: Annotated[int, Field(ge=1, le=2**16)]
    seq_len: Annotated[int, Field(ge=1, le=2**22)]
    tp: Annotated[int, Field(ge=1, le=1024)] = 1

    @property
    def tokens(self) -> int:
        return self.batch * self.seq_len


class CalibrationPlan(_Model):
    """What was measured, so that `costsim calibrate check` can measure the same points again."""

    reference: Workload
    """Attention heads, memory-bound kernel sizes and their byte mix, and GEMM shapes come from it."""
    extra: Annotated[list[Workload], Field(max_length=100)] = []
    """Models whose exact GEMM shapes were added (--model)."""
    dtypes: Annotated[list[PeakDtype], Field(max_length=10)]
    collectives: bool
    """Collectives measured on this machine (torchrun launched by costsim calibrate)."""
    collectives_file: Annotated[str, Field(max_length=4096)] | None = None
    """Collectives taken from a torchrun run of calibrate.collectives elsewhere (e.g. across nodes)."""


class Calibration(_Model):
    schema_name: Literal["costsim-calibration"] = Field(SCHEMA, alias="schema")
    schema_version: int
    provenance: Provenance
    plan: CalibrationPlan
    samples: Samples
    fit: Fit
    notes: Annotated[list[Annotated[str, Field(max_length=4000)]], Field(max_length=10_000)] = []
    """Points skipped (out of memory, unsupported dtype, too slow) and other remarks."""
    sha256: Annotated[str, Field(max_length=64)] = Field(validation_alias=AliasChoices("sha256", "samples_sha256"))
    """SHA-256 of everything above (content_hash); `write_calibration` sets it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _version(self) -> Calibration:
        if self.schema_version not in READ_VERSIONS:
            raise ValueError(
                f"schema_version {self.schema_version} is not supported ({VERSIONS_READ}); "
                "recalibrate with this version: costsim calibrate --output FILE"
            )
        if self.schema_version < SCHEMA_VERSION:
            held = [f"{part}.{key}" for part in ("samples", "fit") for key in SERVING_KEYS if getattr(getattr(self, part), key)]
            if held:
                raise ValueError(
                    f"schema_version {self.schema_version} has no serving measurements but the file holds {', '.join(held)} "
                    f"(version {SCHEMA_VERSION}'s)"
                )
        return self

    @property
    def label(self) -> str:
        p = self.provenance
        return f"{p.device_name}, {p.date[:10]}"

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=1) + "\n"


def _digest(data: object) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def samples_hash(samples: Samples) -> str:
    """SHA-256 of the samples alone (schema version 1's hash; kept for callers that fingerprint samples)."""
    return _digest(samples.model_dump(mode="json"))


GPU_STATE_KEYS = ("gpu_power_limit_w", "gpu_sm_clock_mhz", "gpu_max_sm_clock_mhz", "gpu_temperature_c", "gpu_ecc_mode",
                  "gpu_mig_mode", "cudnn_version")  # fmt: skip
"""Provenance fields added after the first GPU files (Provenance)."""


def content_hash(cal: Calibration) -> str:
    """SHA-256 of the whole calibration (provenance, plan, samples, fit, notes) but its own `sha256`. A version 2 file
    is hashed without the keys version 3 added (it has none), as version 2 hashed it."""
    data = cal.model_dump(mode="json", by_alias=True)
    data.pop("sha256")
    # Files from before these fields: hashed without their defaults.
    for key, field_name, default in (
        ("decode_gemm", "calls_per_timing", 1), ("decode_attention", "calls_per_timing", 1), ("memory", "launches", 0),
        ("decode_gemm", "cuda_graph", False), ("decode_attention", "cuda_graph", False),
    ):  # fmt: skip
        for sample in data["samples"][key]:
            if sample[field_name] == default:
                sample.pop(field_name)
    for key in GPU_STATE_KEYS:  # files from before these fields: hashed without them
        if data["provenance"].get(key) is None:
            data["provenance"].pop(key, None)
    if cal.schema_version < SCHEMA_VERSION:
        for part in ("samples", "fit"):
            for key in SERVING_KEYS:
                data[part].pop(key)
    return _digest(data)


def sealed(cal: Calibration) -> Calibration:
    """The calibration with `sha256` set to its content hash."""
    return cal.model_copy(update={"sha256": content_hash(cal)})


# --------------------------------------------------------------------------- loading and integrity

RECALIBRATE = "measure again: costsim calibrate --output FILE --force (a calibration file is never edited by hand)"
VERSIONS_READ = f"this costsim reads version {SCHEMA_VERSION}, and version 2 without the serving measurements"
BF16_PLAUSIBLE = (0.05, 1.1)
"""Best measured BF16 GEMM rate as a fraction of the named profile's dense peak: a real GPU of that profile measures
~0.5-0.8 in quick mode; a CPU relabelled as a GPU measures < 0.5% (an H100 file from a 2-core CPU: 0.13%)."""
COPY_PLAUSIBLE = (0.05, 1.1)
"""Measured large-copy bandwidth as a fraction of the profile's HBM bandwidth (real GPUs ~0.8-0.95)."""
ABOVE_PEAK = 1.1
"""No measured rate exceeds the datasheet peak (a boost-clock figure) by more than this."""
MEMORY_TOLERANCE = 0.1
"""Device memory recorded by torch against the profile's (the same 10% as profile_for_device)."""
REFIT_RTOL, REFIT_ATOL = 1e-9, 1e-12
"""The recomputed fit against the stored one: the same numbers up to rounding (the fit is deterministic)."""


MAX_SHOWN = 60
"""Characters of a value quoted in an error."""


def _value(x: object) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    text = json.dumps(x) if isinstance(x, str | int | bool) or x is None else type(x).__name__
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _validation_line(path: Path, err: ValidationError) -> str:
    """One line for a file that does not fit the schema: the first problem, where, the value, and the fix."""
    from simulator.inputs.schema_errors import NO_KIND, expected_kind, field_at

    errors = err.errors()
    e = errors[0]
    loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
    msg = "is missing" if e["type"] == "missing" else str(e["msg"]).removeprefix("Value error, ")
    value = e.get("input")
    shown = f" (got {_value(value)})" if not isinstance(value, dict | list) and e["type"] != "missing" else ""
    kind = expected_kind(field_at(Calibration, e["loc"])) if e["type"] not in NO_KIND else None
    takes = f"; {loc} takes {kind}" if kind else ""
    more = f"; {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
    return f"calibration {path}: {loc}: {msg}{shown}{takes}{more}; not a file costsim calibrate wrote: {RECALIBRATE}"


def load_calibration(path: str | Path) -> Calibration:
    """Read, validate and verify a calibration file (SpecError, one line, on anything wrong with it)."""
    path = Path(reference("calibration", path, "the path of a file from costsim calibrate"))
    raw = read_json(path, finite=False)  # the schema names a non-finite number in calibration terms
    if not isinstance(raw, dict):
        raise SpecError(f"calibration {path}: expected a JSON object, got {type(raw).__name__}; {RECALIBRATE}")
    if raw.get("schema") not in (None, SCHEMA):
        raise SpecError(
            f"calibration {path}: not a costsim calibration (schema {raw.get('schema')!r}); write one with costsim calibrate"
        )
    version = raw.get("schema_version")
    if "schema_version" in raw and (isinstance(version, bool) or not isinstance(version, int)):  # not "3", 3.0 or true
        raise SpecError(f"calibration {path}: schema_version {version!r} must be a whole number; {RECALIBRATE}")
    if isinstance(version, int) and version not in READ_VERSIONS:
        older = " (its hash covers the samples only, not the fit and provenance)" if version == 1 else ""
        raise SpecError(
            f"calibration {path}: schema_version {version} is not supported{older} ({VERSIONS_READ}); "
            "recalibrate with costsim calibrate --output FILE"
        )
    if "samples_sha256" in raw:
        raise SpecError(f"calibration {path}: samples_sha256 is schema version 1's field, not {SCHEMA_VERSION}'s; {RECALIBRATE}")
    try:
        cal = Calibration.model_validate(raw)
    except ValidationError as e:
        raise SpecError(_validation_line(path, e)) from None
    verify(cal, path)
    return cal


def verify(cal: Calibration, path: str | Path) -> None:
    """SpecError (one line: the problem, the numbers, the fix) unless the calibration is what costsim calibrate wrote
    on the device it names: the hash matches, the provenance is consistent and possible for its profile, and the fit
    is the fit of the samples."""
    where = f"calibration {path}"
    actual = content_hash(cal)
    if cal.sha256 != actual:
        why = fit_mismatch(cal)
        raise SpecError(
            f"{where}: sha256 {cal.sha256[:12] or '(empty)'}... does not match its content ({actual[:12]}...): it was "
            f"edited after costsim calibrate wrote it{f' ({why})' if why else ''}; {RECALIBRATE}"
        )
    for problem in (provenance_problem(cal), samples_problem(cal)):
        if problem:
            raise SpecError(f"{where}: {problem}; {RECALIBRATE}")
    why = fit_mismatch(cal)
    if why:
        raise SpecError(f"{where}: the stored fit does not follow from its samples: {why}; {RECALIBRATE}")
    p = cal.provenance
    if p.device_kind == "cuda" and p.hardware_profile in hardware_ids():
        problem = implausible_for(cal, load_hardware_file(hardware_ids()[p.hardware_profile]))
        if problem:
            raise SpecError(
                f"{where}: {problem}: not a {p.hardware_profile} calibration (relabelled?); calibrate on that GPU: "
                "costsim calibrate --device cuda --output FILE"
            )


def provenance_problem(cal: Calibration) -> str | None:
    """What in the provenance contradicts itself or the samples, or None."""
    p = cal.provenance
    if p.device_kind == "cpu":
        gpu_only = {"hardware_profile": p.hardware_profile, "driver_version": p.driver_version}
        gpu_only |= {"cuda_version": p.cuda_version, "nccl_version": p.nccl_version}
        for key, value in gpu_only.items():
            if value is not None:
                return f"provenance.device_kind is cpu but provenance.{key} is {_value(value)} (a GPU's); a CPU has none"
        if p.cpu_threads is None:
            return "provenance.device_kind is cpu but provenance.cpu_threads is absent; a CPU calibration records them"
        if p.device_count != 1:
            return f"provenance.device_kind is cpu with device_count {p.device_count}; a CPU calibration measures 1"
        gpu_formats = sorted({s.dtype for s in [*cal.samples.gemm, *cal.samples.decode_gemm]} & {"fp8", "fp4"})
        if gpu_formats:
            return (
                f"provenance.device_kind is cpu but the samples hold {'/'.join(d.upper() for d in gpu_formats)} GEMMs, "
                "which need a CUDA GPU"
            )
    else:
        if p.cpu_threads is not None:
            return f"provenance.device_kind is cuda but provenance.cpu_threads is {p.cpu_threads} (a CPU's)"
        if p.hardware_profile is not None and p.hardware_profile in hardware_ids():
            hw = load_hardware_file(hardware_ids()[p.hardware_profile])
            if hw.name != p.hardware_profile:
                return f"provenance.hardware_profile {p.hardware_profile!r} is an alias; calibrations record the id {hw.name!r}"
            mem = p.device_memory_bytes
            if mem is not None and abs(mem - hw.memory_bytes) > MEMORY_TOLERANCE * hw.memory_bytes:
                return (
                    f"provenance.device_memory_bytes {mem / GIB:.1f} GiB is not the {hw.name}'s {hw.memory_bytes / GIB:.0f} GiB "
                    f"(within {MEMORY_TOLERANCE:.0%})"
                )
            named = profile_for_device(p.device_name, mem)
            if named is not None and named != hw.name:
                return (
                    f"provenance.device_name {p.device_name!r} is a {named}, not the {hw.name} that "
                    "provenance.hardware_profile names"
                )
    when = datetime.fromisoformat(p.date)
    if when > datetime.now(UTC) + timedelta(days=1):
        return f"provenance.date {p.date} is in the future"
    unplanned = sorted({s.dtype for s in cal.samples.gemm} - set(cal.plan.dtypes))
    if unplanned:
        return f"the samples hold {', '.join(unplanned)} GEMMs but plan.dtypes is {', '.join(cal.plan.dtypes) or 'empty'}"
    return None


def samples_problem(cal: Calibration) -> str | None:
    """A sample whose derived numbers contradict its measurement, or a kernel overhead beyond the samples, or None."""
    for i, a in enumerate(cal.samples.decode_all_to_all):
        elements = a.tokens_per_rank * a.copies_per_token * a.hidden
        whole = -(-elements // a.world_size) * a.world_size * a.element_bytes  # rounded up to whole elements per rank
        if not math.isclose(a.size_bytes, whole, rel_tol=1e-9):
            return (
                f"samples.decode_all_to_all.{i}.size_bytes is {a.size_bytes:.6g} but {a.tokens_per_rank} tokens x "
                f"{a.copies_per_token} copies x {a.hidden} x {a.element_bytes} B over {a.world_size} ranks is {whole:.6g}"
            )
    for i, s in enumerate(cal.samples.collectives):
        algbw = s.size_bytes / s.timing.median_s
        if not math.isclose(s.algbw_bytes_per_s, algbw, rel_tol=1e-6):
            return (
                f"samples.collectives.{i}.algbw_bytes_per_s is {s.algbw_bytes_per_s:.6g} but size_bytes / median_s is {algbw:.6g}"
            )
        busbw = algbw * nccl_bus_factor(s.op, s.world_size)
        if not math.isclose(s.busbw_bytes_per_s, busbw, rel_tol=1e-6):
            return (
                f"samples.collectives.{i}.busbw_bytes_per_s is {s.busbw_bytes_per_s:.6g} but the {s.op} bus factor at "
                f"{s.world_size} ranks gives {busbw:.6g}"
            )
    if cal.samples.gemm:
        fastest = min(min(s.forward.median_s, s.input_grad.median_s, s.weight_grad.median_s) for s in cal.samples.gemm)
        overhead = cal.fit.kernel_overhead_s
        if overhead > 1.5 * fastest:
            return (
                f"fit.kernel_overhead_s {overhead:.4g} s (the time of a 16x16x16 GEMM) is above 1.5x the fastest GEMM "
                f"sample, {fastest:.4g} s"
            )
    memory = cal.fit.memory
    if memory is not None:
        total = sum(memory.weights.values())
        if not math.isclose(total, 1.0, rel_tol=1e-6):
            return f"fit.memory.weights sum to {total:.6g}, not 1"
        unknown = sorted(set(memory.weights) - set(memory.by_kernel_bytes_per_s))
        if unknown:
            return f"fit.memory.weights name {', '.join(unknown)}, which no memory sample measured"
    return None


def first_difference(stored: object, again: object, where: str, skip: re.Pattern | None = None) -> str | None:
    """The first number or field where `stored` and `again` differ (beyond rounding), as a phrase; None if none.
    `skip`: paths not compared."""
    if skip is not None and skip.match(where):
        return None
    if isinstance(stored, dict) and isinstance(again, dict):
        for key in sorted(set(stored) | set(again), key=str):
            here = f"{where}.{key}"
            if key not in again:
                return f"{here} is {_value(stored[key])} but its samples give none"
            if key not in stored:
                return f"{here} is absent but its samples give {_value(again[key])}"
            found = first_difference(stored[key], again[key], here, skip)
            if found:
                return found
        return None
    if isinstance(stored, list) and isinstance(again, list):
        if len(stored) != len(again):
            return f"{where} has {len(stored)} values but its samples give {len(again)}"
        for i, (a, b) in enumerate(zip(stored, again, strict=True)):
            found = first_difference(a, b, f"{where}.{i}", skip)
            if found:
                return found
        return None
    numbers = (int, float)
    if isinstance(stored, numbers) and isinstance(again, numbers) and not isinstance(stored, bool):
        if math.isclose(stored, again, rel_tol=REFIT_RTOL, abs_tol=REFIT_ATOL):
            return None
        ratio = f", {stored / again:.4g}x" if again else ""
        return f"{where} is {_value(float(stored))} but its samples give {_value(float(again))}{ratio}"
    if stored != again:
        return f"{where} is {_value(stored)} but its samples give {_value(again)}"
    return None


def fit_mismatch(cal: Calibration) -> str | None:
    """The first number of the stored fit that the fit of the stored samples does not reproduce, or None.

    Recomputed by fit_all above (numpy only: the estimator never imports torch) with the stored kernel overhead and
    memory-kernel weights (a distribution over the measured kernels). The GEMM fit quality needs the step model's
    roofline and is left to `costsim calibrate check`, which also recomputes the weights from the step model."""
    from simulator.errors import CostsimError

    bf16 = sum(s.dtype == "bf16" for s in cal.samples.gemm)
    if bf16 < 2:
        return f"its samples hold {bf16} BF16 GEMM(s), too few for the stored BF16 fit (2 or more)"
    memory = cal.fit.memory
    try:
        again = fit_all(
            cal.samples,
            cal.fit.kernel_overhead_s,
            dict(memory.weights) if memory else None,
            memory.reference if memory else None,
        )
    except (ValueError, ArithmeticError, CostsimError) as e:
        return f"the fit cannot be recomputed from them ({str(e).splitlines()[0]})"
    # Training's fits first, then serving's (which rest on them: an edited GEMM sample moves the decode GEMM fit too).
    stored, refit = cal.fit.model_dump(mode="json"), again.model_dump(mode="json")
    serving = [(key, stored.pop(key), refit.pop(key)) for key in SERVING_KEYS]
    found = first_difference(stored, refit, "fit", UNCHECKED_ON_LOAD)
    for key, a, b in serving:
        found = found or first_difference(a, b, f"fit.{key}", UNCHECKED_ON_LOAD)
    return found


def implausible_for(cal: Calibration, hw: HardwareProfile) -> str | None:
    """What the calibration measured that a `hw` cannot: rates above its peaks, or far below them (another device), or None."""
    fit = cal.fit
    peak = hw.peak_flop_per_s("bf16")
    best = fit.gemm["bf16"].best_flop_per_s
    lo, hi = BF16_PLAUSIBLE
    if not lo <= best / peak <= hi:
        return (
            f"its best BF16 GEMM rate, {best / TERA:.4g} TFLOP/s, is {best / peak:.2%} of the {hw.name} dense BF16 peak "
            f"({peak / TERA:.4g} TFLOP/s), outside the {lo:.0%}-{hi:.0%} a {hw.name} measures"
        )
    for dtype, g in fit.gemm.items():
        peaks = [hw.peak_flop_per_s(d) for d in ((dtype, "tf32") if dtype == "fp32" else (dtype,)) if hw.has_dtype(d)]
        if peaks and g.best_flop_per_s > ABOVE_PEAK * max(peaks):
            return (
                f"its best {dtype} GEMM rate, {g.best_flop_per_s / TERA:.4g} TFLOP/s, is above the {hw.name} dense "
                f"{dtype} peak ({max(peaks) / TERA:.4g} TFLOP/s) x {ABOVE_PEAK}"
            )
    if fit.attention and fit.attention.forward_flop_per_s > ABOVE_PEAK * peak:
        return (
            f"its attention rate, {fit.attention.forward_flop_per_s / TERA:.4g} TFLOP/s, is above the {hw.name} dense "
            f"BF16 peak ({peak / TERA:.4g} TFLOP/s) x {ABOVE_PEAK}"
        )
    decode = [(f"decode {d} GEMM operand bandwidth", g.operand_bytes_per_s) for d, g in fit.decode_gemm.items()]
    decode += [("decode attention KV bandwidth", fit.decode_attention.kv_bytes_per_s)] if fit.decode_attention else []
    for what, rate in decode:
        if rate > ABOVE_PEAK * hw.hbm_bytes_per_s:
            return (
                f"its {what}, {rate / TERA:.4g} TB/s, is above the {hw.name} memory bandwidth "
                f"({hw.hbm_bytes_per_s / TERA:.4g} TB/s) x {ABOVE_PEAK} (read from a cache, not from memory?)"
            )
    copy = fit.memory.copy_bytes_per_s if fit.memory else None
    lo, hi = COPY_PLAUSIBLE
    if copy is not None and not lo <= copy / hw.hbm_bytes_per_s <= hi:
        return (
            f"its copy bandwidth, {copy / TERA:.4g} TB/s, is {copy / hw.hbm_bytes_per_s:.2%} of the {hw.name} memory "
            f"bandwidth ({hw.hbm_bytes_per_s / TERA:.4g} TB/s), outside the {lo:.0%}-{hi:.0%} a {hw.name} measures"
        )
    return None


def check_output_path(path: Path, force: bool) -> None:
    """InputError unless a calibration can be written to `path` (checked before measuring, and again on writing)."""
    refused = refused_name(path)
    if refused is not None:
        raise InputError(f"cannot write --output {path}: {refused}; choose another file name")
    if is_dir(path):
        raise InputError(f"--output {path} is a directory; give a file name such as {path / 'calibration.json'}")
    if os.path.lexists(path) and not force:
        raise InputError(f"--output {path} exists; pass --force to replace it, or choose another file name")
    folder = path.parent
    if not is_dir(folder):
        raise InputError(f"--output {path}: folder {folder} does not exist; create it first")
    why = cannot_create_in(folder)  # before minutes of measuring
    if why is not None:
        raise InputError(f"--output {path}: folder {folder}: {why}; choose another folder")


def write_calibration(cal: Calibration, path: str | Path, force: bool = False) -> Path:
    """Write the calibration (sealed: `sha256` set to its content hash) in one step: a temporary file in the same
    folder, then, without `force`, a hard link to `path` that fails if `path` exists (of concurrent writers exactly
    one succeeds, the others get InputError), with `force` a rename over it."""
    path = Path(path)
    check_output_path(path, force)
    text = sealed(cal).to_json()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)  # a name under the limit
    except OSError as e:
        raise InputError(f"--output {path}: cannot write in {path.parent} ({e.strerror}); choose another folder") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the permissions of any other output
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            _create_exclusively(tmp, path, text)
    except FileExistsError:
        raise InputError(
            f"--output {path} exists (written meanwhile by another process); pass --force to replace it, or choose "
            "another file name"
        ) from None
    except OSError as e:
        raise InputError(f"--output {path}: cannot be written ({e.strerror}); choose another file name or folder") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _create_exclusively(tmp: str, path: Path, text: str) -> None:
    """`path` holding the temporary file's content, created only if it does not exist (FileExistsError otherwise)."""
    try:
        os.link(tmp, path)  # atomic and exclusive: the complete file appears, or nothing
        return
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
    # A file system without hard links: exclusive creation, then the content.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- device description


def profile_for_device(device_name: str, memory_bytes: float | None) -> str | None:
    """The shipped profile whose GPU model appears in the torch device name and whose memory matches (10%)."""
    name = device_name.lower().replace("-", " ")
    best: tuple[int, str] | None = None
    for pid, path in sorted(set((p.stem, p) for p in hardware_ids().values())):
        tokens = pid.split("-")
        if tokens[0] not in name.split():
            continue
        hw = load_hardware_file(path)
        if memory_bytes and abs(memory_bytes - hw.memory_bytes) > 0.1 * hw.memory_bytes:
            continue
        extra = tokens[1:]
        if any(t in ("pcie", "nvl") for t in extra) != any(t in name for t in ("pcie", "nvl")):
            continue
        score = sum(t in name for t in extra)
        if best is None or score > best[0]:
            best = (score, pid)
    return best[1] if best else None


def measured_hardware(cal: Calibration, path: str | Path) -> HardwareProfile:
    """A hardware description of the device a calibration measured, from the calibration alone.

    Peaks are the best measured GEMM rates per dtype, memory bandwidth the large copy, links the
    measured collectives. This is how a CPU is described (it has no shipped profile); the local closed
    loop (costsim validate local) uses it on GPUs too. Built with model_construct because a CPU lies
    outside the GPU ranges HardwareProfile checks (e.g. < 1 TFLOP/s BF16); every value comes from the
    validated calibration.
    """
    p, fit = cal.provenance, cal.fit
    src = "calibration"

    def sourced(value: float, note: str | None = None) -> Sourced:
        return Sourced.model_construct(value=value, source=src, note=note)

    def peak(dtype: str) -> Sourced | None:
        g = fit.gemm.get(dtype)  # type: ignore[call-overload]
        return sourced(g.best_flop_per_s / TERA, "best measured GEMM rate") if g else None

    bf16 = peak("bf16")
    assert bf16 is not None  # Fit requires bf16
    if fit.memory is None:
        raise InputError(f"calibration {path} has no memory-bandwidth fit; recalibrate without skipping the memory benchmark")
    if not p.device_memory_bytes:  # the OS did not say (sysconf failed): a 0-byte device would refuse every layout
        raise InputError(
            f"calibration {path} records no memory size for its {p.device_kind} device (provenance.device_memory_bytes); "
            "recalibrate on a machine that reports it"
        )
    memory_bw = fit.memory.copy_bytes_per_s or fit.memory.memory_bound_bytes_per_s
    up = fit.collectives.get("scale_up")
    link = up.busbw_bytes_per_s if up else memory_bw
    att_eff = fit.attention.forward_flop_per_s / bf16.value / TERA if fit.attention else 0.5
    hbm_eff = fit.memory.memory_bound_bytes_per_s / memory_bw
    eff = EfficiencyDefaults.model_construct(
        gemm_best={d: sourced(1.0) for d in fit.gemm},
        attention=sourced(min(1.0, att_eff)),
        hbm=sourced(min(1.0, hbm_eff)),
        scale_up_bus=sourced(1.0),
        scale_out_bus=sourced(1.0),
        collective_latency_us=sourced((up.latency_s if up else 0.0) / MICRO),
    )
    return HardwareProfile.model_construct(
        name=CPU_DEVICE if p.device_kind == "cpu" else f"measured-{p.hardware_profile or 'gpu'}",
        aliases=[],
        display_name=p.device_name,
        vendor="cpu",
        sources={
            src: f"costsim calibration {path} ({cal.label})",
            "no_price": "no price for a measured device: pass --usd-per-gpu-hour",
        },
        dense_tflop_per_s=DensePeaks.model_construct(fp32=peak("fp32"), tf32=None, bf16=bf16, fp16=peak("fp16"), fp8=None),
        memory_gib=sourced(p.device_memory_bytes / GIB),
        memory_bandwidth_tb_per_s=sourced(memory_bw / TERA),
        scale_up=ScaleUp.model_construct(
            tech="shared memory", gb_per_s_per_direction=sourced(link / GIGA), domain_gpus=sourced(1)
        ),
        scale_out=ScaleOut.model_construct(tech="none", gbit_per_s_per_gpu=sourced(link * 8 / GIGA)),
        gpus_per_node=sourced(1),
        tdp_w=sourced(0.0),
        purchase_usd=None,
        price=Price.model_construct(usd_per_gpu_hour=0.0, kind="assumed", date=p.date[:7], source="no_price"),
        efficiency=eff,
        sm_count=None,
    )
