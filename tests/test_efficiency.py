"""Achieved device rates (simulator/model/efficiency.py): the GEMM roofline with a per-kernel cost, the attention and
HBM rates, the profile defaults and a calibration's replacements, against hand-worked numbers (docs/model.md §7.1)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from calibration_support import cpu_calibration, h100_calibration

from simulator.errors import InputError
from simulator.inputs.assumptions import BASE
from simulator.inputs.calibration import SCHEMA_VERSION, Calibration, Samples, samples_hash, write_calibration
from simulator.inputs.catalog import load_hardware
from simulator.inputs.specs import ShapeCurve
from simulator.model.comms import Fabric
from simulator.model.efficiency import (
    FA_BACKWARD_OVER_FORWARD,
    DeviceRates,
    attention_split,
    calibrated_device,
    calibrated_rates,
    device_rates,
    gemm_bytes_moved,
    gemm_roofline_s,
)

FABRIC = Fabric(100e9, 10e9, 8, 10e-6)
# BF16 peak 1 PFLOP/s at 50% = 500 TFLOP/s achieved; FP8 2 PFLOP/s at 50%; HBM 1 TB/s; 1 us per kernel.
RATES = DeviceRates(
    name="round",
    peak_flop_per_s={"bf16": 1e15, "fp8": 2e15},
    gemm_efficiency={"bf16": 0.5, "fp8": 0.5},
    attention_flop_per_s=4e14,
    hbm_bytes_per_s=1e12,
    fabric=FABRIC,
    kernel_overhead_s=1e-6,
    source="test",
)


def test_flash_attention_backward_is_2_5_times_forward():
    """flash-attention benchmarks/benchmark_flash_attention.py::flops: backward = 2.5 x forward."""
    assert FA_BACKWARD_OVER_FORWARD == 2.5


def test_attention_split_gives_the_triton_kernel_backward_2_over_1_4_of_fa2s_share_at_its_measured_rate():
    """docs/model.md §7.5, FA2 §4.1: the Triton kernel is ~2x slower than FA2 in the backward and 1.3-1.5x (1.4) in
    the forward, so its backward / forward time is 2.5 x 2 / 1.4; its forward + backward time stays that of its
    measured combined rate, 3.5 F / (peak x combined)."""
    fwd_eff, ratio = attention_split("triton-fa", 0.3)
    assert ratio == pytest.approx(2.5 * 2.0 / 1.4, rel=1e-12)
    assert fwd_eff == pytest.approx(0.3 * (1 + ratio) / 3.5, rel=1e-12)
    flops = 1e12
    assert flops / fwd_eff * (1 + ratio) == pytest.approx(3.5 * flops / 0.3, rel=1e-12)
    assert attention_split(None, 0.5) == (0.5, 2.5)
    assert attention_split("fa2", 0.34) == pytest.approx((0.34, 2.5))


def test_a_stack_kernel_gets_its_backward_split_only_where_the_profile_measured_it():
    a100 = load_hardware("a100-40gb")
    triton = device_rates(a100, BASE, "triton-fa")
    assert triton.attention_backward_over_forward == pytest.approx(2.5 * 2.0 / 1.4)
    combined = a100.efficiency.attention_kernels["triton-fa"].value * a100.peak_flop_per_s("bf16")
    fwd, bwd = triton.attention_s(1e12)
    assert fwd + bwd == pytest.approx(3.5e12 / combined, rel=1e-12)
    today = device_rates(a100, BASE)
    assert today.attention_backward_over_forward == 2.5
    # A profile without the kernel's own figure runs today's kernel at today's split.
    fallback = device_rates(load_hardware("h200"), BASE, "triton-fa")
    assert fallback.attention_backward_over_forward == 2.5


def test_gemm_bytes_are_operands_in_dtype_and_output_in_bf16():
    """[m x k] . [k x n]: b (m k + k n) + 2 m n. BF16 1000^3: 2 x 2e6 + 2e6 = 6e6; FP8: 1 x 2e6 + 2e6 = 4e6."""
    assert gemm_bytes_moved(1000, 1000, 1000, "bf16") == 6e6
    assert gemm_bytes_moved(1000, 1000, 1000, "fp8") == 4e6
    assert gemm_bytes_moved(10, 20, 30, "bf16") == 2 * (10 * 30 + 30 * 20) + 2 * 10 * 20


def test_roofline_is_the_slower_of_compute_and_traffic_plus_kernel_cost():
    """t = max(F / R, bytes / BW) + t_kernel."""
    assert gemm_roofline_s(2e9, 1e12, 1e6, 1e12, 1e-6) == pytest.approx(2e-3 + 1e-6)  # compute-bound
    assert gemm_roofline_s(2e6, 1e12, 1e9, 1e12, 1e-6) == pytest.approx(1e-3 + 1e-6)  # memory-bound


def test_gemm_time_compute_bound_is_2mnk_over_peak_times_efficiency():
    """10000^3 in BF16: 2e12 FLOP / 5e14 = 4 ms; traffic 6e8 B / 1e12 = 0.6 ms; + 1 us."""
    assert RATES.gemm_s(1e4, 1e4, 1e4, "bf16") == pytest.approx(4e-3 + 1e-6, rel=1e-12)


def test_gemm_time_memory_bound_is_bytes_over_hbm():
    """1000^3 in BF16: 2e9 FLOP / 5e14 = 4 us, traffic 6e6 B / 1e12 = 6 us: 6 + 1 us."""
    assert RATES.gemm_s(1000, 1000, 1000, "bf16") == pytest.approx(7e-6, rel=1e-12)


def test_gemm_time_of_count_kernels_and_a_compute_factor():
    """3 FP8 GEMMs of 1e4 x 2e4 x 5e3 at block-scaling factor 0.8: each 2e12 / (2e15 x 0.5 x 0.8) = 2.5 ms
    (traffic 1e4 x 5e3 + 5e3 x 2e4 + 2 x 1e4 x 2e4 = 5.5e8 B = 0.55 ms), + 1 us; x 3."""
    t = RATES.gemm_s(1e4, 2e4, 5e3, "fp8", count=3, compute_factor=0.8)
    assert t == pytest.approx(3 * (2.5e-3 + 1e-6), rel=1e-12)


def test_gemm_with_an_empty_dimension_or_no_kernels_costs_nothing():
    assert RATES.gemm_s(0, 1000, 1000, "bf16") == 0.0
    assert RATES.gemm_s(1000, 0, 1000, "bf16") == 0.0
    assert RATES.gemm_s(1000, 1000, 0, "bf16") == 0.0
    assert RATES.gemm_s(1000, 1000, 1000, "bf16", count=0) == 0.0
    # Below one element per dimension a GEMM still runs (fractional shapes come from averaging tokens over experts).
    assert RATES.gemm_s(0.5, 1000, 1000, "bf16") > 0
    assert RATES.gemm_s(1000, 0.5, 1000, "bf16") > 0
    assert RATES.gemm_s(1000, 1000, 0.5, "bf16") > 0
    assert RATES.gemm_s(1000, 1000, 1000, "bf16", count=0.5) == pytest.approx(3.5e-6)


def test_gemm_operands_stream_at_their_own_bandwidth_where_given():
    """A CPU calibration's copy bandwidth: 1000^3 BF16 traffic 6e6 B at 2e12 B/s = 3 us, < 4 us compute: 4 + 1 us."""
    rates = replace(RATES, gemm_operand_bytes_per_s=2e12)
    assert rates.gemm_s(1000, 1000, 1000, "bf16") == pytest.approx(5e-6, rel=1e-12)


