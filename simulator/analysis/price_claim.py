"""Check a claim "A is N times cheaper than B" between two API price sheets (prices/*.yaml), e.g. "DeepSeek-R1 is
20-50x cheaper to use than o1" (docs/model.md §16.12).

Two questions hide in "cheaper", and the answer keeps them apart:
  price  the list-price ratio B / A per token kind (cache-miss input, cached input, output) and for a token mix.
         A mix's ratio is a weighted mean of the per-kind ratios (weights: A's spend on each kind), so every mix
         lies between the lowest and the highest per-kind ratio; a claimed figure or range is within the list
         prices when it meets that span. A figure stands for what its digits state: "20" is 19.5-20.5.
  cost   where a sheet names a shipped architecture (model_spec), `costsim serve` models its $/M per token kind
         on one GPU for both sides, and the margin = list price / modelled cost - 1 (the form DeepSeek published).
         Where the architecture is not published (o1), the cost is unknown and is said to be: the answer gives
         only what the list price bounds (the cost at the other side's margin; at break-even, the cost if the
         provider sold at no margin) or the cost of an architecture the user states in its place (--b-model),
         marked as the user's assumption.

The default token mix and request are DeepSeek's published day of V3/R1 traffic (fleets/deepseek-v3-r1-day.yaml):
608B input tokens, 342B of them cache hits, 168B output tokens, and the request lengths derived there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from simulator.errors import CostsimError, InfeasibleError, InputError
from simulator.inputs.arguments import is_number, reference
from simulator.inputs.serving_cases import PRICE_KEYS, check_sheet_model, price_sheet, price_sheets, sheet_prices
from simulator.inputs.workload_file import load_workload
from simulator.run.serve import MAX_CACHE_HIT_RATE  # as `costsim serve --cache-hit-rate`: some prompt tokens always miss
from simulator.units import MAX_USD_PER_GPU_HOUR, MIN_USD_PER_GPU_HOUR

KINDS = ("input", "cached_input", "output")
KIND_LABELS = {"input": "input (cache miss)", "cached_input": "cached input", "output": "output"}
DEFAULT_FLEET = "deepseek-v3-r1-day"
"""The shipped day of traffic the default mix comes from (DeepSeek's published V3/R1 day)."""
MAX_RATIO = 1e6
UTILIZATION_SOURCE = "costsim serve's default: every provisioned GPU-second serves tokens"
LENGTH_KEYS = ("input_len", "output_len", "workload")
"""Serve options that give the request's lengths (one request's, or a workload's distribution)."""
REQUEST_KEYS = (*LENGTH_KEYS, "min_tokens_per_s_per_user", "tpot_s", "ttft_s")
"""Serve options that describe the request (shared by both sides); the rest of a fleet's serve block is its
deployment (layout, precision, MTP), used only for its own model on its own GPU."""

_NUMBER = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_RATIO = re.compile(rf"^{_NUMBER}\s*x?$", re.IGNORECASE)
_RANGE = re.compile(rf"^{_NUMBER}\s*x?\s*(?:-|–|to)\s*{_NUMBER}\s*x?$", re.IGNORECASE)
_RATIO_FIX = "give a positive factor or a range, e.g. --ratio 27 or --ratio 20-50"


# ------------------------------------------------------------------ the claimed ratio


@dataclass(frozen=True)
class ClaimedRatio:
    text: str
    low: float
    high: float
    low_as_stated: float
    """The lowest value the stated digits stand for ("20" stands for 19.5-20.5)."""
    high_as_stated: float

    def to_dict(self) -> dict:
        return {"text": self.text, "low": self.low, "high": self.high,
                "low_as_stated": self.low_as_stated, "high_as_stated": self.high_as_stated}  # fmt: skip

    def contains(self, x: float) -> bool:
        return self.low_as_stated <= x <= self.high_as_stated

    def label(self) -> str:
        return f"{self.low:g}x" if self.low == self.high else f"{self.low:g}-{self.high:g}x"


def _half_unit(digits: str) -> float:
    """Half a unit of the last stated digit: '20' -> 0.5, '27.3' -> 0.05."""
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return 0.5 * 0.1**decimals


def parse_ratio(value: object) -> ClaimedRatio:
    """A claimed factor ('27', '27x', 27) or range ('20-50', '20x-50x', '20 to 50') of how many times cheaper."""
    if isinstance(value, bool) or value is None:
        raise InputError(f"--ratio {value!r} is not a factor; {_RATIO_FIX}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0:
            raise InputError(f"--ratio {value!r} must be a positive number; {_RATIO_FIX}")
        text = f"{value:g}"
    else:
        text = str(value).strip()
    if text.startswith("-"):
        raise InputError(f"--ratio {text!r} is negative; 'A is N times cheaper than B' needs N > 0; {_RATIO_FIX}")
    one, two = _RATIO.match(text), _RANGE.match(text)
    if one is None and two is None:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise InputError(f"--ratio {text!r} is not a number or a range; {_RATIO_FIX}")
        if not 0 < number <= MAX_RATIO:  # a number in another notation (1e30): say what is wrong with its size
            raise InputError(f"--ratio {text!r} must be above 0 and at most {MAX_RATIO:g}; {_RATIO_FIX}")
        text = np.format_float_positional(number, trim="-")  # 2e1: the factor 20
        one, two = _RATIO.match(text), None
        if one is None:
            raise InputError(f"--ratio {text!r} is not a number or a range; {_RATIO_FIX}")
    digits = [one.group(1)] if one else [two.group(1), two.group(2)]
    low, high = float(digits[0]), float(digits[-1])
    for d, x in zip(digits, (low, high), strict=False):
        if not 0 < x <= MAX_RATIO:
            raise InputError(f"--ratio {text!r}: {d} must be above 0 and at most {MAX_RATIO:g}; {_RATIO_FIX}")
    if low > high:
        raise InputError(f"--ratio {text!r} runs from high to low; write the range low-high, e.g. {high:g}-{low:g}")
    return ClaimedRatio(text, low, high, max(low - _half_unit(digits[0]), 0.0), high + _half_unit(digits[-1]))


# ------------------------------------------------------------------ the token mix


@dataclass(frozen=True)
class TokenMix:
    input_tokens: float
    """Input tokens, cache hits included (any scale: only the proportions count)."""
    output_tokens: float
    cache_hit_rate: float
    """Share of input tokens served from the KV cache."""
    source: str

    def shares(self) -> dict[str, float]:
        """Share of all tokens by kind."""
        total = self.input_tokens + self.output_tokens
        inp = self.input_tokens / total
        return {"input": inp * (1.0 - self.cache_hit_rate), "cached_input": inp * self.cache_hit_rate,
                "output": self.output_tokens / total}  # fmt: skip

    def to_dict(self) -> dict:
        total = self.input_tokens + self.output_tokens
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "input_share": self.input_tokens / total,
            "cache_hit_rate": self.cache_hit_rate,
            "shares": self.shares(),
            "source": self.source,
        }


def _published_day():
    """The shipped fleet file of DeepSeek's published day (the default mix and request)."""
    from simulator.inputs.fleet_file import load_fleet

    return load_fleet(DEFAULT_FLEET)


def token_mix(mix: str | None = None, cache_hit_rate: float | None = None) -> TokenMix:
    """`mix` 'IN:OUT' (e.g. '3:1' or '608B:168B') and the cache-hit rate of input tokens; each left out comes from
    DeepSeek's published day (fleets/deepseek-v3-r1-day.yaml)."""
    from simulator.units import count_in_range

    f, _, where = _published_day()
    day_in, day_out, day_hits = sum(f.tokens.input), sum(f.tokens.output), sum(f.tokens.hits())
    sources = []
    if mix is None:
        inp, out = day_in, day_out
        sources.append(f"input:output {day_in / day_out:.3g}:1, {f.display_name or f.name} ({where}: {f.tokens.quote})")
    else:
        parts = str(mix).split(":")
        if len(parts) != 2:
            raise InputError(f"--mix {mix!r} is not IN:OUT; give input and output tokens as a ratio, e.g. --mix 3:1")
        try:
            inp, out = (count_in_range(p.strip(), 0.0, 1e30) for p in parts)
        except ValueError as e:
            raise InputError(f"--mix {mix!r}: {e}; e.g. --mix 3:1") from None
        if inp + out <= 0:
            raise InputError(f"--mix {mix!r} has no tokens; give input and output tokens, e.g. --mix 3:1")
        sources.append(f"input:output {mix} (--mix)")
    if cache_hit_rate is None:
        rate = day_hits / day_in
        sources.append(f"cache hits {rate:.2%} of input, the same day")
    else:
        if (
            isinstance(cache_hit_rate, bool)
            or not isinstance(cache_hit_rate, int | float)
            or not (0.0 <= cache_hit_rate <= MAX_CACHE_HIT_RATE)
        ):
            raise InputError(
                f"--cache-hit-rate {cache_hit_rate!r} must be a share of input tokens between 0 and "
                f"{MAX_CACHE_HIT_RATE}; e.g. --cache-hit-rate 0.5"
            )
        rate = float(cache_hit_rate)
        sources.append(f"cache hits {rate:.2%} of input (--cache-hit-rate)")
    return TokenMix(float(inp), float(out), round(rate, 6), "; ".join(sources))


# ------------------------------------------------------------------ prices


def mix_price(prices: dict[str, float], mix: TokenMix) -> float:
    """$ per million tokens of the mix (all kinds together)."""
    return sum(share * prices[kind] for kind, share in mix.shares().items())


def price_ratios(a: dict[str, float], b: dict[str, float], mix: TokenMix) -> dict[str, float]:
    out = {kind: b[kind] / a[kind] for kind in KINDS}
    out["mix"] = mix_price(b, mix) / mix_price(a, mix)
    return out


def _load_sheets(a: str, b: str) -> dict:
    fix = "Name one of them, e.g. --cheaper deepseek-reasoner-2025 openai-o1-2025-01"
    sheets = {side: price_sheet(sheet_id, f"--cheaper {side.upper()}", fix) for side, sheet_id in (("a", a), ("b", b))}
    if a == b:
        raise InputError(f"--cheaper names {a!r} twice; give two different price sheets (A cheaper than B)")
    return sheets


def _sheet_dict(sheet_id: str, sheet, mix: TokenMix) -> dict:
    prices = sheet_prices(sheet)
    d = {"id": sheet_id, "file": f"prices/{sheet_id}.yaml", "model": sheet.model, "provider": sheet.provider,
         "date": sheet.date, "model_spec": sheet.model_spec, "source": sheet.source, "evidence": sheet.evidence,
         "list_usd_per_million": {**prices, "mix": mix_price(prices, mix)},
         "cached_input_billed_as_input": sheet.usd_per_million_cached_input_tokens is None}  # fmt: skip
    if sheet.off_peak is not None:
        d["off_peak"] = {"window_utc": sheet.off_peak.window_utc, "list_usd_per_million": sheet_prices(sheet, True)}
    return d


# ------------------------------------------------------------------ costs


def _fleet_for(spec: str):
    """The first shipped fleet file with a serve block that serves the model `spec` (its usual GPU and request)."""
    from simulator.inputs.fleet_file import fleet_ids, load_fleet_file

    for name, path in fleet_ids().items():
        f = load_fleet_file(path)
        if f.model == spec and f.serve is not None and f.gpu is not None:
            return f, f"fleets/{name}.yaml"
    return None, None


def _architecture(side: str, sheet_id: str, sheet, model: str | None) -> tuple[str | None, str]:
    if model is not None:
        from simulator.inputs.catalog import load_model

        try:
            load_model(model)  # an unknown name is named here, before the GPU or the search is asked for
        except CostsimError as e:
            raise type(e)(f"--{side}-model: {e}") from None
        return model, (
            f"--{side}-model {model}: an architecture the user states in place of {sheet.model}'s"
            + (f" (the sheet names {sheet.model_spec})" if sheet.model_spec else "; not the provider's, which is not published")
        )
    if sheet.model_spec is not None:
        check_sheet_model(sheet_id, sheet)
        return sheet.model_spec, f"prices/{sheet_id}.yaml model_spec"
    return None, f"prices/{sheet_id}.yaml names no model_spec: {sheet.provider} has not published {sheet.model}'s architecture"


def _serve_command(spec: str, gpu: str, options: dict, sheet_id: str, usd_per_gpu_hour: float | None) -> str:
    """The `costsim serve` command that gives the same costs and margins."""
    from simulator.run.serve import serve_flags

    words = ["costsim serve", spec, "--gpu", gpu, *serve_flags(options)]
    if usd_per_gpu_hour is not None:
        words += ["--usd-per-gpu-hour", f"{usd_per_gpu_hour:g}"]
    return " ".join([*words, "--price-sheet", sheet_id])


def _known_cost(sheet_id, sheet, spec, spec_source, gpu, request, request_source, mix, usd_per_gpu_hour) -> dict:
    from simulator.inputs.catalog import load_hardware
    from simulator.run.cost import CostOptions
    from simulator.run.serve import ServeRequest, serve

    own, own_where = _fleet_for(spec)
    options = dict(request)
    on_own_gpu = own is not None and load_hardware(own.gpu).name == load_hardware(gpu).name
    if on_own_gpu:  # its own deployment (layout, precision, MTP), at the request both sides share
        deployment_options = {k: v for k, v in own.serve.request().items() if k not in REQUEST_KEYS}
        options = {k: v for k, v in {**deployment_options, **request}.items() if v is not None}
        deployment = f"the deployment {own_where} states (serve: {own.serve.source})"
        layout_from = f"the deployment {own_where} states"
    else:
        deployment = "searched by costsim serve (no shipped deployment of this model on this GPU)"
        layout_from = f"costsim serve's search, as no shipped fleet serves {spec} on {gpu}"
    cost = CostOptions(usd_per_gpu_hour=usd_per_gpu_hour)  # as `costsim serve --usd-per-gpu-hour`
    try:
        d = serve(ServeRequest(spec, gpu, price_sheet=sheet_id, cost=cost, **options)).to_dict()
    except InfeasibleError as e:  # serve's fix names its layout flags; a claim takes the layout from elsewhere
        raise InfeasibleError(
            _no_fit_text(e.finding, sheet, spec, spec_source, gpu, options, sheet_id, usd_per_gpu_hour, layout_from)
        ) from None
    costs = {kind: d[key] for kind, key in PRICE_KEYS.items()}
    prices = sheet_prices(sheet)
    by_kind = {kind: v["margin"] for kind, v in d["list_prices"]["by_kind"].items()}
    if "cached_input" not in by_kind:  # no cache-hit price: hits billed at the input price
        by_kind["cached_input"] = prices["cached_input"] / costs["cached_input"] - 1.0
    cost_mix = mix_price(costs, mix)
    published = _published_margin(own, own_where, prices, d["usd_per_gpu_hour"], mix, options) if on_own_gpu else None
    layouts = {"prefill": d["prefill"]["layout"], "decode": d["decode"]["layout"]}
    return {
        "sheet": sheet_id,
        "model": sheet.model,
        "unknown_architecture": False,
        "architecture": spec,
        "architecture_source": spec_source,
        "gpu": d["gpu"],
        "usd_per_gpu_hour": d["usd_per_gpu_hour"],
        "gpu_price_source": d["price"]["price_source"] if usd_per_gpu_hour is None else "--usd-per-gpu-hour",
        "request": options,
        "request_source": request_source,
        "deployment_source": deployment,
        "layouts": layouts,
        "usd_per_million_input_tokens": costs["input"],
        "usd_per_million_cached_input_tokens": costs["cached_input"],
        "usd_per_million_output_tokens": costs["output"],
        "usd_per_million_mix": cost_mix,
        "margin": mix_price(prices, mix) / cost_mix - 1.0,
        "margin_by_kind": by_kind,
        "serve_command": _serve_command(spec, gpu, options, sheet_id, usd_per_gpu_hour),
        # Which GEMMs an FP4 deployment puts where, and that a quantized checkpoint's accuracy is not modelled.
        "fp4_formats": next((a for a in d["assumptions"] if a["name"] == "fp4_formats"), None),
        "published_margin": published,
    }


def _no_fit_text(finding, sheet, spec, spec_source, gpu, options, sheet_id, usd_per_gpu_hour, layout_from) -> str:
    """Why a side cannot be costed, and what `costsim claim` itself can change: the lengths (--workload), the GPU
    (--gpu; off a fleet's GPU the layout is searched) and an assumed architecture (--a-model / --b-model), or the
    layout and formats in the `costsim serve` command that costs the side."""
    flag = spec_source.split()[0] if spec_source.startswith("--") else None
    return (
        f"{sheet.model} cannot be costed as {spec} on {gpu} in this claim: {finding}. A price claim takes the layout "
        f"and formats from {layout_from} (it has no --tp/--dp/--pp/--num-gpus or --precision): give shorter "
        "requests (--workload), a GPU with more memory (--gpu; off a fleet's GPU the layout is searched)"
        + (f", or a smaller architecture in place of {spec} ({flag} SPEC)" if flag else "")
        + f", or try other layouts and formats with `{_serve_command(spec, gpu, options, sheet_id, usd_per_gpu_hour)}`"
    )


def _published_margin(
    f, where: str | None, prices: dict[str, float], usd_per_gpu_hour: float, mix: TokenMix, options: dict
) -> dict | None:
    """The margin a shipped fleet file publishes for a day of this architecture, on its GPU, at these list prices,
    with the inputs it was published at (`basis`) and each one this claim's modelled margin does not share
    (`differs`: empty where the two are comparable)."""
    if f is None or f.published is None or f.published.margin is None:
        return None
    if f.prices is not None:
        billed = {kind: getattr(f.prices, key) for kind, key in PRICE_KEYS.items()}
    else:
        sheet = price_sheets().get(f.price_sheet)
        if sheet is None:
            return None
        billed = sheet_prices(sheet)
    if any(not math.isclose(billed[kind], prices[kind]) for kind in KINDS):
        return None
    from simulator.run.fleet import gpu_price

    day_in, day_out = sum(f.tokens.input), sum(f.tokens.output)
    basis = {
        "usd_per_gpu_hour": gpu_price(f, None, where)[0],
        "cache_hit_rate": sum(f.tokens.hits()) / day_in,
        "input_share": day_in / (day_in + day_out),
        "request": {k: v for k, v in f.serve.request().items() if k in REQUEST_KEYS} if f.serve is not None else {},
    }
    request = {k: v for k, v in options.items() if k in REQUEST_KEYS}
    share = mix.input_tokens / (mix.input_tokens + mix.output_tokens)
    differs = []
    if not math.isclose(usd_per_gpu_hour, basis["usd_per_gpu_hour"], rel_tol=1e-9):
        differs.append(f"${basis['usd_per_gpu_hour']:.2f}/GPU-hour (this margin: ${usd_per_gpu_hour:.2f})")
    if not math.isclose(mix.cache_hit_rate, basis["cache_hit_rate"], abs_tol=1e-6):
        differs.append(f"{basis['cache_hit_rate']:.2%} cache hits (this margin: {mix.cache_hit_rate:.2%})")
    if not math.isclose(share, basis["input_share"], rel_tol=1e-6):
        differs.append(f"input:output {_in_out(basis['input_share'])} (this margin: {_in_out(share)})")
    keys = [k for k in REQUEST_KEYS if basis["request"].get(k) != request.get(k)]
    if keys:
        theirs, ours = ({k: r[k] for k in keys if k in r} for r in (basis["request"], request))
        differs.append(f"{_options_text(theirs)} (this margin: {_options_text(ours)})")
    return {
        "margin": f.published.margin,
        "source": f"{where}: {f.published.quote}",
        "notes": f.published.notes,
        "basis": basis,
        "differs": differs,
    }


def _in_out(input_share: float) -> str:
    return f"{input_share / (1.0 - input_share):.3g}:1" if input_share < 1 else "input only"


def _options_text(options: dict) -> str:
    return ", ".join(f"{k} {v:g}" if is_number(v) else f"{k} {v}" for k, v in options.items()) or "none"


def _unknown_cost(sheet_id, sheet, reason: str, other: dict | None, other_sheet, mix: TokenMix) -> dict:
    """What the list price says about a cost the model cannot give: at break-even the cost is the price (a cost
    above it would sell at a loss), and at the other side's margin it is price / (1 + that margin)."""
    prices = sheet_prices(sheet)
    d: dict = {"sheet": sheet_id, "model": sheet.model, "unknown_architecture": True, "reason": reason}
    band: dict = {
        "break_even": {
            "usd_per_million_by_kind": prices,
            "usd_per_million_mix": mix_price(prices, mix),
            "meaning": f"the cost if {sheet.provider} sold {sheet.model} at no margin: the most it can cost without a loss",
        }
    }
    if other is not None:
        margins = other["margin_by_kind"]
        at_margin = {kind: prices[kind] / (1.0 + margins[kind]) for kind in KINDS}
        band["at_other_side_margin"] = {
            "usd_per_million_by_kind": at_margin,
            "usd_per_million_mix": mix_price(prices, mix) / (1.0 + other["margin"]),
            "meaning": f"the cost if {sheet.provider} earned {other_sheet.model}'s modelled margin on each kind",
        }
    d["assumption_band"] = band
    return d


def _cost_ratio(a: dict, b: dict, mix: TokenMix) -> dict | None:
    """Modelled cost B / A by kind and for the mix; for an unknown side, the ratios its band gives."""
    if a["unknown_architecture"] and b["unknown_architecture"]:
        return None
    if not a["unknown_architecture"] and not b["unknown_architecture"]:
        out = {kind: b[PRICE_KEYS[kind]] / a[PRICE_KEYS[kind]] for kind in KINDS}
        out["mix"] = b["usd_per_million_mix"] / a["usd_per_million_mix"]
        return {"modelled": out}
    known, unknown = (a, b) if b["unknown_architecture"] else (b, a)
    out = {}
    for name, entry in unknown["assumption_band"].items():
        costs = entry["usd_per_million_by_kind"]
        ratio = {kind: costs[kind] / known[PRICE_KEYS[kind]] for kind in KINDS}
        ratio["mix"] = entry["usd_per_million_mix"] / known["usd_per_million_mix"]
        out[name] = ratio if known is a else {k: 1.0 / v for k, v in ratio.items()}
    return out


def _gpu(gpu: str | None, specs: dict[str, str | None]) -> tuple[str | None, str]:
    if gpu is not None:
        return gpu, "--gpu"
    for side in ("a", "b"):
        spec = specs[side]
        if spec is not None:
            f, where = _fleet_for(spec)
            if f is not None:
                return f.gpu, f"{spec}'s usual GPU: {where} serves it on {f.gpu}"
    return None, "no --gpu, and no shipped fleet serves either architecture"


def _request(specs: dict[str, str | None], mix: TokenMix, workload: str | None = None) -> tuple[dict, str]:
    """The request both sides are costed for: the lengths and latency target of a shipped fleet of A's
    architecture (else B's), else costsim serve's defaults; `workload` (--workload) in place of the lengths; the mix's
    cache-hit rate."""
    lengths = {"workload": workload} if workload is not None else {}
    given = f"--workload {str(workload)[:200]} (the lengths)" if workload is not None else ""
    for side in ("a", "b"):
        spec = specs[side]
        f, where = _fleet_for(spec) if spec else (None, None)
        if f is not None:
            options = f.serve.request()
            request = {k: options[k] for k in REQUEST_KEYS if options.get(k) is not None}
            if lengths:
                request = {k: v for k, v in request.items() if k not in LENGTH_KEYS}
            source = f"the request of {where}'s serve block ({', '.join(request)}; {f.display_name or f.name})"
            if given:
                source = f"{given}; {source}" if request else given
            return {**request, **lengths, "cache_hit_rate": mix.cache_hit_rate}, source
    default = given or "costsim serve's default lengths (no shipped fleet serves either architecture)"
    return {**lengths, "cache_hit_rate": mix.cache_hit_rate}, default


# ------------------------------------------------------------------ the claim


@dataclass(frozen=True)
class PriceClaim:
    doc: dict

    def to_dict(self) -> dict:
        return self.doc


def _fmt_ratio(x: float) -> str:
    return f"{x:.3g}x"


def assess_price_claim(
    a: str,
    b: str,
    ratio: object,
    *,
    mix: str | None = None,
    cache_hit_rate: float | None = None,
    gpu: str | None = None,
    a_model: str | None = None,
    b_model: str | None = None,
    usd_per_gpu_hour: float | None = None,
    workload: str | None = None,
) -> PriceClaim:
    """'A is `ratio` times cheaper than B' (A, B: price-sheet ids): the list-price side and the modelled-cost side."""
    claimed = parse_ratio(ratio)
    if workload is not None:  # a bad workload is refused whether or not a side is costed
        load_workload(reference("--workload", workload, "a workload name or a workload YAML path"))
    if usd_per_gpu_hour is not None and (
        not is_number(usd_per_gpu_hour) or not MIN_USD_PER_GPU_HOUR <= usd_per_gpu_hour <= MAX_USD_PER_GPU_HOUR
    ):
        raise InputError(
            f"--usd-per-gpu-hour {usd_per_gpu_hour!r} must be a price from ${MIN_USD_PER_GPU_HOUR:g} to "
            f"${MAX_USD_PER_GPU_HOUR:g} per GPU-hour: a margin divides by the cost; give dollars per GPU-hour, e.g. 2"
        )
    sheets = _load_sheets(a, b)
    ids = {"a": a, "b": b}
    tokens = token_mix(mix, cache_hit_rate)

    prices = {side: sheet_prices(s) for side, s in sheets.items()}
    ratios = price_ratios(prices["a"], prices["b"], tokens)
    lowest_kind = min(KINDS, key=ratios.__getitem__)
    highest_kind = max(KINDS, key=ratios.__getitem__)
    span = (ratios[lowest_kind], ratios[highest_kind])
    within = claimed.low_as_stated <= span[1] and claimed.high_as_stated >= span[0]
    off_peak = None
    if any(s.off_peak is not None for s in sheets.values()):
        night = {side: sheet_prices(s, off_peak=True) for side, s in sheets.items()}
        off_peak = price_ratios(night["a"], night["b"], tokens)

    # the cost side
    specs, spec_sources = {}, {}
    for side, model in (("a", a_model), ("b", b_model)):
        specs[side], spec_sources[side] = _architecture(side, ids[side], sheets[side], model)
    chosen_gpu, gpu_source = _gpu(gpu, specs)
    request, request_source = _request(specs, tokens, workload)
    cost: dict = {}
    if any(specs.values()) and chosen_gpu is None:
        raise InputError("the cost side needs a GPU: give --gpu (e.g. --gpu h800); costsim list gpus names them")
    for side in ("a", "b"):
        if specs[side] is not None:
            cost[side] = _known_cost(ids[side], sheets[side], specs[side], spec_sources[side], chosen_gpu, request,
                                     request_source, tokens, usd_per_gpu_hour)  # fmt: skip
    modelled = dict(cost)  # an unknown side's band is at the other side's margin only where that side is modelled
    for side, other in (("a", "b"), ("b", "a")):
        if specs[side] is None:
            cost[side] = _unknown_cost(ids[side], sheets[side], spec_sources[side], modelled.get(other), sheets[other],
                                       tokens)  # fmt: skip
    cost = {"a": cost["a"], "b": cost["b"]}
    cost_ratio = _cost_ratio(cost["a"], cost["b"], tokens)

    doc = {
        "claim": f"{a} is {claimed.label()} cheaper than {b}",
        "sheets": {side: _sheet_dict(ids[side], sheets[side], tokens) for side in ("a", "b")},
        "claimed_ratio": claimed.to_dict(),
        "mix": tokens.to_dict(),
        "price_ratio": ratios,
        "price_ratio_span": {"lowest": span[0], "lowest_kind": lowest_kind, "highest": span[1], "highest_kind": highest_kind},
        "within_price_ratio": within,
        "mix_ratio_within_claim": claimed.contains(ratios["mix"]),
        "off_peak_price_ratio": off_peak,
        "gpu": chosen_gpu,
        "gpu_source": gpu_source,
        "cost": cost,
        "cost_ratio": cost_ratio,
    }
    price_text, cost_text = _verdict(doc)
    doc["verdict"] = f"{price_text} {cost_text}"
    doc["verdict_price"], doc["verdict_cost"] = price_text, cost_text
    doc["assumptions"] = _assumptions(doc, request_source)
    return PriceClaim(doc)


def _claimed_label(claimed: dict) -> str:
    """The claimed figure as stated, with its 'x' ('20-50' -> '20-50x', '27x' stays)."""
    return claimed["text"] + ("" if claimed["text"].lower().endswith("x") else "x")


def _verdict(d: dict) -> tuple[str, str]:
    """The verdict's two parts: what the list prices say about the claim, and what the modelled costs say."""
    a, b = d["sheets"]["a"], d["sheets"]["b"]
    r, span, claimed = d["price_ratio"], d["price_ratio_span"], d["claimed_ratio"]
    label = _claimed_label(claimed)
    kinds = ", ".join(f"{_fmt_ratio(r[k])} per {KIND_LABELS[k]} token" for k in KINDS)
    within = d["within_price_ratio"]
    # The mix the ratio is taken at: the user's --mix, or the default (DeepSeek's published day).
    stated = "the --mix given" if "(--mix)" in d["mix"]["source"] else "the default mix (DeepSeek's published day)"
    text = [
        f"PRICE: {'WITHIN' if within else 'OUTSIDE'} the list prices. {b['model']}'s list prices ({b['id']}, {b['date']}) "
        f"are {kinds} of {a['model']}'s ({a['id']}, {a['date']}), and {_fmt_ratio(r['mix'])} at {stated} "
        f"({'inside' if d['mix_ratio_within_claim'] else 'outside'} the claim). Every token mix lies between "
        f"{_fmt_ratio(span['lowest'])} and {_fmt_ratio(span['highest'])}, so the claimed {label} "
        + (
            "is not what any token mix gives."
            if not within
            else "meets what the list prices give."
            if d["mix_ratio_within_claim"]
            # WITHIN by some mix, not by the one stated (a review read the two as a contradiction after --mix)
            else f"meets what the list prices give at some token mixes, though not at {stated}."
        )
    ]
    if within:
        beyond = []
        if claimed["low"] < span["lowest"]:
            beyond.append(f"below {_fmt_ratio(span['lowest'])} (down to its {claimed['low']:g}x)")
        if claimed["high"] > span["highest"]:
            beyond.append(f"above {_fmt_ratio(span['highest'])} (up to its {claimed['high']:g}x)")
        if beyond:
            text.append(f"No mix reaches the part of the claim {' or '.join(beyond)}.")
    if d["off_peak_price_ratio"] is not None:
        o = d["off_peak_price_ratio"]
        who = " and ".join(s["model"] for s in (a, b) if "off_peak" in s)
        text.append(f"At {who}'s off-peak prices the ratio is {_fmt_ratio(o['mix'])} at the mix "
                    f"({', '.join(f'{_fmt_ratio(o[k])} {KIND_LABELS[k]}' for k in KINDS)}).")  # fmt: skip
    ca, cb = d["cost"]["a"], d["cost"]["b"]
    parts = []
    for c in (ca, cb):
        if c["unknown_architecture"]:
            parts.append(f"{c['model']}'s serving cost is UNKNOWN ({c['reason']})")
            continue
        assumed = c["architecture_source"].startswith("--")
        served = f"costed as {c['architecture']} (your assumption)" if assumed else f"served as {c['architecture']}"
        part = (
            f"{c['model']} {served} on {c['gpu']} at ${c['usd_per_gpu_hour']:.2f}/GPU-hour costs "
            f"${c['usd_per_million_input_tokens']:.3g}/M input, ${c['usd_per_million_cached_input_tokens']:.3g}/M cached "
            f"input, ${c['usd_per_million_output_tokens']:.3g}/M output and ${c['usd_per_million_mix']:.3g}/M at the mix: "
            f"a margin of {c['margin']:+.0%} at list price"
        )
        published = c["published_margin"]
        if published is not None and not published["differs"]:
            part += (
                f" (published for a whole day at these prices: {published['margin']:+.0%}; the modelled "
                "steady state does not see a day of uneven load, docs/model.md §16.11)"
            )
        elif published is not None:
            part += (
                f" (not comparable with the {published['margin']:+.0%} published for a whole day at these prices, "
                f"which is at {'; '.join(published['differs'])})"
            )
        parts.append(part)
    price_text, text = " ".join(text), []
    modelled = not (ca["unknown_architecture"] and cb["unknown_architecture"])
    text.append(("COST (modelled by costsim serve): " if modelled else "COST: ") + "; ".join(parts) + ".")
    cr = d["cost_ratio"]
    if cr is None:
        text.append(
            "Neither sheet names an architecture, so only the list-price part of the claim can be checked: "
            f"'{d['claim']}' {'holds' if within else 'does not hold'} for list prices, and how much cheaper "
            f"{a['model']} is to serve than {b['model']} is unknown (--a-model SPEC and --b-model SPEC cost "
            "architectures you assume in their place)."
        )
    elif "modelled" in cr:
        m = cr["modelled"]
        assumed = [c["architecture"] for c in (ca, cb) if c["architecture_source"].startswith("--")]
        text.append(
            f"Modelled cost ratio {b['model']} / {a['model']}: {_fmt_ratio(m['mix'])} at the mix "
            f"({', '.join(f'{_fmt_ratio(m[k])} {KIND_LABELS[k]}' for k in KINDS)})"
            + (f"; {' and '.join(assumed)} is an architecture the user assumed, not a published one" if assumed else "")
            + "."
        )
    else:
        text.append(_bound_text(d, cb if cb["unknown_architecture"] else ca, b_unknown=cb["unknown_architecture"]))
    return price_text, " ".join(text)


def _bound_text(d: dict, unknown: dict, *, b_unknown: bool) -> str:
    """What the unknown side's list price says about the cost ratio B / A, and whether the claim holds for list
    prices. The unknown side's cost is its price / (1 + its margin), highest at no margin: where B is unknown the
    ratio B / A is at most its no-margin value and falls as B's margin rises; where A is unknown the ratio is at
    least its no-margin value and rises with A's margin."""
    cr = d["cost_ratio"]
    flag = "--b-model" if b_unknown else "--a-model"
    same = cr.get("at_other_side_margin")
    bound, beyond = ("at most", "less") if b_unknown else ("at least", "more")
    holds = (
        "holds for list prices"
        if d["within_price_ratio"]
        else f"does not hold for list prices (no token mix gives {_claimed_label(d['claimed_ratio'])})"
    )
    return (
        f"Without {unknown['model']}'s architecture the cost ratio is unknown; its list price only bounds it: {bound} "
        f"{_fmt_ratio(cr['break_even']['mix'])} at the mix if {unknown['model']} sold at no margin"
        + (f", {_fmt_ratio(same['mix'])} (the price ratio) if it earned the same margin" if same else "")
        + f", {beyond} with a higher margin. So '{d['claim']}' {holds}; how much cheaper it is to serve depends on "
        f"{unknown['model']}'s unpublished cost ({flag} SPEC costs an architecture you assume in its place)."
    )


def _assumptions(d: dict, request_source: str) -> list[dict]:
    out = [
        {"name": "token_mix", "value": d["mix"]["shares"], "source": d["mix"]["source"]},
        {"name": "prices", "value": "standard (peak-hour) list prices",
         "source": "; ".join(f"{s['file']}: {s['source']}" for s in d["sheets"].values())},
        {"name": "claimed_ratio_as_stated", "value": [d["claimed_ratio"]["low_as_stated"], d["claimed_ratio"]["high_as_stated"]],
         "source": "a stated figure stands for half a unit of its last digit either side ('20' is 19.5-20.5)"},
    ]  # fmt: skip
    for side in ("a", "b"):
        s = d["sheets"][side]
        if s["cached_input_billed_as_input"]:
            out.append({"name": f"{side}_cached_input", "value": s["list_usd_per_million"]["input"],
                        "source": f"{s['file']} has no cache-hit price; hits are billed at the input price"})  # fmt: skip
    if d["gpu"] is not None:
        out.append({"name": "gpu", "value": d["gpu"], "source": d["gpu_source"]})
    for side in ("a", "b"):
        c = d["cost"][side]
        if c["unknown_architecture"]:
            out.append({"name": f"{side}_architecture", "value": None, "source": c["reason"]})
            continue
        out += [
            {"name": f"{side}_architecture", "value": c["architecture"], "source": c["architecture_source"]},
            {"name": f"{side}_request", "value": c["request"], "source": request_source},
            {"name": f"{side}_deployment", "value": c["layouts"], "source": c["deployment_source"]},
            {"name": f"{side}_usd_per_gpu_hour", "value": c["usd_per_gpu_hour"], "source": c["gpu_price_source"]},
            {"name": f"{side}_utilization", "value": 1.0, "source": UTILIZATION_SOURCE},
        ]  # fmt: skip
        if c.get("fp4_formats"):
            out.append({**c["fp4_formats"], "name": f"{side}_fp4_formats"})
    return out
