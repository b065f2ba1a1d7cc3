"""`costsim calibrate`, `costsim calibrate check` and `costsim validate local` (torch is imported lazily).

torch is an optional dependency (the `calibrate` extra): without it these three commands stop with one
line saying how to install it, and every other command works as before.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cli.options import TableJson, document_json
from cli.progress import DelayedProgress
from simulator.units import GIGA, MICRO, TERA


class DeviceOpt(StrEnum):
    cpu = "cpu"
    cuda = "cuda"


def register(app: typer.Typer, validate_app: typer.Typer) -> None:
    calibrate_app = typer.Typer(
        help="Measure this device with torch microbenchmarks and fit the efficiency model (writes a calibration file).",
        invoke_without_command=True,
    )
    calibrate_app.callback(invoke_without_command=True)(calibrate)
    calibrate_app.command("check")(check)
    app.add_typer(calibrate_app, name="calibrate")
    validate_app.command("local")(validate_local)


def _fail(err) -> None:
    from cli.options import fail

    fail(err)


TORCH_INSTALL = "pip install 'costsim[calibrate]' (or pip install torch==2.13.0, the CPU build)"


def _require_torch(command: str) -> None:
    """`fail` with one line naming the fix when torch cannot be imported (costsim installed without the extra)."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        from simulator.errors import InputError

        why = "is not installed" if isinstance(e, ModuleNotFoundError) and e.name == "torch" else f"does not import ({e})"
        _fail(InputError(f"{command} needs torch, which {why}: {TORCH_INSTALL}"))


def _bar() -> DelayedProgress:
    """The progress bar of the other long commands, over the points of a calibration, the point measured as its label."""
    return DelayedProgress("calibrating")


def _device(device: DeviceOpt | None) -> str:
    if device is not None:
        return device.value
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def calibrate(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Calibration file to write (JSON)")] = None,
    device: Annotated[DeviceOpt | None, typer.Option(help="Device to measure (default: cuda if torch sees a GPU)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer points: < 2 min on a 2-core CPU, < 5 on one H100")] = False,
    model: Annotated[str | None, typer.Option(help="Also measure the exact GEMM shapes of this model (name or spec)")] = None,
    seq_len: Annotated[int | None, typer.Option(min=1, max=1_000_000, help="--model: sequence length (default: its own)")] = None,
    micro_batch_size: Annotated[int, typer.Option(min=1, max=4096, help="--model: sequences per micro-batch")] = 1,
    tp: Annotated[int, typer.Option(min=1, max=1024, help="--model: tensor-parallel degree of the layout")] = 1,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch (default 1: stable timings)")] = None,
    profile: Annotated[
        str | None, typer.Option(help="Hardware profile this GPU is, where the device name does not tell (e.g. h100-sxm)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file")] = False,
    no_collectives: Annotated[bool, typer.Option("--no-collectives", help="Skip the torchrun collectives benchmark")] = False,
    collectives: Annotated[
        str | None,
        typer.Option(help="JSON of a torchrun run of calibrate.collectives (multi-node): used instead of measuring here"),
    ] = None,
    smoke: Annotated[bool, typer.Option("--smoke", hidden=True, help="A few points only (tests)")] = False,
) -> None:
    """Run the microbenchmarks (GEMM, attention, memory-bound kernels, collectives, and for serving decode GEMMs, decode
    attention and the decode all-to-all), fit, and write --output.

    `costsim calibrate check FILE` measures again and compares with a stored calibration.
    """
    if ctx.invoked_subcommand is not None:
        return
    _require_torch("costsim calibrate")
    from simulator.errors import CostsimError, InputError

    try:
        if output is None:
            raise InputError("--output FILE is required: where to write the calibration (e.g. --output calibration.json)")
        from simulator.inputs.calibration import Workload, check_output_path, write_calibration

        check_output_path(output, force)
        from calibrate.run import calibrate as run_calibration
        from simulator.inputs.catalog import load_model

        extra, label = [], None
        if model is None and seq_len is not None:  # (--micro-batch-size and --tp have defaults, so they cannot be told)
            raise InputError("--seq-len sets the sequence of --model's GEMM shapes; give --model too, or drop --seq-len")
        if model is not None:
            spec = load_model(model)
            from simulator.model.serve.search import check_tp

            check_tp(spec, tp)  # before minutes of measuring shapes that do not exist
            s = seq_len or spec.default_seq_len or 4096
            extra = [Workload(model=spec, batch=micro_batch_size, seq_len=s, tp=tp)]
            label = f"{spec.name} (seq {s}, micro-batch {micro_batch_size}, TP {tp})"
        mode = "smoke" if smoke else "quick" if quick else "full"
        if collectives is not None:
            from calibrate.run import load_collectives

            load_collectives(collectives)  # a bad file fails before minutes of measuring
        dev = _device(device)
        if profile is not None:
            if dev != "cuda":
                raise InputError(f"--profile {profile} names a GPU profile, but the device is {dev}; drop --profile")
            from simulator.inputs.catalog import load_hardware

            profile = load_hardware(profile).name  # an alias or a typo fails here, with suggestions
        typer.echo(f"calibrating {dev} ({mode})...", err=True)
        with _bar() as bar:
            cal = run_calibration(
                dev,
                mode,
                extra_models=extra,
                model_label=label,
                profile=profile,
                threads=threads,
                progress=bar.update,
                collectives_enabled=not no_collectives,
                collectives_file=collectives,
            )
        path = write_calibration(cal, output, force=force)
    except CostsimError as e:
        _fail(e)
    typer.echo(summary(cal, path))


