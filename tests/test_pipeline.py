"""Pipeline schedules (simulator/model/pipeline.py): bubbles and activations in flight against the closed forms
of docs/model.md §3.4 and §6.1, with stage times F, B, W chosen so that every term shows (tests/test_layout.py checks
the DeepSeek-V3 Table 2 illustration F=1, B=2, W=1 and the partitioning)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.model.pipeline import bubble_s, chunk_sums, in_flight_micro_batches, partition, stage_items

F, B, W, FB = 3.0, 5.0, 2.0, 7.0  # FB: an overlapped forward-and-backward pair (DualPipe), < F + B


def test_1f1b_bubble_is_p_minus_1_times_f_plus_b():
    """Narayanan et al. 2021 §2.2.1: (p-1)(F+B) = 3 x 8 = 24 for p = 4."""
    assert bubble_s("1f1b", 4, 1, F, B, W, FB) == pytest.approx(24.0)


def test_interleaved_bubble_is_1f1b_over_v():
    """Narayanan §2.2.2: (p-1)(F+B)/v = 24 / 3 = 8 for p = 4, v = 3."""
    assert bubble_s("interleaved", 4, 3, F, B, W, FB) == pytest.approx(8.0)


def test_zb_h1_bubble_is_p_minus_1_times_f_plus_b_minus_2w():
    """Qi et al. 2023 Table 2 (B the full backward): (p-1)(F+B-2W) = 3 x (3 + 5 - 4) = 12."""
    assert bubble_s("zb-h1", 4, 1, F, B, W, FB) == pytest.approx(12.0)


def test_zb_h1_bubble_is_never_negative():
    """W larger than (F+B)/2 would make F+B-2W negative: the bubble is clamped at 0."""
    assert bubble_s("zb-h1", 4, 1, 1.0, 1.0, 1.5, 2.0) == 0.0


def test_dualpipe_bubble_is_p_over_2_minus_1_times_fb_plus_b_minus_3w():
    """DeepSeek-V3 Table 2: (p/2-1)(F&B+B-3W) = (8/2 - 1) x (7 + 5 - 6) = 3 x 6 = 18 for p = 8."""
    assert bubble_s("dualpipe", 8, 1, F, B, W, FB) == pytest.approx(18.0)


def test_dualpipe_bubble_is_never_negative():
    assert bubble_s("dualpipe", 8, 1, F, B, 5.0, FB) == 0.0


def test_bubbles_are_vectorised_over_schedules_and_degrees():
    schedule = np.array(["1f1b", "interleaved", "zb-h1", "dualpipe", "1f1b"])
    pp = np.array([4, 4, 4, 8, 1])
    vpp = np.array([1, 3, 1, 1, 1])
    np.testing.assert_allclose(bubble_s(schedule, pp, vpp, F, B, W, FB), [24.0, 8.0, 12.0, 18.0, 0.0])


def test_an_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="unknown schedule .*gpipe"):
        bubble_s("gpipe", 4, 1, F, B, W, FB)


# --------------------------------------------------------------------------- activations in flight


def test_interleaved_in_flight_is_p_times_1_plus_p_minus_1_over_p_v():
    """Megatron theoretical_memory_usage: p (1 + (p-1)/(p v)) = 4 x (1 + 3/8) = 5.5 for p = 4, v = 2, in micro-batches
    of the rank's WHOLE set of layers (the factor multiplies the activations of all L/p layers of the rank):
    2 (p-1) + (v-1) p + 1 = 11 chunk micro-batches, each 1/v of the rank's layers."""
    assert in_flight_micro_batches("interleaved", 4, 2, 8) == pytest.approx(5.5)
    assert in_flight_micro_batches("interleaved", 16, 4, 16) == pytest.approx(16.0)  # capped: all m = 16 in flight
    assert in_flight_micro_batches("interleaved", 16, 4, 32) == pytest.approx(16 * (1 + 15 / 64))  # Llama 3, 8K GPUs


def test_interleaved_in_flight_is_capped_by_the_micro_batches():
    """Fewer chunk micro-batches than the warm-up: Megatron runs every forward first (num_warmup_microbatches =
    total), so the rank holds all m = 2 of its micro-batches, never more."""
    assert in_flight_micro_batches("interleaved", 4, 2, 2) == pytest.approx(2.0)


