"""The serving and RL validation data (validation/serving.yaml, validation/rl.yaml) and the price sheets (prices/):
every file loads under its strict schema, every case resolves to a shipped model spec and hardware profile, states
its source and quote, converts per-node or per-system figures with the arithmetic shown, and a malformed file is
refused with one SpecError naming the file and the field."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from simulator.errors import SpecError
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.data_files import FOLDERS, prices_dir
from simulator.inputs.files import read_yaml
from simulator.inputs.serving_cases import (
    excluded_figures,
    price_sheets,
    rl_cases,
    rl_path,
    serving_cases,
    serving_path,
)

ROOT = Path(__file__).resolve().parents[1]
SERVING = serving_cases()
RL = rl_cases()
PRICES = price_sheets()
PER_GPU = ("output_tokens_per_s_per_gpu", "input_tokens_per_s_per_gpu", "total_tokens_per_s_per_gpu")
AGGREGATE_WORDS = re.compile(r"(?<!multi-)\bnodes?\b|\bsystem\b|\btotal\b", re.IGNORECASE)
"""Words of a quote whose figure covers more than one GPU (a node, an MLPerf system, a TP group's total); 'multi-node'
describes a deployment, not the figure."""


def test_every_case_loads_with_unique_ids():
    assert 12 <= len(SERVING) <= 40
    assert len(RL) >= 10
    ids = [c.id for c in SERVING + RL]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize("case", SERVING + RL, ids=lambda c: c.id)
def test_case_resolves_to_a_shipped_spec_and_profile(case):
    load_model(case.model)
    load_hardware(case.gpu)


@pytest.mark.parametrize("case", SERVING + RL, ids=lambda c: c.id)
def test_case_states_source_quote_and_a_positive_figure(case):
    assert case.reported > 0
    assert case.source.strip() and case.quote.strip() and case.why.strip()


@pytest.mark.parametrize("case", [c for c in SERVING if c.metric in PER_GPU], ids=lambda c: c.id)
def test_per_gpu_figure_from_a_per_node_or_per_system_quote_shows_its_arithmetic(case):
    if AGGREGATE_WORDS.search(case.quote):
        assert case.derivation, f"{case.id}: the quote is per node / system / total but no derivation is given"
        assert re.search(r"/\s*\d", case.derivation), f"{case.id}: the derivation should show the division"


def test_tensorrt_llm_perf_overview_cells_are_divided_by_the_tp_group():
    """perf-overview.md reports 'Total Output Throughput (tokens/sec)' of the whole TP group."""
    cells = [c for c in SERVING if "perf-overview.md" in c.source]
    assert cells
    for c in cells:
        tp = c.layout.tp
        assert tp is not None and c.num_gpus == tp, c.id
        if tp > 1:
            total = float(re.sub(r"[,\s]", "", c.derivation.split("total")[0]))
            assert c.reported == pytest.approx(total / tp), c.id


def test_at_least_ten_cases_describe_one_predictable_deployment():
    predictable = [c for c in SERVING if c.predictable]
    assert len(predictable) >= 10, [c.id for c in predictable]
    for c in predictable:
        assert c.num_gpus is not None


def test_assumed_fields_are_named():
    """Where a case leaves a length or the GPU count unstated, or marks its evidence secondary, it says why."""
    for c in SERVING:
        if c.num_gpus is None or c.input_len is None or c.evidence == "secondary":
            assert c.assumptions, c.id


def test_rl_settings_are_consistent():
    for c in RL:
        if c.prompts_per_step and c.samples_per_prompt and c.generation_batch:
            assert c.prompts_per_step * c.samples_per_prompt == c.generation_batch, c.id
        if c.colocated is False:
            assert c.generation_gpus is not None and c.generation_gpus < c.num_gpus, c.id


def test_excluded_figures_say_why():
    for path in (serving_path(), rl_path()):
        for e in excluded_figures(path):
            assert e.reason.strip() and e.source.strip()


# --------------------------------------------------------------------------- prices


def test_price_sheets_load():
    assert {"deepseek-reasoner-2025", "deepseek-chat-2025", "openai-o1-2025-01"} <= set(PRICES)
    for name, sheet in PRICES.items():
        assert sheet.source and sheet.date, name
        if sheet.model_spec:
            load_model(sheet.model_spec)


def test_r1_versus_o1_list_price_ratios():
    """The list-price ratios behind "R1 is 20-50x cheaper than o1": o1 at $15 / $7.50 (cached) / $60 per million
    input / cached input / output tokens (OpenAI API pricing page, January 2025) against deepseek-reasoner at
    $0.55 (cache miss) / $0.14 (cache hit) / $2.19 (DeepSeek API docs, api-docs.deepseek.com/quick_start/pricing,
    and DeepSeek's inference-system overview of 2025-03-01): 27x input, 27x output, 54x cached input."""
    r1, o1 = PRICES["deepseek-reasoner-2025"], PRICES["openai-o1-2025-01"]
    ratios = {
        "input": o1.usd_per_million_input_tokens / r1.usd_per_million_input_tokens,
        "output": o1.usd_per_million_output_tokens / r1.usd_per_million_output_tokens,
        "cached": o1.usd_per_million_cached_input_tokens / r1.usd_per_million_cached_input_tokens,
    }
    assert ratios["input"] == pytest.approx(15 / 0.55, rel=0.01) and round(ratios["input"]) == 27
    assert ratios["output"] == pytest.approx(60 / 2.19, rel=0.01) and round(ratios["output"]) == 27
    assert ratios["cached"] == pytest.approx(7.5 / 0.14, rel=0.01) and round(ratios["cached"]) == 54


def test_deepseek_off_peak_prices():
    for name in ("deepseek-reasoner-2025", "deepseek-chat-2025"):
        off = PRICES[name].off_peak
        assert off is not None and off.window_utc == "16:30-00:30"
        assert (off.usd_per_million_cached_input_tokens, off.usd_per_million_input_tokens) == (0.035, 0.135)
        assert off.usd_per_million_output_tokens == 0.55
    assert PRICES["deepseek-v3.1-2025-09"].off_peak is None


def test_prices_ship_in_the_wheel():
    """prices/ is installed as simulator.data.prices, like validation/ and model_specs/ (pyproject.toml)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for folder in FOLDERS:
        package = f"simulator.data.{folder}"
        assert package in config["packages"], package
        assert config["package-dir"][package] == folder, package
        assert "*.yaml" in config["package-data"][package], package
    assert sorted(prices_dir().glob("*.yaml"))


# --------------------------------------------------------------------------- malformed files


def _first_case(path: Path) -> dict:
    return dict(read_yaml(path)["cases"][0])


def _write_cases(tmp_path: Path, name: str, cases: list[dict]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"cases": cases}, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"throughput": 1.0}, "throughput"),
        ({"reported": -1.0}, "reported"),
        ({"reported": 0}, "reported"),
        ({"metric": "tokens_per_second"}, "metric"),
        ({"phase": "decoding"}, "phase"),
        ({"precision": "int4"}, "precision"),
        ({"cache_hit_rate": 1.5}, "cache_hit_rate"),
        ({"num_gpus": 0}, "num_gpus"),
        ({"layout": {"tp": 2, "sp": 4}}, "sp"),
        ({"id": "Not An Id"}, "id"),
        # strict, as plans and specs (a fuzzer's `num_gpus: true` was read as 1, then 'not predicted' for a wrong reason)
        ({"num_gpus": True}, "num_gpus"),
        ({"layout": {"tp": True}}, "tp"),
        ({"cache_hit_rate": float("nan")}, "cache_hit_rate"),
    ],
)
def test_malformed_serving_case_is_refused_naming_file_and_field(tmp_path, change, field):
    case = {**_first_case(serving_path()), **change}
    path = _write_cases(tmp_path, "serving.yaml", [case])
    with pytest.raises(SpecError) as err:
        serving_cases(path)
    message = str(err.value)
    assert str(path) in message and field in message and "\n" not in message


def test_missing_quote_is_refused(tmp_path):
    case = _first_case(serving_path())
    del case["quote"]
    with pytest.raises(SpecError, match="quote"):
        serving_cases(_write_cases(tmp_path, "serving.yaml", [case]))


def test_duplicate_id_is_refused(tmp_path):
    case = _first_case(serving_path())
    with pytest.raises(SpecError, match="appears twice"):
        serving_cases(_write_cases(tmp_path, "serving.yaml", [case, case]))


def test_inconsistent_serving_case_is_refused(tmp_path):
    case = {**_first_case(serving_path()), "metric": "output_tokens_per_s_per_gpu", "phase": "prefill"}
    with pytest.raises(SpecError, match="decode rate"):
        serving_cases(_write_cases(tmp_path, "serving.yaml", [case]))


def test_top_level_keys_are_closed(tmp_path):
    path = tmp_path / "serving.yaml"
    path.write_text(yaml.safe_dump({"cases": [_first_case(serving_path())], "notes": "x"}))
    with pytest.raises(SpecError, match="notes"):
        serving_cases(path)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"steps_per_hour": 3}, "steps_per_hour"),
        ({"reported": -5.0}, "reported"),
        ({"metric": "hours"}, "metric"),
        ({"training_layout": {"pp": True}}, "pp"),
        ({"num_gpus": True}, "num_gpus"),
        ({"colocated": "yes"}, "colocated"),
    ],
)
def test_malformed_rl_case_is_refused(tmp_path, change, field):
    case = {**_first_case(rl_path()), **change}
    path = _write_cases(tmp_path, "rl.yaml", [case])
    with pytest.raises(SpecError) as err:
        rl_cases(path)
    assert str(path) in str(err.value) and field in str(err.value)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"usd_per_million_output_tokens": -2.19}, "usd_per_million_output_tokens"),
        ({"usd_per_million_cached_input_tokens": 0.9}, "cache-miss price"),
        ({"currency": "EUR"}, "currency"),
        ({"date": "2025-13-01"}, "calendar date"),
        ({"date": "March 2025"}, "date"),
    ],
)
def test_malformed_price_sheet_is_refused(tmp_path, change, match):
    raw = {**read_yaml(prices_dir() / "deepseek-reasoner-2025.yaml"), **change}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(SpecError, match=match) as err:
        price_sheets(tmp_path)
    assert "bad.yaml" in str(err.value)
