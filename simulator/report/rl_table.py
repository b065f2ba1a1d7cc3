"""The table `costsim estimate --plan` prints for a plan with RL or generation stages (docs/model.md §17): every stage
with its GPU-hours split into generation, log-prob passes, training, refit, idle and failures, the band of the stated
inputs, the published figures beside the prediction, the base plan, the rollout of each phase and the assumptions.
"""

from __future__ import annotations

from simulator.report.money import usd
from simulator.report.tables import cost_lines, training_note_lines, unlike_lines
from simulator.units import GIB, format_count

PARTS = ("generation", "logprob", "training", "refit", "idle", "failures")


def _rows(columns: tuple[str, ...], rows: list[tuple], align: str, indent: int = 0) -> list[str]:
    """Plain columns, each as wide as its widest cell; 'l' or 'r' per column."""
    cells = [tuple(str(c) for c in r) for r in [columns, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    out = []
    for r in cells:
        parts = [c.ljust(w) if align[i] == "l" else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        out.append((" " * indent + "  ".join(parts)).rstrip())
    return out


def _share(split: dict, part: str, total: float) -> str:
    v = split.get(part, 0.0)
    return f"{v / total:.0%}" if total > 0 and v else "-"


def _days(days: float) -> str:
    return f"{days:.1f}" if days >= 1 else f"{days:.2f}"


def _stages(names: list[str] | str) -> str:
    if names == "all":
        return "whole plan"
    text = ", ".join(names)
    return text if len(text) <= 48 else f"{len(names)} stages, {names[0]} to {names[-1]}"


def phase_text(p: dict) -> str:
    """One phase of an RL or generation stage (a stage document's `phases` item) as a line: its lengths, the decode
    layout and rate, and the rollout's parts."""
    g = p["generation"]
    lay = g["layout"]
    busy = g["prefill_s"] + g["bulk_s"]
    text = (
        f"from step {p['from_step']:,}: mean {p['mean_response_len']:,.0f} tokens (cap {p['max_response_len']:,}), "
        f"decode TP{lay['tp']} DP{lay['dp']} PP{lay['pp']} x{g['gpus'] // lay['gpus']} replicas at "
        f"{lay['batch_per_gpu']:g} seq/GPU, {g['output_tokens_per_s_per_gpu']:,.0f} tok/s/GPU; rollout "
        f"{p['rollout_wall_s']:,.0f} s: generation {busy:,.0f} s + tail {g['tail_s']:,.0f} s"
    )
    if p.get("training"):
        t, lp = p["training"], p["logprob"]
        text += (f", logprob {lp['seconds']:,.0f} s, training {t['seconds_per_rollout']:,.0f} s "
                 f"({t['optimizer_step_s']:.2f} s/step, MFU {t['mfu']:.1%} of the {t['mfu_basis']}), "
                 f"refit {p['refit_s']:.2f} s")  # fmt: skip
        off = p.get("offload")
        if off:
            text += (f", training state to host {off['to_host_s']:.1f} s and back {off['back_s']:.1f} s "
                     f"({off['optimizer_bytes'] / GIB:.1f} GiB of optimizer state per GPU)")  # fmt: skip
        lp_off = p.get("logprob_offload")
        if lp_off:  # offload_optimizer_for_logprob
            text += (f", optimizer to host before the log-prob passes {lp_off['to_host_s']:.1f} s and back "
                     f"{lp_off['back_s']:.1f} s")  # fmt: skip
        if p.get("engine_sleep_wake_s"):
            text += f", engine sleep and wake {p['engine_sleep_wake_s']:.1f} s"  # colocated
    return text


def stage_footnotes(d: dict) -> list[str]:
    """What the stage table's band and split columns hold, and the plan's GPU-hours by part (the table's lines and
    the report's notes under the table)."""
    whole = d["gpu_hours_split"]
    return [
        "band: GPU-hours with every stated, banded input (mean response length, long-tail factor) at its low / high "
        "end; the split columns are shares of each stage's GPU-hours (refit holds the training state's way to the host "
        "and the engine's sleep and wake, training its way back, logprob any trip around the log-prob passes; idle the "
        "GPUs waiting on the generation's tail)",
        "GPU-hours by part: " + ", ".join(f"{p} {format_count(whole.get(p, 0.0))}" for p in PARTS),
    ]


def rollout_head(s: dict) -> str:
    """A generating stage's rollout in a few words: its schedule and mean step, or 'generation only'."""
    return f"{s['schedule']}; mean step {s['step_time_s']:.1f} s" if s.get("schedule") else "generation only"


def stage_rows(d: dict) -> list[tuple]:
    """The stage table's rows (stage, kind, GPUs, steps, GPU-hours, band, days, cost, the split's shares) and the
    total's."""
    rows = []
    for s in d["stages"]:
        split, total = s["gpu_hours_split"], s["gpu_hours"]
        band = s.get("gpu_hours_band")
        band_text = f"{format_count(band['low'])}-{format_count(band['high'])}" if band else ""
        steps = f"{s['steps']:,.0f}" if s.get("steps") else ""
        rows.append((s["name"], s["kind"], s["num_gpus"], steps, format_count(total), band_text,
                     _days(s["wall_clock_days"]), usd(s["cost_usd"]), *(_share(split, p, total) for p in PARTS)))  # fmt: skip
    whole = d["gpu_hours_split"]
    rows.append(("total", "", "", "", format_count(d["gpu_hours"]), "", _days(d["wall_clock_days"]), usd(d["cost_usd"]),
                 *(_share(whole, p, d["gpu_hours"]) for p in PARTS)))  # fmt: skip
    return rows


STAGE_COLUMNS = ("stage", "kind", "GPUs", "steps", "GPU-hours", "band", "days", "cost", *PARTS)


def published_rows(d: dict) -> list[tuple]:
    """The published figures beside the prediction: (stages, predicted, reported, error, wall reported / predicted)."""
    rep = []
    for r in d["reported"]:
        wall = ""
        if r.get("reported_wall_hours") is not None:
            wall = f"{r['reported_wall_hours']:,.0f} h / {r['predicted_wall_hours']:,.0f} h"
        rep.append((_stages(r["stages"]), format_count(r["predicted_gpu_hours"]), format_count(r["reported_gpu_hours"]),
                    f"{r['error']:+.1%}", wall))  # fmt: skip
    return rep


PUBLISHED_COLUMNS = ("published", "predicted", "reported", "error", "wall reported / predicted")


def rl_plan_table(d: dict) -> str:
    """A plan document (PlanResult.to_dict()) with RL or generation stages, as text."""
    lines = [f"plan        {d['plan']}" + (f": {d['display_name']}" if d.get("display_name") else "")]
    lines.append(f"model / GPU {d['model']} on {d['gpu']}")
    lines.append(f"source      {d['source']}")
    base = d.get("base")
    if base:
        figures = "; ".join(
            f"{', '.join(r['stages']) if r['stages'] != 'all' else 'all'} {format_count(r['gpu_hours'])} GPU-hours"
            + (f" {usd(r['cost_usd'])}" if r.get("cost_usd") else "")
            for r in base["reported"]
        )
        lines.append(f"base        plan {base['plan']} ({figures or 'no reported figure'}): not in this plan's totals; "
                     f"{base['estimate_with']}")  # fmt: skip
    lines.append("")
    lines += _rows(STAGE_COLUMNS, stage_rows(d), "llrrrrrr" + "r" * len(PARTS))
    lines += stage_footnotes(d)
    if d["reported"]:
        lines.append("")
        lines += _rows(PUBLISHED_COLUMNS, published_rows(d), "lrrrr")
        lines += unlike_lines(d["reported"])
    lines.append("")
    lines += cost_lines(d["cost"])  # basis and rate, TCO parts, energy, CO2, the program, as every plan table shows
    lines.append("")
    lines.append("rollouts (at the stated values)")
    for s in d["stages"]:
        if s["kind"] == "training":
            continue
        lines.append(f"  {s['name']}: {rollout_head(s)}")
        lines += [f"    {phase_text(p)}" for p in s["phases"]]
    # The training model's own notes (exposed communication, memory nearly full, ...), once per stage.
    lines += training_note_lines(d["stages"])
    notes = [(s["name"], s["notes"]) for s in d["stages"] if s.get("notes")]
    if notes:
        lines += ["", "assumptions where the sources are silent"]
        lines += [f"  {name}: {note}" for name, note in notes]
    if d.get("notes"):
        lines += ["", d["notes"]]
    lines += [f"caveat: {c}" for c in d.get("caveats") or []]
    return "\n".join(lines)
