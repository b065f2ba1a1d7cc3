"""`costsim fleet`: one day of a serving fleet's books, from token volumes, per-node rates and prices.

The books close exactly, in the form of DeepSeek's published day of V3/R1 serving (deepseek-ai/open-infra-index,
202502OpenSourceWeek day 6 overview, commit 56d8685: occupied node-hours at a rental price; every token at a price
sheet; "cost profit margin" = revenue / cost - 1):
    node-seconds of a phase = tokens / (tokens/s per node)      (prefill: input tokens, cache hits included;
                                                                 decode: output tokens)
    cost    = node-seconds / 3,600 x GPUs per node x $/GPU-hour (occupied node-hours at a rental price)
    revenue = cache-hit input x $/M hit + cache-miss input x $/M miss + output x $/M output
    margin  = revenue / cost - 1
Day totals are not rounded; with 24 hourly figures, each hour's nodes are rounded up to whole deployment units (a
fleet scales by units), and the day is the sum of the hours. A rate the file does not give is predicted by
`costsim serve` (per GPU x GPUs per node), and the result says which rates are given and which predicted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.errors import CostsimError, InputError, SpecError
from simulator.inputs.arguments import is_number
from simulator.inputs.fleet_file import HOURS_PER_DAY, Fleet, fleet_from_dict, load_fleet
from simulator.inputs.serving_cases import PRICE_KEYS, price_sheet, sheet_prices
from simulator.run.cost import CostOptions, chosen_rental_rate
from simulator.units import MAX_USD_PER_GPU_HOUR, MEGA, MIN_USD_PER_GPU_HOUR, SECONDS_PER_DAY, SECONDS_PER_HOUR

PHASES = ("prefill", "decode")
ROUNDING_SLACK = 1e-9
"""Units needed within this many units (plus the float resolution of the figure) of a whole number are that number:
float noise must not add a unit."""
RATE_UNITS = {
    "prefill": "input tokens/s per node (cache hits included)",
    "decode": "output tokens/s per node",
}


@dataclass(frozen=True)
class PhaseRate:
    tokens_per_s_per_node: float
    source: str
    predicted: bool
    detail: dict
    """Predicted: the serve layout and per-GPU rate; given: empty."""


@dataclass(frozen=True)
class FleetDay:
    fleet: Fleet
    where: str
    """How the file is named in the output (a path, fleets/NAME.yaml, or 'fleet dict')."""
    rates: dict[str, PhaseRate]
    usd_per_gpu_hour: float
    gpu_price_source: str
    prices: dict
    notes: list[str]

    def to_dict(self) -> dict:
        return fleet_document(self)

    def rows(self) -> list[dict]:
        return self.to_dict()["hourly"]


# --------------------------------------------------------------------------- inputs


def fleet_day(fleet: str | Path | dict, *, predict_rates: bool = False, usd_per_gpu_hour: float | None = None) -> FleetDay:
    """The day's books of a fleet file (a shipped name, a YAML path, or the file's content as a dict).

    predict_rates: ignore the file's per-node rates and predict both with costsim serve.
    usd_per_gpu_hour: replaces the file's GPU price (and the profile's default)."""
    if isinstance(fleet, dict):
        f, where = fleet_from_dict(fleet), "fleet dict"
    elif isinstance(fleet, str | Path):
        f, _, where = load_fleet(fleet)
    else:
        raise InputError(f"fleet {fleet!r} is a {type(fleet).__name__}; pass a shipped fleet name, a YAML path or a dict")
    _check_names(f, where)
    notes: list[str] = []
    price, price_source = gpu_price(f, usd_per_gpu_hour, where)
    rates = _rates(f, where, predict_rates, notes)
    return FleetDay(f, where, rates, price, price_source, _prices(f, where, notes), notes)


def _check_names(f: Fleet, where: str) -> None:
    """The file's model and GPU name shipped specs (or spec files) even where no rate is predicted from them."""
    from simulator.inputs.catalog import load_hardware, load_model

    try:
        if f.model is not None:
            load_model(f.model)
        if f.gpu is not None:
            load_hardware(f.gpu)
    except CostsimError as e:
        raise type(e)(f"{where}: {e}") from None


