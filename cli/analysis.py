"""`costsim compare`, and the output of `costsim estimate --plan` (training plans with stages)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import ForceOpt, Format, check_output_file, document_json, echo_result, fail


def register(app: typer.Typer, validate_app: typer.Typer) -> None:
    app.command("compare")(compare_runs)


def compare_runs(
    a: Annotated[str, typer.Argument(help="Shipped plan name (costsim estimate --plan NAME) or a plan YAML")],
    b: Annotated[str, typer.Argument(help="Shipped plan name or a plan YAML")],
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a waterfall chart (PNG) of the factors")] = None,
    force: ForceOpt = False,
    format: Annotated[
        Format, typer.Option("--format", help="Output format (csv: one row per factor, expected then achievable runs)")
    ] = Format.table,
) -> None:
    """Why A costs more GPU-hours than B: the ratio as a product of FLOPs per token, tokens, peak, efficiency and goodput.

    A model name uses the shipped plan of that name, whole (every stage), as estimated by costsim.
    """
    from simulator import api
    from simulator.errors import CostsimError
    from simulator.report import tables as report
    from simulator.report.charts import compare_waterfall_chart

    try:
        check_output_file("--plot", plot, ".png", force)
        d = api.compare(a, b).to_dict()
        if plot is not None:
            compare_waterfall_chart(d, plot)
    except CostsimError as e:
        fail(e)
    echo_result(format, d, compare_rows(d), lambda: report.compare_table(d))
    if plot is not None and format == Format.table:
        typer.echo(f"waterfall chart written to {plot}")


def compare_rows(d: dict) -> list[dict]:
    """`compare --format csv`: one row per factor, then the GPU-hours ratio they multiply to, for the expected runs
    and (where given) the achievable runs; the same columns in every row."""
    rows = []
    for basis, block in (("expected", d), ("achievable", d.get("achievable"))):
        if not block:
            continue
        common = {"basis": basis, "a": d["a"]["name"], "b": d["b"]["name"]}
        for item in block["factor_details"]:
            rows.append({**common, "factor": item["factor"], "meaning": item["meaning"], "a_value": item["a"],
                         "b_value": item["b"], "ratio": item["value"]})  # fmt: skip
        a_hours = d["a"]["gpu_hours"] if basis == "expected" else block["a_gpu_hours"]
        b_hours = d["b"]["gpu_hours"] if basis == "expected" else block["b_gpu_hours"]
        rows.append({**common, "factor": "gpu_hours", "meaning": "GPU-hours: the product of the factors",
                     "a_value": a_hours, "b_value": b_hours, "ratio": block["ratio"]})  # fmt: skip
    return rows


def plan_output(d: dict, fmt: str) -> str:
    """`costsim estimate --plan PLAN` (simulator.api.plan(...).to_dict()): every stage, totals, cost and, with
    --uncertainty, the band; as table, json or csv (one row per stage)."""
    from simulator.report import tables as report

    if fmt == "json":
        return document_json(d)
    if fmt == "csv":
        return report.to_csv(report.plan_rows(d))
    if any(s["kind"] != "training" for s in d["stages"]):
        from simulator.report.rl_table import rl_plan_table

        lines = [rl_plan_table(d)]
    else:
        lines = [report.plan_table(d)]
    for gpu, stage in {s["gpu"]: s for s in d["stages"]}.items():
        lines += ["", f"cost inputs ({gpu})", *report.cost_sources(stage["cost"])]
    if "uncertainty" in d:
        from simulator.report.document import uncertainty_table

        lines.append(uncertainty_table(d["uncertainty"]))
    return "\n".join(lines)
