"""Cost bases: rental and TCO arithmetic, energy and CO2 checked by hand, the experiments multiplier, and bad input.

Expected numbers are computed here from the sourced inputs (hardware profile values and the defaults quoted in
simulator/pricing.py), or taken from docs/model.md §10.2's worked illustration of the Epoch AI method.
"""

from __future__ import annotations

import json

import pytest
from cli_support import clean_error, invoke

from simulator.errors import InputError, SpecError
from simulator.inputs.catalog import load_hardware
from simulator.run.cost import CostOptions, cost_block, energy_kwh_per_gpu_hour, tco_rate

assert_clean_error = clean_error

# llama-3.1-8b on 64 x H100 with a complete layout: one layout evaluated, no search (as in test_cli.py).
LLAMA_8B = ["estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T"]
FIXED = ["--tp", "1", "--pp", "1", "--zero-stage", "3", "--micro-batch-size", "1", "--schedule", "1f1b", "--recompute", "none"]
HOURS_5_YEARS = 5 * 8766


# --------------------------------------------------------------------------- arithmetic


def test_energy_per_gpu_hour_by_hand():
    # H800: 700 W TDP, x1.82 server power (DGX H100 10.2 kW / 8 / 0.7 kW), x0.75 average load, x1.25 PUE (Epoch defaults).
    kwh, inputs = energy_kwh_per_gpu_hour(load_hardware("h800"), CostOptions())
    assert kwh == pytest.approx(0.700 * 1.82 * 0.75 * 1.25, rel=1e-12)
    assert inputs["pue"]["value"] == 1.25 and "Epoch" in inputs["pue"]["source"]
    # A profile without its own server power multiplier uses Epoch's GPU default of 1.8 (B200: 1000 W).
    kwh_b200, inputs_b200 = energy_kwh_per_gpu_hour(load_hardware("b200"), CostOptions(pue=1.1))
    assert kwh_b200 == pytest.approx(1.000 * 1.8 * 0.75 * 1.1, rel=1e-12)
    assert inputs_b200["pue"]["source"] == "--pue"


def test_energy_and_co2_of_a_run_by_hand():
    gpu_hours = 1.0e6
    block = cost_block(gpu_hours, load_hardware("h800"), CostOptions(grid_kg_co2_per_kwh=0.5))
    kwh = gpu_hours * 0.700 * 1.82 * 0.75 * 1.25
    assert block["energy_mwh"] == pytest.approx(kwh / 1000, rel=1e-12)
    assert block["co2_t"] == pytest.approx(kwh * 0.5 / 1000, rel=1e-12)


def test_theory_illustration_of_the_epoch_method():
    # docs/model.md §10.2: with a $30k H100, 1.64 server overhead and 19% network share, "a 5-year life at $60.7k capex
    # per GPU ... gives $1.39/GPU-hour before power"; "the server draws 1.05 kW per GPU" (PUE 1.1) and energy is
    # "$0.085 ... per GPU-hour" (2023 price $0.0806/kWh). Tolerance: the rounding of the quoted figures (1%).
    hw = load_hardware("h100-sxm")
    rate = tco_rate(hw, CostOptions(basis="tco", gpu_purchase_usd=30_000, pue=1.1, usd_per_kwh=0.0806))
    c = rate.components_usd_per_gpu_hour
    assert c["gpus"] + c["servers"] + c["network"] == pytest.approx(1.39, rel=0.01)
    kwh, _ = energy_kwh_per_gpu_hour(hw, CostOptions(pue=1.1))
    assert kwh == pytest.approx(1.05, rel=0.01)
    assert c["energy"] == pytest.approx(0.085, rel=0.01)


