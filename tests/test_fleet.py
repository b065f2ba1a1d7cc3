"""A day of serving traffic (`costsim fleet`, simulator/run/fleet.py, simulator/inputs/fleet_file.py, api.fleet)."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import typer
import yaml
from cli_support import invoke
from typer.testing import CliRunner

from cli.fleet import register
from simulator import api
from simulator.errors import CostsimError, InputError, SpecError
from simulator.inputs.data_files import data_dir
from simulator.inputs.fleet_file import fleet_dir, fleet_ids, load_fleet
from simulator.run.fleet import prefill_rate_with_hits

# A small synthetic day whose books are worked by hand below: 2-node prefill units, 4-node decode units.
SMALL = {
    "name": "small-day",
    "source": "synthetic, for the test",
    "tokens": {"input": 864_000_000, "cache_hit": 432_000_000, "output": 360_000_000},
    "deployment": {"gpus_per_node": 8, "prefill_unit_gpus": 16, "decode_unit_gpus": 32},
    "prices": {
        "usd_per_million_cached_input_tokens": 0.10,
        "usd_per_million_input_tokens": 0.50,
        "usd_per_million_output_tokens": 40.0,
        "source": "synthetic",
    },
    "usd_per_gpu_hour": 2.5,
    "price_source": "synthetic",
    "rates": {
        "prefill_input_tokens_per_s_per_node": 1000,
        "decode_output_tokens_per_s_per_node": 500,
        "source": "synthetic",
    },
}


def small(**changes) -> dict:
    d = copy.deepcopy(SMALL)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = d
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return d


# ------------------------------------------------------------------ the books


def test_the_books_close_exactly_on_a_small_day():
    """Worked by hand: prefill 864M tokens / (1,000 tokens/s per node x 3,600 s) = 240 node-hours; decode 360M /
    (500 x 3,600) = 200; 440 node-hours x 8 GPUs = 3,520 GPU-hours x $2.50 = $8,800. Revenue 432M hits x $0.10/M +
    432M misses x $0.50/M + 360M output x $40/M = $43.20 + $216 + $14,400 = $14,659.20; margin 14,659.2 / 8,800 - 1."""
    d = api.fleet(SMALL).to_dict()
    assert d["node_hours"] == pytest.approx({"prefill": 240.0, "decode": 200.0, "total": 440.0}, rel=1e-12)
    assert d["node_hours_unrounded"] == d["node_hours"]  # day totals are not rounded
    assert d["average_nodes"]["total"] == pytest.approx(440.0 / 24, rel=1e-12)
    assert d["peak_nodes"]["total"] == pytest.approx(440.0 / 24, rel=1e-12)  # a flat day
    assert d["gpu_hours"] == pytest.approx(3520.0, rel=1e-12)
    assert d["cost_usd"] == pytest.approx(8800.0, rel=1e-12)
    assert d["revenue_by_kind_usd"] == pytest.approx({"cached_input": 43.2, "input": 216.0, "output": 14_400.0}, rel=1e-12)
    assert d["revenue_usd"] == pytest.approx(14_659.2, rel=1e-12)
    assert d["margin"] == pytest.approx(14_659.2 / 8800.0 - 1.0, rel=1e-12)
    assert d["units_at_average"] == {"prefill": 5, "decode": 3}  # 10 nodes / 2 per unit; 8.33 nodes / 4 -> 3 units
    assert sum(h["cost_usd"] for h in d["hourly"]) == pytest.approx(8800.0, rel=1e-12)
    assert sum(h["revenue_usd"] for h in d["hourly"]) == pytest.approx(14_659.2, rel=1e-12)
    assert d["rates"]["prefill"] == {
        "value": 1000.0,
        "unit": "input tokens/s per node (cache hits included)",
        "source": "given in fleet dict: synthetic",
        "predicted": False,
    }


def test_a_cache_hit_share_splits_the_input_as_the_tokens_would():
    by_share = api.fleet(small(tokens__cache_hit=None, tokens__cache_hit_share=0.5)).to_dict()
    assert by_share["revenue_usd"] == pytest.approx(14_659.2, rel=1e-12)
    assert by_share["tokens"]["cached_input"] == pytest.approx(432e6)


HOURLY_INPUT = [0, 3_600_000, 7_200_000, 7_201_000] + [14_400_000] * 20
"""Prefill nodes needed at 1,000 tokens/s per node: 0, 1, 2 (exactly one 2-node unit), 2.0003, then 4."""


def test_the_hourly_curve_rounds_up_to_whole_units():
    """Each hour: nodes needed = tokens / (rate x 3,600 s), rounded up to whole units of 2 (prefill) and 4 (decode)
    nodes. Prefill 0, 1, 1, 2, then 2 units; decode 1.8M output / (500 x 3,600) = 1 node -> one 4-node unit. Node-hours:
    prefill 0 + 2 + 2 + 4 + 20 x 4 = 88, decode 24 x 4 = 96; cost 184 x 8 x $2.50 = $3,680."""
    d = api.fleet(small(tokens__input=HOURLY_INPUT, tokens__cache_hit=None, tokens__cache_hit_share=0.5,
                        tokens__output=[1_800_000] * 24)).to_dict()  # fmt: skip
    hours = d["hourly"]
    assert [h["prefill_units"] for h in hours] == [0, 1, 1, 2] + [2] * 20
    assert [h["prefill_nodes"] for h in hours] == [0, 2, 2, 4] + [4] * 20
    assert {h["decode_units"] for h in hours} == {1} and {h["decode_nodes"] for h in hours} == {4}
    assert d["node_hours"] == {"prefill": 88.0, "decode": 96.0, "total": 184.0}
    assert d["node_hours_unrounded"]["prefill"] == pytest.approx(sum(HOURLY_INPUT) / 3.6e6)
    assert d["node_hours_unrounded"]["decode"] == pytest.approx(24.0)
    assert d["cost_usd"] == pytest.approx(3680.0, rel=1e-12)
    assert d["peak_nodes"] == {"prefill": 4.0, "decode": 4.0, "total": 8.0, "hour": 3}
    assert d["average_nodes"]["total"] == pytest.approx(184.0 / 24)
    revenue = sum(HOURLY_INPUT) / 1e6 * (0.5 * 0.10 + 0.5 * 0.50) + 24 * 1.8 * 40.0
    assert d["revenue_usd"] == pytest.approx(revenue, rel=1e-12)
    assert sum(h["revenue_usd"] for h in hours) == pytest.approx(revenue, rel=1e-12)
    assert sum(h["cost_usd"] for h in hours) == pytest.approx(3680.0, rel=1e-12)
    assert "units_at_average" not in d


def test_float_noise_does_not_add_a_unit():
    """0.1 + 0.2 style noise: an hour needing exactly 3 units (6 nodes) stays at 3."""
    rate = 1000 * (0.1 + 0.2)  # 300.00000000000006 tokens/s per node
    tokens = 6 * 300.0 * 3600  # 6 nodes' worth at 300/s, computed with its own rounding
    d = api.fleet(small(tokens__input=[tokens] * 24, tokens__cache_hit=None, tokens__cache_hit_share=0.0,
                        tokens__output=[1_800_000] * 24, rates__prefill_input_tokens_per_s_per_node=rate)).to_dict()  # fmt: skip
    assert {h["prefill_units"] for h in d["hourly"]} == {3}


def test_an_hour_with_any_tokens_takes_a_unit_and_huge_hours_never_round_down():
    """A review's fleet with one output token in its last hour divided by a zero cost (the float-noise slack took the
    hour's 1e-9 units to 0), and at 1e15 tokens an hour the same slack rounded every hour down by thousands of units."""
    from simulator.run.fleet import _units

    assert list(_units(np.array([0.0, 1e-12, 1e-9, 0.5, 2.0, 2.0 + 1e-14, 2.001]), 1)) == [0, 1, 1, 1, 2, 2, 3]
    huge = np.array([1e15 / 3 + 0.25])
    assert _units(huge, 1)[0] >= huge[0]
    d = api.fleet(small(tokens__input=[0] * 24, tokens__cache_hit=None, tokens__cache_hit_share=0.0,
                        tokens__output=[0] * 23 + [1])).to_dict()  # fmt: skip
    assert d["hourly"][23]["decode_units"] == 1 and d["node_hours"]["decode"] == 4.0
    assert all(h["prefill_nodes"] == 0 and math.copysign(1, h["prefill_nodes"]) == 1 for h in d["hourly"])
    assert math.isfinite(d["margin"])


