"""Layer 1, inputs: schemas and loaders of what the user and the repository provide (hardware profiles, model
specs, Hugging Face configs, calibration files, plan files, published runs) and the global assumptions."""
