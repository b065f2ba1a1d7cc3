"""`costsim serve`: the cost of serving a model on a GPU, per million input, cached input and output tokens.

Prefill and decode are searched apart (disaggregated serving, as DeepSeek's inference system and most large
deployments run them) or on one layout (co-located, as the offline throughput benchmarks run them). The dollars
follow the common form (docs/model.md §16.9): $/M tokens = $/GPU-hour / (tokens/s per GPU x 3,600) x 1e6, with the
price of a GPU-hour chosen as `costsim estimate` chooses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from simulator.errors import InfeasibleError, InputError
from simulator.inputs.arguments import reference
from simulator.inputs.assumptions import DEFAULT, Assumptions
from simulator.inputs.catalog import gpus_with, load_hardware, load_model
from simulator.inputs.workload_file import Workload, load_workload
from simulator.model.comms import Fabric
from simulator.model.efficiency import calibrated_device, device_rates
from simulator.model.serve.decode import DECODE_STEP_OVERHEAD_S, ROUNDING_RELATIVE, Setup, kv_pool_bytes
from simulator.model.serve.kv_cache import kv_bytes_per_token
from simulator.model.serve.search import (
    MAX_STAGE_GPUS,
    POWERS_OF_TWO,
    DecodeSearch,
    Given,
    PrefillPoint,
    best_decode,
    best_per_layout,
    best_prefill,
    check_tp,
    eligible,
    prefill_layouts,
    prefill_points,
    search_decode,
)
from simulator.model.serve.workload import RequestLengths, fixed_request, windowed_positions, workload_lengths
from simulator.run.cost import CostOptions, pricing
from simulator.units import GIB, MEGA, MICRO, MILLI, NVFP4_BYTES_PER_ELEMENT, SECONDS_PER_HOUR
from simulator.vocab import KV_ADMISSIONS, KV_DTYPES, MAX_HOST_S_PER_SEQUENCE, MIN_KV_MEMORY_FRACTION, SERVE_PRECISIONS

PHASES = ("both", "prefill", "decode")
MAX_CACHE_HIT_RATE = 0.999
"""The largest cache-hit share a prefill is predicted for: at 1 it computes no token, so it has no computed rate."""
DEPLOYMENTS = ("disaggregated", "colocated")
PRECISIONS = SERVE_PRECISIONS
MAX_LEN = 10_000_000
MAX_MTP_DEPTH = 8


@dataclass(frozen=True)
class ServeRequest:
    """What `costsim serve` was asked, checked on creation."""

    model: str
    gpu: str
    input_len: int | None = None
    """Prompt tokens per request (DEFAULT_LEN when neither it nor a workload is given)."""
    output_len: int | None = None
    workload: str | None = None
    """A shipped workload (workloads/*.yaml) or a workload YAML: a distribution of request lengths in place of
    input_len and output_len (simulator/inputs/workload_file.py; docs/model.md §16.15)."""
    cache_hit_rate: float = 0.0
    phase: str = "both"
    deployment: str = "disaggregated"
    precision: str | None = None
    """bf16, fp8 or fp4 (NVFP4, model/number_formats.py); None: every one the GPU has tensor cores for is searched."""
    kv_dtype: str = "bf16"
    tp: int | None = None
    dp: int | None = None
    pp: int | None = None
    ep: int | None = None
    """Prefill expert parallelism (decode spreads experts over tp x dp)."""
    num_gpus: int | None = None
    batch_per_gpu: float | None = None
    """Decode sequences per GPU per micro-batch; below 1 when a TP group holds fewer sequences than GPUs."""
    max_batch_per_gpu: float | None = None
    """The engine's cap on decode sequences per GPU per micro-batch (e.g. its CUDA-graph batch, or DeepEP's
    low-latency dispatch buffer of 128 tokens per rank); None: the search goes as far as memory allows."""
    max_replica_sequences: float | None = None
    """A cap on the sequences of one attention replica (tp x batch), for a stated per-rank cap with TP searched."""
    mtp_depth: int = 0
    mtp_accept: float | None = None
    redundant_experts: int = 0
    two_batch_overlap: bool = True
    """Whether the engine may hide the MoE exchange under a second micro-batch (DeepSeek's dual micro-batch overlap,
    SGLang's --enable-two-batch-overlap); where it may, each candidate takes the faster of one and two micro-batches.
    False: an engine that does not overlap them (docs/model.md §16.5)."""
    kv_admission: str = "on-demand"
    """What a running sequence holds of the KV pool (vocab.KvAdmission): on-demand, the tokens it has (vLLM, SGLang);
    full-request, its prompt and whole output, reserved at admission (TensorRT-LLM's default scheduler)."""
    kv_memory_fraction: float = 1.0
    """Share of the memory left after weights, activations and the reserve that the engine gives its KV pool
    (TensorRT-LLM's free_gpu_memory_fraction: 0.9 by default there)."""
    host_s_per_sequence: float = 0.0
    """Engine host time per running sequence per decode step, overlapped with the GPU's step (the CLI's
    --host-us-per-sequence); 0: the ideal engine (docs/model.md §16.3)."""
    utilization: float = 1.0
    """Served / provisioned throughput: the GPUs are paid for whether busy or not, so $/M divides by it."""
    price_sheet: str | None = None
    """A shipped price sheet (prices/*.yaml) to set the list prices against the costs."""
    tpot_s: float | None = None
    """Latency target: time per output token (the CLI's --tpot-ms)."""
    ttft_s: float | None = None
    """Latency target: time to first token (the CLI's --ttft-ms)."""
    min_tokens_per_s_per_user: float | None = None
    calibration: str | None = None
    """A `costsim calibrate` file of --gpu (a CPU's with --gpu cpu): its measured rates, serving fits included, replace
    the profile's (docs/model.md §16.13)."""
    cost: CostOptions = field(default_factory=CostOptions)
    lengths: RequestLengths = field(init=False, repr=False, compare=False)
    """The lengths the model takes (simulator/model/serve/workload.py): the request's own, or its workload's."""
    workload_file: Workload | None = field(init=False, repr=False, compare=False)
    workload_name: str | None = field(init=False, repr=False, compare=False)
    """The workload's shipped name (normalised), or its path as given."""

    def __post_init__(self) -> None:
        lengths, loaded, name = _request_lengths(self.input_len, self.output_len, self.workload)
        object.__setattr__(self, "workload_name", name)
        if self.workload is None:  # the lengths given, or the defaults
            object.__setattr__(self, "input_len", int(lengths.mean_input_len))
            object.__setattr__(self, "output_len", int(lengths.mean_output_len))
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "workload_file", loaded)
        if self.batch_per_gpu is not None:
            _float_in("--batch-per-gpu", self.batch_per_gpu, 1e-3, 1_000_000)
        if self.max_batch_per_gpu is not None:
            _float_in("--max-batch-per-gpu", self.max_batch_per_gpu, 1e-3, 1_000_000)
            if self.batch_per_gpu is not None and self.batch_per_gpu > self.max_batch_per_gpu:
                raise InputError(
                    f"--batch-per-gpu {self.batch_per_gpu:g} is above --max-batch-per-gpu {self.max_batch_per_gpu:g}; "
                    "lower the batch or raise the cap"
                )
        if self.max_replica_sequences is not None:
            _float_in("max_replica_sequences", self.max_replica_sequences, 1e-3, 1_000_000)
        for name in ("tp", "dp", "pp", "ep", "num_gpus"):
            value = getattr(self, name)
            if value is not None:
                _int_in(f"--{name.replace('_', '-')}", value, 1, 1_000_000)
        _int_in("--mtp-depth", self.mtp_depth, 0, MAX_MTP_DEPTH)
        _int_in("--redundant-experts", self.redundant_experts, 0, 100_000)
        _float_in("--cache-hit-rate", self.cache_hit_rate, 0.0, MAX_CACHE_HIT_RATE)
        _float_in("--utilization", self.utilization, 0.01, 1.0)
        if self.mtp_accept is not None:
            _float_in("--mtp-accept", self.mtp_accept, 0.0, 0.999)
        if self.mtp_depth and self.mtp_accept is None:
            raise InputError(
                f"--mtp-depth {self.mtp_depth} needs --mtp-accept, the share of drafted tokens accepted (DeepSeek-V3 "
                "reports 0.85-0.90 for its MTP module)"
            )
        for name, flag, scale in (("tpot_s", "--tpot-ms", MILLI), ("ttft_s", "--ttft-ms", MILLI),
                                  ("min_tokens_per_s_per_user", "--min-tokens-per-s-per-user", 1.0)):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                _float_in(flag, value / scale if isinstance(value, (int, float)) else value, 1e-3, 1e7)
        if self.tpot_s is not None and self.min_tokens_per_s_per_user is not None:
            raise InputError("give --tpot-ms or --min-tokens-per-s-per-user, not both (one is 1,000 / the other)")
        if self.mtp_accept is not None and not self.mtp_depth:
            raise InputError(
                "--mtp-accept is given but --mtp-depth is 0; give --mtp-depth (draft tokens per step) or drop --mtp-accept"
            )
        _choice("--phase", self.phase, PHASES)
        if self.phase == "prefill":
            decode_only = [flag for name, flag in DECODE_ONLY_FIELDS.items()
                           if getattr(self, name) not in (None, 0, FLAG_DEFAULTS.get(name))]  # fmt: skip
            if decode_only:
                raise InputError(
                    f"{', '.join(decode_only)} set the decode and --phase prefill runs none; use --phase both or decode, "
                    "or drop them"
                    + ("; a prefill's attention groups follow from --ep and --tp (EP = TP x DP)" if "--dp" in decode_only else "")
                )
        if self.phase == "decode":
            prefill_only = [flag for name, flag in PREFILL_ONLY_FIELDS.items() if getattr(self, name) not in (None, 0)]
            if self.deployment == "colocated":  # co-location places a prefill on the decode GPUs
                prefill_only.append("--deployment colocated")
            if prefill_only:
                raise InputError(
                    f"{', '.join(prefill_only)} set the prefill and --phase decode runs none; use --phase both or prefill, "
                    "or drop them"
                )
        _choice("--deployment", self.deployment, DEPLOYMENTS)
        if self.phase == "prefill" and self.deployment == "colocated":
            raise InputError(
                "--deployment colocated prefills on the decode layout, and --phase prefill runs no decode: use --phase "
                "both for a co-located deployment, or drop --deployment colocated for a prefill deployment of its own"
            )
        if not isinstance(self.two_batch_overlap, bool):
            raise InputError(
                f"two_batch_overlap must be true or false, not {self.two_batch_overlap!r}; "
                "use --two-batch-overlap or --no-two-batch-overlap"
            )
        _choice("--kv-dtype", self.kv_dtype, KV_DTYPES)
        _choice("--kv-admission", self.kv_admission, KV_ADMISSIONS)
        _float_in("--kv-memory-fraction", self.kv_memory_fraction, MIN_KV_MEMORY_FRACTION, 1.0)
        _check_host_time(self.host_s_per_sequence)
        if self.precision is not None:
            _choice("--precision", self.precision, PRECISIONS)

    @property
    def min_user_speed(self) -> float | None:
        if self.tpot_s is not None:
            return 1.0 / self.tpot_s
        return self.min_tokens_per_s_per_user


DEFAULT_LEN = 1024
"""Prompt and output tokens of a request when neither they nor a workload are given."""


def _request_lengths(input_len, output_len, workload) -> tuple[RequestLengths, Workload | None, str | None]:
    """The request's lengths: --input-len / --output-len (DEFAULT_LEN where left out), or a workload's, not both."""
    if workload is None:
        input_len = DEFAULT_LEN if input_len is None else input_len
        output_len = DEFAULT_LEN if output_len is None else output_len
        _int_in("--input-len", input_len, 1, MAX_LEN)
        _int_in("--output-len", output_len, 1, MAX_LEN)
        return fixed_request(input_len, output_len), None, None
    given = [flag for flag, v in (("--input-len", input_len), ("--output-len", output_len)) if v is not None]
    if given:
        raise InputError(
            f"--workload {str(workload)[:200]} gives the request lengths, and {' and '.join(given)} too; give a workload (a "
            "distribution of lengths) or --input-len / --output-len (one request's), not both"
        )
    loaded, name = load_workload(reference("--workload", workload, "a workload name or a workload YAML path"))
    return workload_lengths(loaded), loaded, name


DECODE_ONLY_FIELDS = {
    "tpot_s": "--tpot-ms", "min_tokens_per_s_per_user": "--min-tokens-per-s-per-user", "batch_per_gpu": "--batch-per-gpu",
    "max_batch_per_gpu": "--max-batch-per-gpu", "max_replica_sequences": "max_replica_sequences",
    "mtp_depth": "--mtp-depth", "mtp_accept": "--mtp-accept", "dp": "--dp", "num_gpus": "--num-gpus",
    "kv_admission": "--kv-admission", "host_s_per_sequence": "--host-us-per-sequence",
}  # fmt: skip
"""ServeRequest fields that set the decode only, with their flags: a prefill-only request refuses them, and a fleet
that predicts only the prefill drops them."""
PREFILL_ONLY_FIELDS = {"ttft_s": "--ttft-ms", "ep": "--ep", "cache_hit_rate": "--cache-hit-rate"}
"""ServeRequest fields that set the prefill only: a decode-only request refuses them, and a fleet that predicts only
the decode drops them."""


def _int_in(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise InputError(f"{name} {value!r} must be an integer between {low:,} and {high:,}")


def _float_in(name: str, value, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        raise InputError(f"{name} {value!r} must be a number between {low:g} and {high:g}")


def _check_host_time(host_s) -> None:
    """The engine's host time per sequence, in seconds (the CLI's --host-us-per-sequence x 1e-6); the message gives
    both units, since the API takes seconds and the CLI microseconds."""
    number = isinstance(host_s, (int, float)) and not isinstance(host_s, bool) and math.isfinite(host_s)
    if number and 0.0 <= host_s <= MAX_HOST_S_PER_SEQUENCE:
        return
    shown = f"{host_s:g} s ({host_s / MICRO:,.6g} us)" if number else repr(host_s)
    raise InputError(
        f"host time per sequence (--host-us-per-sequence, host_s_per_sequence) {shown} must be a number between 0 and "
        f"{MAX_HOST_S_PER_SEQUENCE / MICRO:,.0f} us ({MAX_HOST_S_PER_SEQUENCE:g} s); give it in microseconds on the "
        "command line and in seconds to the API (TensorRT-LLM's PyTorch backend: about 29 us, 2.94e-05 s)"
    )


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{name} {value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class ServeEstimate:
    request: ServeRequest
    setup: Setup
    decode: DecodeSearch | None
    decode_index: int | None
    prefill: PrefillPoint | None
    usd_per_gpu_hour: float
    price: dict
    candidates_evaluated: int

    def to_dict(self) -> dict:
        return serve_document(self)


FLAG_DEFAULTS = {"kv_dtype": "bf16", "redundant_experts": 0, "mtp_depth": 0, "two_batch_overlap": True,
                 "kv_admission": "on-demand", "kv_memory_fraction": 1.0, "host_s_per_sequence": 0.0}  # fmt: skip
"""ServeRequest options a printed command leaves out at these values (the CLI's defaults)."""


def serve_flags(options: dict) -> list[str]:
    """`costsim serve` flags for ServeRequest keyword options, as a command another reader can run: defaults and
    None left out, switches as --name / --no-name, latency targets in the CLI's milliseconds."""
    words: list[str] = []
    for key, value in options.items():
        if value is None or value == FLAG_DEFAULTS.get(key, object()):
            continue
        if isinstance(value, bool):
            words.append(f"--{'' if value else 'no-'}{key.replace('_', '-')}")
            continue
        if key in ("tpot_s", "ttft_s"):
            key, value = key.removesuffix("_s") + "_ms", value / MILLI
        if key == "host_s_per_sequence":
            key, value = "host_us_per_sequence", value / MICRO
        words += [f"--{key.replace('_', '-')}", f"{value:g}" if isinstance(value, float) else str(value)]
    return words


def request_precisions(req: ServeRequest, hw) -> tuple[str, ...]:
    if req.precision is not None:
        if not hw.has_dtype(req.precision):
            have = [p for p in PRECISIONS if hw.has_dtype(p)]
            raise InputError(
                f"{hw.name} has no {req.precision.upper()} tensor cores; use --precision {have[-1]} (it has "
                f"{', '.join(have)}) or a GPU with {req.precision.upper()} ({gpus_with(req.precision)})"
            )
        return (req.precision,)
    return tuple(p for p in PRECISIONS if hw.has_dtype(p))


def _check_context(model, context: int, prefill_only: bool = False, workload: str | None = None) -> None:
    """A request longer than the model's ModelSpec.served_positions. Training only notes a learned table's
    (sanity.learned_positions_note), since a longer context can be trained; a served model has the context it has (a
    fuzzer priced DeepSeek-V3 at a 1,000,000-token prompt)."""
    table = model.served_positions
    if table is None or context <= table:
        return
    given = "--input-len" if prefill_only else "--input-len + --output-len"
    if workload is not None:
        given = f"the longest {'prompt' if prefill_only else 'request'} of --workload {str(workload)[:200]}"
    if model.position_embedding == "learned":
        raise InputError(
            f"{given} is {context:,} tokens, longer than {model.name}'s learned position table of {table:,} positions; "
            f"give at most {table:,} tokens in all"
        )
    raise InputError(
        f"{given} is {context:,} tokens, longer than {model.name}'s context of {table:,} tokens (max_position_embeddings "
        f"in its spec, as its config.json states); give at most {table:,} tokens in all, or a spec whose "
        "max_position_embeddings states the longer context a RoPE rescaling gives"
    )


def setup_for(req: ServeRequest, assumptions: Assumptions = DEFAULT) -> Setup:
    model = load_model(req.model)
    if req.calibration is not None:  # for_generation below changes no rate, so the order does not matter
        hw, rates = calibrated_device(req.gpu, req.calibration, assumptions, serving=True)
    else:
        hw = load_hardware(req.gpu)
        rates = device_rates(hw, assumptions)
    if req.kv_dtype == "fp8" and not hw.has_dtype("fp8"):
        raise InputError(f"{hw.name} has no FP8 support for --kv-dtype fp8; use --kv-dtype bf16")
    if req.redundant_experts and model.moe is None:
        raise InputError(f"--redundant-experts applies to MoE models; {model.name} is dense")
    if req.redundant_experts > MAX_STAGE_GPUS:
        raise InputError(
            f"--redundant-experts {req.redundant_experts:,} is more copies than the {MAX_STAGE_GPUS:,} GPUs a decode stage "
            f"may hold; give at most {MAX_STAGE_GPUS:,} (DeepSeek-V3's decode runs 32 beside its 256 experts)"
        )

    if req.ep is not None and (model.moe is None or model.moe.n_routed_experts % req.ep):
        what = "is dense (no experts to spread)" if model.moe is None else f"has {model.moe.n_routed_experts} routed experts"
        raise InputError(f"--ep {req.ep} does not divide the experts: {model.name} {what}; give a divisor or leave --ep out")
    if req.deployment == "colocated" and req.phase == "both" and req.ep is not None:  # (a dense model is refused above)
        raise InputError(
            f"--ep {req.ep} sets a prefill deployment's own expert parallelism, and --deployment colocated prefills "
            "on the decode layout, whose experts spread over its tp x dp GPUs; give --dp (and --tp) to set that "
            "layout, or use --deployment disaggregated for a prefill of its own"
        )
    check_tp(model, req.tp)  # before the --ep / --tp check below, which assumes a --tp that divides the heads
    if req.ep is not None and req.ep > 1 and req.tp is not None and req.ep % req.tp:
        raise InputError(
            f"--ep {req.ep} is not a multiple of --tp {req.tp}: a prefill's experts spread over its attention groups' "
            f"GPUs (EP = TP x DP); give an --ep that --tp divides, or leave one of them out"
        )
    if req.pp is not None and req.pp > model.n_layers:
        raise InputError(f"--pp {req.pp} is more pipeline stages than {model.name}'s {model.n_layers} layers; give at most "
                         f"{model.n_layers}")  # fmt: skip
    if req.mtp_depth and not model.mtp_depth:
        raise InputError(f"--mtp-depth needs MTP modules in the model; {model.name} has none (mtp_depth 0 in its spec)")
    n = req.lengths
    _check_context(model, round(n.max_input_len if req.phase == "prefill" else n.max_context_len), req.phase == "prefill",
                   req.workload)  # fmt: skip
    assumptions = assumptions.for_generation(hw.generation)
    window = None
    if model.sliding_window is not None and req.workload_file is not None:  # the window's average over every request
        window = windowed_positions(req.workload_file.points(), float(model.sliding_window))
    # The decode's lengths; the prefill takes its own (prefill_setup). One request's are its own in both.
    reserve = _tokens(n.prefill_input_len) if req.deployment == "colocated" and req.phase == "both" else 0
    return Setup(model, hw, rates, assumptions, _tokens(n.decode_input_len), _tokens(n.decode_output_len), req.kv_dtype,
                 req.mtp_depth, req.mtp_accept or 0.0, req.redundant_experts, req.two_batch_overlap, req.kv_admission,
                 req.kv_memory_fraction, req.host_s_per_sequence, window, prefill_reserve_tokens=reserve)  # fmt: skip


def _tokens(length: float) -> int:
    """An effective length as whole tokens (the serving model takes whole tokens; a workload's effective lengths are
    weighted means, so rounding moves them by at most half a token)."""
    return max(1, round(length))


def prefill_setup(s: Setup, lengths: RequestLengths) -> Setup:
    """The prefill's Setup: prompts at the token-weighted length (simulator/model/serve/workload.py)."""
    return replace(s, input_len=_tokens(lengths.prefill_input_len))


def serve(req: ServeRequest, assumptions: Assumptions = DEFAULT) -> ServeEstimate:
    s = setup_for(req, assumptions)
    if req.price_sheet is not None:
        _price_sheet(req.price_sheet)  # an unknown sheet fails before the search
    precisions = request_precisions(req, s.hw)
    price = pricing(s.hw, req.cost)
    given = Given(req.tp, req.dp, req.pp, req.batch_per_gpu, req.num_gpus, req.max_batch_per_gpu, req.max_replica_sequences,
                  whole_sequences=True)  # fmt: skip
    decode, index, evaluated = None, None, 0
    if req.phase in ("both", "decode"):
        decode = search_decode(s, given, precisions)
        index = best_decode(decode, req.min_user_speed)
        evaluated += len(decode.candidates)
    prefill = None
    if held_by_prefill(req, s):
        index, prefill = _colocated_pick(req, s, precisions, decode, index)
    elif req.phase in ("both", "prefill"):
        prefill = _prefill(req, s, precisions, decode, index)
    return ServeEstimate(req, s, decode, index, prefill, price.usd_per_gpu_hour, price.block(1.0), evaluated)


COLOCATED_SHORTLIST = 32
"""Decode layouts (each at its best batch) a co-located MoE deployment prices with its prefill (§16.7): the fastest
by decode throughput that meet the latency targets, half of them overall and half without attention DP (whose
prefill holds nothing). Each costs a prefill search (about 3 ms)."""


COLOCATED_PICK_ASSUMPTION = {
    "name": "colocated_layout",
    "value": f"the most output tokens/s per GPU with prefill among {COLOCATED_SHORTLIST} decode layouts (more, "
    f"{COLOCATED_SHORTLIST} at a time, until one meets --ttft-ms)",
    "source": "docs/model.md §16.7: a co-located MoE deployment's prompts hold its attention-DP stage, so the decode "
    "layout is chosen for the service (per_request, hold included), not for decode throughput alone",
}


def held_by_prefill(req: ServeRequest, s: Setup) -> bool:
    """A co-located MoE deployment with both phases: its prefills hold the stage (colocated_prefill_hold)."""
    return req.deployment == "colocated" and req.phase == "both" and s.model.moe is not None


def _colocated_pick(req: ServeRequest, s: Setup, precisions, decode: DecodeSearch, index: int) -> tuple[int, PrefillPoint]:
    """The decode layout of a co-located MoE deployment and its prefill: among the COLOCATED_SHORTLIST layouts with the
    most decode throughput that fit and meet the latency targets (`index`, best_decode's, always among them), the one
    that serves the most output tokens per second per GPU with its prompts' prefill and the stage hold included
    (per_request). Decode throughput alone picks wide attention DP, where each prompt holds the whole stage: DeepSeek-V3
    on B200 at 73 tokens/s per user took DP 1,024 and served 7.8 output tokens/s per GPU (a review)."""
    c, per_gpu = decode.candidates, decode.tokens_per_s_per_gpu
    ranked = best_per_layout(decode, eligible(decode, req.min_user_speed))
    # Half of the fastest overall, half of the fastest without attention DP (no hold: a slower decode may serve more).
    half = COLOCATED_SHORTLIST // 2
    no_dp = [i for i in ranked if c.dp[i] == 1][:half]
    shortlist = list(dict.fromkeys([index, *ranked[:half], *no_dp]))
    taken = set(shortlist)
    rest = [i for i in ranked if i not in taken]
    hbm = s.hw.memory_bytes
    best: tuple[float, int, PrefillPoint] | None = None
    quickest: PrefillPoint | None = None  # the shortest TTFT of any prefill that fits, for a refusal
    while True:
        for i in shortlist:
            points = [p for p in _prefill_points(req, s, precisions, decode, i) if p.memory_bytes <= hbm]
            if not points:  # this layout's prefill does not fit
                continue
            fastest = min(points, key=lambda p: p.ttft_s)
            quickest = fastest if quickest is None or fastest.ttft_s < quickest.ttft_s else quickest
            if req.ttft_s is not None and fastest.ttft_s > req.ttft_s:
                continue
            p = best_prefill(points, hbm, req.ttft_s, s.kv_dtype)
            served = per_request(req, s, p, float(per_gpu[i]), 1.0, _hold_at(req, s, decode, i))["output_tokens_per_s_per_gpu"]
            if best is None or served > best[0] * (1.0 + ROUNDING_RELATIVE):
                best = (served, i, p)
        if best is not None or not rest:
            break
        # None of these serves (a --ttft-ms no prefill on them meets, or no prefill fits): the next layouts, as many.
        shortlist, rest = rest[:COLOCATED_SHORTLIST], rest[COLOCATED_SHORTLIST:]
    if best is not None:
        return best[1], best[2]
    if quickest is None:  # no layout's prefill fits: the decode-best's refusal names the parts
        return index, _prefill(req, s, precisions, decode, index)
    finding = (
        f"no co-located layout's prefill reaches TTFT {req.ttft_s / MILLI:.3g} ms on the {len(ranked):,} decode layouts "
        f"that meet the decode targets; the quickest ({quickest.layout_text}, "
        f"{quickest.sequences} prompt(s) per TP group per pass) gives {quickest.ttft_s / MILLI:.3g} ms"
    )
    raise InfeasibleError(f"{finding}; relax --ttft-ms, shorten --input-len, or use --deployment disaggregated", finding)


def _prefill(req: ServeRequest, s: Setup, precisions, decode: DecodeSearch | None, index: int | None) -> PrefillPoint:
    """Prefill on the decode layout when co-located (its TP, its attention-DP groups as EP, its PP); else its own
    search over TP, EP (divisors of the experts), PP and precision."""
    points = _prefill_points(req, s, precisions, decode, index)
    return best_prefill(points, s.hw.memory_bytes, req.ttft_s, s.kv_dtype)


def _prefill_points(
    req: ServeRequest, s: Setup, precisions, decode: DecodeSearch | None, index: int | None
) -> list[PrefillPoint]:
    """The prefill layouts and batches _prefill chooses among; co-located, each with the memory of the decode GPU it
    shares (sharing_the_decode_gpu)."""
    model, domain = s.model, s.hw.domain_gpus
    if req.deployment == "colocated" and decode is not None and index is not None:
        c = decode.candidates
        # The decode's layout: its experts over the stage's tp x dp GPUs (decode.weight_bytes_per_gpu), so EP = TP x DP.
        layouts: tuple[tuple[int, int | None], ...] = ((int(c.tp[index]), int(c.dp[index])),)
        pps, precisions = (int(c.pp[index]),), (str(c.precision[index]),)
    else:  # (setup_for checked --tp against the heads)
        tps = (req.tp,) if req.tp else tuple(t for t in POWERS_OF_TWO if t <= domain and model.n_heads % t == 0)
        layouts = prefill_layouts(model, tps, req.ep)
        pps = (req.pp,) if req.pp else tuple(p for p in (1, 2, 4, 8) if p <= model.n_layers)
    transfer = s.hw.scale_out_bytes_per_s if req.deployment == "disaggregated" else None
    points = prefill_points(prefill_setup(s, req.lengths), layouts, precisions, req.cache_hit_rate, transfer, pps)
    if req.deployment == "colocated" and decode is not None and index is not None:
        return [sharing_the_decode_gpu(p, decode, index, s.assumptions.memory_reserved_bytes) for p in points]  # §16.7
    return points


def sharing_the_decode_gpu(p: PrefillPoint, decode: DecodeSearch, i: int, reserved_bytes: float) -> PrefillPoint:
    """A co-located prefill's memory is the decode GPU's: its weights and KV pool (which the prompts' cache joins) and,
    as the pass's workspace and the decode's activations take turns, the larger of the two. An engine sizes its KV
    pool after setting the prefill's activations aside (Setup.prefill_reserve_tokens), so a prefill whose workspace
    does not fit beside the decode's pool does not run there (a review found a DeepSeek-V3 decode at 78.3 GiB of 80
    beside a prefill needing 2.9 GiB more)."""
    decode_activations, weights = float(decode.memory["activations"][i]), float(decode.memory["weights"][i])
    activations = max(decode_activations, p.workspace_bytes)
    shared = float(decode.hbm_needed_bytes[i]) - decode_activations + activations
    return replace(p, memory_bytes=shared, weight_bytes=weights, workspace_bytes=activations,
                   kv_bytes=shared - weights - activations - reserved_bytes)  # fmt: skip


# ------------------------------------------------------------------ the document


def _layout(c, i: int, moe: bool) -> dict:
    out = {"tp": int(c.tp[i]), "dp": int(c.dp[i]), "pp": int(c.pp[i])}
    out["ep"] = int(c.stage_gpus[i]) if moe else 1
    out["gpus"] = int(c.gpus[i])
    out["precision"] = str(c.precision[i])
    return out


def _memory_shown(f: DecodeSearch, i: int) -> dict[str, float]:
    """GiB per GPU by component; with a KV pool of less than the free memory, the share it leaves unused, so that the
    total is what the candidate needs of HBM (decode.hbm_needed_bytes)."""
    out = {k: float(v[i]) / GIB for k, v in f.memory.items() if k != "total"}
    if f.setup.kv_memory_fraction < 1:
        kv = float(f.memory["kv_cache"][i])
        out["kv_pool_unused"] = (kv_pool_bytes(f.setup, kv) - kv) / GIB
    out["total"] = float(f.hbm_needed_bytes[i]) / GIB
    return out


def _prefill_memory_shown(p: PrefillPoint, s: Setup) -> dict[str, float]:
    """A prefill GPU's memory by component, GiB, as the decode's (_memory_shown): the KV cache (the pass's, or
    co-located the decode's it joins, sharing_the_decode_gpu), and with a pool of less than the free memory the share
    it leaves unused."""
    cache = p.kv_bytes * s.kv_memory_fraction  # kv_bytes is the pool: the cache / the fraction (kv_pool_bytes)
    parts = {"weights": p.weight_bytes, "kv_cache": cache, "activations": p.workspace_bytes,
             "reserved": s.assumptions.memory_reserved_bytes}  # fmt: skip
    if s.kv_memory_fraction < 1:
        parts["kv_pool_unused"] = p.kv_bytes - cache
    return {k: v / GIB for k, v in parts.items()} | {"total": p.memory_bytes / GIB}


def _count(x: float) -> int | float:
    return int(x) if x == int(x) else x


def _usd_per_million(usd_per_gpu_hour: float, tokens_per_s_per_gpu: float, utilization: float = 1.0) -> float:
    return usd_per_gpu_hour / (tokens_per_s_per_gpu * utilization * SECONDS_PER_HOUR) * MEGA


def cached_token_s_per_gpu(s: Setup, prefill: PrefillPoint) -> float:
    """GPU-seconds of one cache-hit token: loading its KV from storage over the GPU's network link (DeepSeek's 3FS
    reads its KV cache over the cluster network), or computing it where that is cheaper (a small model's KV can take
    longer to fetch than to recompute, and an engine would recompute it), at the prefill's computed-token rate."""
    load_s = kv_bytes_per_token(s.model, s.kv_dtype) / s.hw.scale_out_bytes_per_s
    return min(load_s, 1.0 / prefill.computed_tokens_per_s_per_gpu)


def serve_document(e: ServeEstimate) -> dict:
    s, req = e.setup, e.request
    d: dict = {"model": s.model.name, "gpu": s.hw.name}
    d["request"] = {"input_len": _count(req.lengths.mean_input_len), "output_len": _count(req.lengths.mean_output_len),
                    "workload": workload_document(req, s), "cache_hit_rate": req.cache_hit_rate,
                    "phase": req.phase, "deployment": req.deployment, "kv_dtype": req.kv_dtype,
                    "mtp_depth": req.mtp_depth, "mtp_accept": req.mtp_accept,
                    "two_batch_overlap": req.two_batch_overlap, "kv_admission": req.kv_admission,
                    "kv_memory_fraction": req.kv_memory_fraction, "host_s_per_sequence": req.host_s_per_sequence,
                    "min_tokens_per_s_per_user": req.min_user_speed, "ttft_s": req.ttft_s}  # fmt: skip
    d["kv_cache_bytes_per_token"] = kv_bytes_per_token(s.model, s.kv_dtype)
    rate = e.usd_per_gpu_hour
    held = _prefill_hold(e)
    if e.prefill is not None:
        p = e.prefill
        d["prefill"] = {
            "input_tokens_per_s_per_gpu": p.input_tokens_per_s_per_gpu,
            "computed_tokens_per_s_per_gpu": p.computed_tokens_per_s_per_gpu,
            "uncached_tokens_per_s_per_gpu": p.uncached_tokens_per_s_per_gpu,
            "cached_token_gpu_s": cached_token_s_per_gpu(s, p),
            "ttft_s": p.ttft_s,
            "prompts_per_pass": p.prompts_per_pass,
            "layout": {"tp": p.tp, "dp": p.dp, "pp": p.pp, "ep": p.ep, "gpus": p.gpus, "precision": p.precision},
            "breakdown_s": {k: float(v) for k, v in p.by_component_s.items()},
            "memory_per_gpu_gib": _prefill_memory_shown(p, s),
        }
        d["prefill"]["gpu_time_held_per_prefill"] = held
        # A co-located prompt holds the stage for `held` of its own prefill times (colocated_prefill_hold), so its
        # uncached tokens cost that much more than the pass's rate, as per_request charges them.
        d["usd_per_million_input_tokens"] = _usd_per_million(rate, p.uncached_tokens_per_s_per_gpu / held, req.utilization)
        d["usd_per_million_cached_input_tokens"] = rate / SECONDS_PER_HOUR * cached_token_s_per_gpu(s, p) * MEGA / req.utilization
    if e.decode is not None and e.decode_index is not None:
        f, i = e.decode, e.decode_index
        step = {k: float(v[i]) for k, v in f.step.items()}
        total = step.pop("total")
        micro_batches = int(step.pop("micro_batches"))
        d["decode"] = {
            "output_tokens_per_s_per_gpu": float(f.tokens_per_s_per_gpu[i]),
            "tokens_per_s_per_user": float(f.tokens_per_s_per_user[i]),
            "tpot_s": 1.0 / float(f.tokens_per_s_per_user[i]),
            "batch_per_gpu": _count(float(f.candidates.batch[i])),
            "stage_time_s": total,
            "micro_batches": micro_batches,
            "layout": _layout(f.candidates, i, s.model.moe is not None),
            "breakdown_s": step,
        }
        d["memory_per_gpu_gib"] = _memory_shown(f, i)
        d["usd_per_million_output_tokens"] = _usd_per_million(rate, float(f.tokens_per_s_per_gpu[i]), req.utilization)
        d["curve"] = f.curve(i)
    if "prefill" in d and "decode" in d:
        f, i = e.decode, e.decode_index
        d["per_request"] = per_request(req, s, e.prefill, float(f.tokens_per_s_per_gpu[i]), rate, held)
    d["utilization"] = req.utilization
    if req.price_sheet is not None:
        d["list_prices"] = list_price_margins(d, req.price_sheet)
    d["usd_per_gpu_hour"] = rate
    d["price"] = e.price
    d["candidates_evaluated"] = e.candidates_evaluated
    d["assumptions"] = serve_assumptions(s, _chosen_precisions(d))
    if held_by_prefill(req, s):
        d["assumptions"].append(COLOCATED_PICK_ASSUMPTION)
    return d


def workload_document(req: ServeRequest, s: Setup) -> dict | None:
    """A workload request's lengths: where they come from, and the means and effective lengths the model took
    (input_len and output_len of the request are the means); under a sliding window, the window-capped positions a
    decode step reads per sequence. None for one request's lengths."""
    w = req.workload_file
    if w is None:
        return None
    window = s.model.sliding_window
    return (
        {"name": req.workload_name, "display_name": w.display_name, "source": w.source}
        | req.lengths.to_dict()
        | {"sliding_window": window, "decode_window_positions": s.read_positions if window is not None else None}
    )


def _chosen_precisions(d: dict) -> set[str]:
    return {d[phase]["layout"]["precision"] for phase in ("prefill", "decode") if phase in d}


def _prefill_hold(e: ServeEstimate) -> float:
    """GPU time a prompt's prefill holds over its own: colocated_prefill_hold at the chosen decode layout for a
    co-located MoE deployment with both phases; 1 otherwise (dense DP replicas do not wait on each other)."""
    if not held_by_prefill(e.request, e.setup) or e.decode is None or e.decode_index is None:
        return 1.0
    return _hold_at(e.request, e.setup, e.decode, e.decode_index)


def _hold_at(req: ServeRequest, s: Setup, decode: DecodeSearch, i: int) -> float:
    """colocated_prefill_hold at decode candidate `i`: its attention-DP groups, each admitting its sequences x tokens
    per step / output length prompts a step."""
    c = decode.candidates
    groups, sequences = float(c.dp[i]), float(c.tp[i] * c.batch[i])
    return colocated_prefill_hold(groups, sequences * s.tokens_per_step / req.lengths.mean_output_len)


def colocated_prefill_hold(dp_groups: float, admissions_per_group_step: float) -> float:
    """GPU time a co-located prompt's prefill holds, over the time it computes (docs/model.md §16.7).

    With attention DP, in-flight batching admits a new prompt into a DP group whenever one of its sequences finishes,
    and that group prefills it in the next step while the other groups decode; the MoE layers' exchange makes every
    group of the stage wait for the slowest, so the step lasts as long as the prefill on all of them ('the iteration
    time is dominated by the slowest rank', NVIDIA/TensorRT-LLM docs/source/blogs/tech_blog/blog10_ADP_Balance_
    Strategy.md, which measured 35% of the throughput lost to it on 8 GPUs with attention DP 8: 25,664 against
    39,552 tokens/s balanced). A group admits `p` prompts per step (its sequences x tokens per step / output length);
    with groups admitting independently (assumption: no coordinated scheduler, the baseline of that blog), a step
    holds a prefill with probability 1 - (1 - p)^dp, so each prompt holds the stage for (1 - (1 - p)^dp) / p prompt
    prefill times instead of one: dp when prompts are rare (each prefills alone), 1 when every group prefills every
    step. 1 without attention DP."""
    if dp_groups <= 1:  # no other group to stall (the formula's 1 up to float noise)
        return 1.0
    p = min(max(admissions_per_group_step, 1e-9), 1.0)
    return (1.0 - (1.0 - p) ** dp_groups) / p


def per_request(req: ServeRequest, s: Setup, prefill: PrefillPoint, output_tokens_per_s_per_gpu: float,
                usd_per_gpu_hour: float, prefill_hold: float = 1.0) -> dict:  # fmt: skip
    """GPU-seconds and dollars of one request: prefill of its computed tokens, loading its cache hits, decode; at
    the utilization given, as the $/M figures are. The throughputs are of the busy GPUs, what offline
    max-throughput benchmarks report (their GPUs run both phases). `prefill_hold`: GPU time a co-located prefill
    holds per unit of its own (colocated_prefill_hold)."""
    input_len, output_len = req.lengths.mean_input_len, req.lengths.mean_output_len
    prefill_s = prefill_hold * input_len / prefill.input_tokens_per_s_per_gpu
    cached_s = input_len * req.cache_hit_rate * cached_token_s_per_gpu(s, prefill)
    decode_s = output_len / output_tokens_per_s_per_gpu
    gpu_s = prefill_s + cached_s + decode_s
    return {
        "gpu_s": gpu_s,
        "prefill_gpu_s": prefill_s,
        "cached_input_gpu_s": cached_s,
        "decode_gpu_s": decode_s,
        "usd": usd_per_gpu_hour / SECONDS_PER_HOUR * gpu_s / req.utilization,
        "output_tokens_per_s_per_gpu": output_len / gpu_s,
        "total_tokens_per_s_per_gpu": (input_len + output_len) / gpu_s,
    }


def _price_sheet(sheet_id: str):
    """The sheet, its model_spec checked (a bad one is named with the sheet's file before the search, as claim does)."""
    from simulator.inputs.serving_cases import check_sheet_model, price_sheet

    sheet = price_sheet(sheet_id, "--price-sheet", "Name one of them, or leave --price-sheet out")
    if sheet.model_spec is not None:
        check_sheet_model(sheet_id, sheet)
    return sheet


def _sheet_model_flag(sheet, served: str) -> str | None:
    """Where the sheet prices another architecture than the one served: the margin then sets one model's price
    against another's cost (None: the same model, or a sheet that names none)."""
    if sheet.model_spec is None:
        return f"the sheet names no architecture for {sheet.model}; its margin assumes it is {served}"
    priced = load_model(sheet.model_spec).name
    if priced == served:
        return None
    return f"the sheet prices {sheet.model} ({priced}), not {served}: the margin sets one model's price against another's cost"


def list_price_margins(d: dict, sheet_id: str) -> dict:
    """The price sheet's list prices against the modelled costs per token kind: margin = price / cost - 1 (the
    'cost profit margin' DeepSeek published for its serving day). Only the kinds both sides have."""
    from simulator.inputs.serving_cases import PRICE_KEYS

    sheet = _price_sheet(sheet_id)
    out: dict = {"sheet": sheet_id, "model": sheet.model, "provider": sheet.provider, "date": sheet.date,
                 "source": sheet.source, "by_kind": {}, "flag": _sheet_model_flag(sheet, d["model"])}  # fmt: skip
    for kind, key in PRICE_KEYS.items():
        price, cost = getattr(sheet, key), d.get(key)
        if price is None or cost is None:
            continue
        margin = price / cost - 1.0 if cost > 0 else None  # a GPU-hour priced at 0 has no margin to speak of
        out["by_kind"][kind] = {"list_usd_per_million": price, "cost_usd_per_million": cost, "margin": margin}
    return out


FP4_FORMATS = {
    "name": "fp4_formats",
    "value": f"linear layers in NVFP4 ({NVFP4_BYTES_PER_ELEMENT} B per element with its block scale, weights and "
    f"inputs); MLA attention projections and MTP modules in FP8; routers and the LM head in BF16; FP4 GEMMs at the "
    f"profile's FP4 peak x efficiency.gemm_best.fp4",
    "source": "TensorRT Model Optimizer NVFP4_DEFAULT_CFG and examples/deepseek/ptq.py (model/number_formats.py); "
    "the accuracy of a quantized checkpoint is not modelled",
}


def _all_reduce_floor_assumption(fabric: Fabric) -> list[dict]:
    """The measured all-reduce tables a TP group across nodes is held to, where the profile has them (§4.2)."""
    if not fabric.all_reduce_floors:
        return []
    shapes = ", ".join(f"{f.domains} x {f.ranks_per_domain}" for f in fabric.all_reduce_floors)
    return [
        {
            "name": "all_reduce_across_nodes",
            "value": f"at least the measured time of {shapes} ranks (nodes x GPUs)",
            "source": "hardware profile efficiency.all_reduce_measured, nccl-tests tables (docs/model.md §4.2)",
        }
    ]


def serve_assumptions(s: Setup, precisions: set[str] = frozenset()) -> list[dict]:
    """Every modelling assumption the numbers rest on, with its value and where it comes from; `precisions`: those of
    the chosen deployments (fp4 adds which GEMMs it puts where)."""
    a, r = s.assumptions, s.rates
    return ([FP4_FORMATS] if "fp4" in precisions else []) + [
        {"name": "rates", "value": r.source, "source": "costsim calibrate (--calibration)" if r.source.startswith("calibration ")
         else "hardware profile efficiencies (costsim list gpus)"},
        {"name": "gemm_sustain", "value": a.gemm_sustain, "source": "fitted to published training throughput (costsim fit)"},
        {"name": "hbm_bytes_per_s", "value": r.hbm_bytes_per_s, "source": "profile bandwidth x efficiency.hbm"},
        {"name": "moe_imbalance", "value": a.moe_imbalance, "source": "assumption (busiest EP rank / mean)"},
    ] + _all_reduce_floor_assumption(r.fabric) + [
        {"name": "decode_step_overhead_s", "value": DECODE_STEP_OVERHEAD_S,
         "source": "vllm-project/vllm#10634 (residual engine time per step with asynchronous scheduling)"},
        {"name": "mean_context", "value": s.read_positions, "source": "input + output / 2 (continuous batching): the KV "
         "each decode step reads per sequence; with --workload, the output-weighted prompt plus half the length-biased "
         "output (request.workload, docs/model.md §16.15); under a sliding window, the window-capped positions averaged "
         "over each request's decode"},
        {"name": "kv_admission", "value": s.kv_admission,
         "source": "--kv-admission full-request: each running sequence reserves input + output positions of the pool "
         "(TensorRT-LLM GUARANTEED_NO_EVICT)" if s.kv_admission == "full-request"
         else "--kv-admission on-demand (default): each running sequence holds its mean context (paged, preemptive: "
         "vLLM, SGLang)"},
        {"name": "kv_memory_fraction", "value": s.kv_memory_fraction,
         "source": "--kv-memory-fraction: the KV pool's share of the memory left after weights, activations and the "
         "reserve (the rest unused: memory_per_gpu_gib.kv_pool_unused)"},
        {"name": "host_s_per_sequence", "value": s.host_s_per_sequence,
         "source": "--host-us-per-sequence: the engine's host time per running sequence per decode step; a step lasts "
         "the longer of it and the GPU's (decode breakdown host_exposed)" if s.host_s_per_sequence
         else "--host-us-per-sequence 0 (default): an engine whose host work hides under the GPU at any batch"},
        {"name": "two_batch_overlap", "value": s.ep_overlap,
         "source": "--two-batch-overlap (default): the faster of one and two micro-batches per candidate"
         if s.ep_overlap else "--no-two-batch-overlap: the engine does not overlap the MoE exchange"},
        {"name": "utilization", "value": "--utilization", "source": "served / provisioned throughput, given (default 1)"},
        {"name": "memory_reserved_bytes", "value": a.memory_reserved_bytes, "source": "as training (docs/model.md §3.5)"},
        {"name": "cached_token_load", "value": "KV bytes / scale-out bandwidth per GPU",
         "source": "assumption: hits are read from a networked KV store (DeepSeek 3FS)"},
    ]  # fmt: skip
