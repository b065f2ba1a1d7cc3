"""Closed loop: train small real transformers here, and compare with the simulator's prediction.

Each case is a Llama-style decoder-only model (calibrate/transformer.py) trained for a few dozen steps
on one device with the simulator's BF16 recipe. The prediction is the simulator's own step model
(simulator.model.step_time.step) for the same ModelSpec, job and single-device layout (TP = PP = DP = 1),
on the rates of this device's calibration: no separate model, nothing fitted to these step times.

Decode cases (serving): the same kind of model generates with a KV cache (calibrate/generation.py: prefill once,
then decode steps of one token per sequence at batch 1-64), each step timed; the prediction is `costsim serve`'s
decode step (simulator.model.serve.decode.step_s) for that model, batch and mean context at TP = PP = 1, on the
calibration's rates with its serving fits (decode GEMMs, decode attention).

Two global assumptions describe large runs, not this loop, and are set here, stated in the output:
gemm_sustain = 1 (the calibration measured these GEMM shapes on this device moments ago; the fitted
value covers sustained clocks and software of clusters), and no reserved memory (the measured peak
is torch's allocator peak, which excludes the CUDA context and fragmentation).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from calibrate import device as dev
from calibrate import generation, transformer
from calibrate.run import CPU_REFERENCE, CUDA_REFERENCE, Progress, calibrate, llama_like
from calibrate.timing import summarize
from simulator.errors import InputError
from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.calibration import Calibration, Workload, load_calibration, measured_hardware
from simulator.inputs.job import Job
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.model.efficiency import calibrated_rates
from simulator.model.flops import parameter_counts
from simulator.model.layout import Layout
from simulator.model.serve.decode import Candidates, Setup, step_s
from simulator.model.step_time import step
from simulator.vocab import Recompute

LOCAL_ASSUMPTIONS = replace(DEFAULT, gemm_sustain=1.0, memory_reserved_bytes=0.0)
TARGETS = {"cpu": 0.15, "cuda": 0.10}
MEMORY_TARGET = 0.15


def _case(ref: Workload, name: str) -> Workload:
    """The calibration's reference workload (calibrate/run.py) as a case named `name`."""
    return ref.model_copy(update={"model": ref.model.model_copy(update={"name": name})})


# A case is a model and one micro-batch of it: a Workload, trained at TP 1.
CPU_CASES = [
    Workload(model=llama_like("cpu-tiny", 2, 256, 4, 2, 704, 2048), batch=8, seq_len=128),
    Workload(model=llama_like("cpu-small", 4, 384, 6, 2, 1024, 4096), batch=4, seq_len=256),
    _case(CPU_REFERENCE, "cpu-medium"),
    Workload(model=llama_like("cpu-long", 2, 512, 8, 8, 1408, 4096), batch=2, seq_len=512),
    Workload(model=llama_like("cpu-wide", 2, 768, 12, 4, 2048, 8192), batch=2, seq_len=256),
]
# Multi-head attention on GPUs: every SDPA backend takes it (GQA through enable_gqa is not on all of them).
CUDA_CASES = [
    Workload(model=llama_like("gpu-125m", 12, 768, 12, 12, 2048, 32000), batch=8, seq_len=1024),
    Workload(model=llama_like("gpu-350m", 24, 1024, 16, 16, 2816, 32000), batch=8, seq_len=1024),
    Workload(model=llama_like("gpu-760m", 24, 1536, 16, 16, 4096, 32000), batch=4, seq_len=2048),
    _case(CUDA_REFERENCE, "gpu-1b"),
    # 2.7B: 49 GB of weights, gradients and Adam states plus about 12 GB of activations fits an 80 GB H100.
    Workload(model=llama_like("gpu-3b", 32, 2560, 20, 20, 6912, 32000), batch=2, seq_len=2048),
]


def cases_for(device: torch.device) -> list[Workload]:
    return CUDA_CASES if device.type == "cuda" else CPU_CASES


@dataclass(frozen=True)
class RecomputeCase:
    """A training case run again with full activation recomputation (calibrate/transformer.py: one checkpoint per
    layer). Beside its base case it measures what recomputing costs here, against the step model's recompute term
    (docs/model.md §4.3): the published-run study found realized recompute cheaper than one forward per layer."""

    base: Workload

    @property
    def name(self) -> str:
        return f"{self.base.model.name}-full-recompute"


CPU_RECOMPUTE_CASES = [RecomputeCase(CPU_CASES[2])]
CUDA_RECOMPUTE_CASES = [RecomputeCase(c) for c in CUDA_CASES[2:]]


