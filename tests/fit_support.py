"""The fit-recovery tests' set-up: rows whose reported figure is costsim's own prediction at a known value of a fitted
constant, fitted back from zero."""

from __future__ import annotations

from dataclasses import replace


def fit_made_rows(fit, cases: list, truth, field: str, grid):
    """`cases` re-reported as costsim predicts them under `truth`, and `fit` run on them with `field` set to 0 on
    `grid`. Returns the fit and the made rows."""
    from simulator.analysis.public_runs import predict_case

    made = [replace(c, reported=predict_case(c, truth)) for c in cases]
    return fit(made, replace(truth, **{field: 0.0}), grid), made
