"""Text of uncertainty results and of the `costsim report` document (Markdown and HTML)."""

from __future__ import annotations

from .units import format_count

OUTPUT_LABELS = {"gpu_hours": "GPU-hours", "wall_clock_days": "wall clock, days", "cost_usd": "cost, USD"}


def _fmt(output: str, x: float) -> str:
    if output == "wall_clock_days":
        return f"{x:.1f}"
    if output == "cost_usd":
        return f"${format_count(x)}"
    return format_count(x)


def _fmt_input(x: float) -> str:
    return format_count(x) if abs(x) >= 1e3 else f"{x:.3g}"


def uncertainty_table(u: dict) -> str:
    """The uncertainty block of `costsim estimate --uncertainty` as text."""
    lines = ["", f"uncertainty ({u['draws']:,} draws, seed {u['seed']})"]
    lines.append(f"  {'':<18} {'P10':>9} {'P50':>9} {'P90':>9} {'nominal':>9}")
    for k, label in OUTPUT_LABELS.items():
        vals = [u[k]["p10"], u[k]["p50"], u[k]["p90"], u["nominal"][k]]
        lines.append(f"  {label:<18} " + " ".join(f"{_fmt(k, v):>9}" for v in vals))
    lines.append("")
    lines.append("what moves the cost most (input at its P10 / P90, all others nominal; full model)")
    width = max((len(b["label"]) for b in u["tornado"]), default=10)
    for b in u["tornado"]:
        lo, hi = b["at_input_p10"]["cost_usd"], b["at_input_p90"]["cost_usd"]
        lines.append(
            f"  {b['label']:<{width}}  {_fmt_input(b['input_p10']):>8} .. {_fmt_input(b['input_p90']):<8}"
            f"  {_fmt('cost_usd', lo):>8} .. {_fmt('cost_usd', hi)}"
        )
    s = u["surrogate"]
    err = max(s["max_abs_error"].values(), default=float("nan"))
    lines.append("")
    lines.append(
        f"draws go through a surrogate ({s['evaluations']} full-model evaluations); against {s['checks']} joint "
        f"full-model draws its largest error is {err:.2%}. Draws took {u['draw_seconds']:.2f} s, "
        f"model evaluations {u['model_seconds']:.2f} s."
    )
    lines += [f"note: {n}" for n in u["notes"]]
    return "\n".join(lines)
