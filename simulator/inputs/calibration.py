"""Calibration files: the schema `costsim calibrate` writes and the estimator reads (no torch here).

A calibration holds the raw microbenchmark samples of one device (GEMMs, attention, memory-bound
kernels, collectives), their SHA-256, where and how they were measured (device, driver, CUDA, torch
and NCCL versions, date; never a host name), and the efficiency model fitted to them
(calibrate/fit.py). `calibrated_device` turns it into the hardware profile and DeviceRates an
estimate runs on; the rates' `source` names the file, so every estimate says what it used.

On a GPU the calibration replaces the per-GPU efficiency terms of the shipped profile (peaks and
links stay the datasheet's; memory-bound kernels run at the measured copy bandwidth); the global
assumptions (gemm_sustain, FP8 factor, overlap) still apply.
On a CPU there is no profile: the device is described by the calibration itself, with the best
measured GEMM rate per dtype as its peak.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.errors import InputError, SpecError
from simulator.inputs.catalog import hardware_ids, load_hardware_file
from simulator.inputs.files import read_json, validate
from simulator.inputs.specs import DensePeaks, EfficiencyDefaults, HardwareProfile, ModelSpec, Price, ScaleOut, ScaleUp, Sourced
from simulator.units import GIB, GIGA, MICRO, TERA
from simulator.vocab import Dtype

SCHEMA = "costsim-calibration"
SCHEMA_VERSION = 1
CPU_DEVICE = "cpu"
"""What `--gpu` names when the calibration was measured on a CPU: the device is the calibration itself."""

Positive = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
CollectiveOp = Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv"]
Tier = Literal["scale_up", "scale_out"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# --------------------------------------------------------------------------- samples


class Timing(_Model):
    """Seconds per call over the timed repeats (after warm-up)."""

    median_s: Positive
    min_s: Positive
    spread: Annotated[float, Field(ge=0)]
    """Interquartile range / median of the repeats."""
    repeats: Annotated[int, Field(ge=1)]


class GemmSample(_Model):
    m: Annotated[int, Field(ge=1)]
    n: Annotated[int, Field(ge=1)]
    k: Annotated[int, Field(ge=1)]
    dtype: Dtype
    forward: Timing
    """Y[m,n] = X[m,k] . W[n,k]^T, as nn.Linear runs it."""
    input_grad: Timing
    """dX[m,k] = dY[m,n] . W[n,k]."""
    weight_grad: Timing
    """dW[n,k] = dY[m,n]^T . X[m,k]."""
    origin: str = "sweep"
    """`sweep`, or the model whose GEMM this is (--model)."""

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k

    @property
    def training_s(self) -> float:
        """Mean of the three GEMMs of training: the simulator charges each at the forward GEMM's time."""
        return (self.forward.median_s + self.input_grad.median_s + self.weight_grad.median_s) / 3.0


class AttentionSample(_Model):
    batch: Annotated[int, Field(ge=1)]
    heads: Annotated[int, Field(ge=1)]
    kv_heads: Annotated[int, Field(ge=1)]
    seq_len: Annotated[int, Field(ge=1)]
    head_dim: Annotated[int, Field(ge=1)]
    dtype: Dtype
    forward: Timing
    backward: Timing

    @property
    def forward_flops(self) -> float:
        """Causal FLOPs, FlashAttention convention: 4·b·h·s²·d / 2 (flops.attention_core_forward_flops_per_token)."""
        return 4.0 * self.batch * self.heads * self.seq_len**2 * self.head_dim / 2.0


class MemorySample(_Model):
    kernel: str
    """copy, rmsnorm, residual_add, swiglu, rope, cross_entropy, embedding or optimizer (forward + backward)."""
    dtype: Dtype
    elements: Annotated[int, Field(ge=1)]
    counted_bytes: Positive
    """Bytes the simulator counts for this kernel, forward and backward (copy: read + write)."""
    timing: Timing

    @property
    def bytes_per_s(self) -> float:
        return self.counted_bytes / self.timing.median_s


