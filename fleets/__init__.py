"""Data package: shipped files of costsim (simulator.data.fleets), read through importlib.resources."""
