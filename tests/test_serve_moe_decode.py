"""Decode terms of MoE and MLA layers (docs/model.md §16.3, §16.5, §16.7): the kernels an MLA and a MoE layer run,
the TP all-reduce after a MoE, no EP exchange without attention DP, two overlapped micro-batches and the GPU time a
co-located prefill holds under attention DP."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from cli_support import invoke

from simulator.inputs.assumptions import DEFAULT as DEFAULT_ASSUMPTIONS
from simulator.inputs.catalog import load_model
from simulator.model.comms import Group, collective_s
from simulator.model.serve import decode
from simulator.model.serve.decode import Candidates, layer_step_s, step_s
from simulator.run.serve import ServeRequest, colocated_prefill_hold, setup_for
from simulator.units import BYTES_PER_ELEMENT


def one(tp=1, dp=1, batch=1.0, precision="fp8") -> Candidates:
    return Candidates(np.array([tp], float), np.array([dp], float), np.array([1.0]), np.array([batch], float),
                      np.array([precision]))  # fmt: skip


def v3_setup(**kw):
    return setup_for(ServeRequest("deepseek-v3", "h200", input_len=1024, output_len=1024, **kw))


def test_extra_kernel_counts():
    """blog1's decode layer: +2 latent RMSNorms and the split W_UK / W_UV batched GEMMs for MLA (3); top-k, permute,
    indexed reduction and the routed activation for MoE (4); none for a dense GQA model."""
    assert decode.MLA_EXTRA_KERNELS_PER_LAYER == 3
    assert decode.MOE_EXTRA_KERNELS_PER_LAYER == 4
    v3, llama = load_model("deepseek-v3"), load_model("llama-3.1-70b")
    six = decode.ELEMENTWISE_KERNELS_PER_LAYER
    assert decode.extra_kernels(v3, moe_layer=True) == six + 3 + 4
    assert decode.extra_kernels(v3, moe_layer=False) == six + 3
    assert decode.extra_kernels(llama, moe_layer=False) == six


def test_elementwise_charges_the_extra_kernels():
    s = v3_setup()
    c = one(batch=4)
    moe, dense = layer_step_s(s, c, "moe", 1.0)["elementwise"][0], layer_step_s(s, c, "dense", 1.0)["elementwise"][0]
    # Same bytes (the same d_model, and the dense layer's wider FFN activation only adds), four more kernels.
    ffn_bytes = 4 * decode.ACTIVATION_BYTES_PER_FFN_ELEMENT * (18432 - 2048)  # dense_ffn_down k - shared_experts_down k
    assert moe - dense == pytest.approx(4 * s.rates.kernel_overhead_s - ffn_bytes / s.rates.hbm_bytes_per_s, rel=1e-9)


def test_moe_layer_pays_two_tp_all_reduces():
    """Attention TP: an all-reduce after attention and one after the MoE (blog1 Module9, Module13)."""
    s = v3_setup()
    c = one(tp=8, batch=0.5)
    tokens = 8 * 0.5
    ar = collective_s("all_reduce", tokens * s.model.d_model * BYTES_PER_ELEMENT["bf16"], Group(c.tp, 1), s.rates.fabric)
    for kind in ("moe", "dense"):
        assert layer_step_s(s, c, kind, 1.0)["tp_comm"][0] == pytest.approx(2 * float(ar[0]))
    assert layer_step_s(s, one(tp=1, dp=8), "moe", 1.0)["tp_comm"][0] == 0.0


def test_no_ep_exchange_without_attention_dp():
    """dp 1: every GPU holds the group's tokens after the attention all-reduce; no dispatch or combine."""
    s = v3_setup()
    assert layer_step_s(s, one(tp=8, dp=1, batch=1), "moe", 1.0)["ep_comm"][0] == 0.0
    assert layer_step_s(s, one(tp=1, dp=8, batch=1), "moe", 1.0)["ep_comm"][0] > 0.0
    assert layer_step_s(s, one(tp=2, dp=4, batch=1), "moe", 1.0)["ep_comm"][0] > 0.0


