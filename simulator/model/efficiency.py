"""Achieved rates of one GPU: GEMMs by shape and dtype, attention, HBM, links.

GEMM time is a roofline with a fixed per-kernel cost (docs/model.md §7.1):
    t = max(FLOPs / (peak · η), bytes / (HBM · η_hbm)) + t_kernel
with η = best-shape matmul fraction (MAMF, per GPU and dtype, from the profile or a calibration)
x the sustained-load factor (global assumption), x the block-scaling factor for FP8 GEMMs with fine-grained
scaling (the DeepSeek-V3 recipe; applied by the step model, which knows the recipe).
Small or skinny GEMMs (few tokens per expert, small K) become memory-bound through the roofline.
A hardware profile (EfficiencyDefaults.gemm_shape / attention_shape, from published measurements) or a calibration
file (simulator/inputs/calibration.py; calibrated_rates below, which replaces the profile's curve for what it measured)
may add a shape curve: η x r(FLOPs per call), with r <= 1 interpolated in log FLOPs and clamped at the ends, and the
same for the attention kernel (docs/model.md §7.1, §7.7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulator.errors import InputError
from simulator.inputs.assumptions import Assumptions
from simulator.inputs.calibration import CPU_DEVICE, Calibration, MemoryFit, load_calibration, measured_hardware
from simulator.inputs.catalog import load_hardware
from simulator.inputs.specs import HardwareProfile
from simulator.model.comms import AllReduceFloor, Fabric
from simulator.units import BYTES_PER_ELEMENT
from simulator.vocab import PEAK_DTYPES

# Attention kernels (FlashAttention) report FLOPs with backward = 2.5 x forward because the backward
# recomputes the scores (flash-attention benchmarks/benchmark_flash_attention.py::flops).
FA_BACKWARD_OVER_FORWARD = 2.5
# Older flash-attention kernels were slower in the backward than in the forward, relative to FlashAttention-2: the
# Triton kernel (llm-foundry 2023) ran the forward 1.3-1.5x and the backward about 2x slower than FA2 (Dao 2023,
# arXiv:2307.08691, §4.1, A100). So its backward takes 2 / 1.4 times FA2's share of the kernel's time; the profile's
# figure for such a kernel is its forward + backward rate, which this split keeps (docs/model.md §7.5).
KERNEL_BACKWARD_SLOWDOWN = {"triton-fa": 2.0 / 1.4}


def attention_split(kernel: str | None, combined_efficiency: float) -> tuple[float, float]:
    """(forward efficiency, backward / forward time) of a flash-attention kernel whose forward + backward run at
    `combined_efficiency` of the peak (FA FLOP convention): the forward's share of the time is 1 / (1 + ratio), so
    forward_efficiency = combined · (1 + ratio) / (1 + 2.5)."""
    ratio = FA_BACKWARD_OVER_FORWARD * KERNEL_BACKWARD_SLOWDOWN.get(kernel or "", 1.0)
    return combined_efficiency * (1.0 + ratio) / (1.0 + FA_BACKWARD_OVER_FORWARD), ratio


# The inner dimension at which a profile's inner-dimension term is 1: the largest K of the published Hopper table it
# is fitted to (OpenXLA's sm_90 matmul table reaches K = 4096), which is also where that table's FLOPs-per-call curve
# reaches 1 (docs/model.md §7.1).
INNER_DIM_REFERENCE = 4096
INNER_DIM_SMALLEST = 256
"""The shortest K of that table: below it the term holds its value at 256 rather than extrapolate."""
INNER_DIM_DTYPES = ("bf16", "fp16")
"""The term is fitted to BF16 GEMMs (FP16 runs on the same tensor cores); FP8's main loop runs twice as fast, so its
per-tile cost in elements of K is not this one, and FP8 GEMMs, like FP8's FLOPs-per-call curve, have no term."""