def test_published_figures_are_compared():
    d = api.fleet(small(published={"cost_usd": 8000, "margin": 0.5, "source": "synthetic", "quote": "synthetic"})).to_dict()
    figures = d["published"]["figures"]
    assert set(figures) == {"cost_usd", "margin"}
    assert figures["cost_usd"]["relative_difference"] == pytest.approx(8800 / 8000 - 1)
    assert figures["margin"]["costsim"] == pytest.approx(d["margin"])
    # The table says the difference is relative, and gives a margin's gap in points (a review read +x% as the gap)
    from cli.fleet import fleet_table

    margin_line = next(line for line in fleet_table(d).splitlines() if line.strip().startswith("margin") and "published" in line)
    points = (d["margin"] - 0.5) * 100
    assert f"{figures['margin']['relative_difference']:+.2%} relative  ({points:+.1f} points)" in margin_line


def test_the_gpu_price_defaults_to_the_profile_and_can_be_replaced():
    d = api.fleet(small(usd_per_gpu_hour=None, price_source=None, gpu="h800")).to_dict()
    assert d["usd_per_gpu_hour"] == 2.0 and "h800 profile default" in d["gpu_price_source"]
    d = api.fleet(SMALL, usd_per_gpu_hour=5.0).to_dict()
    assert d["cost_usd"] == pytest.approx(440 * 8 * 5.0) and d["gpu_price_source"] == "--usd-per-gpu-hour"