CURVE = ((math.log(1e6), math.log(1e12)), (0.5, 1.0))  # relative efficiency 0.5 at 1 MFLOP, 1.0 at 1 TFLOP


def test_gemm_shape_curve_interpolates_in_log_flops():
    """2e9 FLOP sits at ln(2e9) between ln(1e6) and ln(1e12): r = 0.5 + 0.5 x ln(2e3)/ln(1e6)."""
    rates = replace(RATES, gemm_curves={"bf16": CURVE}, hbm_bytes_per_s=1e18, kernel_overhead_s=0.0)
    r = 0.5 + 0.5 * math.log(2e3) / math.log(1e6)
    assert rates.gemm_s(1000, 1000, 1000, "bf16") == pytest.approx(2e9 / (5e14 * r), rel=1e-12)


def test_shape_curve_is_clamped_outside_its_range():
    """An attention kernel at 1000 FLOP/s (so that tiny calls give times pytest.approx's 1e-12 floor can see)."""
    rates = replace(RATES, attention_curve=CURVE, attention_flop_per_s=1e3)
    assert rates.attention_s(1e15)[0] == pytest.approx(1e15 / 1e3, rel=1e-12)  # above: 1.0
    assert rates.attention_s(100.0)[0] == pytest.approx(100.0 / (1e3 * 0.5), rel=1e-12)  # below: 0.5
    assert rates.attention_s(1.5)[0] == pytest.approx(1.5 / (1e3 * 0.5), rel=1e-12)
    assert rates.attention_s(0.5)[0] == pytest.approx(0.5 / (1e3 * 0.5), rel=1e-12)  # below 1 FLOP: ln clamped at 0
    assert rates.attention_s(0.0)[0] == 0.0