@dataclass(frozen=True)
class DeviceRates:
    name: str
    peak_flop_per_s: dict[str, float]
    gemm_efficiency: dict[str, float]
    attention_flop_per_s: float
    hbm_bytes_per_s: float
    fabric: Fabric
    kernel_overhead_s: float
    source: str
    """Which calibration or which defaults these rates come from."""
    gemm_curves: dict[str, Curve] = field(default_factory=dict)
    """Per dtype, measured GEMM efficiency against FLOPs per call relative to the best shape (calibration)."""
    attention_curve: Curve | None = None
    """Measured attention forward rate against forward FLOPs per call, relative to attention_flop_per_s."""
    attention_backward_over_forward: float = FA_BACKWARD_OVER_FORWARD
    """Backward / forward time of the attention kernel: the FA FLOP convention, or measured."""
    gemm_inner_overhead: float | None = None
    """The profile's per-tile GEMM overhead in elements of the inner dimension K (inner_dim_efficiency); None: no
    inner-dimension term (GPUs without a published figure, and calibrated rates, whose measured curve replaces it)."""
    expert_launch_host_s: float = 0.0
    """Least time per local expert GEMM where the stack launches experts one by one after a host sync
    (Assumptions.expert_launch_host_s on such a stack, else 0: scenario.stack_rates)."""
    expert_quantize_host_s: float = 0.0
    """What FP8 current scaling adds to each of those expert GEMMs with the `tensor` recipe (Assumptions.
    expert_quantize_host_s where the stack scales its tensor recipe by the current amax, else 0)."""
    step_host_s: float = 0.0
    """Time each optimizer step adds outside the per-layer model on the stack (Assumptions.step_host_s where the stack
    has `step_host: fitted`, else 0: scenario.stack_rates)."""
    gemm_operand_bytes_per_s: float | None = None
    """Bandwidth GEMM operands stream at (a large copy), where it differs from the memory-bound kernels'
    hbm_bytes_per_s (on a CPU by 10x); None: hbm_bytes_per_s."""
    decode_gemm_bandwidth: dict[str, tuple[float, Curve]] = field(default_factory=dict)
    """Serving rates of a calibration, per dtype: (best operand bytes/s, curve of its relative value against bytes moved
    per call) measured on GEMMs of few tokens; the roofline's memory term of that dtype runs at it (docs/model.md
    §16.13). Empty: gemm_operand_bytes_per_s."""
    kv_read_bytes_per_s: float | None = None
    """The achieved KV-cache read bandwidth of decode attention: a calibration's, else the profile's published
    efficiency.decode_attention; None: hbm_bytes_per_s."""
    kv_read_curve: Curve | None = None
    """Its relative value against KV bytes read per call."""
    memory_bytes_per_s_by_kind: dict[str, float] = field(default_factory=dict)
    """Rates of the memory-bound kernel classes the step model names ("layer", "cross_entropy", "embedding",
    "optimizer"), where a calibration measured each of the trainer's own (the closed loop); empty: every class at
    hbm_bytes_per_s. One blended rate charges a step whose mix differs from the calibration's reference wrongly: a
    2.7B model's fused AdamW ran at 2.4x the rate of its layers' norms and activations on an H200 (docs/model.md §7.6)."""

    def gemm_s(
        self, m: float, n: float, k: float, dtype: str, count: float = 1.0, compute_factor: float = 1.0,
        weight_gemm: bool = False,
    ) -> float:  # fmt: skip
        """Time of `count` GEMMs [m x k] . [k x n] in `dtype` (operands in dtype, output in BF16).

        `compute_factor` scales the compute rate of a kernel variant, e.g. FP8 with fine-grained block scaling.
        `weight_gemm`: a layer's weight GEMM or one of its gradients, to which the profile's inner-dimension term
        applies; the attention core's batched GEMMs (K = head dim, far below the 256-4096 the term was fitted on) are
        bounded by the roofline's output traffic instead."""
        # Array-friendly (the layout search calls it with numpy arrays): no branches on values.
        flops = 2.0 * m * n * k
        # The binding one of the two published shape limits: small work per call (the curve) or a short inner
        # dimension at any size (inner_dim_efficiency). The curve's medians already hold the short K of small calls.
        shape = _relative(self.gemm_curves.get(dtype), flops)
        if weight_gemm and dtype in INNER_DIM_DTYPES:
            shape = np.minimum(shape, inner_dim_efficiency(k, self.gemm_inner_overhead))
        rate = self.peak_flop_per_s[dtype] * self.gemm_efficiency[dtype] * shape * compute_factor
        moved = gemm_bytes_moved(m, n, k, dtype)
        bandwidth = self.gemm_operand_bytes_per_s or self.hbm_bytes_per_s
        decode = self.decode_gemm_bandwidth.get(dtype)
        if decode is not None:
            bandwidth = decode[0] * _relative(decode[1], moved)
        t = count * gemm_roofline_s(flops, rate, moved, bandwidth, self.kernel_overhead_s)
        return np.where((m > 0) & (n > 0) & (k > 0) & (count > 0), t, 0.0)

    def attention_s(self, forward_flops: float) -> tuple[float, float]:
        """(forward, backward) seconds of a flash-attention core doing `forward_flops` in its forward."""
        fwd = forward_flops / (self.attention_flop_per_s * _relative(self.attention_curve, forward_flops))
        return fwd, self.attention_backward_over_forward * fwd

    def memory_s(self, n_bytes: float, kind: str | None = None) -> float:
        """Seconds of memory-bound work moving `n_bytes`; `kind`: its kernel class, at its measured rate where known."""
        return n_bytes / self.memory_bytes_per_s_by_kind.get(kind, self.hbm_bytes_per_s)

    def kv_read_s(self, kv_bytes):
        """Seconds for decode attention to read `kv_bytes` of KV cache in one call: at the decode-attention bandwidth
        (a calibration's, with its curve, or the profile's published one) where known, else at hbm_bytes_per_s."""
        if self.kv_read_bytes_per_s is None:
            return kv_bytes / self.hbm_bytes_per_s
        return kv_bytes / (self.kv_read_bytes_per_s * _relative(self.kv_read_curve, kv_bytes))


