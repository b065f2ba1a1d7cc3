"""The serving report of `costsim serve --report DIR`: what a deployment serves per GPU, what a million tokens
cost, and how that follows from the price of a GPU-hour (the $/M waterfall), with the list price and margin when a
price sheet is given. Markdown and self-contained HTML with the charts, through the blocks of report/document.py."""

from __future__ import annotations

from pathlib import Path

from simulator.report.document import Block, bullets, costsim_version, h1, h2, image, para, table, write_documents
from simulator.report.money import usd
from simulator.units import MICRO, MILLI, counted, format_rate, share_text

CHARTS = {"curve": "serve_curve.png", "waterfall": "serve_waterfall.png"}


def decode_batch_text(decode: dict) -> str:
    """A decode's batch as a reader counts it: sequences per GPU, and below one per GPU the whole sequences its TP group
    decodes ('0.5 sequences per GPU (4 per TP8 group)')."""
    batch, tp = decode["batch_per_gpu"], decode["layout"]["tp"]
    text = f"{counted(batch, 'sequence')} per GPU"
    return text if batch >= 1 else text + f" ({batch * tp:,.6g} per TP{tp} group)"


def waterfall_steps(d: dict) -> list[dict]:
    """The chain from a GPU-hour to a million output tokens: price, throughput, utilization, cost per million, and
    (with a price sheet) the list price and the margin it leaves. None at a GPU-hour priced at $0: the chain's dollars
    are all 0, which its log axis cannot draw."""
    if "decode" not in d or d["usd_per_gpu_hour"] <= 0:
        return []
    rate = d["usd_per_gpu_hour"]
    per_gpu = d["decode"]["output_tokens_per_s_per_gpu"]
    steps = [
        {"label": "$ per GPU-hour", "value": rate, "text": usd(rate)},
        {"label": "output tok/s per GPU", "value": per_gpu, "text": f"{per_gpu:,.0f}"},
        {"label": "utilization", "value": d["utilization"], "text": f"{d['utilization']:.0%}"},
        {"label": "cost $ per M output", "value": d["usd_per_million_output_tokens"],
         "text": f"${d['usd_per_million_output_tokens']:.3g}"},
    ]  # fmt: skip
    out = (d.get("list_prices") or {}).get("by_kind", {}).get("output")
    if out and out["margin"] is not None:  # no ratio to a cost of 0
        steps.append({"label": "list $ per M output", "value": out["list_usd_per_million"],
                      "text": f"${out['list_usd_per_million']:.3g}"})  # fmt: skip
        ratio = out["list_usd_per_million"] / out["cost_usd_per_million"]
        steps.append({"label": "price / cost", "value": ratio, "text": f"{ratio:.3g}x (margin {out['margin']:+.0%})"})
    return steps


def colocated_peak_gib(d: dict) -> float | None:
    """A co-located GPU's memory while it prefills, where it exceeds the decode's (by more than display rounding);
    None otherwise."""
    if d["request"]["deployment"] != "colocated" or "prefill" not in d or "memory_per_gpu_gib" not in d:
        return None
    peak = d["prefill"]["memory_per_gpu_gib"]["total"]
    return peak if peak > d["memory_per_gpu_gib"]["total"] + 0.05 else None


def held_text(prefill: dict) -> str:
    """'; holds the stage 4.76x its pass (co-located)' where a co-located prompt holds its decode stage longer than its
    own pass (serve's prefill.gpu_time_held_per_prefill, which the uncached input's $/M divides the rate by); ''
    otherwise."""
    held = prefill["gpu_time_held_per_prefill"]
    return f"; holds the stage {held:.2f}x its pass (co-located)" if round(held, 2) > 1 else ""