def summary(cal, path: Path) -> str:
    from simulator.report.tables import text_table

    p, f = cal.provenance, cal.fit
    lines = [
        f"wrote {path}: {p.device_name}"
        + (f", {p.cpu_threads} threads" if p.cpu_threads else f", {p.device_count} GPU(s), profile {p.hardware_profile}")
        + f", {p.mode} mode, {p.wall_s:.0f} s",
    ]
    gemms = [
        (d, f"{g.best_flop_per_s / TERA:.3f}", g.quality.samples, f"{g.quality.median_abs_error:.1%}",
         f"{g.quality.max_abs_error:.1%}")
        for d, g in f.gemm.items()
    ]  # fmt: skip
    lines.append(text_table(("GEMM", "best TFLOP/s", "points", "fit median |err|", "max"), gemms, align="lrrrr"))
    lines.append(f"kernel overhead {f.kernel_overhead_s / MICRO:.1f} us")
    if f.attention:
        a = f.attention
        lines.append(
            f"attention: forward {a.forward_flop_per_s / TERA:.3f} TFLOP/s (causal), "
            f"backward/forward {a.backward_over_forward:.2f}, "
            f"fit median |err| {a.quality.median_abs_error:.1%} over {a.quality.samples} points"
        )
    if f.memory:
        m = f.memory
        copy = f"copy {m.copy_bytes_per_s / GIGA:.1f} GB/s, " if m.copy_bytes_per_s else ""
        kernels = ", ".join(f"{k} {v / GIGA:.1f}" for k, v in m.by_kernel_bytes_per_s.items())
        lines.append(f"memory: {copy}memory-bound kernels {m.memory_bound_bytes_per_s / GIGA:.1f} GB/s ({kernels} GB/s)")
    for tier, t in f.collectives.items():
        ops = ", ".join(f"{op} {o.busbw_bytes_per_s / GIGA:.2f} GB/s" for op, o in t.by_op.items())
        lines.append(
            f"collectives {tier} ({t.backend}, {t.world_size} ranks): latency {t.latency_s / MICRO:.0f} us, "
            f"busBW {t.busbw_bytes_per_s / GIGA:.2f} GB/s ({ops})"
        )
    for d, g in f.decode_gemm.items():
        lines.append(
            f"decode GEMM {d} (1-{max(s.m for s in cal.samples.decode_gemm if s.dtype == d)} tokens): operand bandwidth "
            f"{g.operand_bytes_per_s / GIGA:.1f} GB/s from {g.memory_bound_points} memory-bound points, "
            f"fit median |err| {g.quality.median_abs_error:.1%} over {g.quality.samples} points"
        )
    if f.decode_attention:
        a = f.decode_attention
        lines.append(
            f"decode attention: KV read {a.kv_bytes_per_s / GIGA:.1f} GB/s, fit median |err| {a.quality.median_abs_error:.1%} "
            f"over {a.quality.samples} points"
        )
    for tier, a in f.decode_all_to_all.items():
        lines.append(
            f"decode all-to-all {tier} ({a.backend}, {a.world_size} ranks): latency {a.latency_s / MICRO:.0f} us, "
            f"{a.bytes_per_s / GIGA:.2f} GB/s per rank"
        )
    for n in cal.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)


