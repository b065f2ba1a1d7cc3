"""The serving formulas against hand values, one test per formula (docs/model.md §16): a mutation test of the serve
model (one-line changes to each formula, 2026-12) found these changes survived every test, or were caught only by a
test that names another formula."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.inputs.catalog import load_hardware, load_model
from simulator.model.serve.decode import (
    Candidates,
    _attention_core_s,
    prefill_workspace_bytes,
    throughput,
    weight_bytes_per_gpu,
    workspace_bytes,
)
from simulator.model.serve.kv_cache import kv_bytes_per_token
from simulator.model.serve.search import Given, PrefillPoint, best_prefill, eligible, prefill_expert_parallel, search_decode
from simulator.run.serve import ServeRequest, colocated_prefill_hold, request_precisions, serve, setup_for
from simulator.units import GIB


def one(tp=1, dp=1, pp=1, batch=1, precision="bf16") -> Candidates:
    return Candidates(np.array([tp], float), np.array([dp], float), np.array([pp], float), np.array([batch], float),
                      np.array([precision]))  # fmt: skip


def test_workspace_bytes_is_fp32_logits_plus_bf16_ffn_activation():
    """A decode step's activations: the TP group's tokens x (fp32 logits of its vocabulary shard + the widest FFN
    activation, gate and up, in BF16). Llama 3.1 70B at TP8, 64 sequences per GPU: 512 tokens x (128,256 / 8 x 4 B +
    2 x 28,672 / 8 x 2 B) = 40,173,568 B."""
    s = setup_for(ServeRequest("llama-3.1-70b", "h100-sxm", phase="decode"))
    assert s.prefill_reserve_tokens == 0
    assert workspace_bytes(s, one(tp=8, batch=64))[0] == 512 * (128256 / 8 * 4 + 2 * 28672 / 8 * 2) == 40_173_568


def test_prefill_workspace_bytes_is_hidden_in_and_out_plus_the_ffn_shard():
    """A prefill pass's activations on one GPU: its TP group's tokens x (2 x d_model + d_ff / tp) in BF16. Llama 3.1
    8B (d_model 4,096, d_ff 14,336), 32,000 tokens: 1,441,792,000 B at TP1, 32,000 x (8,192 + 7,168) x 2 at TP2."""
    model = load_model("llama-3.1-8b")
    assert prefill_workspace_bytes(model, 32_000, 1) == 32_000 * (2 * 4096 + 14336) * 2 == 1_441_792_000
    assert prefill_workspace_bytes(model, 32_000, 2) == 32_000 * (8192 + 7168) * 2


def test_gqa_decode_attention_flops_are_four_head_dims_per_key_and_head():
    """Where the FLOPs bind (a rate made tiny here; GQA decode is bandwidth-bound on real GPUs), a layer's attention
    core is batch x context x 4 x head_dim x heads FLOPs (QK and AV, 2 FLOPs a multiply-add) over the rate, plus the
    kernel overhead."""
    s = setup_for(ServeRequest("llama-3.1-70b", "h100-sxm", input_len=1000, output_len=2, phase="decode"))
    s = replace(s, rates=replace(s.rates, attention_flop_per_s=1e6))
    c = one(tp=8, batch=64)
    flops = 64 * 1.0 * s.read_positions * 4 * 128 * 64
    assert _attention_core_s(s, c, 1.0)[0] == pytest.approx(flops / 1e6 + s.rates.kernel_overhead_s, rel=1e-12)


def test_mtp_multiplies_output_per_gpu_and_per_user():
    """throughput: with MTP a step yields tokens_per_step per sequence (1 + 0.85 at depth 1), for the GPU's batch
    and for each user: DeepSeek-V3, 32 sequences per GPU, PP2, 10 ms stages: 32 x 1.85 / 0.02 and 1.85 / 0.02."""
    s = setup_for(ServeRequest("deepseek-v3", "h800", mtp_depth=1, mtp_accept=0.85))
    assert s.tokens_per_step == pytest.approx(1.85)
    per_gpu, per_user = throughput(s, one(tp=1, pp=2, batch=32), np.array([0.01]))
    assert per_gpu[0] == pytest.approx(32 * 1.85 / (2 * 0.01)) and per_user[0] == pytest.approx(1.85 / (2 * 0.01))


def test_disaggregated_ttft_is_the_pass_plus_the_kv_transfer():
    """TTFT of a disaggregated prefill: its pass plus the prompt's KV cache over the GPU's scale-out link (1,024
    tokens x 327,680 B for Llama 3.1 70B); co-located there is no transfer."""
    hw = load_hardware("h100-sxm")
    p = serve(ServeRequest("llama-3.1-70b", "h100-sxm", input_len=1024, phase="prefill")).to_dict()["prefill"]
    transfer = 1024 * kv_bytes_per_token(load_model("llama-3.1-70b"), "bf16") / hw.scale_out_bytes_per_s
    assert p["ttft_s"] - sum(p["breakdown_s"].values()) == pytest.approx(transfer, rel=1e-9)
    co = serve(ServeRequest("llama-3.1-70b", "h100-sxm", input_len=1024, deployment="colocated")).to_dict()["prefill"]
    assert co["ttft_s"] == pytest.approx(sum(co["breakdown_s"].values()), rel=1e-12)


def test_the_computed_rate_counts_every_ep_replicas_prompts():
    """With EP 8 a pass holds prompts of 8 replicas: the computed-token rate is the input rate x the missed share of a
    prompt (2,048 of 4,096 at 50% hits), not 1/8 of it."""
    p = serve(ServeRequest("deepseek-v3", "h800", input_len=4096, phase="prefill", ep=8, cache_hit_rate=0.5)).to_dict()
    p = p["prefill"]
    assert p["layout"]["ep"] == 8
    assert p["computed_tokens_per_s_per_gpu"] / p["input_tokens_per_s_per_gpu"] == pytest.approx(2048 / 4096, rel=1e-12)


def test_a_speed_target_met_exactly_counts_as_met():
    """eligible: a candidate whose tokens/s per user equals the target is eligible (>=), and the search picks the
    same candidate at that target."""
    req = ServeRequest("llama-3.1-70b", "h100-sxm", phase="decode")
    s = setup_for(req)
    found = search_decode(s, Given(whole_sequences=True), request_precisions(req, s.hw))
    ok = eligible(found, None)
    i = int(np.flatnonzero(ok)[np.argmax(found.tokens_per_s_per_gpu[ok])])
    assert eligible(found, float(found.tokens_per_s_per_user[i]))[i]


def test_a_requests_total_rate_is_its_tokens_over_its_gpu_time():
    """per_request: total tokens/s per GPU = (input + output) / GPU-seconds of the request; output tokens/s = output
    / GPU-seconds (validate serve's total-token figures use the first)."""
    r = serve(ServeRequest("llama-3.1-70b", "h100-sxm", input_len=1024, output_len=1024)).to_dict()["per_request"]
    assert r["total_tokens_per_s_per_gpu"] == pytest.approx(2048 / r["gpu_s"], rel=1e-12)
    assert r["output_tokens_per_s_per_gpu"] == pytest.approx(1024 / r["gpu_s"], rel=1e-12)


def test_the_colocated_hold_counts_mtp_tokens_per_step():
    """_hold_at: a DP group admits tp x batch x tokens_per_step / output prompts a step; with MTP (1.85 tokens a step)
    sequences finish sooner and admit more. The hold reported is colocated_prefill_hold of that rate."""
    d = serve(ServeRequest("deepseek-v3", "h800", input_len=4096, output_len=1024, deployment="colocated", dp=32, tp=1,
                           mtp_depth=1, mtp_accept=0.85)).to_dict()  # fmt: skip
    x = d["decode"]
    admissions = x["layout"]["tp"] * x["batch_per_gpu"] * 1.85 / 1024
    assert d["prefill"]["gpu_time_held_per_prefill"] == pytest.approx(colocated_prefill_hold(32, admissions), rel=1e-12)


def test_the_colocated_hold_is_one_when_every_group_prefills_every_step():
    """colocated_prefill_hold: with more admissions per group and step than one, every step holds a prefill on every
    group anyway: the hold is 1, not (1 - (1 - p)^dp) / p below it."""
    assert colocated_prefill_hold(8, 3.0) == 1.0
    assert colocated_prefill_hold(8, 1.0) == 1.0
    assert colocated_prefill_hold(8, 1e-9) == pytest.approx(8.0, rel=1e-6)


def _point(rate: float, ttft_s: float) -> PrefillPoint:
    return PrefillPoint(1, 1, 1, "bf16", ttft_s, {}, rate, rate, ttft_s, 1.0)


def test_best_prefill_takes_the_shortest_ttft_within_two_percent():
    """best_prefill: among batches within 2% of the best throughput (NEAR_BEST) the shortest TTFT wins; one further
    off does not, however quick."""
    fastest, near, far = _point(100.0, 2.0), _point(99.0, 1.0), _point(90.0, 0.5)
    assert best_prefill([fastest, near, far], 80 * GIB, None) is near


def test_an_untied_model_holds_embedding_and_head_on_one_stage():
    """weight_bytes_per_gpu: Llama 3.1 8B (untied, 128,256 x 4,096) holds both matrices in BF16 at PP1, one per end
    stage at PP2 (the busiest stage, the last, holds the head)."""
    s = setup_for(ServeRequest("llama-3.1-8b", "h100-sxm", phase="decode"))
    both = weight_bytes_per_gpu(s, one(tp=1))["embedding_and_head"][0]
    assert both == 2 * 4096 * 128256 * 2
    assert weight_bytes_per_gpu(s, one(tp=1, pp=2))["embedding_and_head"][0] == both / 2


def test_mean_context_is_the_prompt_and_half_the_output():
    """Setup.mean_context: continuous batching holds sequences at every point of their output: input + output / 2."""
    assert setup_for(ServeRequest("llama-3.1-8b", "h100-sxm", input_len=1000, output_len=2048)).mean_context == 2024


def test_a_moe_prefill_spreads_its_experts_over_the_whole_stage():
    """prefill_expert_parallel: a MoE prefill of dp attention groups of tp GPUs spreads whole experts over all tp x dp
    GPUs (EP = TP x DP, as decode spreads them and as DeepSeek's and SGLang's prefill units run); None keeps one group
    with TP-sharded experts (EP 1); a dense model has no EP, its groups independent replicas."""
    v3, llama = load_model("deepseek-v3"), load_model("llama-3.1-70b")
    assert prefill_expert_parallel(v3, 8, 3) == (3, 24)
    assert prefill_expert_parallel(v3, 1, 32) == (32, 32)
    assert prefill_expert_parallel(v3, 8, None) == (1, 1)
    assert prefill_expert_parallel(llama, 8, 4) == (4, 1) and prefill_expert_parallel(llama, 8, None) == (1, 1)


def test_a_prefill_expert_sees_the_tokens_of_every_group():
    """With EP = TP x DP, each expert on a GPU gets the tokens of all dp groups routed to it: dp x tokens per group x
    top_k / experts, times the routing imbalance, and a GPU holds experts / EP of them. DeepSeek-V3 (256 experts, top
    8), 3 groups of TP8 at 4,096 tokens each: 3 x 4,096 x 8 / 256 = 384 tokens per expert, 256 / 24 experts a GPU; the
    routed GEMMs take the time of that many GEMMs of that M (a mutation of forward_context's dp, which the search never
    varies apart from EP, gives 1/3 or 3x the tokens)."""
    from simulator.model.flops import layer_gemms
    from simulator.model.forward import forward_context
    from simulator.model.step_time import _gemm_time

    v3 = load_model("deepseek-v3")
    s = setup_for(ServeRequest("deepseek-v3", "h800", input_len=4096, output_len=2, phase="prefill"))
    ctx = forward_context(v3, s.rates, 4096, 1, tp=8, ep=24, dp=3, precision="bf16", assumptions=s.assumptions)
    assert ctx.job.num_gpus == 24 and ctx.layout.dp == 3
    routed = [g for g in layer_gemms(v3, "moe") if g.routed]
    assert {g.multiplicity for g in routed} == {8}  # each token's top-8 copies
    m = 3 * 4096 * 8 / 256 * s.assumptions.moe_imbalance
    expected = sum(float(ctx.gemm_s(m, g.n, g.k, g.fp8_eligible, 256 / 24)) for g in routed)
    assert s.rates.expert_launch_host_s == 0  # (no per-expert host pacing on this stack)
    assert _gemm_time(ctx, "moe", gradients=False).forward_parts["routed_experts"] == pytest.approx(expected, rel=1e-12)


def test_a_colocated_moe_prefill_runs_on_the_decode_layout():
    """Co-located, the prefill runs on the decode's GPUs with the decode's expert layout: its TP, DP, PP and EP are
    the decode's (a review found 'TP8 EP3' for the prefill beside 'TP8 DP3 PP4 EP24' for the decode)."""
    d = serve(ServeRequest("deepseek-v3", "h800", input_len=4096, output_len=1024, tp=8, dp=3,
                           deployment="colocated")).to_dict()  # fmt: skip
    p, dec = d["prefill"]["layout"], d["decode"]["layout"]
    assert (p["tp"], p["dp"], p["pp"], p["ep"], p["gpus"]) == (dec["tp"], dec["dp"], dec["pp"], dec["ep"], dec["gpus"])
    assert p["ep"] == 24 and d["prefill"]["prompts_per_pass"] % 3 == 0


def test_a_stated_prefill_ep_must_be_a_multiple_of_tp():
    with pytest.raises(InputError, match=r"--ep 4 is not a multiple of --tp 8.*EP = TP x DP"):
        serve(ServeRequest("deepseek-v3", "h800", input_len=4096, output_len=2, phase="prefill", tp=8, ep=4))
    d = serve(ServeRequest("deepseek-v3", "h800", input_len=4096, output_len=2, phase="prefill", tp=2, ep=32)).to_dict()
    assert d["prefill"]["layout"] | {"precision": None} == {
        "tp": 2,
        "dp": 16,
        "pp": d["prefill"]["layout"]["pp"],
        "ep": 32,
        "gpus": 32 * d["prefill"]["layout"]["pp"],
        "precision": None,
    }