def recompute_cases_for(device: torch.device) -> list[RecomputeCase]:
    return CUDA_RECOMPUTE_CASES if device.type == "cuda" else CPU_RECOMPUTE_CASES


@dataclass(frozen=True)
class DecodeCase:
    """A model generating `new_tokens` tokens for `batch` sequences after a prompt of `prompt_len` tokens; the first
    `warmup` decode steps are not timed."""

    name: str
    model: ModelSpec
    batch: int
    prompt_len: int
    new_tokens: int
    warmup: int = 4

    @property
    def timed_context(self) -> tuple[int, int]:
        """(input_len, output_len) of `costsim serve` whose mean context (input + output / 2) is the timed steps'."""
        return self.prompt_len + self.warmup, self.new_tokens - self.warmup


CPU_DECODE_CASES = [
    DecodeCase("cpu-tiny-decode-b1", CPU_CASES[0].model, batch=1, prompt_len=128, new_tokens=24),
    DecodeCase("cpu-small-decode-b16", CPU_CASES[1].model, batch=16, prompt_len=256, new_tokens=24),
]
CUDA_DECODE_CASES = [
    DecodeCase("gpu-350m-decode-b1", CUDA_CASES[1].model, batch=1, prompt_len=1024, new_tokens=132),
    DecodeCase("gpu-350m-decode-b16", CUDA_CASES[1].model, batch=16, prompt_len=1024, new_tokens=132),
    DecodeCase("gpu-1b-decode-b64", CUDA_CASES[3].model, batch=64, prompt_len=2048, new_tokens=132),
]


def decode_cases_for(device: torch.device) -> list[DecodeCase]:
    return CUDA_DECODE_CASES if device.type == "cuda" else CPU_DECODE_CASES