def decode_cases_table(result: dict, header: bool = False) -> str:
    """validate local's decode cases as text: each generation step measured and `costsim serve`'s decode step.
    `header`: open with the device and calibration (when no training case ran)."""
    from simulator.report.tables import text_table
    from simulator.units import MEGA, MILLI

    cells = [
        (r["case"], f"{r['params'] / MEGA:.1f}M", r["batch"], f"{r['mean_context']:,.0f}",
         f"{r['measured_step_time_s'] / MILLI:.2f} ms", f"{r['measured_spread']:.1%}",
         f"{r['predicted_step_time_s'] / MILLI:.2f} ms", f"{r['error']:+.1%}")
        for r in result["decode_cases"]
    ]  # fmt: skip
    columns = ("decode case", "params", "batch", "context", "measured", "spread", "predicted", "error")
    lines = [f"device: {result['device']}", f"calibration: {result['calibration']} ({result['calibration_date'][:10]})"]
    lines = lines if header else []
    lines += ["", f"decode: costsim serve's decode step, TP=DP=PP=1, on {result['serving_efficiency_source']}"]
    lines.append(text_table(columns, cells, align="lrrrrrrr"))
    lines.append(f"median |decode step-time error| {result['decode_median_abs_error']:.1%}")
    return "\n".join(lines)


def check(
    file: Annotated[Path, typer.Argument(help="Calibration file to check")],
    tolerance: Annotated[float, typer.Option(min=0.0, max=10.0, help="Largest allowed relative drift of a rate")] = 0.1,
    serving_tolerance: Annotated[
        float | None,
        typer.Option(min=0.0, max=10.0, help="Largest allowed drift of the decode (serving) rates (default: --tolerance)"),
    ] = None,
    format: Annotated[TableJson, typer.Option("--format", help="Output format")] = TableJson.table,
) -> None:
    """Measure again and compare with a stored calibration; exit 1 on drift beyond --tolerance (--serving-tolerance for
    the decode rates) or an edited file."""
    from simulator.errors import CostsimError
    from simulator.inputs.calibration import load_calibration

    try:  # an edited, relabelled or broken file is refused at once, before torch is imported (seconds)
        stored = load_calibration(file)
    except CostsimError as e:
        _fail(e)
    _require_torch("costsim calibrate check")
    import torch

    p = stored.provenance
    if p.device_kind == "cuda" and not torch.cuda.is_available():
        from simulator.errors import InputError

        # check measures the file's own device again; --device does not apply to it
        _fail(InputError(f"{file} was measured on {p.device_name} (cuda) and torch sees no CUDA GPU here; run "
                         f"costsim calibrate check on a machine with that GPU and a CUDA build of torch"))  # fmt: skip
    from calibrate.check import check as run_check

    try:
        with _bar() as bar:
            result = run_check(file, tolerance, progress=bar.update, stored=stored, serving_tolerance=serving_tolerance)
    except CostsimError as e:
        _fail(e)
    typer.echo(document_json(result) if format == TableJson.json else check_table(result))
    if not result["ok"]:
        raise typer.Exit(code=1)


