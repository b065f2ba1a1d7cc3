"""Data package: shipped files of costsim (simulator.data.model_specs), read through importlib.resources."""
