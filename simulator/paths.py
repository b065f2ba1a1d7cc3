"""Where the shipped data lives: the repository root by default, $COSTSIM_DATA_DIR to override."""

import os
from pathlib import Path


def data_root() -> Path:
    override = os.environ.get("COSTSIM_DATA_DIR")
    return Path(override) if override else Path(__file__).resolve().parent.parent


def hardware_dir() -> Path:
    return data_root() / "hardware_profiles"


def model_dir() -> Path:
    return data_root() / "model_specs"


def plan_dir() -> Path:
    return data_root() / "plans"
