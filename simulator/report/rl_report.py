"""The report of a plan with RL or generation stages (`costsim report --plan deepseek-r1`): what post-training costs
stage by stage, where its GPU-hours go (generation, log-prob passes, training, refit, idle), the published figures
beside the prediction, each rollout, how close costsim comes on published RL steps, and the caveats. Markdown and
self-contained HTML through the blocks of report/document.py; the same numbers as `costsim estimate --plan`."""

from __future__ import annotations

from pathlib import Path

from simulator.report.document import (
    Block,
    _generated,
    _references_section,
    bullets,
    h1,
    h2,
    image,
    para,
    prepare_output,
    table,
    write_documents,
)
from simulator.report.money import usd
from simulator.report.rl_table import (
    PARTS,
    PUBLISHED_COLUMNS,
    STAGE_COLUMNS,
    phase_text,
    published_rows,
    rollout_head,
    stage_footnotes,
    stage_rows,
)
from simulator.report.tables import cost_lines, training_notes, unlike_lines
from simulator.units import format_count

CHARTS = {"split": "rl_split.png"}


def _summary(d: dict) -> Block:
    whole = d["gpu_hours_split"]
    biggest = max(PARTS, key=lambda p: whole.get(p, 0.0))
    text = (
        f"{d['display_name'] or d['plan']} takes **{format_count(d['gpu_hours'])} GPU-hours** of {d['model']} on "
        f"{d['gpu']}, **{usd(d['cost_usd'])}** at {usd(d['cost']['usd_per_gpu_hour'])} per GPU-hour "
        f"({d['cost']['basis']}), {d['wall_clock_days']:.1f} days of wall clock; "
        f"{biggest} is the largest part ({whole[biggest] / d['gpu_hours']:.0%})."
    )
    base = d.get("base")
    if base:
        text += f" The base model's plan ({base['plan']}) is not in these totals: {base['estimate_with']}."
    return para(text)


def _published(d: dict) -> list[Block]:
    if not d["reported"]:
        return []
    blocks = [h2("Published figures beside the prediction"), table(PUBLISHED_COLUMNS, published_rows(d))]
    unlike = unlike_lines(d["reported"])
    return blocks + ([bullets(line.strip() for line in unlike if line.strip())] if unlike else [])


def _rollouts(d: dict) -> list[Block]:
    blocks: list[Block] = [h2("Rollouts, at the stated values")]
    for s in d["stages"]:
        if s["kind"] == "training":
            continue
        blocks.append(para(f"**{s['name']}**: {rollout_head(s)}."))
        blocks.append(bullets(phase_text(p) for p in s["phases"]))
    notes = [f"{name}: {note}" for name, note in training_notes(d["stages"])]
    return blocks + ([para("What the training model says of the training passes:"), bullets(notes)] if notes else [])


def _accuracy(rl: dict) -> list[Block]:
    """How close costsim comes on the published RL steps (`costsim validate rl`'s document)."""
    later, phases = rl["later_release"], rl["phase_breakdown"]
    target, bound = "met" if rl["meets_target"] else "not met", f"{rl['target']['max_abs_error']:.0%}"
    return [
        h2("How close costsim comes on published RL steps"),
        para(
            f"`costsim validate rl` predicts NeMo RL's published GRPO steps (validation/rl.yaml). Its target, NeMo RL "
            f"v0.4's {rl['n_cases']} step times each within {bound}: {rl['within_target']} of {rl['n_cases']} "
            f"(median |error| {rl['median_abs_error']:.1%}, max {rl['max_abs_error']:.1%}, {rl['worst_case']}; "
            f"target {target}). Later releases: {later['within_30_percent']} of {later['n']} within {bound} (median "
            f"{later['median_abs_error']:.1%}). Steps with published phase times: {phases['within_30_percent']} of "
            f"{phases['n']} within {bound}. docs/model.md §17.7 says where it misses and why."
        ),
    ]


def _cost(d: dict) -> list[Block]:
    lines = [" ".join(line.split()) for line in cost_lines(d["cost"]) if line.strip()]  # the table's columns closed up
    return [h2("Cost basis"), bullets(lines)]


def _assumptions(d: dict) -> list[Block]:
    notes = [f"{s['name']}: {s['notes']}" for s in d["stages"] if s.get("notes")]
    blocks: list[Block] = []
    if notes:
        blocks += [h2("Assumptions where the sources are silent"), bullets(notes)]
    if d.get("notes"):
        blocks.append(para(d["notes"]))
    if d.get("caveats"):
        blocks += [h2("Caveats"), bullets(d["caveats"])]
    return blocks


def build_rl_plan_document(d: dict, rl_validation: dict, command: str, hws) -> list[Block]:
    """The report of a plan document (PlanResult.to_dict()) with RL or generation stages."""
    blocks = [
        h1(f"Post-training cost of {d['display_name'] or d['plan']}"),
        _generated(command),
        para(f"Plan `{d['plan']}`: {d['source']}."),
        _summary(d),
        h2("Stages"),
        table(STAGE_COLUMNS, stage_rows(d)),
        bullets(stage_footnotes(d)),
        image(CHARTS["split"], "GPU-hours by stage and part"),
        *_published(d),
        *_rollouts(d),
        *_accuracy(rl_validation),
        *_cost(d),
        *_assumptions(d),
    ]
    documents = {"validation/rl.yaml": "the published RL steps `costsim validate rl` predicts, each with its source"}
    return blocks + _references_section(blocks, hws, documents)


def write_rl_plan_report(plan_result, out_dir, force: bool = False, command: str = "costsim report") -> dict[str, object]:
    """report.md, report.html and the chart of a plan (simulator.analysis.plans.PlanResult) with RL or generation
    stages. Runs `costsim validate rl` (a few seconds) for the accuracy section."""
    from simulator.analysis import rl_validation
    from simulator.report import charts

    path = Path(prepare_output(out_dir, force))
    d = plan_result.to_dict()
    rl = rl_validation.report(rl_validation.evaluate())
    hws = list({s.hw.name: s.hw for s in plan_result.all_stages}.values())

    def draw() -> dict:
        return {"split": charts.rl_split_chart(d, path / CHARTS["split"])}

    return write_documents(path, draw, lambda: build_rl_plan_document(d, rl, command, hws))
