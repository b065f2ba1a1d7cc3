"""Choices shared by the command line's commands (cli.py and the command modules)."""

from __future__ import annotations

from enum import StrEnum


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class PrecisionOpt(StrEnum):
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"


class Fp8RecipeOpt(StrEnum):
    tensor = "tensor"
    block = "block"


class ScheduleOpt(StrEnum):
    one_f_one_b = "1f1b"
    interleaved = "interleaved"
    zb_h1 = "zb-h1"
    dualpipe = "dualpipe"


class AttentionOpt(StrEnum):
    flash = "flash"
    unfused = "unfused"


class RecomputeOpt(StrEnum):
    none = "none"
    selective = "selective"
    full = "full"


class Objective(StrEnum):
    time = "time"
    cost = "cost"
