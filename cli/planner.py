"""`costsim search` and `costsim sweep`: the planner's commands (formulas live in simulator/search.py, sweep.py)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated

import typer

from cli.options import (
    BF16,
    SEARCH_LAYOUT_FLAGS,
    BatchOpt,
    ForceOpt,
    ModelArg,
    NumGpusOpt,
    Objective,
    PrecOpt,
    PriceOpt,
    RecipeOpt,
    SeqLenOpt,
    StackOpt,
    TokensOpt,
    check_output_file,
    echo_result,
    fail,
    job_options,
    layout_flags,
    ranged,
)
from cli.options import Format as OutFormat
from simulator.report.tables import (
    MFU_BASIS_NOTE,
    add_row,
    breakdown_table,
    layout_text,
    new_table,
    render,
    schema_row,
    text_table,
)

TABLE_TOP = 10
"""Layouts a search table shows unless --top says otherwise."""
DATA_TOP = 1_000
"""Candidates JSON and CSV list unless --top says how many: a large search has 10^5-10^6 (hundreds of MB of JSON)."""


@layout_flags(SEARCH_LAYOUT_FLAGS)
def search_command(
    model: ModelArg,
    gpu: Annotated[str, typer.Option(help="Hardware profile id or alias (costsim list gpus)")],
    num_gpus: NumGpusOpt,
    tokens: TokensOpt,
    seq_len: SeqLenOpt = None,
    global_batch_tokens: BatchOpt = None,
    precision: PrecOpt = BF16,
    fp8_recipe: RecipeOpt = None,
    objective: Annotated[Objective, typer.Option(help="Rank by step time or by dollars")] = Objective.time,
    top: Annotated[
        int | None,
        ranged(
            "Layouts shown, best first (table default 10; json/csv default 1,000)",
            1,
            1_000_000,
            "give how many layouts to show, e.g. 10",
        ),
    ] = None,
    layout: dict | None = None,  # --tp ... --tp-overlap, declared once in cli/options.py
    reference: Annotated[
        str | None, typer.Option(help="Layout to compare with the best, e.g. tp=1,pp=16,ep=64 (default: the published one)")
    ] = None,
    usd_per_gpu_hour: PriceOpt = None,
    rental: Annotated[
        str | None,
        typer.Option(help="Which of each profile's rental quotes: on-demand or reserved (default: on-demand where quoted)"),
    ] = None,
    stack: StackOpt = None,
    format: Annotated[
        OutFormat, typer.Option("--format", help="table: the top layouts; json/csv: the best 1,000 candidates, or the --top")
    ] = (OutFormat.table),
) -> None:
    """Evaluate every valid layout (TP, PP, DP, EP, CP, ZeRO, micro-batch, schedule, virtual stages, recompute)."""
    from cli.progress import DelayedProgress
    from simulator import api
    from simulator.errors import CostsimError

    # A table shows the best 10 by default; JSON and CSV the best DATA_TOP unless --top says how many (a large search
    # can have 10^5-10^6 candidates: every one of DeepSeek-V3's on 2,048 H800 is 0.5 GB of JSON).
    top = top if top is not None else (TABLE_TOP if format == OutFormat.table else DATA_TOP)
    try:
        job_args = job_options(tokens, seq_len, global_batch_tokens, precision, fp8_recipe)
        fixed = {k: v for k, v in (layout or {}).items() if v is not None}
        with DelayedProgress("searching layouts") as bar:
            result = api.search(
                model, gpu, num_gpus, **job_args, objective=objective.value, usd_per_gpu_hour=usd_per_gpu_hour,
                rental=rental, stack=stack, reference=reference, top=top, progress=bar.update, **fixed,
            )  # fmt: skip
    except CostsimError as e:
        fail(e)
    doc = result.to_dict()
    echo_result(format, doc, doc["candidates"], lambda: search_table(doc, top or TABLE_TOP))


def search_table(doc: dict, top: int) -> str:
    lines = [
        f"{doc['model']} on {doc['num_gpus']} x {doc['gpu']} ({doc['precision']}): {doc['grid_size']:,} candidates, "
        f"{doc['evaluated']:,} valid and evaluated, {doc['feasible']:,} fit in {doc['gpu_memory_gib']:.0f} GiB",
        price_line(doc["price_quote"], doc["gpu"]),
        "",
    ]
    cells = [
        (
            row["rank"], layout_text(row["layout"]), f"{row['step_time_s']:.3f}", f"{row['gpu_hours']:,.0f}",
            f"{row['cost_usd']:,.0f}", f"{row['mfu']:.1%}", f"{row['memory_per_gpu_gib']:.1f}",
            f"{doc['gpu_memory_gib'] - row['memory_per_gpu_gib']:.1f}",
        )
        for row in itertools.takewhile(lambda r: r["feasible"], doc["candidates"][:top])
    ]  # fmt: skip
    columns = ("#", "layout", "step s", "GPU-hours", "cost $", "MFU", "mem GiB", "free")
    lines.append(text_table(columns, cells, align="rlrrrrrr"))
    lines.append(MFU_BASIS_NOTE)
    if doc["best"] is not None:
        lines.append(f"#1 as `costsim estimate` flags: {estimate_flags(doc['best']['layout'])}{HELD_LAYOUT_NOTE}")
    if doc["best"] is None:
        closest = doc["closest"]
        lines.append(f"no layout fits in memory; the one needing the least: {layout_text(closest['layout'])}")
        lines.append(f"  {closest['reason']}")
    else:
        lines += ["", "step time breakdown of #1 (seconds per step)"]
        lines.append(breakdown_table(doc["best"]["breakdown_s"], doc["best"]["step_time_s"]))
    ref = doc["reference"]
    if ref is not None:
        lines.append("")
        if ref["rank"] is None:
            lines.append(f"reference {ref['layout']} ({ref['source']}): {ref['note']}")
        else:
            status = "in the top 10" if ref.get("in_top_10_feasible") else "not in the top 10"
            lines.append(f"reference {ref['layout']} ({ref['source']}): rank {ref['rank']}, {status}")
            why = ref.get("why_slower")
            if why:
                lines.append(f"  {why['summary']}")
                terms = [(t["term"], f"{t['reference_minus_best_s']:+.3f} s") for t in why["terms_s"][:6]]
                lines.append(text_table(("", ""), terms, align="lr", header=False, indent=4))
    return "\n".join(lines)


@layout_flags(SEARCH_LAYOUT_FLAGS)
def sweep_command(
    model: ModelArg,
    gpu: Annotated[str, typer.Option(help="Hardware profile ids, comma-separated, e.g. h800,h100-sxm")],
    num_gpus: Annotated[str, typer.Option(help="GPU counts: 256,512,1024 or a doubling range 256,512,...,16384")],
    tokens: TokensOpt,
    seq_len: SeqLenOpt = None,
    global_batch_tokens: BatchOpt = None,
    precision: PrecOpt = BF16,
    fp8_recipe: RecipeOpt = None,
    layout: dict | None = None,  # --tp ... --tp-overlap, declared once in cli/options.py
    deadline_days: Annotated[
        float | None,
        ranged("Find the cheapest cluster that finishes within D days", 0.001, 36500, "give days, e.g. 60"),
    ] = None,
    budget_usd: Annotated[
        float | None, ranged("Find the fastest cluster that costs at most B dollars", 1.0, 1e13, "give dollars, e.g. 6e6")
    ] = None,
    usd_per_gpu_hour: PriceOpt = None,
    rental: Annotated[
        str | None,
        typer.Option(help="Which of each profile's rental quotes: on-demand or reserved (default: on-demand where quoted)"),
    ] = None,
    stack: StackOpt = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG chart of days and dollars against GPU count")] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the rows to this CSV file")] = None,
    force: ForceOpt = False,
    format: Annotated[OutFormat, typer.Option("--format", help="Output format")] = OutFormat.table,
) -> None:
    """Best layout, days, GPU-hours, dollars and MFU for each GPU type and cluster size."""
    from cli.progress import DelayedProgress
    from simulator.analysis.sweep import cheapest_within, fastest_within, parse_gpu_counts, sweep
    from simulator.errors import CostsimError, InputError, LayoutError
    from simulator.inputs.catalog import load_hardware, load_model
    from simulator.inputs.stacks import load_stack
    from simulator.report import tables as report
    from simulator.run.cost import CostOptions
    from simulator.units import SECONDS_PER_DAY

    try:
        spec = load_model(model)
        gpu_ids = [g.strip() for g in gpu.split(",") if g.strip()]
        if not gpu_ids:
            raise InputError("--gpu is empty; give one or more profile ids, e.g. h800,h100-sxm")
        # One row per profile: aliases of one GPU (h100, h100-sxm, H100) name the same profile.
        gpus = list({hw.name: hw for hw in (load_hardware(g) for g in gpu_ids)}.values())
        for hw in gpus:  # fail before the first search rather than after it (search checks again)
            hw.peak_flop_per_s(precision.value)
        counts = parse_gpu_counts(num_gpus)
        job_args = job_options(tokens, seq_len, global_batch_tokens, precision, fp8_recipe)
        check_output_file("--plot", plot, ".png", force)
        check_output_file("--output", output, ".csv", force)
        with DelayedProgress("sweeping clusters") as bar:
            costs = CostOptions(usd_per_gpu_hour=usd_per_gpu_hour, rental_kind=rental)
            rows = sweep(spec, gpus, counts, job_args, layout, costs, bar.update, load_stack(stack))
    except CostsimError as e:
        fail(e)
    if rows and not any(r.candidates for r in rows):
        # No cell has a single valid layout: the given fields break a layout rule everywhere (bad input). Cells whose
        # layouts are valid but do not fit in memory stay data, as in `costsim search`.
        reasons = list(dict.fromkeys(r.reason for r in rows))
        fail(LayoutError("no cell of the sweep has a valid layout: " + "; ".join(reasons[:3])))
    doc: dict = {"model": spec.name, "precision": precision.value, "rows": [r.to_dict() for r in rows]}
    deadline_s = None if deadline_days is None else deadline_days * SECONDS_PER_DAY
    for flag, value, limit, pick in (
        ("deadline_days", deadline_days, deadline_s, cheapest_within),
        ("budget_usd", budget_usd, budget_usd, fastest_within),
    ):
        if value is not None:
            row, text = pick(rows, limit)
            doc[flag] = {"value": value, "answer": row.to_dict() if row else None, "reason": text}
    try:
        if plot is not None:
            from simulator.report.charts import plot_sweep

            plot_sweep(rows, spec.name, plot)
        if output is not None:
            with output.open("w" if force else "x", encoding="utf-8", newline="") as f:  # "x": no race past the check
                f.write(report.to_csv(sweep_csv_rows(doc)))
    except FileExistsError:
        fail(InputError(f"--output {output} was created by someone else meanwhile; add --force to overwrite it"))
    except OSError as e:
        fail(InputError(f"cannot write {e.filename or output}: {e.strerror}; pick a writable path"))
    except CostsimError as e:
        fail(e)
    echo_result(format, doc, sweep_csv_rows(doc), lambda: sweep_table(doc))


def sweep_csv_rows(doc: dict) -> list[dict]:
    """The sweep's rows with the same columns whichever row comes first (an infeasible first row, its layout null, put
    a lone `layout` column first and the layout's fields last): every field of the row model (outputs.SweepRow)."""
    from simulator.outputs import SweepRow

    return [schema_row(r, SweepRow) for r in doc["rows"]]


