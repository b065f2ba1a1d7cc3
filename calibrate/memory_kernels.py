"""Memory bandwidth and the memory-bound kernels of a training step, forward and backward.

Each benchmark runs a kernel class the step model (simulator/step_time.py) charges at memory
bandwidth, at the sizes of a reference model, and divides the bytes the simulator counts for it by the
measured time. That is the kernel's achieved bandwidth in the simulator's own accounting, which
`counted_bytes` takes from the step model's own functions and constants rather than a copy of them
(tests/test_calibrate.py checks it against what step_time.step charges):

- `layer`: everything of one dense layer but its GEMMs and attention core (a real transformer.Block with
  those stood in for): two RMSNorms, two residual adds, RoPE on q and k, SwiGLU, the head-layout copies
  and autograd, forward and backward; step_time.memory_bound_bytes per forward (NORM_RESIDUAL_PASSES x h
  + RoPE + 3 x d_ff elements per token), twice that backward;
- `cross_entropy`: fp32 cross-entropy over the logits, CROSS_ENTROPY_BYTES_PER_LOGIT for forward + backward;
- `embedding`: the input embedding lookup and its gradient, as step_time.embed_time charges it;
- `optimizer`: the optimizer step of the BF16 recipe (calibrate/transformer.py), the bytes per parameter
  of memory.optimizer_step_bytes_per_param, which the step model charges;
- `copy`: a large copy, read + write: the bandwidth a datasheet would quote.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from calibrate.timing import Budget, measure, randn
from calibrate.transformer import Block, MixedPrecisionAdam
from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.calibration import MemorySample
from simulator.inputs.job import Job
from simulator.inputs.specs import ModelSpec
from simulator.model.comms import Fabric
from simulator.model.efficiency import DeviceRates
from simulator.model.flops import layer_kinds, parameter_counts
from simulator.model.layer_work import layer_work
from simulator.model.layout import Layout
from simulator.model.memory import optimizer_step_bytes_per_param
from simulator.model.step_time import (
    CROSS_ENTROPY_BYTES_PER_LOGIT,
    CROSS_ENTROPY_KERNELS,
    Context,
    elementwise_kernels,
    embed_time,
    memory_bound_bytes,
)
from simulator.units import BYTES_PER_ELEMENT

ACT = BYTES_PER_ELEMENT["bf16"]
KERNELS = ("layer", "cross_entropy", "embedding", "optimizer")
"""The kernels whose bandwidth sets DeviceRates.memory_s (copy is reported beside them)."""
OPTIMIZER_BYTES_PER_PARAM = optimizer_step_bytes_per_param("bf16")

BYTE_COUNT = DeviceRates(
    name="byte count",
    peak_flop_per_s={},
    gemm_efficiency={},
    attention_flop_per_s=1.0,
    hbm_bytes_per_s=1.0,
    fabric=Fabric(scale_up_bytes_per_s=1.0, scale_out_bytes_per_s=1.0, domain_gpus=1, latency_s=0.0),
    kernel_overhead_s=0.0,
    source="calibrate/memory_kernels.py",
)
"""Rates of 1 byte/s, on which the step model's memory-bound times are its byte counts."""


def counted_bytes(spec: ModelSpec, tokens: int) -> dict[str, float]:
    """Bytes the simulator counts per activation kernel class for one micro-batch of `tokens` tokens (fwd + bwd),
    on one device in BF16 without parallelism."""
    job = Job(num_gpus=1, tokens=float(tokens), seq_len=tokens, global_batch_tokens=float(tokens))
    ctx = Context(spec, job, Layout(), BYTE_COUNT, DEFAULT)
    return {
        "layer": 3.0 * float(memory_bound_bytes(ctx, "dense")),  # layer_time: backward at twice the forward
        "cross_entropy": CROSS_ENTROPY_BYTES_PER_LOGIT * tokens * spec.vocab_size,
        "embedding": float(embed_time(ctx).parts["embedding"]),
    }


def step_weights(spec: ModelSpec, tokens: int) -> dict[str, float]:
    """Share of each kernel class in the memory-bound bytes of one training step of `spec` (all layers)."""
    per = counted_bytes(spec, tokens)
    per["layer"] *= spec.n_layers
    per["optimizer"] = OPTIMIZER_BYTES_PER_PARAM * parameter_counts(spec).total
    total = sum(per.values())
    return {k: v / total for k, v in per.items()}


class _Stand(torch.autograd.Function):
    """A GEMM or attention core that costs nothing: it returns a ready random output and ready random gradients.

    With the layer's projections and attention core replaced by it, a real transformer.Block runs everything
    else as training does (norms, RoPE, SwiGLU, residuals, head layout copies, autograd), and that is timed.
    """

    @staticmethod
    def forward(ctx, out: torch.Tensor, grads: tuple[torch.Tensor, ...], *inputs: torch.Tensor) -> torch.Tensor:
        ctx.grads = grads
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        return (None, None, *ctx.grads)


