"""Published throughput runs as (model, cluster, layout) -> reported number, and the model's prediction.

Two datasets ship in validation/: the ten Megatron-LM 2021 Table 1 rows (Narayanan et al. 2021,
arXiv:2104.04473; per-GPU TFLOP/s counted with Eq. 3, which includes full recomputation) and
Llama 3.1 405B's Table 4 throughput on 8K and 16K H100s (model TFLOP/s per GPU, causal attention).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simulator.errors import SpecError
from simulator.inputs.assumptions import Assumptions
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.data_files import validation_dir
from simulator.inputs.files import read_yaml
from simulator.inputs.specs import ModelSpec
from simulator.model.layout import Job
from simulator.run.estimate import Estimate, estimate
from simulator.units import SECONDS_PER_DAY, SECONDS_PER_MINUTE, TERA


@dataclass(frozen=True)
class PublishedRun:
    id: str
    source: str
    model: str
    gpu: str
    job: Job
    layout: dict
    metric: str
    reported: float


def _validation_dir() -> Path:
    return validation_dir()


def megatron_2021_runs() -> list[PublishedRun]:
    path = _validation_dir() / "megatron2021" / "runs.yaml"
    doc = read_yaml(path)
    runs = []
    for r in doc["runs"]:
        s = r["seq_len"]
        batch_tokens = r["global_batch"] * s
        layout = dict(
            tp=r["tp"],
            pp=r["pp"],
            cp=1,
            ep=1,
            zero_stage=0,
            micro_batch_size=r["micro_batch"],
            schedule="interleaved" if r["virtual_stages"] > 1 else "1f1b",
            vpp=r["virtual_stages"],
            recompute="full",
            tp_overlap=False,  # Megatron-LM 2021 did not overlap TP communication
        )
        # The 2021 stack: FP16, materialised attention with 0.1 dropout (Table 1 setup; docs/model.md §12).
        job = Job(r["gpus"], batch_tokens, s, batch_tokens, "fp16", attention_kernel="unfused", dropout=0.1)
        config = str(path.parent / r["config"])
        runs.append(
            PublishedRun(
                r["id"],
                doc["source"],
                config,
                "a100-80gb",
                job,
                layout,
                "eq3_tflop_per_s_per_gpu",
                r["reported_tflop_per_s_per_gpu"],
            )
        )
    return runs


def llama3_runs() -> list[PublishedRun]:
    path = _validation_dir() / "llama3_table4.yaml"
    doc = read_yaml(path)
    runs = []
    for r in doc["runs"]:
        job = Job(r["gpus"], r["global_batch_tokens"], r["seq_len"], r["global_batch_tokens"], "bf16")
        layout = dict(
            tp=r["tp"],
            pp=r["pp"],
            cp=r["cp"],
            zero_stage=1,
            micro_batch_size=r["micro_batch"],
            schedule="interleaved",
            vpp=r["vpp"],
            recompute="none",
            tp_overlap=False,  # Llama 3 §3.3.2 describes no TP communication overlap (docs/model.md §12)
        )
        runs.append(
            PublishedRun(
                r["id"],
                doc["source"],
                r["model"],
                r["gpu"],
                job,
                layout,
                "model_tflop_per_s_per_gpu",
                r["reported_model_tflop_per_s_per_gpu"],
            )
        )
    return runs


def throughput_runs() -> list[PublishedRun]:
    return megatron_2021_runs() + llama3_runs()


def predict(run: PublishedRun, assumptions: Assumptions) -> float:
    model = load_model(run.model)
    est = estimate(model, load_hardware(run.gpu), run.job, run.layout, assumptions=assumptions)
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