def test_tco_components_by_hand_and_they_sum_to_the_total():
    hw = load_hardware("h800")  # $30,000 purchase price (profile), default server multiplier 1.64
    gpu_hours = 2.0e6
    block = cost_block(gpu_hours, hw, CostOptions(basis="tco"))
    comp = block["components_usd"]
    assert comp["gpus"] == pytest.approx(gpu_hours * 30_000 / HOURS_5_YEARS, rel=1e-12)
    assert comp["servers"] == pytest.approx(gpu_hours * 30_000 * 0.64 / HOURS_5_YEARS, rel=1e-12)
    assert comp["network"] == pytest.approx(gpu_hours * 30_000 * 1.64 * (0.19 / 0.81) / HOURS_5_YEARS, rel=1e-12)
    assert comp["energy"] == pytest.approx(gpu_hours * 0.700 * 1.82 * 0.75 * 1.25 * 0.0826, rel=1e-12)
    assert sum(comp.values()) == pytest.approx(block["cost_usd"], rel=1e-12)
    assert block["cost_usd"] == pytest.approx(gpu_hours * block["usd_per_gpu_hour"], rel=1e-12)
    assert block["rental_cost_usd"] == pytest.approx(gpu_hours * 2.0, rel=1e-12)  # the H800 profile's $2 (DeepSeek-V3)


def test_profile_server_multiplier_replaces_the_default():
    # a100-80gb's purchase price is an HGX server price / 8, so its profile sets the server multiplier to 1.
    rate = tco_rate(load_hardware("a100-80gb"), CostOptions(basis="tco"))
    assert rate.components_usd_per_gpu_hour["servers"] == 0.0
    assert rate.inputs["server_cost_multiplier"]["source"].startswith("profile a100-80gb")


def test_rental_uses_the_profile_quote_with_kind_and_date():
    hw = load_hardware("h100-sxm")
    block = cost_block(1000.0, hw, CostOptions())
    assert block["cost_usd"] == pytest.approx(1000.0 * hw.price.usd_per_gpu_hour)
    assert hw.price.kind in block["price_source"] and hw.price.date in block["price_source"]
    given = cost_block(1000.0, hw, CostOptions(usd_per_gpu_hour=3.0))
    assert given["cost_usd"] == pytest.approx(3000.0) and given["price_source"] == "--usd-per-gpu-hour"


def test_experiments_multiplier_is_kept_apart_from_the_final_run():
    hw = load_hardware("h800")
    plain = cost_block(1.0e6, hw, CostOptions())
    program = cost_block(1.0e6, hw, CostOptions(experiments_multiplier=3.0))
    assert program["cost_usd"] == plain["cost_usd"]  # the final run does not change
    assert program["program_cost_usd"] == pytest.approx(3.0 * plain["cost_usd"])
    assert program["program_gpu_hours"] == pytest.approx(3.0e6)
    assert "program_cost_usd" not in plain


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"basis": "owned"}, "--pricing 'owned'"),
        ({"experiments_multiplier": 0.5}, "--experiments-multiplier 0.5 is below 1"),
        ({"pue": 0.8}, "--pue 0.8"),
        ({"usd_per_kwh": -0.1}, "--usd-per-kwh"),
        ({"grid_kg_co2_per_kwh": 5.0}, "--grid-kg-co2-per-kwh 5"),
        ({"gpu_purchase_usd": 1.0}, "--gpu-purchase-usd 1"),
    ],
)
def test_bad_options_raise_input_errors(kwargs, needle):
    with pytest.raises(InputError, match=needle.replace("(", r"\(")):
        CostOptions(**kwargs)


def test_tco_without_a_purchase_price_names_the_fix():
    with pytest.raises(SpecError, match="--gpu-purchase-usd"):
        tco_rate(load_hardware("h100-pcie"), CostOptions(basis="tco"))
    rate = tco_rate(load_hardware("h100-pcie"), CostOptions(basis="tco", gpu_purchase_usd=20_000))
    assert rate.usd_per_gpu_hour > 0


# --------------------------------------------------------------------------- CLI