def validate_local(
    device: Annotated[DeviceOpt | None, typer.Option(help="Device to train on (default: cuda if torch sees a GPU)")] = None,
    calibration: Annotated[
        str | None, typer.Option(help="Calibration file of this device (default: run a quick BF16 calibration first)")
    ] = None,
    steps: Annotated[int, typer.Option(min=3, max=10_000, help="Timed training steps per case")] = 20,
    warmup: Annotated[int, typer.Option(min=1, max=1000, help="Untimed steps first")] = 4,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads (default: the calibration's, else 1)")] = None,
    case: Annotated[list[str] | None, typer.Option("--case", help="Run only these cases (repeatable)")] = None,
    max_error: Annotated[
        float | None,
        typer.Option(min=0.0, help="Exit 1 when the median |step-time error| (training or decode) exceeds this fraction"),
    ] = None,
    max_decode_error: Annotated[
        float | None,
        typer.Option(min=0.0, help="Exit 1 when the median |decode step-time error| exceeds this (default: --max-error)"),
    ] = None,
    format: Annotated[TableJson, typer.Option("--format", help="Output format")] = TableJson.table,
) -> None:
    """Train small real transformers here and compare step time (and GPU peak memory) with the simulator; generate
    with a KV cache and compare each decode step with costsim serve's."""
    _require_torch("costsim validate local")
    from calibrate import validate_local as vl
    from simulator.errors import CostsimError

    try:
        with _bar() as bar:
            result = vl.run(
                _device(device), calibration, steps, warmup, threads, bar.update, case, lambda line: typer.echo(line, err=True)
            )
    except CostsimError as e:
        _fail(e)
    if format == TableJson.json:
        typer.echo(document_json(result))
    else:
        tables = [validate_local_table(result)] if result["cases"] else []
        typer.echo("\n".join(tables + ([decode_cases_table(result, header=not tables)] if result["decode_cases"] else [])))
    limits = ((result["median_abs_error"], max_error),
              (result["decode_median_abs_error"], max_error if max_decode_error is None else max_decode_error))  # fmt: skip
    if any(e is not None and limit is not None and e > limit for e, limit in limits):
        raise typer.Exit(code=1)


def check_table(result: dict) -> str:
    """`costsim calibrate check` as text: each rate stored and now, its drift, and the verdict."""
    from simulator.report.tables import text_table

    lines = [f"calibration {result['file']} ({result['stored_device']}, {result['stored_date'][:10]})"]
    if not result["fit_matches_samples"]:
        lines.append(
            "the stored fit does not follow from the stored samples with this costsim's memory-kernel weights "
            "(the step model changed since, or the file was edited):"
        )
        lines += [f"  {m}" for m in result["fit_mismatches"]]
        lines.append("FAILED: not measured again; recalibrate (costsim calibrate --output FILE --force)")
        return "\n".join(lines)
    lines[0] += f" against {result['measured_device']} now, tolerance {result['tolerance']:.0%}"
    if result["serving_tolerance"] != result["tolerance"]:
        lines[0] += f" ({result['serving_tolerance']:.0%} for the decode rates)"
    rates = [
        (r["rate"], f"{r['stored']:.4g}", f"{r['measured']:.4g}", f"{r['drift']:+.1%}", "" if r["ok"] else "DRIFT")
        for r in result["rates"]
    ]
    lines.append(text_table(("rate", "stored", "now", "drift", ""), rates, align="lrrrl"))
    for m in result["device_mismatches"]:
        lines.append(f"not the device of the file: {m}  OTHER DEVICE")
    for m in result["not_measured_again"]:
        lines.append(f"{m}: in the file but not measured now  MISSING")
    for m in result["timed_otherwise"]:
        lines.append(f"{m}: the file timed it another way (queued from the host, before CUDA graphs): not compared; "
                     "recalibrate to check it")  # fmt: skip
    for m in result["not_fitted_again"]:
        lines.append(f"{m}: fitted in the file, no memory-bound point now (not a failure; an unstable measurement)")
    ok = "ok: the calibration still holds"
    lines.append(ok if result["ok"] else "FAILED: recalibrate (costsim calibrate --output FILE --force)")
    return "\n".join(lines)


def validate_local_table(result: dict) -> str:
    """`costsim validate local` as text: each case measured and predicted, and the median errors."""
    from simulator.report.tables import text_table
    from simulator.units import GIB, MEGA, MILLI

    gpu = result["device_kind"] == "cuda"
    columns = ["case", "params", "batch x seq", "measured", "spread", "predicted", "error"]
    if gpu:
        columns += ["mem meas", "mem pred", "error"]
    lines = [
        f"device: {result['device']}" + (f" ({result['cpu_threads']} threads)" if result["cpu_threads"] else ""),
        f"calibration: {result['calibration']} ({result['calibration_date'][:10]})",
        f"prediction: simulator step model, TP=PP=DP=1, gemm_sustain {result['assumptions_changed']['gemm_sustain']:g}, "
        "no reserved memory",
        "",
    ]
    cells = []
    for r in result["cases"]:
        row = [
            r["case"], f"{r['params'] / MEGA:.1f}M", f"{r['batch']} x {r['seq_len']}",
            f"{r['measured_step_time_s'] / MILLI:.1f} ms", f"{r['measured_spread']:.1%}",
            f"{r['predicted_step_time_s'] / MILLI:.1f} ms", f"{r['error']:+.1%}",
        ]  # fmt: skip
        if gpu:
            row += [
                f"{r['measured_peak_memory_bytes'] / GIB:.2f}GiB", f"{r['predicted_peak_memory_bytes'] / GIB:.2f}GiB",
                f"{r['memory_error']:+.1%}",
            ]  # fmt: skip
        cells.append(row)
    lines.append(text_table(columns, cells, align="lrrrrrrrrr"))
    lines.append("")
    lines.append(f"median |step-time error| {result['median_abs_error']:.1%} (target <= {result['target_median_abs_error']:.0%})")
    if result["median_abs_memory_error"] is not None:
        lines.append(
            f"median |peak-memory error| {result['median_abs_memory_error']:.1%} (target <= {result['target_memory_error']:.0%})"
        )
    for note in result["skipped"]:
        lines.append(f"skipped: {note}")
    for r in result["recompute_costs"]:
        ratio = r["measured_over_predicted"]
        lines.append(
            f"full recompute, {r['base']}: +{r['measured_extra_s'] / MILLI:.1f} ms measured, "
            f"+{r['predicted_extra_s'] / MILLI:.1f} ms predicted" + (f" (x{ratio:.2f})" if ratio is not None else "")
        )
    return "\n".join(lines)