# ------------------------------------------------------------------ DeepSeek's published day


def test_deepseek_day_closes_the_published_books_with_the_published_rates():
    """DeepSeek's day 6 overview (deepseek-ai/open-infra-index, 202502OpenSourceWeek/day_6_one_more_thing_
    deepseekV3R1_inference_system_overview.md, commit 56d8685): 608B input tokens (342B cache hits), 168B output,
    ~73.7k input tokens/s per node prefilling and ~14.8k output tokens/s per node decoding, $2 per H800 GPU-hour,
    8 GPUs per node, R1 prices $0.14/$0.55/$2.19 per M -> published cost $87,072, revenue $562,027, margin 545%,
    average 226.75 nodes. Tolerance 1%: the published rates and token totals are rounded (~73.7k, 608B), so the
    books close to rounding (they come out within 0.06%), not to the dollar."""
    d = api.fleet("deepseek-v3-r1-day").to_dict()
    figures = d["published"]["figures"]
    for key in ("cost_usd", "margin", "revenue_usd", "average_nodes"):
        assert abs(figures[key]["relative_difference"]) < 0.01, (key, figures[key])
    assert figures["cost_usd"]["published"] == 87_072 and figures["margin"]["published"] == 5.45
    assert not d["rates"]["prefill"]["predicted"] and not d["rates"]["decode"]["predicted"]
    assert d["rates"]["decode"]["source"].startswith("given in fleets/deepseek-v3-r1-day.yaml")
    # the arithmetic, independently: 608e9 / (73,700 x 3,600) + 168e9 / (14,800 x 3,600) node-hours x 8 x $2
    node_hours = 608e9 / (73_700 * 3600) + 168e9 / (14_800 * 3600)
    assert d["cost_usd"] == pytest.approx(node_hours * 8 * 2.0, rel=1e-12)
    assert d["revenue_usd"] == pytest.approx(342e3 * 0.14 + 266e3 * 0.55 + 168e3 * 2.19, rel=1e-12)


def test_deepseek_day_with_predicted_rates_is_finite_and_marked_predicted():
    """The same day with both per-node rates predicted by costsim serve (the file's serve block: DeepSeek's EP32
    prefill and DP144 decode units, FP8). Nothing is tuned to the day: the test asserts only that the prediction is
    a finite positive rate, marked as predicted, compared with the file's rate and carried through the books."""
    d = api.fleet("deepseek-v3-r1-day", predict_rates=True).to_dict()
    for phase in ("prefill", "decode"):
        r = d["rates"][phase]
        assert r["predicted"] is True
        assert math.isfinite(r["value"]) and r["value"] > 0
        assert r["source"].startswith("predicted by costsim serve deepseek-v3 --gpu h800")
        assert r["value"] == pytest.approx(r["serve"]["tokens_per_s_per_gpu"] * 8)
        assert r["relative_to_given"] == pytest.approx(r["value"] / r["given_in_file"] - 1)
    assert d["node_hours"]["prefill"] == pytest.approx(608e9 / d["rates"]["prefill"]["value"] / 3600)
    assert math.isfinite(d["margin"]) and d["cost_usd"] > 0
    assert any("predicted by costsim serve" in n for n in d["notes"])


