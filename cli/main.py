"""`costsim` command line: parses options, calls simulator, prints. No formulas here."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from cli.options import (
    NUM_GPUS,
    RUN_LAYOUT_FLAGS,
    AttentionOpt,
    BatchOpt,
    ForceOpt,
    Format,
    PrecisionOpt,
    PriceOpt,
    RecipeOpt,
    SeqLenOpt,
    StackOpt,
    band_options,
    check_output_file,
    echo_result,
    echo_timings,
    error_line,
    fail,
    flag_name,
    job_options,
    layout_flags,
    ranged,
)
from simulator.errors import CostsimError, InputError
from simulator.units import MICRO, MILLI


@contextlib.contextmanager
def _quiet_broken_pipe():
    """A reader that stopped reading (`costsim list models | head -1`) ends the command quietly, exit status 0.

    The standard way (Python docs, "Note on SIGPIPE"): what is left of stdout goes to /dev/null, so neither the
    rest of the command nor the interpreter's last flush writes into the closed pipe."""
    try:
        yield
    except BrokenPipeError:
        _stdout_to_devnull()
        raise typer.Exit(0) from None


def _stdout_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test runner's buffer): nothing left to guard
        pass


class _Root(TyperGroup):
    """The root command: a closed pipe while parsing (--help), running a command or printing its result is quiet."""

    def make_context(self, *args, **kwargs):
        with _quiet_broken_pipe():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _quiet_broken_pipe():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Root,
    no_args_is_help=True,
    help="Training cost simulator for large language models.",
    # Plain (click) help: at 80 columns rich's option table cut flag names ("--global-batch-t..."); click's
    # layout puts a long flag on its own line and wraps the help text under it.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"costsim {version('costsim')}")
        except PackageNotFoundError:
            typer.echo("costsim (not installed: no package metadata; pip install -e .)")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """Training cost simulator for large language models."""


list_app = typer.Typer(no_args_is_help=True, help="List what ships: GPUs, models, software stacks, plans and workloads.")
app.add_typer(list_app, name="list")
validate_app = typer.Typer(no_args_is_help=True, help="Compare the model with measured or published runs.")
app.add_typer(validate_app, name="validate")