def request_conditions(req: dict, with_phase: bool = True) -> list[str]:
    """The options of a serve request (its JSON `request`) besides lengths, cache hits and deployment that change the
    result, as the table's header and the report name them: the engine's settings, the latency targets, MTP, a KV
    cache dtype other than BF16 and (`with_phase`) a single phase (a review found a --tpot-ms 30 run's header the same
    as one without a target)."""
    out = [] if req["two_batch_overlap"] else ["no two-batch overlap"]
    out += ["KV reserved for whole requests"] if req["kv_admission"] == "full-request" else []
    pool, host_us = req["kv_memory_fraction"], req["host_s_per_sequence"] / MICRO
    out += [] if pool == 1 else [f"KV pool {pool:.0%} of free memory"]
    out += [f"host {host_us:g} us per sequence"] if host_us else []
    speed = req["min_tokens_per_s_per_user"]
    if speed:
        out.append(f"at least {format_rate(speed)} tok/s per user (TPOT at most {1 / speed / MILLI:,.4g} ms)")
    if req["ttft_s"]:
        out.append(f"TTFT at most {req['ttft_s'] / MILLI:,.4g} ms")
    if req["mtp_depth"]:
        accept = "" if req["mtp_accept"] is None else f", acceptance {req['mtp_accept']:.2g}"
        out.append(f"MTP depth {req['mtp_depth']}{accept}")
    if req["kv_dtype"] != "bf16":
        out.append(f"KV cache {req['kv_dtype']}")
    return out + ([f"{req['phase']} only"] if with_phase and req["phase"] != "both" else [])


def window_held(w: dict) -> str:
    """', N held under the W-token window' for a workload document (serve's request.workload) of a model with a
    sliding window; '' without one."""
    held = w["decode_window_positions"]
    return "" if held is None else f", {held:,.0f} held under the {w['sliding_window']:,}-token window"


def memory_text(memory_gib: dict[str, float]) -> str:
    """A GPU's memory by component on one line ('weights 20.4 GiB, kv_cache 54.9 GiB, ...'), as serve's table shows it."""
    return ", ".join(f"{k} {v:,.1f} GiB" for k, v in memory_gib.items())


def _memory_table(memory_gib: dict[str, float]) -> Block:
    return table(["component", "GiB"], [[k, f"{v:,.1f}"] for k, v in memory_gib.items()])


