"""Where the shipped data lives: the packages under simulator.data, read through importlib.resources, so the
same code finds it in a checkout, an editable install and an installed wheel. $COSTSIM_DATA_DIR points every
folder to another root (a folder holding hardware_profiles/, model_specs/, plans/, validation/, prices/, fleets/ and workloads/).

The files are read as paths: costsim is installed as files on disk (a wheel unpacks; zip imports are not
supported), which is what importlib.resources gives for such packages.
"""

import contextlib
import os
from importlib.resources import files
from pathlib import Path

DATA_PACKAGE = "simulator.data"
FOLDERS = ("hardware_profiles", "model_specs", "plans", "validation", "prices", "fleets", "workloads")


def _shipped(folder: str) -> Path:
    return Path(str(files(f"{DATA_PACKAGE}.{folder}")))


def data_dir(folder: str) -> Path:
    """One of FOLDERS: under $COSTSIM_DATA_DIR when it is set (a folder, or a SpecError: a mistyped root listed
    nothing and called every shipped name unknown), else the shipped package."""
    from simulator.errors import SpecError
    from simulator.inputs.files import is_dir

    override = os.environ.get("COSTSIM_DATA_DIR")
    if not override:
        return _shipped(folder)
    if not is_dir(Path(override)):
        raise SpecError(
            f"COSTSIM_DATA_DIR={override[:300]} is not a folder; point it at a folder holding {', '.join(FOLDERS)}, "
            "or unset it to use the shipped data"
        )
    return Path(override) / folder


def yaml_files(folder: Path) -> dict[str, Path]:
    """The YAML files of a data folder by stem: what names a shipped plan, fleet, workload or model spec."""
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def hardware_dir() -> Path:
    return data_dir("hardware_profiles")


def shipped_hardware_dir() -> Path:
    """The shipped hardware profiles, whatever $COSTSIM_DATA_DIR says (the GPUs `costsim fit` fitted the shipped
    constants on)."""
    return _shipped("hardware_profiles")


def model_dir() -> Path:
    return data_dir("model_specs")


def plan_dir() -> Path:
    return data_dir("plans")


def validation_dir() -> Path:
    return data_dir("validation")


def prices_dir() -> Path:
    """Dated API price sheets (prices/*.yaml, simulator.inputs.serving_cases.price_sheets)."""
    return data_dir("prices")


def fitted_constants_path() -> Path:
    """The constants `costsim fit` writes (fitted_constants.yaml in the simulator.data package)."""
    return Path(str(files(DATA_PACKAGE))) / "fitted_constants.yaml"


REFITTING = False
"""True while `costsim fit` imports the fit (refitting()): a fitted constants file that cannot be read then leaves the
physical defaults (assumptions.BASE) in place of an error, since the fit starts from them and may replace the file."""


@contextlib.contextmanager
def refitting():
    """REFITTING for the statements inside: `costsim fit` imports its modules under it, so a bad or missing
    fitted_constants.yaml does not stop the command that regenerates it."""
    global REFITTING
    before, REFITTING = REFITTING, True
    try:
        yield
    finally:
        REFITTING = before
