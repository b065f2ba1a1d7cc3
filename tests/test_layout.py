"""Parallel layouts: the divisibility rules, the layout search, memory per GPU, and pipeline schedules."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from simulator.errors import InfeasibleError, LayoutError
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import Job
from simulator.model.layout import Layout, check_layout, layout_problems
from simulator.model.pipeline import bubble_s, chunk_sums, partition, stage_items
from simulator.run.estimate import estimate
from simulator.run.search import search

H100 = load_hardware("h100-sxm")
H800 = load_hardware("h800")
LLAMA_8B = load_model("llama-3.1-8b")
LLAMA_70B = load_model("llama-3.1-70b")
LLAMA_405B = load_model("llama-3.1-405b")
MIXTRAL = load_model("mixtral-8x7b")
DEEPSEEK_V3 = load_model("deepseek-v3")

# DeepSeek-V3 (arXiv:2412.19437 §3.2, §4.2): TP1 PP16 DP128 EP64, DualPipe, 2048 H800s, 15360 x 4096-token sequences.
DSV3_JOB = Job(num_gpus=2048, tokens=14.8e12, seq_len=4096, global_batch_tokens=62914560, precision="fp8")
DSV3_LAYOUT = Layout(
    tp=1, pp=16, dp=128, ep=64, cp=1, zero_stage=1, micro_batch_size=1, schedule="dualpipe", recompute="selective"
)
# Llama 3.1 405B (arXiv:2407.21783 Table 4): TP8 PP16 DP128 on 16384 GPUs, 2048 x 8192-token sequences, interleaved.
L405_JOB = Job(num_gpus=16384, tokens=15.6e12, seq_len=8192, global_batch_tokens=16777216)
L405_LAYOUT = Layout(tp=8, pp=16, dp=128, zero_stage=1, micro_batch_size=1, schedule="interleaved", vpp=4)


def job(num_gpus: int, sequences: int = 512, seq_len: int = 8192) -> Job:
    return Job(num_gpus=num_gpus, tokens=1e12, seq_len=seq_len, global_batch_tokens=sequences * seq_len)


# --------------------------------------------------------------------------- rules


def test_published_deepseek_v3_layout_is_valid():
    assert layout_problems(DEEPSEEK_V3, DSV3_JOB, DSV3_LAYOUT) == []
    check_layout(DEEPSEEK_V3, DSV3_JOB, DSV3_LAYOUT)  # does not raise


def test_published_llama_405b_layout_is_valid():
    assert layout_problems(LLAMA_405B, L405_JOB, L405_LAYOUT) == []
    check_layout(LLAMA_405B, L405_JOB, L405_LAYOUT)


BROKEN = {
    # name: (model, job, layout, substrings the single problem must contain)
    "product": (LLAMA_8B, job(64), Layout(tp=2, pp=2, dp=8), ["2 x 2 x 1 x 8 = 32", "--num-gpus is 64"]),
    "heads % tp": (LLAMA_8B, job(96), Layout(tp=3, dp=32), ["32 attention heads", "TP = 3"]),
    "experts % ep": (MIXTRAL, job(96, sequences=384, seq_len=4096), Layout(dp=96, ep=3), ["8 experts", "EP = 3"]),
    "dualpipe odd pp": (LLAMA_8B, job(48), Layout(pp=3, dp=16, schedule="dualpipe"), ["DualPipe", "PP 3", "micro-batches 32"]),
    "interleaved vpp 1": (LLAMA_8B, job(64), Layout(pp=2, dp=32, schedule="interleaved", vpp=1), ["interleaved", "--vpp"]),
    "batch % mbs*dp": (LLAMA_8B, job(64), Layout(dp=64, micro_batch_size=3), ["512 sequences", "micro-batch 3 x DP 64"]),
    "cp and seq": (LLAMA_8B, job(96), Layout(cp=3, dp=32), ["sequence length 8192", "2 x CP = 6"]),
    "too many stages": (LLAMA_8B, job(64), Layout(pp=64, dp=1), ["32 layers", "= 64"]),
    "ep without experts": (LLAMA_8B, job(64), Layout(dp=64, ep=2), ["EP = 2", "no experts"]),
    "vpp without interleaving": (LLAMA_8B, job(64), Layout(pp=2, dp=32, vpp=2), ["--vpp 2", "interleaved"]),
    "schedule needs pp": (LLAMA_8B, job(64), Layout(dp=64, schedule="zb-h1"), ["zb-h1", "PP >= 2"]),
    "ep | tp*dp*cp": (MIXTRAL, job(4, sequences=8, seq_len=4096), Layout(tp=2, dp=2, ep=8), ["EP = 8", "TP x DP x CP = 4"]),
}


@pytest.mark.parametrize("case", BROKEN)
def test_each_broken_rule_is_named_with_its_numbers(case):
    model, j, lay, needles = BROKEN[case]
    problems = layout_problems(model, j, lay)
    assert len(problems) == 1, problems
    for needle in needles:
        assert needle in problems[0], f"{needle!r} not in {problems[0]!r}"
    with pytest.raises(LayoutError) as err:
        check_layout(model, j, lay)
    assert problems[0] in str(err.value) and lay.describe() in str(err.value)


def test_every_problem_is_listed_at_once():
    lay = Layout(tp=3, pp=2, dp=5, cp=3, micro_batch_size=7)
    problems = layout_problems(LLAMA_8B, job(64), lay)
    text = "\n".join(problems)
    for needle in ("3 x 2 x 3 x 5 = 90", "TP = 3", "2 x CP = 6", "micro-batch 7 x DP 5"):
        assert needle in text
    with pytest.raises(LayoutError) as err:
        check_layout(LLAMA_8B, job(64), lay)
    assert all(p in str(err.value) for p in problems)


# --------------------------------------------------------------------------- search vs explicit


def test_partial_layout_is_searched_to_the_fastest_valid_layout_that_fits():
    j = job(64)
    given = {"tp": 2, "pp": 2, "zero_stage": 1}
    est = estimate(LLAMA_8B, H100, j, given)
    lay = est.layout
    assert (lay.tp, lay.pp, lay.zero_stage) == (2, 2, 1)
    assert layout_problems(LLAMA_8B, j, lay) == []
    assert est.step.memory.total_bytes <= H100.memory_bytes
    assert est.layout_chosen_by_search and est.candidates_evaluated > 1
    result = search(LLAMA_8B, H100, j, {**given, "tp_overlap": False})  # estimate leaves TP overlap off
    cands = [result.layouts.at(i) for i in range(result.n_valid)]
    assert lay in cands and len(cands) == est.candidates_evaluated
    for i, cand in enumerate(cands):  # the scalar estimate agrees with the vectorized search, and none that fits is faster
        try:
            other = estimate(LLAMA_8B, H100, j, cand.to_dict())
        except InfeasibleError:
            assert not result.feasible[i]
            continue
        assert result.feasible[i]
        assert other.step_time_s == pytest.approx(result.steps.step_time_s[i], rel=1e-9)
        assert other.step_time_s >= est.step_time_s * (1 - 1e-12), cand


def test_search_with_only_the_cluster_given():
    j = job(64)
    est = estimate(LLAMA_8B, H100, j, {})
    assert layout_problems(LLAMA_8B, j, est.layout) == []
    assert est.step.memory.total_bytes <= H100.memory_bytes
    assert est.layout_chosen_by_search


def test_explicit_layout_is_evaluated_as_given():
    j = job(64)
    lay = Layout(tp=2, pp=4, dp=8, zero_stage=1, micro_batch_size=2, schedule="interleaved", recompute="selective", vpp=2)
    est = estimate(LLAMA_8B, H100, j, lay.to_dict())
    assert est.layout == lay
    assert est.candidates_evaluated == 1
    assert not est.layout_chosen_by_search


def test_explicit_layout_without_dp_derives_it():
    given = Layout(tp=2, pp=4, zero_stage=1, micro_batch_size=1, schedule="1f1b", recompute="none").to_dict()
    del given["dp"], given["vpp"]
    est = estimate(LLAMA_8B, H100, job(64), given)
    assert est.layout.dp == 8 and est.candidates_evaluated == 1


def test_explicit_invalid_layout_raises_layout_error():
    with pytest.raises(LayoutError, match="32 attention heads"):
        estimate(LLAMA_8B, H100, job(96), Layout(tp=3, dp=32).to_dict())


def test_explicit_layout_that_does_not_fit_raises_infeasible():
    with pytest.raises(InfeasibleError, match=r"does not fit: needs [\d.]+ GiB"):
        estimate(LLAMA_70B, H100, job(8), Layout(tp=8, dp=1).to_dict())


def test_published_deepseek_v3_layout_through_estimate():
    est = estimate(DEEPSEEK_V3, H800, DSV3_JOB, DSV3_LAYOUT.to_dict())
    assert est.layout == DSV3_LAYOUT and est.candidates_evaluated == 1
    assert est.step.memory.total_bytes <= H800.memory_bytes


# --------------------------------------------------------------------------- memory


BASE_8B = Layout(tp=1, pp=4, dp=16, zero_stage=1, micro_batch_size=1, schedule="1f1b", recompute="none")
J64 = job(64, sequences=256, seq_len=4096)


def memory(model, j, lay):
    return estimate(model, H100, j, lay.to_dict()).step.memory


def test_zero3_holds_less_weight_memory_than_zero1():
    z1 = memory(LLAMA_8B, J64, BASE_8B)
    z3 = memory(LLAMA_8B, J64, replace(BASE_8B, zero_stage=3))
    assert z3.weights_bytes < z1.weights_bytes / 8  # sharded over DP 16
    assert z3.gradients_bytes < z1.gradients_bytes
    assert z3.optimizer_bytes == pytest.approx(z1.optimizer_bytes)  # already sharded at stage 1
    assert z3.activations_bytes == pytest.approx(z1.activations_bytes)


def test_zero_stages_shard_in_order():
    totals = [memory(LLAMA_8B, J64, replace(BASE_8B, zero_stage=z)).total_bytes for z in (0, 1, 2, 3)]
    assert totals == sorted(totals, reverse=True) and totals[0] > totals[3]


def test_recompute_full_holds_less_activation_memory_than_none():
    acts = {r: memory(LLAMA_8B, J64, replace(BASE_8B, recompute=r)).activations_bytes for r in ("none", "selective", "full")}
    assert acts["full"] < acts["selective"] < acts["none"]
    assert acts["full"] < acts["none"] / 4


def test_dualpipe_holds_about_twice_the_weights_of_1f1b():
    lay = Layout(tp=8, pp=4, dp=2, zero_stage=1, micro_batch_size=1, schedule="1f1b", recompute="none")
    one = memory(LLAMA_70B, J64, lay)
    dual = memory(LLAMA_70B, J64, replace(lay, schedule="dualpipe"))
    assert dual.weights_bytes / one.weights_bytes == pytest.approx(2.0, rel=0.05)


def test_tp_shards_weights():
    tp1 = memory(LLAMA_8B, J64, BASE_8B)
    tp2 = memory(LLAMA_8B, J64, replace(BASE_8B, tp=2, dp=8))
    assert tp2.weights_bytes == pytest.approx(tp1.weights_bytes / 2, rel=0.1)


# --------------------------------------------------------------------------- pipeline schedules

F, B, W = 1.0, 2.0, 1.0  # the DeepSeek-V3 Table 2 illustration: B the full backward, W its weight-gradient part


@pytest.mark.parametrize("pp", [2, 4, 8, 16])
def test_bubbles_match_the_closed_forms(pp):
    one_f_one_b = bubble_s("1f1b", pp, 1, F, B, W, F + B)
    assert one_f_one_b == pytest.approx((pp - 1) * 3)
    assert bubble_s("zb-h1", pp, 1, F, B, W, F + B) == pytest.approx((pp - 1) * 1)
    assert bubble_s("dualpipe", pp, 1, F, B, W, F + B) == pytest.approx((pp / 2 - 1) * 2)
    for vpp in (2, 4):
        assert bubble_s("interleaved", pp, vpp, F, B, W, F + B) == pytest.approx(one_f_one_b / vpp)


@pytest.mark.parametrize("schedule", ["1f1b", "interleaved", "zb-h1", "dualpipe"])
def test_no_bubble_without_a_pipeline(schedule):
    assert bubble_s(schedule, 1, 2, F, B, W, F + B) == 0.0


def test_schedules_rank_as_in_the_illustration():
    """With F=1, B=2, W=1 (and v=2): DualPipe < ZB-H1 < interleaved < 1F1B, as in DeepSeek-V3 Table 2."""
    for pp in (4, 8, 16):
        b = {s: bubble_s(s, pp, 2, F, B, W, F + B) for s in ("1f1b", "interleaved", "zb-h1", "dualpipe")}
        assert b["dualpipe"] < b["zb-h1"] < b["interleaved"] < b["1f1b"]


def _best_max_chunk(costs: list[float], parts: int) -> float:
    best = float("inf")
    for cuts in itertools.combinations(range(1, len(costs)), parts - 1):
        best = min(best, max(chunk_sums(costs, [0, *cuts])))
    return best


def test_partition_of_equal_costs_is_even():
    assert partition([1.0] * 32, 4) == [0, 8, 16, 24]
    assert partition([1.0] * 3, 5) == [0, 1, 2]  # never more chunks than items


def test_partition_is_contiguous_and_optimally_balanced():
    rng = random.Random(1234)
    for _ in range(400):
        n = rng.randint(1, 9)
        parts = rng.randint(1, n + 2)
        costs = [rng.choice([1e-6, 0.5, 1.0, rng.uniform(0.01, 5.0)]) for _ in range(n)]
        starts = partition(costs, parts)
        p = min(parts, n)
        assert starts[0] == 0 and len(starts) == p, (costs, parts, starts)
        assert all(a < b for a, b in itertools.pairwise(starts)) and starts[-1] < n
        assert sum(chunk_sums(costs, starts)) == pytest.approx(sum(costs))
        assert max(chunk_sums(costs, starts)) == pytest.approx(_best_max_chunk(costs, p), rel=1e-9), (costs, parts, starts)


def test_stage_items_assign_chunks_to_ranks():
    items = ["embed", *(["dense"] * 8), "head"]
    costs = [1e-6, *([1.0] * 8), 1.0]
    flat = stage_items(items, costs, 4, 1, "1f1b")
    assert len(flat) == 4 and sum(flat, []) == items  # contiguous, in order, each item once
    starts = partition(costs, 4)
    chunks = [items[a:b] for a, b in itertools.pairwise([*starts, len(items)])]
    inter = stage_items(items, costs, 2, 2, "interleaved")  # rank r holds chunks r and r + pp
    assert inter == [chunks[0] + chunks[2], chunks[1] + chunks[3]]
    assert inter[0][0] == "embed" and inter[1][-1] == "head"
    dual = stage_items(items, costs, 4, 1, "dualpipe")
    assert len(dual) == 4 and sum(map(len, dual)) == 2 * len(items)  # two copies of the model
    assert "embed" in dual[0] and "head" in dual[0]  # rank 0 holds the first and the last stage


def test_partition_gives_every_chunk_an_item_even_with_zero_costs():
    from simulator.model.pipeline import partition

    assert partition([0.0, 1.0], 2) == [0, 1]
    assert partition([1.0, 0.0, 1.0], 3) == [0, 1, 2]


def test_ep_over_tensor_parallel_ranks_is_a_folded_expert_grid():
    """Megatron-core MoE parallel folding (arXiv:2504.14960, expert TP 1): the expert layers regroup TP x CP x DP as
    EP x expert DP, so EP may span TP ranks (it must divide TP x DP x CP) and each expert has TP x CP x DP / EP
    replicas; with EP 1 the experts are TP-sharded and replicate as dense weights do."""
    from simulator.model.layout import data_parallel_sizes, folded_expert_grid

    spanning_tp = Layout(tp=2, dp=2, ep=4)
    assert layout_problems(MIXTRAL, job(4, sequences=8, seq_len=4096), spanning_tp) == []
    assert folded_expert_grid(spanning_tp) and folded_expert_grid(Layout(tp=2, dp=4, ep=4))
    assert not folded_expert_grid(Layout(tp=2, dp=2, ep=1))
    assert data_parallel_sizes(Layout(tp=4, cp=1, dp=4, ep=8)) == (4, 2)  # 4 x 4 / 8
    assert data_parallel_sizes(Layout(tp=2, cp=2, dp=4, ep=4)) == (8, 4)  # 2 x 2 x 4 / 4: the TP ranks are replicas
    assert data_parallel_sizes(Layout(tp=4, cp=1, dp=4, ep=16)) == (4, 1)
    assert data_parallel_sizes(Layout(tp=4, cp=2, dp=4, ep=1)) == (8, 8)  # EP 1: experts TP-sharded