@app.command()
@layout_flags(RUN_LAYOUT_FLAGS)
def estimate(
    model: Annotated[
        str | None, typer.Argument(help="Shipped model name, a spec YAML, or a Hugging Face config.json (not with --plan)")
    ] = None,
    gpu: Annotated[str | None, typer.Option(help="Hardware profile id or alias (costsim list gpus), or a profile YAML")] = None,
    num_gpus: Annotated[int | None, NUM_GPUS] = None,
    tokens: Annotated[str | None, typer.Option(help="Training tokens, e.g. 14.8T")] = None,
    seq_len: SeqLenOpt = None,
    global_batch_tokens: BatchOpt = None,
    precision: Annotated[PrecisionOpt | None, typer.Option(help="GEMM precision (default bf16)")] = None,
    fp8_recipe: RecipeOpt = None,
    layout: dict | None = None,  # --tp ... --tp-overlap, declared once in cli/options.py
    attention_kernel: Annotated[
        AttentionOpt | None, typer.Option(help="flash, or unfused (materialised scores, Megatron-LM 2021); default: the stack's")
    ] = None,
    dropout: Annotated[
        float | None,
        ranged("Dropout probability (default 0, as in modern pre-training)", 0.0, 0.9, "give a probability, e.g. 0.1"),
    ] = None,
    usd_per_gpu_hour: PriceOpt = None,
    stack: StackOpt = None,
    plan: Annotated[str | None, typer.Option(help="A plan with stages instead of MODEL: shipped name (plans/) or YAML")] = None,
    pricing: Annotated[str, typer.Option(help="Cost basis: rental ($/GPU-hour) or tco (amortized capital + energy)")] = "rental",
    rental: Annotated[
        str | None, typer.Option(help="Which of the profile's rental quotes: on-demand or reserved (default: the profile's)")
    ] = None,
    experiments_multiplier: Annotated[
        float | None, typer.Option(help="Whole-program cost = final run x this (ablations, failed runs), shown apart")
    ] = None,
    gpu_purchase_usd: Annotated[float | None, typer.Option(help="GPU price for --pricing tco (default: the profile's)")] = None,
    pue: Annotated[float | None, typer.Option(help="Power usage effectiveness (default 1.25, Epoch AI)")] = None,
    usd_per_kwh: Annotated[float | None, typer.Option(help="Electricity price (default 0.0826, US industrial 2025)")] = None,
    grid_kg_co2_per_kwh: Annotated[float | None, typer.Option(help="Grid carbon intensity (default 0.414)")] = None,
    uncertainty: Annotated[
        bool, typer.Option("--uncertainty", help="P10/P50/P90 of GPU-hours, days and dollars, and what moves them most")
    ] = False,
    draws: Annotated[int | None, typer.Option(help="Joint draws for --uncertainty (default 10,000)")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for --uncertainty (default 0)")] = None,
    tokens_spread: Annotated[
        float | None, typer.Option(help="Relative spread of --tokens for --uncertainty (lognormal sigma, default 0)")
    ] = None,
    calibration: Annotated[
        str | None, typer.Option(help="Calibration file from `costsim calibrate` (--gpu cpu for a CPU calibration)")
    ] = None,
    format: Annotated[Format, typer.Option("--format", help="Output format")] = Format.table,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also print how long the --uncertainty evaluations took (on stderr)")
    ] = False,
) -> None:
    """Estimate GPU-hours, wall-clock days, dollars, MFU and memory of one training run, or of a plan's stages."""
    from simulator import api

    run_flags = {"MODEL": model, "--gpu": gpu, "--num-gpus": num_gpus, "--tokens": tokens}
    job_flags = {"--seq-len": seq_len, "--global-batch-tokens": global_batch_tokens, "--precision": precision}
    job_flags |= {"--fp8-recipe": fp8_recipe, "--attention-kernel": attention_kernel, "--dropout": dropout}
    job_flags |= {"--calibration": calibration, "--stack": stack} | {flag_name(k): v for k, v in (layout or {}).items()}
    try:
        band = band_options(uncertainty, draws, seed, tokens_spread)
        if verbose and band is None:
            raise InputError("--verbose prints how long the --uncertainty evaluations took; add --uncertainty or drop it")
        prices = {"pricing": pricing, "rental": rental, "usd_per_gpu_hour": usd_per_gpu_hour}
        prices |= {"gpu_purchase_usd": gpu_purchase_usd, "pue": pue, "usd_per_kwh": usd_per_kwh}
        prices |= {"grid_kg_co2_per_kwh": grid_kg_co2_per_kwh, "experiments_multiplier": experiments_multiplier}
        api.cost_options(**prices)  # a bad price option fails before a missing-model complaint
        if plan is not None:
            clash = [k for k, v in (run_flags | job_flags).items() if v is not None]
            if clash:
                raise InputError(f"--plan sets the model, GPUs, tokens and layout of each stage; drop {', '.join(clash)}")
            from cli.analysis import plan_output

            result = api.plan(plan, **prices, uncertainty=band is not None, **(band or {}))
            typer.echo(plan_output(result.to_dict(), format.value), nl=format != Format.csv)
            if verbose:
                echo_timings(result.uncertainty)
            return
        missing = [k for k, v in run_flags.items() if v is None]
        if missing:
            raise InputError(f"missing {', '.join(missing)}: give MODEL --gpu --num-gpus --tokens, or --plan NAME|FILE.yaml")
        result = api.estimate(
            model,
            gpu,
            num_gpus,
            **job_options(tokens, seq_len, global_batch_tokens, precision, fp8_recipe),
            attention_kernel=attention_kernel.value if attention_kernel else None,
            stack=stack,
            dropout=dropout or 0.0,
            calibration=calibration,
            **prices,
            uncertainty=band is not None,
            **(band or {}),
            **(layout or {}),
        )
        d = result.to_dict()
    except CostsimError as e:
        fail(e)
    echo_result(format, d, result.rows(), lambda: _estimate_text(d))
    if verbose:
        echo_timings(result.uncertainty)


def _estimate_text(d: dict) -> str:
    """The estimate table, its cost block and, with --uncertainty, the band."""
    from simulator.report import tables as report

    text = report.estimate_table(d) + "\n" + "\n".join(["", *report.cost_lines(d["cost"])])
    if "uncertainty" in d:
        from simulator.report.document import uncertainty_table

        text += "\n" + uncertainty_table(d["uncertainty"])
    return text


ListFormat = Annotated[Format, typer.Option("--format", help="Output format (json and csv: one record per entry)")]


