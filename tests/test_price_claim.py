"""`costsim claim --cheaper A B --ratio N`: a price claim between two price sheets (issue 12 item 3: "R1 is 20-50x
cheaper to use than o1"; docs/model.md §16.12).

The list prices are those the shipped sheets quote: DeepSeek-R1 (deepseek-reasoner) $0.55/M input (cache miss),
$0.14/M cached input, $2.19/M output, from the DeepSeek API docs (api-docs.deepseek.com/quick_start/pricing, as
DeepSeek's inference-system overview quotes them); o1 $15/M input, $7.50/M cached input, $60/M output, from the
OpenAI pricing page (openai.com/api/pricing, as quoted in January 2025). So o1 / R1 is 15 / 0.55 = 27x per input
token, 60 / 2.19 = 27x per output token and 7.5 / 0.14 = 54x per cached input token.
"""

from __future__ import annotations

import json
import math

import pytest
from cli_support import ROOT, clean_error, invoke
from pydantic import ValidationError

from simulator import api
from simulator.analysis.price_claim import parse_ratio
from simulator.errors import InputError, SpecError
from simulator.outputs import SCHEMA_VERSION, PriceClaimOutput
from simulator.units import GIGA, MEGA

R1, O1 = "deepseek-reasoner-2025", "openai-o1-2025-01"
CLAIM = ["claim", "--cheaper", R1, O1]