class CollectiveSample(_Model):
    op: CollectiveOp
    backend: str
    world_size: Annotated[int, Field(ge=2)]
    tier: Tier
    size_bytes: Positive
    """S as nccl-tests defines it (the full array; per-rank buffer for all-to-all and send/recv)."""
    timing: Timing
    """Slowest rank's median."""
    algbw_bytes_per_s: Positive
    busbw_bytes_per_s: Positive


class Samples(_Model):
    gemm: list[GemmSample] = []
    attention: list[AttentionSample] = []
    memory: list[MemorySample] = []
    collectives: list[CollectiveSample] = []


# --------------------------------------------------------------------------- fit


class CurveFit(_Model):
    """Relative efficiency against work per call (FLOPs), interpolated in log space, clamped at the ends."""

    work: list[Positive]
    relative: list[Fraction]

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
    samples: Annotated[int, Field(ge=1)]
    median_abs_error: Annotated[float, Field(ge=0)]
    """Median |model - measured| / measured over the samples."""
    max_abs_error: Annotated[float, Field(ge=0)]


class GemmFit(_Model):
    best_flop_per_s: Positive
    """Best measured rate (training mean of the three GEMMs, less the kernel overhead); the peak of a CPU."""
    curve: CurveFit
    quality: FitQuality


class AttentionFit(_Model):
    forward_flop_per_s: Positive
    """Forward-equivalent rate, causal FLOPs (FA convention): forward + backward time of the best point
    = F x (1 + backward_over_forward) / this."""
    backward_over_forward: Positive
    """Median measured backward / forward time."""
    curve: CurveFit
    quality: FitQuality
    """On forward + backward time."""


class MemoryFit(_Model):
    copy_bytes_per_s: Positive | None = None
    """Large device-to-device copy (read + write): the achievable HBM / DRAM bandwidth."""
    memory_bound_bytes_per_s: Positive
    """Achieved bandwidth of the memory-bound kernels of a training step, weighted as the simulator counts
    their bytes (`weights`): what DeviceRates.memory_s runs at."""
    by_kernel_bytes_per_s: dict[str, Positive]
    weights: dict[str, Annotated[float, Field(ge=0)]]
    """Share of each kernel in the simulator's memory-bound bytes of one step of `reference`."""
    reference: str


class CollectiveOpFit(_Model):
    latency_s: Annotated[float, Field(ge=0)]
    busbw_bytes_per_s: Positive
    quality: FitQuality


class CollectiveTierFit(_Model):
    backend: str
    world_size: Annotated[int, Field(ge=2)]
    by_op: dict[CollectiveOp, CollectiveOpFit]
    latency_s: Annotated[float, Field(ge=0)]
    """Median latency over the ops."""
    busbw_bytes_per_s: Positive
    """Median bus bandwidth over the ops."""


class Fit(_Model):
    gemm: dict[Dtype, GemmFit]
    kernel_overhead_s: Annotated[float, Field(ge=0)]
    """Time of a tiny GEMM: the fixed cost of one kernel (launch, dispatch)."""
    attention: AttentionFit | None = None
    memory: MemoryFit | None = None
    collectives: dict[Tier, CollectiveTierFit] = {}

    @model_validator(mode="after")
    def _has_bf16(self) -> Fit:
        if "bf16" not in self.gemm:
            raise ValueError("no bf16 GEMM fit: the step model needs it (the BF16 GEMM benchmark failed or was skipped)")
        return self


# --------------------------------------------------------------------------- file


class Provenance(_Model):
    device_kind: Literal["cpu", "cuda"]
    device_name: str
    device_count: Annotated[int, Field(ge=1)]
    device_memory_bytes: Positive | None = None
    hardware_profile: str | None = None
    """The shipped profile this GPU is (None on a CPU, or an unknown GPU)."""
    cpu_threads: Annotated[int, Field(ge=1)] | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    torch_version: str
    nccl_version: str | None = None
    python_version: str
    os: str
    """Operating system and release; never a host name."""
    date: str
    """UTC, ISO 8601."""
    mode: Literal["quick", "full", "smoke"]
    model: str | None = None
    """--model whose GEMM shapes were added, if any."""
    wall_s: Annotated[float, Field(ge=0)]
    costsim_version: str