def _echo_list(format: Format, key: str, rows_of, table) -> None:
    """A `costsim list` result: the rows (a shipped file that fails to load is one error line), as JSON under `key`,
    CSV or the text table `table(rows)`."""
    try:
        rows = rows_of()
    except CostsimError as e:
        fail(e)
    echo_result(format, {key: rows}, rows, lambda: table(rows))


@list_app.command("gpus")
def list_gpus(format: ListFormat = Format.table) -> None:
    """Shipped hardware profiles with their dense peaks, memory and links."""
    from simulator.inputs.catalog import hardware_ids, load_hardware_file

    def row(path) -> dict:
        h = load_hardware_file(path)
        fp8, fp4 = h.dense_tflop_per_s.fp8, h.dense_tflop_per_s.fp4
        return {
            "id": h.name,
            "name": h.display_name,
            "dense_tflop_per_s_bf16": h.dense_tflop_per_s.bf16.value,
            "dense_tflop_per_s_fp8": fp8.value if fp8 else None,
            "dense_tflop_per_s_fp4": fp4.value if fp4 else None,
            "memory_gib": h.memory_gib.value,
            "scale_up_gb_per_s_per_direction": h.scale_up.gb_per_s_per_direction.value,
            "scale_out_gbit_per_s_per_gpu": h.scale_out.gbit_per_s_per_gpu.value,
            "usd_per_gpu_hour": h.price.usd_per_gpu_hour,
            "price_kind": h.price.kind,
            "price_date": h.price.date,
            "generation": h.generation,
            "aliases": " ".join(h.aliases),
        }

    _echo_list(format, "gpus", lambda: [row(p) for p in sorted(set(hardware_ids().values()))], _gpus_table)


def _gpus_table(rows: list[dict]) -> str:
    from simulator.report.tables import text_table

    columns = ("id", "name", "bf16", "fp8", "fp4", "HBM", "link/dir", "NIC", "$/h", "price kind, date", "aliases")
    cells = [
        (
            r["id"], r["name"], f"{r['dense_tflop_per_s_bf16']:.0f}",
            "-" if r["dense_tflop_per_s_fp8"] is None else f"{r['dense_tflop_per_s_fp8']:.0f}",
            "-" if r["dense_tflop_per_s_fp4"] is None else f"{r['dense_tflop_per_s_fp4']:.0f}",
            f"{r['memory_gib']:.0f}GiB", f"{r['scale_up_gb_per_s_per_direction']:.0f}GB/s",
            f"{r['scale_out_gbit_per_s_per_gpu']:.0f}Gb/s", f"{r['usd_per_gpu_hour']:.2f}",
            f"{r['price_kind']}, {r['price_date']}", r["aliases"].replace(" ", ", "),
        )
        for r in rows
    ]  # fmt: skip
    table = text_table(columns, cells, align="llrrrrrrll")
    return table + "\npeaks: dense TFLOP/s (no sparsity); link: per GPU and direction; NIC: per GPU"


@list_app.command("models")
def list_models(format: ListFormat = Format.table) -> None:
    """Shipped model specs with total and activated parameters."""
    from simulator.inputs.catalog import load_model_file, model_ids
    from simulator.model.flops import parameter_counts

    def row(name: str, path) -> dict:
        m = load_model_file(path)
        p = parameter_counts(m)
        return {
            "name": name,
            "params_total": int(p.total),
            "params_activated": int(p.activated),
            "n_layers": m.n_layers,
            "d_model": m.d_model,
            "attention": _attention_kind(m),
            "ffn": m.ffn,
            "moe_routed_experts": m.moe.n_routed_experts if m.moe else None,
            "moe_top_k": m.moe.top_k if m.moe else None,
        }

    _echo_list(format, "models", lambda: [row(n, p) for n, p in model_ids().items()], _models_table)


def _models_table(rows: list[dict]) -> str:
    from simulator.report.tables import text_table
    from simulator.units import format_count

    cells = [
        (
            r["name"], format_count(r["params_total"]), format_count(r["params_activated"]), r["n_layers"], r["d_model"],
            f"{r['attention']} / {r['ffn']}"
            + (f", MoE {r['moe_routed_experts']}x top-{r['moe_top_k']}" if r["moe_routed_experts"] is not None else ""),
        )
        for r in rows
    ]  # fmt: skip
    return text_table(("name", "total", "activated", "layers", "d_model", "attention / FFN"), cells, align="lrrrrl")


