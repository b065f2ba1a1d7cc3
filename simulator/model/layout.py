"""Parallel layouts, one or many at once, with the divisibility rules that make a layout valid for a job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from simulator.errors import LayoutError
from simulator.inputs.job import Job
from simulator.inputs.specs import ModelSpec
from simulator.vocab import (
    LAYOUT_FIELDS,
    Recompute,
    Schedule,
)


@dataclass(frozen=True)
class Layout:
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    cp: int = 1
    zero_stage: int = 1
    micro_batch_size: int = 1
    schedule: Schedule = "1f1b"
    recompute: Recompute = "none"
    vpp: int = 1
    """Virtual pipeline stages per rank (interleaved 1F1B); 1 otherwise."""
    tp_overlap: bool = False
    """TP all-gathers and reduce-scatters pipelined with the adjacent GEMMs (Megatron-core / Transformer
    Engine userbuffers, `--tp-comm-overlap`); needs TP > 1."""

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self, cell: bool = False) -> str:
        """The line every output prints ('TP1 PP16 DP128 EP64, ZeRO-1, mbs 1, dualpipe, recompute none'), or
        with `cell` the short form for a narrow table column ('TP1 PP16 DP128 EP64 Z1 dualpipe')."""
        parts = [f"TP{self.tp}", f"PP{self.pp}", f"DP{self.dp}"]
        if self.ep > 1:
            parts.append(f"EP{self.ep}")
        if self.cp > 1:
            parts.append(f"CP{self.cp}")
        if cell:
            return " ".join(parts) + f" Z{self.zero_stage} {self.schedule}"
        if self.tp_overlap:
            parts.append("(TP overlap)")
        sched = self.schedule + (f" (v={self.vpp})" if self.schedule == "interleaved" else "")
        return " ".join(parts) + f", ZeRO-{self.zero_stage}, mbs {self.micro_batch_size}, {sched}, recompute {self.recompute}"


if tuple(f.name for f in fields(Layout)) != LAYOUT_FIELDS:  # one definition: vocab.LAYOUT_FIELDS names these fields
    raise RuntimeError(f"Layout fields {[f.name for f in fields(Layout)]} differ from vocab.LAYOUT_FIELDS {LAYOUT_FIELDS}")

_FIELD_DTYPES: dict = {"schedule": str, "recompute": str, "tp_overlap": bool}


def folded_expert_grid(lay: Layout | Layouts):
    """Whether the expert layers run on a grid of their own: EP > 1. costsim's expert parallelism keeps whole experts
    on a GPU (expert TP 1) and splits a layer's tokens over the TP ranks, which is Megatron-core's MoE parallel folding
    (Liu et al. 2025, arXiv:2504.14960; `expert_tensor_parallel_size` 1): per pipeline stage the TP x CP x DP ranks
    are regrouped as EP x expert DP, EP on consecutive ranks, so EP may span TP ranks and each expert has
    TP x CP x DP / EP replicas (docs/model.md §1.1). With EP 1 the experts are TP-sharded like dense weights."""
    return (np.asarray(lay.ep) > 1)[()]


def data_parallel_sizes(lay: Layout | Layouts):
    """(dense, expert) data-parallel group sizes: dense weights are replicated over DP x CP ranks; experts over the
    TP x CP x DP / EP ranks of the folded expert grid when EP > 1, over DP x CP when EP is 1 (TP-sharded). Gradient
    reduction and ZeRO sharding run over these."""
    dense = lay.dp * lay.cp
    return dense, np.where(folded_expert_grid(lay), np.maximum(1, lay.tp * dense // lay.ep), dense)[()]


@dataclass(frozen=True)
class Layouts:
    """Many layouts at once, one numpy array per field: what the vectorized search evaluates.

    The step-time formulas accept a Layout or a Layouts (their arithmetic is elementwise), so
    the scalar estimate and the search run the same code.
    """

    tp: np.ndarray
    pp: np.ndarray
    dp: np.ndarray
    ep: np.ndarray
    cp: np.ndarray
    zero_stage: np.ndarray
    micro_batch_size: np.ndarray
    schedule: np.ndarray
    recompute: np.ndarray
    vpp: np.ndarray
    tp_overlap: np.ndarray

    @classmethod
    def of(cls, layouts: Sequence[Layout]) -> Layouts:
        cols = {f.name: [getattr(lay, f.name) for lay in layouts] for f in fields(Layout)}
        return cls(**{k: np.asarray(v, dtype=_FIELD_DTYPES.get(k, np.int64)) for k, v in cols.items()})

    def __len__(self) -> int:
        return len(self.tp)

    def take(self, idx: np.ndarray) -> Layouts:
        return Layouts(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def slice(self, sl: slice) -> Layouts:
        """A view of a contiguous range (no copy)."""
        return Layouts(**{f.name: getattr(self, f.name)[sl] for f in fields(self)})

    def at(self, i: int) -> Layout:
        values = {f.name: getattr(self, f.name)[i] for f in fields(self)}
        return Layout(**{k: _FIELD_DTYPES.get(k, int)(v) for k, v in values.items()})


def micro_batches(layout: Layout, job: Job) -> int:
    """Micro-batches per pipeline per step, m = B / (b · d) (Narayanan §3.1)."""
    return job.global_batch_sequences // (layout.micro_batch_size * layout.dp)


def problem_masks(model: ModelSpec, job: Job, lay: Layout | Layouts) -> dict[str, np.ndarray]:
    """Which divisibility rule each layout breaks: rule name -> boolean array (True = broken)."""
    tp, pp, dp, ep, cp, vpp = (np.asarray(getattr(lay, k)) for k in ("tp", "pp", "dp", "ep", "cp", "vpp"))
    schedule, zero = np.asarray(lay.schedule), np.asarray(lay.zero_stage)
    b = job.global_batch_sequences
    kv = model.n_kv_heads if model.attention == "standard" else model.n_heads
    experts = model.moe.n_routed_experts if model.moe else 1
    batch_ok = b % (lay.micro_batch_size * dp) == 0
    m = b // (lay.micro_batch_size * dp)
    interleaved, dualpipe = schedule == "interleaved", schedule == "dualpipe"
    heads = model.n_heads % tp != 0
    return {
        "world": tp * pp * cp * dp != job.num_gpus,
        "heads": heads,
        "kv_heads": ~heads & (model.attention == "standard") & (kv % tp != 0) & (tp % kv != 0),
        "stages": model.n_layers < pp * vpp,
        "ep_without_experts": (ep > 1) & (model.moe is None),
        "ep_experts": (ep > 1) & (model.moe is not None) & (experts % ep != 0),
        "ep_dp": (ep > 1) & ((tp * dp * cp) % ep != 0),
        "cp_seq": (cp > 1) & (job.seq_len % (2 * cp) != 0),
        "batch_seq": np.broadcast_to(job.global_batch_tokens % job.seq_len != 0, tp.shape),
        "batch": ~batch_ok,
        "interleaved_degrees": interleaved & ((pp < 2) | (vpp < 2)),
        "interleaved_micro_batches": interleaved & (pp >= 2) & (vpp >= 2) & batch_ok & (m % pp != 0),
        "vpp": ~interleaved & (vpp != 1),
        "dualpipe_even": dualpipe & batch_ok & ((pp % 2 != 0) | (m % 2 != 0)),
        "dualpipe_micro_batches": dualpipe & batch_ok & (m < pp),
        "schedule_pp1": (schedule != "1f1b") & (pp == 1),
        "zero": ~np.isin(zero, (0, 1, 2, 3)),
        "tp_overlap": np.asarray(lay.tp_overlap, dtype=bool) & (tp == 1),
    }


def problem_text(rule: str, model: ModelSpec, job: Job, lay: Layout) -> str:
    """The message of one broken rule for one layout, with its numbers and a fix."""
    b = job.global_batch_sequences
    m = micro_batches(lay, job)
    texts = {
        "world": lambda: (
            f"TP x PP x CP x DP = {lay.tp} x {lay.pp} x {lay.cp} x {lay.dp} = {lay.tp * lay.pp * lay.cp * lay.dp} "
            f"but --num-gpus is {job.num_gpus}; pick degrees whose product is {job.num_gpus} (or leave --dp out to derive it)"
        ),
        "heads": lambda: f"{model.n_heads} attention heads are not divisible by TP = {lay.tp}; use a TP that divides them",
        "kv_heads": lambda: f"{model.n_kv_heads} KV heads and TP = {lay.tp} do not divide one another; use TP dividing them",
        "stages": lambda: f"{model.n_layers} layers cannot fill PP x virtual stages = {lay.pp * lay.vpp}; lower --pp",
        "ep_without_experts": lambda: f"EP = {lay.ep} but {model.name} has no experts; use --ep 1",
        "ep_experts": lambda: (
            f"{model.moe.n_routed_experts if model.moe else 1} experts are not divisible by EP = {lay.ep}; "
            "use an EP dividing them"
        ),
        "ep_dp": lambda: (
            f"EP = {lay.ep} must divide TP x DP x CP = {lay.tp * lay.dp * lay.cp} (the expert layers regroup a stage's "
            "TP x CP x DP ranks as EP x expert DP); use an EP dividing it"
        ),
        "cp_seq": lambda: f"sequence length {job.seq_len} is not divisible by 2 x CP = {2 * lay.cp} (load-balanced causal CP)",
        "batch_seq": lambda: (
            f"global batch {job.global_batch_tokens:g} tokens is not a multiple of the sequence length {job.seq_len}"
        ),
        "batch": lambda: (
            f"global batch of {b} sequences is not divisible by micro-batch {lay.micro_batch_size} x DP {lay.dp}; "
            "change --micro-batch-size, --dp or --global-batch-tokens"
        ),
        "interleaved_degrees": lambda: f"the interleaved schedule needs PP >= 2 and --vpp >= 2 (got PP {lay.pp}, vpp {lay.vpp})",
        "interleaved_micro_batches": lambda: f"interleaved 1F1B needs the {m} micro-batches to be a multiple of PP = {lay.pp}",
        "vpp": lambda: f"--vpp {lay.vpp} only applies to --schedule interleaved",
        "dualpipe_even": lambda: (
            f"DualPipe needs an even PP and an even number of micro-batches (PP {lay.pp}, micro-batches {m})"
        ),
        "dualpipe_micro_batches": lambda: f"DualPipe needs at least PP = {lay.pp} micro-batches, got {m}",
        "schedule_pp1": lambda: f"schedule {lay.schedule} needs PP >= 2; use 1f1b with PP 1",
        "zero": lambda: f"ZeRO stage {lay.zero_stage} does not exist; use 0, 1, 2 or 3",
        "tp_overlap": lambda: "--tp-overlap needs TP > 1 (there is no TP communication to overlap); drop it or raise --tp",
    }
    return texts[rule]()


def layout_problems(model: ModelSpec, job: Job, layout: Layout) -> list[str]:
    """Every divisibility rule the layout breaks, each with the numbers and a fix. Empty when valid."""
    masks = problem_masks(model, job, layout)
    return [problem_text(rule, model, job, layout) for rule, broken in masks.items() if np.any(broken)]


def check_layout(model: ModelSpec, job: Job, layout: Layout) -> None:
    problems = layout_problems(model, job, layout)
    if problems:
        raise LayoutError(
            f"layout {layout.describe()} is not valid for {model.name} on {job.num_gpus} GPUs:\n  - " + "\n  - ".join(problems)
        )
