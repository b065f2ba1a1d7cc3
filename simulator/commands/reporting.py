"""`costsim report`: a Markdown and an HTML report with PNG charts (document in simulator/report_document.py)."""

from __future__ import annotations

import shlex
from enum import StrEnum
from typing import Annotated

import typer

from simulator.commands.options import (
    BatchOpt,
    CpOpt,
    EpOpt,
    MbsOpt,
    OverlapOffOpt,
    PpOpt,
    PrecisionOpt,
    PrecOpt,
    PriceOpt,
    RecipeOpt,
    RecOpt,
    SchedOpt,
    SeqLenOpt,
    TpOpt,
    VppOpt,
    ZeroOpt,
)


def register(app: typer.Typer, validate_app: typer.Typer) -> None:
    app.command("report")(report_command)


def report_command(
    model: Annotated[str, typer.Argument(help="Shipped model name, a spec YAML, or a Hugging Face config.json")],
    gpu: Annotated[str, typer.Option(help="Hardware profile id or alias (costsim list gpus), or a profile YAML")],
    num_gpus: Annotated[int, typer.Option(min=1, max=1_000_000, help="GPUs in the cluster")],
    tokens: Annotated[str, typer.Option(help="Training tokens, e.g. 14.8T")],
    output: Annotated[str, typer.Option(help="Directory for report.md, report.html and the PNG charts")],
    force: Annotated[bool, typer.Option("--force", help="Write into an existing, non-empty --output directory")] = False,
    seq_len: SeqLenOpt = None,
    global_batch_tokens: BatchOpt = None,
    precision: PrecOpt = PrecisionOpt.bf16,
    fp8_recipe: RecipeOpt = None,
    tp: TpOpt = None,
    pp: PpOpt = None,
    dp: Annotated[int | None, typer.Option(min=1, help="Data parallel degree (default: GPUs / (TP x PP x CP))")] = None,
    ep: EpOpt = None,
    cp: CpOpt = None,
    zero_stage: ZeroOpt = None,
    micro_batch_size: MbsOpt = None,
    schedule: SchedOpt = None,
    vpp: VppOpt = None,
    recompute: RecOpt = None,
    tp_overlap: OverlapOffOpt = None,
    usd_per_gpu_hour: PriceOpt = None,
    calibration: Annotated[
        str | None, typer.Option(help="Calibration file from `costsim calibrate` (--gpu cpu for a CPU calibration)")
    ] = None,
    draws: Annotated[int, typer.Option(help="Joint draws of the uncertain inputs")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed of the draws")] = 0,
    tokens_spread: Annotated[float, typer.Option(help="Relative spread of --tokens (lognormal sigma)")] = 0.0,
) -> None:
    """Write an investor-ready report: estimate, breakdowns, uncertainty band, every assumption with its source, charts."""
    from cli import _count, _fail
    from simulator.api import run_estimate
    from simulator.calibration import hardware_for
    from simulator.errors import CostsimError
    from simulator.report_document import prepare_output, write_report
    from simulator.specs import load_model
    from simulator.uncertainty import band_for_estimate, check_options

    layout = {
        "tp": tp,
        "pp": pp,
        "dp": dp,
        "ep": ep,
        "cp": cp,
        "zero_stage": zero_stage,
        "micro_batch_size": micro_batch_size,
        "schedule": schedule.value if schedule else None,
        "recompute": recompute.value if recompute else None,
        "vpp": vpp,
        "tp_overlap": tp_overlap,
    }
    try:
        check_options(draws, seed, tokens_spread)
        prepare_output(output, force)  # refuse a used directory before minutes of work
        est = run_estimate(
            model=model,
            gpu=gpu,
            num_gpus=num_gpus,
            tokens=_count("--tokens", tokens),
            seq_len=seq_len,
            global_batch_tokens=_count("--global-batch-tokens", global_batch_tokens),
            precision=precision.value,
            layout=layout,
            usd_per_gpu_hour=usd_per_gpu_hour,
            calibration=calibration,
            fp8_recipe=fp8_recipe.value if fp8_recipe else None,
        )
        spec, hw = load_model(model), hardware_for(gpu, calibration)
        band = band_for_estimate(est, spec, hw, usd_per_gpu_hour is not None, tokens_spread, draws, seed)
        command = _command_line(locals_for_command(locals()))
        files = write_report(est, spec, hw, band, output, force=True, command=command, given=layout)
    except CostsimError as e:
        _fail(e)
    typer.echo(f"wrote {files['markdown']}")
    typer.echo(f"wrote {files['html']} (self-contained: charts embedded)")
    for path in files["charts"].values():
        typer.echo(f"wrote {path}")


def locals_for_command(values: dict) -> dict:
    """The options as given, for the command line printed in the report."""
    keep = ("gpu", "num_gpus", "tokens", "seq_len", "global_batch_tokens", "precision", "fp8_recipe", "tp", "pp", "dp", "ep")
    keep += ("cp",)
    keep += ("zero_stage", "micro_batch_size", "schedule", "vpp", "recompute", "tp_overlap", "usd_per_gpu_hour", "draws", "seed")
    keep += ("tokens_spread", "calibration")
    out = {"model": values["model"]}
    for k in keep:
        v = values.get(k)
        out[k] = v.value if isinstance(v, StrEnum) else v
    out["output"] = values["output"]
    return out


def _command_line(options: dict) -> str:
    defaults = {"precision": "bf16", "draws": 10_000, "seed": 0, "tokens_spread": 0.0}
    parts = ["costsim", "report", options.pop("model")]
    for k, v in options.items():
        if v is None or defaults.get(k) == v:
            continue
        flag = f"--{k.replace('_', '-')}"
        parts += [flag if v is True else f"--no-{flag[2:]}"] if isinstance(v, bool) else [flag, str(v)]
    return shlex.join(parts)
