"""Uncertainty bands: distributions, the surrogate against the full model, bands, tornado, seeds, CLI errors.

The runs use complete layouts (no search) so each band takes well under a second. No test here times
anything: the speed of a band is checked by benchmarks/speed_check.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from cli_support import invoke

from simulator import api
from simulator.analysis.uncertainty import (
    OUTPUTS,
    Point,
    Triangular,
    apply,
    band_for_estimate,
    build_surrogate,
    default_inputs,
    estimate_evaluator,
    gemm_sustain_sigma,
    times_over,
)
from simulator.errors import SpecError
from simulator.inputs.assumptions import FITTED_PATH
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.files import read_yaml

# DeepSeek-V3 on 2,048 H800 with the published layout (V3 report §3.2: PP16, EP64, DualPipe, FP8).
V3_LAYOUT = {"tp": 1, "pp": 16, "ep": 64, "cp": 1, "zero_stage": 1, "micro_batch_size": 1, "schedule": "dualpipe"}
V3_LAYOUT |= {"recompute": "selective", "vpp": 1}
V3 = ("deepseek-v3", "h800", 2048, 14.8e12, 4096, 62914560, "fp8", V3_LAYOUT)
# Llama 3.1 405B on 16,384 H100 (Llama 3 Table 4 layout): ETTR ~0.9, where failures and restarts interact. ZeRO-2
# (gradients sharded, reduced every micro-batch) only so that the layout fits costsim's memory model: Llama 3's own
# FSDP is ZeRO-1 in costsim's terms (validation/llama3_table4.yaml), which needs 84.7 GiB here (docs/model.md §3.4).
# The test is about failures and restarts, not the DP model.
LLAMA_LAYOUT = {"tp": 8, "pp": 16, "cp": 1, "zero_stage": 2, "micro_batch_size": 1, "schedule": "interleaved", "vpp": 4}
LLAMA_LAYOUT |= {"recompute": "none"}
LLAMA = ("llama-3.1-405b", "h100", 16384, 15.6e12, 8192, 16777216, "bf16", LLAMA_LAYOUT)
SMALL_CLI = ["estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T", "--tp", "1", "--pp", "1"]
SMALL_CLI += ["--zero-stage", "3", "--micro-batch-size", "1", "--schedule", "1f1b", "--recompute", "none"]


def _estimate(args, price=None):
    model, gpu, n, tokens, seq_len, batch, precision, layout = args
    job = {"seq_len": seq_len, "global_batch_tokens": batch, "precision": precision}
    return api.estimate(model, gpu, n, tokens, **job, usd_per_gpu_hour=price, **layout).estimate


@pytest.fixture(scope="module")
def v3():
    est = _estimate(V3, price=2.0)
    return est, band_for_estimate(est, "deepseek-v3", "h800", price_fixed=True, tokens_spread=0.05)


@pytest.fixture(scope="module")
def llama():
    est = _estimate(LLAMA)
    return est, band_for_estimate(est, "llama-3.1-405b", "h100", draws=2000)


# --------------------------------------------------------------------------- distributions


def test_triangular_quantiles_match_its_samples():
    t = Triangular(0.7, 0.9, 1.0)
    x = t.sample(np.random.default_rng(1), 200_000)
    for q in (0.1, 0.5, 0.9):
        assert np.quantile(x, q) == pytest.approx(t.quantile(q), abs=2e-3)
    assert t.quantile(0.0) == 0.7 and t.quantile(1.0) == 1.0


def test_lognormal_times_over_puts_p10_and_p90_at_the_factor():
    d = times_over(600.0, 2.0)
    assert d.quantile(0.1) == pytest.approx(300.0) and d.quantile(0.9) == pytest.approx(1200.0)
    x = d.sample(np.random.default_rng(2), 200_000)
    assert np.quantile(x, 0.9) == pytest.approx(1200.0, rel=0.02)
    low, high = d.bounds
    assert x.min() >= low - 1e-9 and x.max() <= high + 1e-9  # clipped where the surrogate was evaluated


def test_gemm_sustain_spread_is_the_rms_of_the_leave_one_out_errors(tmp_path):
    doc = read_yaml(FITTED_PATH)
    logs = [math.log1p(c["leave_one_out_error"]) for c in doc["cases"]]
    sigma, source = gemm_sustain_sigma()
    assert sigma == pytest.approx(math.sqrt(sum(x * x for x in logs) / len(logs)))
    assert "leave-one-out" in source and f"{len(logs)} leave-one-out" in source
    # no assumed spread: a file it cannot read is its error (tests/test_fitted_constants.py has the bad files)
    with pytest.raises(SpecError, match="the fitted constants file is missing"):
        gemm_sustain_sigma(tmp_path / "missing.yaml")


def test_every_input_documents_its_distribution_and_source(v3):
    est, band = v3
    names = [i["name"] for i in band.to_dict()["inputs"]]
    for needed in ("gemm_sustain", "overlap_efficiency", "failures_per_gpu_hour", "usd_per_gpu_hour", "tokens"):
        assert needed in names
    for i in band.to_dict()["inputs"]:
        assert len(i["source"]) > 20 and i["distribution"]
    for i in band.inputs:
        low, high = i.dist.bounds
        assert low <= i.nominal <= high, i.name  # the estimate's value is a possible draw
    hbm = next(i for i in band.inputs if i.name == "hbm_efficiency")
    assert hbm.dist.bounds[1] <= 1.0  # an efficiency never exceeds the peak


# --------------------------------------------------------------------------- bands


@pytest.mark.parametrize("case", ["v3", "llama"])
def test_bands_are_ordered_and_contain_the_estimate(case, request):
    est, band = request.getfixturevalue(case)
    d = band.to_dict()
    for k in OUTPUTS:
        assert d[k]["p10"] < d[k]["p50"] < d[k]["p90"]
        assert d[k]["p10"] <= d["nominal"][k] <= d[k]["p90"]
    assert d["nominal"]["gpu_hours"] == pytest.approx(est.gpu_hours, rel=1e-12)
    assert d["nominal"]["cost_usd"] == pytest.approx(est.cost_usd, rel=1e-12)


def test_ten_thousand_draws_are_drawn_and_timed(v3):
    """How fast (10,000 draws in under a second) is a benchmark, not a test: benchmarks/speed_check.py."""
    _, band = v3
    assert band.draws == 10_000
    assert all(len(band.samples[k]) == 10_000 and np.isfinite(band.samples[k]).all() for k in OUTPUTS)
    d = band.to_dict()
    for k in ("model_evaluation_s", "draw_s"):
        assert math.isfinite(getattr(band, k)) and getattr(band, k) > 0 and d[k] == getattr(band, k)


def test_same_seed_same_band_other_seed_close_band(v3):
    est, band = v3
    again = band_for_estimate(est, "deepseek-v3", "h800", price_fixed=True, tokens_spread=0.05)
    other = band_for_estimate(est, "deepseek-v3", "h800", price_fixed=True, tokens_spread=0.05, seed=7)
    assert again.to_dict()["gpu_hours"] == band.to_dict()["gpu_hours"]
    assert other.to_dict()["gpu_hours"] != band.to_dict()["gpu_hours"]
    assert other.bands["gpu_hours"].p50 == pytest.approx(band.bands["gpu_hours"].p50, rel=0.01)


def test_given_price_is_fixed_and_profile_price_is_drawn(v3):
    est, band = v3
    u = band.to_dict()
    assert u["cost_usd"]["p90"] / u["gpu_hours"]["p90"] == pytest.approx(2.0, rel=1e-9)
    assert "usd_per_gpu_hour" not in [b["name"] for b in u["tornado"]]
    drawn = band_for_estimate(est, "deepseek-v3", "h800", price_fixed=False, draws=2000).to_dict()
    bar = next(b for b in drawn["tornado"] if b["name"] == "usd_per_gpu_hour")
    # Cost is GPU-hours x price: the price bar moves dollars in proportion and leaves GPU-hours alone.
    assert bar["at_input_p90"]["cost_usd"] / bar["at_input_p10"]["cost_usd"] == pytest.approx(1.25**2, rel=1e-9)
    assert bar["at_input_p90"]["gpu_hours"] == pytest.approx(bar["at_input_p10"]["gpu_hours"], rel=1e-12)


# --------------------------------------------------------------------------- surrogate and tornado against the full model


def _fresh_joint_draws(est, model, hw, n, seed):
    """Full model vs surrogate at n joint draws the surrogate never saw: relative errors, shape (n, 3)."""
    inputs = default_inputs(hw, est.assumptions, est.rates, est.usd_per_gpu_hour, est.job.tokens, False, 0.05)
    base = Point(est.assumptions, est.rates, est.usd_per_gpu_hour, est.job.tokens)
    evaluate = estimate_evaluator(model, hw, est)
    surrogate, _ = build_surrogate(evaluate, base, inputs, est.job.num_gpus)
    rng = np.random.default_rng(seed)
    values = {i.name: i.dist.sample(rng, n) for i in inputs}
    predicted = surrogate(values, n)
    full = np.array([_full(evaluate, apply(base, inputs, {k: float(v[j]) for k, v in values.items()})) for j in range(n)])
    return predicted / full - 1.0


def _full(evaluate, p: Point):
    return evaluate(p.assumptions, p.rates, p.usd_per_gpu_hour, p.tokens)


@pytest.mark.parametrize("case,args", [("v3", V3), ("llama", LLAMA)])
def test_surrogate_matches_the_full_model_within_its_stated_error(case, args, request):
    """The stated error (20 joint draws inside the run) and 16 fresh joint draws: rms below 1%, every draw within 3%.

    Tolerance: the surrogate is additive in log output with pairwise terms; a draw that moves several inputs far
    at once can switch the slowest pipeline rank, which no low-order term captures (seen up to 2% in plans).
    Before reliability inputs went through the exact goodput model, the 16K-GPU Llama case missed by 8%.
    """
    est, band = request.getfixturevalue(case)
    s = band.surrogate
    assert s.checks == 20 and max(s.rms_error.values()) < 0.01 and max(s.max_abs_error.values()) < 0.03
    err = _fresh_joint_draws(est, load_model(args[0]), load_hardware(args[1]), 16, seed=123)
    assert np.sqrt(np.mean(err**2)) < 0.01 and np.max(np.abs(err)) < 0.03


def test_tornado_bars_are_full_model_evaluations(v3):
    est, band = v3
    evaluate = estimate_evaluator(load_model("deepseek-v3"), load_hardware("h800"), est)
    for bar in band.tornado[:4]:
        a = est.assumptions
        point = apply(Point(a, est.rates, est.usd_per_gpu_hour, est.job.tokens), band.inputs, {bar.name: bar.low_value})
        assert _full(evaluate, point)[0] == pytest.approx(bar.at_low["gpu_hours"], rel=1e-9)
    swings = [b.swing() for b in band.tornado]
    assert swings == sorted(swings, reverse=True)


def test_inputs_that_do_not_apply_drop_out_of_the_tornado():
    est = _estimate(("llama-3.1-8b", "h100", 64, 1e12, 8192, 4194304, "bf16", {"tp": 1, "pp": 1, "zero_stage": 3}), 2.0)
    names = [b.name for b in band_for_estimate(est, "llama-3.1-8b", "h100", price_fixed=True, draws=500).tornado]
    assert "fp8_gemm_factor" not in names and "moe_imbalance" not in names  # BF16, dense
    assert "gemm_sustain" in names


def test_tokens_spread_moves_gpu_hours_in_proportion(v3):
    _, band = v3
    bar = next(b for b in band.tornado if b.name == "tokens")
    ratio = bar.at_high["gpu_hours"] / bar.at_low["gpu_hours"]
    assert ratio == pytest.approx(bar.high_value / bar.low_value, rel=1e-9)


def test_layout_is_held_fixed_and_said_so(v3):
    est, band = v3
    assert any(est.layout.describe() in n for n in band.notes)
    slower = replace(est.assumptions, overlap_efficiency=0.7)
    e2 = estimate_evaluator(load_model("deepseek-v3"), load_hardware("h800"), est)(slower, est.rates, 2.0, est.job.tokens)
    assert e2[0] >= est.gpu_hours * (1 - 1e-12)  # same layout, less overlap: never faster


# --------------------------------------------------------------------------- CLI


def test_cli_json_has_the_uncertainty_block():
    r = invoke(*SMALL_CLI, "--uncertainty", "--draws", "2000", "--format", "json")
    assert r.exit_code == 0, r.output
    u = json.loads(r.output)["uncertainty"]
    assert u["draws"] == 2000 and u["gpu_hours"]["p10"] <= u["gpu_hours"]["p90"]
    assert u["tornado"] and u["surrogate"]["checks"] == 20


def test_cli_table_prints_the_band():
    r = invoke(*SMALL_CLI, "--uncertainty", "--draws", "1000", "--tokens-spread", "0.1")
    assert r.exit_code == 0, r.output
    assert "P10" in r.output and "P90" in r.output and "training tokens" in r.output and "surrogate" in r.output


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--draws", "0"], "--draws 0"),
        (["--draws", "5000000"], "--draws 5000000"),
        (["--seed", "-1"], "--seed -1"),
        (["--tokens-spread", "2"], "--tokens-spread 2"),
        (["--tokens-spread", "-0.1"], "--tokens-spread -0.1"),
    ],
)
def test_cli_bad_uncertainty_options_give_clean_errors(flags, needle):
    r = invoke(*SMALL_CLI, "--uncertainty", *flags)
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert "Traceback" not in r.output and "error:" in r.output and needle in r.output


# --------------------------------------------------------------------------- plans and claims


def test_plan_band_sums_the_stages_and_matches_the_full_model():
    """DeepSeek-V3 plan (plans/deepseek-v3.yaml, four stages on 2,048 H800 at the plan's quoted $2/GPU-hour)."""
    from simulator.analysis.uncertainty import band_for_plan

    result = api.plan("deepseek-v3").plan
    band = band_for_plan(result, draws=2000)
    d = band.to_dict()
    assert d["nominal"]["gpu_hours"] == pytest.approx(result.gpu_hours, rel=1e-9)
    assert d["nominal"]["wall_clock_days"] == pytest.approx(result.wall_clock_s / 86400, rel=1e-9)
    assert d["gpu_hours"]["p10"] < result.gpu_hours < d["gpu_hours"]["p90"]
    assert max(d["surrogate"]["rms_error"].values()) < 0.01 and max(d["surrogate"]["max_abs_error"].values()) < 0.03
    price = next(i for i in d["inputs"] if i["name"] == "usd_per_gpu_hour")
    assert "plan's quoted price" in price["source"] and not price["moves_answer"]


def test_claim_band_places_the_claim_in_the_predicted_distribution():
    """DeepSeek-V3 report Table 1: 2,664K H800 GPU-hours of pre-training for 14.8T tokens on 2,048 GPUs."""
    from simulator.analysis.claim import assess_claim
    from simulator.analysis.uncertainty import band_for_claim

    claim = assess_claim("deepseek-v3", "h800", 2.664e6, 14.8e12, 2048)
    band = band_for_claim(claim, "deepseek-v3", "h800", draws=2000)
    assert band.nominal["gpu_hours"] == pytest.approx(claim.prediction.gpu_hours, rel=1e-9)
    share = float(np.mean(band.samples["gpu_hours"] <= claim.gpu_hours))
    assert any(f"{share:.1%} of the draws" in n for n in band.notes)


def test_claim_band_prices_its_dollars_at_the_claims_price():
    """A claim's dollar band is at the claim's price: stated (--usd-per-gpu-hour), or implied by --usd / --gpu-hours
    (8M / 2.788M = $2.87); it was drawn at the GPU profile's (or the plan's) price whatever the claim said. The
    GPU-hour band, which the claim is judged against, does not depend on the price."""
    common = {"tokens": "14.8T", "num_gpus": 2048, "uncertainty": True, "draws": 200}
    implied = api.claim("deepseek-v3", "h800", gpu_hours="2.788M", usd="8M", **common)
    stated = api.claim("deepseek-v3", "h800", gpu_hours="2.788M", usd_per_gpu_hour=3.0, **common)
    unpriced = api.claim("deepseek-v3", "h800", gpu_hours="2.788M", **common)
    for result, price in ((implied, 8e6 / 2.788e6), (stated, 3.0)):
        band = result.uncertainty
        assert band.nominal["cost_usd"] == pytest.approx(band.nominal["gpu_hours"] * price, rel=1e-9)
        assert band.bands["cost_usd"].p50 == pytest.approx(band.bands["gpu_hours"].p50 * price, rel=1e-6)
        assert band.bands["gpu_hours"].p50 == unpriced.uncertainty.bands["gpu_hours"].p50
    profile = unpriced.claim.prediction.estimate.usd_per_gpu_hour
    assert unpriced.uncertainty.nominal["cost_usd"] == pytest.approx(unpriced.uncertainty.nominal["gpu_hours"] * profile)
    plan = api.claim(plan="deepseek-v3", gpu_hours="2.788M", usd="8M", uncertainty=True, draws=200).uncertainty
    assert plan.nominal["cost_usd"] == pytest.approx(plan.nominal["gpu_hours"] * 8e6 / 2.788e6, rel=1e-9)


def test_cli_plan_and_claim_take_uncertainty():
    r = invoke("estimate", "--plan", "deepseek-v3", "--uncertainty", "--draws", "500", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["uncertainty"]["draws"] == 500
    r = invoke("claim", "deepseek-v3", "--gpu", "h800", "--gpu-hours", "2.664M", "--tokens", "14.8T", "--num-gpus", "2048",
               "--uncertainty", "--draws", "500")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "P90" in r.output and "of the draws predict fewer GPU-hours" in r.output
    r = invoke("claim", "deepseek-v3", "--gpu", "h800", "--gpu-hours", "2.664M", "--tokens", "14.8T", "--uncertainty",
               "--seed", "-3")  # fmt: skip
    assert r.exit_code == 1 and "--seed -3" in r.output and "Traceback" not in r.output
