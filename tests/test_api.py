"""Python API (simulator.api, also importable as simulator.notebook): the functions agree with the CLI and their
result objects convert cleanly."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from cli_support import ENV, RUNNER, invoke

import cli
from simulator import notebook as cs
from simulator.errors import CostsimError, InputError

LAYOUT = {"tp": 1, "pp": 1, "cp": 1, "zero_stage": 3, "micro_batch_size": 1, "schedule": "1f1b", "recompute": "none"}
CLI_LAYOUT = ["--tp", "1", "--pp", "1", "--cp", "1", "--zero-stage", "3", "--micro-batch-size", "1", "--schedule", "1f1b"]
CLI_LAYOUT += ["--recompute", "none"]


@pytest.fixture(scope="module")
def small():
    return cs.estimate("llama-3.1-8b", "h100", 64, "1T", uncertainty=True, draws=2000, **LAYOUT)


def test_estimate_matches_the_cli(small):
    r = RUNNER.invoke(cli.app, ["estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T", *CLI_LAYOUT,
                                "--format", "json"], env=ENV)  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert small.gpu_hours == pytest.approx(d["gpu_hours"], rel=1e-12)
    assert small.cost_usd == pytest.approx(d["cost_usd"], rel=1e-12)
    assert small.wall_clock_days == pytest.approx(d["wall_clock_days"], rel=1e-12)
    assert small.layout == d["layout"]
    same = cs.estimate("llama-3.1-8b", "h100", 64, 1e12, **LAYOUT)  # a number and '1T' are the same tokens
    assert same.gpu_hours == small.gpu_hours and same.uncertainty is None


@pytest.mark.parametrize(
    "flags, options",
    [
        ([], {}),
        (["--pricing", "tco"], {"pricing": "tco"}),
        (["--rental", "reserved"], {"rental": "reserved"}),
        (["--usd-per-gpu-hour", "2"], {"usd_per_gpu_hour": 2.0}),
        (["--pricing", "tco", "--pue", "1.1", "--usd-per-kwh", "0.1"], {"pricing": "tco", "pue": 1.1, "usd_per_kwh": 0.1}),
    ],
)
def test_front_door_and_cli_give_identical_dollars_under_every_pricing_option(flags, options):
    """One cost, chosen once (issue 10): the same run under default rental, TCO, a reserved quote and a given price
    costs exactly the same through simulator.api and through `costsim estimate` (h100-sxm has both quote kinds)."""
    argv = ["estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T", *CLI_LAYOUT, *flags]
    r = RUNNER.invoke(cli.app, [*argv, "--format", "json"], env=ENV)
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    api_doc = cs.estimate("llama-3.1-8b", "h100", 64, "1T", **LAYOUT, **options).to_dict()
    assert api_doc["cost_usd"] == d["cost_usd"]
    assert api_doc["cost"] == d["cost"]
    assert d["cost"]["basis"] == options.get("pricing", "rental")


def test_the_pricing_options_change_the_dollars_not_the_hours():
    runs = {
        k: cs.estimate("llama-3.1-8b", "h100", 64, "1T", **LAYOUT, **o)
        for k, o in {"rental": {}, "tco": {"pricing": "tco"}, "reserved": {"rental": "reserved"}}.items()
    }
    assert len({r.gpu_hours for r in runs.values()}) == 1
    assert len({r.cost_usd for r in runs.values()}) == 3  # three different prices of the same hours
    assert runs["tco"].estimate.cost["basis"] == "tco"


def test_estimate_frames(small):
    f = small.to_frame()
    assert f.shape[0] == 1
    assert f.loc[0, "gpu_hours"] == small.gpu_hours and f.loc[0, "layout.zero_stage"] == 3
    band = small.uncertainty.bands["gpu_hours"]
    assert f.loc[0, "gpu_hours_p10"] == band.p10 < f.loc[0, "gpu_hours"] < f.loc[0, "gpu_hours_p90"] == band.p90
    b = small.breakdown_frame()
    assert b["seconds_per_step"].sum() == pytest.approx(small.estimate.step_time_s, rel=1e-9)
    assert b["share"].sum() == pytest.approx(1.0)
    t = small.tornado_frame()
    assert list(t["name"]) == [bar.name for bar in small.uncertainty.tornado]
    d = small.to_dict()
    assert d["uncertainty"]["draws"] == 2000
    json.dumps(d)  # plain data
    assert "GPU-hours" in repr(small)


def test_search_best_is_what_estimate_chooses():
    # estimate leaves TP communication overlap off unless asked (simulator.run.estimate.estimate); search tries both.
    s = cs.search("llama-3.1-8b", "h100", 64, "1T", top=25, tp_overlap=False)
    e = cs.estimate("llama-3.1-8b", "h100", 64, "1T")
    assert s.best is not None and s.best["layout"] == e.achievable.layout.to_dict()
    assert s.best["gpu_hours"] == pytest.approx(e.achievable.gpu_hours, rel=1e-9)
    f = s.to_frame()
    assert len(f) == 25 and list(f["rank"]) == list(range(1, 26))
    assert s.to_dict()["evaluated"] >= 25 and "layout.tp" in f.columns


def test_search_to_dict_is_what_the_command_prints():
    """The README's promise: .to_dict() is the CLI's JSON less its schema_version (a review found api.search with other
    keys, no stack limits, reference, expected run or price quote). The document meets `costsim schema search`'s model
    (which the CLI's JSON is tested against), and the CLI prints the same."""
    from simulator.outputs import SCHEMA_VERSION, SearchOutput

    d = cs.search("llama-3.1-8b", "h100", 64, "1T", top=20, tp=1).to_dict()
    SearchOutput.model_validate({"schema_version": SCHEMA_VERSION, **d})
    assert d["stack"] and d["price_quote"] and d["expected"] is not None and "evaluated" in d
    r = invoke("search", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T", "--tp", "1", "--top", "20",
               "--format", "json")  # fmt: skip
    cli = json.loads(r.output)
    assert cli.pop("schema_version") == SCHEMA_VERSION
    assert json.loads(json.dumps(d)) == cli


def test_claim_rows_are_the_flop_conventions():
    # DeepSeek-V3 report Table 1: 2,664K H800 GPU-hours of pre-training on 14.8T tokens.
    c = cs.claim("deepseek-v3", "h800", "2.664M", "14.8T", num_gpus=2048)
    d = c.to_dict()
    f = c.to_frame()
    assert set(f["convention"]) == set(d["flops_conventions"]) and len(f) >= 2
    assert c.verdict == d["verdict"] and d["claimed_gpu_hours"] == 2.664e6


def test_compare_factors_multiply_to_the_ratio():
    r = cs.compare("deepseek-v3", "llama-3.1-405b")
    f = r.to_frame()
    assert math.prod(f["value"]) == pytest.approx(r.ratio, rel=1e-9)


def test_validate_public_rows_are_the_published_runs():
    v = cs.validate()
    f = v.to_frame()
    assert len(f) == v.to_dict()["n_cases"] > 10
    assert (f["predicted"] / f["reported"] - 1 - f["error"]).abs().max() < 1e-12
    assert v.median_abs_error == pytest.approx(f["error"].abs().median())


def test_write_report_from_python(small, tmp_path):
    files = small.write_report(str(tmp_path / "rep"))
    assert files["markdown"].exists() and files["html"].exists() and len(files["charts"]) >= 4


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: cs.estimate("llama-3.1-8b", "h100", 64, "lots"), "tokens='lots'"),
        (lambda: cs.estimate("llama-3.1-8b", "h100", 0, "1T"), "num_gpus=0"),
        (lambda: cs.estimate("llama-3.1-8b", "h100", 64, "1T", tpp=2), "tpp"),
        (lambda: cs.estimate("llama-3.1-8b", "h100", 64, "1T", uncertainty=True, draws=0), "--draws 0"),
        (lambda: cs.estimate("llama-3.1-8b", "h999", 64, "1T"), "h999"),
        (lambda: cs.search("llama-3.1-8b", "h100", 64, -5), "tokens=-5"),
        (lambda: cs.search("llama-3.1-8b", "a100-80gb", 64, "1T", precision="fp8"), "fp8"),
        (lambda: cs.claim("deepseek-v3", "h800", 0, "14.8T"), "gpu_hours=0"),
        (lambda: cs.validate("local"), "local"),
    ],
)
def test_bad_input_raises_a_costsim_error(call, needle):
    with pytest.raises(CostsimError) as e:
        call()
    assert needle in str(e.value)


def test_tornado_needs_uncertainty():
    with pytest.raises(InputError, match="uncertainty=True"):
        cs.estimate("llama-3.1-8b", "h100", 64, "1T", **LAYOUT).tornado_frame()


def test_importing_the_api_loads_neither_pandas_nor_matplotlib():
    code = (
        "import sys, simulator.notebook, simulator.analysis.uncertainty; "
        "print('pandas' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