def test_estimate_json_keeps_cost_usd_and_gains_a_cost_block():
    r = invoke(*LLAMA_8B, *FIXED, "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["cost_usd"] == pytest.approx(d["gpu_hours"] * d["usd_per_gpu_hour"])
    assert d["cost"]["basis"] == "rental" and d["cost"]["cost_usd"] == d["cost_usd"]
    assert d["cost"]["energy_mwh"] == pytest.approx(d["gpu_hours"] * 0.700 * 1.82 * 0.75 * 1.25 / 1000)
    assert "program_cost_usd" not in d["cost"]


def test_estimate_tco_and_program_cost():
    flags = ["--pricing", "tco", "--experiments-multiplier", "2.5", "--usd-per-kwh", "0.1", "--format", "json"]
    r = invoke(*LLAMA_8B, *FIXED, *flags)
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    c = d["cost"]
    assert c["basis"] == "tco" and d["cost_usd"] == c["cost_usd"]
    assert sum(c["components_usd"].values()) == pytest.approx(c["cost_usd"])
    assert c["components_usd"]["energy"] == pytest.approx(d["gpu_hours"] * 0.700 * 1.82 * 0.75 * 1.25 * 0.1)
    assert c["program_cost_usd"] == pytest.approx(2.5 * c["cost_usd"])
    assert c["inputs"]["usd_per_kwh"]["source"] == "--usd-per-kwh"


def test_estimate_table_shows_energy_and_the_program_apart():
    r = invoke(*LLAMA_8B, *FIXED, "--experiments-multiplier", "3")
    assert r.exit_code == 0, r.output
    assert "energy" in r.output and "CO2" in r.output
    program = [line for line in r.output.splitlines() if line.startswith("program")]
    assert len(program) == 1 and "x3" in program[0] and "not the final run" in program[0]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--pricing", "owned"], "--pricing 'owned'"),
        (["--experiments-multiplier", "0.5"], "--experiments-multiplier 0.5"),
        (["--experiments-multiplier", "-2"], "--experiments-multiplier -2"),
        (["--pue", "0"], "--pue"),
    ],
)
def test_bad_cost_flags_fail_cleanly(extra, needle):
    out = assert_clean_error(invoke(*LLAMA_8B, *FIXED, *extra), needle)
    assert out.startswith("error:")


def test_tco_on_a_profile_without_a_price_fails_cleanly():
    out = assert_clean_error(
        invoke("estimate", "llama-3.1-8b", "--gpu", "h100-pcie", "--num-gpus", "8", "--tokens", "1T", "--pricing", "tco"),
        "h100-pcie",
        "--gpu-purchase-usd",
    )
    assert out.startswith("error:")


def test_estimate_without_model_or_plan_names_the_missing_flags():
    out = assert_clean_error(invoke("estimate", "llama-3.1-8b", "--gpu", "h100"), "--num-gpus", "--tokens", "--plan")
    assert out.startswith("error:")
    assert_clean_error(invoke("estimate"), "MODEL", "--gpu")


def test_rental_kind_picks_the_profiles_quote():
    """h100-sxm quotes on-demand $2.10 (aiapiplaybook, 2026-01; the default) and reserved $1.85 (techplained, 2026-04)."""
    from simulator.run.cost import chosen_rental_rate

    hw = load_hardware("h100-sxm")
    reserved = chosen_rental_rate(hw, CostOptions(rental_kind="reserved"))
    on_demand = chosen_rental_rate(hw, CostOptions(rental_kind="on-demand"))
    assert reserved.usd_per_gpu_hour == 1.85 and "reserved" in reserved.source
    assert on_demand.usd_per_gpu_hour == hw.price.usd_per_gpu_hour == 2.10 and "on-demand" in on_demand.source
    assert chosen_rental_rate(hw, CostOptions()).usd_per_gpu_hour == 2.10  # the profile's default: on-demand
    with pytest.raises(SpecError, match="no on-demand price"):
        chosen_rental_rate(load_hardware("h800"), CostOptions(rental_kind="on-demand"))
    with pytest.raises(InputError, match="--rental"):
        CostOptions(rental_kind="spot")


def test_rental_price_is_the_flag_then_the_plans_quote_then_the_profiles():
    from simulator.run.cost import chosen_rental_rate, rental_rate

    hw = load_hardware("h100-sxm")
    plan = rental_rate(2.5, "plan p: a quote")
    assert chosen_rental_rate(hw, CostOptions(usd_per_gpu_hour=3.0), plan).usd_per_gpu_hour == 3.0
    assert chosen_rental_rate(hw, CostOptions(rental_kind="reserved"), plan).source == "plan p: a quote"
    assert chosen_rental_rate(hw, CostOptions(rental_kind="reserved")).usd_per_gpu_hour == 1.85
    # An estimate's cost block follows the same rule: --rental picks the profile's other quote.
    r = invoke(*LLAMA_8B, *FIXED, "--rental", "reserved", "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["usd_per_gpu_hour"] == 1.85 and d["cost_usd"] == pytest.approx(1.85 * d["gpu_hours"])
