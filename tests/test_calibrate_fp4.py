"""NVFP4 GEMMs in `costsim calibrate` (issue 12: the FP4 serving rates a GPU run should replace): which devices run
them, the operands and block-scale layout they are timed with, the sweep's points, and a calibration's FP4 fit
replacing a Blackwell profile's FP4 rate. The kernels themselves need a Blackwell GPU; on this CPU the sweep notes
why it skips them."""

from __future__ import annotations

import pytest
import torch
from calibration_support import b200_calibration

from calibrate import device as dev
from calibrate import gemm
from calibrate.run import CUDA_REFERENCE, _gemm_points, plan_for
from calibrate.timing import Budget, guarded
from simulator.inputs.assumptions import BASE
from simulator.inputs.calibration import Calibration
from simulator.inputs.catalog import load_hardware
from simulator.model.efficiency import calibrated_rates, device_rates

CPU = torch.device("cpu")
FAKE_GPU = torch.device("cuda", 0)


def test_fp4_runs_only_on_a_gpu_with_fp4_tensor_cores(monkeypatch):
    assert "CUDA GPU" in dev.fp4_supported(CPU)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert "compute capability 9.0 has no FP4 tensor cores (needs 10.0+)" == dev.fp4_supported(FAKE_GPU)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (10, 0))
    assert dev.fp4_supported(FAKE_GPU) is None  # torch 2.13 has float4_e2m1fn_x2 and scaled_mm's 1x16 recipe


def test_block_scales_fill_whole_swizzled_tiles():
    """One E4M3 scale per 16 inner elements, the scale matrix padded to tiles of 128 rows x 4 scale columns."""
    assert gemm.nvfp4_scale_elements(128, 64) == 128 * 4
    assert gemm.nvfp4_scale_elements(200, 1000) == 256 * 64  # 200 -> 256 rows; 1000 / 16 = 62.5 -> 63 -> 64 columns
    assert gemm.nvfp4_scale_elements(4096, 8192) == 4096 * 512


def test_an_nvfp4_operand_packs_two_values_a_byte():
    values, blocks, scale = gemm.nvfp4_operand(256, 512, CPU)
    assert values.dtype == torch.float4_e2m1fn_x2 and tuple(values.shape) == (256, 256)
    assert blocks.dtype == torch.float8_e4m3fn and blocks.numel() == gemm.nvfp4_scale_elements(256, 512)
    assert scale.dtype == torch.float32 and float(scale) == 1.0
    # Random codes, not a constant (a constant operand changes a GEMM's power draw and clocks).
    assert len(torch.unique(values.view(torch.uint8))) > 100
    with pytest.raises(ValueError, match="multiple of 32"):
        gemm.nvfp4_operand(256, 500, CPU)


def test_the_sweep_skips_fp4_here_and_notes_why():
    notes: list[str] = []
    points = _gemm_points(plan_for(CPU, "smoke"), CUDA_REFERENCE, CPU, notes)
    assert not [p for p in points if p[1] == "fp4"]
    assert any(n.startswith("fp4 GEMMs: skipped, NVFP4 GEMMs") for n in notes)


def test_on_a_blackwell_gpu_the_sweep_times_fp4_at_aligned_shapes(monkeypatch):
    monkeypatch.setattr(dev, "fp4_supported", lambda device: None)
    monkeypatch.setattr(dev, "fp8_supported", lambda device: None)
    notes: list[str] = []
    points = _gemm_points(plan_for(FAKE_GPU, "quick"), CUDA_REFERENCE, FAKE_GPU, notes)
    fp4 = [s for s, d in points if d == "fp4"]
    squares = {s.m for s in fp4 if s.m == s.n == s.k}
    assert squares == {256, 512, 1024, 2048, 4096, 8192}
    assert len(fp4) > len(squares)  # the reference model's GEMMs too
    assert all(x % gemm.NVFP4_ALIGN == 0 for s in fp4 for x in (s.m, s.n, s.k))
    assert not [n for n in notes if "fp4" in n]


def test_an_fp4_point_that_cannot_run_becomes_a_note_not_a_failure():
    """The harness guard: on this CPU the NVFP4 product gets through torch's argument checks (recipes, swizzles, scale
    sizes) and stops at the kernel, so the point is skipped with that reason."""
    notes: list[str] = []
    budget = Budget(warmup=1, min_repeats=1, max_repeats=1, target_s=0.001)
    sample = guarded("fp4 GEMM 128x128x128", notes, lambda: gemm.bench(gemm.Shape(128, 128, 128), "fp4", CPU, budget))
    assert sample is None
    assert notes == ["fp4 GEMM 128x128x128: skipped, CPU does not support swizzle."]


