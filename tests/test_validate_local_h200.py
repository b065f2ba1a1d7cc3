"""The first closed loop on a GPU, kept: one H200 (2026-12-04), its full calibration and the step times validate local
measured on it (validation/local/h200-2026-12-04/, provenance in its README.md). The measurements are data; each test
run predicts them again with today's step model on the stored calibration, so a change to the step model that moves
these predictions shows here.

The issue's target for a GPU is a median |step-time error| of 10%; these runs gave 13-16% (the quick calibration of
this virtual machine varied by up to 25% between runs; the step times by under 2%); the stored one (full mode) 14.3%.
The bounds below guard the state as measured, not the target."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from calibrate import validate_local as vl
from simulator.inputs.calibration import load_calibration, measured_hardware
from simulator.model.efficiency import calibrated_rates

RECORD = Path(__file__).resolve().parent.parent / "validation" / "local" / "h200-2026-12-04"
CASES = {c.model.name: (c, "none") for c in vl.CUDA_CASES} | {r.name: (r.base, "full") for r in vl.CUDA_RECOMPUTE_CASES}


@pytest.fixture(scope="module")
def replay() -> list[dict]:
    """Each stored training case with its prediction on the stored calibration by the current step model."""
    path = RECORD / "calibration.json"
    cal = load_calibration(path)  # integrity: hash, provenance against the h200 profile, fit recomputed
    rates = calibrated_rates(cal, measured_hardware(cal, path), vl.LOCAL_ASSUMPTIONS, str(path))
    stored = json.loads((RECORD / "validate-local.json").read_text())
    rows = []
    for row in stored["cases"]:
        case, recompute = CASES[row["case"]]
        assert row["recompute"] == recompute and (row["batch"], row["seq_len"]) == (case.batch, case.seq_len)
        predicted = vl.predict(case, rates, recompute)
        rows.append(row | {"replayed_s": predicted["step_time_s"], "replayed_memory_bytes": predicted["memory_bytes"]})
    return rows


def test_the_record_is_an_h200_calibration_and_every_gpu_case():
    cal = load_calibration(RECORD / "calibration.json")
    assert cal.provenance.device_name == "NVIDIA H200" and cal.provenance.hardware_profile == "h200"
    assert cal.provenance.device_kind == "cuda" and cal.provenance.mode == "full"
    stored = json.loads((RECORD / "validate-local.json").read_text())
    names = [*(c.model.name for c in vl.CUDA_CASES), *(r.name for r in vl.CUDA_RECOMPUTE_CASES)]
    assert [r["case"] for r in stored["cases"]] == names
    assert [d["case"] for d in stored["decode_cases"]] == [d.name for d in vl.CUDA_DECODE_CASES]


def test_h200_step_times_against_todays_step_model(replay):
    """Measured on the H200: 39 ms (125M) to 287 ms (2.7B with recompute). Predicted too slow by 11-18% (stored run);
    guarded: every case within 30%, median within 20%, and no trend with size beyond 15 points between the smallest
    and the largest model."""
    errors = {r["case"]: r["replayed_s"] / r["measured_step_time_s"] - 1 for r in replay}
    assert all(abs(e) <= 0.30 for e in errors.values()), errors
    assert statistics.median(abs(e) for e in errors.values()) <= 0.20, errors
    assert abs(errors["gpu-3b"] - errors["gpu-125m"]) <= 0.15, errors


def test_h200_peak_memory_against_todays_memory_model(replay):
    """torch's allocator peak against the memory model (no reserved memory): within 25% each, median within 15%."""
    errors = [r["replayed_memory_bytes"] / r["measured_peak_memory_bytes"] - 1 for r in replay]
    assert all(abs(e) <= 0.25 for e in errors) and statistics.median(abs(e) for e in errors) <= 0.15, errors


def test_h200_full_recompute_costs_about_what_the_step_model_charges(replay):
    """Full recompute added 37-62 ms per step on the H200. The trainer checkpoints with early stopping, so the step
    model charges one forward of every layer less its down projection (transformer.CHECKPOINT_EARLY_STOP). Against
    that the measured extra is 0.83-0.90 (0.75-0.83 against a whole forward, as the stored run predicted it), while the
    paired base cases ran at 0.88-0.90 of their predicted step: recomputing costs here what the layer's forward costs,
    within 7%. Guarded: each ratio within 15% of the base case's measured / predicted step time."""
    costs = vl.recompute_costs(
        [r | {"predicted_step_time_s": r["replayed_s"]} for r in replay]  # today's predictions, the stored measurements
    )
    assert [c["base"] for c in costs] == [r.base.model.name for r in vl.CUDA_RECOMPUTE_CASES]
    base = {r["case"]: r["measured_step_time_s"] / r["replayed_s"] for r in replay if r["recompute"] == "none"}
    for c in costs:
        assert 0.85 <= c["measured_over_predicted"] / base[c["base"]] <= 1.15, (c, base[c["base"]])
