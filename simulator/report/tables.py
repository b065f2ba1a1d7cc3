"""Render results: SI inside, display units only here."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from simulator.run.basis_notes import without_tp_overlap
from simulator.units import GIGA, TERA, counted, format_count, format_rate

if TYPE_CHECKING:
    from rich.table import Table


# --------------------------------------------------------------------------- text tables (rich)

RENDER_WIDTH = 10_000
"""Characters a rendered table may take. Every table takes its natural width (the widest cell of each column), so
output does not depend on the terminal it is printed to; a column given a max_width wraps inside itself."""


def new_table(
    *columns: str, align: str = "", header: bool = True, gap: int = 1, max_widths: dict[int, int] | None = None
) -> Table:
    """A borderless rich Table: `columns` are the headers, `align` one letter per column ('l' or 'r'; left when
    missing), `gap` spaces between columns, `max_widths` {column index: characters} for columns that wrap."""
    from rich.table import Table

    table = Table(box=None, show_header=header, show_edge=False, pad_edge=False, padding=(0, gap, 0, 0), header_style=None)
    for i, name in enumerate(columns):
        right = i < len(align) and align[i] == "r"
        width = (max_widths or {}).get(i)
        table.add_column(name, justify="right" if right else "left", max_width=width, overflow="fold")
    return table


def add_row(table: Table, *cells: object) -> None:
    """One row, each cell as plain text (no rich markup: '[chosen by search]' stays as written)."""
    from rich.text import Text

    table.add_row(*(Text(str(c)) for c in cells))


def render(table: Table, indent: int = 0) -> str:
    """A table as plain text: no colour or ANSI codes whether or not the output is a terminal, the same characters
    whatever the terminal's width, lines without trailing spaces, each prefixed by `indent` spaces."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(
        file=buf, width=RENDER_WIDTH, color_system=None, force_terminal=False, no_color=True, highlight=False,
        markup=False, emoji=False, soft_wrap=False, legacy_windows=False,
    )  # fmt: skip
    console.print(table)
    pad = " " * indent
    return "\n".join((pad + line).rstrip() for line in buf.getvalue().splitlines())


def text_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    align: str = "",
    header: bool = True,
    gap: int = 1,
    indent: int = 0,
    max_widths: dict[int, int] | None = None,
) -> str:
    """`columns` and `rows` rendered as one text table (new_table, add_row, render)."""
    table = new_table(*columns, align=align, header=header, gap=gap, max_widths=max_widths)
    for row in rows:
        add_row(table, *row)
    return render(table, indent)


def key_values(rows: Iterable[tuple[str, object]], indent: int = 0) -> str:
    """'label  value' lines, the values aligned two spaces after the longest label."""
    return text_table(("", ""), rows, header=False, gap=2, indent=indent)


# --------------------------------------------------------------------------- JSON and CSV


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


