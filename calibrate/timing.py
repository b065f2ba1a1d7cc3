"""Timing one call robustly: warm-up, a number of repeats that fits a time budget, median and spread.

GPU calls are timed with CUDA events, CPU calls with time.perf_counter. The first warm-up call is
timed too, so a point that would take too long is skipped before it runs its repeats.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from simulator.errors import MeasurementError
from simulator.inputs.calibration import Timing
from simulator.units import MILLI

MS_PER_S = 1 / MILLI  # torch.cuda.Event.elapsed_time() returns milliseconds


class Skip(Exception):
    """A point that cannot be measured here (too slow, out of memory, unsupported); the message says why."""


@dataclass(frozen=True)
class Budget:
    """How hard to measure one point."""

    warmup: int = 2
    min_repeats: int = 5
    max_repeats: int = 50
    target_s: float = 0.25
    """Aim for about this much timed work per point."""
    max_call_s: float = 2.0
    """Skip a point whose single call takes longer than this."""

    def repeats(self, first_s: float) -> int:
        """Timed repeats of a point whose first call took `first_s`: about target_s of work, within the bounds."""
        return int(np.clip(self.target_s / max(first_s, 1e-7), self.min_repeats, self.max_repeats))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _one_call_s(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / MS_PER_S
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(fn: Callable[[], object], device: torch.device, budget: Budget, calls_per_timing: int = 1) -> Timing:
    """Median seconds per call of `fn` after warm-up. Raises Skip if one call exceeds budget.max_call_s.

    `calls_per_timing`: calls run back to back inside each timing (the times are per call): on a GPU this amortizes
    the launch latency that one call between two events would measure."""
    if calls_per_timing > 1:
        one = fn

        def fn() -> None:
            for _ in range(calls_per_timing):
                one()

    sync(device)
    first = _one_call_s(fn, device)
    if budget.max_call_s < first < 4 * budget.max_call_s:  # the first call may include one-time set-up: look again
        first = _one_call_s(fn, device)
    if first > budget.max_call_s:
        raise Skip(f"one call took {first:.2f} s, over the {budget.max_call_s:g} s limit per call")
    for _ in range(budget.warmup - 1):
        fn()
    sync(device)
    times = np.array([_one_call_s(fn, device) for _ in range(budget.repeats(first))]) / calls_per_timing
    return summarize(times)


def graph_replay(fn: Callable[[], object], calls: int, device: torch.device) -> Callable[[], object]:
    """`calls` calls of `fn` captured in one CUDA graph; returns its replay. A serving engine runs a decode step as a
    CUDA graph, so its kernels start without a host launch each; calls queued from Python between two events do not
    get that: on the H200 of 2026-12-04 they ran at the host's dispatch rate, 20-28 us a call for every decode GEMM of
    8-50 MB (validation/local/h200-2026-12-04/calibration.json), where the weights stream in 2-14 us. As torch's CUDA
    graph notes do, `fn` first runs on a side stream (lazy initialization, cuBLAS workspaces) before the capture."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(GRAPH_WARM_UP_CALLS):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    sync(device)
    return graph.replay


GRAPH_WARM_UP_CALLS = 3
"""Calls run on a side stream before a capture (torch.cuda.graphs: 'warmup before capture')."""


def per_call(t: Timing, calls: int) -> Timing:
    """The timing of one of `calls` calls timed together (the spread, a ratio, is the same)."""
    return Timing(median_s=t.median_s / calls, min_s=t.min_s / calls, spread=t.spread, repeats=t.repeats)


def summarize(times_s: np.ndarray) -> Timing:
    q1, med, q3 = np.percentile(times_s, [25, 50, 75])
    return Timing(median_s=float(med), min_s=float(times_s.min()), spread=float((q3 - q1) / med), repeats=len(times_s))


def guarded(label: str, notes: list[str], fn: Callable[[], object]):
    """Run one benchmark point; on out-of-memory, an unsupported dtype or op, or Skip, note it and return None. A CUDA
    error of the device (an illegal address, a misaligned access) leaves the CUDA context unusable, so every later
    point would fail or measure nonsense: that stops the calibration with one clear error (MeasurementError)."""
    try:
        return fn()
    except Skip as e:
        notes.append(f"{label}: skipped, {e}")
    except torch.cuda.OutOfMemoryError:
        notes.append(f"{label}: skipped, out of memory")
        torch.cuda.empty_cache()
    except (RuntimeError, NotImplementedError, TypeError, ValueError, MemoryError) as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        if device_fault(e):
            raise MeasurementError(
                f"{label}: the GPU reported a CUDA error ({reason}); its CUDA context is unusable after one, so the "
                "calibration stops here. Rerun it; if the same point fails again, report it with this line"
            ) from e
        if "out of memory" in reason.lower():
            reason = "out of memory"
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        notes.append(f"{label}: skipped, {reason}")
    return None


CONTEXT_FAULTS = (
    "illegal memory access", "misaligned address", "unspecified launch failure", "device-side assert",
    "illegal instruction", "uncorrectable ECC", "launch timed out", "hardware stack error",
)  # fmt: skip
"""CUDA errors after which the context is unusable (CUDA's 'sticky' errors: every later call fails). Others that
torch reports as 'CUDA error', e.g. 'CUBLAS_STATUS_NOT_SUPPORTED when calling cublasLtMatmul' for an FP8 or NVFP4
shape cuBLASLt rejects, leave it usable: those points are skipped and noted."""


def device_fault(e: BaseException) -> bool:
    """A sticky CUDA error of the device (CONTEXT_FAULTS), not an unsupported op or shape, nor out of memory."""
    return isinstance(e, RuntimeError) and any(fault in str(e) for fault in CONTEXT_FAULTS)


def randn(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, requires_grad: bool = False) -> torch.Tensor:
    """Fresh random inputs (never zeros: some kernels and clocks behave differently on zeros). On a GPU drawn in BF16
    where the dtype is no wider (an FP32 draw of a 16 GiB decode cache would need 32 GiB more); on a CPU in FP32."""
    draw = torch.bfloat16 if device.type == "cuda" and dtype.itemsize <= 2 else torch.float32
    x = torch.randn(shape, dtype=draw, device=device).to(dtype)
    return x.requires_grad_(requires_grad)


WARM_UP_S = {"quick": 10.0, "full": 30.0, "smoke": 0.0}
"""Seconds of large BF16 GEMMs before a GPU calibration measures: a GPU idling at a low clock boosts for the first
seconds of load, then settles at the clocks its power and temperature sustain. Measured cold, an H200 gave an 11%
higher GEMM rate than measured again two minutes later, hot (calibrate check, 2026-12-04); a training step runs hot."""


def warm_up(device: torch.device, seconds: float) -> int:
    """Run 8192^3 BF16 GEMMs on a GPU for about `seconds`; the number run (0 on a CPU or for 0 s)."""
    if device.type != "cuda" or seconds <= 0:
        return 0
    a, b = randn((8192, 8192), torch.bfloat16, device), randn((8192, 8192), torch.bfloat16, device)
    runs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            a @ b
        sync(device)
        runs += 10
    del a, b
    return runs