def inner_dim_efficiency(k, overhead: float | None):
    """GEMM rate at inner dimension `k` relative to the rate at INNER_DIM_REFERENCE, at most 1.

    Each output tile pays a fixed cost (filling the operand pipeline, the epilogue) worth `overhead` elements of its
    K loop, so a GEMM runs at k / (k + overhead) of its long-K rate whatever its M and N (docs/model.md §7.1). This is
    what makes the forward and input-gradient GEMMs of a small model (K = d_model) slower than its FLOPs per call
    say; the weight-gradient GEMM's K is the token count. None: 1."""
    if overhead is None:
        return 1.0
    k = np.maximum(k, INNER_DIM_SMALLEST)
    at_k = k / (k + overhead)
    at_reference = INNER_DIM_REFERENCE / (INNER_DIM_REFERENCE + overhead)
    return np.minimum(1.0, at_k / at_reference)


def fit_inner_overhead(points: list[tuple[float, float]]) -> float:
    """The overhead (elements of K) that fits measured (k, FLOP/s) pairs of large-output GEMMs best: least squares of
    log rate against log(k / (k + overhead)) plus one free level, over whole-element overheads 1-2,000."""
    k = np.array([p[0] for p in points], dtype=float)
    log_rate = np.log(np.array([p[1] for p in points], dtype=float))
    overheads = np.arange(1.0, 2001.0)
    model = np.log(k[None, :] / (k[None, :] + overheads[:, None]))
    resid = log_rate[None, :] - model
    resid -= resid.mean(axis=1, keepdims=True)
    return float(overheads[np.argmin((resid**2).sum(axis=1))])


def gemm_bytes_moved(m, n, k, dtype: str):
    """HBM bytes of one GEMM [m x k] . [k x n]: both operands in `dtype`, the output written in BF16."""
    return BYTES_PER_ELEMENT[dtype] * (m * k + k * n) + BYTES_PER_ELEMENT["bf16"] * m * n


def gemm_roofline_s(flops, flop_per_s, bytes_moved, bytes_per_s, kernel_overhead_s):
    """One GEMM: the slower of compute and operand traffic, plus the fixed cost of a kernel. The step model and
    the calibration fit (calibrate/fit.py) both use it, so the fitted rates mean what the model reads."""
    return np.maximum(flops / flop_per_s, bytes_moved / bytes_per_s) + kernel_overhead_s


Curve = tuple[tuple[float, ...], tuple[float, ...]]
"""(ln of the work per call, relative efficiency in (0, 1]), the first ascending."""


def _relative(curve: Curve | None, work: float) -> float:
    """Relative efficiency at `work` per call; 1 without a curve. Clamped outside the measured range."""
    if curve is None:
        return 1.0
    return np.interp(np.log(np.maximum(work, 1.0)), curve[0], curve[1])


