"""costsim calibrate on the CPU: the microbenchmarks, the fit, the file, estimate --calibration and calibrate check.

Runs the real commands as processes. The default suite uses one hidden `--smoke` calibration (a few points)
and asserts only what holds however loaded the machine is: the file's structure, the fit following from the
samples, the check comparing every rate with the file, drift and tampering made large enough to fail by far.

What depends on this machine's speed is marked `measurement` and left out of the default suite
(`python -m pytest -q -m measurement`, on a quiet machine): the `--quick` calibration (the issue's mode)
against its 2-minute budget on a 2-core CPU, its fit quality, and `calibrate check` passing on a fresh file.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import ROOT, assert_clean_exit, clean_error, costsim, invoke

from calibrate import decode, memory_kernels, transformer
from calibrate import device as calibrate_device
from calibrate import fit as calibrate_fit
from calibrate.run import CPU_REFERENCE, fit_all
from simulator.errors import InputError, SpecError
from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.calibration import (
    SCHEMA_VERSION,
    Calibration,
    CollectiveSample,
    GemmSample,
    Samples,
    Timing,
    content_hash,
    load_calibration,
    sealed,
    write_calibration,
)
from simulator.inputs.catalog import load_hardware
from simulator.inputs.job import Job
from simulator.model.comms import bus_factor
from simulator.model.efficiency import calibrated_device, device_rates
from simulator.model.flops import parameter_counts
from simulator.model.layout import Layout
from simulator.model.step_time import step

QUICK_BUDGET_S = 120.0  # the issue: quick mode under 2 minutes on a 2-core CPU
OPS = {"all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv"}
TINY = """name: tiny-25m
source: "test model, Llama-style dense"
n_layers: 4
d_model: 512
vocab_size: 4096
n_heads: 8
n_kv_heads: 4
head_dim: 64
ffn: swiglu
d_ff: 1408
tied_embeddings: false
"""


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[Path, float, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("quick") / "cpu.json"
    t0 = time.perf_counter()
    proc = costsim("calibrate", "--device", "cpu", "--quick", "--output", str(out))
    return out, time.perf_counter() - t0, proc


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("smoke") / "cpu.json"
    proc = costsim("calibrate", "--device", "cpu", "--smoke", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, proc


@pytest.fixture(scope="module")
def smoke(smoke_run) -> Path:
    return smoke_run[0]


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny-25m.yaml"
    path.write_text(TINY)
    return path


# --------------------------------------------------------------------------- the calibration file


def _assert_valid_cpu_file(path: Path, proc: subprocess.CompletedProcess, mode: str) -> Calibration:
    """What any CPU calibration with collectives holds, however loaded the machine: provenance, hash, every
    benchmark present, every time positive, and the fit following from the samples."""
    assert proc.returncode == 0, proc.stderr
    cal = load_calibration(path)
    p = cal.provenance
    assert (p.device_kind, p.mode, p.device_count, p.cpu_threads) == ("cpu", mode, 1, 1)
    assert p.torch_version == torch.__version__ and p.os and p.python_version
    assert cal.schema_version == SCHEMA_VERSION and cal.sha256 == content_hash(cal)
    assert p.date.endswith("+00:00") and math.isfinite(p.wall_s) and p.wall_s > 0
    assert socket.gethostname() not in path.read_text()
    assert f"wrote {path}" in proc.stdout
    # Every benchmark ran: GEMMs in three dtypes, causal attention, the memory-bound kernels, five collectives.
    assert {"bf16", "fp32", "fp16"} <= {s.dtype for s in cal.samples.gemm}
    assert len(cal.samples.attention) >= 2
    assert {s.kernel for s in cal.samples.memory} == {"copy", *memory_kernels.KERNELS}
    assert {s.op for s in cal.samples.collectives} == OPS
    assert {(s.backend, s.world_size, s.tier) for s in cal.samples.collectives} == {("gloo", 2, "scale_up")}
    # Fresh random inputs: no sample can be the zero-time or zero-spread artefact of a constant call.
    assert all(s.forward.median_s > 0 and s.input_grad.median_s > 0 for s in cal.samples.gemm)
    # The stored fit is the fit of the stored samples (refitted here), and its quality counts every bf16 sample.
    refit = fit_all(cal.samples, cal.fit.kernel_overhead_s, cal.plan.reference, [])
    assert refit.model_dump() == cal.fit.model_dump()
    q = cal.fit.gemm["bf16"].quality
    assert q.samples == sum(s.dtype == "bf16" for s in cal.samples.gemm) >= 5
    assert math.isfinite(q.median_abs_error) and 0 <= q.median_abs_error <= q.max_abs_error
    assert set(cal.fit.collectives["scale_up"].by_op) == OPS
    assert any("fp8" in n and "skipped" in n for n in cal.notes)  # unsupported dtype: a note, not a crash
    # Serving: decode GEMMs of 1-256 tokens against the reference's weights, decode attention over a KV cache at
    # several batches and contexts, the decode all-to-all between the two gloo processes; each fitted, all positive.
    weights = {(n, k) for n, k in decode.layer_weights(cal.plan.reference)}
    assert {(s.n, s.k) for s in cal.samples.decode_gemm} == weights and {s.dtype for s in cal.samples.decode_gemm} == {"bf16"}
    assert {s.m for s in cal.samples.decode_gemm} >= {1, 256}
    assert len({(s.batch, s.context) for s in cal.samples.decode_attention}) >= 4
    assert {(s.backend, s.world_size, s.tier) for s in cal.samples.decode_all_to_all} == {("gloo", 2, "scale_up")}
    assert len({s.tokens_per_rank for s in cal.samples.decode_all_to_all}) >= 3
    times = [s.timing for s in (*cal.samples.decode_gemm, *cal.samples.decode_attention, *cal.samples.decode_all_to_all)]
    assert all(math.isfinite(t.median_s) and 0 < t.min_s <= t.median_s for t in times)
    g, a, x = cal.fit.decode_gemm["bf16"], cal.fit.decode_attention, cal.fit.decode_all_to_all["scale_up"]
    assert g.operand_bytes_per_s > 0 and 1 <= g.memory_bound_points <= g.quality.samples == len(cal.samples.decode_gemm)
    assert a.kv_bytes_per_s > 0 and a.quality.samples == len(cal.samples.decode_attention)
    assert x.latency_s >= 0 and x.bytes_per_s > 0 and x.world_size == 2
    return cal


def test_smoke_calibration_writes_a_valid_file(smoke_run):
    _assert_valid_cpu_file(*smoke_run, mode="smoke")


@pytest.mark.measurement
def test_quick_calibration_writes_a_valid_file_within_two_minutes(quick):
    """The issue's quick mode on this machine: its 2-minute budget and its fit quality depend on the machine's
    speed and load (a measurement test: `python -m pytest -q -m measurement` on a quiet machine)."""
    path, wall_s, proc = quick
    cal = _assert_valid_cpu_file(path, proc, mode="quick")
    assert wall_s < QUICK_BUDGET_S, f"quick calibration took {wall_s:.0f} s"
    assert cal.provenance.wall_s < QUICK_BUDGET_S
    assert len(cal.samples.attention) >= 3
    # The fit reproduces the GEMM samples it came from, and reports how well.
    q = cal.fit.gemm["bf16"].quality
    assert q.samples >= 10 and q.median_abs_error < 0.1
    # Smaller GEMMs run at a lower measured efficiency than the best shape.
    _, rates = calibrated_device("cpu", path, DEFAULT)
    per_flop = [rates.gemm_s(s, s, s, "bf16") / (2.0 * s**3) for s in (128, 2048)]
    assert per_flop[0] > per_flop[1]


def test_existing_output_is_never_overwritten_silently(smoke):
    path = smoke
    before = path.read_bytes()
    proc = costsim("calibrate", "--device", "cpu", "--smoke", "--output", str(path))
    assert_clean_exit(proc, "exists", "--force")
    assert path.read_bytes() == before


# --------------------------------------------------------------------------- estimate --calibration


def test_estimate_uses_the_calibration_and_says_so(smoke, tiny_spec):
    path = smoke
    args = [str(tiny_spec), "--gpu", "cpu", "--num-gpus", "1", "--tokens", "10M", "--seq-len", "256"]
    args += ["--global-batch-tokens", "1024", "--tp", "1", "--pp", "1", "--micro-batch-size", "4"]
    proc = costsim("estimate", *args, "--calibration", str(path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["efficiency_source"].startswith(f"calibration {path} ({load_calibration(path).provenance.device_name}, ")
    # The estimate is the simulator on the calibrated rates: the same number as the Python API gives.
    from simulator import api

    est = api.estimate(
        str(tiny_spec), "cpu", 1, 10e6, seq_len=256, global_batch_tokens=1024, tp=1, pp=1, micro_batch_size=4,
        calibration=str(path),
    ).estimate  # fmt: skip
    assert d["step_time_s"] == pytest.approx(est.step_time_s, rel=1e-9)
    cal = load_calibration(path)
    assert est.rates.gemm_curves["bf16"] == cal.fit.gemm["bf16"].curve.as_curve()
    assert est.rates.hbm_bytes_per_s == cal.fit.memory.memory_bound_bytes_per_s
    # Without a calibration the estimate names the profile defaults instead.
    plain = costsim("estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1B", "--format", "json")
    assert json.loads(plain.stdout)["efficiency_source"].startswith("defaults of hardware profile h100-sxm")


def test_a_cpu_calibration_does_not_describe_a_gpu(smoke):
    proc = costsim("estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1B", "--calibration", str(smoke))
    assert_clean_exit(proc, "measured on a CPU", "--gpu cpu")


def test_gpu_calibration_replaces_the_profile_terms(tmp_path):
    """A calibration from an H100 (synthetic samples of an 8x H100 node) replaces the H100 profile's efficiency terms.
    (A CPU file relabelled as an H100 is refused: tests/test_calibrate_integrity.py.)"""
    from test_calibrate_integrity import H100_NAME, h100_calibration

    path = write_calibration(h100_calibration(), tmp_path / "h100.json")
    cal = load_calibration(path)
    hw, rates = calibrated_device("h100", path, DEFAULT)
    base = device_rates(load_hardware("h100"), DEFAULT)
    best = cal.fit.gemm["bf16"].best_flop_per_s
    assert rates.gemm_efficiency["bf16"] == pytest.approx(best / hw.peak_flop_per_s("bf16") * DEFAULT.gemm_sustain)
    assert rates.gemm_efficiency["fp8"] == pytest.approx(
        min(1.0, cal.fit.gemm["fp8"].best_flop_per_s / hw.peak_flop_per_s("fp8")) * DEFAULT.gemm_sustain
    )
    assert rates.gemm_efficiency["fp16"] == base.gemm_efficiency["fp16"]  # not measured: the profile's
    assert rates.attention_flop_per_s == cal.fit.attention.forward_flop_per_s
    assert rates.hbm_bytes_per_s == cal.fit.memory.copy_bytes_per_s  # HBM as measured, not this trainer's kernels
    assert rates.fabric.scale_up_bytes_per_s == cal.fit.collectives["scale_up"].busbw_bytes_per_s
    assert rates.fabric.scale_out_bytes_per_s == base.fabric.scale_out_bytes_per_s
    assert rates.source.startswith(f"calibration {path} ({H100_NAME}, ")
    with pytest.raises(InputError, match="not on a100-80gb"):
        calibrated_device("a100-80gb", path, DEFAULT)


# --------------------------------------------------------------------------- calibrate check


CHECKED_RATES = {"gemm bf16 FLOP/s", "attention FLOP/s", "memory-bound bytes/s", "scale_up bus bytes/s"}
CHECKED_RATES |= {"decode gemm bf16 operand bytes/s", "decode attention KV bytes/s", "scale_up decode all-to-all bytes/s"}


def test_check_measures_again_and_compares_every_rate_with_the_file(smoke):
    """Whether a fresh file passes depends on the load now against the load then (a measurement test below);
    what holds on any machine: each stored rate is the file's, each drift is measured / stored - 1 against the
    tolerance, the verdict follows from the rows, and the exit status from the verdict."""
    from calibrate.check import capability

    proc = costsim("calibrate", "check", str(smoke), "--tolerance", "0.5", "--format", "json")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["fit_matches_samples"] and result["fit_mismatches"] == [] and result["not_measured_again"] == []
    assert result["tolerance"] == 0.5 and result["measured_device"] == load_calibration(smoke).provenance.device_name
    stored = capability(load_calibration(smoke))
    assert {r["rate"] for r in result["rates"]} == set(stored) >= CHECKED_RATES
    for r in result["rates"]:
        assert r["stored"] == pytest.approx(stored[r["rate"]], rel=1e-12)
        assert math.isfinite(r["measured"]) and r["measured"] > 0
        assert r["drift"] == pytest.approx(r["measured"] / r["stored"] - 1, rel=1e-9, abs=1e-12)
        assert r["ok"] == (abs(r["drift"]) <= 0.5)
    assert result["ok"] == all(r["ok"] for r in result["rates"])
    assert proc.returncode == (0 if result["ok"] else 1)


@pytest.mark.measurement
def test_check_passes_on_a_fresh_file(quick):
    """A fresh quick calibration still holds within 50% (a measurement test: a loaded machine drifts further)."""
    proc = costsim("calibrate", "check", str(quick[0]), "--tolerance", "0.5", "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and result["fit_matches_samples"]
    assert {r["rate"] for r in result["rates"]} >= CHECKED_RATES


def test_check_fails_on_an_edited_fit(smoke, tmp_path):
    raw = json.loads(smoke.read_text())
    raw["fit"]["gemm"]["bf16"]["best_flop_per_s"] *= 2
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(raw))
    proc = costsim("calibrate", "check", str(path))
    assert_clean_exit(proc, "does not match its content", "fit.gemm.bf16.best_flop_per_s is", "2x")
    raw["sha256"] = content_hash(Calibration.model_validate(raw))  # the hash recomputed: the refit still fails
    path.write_text(json.dumps(raw))
    assert_clean_exit(costsim("calibrate", "check", str(path)), "the stored fit does not follow from its samples", "2x")


def test_an_edited_sample_fails_the_hash(smoke, tmp_path, tiny_spec):
    raw = json.loads(smoke.read_text())
    raw["samples"]["gemm"][0]["forward"]["median_s"] *= 1.5
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(raw))
    assert_clean_exit(costsim("calibrate", "check", str(path)), "sha256", "edited after costsim calibrate wrote it")
    est = costsim("estimate", str(tiny_spec), "--gpu", "cpu", "--num-gpus", "1", "--tokens", "1M", "--calibration", str(path))
    assert_clean_exit(est, "edited after costsim calibrate wrote it")


def _scaled(cal: Calibration, speedup: float) -> Calibration:
    """The same calibration as measured on a device `speedup` times faster: samples, fit and hash consistent."""
    raw = cal.model_dump(mode="json", by_alias=True)

    def scale(node):
        if isinstance(node, dict):
            if "median_s" in node:
                node["median_s"] /= speedup
                node["min_s"] /= speedup
            for key in ("algbw_bytes_per_s", "busbw_bytes_per_s"):
                if key in node and isinstance(node[key], float) and "timing" in node:
                    node[key] *= speedup
            for v in node.values():
                scale(v)
        elif isinstance(node, list):
            for v in node:
                scale(v)

    scale(raw["samples"])
    samples = Samples.model_validate(raw["samples"])
    fitted = fit_all(samples, cal.fit.kernel_overhead_s / speedup, cal.plan.reference, [])
    return sealed(cal.model_copy(update={"samples": samples, "fit": fitted}))


def test_check_fails_when_the_device_drifted(smoke, tmp_path):
    """A file consistent in itself but 100x faster than this CPU: every measured rate drifts by about -99%, and
    stays beyond the 60% tolerance however loaded the machine is, unless it ran 40x faster now than at `smoke`."""
    path = write_calibration(_scaled(load_calibration(smoke), 100.0), tmp_path / "faster.json")
    load_calibration(path)  # valid: hash and refit agree
    proc = costsim("calibrate", "check", str(path), "--tolerance", "0.6")
    assert proc.returncode == 1, proc.stdout
    assert "DRIFT" in proc.stdout and "FAILED" in proc.stdout
    assert "does not follow" not in proc.stdout
    # The decode rates get their own tolerance: at 10 (1,000%) they pass, and the training rates still drift.
    proc = costsim("calibrate", "check", str(path), "--tolerance", "0.6", "--serving-tolerance", "10", "--format", "json")
    result = json.loads(proc.stdout)
    assert proc.returncode == 1 and result["serving_tolerance"] == 10 and not result["ok"]
    for r in result["rates"]:
        serving = r["rate"].startswith("decode ") or "decode all-to-all" in r["rate"]
        assert r["tolerance"] == (10 if serving else 0.6) and r["ok"] == serving, r


def test_a_decode_fit_one_run_lacks_is_listed_not_failed(smoke, monkeypatch):
    """A dtype's decode GEMM fit needs a memory-bound point, which a run may find and the next not (the quick mode's
    FP8 points on the H200 of 2026-12-04): check lists it and does not fail on it; any other rate missing fails."""
    from calibrate import check as check_module

    stored = load_calibration(smoke)
    rates = {"gemm bf16 best FLOP/s": 1e12, "decode gemm fp8 operand bytes/s": 1e12, "memory-bound bytes/s": 1e11}
    measured_now = stored.model_copy()  # stands for the run check would measure (capability below gives its rates)
    monkeypatch.setattr(check_module, "calibrate", lambda *a, **k: measured_now)
    fresh = {"gemm bf16 best FLOP/s": 1e12, "memory-bound bytes/s": 1e11}
    monkeypatch.setattr(check_module, "capability", lambda cal: fresh if cal is measured_now else rates)
    result = check_module.check(smoke, 0.1, stored=stored)
    assert result["ok"] and result["not_fitted_again"] == ["decode gemm fp8 operand bytes/s"]
    assert result["not_measured_again"] == []
    del fresh["memory-bound bytes/s"]
    result = check_module.check(smoke, 0.1, stored=stored)
    assert not result["ok"] and result["not_measured_again"] == ["memory-bound bytes/s"]


# --------------------------------------------------------------------------- bad input


def test_bad_calibration_files_give_clean_errors(tmp_path, smoke, tiny_spec):
    est = ["estimate", str(tiny_spec), "--gpu", "cpu", "--num-gpus", "1", "--tokens", "1M", "--calibration"]
    missing = tmp_path / "missing.json"
    assert_clean_exit(costsim(*est, str(missing)), str(missing), "no such file")
    assert_clean_exit(costsim("calibrate", "check", str(missing)), "no such file")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"schema": "costsim-calibration", ')
    assert_clean_exit(costsim("calibrate", "check", str(bad_json)), "not valid JSON", "line 1")
    raw = json.loads(smoke.read_text())
    raw["schema_version"] = 99
    future = tmp_path / "future.json"
    future.write_text(json.dumps(raw))
    assert_clean_exit(costsim(*est, str(future)), "schema_version 99 is not supported", f"version {SCHEMA_VERSION}")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "something-else", "schema_version": 1}))
    assert_clean_exit(costsim("calibrate", "check", str(other)), "not a costsim calibration")
    raw = json.loads(smoke.read_text())
    del raw["fit"]["gemm"]["bf16"]
    nobf16 = tmp_path / "nobf16.json"
    nobf16.write_text(json.dumps(raw))
    assert_clean_exit(costsim(*est, str(nobf16)), "no bf16 GEMM fit")


def test_bad_calibrate_options_give_clean_errors(tmp_path):
    assert_clean_exit(costsim("calibrate", "--device", "cpu", "--smoke"), "--output FILE is required")
    assert_clean_exit(costsim("calibrate", "--smoke", "--output", str(tmp_path)), "is a directory")
    assert_clean_exit(costsim("calibrate", "--smoke", "--output", str(tmp_path / "no" / "x.json")), "does not exist")
    assert_clean_exit(
        costsim("calibrate", "--device", "cpu", "--smoke", "--model", "no-such-model", "--output", str(tmp_path / "x.json")),
        "unknown model 'no-such-model'",
    )
    assert_clean_exit(
        costsim("calibrate", "--device", "cpu", "--smoke", "--profile", "h100", "--output", str(tmp_path / "x.json")),
        "--profile h100 names a GPU profile",
    )
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["calibrate", "--device", "cpu", "--smoke", "--output", "x.json"],
        ["calibrate", "check", "stored.json"],
        ["validate", "local", "--device", "cpu"],
    ],
)
def test_without_torch_the_torch_commands_say_how_to_install_it(args, monkeypatch, tmp_path):
    """torch is the optional `calibrate` extra: without it these commands stop with one line, before any work
    (calibrate check reads the file first: a bad file is refused without torch)."""
    from test_calibrate_integrity import cpu_calibration

    write_calibration(cpu_calibration(), tmp_path / "stored.json")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if it were not installed
    out = clean_error(invoke(*args), "needs torch", "is not installed", "pip install 'costsim[calibrate]'", error="prefix")
    assert len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "x.json").exists()


def test_cuda_without_a_gpu_is_a_clean_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="torch sees no CUDA GPU"):
        calibrate_device.resolve("cuda")


# --------------------------------------------------------------------------- collectives under torchrun


def test_collectives_run_under_torchrun_with_two_gloo_processes(tmp_path):
    out = tmp_path / "coll.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node", "2"]
    cmd += ["-m", "calibrate.collectives", "--backend", "gloo", "--output", str(out), "--sizes", "4096", "262144"]
    cmd += ["--warmup", "1", "--min-repeats", "3", "--max-repeats", "5", "--target-s", "0.01"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    samples = [CollectiveSample(**s) for s in data["samples"]]
    assert {s.op for s in samples} == OPS and len(samples) == 10 and data["notes"] == []
    for s in samples:
        assert (s.world_size, s.backend, s.tier) == (2, "gloo", "scale_up")
        assert s.algbw_bytes_per_s == pytest.approx(s.size_bytes / s.timing.median_s)
        # nccl-tests bus bandwidth: all-reduce 2(n-1)/n = 1, gather/scatter/all-to-all (n-1)/n = 0.5, send/recv 1.
        assert s.busbw_bytes_per_s / s.algbw_bytes_per_s == pytest.approx({"all_reduce": 1.0, "send_recv": 1.0}.get(s.op, 0.5))
    fits = calibrate_fit.fit_collectives(samples)
    assert set(fits["scale_up"].by_op) == OPS
    # A run like this one on a cluster (any torchrun launch) feeds a calibration with --collectives FILE.
    from calibrate.run import calibrate

    cal = calibrate("cpu", "smoke", collectives_file=str(out))
    assert cal.samples.collectives == samples and cal.plan.collectives_file == str(out) and not cal.plan.collectives
    assert cal.fit.collectives["scale_up"].by_op.keys() == fits["scale_up"].by_op.keys()


# --------------------------------------------------------------------------- fitting (no measurement)


def _timing(t: float) -> Timing:
    return Timing(median_s=t, min_s=t, spread=0.0, repeats=5)


def test_collective_fit_recovers_latency_and_bus_bandwidth():
    alpha, busbw, n = 20e-6, 100e9, 8
    samples = []
    for op in sorted(OPS):
        for size in (2.0**k for k in range(10, 31, 2)):
            t = alpha + bus_factor(op, n) * size / busbw  # type: ignore[arg-type]
            algbw = size / t
            samples.append(
                CollectiveSample(
                    op=op,
                    backend="nccl",
                    world_size=n,
                    tier="scale_out",
                    size_bytes=size,
                    timing=_timing(t),
                    algbw_bytes_per_s=algbw,
                    busbw_bytes_per_s=algbw * bus_factor(op, n),  # type: ignore[arg-type]
                )
            )
    tier = calibrate_fit.fit_collectives(samples)["scale_out"]
    for f in tier.by_op.values():
        assert f.latency_s == pytest.approx(alpha, rel=1e-6)
        assert f.busbw_bytes_per_s == pytest.approx(busbw, rel=1e-6)
        assert f.quality.max_abs_error < 1e-9


def test_gemm_fit_reproduces_a_known_roofline():
    """Samples drawn from t = max(F / (P·r(F)), bytes / B) + t_k are reproduced by the fitted curve."""
    peak, bandwidth, overhead = 400e9, 30e9, 8e-6
    samples, rels = [], []
    for i, size in enumerate([64, 128, 256, 512, 1024, 2048]):
        m = n = k = size
        flops = 2.0 * m * n * k
        rel = min(1.0, (flops / 2e10) ** 0.25)
        rels.append(rel)
        moved = 2.0 * (m * k + k * n) + 2.0 * m * n
        t = max(flops / (peak * rel), moved / bandwidth) + overhead
        samples.append(GemmSample(m=m, n=n, k=k, dtype="bf16", forward=_timing(t), input_grad=_timing(t), weight_grad=_timing(t)))
        assert i == 0 or samples[-1].flops / samples[-2].flops == 8
    fit = calibrate_fit.fit_gemm(samples, overhead, bandwidth)
    # The known rates come back: the best rate is the peak at the largest shape's efficiency, and the curve is
    # each shape's efficiency relative to it.
    assert fit.best_flop_per_s == pytest.approx(peak * rels[-1], rel=1e-9)
    assert fit.curve.relative == pytest.approx([r / rels[-1] for r in rels], rel=1e-9)
    assert fit.quality.max_abs_error < 1e-9


def test_device_rates_with_curves_take_numpy_arrays(smoke):
    """The vectorized search calls gemm_s and attention_s with arrays: one array call = the scalar calls."""
    cal = load_calibration(smoke)
    _, rates = calibrated_device("cpu", smoke, DEFAULT)
    m = np.array([0.0, 64.0, 1024.0, 8192.0])
    assert np.allclose(rates.gemm_s(m, 512, 1408, "bf16"), [rates.gemm_s(x, 512, 1408, "bf16") for x in m])
    assert rates.gemm_s(0.0, 512, 512, "bf16") == 0.0
    flops = np.array([1e6, 1e8, 1e10])
    fwd, bwd = rates.attention_s(flops)
    assert np.allclose(fwd, [rates.attention_s(f)[0] for f in flops])
    assert np.allclose(bwd, fwd * cal.fit.attention.backward_over_forward)


def test_memory_kernel_bytes_are_what_the_step_model_charges():
    """At bandwidth B the step model charges the reference workload's memory-bound kernels (all layers), the
    embedding, the cross-entropy and the optimizer step the calibration's counted bytes / B: the fitted
    bandwidth is in the step model's own accounting."""
    ref = CPU_REFERENCE
    model, tokens = ref.model, ref.tokens
    rates = device_rates(load_hardware("h100"), DEFAULT)
    job = Job(1, float(tokens), ref.seq_len, tokens)
    result = step(model, job, Layout(micro_batch_size=ref.batch, zero_stage=0), rates, parameter_counts(model), DEFAULT)
    charged = {k: v * rates.hbm_bytes_per_s for k, v in result.breakdown_s.items()}
    counted = memory_kernels.counted_bytes(model, tokens)
    assert charged["memory_bound"] == pytest.approx(model.n_layers * counted["layer"])
    assert charged["embedding"] == pytest.approx(counted["embedding"])
    head_gemms = 3 * rates.gemm_s(tokens, model.vocab_size, model.d_model, "bf16")
    assert charged["lm_head"] - head_gemms * rates.hbm_bytes_per_s == pytest.approx(counted["cross_entropy"])
    optimizer = memory_kernels.OPTIMIZER_BYTES_PER_PARAM * parameter_counts(model).total
    assert charged["optimizer"] == pytest.approx(optimizer)
    weights = memory_kernels.step_weights(model, tokens)
    assert set(weights) == set(memory_kernels.KERNELS) and math.isclose(sum(weights.values()), 1.0)
    assert weights["optimizer"] == pytest.approx(
        optimizer / (sum(charged[k] for k in ("memory_bound", "embedding", "optimizer")) + counted["cross_entropy"])
    )


