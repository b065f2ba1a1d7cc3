"""The device to measure on, and the provenance a calibration records about it (never a host name)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata

import torch

from simulator.errors import InputError
from simulator.inputs.calibration import Provenance, profile_for_device

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
FP8 = "fp8"
FP4 = "fp4"
"""NVFP4: E2M1 values, one E4M3 scale per 16 along the inner dimension and one FP32 scale per tensor (W4A4)."""
NVFP4_CAPABILITY = (10, 0)
"""Blackwell (sm_100) is the first compute capability with FP4 tensor cores that costsim profiles."""


DEFAULT_CPU_THREADS = 1
"""One thread unless asked for more: a multi-threaded kernel waits for its slowest thread, so on cores shared
with other processes each call can stall for a scheduler time slice (we saw a flat 8 ms per call); one thread
only slows down in proportion. Calibration and validation must use the same count (the file records it)."""


def resolve(device: str, threads: int | None = None) -> torch.device:
    """torch.device for --device, with a clear error where it is not there; sets the CPU thread count."""
    if device == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                "--device cuda but torch sees no CUDA GPU (torch.cuda.is_available() is False, torch "
                f"{torch.__version__}); install a CUDA build of torch on a GPU machine, or use --device cpu"
            )
        gpu = torch.device("cuda", torch.cuda.current_device())
        capability, archs = torch.cuda.get_device_capability(gpu), torch.cuda.get_arch_list()
        missing = None if torch.version.hip else missing_kernels(capability, archs)
        if missing:
            raise InputError(f"{torch.cuda.get_device_name(gpu)}: {missing}")
        return gpu
    if device != "cpu":
        raise InputError(f"--device {device!r} is not supported; use cpu or cuda")
    threads = DEFAULT_CPU_THREADS if threads is None else threads
    if not 1 <= threads <= (os.cpu_count() or 1) * 4:
        raise InputError(f"--threads {threads} is out of range [1, {(os.cpu_count() or 1) * 4}] on this machine")
    torch.set_num_threads(threads)
    return torch.device("cpu")


def missing_kernels(capability: tuple[int, int], arch_list: list[str]) -> str | None:
    """None when the torch build has kernels for a GPU of `capability`, else why not and the fix. A build without them
    still sees the GPU (torch.cuda.is_available() is True) and fails at its first kernel ('no kernel image is available
    for execution on the device'). CUDA binary compatibility: SASS for sm_XY runs on X.Y and on later minors of the same
    major (sm_86 on 8.9); an arch-specific sm_XYa / sm_XYf only on X.Y (and XYf on its family; taken as X.Y here); PTX
    (compute_XY) JIT-compiles for any later GPU, an arch-specific compute_XYa for X.Y only. An empty list (a build that
    does not say) or a ROCm build's gfx names (no '_'; torch.version.hip) are taken as able."""
    major, minor = capability
    archs = [a.split("_", 1) for a in arch_list if "_" in a]
    if not archs:
        return None
    for kind, code in archs:
        specific = code[-1:] in ("a", "f")
        digits = code.rstrip("af")
        if not digits.isdigit() or len(digits) < 2:
            continue
        arch_major, arch_minor = int(digits[:-1]), int(digits[-1])
        if specific:
            if (arch_major, arch_minor) == (major, minor):
                return None
        elif kind == "sm" and arch_major == major and arch_minor <= minor:
            return None
        elif kind == "compute" and (arch_major, arch_minor) <= (major, minor):
            return None
    return (f"this torch {torch.__version__} build has no kernels for compute capability {major}.{minor} (it has "
            f"{', '.join(arch_list)}); install a torch build for this GPU (e.g. a newer CUDA wheel)")  # fmt: skip


def fp8_supported(device: torch.device) -> str | None:
    """None when torch._scaled_mm FP8 GEMMs run here, else the reason they do not."""
    if device.type != "cuda":
        return "FP8 GEMMs (torch._scaled_mm) need a CUDA GPU"
    if not hasattr(torch, "_scaled_mm") or not hasattr(torch, "float8_e4m3fn"):
        return f"torch {torch.__version__} has no torch._scaled_mm / float8_e4m3fn"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9):
        return f"compute capability {major}.{minor} has no FP8 tensor cores (needs 8.9+)"
    return None