def test_a_calibrated_fp4_rate_replaces_the_profiles():
    """A B200 calibration with NVFP4 samples: its best FP4 rate (over the FP4 dense peak, times gemm_sustain) and its
    curve replace the profile's gemm_best.fp4; it survives the file's JSON round trip."""
    cal = b200_calibration()
    again = Calibration.model_validate_json(cal.model_dump_json(by_alias=True))
    assert again.fit.gemm["fp4"].best_flop_per_s == cal.fit.gemm["fp4"].best_flop_per_s
    hw = load_hardware("b200")
    base = device_rates(hw, BASE)
    rates = calibrated_rates(cal, hw, BASE, "cal.json")
    best = cal.fit.gemm["fp4"].best_flop_per_s
    assert rates.gemm_efficiency["fp4"] == pytest.approx(best / base.peak_flop_per_s["fp4"] * BASE.gemm_sustain)
    assert rates.gemm_efficiency["fp4"] != pytest.approx(base.gemm_efficiency["fp4"])
    assert "fp4" in rates.gemm_curves
    assert "GEMM bf16/fp4" in rates.source


def test_decode_gemms_in_fp4_rotate_packed_weights_and_their_scales(monkeypatch):
    """Serving's decode GEMMs in NVFP4: the weight's packed values and its block scales come from the pool (each call
    reads another copy, as each layer reads its own), at m up to 16 and n, k up to multiples of 128."""
    from calibrate import decode
    from calibrate.run import _decode_gemm_points

    assert not [p for p in _decode_gemm_points(plan_for(CPU, "smoke"), CUDA_REFERENCE, CPU) if p[1] == "fp4"]
    monkeypatch.setattr(dev, "fp4_supported", lambda device: None)
    monkeypatch.setattr(dev, "fp8_supported", lambda device: None)
    fp4 = [s for s, d in _decode_gemm_points(plan_for(FAKE_GPU, "quick"), CUDA_REFERENCE, FAKE_GPU) if d == "fp4"]
    assert fp4 and all(s.m % 16 == 0 and s.n % 128 == 0 and s.k % 128 == 0 for s in fp4)
    assert {s.m for s in fp4} == {16, 32, 128, 256}  # 1 and 8 tokens round up to 16

    pool = decode.Pool(CPU, 2**20)
    copies = pool.copies((256, 128), "fp4")
    assert len(copies) == 2**20 // (256 * 128) and copies[0][0].dtype == torch.uint8
    assert copies[0][0].data_ptr() != copies[1][0].data_ptr()
    notes: list[str] = []
    shape = decode.DecodeShape(16, 256, 256, "test")
    budget = Budget(warmup=1, min_repeats=1, max_repeats=1, target_s=0.001)
    assert guarded("fp4 decode", notes, lambda: decode.bench_gemm(shape, "fp4", CPU, budget, pool)) is None
    assert notes == ["fp4 decode: skipped, CPU does not support swizzle."]


def test_the_fp4_fit_reads_the_forward_gemm_only():
    """FP4 runs only in serving, where a model runs only forward GEMMs: its fit reads the forward time, the training
    formats the mean of the three."""
    from simulator.inputs.calibration import GemmSample, Timing

    t = Timing(median_s=1e-3, min_s=0.9e-3, spread=0.02, repeats=5)
    slow = Timing(median_s=3e-3, min_s=2.9e-3, spread=0.02, repeats=5)
    fp4 = GemmSample(m=128, n=128, k=128, dtype="fp4", forward=t, input_grad=slow, weight_grad=slow)
    assert fp4.fitted_s == 1e-3
    assert fp4.model_copy(update={"dtype": "bf16"}).fitted_s == pytest.approx((1e-3 + 3e-3 + 3e-3) / 3)


def test_a_cpu_calibration_that_claims_fp4_gemms_is_refused():
    from calibration_support import cpu_calibration

    from simulator.inputs.calibration import provenance_problem

    cal = cpu_calibration()
    fp4 = b200_calibration().samples.gemm[-1]
    assert fp4.dtype == "fp4"
    bad = cal.model_copy(update={"samples": cal.samples.model_copy(update={"gemm": [*cal.samples.gemm, fp4]})})
    assert provenance_problem(bad) == "provenance.device_kind is cpu but the samples hold FP4 GEMMs, which need a CUDA GPU"
    assert provenance_problem(cal) is None
