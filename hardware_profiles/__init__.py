"""Data package: shipped files of costsim (simulator.data.hardware_profiles), read through importlib.resources."""