def test_two_micro_batches_pay_weights_twice_and_hide_the_exchange():
    """The split runs every kernel twice at half the sequences; each MoE layer's dispatch and combine hide under their
    own windows (two_batch_exposed_s); the step takes the faster of one and two micro-batches."""
    s = v3_setup()
    c = one(tp=1, dp=64, batch=64)
    single = decode._micro_batches_s(s, c, 1)
    half = decode._micro_batches_s(s, one(tp=1, dp=64, batch=32), 2)
    # Two halves read the attention weights twice: more than one pass over all the sequences, less than twice it.
    assert single["attention_proj"][0] < half["attention_proj"][0] < 2 * single["attention_proj"][0]
    assert half["micro_batches"][0] == 2.0 and single["micro_batches"][0] == 1.0
    compute = float((sum(half[k] for k in decode.COMPUTE_PARTS) + half["mtp_draft"])[0])
    moe_layers = sum(1 for k in decode.layer_kinds(s.model) if k == "moe")
    overlap = decode._layer_parts(s, one(tp=1, dp=64, batch=32), "moe", 1.0)[1]
    exposed = 2 * moe_layers * decode.two_batch_exposed_s(overlap)[0]
    assert half["ep_comm_exposed"][0] == pytest.approx(exposed)
    one_ep = moe_layers * layer_step_s(s, c, "moe", 1.0)["ep_comm"][0]
    assert single["ep_comm_exposed"][0] == pytest.approx(one_ep)  # one micro-batch: the exchange is exposed
    expected_total = compute + half["tp_comm"][0] + half["ep_comm_exposed"][0] + decode.DECODE_STEP_OVERHEAD_S
    assert half["total"][0] == pytest.approx(expected_total)
    best = step_s(s, c)
    assert best["total"][0] == pytest.approx(min(single["total"][0], half["total"][0]))


def test_two_batch_overlap_hides_each_exchange_under_its_own_window():
    """docs/model.md §16.5, DeepSeek's decode schedule (deepseek-ai/profile-data) and SGLang's
    `_compute_moe_deepseek_blog_decode`: exposed = max(0, dispatch - dispatch window) + max(0, combine - combine
    window); the routed experts hide nothing."""
    a = np.array
    ov = {"dispatch_s": a([1.0, 1.0, 3.0]), "combine_s": a([2.0, 2.0, 1.0]),
          "dispatch_window_s": a([0.5, 2.0, 1.0]), "combine_window_s": a([1.5, 3.0, 5.0])}  # fmt: skip
    assert decode.two_batch_exposed_s(ov).tolist() == pytest.approx([0.5 + 0.5, 0.0, 2.0])
    # spare time in one window does not hide the other exchange (3rd entry: combine window 4 s spare, dispatch 2 s out)
    s = v3_setup()
    c = one(tp=1, dp=64, batch=32)
    parts, ov = decode._layer_parts(s, c, "moe", 1.0)
    # the windows: the shared experts and the attention GEMMs before the attention kernel (W_UK, half the absorbed
    # kv_up) for the dispatch; the attention kernel, W_UV, the output projection and the router for the combine; the
    # elementwise kernels but the MoE's own four split evenly between them
    gemm = {}
    for g in decode.layer_gemms(s.model, "moe"):
        if not g.routed:
            n, k = decode._local_width(g, c.tp.astype(float))
            gemm[g.name] = float(decode._gemm_s(s, c, c.tp * c.batch, n, k, g, "moe")[0])
    windowed = (float(parts["elementwise"][0]) - decode.MOE_EXTRA_KERNELS_PER_LAYER * s.rates.kernel_overhead_s) / 2
    pre = gemm["q_down"] + gemm["q_up"] + gemm["kv_down"] + gemm["kv_up"] / 2
    pre += gemm["shared_experts_up"] + gemm["shared_experts_down"]
    post = float(parts["attention_core"][0]) + gemm["kv_up"] / 2 + gemm["out_proj"] + gemm["router"]
    assert ov["dispatch_window_s"][0] == pytest.approx(pre + windowed)
    assert ov["combine_window_s"][0] == pytest.approx(post + windowed)
    assert ov["dispatch_s"][0] + ov["combine_s"][0] == pytest.approx(parts["ep_comm"][0])
    assert ov["combine_s"][0] > ov["dispatch_s"][0]  # BF16 combine against the FP8 dispatch


