"""Fleet files: one day of a serving fleet's traffic (`costsim fleet`), read from YAML.

A fleet file gives the day's token volumes (input with its cache hits, output; as day totals or as 24 hourly
figures), the deployment units (GPUs per prefill unit and per decode unit, GPUs per node), a price sheet (inline,
or the id of a prices/*.yaml sheet), the GPU price, and optionally the per-node rates of each phase and the figures
a source published for the same day. simulator/run/fleet.py closes the books: node-hours, cost, revenue, margin.
Shipped fleet files live in fleets/ and are found by name, as plans are.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from simulator.errors import SpecError
from simulator.inputs.data_files import data_dir, yaml_files
from simulator.inputs.files import is_dir, is_file, read_yaml, validate
from simulator.inputs.plan_file import beside
from simulator.inputs.serving_cases import check_prices
from simulator.inputs.specs import prose
from simulator.units import (
    MAX_GPUS,
    MAX_USD_PER_GPU_HOUR,
    MICRO,
    MIN_USD_PER_GPU_HOUR,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    count_in_range,
)
from simulator.vocab import MAX_HOST_US_PER_SEQUENCE, MIN_KV_MEMORY_FRACTION, KvAdmission, KvDtype, ServePrecision

FLEET_FOLDER = "fleets"
HOURS_PER_DAY = round(SECONDS_PER_DAY / SECONDS_PER_HOUR)
"""The hourly figures of a diurnal curve: one per hour of the day, the first hour of the window first."""
MAX_TOKENS_PER_DAY = 1e17
MAX_RATE = 1e9
"""Largest per-node rate, tokens/s (the published ones are 1e4-1e5)."""
MAX_USD_PER_MILLION = 10_000.0
MAX_LEN = 10_000_000


def _figures(value: object) -> tuple[float, ...]:
    """One day total, or a list of HOURS_PER_DAY hourly figures; each a count >= 0 (608B, 1.5e9, 42000000)."""
    if isinstance(value, list):
        if len(value) != HOURS_PER_DAY:
            raise ValueError(
                f"a list of {len(value)} hourly figures; give {HOURS_PER_DAY} (one per hour, the first hour of the "
                "window first) or one number for the whole day"
            )
        return tuple(_tokens(item, f"hour {hour}: ") for hour, item in enumerate(value))
    if isinstance(value, dict | tuple):
        raise ValueError(f"a {type(value).__name__}; give one number for the day or a list of {HOURS_PER_DAY} hourly figures")
    return (_tokens(value, ""),)


def _tokens(value: object, where: str) -> float:
    try:
        return count_in_range(value, 0.0, MAX_TOKENS_PER_DAY)
    except ValueError as e:
        if _negative(value):  # its own fix, not the range's
            raise ValueError(f"{where}{value!r} is negative; give a token count of 0 or more (e.g. 608B)") from None
        raise ValueError(f"{where}{e}") from None


def _negative(value: object) -> bool:
    try:
        return count_in_range(value, -math.inf, math.inf) < 0
    except ValueError:
        return False


Figures = Annotated[tuple[float, ...], BeforeValidator(_figures)]
"""Tokens: a day total (one entry) or HOURS_PER_DAY hourly figures."""
MIN_RATE = 1.0
"""Least tokens/s per node a rate may give: a serving node of any GPU does far more; below it the day needs more nodes
than can be counted."""
Rate = Annotated[float, Field(ge=MIN_RATE, le=MAX_RATE)]
UsdPerMillion = Annotated[float, Field(ge=0, le=MAX_USD_PER_MILLION)]
Gpus = Annotated[int, Field(ge=1, le=MAX_GPUS)]
Text = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(prose)]


class _Schema(BaseModel):
    # strict: a count is an integer and a flag true/false (not 1 or "yes"); no number is inf or NaN
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Tokens(_Schema):
    """The day's token volumes: input (cache hits included), its cache hits, and output."""

    input: Figures
    """Input (prompt) tokens, cache hits included: a day total or 24 hourly figures."""
    output: Figures
    cache_hit: Figures | None = None
    """Input tokens served from the KV cache, in the same form as `input` (or give cache_hit_share)."""
    cache_hit_share: Annotated[float, Field(ge=0, le=1)] | None = None
    """Share of input tokens that hit the cache, every hour alike (or give cache_hit tokens)."""
    source: Text | None = None
    quote: Text | None = None
    notes: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Tokens:
        if (self.cache_hit is None) == (self.cache_hit_share is None):
            raise ValueError(
                "give one of tokens.cache_hit (cache-hit input tokens) or tokens.cache_hit_share (0-1; 0 when nothing "
                "hits the cache)" + (", not both" if self.cache_hit is not None else "")
            )
        if len(self.input) != len(self.output):
            raise ValueError(
                f"tokens.input has {_form(self.input)} and tokens.output {_form(self.output)}; give both as day totals "
                f"or both as {HOURS_PER_DAY} hourly figures"
            )
        if self.cache_hit is not None:
            if len(self.cache_hit) != len(self.input):
                raise ValueError(
                    f"tokens.cache_hit has {_form(self.cache_hit)} and tokens.input {_form(self.input)}; give them in "
                    "the same form, or give tokens.cache_hit_share instead"
                )
            over = [i for i, (hit, total) in enumerate(zip(self.cache_hit, self.input, strict=True)) if hit > total]
            if over:
                i = over[0]
                at = f" in hour {i}" if len(self.input) > 1 else ""
                raise ValueError(
                    f"tokens.cache_hit {self.cache_hit[i]:,.6g} is more than tokens.input {self.input[i]:,.6g}{at}; "
                    "input counts every prompt token, cache hits included"
                )
        if sum(self.input) + sum(self.output) <= 0:
            raise ValueError("tokens.input and tokens.output are all 0; give the day's token volumes")
        return self

    @property
    def hourly(self) -> bool:
        return len(self.input) == HOURS_PER_DAY

    def hits(self) -> tuple[float, ...]:
        if self.cache_hit is not None:
            return self.cache_hit
        return tuple(x * (self.cache_hit_share or 0.0) for x in self.input)