def build_serve_document(d: dict) -> list[Block]:
    req = d["request"]
    blocks: list[Block] = [h1(f"Serving {d['model']} on {d['gpu']}")]
    w = req["workload"]
    lengths = f"Requests of {req['input_len']:,.0f} input and {req['output_len']:,.0f} output tokens"
    if w:
        costed = ([f"prefill costed at {w['prefill_input_len']:,.0f}-token prompts (TTFT too)"] if "prefill" in d else []) + (
            [f"decode at {w['decode_context_len']:,.0f} tokens of context per sequence{window_held(w)}"] if "decode" in d else []
        )
        lengths += f" on average (workload {w['name']}: {w['source']}; {', '.join(costed)})"
    phases = "prefill and decode" if req["phase"] == "both" else f"{req['phase']} only"
    conditions = "".join(f", {c}" for c in request_conditions(req, with_phase=False))
    blocks.append(para(
        f"{lengths}, {share_text(req['cache_hit_rate'])} of "
        f"the input from the KV cache, {req['deployment']} {phases}{conditions}, at {usd(d['usd_per_gpu_hour'])} per "
        f"GPU-hour ({d['price']['price_quote']['label']}) and {d['utilization']:.0%} utilization."
    ))  # fmt: skip
    rows = []
    if "prefill" in d:
        p, lay = d["prefill"], d["prefill"]["layout"]
        rows.append(["prefill", f"{format_rate(p['input_tokens_per_s_per_gpu'])} input tok/s per GPU",
                     f"TTFT {p['ttft_s'] / MILLI:,.0f} ms",
                     f"TP{lay['tp']} DP{lay['dp']} PP{lay['pp']} EP{lay['ep']} {lay['precision']}{held_text(p)}"])  # fmt: skip
    if "decode" in d:
        x, lay = d["decode"], d["decode"]["layout"]
        rows.append(["decode", f"{format_rate(x['output_tokens_per_s_per_gpu'])} output tok/s per GPU",
                     f"{format_rate(x['tokens_per_s_per_user'])} tok/s per user",
                     f"TP{lay['tp']} DP{lay['dp']} PP{lay['pp']} EP{lay['ep']} {lay['precision']}, "
                     f"{decode_batch_text(x)}"])  # fmt: skip
    blocks += [h2("What one GPU serves"), table(["phase", "throughput", "latency", "layout"], rows)]
    if "per_request" in d:
        r = d["per_request"]
        blocks.append(para(f"With its prefill, a GPU serves {format_rate(r['output_tokens_per_s_per_gpu'])} output "
                           f"tokens/s ({format_rate(r['total_tokens_per_s_per_gpu'])} in all), {r['gpu_s']:,.2f} "
                           f"GPU-seconds per request."))  # fmt: skip
    kinds = (
        ("uncached input (computed; cache misses)", "usd_per_million_input_tokens"),
        ("cached input", "usd_per_million_cached_input_tokens"),
        ("output", "usd_per_million_output_tokens"),
    )
    prices = [[label, f"${d[key]:.4g}"] for label, key in kinds if key in d]
    blocks += [h2("Cost per million tokens"), table(["tokens", "$ per million"], prices)]
    if waterfall_steps(d):
        blocks += [h2("From a GPU-hour to a million output tokens"), image(CHARTS["waterfall"], "the $/M waterfall")]
    if "list_prices" in d:
        lp = d["list_prices"]
        blocks += [h2("List price and margin"), para(f"Price sheet {lp['sheet']} ({lp['provider']}, {lp['date']}): "
                                                     f"{lp['source']}. Margin = list price / modelled cost - 1.")]  # fmt: skip
        blocks.append(table(["tokens", "list $/M", "cost $/M", "margin"],
                            [[k, f"${v['list_usd_per_million']:.4g}", f"${v['cost_usd_per_million']:.4g}",
                              "-" if v["margin"] is None else f"{v['margin']:+.0%}"]
                             for k, v in lp["by_kind"].items()]))  # fmt: skip
    if d.get("curve"):
        blocks += [h2("Throughput against interactivity"), image(CHARTS["curve"], "the throughput-interactivity curve")]
    if "memory_per_gpu_gib" in d:
        blocks += [h2("Memory per decode GPU"), _memory_table(d["memory_per_gpu_gib"])]
        peak = colocated_peak_gib(d)
        if peak is not None:
            blocks.append(para(f"Co-located, the same GPU holds {peak:,.1f} GiB while it prefills (the pass's "
                               "activations in place of the decode's)."))  # fmt: skip
    elif "prefill" in d:
        blocks += [h2("Memory per prefill GPU"), _memory_table(d["prefill"]["memory_per_gpu_gib"])]
    blocks += [h2("Assumptions"), bullets(f"{a['name']}: {a['value']} ({a['source']})" for a in d["assumptions"])]
    blocks.append(para(f"Generated by costsim {costsim_version()} (docs/model.md §16 describes the model)."))
    return blocks


def write_serve_report(d: dict, out_dir) -> dict[str, object]:
    """Write report.md, report.html and the charts of a `costsim serve` document into `out_dir` (already checked by
    document.prepare_output)."""
    from simulator.report import charts

    path = Path(out_dir)
    files = {k: path / v for k, v in CHARTS.items()}

    def draw() -> dict:
        drawn = {}
        if d.get("curve"):
            drawn["curve"] = charts.serve_curve_chart(d, files["curve"])
        steps = waterfall_steps(d)
        if steps:
            drawn["waterfall"] = charts.serve_waterfall_chart(steps, files["waterfall"])
        return drawn

    return write_documents(path, draw, lambda: build_serve_document(d))
