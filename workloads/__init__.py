"""Data package: shipped files of costsim (simulator.data.workloads), read through importlib.resources."""
