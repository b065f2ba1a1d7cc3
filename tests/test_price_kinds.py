"""One default kind of price per profile (issue 13, item 7): on-demand, dated and sourced where the reference quotes
one; the other kinds selectable with --rental; search and sweep show each GPU's kind and date, and flag a price of
another kind than asked for (the H800's reserved $2, assumed prices).

The prices are those of the project's hardware price reference, each cited in its profile's sources.
"""

from __future__ import annotations

import json

import pytest
from cli_support import invoke

from simulator.inputs.catalog import hardware_ids, load_hardware
from simulator.run.cost import ON_DEMAND, CostOptions, chosen_rental_rate, cost_block, pricing

# The profiles whose reference entry has no on-demand quote: their default keeps its kind and is flagged.
WITHOUT_ON_DEMAND = {"h800": "reserved", "h20": "assumed", "a800": "assumed", "gb200": "assumed", "l40s": "assumed"}

# (default $/GPU-hour, date, source key) of the on-demand defaults, from the reference.
ON_DEMAND_DEFAULTS = {
    "h100-sxm": (2.10, "2026-01", "aiapiplaybook"),  # "H100 SXM sits at $1.49-$2.10/hr", upper end
    "a100-40gb": (1.0, "2026-01", "aiapiplaybook"),  # "A100 on-demand rates have dropped below $1/hr"
    "a100-80gb": (1.0, "2026-01", "aiapiplaybook"),
    "v100": (3.06, "2024-01", "epoch_tct"),  # Azure NC6s v3
    "mi300x": (1.85, "2025-06", "gpublog"),  # Vultr listing (TensorWave $1.71)
    "mi325x": (2.25, "2025-06", "mi325x_specs"),  # "Cloud rental at $2.00-$2.25/hr", upper end
    "h200": (2.25, "2026-06", "packetai"),
    "b200": (3.75, "2026-06", "packetai"),
    "h100-pcie": (2.49, "2024-01", "epoch_tct"),  # Lambda
    "mi250x-gcd": (0.675, "2025-06", "gpublog_mi250x"),  # $1.35 per module-hour (one listing), per GCD
}


def test_every_shipped_profile_is_classified():
    assert set(WITHOUT_ON_DEMAND) | set(ON_DEMAND_DEFAULTS) == {load_hardware(p).name for p in set(hardware_ids().values())}


@pytest.mark.parametrize("gpu", sorted(ON_DEMAND_DEFAULTS))
def test_default_is_the_on_demand_quote_of_the_reference(gpu):
    hw = load_hardware(gpu)
    usd, date, source = ON_DEMAND_DEFAULTS[gpu]
    assert (hw.price.kind, hw.price.usd_per_gpu_hour, hw.price.date, hw.price.source) == (ON_DEMAND, usd, date, source)
    assert hw.price.source in hw.sources
    assert all(q.kind != ON_DEMAND for q in hw.price.alternatives)  # one quote per kind: the others are reachable


@pytest.mark.parametrize("gpu", sorted(WITHOUT_ON_DEMAND))
def test_a_profile_without_an_on_demand_quote_keeps_its_kind(gpu):
    hw = load_hardware(gpu)
    assert hw.price.kind == WITHOUT_ON_DEMAND[gpu]
    quote = pricing(hw).quote
    assert quote["flagged"] and quote["kind"] == hw.price.kind and quote["date"] == hw.price.date


def test_the_other_kinds_stay_selectable():
    """h100-sxm's reserved $1.85 (Lambda reservation, 2026-04) and v100's 3-year reserved $1.63 (Azure, 2024-01)."""
    h100, v100 = load_hardware("h100-sxm"), load_hardware("v100")
    assert chosen_rental_rate(h100, CostOptions(rental_kind="reserved")).usd_per_gpu_hour == 1.85
    assert chosen_rental_rate(v100, CostOptions(rental_kind="reserved")).usd_per_gpu_hour == 1.63
    asked = pricing(h100, CostOptions(rental_kind="reserved")).quote
    assert (asked["kind"], asked["date"], asked["flagged"]) == ("reserved", "2026-04", False)
    # Asked for reserved, H800's reserved $2 is what was asked for: not flagged.
    assert not pricing(load_hardware("h800"), CostOptions(rental_kind="reserved")).quote["flagged"]