def test_low_latency_exchange_splits_into_dispatch_and_combine():
    """moe_low_latency_exchange_s: one direction = latency + max(remote bytes / NIC, local bytes / NVLink), the
    dispatch at its bytes per element (FP8: 1), the combine at its own (BF16: 2)."""
    from simulator.model.comms import moe_low_latency_exchange_s

    fabric = v3_setup().rates.fabric
    group = Group(np.array([72.0]), 1)
    for bytes_per_elem in (1.0, 2.0):
        one_way = moe_low_latency_exchange_s(128.0, 8, 7168, bytes_per_elem, group, fabric)
        remote = 128 * 8 * (1 - 8 / 72) * 7168 * bytes_per_elem / fabric.scale_out_bytes_per_s
        local = 128 * 8 * 7 / 72 * 7168 * bytes_per_elem / fabric.scale_up_bytes_per_s
        assert float(one_way[0]) == pytest.approx(fabric.exchange_latency_s + max(remote, local))
    assert float(moe_low_latency_exchange_s(128.0, 8, 7168, 1.0, Group(np.array([1.0]), 1), fabric)[0]) == 0.0


def test_one_sequence_is_never_split_and_no_overlap_means_one_micro_batch():
    s = v3_setup()
    assert step_s(s, one(tp=1, dp=64, batch=1))["micro_batches"][0] == 1.0
    no_overlap = replace(s, ep_overlap=False)
    t = step_s(no_overlap, one(tp=1, dp=64, batch=64))
    assert t["micro_batches"][0] == 1.0
    assert t["total"][0] == pytest.approx(decode._micro_batches_s(no_overlap, one(tp=1, dp=64, batch=64), 1)["total"][0])


@pytest.mark.parametrize(
    ("dp", "p", "expected"),
    [
        (1, 0.0625, 1.0),  # no attention DP: a prefill holds only its own GPUs
        (8, 0.0625, (1 - (1 - 0.0625) ** 8) / 0.0625),  # TRT-LLM H200 max-throughput: 128 sequences, 2,048 outputs
        (8, 1.0, 1.0),  # every group prefills every step
        (8, 1e-6, 8.0),  # rare prompts prefill alone and hold all 8 groups
    ],
)
def test_colocated_prefill_hold(dp, p, expected):
    assert colocated_prefill_hold(dp, p) == pytest.approx(expected, rel=1e-5)


def test_colocated_attention_dp_prefill_costs_the_hold():
    req = ServeRequest("deepseek-v3", "h200", input_len=1024, output_len=2048, phase="both", deployment="colocated",
                       precision="fp8", tp=1, dp=8, num_gpus=8, batch_per_gpu=128)  # fmt: skip
    from simulator.run.serve import serve

    d = serve(req).to_dict()
    rate = d["prefill"]["input_tokens_per_s_per_gpu"]
    hold = colocated_prefill_hold(8, 128 / 2048)
    assert d["per_request"]["prefill_gpu_s"] == pytest.approx(hold * 1024 / rate)
    # The $/M of uncached input charges the same hold (a review found it priced at the pass's rate alone, 1.7x under
    # what per_request charged the same prompt), and the prefill document shows it.
    assert d["prefill"]["gpu_time_held_per_prefill"] == pytest.approx(hold, rel=1e-12) and hold > 1.5
    per_token_usd = d["per_request"]["prefill_gpu_s"] / 1024 * d["usd_per_gpu_hour"] / 3600
    assert d["usd_per_million_input_tokens"] == pytest.approx(per_token_usd * 1e6, rel=1e-9)
    apart = serve(replace(req, deployment="disaggregated")).to_dict()
    assert apart["prefill"]["gpu_time_held_per_prefill"] == 1.0


# --------------------------------------------------------------------------- the engine's batch cap


def test_capped_batches_stop_at_the_cap_and_include_it():
    from simulator.model.serve.search import BATCH_GRID, capped_batches

    assert capped_batches(None) == tuple(BATCH_GRID)
    capped = capped_batches(100.0)
    assert max(capped) == 100.0 and 100.0 in capped
    assert all(b < 100.0 for b in capped[:-1])
    assert set(capped[:-1]) == {b for b in BATCH_GRID if b < 100}


def test_serve_keeps_the_decode_batch_within_the_engine_cap():
    from simulator.run.serve import ServeRequest, serve, serve_document

    free = serve_document(serve(ServeRequest("deepseek-v3", "h800", phase="decode", num_gpus=64, tp=1, precision="fp8")))
    capped = serve_document(
        serve(ServeRequest("deepseek-v3", "h800", phase="decode", num_gpus=64, tp=1, precision="fp8", max_batch_per_gpu=64))
    )
    assert free["decode"]["batch_per_gpu"] > 64
    assert capped["decode"]["batch_per_gpu"] <= 64


