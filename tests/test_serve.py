"""The serving model (simulator/model/serve/, simulator/run/serve.py) and `costsim serve`."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from cli.serving import serve_table
from simulator.errors import CostsimError, InfeasibleError, InputError, LayoutError
from simulator.inputs.catalog import load_hardware, load_model
from simulator.model.serve import decode
from simulator.model.serve.decode import Candidates, memory_per_gpu, step_s, throughput
from simulator.model.serve.kv_cache import kv_bytes_per_token, kv_shard
from simulator.model.serve.search import Given, _pareto_front, decode_candidates, search_decode
from simulator.outputs import SCHEMA_VERSION
from simulator.run.serve import ServeRequest, serve, setup_for
from simulator.units import GIB
from tests.cli_support import clean_error, invoke


def one(tp=1, dp=1, pp=1, batch=1, precision="bf16") -> Candidates:
    return Candidates(np.array([tp], float), np.array([dp], float), np.array([pp], float), np.array([batch], float),
                      np.array([precision]))  # fmt: skip


# ------------------------------------------------------------------ KV cache


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # DeepSeek-V3 report §2.1.1 (only c^KV and k^R cached): 61 layers x (512 + 64) x 2 B
        ("deepseek-v3", 61 * 576 * 2),
        # Scaling Book inference.md, 2 x bytes x KV heads x head_dim x layers: Llama 3.1 70B 80 x 2 x 8 x 128 x 2 B
        ("llama-3.1-70b", 327_680),
        ("llama-3.1-405b", 126 * 2 * 8 * 128 * 2),
    ],
)
def test_kv_bytes_per_token_formula(model, expected):
    assert kv_bytes_per_token(load_model(model), "bf16") == expected
    assert kv_bytes_per_token(load_model(model), "fp8") == expected / 2


def test_kv_shard_splits_gqa_heads_but_not_an_mla_latent():
    llama, v3 = load_model("llama-3.1-70b"), load_model("deepseek-v3")
    assert kv_shard(llama, np.array([1.0, 8.0, 16.0])).tolist() == [1.0, 1 / 8, 1 / 8]  # 8 KV heads
    assert kv_shard(v3, np.array([8.0])).tolist() == [1.0]


# ------------------------------------------------------------------ decode step


def test_batch_one_decode_is_weight_bandwidth_bound():
    """At batch 1 a dense model's decode step reads every weight once: step ~ weight bytes / HBM bandwidth
    (Scaling Book, 'Theoretical Min Step Time'), plus the fixed costs (kernels, all-reduces, engine)."""
    s = setup_for(ServeRequest("llama-3.1-70b", "h100-sxm", input_len=128, output_len=128))
    c = one(tp=1, batch=1)
    t = step_s(s, c)
    weights = memory_per_gpu(s, c)["weights"][0]
    reading = weights / s.rates.hbm_bytes_per_s
    gemm_parts = t["attention_proj"][0] + t["ffn"][0] + t["lm_head"][0]
    assert reading <= gemm_parts <= 1.15 * reading


def test_decode_kv_reads_grow_with_context():
    """The attention core reads batch x context x KV bytes per layer: four times the context, about four times the
    attention time at a batch where it is bandwidth-bound (GQA)."""
    short = setup_for(ServeRequest("llama-3.1-70b", "h100-sxm", input_len=1000, output_len=2))
    long = replace(short, input_len=4000)
    c = one(tp=8, batch=64)
    ratio = step_s(long, c)["attention_core"][0] / step_s(short, c)["attention_core"][0]
    assert 3.8 < ratio < 4.05


def test_mtp_tokens_per_step_is_the_speculative_decoding_expectation():
    """Leviathan et al. 2023, Theorem 3.8: E = (1 - a^(g+1)) / (1 - a)."""
    s = setup_for(ServeRequest("deepseek-v3", "h800", mtp_depth=1, mtp_accept=0.85))
    assert s.tokens_per_step == pytest.approx((1 - 0.85**2) / (1 - 0.85))
    assert replace(s, mtp_depth=0).tokens_per_step == 1.0


def test_pipeline_output_per_gpu_is_batch_over_pp_stage_times():
    s = setup_for(ServeRequest("llama-3.1-70b", "h100-sxm"))
    c = one(tp=4, pp=2, batch=32)
    per_gpu, per_user = throughput(s, c, np.array([0.01]))
    assert per_gpu[0] == pytest.approx(32 / (2 * 0.01))
    assert per_user[0] == pytest.approx(1 / (2 * 0.01))


def test_experts_read_only_where_tokens_land():
    """One token touches top_k experts: at batch 1 the routed-expert time is far below reading every local expert;
    at a large batch every expert is hit."""
    s = setup_for(ServeRequest("deepseek-v3", "h800", input_len=1000, output_len=100))
    small, large = one(dp=8, batch=1, precision="fp8"), one(dp=8, batch=512, precision="fp8")
    t_small = decode.layer_step_s(s, small, "moe", 1.0)["experts"][0]
    t_large = decode.layer_step_s(s, large, "moe", 1.0)["experts"][0]
    moe = s.model.moe
    expert_bytes = 3 * s.model.d_model * moe.d_ff_expert  # fp8 gate, up and down
    all_local = moe.n_routed_experts / 8 * expert_bytes / s.rates.hbm_bytes_per_s
    assert t_small < 0.25 * all_local
    assert t_large >= 0.95 * all_local


def test_vectorized_search_matches_a_single_evaluation():
    s = setup_for(ServeRequest("deepseek-v3", "h800", input_len=2048, output_len=512))
    found = search_decode(s, Given(), ("fp8",))
    i = len(found.candidates) // 3
    c = found.candidates
    single = one(c.tp[i], c.dp[i], c.pp[i], c.batch[i], str(c.precision[i]))
    assert step_s(s, single)["total"][0] == pytest.approx(found.step["total"][i], rel=1e-12)


def test_given_fields_hold_in_the_search():
    s = setup_for(ServeRequest("llama-3.1-70b", "h100-sxm"))
    c = decode_candidates(s, Given(tp=8, num_gpus=8), ("bf16",))
    assert set(c.tp.tolist()) == {8} and set(c.gpus.tolist()) == {8}


def test_memory_limits_the_batch():
    req = ServeRequest("llama-3.1-70b", "h100-sxm", input_len=8000, output_len=1000, tp=8, pp=1, precision="bf16")
    d = serve(req).to_dict()
    mem = d["memory_per_gpu_gib"]
    assert mem["total"] <= 80.0 + 1e-9
    assert mem["kv_cache"] > 10  # the batch grows until the cache fills what the weights leave


def test_latency_target_is_met_or_refused():
    d = serve(ServeRequest("llama-3.1-70b", "h100-sxm", tpot_s=0.030)).to_dict()
    assert d["decode"]["tpot_s"] <= 0.030
    slow = serve(ServeRequest("llama-3.1-70b", "h100-sxm")).to_dict()
    assert slow["decode"]["output_tokens_per_s_per_gpu"] >= d["decode"]["output_tokens_per_s_per_gpu"]
    with pytest.raises(InfeasibleError, match="tokens/s per user"):
        serve(ServeRequest("llama-3.1-70b", "h100-sxm", tpot_s=0.0005))


def test_dollars_per_million_tokens_follow_the_throughput():
    """$/M = $/GPU-hour / (tokens/s per GPU x 3600) x 1e6 (the common form, e.g. NVIDIA's FAQ)."""
    d = serve(ServeRequest("llama-3.1-70b", "h100-sxm")).to_dict()
    rate = d["usd_per_gpu_hour"]
    assert d["usd_per_million_output_tokens"] == pytest.approx(rate / (d["decode"]["output_tokens_per_s_per_gpu"] * 3600) * 1e6)
    assert d["usd_per_million_input_tokens"] == pytest.approx(rate / (d["prefill"]["uncached_tokens_per_s_per_gpu"] * 3600) * 1e6)
    assert d["usd_per_million_cached_input_tokens"] < d["usd_per_million_input_tokens"]


def test_cache_hits_raise_the_prefill_rate():
    cold = serve(ServeRequest("llama-3.1-70b", "h100-sxm", phase="prefill", input_len=4096)).to_dict()
    warm = serve(ServeRequest("llama-3.1-70b", "h100-sxm", phase="prefill", input_len=4096, cache_hit_rate=0.5)).to_dict()
    assert warm["prefill"]["input_tokens_per_s_per_gpu"] > 1.5 * cold["prefill"]["input_tokens_per_s_per_gpu"]


def test_input_is_priced_per_uncached_token_and_all_input_gets_cheaper_with_hits():
    """usd_per_million_input_tokens is per uncached (computed) input token: it rises with the hit rate (the misses
    attend over a longer cached prefix; a review read it as all input getting dearer), while all input at hit rate
    h, (1 - h) x it + h x usd_per_million_cached_input_tokens, is what per_request charges one request's prompt
    (prefill and cache loads, per input token) and falls as h rises."""
    uncached, blended = [], []
    for h in (0.0, 0.5, 0.9, 0.99):
        d = serve(ServeRequest("llama-3.1-70b", "h100-sxm", input_len=4000, output_len=500, cache_hit_rate=h)).to_dict()
        r = d["per_request"]
        charged_usd_per_million = ((r["prefill_gpu_s"] + r["cached_input_gpu_s"]) * d["usd_per_gpu_hour"] / 3600
                                   / d["utilization"] / 4000 * 1e6)  # fmt: skip
        uncached.append(d["usd_per_million_input_tokens"])
        blended.append((1 - h) * uncached[-1] + h * d["usd_per_million_cached_input_tokens"])
        assert blended[-1] == pytest.approx(charged_usd_per_million, rel=1e-9), h
    assert uncached == sorted(uncached) and uncached[-1] > 1.1 * uncached[0]
    assert all(a > b for a, b in zip(blended, blended[1:], strict=False))


def test_the_input_price_is_labelled_per_uncached_token():
    """The table, the Markdown report and the JSON schema say the input price is per uncached input token and
    name the cached tokens' own price."""
    from simulator.outputs import ServeOutput
    from simulator.report.document import to_markdown
    from simulator.report.serving import build_serve_document

    text = invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--cache-hit-rate", "0.5").output
    assert "$/M uncached input " in text and "$/M cached input " in text
    described = ServeOutput.model_json_schema()["properties"]["usd_per_million_input_tokens"]["description"]
    assert "uncached input tokens" in described and "usd_per_million_cached_input_tokens" in described
    d = serve(ServeRequest("llama-3.1-70b", "h100-sxm")).to_dict()
    assert "uncached input (computed; cache misses)" in to_markdown(build_serve_document(d))


def test_curve_is_a_monotone_frontier():
    curve = serve(ServeRequest("deepseek-v3", "h800", phase="decode")).to_dict()["curve"]
    assert len(curve) >= 5
    users = [p["tokens_per_s_per_user"] for p in curve]
    gpus = [p["tokens_per_s_per_gpu"] for p in curve]
    assert users == sorted(users)
    assert all(a >= b - 1e-9 for a, b in zip(gpus, gpus[1:], strict=False))  # faster users, less per GPU


@pytest.mark.parametrize(
    "request_kwargs",
    [
        # A review's case: the log-spaced speed levels skipped the chosen 538.7 tokens/s per GPU at 41.4 per user, and
        # the curve's best at >= 40 per user read 520.5.
        {"model": "llama-3.1-70b", "gpu": "h100-sxm", "input_len": 8000, "output_len": 1000, "min_tokens_per_s_per_user": 40},
        {"model": "llama-3.1-70b", "gpu": "h100-sxm", "input_len": 8000, "output_len": 1000},
        {"model": "llama-3.1-70b", "gpu": "h100-sxm", "input_len": 2000, "output_len": 500, "tpot_s": 0.0165},
        {"model": "deepseek-v3", "gpu": "h800", "phase": "decode", "min_tokens_per_s_per_user": 30},
        # The co-located pick (DP8) tied exactly with a front point of another layout (DP4): the curve repeated it
        # (a metamorphic review, 2026-12-07).
        {"model": "deepseek-v2-lite", "gpu": "a100-80gb", "deployment": "colocated"},
    ],
)
def test_curve_passes_through_the_chosen_decode_and_is_a_true_upper_envelope(request_kwargs):
    """The chosen decode is a point of the curve; the curve falls strictly; and no candidate that fits beats a curve
    point per GPU at its speed per user or more (so no curve point at the chosen speed or more beats the chosen)."""
    kwargs = dict(request_kwargs)
    req = ServeRequest(kwargs.pop("model"), kwargs.pop("gpu"), **kwargs)
    e = serve(req)
    d = e.to_dict()
    chosen = (d["decode"]["tokens_per_s_per_user"], d["decode"]["output_tokens_per_s_per_gpu"])
    curve = [(p["tokens_per_s_per_user"], p["tokens_per_s_per_gpu"]) for p in d["curve"]]
    assert chosen in curve
    assert all(u1 < u2 and g1 > g2 for (u1, g1), (u2, g2) in zip(curve, curve[1:], strict=False))
    assert not [p for p in curve if p[0] >= chosen[0] and p[1] > chosen[1]]
    found = e.decode  # every candidate the search evaluated
    ok = found.fits & np.isfinite(found.tokens_per_s_per_gpu)
    user, gpu = found.tokens_per_s_per_user[ok], found.tokens_per_s_per_gpu[ok]
    for u, g in curve:
        assert not np.any((user >= u) & (gpu > g * (1 + 1e-9))), (u, g)


def test_pareto_front_keeps_exactly_the_undominated_points():
    """(speed per user, per GPU): (1, 10), (3, 6) and (5, 2) are undominated; (2, 6) loses to (3, 6), (4, 1) to
    (5, 2), (1, 9) to (1, 10); (6, 9) does not fit."""
    user = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 6.0])
    gpu = np.array([10.0, 6.0, 6.0, 1.0, 2.0, 9.0, 9.0])
    ok = np.array([True, True, True, True, True, True, False])
    assert _pareto_front(user, gpu, ok).tolist() == [0, 2, 4]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_len": 0}, "--input-len"),
        ({"cache_hit_rate": 1.5}, "--cache-hit-rate"),
        ({"mtp_depth": 1}, "--mtp-accept"),
        ({"phase": "train"}, "--phase"),
        ({"tpot_s": 0.01, "min_tokens_per_s_per_user": 10}, "not both"),
        ({"tp": 0}, "--tp"),
        ({"mtp_accept": float("nan"), "mtp_depth": 1}, "--mtp-accept"),
    ],
)
def test_request_checks(kwargs, match):
    with pytest.raises(InputError, match=match):
        ServeRequest("llama-3.1-70b", "h100-sxm", **kwargs)


