"""Goodput: the share of wall-clock time that trains, given failures and checkpoint/restart.

First-order checkpoint/restart model (Young 1974; Daly 2006; docs/model.md §9):
    job MTBF      M = 1 / (λ · n_gpus)
    interval      τ = sqrt(2 · δ · M)                    (δ = blocking checkpoint time)
    waste         δ/τ + (τ/2 + R)/M                      (R = restart, reload and re-warm time)
    ETTR          1 - waste
λ defaults to Llama 3's 419 unexpected interruptions in 54 days on 16,384 GPUs (§3.3.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.inputs.assumptions import Assumptions
from simulator.units import SECONDS_PER_HOUR, SECONDS_PER_MINUTE

MIN_ETTR = 0.05
"""The floor that keeps GPU-hours finite where the first-order model no longer holds (goodput_notes says so)."""


@dataclass(frozen=True)
class Goodput:
    ettr: float
    job_mtbf_s: float
    checkpoint_interval_s: float
    expected_failures: float


def goodput(num_gpus: int, ideal_wall_clock_s: float, a: Assumptions) -> Goodput:
    rate_per_s = a.failures_per_gpu_hour / SECONDS_PER_HOUR * num_gpus
    if rate_per_s <= 0:
        return Goodput(1.0, math.inf, math.inf, 0.0)
    mtbf_s = 1.0 / rate_per_s
    delta = a.checkpoint_blocking_s
    tau = math.sqrt(2.0 * delta * mtbf_s) if delta > 0 else 0.0
    waste = (delta / tau if tau > 0 else 0.0) + (tau / 2.0 + a.restart_s) / mtbf_s
    # The first-order formula breaks down once failures come faster than checkpoints can be taken.
    share = max(MIN_ETTR, 1.0 - waste)
    failures = ideal_wall_clock_s / share * rate_per_s
    return Goodput(share, mtbf_s, tau, failures)


def ettr(num_gpus: int, a: Assumptions) -> float:
    """Effective training time ratio; it does not depend on the run's length."""
    return goodput(num_gpus, 0.0, a).ettr


def goodput_notes(g: Goodput, ideal_wall_clock_s: float, a: Assumptions) -> list[str]:
    """What the goodput model cannot say of this run, in words: at the floor, the first-order model does not hold
    (failures come about as often as checkpoints; the GPU-hours are a bound, not an estimate); a run shorter than one
    checkpoint interval is charged the interval's average waste, which it may not pay (a 12.6 s run of 7 steps on
    16,384 GPUs came out 10.6% over its ideal GPU-hours, where failures during it cost about 5%)."""
    notes = []
    if g.ettr <= MIN_ETTR:
        notes.append(
            f"goodput is at its {MIN_ETTR:.0%} floor: a failure every {g.job_mtbf_s / SECONDS_PER_MINUTE:.3g} min of the job (at "
            f"{a.failures_per_gpu_hour:.3g} failures per GPU-hour) and {a.restart_s:.0f} s to restart leave the "
            "first-order checkpoint model of docs/model.md §9 without meaning, so GPU-hours and days are a bound, not "
            "an estimate; fewer GPUs give one"
        )
    elif 0 < ideal_wall_clock_s < g.checkpoint_interval_s:
        notes.append(
            f"the run ({ideal_wall_clock_s / SECONDS_PER_MINUTE:.3g} min of training) is shorter than one checkpoint interval "
            f"({g.checkpoint_interval_s / SECONDS_PER_MINUTE:.3g} min), and goodput charges the long-run average waste "
            f"({1 - g.ettr:.1%}): its checkpoint share may not arise in so short a run"
        )
    return notes
