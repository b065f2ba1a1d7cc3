"""`costsim report`: a Markdown and an HTML report with PNG charts (document in simulator/report/document.py)."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from cli.options import (
    BF16,
    NUM_GPUS,
    RUN_LAYOUT_FLAGS,
    BatchOpt,
    PrecOpt,
    PriceOpt,
    RecipeOpt,
    SeqLenOpt,
    check_output_dir,
    fail,
    flag_name,
    job_options,
    layout_flags,
)
from simulator.units import DEFAULT_DRAWS


def register(app: typer.Typer, validate_app: typer.Typer) -> None:
    app.command("report")(report_command)


@layout_flags(RUN_LAYOUT_FLAGS)
def report_command(
    model: Annotated[
        str | None, typer.Argument(help="Shipped model name, a spec YAML, or a Hugging Face config.json (not with --plan)")
    ] = None,
    gpu: Annotated[str | None, typer.Option(help="Hardware profile id or alias (costsim list gpus), or a profile YAML")] = None,
    num_gpus: Annotated[int | None, NUM_GPUS] = None,
    tokens: Annotated[str | None, typer.Option(help="Training tokens, e.g. 14.8T")] = None,
    output: Annotated[str | None, typer.Option(help="Directory for report.md, report.html and the PNG charts")] = None,
    plan: Annotated[
        str | None,
        typer.Option(help="Report a whole plan (costsim list plans): stages, the published claim checked, a comparison"),
    ] = None,
    compare_with: Annotated[str | None, typer.Option(help="With --plan: another plan to compare with (costsim compare)")] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into an existing, non-empty --output directory")] = False,
    seq_len: SeqLenOpt = None,
    global_batch_tokens: BatchOpt = None,
    precision: PrecOpt = BF16,
    fp8_recipe: RecipeOpt = None,
    layout: dict | None = None,  # --tp ... --tp-overlap, declared once in cli/options.py
    usd_per_gpu_hour: PriceOpt = None,
    calibration: Annotated[
        str | None, typer.Option(help="Calibration file from `costsim calibrate` (--gpu cpu for a CPU calibration)")
    ] = None,
    draws: Annotated[int, typer.Option(help="Joint draws of the uncertain inputs")] = DEFAULT_DRAWS,
    seed: Annotated[int, typer.Option(help="Random seed of the draws")] = 0,
    tokens_spread: Annotated[float, typer.Option(help="Relative spread of --tokens (lognormal sigma)")] = 0.0,
) -> None:
    """Write an investor-ready report: estimate, breakdowns, uncertainty band, every assumption with its source, charts."""
    from simulator import api
    from simulator.analysis.uncertainty import check_options
    from simulator.errors import CostsimError, InputError

    options = {"gpu": gpu, "num_gpus": num_gpus, "tokens": tokens, "seq_len": seq_len, "global_batch_tokens": global_batch_tokens}
    options |= {"precision": precision.value, "fp8_recipe": fp8_recipe.value if fp8_recipe else None, **layout}
    options |= {"usd_per_gpu_hour": usd_per_gpu_hour, "draws": draws, "seed": seed, "tokens_spread": tokens_spread}
    options |= {"calibration": calibration, "output": output}
    try:
        if output is None:
            raise InputError("give --output DIR, the directory for report.md, report.html and the charts")
        check_options(draws, seed, tokens_spread)
        if plan is not None:
            run = (("MODEL", model), ("--gpu", gpu), ("--num-gpus", num_gpus), ("--tokens", tokens), ("--seq-len", seq_len),
                   ("--global-batch-tokens", global_batch_tokens), ("--fp8-recipe", fp8_recipe),
                   ("--calibration", calibration))  # fmt: skip
            given = [f for f, v in run if v]
            given += [f"--precision {precision.value}"] if precision != BF16 else []
            given += [flag_name(k) for k, v in layout.items() if v is not None]
            if given:
                raise InputError(
                    f"--plan {plan} sets the model, GPUs, tokens, precision and layout of each stage; leave out "
                    f"{', '.join(given)}"
                )
        else:
            missing = [f for f, v in (("MODEL", model), ("--gpu", gpu), ("--num-gpus", num_gpus), ("--tokens", tokens)) if not v]
            if missing:
                raise InputError(f"give {', '.join(missing)} (or --plan NAME for a whole plan)")
            if compare_with is not None:
                raise InputError("--compare-with compares plans; give --plan NAME with it")
        check_output_dir("--output", output, force)  # before minutes of work; the report makes the folder when built
        if plan is not None and _generates(plan):
            _rl_plan_report(plan, output, compare_with, usd_per_gpu_hour, draws, seed, tokens_spread)
            return
        if plan is not None:
            from simulator.report.document import write_plan_report

            other = api.plan(compare_with).plan if compare_with is not None else None  # a bad name fails first
            result = api.plan(plan, usd_per_gpu_hour=usd_per_gpu_hour, uncertainty=True, draws=draws, seed=seed,
                              tokens_spread=tokens_spread)  # fmt: skip
            extra = {"--compare-with": compare_with, "--usd-per-gpu-hour": usd_per_gpu_hour}
            extra |= {"--draws": draws if draws != DEFAULT_DRAWS else None, "--seed": seed or None}
            extra |= {"--tokens-spread": tokens_spread or None}
            words = [w for k, v in extra.items() if v is not None for w in (k, f"{v:g}" if isinstance(v, float) else str(v))]
            command = shlex.join(["costsim", "report", "--plan", plan, "--output", output, *words])
            files = write_plan_report(result.plan, result.uncertainty, output, True, command, other)
            _echo(files)
            return
        result = api.estimate(
            model,
            gpu,
            num_gpus,
            **job_options(tokens, seq_len, global_batch_tokens, precision, fp8_recipe),
            calibration=calibration,
            usd_per_gpu_hour=usd_per_gpu_hour,
            uncertainty=True,
            draws=draws,
            seed=seed,
            tokens_spread=tokens_spread,
            **layout,
        )
        files = result.write_report(output, force=True, command=command_line(model, options), given=layout)
    except CostsimError as e:
        fail(e)
    _echo(files)


def _generates(plan: str) -> bool:
    """Whether a plan (name or file) has RL or generation stages: its report is rl_report's, without the uncertainty
    band of training plans (the stated, banded inputs give its band)."""
    from simulator.inputs.plan_file import load_plan

    spec, _ = load_plan(plan)
    return any(s.kind != "training" for s in spec.stages)


def _rl_plan_report(plan: str, output: str, compare_with, usd_per_gpu_hour, draws: int, seed: int, tokens_spread: float):
    from simulator import api
    from simulator.errors import InputError
    from simulator.report.rl_report import write_rl_plan_report

    band_options = [
        f for f, v in (("--draws", draws != DEFAULT_DRAWS), ("--seed", seed), ("--tokens-spread", tokens_spread)) if v
    ]
    if compare_with is not None or band_options:
        given = ", ".join((["--compare-with"] if compare_with is not None else []) + band_options)
        raise InputError(
            f"plan {plan} has RL or generation stages, whose report gives the band of their stated inputs (mean response "
            f"length, long-tail factor); the uncertainty draws and comparisons cover training plans only: leave out {given}"
        )
    result = api.plan(plan, usd_per_gpu_hour=usd_per_gpu_hour)
    words = ["--usd-per-gpu-hour", f"{usd_per_gpu_hour:g}"] if usd_per_gpu_hour is not None else []
    command = shlex.join(["costsim", "report", "--plan", plan, "--output", output, *words])
    _echo(write_rl_plan_report(result.plan, output, True, command))


def _echo(files: dict) -> None:
    typer.echo(f"wrote {files['markdown']}")
    typer.echo(f"wrote {files['html']} (self-contained: charts embedded)")
    for path in files["charts"].values():
        typer.echo(f"wrote {path}")


def command_line(model: str, options: dict) -> str:
    """The `costsim report` command line of the options as given (defaults left out), printed in the report."""
    defaults = {"precision": "bf16", "draws": DEFAULT_DRAWS, "seed": 0, "tokens_spread": 0.0}
    parts = ["costsim", "report", model]
    for k, v in options.items():
        if v is None or defaults.get(k) == v:
            continue
        flag = flag_name(k)
        parts += [flag if v is True else f"--no-{flag[2:]}"] if isinstance(v, bool) else [flag, str(v)]
    return shlex.join(parts)
