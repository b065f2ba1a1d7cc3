"""Synthetic calibration files built from fixed samples (no measuring): a CPU and an 8x H100 node, sealed as
`costsim calibrate` writes them. Shared by the integrity and efficiency tests."""

from __future__ import annotations

from calibrate.run import CPU_REFERENCE, CUDA_REFERENCE, fit_all
from simulator.inputs.calibration import (
    SCHEMA_VERSION,
    AttentionSample,
    Calibration,
    CalibrationPlan,
    CollectiveSample,
    GemmSample,
    MemorySample,
    Provenance,
    Samples,
    Timing,
    Workload,
    sealed,
)
from simulator.model.comms import bus_factor

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
DATE = "2026-01-01T00:00:00+00:00"
H100_NAME = "NVIDIA H100 80GB HBM3"


# --------------------------------------------------------------------------- synthetic calibrations


def _timing(t: float) -> Timing:
    return Timing(median_s=t, min_s=0.97 * t, spread=0.02, repeats=10)


def _gemms(dtype: str, sizes: list[int], peak: float, knee: float, overhead: float) -> list[GemmSample]:
    """t = F / (peak · r(F)) + overhead with r = min(1, (F / knee)^0.3); the gradients a little slower."""
    out = []
    for s in sizes:
        flops = 2.0 * s**3
        t = flops / (peak * min(1.0, (flops / knee) ** 0.3)) + overhead
        out.append(
            GemmSample(m=s, n=s, k=s, dtype=dtype, forward=_timing(t), input_grad=_timing(1.1 * t), weight_grad=_timing(1.05 * t))  # type: ignore[arg-type]
        )
    return out


def _attention(ref: Workload, seq_lens: list[int], head_dim: int, rate: float) -> list[AttentionSample]:
    m = ref.model
    out = []
    for s in seq_lens:
        flops = 4.0 * ref.batch * m.n_heads * s**2 * head_dim / 2.0
        fwd = flops / rate * (1.0 + 1e5 / flops)
        out.append(
            AttentionSample(
                batch=ref.batch,
                heads=m.n_heads,
                kv_heads=m.n_kv_heads,
                seq_len=s,
                head_dim=head_dim,
                dtype="bf16",
                forward=_timing(fwd),
                backward=_timing(2.3 * fwd),
            )  # fmt: skip
        )
    return out


def _memory(copy_rate: float, kernel_rate: float) -> list[MemorySample]:
    rates = {"copy": copy_rate, "layer": kernel_rate, "cross_entropy": 0.8 * kernel_rate}
    rates |= {"embedding": 0.5 * kernel_rate, "optimizer": 0.9 * kernel_rate}
    out = []
    for kernel, rate in rates.items():
        counted = 4.0 * 2**24
        out.append(
            MemorySample(kernel=kernel, dtype="bf16", elements=2**24, counted_bytes=counted, timing=_timing(counted / rate))
        )
    return out


def _collectives(backend: str, n: int, latency: float, busbw: float) -> list[CollectiveSample]:
    out = []
    for op in OPS:
        for size in (2.0**12, 2.0**16, 2.0**20, 2.0**24):
            factor = float(bus_factor(op, n))  # type: ignore[arg-type]
            t = latency + factor * size / busbw
            algbw = size / t
            out.append(
                CollectiveSample(
                    op=op,
                    backend=backend,
                    world_size=n,
                    tier="scale_up",
                    size_bytes=size,
                    timing=_timing(t),  # type: ignore[arg-type]
                    algbw_bytes_per_s=algbw,
                    busbw_bytes_per_s=algbw * factor,
                )  # fmt: skip
            )
    return out


def _calibration(prov: Provenance, ref: Workload, samples: Samples, overhead: float, dtypes: list[str]) -> Calibration:
    plan = CalibrationPlan(reference=ref, dtypes=dtypes, collectives=True)  # type: ignore[arg-type]
    notes: list[str] = []
    fitted = fit_all(samples, overhead, ref, notes)
    cal = Calibration(
        schema_version=SCHEMA_VERSION, provenance=prov, plan=plan, samples=samples, fit=fitted, notes=notes, sha256=""
    )  # type: ignore[call-arg]
    return sealed(cal)


def cpu_calibration() -> Calibration:
    """A 2-thread-class CPU: BF16 GEMMs up to 100 GFLOP/s, 10 GB/s copies, gloo between two processes."""
    overhead = 5e-6
    samples = Samples(
        gemm=_gemms("bf16", [64, 128, 256, 512, 1024], 100e9, 2e9, overhead)
        + _gemms("fp32", [64, 128, 256, 512], 60e9, 2e9, overhead),
        attention=_attention(CPU_REFERENCE, [128, 256, 512], 64, 50e9),
        memory=_memory(10e9, 5e9),
        collectives=_collectives("gloo", 2, 100e-6, 1e9),
    )
    prov = Provenance(
        device_kind="cpu", device_name="Test CPU @ 2.0GHz", device_count=1, device_memory_bytes=64 * 2**30, cpu_threads=1,
        torch_version="2.13.0+cpu", python_version="3.12.0", os="Linux 6.8", date=DATE, mode="quick", wall_s=90.0,
        costsim_version="0.1.0",
    )  # fmt: skip
    return _calibration(prov, CPU_REFERENCE, samples, overhead, ["bf16", "fp32"])


def h100_calibration() -> Calibration:
    """An 8x H100 SXM node: BF16 GEMMs up to ~700 TFLOP/s, FP8 ~1.3 PFLOP/s, 3 TB/s copies, NVLink at 350 GB/s."""
    overhead = 5e-6
    squares = [256, 512, 1024, 2048, 4096, 8192]
    samples = Samples(
        gemm=_gemms("bf16", squares, 700e12, 1e11, overhead) + _gemms("fp8", squares, 1300e12, 2e11, overhead),
        attention=_attention(CUDA_REFERENCE, [1024, 2048, 4096], 128, 400e12),
        memory=_memory(3.0e12, 2.0e12),
        collectives=_collectives("nccl", 8, 20e-6, 350e9),
    )
    prov = Provenance(
        device_kind="cuda", device_name=H100_NAME, device_count=8, device_memory_bytes=79.2 * 2**30,
        hardware_profile="h100-sxm", driver_version="550.54.15", cuda_version="12.4", torch_version="2.13.0",
        nccl_version="2.21.5", python_version="3.12.0", os="Linux 6.8", date=DATE, mode="quick", wall_s=240.0,
        costsim_version="0.1.0",
    )  # fmt: skip
    return _calibration(prov, CUDA_REFERENCE, samples, overhead, ["bf16", "fp8"])