def test_a_missing_rate_is_predicted_and_the_given_one_kept():
    raw = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    del raw["rates"]["decode_output_tokens_per_s_per_node"]
    d = api.fleet(raw).to_dict()
    assert d["rates"]["prefill"]["predicted"] is False and d["rates"]["prefill"]["value"] == 73_700
    assert d["rates"]["decode"]["predicted"] is True and "--phase decode" in d["rates"]["decode"]["source"]


@pytest.mark.parametrize(("phase", "key"), [("prefill", "input_tokens_per_s_per_gpu"), ("decode", "output_tokens_per_s_per_gpu")])
def test_a_one_phase_prediction_prints_a_command_that_runs(phase, key):
    """Predicting one rate, the printed `costsim serve --phase P` command holds only the settings that phase takes (a
    prefill's command held the decode's --dp and --min-tokens-per-s-per-user, which --phase prefill refuses; a
    decode's the day's --cache-hit-rate and the prefill's --ep), runs, and gives the predicted rate."""
    raw = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    predicted = "prefill_input_tokens_per_s_per_node" if phase == "prefill" else "decode_output_tokens_per_s_per_node"
    del raw["rates"][predicted]
    d = api.fleet(raw).to_dict()
    command = d["rates"][phase]["source"].removeprefix("predicted by ").split(":")[0]
    assert f"--phase {phase}" in command and ("--cache-hit-rate" in command) is (phase == "prefill")
    r = invoke(*command.split()[1:], "--format", "json")
    assert r.exit_code == 0, (command, r.output)
    doc = json.loads(r.output)
    served = doc[phase][key]
    if phase == "prefill":  # the passes' rate, less the time loading the day's cache hits takes
        served = prefill_rate_with_hits(served, doc["request"]["cache_hit_rate"], doc["prefill"]["cached_token_gpu_s"])
    assert served == pytest.approx(d["rates"][phase]["serve"]["tokens_per_s_per_gpu"], rel=1e-9)


def test_a_day_of_only_cache_hits_names_the_share_and_api_flags_are_booleans():
    """A review's day with cache_hit_share 1.0 was refused with '--cache-hit-rate 1.0 must be ...', a flag the user
    never gave; and api.fleet(predict_rates='no') predicted (the string is truthy)."""
    all_hits = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    all_hits["tokens"] = {k: v for k, v in all_hits["tokens"].items() if k not in ("cache_hit", "cache_hit_share")}
    all_hits["tokens"]["cache_hit_share"] = 1.0
    del all_hits["rates"]["prefill_input_tokens_per_s_per_node"]
    with pytest.raises(InputError, match=r"cache hits are 100\.0000% of its input tokens.*rates\.prefill_input"):
        api.fleet(all_hits)
    with pytest.raises(InputError, match="predict_rates='no' must be True or False"):
        api.fleet(SMALL, predict_rates="no")


