"""Layer 2, the analytical model: FLOPs, memory, communication, pipeline schedules, efficiency, per-layer work
and the step time of one layout. Pure functions of inputs; no I/O."""
