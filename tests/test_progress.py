"""The delayed progress bar shared by search, sweep, uncertainty and calibrate."""

from __future__ import annotations

import math

from cli.progress import DelayedProgress


def test_the_bar_is_not_drawn_before_its_delay():
    with DelayedProgress("searching", delay_s=math.inf) as bar:
        bar.update(1, 10, "point a")
        assert bar._progress is None
        assert bar.description == "point a"  # kept for when it is drawn


def test_a_drawn_bar_follows_counts_and_labels():
    with DelayedProgress("calibrating", delay_s=0.0) as bar:
        bar.update(1, 4, "gemm 4096")
        bar.update(3, 4, "attention")
        task = bar._progress.tasks[0]
        assert (task.completed, task.total, task.description) == (3, 4, "attention")
        bar.update(4, 4)  # no label: the last one stays
        assert bar._progress.tasks[0].description == "attention"