def test_a_batch_above_the_cap_is_refused_with_both_numbers():
    from simulator.errors import InputError
    from simulator.run.serve import ServeRequest

    with pytest.raises(InputError, match=r"--batch-per-gpu 300 is above --max-batch-per-gpu 256"):
        ServeRequest("deepseek-v3", "h800", batch_per_gpu=300, max_batch_per_gpu=256)


def test_validation_applies_a_stated_per_rank_cap_per_attention_replica():
    """sglang-deepseek-v3-h100-fp8-2000-decode states --cuda-graph-bs 256 with two-batch overlap (128 tokens per
    DeepEP dispatch): under attention DP a rank is a GPU, so the cap is 256 sequences per GPU. Cases that fix the
    concurrency keep it (the batch is given)."""
    from simulator.analysis.serve_validation import request_for
    from simulator.inputs.serving_cases import serving_cases

    cases = {c.id: c for c in serving_cases()}
    assert request_for(cases["sglang-deepseek-v3-h100-fp8-2000-decode"]).max_batch_per_gpu == 256
    assert request_for(cases["sglang-deepseek-v3-h100-fp8-2000-decode"]).max_replica_sequences is None
    assert request_for(cases["trtllm-deepseek-r1-h200-fp8-1024-2048-maxtput"]).max_batch_per_gpu is None
    # Without attention DP and with TP searched, the cap bounds a TP group's sequences, not a GPU's.
    sglang = cases["sglang-deepseek-v3-h100-fp8-2000-decode"]
    tp_searched = sglang.model_copy(update={"layout": sglang.layout.model_copy(update={"attention_dp": False})})
    req = request_for(tp_searched)
    assert (req.max_batch_per_gpu, req.max_replica_sequences) == (None, 256)
    tp8 = sglang.model_copy(update={"layout": sglang.layout.model_copy(update={"attention_dp": False, "tp": 8})})
    assert (request_for(tp8).max_batch_per_gpu, request_for(tp8).max_replica_sequences) == (32, None)


def test_prefill_hidden_exchange_costs_the_sms_deepep_normal_kernels_hold():
    """docs/model.md §16.5: a prefill pass of compute C and EP exchange E overlapped: C + E - hidden + f x hidden,
    hidden = min(E, eta C), f = comm_sm_fraction (DeepEP's normal kernels run on SMs of their own)."""
    from types import SimpleNamespace

    from simulator.inputs.assumptions import DEFAULT
    from simulator.model.serve.search import _overlapped_parts

    def pass_s(compute, exchange, overlap=True):
        parts = _overlapped_parts({"routed_experts": compute, "ep_comm": exchange},
                                  SimpleNamespace(ep_overlap=overlap, assumptions=DEFAULT))  # fmt: skip
        return sum(parts.values()), parts

    compute, exchange = 1.0, 0.5
    hidden = min(exchange, DEFAULT.overlap_efficiency * compute)
    total, parts = pass_s(compute, exchange)
    assert total == pytest.approx(compute + DEFAULT.comm_sm_fraction * hidden)
    assert parts["ep_comm"] == pytest.approx(exchange - hidden)  # the exposed share, as a training breakdown's
    assert parts["comm_sm_contention"] == pytest.approx(DEFAULT.comm_sm_fraction * hidden)
    # more exchange than the window: the rest is exposed, the window pays the SMs
    assert pass_s(1.0, 2.0)[0] == pytest.approx(3.0 - 0.9 + DEFAULT.comm_sm_fraction * 0.9)
    assert pass_s(1.0, 0.5, overlap=False) == (1.5, {"routed_experts": 1.0, "ep_comm": 0.5})


def test_a_cap_above_the_batch_grid_does_not_widen_it():
    from simulator.model.serve.search import BATCH_GRID, capped_batches

    assert capped_batches(10 * BATCH_GRID[-1]) == tuple(BATCH_GRID)


def test_a_replica_cap_bounds_tp_times_batch_when_tp_is_searched():
    from simulator.model.serve.search import Given, decode_candidates

    s = setup_for(ServeRequest("llama-3.1-70b", "h100-sxm", phase="decode"), DEFAULT_ASSUMPTIONS)
    c = decode_candidates(s, Given(max_replica_sequences=64.0), ("bf16",))
    assert (c.tp * c.batch <= 64.0).all() and (c.tp > 1).any()