def fp4_supported(device: torch.device) -> str | None:
    """None when NVFP4 GEMMs (torch.nn.functional.scaled_mm with 1x16 block scales) run here, else the reason."""
    if device.type != "cuda":
        return "NVFP4 GEMMs (torch.nn.functional.scaled_mm) need a CUDA GPU"
    functional = torch.nn.functional
    if (
        not hasattr(torch, "float4_e2m1fn_x2")
        or not hasattr(functional, "scaled_mm")
        or not hasattr(getattr(functional, "ScalingType", None), "BlockWise1x16")
    ):
        return f"torch {torch.__version__} has no float4_e2m1fn_x2 / scaled_mm with 1x16 block scales"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < NVFP4_CAPABILITY:
        need = ".".join(map(str, NVFP4_CAPABILITY))
        return f"compute capability {major}.{minor} has no FP4 tensor cores (needs {need}+)"
    return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_model() or platform.processor() or platform.machine()


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def memory_bytes(device: torch.device) -> float | None:
    if device.type == "cuda":
        return float(torch.cuda.get_device_properties(device).total_memory)
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _smi_line(fields: str, *args: str) -> str | None:
    """The first line of `nvidia-smi --query-gpu=FIELDS --format=csv,noheader,nounits [ARGS]`; None without
    nvidia-smi or an answer."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits", *args],
                             capture_output=True, text=True, timeout=20, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0] if lines else None


def _driver_version() -> str | None:
    return _smi_line("driver_version")


GPU_STATE_QUERY = {
    "power.limit": "gpu_power_limit_w",
    "clocks.sm": "gpu_sm_clock_mhz",
    "clocks.max.sm": "gpu_max_sm_clock_mhz",
    "temperature.gpu": "gpu_temperature_c",
    "ecc.mode.current": "gpu_ecc_mode",
    "mig.mode.current": "gpu_mig_mode",
}
"""nvidia-smi --query-gpu fields of the state a calibration records, and their Provenance names."""


def gpu_state(csv_line: str) -> dict:
    """Provenance fields from one nvidia-smi line of GPU_STATE_QUERY's fields (csv, noheader, nounits): numbers as
    floats, modes as text, '[N/A]' and the like as None."""
    values = [v.strip() for v in csv_line.split(",")]
    out: dict = {}
    for key, value in zip(GPU_STATE_QUERY.values(), values, strict=False):
        if not value or value.startswith("[") or value.lower() in ("n/a", "not supported"):
            out[key] = None
        elif key in ("gpu_ecc_mode", "gpu_mig_mode"):
            out[key] = value[:64]
        else:
            try:
                number: float | None = float(value)
            except ValueError:
                number = None
            positive = key != "gpu_temperature_c"  # a power, a clock: 0 means not reported
            out[key] = None if number is None or (positive and number <= 0) else number
    return out


def smi_id(uuid: str | None, index: int) -> str:
    """nvidia-smi's -i for torch's GPU: its UUID ('GPU-' + torch's uuid), since nvidia-smi numbers GPUs its own way,
    ignoring CUDA_VISIBLE_DEVICES and torch's order; the index where the UUID is not known."""
    if not uuid:
        return str(index)
    return uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"


def _gpu_state(device: torch.device) -> dict:
    try:
        uuid: str | None = str(torch.cuda.get_device_properties(device).uuid)
    except (AttributeError, RuntimeError):
        uuid = None
    line = _smi_line(",".join(GPU_STATE_QUERY), "-i", smi_id(uuid, device.index or 0))
    return gpu_state(line) if line else {}


def _cudnn_version() -> str | None:
    try:
        v = torch.backends.cudnn.version()
    except (AttributeError, RuntimeError):
        return None
    return str(v) if v else None


def _nccl_version() -> str | None:
    try:
        v = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError):
        return None
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def provenance(device: torch.device, mode: str, model: str | None, wall_s: float, profile: str | None) -> Provenance:
    cuda = device.type == "cuda"
    name = device_name(device)
    mem = memory_bytes(device)
    try:
        version = metadata.version("costsim")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return Provenance(
        device_kind="cuda" if cuda else "cpu",
        device_name=name,
        device_count=torch.cuda.device_count() if cuda else 1,
        device_memory_bytes=mem,
        hardware_profile=(profile or profile_for_device(name, mem)) if cuda else None,
        cpu_threads=None if cuda else torch.get_num_threads(),
        driver_version=_driver_version() if cuda else None,
        cuda_version=torch.version.cuda if cuda else None,
        torch_version=torch.__version__,
        nccl_version=_nccl_version() if cuda else None,
        python_version=sys.version.split()[0],
        os=f"{platform.system()} {platform.release()}",
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        mode=mode,  # type: ignore[arg-type]
        model=model,
        wall_s=wall_s,
        costsim_version=version,
        cudnn_version=_cudnn_version() if cuda else None,
        **(_gpu_state(device) if cuda else {}),
    )
