"""Render results: SI inside, display units only here."""

from __future__ import annotations

import csv
import io
import json
import math

from .units import GIGA, format_count


def to_json(d: dict) -> str:
    return json.dumps(_clean(d), indent=2)


def _clean(x):
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def to_csv(rows: list[dict]) -> str:
    flat = [flatten(r) for r in rows]
    fields: list[str] = []
    for r in flat:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(flat)
    return buf.getvalue()


def estimate_table(d: dict) -> str:
    lay = d["layout"]
    layout = (
        f"TP{lay['tp']} PP{lay['pp']} DP{lay['dp']} EP{lay['ep']} CP{lay['cp']}, ZeRO-{lay['zero_stage']}, "
        f"micro-batch {lay['micro_batch_size']}, {lay['schedule']}"
        + (f" (v={lay['vpp']})" if lay["schedule"] == "interleaved" else "")
        + f", recompute {lay['recompute']}"
        + ("  [chosen by search]" if d["layout_chosen_by_search"] else "")
    )
    mem = d["memory_breakdown_gib"]
    rows = [
        ("model", f"{d['model']}  ({format_count(d['params_total'])} total, {format_count(d['params_activated'])} activated)"),
        ("cluster", f"{d['num_gpus']} x {d['gpu']}, {d['precision']}"),
        (
            "tokens",
            f"{format_count(d['tokens'])} at sequence length {d['seq_len']}, "
            f"batch {format_count(d['global_batch_tokens'])} tokens ({d['steps']:.0f} steps)",
        ),
        ("layout", layout),
        (
            "FLOPs per token",
            f"{d['flops_per_token'] / GIGA:.1f} GFLOP model, {d['hardware_flops_per_token'] / GIGA:.1f} GFLOP "
            f"hardware (6N: {d['flops_6nd_per_token'] / GIGA:.1f})",
        ),
        ("step time", f"{d['step_time_s']:.3f} s  ({d['micro_batches']} micro-batches)"),
        (
            "throughput",
            f"{d['tokens_per_s_per_gpu']:.0f} tokens/s per GPU, {d['model_tflop_per_s_per_gpu']:.0f} model TFLOP/s per GPU",
        ),
        (
            "MFU / HFU",
            f"{d['mfu']:.1%} / {d['hfu']:.1%} of the dense BF16 peak"
            + (f" ({d['mfu_fp8_peak']:.1%} of FP8 peak)" if "mfu_fp8_peak" in d else ""),
        ),
        (
            "memory per GPU",
            f"{mem['total']:.1f} of {d['gpu_memory_gib']:.0f} GiB (weights {mem['weights']:.1f}, gradients "
            f"{mem['gradients']:.1f}, optimizer {mem['optimizer']:.1f}, activations {mem['activations']:.1f}, "
            f"other {mem['other']:.1f})",
        ),
        (
            "GPU-hours",
            f"{format_count(d['gpu_hours'])}  (ideal {format_count(d['ideal_gpu_hours'])}, goodput {d['goodput']['ettr']:.1%})",
        ),
        ("wall clock", f"{d['wall_clock_days']:.1f} days  (ideal {d['ideal_wall_clock_days']:.1f})"),
        ("cost", f"${format_count(d['cost_usd'])} at ${d['usd_per_gpu_hour']:.2f}/GPU-hour ({d['price_source']})"),
        ("efficiencies", d["efficiency_source"]),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines.append("")
    lines.append("step time breakdown (slowest pipeline rank, seconds per step)")
    total = d["step_time_s"]
    for k, v in sorted(d["breakdown"].items(), key=lambda kv: -kv[1]):
        if v > 0:
            lines.append(f"  {k.ljust(22)} {v:9.3f} s  {v / total:6.1%}")
    lines.append(f"  {'total'.ljust(22)} {total:9.3f} s")
    return "\n".join(lines)
