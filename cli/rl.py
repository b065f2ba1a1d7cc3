"""`costsim validate rl`: the published RL figures (validation/rl.yaml) against the RL stage model (docs/model.md §17)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import Format, echo_result, fail


def register(app: typer.Typer, validate_app: typer.Typer) -> None:
    validate_app.command("rl")(validate_rl)


def validate_rl(format: Annotated[Format, typer.Option("--format", help="Output format")] = Format.table) -> None:
    """Predict every published RL figure in validation/rl.yaml: NeMo RL GRPO step times with the RL stage model (target:
    each within 30%), DeepSeek-R1's stage hours with plans/deepseek-r1.yaml. Signed errors; cases whose source lacks
    what a prediction needs are listed, not predicted."""
    from simulator.analysis import rl_validation
    from simulator.errors import CostsimError

    try:
        doc = rl_validation.report(rl_validation.evaluate())
    except CostsimError as e:
        fail(e)
    echo_result(format, doc, doc["cases"], lambda: rl_validation_table(doc))


def _split(split: dict | None, schedule: str = "") -> str:
    """A case's parts as its schedule adds them: one after another, or, one step off-policy on split GPUs, the
    generation beside the trainer's side (a review found the overlapped rows printed as a plain sum)."""
    from simulator.run.rl import ONE_STEP_OFF

    if not split or "generation" not in split:
        return ""
    lp_prep, prep = split.get("logprob_prep") or 0.0, split.get("training_prep") or 0.0
    gen = f"gen {split['generation']:.0f} (tail {split['generation_tail']:.0f})"
    trainer = (([f"logprob prep {lp_prep:.1f}"] if lp_prep else []) + [f"logprob {split['logprob']:.0f}"]
               + ([f"training prep {prep:.1f}"] if prep else []) + [f"train {split['training']:.0f}"])  # fmt: skip
    if ONE_STEP_OFF in schedule:
        return f"max({gen}, {' + '.join(trainer)}) + refit {split['refit']:.1f} s"
    return f"{' + '.join([gen, *trainer])} + refit {split['refit']:.1f} s"


def rl_validation_table(doc: dict) -> str:
    lines = [f"{'case':<46} {'track':<15} {'metric':<12} {'reported':>10} {'predicted':>10} {'error':>7}  band / parts"]
    for c in doc["cases"]:
        if c["predicted"] is None:
            lines.append(f"{c['id'][:46]:<46} {c['track']:<15} {c['metric']:<12} {c['reported']:>10,.4g} {'-':>10} "
                         f"{'-':>7}  ({c['not_predicted_because']})")  # fmt: skip
            continue
        band = f"{c['band'][0]:,.0f}-{c['band'][1]:,.0f}  " if c["band"] else ""
        parts = _split(c["split"], (c["detail"] or {}).get("schedule", ""))
        lines.append(f"{c['id'][:46]:<46} {c['track']:<15} {c['metric']:<12} {c['reported']:>10,.4g} "
                     f"{c['predicted']:>10,.4g} {c['error']:>+7.1%}  {band}{parts}")  # fmt: skip
    if doc["n_cases"]:
        lines += ["", f"{doc['n_cases']} NeMo RL step times: {doc['within_target']} within 30%; median |error| "
                  f"{doc['median_abs_error']:.1%}, max {doc['max_abs_error']:.1%} ({doc['worst_case']}); "
                  f"target every |error| <= 30%: {'met' if doc['meets_target'] else 'not met'}. Plan rows (DeepSeek-R1 "
                  "stages through plans/deepseek-r1.yaml, banded inputs read from a figure) are not in the target."]  # fmt: skip
    later = doc.get("later_release") or {}
    if later.get("n"):
        lines.append(f"{later['n']} steps of later NeMo RL releases (track later-release, outside the target): "
                     f"{later['within_30_percent']} within 30%; median |error| {later['median_abs_error']:.1%}, max "
                     f"{later['max_abs_error']:.1%}.")  # fmt: skip
    phases = doc.get("phase_breakdown") or {}
    if phases.get("n"):
        lines += ["", f"{phases['n']} steps with published phase times (track phase-breakdown, outside the target): "
                  f"{phases['within_30_percent']} within 30%; predicted / reported - 1 by phase:"]  # fmt: skip
        for c in doc["cases"]:
            if c["phase_errors"]:
                e, r = c["phase_errors"], c["reported_phases"]
                lines.append(f"  {c['id'][:52]:<52} " + "  ".join(f"{p} {r[p + '_s']:.0f} s {e[p]:+.0%}" for p in e))
        med = phases["median_phase_error"]
        lines.append("  median: " + ", ".join(f"{p} {v:+.0%}" for p, v in med.items() if v is not None))
    lines += ["", "assumptions where the benchmark rows are silent"]
    lines += [f"  {a['name']}: {a['value']} ({a['source']})" for a in doc["assumptions"]]
    return "\n".join(lines)
