"""What the command line's commands share (cli.py and the command modules): choices, options with their
range checks, the layout flags, count parsing, the clean error exit and the output formats."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from simulator.errors import CostsimError, InputError
from simulator.units import DEFAULT_DRAWS, MAX_GPUS, MAX_USD_PER_GPU_HOUR, MIN_USD_PER_GPU_HOUR, TOKENS_RANGE, count_in_range
from simulator.vocab import ATTENTION_KERNELS, FP8_RECIPES, LAYOUT_FIELDS, PRECISIONS, RECOMPUTE_MODES, SCHEDULES

LONGEST_ECHOED_WORD = 200
"""Characters of one unbroken word (a value the user gave, echoed back) an error line keeps whole; a longer one is cut
(a fuzzer's --pricing of 100,000 characters came back as a 100 KB error line)."""


def error_line(err: object) -> str:
    """An error's one line, each word longer than LONGEST_ECHOED_WORD cut to its start and its length."""

    def cut(m: re.Match) -> str:
        return f"{m.group()[: LONGEST_ECHOED_WORD // 2]}...({len(m.group()):,} characters)"

    return re.sub(rf"\S{{{LONGEST_ECHOED_WORD + 1},}}", cut, str(err))


def fail(err: CostsimError) -> NoReturn:
    """How every command reports a user error: one line on stderr, exit status 1, no traceback."""
    typer.echo(f"error: {error_line(err)}", err=True)
    raise typer.Exit(code=1)


def count_option(flag: str, text: str | None, bounds: tuple[float, float] = TOKENS_RANGE) -> float | None:
    """A count option such as --tokens 14.8T as a number (None when not given); InputError naming the flag otherwise."""
    if text is None:
        return None
    try:
        return count_in_range(text, *bounds)
    except ValueError as e:
        raise InputError(f"{flag} {e}") from None


def writable_dir(path: Path) -> bool:
    """Whether files can be created (and removed) in the existing folder `path` (files.cannot_create_in)."""
    from simulator.inputs.files import cannot_create_in

    return cannot_create_in(path) is None


def check_output_file(flag: str, path: Path | None, suffix: str, force: bool = False, example: str | None = None) -> None:
    """Fail before the work, not after it, when an output file (a chart, a table) cannot be written: a name the file
    system refuses (too long, a NUL byte), a folder in its place, the wrong suffix, a missing or read-only folder, or
    a file there already (kept unless `force`). `example`: the name an empty `flag` is told to give, of the kind of
    file it writes (default chart.png for a chart, output<suffix> otherwise)."""
    import os

    from simulator.inputs.files import is_dir, refused_name

    if path is None:
        return
    if str(path) in ("", "."):  # typer turns --plot "" into '.'
        example = example or ("chart.png" if suffix == ".png" else f"output{suffix}")
        raise InputError(f"{flag} is empty; give a file name such as {example}")
    refused = refused_name(path)
    if refused is not None:
        raise InputError(f"cannot write {flag} {path}: {refused}; pick another path")
    if is_dir(path):
        raise InputError(f"{flag} {path} is a directory; give a file name ending in {suffix}")
    if path.suffix.lower() != suffix:
        raise InputError(f"{flag} {path}: give a path ending in {suffix}")
    folder = path.resolve().parent
    if not is_dir(folder):
        raise InputError(f"{flag} {path}: folder {path.parent} does not exist; create it or pick another path")
    if not writable_dir(folder):
        raise InputError(f"{flag} {path}: folder {path.parent} is not writable; pick a folder you can write to")
    if os.path.lexists(path) and not force:  # lexists: a dangling link is a name in use too (writing replaces it)
        raise InputError(f"{flag} {path} already exists; add --force to overwrite it, or pick another path")


def check_output_dir(flag: str, path: str | Path, force: bool) -> None:
    """Fail before the work when the report folder `path` cannot be written (document.prepare_output: an empty or
    refused name, a file, a used folder without `force`, a missing parent folder), or when the folder it is written in
    (itself where it exists, else its parent) is not writable. Nothing is left here (a probe file is created and
    removed, files.cannot_create_in): the report creates its folder
    once it is built, so a command that fails leaves none behind."""
    from simulator.inputs.files import is_dir
    from simulator.report.document import prepare_output

    checked = prepare_output(path, force, flag)
    folder = checked if is_dir(checked) else checked.parent
    if not writable_dir(folder):
        raise InputError(f"{flag} {checked}: folder {folder} is not writable; pick a folder you can write to")


ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite output files that already exist")]


def _number_text(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:,g}"


def _in_range(low: float, high: float, fix: str, low_open: bool = False) -> Callable:
    """A typer callback: the value when it is None or in [low, high] ((low, high] with `low_open`), else `fail` with
    the flag, value, range and `fix` (where {flag} stands for the option's name).

    In place of typer's min=/max=, whose usage box names only the broken bound, not the value or the range."""

    def check(param: typer.CallbackParam, value: float | None) -> float | None:
        inside = value is not None and (low < value if low_open else low <= value) and value <= high  # NaN fails too
        if value is not None and not inside:
            flag = max(param.opts, key=len)
            bounds = f"{'(' if low_open else '['}{_number_text(low)}, {_number_text(high)}]"
            shown = f"{value:g}" if isinstance(value, float) else str(value)  # as typed, not grouped
            fail(InputError(f"{flag} {shown} is out of range {bounds}; {fix.format(flag=flag)}"))
        return value

    return check


def ranged(help: str, low: float, high: float, fix: str, *decls: str, low_open: bool = False):
    """A numeric typer option whose value must lie in [low, high], or (low, high] with `low_open` (stated in the help)."""
    bounds = f"{'above ' if low_open else ''}{_number_text(low)} to {_number_text(high)}"
    return typer.Option(*decls, help=f"{help}; {bounds}", callback=_in_range(low, high, fix, low_open))


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class TableJson(StrEnum):
    """For commands whose result is not a table of rows (CSV would not fit)."""

    table = "table"
    json = "json"


def vocab_choices(name: str, values: tuple[str, ...]) -> type[StrEnum]:
    """A typer choice whose values are one of simulator.vocab's vocabularies (defined there once)."""
    return StrEnum(name, {v: v for v in values})  # type: ignore[return-value]


PrecisionOpt = vocab_choices("PrecisionOpt", PRECISIONS)
Fp8RecipeOpt = vocab_choices("Fp8RecipeOpt", FP8_RECIPES)
ScheduleOpt = vocab_choices("ScheduleOpt", SCHEDULES)
AttentionOpt = vocab_choices("AttentionOpt", ATTENTION_KERNELS)
RecomputeOpt = vocab_choices("RecomputeOpt", RECOMPUTE_MODES)
BF16 = PrecisionOpt("bf16")
"""The default --precision of search, sweep and report."""


class Objective(StrEnum):
    time = "time"
    cost = "cost"


StackOpt = Annotated[
    str | None,
    typer.Option(
        help="Software stack: megatron-2021, megatron-2022, fsdp-2023, megatron-2023, megatron-core-2025 or current (default); "
        "it limits the layout search and sets the expected run's layout (costsim list stacks)"
    ),
]
ModelArg = Annotated[str, typer.Argument(help="Shipped model name, a spec YAML, or a Hugging Face config.json")]
TokensOpt = Annotated[str, typer.Option(help="Training tokens, e.g. 14.8T")]
BatchOpt = Annotated[str | None, typer.Option(help="Tokens per optimizer step (default: about 4M, sequences DP divides)")]
PrecOpt = Annotated[PrecisionOpt, typer.Option(help="GEMM precision")]
RecipeOpt = Annotated[
    Fp8RecipeOpt | None,
    typer.Option(help="FP8 scaling: tensor (Transformer Engine) or block (DeepSeek-V3); default: the model's published one"),
]

# Numeric options, each with its range and the fix its error suggests ({flag} is the option's name).
NUM_GPUS = ranged("GPUs in the cluster", 1, MAX_GPUS, "give the number of GPUs, e.g. 2048")
NumGpusOpt = Annotated[int, NUM_GPUS]
SeqLenOpt = Annotated[
    int | None, ranged("Sequence length (default: the model's)", 1, 10_000_000, "give tokens per sequence, e.g. 4096")
]
PriceOpt = Annotated[
    float | None,
    ranged("Price per GPU-hour (default: the profile's)", 0.0, MAX_USD_PER_GPU_HOUR, "give dollars per GPU-hour, e.g. 2"),
]
PositivePriceOpt = Annotated[
    float | None,
    ranged("Price per GPU-hour (default: the file's, else the profile's)", MIN_USD_PER_GPU_HOUR, MAX_USD_PER_GPU_HOUR,
           "give dollars per GPU-hour, e.g. 2"),
]  # fmt: skip
"""A price that cannot be 0: a fleet's margin is revenue over cost."""
_SEARCHED = "a positive integer no larger than the GPU count; or leave {flag} out to search it"
TpOpt = Annotated[int | None, ranged("Tensor parallel degree (searched when left out)", 1, MAX_GPUS, _SEARCHED)]
PpOpt = Annotated[int | None, ranged("Pipeline parallel degree (searched when left out)", 1, MAX_GPUS, _SEARCHED)]
DpOpt = Annotated[
    int | None,
    ranged(
        "Data parallel degree (default: GPUs / (TP x PP x CP))",
        1,
        MAX_GPUS,
        "a positive integer no larger than the GPU count; or leave {flag} out to derive it",
    ),
]
EpOpt = Annotated[int | None, ranged("Expert parallel degree (searched when left out)", 1, MAX_GPUS, _SEARCHED)]
CpOpt = Annotated[int | None, ranged("Context parallel degree (searched when left out)", 1, MAX_GPUS, _SEARCHED)]
ZeroOpt = Annotated[
    int | None,
    ranged("ZeRO stage, 1 = distributed optimizer (searched when left out)", 0, 3, "use 0, 1, 2 or 3; or leave {flag} out"),
]
MbsOpt = Annotated[int | None, ranged("Sequences per micro-batch (searched when left out)", 1, MAX_GPUS, _SEARCHED)]
SchedOpt = Annotated[ScheduleOpt | None, typer.Option(help="Pipeline schedule (searched when left out)")]
VppOpt = Annotated[int | None, ranged("Virtual stages per rank, interleaved (searched when left out)", 1, MAX_GPUS, _SEARCHED)]
RecOpt = Annotated[RecomputeOpt | None, typer.Option(help="Activation recomputation (searched when left out)")]
OverlapOpt = Annotated[
    bool | None, typer.Option("--tp-overlap/--no-tp-overlap", help="Fix TP communication overlap (default: both tried)")
]
OverlapOffOpt = Annotated[
    bool | None, typer.Option("--tp-overlap/--no-tp-overlap", help="Overlap TP collectives with GEMMs (default: off)")
]


# --------------------------------------------------------------------------- the layout flags, declared once


def _flag(name: str, annotation: object) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=annotation)