def unbounded_spec(tmp_path, name: str) -> str:
    """A copy of a shipped spec that states no context (max_position_embeddings left out), so that a request past
    the model's context reaches the checks behind _check_context."""
    from tests.cli_support import ROOT

    lines = (ROOT / "model_specs" / f"{name}.yaml").read_text().splitlines(keepends=True)
    path = tmp_path / f"{name}-unbounded.yaml"
    path.write_text("".join(line for line in lines if not line.startswith("max_position_embeddings")))
    return str(path)


def test_model_and_gpu_checks(tmp_path):
    with pytest.raises(CostsimError):
        serve(ServeRequest("no-such-model", "h100-sxm"))
    with pytest.raises(InputError, match="FP8"):
        serve(ServeRequest("llama-3.1-8b", "a100-80gb", precision="fp8"))
    with pytest.raises(InputError, match="MTP"):
        serve(ServeRequest("llama-3.1-70b", "h100-sxm", mtp_depth=1, mtp_accept=0.8))
    with pytest.raises(CostsimError, match="divide"):
        serve(ServeRequest("llama-3.1-70b", "h100-sxm", tp=3))
    with pytest.raises(InputError, match="256 routed experts"):
        serve(ServeRequest("deepseek-v3", "h800", ep=3, phase="prefill"))
    with pytest.raises(InputError, match="dense"):
        serve(ServeRequest("llama-3.1-8b", "h800", ep=2))
    with pytest.raises(InfeasibleError, match="TTFT 0.001 ms"):
        serve(ServeRequest("llama-3.1-8b", "h100-sxm", ttft_s=1e-6, phase="prefill"))
    with pytest.raises(InfeasibleError, match="KV cache"):  # a spec that states no context (Llama 3.1's ends at 131,072)
        serve(ServeRequest(unbounded_spec(tmp_path, "llama-3.1-70b"), "h100-sxm", input_len=10_000_000))


