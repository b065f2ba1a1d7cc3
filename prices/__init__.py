"""Data package: shipped files of costsim (simulator.data.prices), read through importlib.resources."""
