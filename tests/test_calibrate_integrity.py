"""Calibration files cannot be forged (issue 13, item 1): relabelled, edited or broken files are refused.

Every file here is built from fixed synthetic samples (a CPU and an 8x H100 node, each timed by a known roofline)
and fitted by the code costsim calibrate uses, so the suite is deterministic and fast. Each forgery is checked
twice: with the hash left as it was (the hash catches it) and, where that is the point, with the hash recomputed
as a hostile editor would (the provenance checks and the fit recomputed from the samples catch it). Each must give
one clean error line naming the problem, with a non-zero exit and no traceback, from both `estimate --calibration`
and `calibrate check`, within 5 s.
"""

from __future__ import annotations

import copy
import errno
import json
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from calibration_support import H100_NAME, OPS, cpu_calibration, h100_calibration
from cli_support import assert_clean_exit, clean_error, costsim, invoke

from calibrate import fit as calibrate_fit
from calibrate import memory_kernels
from calibrate.run import CPU_REFERENCE, fit_all
from simulator.errors import InputError, SpecError
from simulator.inputs import calibration as calibration_module
from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.calibration import (
    SCHEMA_VERSION,
    Calibration,
    content_hash,
    load_calibration,
    sealed,
    write_calibration,
)
from simulator.model.comms import bus_factor
from simulator.model.efficiency import calibrated_device

ERROR_S = 5.0  # the issue: every bad file is refused within 5 s


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("integrity")
    return {
        "cpu": write_calibration(cpu_calibration(), folder / "cpu.json"),
        "h100": write_calibration(h100_calibration(), folder / "h100.json"),
    }


def forge(source: Path, out: Path, edit: Callable[[dict], object], reseal: bool) -> Path:
    """`source` edited by `edit` (on the parsed JSON); `reseal`: the hash recomputed, as a hostile editor would."""
    raw = json.loads(source.read_text())
    edit(raw)
    if reseal:
        raw["sha256"] = content_hash(Calibration.model_validate(raw))
    out.write_text(json.dumps(raw))
    return out


ESTIMATE = {
    "cpu": [
        "estimate",
        "llama-3.2-1b",
        "--gpu",
        "cpu",
        "--num-gpus",
        "1",
        "--tokens",
        "100M",
        "--seq-len",
        "256",
        "--global-batch-tokens",
        "1024",
    ],
    "h100": ["estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1B"],
}


def assert_refused(path: Path, kind: str, *needles: str) -> None:
    """Both commands refuse the file: one line, starting with `error:`, naming it and the problem, exit 1, no traceback."""
    for args in ([*ESTIMATE[kind], "--calibration", str(path)], ["calibrate", "check", str(path)]):
        t0 = time.perf_counter()
        out = clean_error(invoke(*args), f"calibration {path}", *needles, error="prefix", exit_code=1)
        assert time.perf_counter() - t0 < ERROR_S, args
        assert len(out.strip().splitlines()) == 1, out
        assert "costsim calibrate" in out  # the fix


# --------------------------------------------------------------------------- the genuine files