def sweep_table(doc: dict) -> str:
    columns = ("gpu", "GPUs", "best layout", "step s", "comm s", "days", "GPU-hours", "cost $", "exp. days", "exp. $", "MFU",
               "GiB", "$/GPU-h", "price")  # fmt: skip
    layouts = [layout_text(r["layout"]) for r in doc["rows"] if r["feasible"]]
    # an infeasible row's reason wraps inside the layout column, as wide as the widest layout
    table = new_table(*columns, align="lrlrrrrrrrrrrl", max_widths={2: max(map(len, layouts), default=66)})
    for r in doc["rows"]:
        if not r["feasible"]:
            add_row(table, r["gpu"], r["num_gpus"], f"infeasible: {r['reason']}", *[""] * 11)
            continue
        e = r.get("expected")
        add_row(
            table, r["gpu"], r["num_gpus"], layout_text(r["layout"]), f"{r['step_time_s']:.2f}",
            f"{r['exposed_comm_s']:.2f}", f"{r['wall_clock_days']:.1f}", f"{r['gpu_hours']:,.0f}",
            f"{r['cost_usd']:,.0f}", f"{e['wall_clock_days']:.1f}" if e else "", f"{e['cost_usd']:,.0f}" if e else "",
            f"{r['mfu']:.1%}", f"{r['memory_per_gpu_gib']:.1f}", f"{r['usd_per_gpu_hour']:.2f}",
            price_text(r["price_kind"], r["price_date"], r["price_flagged"]),
        )  # fmt: skip
    lines = [render(table), MFU_BASIS_NOTE]
    lines.append(
        "days, GPU-hours, cost: the achievable run (the best layout on a frontier-tuned stack); exp. days, exp. $: the "
        "expected run (the stack's practice, realized as published runs were)"
    )
    lines.append(
        "comm s: communication on the critical path per step, plus the SM share overlapped communication takes from "
        "compute (GPUs that differ only in their links differ here)"
    )
    flagged = sorted({r["gpu"] for r in doc["rows"] if r["price_flagged"]})
    if flagged:
        lines.append(f"{FLAG_NOTE} ({', '.join(flagged)}): its dollars do not compare like with like with the others'")
    for flag, label in (("deadline_days", "deadline"), ("budget_usd", "budget")):
        if flag in doc:
            entry = doc[flag]
            lines.append("")
            if entry["answer"] is None:
                lines.append(f"{label}: {entry['reason']}")
            else:
                a = entry["answer"]
                lines.append(
                    f"{label}: {entry['reason']}: {a['num_gpus']} x {a['gpu']}, {layout_text(a['layout'])}, "
                    f"{a['wall_clock_days']:.1f} days, ${a['cost_usd']:,.0f} "
                    f"at ${a['usd_per_gpu_hour']:.2f}/GPU-hour {price_text(a['price_kind'], a['price_date'], a['price_flagged'])}"
                )
                e = a.get("expected")
                if e:
                    limit = doc[flag]["value"]
                    missed = (e["wall_clock_days"] > limit) if flag == "deadline_days" else (e["cost_usd"] > limit)
                    lines.append(
                        f"  the achievable run; the expected run on this cluster (the stack's practice layout, realized) "
                        f"takes {e['wall_clock_days']:.1f} days, "
                        f"${e['cost_usd']:,.0f}" + (f", which misses the {label}" if missed else f", within the {label} too")
                    )
                cluster = f"--gpu {a['gpu']} --num-gpus {a['num_gpus']}"
                lines.append(f"  as `costsim estimate` flags: {cluster} {estimate_flags(a['layout'])}{HELD_LAYOUT_NOTE}")
    return "\n".join(lines)