def _form(figures: tuple[float, ...]) -> str:
    return "a day total" if len(figures) == 1 else f"{len(figures)} hourly figures"


class Deployment(_Schema):
    """Deployment units: a phase scales by whole units (DeepSeek: 4-node prefill and 18-node decode units)."""

    gpus_per_node: Annotated[int, Field(ge=1, le=1024)]
    prefill_unit_gpus: Gpus
    decode_unit_gpus: Gpus
    source: Text | None = None
    quote: Text | None = None

    @model_validator(mode="after")
    def _whole_nodes(self) -> Deployment:
        for name in ("prefill_unit_gpus", "decode_unit_gpus"):
            gpus = getattr(self, name)
            if gpus % self.gpus_per_node:
                raise ValueError(
                    f"deployment.{name} {gpus} is not a whole number of {self.gpus_per_node}-GPU nodes; give a multiple "
                    f"of deployment.gpus_per_node ({gpus // self.gpus_per_node * self.gpus_per_node or self.gpus_per_node} "
                    f"or {(gpus // self.gpus_per_node + 1) * self.gpus_per_node})"
                )
        return self

    @property
    def prefill_unit_nodes(self) -> int:
        return self.prefill_unit_gpus // self.gpus_per_node

    @property
    def decode_unit_nodes(self) -> int:
        return self.decode_unit_gpus // self.gpus_per_node


class Prices(_Schema):
    """An API price sheet, dollars per million tokens (the names of prices/*.yaml sheets)."""

    usd_per_million_cached_input_tokens: UsdPerMillion
    """Input tokens that hit the cache."""
    usd_per_million_input_tokens: UsdPerMillion
    """Input tokens that miss the cache (the list input price)."""
    usd_per_million_output_tokens: UsdPerMillion
    source: Text
    quote: Text | None = None

    @model_validator(mode="after")
    def _as_a_sheet(self) -> Prices:
        # the checks of prices/*.yaml sheets: a fuzzer's cached price of $5/M over a $0.55/M miss price gave a margin of
        # 2,453%, and all-zero prices a margin of -100%, each with exit 0
        check_prices(self)
        return self


