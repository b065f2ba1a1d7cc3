"""The best MFU published runs reached on each GPU generation, and a note for estimates above it.

An analytical model with an ideal stack can promise MFU no real run has shown (dense 70B models at 56-63% on
H100 while the best published H100 runs sit near 45%). The estimate does not change: it says, in words, that its
MFU is above every published run of its GPU generation in `validate public` (validation/*.yaml), and names the
best one, so a reader knows the figure assumes a better stack than any that has been shown.

MFU here is model FLOPs (costsim's count, causal attention) per second over the dense peak of the precision the
run used, as `costsim claim` ranks runs; runs whose figure covers more than the run (scope `broader`) are left out.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from simulator.analysis.public_runs import reported_mfu
from simulator.inputs.published import public_cases
from simulator.inputs.specs import HardwareProfile
from simulator.run.estimate import Estimate, RunEstimates


def generation(gpu: str) -> str | None:
    """The architecture of a hardware profile (its `generation` field); None for an unknown name or a profile
    without one."""
    from simulator.errors import CostsimError
    from simulator.inputs.catalog import load_hardware

    try:
        return load_hardware(gpu).generation
    except CostsimError:
        return None


@functools.lru_cache(maxsize=1)
def best_published_by_generation() -> dict[str, tuple[str, str, float]]:
    """{generation: (run id, gpu, MFU at its precision)} of the published run with the highest MFU on it."""
    best: dict[str, tuple[str, str, float]] = {}
    for case in public_cases():
        gen = generation(case.gpu)
        if gen is None or case.flagged:
            continue
        mfu = reported_mfu(case)
        if gen not in best or mfu > best[gen][2]:
            best[gen] = (case.id, case.gpu, mfu)
    return best


def mfu_at_precision(est: Estimate, hw: HardwareProfile) -> float:
    """The estimate's model FLOP/s per GPU over the dense peak of the precision it runs in."""
    return est.model_flop_per_s_per_gpu / hw.peak_flop_per_s(est.job.precision)


def mfu_note(est: Estimate, hw: HardwareProfile) -> str | None:
    """A note when the estimate's MFU is above the best published run of its GPU generation; None otherwise."""
    gen = generation(hw.name)
    best = best_published_by_generation().get(gen) if gen else None
    if best is None:
        return None
    run_id, gpu, best_mfu = best
    mfu = mfu_at_precision(est, hw)
    if mfu <= best_mfu:
        return None
    return (
        f"MFU {mfu:.1%} (of the dense {est.job.precision.upper()} peak) is above every published run on {gen} GPUs "
        f"in costsim's validation; the best, {run_id} on {gpu}, reached {best_mfu:.1%}: this {est.basis} run assumes "
        "a stack and layout better than any shown"
    )


def with_mfu_notes(runs: RunEstimates, hw: HardwareProfile) -> RunEstimates:
    """Both runs, the expected one (whose notes every output shows) carrying a note for each run above the best
    published MFU of its generation, the achievable one carrying its own."""
    notes = {basis: mfu_note(est, hw) for basis, est in (("expected", runs.expected), ("achievable", runs.achievable))}
    expected = [n for n in notes.values() if n]
    return RunEstimates(
        replace(runs.expected, notes=[*runs.expected.notes, *expected]),
        replace(runs.achievable, notes=[*runs.achievable.notes, *([notes["achievable"]] if notes["achievable"] else [])]),
    )