def test_trainer_kernels_have_exact_gradients():
    """RMSNorm, RoPE and SwiGLU are custom autograd functions (they keep what the simulator counts)."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: transformer._RMSNorm.apply(x, w, 1e-6), (x, w))
    g, u = (torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(transformer._SwiGLU.apply, (g, u))
    rope = transformer.Rope(8, 5).double()
    q = torch.randn(2, 3, 5, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q: transformer._Rope.apply(q, rope.cos, rope.sin), (q,))


def test_estimate_with_a_calibration_does_not_import_torch(smoke, tiny_spec):
    code = (
        "import sys, cli; from simulator import api; "
        f"api.estimate({str(tiny_spec)!r}, 'cpu', 1, 1e7, seq_len=256, global_batch_tokens=1024, calibration={str(smoke)!r}); "
        'print("torch" in sys.modules)'
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize(
    ("device_name", "memory_gib", "profile"),
    [
        ("NVIDIA H100 80GB HBM3", 79.2, "h100-sxm"),
        ("NVIDIA H100 PCIe", 79.2, "h100-pcie"),
        ("NVIDIA A100-SXM4-80GB", 79.2, "a100-80gb"),
        ("NVIDIA A100-SXM4-40GB", 39.4, "a100-40gb"),
        ("NVIDIA H200", 139.8, "h200"),
        ("NVIDIA GeForce RTX 4090", 23.6, None),
    ],
)
def test_torch_device_names_map_to_profiles(device_name, memory_gib, profile):
    from simulator.inputs.calibration import profile_for_device

    assert profile_for_device(device_name, memory_gib * 2**30) == profile


def test_loader_rejects_what_it_cannot_use(smoke, tmp_path):
    raw = json.loads(smoke.read_text())
    raw["fit"]["gemm"]["bf16"]["curve"]["relative"][0] = 1.5
    path = tmp_path / "bad-curve.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SpecError, match="relative"):
        load_calibration(path)


def test_model_adds_its_exact_gemm_shapes(tmp_path, tiny_spec):
    out = tmp_path / "model.json"
    args = ["--device", "cpu", "--smoke", "--no-collectives", "--model", str(tiny_spec), "--seq-len", "128"]
    proc = costsim("calibrate", *args, "--micro-batch-size", "2", "--tp", "2", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    cal = load_calibration(out)
    bf16 = {(s.m, s.n, s.k): s.origin for s in cal.samples.gemm if s.dtype == "bf16"}
    # 256 tokens; TP 2 halves the column-parallel outputs (QKV 1024, gate+up 2816, head 4096) and the row-parallel
    # inputs (attention output 512, down projection 1408). A shape the sweep has already is measured once.
    expected = {(256, 512, 512), (256, 512, 256), (256, 1408, 512), (256, 512, 704), (256, 2048, 512)}
    assert expected <= set(bf16)
    assert {bf16[s] for s in expected} == {"tiny-25m", "sweep"} and list(bf16.values()).count("tiny-25m") >= 3
    assert cal.provenance.model == "tiny-25m (seq 128, micro-batch 2, TP 2)"
    assert cal.plan.extra[0].tp == 2 and cal.samples.collectives == [] and cal.fit.collectives == {}


@pytest.mark.parametrize("first_s, second_s", [(3.0, 2.5), (10.0, 0.1)])
def test_a_call_over_the_limit_is_skipped_before_its_repeats(monkeypatch, first_s, second_s):
    from calibrate import timing

    # A first call up to 4x the limit is looked at again (one-time set-up); far over it, it is skipped at once.
    calls = iter([first_s, second_s])
    monkeypatch.setattr(timing, "_one_call_s", lambda fn, device: next(calls))
    with pytest.raises(timing.Skip, match="limit per call"):
        timing.measure(lambda: None, torch.device("cpu"), timing.Budget(max_call_s=1.0))


def test_checking_a_gpu_calibration_without_a_gpu_names_the_gpu(monkeypatch):
    """check measures the file's own device again; on a machine without CUDA the fix was '--device cpu', which check
    does not take. The committed H200 calibration (validation/local) is the file; CUDA is hidden so that the test
    means the same on a GPU runner."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = ROOT / "validation" / "local" / "h200-2026-12-04" / "calibration.json"
    out = clean_error(invoke("calibrate", "check", str(path)), "was measured on NVIDIA H200 (cuda)")
    assert "on a machine with that GPU" in out and "--device cpu" not in out


