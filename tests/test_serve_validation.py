"""`costsim validate serve` and the decode all-to-all it rests on."""

from __future__ import annotations

import json

import pytest

from simulator.analysis import serve_validation
from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.catalog import load_hardware
from simulator.model.comms import Group, moe_low_latency_exchange_s
from simulator.model.efficiency import device_rates
from simulator.units import BLOCK_FP8_BYTES_PER_ELEMENT, BYTES_PER_ELEMENT, MICRO
from tests.cli_support import invoke

# deepseek-ai/DeepEP docs/legacy.md, low-latency kernels on H800 + CX7 (400 Gb/s), 128 tokens per rank, hidden 7168,
# top-8, FP8 dispatch and BF16 combine: dispatch + combine microseconds by EP size.
DEEPEP_LOW_LATENCY_US = {16: 118 + 195, 32: 155 + 273, 64: 173 + 314, 128: 192 + 369, 256: 194 + 360}


def _dispatch_plus_combine_s(tokens, top_k, dispatch_bytes, combine_bytes, group, fabric):
    """DeepEP's table gives a dispatch and a combine of hidden 7168; costsim times each direction on its own."""
    return moe_low_latency_exchange_s(tokens, top_k, 7168, dispatch_bytes, group, fabric) + moe_low_latency_exchange_s(
        tokens, top_k, 7168, combine_bytes, group, fabric
    )


@pytest.mark.parametrize("ep", sorted(DEEPEP_LOW_LATENCY_US))
def test_decode_all_to_all_against_deepep_low_latency(ep):
    """Nothing fitted: the H800 profile's link bandwidth x bus efficiency and its latency; within 20% of DeepEP."""
    rates = device_rates(load_hardware("h800"), DEFAULT)
    t = _dispatch_plus_combine_s(128, 8, BLOCK_FP8_BYTES_PER_ELEMENT, BYTES_PER_ELEMENT["bf16"], Group(ep, 1), rates.fabric)
    assert float(t) / MICRO == pytest.approx(DEEPEP_LOW_LATENCY_US[ep], rel=0.20)


def test_low_latency_sends_every_copy():
    """Without per-node deduplication the bytes grow with top_k: doubling top_k about doubles a multi-node exchange."""
    fabric = device_rates(load_hardware("h800"), DEFAULT).fabric
    one = _dispatch_plus_combine_s(4096, 4, 1.0, 2.0, Group(64, 1), fabric)
    two = _dispatch_plus_combine_s(4096, 8, 1.0, 2.0, Group(64, 1), fabric)
    assert 1.9 < float(two) / float(one) < 2.0
    assert float(_dispatch_plus_combine_s(4096, 8, 1.0, 2.0, Group(1, 1), fabric)) == 0.0


@pytest.fixture(scope="module")
def doc() -> dict:
    return serve_validation.report(serve_validation.evaluate())


MEDIAN_AS_DOCUMENTED = 0.120
"""The median |error| README's "How good is it?" states (28 figures). Issue 12's target is 20%: met since the
TensorRT-LLM cases reserve whole requests (docs/model.md §16.8), the profiles read the KV cache at the published
decode-attention rates (§16.3) and Blackwell's FP4 GEMMs run at their measured fraction of peak (§16.14); the max
target (50%) is met, the largest +42.9%."""

MAX_AS_DOCUMENTED = 0.429
FP4_AS_DOCUMENTED = (0.106, 0.424)
"""README's largest |error| (TensorRT-LLM's H200 DeepSeek-R1 min-latency row) and the FP4 figures' median and max."""


def test_validate_serve_predicts_at_least_ten_figures_and_the_median_is_as_documented(doc):
    """Over at least 10 published serving figures (validation/serving.yaml names each source and table) the median
    |error| is the documented one within 1 point: a change that moves it must update README and this number."""
    assert doc["n_cases"] >= 10
    assert doc["median_abs_error"] == pytest.approx(MEDIAN_AS_DOCUMENTED, abs=0.01)
    assert doc["max_abs_error"] == pytest.approx(MAX_AS_DOCUMENTED, abs=0.01)
    fp4 = doc["by_precision"]["fp4"]
    assert (fp4["median_abs_error"], fp4["max_abs_error"]) == pytest.approx(FP4_AS_DOCUMENTED, abs=0.01)
    assert doc["meets_target"] is (doc["median_abs_error"] <= serve_validation.TARGET_MEDIAN_ABS_ERROR
                                   and doc["max_abs_error"] <= serve_validation.TARGET_MAX_ABS_ERROR)  # fmt: skip


def test_every_case_is_predicted_or_says_why(doc):
    for c in doc["cases"]:
        if c["predicted"] is None:
            assert c["not_predicted_because"]
        else:
            assert c["predicted"] > 0 and c["error"] == pytest.approx(c["predicted"] / c["reported"] - 1)


def test_dense_trtllm_rows_within_twenty_percent(doc):
    """TensorRT-LLM perf-overview offline throughput (NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md):
    the dense Llama rows, FP8 on Hopper, each within 20%."""
    dense = [c for c in doc["cases"] if c["id"].startswith("trtllm-llama") and "-fp8-" in c["id"] and c["error"] is not None]
    assert len(dense) >= 4
    assert all(abs(c["error"]) <= 0.20 for c in dense), [(c["id"], c["error"]) for c in dense]


# The same table's FP4 cells on Blackwell (nvidia/Llama-3.3-70B-Instruct-FP4, Llama-3.1-405B-Instruct-FP4), as
# predicted when FP4 became predictable (docs/model.md §16.14): every one too fast, unlike the FP8 Hopper cells of the
# same rows. Nothing is fitted to them; a change that moves one by more than 2 points must say so here.
FP4_CELL_ERRORS = {
    "trtllm-llama-3.3-70b-b200-fp4-128-2048": 0.219,
    "trtllm-llama-3.3-70b-b200-fp4-1000-1000": 0.096,
    "trtllm-llama-3.3-70b-gb200-fp4-1000-1000": 0.104,
    "trtllm-llama-3.3-70b-b200-fp4-20000-2000": 0.016,
    "trtllm-llama-3.1-405b-b200-fp4-1000-1000": 0.120,
    "trtllm-llama-3.1-405b-gb200-fp4-2048-2048": 0.155,
}


def test_fp4_cells_are_predicted_and_their_errors_are_as_documented(doc):
    by_id = {c["id"]: c for c in doc["cases"]}
    for cid, error in FP4_CELL_ERRORS.items():
        assert by_id[cid]["error"] == pytest.approx(error, abs=0.02), (cid, by_id[cid]["error"])


def test_validate_serve_command_json():
    r = invoke("validate", "serve", "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert {"cases", "median_abs_error", "max_abs_error", "n_cases", "schema_version"} <= set(d)


def test_validate_serve_reports_each_precision_apart(doc):
    """FP4 figures rest on assumed Blackwell efficiencies (docs/model.md §16.14), so each precision's figures are
    summarized apart: the counts add up to the whole and each median is that precision's own."""
    import statistics

    by = doc["by_precision"]
    assert sum(v["n"] for v in by.values()) == doc["n_cases"]
    # the six perf-overview cells, three TensorRT-LLM DeepSeek-R1 B200 rows and SGLang's GB200 decode
    assert by["fp4"]["n"] == len(FP4_CELL_ERRORS) + 4
    fp8 = [abs(c["error"]) for c in doc["cases"] if c["error"] is not None and "-fp8-" in c["id"]]
    assert by["fp8"]["median_abs_error"] == pytest.approx(statistics.median(fp8))
    assert by["fp8"]["max_abs_error"] == pytest.approx(max(fp8))
