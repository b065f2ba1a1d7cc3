"""`costsim serve`: tokens per second per GPU and dollars per million tokens of serving a model."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cli.options import ForceOpt, Format, PriceOpt, check_output_dir, check_output_file, echo_result, fail, vocab_choices
from simulator.units import MICRO, MILLI, counted, format_rate, share_text
from simulator.vocab import KV_ADMISSIONS, KV_DTYPES, SERVE_PRECISIONS


class Phase(StrEnum):
    both = "both"
    prefill = "prefill"
    decode = "decode"


class Deployment(StrEnum):
    disaggregated = "disaggregated"
    colocated = "colocated"


ServePrecision = vocab_choices("ServePrecision", SERVE_PRECISIONS)
KvDtype = vocab_choices("KvDtype", KV_DTYPES)
KvAdmission = vocab_choices("KvAdmission", KV_ADMISSIONS)
KV_BF16 = KvDtype("bf16")
"""The default --kv-dtype."""
ON_DEMAND = KvAdmission("on-demand")
"""The default --kv-admission: pages taken as tokens come (the achievable case)."""


def register(app: typer.Typer, validate_app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    validate_app.command("serve")(validate_serve)


def validate_serve(format: Annotated[Format, typer.Option("--format", help="Output format")] = Format.table) -> None:
    """Predict every published serving figure in validation/serving.yaml with `costsim serve`; signed errors,
    median and max |error|. Cases whose source lacks what a prediction needs are listed, not predicted. Then the
    throughput grid (validation/serving_grid.yaml, every cell of TensorRT-LLM's perf-overview tables), outside the
    target: its medians and each table column's."""
    from simulator.analysis import serve_validation
    from simulator.errors import CostsimError

    try:
        doc = serve_validation.report(serve_validation.evaluate(), serve_validation.evaluate_grid())
    except CostsimError as e:
        fail(e)
    echo_result(format, doc, doc["cases"], lambda: serve_validation_table(doc))


def serve_validation_table(doc: dict) -> str:
    from simulator.report.tables import text_table

    rows = []
    for c in doc["cases"]:
        predicted = "-" if c["predicted"] is None else f"{c['predicted']:,.4g}"
        error = "-" if c["error"] is None else f"{c['error']:+.1%}"
        rows.append((c["id"], c["metric"], f"{c['reported']:,.4g}", predicted, error, c["not_predicted_because"] or ""))
    lines = [text_table(("case", "metric", "reported", "predicted", "error", "not predicted because"), rows,
                        align="llrrrl", max_widths={5: 60})]  # fmt: skip
    if doc["n_cases"]:
        lines += ["", f"{doc['n_cases']} published serving figures: median |error| {doc['median_abs_error']:.1%}, "
                  f"max {doc['max_abs_error']:.1%} ({doc['worst_case']}); {doc['n_not_predicted']} not predicted; "
                  f"target median <= 20%, max <= 50%: {'met' if doc['meets_target'] else 'not met'}"]  # fmt: skip
        lines.append("by precision: " + "; ".join(
            f"{p} {v['n']} figures, median {v['median_abs_error']:.1%}, max {v['max_abs_error']:.1%}"
            for p, v in doc["by_precision"].items()))  # fmt: skip
    if doc.get("grid"):
        lines += ["", serve_grid_summary(doc["grid"])]
    return "\n".join(lines)


def serve_grid_summary(grid: dict) -> str:
    """The grid track: a line for the whole grid, then each table column's signed median error."""
    from simulator.report.tables import text_table

    head = (f"Throughput grid (validation/serving_grid.yaml, outside the target): {grid['n_predicted']} of "
            f"{grid['n_cells']} cells predicted")  # fmt: skip
    if grid["not_predicted_because"]:
        head += " (not predicted: " + "; ".join(f"{n} {why}" for why, n in grid["not_predicted_because"].items()) + ")"
    if not grid["n_predicted"]:
        return head
    head += (f", median |error| {grid['median_abs_error']:.1%} (signed {grid['median_error']:+.1%}), max "
             f"{grid['max_abs_error']:.1%} ({grid['worst_cell']}); within 20%: {grid['within_20_percent']}, "
             f"within 50%: {grid['within_50_percent']}")  # fmt: skip
    rows = [(c["model"], c["gpu"], f"TP{c['tp']}", c["precision"], str(c["n"]), f"{c['median_error']:+.1%}",
             f"{c['median_abs_error']:.1%}", f"{c['max_abs_error']:.1%}") for c in grid["by_column"]]  # fmt: skip
    table = text_table(("model", "gpu", "tp", "format", "cells", "median error", "median |error|", "max |error|"), rows,
                       align="llllrrrr")  # fmt: skip
    return head + "\n" + table


def serve_command(
    model: Annotated[str, typer.Argument(help="Shipped model name, a spec YAML, or a Hugging Face config.json")],
    gpu: Annotated[str, typer.Option(help="Hardware profile id or alias (costsim list gpus), or a profile YAML")],
    input_len: Annotated[int | None, typer.Option(help="Prompt tokens per request (default 1,024)")] = None,
    output_len: Annotated[int | None, typer.Option(help="Generated tokens per request (default 1,024)")] = None,
    workload: Annotated[
        str | None,
        typer.Option(
            help="A length distribution in place of --input-len/--output-len: a shipped workload "
            "(costsim list workloads) or a workload YAML"
        ),
    ] = None,
    cache_hit_rate: Annotated[float, typer.Option(help="Share of prompt tokens served from the KV cache, 0-0.999")] = 0.0,
    phase: Annotated[Phase, typer.Option(help="prefill, decode, or both")] = Phase.both,
    deployment: Annotated[
        Deployment, typer.Option(help="disaggregated (prefill and decode on their own GPUs) or colocated (one layout)")
    ] = Deployment.disaggregated,
    precision: Annotated[
        ServePrecision | None,
        typer.Option(help="Weights and GEMMs: bf16, fp8 or fp4 (NVFP4, Blackwell) (default: each the GPU has, searched)"),
    ] = None,
    kv_dtype: Annotated[KvDtype, typer.Option(help="KV-cache format")] = KV_BF16,
    tp: Annotated[
        int | None,
        typer.Option(
            help="Tensor parallel degree of attention and dense layers, of both phases (searched; to fix one "
            "phase's alone, run it with --phase)"
        ),  # fmt: skip
    ] = None,
    dp: Annotated[
        int | None,
        typer.Option(
            help="Attention data-parallel groups per stage (searched for MoE; for a dense model, replicas in one deployment)"
        ),
    ] = None,
    pp: Annotated[int | None, typer.Option(help="Pipeline stages, of both phases (searched)")] = None,
    ep: Annotated[int | None, typer.Option(help="Prefill expert parallel degree (decode: tp x dp)")] = None,
    num_gpus: Annotated[int | None, typer.Option(help="GPUs of one decode deployment, tp x dp x pp (searched)")] = None,
    batch_per_gpu: Annotated[
        float | None, typer.Option(help="Decode sequences per GPU per micro-batch, below 1 for TP groups (searched)")
    ] = None,
    max_batch_per_gpu: Annotated[
        float | None,
        typer.Option(help="The engine's cap on decode sequences per GPU per micro-batch (CUDA-graph batch, dispatch buffer)"),
    ] = None,
    redundant_experts: Annotated[int, typer.Option(help="Extra expert replicas per stage (DeepSeek: 32)")] = 0,
    two_batch_overlap: Annotated[
        bool,
        typer.Option(
            "--two-batch-overlap/--no-two-batch-overlap",
            help="Whether the engine hides the MoE exchange under a second micro-batch where faster (DeepSeek, SGLang)",
        ),
    ] = True,
    kv_admission: Annotated[
        KvAdmission,
        typer.Option(
            help="KV a running sequence holds: on-demand (the tokens it has; vLLM, SGLang) or full-request "
            "(prompt + whole output reserved at admission; TensorRT-LLM's default)"
        ),
    ] = ON_DEMAND,
    kv_memory_fraction: Annotated[
        float,
        typer.Option(help="KV pool's share of the memory left after weights and workspace (TensorRT-LLM: 0.9 by default)"),
    ] = 1.0,
    host_us_per_sequence: Annotated[
        float,
        typer.Option(
            help="Engine host time per running sequence per decode step, us; a step lasts the longer of it and the "
            "GPU's (TensorRT-LLM's PyTorch backend: about 29)"
        ),
    ] = 0.0,
    mtp_depth: Annotated[int, typer.Option(help="MTP / speculative draft tokens per step")] = 0,
    mtp_accept: Annotated[float | None, typer.Option(help="Acceptance rate of a drafted token (needs --mtp-depth)")] = None,
    tpot_ms: Annotated[float | None, typer.Option(help="Latency target: time per output token, ms")] = None,
    ttft_ms: Annotated[float | None, typer.Option(help="Latency target: time to first token, ms")] = None,
    min_tokens_per_s_per_user: Annotated[
        float | None, typer.Option(help="Latency target: output tokens/s per user (1,000 / TPOT ms)")
    ] = None,
    utilization: Annotated[float, typer.Option(help="Served / provisioned throughput, 0.01-1 ($/M divides by it)")] = 1.0,
    price_sheet: Annotated[
        str | None, typer.Option(help="A price sheet in prices/ (e.g. deepseek-reasoner-2025): list price vs cost, margin")
    ] = None,
    calibration: Annotated[
        str | None,
        typer.Option(help="Calibration file from `costsim calibrate` (--gpu cpu for a CPU calibration): measured decode rates"),
    ] = None,
    report: Annotated[str | None, typer.Option("--report", help="Write a serving report (Markdown, HTML, charts) here")] = None,
    usd_per_gpu_hour: PriceOpt = None,
    pricing: Annotated[str, typer.Option(help="Cost basis: rental ($/GPU-hour) or tco")] = "rental",
    rental: Annotated[str | None, typer.Option(help="Which rental quote: on-demand or reserved")] = None,
    gpu_purchase_usd: Annotated[float | None, typer.Option(help="GPU price for --pricing tco (default: the profile's)")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the throughput-interactivity curve (PNG)")] = None,
    force: ForceOpt = False,
    format: Annotated[Format, typer.Option("--format", help="Output format")] = Format.table,
) -> None:
    """Serve a model: prefill and decode throughput per GPU, latency, memory and $ per million tokens."""
    from simulator import api
    from simulator.errors import CostsimError, InputError

    try:
        if plot is not None and phase.value == "prefill":
            raise InputError("--plot draws the decode's throughput-interactivity curve; --phase prefill has none: drop --plot "
                             "or use --phase decode|both")  # fmt: skip
        check_output_file("--plot", plot, ".png", force)
        if report is not None:
            check_output_dir("--report", report, force)
        result = api.serve(
            model, gpu, input_len=input_len, output_len=output_len, workload=workload, cache_hit_rate=cache_hit_rate,
            phase=phase.value,
            deployment=deployment.value, precision=precision.value if precision else None, kv_dtype=kv_dtype.value,
            tp=tp, dp=dp, pp=pp, ep=ep, num_gpus=num_gpus, batch_per_gpu=batch_per_gpu, max_batch_per_gpu=max_batch_per_gpu,
            redundant_experts=redundant_experts, mtp_depth=mtp_depth, mtp_accept=mtp_accept,
            two_batch_overlap=two_batch_overlap, kv_admission=kv_admission.value, kv_memory_fraction=kv_memory_fraction,
            host_s_per_sequence=host_us_per_sequence * MICRO,
            tpot_s=None if tpot_ms is None else tpot_ms * MILLI, ttft_s=None if ttft_ms is None else ttft_ms * MILLI,
            min_tokens_per_s_per_user=min_tokens_per_s_per_user, usd_per_gpu_hour=usd_per_gpu_hour,
            utilization=utilization, price_sheet=price_sheet, calibration=calibration,
            pricing=pricing, rental=rental, gpu_purchase_usd=gpu_purchase_usd,
        )  # fmt: skip
        d = result.to_dict()
        if plot is not None:
            from simulator.report.charts import serve_curve_chart

            serve_curve_chart(d, plot)
        if report is not None:
            from simulator.report.serving import write_serve_report

            files = write_serve_report(d, report)
    except CostsimError as e:
        fail(e)
    echo_result(format, d, result.rows(), lambda: serve_table(d))
    if plot is not None and format == Format.table:
        typer.echo(f"curve written to {plot}")
    if report is not None and format == Format.table:
        typer.echo(f"report written to {files['markdown']} and {files['html']}")


def workload_line(w: dict, prefill: bool, decode: bool) -> str:
    """The lengths a workload's phases are costed at (simulator/model/serve/workload.py)."""
    parts = []
    if prefill:
        parts.append(f"prefill at {w['prefill_input_len']:,.0f}-token prompts (token-weighted)")
    if decode:
        from simulator.report.serving import window_held

        parts.append(f"decode at {w['decode_context_len']:,.0f} tokens of context (output-weighted{window_held(w)})")
    longest = f"longest request {w['max_context_len']:,.0f}" if decode else f"longest prompt {w['max_input_len']:,.0f}"
    return f"workload {'; '.join(parts)}; {longest} tokens"


def serve_table(d: dict) -> str:
    from simulator.report.money import usd
    from simulator.report.serving import colocated_peak_gib, decode_batch_text, held_text, memory_text, request_conditions

    req = d["request"]
    lines = [f"{d['model']} on {d['gpu']}: {req['input_len']:,.0f} in / {req['output_len']:,.0f} out"
             + (f" (means of workload {req['workload']['name']})" if req["workload"] else "") + ", "
             f"cache hits {share_text(req['cache_hit_rate'])}, {req['deployment']}"
             + "".join(f", {c}" for c in request_conditions(req))]  # fmt: skip
    if req["workload"]:
        lines.append(workload_line(req["workload"], "prefill" in d, "decode" in d))
    if "prefill" in d:
        p = d["prefill"]
        lay = p["layout"]
        layout = f"TP{lay['tp']} DP{lay['dp']} PP{lay['pp']} EP{lay['ep']} {lay['precision']}"
        rate = format_rate(p["input_tokens_per_s_per_gpu"])
        ttft = f"TTFT {p['ttft_s'] / MILLI:,.0f} ms" + (" (token-weighted prompt)" if req["workload"] else "")
        lines.append(f"prefill  {rate:>10} input tok/s/GPU   {ttft}   "
                     f"{layout}, {counted(p['prompts_per_pass'], 'prompt')} per pass{held_text(p)}")  # fmt: skip
    if "decode" in d:
        x = d["decode"]
        lay = x["layout"]
        lay_text = f"TP{lay['tp']} DP{lay['dp']} PP{lay['pp']} EP{lay['ep']} {lay['precision']}"
        lines.append(f"decode   {format_rate(x['output_tokens_per_s_per_gpu']):>10} output tok/s/GPU  "
                     f"{format_rate(x['tokens_per_s_per_user'])} tok/s per user (TPOT {x['tpot_s'] / MILLI:,.1f} ms)   "
                     f"{lay_text}, {decode_batch_text(x)}"
                     + (", host-bound" if x["breakdown_s"].get("host_exposed", 0.0) > 0 else ""))  # fmt: skip
        peak = colocated_peak_gib(d)  # co-located, the prefill's workspace takes the decode activations' turn
        lines.append(f"memory   {memory_text(d['memory_per_gpu_gib'])}"
                     + (f"; {peak:,.1f} GiB while prefilling" if peak is not None else ""))  # fmt: skip
    elif "prefill" in d:  # a prefill-only request: its GPU's memory (--help promises memory per GPU)
        lines.append(f"memory   {memory_text(d['prefill']['memory_per_gpu_gib'])}")
    if "per_request" in d:
        r = d["per_request"]
        lines.append(f"service  {format_rate(r['output_tokens_per_s_per_gpu']):>10} output tok/s/GPU with prefill, "
                     f"{format_rate(r['total_tokens_per_s_per_gpu'])} total; {r['gpu_s']:,.2f} GPU-s per request")  # fmt: skip
    tco = d["price"].get("tco_cost_usd")  # the price block is of one GPU-hour
    lines.append(
        f"price    {usd(d['usd_per_gpu_hour'])}/GPU-hour ({d['price']['price_quote']['label']})"
        # the other basis, as estimate's cost block shows it (a review found --gpu-purchase-usd silent here)
        + (f"; TCO instead {usd(tco)}/GPU-hour (--pricing tco)" if d["price"]["basis"] == "rental" and tco else "")
        + ("" if d["utilization"] == 1 else f"; $/M at {d['utilization']:.0%} utilization (served / provisioned)")
    )
    # Input is priced per uncached (computed) token; the cache hits have a price of their own. (An uncached token's
    # price rises with the hit rate, as the misses attend over a longer cached prefix; all input's falls.)
    for key, label in (("usd_per_million_input_tokens", "uncached input"),
                       ("usd_per_million_cached_input_tokens", "cached input"),
                       ("usd_per_million_output_tokens", "output")):  # fmt: skip
        if key in d:
            lines.append(f"$/M {label:<14} {d[key]:.4g}")  # significant figures: a cached token can cost $0.00008/M
    if "list_prices" in d:
        lp = d["list_prices"]
        for kind, v in lp["by_kind"].items():
            margin = "-" if v["margin"] is None else format(v["margin"], "+.0%")
            lines.append(f"list {kind:<13} ${v['list_usd_per_million']:.4g}/M vs cost ${v['cost_usd_per_million']:.4g}/M: "
                         f"margin {margin} ({lp['sheet']}, {lp['date']})")  # fmt: skip
        if lp.get("flag"):
            lines.append(f"flag: {lp['flag']}")
    if "decode" in d:
        lines.append(f"{d['candidates_evaluated']:,} decode layouts evaluated")
    return "\n".join(lines)
