"""Study: costsim's error on every BF16 row of the llm-foundry benchmark README, not only the 26 that `validate public`
checks (validation/llmfoundry.yaml). The other rows show the same models at other GPU counts and sequence lengths,
which separates what the size trend of the 26 was made of (docs/model.md §14) and carries the per-step host time
the others constrain (docs/model.md §7.9: `costsim fit` fits it to the 165 rows that are not validation cases):

- errors: all rows, the validation cases, the rows the per-step host time is fitted to;

- by GPU count: the error of each model at 8-128 GPUs (small models lose throughput per GPU as the count grows);
- activation checkpointing: for each checkpointed row, the fraction of costsim's recompute charge that the measured
  throughput implies, r = (T_measured - T_without) / (T_with - T_without), T the step time per token, costsim's
  T_with and T_without at the row's layout with and without full recomputation.
- by part, per GPU: the factor on costsim's GEMMs, recompute and everything else that the measured step times imply
  together (least squares over all of that GPU's rows), which separates a recompute that is cheaper than charged
  from GEMMs that run slower or faster than modelled.
- trends (analysis.size_trend, as `validate public` reports them for its 26 rows): the error against log model size,
  raw and with the row's settings held (recomputation, GPU count, GPU type; then micro-batch tokens too), and against
  log FLOPs per call of the FFN's up projection, the variable that carries what size and checkpointing share.

Each row is read with the stack fields the 26 cases record (published.llmfoundry_readme_case: FSDP FULL_SHARD, Triton
flash attention, PyTorch 1.13.1 for 'bf16 PURE' rows and 2.1.0 with early-stopping recomputation for 'amp_bf16 DEFAULT'
rows).

Run: python studies/llmfoundry_all_rows.py [--rows-out FILE.json]   (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np

from simulator.analysis.public_runs import case_estimate, metric_from_estimate, predict_case
from simulator.analysis.size_trend import Trend, settings, trend
from simulator.errors import CostsimError
from simulator.inputs.catalog import load_model
from simulator.inputs.published import llmfoundry_readme_runs, public_cases, same_row
from simulator.model.flops import parameter_counts

GEMM_PARTS = ("attention_proj", "dense_ffn", "lm_head")
"""Breakdown entries that are GEMMs (forward, input gradient, weight gradient) for an MPT model."""


def step_parts_s(breakdown_s: dict[str, float], step_s: float) -> tuple[float, float, float]:
    """(GEMMs, recompute, the rest) seconds of a step: the forward and gradient GEMMs, the forward the recompute
    repeats, and everything else (attention core, memory-bound kernels, launches, exposed communication, optimizer)."""
    gemm = sum(breakdown_s.get(k, 0.0) for k in GEMM_PARTS)
    recompute = breakdown_s.get("recompute", 0.0)
    return gemm, recompute, step_s - gemm - recompute


def decompose(entries: list[dict]) -> dict[str, dict]:
    """Per GPU, the factor on each of costsim's three parts that the measured step times imply (1: as modelled):
    least squares of measured = a·GEMMs + b·recompute + c·rest, each row divided by its measured time so that
    rows count by relative error."""
    out = {}
    for gpu in sorted({e["gpu"] for e in entries}):
        rows = [e for e in entries if e["gpu"] == gpu]
        measured = np.array([e["measured_step_s"] for e in rows])
        parts = np.array([e["parts_s"] for e in rows]) / measured[:, None]
        (a, b, c), *_ = np.linalg.lstsq(parts, np.ones(len(rows)), rcond=None)
        residual = parts @ np.array([a, b, c]) - 1.0
        out[gpu] = {
            "rows": len(rows),
            "gemm": float(a),
            "recompute": float(b),
            "rest": float(c),
            "median_abs_residual": float(np.median(np.abs(residual))),
            "median_abs_as_modelled": float(np.median(np.abs(parts.sum(axis=1) - 1.0))),
        }
    return out


def size_trends(entries: list[dict]) -> dict[str, Trend]:
    """The trend of log(1 + error) against log(parameters) over the rows (analysis.size_trend, as `validate public`
    reports it for its 25): raw; with full recomputation, log GPU count and the GPU type held fixed (validate public's
    partial); and with log tokens per micro-batch held as well (the checkpointed rows run the largest micro-batches,
    so GEMMs per call grow with both)."""
    x = [math.log(e["params"]) for e in entries]
    y = [math.log1p(e["error"]) for e in entries]
    held, _ = _settings(entries, recompute=True)
    tokens = np.log([e["tokens_per_micro_batch"] for e in entries])[:, None]
    return {
        "raw": trend(x, y),
        "settings held": trend(x, y, held),
        "settings and micro-batch tokens held": trend(x, y, np.hstack([held, tokens])),
    }


def _settings(entries: list[dict], recompute: bool) -> tuple[np.ndarray, list[str]]:
    """analysis.size_trend.settings of the rows, with or without full recomputation."""
    full = [e["recompute"] == "full" for e in entries] if recompute else None
    return settings([e["num_gpus"] for e in entries], [e["gpu"] for e in entries], full)


def gemm_work_trends(entries: list[dict]) -> dict[str, Trend]:
    """The error against log FLOPs per call of the FFN's up projection (2 x micro-batch tokens x d_model x d_ff, the
    layer's largest GEMM), with log GPU count and the GPU type held fixed, and with full recomputation held as well:
    whether a GEMM's work per call carries the trend that size and checkpointing share."""
    x = [math.log(e["ffn_flops_per_call"]) for e in entries]
    y = [math.log1p(e["error"]) for e in entries]
    return {
        "GPU count and GPU held": trend(x, y, _settings(entries, recompute=False)[0]),
        "recomputation held as well": trend(x, y, _settings(entries, recompute=True)[0]),
    }


