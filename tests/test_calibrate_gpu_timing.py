"""What the first GPU runs (one H200, 2026-12-04; validation/local/h200-2026-12-04/README.md) changed in how a calibration
measures and fits: decode kernels timed in bursts (no launch latency in their time), the launches a memory-bound
benchmark runs taken out of its rate, a warm-up before measuring, and files from before these fields still loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from calibration_support import _timing, cpu_calibration
from test_calibrate_integrity import forge

from calibrate import decode, memory_kernels, timing
from calibrate.run import CPU_REFERENCE, CUDA_REFERENCE
from simulator.inputs.calibration import (
    DecodeGemmSample,
    GemmFit,
    MemorySample,
    content_hash,
    fit_decode_gemm,
    fit_memory,
    load_calibration,
    write_calibration,
)
from simulator.model.step_time import CROSS_ENTROPY_KERNELS, NORM_RESIDUAL_KERNELS, ROPE_KERNELS


def test_a_burst_is_timed_per_call(monkeypatch):
    """measure(..., calls_per_timing=n) runs n calls inside each timing and reports the time per call."""
    calls = []
    monkeypatch.setattr(timing, "_one_call_s", lambda fn, device: (fn(), 32e-6)[1])
    t = timing.measure(lambda: calls.append(1), torch.device("cpu"), timing.Budget(warmup=2, min_repeats=5, max_repeats=5),
                       calls_per_timing=32)  # fmt: skip
    assert t.median_s == pytest.approx(1e-6) and t.repeats == 5
    assert len(calls) == 32 * (1 + 1 + 5)  # the first call, one more warm-up, five repeats: each a burst of 32


def test_decode_kernels_are_timed_in_bursts_on_a_gpu_only():
    assert decode.burst(torch.device("cpu")) == 1
    assert decode.burst(torch.device("cuda")) == decode.GPU_BURST > 1


def _decode_sample(m: int, n: int, k: int, t: float, calls: int) -> DecodeGemmSample:
    return DecodeGemmSample(m=m, n=n, k=k, dtype="bf16", timing=_timing(t), calls_per_timing=calls)


def test_a_burst_timed_decode_gemm_keeps_its_whole_time_a_single_call_loses_its_launch():
    """The decode-GEMM fit takes the kernel overhead out of a call timed alone, not out of calls timed back to back."""
    gemm = GemmFit.model_validate(
        {"best_flop_per_s": 1e15, "curve": {"work": [1e6, 1e12], "relative": [1.0, 1.0]},
         "quality": {"samples": 2, "median_abs_error": 0, "max_abs_error": 0}}
    )  # fmt: skip
    rate, overhead = 2e12, 20e-6
    shapes = [(1, 4096, 4096), (8, 8192, 4096)]
    moved = [_decode_sample(m, n, k, 1.0, 1).bytes_moved for m, n, k in shapes]
    alone = [_decode_sample(m, n, k, b / rate + overhead, 1) for (m, n, k), b in zip(shapes, moved, strict=True)]
    burst = [_decode_sample(m, n, k, b / rate, 32) for (m, n, k), b in zip(shapes, moved, strict=True)]
    assert fit_decode_gemm(alone, gemm, overhead).operand_bytes_per_s == pytest.approx(rate)
    assert fit_decode_gemm(burst, gemm, overhead).operand_bytes_per_s == pytest.approx(rate)
    # Had the burst lost a launch too, its rate would come out higher than the kernel's.
    wrong = fit_decode_gemm([_decode_sample(m, n, k, b / rate, 1) for (m, n, k), b in zip(shapes, moved, strict=True)],
                            gemm, overhead)  # fmt: skip
    assert wrong.operand_bytes_per_s > 1.5 * rate


def test_the_memory_fit_takes_a_benchmarks_launches_out_of_its_rate():
    """MemorySample.launches kernels at the kernel overhead are inside each timed call; the step model charges them
    apart (kernel_launch), so the fit's rate is bytes / (time - launches x overhead)."""
    counted, overhead = 1e9, 25e-6
    layer = MemorySample(kernel="layer", dtype="bf16", elements=2**20, counted_bytes=counted,
                         timing=_timing(counted / 500e9 + 24 * overhead), launches=24)  # fmt: skip
    fit = fit_memory([layer], {"layer": 1.0}, "test", overhead)
    assert fit.by_kernel_bytes_per_s["layer"] == pytest.approx(500e9)
    assert fit_memory([layer], {"layer": 1.0}, "test").by_kernel_bytes_per_s["layer"] < 500e9  # no overhead: slower


def test_the_layer_benchmark_counts_the_launches_the_step_model_charges():
    """A dense Llama-style layer: norms and residuals, RoPE, SwiGLU forward; twice as many backward (step_time)."""
    forward = NORM_RESIDUAL_KERNELS + ROPE_KERNELS + 2
    for ref in (CPU_REFERENCE, CUDA_REFERENCE):
        assert memory_kernels.launches("layer", ref.model, ref.seq_len) == 3 * forward
    assert memory_kernels.launches("cross_entropy", CPU_REFERENCE.model, 256) == CROSS_ENTROPY_KERNELS
    assert memory_kernels.launches("optimizer", CPU_REFERENCE.model, 256) == 0


def test_files_without_the_new_fields_hash_as_before_and_an_edited_count_is_refused(tmp_path):
    """launches 0 and calls_per_timing 1 are left out of the hash (files written before them load); any other value is
    in it, so a file whose count was changed is refused."""
    cal = cpu_calibration()
    raw = cal.model_dump(mode="json", by_alias=True)
    for s in raw["samples"]["memory"]:
        s.pop("launches")
    for key in ("decode_gemm", "decode_attention"):
        for s in raw["samples"][key]:
            s.pop("calls_per_timing")
    assert content_hash(type(cal).model_validate(raw)) == content_hash(cal)
    path = write_calibration(cal, tmp_path / "cpu.json")
    assert load_calibration(path).samples.memory[1].launches == 0

    def edit(r: dict) -> None:
        r["samples"]["decode_gemm"][0]["calls_per_timing"] = 32

    edited = forge(path, tmp_path / "edited.json", edit, reseal=False)
    from simulator.errors import SpecError

    with pytest.raises(SpecError, match="does not match its content"):
        load_calibration(edited)
    assert json.loads(path.read_text())["samples"]["decode_gemm"][0]["calls_per_timing"] == 1


def test_warm_up_runs_nothing_on_a_cpu():
    assert timing.warm_up(torch.device("cpu"), 10.0) == 0
    assert timing.WARM_UP_S["smoke"] == 0 and timing.WARM_UP_S["quick"] > 0
    assert np.isfinite(timing.WARM_UP_S["full"])