def gpu_price(f: Fleet, usd_per_gpu_hour: float | None, where: str) -> tuple[float, str]:
    if usd_per_gpu_hour is not None:
        if not is_number(usd_per_gpu_hour):
            raise InputError(f"usd_per_gpu_hour {usd_per_gpu_hour!r} is not a number; give dollars per GPU-hour, e.g. 2")
        if not MIN_USD_PER_GPU_HOUR <= usd_per_gpu_hour <= MAX_USD_PER_GPU_HOUR:
            raise InputError(
                f"--usd-per-gpu-hour {usd_per_gpu_hour:g} is out of range [{MIN_USD_PER_GPU_HOUR:g}, "
                f"{MAX_USD_PER_GPU_HOUR:g}]; give dollars per GPU-hour, e.g. 2"
            )
        return float(usd_per_gpu_hour), "--usd-per-gpu-hour"
    if f.usd_per_gpu_hour is not None:
        return f.usd_per_gpu_hour, f"given in {where}: {f.price_source}"
    from simulator.inputs.catalog import load_hardware

    rate = chosen_rental_rate(load_hardware(f.gpu), CostOptions())
    return rate.usd_per_gpu_hour, f"{f.gpu} profile default: {rate.source}"


def _prices(f: Fleet, where: str, notes: list[str]) -> dict:
    if f.prices is not None:
        p = f.prices
        return {
            "usd_per_million_cached_input_tokens": p.usd_per_million_cached_input_tokens,
            "usd_per_million_input_tokens": p.usd_per_million_input_tokens,
            "usd_per_million_output_tokens": p.usd_per_million_output_tokens,
            "source": f"given in {where}: {p.source}",
        }
    sheet = price_sheet(f.price_sheet, f"{where}: price_sheet", "Name one of them, or give the prices inline", SpecError)
    if sheet.usd_per_million_cached_input_tokens is None:
        notes.append(f"price sheet {f.price_sheet} has no cache-hit price; cache hits are billed at the input price")
    if sheet.off_peak is not None:
        notes.append(f"price sheet {f.price_sheet}: every hour is billed at the standard prices (off-peak prices not applied)")
    prices = {PRICE_KEYS[kind]: value for kind, value in sheet_prices(sheet).items()}
    source = f"price sheet prices/{f.price_sheet}.yaml ({sheet.provider} {sheet.model}, {sheet.date}): {sheet.source}"
    return {**dict(sorted(prices.items())), "source": source}


def _rates(f: Fleet, where: str, predict_rates: bool, notes: list[str]) -> dict[str, PhaseRate]:
    rates: dict[str, PhaseRate] = {}
    wanted = list(PHASES) if predict_rates else f.predicted_phases()
    for phase in PHASES:
        given = f.given_rate(phase)
        if phase not in wanted and given is not None:
            rates[phase] = PhaseRate(given, f"given in {where}: {f.rates.source}", False, {})
    if len(wanted) < len(PHASES):  # a phase's rate is given: its settings are not run, so check them here
        _check_serve_block(f, where)
    if wanted:
        need = f.prediction_needs()
        if need:
            raise InputError(f"{where}: predicting the per-node rates needs {', '.join(need)} in the file; add them")
        rates.update(predicted_rates(f, where, tuple(wanted)))
        notes += unit_fit_notes(f, rates)
        notes.append(
            f"{' and '.join(wanted)} rate(s) predicted by costsim serve (the model's balanced-routing estimate, per GPU x "
            f"{f.deployment.gpus_per_node} GPUs per node), not measured"
        )
    return {p: rates[p] for p in PHASES}