def plan_rows(d: dict) -> list[dict]:
    """A plan document as CSV rows, one per stage, with the whole plan's band on each (`plan_gpu_hours_p10`, ...;
    empty without --uncertainty, so the columns are the same either way: a review found the band dropped)."""
    from simulator.analysis.uncertainty import OUTPUTS  # here: the band's module is not needed to print a table

    band = d.get("uncertainty") or {}
    totals = {f"plan_{k}_{p}": (band.get(k) or {}).get(p) for k in OUTPUTS for p in ("p10", "p50", "p90")}
    return [{"plan": d["plan"], **s, **totals} for s in d["stages"]]


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
        (
            "achievable",
            f"{line(a)}  the best layout on stack {a['stack']}{without_tp_overlap(a['layout'])}: {layout_text(a['layout'])}",
        ),
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
            f"batch {format_count(d['global_batch_tokens'])} tokens ({counted(round(d['steps']), 'step')})",
        ),
        ("layout" + basis, layout),
        (
            "FLOPs per token",
            f"{d['flops_per_token'] / GIGA:.1f} GFLOP model, {d['hardware_flops_per_token'] / GIGA:.1f} GFLOP "
            f"hardware (6N: {d['flops_6nd_per_token'] / GIGA:.1f})",
        ),
        ("step time", f"{d['step_time_s']:.3f} s  ({counted(d['micro_batches'], 'micro-batch', 'micro-batches')})"),
        *_pipeline_row(d["pipeline_ranks"]),
        (
            "throughput",
            f"{format_rate(d['tokens_per_s_per_gpu'])} tokens/s per GPU, {format_rate(d['model_tflop_per_s_per_gpu'])} "
            "model TFLOP/s per GPU",
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
    lines = [key_values(rows), ""]
    of_run = f" of the {d['basis']} run" if d.get("achievable") else ""
    lines.append(f"step time breakdown{of_run} (slowest pipeline rank, seconds per step)")
    lines.append(breakdown_table(d["breakdown"], d["step_time_s"], total_row=True))
    return "\n".join(lines)


def breakdown_table(breakdown: dict[str, float], total: float, total_row: bool = False, indent: int = 2) -> str:
    """Step-time components, largest first: seconds per step and share of the step (components of 0 s left out)."""
    rows = [(k, f"{v:.3f} s", f"{v / total:.1%}") for k, v in sorted(breakdown.items(), key=lambda kv: -kv[1]) if v > 0]
    if total_row:
        rows.append(("total", f"{total:.3f} s", ""))
    return text_table(("", "", ""), rows, align="lrr", header=False, gap=2, indent=indent)


# --------------------------------------------------------------------------- cost bases, plans, compare


def _money(usd: float) -> str:
    return f"${format_count(usd)}"


def unlike_lines(reported: list[dict]) -> list[str]:
    """A flag under a plan's published figures for each one whose GPU or GPU count differs from the stages it covers."""
    return [
        f"flag: {'whole plan' if r['stages'] == 'all' else ', '.join(r['stages'])}: {r['unlike']}"
        for r in reported
        if r.get("unlike")
    ]


def cost_lines(cost: dict) -> list[str]:
    """The cost block: basis and rate, the other basis, TCO components, energy and CO2, then the program apart."""
    rows = [
        (
            "cost basis",
            f"{cost['basis']}: {_money(cost['cost_usd'])} at ${cost['usd_per_gpu_hour']:.2f}/GPU-hour\n({cost['price_source']})",
        )
    ]
    if cost["basis"] == "tco":
        rows.append(("TCO components", ", ".join(f"{k} {_money(v)}" for k, v in cost["components_usd"].items())))
        rows.append(("rental instead", _money(cost["rental_cost_usd"])))
    elif cost.get("tco_cost_usd") is not None:
        rows.append(("TCO instead", f"{_money(cost['tco_cost_usd'])} (--pricing tco for its components)"))
    inputs = cost.get("inputs", {})
    grid = inputs.get("grid_kg_co2_per_kwh", {}).get("value")
    energy = f"{cost['energy_mwh']:,.0f} MWh, CO2 {cost['co2_t']:,.0f} t"
    rows.append(("energy", energy + (f" at {grid:g} kg/kWh" if grid is not None else "")))
    if "experiments_multiplier" in cost:
        rows.append(
            (
                "program",
                f"x{cost['experiments_multiplier']:g} (ablations, failed runs; not the final run): "
                f"{format_count(cost['program_gpu_hours'])} GPU-hours, {_money(cost['program_cost_usd'])}, "
                f"{cost['program_energy_mwh']:,.0f} MWh, {cost['program_co2_t']:,.0f} t CO2",
            )
        )
    return key_values(rows).splitlines()


def cost_sources(cost: dict) -> list[str]:
    """Every default behind the cost block, with its source."""
    rows = [(k, f"= {v['value']:g}", f"({v['source']})") for k, v in cost.get("inputs", {}).items()]
    return text_table(("", "", ""), rows, header=False, indent=2).splitlines() if rows else []


def plan_table(d: dict) -> str:
    head = [
        ("plan", d["plan"] + (f": {d['display_name']}" if d.get("display_name") else "")),
        ("model / GPU", f"{d['model']} on {d['gpu']}"),
        ("source", d["source"]),
    ]
    stages = [
        (
            s["name"], s["num_gpus"], format_count(s["tokens"]), s["seq_len"], s["precision"],
            layout_text(s["layout"], cell=True), f"{s['mfu']:.1%}", format_count(s["gpu_hours"]),
            f"{s['wall_clock_days']:.1f}", _money(s["cost_usd"]),
        )
        for s in d["stages"]
    ]  # fmt: skip
    stages.append(
        ("total", "", format_count(d["tokens"]), "", "", "", "", format_count(d["gpu_hours"]),
         f"{d['wall_clock_days']:.1f}", _money(d["cost_usd"]))
    )  # fmt: skip
    columns = ("stage", "GPUs", "tokens", "seq", "prec", "layout", "MFU", "GPU-hours", "days", "cost")
    lines = [key_values(head), "", text_table(columns, stages, align="lrrrllrrrr", max_widths={0: 20, 5: 34}), MFU_BASIS_NOTE]
    if d["reported"]:
        reported = [
            (
                "whole plan" if r["stages"] == "all" else ", ".join(r["stages"]),
                format_count(r["predicted_gpu_hours"]),
                format_count(r["reported_gpu_hours"]),
                f"{r['error']:+.1%}",
                r["source"],
            )
            for r in d["reported"]
        ]
        columns = ("published", "predicted", "reported", "error", "source")
        lines += ["", text_table(columns, reported, align="lrrrl", max_widths={0: 34})]
        lines += unlike_lines(d["reported"])
    lines.append("")
    lines += cost_lines(d["cost"])
    lines += training_note_lines(d["stages"])
    notes = [(s["name"], s["notes"]) for s in d["stages"] if s.get("notes")]
    if notes:
        lines += ["", "assumptions where the sources are silent"]
        lines += [f"  {name}: {note}" for name, note in notes]
    return "\n".join(lines)


MFU_BASIS_NOTE = "MFU: against the dense peak of each run's precision (an FP8 run's is the FP8 peak, twice the BF16 one)"
"""Under every table with an MFU column (docs/model.md §2.5): the basis a reader would otherwise guess as BF16."""


def training_notes(stages: list[dict]) -> list[tuple[str, str]]:
    """(stage, note) for what the training model says of each stage's training: a training stage's expected run
    (`estimate_notes`), an RL stage's training passes (each note once)."""
    return [(s["name"], n) for s in stages for n in _training_notes(s)]


def training_note_lines(stages: list[dict]) -> list[str]:
    """training_notes under a `training notes` heading (none where no stage has any)."""
    flagged = training_notes(stages)
    if not flagged:
        return []
    return ["", "training notes", *(f"  {name}: {note}" for name, note in flagged)]


def _training_notes(stage: dict) -> list[str]:
    if stage.get("kind") == "training":
        return list(stage.get("estimate_notes") or [])
    phases = stage.get("phases") or []
    return list(dict.fromkeys(n for p in phases for n in ((p.get("training") or {}).get("notes") or [])))


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
    rows = [
        (item["factor"], fmt(item["factor"], a), fmt(item["factor"], b), f"{item['value']:.3g}x", item["meaning"])
        for item in d["factor_details"]
    ]
    rows.append(("product", "", "", f"{d['product_of_factors']:.3g}x", "= the GPU-hours ratio"))
    factors = text_table(
        ("factor", a["name"], b["name"], "ratio", "meaning"), rows, align="lrrrl", gap=2, max_widths={1: 22, 2: 22}
    )
    lines = [
        head,
        f"predicted GPU-hours: {format_count(a['gpu_hours'])} ({a['gpu']}) / {format_count(b['gpu_hours'])} ({b['gpu']}), "
        "whole plans",
        "",
        factors,
    ]
    ach = d.get("achievable")
    if ach:
        lines += [
            "",
            f"the table is of the expected runs (what runs like these realized); at the achievable runs (best layout "
            f"on each stack, TP communication not overlapped unless a stage sets it): "
            f"{format_count(ach['a_gpu_hours'])} / {format_count(ach['b_gpu_hours'])} GPU-hours = "
            f"{ach['ratio']:.3g}x (efficiency factor {ach['factors']['efficiency']:.3g}x)",
        ]
    return "\n".join(lines)


def schema_row(doc: dict, model: type, open_keys: dict[str, Sequence[str]] | None = None,
               exclude: Sequence[str] = ()) -> dict:  # fmt: skip
    """`doc` flattened as `flatten` does, with a column for every leaf the output model `model` (a pydantic class)
    names, so that a CSV's columns do not change with what a result happens to hold: an absent or null sub-object
    still gives its fields' columns (empty). A dict field with open keys takes its columns from `open_keys` where
    its dotted path is listed (a vocabulary, e.g. every forward-pass component), else from `doc`; a leaf `doc`
    holds that the model does not name is kept at the end. Top-level fields in `exclude` give no columns."""
    flat = flatten({k: v for k, v in doc.items() if k not in exclude})
    columns = [c for c in _schema_columns(model, "", open_keys or {}, flat) if c.split(".")[0] not in exclude]
    row = {c: flat.get(c) for c in columns}
    # A null sub-object flattens to one key of its own, which its fields' columns replace.
    parents = {c.rsplit(".", i)[0] for c in columns for i in range(1, c.count(".") + 1)}
    return row | {k: v for k, v in flat.items() if k not in row and not (v is None and k in parents)}


def _schema_columns(model: type, prefix: str, open_keys: dict[str, Sequence[str]], flat: dict) -> list[str]:
    out: list[str] = []
    for name, field in model.model_fields.items():
        out += _annotation_columns(field.annotation, f"{prefix}{name}", open_keys, flat)
    return out


def _annotation_columns(annotation, path: str, open_keys: dict[str, Sequence[str]], flat: dict) -> list[str]:
    import types
    import typing

    from pydantic import BaseModel

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _annotation_columns(args[0], path, open_keys, flat)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _schema_columns(annotation, path + ".", open_keys, flat)
    if origin is dict:
        keys = open_keys.get(path)
        if keys is None:
            return [k for k in flat if k.startswith(path + ".")]
        return [c for k in keys for c in _annotation_columns(args[1], f"{path}.{k}", open_keys, flat)]
    return [path]