def measure_decode(case: DecodeCase, device: torch.device) -> dict:
    """Median and spread of the timed decode steps (each one token per sequence, greedy, waited for)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    torch.manual_seed(0)
    max_len = case.prompt_len + case.new_tokens
    model = generation.build(case.model, max_len, device)
    cache = generation.KVCache(case.model, case.batch, max_len, device)
    prompt = torch.randint(0, case.model.vocab_size, (case.batch, case.prompt_len), device=device)
    token = generation.prefill(model, prompt, cache)
    times = []
    for i in range(case.new_tokens - 1):  # the prefill produced the first new token
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        token = generation.decode_step(model, token, cache)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= case.warmup - 1:
            times.append(time.perf_counter() - t0)
    if cache.length != max_len - 1 or not bool(((token >= 0) & (token < case.model.vocab_size)).all()):
        raise InputError(f"{case.name}: generation did not run as planned ({cache.length} positions cached); not valid")
    timing = summarize(np.array(times))
    del model, cache
    return {"step_time_s": timing.median_s, "spread": timing.spread, "steps": len(times)}


def predict_decode(case: DecodeCase, hw: HardwareProfile, rates) -> dict:
    """`costsim serve`'s decode step for the case: one GPU (TP = DP = PP = 1), BF16, the case's batch and mean context."""
    input_len, output_len = case.timed_context
    setup = Setup(case.model, hw, rates, LOCAL_ASSUMPTIONS, input_len, output_len)
    one = Candidates(*(np.array([1.0]) for _ in range(3)), np.array([float(case.batch)]), np.array(["bf16"]))
    parts = {k: float(v[0]) for k, v in step_s(setup, one).items()}
    total = parts.pop("total")
    return {"step_time_s": total, "breakdown_s": parts, "mean_context": setup.mean_context}


def measure(case: Workload, device: torch.device, steps: int, warmup: int, recompute: Recompute = "none") -> dict:
    """Median step time (and allocator peak on a GPU) of `steps` training steps after `warmup` steps."""
    gc.collect()  # nothing of the previous case may count towards this one's peak
    if device.type == "cuda":
        torch.cuda.empty_cache()
    torch.manual_seed(0)
    model, opt = transformer.build(case.model, case.seq_len, device, recompute=recompute == "full")
    batches = [transformer.random_batch(case.model, case.batch, case.seq_len, device) for _ in range(4)]
    losses, times = [], []
    for i in range(warmup + steps):
        tokens, targets = batches[i % len(batches)]
        if i == warmup and device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        losses.append(transformer.train_step(model, opt, tokens, targets))  # .item() waits for the GPU
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    if not all(np.isfinite(losses)):
        raise InputError(f"{case.model.name}: the loss became {losses[-1]} while training; the measurement is not valid")
    peak = float(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    timing = summarize(np.array(times))
    del model, opt
    return {"step_time_s": timing.median_s, "spread": timing.spread, "peak_memory_bytes": peak, "loss": losses}


def predict(case: Workload, rates, recompute: Recompute = "none", early_stop: bool = transformer.CHECKPOINT_EARLY_STOP) -> dict:
    """The step model's step time, memory and breakdown for a case, with recomputation checkpointed as the local
    trainer does it (`early_stop`: transformer.CHECKPOINT_EARLY_STOP)."""
    job = Job(
        num_gpus=1,
        tokens=float(case.tokens),
        seq_len=case.seq_len,
        global_batch_tokens=case.tokens,
        checkpoint_early_stop=early_stop,
    )
    layout = Layout(tp=1, pp=1, dp=1, micro_batch_size=case.batch, zero_stage=0, recompute=recompute)
    result = step(case.model, job, layout, rates, parameter_counts(case.model), LOCAL_ASSUMPTIONS)
    return {"step_time_s": result.step_time_s, "memory_bytes": result.memory.total_bytes, "breakdown_s": result.breakdown_s}


def recompute_costs(rows: list[dict]) -> list[dict]:
    """What full recomputation added to each case that ran both ways: measured and predicted extra seconds per step,
    and their ratio (1 where the step model charges recompute exactly as it costs here)."""
    plain = {(r["d_model"], r["layers"], r["batch"], r["seq_len"]): r for r in rows if r["recompute"] == "none"}
    out = []
    for r in rows:
        base = plain.get((r["d_model"], r["layers"], r["batch"], r["seq_len"]))
        if r["recompute"] == "none" or base is None:
            continue
        measured = r["measured_step_time_s"] - base["measured_step_time_s"]
        predicted = r["predicted_step_time_s"] - base["predicted_step_time_s"]
        out.append(
            {
                "case": r["case"],
                "base": base["case"],
                "measured_extra_s": measured,
                "predicted_extra_s": predicted,
                "measured_over_predicted": measured / predicted if predicted > 0 else None,
            }
        )
    return out


def calibration_for(
    device_name: str, path: str | None, threads: int | None, cases: list[Workload], progress: Progress | None
) -> tuple[Calibration, str]:
    """The stored calibration at `path`, or a quick one measured now (BF16, with the cases' GEMM shapes)."""
    if path is not None:
        cal = load_calibration(path)
        if cal.provenance.device_kind != device_name:
            raise InputError(
                f"calibration {path} was measured on {cal.provenance.device_kind} ({cal.provenance.device_name}), "
                f"not on --device {device_name}; calibrate this device first: costsim calibrate --device {device_name}"
            )
        measured = cal.provenance.cpu_threads
        if device_name == "cpu" and threads is not None and measured is not None and threads != measured:
            raise InputError(
                f"--threads {threads} but calibration {path} was measured with {measured} CPU threads; the comparison "
                f"needs the same count: drop --threads, or calibrate with --threads {threads}"
            )
        threads = threads or measured
        dev.resolve(device_name, threads)
        return cal, str(path)
    cal = calibrate(
        device_name,
        "quick",
        extra_models=cases,
        threads=threads,
        progress=progress,
        collectives_enabled=False,
        dtypes=("bf16",),
    )
    return cal, "measured now (quick, BF16 with the cases' GEMM shapes)"


def run(
    device_name: str,
    calibration: str | None = None,
    steps: int = 20,
    warmup: int = 4,
    threads: int | None = None,
    progress: Progress | None = None,
    case_names: list[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train each case here and predict it. `progress` follows a calibration measured now (calibrate.run.Progress);
    `log` receives a line as each case starts training."""
    device = dev.resolve(device_name, threads)
    # (name, workload, recompute) of every training case: the plain ones, then those run again with full recompute.
    training: list[tuple[str, Workload, Recompute]] = [(c.model.name, c, "none") for c in cases_for(device)]
    training += [(r.name, r.base, "full") for r in recompute_cases_for(device)]
    decodes = decode_cases_for(device)
    if case_names:
        known = {name: (name, c, rec) for name, c, rec in training}
        known_decode = {c.name: c for c in decodes}
        unknown = [n for n in case_names if n not in known and n not in known_decode]
        if unknown:
            raise InputError(
                f"unknown case {', '.join(unknown)} on {device_name}; the cases are {', '.join([*known, *known_decode])}"
            )
        training = [known[n] for n in case_names if n in known]
        decodes = [known_decode[n] for n in case_names if n in known_decode]
    decode_models = [Workload(model=d.model, batch=d.batch, seq_len=d.prompt_len) for d in decodes]
    cal, label = calibration_for(device_name, calibration, threads, [c for _, c, _ in training] + decode_models, progress)
    hw = measured_hardware(cal, Path(calibration) if calibration else label)
    rates = calibrated_rates(cal, hw, LOCAL_ASSUMPTIONS, calibration or "(measured now)")
    serving = calibrated_rates(cal, hw, LOCAL_ASSUMPTIONS, calibration or "(measured now)", serving=True)
    rows: list[dict] = []
    skipped: list[str] = []
    for name, case, recompute in training:
        if log:
            log(f"training {name} ({case.batch} x {case.seq_len} tokens, {warmup}+{steps} steps)")
        try:
            measured = measure(case, device, steps, warmup, recompute)
        except torch.cuda.OutOfMemoryError:  # a smaller GPU than the cases were sized for (the 3B wants 80 GB)
            gc.collect()
            torch.cuda.empty_cache()
            skipped.append(f"{name}: out of memory on {cal.provenance.device_name}")
            continue
        predicted = predict(case, rates, recompute)
        row = {
            "case": name,
            "recompute": recompute,
            "params": parameter_counts(case.model).total,
            "layers": case.model.n_layers,
            "d_model": case.model.d_model,
            "batch": case.batch,
            "seq_len": case.seq_len,
            "measured_step_time_s": measured["step_time_s"],
            "measured_spread": measured["spread"],
            "predicted_step_time_s": predicted["step_time_s"],
            "error": predicted["step_time_s"] / measured["step_time_s"] - 1.0,
            "predicted_breakdown_s": predicted["breakdown_s"],
            "first_loss": measured["loss"][0],
            "last_loss": measured["loss"][-1],
        }
        if measured["peak_memory_bytes"] is not None:
            row["measured_peak_memory_bytes"] = measured["peak_memory_bytes"]
            row["predicted_peak_memory_bytes"] = predicted["memory_bytes"]
            row["memory_error"] = predicted["memory_bytes"] / measured["peak_memory_bytes"] - 1.0
        rows.append(row)
    decode_rows = []
    for d in decodes:
        if log:
            log(f"generating {d.name} ({d.batch} sequences, {d.prompt_len} prompt + {d.new_tokens} new tokens)")
        measured = measure_decode(d, device)
        predicted = predict_decode(d, hw, serving)
        decode_rows.append(
            {
                "case": d.name,
                "params": parameter_counts(d.model).total,
                "layers": d.model.n_layers,
                "d_model": d.model.d_model,
                "batch": d.batch,
                "prompt_len": d.prompt_len,
                "new_tokens": d.new_tokens,
                "timed_steps": measured["steps"],
                "mean_context": predicted["mean_context"],
                "measured_step_time_s": measured["step_time_s"],
                "measured_spread": measured["spread"],
                "predicted_step_time_s": predicted["step_time_s"],
                "error": predicted["step_time_s"] / measured["step_time_s"] - 1.0,
                "predicted_breakdown_s": predicted["breakdown_s"],
            }
        )
    median_err = statistics.median(abs(r["error"]) for r in rows) if rows else None
    mem_errors = [abs(r["memory_error"]) for r in rows if "memory_error" in r]
    p = cal.provenance
    return {
        "device": p.device_name,
        "device_kind": device.type,
        "cpu_threads": torch.get_num_threads() if device.type == "cpu" else None,
        "calibration": label,
        "calibration_date": p.date,
        "efficiency_source": rates.source,
        "assumptions_changed": {
            "gemm_sustain": LOCAL_ASSUMPTIONS.gemm_sustain,
            "memory_reserved_bytes": LOCAL_ASSUMPTIONS.memory_reserved_bytes,
        },
        "steps": steps,
        "warmup_steps": warmup,
        "cases": rows,
        "median_abs_error": median_err,
        "target_median_abs_error": TARGETS[device.type],
        "median_abs_memory_error": statistics.median(mem_errors) if mem_errors else None,
        "target_memory_error": MEMORY_TARGET if mem_errors else None,
        "serving_efficiency_source": serving.source,
        "skipped": skipped,
        "recompute_costs": recompute_costs(rows),
        "decode_cases": decode_rows,
        "decode_median_abs_error": statistics.median(abs(r["error"]) for r in decode_rows) if decode_rows else None,
    }