def device_rates(hw: HardwareProfile, assumptions: Assumptions, attention_kernel: str | None = None) -> DeviceRates:
    """The profile's default rates. `attention_kernel`: the flash-attention kernel of the software stack (a key of the
    profile's efficiency.attention_kernels; None or one the profile lacks: today's kernel, `attention`)."""
    eff = hw.efficiency
    peaks: dict[str, float] = {}
    gemm: dict[str, float] = {}
    for dtype in PEAK_DTYPES:
        if not hw.has_dtype(dtype):
            continue
        peaks[dtype] = hw.peak_flop_per_s(dtype)
        best = eff.gemm_best.get(dtype) or eff.gemm_best["bf16"]
        gemm[dtype] = best.value * assumptions.gemm_sustain
    fabric = Fabric(
        scale_up_bytes_per_s=hw.scale_up_bytes_per_s * eff.scale_up_bus.value,
        scale_out_bytes_per_s=hw.scale_out_bytes_per_s * eff.scale_out_bus.value,
        domain_gpus=hw.domain_gpus,
        latency_s=eff.collective_latency_s,
        all_reduce_floors=tuple(
            AllReduceFloor.from_table(t.domains, t.ranks_per_domain, *t.lower_envelope()) for t in eff.all_reduce_measured
        ),
    )
    # The backward / forward split of a stack's older kernel applies where the profile has that kernel's own figure.
    own_kernel = attention_kernel if attention_kernel in eff.attention_kernels else None
    attention_eff, attention_ratio = attention_split(own_kernel, eff.attention_for(attention_kernel).value)
    assumed = [k for k, v in _efficiency_sources(hw, attention_kernel).items() if v == "assumption"]
    source = f"defaults of hardware profile {hw.name}" + (f" (assumed: {', '.join(assumed)})" if assumed else "")
    return DeviceRates(
        name=hw.name,
        peak_flop_per_s=peaks,
        gemm_efficiency=gemm,
        attention_flop_per_s=hw.peak_flop_per_s("bf16") * attention_eff,
        attention_backward_over_forward=attention_ratio,
        hbm_bytes_per_s=hw.hbm_bytes_per_s * eff.hbm.value,
        fabric=fabric,
        kernel_overhead_s=assumptions.kernel_overhead_s,
        source=source,
        gemm_curves={d: c.as_curve() for d, c in eff.gemm_shape.items() if d in peaks},
        attention_curve=eff.attention_shape.as_curve() if eff.attention_shape else None,
        gemm_inner_overhead=eff.gemm_inner_overhead.value if eff.gemm_inner_overhead else None,
        kv_read_bytes_per_s=hw.hbm_bytes_per_s * eff.decode_attention.value if eff.decode_attention else None,
    )


def _efficiency_sources(hw: HardwareProfile, attention_kernel: str | None = None) -> dict[str, str]:
    eff = hw.efficiency
    out = {f"gemm_best.{k}": v.source for k, v in eff.gemm_best.items()}
    out["attention"] = eff.attention_for(attention_kernel).source
    for name in ("hbm", "scale_up_bus", "scale_out_bus", "collective_latency_us"):
        out[name] = getattr(eff, name).source
    if eff.gemm_inner_overhead is not None:
        out["gemm_inner_overhead"] = eff.gemm_inner_overhead.source
    if eff.decode_attention is not None:
        out["decode_attention"] = eff.decode_attention.source
    return out


# --------------------------------------------------------------------------- rates from a calibration file


def calibrated_device(
    gpu: str, path: str | Path, assumptions: Assumptions, serving: bool = False
) -> tuple[HardwareProfile, DeviceRates]:
    """(hardware profile, rates) for `--gpu` with the calibration file at `path` applied. `serving`: with the serving
    fits too (costsim serve; see calibrated_rates)."""
    cal = load_calibration(path)
    p = cal.provenance
    if p.device_kind == "cpu":
        if gpu.strip().lower() != CPU_DEVICE:
            raise InputError(
                f"calibration {path} was measured on a CPU ({p.device_name}), not on {gpu}; pass --gpu {CPU_DEVICE} to "
                f"estimate on that CPU, or calibrate on a {gpu} (costsim calibrate --device cuda on that machine)"
            )
        hw = measured_hardware(cal, path)
        return hw, calibrated_rates(cal, hw, assumptions, path, serving=serving)
    hw = load_hardware(gpu)
    if p.hardware_profile != hw.name:
        measured = f"profile {p.hardware_profile}" if p.hardware_profile else "no shipped profile"
        raise InputError(
            f"calibration {path} was measured on {p.device_name} ({measured}), not on {hw.name}; "
            + (f"pass --gpu {p.hardware_profile}" if p.hardware_profile else "calibrate again with --profile ID")
            + f", or calibrate on a {hw.name}"
        )
    return hw, calibrated_rates(cal, hw, assumptions, path, memory_bound_kernels=False, serving=serving)