HELD_LAYOUT_NOTE = " (the achievable run as shown; estimate's expected run then holds this layout, not the practice one)"
"""Why `costsim estimate` with the printed flags gives another expected run than the one shown: the flags fix the
layout, and the expected run shown is at the stack's practice layout (a review: sweep's 287.5 days against 269.1)."""


FLAG_NOTE = "* not the kind of price asked for (--rental, default on-demand): the reference has no such quote for this GPU"


def price_text(kind: str, date: str | None, flagged: bool) -> str:
    """'on-demand 2026-01', or 'reserved 2024-12 *' for a price of another kind than asked (FLAG_NOTE)."""
    from simulator.run.cost import quote_label

    return quote_label(kind, date) + (" *" if flagged else "")


def price_line(quote: dict, gpu: str) -> str:
    """The search's price: dollars per GPU-hour, kind and date, and the flag's meaning when it is flagged."""
    kind = price_text(quote["kind"], quote["date"], quote["flagged"])
    line = f"priced at ${quote['usd_per_gpu_hour']:.2f}/GPU-hour of {gpu}, {kind}"
    return line + (f"\n{FLAG_NOTE}" if quote["flagged"] else "")


def estimate_flags(layout: dict) -> str:
    """Every field of a layout as `costsim estimate` flags, TP overlap included (estimate leaves it off unless asked),
    so the estimate reproduces the row: --tp 16 --pp 1 ... --tp-overlap."""
    from simulator.vocab import LAYOUT_FIELDS

    parts = []
    for name in LAYOUT_FIELDS:
        value = layout[name]
        if name == "tp_overlap":
            parts.append("--tp-overlap" if value else "--no-tp-overlap")
        else:
            parts.append(f"--{name.replace('_', '-')} {value}")
    return " ".join(parts)


def register(app: typer.Typer, validate_app: typer.Typer) -> None:
    app.command("search")(search_command)
    app.command("sweep")(sweep_command)