def test_a_fleets_model_and_gpu_files_are_read_beside_it(tmp_path, monkeypatch):
    """A review found a fleet's `model: ../m/spec.yaml` and `gpu: ../hw/x.yaml` read from the working directory while
    its serve.workload was read beside the file: all three are read beside the fleet file, whatever the directory."""
    raw = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    (tmp_path / "m").mkdir()
    (tmp_path / "hw").mkdir()
    (tmp_path / "m" / "v3.yaml").write_text((data_dir("model_specs") / "deepseek-v3.yaml").read_text())
    (tmp_path / "hw" / "h800.yaml").write_text((data_dir("hardware_profiles") / "h800.yaml").read_text())
    (tmp_path / "f").mkdir()
    path = tmp_path / "f" / "day.yaml"
    path.write_text(yaml.safe_dump(raw | {"model": "../m/v3.yaml", "gpu": "../hw/h800.yaml"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    fleet, _, _ = load_fleet(str(path))
    assert fleet.model == str(tmp_path / "f" / "../m/v3.yaml") and fleet.gpu == str(tmp_path / "f" / "../hw/h800.yaml")
    assert api.fleet(str(path), predict_rates=True).to_dict()["margin"] > 0


def test_the_shipped_fleets_are_found_as_the_plans_are():
    assert fleet_dir() == data_dir("fleets") and fleet_dir().name == "fleets"
    assert (fleet_dir() / "__init__.py").exists()
    assert "deepseek-v3-r1-day" in fleet_ids()
    fleet, path, where = load_fleet("deepseek-v3-r1-day")
    assert path.parent == fleet_dir() and where == "fleets/deepseek-v3-r1-day.yaml"
    assert load_fleet(str(path))[0] == fleet


def test_to_frame_is_one_row_per_hour():
    frame = api.fleet(SMALL).to_frame()
    assert len(frame) == 24 and {"hour", "prefill_nodes", "decode_nodes", "cost_usd", "revenue_usd"} <= set(frame.columns)


# ------------------------------------------------------------------ bad files


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        ({"tokens__inputs": 5}, ["tokens.inputs", "did you mean input"]),
        ({"colour": "red"}, ["colour"]),
        ({"tokens__input": -5}, ["tokens.input", "-5"]),
        ({"tokens__output": "-3B"}, ["tokens.output", "-3B"]),
        ({"rates__decode_output_tokens_per_s_per_node": 0}, ["rates.decode_output_tokens_per_s_per_node", "between 1 and"]),
        ({"prices": None}, ["prices", "price_sheet"]),
        ({"prices__usd_per_million_output_tokens": None}, ["prices.usd_per_million_output_tokens"]),
        ({"tokens__input": [1e9] * 23}, ["tokens.input", "23 hourly figures", "give 24"]),
        ({"tokens__input": [1e9] * 24}, ["tokens.input", "tokens.output", "hourly"]),
        ({"tokens__cache_hit": 1e12}, ["tokens.cache_hit", "more than tokens.input"]),
        ({"tokens__cache_hit_share": 0.5}, ["cache_hit_share", "not both"]),
        ({"deployment__decode_unit_gpus": 140}, ["deployment.decode_unit_gpus", "136 or 144"]),
        ({"price_source": None}, ["usd_per_gpu_hour needs a price_source"]),
        ({"rates": None}, ["model", "gpu", "serve.input_len"]),
        # inline prices get a price sheet's checks (a fuzzer: a $5/M cache hit over a $0.55/M miss gave margin 2,453%)
        ({"prices__usd_per_million_cached_input_tokens": 5.0}, ["prices", "cached input price 5.0 is above"]),
        ({"prices__usd_per_million_output_tokens": 0.0}, ["prices", "usd_per_million_output_tokens 0.0 is below"]),
        # published figures that contradict each other (a fuzzer's peak of 10 beside an average of 226.75)
        (
            {"published": {"average_nodes": 226.75, "peak_nodes": 10, "source": "s", "quote": "q"}},
            ["published", "peak_nodes 10 is below average_nodes 226.75"],
        ),
        (
            {"published": {"cost_usd": 87072, "revenue_usd": 562027, "margin": 545, "source": "s", "quote": "q"}},
            ["published", "margin 545 disagrees with revenue_usd / cost_usd - 1 = 5.455"],
        ),
    ],
)
def test_bad_files_give_one_clear_error_naming_the_field(changes, needles):
    with pytest.raises(SpecError) as e:
        api.fleet(small(**changes))
    message = str(e.value)
    assert "\n" not in message and message.startswith("fleet dict: invalid Fleet")
    for needle in needles:
        assert needle in message, (needle, message)


def test_a_bad_file_on_disk_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(small(tokens__input=[1] * 25)))
    with pytest.raises(SpecError, match=r"bad\.yaml: invalid Fleet: .*tokens\.input.*25 hourly figures"):
        api.fleet(str(path))
    with pytest.raises(SpecError, match="unknown fleet 'nope'.*deepseek-v3-r1-day"):
        api.fleet("nope")


def test_predicting_needs_the_serve_block():
    with pytest.raises(InputError, match="fleet dict: predicting the per-node rates needs model, gpu, serve.input_len"):
        api.fleet(SMALL, predict_rates=True)


def test_a_serve_error_names_the_file():
    raw = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    raw["serve"]["tp"] = 3
    with pytest.raises(CostsimError, match="fleet dict: predicting the per-node rates with costsim serve: --tp 3"):
        api.fleet(raw, predict_rates=True)