def test_attention_time_is_flops_over_rate_and_backward_2_5x():
    fwd, bwd = RATES.attention_s(4e12)
    assert fwd == pytest.approx(10e-3, rel=1e-12)
    assert bwd == pytest.approx(25e-3, rel=1e-12)
    fwd, bwd = replace(RATES, attention_backward_over_forward=2.0).attention_s(4e12)
    assert bwd == pytest.approx(20e-3, rel=1e-12)


def test_memory_time_is_bytes_over_hbm():
    assert RATES.memory_s(3e9) == pytest.approx(3e-3, rel=1e-12)
    assert RATES.memory_s(3e9, "optimizer") == RATES.memory_s(3e9)  # no class measured: every class at hbm


def test_memory_time_of_a_kernel_class_at_its_measured_rate():
    """DeviceRates.memory_s(bytes, kind): a class the calibration measured runs at its own rate, any other at hbm."""
    r = replace(RATES, memory_bytes_per_s_by_kind={"optimizer": 2e12, "layer": 0.5e12})
    assert r.memory_s(4e9, "optimizer") == pytest.approx(2e-3, rel=1e-12)
    assert r.memory_s(4e9, "layer") == pytest.approx(8e-3, rel=1e-12)
    assert r.memory_s(3e9, "embedding") == r.memory_s(3e9) == pytest.approx(3e-3, rel=1e-12)


# --------------------------------------------------------------------------- profile defaults

H100 = load_hardware("h100-sxm")


def test_device_rates_apply_the_profile_efficiencies():
    """h100-sxm: BF16 989.4 TFLOP/s x MAMF 0.803 x sustain; attention 989.4 x 0.5; HBM 3.35 TB/s x 0.85;
    NVLink 450 GB/s x 0.82; NIC 400 Gbit/s = 50 GB/s x 0.94; 20 us latency."""
    a = replace(BASE, gemm_sustain=0.9, kernel_overhead_s=3e-6)
    r = device_rates(H100, a)
    assert r.peak_flop_per_s["bf16"] == pytest.approx(989.4e12)
    assert r.peak_flop_per_s["fp8"] == pytest.approx(1978.9e12)
    assert r.gemm_efficiency["bf16"] == pytest.approx(0.803 * 0.9)
    assert r.gemm_efficiency["fp8"] == pytest.approx(0.709 * 0.9)
    assert r.attention_flop_per_s == pytest.approx(989.4e12 * 0.5)
    assert r.hbm_bytes_per_s == pytest.approx(3.35e12 * 0.85)
    assert r.fabric.scale_up_bytes_per_s == pytest.approx(450e9 * 0.82)
    assert r.fabric.scale_out_bytes_per_s == pytest.approx(50e9 * 0.94)
    assert r.fabric.domain_gpus == 8
    assert r.fabric.latency_s == pytest.approx(20e-6)
    assert r.kernel_overhead_s == 3e-6
    assert r.source == "defaults of hardware profile h100-sxm (assumed: gemm_best.tf32, gemm_best.fp32, collective_latency_us)"