# ------------------------------------------------------------------ the command


SERVE_FIELDS = ("prefill", "decode", "memory_per_gpu_gib", "usd_per_million_input_tokens",
                "usd_per_million_cached_input_tokens", "usd_per_million_output_tokens", "assumptions", "curve")  # fmt: skip


@pytest.mark.parametrize(("model", "gpu"), [("deepseek-v3", "h800"), ("llama-3.1-70b", "h100-sxm")])
def test_serve_command_json_has_the_issue_fields(model, gpu):
    r = invoke("serve", model, "--gpu", gpu, "--input-len", "4096", "--output-len", "1024", "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    for key in SERVE_FIELDS:
        assert key in d
    assert {"input_tokens_per_s_per_gpu", "layout", "ttft_s"} <= set(d["prefill"])
    assert {"output_tokens_per_s_per_gpu", "tokens_per_s_per_user", "batch_per_gpu", "layout"} <= set(d["decode"])
    for value in (d["usd_per_million_output_tokens"], d["decode"]["output_tokens_per_s_per_gpu"]):
        assert np.isfinite(value) and value > 0


CSV_REQUESTS = {
    "dense": ("llama-3.1-70b", "--gpu", "h100-sxm"),
    "moe": ("deepseek-v3", "--gpu", "h800", "--mtp-depth", "1", "--mtp-accept", "0.8"),
    "workload": ("llama-3.1-70b", "--gpu", "h100-sxm", "--workload", "inferencemax-1k8k"),
    "decode only": ("mixtral-8x7b", "--gpu", "h100-sxm", "--phase", "decode"),
    "prefill only": ("qwen3-30b-a3b", "--gpu", "h100-sxm", "--phase", "prefill"),
    "kv pool": ("llama-3.1-70b", "--gpu", "h100-sxm", "--kv-memory-fraction", "0.5"),
}
SHEET = ("--price-sheet", "deepseek-chat-2025")


def test_serve_csv_with_a_price_sheet_keeps_its_columns_whatever_the_phase():
    """With a sheet, every token kind's list price and margin is a column, whichever phases run (a review: --phase
    decode dropped the input kinds' six columns)."""
    heads = {p: invoke("serve", "llama-3.1-8b", "--gpu", "h100", *SHEET, "--phase", p, "--format", "csv").output.splitlines()[0]
             for p in ("both", "decode", "prefill")}  # fmt: skip
    assert len(set(heads.values())) == 1 and "list_prices.by_kind.cached_input.margin" in heads["decode"]


def test_serve_csv_has_the_same_columns_whatever_the_request():
    """A script that stacks `serve --format csv` rows gets one header: every output field of any phase, the workload
    fields and every forward-pass term (the review's CSV that gained columns with --workload)."""
    import csv
    import io

    rows = {}
    for name, args in CSV_REQUESTS.items():
        r = invoke("serve", *args, "--format", "csv")
        assert r.exit_code == 0, r.output
        rows[name] = list(csv.DictReader(io.StringIO(r.output)))[0]
    headers = {name: list(row) for name, row in rows.items()}
    assert all(h == headers["dense"] for h in headers.values())
    dense, moe = rows["dense"], rows["moe"]
    assert float(dense["prefill.breakdown_s.routed_experts"]) == 0 < float(moe["prefill.breakdown_s.routed_experts"])
    assert dense["request.workload.name"] == "" and rows["workload"]["request.workload.name"] == "inferencemax-1k8k"
    assert rows["decode only"]["prefill.ttft_s"] == "" and rows["decode only"]["decode.tpot_s"] != ""
    assert rows["prefill only"]["decode.tpot_s"] == "" and rows["prefill only"]["prefill.ttft_s"] != ""
    assert "request.workload" not in headers["dense"] and "curve" not in headers["dense"]


def test_serve_csv_agrees_with_the_json_wherever_both_have_a_field():
    """Every CSV column the JSON document also holds carries the JSON's value (a review: a schema_version column,
    always empty, where the JSON says 1; the column is dropped now, as no other command's CSV has one)."""
    import csv
    import io

    from simulator.report.tables import flatten

    args = (*CSV_REQUESTS["dense"], "--input-len", "4000", "--output-len", "500")
    doc = flatten(json.loads(invoke("serve", *args, "--format", "json").output))
    row = list(csv.DictReader(io.StringIO(invoke("serve", *args, "--format", "csv").output)))[0]
    assert "schema_version" not in row and doc["schema_version"] == SCHEMA_VERSION
    shared = [c for c in row if doc.get(c) is not None]
    assert len(shared) > 90
    for column in shared:
        value = doc[column]
        if isinstance(value, float):
            assert float(row[column]) == pytest.approx(value, rel=1e-6), column
        else:
            assert row[column] == str(value), column


def test_the_csv_vocabularies_are_the_models_terms():
    """The CSV's fixed columns are the terms the model computes: a decode step's parts, a serving GPU's memory, and
    a prefill pass's terms for a dense model, an MLA MoE with shared experts and a MoE without."""
    from simulator.vocab import DECODE_COMPONENTS, FORWARD_COMPONENTS, SERVE_MEMORY_COMPONENTS

    d = serve(ServeRequest("deepseek-v3", "h800")).to_dict()
    assert tuple(d["decode"]["breakdown_s"]) == DECODE_COMPONENTS
    assert tuple(d["memory_per_gpu_gib"]) == tuple(k for k in SERVE_MEMORY_COMPONENTS if k != "kv_pool_unused")
    pool = serve(ServeRequest("deepseek-v3", "h800", kv_memory_fraction=0.5)).to_dict()["memory_per_gpu_gib"]
    assert tuple(pool) == SERVE_MEMORY_COMPONENTS
    for model, gpu in (("llama-3.1-70b", "h100-sxm"), ("deepseek-v3", "h800"), ("mixtral-8x7b", "h100-sxm")):
        parts = serve(ServeRequest(model, gpu, phase="prefill")).to_dict()["prefill"]["breakdown_s"]
        assert set(parts) <= set(FORWARD_COMPONENTS), set(parts) - set(FORWARD_COMPONENTS)


def test_a_tp_group_decodes_whole_sequences():
    """A review's --batch-per-gpu 0.5 at TP1 priced half a sequence ($33/M), and 0.001 at TP8 0.008 of one: a stated
    batch must give each TP group a whole number of sequences, at least one; 0.125 at TP8 (one sequence) is kept, a
    cap of 2.5 at TP1 decodes at most 2."""
    for batch, tp in ((0.5, 1), (1.5, 1), (0.001, None)):
        with pytest.raises(LayoutError, match="whole number of at least 1"):
            serve(ServeRequest("llama-3.1-70b", "h100-sxm", batch_per_gpu=batch, tp=tp, phase="decode"))
    one = serve(ServeRequest("llama-3.1-70b", "h100-sxm", batch_per_gpu=0.125, tp=8, phase="decode")).to_dict()
    assert one["decode"]["batch_per_gpu"] == 0.125
    capped = serve(ServeRequest("llama-3.1-70b", "h100-sxm", max_batch_per_gpu=2.5, tp=1, phase="decode")).to_dict()
    assert capped["decode"]["batch_per_gpu"] == 2
    clean_error(invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--batch-per-gpu", "0.5", "--tp", "1"),
                "--batch-per-gpu 1 at TP1")  # fmt: skip
    # At TP3 the suggestion is printed to ten digits, and a batch typed to six (one sequence) is taken (a review's
    # refusal suggested 0.333333, then refused it).
    clean_error(
        invoke("serve", "mpt-125m", "--gpu", "h100", "--tp", "3", "--batch-per-gpu", "0.5"), "0.3333333333 or 0.6666666667"
    )
    typed = serve(ServeRequest("mpt-125m", "h100", tp=3, batch_per_gpu=0.333333, phase="decode")).to_dict()
    assert typed["decode"]["batch_per_gpu"] == 0.333333


def test_a_decode_only_request_refuses_prefill_settings():
    """A review found --ep, --cache-hit-rate and --deployment colocated silently ignored by --phase decode (while
    --ttft-ms was refused): each sets only the prefill, so each is refused with it; and --plot, the decode's curve,
    is refused with --phase prefill (it wrote an empty chart)."""
    for flags in (("--ep", "8"), ("--cache-hit-rate", "0.5"), ("--deployment", "colocated"), ("--ttft-ms", "100")):
        clean_error(invoke("serve", "deepseek-v3", "--gpu", "h800", "--phase", "decode", *flags),
                    f"{flags[0]}{' colocated' if flags[1] == 'colocated' else ''} set the prefill")  # fmt: skip
    clean_error(invoke("serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--phase", "prefill", "--plot", "/tmp/never.png"),
                "--plot draws the decode")  # fmt: skip


def test_a_price_sheet_for_another_model_is_flagged_and_utilization_shown():
    """A review found a DeepSeek sheet's margins printed against Llama 3.1 8B's cost with no note, and --utilization
    0.1 multiplying $/M tenfold with nothing in the table saying why."""
    other = serve(ServeRequest("llama-3.1-8b", "h100-sxm", price_sheet="deepseek-reasoner-2025")).to_dict()["list_prices"]
    assert "not llama-3.1-8b" in other["flag"]
    same = serve(ServeRequest("deepseek-v3", "h800", price_sheet="deepseek-reasoner-2025")).to_dict()["list_prices"]
    assert same["flag"] is None
    table = invoke("serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--price-sheet", "deepseek-reasoner-2025",
                   "--utilization", "0.1").output  # fmt: skip
    assert "flag: the sheet prices deepseek-reasoner" in table and "at 10% utilization" in table


def test_serve_command_bad_input_is_one_line():
    clean_error(invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--tpot-ms", "0.5"), "tokens/s per user")
    clean_error(invoke("serve", "nope", "--gpu", "h100-sxm"), "nope")
    clean_error(invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "3"), "divide")


# ------------------------------------------------------------------ review fixes (prefill layouts, hits, memory)


def test_colocated_prefill_runs_on_the_decode_gpus():
    d = serve(ServeRequest("deepseek-v3", "h800", deployment="colocated", tp=4, dp=8, pp=1)).to_dict()
    assert d["prefill"]["layout"]["gpus"] == d["decode"]["layout"]["gpus"] == 32


def _prefill_at(hit: float, input_len: int = 8192):
    from simulator.model.serve.search import prefill_points

    s = setup_for(ServeRequest("llama-3.1-70b", "h100-sxm", phase="prefill", input_len=input_len))
    return s, prefill_points(s, ((8, None),), ("bf16",), hit, None)


def test_cached_prefix_still_attended_by_the_missed_tokens():
    """With hit share h the missed tokens attend to the cached prefix: causal attention keys scale by 1 - h^2
    ((miss x prefix + miss^2 / 2) / (len^2 / 2)); the linear work is a pass over the missed tokens, 1 - h of it
    where its GEMMs are compute-bound (8,192-token prompts at TP8: within 3%)."""
    (_, cold), (_, warm) = _prefill_at(0.0), _prefill_at(0.5)
    for c, w in zip(cold, warm, strict=True):
        assert c.sequences == w.sequences
        assert w.by_component_s["attention_core"] / c.by_component_s["attention_core"] == pytest.approx(1 - 0.5**2)
        assert w.by_component_s["attention_proj"] / c.by_component_s["attention_proj"] == pytest.approx(0.5, rel=0.03)


def test_a_cache_hit_costs_no_more_than_computing_the_token():
    """A hit is priced at the cheaper of loading its KV over the network and computing it: a review's GPT-2-sized
    model priced a cached token above a computed one. DeepSeek-V3's hits stay at the load (70 KB of MLA cache per token
    over a 50 GB/s link)."""
    from simulator.model.serve.kv_cache import kv_bytes_per_token

    small = serve(ServeRequest("mpt-350m", "h100-sxm", phase="prefill")).to_dict()  # MHA: 98 KB of KV per token
    assert small["usd_per_million_cached_input_tokens"] <= small["usd_per_million_input_tokens"] * (1 + 1e-12)
    v3 = serve(ServeRequest("deepseek-v3", "h800", phase="prefill"))
    s = v3.setup
    load = kv_bytes_per_token(s.model, s.kv_dtype) / s.hw.scale_out_bytes_per_s
    d = v3.to_dict()
    assert d["usd_per_million_cached_input_tokens"] == pytest.approx(d["usd_per_gpu_hour"] / 3600 * load * 1e6)


def test_the_uncached_rate_prices_the_pass_per_missed_token():
    """A 100-token prompt at 99% and 99.9% hits runs the same pass (one token computed either way: at least one a
    prompt), so the input rate is the same; its cost spread over the misses, 1 and 0.1 a prompt, is 10x apart per
    missed token, and the misses' volume at that price costs what the pass does. Before, the rate counted the whole
    tokens the pass computes, so a day of 99.9%-hit prompts priced at it cost 3% less than its passes (a review:
    fleet and serve's prices disagreed)."""
    d = [serve(ServeRequest("llama-3.1-8b", "h100", phase="prefill", input_len=100, cache_hit_rate=h, tp=1)).to_dict()
         for h in (0.99, 0.999)]  # fmt: skip
    p = [x["prefill"] for x in d]
    assert p[0]["input_tokens_per_s_per_gpu"] == pytest.approx(p[1]["input_tokens_per_s_per_gpu"], rel=1e-12)
    for x, h in zip(p, (0.99, 0.999), strict=True):
        assert x["uncached_tokens_per_s_per_gpu"] == pytest.approx(x["input_tokens_per_s_per_gpu"] * (1 - h), rel=1e-12)
    # The pass computes one whole token a prompt either way: computing a token costs the same, and so does a cache hit
    # (the cheaper of loading it and computing it, serve.cached_token_s_per_gpu); a review found the hit priced at the
    # pass spread over the misses, 1.8x computing the token, when one rate did both jobs.
    assert p[0]["computed_tokens_per_s_per_gpu"] == pytest.approx(p[1]["computed_tokens_per_s_per_gpu"], rel=1e-12)
    assert p[0]["cached_token_gpu_s"] == pytest.approx(p[1]["cached_token_gpu_s"], rel=1e-12)
    assert all(x["cached_token_gpu_s"] <= 1.0 / x["computed_tokens_per_s_per_gpu"] * (1 + 1e-12) for x in p)
    assert d[1]["usd_per_million_input_tokens"] == pytest.approx(10 * d[0]["usd_per_million_input_tokens"], rel=1e-9)


def test_a_cache_hit_pass_still_reads_the_weights():
    """A review's 99% hit share ran a prefill pass in 3 ms, faster than reading Llama 70B's weights (every part was
    scaled by 1 - h): the missed tokens' GEMMs at their own M are bound by the weight read, so a pass takes at least
    the weights over the HBM rate, and its fixed per-pass costs (kernel launches) do not shrink."""
    from simulator.model.serve.decode import Candidates, weight_bytes_per_gpu

    (s, cold), (_, hot) = _prefill_at(0.0, 1024), _prefill_at(0.99, 1024)
    c = Candidates(np.array([8]), np.array([1]), np.array([1]), np.array([0]), np.array(["bf16"]))
    weights = float(sum(v[0] for v in weight_bytes_per_gpu(s, c).values()))
    for c0, h in zip(cold, hot, strict=True):
        assert h.seconds >= weights / s.rates.hbm_bytes_per_s
        assert h.by_component_s["kernel_launch"] == pytest.approx(c0.by_component_s["kernel_launch"])


def test_a_prefill_that_does_not_fit_names_what_fills_the_gpu(tmp_path):
    """A review's prompt of 10M tokens was refused as '208 GiB of weights per GPU' with advice to widen the layout: the
    refusal splits the memory (weights, KV cache, activations) and advises by the part that fills the GPU."""
    # a copy stating no context, so a 4M-token prompt reaches the memory check (Llama 3.1's ends at 131,072)
    llama = unbounded_spec(tmp_path, "llama-3.1-70b")
    with pytest.raises(InfeasibleError, match=r"\(weights [\d.]+ GiB, KV cache [\d.]+ GiB, activations.*use shorter prompts"):
        serve(ServeRequest(llama, "h100-sxm", phase="prefill", input_len=4_000_000))
    with pytest.raises(InfeasibleError, match=r"TP1 DP1 PP1 EP1 \(weights [\d.]+ GiB.*allow wider layouts"):
        serve(ServeRequest("deepseek-v3", "h100-sxm", phase="prefill", tp=1, ep=1, pp=1))
    # The activations fill it, and the cache is already FP8: no --kv-dtype fp8 advice (a review).
    with pytest.raises(InfeasibleError, match=r"; use shorter prompts \(--input-len, --workload\)$"):
        serve(ServeRequest(llama, "h100-sxm", phase="prefill", input_len=4_000_000, kv_dtype="fp8"))


def test_prefill_memory_counts_the_prompts_cache():
    """A 131K-token prompt's KV cache (20 GiB for Llama 70B in BF16) does not fit beside TP2's 66 GiB of weights."""
    with pytest.raises(InfeasibleError, match="prefill"):
        serve(ServeRequest("llama-3.1-70b", "h100-sxm", phase="prefill", input_len=131072, tp=2, pp=1,
                           precision="bf16"))  # fmt: skip


def test_prefill_expert_parallelism_divides_the_experts():
    d = serve(ServeRequest("mixtral-8x7b", "h100-sxm", phase="prefill")).to_dict()
    assert 8 % d["prefill"]["layout"]["ep"] == 0


def test_pipeline_parallel_prefill_lets_a_big_model_serve():
    d = serve(ServeRequest("llama-3.1-405b", "a100-40gb")).to_dict()
    assert d["prefill"]["layout"]["pp"] > 1 and d["prefill"]["input_tokens_per_s_per_gpu"] > 0


def test_per_request_dollars_follow_utilization_and_cache_hits():
    full = serve(ServeRequest("llama-3.1-8b", "h100-sxm", cache_hit_rate=0.5)).to_dict()["per_request"]
    half = serve(ServeRequest("llama-3.1-8b", "h100-sxm", cache_hit_rate=0.5, utilization=0.5)).to_dict()["per_request"]
    assert half["usd"] == pytest.approx(2 * full["usd"])
    assert full["cached_input_gpu_s"] > 0
    assert full["gpu_s"] == pytest.approx(full["prefill_gpu_s"] + full["cached_input_gpu_s"] + full["decode_gpu_s"])


def test_layout_and_target_checks():
    with pytest.raises(InputError, match="32 layers"):
        ServeRequest("llama-3.1-8b", "h100-sxm", pp=1000, phase="decode") and serve(
            ServeRequest("llama-3.1-8b", "h100-sxm", pp=1000, phase="decode")
        )
    with pytest.raises(InputError, match="--ttft-ms"):
        serve(ServeRequest("llama-3.1-8b", "h100-sxm", ttft_s=0.5, phase="decode"))


def test_tensor_parallel_decode_across_nodes_pays_the_measured_all_reduce():
    """Qwen3-235B-A22B at TP 16 on H100 spans two 8-GPU nodes: each of a decode step's two all-reduces per layer
    (64 tokens x 4,096 x 2 B = 512 KiB) takes the 2-node nccl-tests time (71.93 us, docs/model.md §4.2), and the
    output names that assumption; an H800 deployment (no table) does not."""
    from simulator.model.comms import Group, collective_s

    request = ServeRequest("qwen3-235b-a22b", "h100-sxm", input_len=122, output_len=5671, tp=16, dp=1,
                           precision="bf16", batch_per_gpu=4)  # fmt: skip
    out = serve(request).to_dict()
    layers = load_model("qwen3-235b-a22b").n_layers
    s = setup_for(request)
    per_call = float(collective_s("all_reduce", 64 * 4096 * 2, Group(16, 1), s.rates.fabric))
    assert per_call == pytest.approx(71.93e-6, rel=1e-9)
    assert out["decode"]["breakdown_s"]["tp_comm"] == pytest.approx(2 * layers * per_call, rel=1e-9)
    names = [a["name"] for a in out["assumptions"]]
    assert "all_reduce_across_nodes" in names
    h800 = serve(ServeRequest("deepseek-v3", "h800", input_len=4096, output_len=1024)).to_dict()
    assert "all_reduce_across_nodes" not in [a["name"] for a in h800["assumptions"]]


def test_a_request_longer_than_a_learned_position_table_is_refused():
    """mpt-7b learns 2,048 positions (its spec's max_position_embeddings); a 100K-token request was costed silently."""
    out = clean_error(invoke("serve", "mpt-7b", "--gpu", "h100", "--input-len", "100000"), "learned position table", "2,048")
    assert "101,024 tokens" in out
    assert invoke("serve", "mpt-7b", "--gpu", "h100", "--input-len", "1024", "--output-len", "1024").exit_code == 0


def test_serve_takes_the_gpu_price_its_tco_message_asks_for():
    """--pricing tco on a GPU without a list purchase price told serve users to pass --gpu-purchase-usd, which serve
    did not have; it takes it now, as estimate does, and the dollars follow the price."""
    args = ("serve", "llama-3.1-8b", "--gpu", "l40s", "--pricing", "tco", "--format", "json")
    clean_error(invoke(*args[:-2]), "--gpu-purchase-usd")
    cheap, dear = (json.loads(invoke(*args, "--gpu-purchase-usd", str(p)).output) for p in (8000, 16000))
    assert 1 < dear["usd_per_gpu_hour"] / cheap["usd_per_gpu_hour"] < 2  # capital doubles, energy does not


def test_a_batch_cap_below_one_sequence_names_the_rule():
    """A review's --max-batch-per-gpu 0.001 said 'no decode layout fits the fields given ():' with empty brackets and
    only the stage-size rule; the refusal names the cap and the whole-sequence rule."""
    clean_error(invoke("serve", "llama-3.1-8b", "--gpu", "h100", "--max-batch-per-gpu", "0.001"),
                "no decode layout fits: batches stop at --max-batch-per-gpu 0.001", "whole number of sequences")  # fmt: skip


def test_a_hit_share_reads_true_in_the_table():
    """':.0%' printed a 99.9% cache-hit rate as 100% (a rate serve refuses) in the table and the report; a share now
    takes the decimals it needs (units.share_text)."""
    from simulator.units import share_text

    assert [share_text(x) for x in (0.0, 0.5625, 0.999, 0.9999, 1.0, 0.004)] == ["0%", "56%", "99.9%", "99.99%", "100%", "0.4%"]
    out = invoke("serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--input-len", "100", "--output-len", "50",
                 "--cache-hit-rate", "0.999").output  # fmt: skip
    assert "cache hits 99.9%" in out.splitlines()[0]


# ------------------------------------------------------------------ review fixes (search floors, --ep co-located)


def test_long_context_decodes_fewer_sequences_than_gpus():
    """A review found a 128K-token request refused on every layout: one sequence's KV cache (128,000 x 516,096 B,
    61.5 GiB) is what one sequence per GPU holds whatever the TP, and the batch grid started at one per GPU. With
    batches below one, a TP group of t GPUs may decode fewer than t sequences (whole ones), and one fits."""
    from simulator.model.serve.search import BATCH_GRID

    assert {2.0**-i for i in range(1, 11)} <= set(BATCH_GRID) and min(BATCH_GRID) == 2.0**-10
    d = serve(ServeRequest("llama-3.1-405b", "l40s", input_len=128_000, output_len=1000, phase="decode")).to_dict()
    x = d["decode"]
    per_group = x["layout"]["tp"] * x["batch_per_gpu"]
    assert x["batch_per_gpu"] < 1 and per_group >= 1 and per_group == int(per_group)
    # the tables count the TP group's whole sequences beside the fraction per GPU
    from simulator.report.serving import decode_batch_text

    assert decode_batch_text(x) == f"{x['batch_per_gpu']:g} sequences per GPU ({per_group:g} per TP{x['layout']['tp']} group)"
    assert decode_batch_text({"batch_per_gpu": 3, "layout": {"tp": 8}}) == "3 sequences per GPU"
    assert d["memory_per_gpu_gib"]["total"] * 2**30 <= load_hardware("l40s").memory_bytes


def test_a_latency_target_may_take_one_sequence_per_tp_group():
    """The fastest decode per user is a whole TP group on one sequence: 8 GPUs on Llama 3.1 70B reach a TPOT the
    one-sequence-per-GPU floor of the old grid could not (its fastest was TPOT 10.44 ms, 95.8 tokens/s; a review)."""
    d = serve(ServeRequest("llama-3.1-70b", "h100-sxm", phase="decode", tpot_s=0.0103)).to_dict()["decode"]
    assert d["tpot_s"] <= 0.0103 and d["batch_per_gpu"] < 1


def test_prefill_tries_one_prompt_per_tp_group():
    """A TP group of t GPUs at 1,024 tokens per GPU took t prompts of 1,024 tokens, so --ttft-ms 100 on Llama 3.1 70B
    was refused although one prompt on TP 2 or more prefills in under 100 ms (a review). prefill_batches adds one
    prompt per pass to each TP degree's batches."""
    from simulator.model.serve.search import PREFILL_TOKENS_PER_GPU, prefill_batches

    assert prefill_batches(1024, 8) == (1, 8, 16, 32, 64, 128, 256)
    assert prefill_batches(100_000, 1) == (1,)  # long prompts: one per pass at every size tried
    assert len(prefill_batches(1024, 1)) == len(PREFILL_TOKENS_PER_GPU)  # 1 is already the 1,024-token batch
    p = serve(ServeRequest("llama-3.1-70b", "h100-sxm", phase="prefill", ttft_s=0.1)).to_dict()["prefill"]
    assert p["ttft_s"] <= 0.1 and p["prompts_per_pass"] == 1 and p["layout"]["tp"] > 1


def test_ep_with_a_colocated_prefill_is_refused():
    """--deployment colocated prefills on the decode layout, so --ep (a prefill deployment's own expert parallelism)
    was silently dropped (a review); it is refused, naming what sets that layout."""
    clean_error(invoke("serve", "deepseek-v3", "--gpu", "h800", "--ep", "8", "--tp", "2", "--deployment", "colocated"),
                "--ep 8 sets a prefill deployment's own expert parallelism")  # fmt: skip
    assert "give --dp" in invoke("serve", "deepseek-v3", "--gpu", "h800", "--ep", "8", "--deployment", "colocated").output
    prefill_only = serve(ServeRequest("deepseek-v3", "h800", phase="prefill", ep=8)).to_dict()
    assert prefill_only["prefill"]["layout"]["ep"] == 8  # a prefill deployment's own


def test_a_colocated_prefill_without_its_decode_is_refused():
    """Co-located, the prefill runs on the decode layout; with --phase prefill there is none, and the run fell back to
    a prefill search of its own without the KV transfer: not the prefill part of --phase both (Llama 3.1 70B on H100,
    TP1 at $0.0845/M input against TP2 x PP2 at $0.1034/M; a metamorphic review). It is refused, as --phase decode
    with --deployment colocated is."""
    clean_error(invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--phase", "prefill", "--deployment", "colocated"),
                "--deployment colocated prefills on the decode layout", "--phase both")  # fmt: skip


def test_the_table_shows_the_tco_rate_beside_the_rental_one():
    """A review found --gpu-purchase-usd without --pricing tco silent in the table (the JSON had tco_cost_usd): the
    price line names the other basis, as estimate's cost block does ('TCO instead')."""
    given = invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--gpu-purchase-usd", "30000").output
    default = invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm").output
    price = next(line for line in given.splitlines() if line.startswith("price"))
    assert "$2.10/GPU-hour" in price and "TCO instead $1.48/GPU-hour" in price
    assert "TCO instead" in default and "TCO instead $1.48" not in default  # the profile's own purchase price
    tco = next(line for line in invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--pricing", "tco").output.splitlines()
               if line.startswith("price"))  # fmt: skip
    assert "TCO instead" not in tco


def test_a_stated_tp_that_is_not_a_power_of_two_may_decode_fewer_sequences_than_gpus():
    """A second review: the sub-one batches were powers of two, so TP5 (Llama 2 13B's 40 heads) could not decode
    fewer than five sequences; with a stated TP the grid holds every k / tp."""
    from simulator.model.serve.search import batch_grid, capped_batches

    assert {k / 5 for k in range(1, 5)} <= set(batch_grid(5)) and set(batch_grid(None)) < set(batch_grid(5))
    assert capped_batches(0.5, 5) == (*sorted(b for b in batch_grid(5) if b < 0.5), 0.5)
    d = serve(ServeRequest("llama-2-13b", "h100-sxm", tp=5, phase="decode", tpot_s=0.005)).to_dict()["decode"]
    assert d["tpot_s"] <= 0.005 and d["batch_per_gpu"] < 1 and d["layout"]["tp"] * d["batch_per_gpu"] == pytest.approx(4)


def test_a_cap_below_one_sequence_per_tp_group_names_the_least_cap():
    clean_error(invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--phase", "decode", "--max-batch-per-gpu", "0.05"),
                "use a --max-batch-per-gpu of at least 0.125 (one sequence per TP8 group)")  # fmt: skip


def test_ep_with_colocated_names_the_dense_model_first():
    clean_error(invoke("serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--deployment", "colocated", "--ep", "8"),
                "is dense (no experts to spread)")  # fmt: skip


def test_a_prefill_breakdown_sums_to_its_pass():
    """_overlapped_parts: a review found DeepSeek-V3's prefill breakdown summing to 1.448 s against a 1.0625 s pass,
    since it carried the whole expert exchange the overlap hides. Its parts now sum to the pass (the TTFT less the KV
    transfer), `ep_comm` is the exposed share and `comm_sm_contention` the fraction of the hidden part the compute
    loses; without an exchange nothing is added."""
    for extra in ({}, {"deployment": "colocated", "dp": 32, "tp": 1}):
        d = serve(ServeRequest("deepseek-v3", "h800", input_len=4096, output_len=1024, **extra)).to_dict()["prefill"]
        parts, gpus = d["breakdown_s"], d["layout"]["gpus"] / d["layout"]["pp"]
        pass_s = d["prompts_per_pass"] * 4096 / (d["input_tokens_per_s_per_gpu"] * gpus)
        assert sum(parts.values()) == pytest.approx(pass_s, rel=1e-9)
        assert 0 < parts["comm_sm_contention"] < parts["routed_experts"]
    dense = serve(ServeRequest("llama-3.1-70b", "h100-sxm", phase="prefill")).to_dict()["prefill"]["breakdown_s"]
    assert "comm_sm_contention" not in dense and dense.get("ep_comm", 0.0) == 0.0


def test_a_colocated_prefill_shares_the_decode_gpus_memory():
    """workspace_bytes and sharing_the_decode_gpu (a review): a co-located DeepSeek-V3 decode took 78.3 GiB of 80
    beside a prefill needing 2.9 GiB more, each phase checked alone. The decode now sets its smallest prefill pass's
    activations aside (one prompt per TP group, as engines profile their prefill chunk before sizing the KV pool) and
    a prefill runs only where its workspace fits beside the decode's pool: both phases report one GPU's memory."""
    from simulator.model.serve.decode import prefill_workspace_bytes
    from simulator.units import GIB

    for model, gpu, lengths in (("llama-3.1-8b", "h100-sxm", (32000, 1000)), ("deepseek-v3", "h800", (4096, 1024))):
        req = ServeRequest(model, gpu, input_len=lengths[0], output_len=lengths[1], deployment="colocated")
        d = serve(req).to_dict()
        tp, hbm = d["decode"]["layout"]["tp"], load_hardware(gpu).memory_bytes / GIB
        reserve = prefill_workspace_bytes(load_model(model), lengths[0], tp) / GIB
        assert d["memory_per_gpu_gib"]["activations"] >= reserve * (1 - 1e-9)
        shared, alone = d["prefill"]["memory_per_gpu_gib"], d["memory_per_gpu_gib"]
        for part in ("weights", "kv_cache", "reserved"):  # one GPU: only the activations take turns
            assert shared[part] == pytest.approx(alone[part])
        assert shared["activations"] >= alone["activations"] and alone["total"] <= shared["total"] <= hbm
        if shared["total"] > alone["total"] + 0.05:
            assert f"{shared['total']:,.1f} GiB while prefilling" in serve_table(d)
        assert setup_for(req).prefill_reserve_tokens == lengths[0]
        assert setup_for(replace(req, deployment="disaggregated")).prefill_reserve_tokens == 0


def test_a_request_longer_than_the_models_context_is_refused():
    """_check_context (a fuzzer priced DeepSeek-V3 at a 1,000,000-token prompt, exit 0): a RoPE model's
    max_position_embeddings, as its config.json states it (DeepSeek-V3 163,840, Llama 3.1 131,072), bounds a request
    as an engine's max_model_len does; the longest request that fits is served."""
    with pytest.raises(InputError, match=r"1,001,024 tokens, longer than deepseek-v3's context of 163,840 tokens"):
        serve(ServeRequest("deepseek-v3", "h800", input_len=1_000_000))
    with pytest.raises(InputError, match="give at most 131,072 tokens in all"):
        serve(ServeRequest("llama-3.1-8b", "h100-sxm", input_len=1024, output_len=200_000))
    fits = serve(ServeRequest("llama-3.1-8b", "h100-sxm", input_len=131_072 - 1024, output_len=1024)).to_dict()
    assert fits["decode"]["output_tokens_per_s_per_gpu"] > 0
    clean_error(invoke("serve", "deepseek-v3", "--gpu", "h800", "--input-len", "1000000"), "163,840", error="prefix")


def test_a_prefill_shows_its_kv_pool_as_the_decode_does():
    """_prefill_memory_shown (a review): the prefill block folded a pool's unused share into kv_cache, the decode's
    split it. Both now give kv_cache and kv_pool_unused; a disaggregated prefill's cache is what its pass writes
    (prompts x input x KV bytes per token x its TP shard, at most the pool)."""
    req = ServeRequest("llama-3.1-70b", "h100-sxm", deployment="colocated", kv_memory_fraction=0.5)
    d = serve(req).to_dict()
    pre, dec = d["prefill"]["memory_per_gpu_gib"], d["memory_per_gpu_gib"]
    assert pre["kv_cache"] == pytest.approx(dec["kv_cache"]) and pre["kv_pool_unused"] == pytest.approx(dec["kv_pool_unused"])
    alone = serve(ServeRequest("llama-3.1-70b", "h100-sxm", phase="prefill", kv_memory_fraction=0.5, tp=8)).to_dict()
    p = alone["prefill"]
    written = p["prompts_per_pass"] * 1024 * kv_bytes_per_token(load_model("llama-3.1-70b"), "bf16") / 8 / p["layout"]["pp"]
    assert p["memory_per_gpu_gib"]["kv_cache"] * GIB == pytest.approx(written, rel=1e-9)
    assert p["memory_per_gpu_gib"]["kv_pool_unused"] == pytest.approx(p["memory_per_gpu_gib"]["kv_cache"])


def test_an_alibi_model_is_not_bounded_by_its_training_length():
    """ModelSpec.served_positions: ALiBi extrapolates, so an imported MPT config's max_seq_len (2,048) does not refuse a longer
    request (a review found the RoPE refusal and advice given to it); a learned table still does."""
    from tests.cli_support import ROOT

    mpt = str(ROOT / "tests" / "data" / "hf_configs" / "mpt.json")
    assert load_model(mpt).position_embedding == "alibi"
    d = serve(ServeRequest(mpt, "h100-sxm", input_len=4096, output_len=256)).to_dict()
    assert d["decode"]["output_tokens_per_s_per_gpu"] > 0
    with pytest.raises(InputError, match="learned position table of 2,048"):
        serve(ServeRequest("mpt-7b", "h100-sxm", input_len=4096, output_len=256))
