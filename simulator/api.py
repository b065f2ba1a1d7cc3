"""Functions for notebooks and the CLI: names and numbers in, result objects out."""

from __future__ import annotations

from .errors import InputError
from .estimate import Estimate, estimate
from .layout import Job
from .specs import load_hardware, load_model

DEFAULT_BATCH_TOKENS = 4 * 2**20  # 4M tokens, a common pre-training batch; stated as the default in the CLI help
DEFAULT_SEQ_LEN = 4096


def run_estimate(
    model: str,
    gpu: str,
    num_gpus: int,
    tokens: float,
    seq_len: int | None = None,
    global_batch_tokens: float | None = None,
    precision: str = "bf16",
    layout: dict | None = None,
    usd_per_gpu_hour: float | None = None,
    attention_kernel: str = "flash",
    dropout: float = 0.0,
) -> Estimate:
    spec = load_model(model)
    hw = load_hardware(gpu)
    s = seq_len or spec.default_seq_len or DEFAULT_SEQ_LEN
    if global_batch_tokens is None:
        global_batch_tokens = max(1, round(DEFAULT_BATCH_TOKENS / s)) * s
    if global_batch_tokens < s:
        raise InputError(f"--global-batch-tokens {global_batch_tokens:.0f} is smaller than one sequence of {s} tokens")
    if tokens < global_batch_tokens:
        raise InputError(f"--tokens {tokens:.4g} is less than one step of {global_batch_tokens:.4g} tokens")
    job = Job(num_gpus, tokens, s, global_batch_tokens, precision, attention_kernel, dropout)
    return estimate(spec, hw, job, layout, usd_per_gpu_hour)
