"""Data package: shipped files of costsim (simulator.data.validation), read through importlib.resources."""