class Rates(_Schema):
    """Per-node rates of each phase, as a source published them (a phase left out is predicted)."""

    prefill_input_tokens_per_s_per_node: Rate | None = None
    """Input tokens per second per node while prefilling, cache hits included (DeepSeek's form)."""
    decode_output_tokens_per_s_per_node: Rate | None = None
    source: Text
    quote: Text | None = None

    @model_validator(mode="after")
    def _some(self) -> Rates:
        if self.prefill_input_tokens_per_s_per_node is None and self.decode_output_tokens_per_s_per_node is None:
            raise ValueError(
                "rates gives neither prefill_input_tokens_per_s_per_node nor decode_output_tokens_per_s_per_node; give "
                "one or both, or leave rates out to predict both with costsim serve"
            )
        return self


class ServeOptions(_Schema):
    """What `costsim serve` is asked when it predicts a per-node rate (its flags, as keys). The cache-hit rate is the
    day's, from tokens; prefill and decode are disaggregated, as the deployment units are."""

    input_len: Annotated[int, Field(ge=1, le=MAX_LEN)] | None = None
    """Mean prompt tokens per request."""
    output_len: Annotated[int, Field(ge=1, le=MAX_LEN)] | None = None
    workload: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    """In place of input_len and output_len: a shipped workload or a workload YAML (a path read beside the fleet file
    where a file is there), a distribution of request lengths (serve --workload). Under $COSTSIM_DATA_DIR keep workload
    files in its workloads/ folder and give their names: every YAML in fleets/ is read as a fleet."""
    precision: ServePrecision | None = None
    """bf16, fp8 or fp4 (NVFP4 on Blackwell); None: every format the GPU has, searched."""
    kv_dtype: KvDtype = "bf16"
    tp: Gpus | None = None
    dp: Gpus | None = None
    pp: Gpus | None = None
    ep: Gpus | None = None
    num_gpus: Gpus | None = None
    batch_per_gpu: Annotated[float, Field(gt=0, le=MAX_GPUS)] | None = None
    redundant_experts: Annotated[int, Field(ge=0, le=100_000)] = 0
    mtp_depth: Annotated[int, Field(ge=0, le=8)] = 0
    mtp_accept: Annotated[float, Field(ge=0, le=0.999)] | None = None
    two_batch_overlap: bool = True
    """False for an engine that does not hide the MoE exchange under a second micro-batch (serve --no-two-batch-overlap)."""
    kv_admission: KvAdmission = "on-demand"
    """full-request for an engine that reserves a request's whole KV at admission (serve --kv-admission)."""
    kv_memory_fraction: Annotated[float, Field(ge=MIN_KV_MEMORY_FRACTION, le=1)] = 1.0
    """The KV pool's share of the memory left after weights, activations and the reserve (serve --kv-memory-fraction)."""
    host_us_per_sequence: Annotated[float, Field(ge=0, le=MAX_HOST_US_PER_SEQUENCE)] = 0.0
    """The engine's host time per running sequence per decode step, microseconds (serve --host-us-per-sequence)."""
    tpot_s: Annotated[float, Field(gt=0, le=1e4)] | None = None
    """Latency target: time per output token, seconds."""
    ttft_s: Annotated[float, Field(gt=0, le=1e4)] | None = None
    """Latency target: time to first token, seconds."""
    min_tokens_per_s_per_user: Annotated[float, Field(gt=0, le=1e7)] | None = None
    source: Text | None = None
    notes: Text | None = None

    @model_validator(mode="after")
    def _lengths(self) -> ServeOptions:
        lengths = [k for k in ("input_len", "output_len") if getattr(self, k) is not None]
        if self.workload is not None and lengths:
            raise ValueError(
                f"gives workload and {' and '.join(lengths)}; give a workload (a distribution of lengths) or "
                "input_len and output_len (the mean request), not both"
            )
        if self.workload is None and len(lengths) < 2:
            missing = " and ".join(k for k in ("input_len", "output_len") if getattr(self, k) is None)
            raise ValueError(f"no {missing}; give input_len and output_len (mean tokens per request) or a workload")
        return self

    def request(self) -> dict:
        """The keyword arguments of simulator.run.serve.ServeRequest (the host time in its seconds)."""
        # Fields left out are ServeRequest's defaults (None: searched, or no target), so they are left out here too.
        out = self.model_dump(exclude={"source", "notes", "host_us_per_sequence"}, exclude_none=True)
        return out | {"host_s_per_sequence": self.host_us_per_sequence * MICRO}


