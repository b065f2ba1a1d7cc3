"""Serving: the forward-only per-layer model run as inference engines run it (prefill, decode, a day of traffic)."""