def test_a_dense_model_colocated_with_dp_replicas_holds_no_extra_prefill():
    """The hold comes from MoE layers making every attention-DP group wait; dense replicas run apart."""
    from simulator.run.serve import serve, serve_document

    req = ServeRequest("llama-3.1-8b", "h100-sxm", dp=8, tp=1, batch_per_gpu=4, deployment="colocated")
    d = serve_document(serve(req))
    assert d["per_request"]["prefill_gpu_s"] == pytest.approx(req.input_len / d["prefill"]["input_tokens_per_s_per_gpu"])


def test_validation_passes_a_deployments_stated_redundant_experts():
    """sgl-project/sglang#6017's decode command sets --ep-num-redundant-experts 32; the case records it and the
    request carries it (at that batch the expert GEMMs are compute-bound, so the extra slots move no time)."""
    from simulator.analysis.serve_validation import request_for
    from simulator.inputs.serving_cases import serving_cases

    cases = {c.id: c for c in serving_cases()}
    assert request_for(cases["sglang-deepseek-v3-h100-fp8-2000-decode"]).redundant_experts == 32
    assert request_for(cases["trtllm-deepseek-r1-h200-fp8-1024-2048-maxtput"]).redundant_experts == 0


def test_ffn_activation_width_counts_ffn_down_projections_only():
    """The decode elementwise bytes per FFN element use the inner width of the non-routed FFN down projections:
    DeepSeek-V3's dense layer 18,432 (d_ff), its MoE layer the shared expert's 2,048; MLA's q_down and kv_down
    (attention projections that also end in _down) do not count, nor do the routed experts."""
    from simulator.model.flops import layer_gemms

    v3 = load_model("deepseek-v3")
    assert decode.ffn_activation_width(layer_gemms(v3, "dense")) == v3.d_ff
    assert decode.ffn_activation_width(layer_gemms(v3, "moe")) == v3.moe.shared_width == 2048
    llama = load_model("llama-3.1-70b")
    assert decode.ffn_activation_width(layer_gemms(llama, "dense")) == llama.d_ff


def test_no_two_batch_overlap_runs_one_micro_batch_with_the_exchange_exposed():
    """--no-two-batch-overlap: an engine that does not hide the MoE exchange under a second micro-batch (TensorRT-LLM's
    2025 DeepSeek recipe, docs/model.md §16.5). Decode runs one micro-batch with the whole exchange exposed, and the
    option is echoed in the request and the assumptions."""
    layout = ("--tp", "1", "--dp", "32", "--pp", "1", "--batch-per-gpu", "128")
    request = ("--input-len", "2000", "--output-len", "100", "--phase", "decode", "--precision", "fp8")
    args = ("serve", "deepseek-v3", "--gpu", "h100-sxm", *layout, *request, "--format", "json")
    on = json.loads(invoke(*args).output)
    off = json.loads(invoke(*args, "--no-two-batch-overlap").output)
    assert on["decode"]["micro_batches"] == 2 and off["decode"]["micro_batches"] == 1
    assert off["decode"]["breakdown_s"]["ep_comm_exposed"] > on["decode"]["breakdown_s"]["ep_comm_exposed"]
    assert off["decode"]["output_tokens_per_s_per_gpu"] < on["decode"]["output_tokens_per_s_per_gpu"]
    assert (on["request"]["two_batch_overlap"], off["request"]["two_batch_overlap"]) == (True, False)
    assert {a["name"]: a["value"] for a in off["assumptions"]}["two_batch_overlap"] is False
    table = invoke(*args[:-2], "--no-two-batch-overlap").output.splitlines()[0]
    assert ", no two-batch overlap, " in table and "overlap" not in invoke(*args[:-2]).output.splitlines()[0]


def test_trtllm_deepseek_cases_state_their_engine_overlaps_no_second_micro_batch():
    """The TensorRT-LLM DeepSeek-R1 cases are predicted without two-batch overlap, each saying why (its blog3 names
    'More communication overlap' as future work), and so are SGLang's GB200 decode cases (single-batch overlap); the
    DeepSeek and SGLang H100 cases keep it."""
    from simulator.inputs.serving_cases import serving_cases

    cases = serving_cases()
    trtllm = [c for c in cases if c.id.startswith("trtllm-deepseek")]
    assert len(trtllm) == 5
    for c in trtllm:
        assert c.two_batch_overlap is False
        assert any("More communication overlap" in a for a in c.assumptions), c.id
    sbo = [c for c in cases if c.id.startswith("sglang-deepseek-r1-gb200") and c.phase == "decode"]
    assert len(sbo) == 2  # SGLang's GB200 decode ran single-batch overlap (sgl-project/sglang issue #10903)
    for c in sbo:
        assert c.two_batch_overlap is False and any("single-batch-overlap" in a for a in c.assumptions), c.id
    assert all(c.two_batch_overlap for c in cases if c.id.startswith(("sglang-deepseek-v3-h100", "deepseek-prod")))