PUBLISHED_FIGURES = ("average_nodes", "peak_nodes", "node_hours", "cost_usd", "revenue_usd", "margin")


PUBLISHED_ROUNDING = 0.02
"""How far a published day's figures may disagree among themselves from rounding (DeepSeek's 545% margin against its
$562,027 / $87,072 - 1 = 545.5%: 0.1%)."""


class Published(_Schema):
    """What a source published for the same day, to check against (each figure optional)."""

    average_nodes: Annotated[float, Field(gt=0, le=MAX_GPUS)] | None = None
    peak_nodes: Annotated[float, Field(gt=0, le=MAX_GPUS)] | None = None
    node_hours: Annotated[float, Field(gt=0, le=1e12)] | None = None
    cost_usd: Annotated[float, Field(gt=0, le=1e15)] | None = None
    revenue_usd: Annotated[float, Field(gt=0, le=1e15)] | None = None
    margin: Annotated[float, Field(ge=-1, le=1e6)] | None = None
    """revenue / cost - 1 (DeepSeek's 'cost profit margin' of 545% is 5.45)."""
    source: Text
    quote: Text
    notes: Text | None = None

    @model_validator(mode="after")
    def _some(self) -> Published:
        if all(getattr(self, k) is None for k in PUBLISHED_FIGURES):
            raise ValueError(f"published gives no figure; give at least one of {', '.join(PUBLISHED_FIGURES)}, or leave it out")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Published:
        # Figures that contradict each other are a typo, not a finding (a fuzzer's peak of 10 nodes beside an average of
        # 226.75 was compared as given). Rounded figures agree within PUBLISHED_ROUNDING.
        if self.peak_nodes is not None and self.average_nodes is not None and self.peak_nodes < self.average_nodes:
            raise ValueError(
                f"peak_nodes {self.peak_nodes:g} is below average_nodes {self.average_nodes:g}; a day's peak is at least "
                "its average: fix whichever is mistyped"
            )
        if self.cost_usd is not None and self.revenue_usd is not None and self.margin is not None:
            implied = self.revenue_usd / self.cost_usd - 1.0
            if abs((1.0 + self.margin) / (1.0 + implied) - 1.0) > PUBLISHED_ROUNDING:
                raise ValueError(
                    f"margin {self.margin:g} disagrees with revenue_usd / cost_usd - 1 = {implied:.4g} by more than "
                    f"{PUBLISHED_ROUNDING:.0%}; margin is revenue / cost - 1 (545% is 5.45): fix whichever is mistyped"
                )
        return self


