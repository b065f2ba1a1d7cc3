"""Data package: shipped files of costsim (simulator.data.plans), read through importlib.resources."""