@list_app.command("plans")
def list_plans(format: ListFormat = Format.table) -> None:
    """Shipped plans (costsim estimate --plan NAME): model, GPU, stages and the published figure each checks."""
    from simulator.inputs.plan_file import load_plan_file, plan_ids

    def row(name: str, path) -> dict:
        p = load_plan_file(path)
        reported = [r.gpu_hours for r in p.reported if r.stages is None]
        return {
            "name": name,
            "model": p.model,
            "gpu": p.gpu,
            "stages": [s.name for s in p.stages],
            "kinds": sorted({s.kind for s in p.stages}),
            "reported_gpu_hours": reported[0] if reported else None,
            "source": p.source,
        }

    _echo_list(format, "plans", lambda: [row(n, p) for n, p in plan_ids().items()], _plans_table)


def _plans_table(rows: list[dict]) -> str:
    from simulator.report.tables import text_table
    from simulator.units import format_count

    cells = [
        (r["name"], r["model"], r["gpu"], len(r["stages"]), ", ".join(r["kinds"]),
         "" if r["reported_gpu_hours"] is None else format_count(r["reported_gpu_hours"]))
        for r in rows
    ]  # fmt: skip
    return text_table(("name", "model", "GPU", "stages", "kinds", "reported GPU-hours"), cells, align="lllrlr")


@list_app.command("workloads")
def list_workloads(format: ListFormat = Format.table) -> None:
    """Shipped workloads (costsim serve --workload NAME): request-length distributions and the lengths each is costed at."""
    from simulator.inputs.workload_file import load_workload_file, workload_ids
    from simulator.model.serve.workload import workload_lengths

    def row(name: str, path) -> dict:
        w = load_workload_file(path)
        return {"name": name, "display_name": w.display_name, "source": w.source} | workload_lengths(w).to_dict()

    _echo_list(format, "workloads", lambda: [row(n, p) for n, p in workload_ids().items()], _workloads_table)


def _workloads_table(rows: list[dict]) -> str:
    from simulator.report.tables import text_table

    cells = [
        (r["name"], f"{r['mean_input_len']:,.0f}", f"{r['mean_output_len']:,.0f}", f"{r['prefill_input_len']:,.0f}",
         f"{r['decode_context_len']:,.0f}", f"{r['max_context_len']:,.0f}")
        for r in rows
    ]  # fmt: skip
    table = text_table(("name", "mean in", "mean out", "prefill at", "decode context", "longest"), cells, align="lrrrrr")
    return table + "\nprefill at: token-weighted prompt; decode context: output-weighted (docs/model.md §16.15)"


@list_app.command("stacks")
def list_stacks(format: ListFormat = Format.table) -> None:
    """Software stacks: what each offered the layout search, and what runs on it used by default."""
    from simulator.inputs.stacks import default_stack_name, load_stack, stack_names

    def row(name: str) -> dict:
        s = load_stack(name)
        return {
            "name": name,
            "default": name == default_stack_name(),
            "description": s.description,
            "attention": s.attention,
            "fp8": " ".join(s.fp8),
            "expert_gemm_launch": s.expert_gemm_launch,
            "fp8_tensor_scaling": s.fp8_tensor_scaling,
            "sources": "; ".join(s.sources),
        }

    _echo_list(format, "stacks", lambda: [row(n) for n in stack_names()], _stacks_table)


def _stacks_table(rows: list[dict]) -> str:
    from simulator.report.tables import text_table

    def fp8(r: dict) -> str:
        current = " (tensor: current scaling)" if r["fp8"] and r["fp8_tensor_scaling"] == "current" else ""
        return (r["fp8"].replace(" ", ", ") or "none") + current

    cells = [
        (r["name"] + (" (default)" if r["default"] else ""), r["attention"], fp8(r),
         r["expert_gemm_launch"].replace("_", " "), r["description"])
        for r in rows
    ]  # fmt: skip
    table = text_table(("stack", "attention", "FP8", "MoE experts", "what it offers"), cells, max_widths={4: 72})
    sources = text_table(("", ""), [(r["name"], r["sources"]) for r in rows], header=False, gap=2, indent=2)
    return f"{table}\n\nsources\n{sources}"


def _attention_kind(m) -> str:
    if m.attention == "mla":
        return "MLA"
    return "MHA" if m.n_kv_heads == m.n_heads else "MQA" if m.n_kv_heads == 1 else "GQA"


