"""Layer 4, analysis over runs: published-run validation and the fit, claims, comparisons, plans, sweeps and
uncertainty bands."""
