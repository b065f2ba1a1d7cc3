"""The JSON document of `costsim claim --cheaper A B --ratio N` (a price claim, docs/model.md §16.12), in the style of
simulator/outputs.py: fixed objects forbid unknown keys; the serve request and layouts, which follow `costsim serve`,
are mappings."""

from __future__ import annotations

from typing import Any, Literal

from simulator.outputs import Document, _Fixed

Kind = Literal["input", "cached_input", "output"]


class ByKind(_Fixed):
    """One figure per token kind."""

    input: float
    cached_input: float
    output: float


class ByKindAndMix(ByKind):
    """One figure per token kind and one for the token mix."""

    mix: float


class OffPeak(_Fixed):
    window_utc: str
    list_usd_per_million: ByKind


class Sheet(_Fixed):
    """A price sheet of prices/ as the claim reads it."""

    id: str
    file: str
    model: str
    provider: str
    date: str
    model_spec: str | None
    source: str
    evidence: Literal["primary", "secondary"]
    list_usd_per_million: ByKindAndMix
    """Standard-hour list prices by kind (cached input at the input price where the sheet has none) and at the mix."""
    cached_input_billed_as_input: bool
    off_peak: OffPeak | None = None


class Sheets(_Fixed):
    a: Sheet
    b: Sheet


class ClaimedRatio(_Fixed):
    text: str
    low: float
    high: float
    low_as_stated: float
    """The lowest value the stated digits stand for ('20' stands for 19.5-20.5)."""
    high_as_stated: float


class Mix(_Fixed):
    input_tokens: float
    output_tokens: float
    input_share: float
    cache_hit_rate: float
    shares: ByKind
    """Share of all tokens by kind."""
    source: str


class Span(_Fixed):
    """The ratios every token mix lies between."""

    lowest: float
    lowest_kind: Kind
    highest: float
    highest_kind: Kind


class PublishedMargin(_Fixed):
    margin: float
    source: str
    notes: str | None


class KnownCost(_Fixed):
    """A side whose architecture is known (its sheet's model_spec, or one the user states): costsim serve's costs."""

    sheet: str
    model: str
    unknown_architecture: Literal[False]
    architecture: str
    architecture_source: str
    gpu: str
    usd_per_gpu_hour: float
    gpu_price_source: str
    request: dict[str, Any]
    """The costsim serve options (its keyword names)."""
    request_source: str
    deployment_source: str
    layouts: dict[str, dict[str, Any]]
    usd_per_million_input_tokens: float
    usd_per_million_cached_input_tokens: float
    usd_per_million_output_tokens: float
    usd_per_million_mix: float
    margin: float
    """List price / modelled cost - 1 at the mix."""
    margin_by_kind: ByKind
    serve_command: str
    """The costsim serve command that reports the same costs and margins."""
    published_margin: PublishedMargin | None


class BandEntry(_Fixed):
    usd_per_million_by_kind: ByKind
    usd_per_million_mix: float
    meaning: str


class Band(_Fixed):
    break_even: BandEntry
    at_other_side_margin: BandEntry | None = None


class UnknownCost(_Fixed):
    """A side whose architecture is not published: no cost, only what its list price bounds."""

    sheet: str
    model: str
    unknown_architecture: Literal[True]
    reason: str
    assumption_band: Band


class Costs(_Fixed):
    a: KnownCost | UnknownCost
    b: KnownCost | UnknownCost


class CostRatio(_Fixed):
    """Cost B / A: modelled where both are known, else the ratios the unknown side's band gives."""

    modelled: ByKindAndMix | None = None
    break_even: ByKindAndMix | None = None
    at_other_side_margin: ByKindAndMix | None = None


class Assumption(_Fixed):
    name: str
    value: Any
    source: str


class PriceClaimOutput(Document):
    """`costsim claim --cheaper A B --ratio N`: list-price ratios, the claim against them, modelled costs, margins."""

    claim: str
    sheets: Sheets
    claimed_ratio: ClaimedRatio
    mix: Mix
    price_ratio: ByKindAndMix
    """List price B / A by token kind and at the mix."""
    price_ratio_span: Span
    within_price_ratio: bool
    """The claimed figure or range meets the span every token mix lies in."""
    mix_ratio_within_claim: bool
    off_peak_price_ratio: ByKindAndMix | None
    gpu: str | None
    gpu_source: str
    cost: Costs
    cost_ratio: CostRatio | None
    verdict: str
    verdict_price: str
    verdict_cost: str
    assumptions: list[Assumption]
