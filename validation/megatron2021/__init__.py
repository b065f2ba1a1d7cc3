"""Data package: shipped files of costsim (simulator.data.validation.megatron2021), read through importlib.resources."""
