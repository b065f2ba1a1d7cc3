"""Data package: shipped files of costsim (simulator.data.validation.megatron_core_2024), read through importlib.resources."""
