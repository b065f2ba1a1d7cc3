"""PNG charts for `costsim report`: plain numbers in, one file out per chart.

matplotlib is imported inside each function (Agg backend, no display) so that the estimator
never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simulator.errors import InputError
from simulator.units import format_count

DPI = 144
WIDTH_IN = 8.0
BLUE, ORANGE, GREY, RED = "#2f6db5", "#e07b24", "#8a8a8a", "#c0392b"


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported here, never on the estimate path)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> Path:
    """Write and close a figure; a path that cannot be written is an input error, not a traceback."""
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=DPI, format="png")
    except OSError as e:
        raise InputError(f"{path}: cannot write the chart ({e.strerror or e}); pass a writable .png path") from None
    finally:
        pyplot().close(fig)
    return path


def _usd(x: float) -> str:
    return f"${format_count(x)}"


def step_time_chart(breakdown_s: dict[str, float], path: Path) -> Path:
    """Horizontal bars: seconds per step of each component of the slowest pipeline rank."""
    plt = pyplot()
    items = sorted(((k, v) for k, v in breakdown_s.items() if v > 0), key=lambda kv: kv[1])
    total = sum(v for _, v in items)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.32 * len(items) + 1.2))
    ax.barh([k.replace("_", " ") for k, _ in items], [v for _, v in items], color=BLUE)
    for i, (_, v) in enumerate(items):
        ax.text(v, i, f" {v:.3g} s ({v / total:.0%})", va="center", fontsize=8)
    ax.set_xlabel("seconds per optimizer step")
    ax.set_title(f"Step time breakdown (total {total:.3g} s)")
    ax.set_xlim(0, max(v for _, v in items) * 1.3)
    return save_png(fig, path)


def cost_chart(cost_usd: dict[str, float], path: Path) -> Path:
    """Horizontal bars: dollars of the run by what the GPUs were doing."""
    plt = pyplot()
    items = [(k, v) for k, v in cost_usd.items() if v > 0]
    total = sum(v for _, v in items)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.45 * len(items) + 1.2))
    ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1], color=ORANGE)
    for i, (_, v) in enumerate(items[::-1]):
        ax.text(v, i, f" {_usd(v)} ({v / total:.0%})", va="center", fontsize=8)
    ax.set_xlabel("USD")
    ax.set_title(f"Where the money goes (total {_usd(total)})")
    ax.set_xlim(0, max(v for _, v in items) * 1.35)
    ax.xaxis.set_major_formatter(lambda x, _: _usd(x))
    return save_png(fig, path)


def tornado_chart(bars: Sequence[dict], nominal_usd: float, path: Path, output: str = "cost_usd") -> Path:
    """Tornado: the output with each input at its P10 and its P90, largest swing on top."""
    plt = pyplot()
    bars = list(bars)[::-1]
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.4 * max(len(bars), 1) + 1.4))
    for i, b in enumerate(bars):
        lo, hi = b["at_input_p10"][output], b["at_input_p90"][output]
        for value, color in ((lo, BLUE), (hi, RED)):
            ax.barh(i, value - nominal_usd, left=nominal_usd, color=color, height=0.6)
    ax.set_yticks(range(len(bars)), [b["label"] for b in bars], fontsize=8)
    ax.axvline(nominal_usd, color="black", linewidth=1)
    ax.xaxis.set_major_formatter(lambda x, _: _usd(x))
    ax.set_xlabel("training cost, USD (blue: input at its P10, red: at its P90; others nominal)")
    ax.set_title(f"What moves the cost most (nominal {_usd(nominal_usd)})")
    return save_png(fig, path)


def scaling_chart(points: Sequence[dict], chosen_gpus: int, path: Path) -> Path:
    """Wall-clock days and GPU-hours (with dollars) against the GPU count, chosen point marked."""
    plt = pyplot()
    gpus = [p["num_gpus"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH_IN * 1.25, 3.8))
    left.plot(gpus, [p["wall_clock_days"] for p in points], "o-", color=BLUE)
    right.plot(gpus, [p["gpu_hours"] for p in points], "o-", color=ORANGE)
    for ax, key in ((left, "wall_clock_days"), (right, "gpu_hours")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(gpus, [f"{g:,}" for g in gpus], fontsize=8, rotation=30)
        ax.minorticks_off()
        ax.set_xlabel("GPUs")
        chosen = [p for p in points if p["num_gpus"] == chosen_gpus]
        if chosen:
            ax.plot([chosen_gpus], [chosen[0][key]], "o", color="black", markersize=9, fillstyle="none")
        ax.grid(alpha=0.3)
    left.set_ylabel("wall clock, days")
    right.set_ylabel("GPU-hours")
    right.yaxis.set_major_formatter(lambda x, _: format_count(x))
    price = points[0]["cost_usd"] / points[0]["gpu_hours"]
    dollars = right.secondary_yaxis("right", functions=(lambda h: h * price, lambda c: c / price))
    dollars.set_ylabel("USD")
    dollars.yaxis.set_major_formatter(lambda x, _: _usd(x))
    fig.suptitle("Scaling with cluster size (best layout at each size; circled: this estimate)")
    return save_png(fig, path)


def distribution_chart(cost_samples_usd, band: dict, nominal_usd: float, path: Path) -> Path:
    """Histogram of the drawn costs with P10, P50, P90 and the nominal estimate."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.4))
    ax.hist(cost_samples_usd, bins=60, color=GREY)
    for q, style in (("p10", ":"), ("p50", "-"), ("p90", ":")):
        ax.axvline(band[q], color=BLUE, linestyle=style, label=f"{q.upper()} {_usd(band[q])}")
    ax.axvline(nominal_usd, color=RED, label=f"nominal {_usd(nominal_usd)}")
    ax.xaxis.set_major_formatter(lambda x, _: _usd(x))
    ax.set_xlabel("training cost, USD")
    ax.set_ylabel("draws")
    ax.legend(fontsize=8)
    ax.set_title(f"Cost over {len(cost_samples_usd):,} draws of the uncertain inputs")
    return save_png(fig, path)


def plot_sweep(rows, model_name: str, path: Path) -> None:
    plt = pyplot()
    fig, (ax_days, ax_cost) = plt.subplots(1, 2, figsize=(11, 4.2))
    for gpu in dict.fromkeys(r.gpu for r in rows):
        ok = [r for r in rows if r.gpu == gpu and r.feasible]
        if not ok:
            continue
        n = [r.num_gpus for r in ok]
        ax_days.plot(n, [r.wall_clock_days for r in ok], marker="o", label=gpu)
        ax_cost.plot(n, [r.cost_usd / 1e6 for r in ok], marker="o", label=gpu)
    for ax, label in ((ax_days, "wall-clock days"), (ax_cost, "cost (million USD)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("GPUs")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"{model_name}: best layout per cluster size (costsim sweep)")
    save_png(fig, path)