def calibrated_rates(
    cal: Calibration,
    hw: HardwareProfile,
    assumptions: Assumptions,
    path: str | Path,
    memory_bound_kernels: bool = True,
    serving: bool = False,
) -> DeviceRates:
    """The profile's default rates with every term the calibration measured replaced by the measurement.

    `memory_bound_kernels`: memory time at the measured rate of the trainer's own memory-bound kernels
    (the closed loop, and a CPU, whose only software stack is that trainer); False: at the measured copy
    bandwidth, the achievable HBM bandwidth that fused kernels of a production stack approach.
    `serving`: also the serving fits (docs/model.md §16.13): the decode GEMMs' operand bandwidth per dtype, the
    decode-attention KV bandwidth, and the decode all-to-all latency for the EP exchange (scale-out tier if measured,
    else scale-up). Without it the rates are the training rates, exactly as before.
    """
    base = device_rates(hw, assumptions)
    fit = cal.fit
    gemm_eff = dict(base.gemm_efficiency)
    curves = dict(base.gemm_curves)  # a profile's published curve stays for dtypes the calibration did not measure
    for dtype, g in fit.gemm.items():
        if dtype not in base.peak_flop_per_s:
            continue
        gemm_eff[dtype] = min(1.0, g.best_flop_per_s / base.peak_flop_per_s[dtype]) * assumptions.gemm_sustain
        curves[dtype] = g.curve.as_curve()
    fabric = base.fabric
    up = fit.collectives.get("scale_up")
    out = fit.collectives.get("scale_out")
    a2a = fit.decode_all_to_all.get("scale_out") or fit.decode_all_to_all.get("scale_up") if serving else None
    fabric = Fabric(
        scale_up_bytes_per_s=up.busbw_bytes_per_s if up else fabric.scale_up_bytes_per_s,
        scale_out_bytes_per_s=out.busbw_bytes_per_s if out else fabric.scale_out_bytes_per_s,
        domain_gpus=fabric.domain_gpus,
        latency_s=(out or up).latency_s if (out or up) else fabric.latency_s,
        all_to_all_latency_s=a2a.latency_s if a2a else None,
        # Published tables of groups across nodes stay unless this calibration measured the network itself.
        all_reduce_floors=() if out else fabric.all_reduce_floors,
    )
    att = fit.attention
    measured = ["GEMM " + "/".join(sorted(d for d in fit.gemm if d in base.peak_flop_per_s))]
    measured += ["attention"] if att else []
    measured += ["memory-bound kernels"] if fit.memory else []
    measured += [f"{t} collectives" for t in fit.collectives]
    decode_gemm = {
        d: (g.operand_bytes_per_s, g.curve.as_curve()) for d, g in fit.decode_gemm.items() if d in base.peak_flop_per_s
    }
    kv = fit.decode_attention if serving else None
    if serving:
        decoded = "/".join(sorted(decode_gemm))
        measured += [f"decode GEMM {decoded}"] if decoded else []
        measured += ["decode attention"] if kv else []
        measured += [f"{'scale_out' if 'scale_out' in fit.decode_all_to_all else 'scale_up'} decode all-to-all"] if a2a else []
        missing = [what for what, have in (("decode GEMM", decode_gemm), ("decode attention", kv), ("decode all-to-all", a2a))
                   if not have]  # fmt: skip
        measured += [f"not measured, defaults: {', '.join(missing)}"] if missing else []
    return DeviceRates(
        name=hw.name,
        peak_flop_per_s=base.peak_flop_per_s,
        gemm_efficiency=gemm_eff,
        attention_flop_per_s=att.forward_flop_per_s if att else base.attention_flop_per_s,
        hbm_bytes_per_s=_memory_rate(fit.memory, memory_bound_kernels) or base.hbm_bytes_per_s,
        fabric=fabric,
        kernel_overhead_s=fit.kernel_overhead_s,
        source=f"calibration {path} ({cal.label}; measured: {', '.join(measured)})",
        gemm_curves=curves,
        attention_curve=att.curve.as_curve() if att else base.attention_curve,
        attention_backward_over_forward=att.backward_over_forward if att else base.attention_backward_over_forward,
        gemm_operand_bytes_per_s=fit.memory.copy_bytes_per_s if fit.memory else None,
        decode_gemm_bandwidth=decode_gemm if serving else {},
        kv_read_bytes_per_s=kv.kv_bytes_per_s if kv else base.kv_read_bytes_per_s,
        kv_read_curve=kv.curve.as_curve() if kv else None,
        memory_bytes_per_s_by_kind=dict(fit.memory.by_kernel_bytes_per_s) if fit.memory and memory_bound_kernels else {},
    )


def _memory_rate(memory: MemoryFit | None, memory_bound_kernels: bool) -> float | None:
    if memory is None:
        return None
    return memory.memory_bound_bytes_per_s if memory_bound_kernels else memory.copy_bytes_per_s