def test_a_bad_gpu_price_is_an_input_error():
    with pytest.raises(InputError, match="--usd-per-gpu-hour -1"):
        api.fleet(SMALL, usd_per_gpu_hour=-1)


# ------------------------------------------------------------------ price sheets


def test_a_price_sheet_id_is_read_from_prices(tmp_path, monkeypatch):
    serving_cases = pytest.importorskip("simulator.inputs.serving_cases")
    (tmp_path / "prices").mkdir()
    sheet = {
        "model": "synthetic-chat",
        "provider": "Synthetic",
        "date": "2025-01-20",
        "source": "synthetic sheet for the test",
        "quote": "synthetic quote",
        "evidence": "primary",
        "usd_per_million_input_tokens": 0.5,
        "usd_per_million_cached_input_tokens": 0.1,
        "usd_per_million_output_tokens": 40.0,
        "notes": "synthetic",
    }
    (tmp_path / "prices" / "synthetic-2025-01.yaml").write_text(yaml.safe_dump(sheet))
    monkeypatch.setenv("COSTSIM_DATA_DIR", str(tmp_path))
    assert "synthetic-2025-01" in serving_cases.price_sheets()
    d = api.fleet(small(prices=None, price_sheet="synthetic-2025-01")).to_dict()
    assert d["revenue_usd"] == pytest.approx(14_659.2, rel=1e-12)
    assert d["prices"]["source"].startswith("price sheet prices/synthetic-2025-01.yaml")
    with pytest.raises(SpecError, match="price_sheet 'other' is not a price sheet in prices/; the sheets are synthetic-2025-01"):
        api.fleet(small(prices=None, price_sheet="other"))


def test_the_shipped_r1_sheet_gives_the_inline_prices_of_the_deepseek_day():
    """prices/deepseek-reasoner-2025.yaml is the sheet DeepSeek's day 6 overview prices the day at; naming it in
    place of the inline prices gives the same revenue."""
    serving_cases = pytest.importorskip("simulator.inputs.serving_cases")
    if "deepseek-reasoner-2025" not in serving_cases.price_sheets():
        pytest.skip("prices/deepseek-reasoner-2025.yaml is not shipped")
    raw = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    inline = api.fleet(raw).to_dict()
    del raw["prices"]
    raw["price_sheet"] = "deepseek-reasoner-2025"
    by_sheet = api.fleet(raw).to_dict()
    assert by_sheet["revenue_usd"] == pytest.approx(inline["revenue_usd"], rel=1e-12)
    assert any("off-peak prices not applied" in n for n in by_sheet["notes"])


# ------------------------------------------------------------------ the command


def _cli(*args: str):
    app, validate_app = typer.Typer(), typer.Typer()
    app.add_typer(validate_app, name="validate")
    register(app, validate_app)
    app.callback()(lambda: None)
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_the_command_prints_table_json_and_csv():
    r = _cli("fleet", "deepseek-v3-r1-day")
    assert r.exit_code == 0, r.output
    assert "$87,116" in r.output and "545.2%" in r.output and "published" in r.output
    r = _cli("fleet", "deepseek-v3-r1-day", "--format", "json")
    doc = json.loads(r.stdout)
    assert {"node_hours", "average_nodes", "peak_nodes", "cost_usd", "revenue_usd", "margin", "rates", "published",
            "hourly", "schema_version"} <= set(doc)  # fmt: skip
    r = _cli("fleet", "deepseek-v3-r1-day", "--format", "csv")
    assert len(r.stdout.strip().splitlines()) == 25  # header + 24 hours


def test_the_command_fails_cleanly_on_a_bad_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(small(rates__prefill_input_tokens_per_s_per_node=0)))
    r = _cli("fleet", str(path))
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert r.output.startswith("error: ") and "rates.prefill_input_tokens_per_s_per_node" in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output


