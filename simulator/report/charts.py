"""PNG charts for `costsim report`: plain numbers in, one file out per chart.

matplotlib is imported inside each function (Agg backend, no display) so that the estimator
never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simulator.errors import InputError
from simulator.report.money import usd
from simulator.report.rl_table import PARTS
from simulator.units import SECONDS_PER_DAY, format_count

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


def plain_number(x: float) -> str:
    """A tick label without exponents: '1,024', '250', '1.5', '0.02'."""
    if x == 0:
        return "0"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2g}" if abs(x) < 1 else f"{x:.3g}"


def nice_log_ticks(lo: float, hi: float, most: int = 7) -> list[float]:
    """Round values (1, 2, 5 x 10^k, or finer when the range is short) between lo and hi, at most `most` of them."""
    import math

    if not (lo > 0 and hi > lo):
        return [lo] if lo > 0 else []
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    for mantissas in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0**k for k in decades for m in mantissas if lo <= m * 10.0**k <= hi]
        if len(ticks) >= 3:
            break
    if len(ticks) > most:
        ticks = [10.0**k for k in decades if lo <= 10.0**k <= hi] or ticks
    while len(ticks) > most:
        ticks = ticks[::2]
    return ticks


def end_ticks(lo: float, hi: float) -> list[float]:
    """Two values just inside [lo, hi], a tenth of the range in from each end."""
    pad = (hi - lo) / 10
    return [lo + pad, hi - pad]


def _distinct(fmt):
    """`fmt` where it tells two values apart, else the plain number with all its digits (and fmt's currency sign)."""
    sign = "$" if fmt(1.0).startswith("$") else ""
    return lambda x: f"{sign}{x:,.0f}" if abs(x) >= 100 else f"{sign}{x:.4g}"


def plain_log_axis(ax, which: str, fmt=plain_number) -> None:
    """Label a log axis with round plain numbers ('2,000', '$5.00M'), never '10^3' or '2^10'; no minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    ticks = nice_log_ticks(lo, hi)
    if len({fmt(t) for t in ticks}) < 2 and hi > lo > 0:
        # A short range (a sweep's costs within 1%) has no round value inside, or labels that print alike ('$106K'
        # three times): label its two ends with every digit that tells them apart.
        ticks, fmt = end_ticks(lo, hi), _distinct(fmt)
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda x, _: fmt(x)))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def gpu_count_axis(ax, counts) -> None:
    """A base-2 log axis of GPU counts labelled with the counts themselves ('1,024'), not '2^10'."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log", base=2)
    counts = sorted(set(counts))
    step = max(1, -(-len(counts) // 8))
    ax.xaxis.set_major_locator(FixedLocator(counts[::step]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.xaxis.set_minor_locator(NullLocator())


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
        ax.text(v, i, f" {usd(v)} ({v / total:.0%})", va="center", fontsize=8)
    ax.set_xlabel("USD")
    ax.set_title(f"Where the money goes (total {usd(total)})")
    ax.set_xlim(0, max(v for _, v in items) * 1.35)
    ax.xaxis.set_major_formatter(lambda x, _: usd(x))
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
    ax.xaxis.set_major_formatter(lambda x, _: usd(x))
    ax.set_xlabel("training cost, USD (blue: input at its P10, red: at its P90; others nominal)")
    ax.set_title(f"What moves the cost most (nominal {usd(nominal_usd)})")
    return save_png(fig, path)


def scaling_chart(points: Sequence[dict], chosen_gpus: int, path: Path) -> Path:
    """Wall-clock days and GPU-hours (with dollars) against the GPU count, chosen point marked."""
    plt = pyplot()
    gpus = [p["num_gpus"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH_IN * 1.25, 3.8))
    left.plot(gpus, [p["wall_clock_days"] for p in points], "o-", color=BLUE)
    right.plot(gpus, [p["gpu_hours"] for p in points], "o-", color=ORANGE)
    for ax, key in ((left, "wall_clock_days"), (right, "gpu_hours")):
        gpu_count_axis(ax, gpus)
        ax.tick_params(axis="x", labelsize=8, labelrotation=30)
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
    dollars.yaxis.set_major_formatter(lambda x, _: usd(x))
    fig.suptitle("Scaling with cluster size (best layout at each size; circled: this estimate)")
    return save_png(fig, path)


def distribution_chart(cost_samples_usd, band: dict, nominal_usd: float, path: Path) -> Path:
    """Histogram of the drawn costs with P10, P50, P90 and the nominal estimate."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.4))
    ax.hist(cost_samples_usd, bins=60, color=GREY)
    for q, style in (("p10", ":"), ("p50", "-"), ("p90", ":")):
        ax.axvline(band[q], color=BLUE, linestyle=style, label=f"{q.upper()} {usd(band[q])}")
    ax.axvline(nominal_usd, color=RED, label=f"nominal {usd(nominal_usd)}")
    ax.xaxis.set_major_formatter(lambda x, _: usd(x))
    ax.set_xlabel("training cost, USD")
    ax.set_ylabel("draws")
    ax.legend(fontsize=8)
    ax.set_title(f"Cost over {len(cost_samples_usd):,} draws of the uncertain inputs")
    return save_png(fig, path)


def plot_sweep(rows, model_name: str, path: Path) -> None:
    """Days and dollars against the GPU count, one line per GPU; axes in plain numbers and dollars."""
    from simulator.errors import InputError

    if not any(r.feasible for r in rows):  # an empty 0-1 plot would look like a chart of something
        raise InputError(
            "--plot: no swept cluster is feasible, so there is nothing to draw; add larger --num-gpus or drop --plot"
        )
    plt = pyplot()
    fig, (ax_days, ax_cost) = plt.subplots(1, 2, figsize=(11, 4.2))
    counts = []
    for gpu in dict.fromkeys(r.gpu for r in rows):
        ok = [r for r in rows if r.gpu == gpu and r.feasible]
        if not ok:
            continue
        n = [r.num_gpus for r in ok]
        counts += n
        ax_days.plot(n, [r.wall_clock_s / SECONDS_PER_DAY for r in ok], marker="o", label=gpu)
        ax_cost.plot(n, [r.cost_usd for r in ok], marker="o", label=gpu)
    for ax, label, fmt in ((ax_days, "wall-clock days", plain_number), (ax_cost, "cost, USD", usd)):
        ax.set_yscale("log")
        ax.set_xlabel("GPUs")
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.3)
        if counts:
            gpu_count_axis(ax, counts)
            plain_log_axis(ax, "y", fmt)
            ax.legend()
    fig.suptitle(f"{model_name}: best layout per cluster size (costsim sweep)")
    save_png(fig, path)


def compare_waterfall_chart(d: dict, path: Path) -> Path:
    """A multiplicative waterfall on a log axis: each bar moves the running product by one factor."""
    plt = pyplot()
    labels, bottoms, tops = [], [], []
    running = 1.0
    for item in d["factor_details"]:
        labels.append(item["factor"].replace("_", " "))
        bottoms.append(running)
        running *= item["value"]
        tops.append(running)
    labels.append("total")
    bottoms.append(1.0)
    tops.append(d["ratio"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (lo, hi) in enumerate(zip(bottoms, tops, strict=True)):
        color = "#4c72b0" if i == len(labels) - 1 else ("#c44e52" if hi >= lo else "#55a868")
        ax.bar(i, hi - lo if hi >= lo else lo - hi, bottom=min(lo, hi), color=color, width=0.6)
        ax.annotate(f"{(hi / lo if i < len(labels) - 1 else hi):.3g}x", (i, max(lo, hi)), ha="center", va="bottom")
    if "reported_ratio" in d:
        ax.axhline(d["reported_ratio"], color="gray", linestyle="--", linewidth=1, label=f"reported {d['reported_ratio']:.3g}x")
        ax.legend(loc="upper left")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    plain_log_axis(ax, "y", lambda x: f"{plain_number(x)}x")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("GPU-hours ratio (log scale)")
    ax.set_title(f"GPU-hours {d['a']['name']} / {d['b']['name']} = {d['ratio']:.3g}x (predicted)")
    return save_png(fig, path)


def validation_chart(doc: dict, path: Path) -> Path:
    """Log-log scatter of predicted against reported (the `validate public` document), one colour per metric and one
    marker per track (steady state: circles; whole runs: triangles, hollow where the scope is flagged), with y = x
    and each track's target as +-median lines."""
    cases = doc["cases"]
    markers = {"steady_state": "o", "whole_run": "^"}

    fig, ax = pyplot().subplots(figsize=(7.5, 6.5))
    for i, metric in enumerate(dict.fromkeys(c["metric"] for c in cases)):
        color = f"C{i % 10}"
        for track, marker in markers.items():
            rows = [c for c in cases if c["metric"] == metric and c.get("track", "steady_state") == track]
            for flagged in (False, True):
                part = [c for c in rows if (c.get("scope", "run") != "run") is flagged]
                if part:
                    ax.scatter(
                        [c["reported"] for c in part],
                        [c["predicted"] for c in part],
                        label=f"{metric}, {track.replace('_', ' ')}{', flagged scope' if flagged else ''} ({len(part)})",
                        s=28,
                        alpha=0.85,
                        marker=marker,
                        facecolors="none" if flagged else color,
                        edgecolors=color,
                    )
    values = [v for c in cases for v in (c["reported"], c["predicted"])]
    lo, hi = min(values) / 2, max(values) * 2
    line = [lo, hi]
    ax.plot(line, line, color="black", lw=1, label="predicted = reported")
    for (name, track), ls in zip(doc["tracks"].items(), ("--", ":"), strict=False):
        target = next(v for k, v in track["target"].items() if k.startswith("median"))
        for f in (1 - target, 1 + target):
            ax.plot(line, [v * f for v in line], color="grey", lw=0.8, ls=ls)
        ax.plot([], [], color="grey", lw=0.8, ls=ls, label=f"±{target:.0%} ({name.replace('_', ' ')} target)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    plain_log_axis(ax, "x")
    plain_log_axis(ax, "y")
    ax.set_xlabel("reported (unit of each run's metric)")
    ax.set_ylabel("costsim prediction (same unit)")
    s = doc
    ax.set_title(
        f"costsim vs {s['n_cases']} published runs: median |error| {s['median_abs_error']:.1%}, max {s['max_abs_error']:.1%}",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    return save_png(fig, path)


def serve_curve_chart(d: dict, path: Path) -> Path:
    """Throughput against interactivity (the `costsim serve` curve): output tokens/s per GPU over tokens/s per user,
    the chosen deployment marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    curve = d.get("curve") or []
    ax.plot([p["tokens_per_s_per_user"] for p in curve], [p["tokens_per_s_per_gpu"] for p in curve], marker="o",
            color="#4c72b0", label="best layout at each speed")  # fmt: skip
    if "decode" in d:
        x = d["decode"]
        ax.scatter([x["tokens_per_s_per_user"]], [x["output_tokens_per_s_per_gpu"]], color="#c44e52", zorder=3,
                   label="chosen")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_axis(ax, "x")
    plain_log_axis(ax, "y")
    ax.set_xlabel("output tokens/s per user")
    ax.set_ylabel("output tokens/s per GPU")
    ax.set_title(f"{d['model']} on {d['gpu']}: decode throughput vs interactivity", fontsize=10)
    ax.legend()
    return save_png(fig, path)


def serve_waterfall_chart(steps: Sequence[dict], path: Path) -> Path:
    """The $/M output tokens waterfall: each step a labelled bar of its value (log axis), from the price of a
    GPU-hour to the margin over the list price."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels = [s["label"] for s in steps]
    values = [s["value"] for s in steps]
    ax.bar(range(len(steps)), values, color="#4c72b0", width=0.6)
    for i, s in enumerate(steps):
        ax.annotate(s["text"], (i, values[i]), ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    plain_log_axis(ax, "y")
    ax.set_xticks(range(len(steps)), labels, fontsize=8)
    ax.set_title("From a GPU-hour to a million output tokens (costsim serve)")
    return save_png(fig, path)


RL_PART_COLOURS = {"generation": BLUE, "logprob": "#6fa8dc", "training": ORANGE, "refit": RED, "idle": GREY,
                   "failures": "#444444"}  # fmt: skip
"""A colour for each part of an RL stage's split (rl_table.PARTS; a part without one is drawn grey)."""


def rl_split_chart(d: dict, path: Path) -> Path:
    """Stacked horizontal bars: each stage's GPU-hours by part (generation, log-prob passes, training, refit, idle,
    failures) of a plan with RL or generation stages (rl_report)."""
    plt = pyplot()
    stages = d["stages"][::-1]  # the plan's first stage on top
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.42 * len(stages) + 1.6))
    names = [s["name"] for s in stages]
    left = [0.0] * len(stages)
    for part in PARTS:
        colour = RL_PART_COLOURS.get(part, GREY)
        widths = [s["gpu_hours_split"].get(part, 0.0) for s in stages]
        if any(widths):
            ax.barh(names, widths, left=left, color=colour, label=part)
            left = [a + b for a, b in zip(left, widths, strict=True)]
    for i, s in enumerate(stages):
        ax.text(left[i], i, f" {s['gpu_hours']:,.0f}", va="center", fontsize=8)
    ax.set_xlabel("GPU-hours")
    ax.set_title(f"GPU-hours by stage and part (total {d['gpu_hours']:,.0f})")
    ax.set_xlim(0, max(left) * 1.2 if max(left) > 0 else 1.0)
    ax.legend(fontsize=8, loc="lower right")
    return save_png(fig, path)