def test_cpu_without_a_calibration_and_one_without_memory_are_named(tmp_path):
    """--gpu cpu without a CPU calibration said "unknown GPU 'cpu'", though the help recommends it; a CPU calibration
    recording no memory size (sysconf failed) read as a 0-byte device that fits nothing (a review)."""
    from test_calibrate_integrity import cpu_calibration

    clean_error(invoke("estimate", "llama-3.2-1b", "--gpu", "cpu", "--num-gpus", "1", "--tokens", "1B"),
                "--gpu cpu names the machine a CPU calibration measured", "costsim calibrate --device cpu")  # fmt: skip
    cal = cpu_calibration()
    path = tmp_path / "nomem.json"
    no_memory = cal.provenance.model_copy(update={"device_memory_bytes": None})
    write_calibration(cal.model_copy(update={"provenance": no_memory}), path)
    clean_error(invoke("estimate", "llama-3.2-1b", "--gpu", "cpu", "--num-gpus", "1", "--tokens", "1B", "--calibration",
                       str(path)), "records no memory size")  # fmt: skip


def test_calibrate_refuses_before_measuring(tmp_path):
    """A review's calibration measured for 34 s, then could not write to /proc (os.access says yes to root), and took
    --seq-len without --model and ignored it: both are refused before any measuring."""
    out = clean_error(invoke("calibrate", "--device", "cpu", "--quick", "--output", "/proc/never.json"))
    assert "folder /proc: a file cannot be created there" in out or "folder /proc: it is not writable" in out  # root, or not
    clean_error(invoke("calibrate", "--device", "cpu", "--quick", "--output", str(tmp_path / "c.json"), "--seq-len", "4096"),
                "--seq-len sets the sequence of --model's GEMM shapes")  # fmt: skip
    assert not (tmp_path / "c.json").exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("version", ["3", 3.0, True])
def test_a_calibration_schema_version_is_a_whole_number(tmp_path, version):
    """A review's re-sealed files with schema_version "3" or 3.0 were coerced and read, and true took version 1's
    message: the version is a JSON integer or the file is refused by name."""
    from test_calibrate_integrity import cpu_calibration

    path = write_calibration(cpu_calibration(), tmp_path / "c.json")
    raw = json.loads(path.read_text())
    raw["schema_version"] = version
    path.write_text(json.dumps(raw))
    clean_error(invoke("estimate", "llama-3.2-1b", "--gpu", "cpu", "--num-gpus", "1", "--tokens", "1B", "--calibration",
                       str(path)), "must be a whole number")  # fmt: skip
