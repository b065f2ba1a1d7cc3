"""Synthetic calibration files built from fixed samples (no measuring): a CPU and an 8x H100 node, sealed as
`costsim calibrate` writes them, serving measurements included (decode GEMMs, decode attention, decode all-to-all).
Shared by the integrity, efficiency and serving-calibration tests."""

from __future__ import annotations

from calibrate.run import CPU_REFERENCE, CUDA_REFERENCE, fit_all
from simulator.inputs.calibration import (
    SCHEMA_VERSION,
    AttentionSample,
    Calibration,
    CalibrationPlan,
    CollectiveSample,
    DecodeAllToAllSample,
    DecodeAttentionSample,
    DecodeGemmSample,
    GemmSample,
    MemorySample,
    Provenance,
    Samples,
    Timing,
    Workload,
    operand_bytes,
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


def _decode_gemms(dtype: str, weights: list[tuple[int, int]], peak: float, knee: float, operand_rate: float,
                  overhead: float) -> list[DecodeGemmSample]:  # fmt: skip
    """Decode GEMMs at 1-256 tokens: t = max(F / (peak · r(F)), bytes / operand_rate) + overhead (r as in _gemms)."""
    out = []
    for n, k in weights:
        for m in (1, 8, 64, 256):
            flops = 2.0 * m * n * k
            moved = operand_bytes(m, n, k, dtype)
            t = max(flops / (peak * min(1.0, (flops / knee) ** 0.3)), moved / operand_rate) + overhead
            out.append(DecodeGemmSample(m=m, n=n, k=k, dtype=dtype, timing=_timing(t)))  # type: ignore[arg-type]
    return out


def decode_attention(ref: Workload, kv_rate: float, overhead: float) -> list[DecodeAttentionSample]:
    """Decode attention at batch 1-16 x context 256-4096, reading its KV cache at `kv_rate`: t = kv / kv_rate + overhead."""
    m = ref.model
    out = []
    for batch in (1, 4, 16):
        for context in (256, 1024, 4096):
            kv = 2.0 * batch * context * m.n_kv_heads * m.head_dim * 2
            out.append(
                DecodeAttentionSample(
                    batch=batch,
                    heads=m.n_heads,
                    kv_heads=m.n_kv_heads,
                    context=context,
                    head_dim=m.head_dim,
                    dtype="bf16",
                    timing=_timing(kv / kv_rate + overhead),
                )  # fmt: skip
            )
    return out


def _decode_all_to_all(backend: str, n: int, hidden: int, latency: float, rate: float) -> list[DecodeAllToAllSample]:
    """t = latency + size / rate for 1-256 tokens per rank of 8 routed copies of `hidden` BF16 elements."""
    out = []
    for tokens in (1, 8, 64, 256):
        size = float(-(-tokens * 8 * hidden // n) * n * 2)
        out.append(
            DecodeAllToAllSample(
                backend=backend,
                world_size=n,
                tier="scale_up",
                tokens_per_rank=tokens,
                copies_per_token=8,
                hidden=hidden,
                element_bytes=2,
                size_bytes=size,
                timing=_timing(latency + size / rate),
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


CPU_DECODE = {"operand_rate": 8e9, "kv_rate": 2e9, "a2a_latency": 300e-6, "a2a_rate": 0.5e9}
H100_DECODE = {"operand_rate": 3.0e12, "kv_rate": 1.5e12, "a2a_latency": 15e-6, "a2a_rate": 150e9}
"""The serving rates the synthetic files are timed at (decode GEMM operand bandwidth, decode-attention KV bandwidth,
decode all-to-all latency and per-rank bandwidth)."""


def cpu_calibration(kv_rate: float = CPU_DECODE["kv_rate"], serving: bool = True) -> Calibration:
    """A 2-thread-class CPU: BF16 GEMMs up to 100 GFLOP/s, 10 GB/s copies, gloo between two processes. `kv_rate`: its
    decode-attention bandwidth; `serving`: with the serving measurements (schema version 3's)."""
    overhead = 5e-6
    d = CPU_DECODE
    samples = Samples(
        gemm=_gemms("bf16", [64, 128, 256, 512, 1024], 100e9, 2e9, overhead)
        + _gemms("fp32", [64, 128, 256, 512], 60e9, 2e9, overhead),
        attention=_attention(CPU_REFERENCE, [128, 256, 512], 64, 50e9),
        memory=_memory(10e9, 5e9),
        collectives=_collectives("gloo", 2, 100e-6, 1e9),
        decode_gemm=_decode_gemms("bf16", [(1024, 4096), (4096, 4096), (512, 512)], 100e9, 2e9, d["operand_rate"], overhead)
        if serving else [],
        decode_attention=decode_attention(CPU_REFERENCE, kv_rate, overhead) if serving else [],
        decode_all_to_all=_decode_all_to_all("gloo", 2, 512, d["a2a_latency"], d["a2a_rate"]) if serving else [],
    )  # fmt: skip
    prov = Provenance(
        device_kind="cpu", device_name="Test CPU @ 2.0GHz", device_count=1, device_memory_bytes=64 * 2**30, cpu_threads=1,
        torch_version="2.13.0+cpu", python_version="3.12.0", os="Linux 6.8", date=DATE, mode="quick", wall_s=90.0,
        costsim_version="0.1.0",
    )  # fmt: skip
    return _calibration(prov, CPU_REFERENCE, samples, overhead, ["bf16", "fp32"])


def _gpu_provenance(name: str, count: int, memory_bytes: float, profile: str, driver: str, cuda: str, nccl: str,
                    wall_s: float) -> Provenance:  # fmt: skip
    """A quick CUDA calibration's provenance on this test machine's software (torch 2.13.0, Python 3.12, Linux 6.8)."""
    return Provenance(
        device_kind="cuda", device_name=name, device_count=count, device_memory_bytes=memory_bytes,
        hardware_profile=profile, driver_version=driver, cuda_version=cuda, torch_version="2.13.0", nccl_version=nccl,
        python_version="3.12.0", os="Linux 6.8", date=DATE, mode="quick", wall_s=wall_s, costsim_version="0.1.0",
    )  # fmt: skip


def h100_calibration(
    kv_rate: float = H100_DECODE["kv_rate"], a2a_latency: float = H100_DECODE["a2a_latency"], serving: bool = True
) -> Calibration:
    """An 8x H100 SXM node: BF16 GEMMs up to ~700 TFLOP/s, FP8 ~1.3 PFLOP/s, 3 TB/s copies, NVLink at 350 GB/s;
    decode attention at `kv_rate`, the decode all-to-all at `a2a_latency`."""
    overhead = 5e-6
    squares = [256, 512, 1024, 2048, 4096, 8192]
    d = H100_DECODE
    weights = [(6144, 2048), (2048, 2048), (11264, 2048), (2048, 5632), (32000, 2048)]
    samples = Samples(
        gemm=_gemms("bf16", squares, 700e12, 1e11, overhead) + _gemms("fp8", squares, 1300e12, 2e11, overhead),
        attention=_attention(CUDA_REFERENCE, [1024, 2048, 4096], 128, 400e12),
        memory=_memory(3.0e12, 2.0e12),
        collectives=_collectives("nccl", 8, 20e-6, 350e9),
        decode_gemm=(_decode_gemms("bf16", weights, 700e12, 1e11, d["operand_rate"], overhead)
                     + _decode_gemms("fp8", weights, 1300e12, 2e11, d["operand_rate"], overhead)) if serving else [],
        decode_attention=decode_attention(CUDA_REFERENCE, kv_rate, overhead) if serving else [],
        decode_all_to_all=_decode_all_to_all("nccl", 8, 2048, a2a_latency, d["a2a_rate"]) if serving else [],
    )  # fmt: skip
    prov = _gpu_provenance(H100_NAME, 8, 79.2 * 2**30, "h100-sxm", "550.54.15", "12.4", "2.21.5", 240.0)
    return _calibration(prov, CUDA_REFERENCE, samples, overhead, ["bf16", "fp8"])


B200_NAME = "NVIDIA B200"


def b200_calibration() -> Calibration:
    """One B200: BF16 GEMMs up to ~1.6 PFLOP/s and NVFP4 (W4A4) ones up to ~5.5 PFLOP/s; training measurements only."""
    overhead = 5e-6
    squares = [256, 512, 1024, 2048, 4096, 8192]
    samples = Samples(
        gemm=_gemms("bf16", squares, 1.6e15, 2e11, overhead) + _gemms("fp4", squares, 5.5e15, 8e11, overhead),
        attention=_attention(CUDA_REFERENCE, [1024, 2048, 4096], 128, 900e12),
        memory=_memory(6.5e12, 4.5e12),
        collectives=[],
    )
    prov = _gpu_provenance(B200_NAME, 1, 178 * 2**30, "b200", "570.86.15", "12.8", "2.26.2", 200.0)
    return _calibration(prov, CUDA_REFERENCE, samples, overhead, ["bf16", "fp4"])