def test_a_stacks_attention_kernel_runs_at_the_profiles_figure_for_it():
    """docs/model.md §7.5: an older stack's flash kernel (stacks.yaml attention_kernel) at the profile's measured
    figure for it: h100-sxm triton-fa 0.174 (llm-foundry 2023), fa2 0.34 (FlashAttention-2 paper); None or a kernel
    the profile has no figure for: today's `attention` (0.5). The figures are forward + backward rates; triton-fa's
    forward runs faster than that and its backward slower (attention_split)."""

    def combined_flop_per_s(rates):
        fwd, bwd = rates.attention_s(1e12)
        return 3.5e12 / (fwd + bwd)

    assert combined_flop_per_s(device_rates(H100, BASE, "triton-fa")) == pytest.approx(989.4e12 * 0.174)
    assert device_rates(H100, BASE, "fa2").attention_flop_per_s == pytest.approx(989.4e12 * 0.34)
    assert device_rates(H100, BASE, None).attention_flop_per_s == pytest.approx(989.4e12 * 0.5)
    assert device_rates(H100, BASE, "fa9").attention_flop_per_s == pytest.approx(989.4e12 * 0.5)
    a100 = load_hardware("a100-80gb")
    assert combined_flop_per_s(device_rates(a100, BASE, "triton-fa")) == pytest.approx(312e12 * 0.305)
    assert device_rates(a100, BASE, "fa2").attention_flop_per_s == pytest.approx(312e12 * 0.5)  # no A100 FA2 figure
    # The kernel's source replaces `attention`'s in the list of assumed terms: A100's 0.5 is an assumption, triton-fa not.
    assert "attention" in device_rates(a100, BASE, None).source
    assert "attention" not in device_rates(a100, BASE, "triton-fa").source


def test_device_rates_fall_back_to_the_bf16_gemm_efficiency():
    eff = H100.efficiency.model_copy(update={"gemm_best": {"bf16": H100.efficiency.gemm_best["bf16"]}})
    r = device_rates(H100.model_copy(update={"efficiency": eff}), replace(BASE, gemm_sustain=1.0))
    assert r.gemm_efficiency["fp8"] == pytest.approx(0.803)


# --------------------------------------------------------------------------- calibration


def _calibration(device_kind: str = "cuda", profile: str | None = "h100-sxm", full: bool = True) -> Calibration:
    quality = {"samples": 3, "median_abs_error": 0.01, "max_abs_error": 0.02}
    curve = {"work": [1e6, 1e12], "relative": [0.5, 1.0]}
    fit: dict = {
        "gemm": {"bf16": {"best_flop_per_s": 494.7e12, "curve": curve, "quality": quality}},
        "kernel_overhead_s": 5e-6,
    }
    if full:
        fit["gemm"]["fp16"] = {"best_flop_per_s": 2000e12, "curve": curve, "quality": quality}  # above peak: capped at 1
        fit["gemm"]["fp32"] = {"best_flop_per_s": 30e12, "curve": curve, "quality": quality}
        fit["attention"] = {"forward_flop_per_s": 300e12, "backward_over_forward": 2.2, "curve": curve, "quality": quality}
        fit["memory"] = {
            "copy_bytes_per_s": 3e12, "memory_bound_bytes_per_s": 2e12, "by_kernel_bytes_per_s": {"add": 2e12},
            "weights": {"add": 1.0}, "reference": "test",
        }  # fmt: skip
        fit["collectives"] = {
            "scale_up": {"backend": "nccl", "world_size": 8, "by_op": {}, "latency_s": 15e-6, "busbw_bytes_per_s": 300e9}
        }
    tiny = {
        "name": "tiny", "source": "test", "n_layers": 2, "d_model": 64, "vocab_size": 100, "n_heads": 4,
        "n_kv_heads": 4, "head_dim": 16, "ffn": "swiglu", "d_ff": 128, "tied_embeddings": True,
    }  # fmt: skip
    return Calibration.model_validate(
        {
            "schema": "costsim-calibration",
            "schema_version": SCHEMA_VERSION,
            "provenance": {
                "device_kind": device_kind,
                "device_name": "Test GPU",
                "device_count": 1,
                "hardware_profile": profile,
                "torch_version": "x",
                "python_version": "3",
                "os": "linux",
                "date": "2026-01-01T00:00:00Z",
                "mode": "quick",
                "wall_s": 1.0,
                "costsim_version": "0",
            },  # fmt: skip
            "plan": {"reference": {"model": tiny, "batch": 1, "seq_len": 64}, "dtypes": ["bf16"], "collectives": False},
            "samples": {},
            "samples_sha256": samples_hash(Samples()),
            "fit": fit,
        }
    )


