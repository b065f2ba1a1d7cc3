"""The data costsim ships, as packages read through importlib.resources (simulator.inputs.data_files).

In the repository the data lives in top-level folders (hardware_profiles/, model_specs/, plans/, validation/, prices/,
fleets/); pyproject.toml maps each to a sub-package of this one, so a wheel carries it and an installed costsim finds
it without the checkout. fitted_constants.yaml (written by `costsim fit`) lives here.
"""