def _json(*args: str) -> dict:
    r = invoke(*CLAIM, *args, "--format", "json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.fixture(scope="module")
def r1_vs_o1() -> dict:
    return _json("--ratio", "20-50")


def test_list_price_ratios_of_r1_and_o1(r1_vs_o1):
    r = r1_vs_o1["price_ratio"]
    assert r["input"] == pytest.approx(15 / 0.55, rel=0.01) and round(r["input"]) == 27
    assert r["output"] == pytest.approx(60 / 2.19, rel=0.01) and round(r["output"]) == 27
    assert r["cached_input"] == pytest.approx(7.5 / 0.14, rel=0.01) and round(r["cached_input"]) == 54
    span = r1_vs_o1["price_ratio_span"]
    assert (span["lowest_kind"], span["highest_kind"]) == ("input", "cached_input")
    # a mix's ratio is a weighted mean of the per-kind ratios
    assert span["lowest"] < r["mix"] < span["highest"]


def test_the_default_mix_is_deepseeks_published_day(r1_vs_o1):
    """608B input (342B cache hits) and 168B output at R1's prices is the $562,027 DeepSeek published for the day."""
    mix = r1_vs_o1["mix"]
    assert mix["cache_hit_rate"] == pytest.approx(342 / 608, abs=1e-6)
    assert sum(mix["shares"].values()) == pytest.approx(1.0)
    revenue = r1_vs_o1["sheets"]["a"]["list_usd_per_million"]["mix"] * (608 + 168) * GIGA / MEGA
    assert revenue == pytest.approx(562_027, rel=1e-3)


def test_twenty_to_fifty_is_within_the_list_prices(r1_vs_o1):
    assert r1_vs_o1["within_price_ratio"] is True
    assert r1_vs_o1["mix_ratio_within_claim"] is True
    assert r1_vs_o1["claimed_ratio"]["low"] == 20 and r1_vs_o1["claimed_ratio"]["high"] == 50
    assert "PRICE: WITHIN" in r1_vs_o1["verdict"]
    assert "below 27.3x" in r1_vs_o1["verdict"]  # the part of 20-50 that no mix reaches is named


@pytest.mark.parametrize("claimed", ["200", "20", "60-100"])
def test_a_claim_no_token_mix_gives_is_outside(claimed):
    d = api.price_claim(R1, O1, claimed).to_dict()
    assert d["within_price_ratio"] is False
    assert "PRICE: OUTSIDE" in d["verdict"]


def test_a_round_figure_stands_for_its_digits():
    """'27' stands for 26.5-27.5, which meets the 27.3x input ratio; '26' does not."""
    assert api.price_claim(R1, O1, "27").to_dict()["within_price_ratio"] is True
    assert api.price_claim(R1, O1, 26).to_dict()["within_price_ratio"] is False


def test_the_cost_side_of_r1_is_what_costsim_serve_reports(r1_vs_o1):
    a = r1_vs_o1["cost"]["a"]
    assert a["unknown_architecture"] is False and a["architecture"] == "deepseek-v3" and a["gpu"] == "h800"
    assert math.isfinite(a["margin"]) and a["margin"] > 0
    assert a["usd_per_million_output_tokens"] > a["usd_per_million_input_tokens"] > a["usd_per_million_cached_input_tokens"] > 0
    words = a["serve_command"].split()
    assert words[:2] == ["costsim", "serve"] and words[-2:] == ["--price-sheet", R1]
    r = invoke(*words[1:], "--format", "json")
    assert r.exit_code == 0, r.output
    served = json.loads(r.output)
    for kind, v in served["list_prices"]["by_kind"].items():
        assert a["margin_by_kind"][kind] == pytest.approx(v["margin"], rel=1e-9)
    for key in ("usd_per_million_input_tokens", "usd_per_million_cached_input_tokens", "usd_per_million_output_tokens"):
        assert a[key] == pytest.approx(served[key], rel=1e-9)


def test_o1s_cost_is_flagged_unknown(r1_vs_o1):
    b = r1_vs_o1["cost"]["b"]
    assert b["unknown_architecture"] is True
    assert "usd_per_million_output_tokens" not in b and "margin" not in b
    band = b["assumption_band"]
    assert band["break_even"]["usd_per_million_by_kind"]["output"] == 60.0
    # at R1's modelled margin o1's implied cost ratio is the price ratio; at break-even it is larger
    cost_ratio = r1_vs_o1["cost_ratio"]
    assert cost_ratio["at_other_side_margin"]["mix"] == pytest.approx(r1_vs_o1["price_ratio"]["mix"])
    assert cost_ratio["break_even"]["mix"] > cost_ratio["at_other_side_margin"]["mix"]
    assert "o1's serving cost is UNKNOWN" in r1_vs_o1["verdict"]
    assert any(x["name"] == "b_architecture" and x["value"] is None for x in r1_vs_o1["assumptions"])


def test_an_assumed_architecture_for_o1_is_costed_and_labelled():
    d = api.price_claim(R1, O1, "20-50", b_model="llama-3.1-8b").to_dict()
    b = d["cost"]["b"]
    assert b["unknown_architecture"] is False and b["architecture"] == "llama-3.1-8b"
    assert b["architecture_source"].startswith("--b-model")
    assert d["cost_ratio"]["modelled"]["mix"] == pytest.approx(b["usd_per_million_mix"] / d["cost"]["a"]["usd_per_million_mix"])
    assert "your assumption" in d["verdict"]


def test_a_claim_within_by_some_mix_but_not_the_stated_one_says_so():
    """A review read 'WITHIN ... meets what the list prices give' after '--mix 0:1 ... 27.4x (outside the claim)' as a
    contradiction: the verdict keeps §16.12's rule (some mix reaches 30x) and says the stated one does not, naming
    whether it was the user's or the default (a second review: with no --mix it called the default 'stated')."""
    d = api.price_claim(R1, O1, "30", mix="0:1").to_dict()
    assert d["within_price_ratio"] is True and d["mix_ratio_within_claim"] is False
    assert "meets what the list prices give at some token mixes, though not at the --mix given." in d["verdict"]
    assert "27.4x at the --mix given (outside the claim)" in d["verdict"]
    default = api.price_claim(R1, O1, "45").to_dict()
    assert "though not at the default mix (DeepSeek's published day)." in default["verdict"]
    inside = api.price_claim(R1, O1, "20-50").to_dict()
    assert "meets what the list prices give." in inside["verdict"] and "though not" not in inside["verdict"]


def test_a_stated_mix_changes_the_mix_ratio_only():
    d = api.price_claim(R1, O1, "20-50", mix="1:1", cache_hit_rate=0.0).to_dict()
    assert d["mix"]["shares"] == {"input": 0.5, "cached_input": 0.0, "output": 0.5}
    assert d["price_ratio"]["mix"] == pytest.approx((15 + 60) / (0.55 + 2.19))
    assert d["price_ratio"]["input"] == pytest.approx(15 / 0.55)


def test_table_and_csv():
    r = invoke(*CLAIM, "--ratio", "20-50")
    assert r.exit_code == 0, r.output
    assert "27.3x" in r.output and "53.6x" in r.output and "unknown" in r.output and "PRICE: WITHIN" in r.output
    r = invoke(*CLAIM, "--ratio", "20-50", "--format", "csv")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert len(lines) == 2 and "price_ratio.cached_input" in lines[0] and "within_price_ratio" in lines[0]


def test_json_matches_its_model(r1_vs_o1):
    PriceClaimOutput.model_validate(r1_vs_o1)
    assumed = api.price_claim(R1, O1, "30", b_model="llama-3.1-8b", mix="3:1").to_dict()
    PriceClaimOutput.model_validate({"schema_version": SCHEMA_VERSION, **assumed})
    with pytest.raises(ValidationError, match="new_key"):
        PriceClaimOutput.model_validate({**r1_vs_o1, "new_key": 1})


def test_json_is_deterministic(r1_vs_o1):
    first = invoke(*CLAIM, "--ratio", "20-50", "--format", "json").output
    assert invoke(*CLAIM, "--ratio", "20-50", "--format", "json").output == first
    assert json.loads(first) == {"schema_version": SCHEMA_VERSION, **api.price_claim(R1, O1, "20-50").to_dict()}
    assert {"price_ratio", "claimed_ratio", "within_price_ratio", "cost", "verdict", "assumptions"} <= set(r1_vs_o1)


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--ratio", "abc"], ["'abc' is not a number or a range", "--ratio 20-50"]),
        (["--ratio", "0"], ["must be above 0"]),
        (["--ratio", "-5"], ["is negative"]),
        (["--ratio", "50-20"], ["runs from high to low", "20-50"]),
        ([], ["needs --ratio"]),
        (["--ratio", "20", "--mix", "3"], ["is not IN:OUT"]),
        (["--ratio", "20", "--cache-hit-rate", "2"], ["--cache-hit-rate 2"]),
        (["--ratio", "20", "--usd-per-gpu-hour", "0"], ["--usd-per-gpu-hour 0", "from $0.01"]),
        (["--ratio", "20", "--gpu", "nope"], ["unknown GPU 'nope'"]),
        (["--ratio", "20", "--b-model", "nope"], ["nope"]),
    ],
)
def test_bad_input_is_one_clear_message(args, needles):
    out = clean_error(invoke(*CLAIM, *args), *needles, error="prefix")
    assert len(out.strip().splitlines()) == 1, out


