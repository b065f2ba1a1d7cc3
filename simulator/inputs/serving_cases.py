"""Published serving and RL post-training figures, and dated API price sheets: the data `costsim serve`, an RL plan
stage and the price claims are checked against (validation/serving.yaml, validation/rl.yaml, prices/*.yaml).

Each file is read with the project's strict YAML loader (inputs.files) and every entry validated by a closed schema:
unknown keys are refused, numbers are bounded, and the enumerations (metric, phase, precision, KV dtype) are
closed. A bad file stops with one SpecError line naming the file, the case and the field.

The records hold what the sources state, with the arithmetic of any conversion (`derivation`) and every value the
source does not give (`assumptions`); nothing here predicts anything.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

from simulator.errors import CostsimError, InputError, SpecError
from simulator.inputs.catalog import load_hardware
from simulator.inputs.data_files import prices_dir, validation_dir
from simulator.inputs.files import read_yaml, validate
from simulator.inputs.specs import prose
from simulator.vocab import (
    MAX_HOST_US_PER_SEQUENCE,
    MIN_KV_MEMORY_FRACTION,
    Fp8Recipe,
    KvAdmission,
    Recompute,
    Schedule,
    ServePrecision,
)
from simulator.vocab import KvDtype as VocabKvDtype

MAX_GPUS = 1_000_000
MAX_TOKENS = 10_000_000
"""Longest input, output or context a case may state (10M tokens)."""
MAX_RATE = 1e9
"""Largest reported value of any metric (tokens/s, seconds, hours, dollars)."""
MAX_USD_PER_MILLION = 10_000.0
MIN_USD_PER_MILLION = 0.0001
"""Lowest list price a price sheet may state, $ per million tokens (a hundredth of a cent). Stated, not sourced: it
is 350x below the lowest price the shipped sheets quote ($0.035/M, DeepSeek's off-peak cached input), and a price
per token written where a price per million belongs ($0.55e-6 for $0.55/M) falls under it. With MAX_USD_PER_MILLION
it bounds every list-price ratio to 1e8, so no ratio is 0, inf or a ZeroDivisionError."""

ID = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$", min_length=3, max_length=100)]
Text = Annotated[str, Field(min_length=3, max_length=4000), AfterValidator(prose)]
Count = Annotated[int, Field(ge=1, le=MAX_GPUS)]
Tokens = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
MemoryFraction = Annotated[float, Field(ge=MIN_KV_MEMORY_FRACTION, le=1.0)]
"""A KV pool's share of the memory left after weights, activations and the reserve."""
MtpDepth = Annotated[int, Field(ge=0, le=64)]
HostMicroseconds = Annotated[float, Field(ge=0.0, le=MAX_HOST_US_PER_SEQUENCE)]
"""An engine's host time per running sequence per decode step, microseconds."""
ListPrice = Annotated[float, Field(strict=True, allow_inf_nan=False, le=MAX_USD_PER_MILLION)]
"""A price sheet's $ per million tokens: a number (true or "60" is refused, as plan files refuse them), at least
MIN_USD_PER_MILLION (checked by _check_list_price, whose message names the field and the likely slip)."""
DateText = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$")]
"""An ISO date, or a month (YYYY-MM) where the source gives no day."""

Precision = ServePrecision
"""Weights and GEMMs: bf16 | fp8 | fp4 (NVFP4 on Blackwell: the linear layers, MLA attention and MTP in FP8; docs/model.md
§16.14)."""
KvDtype = VocabKvDtype
"""KV-cache element type; FP16 caches are recorded as bf16 (2 bytes, the same size)."""
Phase = Literal["both", "prefill", "decode"]
"""both: prefill and decode on the same GPUs (offline max throughput, MLPerf); prefill / decode: the rate of a
disaggregated phase's GPUs."""
ServingMetric = Literal[
    "output_tokens_per_s_per_gpu",
    "input_tokens_per_s_per_gpu",
    "total_tokens_per_s_per_gpu",
    "tokens_per_s_per_user",
    "ttft_s",
    "tpot_s",
]
RLMetric = Literal["step_time_s", "tokens_per_s_per_gpu", "gpu_hours", "wall_hours", "generation_share"]
Evidence = Literal["primary", "secondary"]
"""primary: the quote was read in the original source; secondary: in a transcription, mirror or press report."""

SERVING_UNITS = {
    "output_tokens_per_s_per_gpu": "output tokens/s per GPU",
    "input_tokens_per_s_per_gpu": "input tokens/s per GPU",
    "total_tokens_per_s_per_gpu": "input + output tokens/s per GPU",
    "tokens_per_s_per_user": "output tokens/s per sequence",
    "ttft_s": "s to first token",
    "tpot_s": "s per output token",
}
RL_UNITS = {
    "step_time_s": "s per RL step",
    "tokens_per_s_per_gpu": "tokens/s per GPU",
    "gpu_hours": "GPU-hours",
    "wall_hours": "hours of wall clock",
    "generation_share": "share of time in rollout generation",
}


class _Record(BaseModel):
    # strict, as plans and specs: a count is an integer (a fuzzer's `pp: true` was read as PP 1) and a flag true/false;
    # no number is inf or NaN
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=(), strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- serving cases


class ServingLayout(_Record):
    """Only the layout fields the source states; the rest are searched by a predictor."""

    tp: Count | None = None
    ep: Count | None = None
    dp: Count | None = None
    pp: Count | None = None
    attention_dp: bool | None = None
    """Data-parallel attention (each GPU holds whole KV for its own sequences), as DeepSeek, SGLang and TRT-LLM run
    MLA."""


class Slo(_Record):
    """Latency limits the measurement ran under (MLPerf server scenario)."""

    ttft_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    tpot_s: Annotated[float, Field(gt=0, le=60)] | None = None


class _PublishedFigure(_Record):
    """What every published figure of validation/serving.yaml and rl.yaml carries: where it comes from and what it
    reports (the metric, with its own vocabulary, is the subclass's)."""

    id: ID
    source: Text
    quote: Text
    evidence: Evidence
    reported: Annotated[float, Field(gt=0, le=MAX_RATE)]
    derivation: Text | None = None
    """The arithmetic from the quoted figure to `reported`, when they differ (per node or per system -> per GPU)."""
    assumptions: list[Text] = []
    why: Text


class ServingCase(_PublishedFigure):
    model: Annotated[str, Field(min_length=1, max_length=200)]
    """A shipped model spec (costsim list models)."""
    gpu: Annotated[str, Field(min_length=1, max_length=200)]
    """A shipped hardware profile id or alias (costsim list gpus)."""
    num_gpus: Count | None
    """GPUs of the measured deployment; None where the source does not say (the case is then not predictable)."""
    precision: Precision
    kv_dtype: KvDtype
    input_len: Tokens | None
    """Prompt tokens per request (None: not stated)."""
    output_len: Tokens | None
    """Generated tokens per request (None: not stated)."""
    kv_len_mean: Tokens | None = None
    """Mean KV-cache length per generated token, where the source states it (DeepSeek's production day)."""
    cache_hit_rate: Share = 0.0
    """Share of input tokens served from a prefix / on-disk KV cache."""
    phase: Phase
    layout: ServingLayout = ServingLayout()
    concurrency: Count | None = None
    """Sequences in flight over the whole deployment, where stated."""
    max_batch_per_rank: Count | None = None
    """The engine's per-rank batch cap, where stated (TRT-LLM --max_batch_size)."""
    redundant_experts: Annotated[int, Field(ge=0, le=100_000)] = 0
    """Extra expert replicas per stage, where the deployment states them (SGLang --ep-num-redundant-experts)."""
    mtp_depth: MtpDepth | None = 0
    """Speculative (MTP) tokens per step; None where the source does not say whether MTP ran."""
    mtp_accept: Share | None = None
    two_batch_overlap: StrictBool = True
    """False where the source's engine did not overlap the MoE exchange with a second micro-batch (stated in
    `assumptions`); True: the model takes the faster of one and two micro-batches, as DeepSeek and SGLang run."""
    kv_admission: KvAdmission = "on-demand"
    """full-request where the engine reserves a request's prompt and whole output at admission (TensorRT-LLM's default
    capacity scheduler); on-demand where pages are taken as tokens come (vLLM, SGLang). Matters only where the batch
    is set by memory, not by a stated concurrency."""
    kv_memory_fraction: MemoryFraction = 1.0
    """The KV pool's share of the memory left after weights, activations and the reserve, where the source sets or states it
    (TensorRT-LLM --kv_cache_free_gpu_mem_fraction)."""
    host_us_per_sequence: HostMicroseconds = 0.0
    """The engine's host time per running sequence per decode step, microseconds, where a measurement of that engine
    gives it (stated in `assumptions`); 0: hidden under the GPU at any batch."""
    slo: Slo | None = None
    metric: ServingMetric

    @model_validator(mode="after")
    def _consistent(self) -> ServingCase:
        if self.metric == "input_tokens_per_s_per_gpu" and self.phase == "decode":
            raise ValueError("metric input_tokens_per_s_per_gpu is a prefill rate; use phase prefill or both")
        if self.metric in ("output_tokens_per_s_per_gpu", "tpot_s") and self.phase == "prefill":
            raise ValueError(f"metric {self.metric} is a decode rate; use phase decode or both")
        if self.mtp_accept is not None and not self.mtp_depth:
            raise ValueError("mtp_accept is given but mtp_depth is 0 or unknown; give the MTP depth or remove mtp_accept")
        return self

    @property
    def unit(self) -> str:
        return SERVING_UNITS[self.metric]

    @property
    def predictable(self) -> bool:
        """The deployment is stated well enough for a model of one deployment: the GPU count and the lengths the
        metric depends on (prompt and output; a prefill rate the prompt; a decode rate the prompt or mean context)."""
        if self.num_gpus is None:
            return False
        if self.phase == "prefill":
            return self.input_len is not None
        if self.phase == "decode":
            return self.input_len is not None or self.kv_len_mean is not None
        return self.input_len is not None and self.output_len is not None


# --------------------------------------------------------------------------- RL cases


class GenerationLayout(_Record):
    tp: Count | None = None
    pp: Count | None = None
    ep: Count | None = None
    max_sequences_per_engine: Count | None = None
    """vLLM max_num_seqs where the recipe sets it: the engine's cap on sequences in flight."""


class TrainingLayout(_Record):
    """The parallel degrees a source states, and the settings its recipe fixes (recompute: Megatron's
    activation_checkpointing true is full recomputation; schedule 1f1b where no virtual stages are set; the
    distributed optimizer is ZeRO-1); fields left out are searched."""

    tp: Count | None = None
    cp: Count | None = None
    ep: Count | None = None
    pp: Count | None = None
    vpp: Count | None = None
    recompute: Recompute | None = None
    schedule: Schedule | None = None
    micro_batch_size: Count | None = None
    zero_stage: Annotated[int, Field(ge=0, le=3)] | None = None


TRAINING_DEGREES = ("tp", "cp", "ep", "pp", "vpp")
"""The parallel degrees of a TrainingLayout (what a search replaces when the stated ones break a layout rule)."""


class LengthCap(_Record):
    """The response-length cap from a step on (DeepSeek-R1-Zero: 32,768, then 65,536 from step 8,200)."""

    from_step: Annotated[int, Field(ge=0, le=10_000_000)]
    max_response_len: Tokens


class ReportedPhases(_Record):
    """Seconds of one RL step by phase, where the source breaks the step down (NeMo-RL v0.3's GRPO table: policy
    training, refit, generation, get logprobs)."""

    generation_s: Annotated[float, Field(gt=0, le=MAX_RATE)]
    training_s: Annotated[float, Field(gt=0, le=MAX_RATE)]
    logprob_s: Annotated[float, Field(gt=0, le=MAX_RATE)]
    refit_s: Annotated[float, Field(gt=0, le=MAX_RATE)]


class RLCase(_PublishedFigure):
    stage: Text
    """What the figure covers: one RL step of a benchmark, a whole RL stage, a data-generation stage."""
    model: Annotated[str, Field(min_length=1, max_length=200)]
    gpu: Annotated[str, Field(min_length=1, max_length=200)]
    num_gpus: Count | None
    algorithm: Literal["grpo", "ppo", "dapo", "sft-data-generation"]
    policy: Literal["on_policy", "one_step_off_policy"] | None = None
    colocated: bool | None = None
    """Generation and training share the GPUs (True), or generation runs on generation_gpus of its own (False)."""
    generation_gpus: Count | None = None
    offload_optimizer_for_logprob: bool = False
    """The trainer moves its optimizer states to host memory before the log-prob passes and back before training, every
    step, as NeMo RL's Megatron worker did on the r0.4.0 branch (RLStage.offload_optimizer_for_logprob)."""
    generation_memory_fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    """The generation engine's share of GPU memory where the recipe sets it (vLLM gpu_memory_utilization); None: the
    release's default (rl_validation.NEMO_MEMORY_FRACTION)."""
    in_target: bool = True
    """Whether the figure is one the issue's target counts (the NeMo RL v0.4 rows of issue 12); later releases of the same
    benchmark are predicted and reported beside it."""
    precision_train: Precision | None = None
    fp8_recipe: Fp8Recipe | None = None
    """The FP8 training recipe where precision_train is fp8 (Megatron fp8_recipe: blockwise is costsim's block)."""
    precision_generation: Precision | None = None
    """Weights and GEMMs of the rollout engine (fp4: NVFP4, docs/model.md §16.14)."""
    prompts_per_step: Count | None = None
    samples_per_prompt: Count | None = None
    generation_batch: Count | None = None
    """Responses generated per step (prompts x samples; NeMo RL's G-GBS)."""
    train_global_batch: Count | None = None
    """Sequences per optimizer step (NeMo RL's T-GBS)."""
    steps: Count | None = None
    max_seq_len: Tokens | None = None
    """Longest prompt + response trained on (NeMo RL's T-Max Sequence Length)."""
    response_cap_schedule: list[LengthCap] | None = None
    mean_generation_seq_len: Annotated[float, Field(gt=0, le=MAX_TOKENS)] | None = None
    """The source's average generated sequence length per step (NeMo RL's 'G-Average Seq len')."""
    generation_layout: GenerationLayout | None = None
    training_layout: TrainingLayout | None = None
    metric: RLMetric
    reported_phases: ReportedPhases | None = None
    """The step's seconds by phase where the source gives them; such a case is on the phase-breakdown track (outside
    the target), its phases predicted and compared one by one."""
    training_backend: Literal["megatron", "dtensor"] = "megatron"
    """NeMo RL's training backend: Megatron-Core (modelled, NEMO_RL_TRAINING_STACK) or DTensor (PyTorch FSDP2 with
    tensor and sequence parallelism; no costsim stack models it, so such a row is listed, not predicted)."""

    @model_validator(mode="after")
    def _consistent(self) -> RLCase:
        if self.reported_phases is not None and (self.metric != "step_time_s" or self.in_target):
            raise ValueError("reported_phases is a breakdown of a step time outside the target: use metric step_time_s "
                             "and in_target false")  # fmt: skip
        if self.metric == "generation_share" and self.reported > 1:
            raise ValueError(f"generation_share is a share in (0, 1], got {self.reported}")
        if self.generation_gpus is not None and self.num_gpus is not None and self.generation_gpus > self.num_gpus:
            raise ValueError(f"generation_gpus = {self.generation_gpus} exceeds num_gpus = {self.num_gpus}")
        if self.colocated is False and self.generation_gpus is None and self.metric == "step_time_s":
            raise ValueError("colocated is false but generation_gpus is not given: state how many GPUs generate")
        if self.response_cap_schedule is not None:
            steps = [c.from_step for c in self.response_cap_schedule]
            if steps != sorted(set(steps)):
                raise ValueError("response_cap_schedule: from_step must increase")
        return self

    @property
    def unit(self) -> str:
        return RL_UNITS[self.metric]


# --------------------------------------------------------------------------- price sheets


class OffPeak(_Record):
    window_utc: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")]
    usd_per_million_input_tokens: ListPrice
    usd_per_million_cached_input_tokens: ListPrice | None = None
    usd_per_million_output_tokens: ListPrice

    @model_validator(mode="after")
    def _consistent(self) -> OffPeak:
        check_prices(self)
        return self


class PriceSheet(_Record):
    model: Annotated[str, Field(min_length=1, max_length=200)]
    """The provider's model name (API id)."""
    model_spec: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """The shipped model spec of the architecture served, where there is one."""
    provider: Annotated[str, Field(min_length=1, max_length=200)]
    date: DateText
    """When the source stated these prices (YYYY-MM-DD, or YYYY-MM where it gives no day)."""
    valid_from: DateText | None = None
    valid_until: DateText | None = None
    source: Text
    quote: Text
    evidence: Evidence
    usd_per_million_input_tokens: ListPrice
    """Input tokens that miss the cache (the list input price)."""
    usd_per_million_cached_input_tokens: ListPrice | None
    usd_per_million_output_tokens: ListPrice
    """Output tokens, reasoning tokens included where the provider bills them as output."""
    off_peak: OffPeak | None = None
    notes: Text

    @model_validator(mode="after")
    def _consistent(self) -> PriceSheet:
        spans = {name: _date_span(name, getattr(self, name)) for name in ("date", "valid_from", "valid_until")}
        # The latest day a source can date its prices: today in UTC, a day ahead for time zones east of it (UTC+14).
        today = datetime.datetime.now(datetime.UTC).date()
        if spans["date"][0] > today + datetime.timedelta(days=1):
            raise ValueError(
                f"date {self.date} is after today ({today.isoformat()} UTC, a day ahead allowed for the source's time "
                "zone); a sheet records prices a source has already stated: give the day the source stated them"
            )
        for start in ("valid_from", "date"):
            if spans[start] is not None and spans["valid_until"] is not None and spans["valid_until"][1] < spans[start][0]:
                raise ValueError(
                    f"valid_until {self.valid_until} is before {start} {getattr(self, start)}; a sheet is in force "
                    f"from its {start} until valid_until: fix whichever date is mistyped"
                )
        check_prices(self)
        return self


def check_prices(prices) -> None:
    """Every list price at least MIN_USD_PER_MILLION, and the cache-hit price at most the cache-miss one (the error's
    location names the block: the sheet, its off_peak, or a fleet file's inline prices): anything with the three
    usd_per_million_* fields."""
    for key in ("usd_per_million_input_tokens", "usd_per_million_cached_input_tokens", "usd_per_million_output_tokens"):
        value = getattr(prices, key)
        if value is not None and value < MIN_USD_PER_MILLION:
            raise ValueError(
                f"{key} {value!r} is below ${MIN_USD_PER_MILLION:g} per million tokens, the lowest list price a sheet "
                "may state (no published price is near it, and below it list-price ratios run off towards 0 or "
                "infinity); give dollars per million tokens: a price per token times 1,000,000 (0.55 for $0.00000055 "
                "a token)"
            )
    cached, missed = prices.usd_per_million_cached_input_tokens, prices.usd_per_million_input_tokens
    if cached is not None and cached > missed:
        raise ValueError(
            f"the cached input price {cached} is above the input price {missed}; usd_per_million_input_tokens is the "
            "cache-miss price, usd_per_million_cached_input_tokens the cache-hit price"
        )


def _date_span(name: str, text: str | None) -> tuple[datetime.date, datetime.date] | None:
    """The first and last day a date names (a month: its first and last day); ValueError if not a calendar date."""
    if text is None:
        return None
    try:
        first = datetime.date.fromisoformat(text if len(text) == 10 else f"{text}-01")
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a calendar date (YYYY-MM-DD or YYYY-MM)") from None
    if len(text) == 10:
        return first, first
    following = (first.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    return first, following - datetime.timedelta(days=1)


# --------------------------------------------------------------------------- loading


class ExcludedFigure(_Record):
    """A published figure the dataset leaves out, and why."""

    figure: Text
    source: Text
    reason: Text


class _Document(_Record):
    cases: Annotated[list[dict], Field(min_length=1)]
    excluded: list[ExcludedFigure] = []


def serving_path() -> Path:
    return validation_dir() / "serving.yaml"


def rl_path() -> Path:
    return validation_dir() / "rl.yaml"


def _unique_ids(cases: list, where: Path | str, fix: str = "ids must be unique") -> list:
    """`cases` unchanged, or SpecError naming the first id that appears twice."""
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise SpecError(f"{where}: case id {case.id!r} appears twice; {fix}")
        seen.add(case.id)
    return cases


def _cases(path: Path, schema: type[_Record]) -> tuple[list, list[ExcludedFigure]]:
    doc = validate(read_yaml(path), _Document, path)
    cases = [validate(entry, schema, f"{path}: case {entry.get('id', i)!r}") for i, entry in enumerate(doc.cases)]
    return _unique_ids(cases, path), list(doc.excluded)


def serving_cases(path: Path | None = None) -> list[ServingCase]:
    """Every case of validation/serving.yaml (or `path`), validated; ids unique."""
    return _cases(path or serving_path(), ServingCase)[0]


def rl_cases(path: Path | None = None) -> list[RLCase]:
    """Every case of validation/rl.yaml (or `path`), validated; ids unique."""
    return _cases(path or rl_path(), RLCase)[0]


def excluded_figures(path: Path) -> list[ExcludedFigure]:
    """The `excluded:` list of a case file: published figures left out, with the reason."""
    return _cases(path, ServingCase if path.name == "serving.yaml" else RLCase)[1]


# --------------------------------------------------------------------------- throughput grids


class GridColumn(_Record):
    """One column of a grid table: the GPU, the TP group it ran on (its GPU count) and the weight format."""

    gpu: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$", max_length=200)]
    """A shipped profile id or alias, lower-case (it becomes part of each cell's id)."""
    tp: Count
    precision: Precision


class ServingGrid(_Record):
    """One table of a throughput grid: its header and rows as the source prints them, a column per GPU."""

    id: ID
    table: Text
    header: Text
    model: Annotated[str, Field(min_length=1, max_length=200)]
    moe_command: StrictBool
    """Run with the source's MoE command (attention data parallelism over the TP group's GPUs)."""
    columns: Annotated[list[GridColumn], Field(min_length=1, max_length=64)]
    rows: Annotated[list[Text], Field(min_length=1, max_length=1000)]
    assumptions: list[Text] = []


class GridSettings(_Record):
    """The engine settings every cell of a grid ran with (stated or assumed in the file's `assumptions`)."""

    kv_dtype: KvDtype
    kv_admission: KvAdmission
    kv_memory_fraction: MemoryFraction
    two_batch_overlap: StrictBool
    mtp_depth: MtpDepth
    max_batch_per_rank: Count | None = None
    """The engine's cap on sequences per rank (a TP group, or a GPU under attention DP), where the benchmark sets one."""
    host_us_per_sequence: HostMicroseconds = 0.0


class _GridDocument(_Record):
    source: Text
    evidence: Evidence
    why: Text
    settings: GridSettings
    assumptions: list[Text] = []
    grids: Annotated[list[dict], Field(min_length=1)]
    excluded: list[ExcludedFigure] = []


GRID_LENGTHS_HEADER = "Sequence Length (ISL/OSL)"
"""The first header cell of a grid table (TensorRT-LLM perf-overview.md)."""
GRID_COLUMN_LABEL = re.compile(r"(?P<gpu>[A-Za-z0-9 -]+?)\s*<br/>\s*TP(?P<tp>[0-9]+)\s*\((?P<precision>[A-Za-z0-9]+)\)")
"""A grid column label, e.g. 'B200<br/>TP1 (FP4)'."""
GRID_FIGURE = re.compile(r"[0-9]{1,3}(,[0-9]{3})*")
"""A figure as the page prints it: thousands separated by commas (11,147)."""
GRID_LENGTHS = re.compile(r"([0-9]+)/([0-9]+)")


def serving_grid_path() -> Path:
    return validation_dir() / "serving_grid.yaml"


def markdown_cells(line: str) -> list[str]:
    """The cells of one markdown table line, stripped: '| a | b | |' -> ['a', 'b', '']; one pipe is taken off each
    end, so a blank last cell ('| a ||') stays a cell."""
    return [cell.strip() for cell in line.strip().removeprefix("|").removesuffix("|").split("|")]


def _grid_cell_value(text: str, where: str) -> float | None:
    """A cell's figure ('11,147' -> 11147.0), None where the source left it blank (not measured)."""
    if not text:
        return None
    if not GRID_FIGURE.fullmatch(text):
        raise SpecError(f"{where}: {text!r} is not a figure as the source prints it (digits in groups of three "
                        "separated by commas, e.g. 11,147); copy the cell again or leave it blank")  # fmt: skip
    value = float(text.replace(",", ""))
    if not 0 < value <= MAX_RATE:
        raise SpecError(f"{where}: {value:,.0f} is outside 1-{MAX_RATE:,.0f}; check the transcription")
    return value


def _check_grid_header(grid: ServingGrid, where: str) -> list[str]:
    """The header's column labels, each checked against its `columns` entry: the same GPU (by profile), TP and
    format (a guard against a swapped or mistyped column)."""
    cells = markdown_cells(grid.header)
    labels = cells[1:]
    if cells[0] != GRID_LENGTHS_HEADER or len(labels) != len(grid.columns):
        raise SpecError(f"{where}: the header should be {GRID_LENGTHS_HEADER!r} and one label per `columns` entry "
                        f"({len(grid.columns)}); it has {cells[0]!r} and {len(labels)} labels")  # fmt: skip
    for label, col in zip(labels, grid.columns, strict=True):
        m = GRID_COLUMN_LABEL.fullmatch(label)
        if m is None:
            raise SpecError(f"{where}: header column {label!r} is not 'GPU<br/>TPn (FORMAT)'")
        said = (load_hardware(m["gpu"].strip().lower()).name, int(m["tp"]), m["precision"].lower())
        if said != (load_hardware(col.gpu).name, col.tp, col.precision):
            raise SpecError(f"{where}: header column {label!r} says {said[0]} TP{said[1]} {said[2]}, its `columns` "
                            f"entry {col.gpu} TP{col.tp} {col.precision}; make them agree")  # fmt: skip
    return labels


def _grid_cases(grid: ServingGrid, doc: _GridDocument, where: str) -> list[ServingCase]:
    labels = _check_grid_header(grid, where)
    cases = []
    for line in grid.rows:
        cells = markdown_cells(line)
        row_where = f"{where}, row {line!r}"
        if len(cells) != len(grid.columns) + 1:
            raise SpecError(f"{row_where}: {len(cells) - 1} figures for {len(grid.columns)} columns; a row has one "
                            "cell per column, blank where the source has none")  # fmt: skip
        lengths = GRID_LENGTHS.fullmatch(cells[0])
        if lengths is None:
            raise SpecError(f"{row_where}: the first cell {cells[0]!r} is not ISL/OSL (e.g. 1000/2000)")
        isl, osl = int(lengths[1]), int(lengths[2])
        for label, col, text in zip(labels, grid.columns, cells[1:], strict=True):
            cell_where = f"{row_where}, column {label!r}"
            group_tokens_per_s = _grid_cell_value(text, cell_where)
            if group_tokens_per_s is None:
                continue
            per_gpu = group_tokens_per_s / col.tp
            layout = {"tp": col.tp, "attention_dp": True} if grid.moe_command else {"tp": col.tp}
            raw = {
                "id": f"{grid.id}-{col.gpu}-tp{col.tp}-{col.precision}-{isl}-{osl}",
                "source": f"{doc.source}, '{grid.table}' table, row {isl}/{osl}, column {label.replace('<br/>', ' ')}",
                "quote": f"{grid.header} ... {line}",
                "evidence": doc.evidence,
                "model": grid.model,
                "gpu": col.gpu,
                "num_gpus": col.tp,
                "precision": col.precision,
                "input_len": isl,
                "output_len": osl,
                "phase": "both",
                "layout": layout,
                "metric": "output_tokens_per_s_per_gpu",
                "reported": per_gpu,
                "derivation": (f"{text} total output tokens/s of the TP{col.tp} group / {col.tp} GPUs = {per_gpu:,.4g}"
                               if col.tp > 1 else None),
                "assumptions": [*doc.assumptions, *grid.assumptions],
                "why": doc.why,
                **doc.settings.model_dump(),
            }  # fmt: skip
            cases.append(validate(raw, ServingCase, cell_where))
    return cases


def _grid_document(path: Path) -> _GridDocument:
    return validate(read_yaml(path), _GridDocument, path)


def serving_grid_cases(path: Path | None = None) -> list[ServingCase]:
    """Every measured cell of validation/serving_grid.yaml (or `path`) as a serving case: the tables' headers and rows
    parsed as the source prints them, the file's settings and assumptions applied; ids unique. A malformed file is
    refused with one SpecError naming the table, row and cell."""
    path = path or serving_grid_path()
    doc = _grid_document(path)
    cases: list[ServingCase] = []
    for i, entry in enumerate(doc.grids):
        where = f"{path}: grid {entry.get('id', i)!r}"
        cases += _grid_cases(validate(entry, ServingGrid, where), doc, where)
    fix = "each table needs a unique id, each column a distinct GPU, TP and format, each row a distinct ISL/OSL"
    return _unique_ids(cases, path, fix)


def grid_excluded_figures(path: Path | None = None) -> list[ExcludedFigure]:
    """The grid file's `excluded:` list: tables of the source left out, with the reason."""
    return list(_grid_document(path or serving_grid_path()).excluded)


def load_price_sheet(path: Path) -> PriceSheet:
    return validate(read_yaml(path), PriceSheet, path)


def price_sheets(directory: Path | None = None) -> dict[str, PriceSheet]:
    """Every prices/*.yaml, by file stem (e.g. deepseek-reasoner-2025-01)."""
    directory = directory or prices_dir()
    sheets = {path.stem: load_price_sheet(path) for path in sorted(directory.glob("*.yaml"))}
    if not sheets:
        raise SpecError(f"{directory}: no price sheets (*.yaml) found")
    return sheets


def price_sheet(sheet_id: str, named_by: str, fix: str, error: type[CostsimError] = InputError) -> PriceSheet:
    """A shipped sheet by id; an unknown id is one `error` naming `named_by` (the flag or field), the shipped sheets
    and `fix`."""
    sheets = price_sheets()
    if sheet_id not in sheets:
        raise error(f"{named_by} {sheet_id!r} is not a price sheet in prices/; the sheets are {', '.join(sheets)}. {fix}")
    return sheets[sheet_id]


PRICE_KEYS = {
    "input": "usd_per_million_input_tokens",
    "cached_input": "usd_per_million_cached_input_tokens",
    "output": "usd_per_million_output_tokens",
}
"""Token kind -> the price field of a sheet (and of a serve document's costs)."""


def sheet_prices(sheet: PriceSheet, off_peak: bool = False) -> dict[str, float]:
    """$/M by kind; a sheet without a cache-hit price bills hits at the input price; `off_peak`: its night prices
    where it has them (standard prices otherwise)."""
    src = sheet.off_peak if off_peak and sheet.off_peak is not None else sheet
    prices = {kind: getattr(src, key) for kind, key in PRICE_KEYS.items()}
    if prices["cached_input"] is None:
        prices["cached_input"] = prices["input"]
    return prices


def check_sheet_model(sheet_id: str, sheet: PriceSheet) -> None:
    """A sheet's model_spec loads, or one SpecError naming the sheet's file, the field and the fix."""
    from simulator.inputs.catalog import load_model, model_ids, suggest

    where, spec = prices_dir() / f"{sheet_id}.yaml", sheet.model_spec
    leave_out = f"or leave model_spec out where {sheet.provider} has not published {sheet.model}'s architecture"
    ids = model_ids()
    if spec.strip().lower() not in ids and not spec.endswith((".yaml", ".yml", ".json")):
        raise SpecError(
            f"{where}: model_spec {spec!r} is not a shipped model spec.{suggest(spec.strip().lower(), list(ids))} "
            f"Name one that `costsim list models` lists (e.g. deepseek-v3), {leave_out}"
        )
    try:
        load_model(spec)
    except CostsimError as e:
        raise SpecError(f"{where}: model_spec {spec!r}: {e} Fix the spec, {leave_out}") from None
