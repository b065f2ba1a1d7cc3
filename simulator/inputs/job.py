"""The training job: what is trained (tokens, sequence length, batch, precision, attention kernel, dropout, FP8
recipe) on how many GPUs, with the stated defaults. An input of every estimate, independent of the layout."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from simulator.errors import InputError
from simulator.inputs.arguments import job_values
from simulator.inputs.specs import ModelSpec
from simulator.units import BYTES_PER_ELEMENT, MEBI, SECONDS_PER_HOUR
from simulator.vocab import PRECISIONS, AttentionKernel, Fp8Recipe, Precision


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
    fp8_recipe: Fp8Recipe | None = None
    """FP8 scaling: "tensor" (per-tensor, Transformer Engine: cuBLAS FP8 GEMMs, fp32 optimizer states) or
    "block" (fine-grained 1x128/128x128 scales, DeepSeek-V3 §3.3: slower GEMMs, BF16 Adam moments, FP8
    all-to-all dispatch). None: the model's published recipe where its spec has one, else "tensor"."""
    checkpoint_early_stop: bool = False
    """Full recomputation stops after the last activation the backward needs, as PyTorch's non-reentrant
    checkpoint does from 2.1 on (torch.utils.checkpoint, early_stop=True by default): a dense layer's FFN down
    projection is not recomputed. False: the whole layer forward is recomputed (Megatron-LM, reentrant checkpoint,
    PyTorch before 2.1). docs/model.md §2.5."""
    fp4_linears: bool = False
    """Serving only (costsim serve --precision fp4): the linear layers model/number_formats.py puts in NVFP4 run
    there; every other part of the pass is as in `precision` (fp8). Never set for training."""
    gradient_reduce_bytes: float = BYTES_PER_ELEMENT["fp32"]
    """Bytes per gradient element in the data-parallel reduction: 4, fp32 (Llama 3 §3.3.2; FSDP reduce_dtype fp32,
    Composer's DEFAULT mixed precision), or 2, BF16 (Composer's PURE: parameters, gradients and reductions in BF16,
    composer/distributed/mosaic_parallelism.py get_mixed_precision). docs/model.md §4.7."""

    @property
    def global_batch_sequences(self) -> int:
        return int(round(self.global_batch_tokens / self.seq_len))

    def tokens_per_s_per_gpu(self, step_time_s):
        """Training tokens per second per GPU at a step time (scalar or array)."""
        return self.global_batch_sequences * self.seq_len / step_time_s / self.num_gpus

    def gpu_hours(self, step_time_s, ettr=1.0):
        """GPU-hours of the whole run at a step time (scalar or array); ETTR < 1 adds the time failures cost."""
        return self.steps * step_time_s * self.num_gpus / SECONDS_PER_HOUR / ettr

    @property
    def steps(self) -> float:
        return self.tokens / (self.global_batch_sequences * self.seq_len)


DEFAULT_BATCH_TOKENS = 4 * MEBI  # 4M tokens, a common pre-training batch; stated as the default in the CLI help
DEFAULT_SEQ_LEN = 4096


def default_batch_sequences(seq_len: int) -> int:
    """Sequences per step by default: about DEFAULT_BATCH_TOKENS, a multiple of the largest power of two that is at
    most an eighth of that count, so data parallelism can split it (within 1/16 of 4M tokens; a power-of-two
    sequence length gets exactly 4M). Rounding 4M / s to the nearest whole sequence gave counts data parallelism
    cannot divide: 839 sequences of 5,000 tokens is prime, so 64 GPUs ran at DP 1 and took 2.3x the GPU-hours of
    832 sequences (a metamorphic review, 2026-12-07)."""
    target = DEFAULT_BATCH_TOKENS / seq_len
    unit = 2 ** max(0, math.floor(math.log2(max(1.0, target / 8))))
    return max(unit, round(target / unit) * unit)


def make_job(
    model: ModelSpec,
    num_gpus: int,
    tokens: float,
    seq_len: int | None = None,
    global_batch_tokens: float | None = None,
    precision: str = "bf16",
    attention_kernel: str = "flash",
    dropout: float = 0.0,
    fp8_recipe: str | None = None,
) -> Job:
    """A Job with the stated defaults: the model's sequence length, about 4M tokens per step, and the
    model's published FP8 recipe."""
    seq_len, dropout, attention_kernel = job_values(seq_len, dropout, attention_kernel)
    check_training_precision(precision)
    if fp8_recipe is not None and precision != "fp8":
        raise InputError(f"--fp8-recipe {fp8_recipe} applies to --precision fp8 only (got {precision}); drop it or use fp8")
    s = seq_len or model.default_seq_len or DEFAULT_SEQ_LEN
    if global_batch_tokens is None:
        global_batch_tokens = default_batch_sequences(s) * s
    if global_batch_tokens < s:
        raise InputError(f"--global-batch-tokens {global_batch_tokens:.0f} is smaller than one sequence of {s} tokens")
    if tokens < global_batch_tokens:
        raise InputError(f"--tokens {tokens:.4g} is less than one step of {global_batch_tokens:.4g} tokens")
    job = Job(num_gpus, tokens, s, global_batch_tokens, precision, attention_kernel, dropout, fp8_recipe)  # type: ignore[arg-type]
    return with_fp8_recipe(job, model)


def check_training_precision(precision: str) -> None:
    """Training runs in bf16, fp16 or fp8; fp4 (NVFP4) is a serving format only (docs/model.md §16.14)."""
    if precision not in PRECISIONS:
        serving = " (fp4 is a serving format: costsim serve --precision fp4)" if precision == "fp4" else ""
        raise InputError(f"precision {precision!r} is not a training precision{serving}; use one of {', '.join(PRECISIONS)}")


def tensor_scaled_fp8(precision: str, fp8_recipe: str | None) -> bool:
    """FP8 with the per-tensor recipe: where a stack scales it by the current amax, a per-expert stack quantizes each
    expert apart (Stack.fp8_tensor_scaling, docs/model.md §7.8)."""
    return precision == "fp8" and fp8_recipe == "tensor"


def with_fp8_recipe(job: Job, model: ModelSpec) -> Job:
    """The job with its FP8 recipe resolved: as given, else the model's published one, else per-tensor."""
    if job.fp8_recipe is not None:
        return job
    published = model.published_layout.fp8_recipe if model.published_layout else None
    return replace(job, fp8_recipe=published or "tensor")