def test_cost_block_and_estimate_carry_the_quote():
    block = cost_block(1000.0, load_hardware("h100-sxm"), CostOptions())
    assert block["price_quote"] == {
        "usd_per_gpu_hour": 2.10, "kind": "on-demand", "date": "2026-01", "flagged": False, "label": "on-demand 2026-01",
    }  # fmt: skip
    given = cost_block(1000.0, load_hardware("h800"), CostOptions(usd_per_gpu_hour=2.0))["price_quote"]
    assert (given["kind"], given["date"], given["flagged"]) == ("given", None, False)
    tco = cost_block(1000.0, load_hardware("h800"), CostOptions(basis="tco"))["price_quote"]
    assert tco["kind"] == "tco" and not tco["flagged"]
    r = invoke("estimate", "llama-3.1-8b", "--gpu", "h800", "--num-gpus", "8", "--tokens", "1T", "--tp", "1", "--pp", "1",
               "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["price_quote"] == d["cost"]["price_quote"]
    assert (d["price_quote"]["kind"], d["price_quote"]["date"], d["price_quote"]["flagged"]) == ("reserved", "2024-12", True)


SWEEP = ["sweep", "llama-3.1-8b", "--gpu", "h100,h800,a100-80gb", "--num-gpus", "64", "--tokens", "1T"]


def test_sweep_shows_kind_and_date_per_gpu_and_flags_unlike_prices():
    r = invoke(*SWEEP, "--budget-usd", "1e7")
    assert r.exit_code == 0, r.output
    rows = {line.split()[0]: line for line in r.output.splitlines() if line.split()[:2] in (["h100-sxm", "64"],
            ["h800", "64"], ["a100-80gb", "64"])}  # fmt: skip
    assert rows["h100-sxm"].endswith("2.10 on-demand 2026-01")
    assert rows["a100-80gb"].endswith("1.00 on-demand 2026-01")
    assert rows["h800"].endswith("2.00 reserved 2024-12 *")
    note = next(line for line in r.output.splitlines() if line.startswith("* "))
    assert "(h800)" in note
    budget = next(line for line in r.output.splitlines() if line.startswith("budget:"))
    assert "/GPU-hour" in budget and ("on-demand" in budget or "reserved" in budget)
    d = json.loads(invoke(*SWEEP, "--format", "json").output)
    by_gpu = {row["gpu"]: row for row in d["rows"]}
    assert (by_gpu["h800"]["price_kind"], by_gpu["h800"]["price_date"], by_gpu["h800"]["price_flagged"]) == (
        "reserved", "2024-12", True,
    )  # fmt: skip
    assert by_gpu["h100-sxm"]["usd_per_gpu_hour"] == 2.10 and not by_gpu["h100-sxm"]["price_flagged"]
    for row in d["rows"]:
        assert row["cost_usd"] == pytest.approx(row["gpu_hours"] * row["usd_per_gpu_hour"], rel=1e-12)


def test_sweep_and_search_take_rental():
    d = json.loads(invoke(*SWEEP, "--rental", "reserved", "--gpu", "h100,v100", "--format", "json").output)
    assert {r["gpu"]: r["usd_per_gpu_hour"] for r in d["rows"]} == {"h100-sxm": 1.85, "v100": 1.63}
    assert not any(r["price_flagged"] for r in d["rows"])
    run = ["search", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T", "--top", "2"]
    r = invoke(*run, "--rental", "reserved")
    assert r.exit_code == 0, r.output
    assert "priced at $1.85/GPU-hour of h100-sxm, reserved 2026-04" in r.output
    doc = json.loads(invoke(*run, "--format", "json").output)
    assert doc["price_quote"]["label"] == "on-demand 2026-01" and not doc["price_quote"]["flagged"]
    flagged = invoke("search", "llama-3.1-8b", "--gpu", "h800", "--num-gpus", "64", "--tokens", "1T", "--top", "2")
    assert "reserved 2024-12 *" in flagged.output and "the reference has no such quote" in flagged.output


def test_a_missing_kind_is_one_clear_error():
    r = invoke(*SWEEP, "--rental", "reserved")  # h800 has a reserved quote, a100-80gb too; h100 too: no error
    assert r.exit_code == 0, r.output
    r = invoke("sweep", "llama-3.1-8b", "--gpu", "h100,b200", "--num-gpus", "64", "--tokens", "1T", "--rental", "reserved")
    assert r.exit_code != 0
    out = r.output.strip()
    assert out.startswith("error:") and "b200" in out and "no reserved price" in out and "Traceback" not in out
