"""A published run's metric from an estimate, and the prediction of a run (inputs.published.PublishedRun).

The throughput datasets (the ten Megatron-LM 2021 Table 1 rows, Narayanan et al. 2021, arXiv:2104.04473, per-GPU
TFLOP/s counted with Eq. 3, which includes full recomputation; Llama 3.1 405B's Table 4 on 8K and 16K H100s,
model TFLOP/s per GPU, causal attention) constrain the fitted constant (analysis/fit.py).
"""

from __future__ import annotations

import math

from simulator.errors import InfeasibleError, SpecError
from simulator.inputs.assumptions import Assumptions
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import Job
from simulator.inputs.published import PublishedRun
from simulator.inputs.specs import ModelSpec
from simulator.run.estimate import Estimate, estimate
from simulator.units import SECONDS_PER_DAY, SECONDS_PER_MINUTE, TERA


def predict(run: PublishedRun, assumptions: Assumptions) -> float:
    """The run's metric at its published layout. A published run ran: where costsim's memory model says the layout
    does not fit (Llama 3 405B on 8K GPUs, docs/model.md §3.4), the run is predicted as if the memory were there,
    as validate public does."""
    model, hw = load_model(run.model), load_hardware(run.gpu)
    try:
        est = estimate(model, hw, run.job, run.layout, assumptions=assumptions)
    except InfeasibleError:
        est = estimate(model, hw, run.job, run.layout, assumptions=assumptions, memory_limit_bytes=math.inf)
    return metric_value(run.metric, model, est)


def metric_value(metric: str, model: ModelSpec, est: Estimate, includes_failures: bool = False) -> float:
    """An estimate in a published run's metric and unit. `includes_failures`: whole-run hours and days count the
    time lost to failures (goodput); step-level figures and MLPerf time-to-train do not."""
    if metric == "gpu_hours":
        return est.gpu_hours if includes_failures else est.ideal_gpu_hours
    if metric in ("wall_clock_days", "time_to_train_minutes"):
        seconds = est.wall_clock_s if includes_failures else est.ideal_wall_clock_s
        return seconds / (SECONDS_PER_DAY if metric == "wall_clock_days" else SECONDS_PER_MINUTE)
    if metric == "step_time_s":
        return est.step_time_s
    if metric == "tokens_per_s_per_gpu":
        return est.tokens_per_s_per_gpu
    if metric == "model_tflop_per_s_per_gpu":
        return est.model_flop_per_s_per_gpu / TERA
    if metric == "eq3_tflop_per_s_per_gpu":
        return eq3_flops_per_step(model, est.job) / est.step_time_s / est.job.num_gpus / TERA
    raise SpecError(f"unknown metric {metric!r}")


def eq3_flops_per_step(model: ModelSpec, job: Job) -> float:
    """Narayanan Eq. 3: 96·B·s·L·h²·(1 + s/(6h) + V/(16·L·h)) FLOPs per iteration, recomputation included."""
    b, s = job.global_batch_sequences, job.seq_len
    layers, h, v = model.n_layers, model.d_model, model.vocab_size
    return 96.0 * b * s * layers * h * h * (1 + s / (6 * h) + v / (16 * layers * h))
