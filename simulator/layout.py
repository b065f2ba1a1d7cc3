"""Parallel layouts and the training job, with the divisibility rules that make a layout valid."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from .errors import LayoutError
from .specs import ModelSpec

Schedule = Literal["1f1b", "interleaved", "zb-h1", "dualpipe"]
Precision = Literal["bf16", "fp8", "fp16"]
Recompute = Literal["none", "selective", "full"]
AttentionKernel = Literal["flash", "unfused"]
SCHEDULES: tuple[Schedule, ...] = ("1f1b", "interleaved", "zb-h1", "dualpipe")
RECOMPUTE_MODES: tuple[Recompute, ...] = ("none", "selective", "full")


@dataclass(frozen=True)
class Job:
    """What is trained: tokens, sequence length, batch and precision, on how many GPUs."""

    num_gpus: int
    tokens: float
    seq_len: int
    global_batch_tokens: float
    precision: Precision = "bf16"
    attention_kernel: AttentionKernel = "flash"
    """flash: FlashAttention (no s x s matrix in HBM); unfused: materialised scores, fused softmax (Megatron 2021)."""
    dropout: float = 0.0
    """Dropout probability on attention probabilities and residuals (0 in modern LLM pre-training)."""

    @property
    def global_batch_sequences(self) -> int:
        return int(round(self.global_batch_tokens / self.seq_len))

    @property
    def steps(self) -> float:
        return self.tokens / (self.global_batch_sequences * self.seq_len)


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

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        parts = [f"TP{self.tp}", f"PP{self.pp}", f"DP{self.dp}"]
        if self.ep > 1:
            parts.append(f"EP{self.ep}")
        if self.cp > 1:
            parts.append(f"CP{self.cp}")
        sched = self.schedule + (f"(v={self.vpp})" if self.schedule == "interleaved" else "")
        return " ".join(parts) + f", ZeRO-{self.zero_stage}, mbs {self.micro_batch_size}, {sched}, recompute {self.recompute}"


def micro_batches(layout: Layout, job: Job) -> int:
    """Micro-batches per pipeline per step, m = B / (b · d) (Narayanan §3.1)."""
    return job.global_batch_sequences // (layout.micro_batch_size * layout.dp)


def layout_problems(model: ModelSpec, job: Job, layout: Layout) -> list[str]:
    """Every divisibility rule the layout breaks, each with the numbers and a fix. Empty when valid."""
    p: list[str] = []
    lay = layout
    world = lay.tp * lay.pp * lay.cp * lay.dp
    if world != job.num_gpus:
        p.append(
            f"TP x PP x CP x DP = {lay.tp} x {lay.pp} x {lay.cp} x {lay.dp} = {world} but --num-gpus is "
            f"{job.num_gpus}; pick degrees whose product is {job.num_gpus} (or leave --dp out to derive it)"
        )
    heads_per_kv = model.n_kv_heads if model.attention == "standard" else model.n_heads
    if model.n_heads % lay.tp:
        p.append(f"{model.n_heads} attention heads are not divisible by TP = {lay.tp}; use a TP that divides them")
    elif model.attention == "standard" and heads_per_kv % lay.tp and lay.tp % heads_per_kv:
        p.append(f"{model.n_kv_heads} KV heads and TP = {lay.tp} do not divide one another; use TP dividing them")
    stages = lay.pp * lay.vpp
    if model.n_layers < stages:
        p.append(f"{model.n_layers} layers cannot fill PP x virtual stages = {stages}; lower --pp")
    if lay.ep > 1:
        if model.moe is None:
            p.append(f"EP = {lay.ep} but {model.name} has no experts; use --ep 1")
        elif model.moe.n_routed_experts % lay.ep:
            p.append(f"{model.moe.n_routed_experts} experts are not divisible by EP = {lay.ep}; use an EP dividing them")
        if (lay.dp * lay.cp) % lay.ep:
            p.append(f"EP = {lay.ep} must divide DP x CP = {lay.dp * lay.cp} (experts are sharded across data-parallel ranks)")
    if lay.cp > 1 and job.seq_len % (2 * lay.cp):
        p.append(f"sequence length {job.seq_len} is not divisible by 2 x CP = {2 * lay.cp} (load-balanced causal CP)")
    if job.global_batch_tokens % job.seq_len:
        p.append(f"global batch {job.global_batch_tokens:g} tokens is not a multiple of the sequence length {job.seq_len}")
    b = job.global_batch_sequences
    if b % (lay.micro_batch_size * lay.dp):
        p.append(
            f"global batch of {b} sequences is not divisible by micro-batch {lay.micro_batch_size} x DP {lay.dp}; "
            f"change --micro-batch-size, --dp or --global-batch-tokens"
        )
    else:
        m = micro_batches(lay, job)
        p += _schedule_problems(lay, m)
    if lay.zero_stage not in (0, 1, 2, 3):
        p.append(f"ZeRO stage {lay.zero_stage} does not exist; use 0, 1, 2 or 3")
    return p


def _schedule_problems(lay: Layout, m: int) -> list[str]:
    p = []
    if lay.schedule == "interleaved":
        if lay.pp < 2 or lay.vpp < 2:
            p.append(f"the interleaved schedule needs PP >= 2 and --vpp >= 2 (got PP {lay.pp}, vpp {lay.vpp})")
        elif m % lay.pp:
            p.append(f"interleaved 1F1B needs the {m} micro-batches to be a multiple of PP = {lay.pp}")
    elif lay.vpp != 1:
        p.append(f"--vpp {lay.vpp} only applies to --schedule interleaved")
    if lay.schedule == "dualpipe":
        if lay.pp % 2 or m % 2:
            p.append(f"DualPipe needs an even PP and an even number of micro-batches (PP {lay.pp}, micro-batches {m})")
        if m < lay.pp:
            p.append(f"DualPipe needs at least PP = {lay.pp} micro-batches, got {m}")
    if lay.schedule != "1f1b" and lay.pp == 1:
        p.append(f"schedule {lay.schedule} needs PP >= 2; use 1f1b with PP 1")
    return p


def check_layout(model: ModelSpec, job: Job, layout: Layout) -> None:
    problems = layout_problems(model, job, layout)
    if problems:
        raise LayoutError(
            f"layout {layout.describe()} is not valid for {model.name} on {job.num_gpus} GPUs:\n  - " + "\n  - ".join(problems)
        )
