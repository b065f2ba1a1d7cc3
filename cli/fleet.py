"""`costsim fleet FILE`: one day of a serving fleet's traffic: node-hours, cost, revenue and margin."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import Format, PositivePriceOpt, echo_result, fail
from simulator.units import GIGA, KILO, MEGA, TERA


def register(app: typer.Typer, validate_app: typer.Typer) -> None:
    app.command("fleet")(fleet_command)


def fleet_command(
    fleet: Annotated[str, typer.Argument(help="Shipped fleet name (fleets/*.yaml) or a fleet YAML")],
    predict_rates: Annotated[
        bool,
        typer.Option("--predict-rates", help="Ignore the file's per-node rates and predict both with costsim serve"),
    ] = False,
    usd_per_gpu_hour: PositivePriceOpt = None,
    format: Annotated[Format, typer.Option("--format", help="Output format (csv: one row per hour)")] = Format.table,
) -> None:
    """A day of serving traffic: token volumes and per-node rates -> node-hours (whole deployment units per hour for
    an hourly curve), cost at $/GPU-hour, revenue at a price sheet, margin = revenue / cost - 1, and the published
    figures checked. Rates the file does not give are predicted with costsim serve."""
    from simulator import api
    from simulator.errors import CostsimError

    try:
        result = api.fleet(fleet, predict_rates=predict_rates, usd_per_gpu_hour=usd_per_gpu_hour)
        d = result.to_dict()
    except CostsimError as e:
        fail(e)
    echo_result(format, d, result.rows(), lambda: fleet_table(d))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2%}"


def _tokens(x: float) -> str:
    for suffix, size in (("T", TERA), ("B", GIGA), ("M", MEGA), ("K", KILO)):
        if abs(x) >= size:
            return f"{x / size:,.4g}{suffix}"
    return f"{x:,.0f}"


def _dollars(x: float) -> str:
    """Whole dollars for a day's books; three significant figures under $100, where whole dollars read as $0 (a
    review's day of 1,000 input tokens cost $0.00075 and showed as $0 beside a 5,118% margin)."""
    from simulator.report.money import usd

    return f"${x:,.0f}" if abs(x) >= 100 else usd(x)


def _figure(key: str, value: float) -> str:
    if key.endswith("_usd"):
        return _dollars(value)
    if key == "margin":
        return f"{value:.1%}"
    return f"{value:,.2f}"


def fleet_table(d: dict) -> str:
    t, dep = d["tokens"], d["deployment"]
    title = d["display_name"] or d["fleet"]
    lines = [f"{title}  [{d['file']}]"]
    if d["window"]:
        lines.append(f"window     {d['window']}")
    form = "24 hourly figures" if d["period"] == "hourly" else "day totals"
    lines.append(f"tokens     input {_tokens(t['input'])} (cache hits {_tokens(t['cached_input'])}, "
                 f"{t['cache_hit_share']:.2%}), output {_tokens(t['output'])}; {form}")  # fmt: skip
    p, x = dep["prefill_unit"], dep["decode_unit"]
    lines.append(f"units      prefill {p['gpus']} GPUs ({p['nodes']} nodes), decode {x['gpus']} GPUs ({x['nodes']} nodes), "
                 f"{dep['gpus_per_node']} GPUs per node")  # fmt: skip
    for phase in ("prefill", "decode"):
        r = d["rates"][phase]
        versus = f" ({_pct(r['relative_to_given'])} vs {r['given_in_file']:,.0f} in the file)" if "given_in_file" in r else ""
        lines.append(f"rate       {phase:<8}{r['value']:>10,.0f} {r['unit']}{versus}")
        lines.append(f"             {r['source']}")
    nh, avg, peak = d["node_hours"], d["average_nodes"], d["peak_nodes"]
    lines.append(f"node-hours prefill {nh['prefill']:,.1f}  decode {nh['decode']:,.1f}  total {nh['total']:,.1f} "
                 f"({d['gpu_hours']:,.0f} GPU-hours)")  # fmt: skip
    at = f"at hour {peak['hour']}" if d["period"] == "hourly" else "(day totals: a flat curve)"
    lines.append(f"nodes      average {avg['total']:,.2f} (prefill {avg['prefill']:,.2f}, decode {avg['decode']:,.2f}); "
                 f"peak {peak['total']:,.2f} {at}")  # fmt: skip
    if "units_at_average" in d:
        u = d["units_at_average"]
        nodes = u["prefill"] * p["nodes"] + u["decode"] * x["nodes"]
        lines.append(
            f"           whole units at the average: {u['prefill']} prefill x {p['nodes']} nodes + {u['decode']} decode x "
            f"{x['nodes']} nodes = {nodes} nodes"
        )
    lines.append(f"cost       {_dollars(d['cost_usd'])}  ({nh['total']:,.1f} node-hours x {dep['gpus_per_node']} GPUs x "
                 f"${d['usd_per_gpu_hour']:,.2f}/GPU-hour; {d['gpu_price_source']})")  # fmt: skip
    rev, pr = d["revenue_by_kind_usd"], d["prices"]
    lines.append(f"revenue    {_dollars(d['revenue_usd'])}  (cache-hit input {_dollars(rev['cached_input'])} at "
                 f"${pr['usd_per_million_cached_input_tokens']:g}/M, cache-miss input {_dollars(rev['input'])} at "
                 f"${pr['usd_per_million_input_tokens']:g}/M, output {_dollars(rev['output'])} at "
                 f"${pr['usd_per_million_output_tokens']:g}/M)")  # fmt: skip
    lines.append(f"             {pr['source']}")
    lines.append(f"margin     {d['margin']:.1%}  (revenue / cost - 1)")
    if d["period"] == "hourly":
        lines.append("")
        lines.append(f"{'hour':>4} {'input':>9} {'output':>9} {'prefill units':>13} {'decode units':>12} {'nodes':>7} "
                     f"{'cost':>10} {'revenue':>10}")  # fmt: skip
        for h in d["hourly"]:
            lines.append(f"{h['hour']:>4} {_tokens(h['input_tokens']):>9} {_tokens(h['output_tokens']):>9} "
                         f"{h['prefill_units']:>13} {h['decode_units']:>12} {h['total_nodes']:>7,.0f} "
                         f"${h['cost_usd']:>9,.0f} ${h['revenue_usd']:>9,.0f}")  # fmt: skip
    if "published" in d:
        pub = d["published"]
        lines.append("")
        lines.append(f"published  {pub['source']}")
        for key, f in pub["figures"].items():
            # costsim / published - 1; for the margin, itself a ratio, its gap in points too (a review read +42.52% as
            # the margins' difference, which is 231.7 points)
            points = f"  ({(f['costsim'] - f['published']) * 100:+.1f} points)" if key == "margin" else ""
            lines.append(f"  {key:<14} published {_figure(key, f['published']):>12}  costsim "
                         f"{_figure(key, f['costsim']):>12}  {_pct(f['relative_difference'])} relative{points}")  # fmt: skip
    for note in d["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
