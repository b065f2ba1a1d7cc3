"""Type and range checks of the values a caller passes in: the Python API's keywords and the layout fields of a plan
or a notebook, which reach the model without the command line's option parsing.

The command line checks the same fields as it parses them (cli/options.py, with the same bounds from here); these
checks keep a call such as `api.estimate(..., seq_len=-1)` or `tp=0` from returning negative GPU-hours or a
ZeroDivisionError, and name the field, the value and the fix instead.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from simulator.errors import InputError
from simulator.units import MAX_GPUS
from simulator.vocab import ATTENTION_KERNELS, RECOMPUTE_MODES, SCHEDULES

MAX_SEQ_LEN = 10_000_000
"""Longest sequence a run may name (ten million tokens; the longest trained contexts are about a million)."""
MAX_DROPOUT = 0.9
"""Highest dropout probability accepted (1 drops everything; LLM pre-training uses 0-0.1)."""

LAYOUT_DEGREES = ("tp", "pp", "dp", "ep", "cp", "micro_batch_size", "vpp")
"""Layout fields that are positive whole numbers no larger than the largest GPU count."""


def integer(name: str, value: object, low: int, high: int) -> int:
    """`value` as an int in [low, high]: a Python or numpy integer (a layout read from a search's DataFrame holds
    numpy's); a bool, float or text is refused (True is an int to Python, not to a person)."""
    if not is_whole(value):
        raise InputError(f"{name}={value!r} must be a whole number from {low:,} to {high:,}")
    value = int(value)  # type: ignore[call-overload]
    if not low <= value <= high:
        raise InputError(f"{name}={value:,} is out of range [{low:,}, {high:,}]")
    return value


def is_whole(value: object) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def is_number(value: object) -> bool:
    """A Python or numpy real number (finite or not), not a bool or text."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def plain_number(value: object) -> object:
    """A numpy or Fraction number as the Python int or float it stands for (an integer stays an int); anything else,
    bools included, as given. What reaches the model and the JSON is then plain Python."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return value
    if isinstance(value, numbers.Integral) or (isinstance(value, numbers.Rational) and value.denominator == 1):
        return int(value)
    return value if type(value) is float else float(value)


def real(name: str, value: object, low: float, high: float) -> float:
    """`value` as a finite float in [low, high] (Python or numpy); a bool or text is refused."""
    if not is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise InputError(f"{name}={value!r} must be a number from {low:g} to {high:g}")
    if not low <= value <= high:
        raise InputError(f"{name}={value:g} is out of range [{low:g}, {high:g}]")
    return float(value)


def choice(name: str, value: object, options: Iterable[str]) -> str:
    """`value` as one of `options` (text)."""
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise InputError(f"{name}={value!r} must be one of {', '.join(options)}")
    return str(value)


def flag(name: str, value: object) -> bool:
    """`value` as True or False (a string such as 'no' would read as True)."""
    if not isinstance(value, bool | np.bool_):
        raise InputError(f"{name}={value!r} must be True or False")
    return bool(value)


def reference(name: str, value: object, what: str) -> str:
    """A name or file path (text or a pathlib.Path) of a model, GPU, plan, stack or calibration."""
    if isinstance(value, Path):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{name}={value!r} must be {what}, as text")
    return value


def layout_values(layout: dict) -> dict:
    """The layout fields a caller fixed, each checked for its type and range and given as Python values (None:
    searched)."""
    out = dict(layout)
    for key, value in layout.items():
        if value is None:
            continue
        if key in LAYOUT_DEGREES:
            out[key] = integer(key, value, 1, MAX_GPUS)
        elif key == "zero_stage":
            out[key] = integer(key, value, 0, 3)
        elif key == "schedule":
            out[key] = choice(key, value, SCHEDULES)
        elif key == "recompute":
            out[key] = choice(key, value, RECOMPUTE_MODES)
        elif key == "tp_overlap":
            out[key] = flag(key, value)
    return out


def job_values(seq_len: object, dropout: object, attention_kernel: object) -> tuple[int | None, float, str | None]:
    """A training job's own fields, checked and as Python values (None: the default)."""
    return (
        None if seq_len is None else integer("seq_len", seq_len, 1, MAX_SEQ_LEN),
        real("dropout", dropout, 0.0, MAX_DROPOUT),
        None if attention_kernel is None else choice("attention_kernel", attention_kernel, ATTENTION_KERNELS),
    )
