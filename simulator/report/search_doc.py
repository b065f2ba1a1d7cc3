"""What `costsim search` (and simulator.api.search) reports about a layout search: the counts, the candidates in rank
order, the best's breakdown, where a reference layout ranks and why it is slower, and the expected run among the
candidates. The CLI and the Python API build the same document here."""

from __future__ import annotations

from simulator.errors import InputError


def parse_reference(text: str | None, spec) -> tuple[dict | None, str]:
    """--reference 'tp=1,pp=16,ep=64,schedule=dualpipe', else the model's published layout."""
    if text is None:
        if spec.published_layout is None:
            return None, ""
        return spec.published_layout.fields(), f"published layout ({spec.published_layout.source})"
    out: dict = {}
    allowed = {"tp", "pp", "dp", "ep", "cp", "zero_stage", "micro_batch_size", "schedule", "recompute", "vpp", "tp_overlap"}
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if key not in allowed or not value.strip():
            raise InputError(
                f"--reference {text!r}: {part!r} is not FIELD=VALUE with a field among {', '.join(sorted(allowed))}; "
                "write e.g. tp=1,pp=16,ep=64,schedule=dualpipe"
            )
        value = value.strip()
        if key in out:
            raise InputError(f"--reference {text!r}: {key} is given twice; give each field once")
        try:
            if key == "tp_overlap":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = value.lower() in ("true", "1")
            else:
                out[key] = value.lower() if key in ("schedule", "recompute") else int(value)
        except ValueError:
            kind = "true or false" if key == "tp_overlap" else "an integer"
            raise InputError(f"--reference {text!r}: {key} must be {kind}, got {value!r}") from None
        check_reference_value(text, key, out[key], spec)
    return out, "--reference"


def check_reference_value(text: str, key: str, value, spec) -> None:
    """A reference field the layout search could never produce (a degree below 1, a schedule or recompute that does not
    exist, experts on a dense model) is named, not left to match nothing."""
    from simulator.vocab import RECOMPUTE_MODES, SCHEDULES

    choices = {"schedule": SCHEDULES, "recompute": RECOMPUTE_MODES}.get(key)
    if choices is not None and value not in choices:
        raise InputError(f"--reference {text!r}: {key} {value!r} is not one of {', '.join(choices)}")
    if choices is None and key != "tp_overlap":
        low = 0 if key == "zero_stage" else 1
        if value < low or (key == "zero_stage" and value > 3):
            raise InputError(
                f"--reference {text!r}: {key} {value} is out of range; give {'0-3' if low == 0 else 'an integer >= 1'}"
            )
    if key == "ep" and value > 1 and spec.moe is None:
        raise InputError(f"--reference {text!r}: ep {value} on {spec.name}, which has no experts; give ep=1 or leave it out")


def expected_entry(result, stack, given: dict, generation: str | None) -> dict | None:
    """The expected run among the candidates: the best layout of the stack's practice, its step time and GPU-hours
    realized (Assumptions.realization of the GPU's generation)."""
    from simulator.inputs.assumptions import DEFAULT

    i = result.best_within(stack.practice_limits, given)
    if i is None:
        return None
    r = DEFAULT.for_generation(generation).realization
    return {
        "layout": result.layouts.at(i).to_dict(),
        "realization": r,
        "step_time_s": float(result.steps.step_time_s[i]) * r,
        "gpu_hours": float(result.gpu_hours[i]) * r,
        "cost_usd": float(result.cost_usd[i]) * r,
    }


def search_document(spec, hw, job, result, ref: dict | None, ref_source: str, limit: int | None) -> dict:
    """What `costsim search` reports: the counts, the candidates in rank order, the best's breakdown,
    and where the reference (published) layout ranks, with the terms that make the best faster."""
    from simulator.report.tables import run_header
    from simulator.run.search import breakdown_of, candidate_rows, explain
    from simulator.units import GIB

    rows = candidate_rows(result, limit)
    best = result.best()
    doc: dict = {
        **run_header(spec, hw, job),
        "objective": result.objective,
        "grid_size": result.grid_size,
        "invalid_by_rule": result.invalid_by_rule,
        "evaluated": result.n_valid,
        "feasible": result.n_feasible,
        "gpu_memory_gib": hw.memory_bytes / GIB,
        "best": None,
        "reference": None,
        "candidates": rows,
    }
    if best is not None:
        doc["best"] = {**rows[0], "breakdown_s": breakdown_of(result, best)}
    else:
        closest = result.closest()
        doc["closest"] = {
            "layout": result.layouts.at(closest).to_dict(),
            "memory_per_gpu_gib": float(result.memory_bytes[closest] / GIB),
            "reason": result.reason(closest),
        }
    if ref is not None:
        rank = result.rank_of(ref)
        entry: dict = {"layout": ref, "source": ref_source, "rank": None if rank is None else rank + 1}
        if rank is None:
            entry["note"] = "no valid layout matches the reference on this cluster"
        else:
            i = int(result.top(rank + 1)[rank])
            entry["feasible"] = bool(result.feasible[i])
            entry["step_time_s"] = float(result.steps.step_time_s[i])
            entry["in_top_10_feasible"] = bool(result.feasible[i]) and rank < 10
            if best is not None and i != best:
                entry["why_slower"] = explain(result, i, best)
        doc["reference"] = entry
    return doc
