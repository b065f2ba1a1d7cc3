"""The catalog of shipped hardware profiles and model specs: find one by id, alias or path, and load it (a Hugging
Face config.json becomes a ModelSpec through hf_config)."""

from __future__ import annotations

import difflib
import functools
import os
from pathlib import Path

from simulator.errors import SpecError
from simulator.inputs.arguments import reference
from simulator.inputs.data_files import hardware_dir, model_dir, yaml_files
from simulator.inputs.files import is_dir, is_file, read_json, read_yaml, refuse_other_kind, validate
from simulator.inputs.hf_config import model_from_hf_config
from simulator.inputs.specs import HardwareProfile, ModelSpec


def load_hardware_file(path: Path) -> HardwareProfile:
    raw = read_yaml(path)
    refuse_other_kind(raw, path, "a hardware profile", "dense_tflop_per_s")
    spec = validate(raw, HardwareProfile, path)
    if spec.name != path.stem:
        raise SpecError(f"{path}: name {spec.name!r} must match the file name {path.stem!r}")
    return spec


def load_model_file(path: Path) -> ModelSpec:
    if path.suffix == ".json":
        return model_from_hf_config(read_json(path), path)
    raw = read_yaml(path)
    refuse_other_kind(raw, path, "a model spec", "n_layers")
    return validate(raw, ModelSpec, path)


def suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return hint


def hardware_ids() -> dict[str, Path]:
    """Every id and alias that names a shipped hardware profile."""
    return dict(_hardware_ids(hardware_dir()))


@functools.lru_cache(maxsize=4)
def _hardware_ids(directory: Path) -> dict[str, Path]:
    ids: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        raw = read_yaml(path) or {}
        ids[path.stem] = path
        for alias in raw.get("aliases", []) if isinstance(raw, dict) else []:
            ids[str(alias).lower()] = path
    return ids


def gpus_with(dtype: str) -> str:
    """The shipped profiles with a dense `dtype` peak, for a message that names where a format runs."""
    paths = sorted(set(hardware_ids().values()))
    return ", ".join(p.stem for p in paths if load_hardware_file(p).has_dtype(dtype))  # type: ignore[arg-type]


def model_ids() -> dict[str, Path]:
    return yaml_files(model_dir())


def load_hardware(gpu: str) -> HardwareProfile:
    """A shipped profile by id or alias, or a path to a profile YAML."""
    gpu = reference("gpu", gpu, "a GPU id or a profile YAML path")
    path = Path(gpu)
    # os.path.exists, is_dir and is_file answer False for a name the file system refuses (256+ characters, a NUL
    # byte), where pathlib's exists() raises OSError: such a name is an unknown id, not a traceback
    if path.suffix in (".yaml", ".yml") and (os.path.exists(path) or "/" in gpu):
        return load_hardware_file(path)
    ids = hardware_ids()
    key = gpu.strip().lower()
    if key not in ids and is_dir(path):
        raise SpecError(f"GPU {gpu!r} is a folder; pass a profile YAML file in it, or a shipped id (costsim list gpus)")
    if key == "cpu":  # a measured device, not a shipped profile
        raise SpecError(
            "--gpu cpu names the machine a CPU calibration measured (costsim calibrate --device cpu): estimate and serve "
            "take it with that file as --calibration; otherwise give a shipped GPU (costsim list gpus)"
        )
    if key not in ids:
        raise SpecError(
            f"unknown GPU {gpu!r}.{suggest(key, list(ids))} "
            f"Run `costsim list gpus` for the {len(set(ids.values()))} shipped profiles, or pass a profile YAML path."
        )
    return load_hardware_file(ids[key])


def load_model(model: str) -> ModelSpec:
    """A shipped spec by name, a path to a spec YAML, a path to a Hugging Face config.json, or a downloaded Hugging
    Face model's folder (its config.json is read, as transformers' from_pretrained reads a folder)."""
    model = reference("model", model, "a model name, a spec YAML or a config.json path")
    path = Path(model)
    if path.suffix in (".yaml", ".yml", ".json") and (os.path.exists(path) or "/" in model):
        return load_model_file(path)
    ids = model_ids()
    key = model.strip().lower()
    if key not in ids and is_dir(path):
        if is_file(path / "config.json"):
            return load_model_file(path / "config.json")
        raise SpecError(
            f"model {model!r} is a folder with no config.json; pass a spec YAML, a Hugging Face config.json or the "
            "model folder that holds it, or a shipped name (costsim list models)"
        )
    if key not in ids:
        raise SpecError(
            f"unknown model {model!r}.{suggest(key, list(ids))} "
            "Run `costsim list models`, or pass a spec YAML or a Hugging Face config.json path."
        )
    return load_model_file(ids[key])