def test_calibrated_rates_replace_each_measured_term():
    """BF16 494.7 of 989.4 TFLOP/s measured: efficiency 0.5 x sustain; FP16 measured above the peak: capped at 1;
    attention, memory and NVLink as measured; FP8 and the NIC keep the profile's."""
    a = replace(BASE, gemm_sustain=0.9)
    base = device_rates(H100, a)
    r = calibrated_rates(_calibration(), H100, a, "cal.json")
    assert r.gemm_efficiency["bf16"] == pytest.approx(0.5 * 0.9)
    assert r.gemm_efficiency["fp16"] == pytest.approx(1.0 * 0.9)
    assert r.gemm_efficiency["fp32"] == pytest.approx(30e12 / 66.9e12 * 0.9)
    assert r.gemm_efficiency["fp8"] == base.gemm_efficiency["fp8"]
    assert r.gemm_curves["bf16"] == CURVE
    assert r.attention_flop_per_s == 300e12 and r.attention_backward_over_forward == 2.2
    assert r.attention_curve == CURVE
    assert r.hbm_bytes_per_s == 2e12  # the trainer's memory-bound kernels
    assert r.gemm_operand_bytes_per_s == 3e12
    assert r.fabric.scale_up_bytes_per_s == 300e9 and r.fabric.latency_s == 15e-6
    assert r.fabric.scale_out_bytes_per_s == base.fabric.scale_out_bytes_per_s
    assert r.kernel_overhead_s == 5e-6
    assert r.source == (
        "calibration cal.json (Test GPU, 2026-01-01; measured: GEMM bf16/fp16/fp32, attention, memory-bound kernels, "
        "scale_up collectives)"
    )
    assert calibrated_rates(_calibration(), H100, a, "cal.json", memory_bound_kernels=False).hbm_bytes_per_s == 3e12
    # The closed loop charges each of the trainer's kernel classes at its own measured rate; an estimate does not.
    assert r.memory_bytes_per_s_by_kind == _calibration().fit.memory.by_kernel_bytes_per_s
    assert calibrated_rates(_calibration(), H100, a, "cal.json", memory_bound_kernels=False).memory_bytes_per_s_by_kind == {}


def test_calibration_without_optional_fits_keeps_the_profile_terms():
    base = device_rates(H100, BASE)
    r = calibrated_rates(_calibration(full=False), H100, BASE, "cal.json")
    assert r.attention_flop_per_s == base.attention_flop_per_s
    assert r.attention_backward_over_forward == FA_BACKWARD_OVER_FORWARD and r.attention_curve is None
    assert r.hbm_bytes_per_s == base.hbm_bytes_per_s and r.gemm_operand_bytes_per_s is None
    assert r.fabric == base.fabric
    assert r.source == "calibration cal.json (Test GPU, 2026-01-01; measured: GEMM bf16)"


def test_calibrated_device_checks_that_the_calibration_measured_this_gpu(tmp_path):
    # Sealed files from fixed synthetic samples (tests/calibration_support.py), as `costsim calibrate` writes them.
    h100 = h100_calibration()
    path = write_calibration(h100, tmp_path / "cal.json")
    hw, rates = calibrated_device("h100", path, BASE)
    assert hw.name == "h100-sxm"
    assert rates.hbm_bytes_per_s == pytest.approx(h100.fit.memory.copy_bytes_per_s)  # a GPU's HBM: the measured copy
    with pytest.raises(InputError, match="not on a100-80gb"):
        calibrated_device("a100-80gb", path, BASE)
    cpu_cal = cpu_calibration()
    cpu = write_calibration(cpu_cal, tmp_path / "cpu.json")
    with pytest.raises(InputError, match="measured on a CPU"):
        calibrated_device("h100", cpu, BASE)
    hw, rates = calibrated_device("cpu", cpu, BASE)
    assert rates.peak_flop_per_s["bf16"] == pytest.approx(cpu_cal.fit.gemm["bf16"].best_flop_per_s)
    assert rates.gemm_efficiency["bf16"] == pytest.approx(BASE.gemm_sustain)  # the best measured rate is the peak
    assert rates.hbm_bytes_per_s == pytest.approx(cpu_cal.fit.memory.memory_bound_bytes_per_s)  # a CPU's own kernels


# --------------------------------------------------------------------------- published shape curves (profiles)


def _curve(points: dict) -> dict:
    return {"points": {f: {"value": v, "source": "assumption"} for f, v in points.items()}}