def _layout_fields(phase: str, layout: dict) -> str:
    """The serve block's fields that set a phase's GPUs."""
    if phase == "decode":
        return "tp, dp, pp"
    return "ep, pp" if layout.get("ep", 1) > 1 else "tp, pp"


def unit_fit_notes(f: Fleet, rates: dict[str, PhaseRate]) -> list[str]:
    """A predicted rate is the per-GPU rate of the deployment `costsim serve` chose (or the serve block set); a unit of
    the file's deployment holds a whole number of such deployments only where its GPUs are a multiple of that
    deployment's, and otherwise the rate is of a deployment the unit cannot run (a fuzzer's 8-GPU decode unit beside a
    144-GPU serve layout was rounded into whole units with no word)."""
    units = {"prefill": f.deployment.prefill_unit_gpus, "decode": f.deployment.decode_unit_gpus}
    out = []
    for phase, rate in rates.items():
        layout = rate.detail.get("layout") if rate.predicted else None
        if not layout:
            continue
        gpus, unit = int(layout["gpus"]), units[phase]
        if unit % gpus:
            out.append(
                f"the predicted {phase} rate is of a deployment of {gpus:,} GPUs, and the {phase} unit of {unit:,} GPUs "
                f"does not hold a whole number of them: set deployment.{phase}_unit_gpus to a multiple of {gpus:,}, or the serve "
                # a fleet's phases are disaggregated: a MoE prefill is EP (= TP x DP) x PP GPUs, a dense one TP x PP,
                # a decode TP x DP x PP
                f"block's layout ({_layout_fields(phase, layout)}) to one that divides {unit:,}"
            )
    return out


def _check_serve_block(f: Fleet, where: str) -> None:
    """A serve block whose settings the day does not all run (a phase's rate is given) still has to make sense for its
    model and GPU, as it would with --predict-rates: the checks costsim serve makes before its search (lengths or
    workload, formats, expert and pipeline degrees, TP against the heads, a GPU count the degrees can make), without
    the search."""
    if f.serve is None or f.model is None or f.gpu is None:
        return
    from simulator.model.serve.search import Given, decode_candidates
    from simulator.run.serve import ServeRequest, request_precisions, setup_for

    try:
        req = ServeRequest(f.model, f.gpu, phase="both", **f.serve.request())
        s = setup_for(req)
        given = Given(req.tp, req.dp, req.pp, req.batch_per_gpu, req.num_gpus, req.max_batch_per_gpu, whole_sequences=True)
        decode_candidates(s, given, request_precisions(req, s.hw))
    except CostsimError as e:
        raise type(e)(
            f"{where}: serve: {e} (the whole serve block is checked even where a rate is given, since --predict-rates "
            "would use it: fix it or drop it)"
        ) from None