def test_synthetic_files_are_accepted_and_used(files):
    """The genuine files load; the H100 one is applied to --gpu h100 (an alias of its profile), the CPU one to cpu."""
    for kind, path in files.items():
        cal = load_calibration(path)
        assert cal.sha256 == content_hash(cal) and len(cal.sha256) == 64
        result = invoke(*ESTIMATE[kind], "--calibration", str(path), "--format", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["efficiency_source"].startswith(f"calibration {path} (")
    hw, rates = calibrated_device("h100", files["h100"], DEFAULT)
    assert hw.name == "h100-sxm" and rates.kernel_overhead_s == 5e-6


def test_the_hash_covers_samples_fit_provenance_plan_and_notes(files):
    cal = load_calibration(files["cpu"])
    changed = [
        cal.model_copy(update={"notes": ["x"]}),
        cal.model_copy(update={"provenance": cal.provenance.model_copy(update={"device_name": "Other CPU"})}),
        cal.model_copy(update={"plan": cal.plan.model_copy(update={"collectives": False})}),
        cal.model_copy(update={"fit": cal.fit.model_copy(update={"kernel_overhead_s": 6e-6})}),
        cal.model_copy(update={"samples": cal.samples.model_copy(update={"attention": []})}),
    ]
    assert len({content_hash(c) for c in [cal, *changed]}) == len(changed) + 1


# --------------------------------------------------------------------------- relabelled: another device kind or profile


def _as_h100(raw: dict) -> None:
    raw["provenance"].update(device_kind="cuda", hardware_profile="h100-sxm", cpu_threads=None)


def test_a_cpu_file_relabelled_as_an_h100_is_refused(files, tmp_path):
    """The issue's forgery: a CPU calibration with device_kind cuda and hardware_profile h100-sxm (760x the GPU-hours)."""
    plain = forge(files["cpu"], tmp_path / "plain.json", _as_h100, reseal=False)
    assert_refused(plain, "h100", "sha256", "does not match its content", "edited after costsim calibrate wrote it")
    resealed = forge(files["cpu"], tmp_path / "resealed.json", _as_h100, reseal=True)
    assert_refused(resealed, "h100", "provenance.device_memory_bytes 64.0 GiB is not the h100-sxm's 80 GiB")

    def disguised(raw: dict) -> None:  # name and memory changed too: the measured rates give it away
        _as_h100(raw)
        raw["provenance"].update(device_name=H100_NAME, device_memory_bytes=79.2 * 2**30, cuda_version="12.4")

    full = forge(files["cpu"], tmp_path / "disguised.json", disguised, reseal=True)
    assert_refused(
        full, "h100", "best BF16 GEMM rate, 0.09524 TFLOP/s, is 0.01% of the h100-sxm dense BF16 peak (989.4 TFLOP/s)", "5%-110%"
    )
    assert_refused(full, "h100", "not a h100-sxm calibration (relabelled?)", "costsim calibrate --device cuda")


def test_a_cpu_file_with_gpu_fields_is_refused(files, tmp_path):
    bad = forge(files["cpu"], tmp_path / "cuda.json", lambda r: r["provenance"].update(cuda_version="12.4"), reseal=True)
    assert_refused(bad, "cpu", 'provenance.device_kind is cpu but provenance.cuda_version is "12.4"')
    bad = forge(files["cpu"], tmp_path / "nothreads.json", lambda r: r["provenance"].update(cpu_threads=None), reseal=True)
    assert_refused(bad, "cpu", "cpu_threads is absent")


def test_an_h100_file_relabelled_as_another_profile_is_refused(files, tmp_path):
    def as_a100(raw: dict) -> None:
        raw["provenance"].update(hardware_profile="a100-80gb", device_name="NVIDIA A100-SXM4-80GB")

    a100 = forge(files["h100"], tmp_path / "a100.json", as_a100, reseal=True)
    assert_refused(a100, "h100", "best BF16 GEMM rate", "of the a100-80gb dense BF16 peak (312 TFLOP/s)")
    h200 = forge(files["h100"], tmp_path / "h200.json", lambda r: r["provenance"].update(hardware_profile="h200"), reseal=True)
    assert_refused(h200, "h100", "provenance.device_memory_bytes 79.2 GiB is not the h200's")
    alias = forge(files["h100"], tmp_path / "alias.json", lambda r: r["provenance"].update(hardware_profile="h100"), reseal=True)
    assert_refused(alias, "h100", "'h100' is an alias", "'h100-sxm'")

    def renamed(raw: dict) -> None:
        raw["provenance"].update(device_name="NVIDIA H100 PCIe")

    pcie = forge(files["h100"], tmp_path / "pcie.json", renamed, reseal=True)
    assert_refused(pcie, "h100", "'NVIDIA H100 PCIe' is a h100-pcie, not the h100-sxm")


def test_a_genuine_h100_file_is_refused_for_another_gpu(files):
    """Refused for --gpu a100 (another profile) and --gpu cpu; accepted for every alias of its own profile."""
    args = ["estimate", "llama-3.1-8b", "--num-gpus", "8", "--tokens", "1B", "--calibration", str(files["h100"])]
    clean_error(invoke(*args, "--gpu", "a100"), "not on a100-80gb", "pass --gpu h100-sxm", error="prefix")
    clean_error(invoke(*args, "--gpu", "cpu"), error="prefix")
    for gpu in ("h100", "h100-sxm", "H100-SXM"):
        assert invoke(*args, "--gpu", gpu).exit_code == 0
    clean_error(invoke(*ESTIMATE["h100"], "--calibration", str(files["cpu"])), "measured on a CPU", "--gpu cpu")


# --------------------------------------------------------------------------- edited numbers


def _scale_best(raw: dict) -> None:
    raw["fit"]["gemm"]["bf16"]["best_flop_per_s"] *= 10


def _scale_curve(raw: dict) -> None:
    curve = raw["fit"]["gemm"]["bf16"]["curve"]
    curve["relative"] = [0.1 * r for r in curve["relative"]]


def _faster_sample(raw: dict) -> None:
    largest_bf16 = [s for s in raw["samples"]["gemm"] if s["dtype"] == "bf16"][-1]
    for key in ("forward", "input_grad", "weight_grad"):
        t = largest_bf16[key]
        t["median_s"] /= 10
        t["min_s"] /= 10


def _edit_attention(raw: dict) -> None:
    raw["fit"]["attention"]["backward_over_forward"] = 1.0


def _edit_memory(raw: dict) -> None:
    raw["fit"]["memory"]["copy_bytes_per_s"] *= 2


def _edit_collective(raw: dict) -> None:
    raw["fit"]["collectives"]["scale_up"]["busbw_bytes_per_s"] *= 5


def _edit_overhead(raw: dict) -> None:
    raw["fit"]["kernel_overhead_s"] = 1e-9


def _edit_quality(raw: dict) -> None:
    raw["fit"]["attention"]["quality"]["max_abs_error"] += 0.5  # a worse fit than it is, or better: either way


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (_scale_best, ["fit.gemm.bf16.best_flop_per_s is", "but its samples give", "10x"]),
        (_scale_curve, ["fit.gemm.bf16.curve.relative.0 is", "0.1x"]),
        (_faster_sample, ["fit.gemm.bf16.best_flop_per_s is", "but its samples give"]),
        (_edit_attention, ["fit.attention.backward_over_forward is 1 but its samples give 2.3"]),
        (_edit_memory, ["fit.memory.copy_bytes_per_s is", "2x"]),
        (_edit_collective, ["fit.collectives.scale_up.busbw_bytes_per_s is", "5x"]),
        (_edit_overhead, ["fit.gemm.bf16.best_flop_per_s is"]),
        (_edit_quality, ["fit.attention.quality.max_abs_error is", "but its samples give"]),
    ],
    ids=["fit-rate-x10", "curve-x0.1", "sample", "attention", "memory", "collectives", "kernel-overhead", "quality"],
)
def test_an_edited_number_is_refused(files, tmp_path, edit, needles):
    """Hash kept: the hash says so, and names the number that no longer follows from the samples where one does not.
    Hash recomputed: the fit recomputed from the samples names it."""
    for kind in ("cpu", "h100"):
        plain = forge(files[kind], tmp_path / f"{kind}-plain.json", edit, reseal=False)
        assert_refused(plain, kind, "sha256", "does not match its content")
        resealed = forge(files[kind], tmp_path / f"{kind}-resealed.json", edit, reseal=True)
        assert_refused(resealed, kind, "the stored fit does not follow from its samples", *needles)


