"""`costsim compare`, and the output of `costsim estimate --plan` (training plans with stages)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import TableJson, check_output_file, fail


def register(app: typer.Typer, validate_app: typer.Typer) -> None:
    app.command("compare")(compare_runs)


def compare_runs(
    a: Annotated[str, typer.Argument(help="Shipped plan name (costsim estimate --plan NAME) or a plan YAML")],
    b: Annotated[str, typer.Argument(help="Shipped plan name or a plan YAML")],
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a waterfall chart (PNG) of the factors")] = None,
    format: Annotated[TableJson, typer.Option("--format", help="Output format")] = TableJson.table,
) -> None:
    """Why A costs more GPU-hours than B: the ratio as a product of FLOPs per token, tokens, peak, efficiency and goodput.

    A model name uses the shipped plan of that name, whole (every stage), as estimated by costsim.
    """
    from simulator import api
    from simulator.errors import CostsimError
    from simulator.report import tables as report
    from simulator.report.charts import compare_waterfall_chart

    try:
        check_output_file("--plot", plot, ".png")
        d = api.compare(a, b).to_dict()
        if plot is not None:
            compare_waterfall_chart(d, plot)
    except CostsimError as e:
        fail(e)
    typer.echo(report.to_json(d) if format == TableJson.json else report.compare_table(d))
    if plot is not None and format != TableJson.json:
        typer.echo(f"waterfall chart written to {plot}")


def plan_output(d: dict, fmt: str) -> str:
    """`costsim estimate --plan PLAN` (simulator.api.plan(...).to_dict()): every stage, totals, cost and, with
    --uncertainty, the band; as table, json or csv (one row per stage)."""
    from simulator.report import tables as report

    if fmt == "json":
        return report.to_json(d)
    if fmt == "csv":
        return report.to_csv([{"plan": d["plan"], **s} for s in d["stages"]])
    lines = [report.plan_table(d)]
    for gpu, stage in {s["gpu"]: s for s in d["stages"]}.items():
        lines += ["", f"cost inputs ({gpu})", *report.cost_sources(stage["cost"])]
    if "uncertainty" in d:
        from simulator.report.document import uncertainty_table

        lines.append(uncertainty_table(d["uncertainty"]))
    return "\n".join(lines)