class Workload(_Model):
    """A model and one micro-batch of it on one GPU: where shapes are taken from."""

    model: ModelSpec
    batch: Annotated[int, Field(ge=1)]
    seq_len: Annotated[int, Field(ge=1)]
    tp: Annotated[int, Field(ge=1)] = 1

    @property
    def tokens(self) -> int:
        return self.batch * self.seq_len


class CalibrationPlan(_Model):
    """What was measured, so that `costsim calibrate check` can measure the same points again."""

    reference: Workload
    """Attention heads, memory-bound kernel sizes and their byte mix, and GEMM shapes come from it."""
    extra: list[Workload] = []
    """Models whose exact GEMM shapes were added (--model)."""
    dtypes: list[Dtype]
    collectives: bool
    """Collectives measured on this machine (torchrun launched by costsim calibrate)."""
    collectives_file: str | None = None
    """Collectives taken from a torchrun run of calibrate.collectives elsewhere (e.g. across nodes)."""


class Calibration(_Model):
    schema_name: Literal["costsim-calibration"] = Field(SCHEMA, alias="schema")
    schema_version: int
    provenance: Provenance
    plan: CalibrationPlan
    samples: Samples
    samples_sha256: str
    fit: Fit
    notes: list[str] = []
    """Points skipped (out of memory, unsupported dtype, too slow) and other remarks."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _version_and_hash(self) -> Calibration:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is not supported (this costsim reads version {SCHEMA_VERSION}); "
                "recalibrate with this version: costsim calibrate --output FILE"
            )
        actual = samples_hash(self.samples)
        if actual != self.samples_sha256:
            raise ValueError(
                f"samples_sha256 {self.samples_sha256[:12]}... does not match the samples ({actual[:12]}...): the file was "
                "edited after it was measured; recalibrate"
            )
        return self

    @property
    def label(self) -> str:
        p = self.provenance
        return f"{p.device_name}, {p.date[:10]}"

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=1) + "\n"


def samples_hash(samples: Samples) -> str:
    canonical = json.dumps(samples.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_calibration(path: str | Path) -> Calibration:
    path = Path(path)
    raw = read_json(path)
    if isinstance(raw, dict) and raw.get("schema") not in (None, SCHEMA):
        raise SpecError(f"{path}: not a costsim calibration (schema {raw.get('schema')!r}); write one with costsim calibrate")
    if isinstance(raw, dict) and isinstance(raw.get("schema_version"), int) and raw["schema_version"] != SCHEMA_VERSION:
        raise SpecError(
            f"{path}: calibration schema_version {raw['schema_version']} is not supported (this costsim reads version "
            f"{SCHEMA_VERSION}); recalibrate with costsim calibrate --output FILE"
        )
    return validate(raw, Calibration, path)


def check_output_path(path: Path, force: bool) -> None:
    """InputError unless a calibration can be written to `path` (checked before measuring, and again on writing)."""
    if path.is_dir():
        raise InputError(f"--output {path} is a directory; give a file name such as {path / 'calibration.json'}")
    if path.exists() and not force:
        raise InputError(f"--output {path} exists; pass --force to replace it, or choose another file name")
    if not path.parent.exists():
        raise InputError(f"--output {path}: folder {path.parent} does not exist; create it first")


def write_calibration(cal: Calibration, path: str | Path, force: bool = False) -> Path:
    """Write atomically (temporary file in the same folder, then rename). Never overwrites without `force`."""
    path = Path(path)
    check_output_path(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the permissions of any other output
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(cal.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
        memory_gib=sourced((p.device_memory_bytes or 0.0) / GIB),
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