def predicted_rates(f: Fleet, where: str, phases: tuple[str, ...]) -> dict[str, PhaseRate]:
    """Per-node rates from `costsim serve` with the file's model, GPU, serve options and the day's cache-hit rate."""
    from simulator.run.serve import DECODE_ONLY_FIELDS, MAX_CACHE_HIT_RATE, PREFILL_ONLY_FIELDS, ServeRequest, serve

    hit_rate = sum(f.tokens.hits()) / sum(f.tokens.input) if sum(f.tokens.input) > 0 else 0.0
    if "prefill" in phases and round(hit_rate, 6) > MAX_CACHE_HIT_RATE:
        raise InputError(
            f"{where}: the day's cache hits are {hit_rate:.4%} of its input tokens, above the {MAX_CACHE_HIT_RATE:.1%} "
            "costsim serve predicts a prefill for (a prefill that computes nothing has no rate); give "
            "rates.prefill_input_tokens_per_s_per_node, or tokens with fewer cache hits"
        )
    options = f.serve.request()
    phase = phases[0] if len(phases) == 1 else "both"
    if phase == "prefill":  # the decode is published: its settings do not apply to the prefill predicted here
        options = {k: v for k, v in options.items() if k not in DECODE_ONLY_FIELDS}
    if phase == "decode":  # and the other way round (the day's cache hits are the prefill's)
        options = {k: v for k, v in options.items() if k not in PREFILL_ONLY_FIELDS}
        hit_rate = 0.0
    try:
        estimate = serve(ServeRequest(f.model, f.gpu, cache_hit_rate=round(hit_rate, 6), phase=phase, **options))
    except CostsimError as e:
        raise type(e)(f"{where}: predicting the per-node rates with costsim serve: {e}") from None
    d = estimate.to_dict()
    command = _serve_command(f, round(hit_rate, 6), phase, options)
    per_node = f.deployment.gpus_per_node
    out = {}
    if "prefill" in phases:
        p = d["prefill"]
        per_gpu = prefill_rate_with_hits(p["input_tokens_per_s_per_gpu"], hit_rate, p["cached_token_gpu_s"])
        detail = {"tokens_per_s_per_gpu": per_gpu, "layout": p["layout"], "ttft_s": p["ttft_s"],
                  # what tokens_per_s_per_gpu is made of (prefill_rate_with_hits), for a program to recompute it
                  "pass_input_tokens_per_s_per_gpu": p["input_tokens_per_s_per_gpu"], "cache_hit_rate": hit_rate,
                  "cached_token_gpu_s": p["cached_token_gpu_s"]}  # fmt: skip
        out["prefill"] = PhaseRate(per_gpu * per_node, f"predicted by {command}: {per_gpu:,.0f} input tokens/s per GPU "
                                   f"({p['input_tokens_per_s_per_gpu']:,.0f} in the prefill passes, less the time loading "
                                   f"the {hit_rate:.1%} cache hits takes) x {per_node} GPUs per node", True, detail)  # fmt: skip
    if "decode" in phases:
        x = d["decode"]
        per_gpu = x["output_tokens_per_s_per_gpu"]
        detail = {"tokens_per_s_per_gpu": per_gpu, "layout": x["layout"], "batch_per_gpu": x["batch_per_gpu"],
                  "tokens_per_s_per_user": x["tokens_per_s_per_user"]}  # fmt: skip
        out["decode"] = PhaseRate(per_gpu * per_node, f"predicted by {command}: {per_gpu:,.0f} output tokens/s per GPU "
                                  f"x {per_node} GPUs per node", True, detail)  # fmt: skip
    return out


def prefill_rate_with_hits(pass_tokens_per_s: float, hit_rate: float, cached_token_s: float) -> float:
    """Input tokens per second per GPU of a prefill deployment that also loads its cache hits: the passes run at
    `pass_tokens_per_s` (cache hits included, their loading not), and each hit takes `cached_token_s` more GPU time,
    as serve's per-request GPU time and its $/M of cached input charge it."""
    return 1.0 / (1.0 / pass_tokens_per_s + hit_rate * cached_token_s)


def _serve_command(f: Fleet, hit_rate: float, phase: str, options: dict) -> str:
    """The `costsim serve` command that gives the same prediction: the serve options the phase takes (latency targets
    as their millisecond flags), and the cache-hit rate where a prefill is predicted."""
    from simulator.run.serve import serve_flags

    words = ["costsim serve", f.model, "--gpu", f.gpu]
    words += ["--cache-hit-rate", f"{hit_rate:g}"] if hit_rate else []
    return " ".join([*words, "--phase", phase, *serve_flags(options)])


# --------------------------------------------------------------------------- the books


def _units(nodes_needed: np.ndarray, unit_nodes: int) -> np.ndarray:
    """Whole deployment units covering each hour's nodes: rounded up (float noise within ROUNDING_SLACK units, plus
    the float resolution of the figure, of a whole number ignored: never down by more than that), and at least one
    unit in an hour with any tokens."""
    exact = nodes_needed / unit_nodes
    whole = np.round(exact)
    noise = np.abs(exact - whole) <= ROUNDING_SLACK + 4 * np.finfo(float).eps * exact
    units = np.where(noise, whole, np.ceil(exact))
    return np.maximum(units, np.where(exact > 0, 1.0, 0.0)) + 0.0  # + 0.0: no -0.0


