"""Chart of a scaling sweep: wall-clock days and dollars against GPU count, one line per GPU type."""

from __future__ import annotations

from pathlib import Path


def plot_sweep(rows, model_name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