_FLAG_TYPES = {"tp": TpOpt, "pp": PpOpt, "dp": DpOpt, "ep": EpOpt, "cp": CpOpt, "zero_stage": ZeroOpt}
_FLAG_TYPES |= {"micro_batch_size": MbsOpt, "schedule": SchedOpt, "recompute": RecOpt, "vpp": VppOpt}
if set(_FLAG_TYPES) | {"tp_overlap"} != set(LAYOUT_FIELDS):  # the flags are derived from the layout's fields
    raise RuntimeError(f"layout flags {sorted(_FLAG_TYPES)} do not cover vocab.LAYOUT_FIELDS {LAYOUT_FIELDS}")
RUN_LAYOUT_FLAGS = tuple(_flag(n, _FLAG_TYPES.get(n, OverlapOffOpt)) for n in LAYOUT_FIELDS)
"""One run (estimate, report): DP may be given; TP overlap is off unless asked for."""
SEARCH_LAYOUT_FLAGS = tuple(_flag(n, _FLAG_TYPES.get(n, OverlapOpt)) for n in LAYOUT_FIELDS if n != "dp")
"""The search's constraints (search, sweep): DP follows from the others; TP overlap is tried both ways unless fixed."""


def _plain(value: object) -> object:
    return value.value if isinstance(value, StrEnum) else value


