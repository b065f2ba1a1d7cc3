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


def test_a_gpu_decode_sample_is_one_cuda_graph_of_every_copy(monkeypatch):
    """On a GPU a decode sample's calls are captured in one CUDA graph and timed as its replays (queued from Python
    they ran at the host's dispatch rate: 20-28 us a call for every decode GEMM of 8-50 MB on the H200 of 2026-12-04).
    The graph holds every copy of the pool once, at least GPU_BURST calls, and the time is per call."""
    captured = {}

    def fake_replay(fn, calls, device):
        captured["calls"] = calls
        return lambda: None

    monkeypatch.setattr(decode, "graph_replay", fake_replay)
    monkeypatch.setattr(decode, "measure", lambda fn, device, budget, calls_per_timing=1: _timing(1e-3))
    out = decode._timed([lambda: None] * 100, torch.device("cuda"), timing.Budget())
    assert captured["calls"] == 100 and out["calls_per_timing"] == 100 and out["cuda_graph"] is True
    assert out["timing"].median_s == pytest.approx(1e-3 / 100)
    assert decode.graph_calls(3) == decode.GPU_BURST and decode.graph_calls(10**6) == decode.MAX_GRAPH_CALLS


def test_a_decode_sample_that_cannot_be_captured_is_queued_and_says_so(monkeypatch):
    def refuse(fn, calls, device):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(decode, "graph_replay", refuse)
    monkeypatch.setattr(decode, "measure", lambda fn, device, budget, calls_per_timing=1: _timing(2e-5))
    out = decode._timed([lambda: None] * 4, torch.device("cuda"), timing.Budget())
    assert out["calls_per_timing"] == decode.GPU_BURST and "cuda_graph" not in out
    sample = DecodeGemmSample(m=1, n=64, k=64, dtype="bf16", **out)
    assert sample.cuda_graph is False


def test_per_call_divides_the_times_and_keeps_the_spread():
    t = timing.per_call(_timing(3.2e-3), 32)
    assert (t.median_s, t.min_s, t.spread) == pytest.approx((1e-4, _timing(3.2e-3).min_s / 32, _timing(3.2e-3).spread))


def test_a_collectives_run_past_its_time_is_stopped_not_left_running():
    """torchrun past the timeout is terminated (and killed after a grace), so its workers, which torch starts in
    sessions of their own, do not outlive it holding the GPUs; a run that ends gives its output."""
    import sys

    from calibrate import collectives

    assert collectives._run_ended([sys.executable, "-c", "import time; time.sleep(120)"], 1.0, {}) is None
    done = collectives._run_ended([sys.executable, "-c", "print('ok')"], 60.0, {})
    assert done is not None and done.returncode == 0 and done.stdout.strip() == "ok"


def test_a_cuda_error_stops_the_calibration_an_unsupported_op_is_a_note():
    """guarded notes an unsupported op or an out-of-memory point and goes on; a CUDA error of the device (the context
    is unusable after it) stops with one clear error instead of a file of skipped points."""
    from simulator.errors import MeasurementError

    notes: list[str] = []

    def raises(e):
        def fn():
            raise e

        return fn

    assert timing.guarded("fp4 gemm 128", notes, raises(TypeError("scaled_mm() got an unexpected keyword"))) is None
    assert timing.guarded("decode 64", notes, raises(RuntimeError("CUDA out of memory. Tried to allocate"))) is None
    cublas = RuntimeError("CUDA error: CUBLAS_STATUS_NOT_SUPPORTED when calling `cublasLtMatmul( ltHandle, ...)`")
    assert timing.guarded("fp8 gemm 24", notes, raises(cublas)) is None  # a shape cuBLASLt rejects: the context lives
    assert notes[:2] == ["fp4 gemm 128: skipped, scaled_mm() got an unexpected keyword", "decode 64: skipped, out of memory"]
    assert notes[2] == f"fp8 gemm 24: skipped, {cublas}"
    with pytest.raises(MeasurementError, match=r"gemm 4096: the GPU reported a CUDA error \(CUDA error: an illegal"):
        timing.guarded("gemm 4096", notes, raises(RuntimeError("CUDA error: an illegal memory access was encountered")))


