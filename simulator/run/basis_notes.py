"""What an estimate says of its own basis, as text every layer shows: an achievable run without TP-communication
overlap, a run that ran costed as if it fitted. Kept apart from simulator.run.estimate, which reads the fitted
constants when imported, so the command modules can word their tables without reading them (a bad constants file
must not break `costsim --help`)."""

from __future__ import annotations

NO_TP_OVERLAP = " without TP-communication overlap (`costsim search` tries it too)"
"""What an achievable run whose layout has no TP overlap leaves out: costsim estimate holds it off unless given
(simulator.run.estimate.estimate), and `costsim search` may find a faster layout with it."""


def without_tp_overlap(layout: dict) -> str:
    """NO_TP_OVERLAP where the layout runs TP communication without overlap; nothing where it overlaps it or has no
    TP communication to overlap (TP 1)."""
    return "" if layout.get("tp_overlap") or layout.get("tp") == 1 else NO_TP_OVERLAP


MEMORY_MISS = "costsim's memory model finds no layout that fits, but the run ran; predicted as if it fitted:"
"""How an estimate of a run that ran says that costsim's memory model would have refused it (`as_if_it_fitted`)."""