def _predict(case) -> float | None:
    try:
        return predict_case(case)
    except CostsimError:
        return None


def recompute_fraction(case, with_full: float) -> float | None:
    """Share of costsim's recompute charge the measured rate implies (1: as modelled, 0: free)."""
    layout = dict(case.layout, recompute="none")
    without = _predict(replace(case, layout=layout, stack=dict(case.stack, recompute="none")))
    if without is None or without == with_full:
        return None
    t_measured, t_with, t_without = 1 / case.reported, 1 / with_full, 1 / without
    return (t_measured - t_without) / (t_with - t_without)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-out", type=Path, help="write every row's error as JSON")
    args = parser.parse_args()
    cases = llmfoundry_readme_runs()
    held_out = [c.quote for c in public_cases()]
    out = []
    for case in cases:
        try:
            est = case_estimate(case)
        except CostsimError:
            continue
        predicted = metric_from_estimate(case, est)
        measured_step_s = case.job.global_batch_tokens / case.job.num_gpus / case.reported
        entry = {"id": case.id, "validation_case": any(same_row(case.quote, q) for q in held_out),
                 "gpu": case.gpu, "num_gpus": case.job.num_gpus, "seq_len": case.job.seq_len,
                 "recompute": case.layout["recompute"], "reported": case.reported,
                 "error": predicted / case.reported - 1, "measured_step_s": measured_step_s,
                 "parts_s": step_parts_s(est.breakdown_s, est.step_time_s),
                 "params": parameter_counts(load_model(case.model)).total,
                 "tokens_per_micro_batch": case.layout["micro_batch_size"] * case.job.seq_len,
                 "ffn_flops_per_call": 2.0 * case.layout["micro_batch_size"] * case.job.seq_len
                                       * load_model(case.model).d_model * load_model(case.model).d_ff}  # fmt: skip
        if case.layout["recompute"] == "full":
            entry["recompute_fraction"] = recompute_fraction(case, predicted)
        out.append(entry)
    print(f"{len(out)} of {len(cases)} BF16 rows predicted; median |error| {statistics.median(abs(e['error']) for e in out):.2%}")
    for held, what in ((True, "the validation cases"), (False, "the rows step_host_s is fitted to")):
        errs = [abs(e["error"]) for e in out if e["validation_case"] == held]
        print(f"  {what}: {len(errs)} rows, median |error| {statistics.median(errs):.2%}")
    print("error by GPU count at sequence length 2048 (model, GPU: 8/16/32/64/128 GPUs)")
    keys = sorted({(e["id"].split("-")[1], e["gpu"]) for e in out if e["seq_len"] == 2048})
    for size, gpu in keys:
        cells = []
        for n in (8, 16, 32, 64, 128):
            errs = [e["error"] for e in out if e["seq_len"] == 2048 and e["gpu"] == gpu and e["num_gpus"] == n
                    and e["id"].split("-")[1] == size]  # fmt: skip
            cells.append(f"{errs[0]:+6.1%}" if errs else "     -")
        print(f"  {size:>5} {gpu:10s} " + " ".join(cells))
    fractions = [e["recompute_fraction"] for e in out if e.get("recompute_fraction") is not None]
    if fractions:
        q = statistics.quantiles(fractions, n=4)
        print(f"checkpointed rows: measured / modelled recompute, median {statistics.median(fractions):.2f} "
              f"(quartiles {q[0]:.2f}-{q[2]:.2f}, {len(fractions)} rows)")  # fmt: skip
    print("factor on each of costsim's parts that the measured step times imply (least squares per GPU; 1: as modelled)")
    for gpu, d in decompose(out).items():
        print(f"  {gpu:10s} {d['rows']:3d} rows: GEMMs {d['gemm']:.2f}, recompute {d['recompute']:.2f}, rest "
              f"{d['rest']:.2f} (median |residual| {d['median_abs_residual']:.1%}; as modelled "
              f"{d['median_abs_as_modelled']:.1%})")  # fmt: skip
    print("error against model size (log parameters) and GEMM work (log FFN FLOPs per call), log(1 + error), per e-fold")
    trends = {**size_trends(out), **{f"FFN GEMM FLOPs per call, {k}": t for k, t in gemm_work_trends(out).items()}}
    for name, t in trends.items():
        print(f"  {name:52s} {t.n} rows: {t.slope_per_e_fold:+.2%} per e-fold (se {t.slope_standard_error:.2%}), "
              f"r {t.pearson_r:+.2f}, p {'< 0.001' if t.p_value < 0.001 else f'{t.p_value:.3f}'}")  # fmt: skip
    if args.rows_out:
        args.rows_out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
