"""Pipeline schedules: bubble time, activations in flight, and how layers map to stages.

Bubbles (docs/model.md §6.1): with per-micro-batch stage times F (forward), B (full backward) and
W (weight-gradient part of B):
  1F1B (Narayanan §2.2.1)          (p-1)(F+B)
  interleaved, v chunks (§2.2.2)   (p-1)(F+B)/v
  ZB-H1 (Qi et al. 2023, Table 2)  (p-1)(F+B-2W)        (B is the full backward)
  DualPipe (DeepSeek-V3 Table 2)   (p/2-1)(F&B+B-3W)    F&B = an overlapped F and B pair
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulator.vocab import SCHEDULES, Schedule


def bubble_s(schedule, pp, vpp, f_s, b_s, w_s, fb_pair_s):
    """Pipeline bubble; every argument may be a numpy array (one entry per candidate layout)."""
    schedule = np.asarray(schedule)
    bad = ~np.isin(schedule, SCHEDULES)
    if np.any(bad):
        raise ValueError(f"unknown schedule {schedule[bad].ravel()[0]!r}")
    one_f_one_b = (pp - 1) * (f_s + b_s)
    per_schedule = [
        one_f_one_b,
        one_f_one_b / vpp,
        (pp - 1) * np.maximum(0.0, f_s + b_s - 2 * w_s),
        (pp / 2 - 1) * np.maximum(0.0, fb_pair_s + b_s - 3 * w_s),
    ]
    bubble = np.select([schedule == name for name in SCHEDULES], per_schedule)
    return np.where(pp <= 1, 0.0, bubble)


def in_flight_micro_batches(schedule, pp, vpp, m, rank=0):
    """Activations pipeline rank `rank` holds at its peak, in micro-batches of its whole set of layers (all its
    chunks; docs/model.md §3.4).

    1F1B and ZB-H1: rank r holds min(p - r, m), the first rank the most (Narayanan §2.2.1).
    Interleaved: Megatron's schedule runs 2(p - 1 - r) + (v - 1)·p warm-up forwards on rank r (microbatch group
    p per virtual stage: schedules.py forward_backward_pipelining_with_interleaving), one more before its first
    backward: 2(p - 1 - r) + (v - 1)·p + 1 chunk micro-batches, each 1/v of the rank's layers, and never more
    than all m·v. On the first rank that is p·(1 + (p-1)/(p·v)) rank micro-batches, Megatron
    theoretical_memory_usage.py's factor, which counts the rank's whole L/p layers (`activation_memory *=
    num_layers` before the penalty).
    DualPipe: p + 1 micro-batches of one stage (DeepSeek-V3 Table 2, in the units of 1F1B's p); the rank holds
    two stages, so (p + 1)/2 of its whole set.
    """
    schedule = np.asarray(schedule)
    warmup_chunks = 2 * (pp - 1 - rank) + (vpp - 1) * pp + 1
    interleaved = np.minimum(m * vpp, warmup_chunks) / vpp
    plain = np.minimum(pp - rank, m) * 1.0
    dualpipe = (pp + 1.0) / 2
    return np.where(schedule == "interleaved", interleaved, np.where(schedule == "dualpipe", dualpipe, plain))


def partition(costs: Sequence[float], parts: int) -> list[int]:
    """Split `costs` into `parts` contiguous chunks minimising the largest chunk sum.

    Returns the chunk boundaries (start index of each chunk). Integer layer counts and heavy
    edge items (embedding, LM head, MTP) thereby show up as stage imbalance (docs/model.md §6.2).
    """
    n = len(costs)
    parts = max(1, min(parts, n))
    lo, hi = max(costs), sum(costs)
    for _ in range(60):
        mid = (lo + hi) / 2
        if _chunks_needed(costs, mid) <= parts:
            hi = mid
        else:
            lo = mid
    return _boundaries(costs, hi, parts)


def _chunks_needed(costs: Sequence[float], cap: float) -> int:
    chunks, acc = 1, 0.0
    for c in costs:
        if acc + c > cap * (1 + 1e-12) and acc > 0:
            chunks, acc = chunks + 1, 0.0
        acc += c
    return chunks


def _boundaries(costs: Sequence[float], cap: float, parts: int) -> list[int]:
    """Greedy cut under `cap`; also cut early so that every remaining chunk gets at least one item."""
    starts = [0]
    acc = 0.0
    for i, c in enumerate(costs):
        remaining_items = len(costs) - i
        remaining_parts = parts - len(starts)
        chunk_has_items = i > starts[-1]
        if chunk_has_items and (acc + c > cap * (1 + 1e-12) or remaining_items <= remaining_parts):
            starts.append(i)
            acc = 0.0
        acc += c
    return starts


def chunk_sums(costs: Sequence[float], starts: list[int]) -> list[float]:
    ends = starts[1:] + [len(costs)]
    return [sum(costs[a:b]) for a, b in zip(starts, ends, strict=True)]


def stage_items(
    model_items: Sequence[str], item_costs: Sequence[float], pp: int, vpp: int, schedule: Schedule
) -> list[list[str]]:
    """Items (embedding, layers, head, MTP) held by each pipeline *rank*.

    The model is cut into pp·vpp contiguous chunks of balanced cost. Interleaving gives rank r the
    chunks r, r+pp, r+2pp, ...; DualPipe gives rank r the stages r and pp-1-r of its two copies
    (so the embedding and the head share rank 0).
    """
    chunks = pp * vpp
    starts = partition(item_costs, chunks)
    ends = starts[1:] + [len(model_items)]
    pieces = [list(model_items[a:b]) for a, b in zip(starts, ends, strict=True)]
    pieces += [[] for _ in range(chunks - len(pieces))]
    if schedule == "dualpipe":
        return [pieces[r] + pieces[pp - 1 - r] for r in range(pp)]
    return [sum((pieces[r + j * pp] for j in range(vpp)), []) for r in range(pp)]
