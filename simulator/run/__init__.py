"""Layer 3, one run: the resolved scenario, the layout search, the estimate, goodput and cost."""