def test_interleaved_in_flight_falls_by_two_chunks_per_later_rank():
    """Rank r warms up 2 (p-1-r) + (v-1) p forwards: with p = 4, v = 2 ranks hold 11, 9, 7, 5 chunk micro-batches."""
    ranks = np.array([[0], [1], [2], [3]])
    np.testing.assert_allclose(in_flight_micro_batches("interleaved", 4, 2, 8, ranks), [[5.5], [4.5], [3.5], [2.5]])


def test_dualpipe_in_flight_is_p_plus_1_stage_micro_batches():
    """DeepSeek-V3 Table 2: PP + 1 micro-batches of one stage's activations; a rank holds two stages, so in units of
    its whole set of layers (both stages) that is (p + 1) / 2."""
    assert in_flight_micro_batches("dualpipe", 8, 1, 16) == 4.5
    assert in_flight_micro_batches("dualpipe", 8, 1, 16, rank=3) == 4.5


@pytest.mark.parametrize("schedule", ["1f1b", "zb-h1"])
def test_1f1b_rank_r_holds_min_p_minus_r_and_m(schedule):
    assert in_flight_micro_batches(schedule, 4, 1, 8) == 4.0  # first rank: p
    assert in_flight_micro_batches(schedule, 4, 1, 8, rank=1) == 3.0  # p - r
    assert in_flight_micro_batches(schedule, 4, 1, 8, rank=3) == 1.0  # last rank: 1
    assert in_flight_micro_batches(schedule, 4, 1, 2) == 2.0  # only m micro-batches exist


def test_in_flight_vectorised_over_ranks():
    ranks = np.array([[0], [1], [2], [3]])
    np.testing.assert_array_equal(in_flight_micro_batches("1f1b", 4, 1, 3, ranks), [[3.0], [3.0], [2.0], [1.0]])


# --------------------------------------------------------------------------- partition and stages


def test_partition_minimises_the_largest_chunk():
    """[4, 1, 1, 1, 1, 4] into 3 chunks: the best largest chunk is 4 ([4] [1 1 1 1] [4])."""
    starts = partition([4.0, 1.0, 1.0, 1.0, 1.0, 4.0], 3)
    assert starts == [0, 1, 5]
    assert chunk_sums([4.0, 1.0, 1.0, 1.0, 1.0, 4.0], starts) == [4.0, 4.0, 4.0]


def test_partition_with_one_part_is_one_chunk():
    assert partition([1.0, 2.0, 3.0], 1) == [0]
    assert partition([1.0, 2.0, 3.0], 0) == [0]  # clamped to one


def test_partition_cuts_where_a_greedy_cap_needs_a_new_chunk():
    """[1, 2, 3, 4, 5] into 2: optimum 9 ([1 2 3] [4 5]); 3 parts: 6 ([1 2 3] [4] [5])."""
    assert partition([1.0, 2.0, 3.0, 4.0, 5.0], 2) == [0, 3]
    assert partition([1.0, 2.0, 3.0, 4.0, 5.0], 3) == [0, 3, 4]


def test_partition_balances_equal_costs_exactly():
    """Six equal items in three parts: two each; the bisection's tolerance must not shift a cut."""
    assert partition([0.1] * 6, 3) == [0, 2, 4]
    assert partition([1.0] * 12, 4) == [0, 3, 6, 9]


def test_stage_items_with_more_chunks_than_items_pads_empty_ranks():
    """Two items over four 1F1B ranks: the last ranks hold nothing."""
    assert stage_items(["embed", "head"], [1.0, 1.0], 4, 1, "1f1b") == [["embed"], ["head"], [], []]


def test_dualpipe_rank_r_holds_stages_r_and_p_minus_1_minus_r():
    items = ["a", "b", "c", "d"]
    ranks = stage_items(items, [1.0] * 4, 4, 1, "dualpipe")
    assert ranks == [["a", "d"], ["b", "c"], ["c", "b"], ["d", "a"]]


def test_interleaved_rank_r_holds_chunks_r_r_plus_p():
    items = list("abcdefgh")
    ranks = stage_items(items, [1.0] * 8, 2, 4, "interleaved")
    assert ranks == [["a", "c", "e", "g"], ["b", "d", "f", "h"]]