def test_a_profile_shape_curve_slows_small_gemms_by_its_fraction():
    """docs/model.md §7.1: rate = peak x η x r(F); r interpolated in ln F between the profile's points, clamped.
    Curve 1e6 -> 0.25, 1e10 -> 1: at 1e8 FLOP/call (half way in ln F) r = 0.625."""
    eff = H100.efficiency.model_copy(update={"gemm_shape": {"bf16": ShapeCurve.model_validate(_curve({1e6: 0.25, 1e10: 1.0}))}})
    hw = H100.model_copy(update={"efficiency": eff})
    a = replace(BASE, gemm_sustain=1.0, kernel_overhead_s=0.0)
    r = device_rates(hw, a)
    flat = replace(r, gemm_curves={}, gemm_operand_bytes_per_s=1e30)
    shaped = replace(r, gemm_operand_bytes_per_s=1e30)
    m = (1e8 / 2) ** (1 / 3)
    assert shaped.gemm_s(m, m, m, "bf16") == pytest.approx(flat.gemm_s(m, m, m, "bf16") / 0.625, rel=1e-9)
    big = (1e12 / 2) ** (1 / 3)
    assert shaped.gemm_s(big, big, big, "bf16") == pytest.approx(flat.gemm_s(big, big, big, "bf16"), rel=1e-9)
    # Other dtypes keep the flat rate.
    assert shaped.gemm_s(m, m, m, "fp8") == pytest.approx(flat.gemm_s(m, m, m, "fp8"), rel=1e-12)


def test_shape_curves_must_be_fractions_with_two_points():
    with pytest.raises(ValueError, match="two points"):
        ShapeCurve.model_validate(_curve({1e6: 0.5}))
    with pytest.raises(ValueError, match="fraction"):
        ShapeCurve.model_validate(_curve({1e6: 0.5, 1e9: 1.2}))
    assert ShapeCurve.model_validate(_curve({1e9: 1.0, 1e6: 0.5})).as_curve() == ((math.log(1e6), math.log(1e9)), (0.5, 1.0))


@pytest.mark.parametrize("gpu", ["h100-sxm", "h800", "h200"])
def test_hopper_profiles_carry_the_sourced_bf16_curve(gpu):
    """OpenXLA's measured sm_90 matmul table (hardware profile source xla_matmul_sm90): small GEMMs run far below the
    best shape (5% of it at 6.7e7 FLOP/call, compute part), and the curve reaches the best-shape rate by 1.4e11."""
    hw = load_hardware(gpu)
    curve = hw.efficiency.gemm_shape["bf16"]
    assert {p.source for p in curve.points.values()} == {"xla_matmul_sm90"} and "xla_matmul_sm90" in hw.sources
    ln_f, frac = curve.as_curve()
    assert list(frac) == sorted(frac) and frac[0] < 0.1 and frac[-1] == 1.0
    assert math.exp(ln_f[-1]) == pytest.approx(1.37e11, rel=0.01)
    assert device_rates(hw, BASE).gemm_curves["bf16"] == (ln_f, frac)
    assert "fp8" not in hw.efficiency.gemm_shape  # no published FP8 measurement by shape: no curve
    assert hw.efficiency.attention_shape is None


def test_calibration_keeps_the_profile_curve_of_a_dtype_it_did_not_measure():
    r = calibrated_rates(_calibration(full=False), H100, BASE, "cal.json")
    assert r.gemm_curves["bf16"] == CURVE  # measured: replaced
    assert r.gemm_curves["fp16"] == device_rates(H100, BASE).gemm_curves["fp16"]  # not measured: the profile's


def test_calibration_of_the_network_replaces_the_measured_all_reduce_tables():
    """The H100 profile's published all-reduce tables across nodes (docs/model.md §4.2) stay under a calibration that
    measured NVLink only, and give way to one that measured the network itself (collectives.scale_out)."""
    base = device_rates(H100, BASE)
    assert len(base.fabric.all_reduce_floors) == 2
    assert calibrated_rates(_calibration(), H100, BASE, "cal.json").fabric.all_reduce_floors == base.fabric.all_reduce_floors
    cal = _calibration()
    net = cal.fit.collectives["scale_up"].model_copy(update={"world_size": 16, "busbw_bytes_per_s": 40e9})
    cal = cal.model_copy(update={"fit": cal.fit.model_copy(update={"collectives": {**cal.fit.collectives, "scale_out": net}})})
    r = calibrated_rates(cal, H100, BASE, "cal.json")
    assert r.fabric.all_reduce_floors == () and r.fabric.scale_out_bytes_per_s == 40e9