def fleet_document(day: FleetDay) -> dict:
    f = day.fleet
    dep = f.deployment
    t = f.tokens
    inp, out, hit = np.array(t.input), np.array(t.output), np.array(t.hits())
    miss = inp - hit
    hourly = t.hourly
    slot_s = SECONDS_PER_HOUR if hourly else SECONDS_PER_DAY
    tokens_by_phase = {"prefill": inp, "decode": out}
    unit_nodes = {"prefill": dep.prefill_unit_nodes, "decode": dep.decode_unit_nodes}
    node_s_exact = {p: tokens_by_phase[p] / day.rates[p].tokens_per_s_per_node for p in PHASES}
    nodes, units = {}, {}
    for p in PHASES:
        needed = node_s_exact[p] / slot_s
        if hourly:
            units[p] = _units(needed, unit_nodes[p])
            nodes[p] = units[p] * unit_nodes[p]
        else:  # one day total: a flat curve at the day's average, not rounded
            nodes[p] = np.full(HOURS_PER_DAY, needed[0])
    node_s = {p: float(nodes[p].sum() * SECONDS_PER_HOUR) for p in PHASES}
    total_nodes = nodes["prefill"] + nodes["decode"]
    gpus_per_node = dep.gpus_per_node
    price = day.usd_per_gpu_hour
    pr = day.prices
    hour_share = 1.0 if hourly else 1.0 / HOURS_PER_DAY
    kinds = {"cached_input": (hit, pr["usd_per_million_cached_input_tokens"]),
             "input": (miss, pr["usd_per_million_input_tokens"]),
             "output": (out, pr["usd_per_million_output_tokens"])}  # fmt: skip
    revenue_by_kind = {k: float(tokens.sum() * usd / MEGA) for k, (tokens, usd) in kinds.items()}
    revenue_by_hour = sum(tokens * usd / MEGA for tokens, usd in kinds.values()) * hour_share
    revenue = sum(revenue_by_kind.values())
    gpu_hours = sum(node_s.values()) * gpus_per_node / SECONDS_PER_HOUR
    cost = gpu_hours * price
    peak_hour = int(np.argmax(total_nodes))

    def _hour_tokens(x: np.ndarray, h: int) -> float:
        return float(x[h]) if hourly else float(x[0]) * hour_share

    rows = []
    for h in range(HOURS_PER_DAY):
        row = {"hour": h, "input_tokens": _hour_tokens(inp, h), "cached_input_tokens": _hour_tokens(hit, h),
               "output_tokens": _hour_tokens(out, h)}  # fmt: skip
        for p in PHASES:
            row[f"{p}_nodes_needed"] = float(node_s_exact[p][h if hourly else 0] / slot_s)
            row[f"{p}_units"] = int(units[p][h]) if hourly else None
            row[f"{p}_nodes"] = float(nodes[p][h])
        row["total_nodes"] = float(total_nodes[h])
        row["cost_usd"] = float(total_nodes[h]) * gpus_per_node * price
        row["revenue_usd"] = float(revenue_by_hour[h if hourly else 0])
        rows.append(row)
    total_s = sum(node_s.values())
    d: dict = {
        "fleet": f.name,
        "display_name": f.display_name,
        "file": day.where,
        "source": f.source,
        "window": f.window,
        "model": f.model,
        "gpu": f.gpu,
        "period": "hourly" if hourly else "day",
        "rounding": (
            "each hour rounded up to whole deployment units"
            if hourly
            else "none: day totals, node-hours = tokens / (rate x 3,600 s); the hourly curve is flat at the average"
        ),  # fmt: skip
        "tokens": {
            "input": float(inp.sum()),
            "cached_input": float(hit.sum()),
            "uncached_input": float(miss.sum()),
            "output": float(out.sum()),
            "cache_hit_share": float(hit.sum() / inp.sum()) if inp.sum() > 0 else 0.0,
        },
        "deployment": {
            "gpus_per_node": gpus_per_node,
            "prefill_unit": {"gpus": dep.prefill_unit_gpus, "nodes": dep.prefill_unit_nodes},
            "decode_unit": {"gpus": dep.decode_unit_gpus, "nodes": dep.decode_unit_nodes},
        },
        "rates": {p: _rate_entry(f, p, day.rates[p]) for p in PHASES},
        "node_hours": {**{p: node_s[p] / SECONDS_PER_HOUR for p in PHASES}, "total": total_s / SECONDS_PER_HOUR},
        "node_hours_unrounded": {
            **{p: float(node_s_exact[p].sum()) / SECONDS_PER_HOUR for p in PHASES},
            "total": float(sum(node_s_exact[p].sum() for p in PHASES)) / SECONDS_PER_HOUR,
        },
        "average_nodes": {**{p: node_s[p] / SECONDS_PER_DAY for p in PHASES}, "total": total_s / SECONDS_PER_DAY},
        "peak_nodes": {
            **{p: float(nodes[p].max()) for p in PHASES},
            "total": float(total_nodes[peak_hour]),
            "hour": peak_hour,
        },
        "gpu_hours": gpu_hours,
        "usd_per_gpu_hour": price,
        "gpu_price_source": day.gpu_price_source,
        "cost_usd": cost,
        "prices": pr,
        "revenue_usd": revenue,
        "revenue_by_kind_usd": revenue_by_kind,
        "margin": revenue / cost - 1.0,
        "hourly": rows,
    }
    if not hourly:
        d["units_at_average"] = {p: int(_units(nodes[p][:1], unit_nodes[p])[0]) for p in PHASES}
    if f.published is not None:
        d["published"] = _published(f, d)
    d["notes"] = _notes(f, d, day.notes)
    return d