@pytest.mark.parametrize("two_batch_overlap", [True, False])
def test_the_printed_serve_command_runs_and_gives_the_predicted_rate(two_batch_overlap):
    """Each predicted rate names the `costsim serve` command that gives it; that command runs and reports the same
    tokens/s per GPU, with the file's two_batch_overlap written as a switch (--no-two-batch-overlap) or left out."""
    raw = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    raw["serve"]["two_batch_overlap"] = two_batch_overlap
    d = api.fleet(raw, predict_rates=True).to_dict()
    for phase, key in (("prefill", "input_tokens_per_s_per_gpu"), ("decode", "output_tokens_per_s_per_gpu")):
        command = d["rates"][phase]["source"].removeprefix("predicted by ").split(":")[0]
        assert ("--no-two-batch-overlap" in command) is (not two_batch_overlap)
        r = invoke(*command.split()[1:], "--format", "json")
        assert r.exit_code == 0, (command, r.output)
        served = json.loads(r.output)
        rate = served[phase][key]
        if phase == "prefill":  # the passes' rate, less the time loading the day's cache hits takes
            rate = prefill_rate_with_hits(rate, served["request"]["cache_hit_rate"], served["prefill"]["cached_token_gpu_s"])
        assert rate == pytest.approx(d["rates"][phase]["serve"]["tokens_per_s_per_gpu"], rel=1e-9)
        assert served["request"]["two_batch_overlap"] is two_batch_overlap


def test_the_predicted_prefill_rate_is_recomputed_from_its_json():
    """The fleet's JSON holds what its predicted prefill rate is made of (a review found them only in the prose
    source): the passes' rate, the hit share and a hit's GPU time give tokens_per_s_per_gpu."""
    serve = api.fleet("deepseek-v3-r1-day", predict_rates=True).to_dict()["rates"]["prefill"]["serve"]
    again = prefill_rate_with_hits(serve["pass_input_tokens_per_s_per_gpu"], serve["cache_hit_rate"], serve["cached_token_gpu_s"])
    assert serve["tokens_per_s_per_gpu"] == pytest.approx(again, rel=1e-12) and serve["cache_hit_rate"] == pytest.approx(0.5625)


def test_the_prefill_rate_with_hits_by_hand():
    """fleet.prefill_rate_with_hits: 1,000 input tokens/s in the passes, half of them hits at 1 ms of GPU time each:
    a token takes 1 ms + 0.5 x 1 ms, so 666.7 tokens/s; no hits, or free hits, leave the passes' rate."""
    assert prefill_rate_with_hits(1000.0, 0.5, 1e-3) == pytest.approx(1000.0 / 1.5, rel=1e-12)
    assert prefill_rate_with_hits(1000.0, 0.0, 1e-3) == prefill_rate_with_hits(1000.0, 0.5, 0.0) == 1000.0


@pytest.mark.parametrize("hit_share", [None, 0.0, 0.9, 0.999])
def test_a_predicted_day_costs_what_serves_prices_charge_for_its_tokens(hit_share):
    """The same tokens priced two ways: the fleet's node-hours at predicted rates, and serve's $/M of uncached input,
    cached input and output (the command the fleet prints) applied to the day's volumes (DeepSeek's day 6 overview:
    608B input, 342B of them cache hits, 168B output; and the same day at other hit shares). They agree within 0.1%
    (the hit share is passed rounded to 6 digits). Before, the fleet's prefill left out the time loading the cache
    hits (0.4% cheaper than serve's prices), and serve priced uncached tokens at the whole tokens a pass computes (3%
    dearer at 99.9% hits)."""
    raw = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    if hit_share is not None:
        raw["tokens"] = {k: v for k, v in raw["tokens"].items() if k not in ("cache_hit", "cache_hit_share")}
        raw["tokens"]["cache_hit_share"] = hit_share
    d = api.fleet(raw, predict_rates=True).to_dict()
    command = d["rates"]["decode"]["source"].removeprefix("predicted by ").split(":")[0]
    served = json.loads(invoke(*command.split()[1:], "--format", "json").output)
    t = d["tokens"]
    prefill_usd = (t["uncached_input"] * served["usd_per_million_input_tokens"]
                   + t["cached_input"] * served["usd_per_million_cached_input_tokens"]) / 1e6  # fmt: skip
    usd = prefill_usd + t["output"] * served["usd_per_million_output_tokens"] / 1e6
    assert served["utilization"] == 1.0 and d["cost_usd"] == pytest.approx(usd, rel=1e-3)
    # The prefill alone too (the output's decode dominates the day): its node-hours at the GPU price.
    per_node_hour = d["deployment"]["gpus_per_node"] * d["usd_per_gpu_hour"]
    assert d["node_hours"]["prefill"] * per_node_hour == pytest.approx(prefill_usd, rel=1e-3)