def layout_flags(flags: tuple[inspect.Parameter, ...]) -> Callable:
    """Decorator for a typer command with a `layout` parameter: typer sees `flags` (--tp, --pp, ...) in its place,
    and the command receives them as one dict, field -> plain value (choices as strings, None where not given).

    The commands that take a layout share one declaration of its flags instead of repeating eleven parameters."""

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        params = [f for p in signature.parameters.values() for f in (flags if p.name == "layout" else (p,))]

        @functools.wraps(command)
        def run(**kwargs: object) -> object:
            layout = {f.name: _plain(kwargs.pop(f.name)) for f in flags}
            return command(**kwargs, layout=layout)

        run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]  # what typer reads
        return run

    return decorate


def flag_name(field: str) -> str:
    """The command-line flag of a layout or job field: zero_stage -> --zero-stage."""
    return "--" + field.replace("_", "-")


def job_options(
    tokens: str | None,
    seq_len: int | None,
    global_batch_tokens: str | None,
    precision: PrecisionOpt | None,
    fp8_recipe: Fp8RecipeOpt | None,
) -> dict:
    """The job flags as keyword arguments of make_job and run_estimate: counts parsed, choices as strings."""
    return {
        "tokens": count_option("--tokens", tokens),
        "seq_len": seq_len,
        "global_batch_tokens": count_option("--global-batch-tokens", global_batch_tokens),
        "precision": precision.value if precision else "bf16",
        "fp8_recipe": fp8_recipe.value if fp8_recipe else None,
    }


