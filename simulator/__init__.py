"""costsim's simulator, in layers that import only downward:

units, errors, vocab      (foundation)
inputs/    schemas and loaders: hardware, models, calibration files, plans, published runs
model/     FLOPs, memory, communication, pipeline, efficiency, per-layer work, step time
run/       one scenario: layout search, estimate, goodput, cost
analysis/  validation and fit, claims, comparisons, plans, sweeps, uncertainty
report/    tables, charts, documents
api        the front door for notebooks and the command line
"""
