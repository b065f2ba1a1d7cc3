"""Render results: SI inside, display units only here."""

from __future__ import annotations

import csv
import io
import json
import math

from simulator.units import GIGA, TERA, format_count


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


def layout_text(lay: dict, cell: bool = False) -> str:
    """A layout (Layout.to_dict()) as text: the line every output prints, as Layout.describe() writes it
    ('TP1 PP16 DP128 EP64, ZeRO-1, mbs 1, dualpipe, recompute none'), or with `cell` the short form for a
    narrow table column ('TP1 PP16 DP128 EP64 Z1 dualpipe'; EP and CP only above 1)."""
    from simulator.model.layout import Layout

    return Layout(**lay).describe(cell)


def run_header(spec, hw, job) -> dict:
    """The fields that open a search's output: what is trained, on what, with which tokens and precision."""
    return {
        "model": spec.name,
        "gpu": hw.name,
        "num_gpus": job.num_gpus,
        "tokens": job.tokens,
        "seq_len": job.seq_len,
        "global_batch_tokens": job.global_batch_tokens,
        "precision": job.precision,
    }


def _pipeline_row(ranks: list[dict]) -> list[tuple[str, str]]:
    """The busiest pipeline rank against the mean: stage imbalance, where there is more than one rank."""
    if len(ranks) < 2:
        return []
    busiest = max(ranks, key=lambda r: r["busy_s_per_step"])
    mean = sum(r["busy_s_per_step"] for r in ranks) / len(ranks)
    held = ", ".join(f"{n} {kind}" if n > 1 else kind for kind, n in busiest["items"].items())
    return [
        (
            "pipeline ranks",
            f"busiest rank {busiest['rank']} ({held}) busy {busiest['busy_s_per_step']:.3f} s per step, "
            f"mean {mean:.3f} s (x{busiest['busy_s_per_step'] / mean:.2f})",
        )
    ]


def two_numbers_rows(d: dict) -> list[tuple[str, str]]:
    """The expected run (the document) and the achievable one (its `achievable` object), one line each: GPU-hours,
    days, dollars, MFU, and what each stands for. Empty for a document without an achievable run."""
    a = d.get("achievable")
    if not a:
        return []

    def line(r: dict) -> str:
        return (
            f"{format_count(r['gpu_hours'])} GPU-hours, {r['wall_clock_days']:.1f} days, ${format_count(r['cost_usd'])}, "
            f"MFU {r['mfu']:.1%}"
        )

    realization = d.get("realization")
    return [
        (
            "expected",
            f"{line(d)}  what runs like it realized: the layout practice uses on stack {d['stack']}"
            + (f", step time x {realization:.2f} (realization fitted to published whole runs)" if realization else ""),
        ),
        ("achievable", f"{line(a)}  the best layout stack {a['stack']} offers: {layout_text(a['layout'])}"),
    ]


