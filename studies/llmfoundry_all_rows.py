"""Study: costsim's error on every BF16 row of the llm-foundry benchmark README, not only the 25 that `validate public`
checks (validation/llmfoundry.yaml). The other rows show the same models at other GPU counts and sequence lengths,
which separates what the remaining size trend of the 25 is made of (docs/model.md §14):

- by GPU count: the error of each model at 8-128 GPUs (small models lose throughput per GPU as the count grows);
- activation checkpointing: for each checkpointed row, the fraction of costsim's recompute charge that the measured
  throughput implies, r = (T_measured - T_without) / (T_with - T_without), T the step time per token, costsim's
  T_with and T_without at the row's layout with and without full recomputation.
- by part, per GPU: the factor on costsim's GEMMs, recompute and everything else that the measured step times imply
  together (least squares over all of that GPU's rows), which separates a recompute that is cheaper than charged
  from GEMMs that run slower or faster than modelled.
- trends (analysis.size_trend, as `validate public` reports them for its 25 rows): the error against log model size,
  raw and with the row's settings held (recomputation, GPU count, GPU type; then micro-batch tokens too), and against
  log FLOPs per call of the FFN's up projection, the variable that carries what size and checkpointing share.

Each row is read with the stack fields the 25 cases record (FSDP FULL_SHARD, Triton flash attention, PyTorch
1.13.1 for 'bf16 PURE' rows and 2.1.0 with early-stopping recomputation for 'amp_bf16 DEFAULT' rows).

Run: python studies/llmfoundry_all_rows.py [--rows-out FILE.json]   (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from simulator.analysis.public_runs import case_estimate, metric_from_estimate, predict_case
from simulator.analysis.size_trend import Trend, settings, trend
from simulator.errors import CostsimError
from simulator.inputs.catalog import load_model
from simulator.inputs.published import public_cases
from simulator.model.flops import parameter_counts

ROWS = Path(__file__).with_name("llmfoundry_readme_rows.yaml")
GPU_IDS = {"a100_40gb": "a100-40gb", "a100_80gb": "a100-80gb", "h100_80gb": "h100-sxm"}


def parse_row(table: str, row: str) -> dict | None:
    """One README row as a case of validation/public_runs.yaml's format; None for FP8 rows."""
    f = [x.strip() for x in row.strip().strip("|").split("|")]
    if "FP8" in table or f[14] not in ("bf16", "amp_bf16"):
        return None
    size, seq, n, gpu = f[0], int(f[1]), int(f[2]), GPU_IDS[f[3]]
    mb, accum, sequences = int(f[7]), int(f[8]), int(f[9])
    pure, ckpt = f[15] == "PURE", f[17] == "True"
    recompute = "full" if ckpt else "none"
    return {
        "id": f"readme-{size}-{gpu}-{n}-s{seq}-mb{mb}-ga{accum}",
        "source": f"mosaicml/llm-foundry scripts/train/benchmarking/README.md (commit 061f2c7), table '{table}'",
        "quote": row,
        "model": f"mpt-{size}",
        "gpu": gpu,
        "num_gpus": n,
        "tokens": sequences * seq,
        "seq_len": seq,
        "global_batch_tokens": sequences * seq,
        "precision": "bf16",
        "layout": {"tp": 1, "pp": 1, "dp": n, "zero_stage": 3, "micro_batch_size": mb, "recompute": recompute},
        "metric": "tokens_per_s_per_gpu",
        "reported": float(f[12]),
        "why": "study row",
        "track": "steady_state",
        "assumptions": [],
        "stack": {
            "framework": "llm-foundry / Composer (PyTorch FSDP)",
            "year": 2023,
            "recompute": recompute,
            "sequence_parallel": False,
            "flash_attention": True,
            "network": table,
            "mixed_precision": f[15],
            "pytorch": "1.13.1" if pure else "2.1.0",
            "checkpoint_early_stop": not pure,
        },
    }


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


def read_rows(path: Path = ROWS) -> list[dict]:
    doc = yaml.safe_load(path.read_text())
    cases, seen = [], set()
    for r in doc["rows"]:
        case = parse_row(r["table"], r["row"])
        if case is not None and case["id"] not in seen:  # the README repeats one 125M row
            seen.add(case["id"])
            cases.append(case)
    return cases


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
    rows = read_rows()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.yaml"
        path.write_text(yaml.safe_dump({"cases": rows}))
        cases = [c for c in public_cases(path) if c.id.startswith("readme-")]
    out = []
    for case in cases:
        try:
            est = case_estimate(case)
        except CostsimError:
            continue
        predicted = metric_from_estimate(case, est)
        measured_step_s = case.job.global_batch_tokens / case.job.num_gpus / case.reported
        entry = {"id": case.id, "gpu": case.gpu, "num_gpus": case.job.num_gpus, "seq_len": case.job.seq_len,
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
    print(f"{len(out)} of {len(rows)} BF16 rows predicted")
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
