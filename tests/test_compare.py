"""`costsim compare`: the GPU-hours ratio of two plans as a product of five factors, the waterfall chart, bad input."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from cli_support import clean_error, invoke

import cli
from simulator import api
from simulator.analysis.compare import FACTORS, compare, summarize
from simulator.inputs.catalog import load_hardware

assert_clean_error = functools.partial(clean_error, error="prefix")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _plan(name):
    return api.plan(name).plan


@pytest.fixture(scope="module")
def summaries():
    return summarize(_plan("llama-3.1-405b")), summarize(_plan("deepseek-v3"))


@pytest.fixture(scope="module")
def cli_json() -> dict:
    r = invoke("compare", "llama-3.1-405b", "deepseek-v3", "--format", "json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_product_of_factors_is_the_ratio(cli_json):
    d = cli_json
    assert set(d["factors"]) == {name for name, _, _ in FACTORS}
    assert math.prod(d["factors"].values()) == pytest.approx(d["ratio"], rel=1e-9)
    assert d["ratio"] == pytest.approx(d["a"]["gpu_hours"] / d["b"]["gpu_hours"], rel=1e-12)


def test_both_numbers_are_compared(cli_json):
    """Issue 11: the expected runs at the top level, the achievable runs under `achievable`, each an exact product."""
    d, ach = cli_json, cli_json["achievable"]
    assert d["basis"] == "expected"
    llama, v3 = _plan("llama-3.1-405b"), _plan("deepseek-v3")
    assert ach["a_gpu_hours"] == pytest.approx(llama.achievable_summary()["gpu_hours"], rel=1e-12)
    assert ach["b_gpu_hours"] == pytest.approx(v3.achievable_summary()["gpu_hours"], rel=1e-12)
    assert ach["a_gpu_hours"] < d["a"]["gpu_hours"] and ach["b_gpu_hours"] < d["b"]["gpu_hours"]
    assert ach["ratio"] == pytest.approx(ach["a_gpu_hours"] / ach["b_gpu_hours"], rel=1e-12)
    assert math.prod(ach["factors"].values()) == pytest.approx(ach["ratio"], rel=1e-9)
    # Same model FLOPs, tokens and peaks: only efficiency and goodput may differ between the two bases.
    for name in ("flops_per_token", "tokens", "peak"):
        assert ach["factors"][name] == pytest.approx(d["factors"][name], rel=1e-12)
    table = invoke("compare", "llama-3.1-405b", "deepseek-v3")
    assert f"{ach['ratio']:.3g}x" in table.output and "achievable" in table.output


def test_efficiency_and_goodput_are_fractions(summaries):
    for s in summaries:
        assert 0 < s.efficiency < 1 and 0 < s.goodput <= 1


def test_factor_values_match_their_inputs(summaries):
    llama, v3 = summaries
    d = compare(llama, v3)
    # Llama 3.1 405B trains in BF16 on H100s, every DeepSeek-V3 stage in FP8 on H800s: the peak factor is the
    # ratio of the profiles' dense peaks (1978.9 / 989.4 TFLOP/s).
    peak = load_hardware("h800").peak_flop_per_s("fp8") / load_hardware("h100-sxm").peak_flop_per_s("bf16")
    assert d["factors"]["peak"] == pytest.approx(peak, rel=1e-12)
    assert d["factors"]["tokens"] == pytest.approx(llama.tokens / v3.tokens, rel=1e-12)
    # docs/model.md §2.7: Llama 3 405B costs about 9.9x the FLOPs per token of DeepSeek-V3 at s = 4096 (2473 vs 250.4
    # GFLOP); with the plans' longer sequences and V3's MTP module counted, 9-11x.
    assert 9.0 < d["factors"]["flops_per_token"] < 11.0


def test_reported_ratio_from_the_plans(cli_json):
    # Llama 3.1 model card 30.84M H100-hours / DeepSeek-V3 Table 1 2.788M H800-hours = 11.06.
    assert cli_json["reported_ratio"] == pytest.approx(30.84e6 / 2.788e6, rel=1e-12)


def test_one_factor_changed_moves_only_that_factor(summaries):
    llama, _ = summaries
    doubled = replace(llama, tokens=2 * llama.tokens, model_flops=2 * llama.model_flops,
                      ideal_gpu_hours=2 * llama.ideal_gpu_hours, gpu_hours=2 * llama.gpu_hours)  # fmt: skip
    d = compare(doubled, llama)
    assert d["ratio"] == pytest.approx(2.0)
    assert d["factors"]["tokens"] == pytest.approx(2.0)
    for name in ("flops_per_token", "peak", "efficiency", "goodput"):
        assert d["factors"][name] == pytest.approx(1.0)


def test_table_and_waterfall_png(tmp_path):
    png = tmp_path / "waterfall.png"
    r = invoke("compare", "llama-3.1-405b", "deepseek-v3", "--plot", str(png))
    assert r.exit_code == 0, r.output
    assert "product" in r.output and "reported" in r.output and "flops_per_token" in r.output
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_plan_files_can_be_compared(tmp_path):
    plan = yaml.safe_load((Path(cli.__file__).parent.parent / "plans" / "llama-3.1-405b.yaml").read_text())
    plan["stages"] = plan["stages"][:1]  # the 8K pre-training stage only
    path = tmp_path / "llama-pretraining.yaml"
    path.write_text(yaml.safe_dump(plan))
    d = json.loads(invoke("compare", "llama-3.1-405b", str(path), "--format", "json").output)
    assert d["ratio"] > 1.0  # the whole plan has the 128K stage on top
    assert math.prod(d["factors"].values()) == pytest.approx(d["ratio"], rel=1e-9)


def test_unknown_run_fails_cleanly():
    assert_clean_error(invoke("compare", "llama-3.1-405b", "gpt-5"), "unknown plan 'gpt-5'", "deepseek-v3")


def test_model_without_a_shipped_plan_lists_the_plans():
    assert_clean_error(invoke("compare", "llama-3.1-8b", "deepseek-v3"), "llama-3.1-8b", "shipped plans")


def test_malformed_run_file_fails_cleanly(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    assert_clean_error(invoke("compare", str(path), "deepseek-v3"), str(path), "not valid YAML")


def test_bad_plot_paths_fail_cleanly(tmp_path):
    assert_clean_error(invoke("compare", "llama-3.1-405b", "deepseek-v3", "--plot", str(tmp_path / "w.jpg")), ".png")
    missing_dir = tmp_path / "no" / "such" / "w.png"
    assert_clean_error(invoke("compare", "llama-3.1-405b", "deepseek-v3", "--plot", str(missing_dir)), "--plot", "does not exist")
