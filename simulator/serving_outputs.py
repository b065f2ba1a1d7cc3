"""The JSON documents of the serving commands (`costsim serve`, `costsim validate serve`, `costsim fleet`), in the
style of simulator/outputs.py: fixed objects forbid unknown keys, open-ended ones (breakdowns, hourly rows of a fleet)
are mappings. simulator.outputs.COMMANDS lists them with the others for `costsim schema`."""

from __future__ import annotations

from typing import Any, Literal

from simulator.outputs import CostBlock, Document, _Fixed


class ServeRequestEcho(_Fixed):
    input_len: int
    output_len: int
    cache_hit_rate: float
    phase: Literal["both", "prefill", "decode"]
    deployment: Literal["disaggregated", "colocated"]
    kv_dtype: Literal["bf16", "fp8"]
    mtp_depth: int
    mtp_accept: float | None
    min_tokens_per_s_per_user: float | None
    """The per-user speed target (from --tpot-ms or --min-tokens-per-s-per-user); null: none."""
    ttft_s: float | None


class PrefillLayout(_Fixed):
    tp: int
    ep: int
    gpus: int
    precision: str


class Prefill(_Fixed):
    input_tokens_per_s_per_gpu: float
    """Prompt tokens per second per GPU, cache hits included."""
    computed_tokens_per_s_per_gpu: float
    """Prompt tokens computed (cache misses) per second per GPU."""
    ttft_s: float
    """The forward pass that holds a request, plus the KV transfer when disaggregated."""
    prompts_per_pass: int
    layout: PrefillLayout
    breakdown_s: dict[str, float]
    """Seconds of one prefill pass by component."""


class DecodeLayout(_Fixed):
    tp: int
    dp: int
    """Attention data-parallel groups per stage."""
    pp: int
    ep: int
    gpus: int
    precision: str


class Decode(_Fixed):
    output_tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    tpot_s: float
    batch_per_gpu: float
    """Sequences per GPU in one micro-batch."""
    stage_time_s: float
    """One decode step of one micro-batch on a GPU of the busiest stage."""
    layout: DecodeLayout
    breakdown_s: dict[str, float]


class PerRequest(_Fixed):
    gpu_s: float
    prefill_gpu_s: float
    decode_gpu_s: float
    usd: float
    output_tokens_per_s_per_gpu: float
    """Output tokens per GPU-second with prefill included (offline benchmarks' figure)."""
    total_tokens_per_s_per_gpu: float


class KindMargin(_Fixed):
    list_usd_per_million: float
    cost_usd_per_million: float
    margin: float
    """List price / modelled cost - 1."""


class ListPrices(_Fixed):
    sheet: str
    model: str
    provider: str
    date: str
    source: str
    by_kind: dict[str, KindMargin]


class CurvePoint(_Fixed):
    tokens_per_s_per_user: float
    tokens_per_s_per_gpu: float


class Assumption(_Fixed):
    name: str
    value: Any
    source: str


class ServeOutput(Document):
    """`costsim serve`: prefill and decode rates per GPU, latency, memory, $ per million tokens."""

    model: str
    gpu: str
    request: ServeRequestEcho
    kv_cache_bytes_per_token: float
    prefill: Prefill | None = None
    usd_per_million_input_tokens: float | None = None
    usd_per_million_cached_input_tokens: float | None = None
    decode: Decode | None = None
    memory_per_gpu_gib: dict[str, float] | None = None
    usd_per_million_output_tokens: float | None = None
    curve: list[CurvePoint] | None = None
    per_request: PerRequest | None = None
    utilization: float
    list_prices: ListPrices | None = None
    usd_per_gpu_hour: float
    price: CostBlock
    candidates_evaluated: int
    assumptions: list[Assumption]


class ServeCase(_Fixed):
    id: str
    source: str
    model: str
    gpu: str
    num_gpus: int | None
    phase: str
    metric: str
    unit: str
    reported: float
    predicted: float | None
    error: float | None
    """predicted / reported - 1; null when not predicted."""
    predicted_layout: dict[str, Any] | None
    not_predicted_because: str | None
    assumptions: list[str]
    why: str


class ServeTarget(_Fixed):
    n: int
    median_abs_error: float
    max_abs_error: float


class ValidateServeOutput(Document):
    """`costsim validate serve`: every published serving figure predicted, with the error and the targets."""

    cases: list[ServeCase]
    n_cases: int
    n_not_predicted: int
    median_abs_error: float | None
    max_abs_error: float | None
    worst_case: str | None
    error_convention: str
    target: ServeTarget
    meets_target: bool


class FleetOutput(Document):
    """`costsim fleet`: a day of serving closed from token volumes, deployment units, rates and prices."""

    fleet: str
    display_name: str | None = None
    file: str
    source: str
    window: str | None = None
    model: str
    gpu: str
    period: str
    rounding: str
    tokens: dict[str, float]
    deployment: dict[str, Any]
    rates: dict[str, dict[str, Any]]
    """Per phase: value, unit, source ('given in FILE' or the serve command that predicted it), predicted."""
    node_hours: dict[str, float]
    node_hours_unrounded: dict[str, float]
    average_nodes: dict[str, float]
    peak_nodes: dict[str, float]
    gpu_hours: float
    usd_per_gpu_hour: float
    gpu_price_source: str
    cost_usd: float
    prices: dict[str, Any]
    revenue_usd: float
    revenue_by_kind_usd: dict[str, float]
    margin: float
    """Revenue / cost - 1."""
    hourly: list[dict[str, Any]]
    units_at_average: dict[str, int]
    published: dict[str, Any] | None = None
    notes: list[str] | None = None
