"""Sanity notes on an estimate: where the answer leans on something a user should look at.

Peers either stay silent when a prediction leaves safe ground (SimAI's predictor used outside its
domain) or let a layout that barely fits pass as fine (Megatron-LM #525: OOM although an estimator
said it fits). An estimate therefore says, in words, when its step is dominated by a pipeline
bubble, exposed communication or stage imbalance, or when memory is nearly full
(docs/model.md §8.3). They flag what an analytical planner cannot be sure of; they do not correct it.
The thresholds mark what is worth a look, not errors; they change no number.
"""

from __future__ import annotations

import difflib

from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.model.flops import parameter_counts
from simulator.model.memory import MemoryBreakdown
from simulator.units import GIB, TERA

BUBBLE_SHARE = 0.15
"""Pipeline bubble above this share of the step: more micro-batches, virtual stages or a smaller PP help."""
EXPOSED_COMM_SHARE = 0.20
"""Exposed communication above this share of the step: the run is partly network-bound."""
IMBALANCE = 1.10
"""Busiest pipeline rank over the mean above this: integer layers or heavy edge stages (head, MTP) set the step."""
HEADROOM = 0.05
"""Free memory below this share of the GPU: allocator fragmentation or a longer sequence can run out."""

COMM_TERMS = ("tp_comm", "cp_comm", "ep_comm", "pp_comm_exposed", "dp_comm_exposed")


def _bubble(breakdown_s: dict[str, float], step_s: float) -> list[str]:
    share = breakdown_s.get("pipeline_bubble", 0.0) / step_s
    if share <= BUBBLE_SHARE:
        return []
    return [
        f"the pipeline bubble is {share:.0%} of the step (over {BUBBLE_SHARE:.0%}); more micro-batches per step, "
        "virtual stages (--schedule interleaved --vpp) or a smaller --pp shorten it"
    ]


def _exposed_comm(breakdown_s: dict[str, float], step_s: float) -> list[str]:
    terms = {k: breakdown_s.get(k, 0.0) for k in COMM_TERMS}
    share = sum(terms.values()) / step_s
    if share <= EXPOSED_COMM_SHARE:
        return []
    largest = max(terms, key=terms.__getitem__)
    return [
        f"exposed communication is {share:.0%} of the step (over {EXPOSED_COMM_SHARE:.0%}), mostly {largest} "
        f"({terms[largest]:.3g} s); the answer depends on the network figures of the hardware profile"
    ]


def _imbalance(rank_busy_s: list[float], stage_items: list[list[str]]) -> list[str]:
    if len(rank_busy_s) < 2:
        return []
    mean = sum(rank_busy_s) / len(rank_busy_s)
    busiest = max(range(len(rank_busy_s)), key=rank_busy_s.__getitem__)
    ratio = rank_busy_s[busiest] / mean
    if ratio <= IMBALANCE:
        return []
    held = sorted(set(stage_items[busiest]) - {"embed"})
    return [
        f"pipeline rank {busiest} is busy x{ratio:.2f} the mean rank (over x{IMBALANCE:.2f}; it holds "
        f"{', '.join(held)}); whole layers per stage and the head/MTP on an edge stage set the step"
    ]


def _headroom(memory: MemoryBreakdown, capacity_bytes: float) -> list[str]:
    free = capacity_bytes - memory.total_bytes
    # Over the capacity only where a run that ran is estimated as if it fitted, which its own note says.
    if free >= HEADROOM * capacity_bytes or free < 0:
        return []
    return [
        f"memory is nearly full: {memory.total_bytes / GIB:.1f} of {capacity_bytes / GIB:.0f} GiB per GPU "
        f"({free / GIB:.1f} GiB free, under {HEADROOM:.0%}); fragmentation can run out, consider a higher "
        "--zero-stage, --recompute selective or a smaller --micro-batch-size"
    ]