def test_an_edited_gemm_fit_quality_is_refused_by_calibrate_check(files, tmp_path):
    """The GEMM fit quality needs the step model's roofline, so the loader (below the model) leaves it to the check:
    with the hash recomputed, estimate reads the file (the quality is not an input of any estimate) and calibrate
    check fails on it before measuring anything."""

    def edit(raw: dict) -> None:
        raw["fit"]["gemm"]["bf16"]["quality"]["max_abs_error"] += 0.5

    assert_refused(forge(files["cpu"], tmp_path / "plain.json", edit, reseal=False), "cpu", "does not match its content")
    path = forge(files["cpu"], tmp_path / "resealed.json", edit, reseal=True)
    load_calibration(path)
    result = invoke("calibrate", "check", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "fit.gemm.bf16.quality.max_abs_error is" in result.output and "FAILED: not measured again" in result.output


def test_the_loaders_bus_factor_is_the_models():
    from simulator.inputs.calibration import nccl_bus_factor

    for op in OPS:
        for n in (2, 3, 8, 1024):
            assert nccl_bus_factor(op, n) == pytest.approx(float(bus_factor(op, n)), rel=1e-15)  # type: ignore[arg-type]


def test_an_edited_fit_names_the_number_even_with_the_old_hash(files, tmp_path):
    plain = forge(files["h100"], tmp_path / "x10.json", _scale_best, reseal=False)
    assert_refused(plain, "h100", "(fit.gemm.bf16.best_flop_per_s is", "10x)")


def test_a_consistent_forgery_of_the_kernel_overhead_is_refused(files, tmp_path):
    """Overhead raised and the whole fit recomputed with it: the overhead is above the fastest GEMM sample."""
    cal = load_calibration(files["cpu"])
    fitted = fit_all(cal.samples, 1e-3, CPU_REFERENCE, [])
    path = tmp_path / "overhead.json"
    path.write_text(sealed(cal.model_copy(update={"fit": fitted})).to_json())
    assert_refused(path, "cpu", "fit.kernel_overhead_s 0.001 s", "above 1.5x the fastest GEMM sample")


def test_an_edited_collective_sample_is_refused(files, tmp_path):
    def edit(raw: dict) -> None:
        raw["samples"]["collectives"][0]["busbw_bytes_per_s"] *= 3

    bad = forge(files["h100"], tmp_path / "busbw.json", edit, reseal=True)
    assert_refused(bad, "h100", "samples.collectives.0.busbw_bytes_per_s is", "bus factor")


def test_forged_memory_weights_pass_the_load_but_not_calibrate_check(files, tmp_path):
    """Weights that favour the fastest kernel, with the fit recomputed on them: consistent in itself, so it loads; the
    check recomputes the weights from the step model and fails before measuring anything."""
    cal = load_calibration(files["cpu"])
    memory = cal.fit.memory
    assert memory is not None
    weights = {k: (0.97 if k == "layer" else 0.01) for k in memory.weights}
    fitted = calibrate_fit.fit_all(cal.samples, cal.fit.kernel_overhead_s, weights, memory.reference)
    path = tmp_path / "weights.json"
    path.write_text(sealed(cal.model_copy(update={"fit": fitted})).to_json())
    load_calibration(path)
    result = invoke("calibrate", "check", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "memory-bound bytes/s: stored" in result.output and "FAILED: not measured again" in result.output
    assert set(memory.weights) == set(memory_kernels.KERNELS)


# --------------------------------------------------------------------------- non-finite, out of range, missing


@pytest.mark.parametrize("token", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_non_finite_numbers_are_refused(files, tmp_path, token):
    for kind in ("cpu", "h100"):
        text = files[kind].read_text()
        best = json.loads(text)["fit"]["gemm"]["bf16"]["best_flop_per_s"]
        path = tmp_path / f"{kind}.json"
        path.write_text(text.replace(f'"best_flop_per_s": {json.dumps(best)}', f'"best_flop_per_s": {token}', 1))
        assert token in path.read_text()
        assert_refused(path, kind, "fit.gemm.bf16.best_flop_per_s:", "finite number")


@pytest.mark.parametrize(
    ("where", "value", "needle"),
    [
        (("fit", "gemm", "bf16", "best_flop_per_s"), 1e18, "less than or equal to 100000000000000000"),
        (("fit", "gemm", "bf16", "best_flop_per_s"), -1.0, "greater than 0"),
        (("fit", "kernel_overhead_s"), 5.0, "less than or equal to 0.1"),
        (("fit", "gemm", "bf16", "curve", "relative", 0), 1.5, "less than or equal to 1"),
        (("samples", "gemm", 0, "forward", "median_s"), 0.0, "greater than 0"),
        (("samples", "gemm", 0, "m"), 2**40, "less than or equal to 16777216"),
        (("provenance", "date"), "yesterday", "not an ISO 8601 date"),
        (("provenance", "date"), "2999-01-01T00:00:00+00:00", "provenance.date 2999-01-01T00:00:00+00:00 is in the future"),
        (("provenance", "device_kind"), "tpu", "'cpu' or 'cuda'"),
        (("provenance", "device_name"), "x" * 500, "at most 200 characters"),
    ],
)
def test_out_of_range_fields_are_refused(files, tmp_path, where, value, needle):
    def edit(raw: dict) -> None:
        node = raw
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value

    path = forge(files["cpu"], tmp_path / "plain.json", edit, reseal=False)
    out = ".".join(map(str, where))
    if "future" in needle:  # schema-valid: the hash catches it, and recomputing the hash does not help
        assert_refused(path, "cpu", "does not match its content")
        path = forge(files["cpu"], tmp_path / "resealed.json", edit, reseal=True)
    assert_refused(path, "cpu", needle, *([out] if "future" not in needle else []))


@pytest.mark.parametrize(
    "where",
    [("sha256",), ("provenance",), ("fit", "kernel_overhead_s"), ("samples", "gemm", 0, "forward"), ("plan", "reference")],
)
def test_missing_fields_are_refused(files, tmp_path, where):
    raw = json.loads(files["cpu"].read_text())
    node = raw
    for key in where[:-1]:
        node = node[key]
    del node[where[-1]]
    path = tmp_path / "missing.json"
    path.write_text(json.dumps(raw))
    assert_refused(path, "cpu", f"{'.'.join(map(str, where))}: is missing")


def test_a_version_1_file_is_refused(files, tmp_path):
    raw = json.loads(files["cpu"].read_text())
    raw["schema_version"] = 1
    raw["samples_sha256"] = raw.pop("sha256")
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(raw))
    assert_refused(path, "cpu", "schema_version 1 is not supported", "covers the samples only", f"version {SCHEMA_VERSION}")


def test_a_provenance_edit_is_refused(files, tmp_path):
    bad = forge(files["cpu"], tmp_path / "threads.json", lambda r: r["provenance"].update(cpu_threads=64), reseal=False)
    assert_refused(bad, "cpu", "sha256", "does not match its content")
    bad = forge(files["cpu"], tmp_path / "notes.json", lambda r: r["notes"].append("all good"), reseal=False)
    assert_refused(bad, "cpu", "sha256", "does not match its content")


def test_refusals_take_under_five_seconds_in_a_fresh_process(files, tmp_path):
    """The real command lines (a fresh interpreter; calibrate check imports torch first)."""
    bad = forge(files["cpu"], tmp_path / "x10.json", _scale_best, reseal=True)
    for args in ([*ESTIMATE["cpu"], "--calibration", str(bad)], ["calibrate", "check", str(bad)]):
        t0 = time.perf_counter()
        proc = costsim(*args)
        assert time.perf_counter() - t0 < ERROR_S
        assert_clean_exit(proc, "fit.gemm.bf16.best_flop_per_s is", "10x")
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# --------------------------------------------------------------------------- writing: exclusive creation


def _race(path: Path, writers: int, force: bool = False) -> tuple[list[Path], list[Exception]]:
    cal = cpu_calibration()
    barrier = threading.Barrier(writers)
    wrote: list[Path] = []
    failed: list[Exception] = []

    def write() -> None:
        barrier.wait()
        try:
            wrote.append(write_calibration(cal, path, force=force))
        except Exception as e:  # noqa: BLE001 (collected and checked below)
            failed.append(e)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wrote, failed


def test_concurrent_writers_of_a_new_path_exactly_one_succeeds(tmp_path):
    """The issue: twelve writers of one new path without --force, ten reported success. Now one does."""
    path = tmp_path / "cal.json"
    wrote, failed = _race(path, 12)
    assert len(wrote) == 1 and len(failed) == 11
    assert all(isinstance(e, InputError) and "exists" in str(e) and "--force" in str(e) for e in failed)
    load_calibration(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.json"]  # no temporary file left behind


def test_exclusive_creation_without_hard_links(tmp_path, monkeypatch):
    """A file system without hard links: O_CREAT | O_EXCL instead, still exactly one writer."""

    def no_link(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(calibration_module.os, "link", no_link)
    path = tmp_path / "cal.json"
    wrote, failed = _race(path, 12)
    assert len(wrote) == 1 and len(failed) == 11 and all(isinstance(e, InputError) for e in failed)
    load_calibration(path)


def test_force_replaces_and_the_file_is_sealed(tmp_path):
    path = tmp_path / "cal.json"
    path.write_text("old")
    with pytest.raises(InputError, match="exists; pass --force"):
        write_calibration(cpu_calibration(), path)
    assert path.read_text() == "old"
    unsealed = cpu_calibration().model_copy(update={"sha256": "0" * 64})
    write_calibration(unsealed, path, force=True)
    assert load_calibration(path).sha256 == content_hash(unsealed)
    wrote, failed = _race(path, 6, force=True)
    assert len(wrote) == 6 and not failed
    load_calibration(path)


def test_an_unwritable_folder_is_refused_before_measuring(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root may write into a 0o500 folder; make the kernel's answer what it gives an ordinary user.
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and Path(p).resolve() != folder.resolve())
    try:
        out = clean_error(invoke("calibrate", "--device", "cpu", "--smoke", "--output", str(folder / "x.json")), "not writable")
        assert "calibrating" not in out
    finally:
        folder.chmod(0o700)


def test_loader_errors_are_spec_errors(files, tmp_path):
    bad = forge(files["cpu"], tmp_path / "x.json", _scale_best, reseal=True)
    with pytest.raises(SpecError, match=r"best_flop_per_s is .* 10x"):
        load_calibration(bad)
    assert math.isfinite(load_calibration(files["cpu"]).fit.gemm["bf16"].best_flop_per_s)
    assert copy.deepcopy(load_calibration(files["h100"])) == load_calibration(files["h100"])
