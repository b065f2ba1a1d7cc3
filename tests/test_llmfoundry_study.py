"""The llm-foundry study (studies/llmfoundry_all_rows.py, docs/model.md §14) reads the README's rows as
copied (published.llmfoundry_readme_runs; tests/test_step_host.py checks the reading): what it adds is tested here."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "llmfoundry_all_rows.py"


def _study():
    spec = importlib.util.spec_from_file_location("llmfoundry_all_rows", STUDY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_decompose_recovers_the_factors_that_made_the_measured_times():
    """Rows whose measured time is 1.15 x GEMMs + 0.7 x recompute + 1.0 x the rest give back those factors, per GPU,
    with no residual; costsim's own error (factors 1) is reported beside them."""
    study = _study()
    parts = [(10.0, 3.0, 2.0), (5.0, 0.0, 1.0), (8.0, 2.5, 4.0), (2.0, 0.0, 3.0), (6.0, 2.0, 0.5)]
    entries = [
        {"gpu": gpu, "parts_s": p, "measured_step_s": 1.15 * p[0] + 0.7 * p[1] + 1.0 * p[2] * scale}
        for gpu, scale in (("h100-sxm", 1.0), ("a100-80gb", 1.2))
        for p in parts
    ]
    out = study.decompose(entries)
    assert set(out) == {"h100-sxm", "a100-80gb"}
    h = out["h100-sxm"]
    assert (h["rows"], h["gemm"], h["recompute"], h["rest"]) == pytest.approx((5, 1.15, 0.7, 1.0), abs=1e-9)
    assert h["median_abs_residual"] == pytest.approx(0.0, abs=1e-9)
    assert h["median_abs_as_modelled"] > 0.02
    assert out["a100-80gb"]["rest"] == pytest.approx(1.2, abs=1e-9)


def test_step_parts_split_a_breakdown_into_gemms_recompute_and_the_rest():
    study = _study()
    breakdown = {"attention_proj": 1.0, "dense_ffn": 2.0, "lm_head": 0.5, "recompute": 1.5, "attention_core": 0.7}
    assert study.step_parts_s(breakdown, 6.0) == pytest.approx((3.5, 1.5, 1.0))


def test_size_trends_hold_the_row_settings_fixed():
    """Rows whose error comes only from checkpointing (the large models) show a raw size trend and none once the
    settings are held; the trend functions are analysis.size_trend's, as `validate public` uses them."""
    study = _study()
    sizes = [125e6, 350e6, 760e6, 1.3e9, 2.7e9, 6.7e9, 13e9, 30e9, 70e9]
    wiggle = [0.004, -0.006, 0.002, 0.005, -0.003, -0.004, 0.006, -0.002, -0.002]
    entries = [
        {"params": p, "error": (-0.06 if p > 5e9 else 0.0) + w, "recompute": "full" if p > 5e9 else "none",
         "num_gpus": 8 * (1 + i % 2), "gpu": ("a100-80gb", "h100-sxm")[i % 3 == 0], "tokens_per_micro_batch": 4096 * (1 + i % 3)}
        for i, (p, w) in enumerate(zip(sizes, wiggle, strict=True))
    ]  # fmt: skip
    out = study.size_trends(entries)
    assert list(out) == ["raw", "settings held", "settings and micro-batch tokens held"]
    assert out["raw"].present and out["raw"].slope_per_e_fold < -0.01
    assert abs(out["settings held"].slope_per_e_fold) < 0.005


def test_gemm_work_trends_read_the_ffn_flops_per_call():
    """Errors that fall with the FFN GEMM's FLOPs per call, whatever the size, give the GEMM-work trend its slope."""
    study = _study()
    flops = [2e11, 4e11, 8e11, 1.6e12, 3.2e12, 6.4e12, 1.28e13, 2.56e13, 5.12e13]
    wiggle = [0.004, -0.006, 0.002, 0.005, -0.003, -0.004, 0.006, -0.002, -0.002]
    entries = [
        {"ffn_flops_per_call": f, "error": math.expm1(-0.03 * math.log(f / 2e11) + w), "recompute": ("none", "full")[i % 2],
         "num_gpus": 8 * (1 + i % 3), "gpu": ("a100-80gb", "h100-sxm")[i % 2 == 0]}
        for i, (f, w) in enumerate(zip(flops, wiggle, strict=True))
    ]  # fmt: skip
    out = study.gemm_work_trends(entries)
    assert list(out) == ["GPU count and GPU held", "recomputation held as well"]
    for t in out.values():
        assert t.slope_per_e_fold == pytest.approx(-0.03, abs=0.004) and t.present