SCHEMA_VERSION = 3
"""The version of the layout of every command's JSON document (its top-level "schema_version"). Raise it when a
field is renamed, removed or changes meaning; new fields do not change it."""


def document_json(doc: dict) -> str:
    """A command's JSON document: its schema version first, then the fields."""
    from simulator.report import tables as report

    return report.to_json({"schema_version": SCHEMA_VERSION, **doc})


def echo_result(fmt: Format, doc: dict, rows: list[dict], table: Callable[[], str]) -> None:
    """Print a command's result: JSON of the whole document, CSV of its rows, or the text table."""
    from simulator.report import tables as report

    if fmt == Format.json:
        typer.echo(document_json(doc))
    elif fmt == Format.csv:
        typer.echo(report.to_csv(rows), nl=False)
    else:
        typer.echo(table())


def echo_timings(band) -> None:
    """`--verbose`: how long an uncertainty band took, on stderr (wall-clock times are kept out of the results, so
    identical commands print identical bytes)."""
    if band is None:
        typer.echo("timing: no --uncertainty band was drawn", err=True)
        return
    typer.echo(
        f"timing: full-model evaluations {band.model_evaluation_s:.2f} s, {band.draws:,} draws {band.draw_s:.2f} s",
        err=True,
    )


def band_options(uncertainty: bool, draws: int | None, seed: int | None, tokens_spread: float | None = None) -> dict | None:
    """--draws, --seed and --tokens-spread with their defaults when --uncertainty is given, else None (and none given)."""
    given = {"--draws": draws, "--seed": seed, "--tokens-spread": tokens_spread}
    if not uncertainty:
        if any(v is not None for v in given.values()):
            flags = ", ".join(k for k, v in given.items() if v is not None)
            raise InputError(f"{flags} only apply with --uncertainty; add --uncertainty or drop them")
        return None
    return {
        "draws": DEFAULT_DRAWS if draws is None else draws,
        "seed": 0 if seed is None else seed,
        "tokens_spread": 0.0 if tokens_spread is None else tokens_spread,
    }