def learned_positions_note(model: ModelSpec, seq_len: int) -> str | None:
    """A sequence longer than a learned position table: the model as specified has no position past its table (RoPE
    and ALiBi extrapolate or are rescaled; a learned table must grow, as llm-foundry's benchmark configurations grow it
    with max_seq_len). The estimate keeps the table's parameters; a longer one adds d_model per position, a lookup
    with no GEMM FLOPs."""
    table = model.max_position_embeddings
    if model.position_embedding != "learned" or table is None or seq_len <= table:
        return None
    return (
        f"sequence length {seq_len:,} is longer than {model.name}'s learned position table of {table:,} positions, so "
        f"the model as specified cannot run it; the estimate keeps the table's {table:,} positions (a longer table adds "
        f"d_model parameters per position and no GEMM work); give --seq-len {table:,} or less for the model as specified"
    )


def fp16_for_bf16_note(hw: HardwareProfile, precision: str) -> str | None:
    """A bf16 run on a GPU whose tensor cores take no BF16 (the profile's dense_tflop_per_s.bf16_native: false): the
    estimate models it as FP16 mixed precision at the FP16 rate, and its 'BF16' MFU is against that rate."""
    if precision != "bf16" or hw.bf16_native:
        return None
    return (
        f"{hw.name} has no BF16 tensor cores: the bf16 run is modelled as FP16 mixed precision (loss scaling) at its FP16 "
        f"peak of {hw.peak_flop_per_s('fp16') / TERA:g} TFLOP/s, and MFU is against that peak"
    )


def pooled_realization_note(hw: HardwareProfile, by_generation: dict[str, float]) -> str | None:
    """A GPU whose generation has no realization fit of its own (a new architecture, or a typo such as 'hoper' in a
    user's profile): the expected run then uses the value pooled over every generation's published runs, and says so,
    with the nearest fitted name where one is close."""
    if not by_generation:  # a fit over runs too few per generation (a user's validation set): every GPU pools
        return (
            f"no GPU generation has a realization fit of its own (the fit found none with enough whole runs); {hw.name}'s "
            "expected run uses the value pooled over all published whole runs"
        )
    if hw.generation in by_generation:
        return None
    close = difflib.get_close_matches(hw.generation or "", list(by_generation), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return (
        f"{hw.name}'s generation {hw.generation!r} has no realization fit of its own{hint}; the expected run uses the "
        f"value pooled over all published whole runs (fitted per generation: {', '.join(sorted(by_generation))})"
    )


PUBLISHED_TOTAL_NOTE = 0.10
"""How far a spec's own published total may sit from the count of its shapes before an estimate says so. The shipped
specs are within 2.1% (tests/test_model_specs.py); a size label ('7B') may be half a unit off, which widens it."""


def published_total_note(model: ModelSpec) -> str | None:
    """A spec whose `published_params.total` is far from what its shapes count: one of the two is likely mistyped (a
    user spec's; the shipped ones are checked in tests), and the estimate uses the shapes."""
    published = model.published_params
    if published is None:
        return None
    counted = parameter_counts(model).total
    if abs(counted / published.total - 1) <= max(PUBLISHED_TOTAL_NOTE, published.stated_rounding("total")):
        return None
    return (
        f"{model.name}'s published_params.total is {published.total:.4g} but its shapes count {counted:.4g} parameters "
        f"({counted / published.total - 1:+.0%}); the estimate uses the shapes: check the spec's dimensions or that figure"
    )


def sanity_notes(
    step_s: float,
    breakdown_s: dict[str, float],
    rank_busy_s: list[float],
    stage_items: list[list[str]],
    memory: MemoryBreakdown,
    capacity_bytes: float,
) -> list[str]:
    """What is unusual about one estimated step, in words (an empty list when nothing is)."""
    return [
        *_bubble(breakdown_s, step_s),
        *_exposed_comm(breakdown_s, step_s),
        *_imbalance(rank_busy_s, stage_items),
        *_headroom(memory, capacity_bytes),
    ]