class Fleet(_Schema):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    display_name: Text | None = None
    source: Text
    window: Text | None = None
    """The day the figures cover, as the source states it."""
    model: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    """Shipped model name, or a spec YAML, config.json or model folder (a relative path read beside the fleet file where
    one is there): needed to predict a rate."""
    gpu: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    """Hardware profile id or profile YAML (read beside the fleet file as the model is): needed to predict a rate, and
    for the default GPU price."""
    tokens: Tokens
    deployment: Deployment
    prices: Prices | None = None
    price_sheet: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """Id of a dated price sheet in prices/ (its file name without .yaml), instead of inline prices."""
    usd_per_gpu_hour: Annotated[float, Field(ge=MIN_USD_PER_GPU_HOUR, le=MAX_USD_PER_GPU_HOUR)] | None = None
    price_source: Text | None = None
    rates: Rates | None = None
    serve: ServeOptions | None = None
    published: Published | None = None
    notes: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Fleet:
        if (self.prices is None) == (self.price_sheet is None):
            raise ValueError(
                "give prices (inline: usd_per_million_cached_input_tokens, usd_per_million_input_tokens, "
                "usd_per_million_output_tokens, source) or price_sheet (the id of a prices/*.yaml sheet)"
                + (", not both" if self.prices is not None else "")
            )
        if self.usd_per_gpu_hour is not None and not self.price_source:
            raise ValueError("usd_per_gpu_hour needs a price_source; add price_source: who quotes the price, and when")
        if self.usd_per_gpu_hour is None and self.gpu is None:
            raise ValueError("give usd_per_gpu_hour (with price_source), or gpu for its profile's default price")
        missing = self.predicted_phases()
        if missing:
            need = self.prediction_needs()
            if need:
                raise ValueError(
                    f"no rate is given for {' and '.join(missing)}, so costsim serve predicts "
                    f"{'them' if len(missing) > 1 else 'it'} and needs "
                    f"{', '.join(need)}; add them, or give rates.{_rate_key(missing[0])}"
                )
        return self

    def given_rate(self, phase: str) -> float | None:
        return getattr(self.rates, _rate_key(phase)) if self.rates is not None else None

    def predicted_phases(self) -> list[str]:
        return [p for p in ("prefill", "decode") if self.given_rate(p) is None]

    def prediction_needs(self) -> list[str]:
        """The fields predicting a rate needs that the file lacks."""
        need = [k for k in ("model", "gpu") if getattr(self, k) is None]
        if self.serve is None:
            need.append("serve.input_len and serve.output_len (mean prompt and output tokens per request) or serve.workload")
        return need


def _rate_key(phase: str) -> str:
    return "prefill_input_tokens_per_s_per_node" if phase == "prefill" else "decode_output_tokens_per_s_per_node"


# --------------------------------------------------------------------------- loading


def fleet_dir() -> Path:
    return data_dir(FLEET_FOLDER)


def fleet_ids() -> dict[str, Path]:
    return yaml_files(fleet_dir())


def load_fleet_file(path: Path) -> Fleet:
    if is_dir(path):
        raise SpecError(f"{path}: is a directory; pass a fleet YAML file")
    fleet = validate(read_yaml(path), Fleet, path)
    # A model spec, config or folder and a GPU profile named by a relative path are read beside the fleet file, as a
    # plan's are (a shipped name, or a path from the working directory where nothing is there, stays as given).
    refs = {"model": beside(fleet.model, path, model=True) if fleet.model else None,
            "gpu": beside(fleet.gpu, path) if fleet.gpu else None}  # fmt: skip
    fleet = fleet.model_copy(update=refs)
    workload = fleet.serve.workload if fleet.serve is not None else None
    if workload is not None and Path(workload).suffix in (".yaml", ".yml") and not Path(workload).is_absolute():
        next_to = path.parent / workload
        if is_file(next_to):  # a workload file next to the fleet file, as a plan's files are read beside the plan
            serve = fleet.serve.model_copy(update={"workload": str(next_to)})
            fleet = fleet.model_copy(update={"serve": serve})
        elif not is_file(Path(workload)):
            raise SpecError(
                f"{path}: serve.workload {workload[:200]!r}: no such file beside the fleet file ({str(next_to)[:300]!r}) or "
                "in the working directory; give a path to a workload YAML or a shipped workload's name (costsim list "
                "workloads)"
            )
    return fleet


def load_fleet(fleet: str | Path) -> tuple[Fleet, Path, str]:
    """A shipped fleet by name, or a path to a fleet YAML. Returns the fleet, its file and how to name the file."""
    path = Path(fleet)
    text = str(fleet)
    if path.suffix in (".yaml", ".yml") and (os.path.exists(path) or "/" in text):  # os.path: no OSError on odd names
        return load_fleet_file(path), path, text
    ids = fleet_ids()
    key = text.strip().lower()
    if key not in ids:
        shipped = ", ".join(ids) or "none"
        raise SpecError(f"unknown fleet {text[:200]!r}; shipped fleets: {shipped}. Pass one of these names or a fleet YAML path.")
    return load_fleet_file(ids[key]), ids[key], f"{FLEET_FOLDER}/{key}.yaml"


def fleet_from_dict(raw: object, where: str = "fleet dict") -> Fleet:
    return validate(raw, Fleet, where)