@app.command()
def fit(
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write the fit here (.yaml) instead of the shipped simulator/data/fitted_constants.yaml"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Fit and print the values and errors; write nothing")] = False,
    force: ForceOpt = False,
) -> None:
    """Refit the fitted constants (gemm_sustain, realization, the host times) to the shipped published runs (about a minute).

    Prints each value with its in-sample and leave-one-out errors, then writes simulator/data/fitted_constants.yaml
    (or --output) with the values, the data and the errors. Its fitted_on date stays when no value moved.
    """
    from simulator.inputs.data_files import refitting

    with refitting():  # a bad or missing fitted_constants.yaml must not stop the command that regenerates it
        from simulator.analysis import fit as fitting

    path = fitting.FITTED_PATH if output is None else output
    try:
        if dry_run and output is not None:
            raise InputError(f"--dry-run writes nothing, so --output {output} would be ignored; drop one of them")
        if not dry_run:  # before a minute of fitting, not after it
            # the shipped file is meant to be replaced: no --force for it
            check_output_file(
                "--output" if output is not None else "the shipped file", path, ".yaml", force=force or output is None,
                example="fitted_constants.yaml",
            )  # fmt: skip
        result = fitting.fit()
    except CostsimError as e:
        fail(e)
    typer.echo(fit_report(result))
    previous = fitting.read_previous(path)
    changed = fitting.changed_values(previous, result)
    if changed is not None:
        typer.echo(f"fitted values {'changed: ' + '; '.join(changed) if changed else 'unchanged'} (against {path})")
    if dry_run:
        typer.echo("not written (--dry-run)")
        return
    try:
        fitting.write(fitting.dated(result, previous), path)
    except CostsimError as e:
        fail(e)
    typer.echo(f"written to {path}")


def fit_report(result: dict) -> str:
    """`costsim fit`'s printout: gemm_sustain's runs and errors, then one line per other constant (realization: one
    per GPU generation too) with its median |error| in-sample and leave-one-out and the largest leave-one-out."""
    from simulator.report.tables import text_table

    def errors(f: dict) -> str:
        return (f"median |error| in-sample {f['median_abs_in_sample_error']:.1%}, leave-one-out "
                f"{f['median_abs_leave_one_out_error']:.1%} (max {f['max_abs_leave_one_out_error']:.1%})")  # fmt: skip

    cells = [
        (c["id"], f"{c['reported']:.0f}", f"{c['in_sample_error']:+.1%}", f"{c['leave_one_out_error']:+.1%}")
        for c in result["cases"]
    ]
    lines = [
        f"gemm_sustain = {result['gemm_sustain']:.4f} from {result['constrained_by']} runs",
        text_table(("run", "reported", "in-sample", "leave-one-out"), cells, align="lrrr"),
        f"median |error|: {errors(result).removeprefix('median |error| ')}",
    ]
    realization = result.get("realization_fit")
    if realization:
        lines.append(
            f"realization from {realization['constrained_by']} whole runs, each at its GPU generation's value: "
            f"{errors(realization)}; {realization['value']:.4f} pooled for other generations"
        )
        lines += [
            f"  {generation} = {f['value']:.4f} from {f['constrained_by']} runs: {errors(f)}"
            for generation, f in realization["by_generation"].items()
        ]
    host_fits = (
        ("expert_launch_fit", "MoE rows", MICRO, "us"),
        ("expert_quantize_fit", "MoE rows in FP8 current scaling", MICRO, "us"),
        ("step_host_fit", "llm-foundry README rows (not validation cases)", MILLI, "ms"),
    )
    for key, rows, unit_s, unit in host_fits:
        fitted = result.get(key)
        if fitted:
            lines.append(
                f"{fitted['constant']} = {fitted['value'] / unit_s:.0f} {unit} from {fitted['constrained_by']} {rows}: "
                f"{errors(fitted)}"
            )
    return "\n".join(lines)


def _register_command_modules() -> None:
    """Commands defined in their own modules of this package (cli/analysis.py, planner.py, published.py, ...)."""
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app, validate_app)


COMMAND_MODULES: list[str] = [
    "cli.analysis",
    "cli.planner",
    "cli.published",
    "cli.reporting",
    "cli.calibrate",
    "cli.schema",
    "cli.serving",
    "cli.fleet",
    "cli.rl",
]
_register_command_modules()


def main() -> None:
    try:
        app()
    except CostsimError as e:  # a user error raised outside a command's own handler
        print(f"error: {error_line(e)}", file=sys.stderr)
        sys.exit(1)
    finally:  # flush guard: a reader that closed the pipe after the last write still gets a quiet exit
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_to_devnull()


if __name__ == "__main__":
    main()