@pytest.mark.parametrize("value", ["false", None, 0])
def test_two_batch_overlap_must_be_a_boolean(value):
    """The API takes true or false, not a string that reads like one (which would run with the overlap on)."""
    from simulator import api
    from simulator.errors import InputError

    with pytest.raises(InputError, match="two_batch_overlap must be true or false"):
        api.serve("deepseek-v3", "h800", phase="decode", two_batch_overlap=value)


def test_a_colocated_moe_layout_is_chosen_for_the_service_not_the_decode_alone():
    """A review found `serve deepseek-v3 --gpu b200 --deployment colocated` at 73 tokens/s per user (InferenceMAX's
    8K/1K shape) picking DP 1,024 for its decode throughput (518 tokens/s per GPU) while each prompt then held the whole
    stage: 7.8 output tokens/s per GPU with prefill. The co-located pick maximizes the service over a shortlist that
    holds the decode-best layout, so it serves at least as much as that layout does, here about ten times as much."""
    from simulator.model.serve.search import best_decode
    from simulator.run.serve import _hold_at, _prefill, per_request, serve

    req = ServeRequest("deepseek-v3", "b200", workload="inferencemax-8k1k", precision="fp8", deployment="colocated",
                       min_tokens_per_s_per_user=73)  # fmt: skip
    e = serve(req)
    d = e.to_dict()
    decode_best = best_decode(e.decode, 73)
    p = _prefill(req, e.setup, ("fp8",), e.decode, decode_best)
    rate = float(e.decode.tokens_per_s_per_gpu[decode_best])
    before = per_request(req, e.setup, p, rate, 1.0, _hold_at(req, e.setup, e.decode, decode_best))
    served = d["per_request"]["output_tokens_per_s_per_gpu"]
    assert e.decode.candidates.dp[decode_best] >= 512 and before["output_tokens_per_s_per_gpu"] < 10
    assert served >= before["output_tokens_per_s_per_gpu"] and served > 50
    assert d["decode"]["tokens_per_s_per_user"] >= 73
    assert any(a["name"] == "colocated_layout" for a in d["assumptions"])
    # disaggregated and dense requests keep the decode-best layout
    apart = serve(replace(req, deployment="disaggregated"))
    assert apart.decode_index == best_decode(apart.decode, 73)
    assert not any(a["name"] == "colocated_layout" for a in apart.to_dict()["assumptions"])


def test_a_colocated_ttft_target_searches_past_the_shortlist_and_names_the_quickest():
    """A second review found --ttft-ms 100 refused ('the quickest ... gives 129 ms') although TP8 layouts prefill in
    49 ms: the shortlist held none of them. The pick now widens to the next layouts until one meets the target, and a
    refusal names the quickest prefill over every layout tried."""
    from simulator.errors import InfeasibleError
    from simulator.run.serve import serve

    req = ServeRequest("deepseek-v3", "h800", deployment="colocated", ttft_s=0.1)
    d = serve(req).to_dict()
    assert d["prefill"]["ttft_s"] <= 0.1
    with pytest.raises(InfeasibleError, match=r"no co-located layout's prefill reaches TTFT 10 ms .* gives 48\.1 ms"):
        serve(replace(req, ttft_s=0.01))


def test_the_table_says_a_prefill_holds_the_stage_only_where_it_does():
    """colocated_prefill_hold is exactly 1 without attention DP (a second review found 1.0000000000000127 printed as
    'holds the stage 1.00x')."""
    from tests.cli_support import invoke

    assert colocated_prefill_hold(1, 0.3) == 1.0 and colocated_prefill_hold(1.0, 1e-9) == 1.0
    held = invoke("serve", "deepseek-v3", "--gpu", "h800", "--deployment", "colocated").output
    assert "holds the stage 1.68x its pass (co-located)" in held
    tp_only = invoke("serve", "deepseek-v3", "--gpu", "h800", "--deployment", "colocated", "--input-len", "32000",
                     "--output-len", "1000").output  # fmt: skip
    assert "DP1 " in tp_only and "holds the stage" not in tp_only