@pytest.mark.parametrize(
    "args, needles",
    [
        (["claim", "--cheaper", "r1", O1, "--ratio", "20"], ["'r1' is not a price sheet", R1, O1]),
        (["claim", "--cheaper", R1, "nope", "--ratio", "20"], ["'nope' is not a price sheet"]),
        (["claim", "--cheaper", R1, R1, "--ratio", "20"], ["twice"]),
        (["claim", "--cheaper", R1, "--ratio", "20"], ["two price-sheet ids"]),
        (["claim", "--ratio", "20"], ["--ratio applies only to a price claim", "--cheaper"]),
        (["claim", "deepseek-v3", *CLAIM[1:], "--ratio", "20", "--tokens", "1T"], ["drop MODEL, --tokens"]),
    ],
)
def test_unknown_sheets_and_mixed_flags_are_one_clear_message(args, needles):
    out = clean_error(invoke(*args), *needles, error="prefix")
    assert len(out.strip().splitlines()) == 1, out


@pytest.mark.parametrize(
    "text, low, high, as_stated",
    [("27", 27, 27, (26.5, 27.5)), ("27.3x", 27.3, 27.3, (27.25, 27.35)), ("20-50", 20, 50, (19.5, 50.5)),
     ("20x-50x", 20, 50, (19.5, 50.5)), ("20 to 50", 20, 50, (19.5, 50.5)), (30, 30, 30, (29.5, 30.5))],
)  # fmt: skip
def test_parse_ratio(text, low, high, as_stated):
    r = parse_ratio(text)
    assert (r.low, r.high) == (low, high)
    assert (r.low_as_stated, r.high_as_stated) == pytest.approx(as_stated)


@pytest.mark.parametrize("bad", ["", "x", "20-", "-20", "0", 0, -3.0, float("nan"), True, "50-20", "1-2-3"])
def test_parse_ratio_refuses(bad):
    with pytest.raises(InputError, match="--ratio"):
        parse_ratio(bad)