class _StandInLinear(torch.nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight)
        self._cache: dict[tuple, tuple] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in self._cache:
            out = randn((*x.shape[:-1], self.weight.shape[0]), x.dtype, x.device)
            self._cache[key] = (
                out,
                (randn(tuple(x.shape), x.dtype, x.device), randn(tuple(self.weight.shape), x.dtype, x.device)),
            )
        out, grads = self._cache[key]
        return _Stand.apply(out, grads, x, self.weight)


class _StandInAttention:
    def __init__(self) -> None:
        self._cache: dict[tuple, tuple] = {}

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **_) -> torch.Tensor:
        key = (tuple(q.shape), tuple(k.shape))
        if key not in self._cache:
            grads = tuple(randn(tuple(t.shape), t.dtype, t.device) for t in (q, k, v))
            self._cache[key] = (randn(tuple(q.shape), q.dtype, q.device), grads)
        out, grads = self._cache[key]
        return _Stand.apply(out, grads, q, k, v)


def _layer_call(spec: ModelSpec, batch: int, seq: int, device: torch.device) -> Callable[[], None]:
    """One transformer.Block forward and backward with its GEMMs and attention core stood in for."""
    block = Block(spec, seq).to(device=device, dtype=torch.bfloat16)
    for name in ("qkv", "out", "up", "down"):
        setattr(block, name, _StandInLinear(getattr(block, name).weight.detach()))
    block.attention = _StandInAttention()
    x = randn((batch, seq, spec.d_model), torch.bfloat16, device, True)
    grad = randn((batch, seq, spec.d_model), torch.bfloat16, device)
    params = list(block.parameters())

    def call() -> None:
        block(x).backward(grad)
        x.grad = None
        for p in params:
            p.grad = None

    return call


def _cross_entropy_call(tokens: int, vocab: int, device: torch.device) -> Callable[[], None]:
    logits = randn((tokens, vocab), torch.bfloat16, device, True)
    targets = torch.randint(0, vocab, (tokens,), device=device)

    def call() -> None:
        F.cross_entropy(logits.float(), targets).backward()
        logits.grad = None

    return call


def _embedding_call(tokens: int, vocab: int, h: int, device: torch.device) -> Callable[[], None]:
    table = randn((vocab, h), torch.bfloat16, device, True)
    idx = torch.randint(0, vocab, (tokens,), device=device)
    grad = randn((tokens, h), torch.bfloat16, device)

    def call() -> None:
        F.embedding(idx, table).backward(grad)
        table.grad = None

    return call


def _optimizer_call(n_params: int, width: int, device: torch.device) -> tuple[Callable[[], None], int]:
    """The BF16 recipe's optimizer work per step: fp32 main-gradient accumulation, fused AdamW, BF16 refresh.

    Returns the call and the number of parameters it updates."""
    rows = max(1, n_params // width)
    chunk = max(1, rows // 8)
    params = [randn((min(chunk, rows - i), width), torch.bfloat16, device, True) for i in range(0, rows, chunk)]
    grads = [randn(tuple(p.shape), torch.bfloat16, device) for p in params]
    opt = MixedPrecisionAdam(params)

    def call() -> None:
        torch._foreach_add_(opt.main_grads, grads)
        opt.step()

    return call, rows * width


def _copy_call(elements: int, device: torch.device) -> Callable[[], None]:
    src = randn((elements,), torch.bfloat16, device)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


def bench(
    kernel: str,
    spec: ModelSpec,
    batch: int,
    seq: int,
    device: torch.device,
    budget: Budget,
    copy_elements: int,
    optimizer_max_params: int,
) -> MemorySample:
    """One kernel class at the sizes of `spec` with `batch` x `seq` tokens."""
    tokens = batch * seq
    if kernel == "copy":
        call, elements, counted = _copy_call(copy_elements, device), copy_elements, 2 * ACT * copy_elements
    elif kernel == "optimizer":
        n_params = min(int(parameter_counts(spec).total), optimizer_max_params)
        call, elements = _optimizer_call(n_params, spec.d_model, device)
        counted = OPTIMIZER_BYTES_PER_PARAM * elements
    else:
        builders = {
            "layer": lambda: (_layer_call(spec, batch, seq, device), tokens * spec.d_model),
            "cross_entropy": lambda: (_cross_entropy_call(tokens, spec.vocab_size, device), tokens * spec.vocab_size),
            "embedding": lambda: (_embedding_call(tokens, spec.vocab_size, spec.d_model, device), tokens * spec.d_model),
        }
        call, elements = builders[kernel]()
        counted = counted_bytes(spec, tokens)[kernel]
    timing = measure(call, device, budget)
    return MemorySample(
        kernel=kernel, dtype="bf16", elements=elements, counted_bytes=counted, timing=timing, launches=launches(kernel, spec, seq)
    )


def launches(kernel: str, spec: ModelSpec, seq_len: int) -> int:
    """Kernel launches the step model charges apart for one call of `kernel` (forward and backward): a layer's
    elementwise kernels (no dropout: the trainer has none), cross-entropy's; the others' are not counted."""
    if kernel == "layer":
        kind = layer_kinds(spec)[0]
        return int(sum(elementwise_kernels(spec, layer_work(spec, seq_len)[kind], dropout=False)))
    return CROSS_ENTROPY_KERNELS if kernel == "cross_entropy" else 0
