"""Choices shared by the command line's commands (cli.py and the command modules)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class TableJson(StrEnum):
    """For commands whose result is not a table of rows (CSV would not fit)."""

    table = "table"
    json = "json"


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


ModelArg = Annotated[str, typer.Argument(help="Shipped model name, a spec YAML, or a Hugging Face config.json")]
TokensOpt = Annotated[str, typer.Option(help="Training tokens, e.g. 14.8T")]
SeqLenOpt = Annotated[int | None, typer.Option(min=1, max=10_000_000, help="Sequence length (default: the model's)")]
BatchOpt = Annotated[str | None, typer.Option(help="Tokens per optimizer step (default: 4M rounded to sequences)")]
PrecOpt = Annotated[PrecisionOpt, typer.Option(help="GEMM precision")]
RecipeOpt = Annotated[
    Fp8RecipeOpt | None,
    typer.Option(help="FP8 scaling: tensor (Transformer Engine) or block (DeepSeek-V3); default: the model's published one"),
]
TpOpt = Annotated[int | None, typer.Option(min=1, help="Tensor parallel degree (searched when left out)")]
PpOpt = Annotated[int | None, typer.Option(min=1, help="Pipeline parallel degree (searched when left out)")]
EpOpt = Annotated[int | None, typer.Option(min=1, help="Expert parallel degree (searched when left out)")]
CpOpt = Annotated[int | None, typer.Option(min=1, help="Context parallel degree (searched when left out)")]
ZeroOpt = Annotated[int | None, typer.Option(min=0, max=3, help="ZeRO stage, 1 = distributed optimizer (searched when left out)")]
MbsOpt = Annotated[int | None, typer.Option(min=1, help="Sequences per micro-batch (searched when left out)")]
SchedOpt = Annotated[ScheduleOpt | None, typer.Option(help="Pipeline schedule (searched when left out)")]
VppOpt = Annotated[int | None, typer.Option(min=1, help="Virtual stages per rank, interleaved (searched when left out)")]
RecOpt = Annotated[RecomputeOpt | None, typer.Option(help="Activation recomputation (searched when left out)")]
OverlapOpt = Annotated[
    bool | None, typer.Option("--tp-overlap/--no-tp-overlap", help="Fix TP communication overlap (default: both tried)")
]
PriceOpt = Annotated[float | None, typer.Option(min=0.0, max=1000.0, help="Price per GPU-hour (default: the profile's)")]


OverlapOffOpt = Annotated[
    bool | None, typer.Option("--tp-overlap/--no-tp-overlap", help="Overlap TP collectives with GEMMs (default: off)")
]
