"""Reading the files users and the repository provide: text, YAML, JSON, and validation against a schema, each
failure a SpecError that names the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from simulator.errors import SpecError


def _format_validation(path: Path | str, schema: type[BaseModel], err: ValidationError) -> str:
    lines = [f"  {'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in err.errors()]
    return f"{path}: invalid {schema.__name__}\n" + "\n".join(lines)


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not a UTF-8 text file (byte {e.start}); save it as UTF-8 YAML or JSON") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot be read ({e.strerror})") from None


# libyaml's loader where PyYAML has it (10x faster than the pure-Python one); same safe subset of YAML.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> object:
    return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)


def read_yaml(path: Path) -> object:
    text = read_text(path)
    try:
        return parse_yaml(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML ({e})") from None


def read_json(path: Path) -> object:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def validate(raw: object, schema: type[BaseModel], where: Path | str):
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping of fields, got {type(raw).__name__}")
    try:
        return schema.model_validate(raw)
    except ValidationError as e:
        raise SpecError(_format_validation(where, schema, e)) from None