def test_an_unused_serve_block_is_still_checked():
    """Both rates given: the serve block is not run, but a block that --predict-rates could not run is refused (here
    TP 3 against DeepSeek-V3's 128 heads, and a workload with lengths beside it), naming the file and the block."""
    raw = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    assert api.fleet(copy.deepcopy(raw)).to_dict()["rates"]["decode"]["predicted"] is False
    bad = copy.deepcopy(raw)
    bad["serve"]["tp"] = 3
    with pytest.raises(CostsimError, match=r"fleet dict: serve: --tp 3 does not divide .* even where a rate is given"):
        api.fleet(bad)
    bad = copy.deepcopy(raw)
    bad["serve"]["kv_dtype"] = "fp8"
    bad["gpu"] = "a100-80gb"
    with pytest.raises(InputError, match="serve: a100-80gb has no FP8 support for --kv-dtype fp8"):
        api.fleet(bad)
    bad["serve"]["kv_dtype"] = "bf16"
    with pytest.raises(InputError, match="serve: a100-80gb has no FP8 tensor cores"):
        api.fleet(bad)


def test_a_serve_block_is_checked_whole_when_one_rate_is_predicted():
    """With the decode rate given and the prefill predicted, the decode settings are not run but still checked
    (review: an MTP depth without its acceptance rate and an impossible GPU count passed); with the prefill rate given
    and the decode predicted, the prefill's TTFT target is dropped from the decode prediction, not refused."""
    raw = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    bad = copy.deepcopy(raw)
    del bad["rates"]["prefill_input_tokens_per_s_per_node"]
    bad["serve"]["num_gpus"] = 7
    with pytest.raises(CostsimError, match=r"serve: no decode layout has tp x dp x pp = 7 GPUs"):
        api.fleet(bad)
    bad["serve"].pop("num_gpus")
    bad["serve"]["mtp_depth"] = 1
    with pytest.raises(InputError, match=r"serve: --mtp-depth 1 needs --mtp-accept"):
        api.fleet(bad)
    ok = copy.deepcopy(raw)
    del ok["rates"]["decode_output_tokens_per_s_per_node"]
    ok["serve"]["ttft_s"] = 5.0
    d = api.fleet(ok).to_dict()
    assert d["rates"]["decode"]["predicted"] is True and d["rates"]["prefill"]["predicted"] is False


def test_a_tiny_day_shows_its_dollars_and_a_count_range_starts_at_zero(tmp_path):
    """A review's day of 1,000 input tokens printed 'cost $0 ... revenue $0' beside a margin; under $100 the books
    show three significant figures. A count too large was 'out of range [-1e+17, 1e+17]' though negatives are
    refused: the range is [0, 1e+17]."""
    raw = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    raw["tokens"] = {"input": "1000", "cache_hit": "999", "output": "7"}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = _cli("fleet", str(path)).output
    cost = next(line for line in out.splitlines() if line.startswith("cost "))
    assert "$0 " not in cost and "$0.0000" in cost
    raw["tokens"] = {"input": "608B", "cache_hit": "342B", "output": "1e30"}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    r = _cli("fleet", str(path))
    assert r.exit_code == 1 and "out of range [0, 1e+17]" in r.output


def test_a_unit_that_cannot_hold_the_predicted_deployment_is_noted():
    """unit_fit_notes (a fuzzer): an 8-GPU decode unit beside the 144-GPU decode layout of the serve block was rounded
    into whole units with no word; the note names both sizes and the fix. The shipped day's units hold its layouts."""
    d = api.fleet("deepseek-v3-r1-day", predict_rates=True).to_dict()
    assert not any("does not hold a whole number" in n for n in d["notes"])
    raw = yaml.safe_load((fleet_dir() / "deepseek-v3-r1-day.yaml").read_text())
    raw["deployment"] |= {"prefill_unit_gpus": 8, "decode_unit_gpus": 8}
    notes = api.fleet(raw, predict_rates=True).to_dict()["notes"]
    decode = next(n for n in notes if n.startswith("the predicted decode rate"))
    layout = d["rates"]["decode"]["serve"]["layout"]["gpus"]
    assert f"a deployment of {layout:,} GPUs, and the decode unit of 8 GPUs does not hold" in decode and "(tp, dp, pp)" in decode
    assert "(ep, pp)" in next(n for n in notes if n.startswith("the predicted prefill rate"))  # EP32 = TP1 x DP32