def test_a_torch_build_without_kernels_for_the_gpu_is_named():
    """A build without kernels for the GPU still sees it; its first kernel would fail with a traceback. SASS for the
    capability or PTX of an earlier one runs; otherwise the message names the build's architectures and the fix."""
    from calibrate.device import missing_kernels

    assert missing_kernels((9, 0), ["sm_80", "sm_86", "sm_90"]) is None
    assert missing_kernels((10, 0), ["sm_80", "sm_90", "compute_90"]) is None  # PTX of 9.0 JIT-compiles for 10.0
    assert missing_kernels((10, 0), ["sm_90a", "sm_100a"]) is None
    assert missing_kernels((9, 0), []) is None
    assert missing_kernels((8, 9), ["sm_50", "sm_80", "sm_86", "sm_90"]) is None  # SASS runs on later minors (L40S)
    assert missing_kernels((8, 6), ["sm_80"]) is None
    assert missing_kernels((9, 0), ["gfx942", "gfx90a"]) is None  # a ROCm build's names (resolve skips HIP builds too)
    assert missing_kernels((10, 0), ["sm_90a", "compute_90a"]) is not None  # arch-specific code runs on 9.0 only
    found = missing_kernels((10, 0), ["sm_80", "sm_86", "sm_90"])
    assert found is not None and "compute capability 10.0" in found and "sm_80, sm_86, sm_90" in found


def test_the_gpu_state_nvidia_smi_reports_is_recorded_and_old_files_hash_as_before():
    """Clocks, power limit and temperature move a GPU's rates (the H200 of 2026-12-04: 11% between cold and hot), so
    a calibration records them; a field nvidia-smi cannot give is None, and a file without them hashes as before."""
    from calibrate.device import gpu_state

    state = gpu_state("700.00, 1755, 1980, 61, Enabled, [N/A]")
    assert state == {"gpu_power_limit_w": 700.0, "gpu_sm_clock_mhz": 1755.0, "gpu_max_sm_clock_mhz": 1980.0,
                     "gpu_temperature_c": 61.0, "gpu_ecc_mode": "Enabled", "gpu_mig_mode": None}  # fmt: skip
    assert gpu_state("[N/A], [N/A], [N/A], [N/A], [N/A], [N/A]") == dict.fromkeys(state)
    from calibrate.device import smi_id

    # nvidia-smi numbers GPUs its own way (not CUDA_VISIBLE_DEVICES's): the state is asked for by the GPU's UUID
    assert smi_id("5e8f0c2a-1b2c-3d4e-5f60-718293a4b5c6", 1) == "GPU-5e8f0c2a-1b2c-3d4e-5f60-718293a4b5c6"
    assert smi_id("GPU-5e8f", 1) == "GPU-5e8f" and smi_id(None, 1) == "1"
    from pathlib import Path

    h200 = Path(__file__).resolve().parent.parent / "validation" / "local" / "h200-2026-12-04" / "calibration.json"
    stored = load_calibration(h200)  # written before these fields: loads, its hash unchanged
    assert stored.provenance.gpu_power_limit_w is None and content_hash(stored) == stored.sha256
    with_state = stored.model_copy(update={"provenance": stored.provenance.model_copy(update=state)})
    assert content_hash(with_state) != stored.sha256


def test_the_collectives_worker_outside_torchrun_says_how_to_start_it(tmp_path):
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    proc = subprocess.run([sys.executable, "-m", "calibrate.collectives", "--backend", "gloo", "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=120,
                          cwd=__import__("pathlib").Path(__file__).resolve().parent.parent)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set" in proc.stderr and "torch.distributed.run" in proc.stderr


def test_a_file_timed_before_cuda_graphs_is_not_read_as_drift():
    """The H200 file's decode samples were queued from the host (20-28 us a call, the dispatch rate); a run now times
    them as CUDA graphs, several times faster. check lists those rates as timed another way, not as device drift."""
    from pathlib import Path

    from calibrate.check import graph_timed, timed_otherwise

    h200 = Path(__file__).resolve().parent.parent / "validation" / "local" / "h200-2026-12-04" / "calibration.json"
    stored = load_calibration(h200).samples
    fresh = stored.model_copy(update={"decode_gemm": [s.model_copy(update={"cuda_graph": True}) for s in stored.decode_gemm]})
    methods = (graph_timed(stored), graph_timed(fresh))
    assert methods[0] == {"decode gemm": False, "decode attention": False} and methods[1]["decode gemm"] is True
    assert timed_otherwise("decode gemm bf16 operand bytes/s", *methods)
    assert not timed_otherwise("decode attention KV bytes/s", *methods)  # timed the same way in both
    assert not timed_otherwise("gemm bf16 best FLOP/s", *methods)