def _rate_entry(f: Fleet, phase: str, r: PhaseRate) -> dict:
    entry = {"value": r.tokens_per_s_per_node, "unit": RATE_UNITS[phase], "source": r.source, "predicted": r.predicted}
    if r.predicted:
        entry["serve"] = r.detail
        given = f.given_rate(phase)
        if given is not None:
            entry["given_in_file"] = given
            entry["relative_to_given"] = r.tokens_per_s_per_node / given - 1.0
    return entry


def _published(f: Fleet, d: dict) -> dict:
    p = f.published
    ours = {
        "average_nodes": d["average_nodes"]["total"],
        "peak_nodes": d["peak_nodes"]["total"],
        "node_hours": d["node_hours"]["total"],
        "cost_usd": d["cost_usd"],
        "revenue_usd": d["revenue_usd"],
        "margin": d["margin"],
    }
    figures = {}
    for key, costsim in ours.items():
        reported = getattr(p, key)
        if reported is not None:
            relative = costsim / reported - 1.0 if reported else None  # a published margin of 0 has no relative gap
            figures[key] = {"published": reported, "costsim": costsim, "relative_difference": relative,
                            "difference": costsim - reported}  # fmt: skip
    return {"source": p.source, "quote": p.quote, "notes": p.notes, "figures": figures}


def _notes(f: Fleet, d: dict, extra: list[str]) -> list[str]:
    notes = []
    if d["period"] == "day":
        notes.append(
            "day totals: the curve is flat (peak = average); give 24 hourly figures for a diurnal curve rounded to "
            "whole deployment units"
        )
        if f.published is not None and f.published.peak_nodes is not None:
            notes.append(
                f"the published peak ({f.published.peak_nodes:g} nodes) is not comparable with a flat day's "
                f"{d['peak_nodes']['total']:,.1f}"
            )
    else:
        added = d["node_hours"]["total"] - d["node_hours_unrounded"]["total"]
        notes.append(f"rounding each hour up to whole units adds {added:,.1f} node-hours to the exact figure")
    return notes + extra