def test_the_serve_command_writes_switches_as_flags():
    """A serve option that is a switch (two_batch_overlap) is written as --name / --no-name, and left out at its
    default, so the command the claim prints runs."""
    from simulator.analysis.price_claim import _serve_command

    off = _serve_command("deepseek-v3", "h800", {"input_len": 1000, "two_batch_overlap": False}, R1, None)
    assert "--no-two-batch-overlap" in off.split() and "False" not in off
    on = _serve_command("deepseek-v3", "h800", {"input_len": 1000, "two_batch_overlap": True}, R1, None)
    assert "two-batch-overlap" not in on
    r = invoke(*off.split()[1:], "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["request"]["two_batch_overlap"] is False


def test_a_workload_sets_the_lengths_of_both_sides():
    """--workload replaces the fleet's mean request for both sides (the fleet's latency target and its deployment
    stay), changes the modelled cost, and a bad one is refused even before any side is costed."""
    base = api.price_claim("deepseek-reasoner-2025", "openai-o1-2025-01", "20-50").to_dict()
    d = api.price_claim("deepseek-reasoner-2025", "openai-o1-2025-01", "20-50", workload="inferencemax-1k8k").to_dict()
    a = d["cost"]["a"]
    assert a["request"]["workload"] == "inferencemax-1k8k" and "input_len" not in a["request"]
    assert a["request"]["min_tokens_per_s_per_user"] == base["cost"]["a"]["request"]["min_tokens_per_s_per_user"]
    assert a["request"]["dp"] == base["cost"]["a"]["request"]["dp"] == 144  # the fleet's deployment
    assert a["request_source"].startswith("--workload inferencemax-1k8k (the lengths)")
    assert a["usd_per_million_output_tokens"] != base["cost"]["a"]["usd_per_million_output_tokens"]
    assert d["price_ratio"] == base["price_ratio"]  # list prices do not depend on lengths
    with pytest.raises(SpecError, match="unknown workload 'nope'"):
        api.price_claim("deepseek-reasoner-2025", "openai-o1-2025-01", "20-50", workload="nope")
    clean_error(invoke("claim", "--cheaper", "deepseek-reasoner-2025", "openai-o1-2025-01", "--ratio", "20-50",
                       "--workload", "nope"), "unknown workload")  # fmt: skip


# ------------------------------------------------------------------ hostile sheets and the cost verdict

O1_PRICES = {"usd_per_million_input_tokens": 15.0, "usd_per_million_cached_input_tokens": 7.5,
             "usd_per_million_output_tokens": 60.0}  # fmt: skip


def _sheet(**changes) -> dict:
    """The shipped o1 sheet with `changes` (a key set to None is dropped)."""
    import yaml

    from simulator.inputs.data_files import prices_dir

    doc = {**yaml.safe_load((prices_dir() / f"{O1}.yaml").read_text()), **changes}
    return {k: v for k, v in doc.items() if v is not None}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """$COSTSIM_DATA_DIR with the shipped data and a prices/ folder of copies a test may add to; returns that folder."""
    import shutil

    from simulator.inputs.data_files import FOLDERS, data_dir

    for folder in FOLDERS:
        if folder == "prices":
            shutil.copytree(data_dir(folder), tmp_path / folder)
        else:
            (tmp_path / folder).symlink_to(data_dir(folder), target_is_directory=True)
    monkeypatch.setenv("COSTSIM_DATA_DIR", str(tmp_path))
    return tmp_path / "prices"


def _write(prices, name: str, doc: dict):
    import yaml

    path = prices / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_neither_architecture_known_checks_list_prices_only(data_dir):
    """Two sheets without model_spec (o1 and an o1-pro at 10x its prices): no KeyError, no cost ratio, and the verdict
    says only the list-price part can be checked."""
    _write(data_dir, "o1-pro", _sheet(model="o1-pro", **{k: 10 * v for k, v in O1_PRICES.items()}))
    d = _json_of(invoke("claim", "--cheaper", O1, "o1-pro", "--ratio", "10", "--format", "json"))
    assert d["price_ratio"]["mix"] == pytest.approx(10.0) and d["within_price_ratio"] is True
    assert d["cost"]["a"]["unknown_architecture"] and d["cost"]["b"]["unknown_architecture"]
    assert d["cost_ratio"] is None
    assert all("at_other_side_margin" not in d["cost"][s]["assumption_band"] for s in ("a", "b"))
    assert "only the list-price part of the claim can be checked" in d["verdict_cost"]
    assert f"'{O1} is 10x cheaper than o1-pro' holds for list prices" in d["verdict_cost"]
    PriceClaimOutput.model_validate({"schema_version": SCHEMA_VERSION, **d})
    r = invoke("claim", "--cheaper", O1, "o1-pro", "--ratio", "50")
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert "does not hold for list prices" in r.output.replace("\n", " ") and "nothing is modelled" in r.output


def _json_of(r) -> dict:
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.parametrize("claimed", ["100", "0.5"])
def test_a_claim_outside_the_list_prices_does_not_hold_in_the_cost_verdict(claimed):
    d = api.price_claim(R1, O1, claimed).to_dict()
    assert d["within_price_ratio"] is False and "PRICE: OUTSIDE" in d["verdict_price"]
    assert f"' does not hold for list prices (no token mix gives {claimed}x)" in d["verdict_cost"]
    assert "' holds for list prices" not in d["verdict"]


def test_a_claim_within_the_list_prices_holds_in_the_cost_verdict(r1_vs_o1):
    assert "'deepseek-reasoner-2025 is 20-50x cheaper than openai-o1-2025-01' holds for list prices" in r1_vs_o1["verdict_cost"]


def test_the_bound_runs_the_way_of_the_unknown_side(r1_vs_o1):
    """Cost B / A falls as an unknown B's margin rises (at most its no-margin value) and rises with an unknown A's
    margin (at least its no-margin value)."""
    b_unknown = r1_vs_o1["cost_ratio"]
    assert b_unknown["break_even"]["mix"] > b_unknown["at_other_side_margin"]["mix"]
    assert "at most 259x at the mix if o1 sold at no margin" in r1_vs_o1["verdict_cost"]
    assert "less with a higher margin" in r1_vs_o1["verdict_cost"]
    d = api.price_claim(O1, R1, "0.03").to_dict()
    a_unknown = d["cost_ratio"]
    assert a_unknown["break_even"]["mix"] < a_unknown["at_other_side_margin"]["mix"]
    assert a_unknown["break_even"]["mix"] == pytest.approx(1 / b_unknown["break_even"]["mix"])
    text = d["verdict_cost"]
    assert f"at least {a_unknown['break_even']['mix']:.3g}x at the mix if o1 sold at no margin" in text
    assert "more with a higher margin" in text and "at most" not in text and "less with a higher margin" not in text
    assert "--a-model SPEC" in text


@pytest.mark.parametrize(
    "changes, needles",
    [
        ({"usd_per_million_output_tokens": True}, ["usd_per_million_output_tokens", "got True", "a number"]),
        ({"usd_per_million_output_tokens": "60"}, ["usd_per_million_output_tokens", "'60'", "without quotes"]),
        ({**dict.fromkeys(O1_PRICES, 5e-324)}, ["usd_per_million_input_tokens 5e-324 is below $0.0001", "per million"]),
        ({**dict.fromkeys(O1_PRICES, 1e-300)}, ["usd_per_million_input_tokens 1e-300 is below $0.0001", "1,000,000"]),
        ({"usd_per_million_output_tokens": 0}, ["usd_per_million_output_tokens 0.0 is below $0.0001"]),
        ({"usd_per_million_output_tokens": -1.0}, ["usd_per_million_output_tokens -1.0 is below"]),
        ({"date": "2999-01-01"}, ["date 2999-01-01 is after today"]),
        ({"date": "2025-01-05", "valid_until": "2024-12-01"}, ["valid_until 2024-12-01 is before date 2025-01-05"]),
        ({"date": "2025-02", "valid_until": "2025-01"}, ["valid_until 2025-01 is before date 2025-02"]),
        ({"valid_from": "2025-03-01", "valid_until": "2025-02-01"}, ["valid_until 2025-02-01 is before valid_from"]),
        ({"off_peak": {"window_utc": "16:30-00:30", "usd_per_million_input_tokens": 1.0,
                       "usd_per_million_cached_input_tokens": 2.0, "usd_per_million_output_tokens": 3.0}},
         ["off_peak: the cached input price 2.0 is above the input price 1.0"]),
        ({"off_peak": {"window_utc": "16:30-00:30", "usd_per_million_input_tokens": 1e-9,
                       "usd_per_million_output_tokens": 3.0}}, ["off_peak: usd_per_million_input_tokens 1e-09 is below"]),
        ({"off_peak": {"window_utc": "16:30-00:30", "usd_per_million_input_tokens": "1",
                       "usd_per_million_output_tokens": 3.0}}, ["off_peak.usd_per_million_input_tokens", "'1'"]),
    ],
)  # fmt: skip
def test_a_hostile_price_sheet_is_refused_naming_the_field(data_dir, changes, needles):
    from simulator.inputs.serving_cases import load_price_sheet

    path = _write(data_dir, "o1-bad", _sheet(**changes))
    with pytest.raises(SpecError) as e:
        load_price_sheet(path)
    for needle in (str(path), *needles):
        assert needle in str(e.value), str(e.value)
    out = clean_error(invoke("claim", "--cheaper", "o1-bad", R1, "--ratio", "20"), str(path), *needles, error="prefix")
    assert len(out.strip().splitlines()) == 1, out


def test_the_lowest_list_price_a_sheet_may_state_gives_finite_ratios(data_dir):
    """$0.0001/M (the floor) against $10,000/M (the ceiling): the widest ratio a pair of sheets can give, 1e8."""
    from simulator.inputs.serving_cases import MIN_USD_PER_MILLION

    _write(data_dir, "floor", _sheet(**dict.fromkeys(O1_PRICES, MIN_USD_PER_MILLION)))
    _write(data_dir, "ceiling", _sheet(**dict.fromkeys(O1_PRICES, 10_000.0)))
    d = api.price_claim("floor", "ceiling", "20").to_dict()
    assert all(v == pytest.approx(1e8) for v in d["price_ratio"].values())
    d = api.price_claim("ceiling", "floor", "20").to_dict()
    assert all(math.isfinite(v) and v == pytest.approx(1e-8) for v in d["price_ratio"].values())


def test_a_date_of_today_is_accepted(data_dir):
    import datetime

    from simulator.inputs.serving_cases import load_price_sheet

    # UTC, as the loader; a sheet dated a day ahead (a source east of UTC) loads; three days ahead cannot be a date
    # any source has reached, even if the clock passes midnight during the test.
    today = datetime.datetime.now(datetime.UTC).date()
    assert load_price_sheet(_write(data_dir, "today", _sheet(date=today.isoformat()))).date == today.isoformat()
    assert load_price_sheet(_write(data_dir, "month", _sheet(date=today.isoformat()[:7]))).date == today.isoformat()[:7]
    ahead = (today + datetime.timedelta(days=1)).isoformat()
    assert load_price_sheet(_write(data_dir, "ahead", _sheet(date=ahead))).date == ahead
    later = (today + datetime.timedelta(days=3)).isoformat()
    with pytest.raises(SpecError, match=f"date {later} is after today"):
        load_price_sheet(_write(data_dir, "later", _sheet(date=later)))


def test_an_unknown_model_spec_names_the_sheet_and_the_field(data_dir):
    path = _write(data_dir, "o1-spec", _sheet(model_spec="nosuch-model"))
    out = clean_error(invoke("claim", "--cheaper", R1, "o1-spec", "--ratio", "27"), str(path), "model_spec 'nosuch-model'",
                      "costsim list models", "leave model_spec out", error="prefix")  # fmt: skip
    assert len(out.strip().splitlines()) == 1, out
    # serve --price-sheet checks it the same way, before its search (a review: it named neither sheet nor field).
    out = clean_error(invoke("serve", "llama-3.1-8b", "--gpu", "h100", "--price-sheet", "o1-spec"), str(path),
                      "model_spec 'nosuch-model'", error="prefix")  # fmt: skip
    assert len(out.strip().splitlines()) == 1, out


@pytest.mark.parametrize(
    "kwargs, differs",
    [
        ({"usd_per_gpu_hour": 5}, ["$2.00/GPU-hour (this margin: $5.00)"]),
        ({"cache_hit_rate": 0.3}, ["56.25% cache hits (this margin: 30.00%)"]),
        ({"mix": "1:1"}, ["input:output 3.62:1 (this margin: 1:1)"]),
        ({"workload": "inferencemax-1k8k"}, ["input_len 4383, output_len 1211 (this margin: workload inferencemax-1k8k)"]),
    ],
)
def test_a_published_margin_is_shown_as_comparable_only_at_its_basis(r1_vs_o1, kwargs, differs):
    """DeepSeek's +545% was at $2/GPU-hour, the day's 56.25% cache hits, its 608:168 mix and (as costsim models it) the
    fleet's request; a margin modelled at other inputs says what differs instead of standing beside it."""
    base = r1_vs_o1["cost"]["a"]["published_margin"]
    assert base["margin"] == 5.45 and base["differs"] == []
    assert base["basis"]["usd_per_gpu_hour"] == 2.0 and base["basis"]["cache_hit_rate"] == pytest.approx(342 / 608)
    assert "(published for a whole day at these prices: +545%" in r1_vs_o1["verdict_cost"]
    d = api.price_claim(R1, O1, "27", **kwargs).to_dict()
    published = d["cost"]["a"]["published_margin"]
    assert published["differs"] == differs
    assert "published for a whole day at these prices: +545%" not in d["verdict_cost"]
    assert (
        f"not comparable with the +545% published for a whole day at these prices, which is at {differs[0]}" in d["verdict_cost"]
    )
    PriceClaimOutput.model_validate({"schema_version": SCHEMA_VERSION, **d})


def test_a_published_margin_at_its_own_gpu_price_stays_comparable():
    d = api.price_claim(R1, O1, "27", usd_per_gpu_hour=2).to_dict()
    assert d["cost"]["a"]["published_margin"]["differs"] == []
    assert "(published for a whole day at these prices: +545%" in d["verdict_cost"]


def test_a_workload_that_does_not_fit_gets_advice_the_claim_can_follow(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: big\nsource: a test\ninput_len: {fixed: 2000000}\noutput_len: {fixed: 1000000}\n")
    # 3M tokens is past DeepSeek-V3's context (its config's 163,840): that is the first thing said, in one line
    out = clean_error(invoke(*CLAIM, "--ratio", "27", "--workload", str(big)), "--workload", "163,840",
                      "give at most 163,840 tokens", error="prefix")  # fmt: skip
    assert len(out.strip().splitlines()) == 1, out
    # A spec stating no context reaches the memory refusal, whose advice is what a claim can change
    unbounded = tmp_path / "dsv3.yaml"
    unbounded.write_text("".join(line for line in (ROOT / "model_specs" / "deepseek-v3.yaml").read_text().splitlines(True)
                                 if not line.startswith("max_position_embeddings")))  # fmt: skip
    out = clean_error(invoke(*CLAIM, "--ratio", "27", "--workload", str(big), "--gpu", "h200", "--a-model", str(unbounded)),
                      "cannot be costed as", "on h200", "no decode layout fits", "costsim serve's search",
                      "--a-model SPEC", "--workload", error="prefix")  # fmt: skip
    assert "leave --tp/--dp/--pp/--num-gpus out" not in out and len(out.strip().splitlines()) == 1
    # A side on its fleet's GPU takes the fleet's deployment: the advice names it and the serve command, and not the
    # serve flags a claim does not take (the text itself: DeepSeek-V3's deployment fits every request its context allows)
    from simulator.analysis.price_claim import _no_fit_text
    from simulator.inputs.serving_cases import price_sheet

    sheet = price_sheet("deepseek-reasoner-2025", "--cheaper", "")
    text = _no_fit_text("no decode layout fits", sheet, "deepseek-v3", "the sheet's model_spec", "h800", {"dp": 144},
                        "deepseek-reasoner-2025", 2.0, "the deployment fleets/deepseek-v3-r1-day.yaml states")  # fmt: skip
    for needle in ("deepseek-reasoner cannot be costed as deepseek-v3 on h800", "the deployment fleets/deepseek-v3-r1-day"
                   ".yaml states", "`costsim serve deepseek-v3 --gpu h800", "--workload", "--gpu"):  # fmt: skip
        assert needle in text, needle
    assert "--input-len" not in text and "--kv-dtype fp8" not in text and "SPEC" not in text
