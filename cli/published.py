"""`costsim validate public` (the model against published runs) and `costsim claim` (check a training claim)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import (
    ForceOpt,
    Format,
    PrecisionOpt,
    band_options,
    check_output_file,
    count_option,
    echo_result,
    echo_timings,
    fail,
)
from simulator.run.basis_notes import without_tp_overlap
from simulator.units import DEFAULT_DRAWS, KILO


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 101st."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def register(app: typer.Typer, validate_app: typer.Typer) -> None:
    validate_app.command("public")(validate_public)
    app.command("claim")(claim)


# ------------------------------------------------------------------ validate public


def validate_public(
    format: Annotated[Format, typer.Option("--format", help="Output format")] = Format.table,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a log-log scatter (PNG) of predicted vs reported")] = None,
    force: ForceOpt = False,
) -> None:
    """Predict every published run in validation/public_runs.yaml; signed errors, median and max |error|.

    Each run is predicted in the unit it reports (GPU-hours, days, minutes, step time, tokens/s or TFLOP/s
    per GPU) at its published layout; fields a source leaves out are searched. Runs that constrained a
    fitted global constant also show their leave-one-out error (simulator/data/fitted_constants.yaml).
    """
    from simulator.analysis import public_runs
    from simulator.errors import CostsimError
    from simulator.inputs.published import excluded_runs
    from simulator.report.charts import validation_chart

    try:
        check_output_file("--plot", plot, ".png", force)
        results = public_runs.evaluate()
        doc = public_runs.report(results, excluded_runs())
        if plot is not None:
            validation_chart(doc, plot)
    except CostsimError as e:
        fail(e)
    echo_result(format, doc, doc["cases"], lambda: validation_table(doc))
    if plot is not None and format == Format.table:
        typer.echo(f"scatter plot written to {plot}")


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= KILO else f"{x:.4g}"


def track_line(name: str, t: dict) -> str:
    """One validation track: its cases, errors in-sample and leave-one-out, band coverage and whether it meets its
    target."""
    from simulator.analysis.public_runs import TARGET_LABELS

    if not t["n"]:
        return f"  {name}: no cases"
    target = t["target"]
    text = (f"  {name}: {t['n']} runs, median |error| in-sample {t['median_abs_error']:.1%} (max {t['max_abs_error']:.1%}), "
            f"leave-one-out {t['median_abs_error_leave_one_out']:.1%} (max {t['max_abs_error_leave_one_out']:.1%})")  # fmt: skip
    if "n_flagged" in t:
        clean = t["median_abs_error_leave_one_out_without_flagged"]
        text += f"; {t['n_flagged']} flagged (scope broader than the run), leave-one-out median without them " + (
            f"{clean:.1%}" if clean is not None else "-"
        )
    if t.get("band_coverage") is not None:
        text += f"; P10-P90 band covers {t['band_coverage']:.0%}"
    if t.get("size_trend"):
        s = t["size_trend"]
        text += (f"; {s['family']} error against size: r {s['pearson_r']:+.2f}, {s['slope_per_e_fold']:+.1%} per e-fold, "
                 f"p {s['p_value']:.3f}" + (" (a trend)" if s["trend_present"] else " (no trend)")
                 + f"; with recompute, GPU count and GPU held: {s['partial']['slope_per_e_fold']:+.1%} per e-fold, "
                 f"p {s['partial']['p_value']:.3f}")  # fmt: skip
    medians = {k: v for k, v in target.items() if k.startswith("median")}
    goals = [f"{TARGET_LABELS[k]} <= {v:.0%}" for k, v in medians.items()]
    goals += [f"band >= {target['band_coverage']:.0%}"] if "band_coverage" in target else []
    goals += [f"n >= {target['n']}"] if "n" in target else []
    goals += ["no size trend"] if "size_trend_p_value" in target else []
    return text + f" (target {', '.join(goals)}: " + ("met" if t["meets_target"] else "NOT met") + ")"


def validation_table(doc: dict) -> str:
    from simulator.report.tables import text_table

    cells = [
        (
            c["id"], c["metric"], _fmt(c["reported"]), _fmt(c["predicted"]), f"{c['error']:+.1%}",
            f"{c['leave_one_out_error']:+.1%}" if c["leave_one_out_error"] is not None else "-",
        )
        for c in doc["cases"]
    ]  # fmt: skip
    columns = ("run", "metric", "reported", "predicted", "error", "LOO")
    lines = [text_table(columns, cells, align="llrrrr")]
    lines += [
        "",
        f"{doc['n_cases']} published runs: median |error| {doc['median_abs_error']:.1%}, "
        f"max |error| {doc['max_abs_error']:.1%} ({doc['worst_case']})",
    ]
    lines += [track_line(name, t) for name, t in doc["tracks"].items()]
    lines += [
        "error = predicted / reported - 1 in the run's unit (times: + is slower than the run; rates: + is faster)",
    ]
    if doc["n_fitted_cases"]:
        lines.append(
            f"LOO: leave-one-out error of the {doc['n_fitted_cases']} runs that constrained a fitted constant "
            f"(median |LOO| {doc['median_abs_error_leave_one_out_fitted_cases']:.1%}); '-' = not used in any fit"
        )
    if doc["excluded"]:
        lines.append(f"{len(doc['excluded'])} entries of the reference list are not cases (reasons in --format json)")
    return "\n".join(lines)


# ------------------------------------------------------------------ claim


def claim(
    model: Annotated[
        str | None, typer.Argument(help="Shipped model name, a spec YAML, or a Hugging Face config.json (not with --plan)")
    ] = None,
    gpu: Annotated[str | None, typer.Option(help="Hardware profile id or alias (costsim list gpus)")] = None,
    gpu_hours: Annotated[str | None, typer.Option(help="Claimed GPU-hours, e.g. 2.788M")] = None,
    usd: Annotated[
        str | None,
        typer.Option(
            help="Claimed dollars, e.g. 5.576M: GPU-hours = USD / the price (--usd-per-gpu-hour, the plan's, or the profile's)"
        ),
    ] = None,
    tokens: Annotated[str | None, typer.Option(help="Training tokens, e.g. 14.8T")] = None,
    num_gpus: Annotated[int | None, typer.Option(help="GPUs the claim ran on (for days and the prediction)")] = None,
    precision: Annotated[
        PrecisionOpt | None, typer.Option(help="GEMM precision (default: that of a published run of the model, else bf16)")
    ] = None,
    plan: Annotated[
        str | None,
        typer.Option(help="Check the claim against a whole plan (all stages; costsim list plans): sets model, GPU, tokens"),
    ] = None,
    usd_per_gpu_hour: Annotated[float | None, typer.Option(help="Price that turns --usd into GPU-hours")] = None,
    uncertainty: Annotated[
        bool, typer.Option("--uncertainty", help="P10/P50/P90 of costsim's prediction and where the claim falls in it")
    ] = False,
    draws: Annotated[int | None, typer.Option(help=f"Joint draws for --uncertainty [default: {DEFAULT_DRAWS}]")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for --uncertainty [default: 0]")] = None,
    format: Annotated[Format, typer.Option("--format", help="Output format (csv: one row, nested fields as a.b)")] = (
        Format.table
    ),
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also print how long the --uncertainty evaluations took (on stderr)")
    ] = False,
    cheaper: Annotated[
        tuple[str, str] | None,
        typer.Option(
            metavar="A B",
            help="Check 'A is N times cheaper than B' instead: two price sheets (prices/*.yaml ids, e.g. "
            "deepseek-reasoner-2025 openai-o1-2025-01), with --ratio",
        ),
    ] = None,
    ratio: Annotated[str | None, typer.Option(help="With --cheaper: the claimed N, or a range such as 20-50")] = None,
    mix: Annotated[
        str | None,
        typer.Option(help="With --cheaper: input:output tokens, e.g. 3:1 (default: DeepSeek's published day, 608B:168B)"),
    ] = None,
    cache_hit_rate: Annotated[
        float | None,
        typer.Option(help="With --cheaper: share of input tokens that hit the cache (default: DeepSeek's day, 0.5625)"),
    ] = None,
    a_model: Annotated[
        str | None, typer.Option(help="With --cheaper: an architecture (model spec) you assume for A's model")
    ] = None,
    b_model: Annotated[
        str | None,
        typer.Option(help="With --cheaper: an architecture (model spec) you assume for B's model, e.g. when unpublished"),
    ] = None,
    workload: Annotated[
        str | None,
        typer.Option(
            help="With --cheaper: the request lengths both sides are costed at (costsim list workloads, or a "
            "workload YAML; default: a shipped fleet's)"
        ),
    ] = None,
) -> None:
    """Check a training claim: implied TFLOP/s and MFU, rank among published runs, costsim's prediction, verdict.
    Or, with --cheaper A B --ratio N, a price claim 'A is N times cheaper than B' (docs/model.md §16.12).

    The claim is --gpu-hours, or --usd turned into GPU-hours at the price (stated). With --plan NAME it is checked
    against the whole plan (every stage: pre-training, extensions, post-training), as a published total covers them;
    e.g. `costsim claim --plan deepseek-v3 --usd 5.576M`.

    With --cheaper A B --ratio N: the list-price ratio B / A per token kind and for a token mix, whether N (or a
    range N1-N2) is within it, and the serving cost and margin modelled by costsim serve on --gpu (default: the
    architecture's usual GPU) for each side whose architecture is known; an unpublished one is flagged unknown;
    e.g. `costsim claim --cheaper deepseek-reasoner-2025 openai-o1-2025-01 --ratio 20-50`.

    Verdict, against costsim's two numbers: implausible if the claim needs more than the dense peak, or is below
    the achievable run by more than the step model's largest error on published throughput while needing more MFU
    than any published run; optimistic that far below it otherwise; frontier up to the expected run (what runs
    like it realized); plausible at or above it.
    """
    from simulator import api
    from simulator.errors import CostsimError
    from simulator.report.document import uncertainty_table
    from simulator.units import GPU_HOURS_RANGE

    price_flags = {"--ratio": ratio, "--mix": mix, "--cache-hit-rate": cache_hit_rate, "--a-model": a_model}
    price_flags["--b-model"] = b_model
    price_flags["--workload"] = workload
    if cheaper is not None or any(v is not None for v in price_flags.values()):
        from cli.price_claim import price_claim

        training = {"MODEL": model, "--gpu-hours": gpu_hours, "--usd": usd, "--tokens": tokens, "--num-gpus": num_gpus}
        training |= {"--precision": precision, "--plan": plan, "--uncertainty": uncertainty or None}
        training |= {"--draws": draws, "--seed": seed}
        price_claim(cheaper, gpu, usd_per_gpu_hour, format, price_flags, training)
        return
    try:
        band = band_options(uncertainty, draws, seed) or {"draws": DEFAULT_DRAWS, "seed": 0}
        result = api.claim(
            model,
            gpu,
            gpu_hours=None if gpu_hours is None else count_option("--gpu-hours", gpu_hours, GPU_HOURS_RANGE),
            tokens=None if tokens is None else count_option("--tokens", tokens),
            num_gpus=num_gpus,
            precision=precision.value if precision else None,
            uncertainty=uncertainty,
            draws=band["draws"],
            seed=band["seed"],
            usd=None if usd is None else count_option("--usd", usd, GPU_HOURS_RANGE),
            usd_per_gpu_hour=usd_per_gpu_hour,
            plan=plan,
        )
        d = result.to_dict()
    except CostsimError as e:
        fail(e)
    echo_result(format, d, [d], lambda: claim_table(d) + (uncertainty_table(d["uncertainty"]) if uncertainty else ""))
    if verbose:
        echo_timings(result.uncertainty)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def claim_table(d: dict) -> str:
    from simulator.report.money import usd
    from simulator.report.tables import key_values
    from simulator.units import format_count

    rows = [
        (
            "claim",
            f"{d['model']} on {d['gpu']}, {format_count(d['claimed_gpu_hours'])} GPU-hours for "
            f"{format_count(d['tokens'])} tokens, {d['precision']} ({d['precision_source']})",
        ),
        ("scope", d["scope"]),
    ]
    if d["claimed_usd"] is not None:
        rows.append(("dollars", f"{usd(d['claimed_usd'])} at {usd(d['usd_per_gpu_hour'])} per GPU-hour ({d['price_source']})"))
    elif d["usd_per_gpu_hour"] is not None:
        rows.append(("price", f"{usd(d['usd_per_gpu_hour'])} per GPU-hour ({d['price_source']})"))
    if d["gpu_hours_source"] != "--gpu-hours":
        rows.append(("GPU-hours from", d["gpu_hours_source"]))
    rows += [
        ("tokens/s per GPU", f"{d['implied_tokens_per_s_per_gpu']:,.0f}"),
    ]
    for name, c in d["flops_conventions"].items():
        rows.append(
            (
                f"TFLOP/s per GPU, {name}",
                f"{c['tflops_per_gpu']:.0f}  MFU {_pct(c['mfu_bf16'])} of BF16 peak, {_pct(c['mfu_fp8'])} of FP8 peak"
                f"  ({c['description']})",
            )
        )
    days = d["implied_days"]
    rows += [
        (
            "wall clock",
            "- (pass --num-gpus)"
            if days is None
            else f"{days:.1f} days" + (f" on {d['num_gpus']} GPUs" if d["num_gpus"] else " (stages on their GPU counts)"),
        ),
        (
            "among published runs",
            f"{ordinal(round(d['percentile']))} percentile of MFU at own precision ({_pct(d['mfu_at_claimed_precision'])}); "
            f"best {d['best_published']['id']} {_pct(d['best_published']['mfu'])}",
        ),
    ]
    p = d["prediction"]
    if p is not None:
        rows.append(
            (
                "costsim predicts",
                f"achievable {format_count(p['achievable_gpu_hours'])} GPU-hours (stack {p['stack']}"
                f"{without_tp_overlap(p['achievable_layout'])}, at {p['achievable_basis']}), "
                f"expected {format_count(p['expected_gpu_hours'])} (what runs like it realized) on {p['num_gpus']} GPUs; "
                f"claim / expected = {d['ratio_claim_to_prediction']:.2f}; layout: {p['layout_source']}",
            )
        )
    else:
        rows.append(("costsim predicts", "- (pass --num-gpus for a prediction)"))
    rows.append(("verdict", f"{d['verdict'].upper()}: {d['reason']}"))
    return key_values(rows)
