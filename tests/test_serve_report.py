"""`costsim serve --utilization / --price-sheet / --report`: the $/M chain from a GPU-hour to a list price."""

from __future__ import annotations

import json

import pytest

from simulator.errors import InputError
from simulator.report.serving import waterfall_steps
from simulator.run.serve import ServeRequest, serve
from tests.cli_support import clean_error, invoke


def test_utilization_divides_the_cost_per_token():
    full = serve(ServeRequest("llama-3.1-70b", "h100-sxm")).to_dict()
    half = serve(ServeRequest("llama-3.1-70b", "h100-sxm", utilization=0.5)).to_dict()
    for key in ("usd_per_million_input_tokens", "usd_per_million_cached_input_tokens", "usd_per_million_output_tokens"):
        assert half[key] == pytest.approx(2 * full[key])


def test_price_sheet_margin_is_price_over_cost_minus_one():
    """DeepSeek's 'cost profit margin' (open-infra-index day 6) is revenue / cost - 1; per token kind the same."""
    d = serve(ServeRequest("deepseek-v3", "h800", precision="fp8", price_sheet="deepseek-reasoner-2025")).to_dict()
    out = d["list_prices"]["by_kind"]["output"]
    assert out["cost_usd_per_million"] == pytest.approx(d["usd_per_million_output_tokens"])
    assert out["margin"] == pytest.approx(out["list_usd_per_million"] / out["cost_usd_per_million"] - 1)
    assert out["list_usd_per_million"] == pytest.approx(2.19)  # R1's list price per million output tokens


def test_unknown_price_sheet_and_bad_utilization():
    with pytest.raises(InputError, match="deepseek-reasoner-2025"):
        serve(ServeRequest("llama-3.1-70b", "h100-sxm", price_sheet="nope"))
    with pytest.raises(InputError, match="--utilization"):
        ServeRequest("llama-3.1-70b", "h100-sxm", utilization=0.0)


def test_waterfall_multiplies_out():
    """$/M output = $/GPU-hour / (tok/s per GPU x utilization x 3600) x 1e6: the chain's steps give the cost step."""
    d = serve(ServeRequest("deepseek-v3", "h800", utilization=0.6, price_sheet="deepseek-reasoner-2025")).to_dict()
    steps = {s["label"]: s["value"] for s in waterfall_steps(d)}
    cost = steps["$ per GPU-hour"] / (steps["output tok/s per GPU"] * steps["utilization"] * 3600) * 1e6
    assert steps["cost $ per M output"] == pytest.approx(cost)
    assert steps["price / cost"] == pytest.approx(steps["list $ per M output"] / steps["cost $ per M output"])


def test_serve_report_writes_markdown_html_and_charts(tmp_path):
    out = tmp_path / "r"
    r = invoke("serve", "deepseek-v3", "--gpu", "h800", "--price-sheet", "deepseek-reasoner-2025", "--report", str(out))
    assert r.exit_code == 0, r.output
    md = (out / "report.md").read_text()
    assert "## List price and margin" in md and "## From a GPU-hour to a million output tokens" in md
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html  # charts embedded
    assert (out / "serve_waterfall.png").stat().st_size > 1000
    again = invoke("serve", "deepseek-v3", "--gpu", "h800", "--report", str(out))
    clean_error(again, "--force")


def test_serve_json_carries_utilization_and_prices():
    r = invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--utilization", "0.7", "--format", "json")
    d = json.loads(r.output)
    assert d["utilization"] == 0.7 and "list_prices" not in d