def estimate_table(d: dict) -> str:
    layout = layout_text(d["layout"]) + ("  [chosen by search]" if d["layout_chosen_by_search"] else "")
    mem = d["memory_breakdown_gib"]
    basis = f" ({d['basis']} run)" if d.get("achievable") else ""
    rows = [
        ("model", f"{d['model']}  ({format_count(d['params_total'])} total, {format_count(d['params_activated'])} activated)"),
        ("cluster", f"{d['num_gpus']} x {d['gpu']}, {d['precision']}"),
        *two_numbers_rows(d),
        (
            "tokens",
            f"{format_count(d['tokens'])} at sequence length {d['seq_len']}, "
            f"batch {format_count(d['global_batch_tokens'])} tokens ({d['steps']:.0f} steps)",
        ),
        ("layout" + basis, layout),
        (
            "FLOPs per token",
            f"{d['flops_per_token'] / GIGA:.1f} GFLOP model, {d['hardware_flops_per_token'] / GIGA:.1f} GFLOP "
            f"hardware (6N: {d['flops_6nd_per_token'] / GIGA:.1f})",
        ),
        ("step time", f"{d['step_time_s']:.3f} s  ({d['micro_batches']} micro-batches)"),
        *_pipeline_row(d["pipeline_ranks"]),
        (
            "throughput",
            f"{d['tokens_per_s_per_gpu']:.0f} tokens/s per GPU, {d['model_tflop_per_s_per_gpu']:.0f} model TFLOP/s per GPU",
        ),
        (
            "MFU / HFU",
            f"{d['mfu']:.1%} / {d['hfu']:.1%} of the {d['mfu_basis']}"
            + (f" (MFU {d['mfu_bf16_peak']:.1%} of the dense BF16 peak)" if d["precision"] == "fp8" else ""),
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
    rows += [("note", note) for note in d.get("notes", [])]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines.append("")
    of_run = f" of the {d['basis']} run" if d.get("achievable") else ""
    lines.append(f"step time breakdown{of_run} (slowest pipeline rank, seconds per step)")
    total = d["step_time_s"]
    for k, v in sorted(d["breakdown"].items(), key=lambda kv: -kv[1]):
        if v > 0:
            lines.append(f"  {k.ljust(22)} {v:9.3f} s  {v / total:6.1%}")
    lines.append(f"  {'total'.ljust(22)} {total:9.3f} s")
    return "\n".join(lines)


# --------------------------------------------------------------------------- cost bases, plans, compare


def _money(usd: float) -> str:
    return f"${format_count(usd)}"


def cost_lines(cost: dict) -> list[str]:
    """The cost block: basis and rate, the other basis, TCO components, energy and CO2, then the program apart."""
    lines = [f"cost basis       {cost['basis']}: {_money(cost['cost_usd'])} at ${cost['usd_per_gpu_hour']:.2f}/GPU-hour"]
    lines.append(f"                 ({cost['price_source']})")
    if cost["basis"] == "tco":
        parts = ", ".join(f"{k} {_money(v)}" for k, v in cost["components_usd"].items())
        lines.append(f"TCO components   {parts}")
        lines.append(f"rental instead   {_money(cost['rental_cost_usd'])}")
    elif cost.get("tco_cost_usd") is not None:
        lines.append(f"TCO instead      {_money(cost['tco_cost_usd'])} (--pricing tco for its components)")
    inputs = cost.get("inputs", {})
    grid = inputs.get("grid_kg_co2_per_kwh", {}).get("value")
    energy = f"energy           {cost['energy_mwh']:,.0f} MWh, CO2 {cost['co2_t']:,.0f} t"
    lines.append(energy + (f" at {grid:g} kg/kWh" if grid is not None else ""))
    if "experiments_multiplier" in cost:
        lines.append(
            f"program          x{cost['experiments_multiplier']:g} (ablations, failed runs; not the final run): "
            f"{format_count(cost['program_gpu_hours'])} GPU-hours, {_money(cost['program_cost_usd'])}, "
            f"{cost['program_energy_mwh']:,.0f} MWh, {cost['program_co2_t']:,.0f} t CO2"
        )
    return lines


def cost_sources(cost: dict) -> list[str]:
    """Every default behind the cost block, with its source."""
    return [f"  {k} = {v['value']:g}  ({v['source']})" for k, v in cost.get("inputs", {}).items()]


def plan_table(d: dict) -> str:
    lines = [
        f"plan             {d['plan']}" + (f": {d['display_name']}" if d.get("display_name") else ""),
        f"model / GPU      {d['model']} on {d['gpu']}",
        f"source           {d['source']}",
        "",
        f"{'stage':<20} {'GPUs':>6} {'tokens':>7} {'seq':>7} {'prec':>4}  {'layout':<34} {'MFU':>6} "
        f"{'GPU-hours':>9} {'days':>6} {'cost':>8}",
    ]
    for s in d["stages"]:
        lines.append(
            f"{s['name'][:20]:<20} {s['num_gpus']:>6} {format_count(s['tokens']):>7} {s['seq_len']:>7} {s['precision']:>4}  "
            f"{layout_text(s['layout'], cell=True)[:34]:<34} {s['mfu']:>6.1%} {format_count(s['gpu_hours']):>9} "
            f"{s['wall_clock_days']:>6.1f} {_money(s['cost_usd']):>8}"
        )
    lines.append(
        f"{'total':<20} {'':>6} {format_count(d['tokens']):>7} {'':>7} {'':>4}  {'':<34} {'':>6} "
        f"{format_count(d['gpu_hours']):>9} {d['wall_clock_days']:>6.1f} {_money(d['cost_usd']):>8}"
    )
    if d["reported"]:
        lines += ["", f"{'published':<34} {'predicted':>9} {'reported':>9} {'error':>7}  source"]
        for r in d["reported"]:
            which = "whole plan" if r["stages"] == "all" else ", ".join(r["stages"])
            lines.append(
                f"{which[:34]:<34} {format_count(r['predicted_gpu_hours']):>9} {format_count(r['reported_gpu_hours']):>9} "
                f"{r['error']:>+7.1%}  {r['source']}"
            )
    lines.append("")
    lines += cost_lines(d["cost"])
    notes = [(s["name"], s["notes"]) for s in d["stages"] if s.get("notes")]
    if notes:
        lines += ["", "assumptions where the sources are silent"]
        lines += [f"  {name}: {note}" for name, note in notes]
    return "\n".join(lines)


def compare_table(d: dict) -> str:
    a, b = d["a"], d["b"]

    def fmt(name: str, s: dict) -> str:
        return {
            "flops_per_token": f"{s['flops_per_token'] / GIGA:,.1f} GFLOP",
            "tokens": format_count(s["tokens"]),
            "peak": f"{s['peak_flop_per_s'] / TERA:,.0f} TFLOP/s {s['precision']}",
            "efficiency": f"{s['efficiency']:.1%}",
            "goodput": f"{s['goodput']:.1%}",
        }[name]

    head = f"GPU-hours {a['name']} / {b['name']} = {d['ratio']:.3g}x predicted"
    if "reported_ratio" in d:
        head += (
            f"; reported {d['reported_ratio']:.3g}x "
            f"({format_count(a['reported_gpu_hours'])} / {format_count(b['reported_gpu_hours'])})"
        )
    lines = [
        head,
        f"predicted GPU-hours: {format_count(a['gpu_hours'])} ({a['gpu']}) / {format_count(b['gpu_hours'])} ({b['gpu']}), "
        "whole plans",
        "",
        f"{'factor':<16} {a['name'][:22]:>22} {b['name'][:22]:>22} {'ratio':>8}  meaning",
    ]
    for item in d["factor_details"]:
        name = item["factor"]
        lines.append(f"{name:<16} {fmt(name, a):>22} {fmt(name, b):>22} {item['value']:>7.3g}x  {item['meaning']}")
    lines.append(f"{'product':<16} {'':>22} {'':>22} {d['product_of_factors']:>7.3g}x  = the GPU-hours ratio")
    ach = d.get("achievable")
    if ach:
        lines += [
            "",
            f"the table is of the expected runs (what runs like these realized); at the achievable runs (best layout "
            f"on each stack): {format_count(ach['a_gpu_hours'])} / {format_count(ach['b_gpu_hours'])} GPU-hours = "
            f"{ach['ratio']:.3g}x (efficiency factor {ach['factors']['efficiency']:.3g}x)",
        ]
    return "\n".join(lines)