def test_free_gpu_hours_give_no_margin_and_no_traceback(tmp_path):
    r = invoke("serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--usd-per-gpu-hour", "0", "--price-sheet",
               "deepseek-chat-2025", "--report", str(tmp_path / "r"), "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["usd_per_million_output_tokens"] == 0.0
    assert all(v["margin"] is None for v in d["list_prices"]["by_kind"].values())
    # A review found the waterfall's bars lost on its log axis at $0: no waterfall is drawn at a free GPU-hour.
    assert not (tmp_path / "r" / "serve_waterfall.png").exists() and (tmp_path / "r" / "serve_curve.png").exists()
    assert "From a GPU-hour to a million output tokens" not in (tmp_path / "r" / "report.md").read_text()


def test_the_table_and_report_name_what_changes_the_result():
    """request_conditions (a review): a --tpot-ms 30 run's header read as one without a target, and MTP, a KV cache
    dtype and a single phase showed nowhere in the text; the report's paragraph said 'prefill and decode' for one."""
    from simulator.report.serving import build_serve_document, request_conditions

    d = serve(ServeRequest("deepseek-v3", "h800", tpot_s=0.030, mtp_depth=1, mtp_accept=0.8, kv_dtype="fp8",
                           ttft_s=2.0)).to_dict()  # fmt: skip
    said = request_conditions(d["request"])
    assert said == ["at least 33.3 tok/s per user (TPOT at most 30 ms)", "TTFT at most 2,000 ms",
                    "MTP depth 1, acceptance 0.8", "KV cache fp8"]  # fmt: skip
    header = invoke("serve", "deepseek-v3", "--gpu", "h800", "--tpot-ms", "30").output.splitlines()[0]
    assert header.endswith("disaggregated, at least 33.3 tok/s per user (TPOT at most 30 ms)")
    decode_only = serve(ServeRequest("llama-3.1-70b", "h100-sxm", phase="decode")).to_dict()
    assert request_conditions(decode_only["request"]) == ["decode only"]
    text = str(build_serve_document(decode_only))
    assert "disaggregated decode only" in text and "prefill and decode" not in text


def test_the_report_shows_the_colocated_hold_and_the_service(tmp_path):
    """A review: the report's prefill row gave 7,491 input tok/s per GPU at $2.00/GPU-hour next to $0.353/M uncached
    input, a factor 4.76 it did not show (the stage hold the $/M charges); it now shows the hold and the service with
    prefill (per_request), as the table does."""
    args = ("--input-len", "4096", "--output-len", "1024", "--deployment", "colocated", "--dp", "32", "--tp", "1")
    d = json.loads(invoke("serve", "deepseek-v3", "--gpu", "h800", *args, "--format", "json").output)
    held = d["prefill"]["gpu_time_held_per_prefill"]
    assert held > 1.5
    per_gpu_hour = d["usd_per_gpu_hour"] / 3600 * 1e6 / d["prefill"]["uncached_tokens_per_s_per_gpu"]
    assert d["usd_per_million_input_tokens"] == pytest.approx(per_gpu_hour * held)
    r = invoke("serve", "deepseek-v3", "--gpu", "h800", *args, "--report", str(tmp_path / "r"))
    md = (tmp_path / "r" / "report.md").read_text()
    assert f"holds the stage {held:.2f}x its pass (co-located)" in md and f"holds the stage {held:.2f}x" in r.output
    assert f"{d['per_request']['gpu_s']:,.2f} GPU-seconds per request" in md


def test_a_cost_per_million_shows_significant_figures():
    """A review: the table printed $/M with four decimals, so a cached token's $0.0000781/M read 0.0001 (28% off)."""
    r = invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--usd-per-gpu-hour", "0.2", "--cache-hit-rate", "0.5",
               "--format", "json")  # fmt: skip
    cached = json.loads(r.output)["usd_per_million_cached_input_tokens"]
    assert cached < 1e-3
    table = invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--usd-per-gpu-hour", "0.2", "--cache-hit-rate", "0.5")
    assert f"$/M cached input   {cached:.4g}" in table.output


def test_the_report_shows_memory_for_either_phase_and_the_colocated_peak():
    """A review: a --phase prefill report had no memory (the table has), a co-located report never said what the GPU
    holds while it prefills, and four engine settings reached the table's header but not the report."""
    from simulator.report.serving import build_serve_document, colocated_peak_gib

    prefill = serve(ServeRequest("llama-3.1-70b", "h100-sxm", phase="prefill")).to_dict()
    text = str(build_serve_document(prefill))
    assert "Memory per prefill GPU" in text and "Memory per decode GPU" not in text
    co = serve(ServeRequest("deepseek-v3", "h800", input_len=4096, output_len=1024, deployment="colocated")).to_dict()
    peak = colocated_peak_gib(co)
    assert peak is not None and peak > co["memory_per_gpu_gib"]["total"]
    assert f"holds {peak:,.1f} GiB while it prefills" in str(build_serve_document(co))
    tuned = serve(ServeRequest("llama-3.1-70b", "h100-sxm", kv_memory_fraction=0.9, kv_admission="full-request",
                               host_s_per_sequence=20e-6, two_batch_overlap=False)).to_dict()  # fmt: skip
    said = str(build_serve_document(tuned))
    for condition in ("no two-batch overlap", "KV reserved for whole requests", "KV pool 90% of free memory",
                      "host 20 us per sequence"):  # fmt: skip
        assert condition in said, condition
