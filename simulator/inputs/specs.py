"""Pydantic schemas and loaders for hardware profiles and model specs.

Units are converted here, on the way in: YAML keys carry datasheet units (`_tflop_per_s`,
`_gib`, `_gb_per_s`, `_gbit_per_s`); the properties below return SI base units.
Every number in a hardware profile carries its source: a key of the profile's `sources`
map, or the word `assumption` for a default that is not measured (calibration replaces it).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from simulator.errors import SpecError
from simulator.units import BITS_PER_BYTE, GIB, GIGA, MAX_GPUS, MAX_USD_PER_GPU_HOUR, MICRO, MIN_USD_PER_GPU_HOUR, TERA
from simulator.vocab import PEAK_DTYPES, PUBLISHED_LAYOUT_FIELDS, Fp8Recipe, PeakDtype, Schedule

ASSUMPTION = "assumption"


class _Spec(BaseModel):
    # strict: a count is an integer (not `true`, not 4.0, not "4"), a flag is true/false (not 1 or "yes"), a number is
    # a number (not "1e9"); no field is inf or NaN.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, strict=True, allow_inf_nan=False)


# Upper bounds of the counts a spec or profile may hold. Each is far above every real model or GPU (the largest
# shipped values are in the comments) yet small enough that no loop over layers, experts or modules, and no float
# conversion, runs long or overflows. A value past one is a typo or a hostile file.
MAX_LAYERS = 1000
"""Transformer layers (largest real: 126, Llama 3.1 405B; 118 in Megatron's 1T configuration)."""
MAX_WIDTH = 200_000
"""d_model and the MLA ranks (largest real d_model: 25,600, Megatron 1T)."""
MAX_FFN_WIDTH = 10_000_000
"""d_ff and expert widths (largest real: 73,728, PaLM 540B)."""
MAX_HEADS = 100_000
"""Attention heads and head_dim (largest real: 128 heads, 256 head_dim)."""
MAX_VOCAB = 2_000_000
"""Vocabulary (largest real: 262,144, Gemma 3)."""
MAX_EXPERTS = 1_000_000
"""Routed or shared experts (largest real: 256, DeepSeek-V3; 384, Kimi K2)."""
MAX_MTP_DEPTH = 64
"""Multi-token-prediction modules (DeepSeek-V3: 1)."""
MAX_POSITIONS = 100_000_000
"""max_position_embeddings and sliding windows (largest real: 10M, Llama 4 Scout)."""
MAX_SEQ_LEN = 10_000_000
"""default_seq_len: the command line's --seq-len limit."""
MAX_PARAMS = 1e15
"""Published parameter counts (largest real: about 2T)."""
MAX_NODE_GPUS = 1024
"""GPUs in one server (8 on HGX, 4 per GB200 tray)."""
MAX_CURVE_POINTS = 1000
"""Points of one efficiency-against-size curve (the shipped ones have under 20)."""
MAX_DOMAIN_GPUS = 1_000_000
"""GPUs on one scale-up fabric (72 on GB200 NVL72, 576 in NVIDIA's largest NVLink domain): MAX_GPUS."""


def _int(low: int, high: int):
    return Annotated[int, Field(ge=low, le=high)]


# --------------------------------------------------------------------------- hardware


class Sourced(_Spec):
    """A number with its source: a key of the profile's `sources`, or `assumption`."""

    value: Annotated[float, Field(ge=0)]
    source: str
    note: str | None = None


class DensePeaks(_Spec):
    """Dense tensor-core peaks in TFLOP/s (decimal), never the 2:4-sparse headline."""

    fp32: Sourced
    """Non-tensor FP32 (CUDA-core) peak."""
    tf32: Sourced | None = None
    bf16: Sourced
    bf16_native: bool = True
    """False where the tensor cores take no BF16 (Volta): `bf16` then holds the FP16 rate, and a bf16 run is modelled
    as 16-bit mixed precision in FP16 (with loss scaling), as frameworks run it there; estimates say so."""
    fp16: Sourced
    fp8: Sourced | None = None
    """Absent where the hardware has no FP8 tensor cores."""
    fp4: Sourced | None = None
    """NVFP4 (4-bit E2M1 with 16-element block scales); absent where the tensor cores have no FP4 (before Blackwell).
    Serving only: costsim serve --precision fp4."""


class ScaleUp(_Spec):
    """The intra-node (NVLink / xGMI / NVLink-switch) domain."""

    tech: str
    gb_per_s_per_direction: Sourced
    """Per-GPU link bandwidth in one direction, GB/s (H100: 450, half the 900 GB/s headline)."""
    domain_gpus: Sourced
    """GPUs that share this fabric (8 on HGX, 72 on GB200 NVL72)."""


class ScaleOut(_Spec):
    """The network between nodes."""

    tech: str
    gbit_per_s_per_gpu: Sourced
    """NIC line rate per GPU in one direction, Gbit/s as sold (400 for one NDR NIC)."""


class PriceQuote(_Spec):
    usd_per_gpu_hour: Annotated[float, Field(ge=MIN_USD_PER_GPU_HOUR, le=MAX_USD_PER_GPU_HOUR)]
    kind: Literal["on-demand", "reserved", "assumed"]
    date: str
    """YYYY-MM of the quote."""
    source: str


class Price(PriceQuote):
    """The default rental quote, and other quotes of another kind (e.g. on-demand beside reserved)."""

    alternatives: list[PriceQuote] = []

    def quote(self, kind: str | None) -> PriceQuote:
        """The quote of this kind (None: the default one)."""
        if kind is None or kind == self.kind:
            return self
        for q in self.alternatives:
            if q.kind == kind:
                return q
        kinds = ", ".join(sorted({self.kind, *(q.kind for q in self.alternatives)}))
        raise SpecError(f"this profile has no {kind} price (it has: {kinds}); pass --usd-per-gpu-hour or another --rental")


def _check_point_count(count: int, what: str, form: str) -> None:
    """Refuse a measured curve or table of fewer than two or more than MAX_CURVE_POINTS points."""
    if not 2 <= count <= MAX_CURVE_POINTS:
        raise ValueError(
            f"{what} needs at least two points and at most {MAX_CURVE_POINTS}, not {count}; give 2 to {MAX_CURVE_POINTS} "
            f"points ({form})"
        )


class ShapeCurve(_Spec):
    """Measured kernel efficiency against work per call, relative to the best-shape rate (docs/model.md §7.1, §7.7).

    Each point is FLOPs per call -> fraction of the best-shape rate at that size, with its source. The model
    interpolates in log FLOPs and clamps outside the measured range; the fractions are of the compute part of a
    call, the per-kernel cost (kernel_overhead_s) being charged apart, as calibrate/fit.py derives its curves."""

    points: dict[float, Sourced]

    @model_validator(mode="after")
    def _plausible(self) -> ShapeCurve:
        _check_point_count(len(self.points), "a shape curve", "FLOPs per call: fraction")
        for flops, frac in self.points.items():
            if not 0 < flops < math.inf or not 0 < frac.value <= 1:
                raise ValueError(
                    f"shape curve point {flops:g}: {frac.value} must be a fraction in (0, 1] at FLOPs > 0; give the "
                    "measured fraction of the best-shape rate (above 0, at most 1) at a positive FLOP count"
                )
        return self

    def as_curve(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(ln FLOPs ascending, fractions): the form DeviceRates interpolates."""
        pairs = sorted(self.points.items())
        return tuple(math.log(f) for f, _ in pairs), tuple(p.value for _, p in pairs)


MAX_COLLECTIVE_BYTES = 1e15
"""Message sizes of a measured collective table (nccl-tests stops at 16 GiB by default)."""
MAX_COLLECTIVE_US = 1e9
"""Times of a measured collective table (a 16 GiB all-reduce over a slow network takes seconds)."""


class MeasuredAllReduce(_Spec):
    """Published all-reduce times of one communicator shape (nccl-tests all_reduce_perf), a floor under the
    latency-plus-bandwidth formula (model/comms.py `all_reduce_floor_s`, docs/model.md §4.2).

    The communicator: `domains` scale-up domains (nodes) with `ranks_per_domain` ranks each. A group with at least as
    many domains and at least as many ranks in each takes at least this long, so the floor applies to it too."""

    domains: _int(1, MAX_GPUS)
    ranks_per_domain: _int(1, MAX_DOMAIN_GPUS)
    source: str
    note: str | None = None
    times_us: dict[float, float]
    """Message size in bytes (nccl-tests `size`, the whole array) -> time of one all-reduce in microseconds."""

    @model_validator(mode="after")
    def _plausible(self) -> MeasuredAllReduce:
        _check_point_count(len(self.times_us), "a measured all-reduce table", "bytes: microseconds")
        for size, us in self.times_us.items():
            if not (1 <= size <= MAX_COLLECTIVE_BYTES and 0 < us <= MAX_COLLECTIVE_US):
                raise ValueError(
                    f"measured all-reduce row {size:g} bytes: {us:g} us is out of range; give a size in [1, "
                    f"{MAX_COLLECTIVE_BYTES:g}] bytes and a time in (0, {MAX_COLLECTIVE_US:g}] microseconds"
                )
        return self

    def lower_envelope(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(sizes ascending, seconds): each size's time is the least measured at that size or any larger one. An
        all-reduce of fewer bytes is never slower than one of more, so a row above a larger row's time is the noise of
        a first call (nccl-tests prints such spikes, e.g. 77.7 us at 512 KiB before 71.9 us at 1 MiB), not a floor."""
        pairs = sorted(self.times_us.items())
        sizes = tuple(s for s, _ in pairs)
        times = [us * MICRO for _, us in pairs]
        for i in range(len(times) - 2, -1, -1):
            times[i] = min(times[i], times[i + 1])
        return sizes, tuple(times)


class EfficiencyDefaults(_Spec):
    """Efficiency terms used until a calibration file replaces them. Fractions in (0, 1]."""

    gemm_best: dict[PeakDtype, Sourced]
    """Best-shape matmul throughput / dense peak per dtype (MAMF from a microbenchmark, or an assumption)."""
    attention: Sourced
    """Flash-attention kernel throughput / BF16 dense peak, FA convention (bwd = 2.5 x fwd)."""
    hbm: Sourced
    """Achieved / nominal HBM bandwidth for large elementwise kernels."""
    scale_up_bus: Sourced
    """Achieved collective bus bandwidth / scale-up link rate."""
    scale_out_bus: Sourced
    """Achieved collective bus bandwidth / NIC line rate."""
    collective_latency_us: Sourced
    """Fixed latency per collective (alpha term), microseconds."""
    gemm_shape: dict[PeakDtype, ShapeCurve] = {}
    """Optional, per dtype: GEMM efficiency against FLOPs per call relative to gemm_best (published measurements)."""
    attention_shape: ShapeCurve | None = None
    """Optional: flash-attention forward efficiency against forward FLOPs per call relative to `attention`."""
    attention_kernels: dict[str, Sourced] = {}
    """Optional: throughput / BF16 dense peak (FA convention) of an older flash-attention kernel a software stack ran
    (stacks.yaml `attention_kernel`, e.g. fa2, triton-fa), where it was measured on this GPU; `attention` is today's."""
    decode_attention: Sourced | None = None
    """Optional: KV-cache bytes a decode-attention kernel reads per second / nominal HBM bandwidth, where a published
    benchmark measured it on this chip; None: the KV cache is read at `hbm` (docs/model.md §16.3)."""
    gemm_inner_overhead: Sourced | None = None
    """Optional: a GEMM's per-tile fixed cost in elements of its inner dimension K (model.efficiency
    .inner_dim_efficiency: rate ~ K / (K + overhead)), fitted to published large-output GEMMs by K."""
    all_reduce_measured: list[MeasuredAllReduce] = []
    """Optional: published all-reduce times by message size of communicators spanning domains (nodes), a floor under
    the formula where small and medium messages run below the large-message bus bandwidth (docs/model.md §4.2)."""

    def attention_for(self, kernel: str | None) -> Sourced:
        """The efficiency of the stack's flash-attention kernel: its own figure where the profile has one, else
        `attention` (today's kernel; docs/model.md §7.5)."""
        return self.attention_kernels.get(kernel, self.attention) if kernel else self.attention

    @property
    def collective_latency_s(self) -> float:
        return self.collective_latency_us.value * MICRO


class TcoFactors(_Spec):
    """Ownership-cost factors of this GPU's server; absent ones fall back to the defaults in simulator/run/cost.py."""

    server_cost_multiplier: Sourced | None = None
    """(GPU + its share of the server: CPUs, memory, chassis) / GPU purchase price. 1 where purchase_usd includes the server."""
    server_power_multiplier: Sourced | None = None
    """Server wall power per GPU / GPU TDP (CPUs, NICs, fans, power conversion)."""


def one_line(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must be one line of text; remove its line breaks, tabs and other control characters")
    return value


def prose(value: str) -> str:
    """Prose may run over lines and hold tabs, but no other control character: it is printed to a terminal, where an
    escape sequence (ESC, or a C1 control such as CSI) would act instead of showing."""
    bad = sorted({f"U+{ord(c):04X}" for c in value if (ord(c) < 32 and c not in "\n\t") or 127 <= ord(c) <= 159})
    if bad:
        raise ValueError(f"holds control characters ({', '.join(bad[:5])}); remove them (line breaks and tabs may stay)")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(one_line)]
"""An id shown in tables and typed on the command line: one line of text, no control characters."""


class HardwareProfile(_Spec):
    name: Name
    """Must equal the file stem; the id used on the command line."""
    aliases: list[str] = []
    display_name: str
    vendor: str
    generation: str | None = None
    """Architecture (volta, ampere, hopper, blackwell, cdna3, ...): GPUs of one tensor-core design. Published runs are
    grouped by it (the realization fit, the best published MFU); None for a profile of no known generation."""
    sources: dict[str, str]
    """Source key -> citation (title and URL). Every Sourced.source names one of these."""
    dense_tflop_per_s: DensePeaks
    memory_gib: Sourced
    """HBM capacity as the vendor prints it, read as GiB ("80GB" HBM is 80 GiB): the stacks are binary-sized, and a
    GPU shows about that much to software (the H200 "141GB" of validation/local/h200-2026-12-04 gave torch
    150,109,880,320 bytes, 139.8 GiB; 141e9 decimal bytes would be 6% less than it showed)."""
    memory_bandwidth_tb_per_s: Sourced
    scale_up: ScaleUp
    scale_out: ScaleOut
    gpus_per_node: Sourced
    tdp_w: Sourced
    purchase_usd: Sourced | None = None
    """Purchase price of one GPU (USD), the capital cost the TCO basis amortizes."""
    tco: TcoFactors | None = None
    price: Price
    efficiency: EfficiencyDefaults
    sm_count: _int(1, 100_000) | None = None

    @model_validator(mode="after")
    def _every_number_has_a_known_source(self) -> HardwareProfile:
        missing = sorted({s.source for s in _sourced_leaves(self) if s.source != ASSUMPTION and s.source not in self.sources})
        missing += sorted({t.source for t in self.efficiency.all_reduce_measured if t.source not in self.sources})
        for t in self.efficiency.all_reduce_measured:
            if t.ranks_per_domain > self.domain_gpus:
                raise ValueError(
                    f"efficiency.all_reduce_measured: {t.ranks_per_domain} ranks per domain exceed the "
                    f"{self.domain_gpus} GPUs of one scale-up domain (scale_up.domain_gpus), so no group could meet the "
                    "table; give the ranks the measured run had in each node"
                )
        if self.price.source not in self.sources:
            missing.append(self.price.source)
        if missing:
            raise ValueError(
                f"source keys not in `sources`: {', '.join(missing)}; add each under `sources:` with its citation, "
                "or correct the key where it is used"
            )
        _check_range("memory_gib", self.memory_gib.value, 1, 1024)
        _check_range("memory_bandwidth_tb_per_s", self.memory_bandwidth_tb_per_s.value, 0.1, 50)
        _check_range("dense_tflop_per_s.bf16", self.dense_tflop_per_s.bf16.value, 1, 20_000)
        # Rates are divisors: a zero or absurdly small one would make a step time inf. The bounds sit 10-100x beyond
        # every shipped GPU (V100 FP32 15.7 TFLOP/s to GB200 FP8 5,000; L40S 32 GB/s PCIe to 900 GB/s NVLink 5;
        # 50 to 800 Gbit/s NICs; 300 to 1,200 W; efficiencies 0.3 to 0.96).
        for dtype in PEAK_DTYPES:
            peak = getattr(self.dense_tflop_per_s, dtype)
            if peak is not None and dtype != "bf16":
                _check_range(f"dense_tflop_per_s.{dtype}", peak.value, 0.1, 100_000)
        _check_range("scale_up.gb_per_s_per_direction", self.scale_up.gb_per_s_per_direction.value, 1, 100_000)
        _check_range("scale_out.gbit_per_s_per_gpu", self.scale_out.gbit_per_s_per_gpu.value, 1, 1_000_000)
        _check_count("scale_up.domain_gpus", self.scale_up.domain_gpus.value, MAX_DOMAIN_GPUS)
        _check_count("gpus_per_node", self.gpus_per_node.value, MAX_NODE_GPUS)
        _check_range("tdp_w", self.tdp_w.value, 10, 100_000)
        eff = self.efficiency
        fractions = {"attention": eff.attention, "hbm": eff.hbm, "scale_up_bus": eff.scale_up_bus,
                     "scale_out_bus": eff.scale_out_bus}  # fmt: skip
        fractions.update({f"attention_kernels.{k}": v for k, v in eff.attention_kernels.items()})
        if eff.decode_attention is not None:
            fractions["decode_attention"] = eff.decode_attention
        for field, s in fractions.items():
            _check_range(f"efficiency.{field}", s.value, 0.01, 1)
        _check_range("efficiency.collective_latency_us", eff.collective_latency_us.value, 0, 1_000_000)
        if eff.gemm_inner_overhead is not None:
            _check_range("efficiency.gemm_inner_overhead", eff.gemm_inner_overhead.value, 0, 10_000)
        if "bf16" not in self.efficiency.gemm_best:
            given = ", ".join(self.efficiency.gemm_best) or "none"
            raise ValueError(
                f"efficiency.gemm_best needs a bf16 entry (the rate every dtype without its own falls back to); it has "
                f"{given}: add e.g. 'bf16: {{value: 0.8, source: assumption}}'"
            )
        for dtype, s in self.efficiency.gemm_best.items():
            _check_range(f"efficiency.gemm_best.{dtype}", s.value, 0.01, 1)
        if self.purchase_usd is not None:
            _check_range("purchase_usd", self.purchase_usd.value, 100, 1_000_000)
        for field in ("server_cost_multiplier", "server_power_multiplier"):
            factor = getattr(self.tco, field) if self.tco else None
            if factor is not None:
                _check_range(f"tco.{field}", factor.value, 1, 5)
        return self

    # SI accessors ---------------------------------------------------------------
    def peak_flop_per_s(self, dtype: PeakDtype) -> float:
        peak = getattr(self.dense_tflop_per_s, dtype)
        if peak is None:
            raise SpecError(
                f"{self.name} has no dense {dtype} peak (no {dtype} tensor cores). "
                f"Use --precision bf16, or a GPU with {dtype} support (costsim list gpus shows each GPU's peaks)."
            )
        return peak.value * TERA

    @property
    def bf16_native(self) -> bool:
        """Whether the tensor cores take BF16 (DensePeaks.bf16_native; not on Volta, whose bf16 entry is the FP16 rate)."""
        return self.dense_tflop_per_s.bf16_native

    def has_dtype(self, dtype: PeakDtype) -> bool:
        return getattr(self.dense_tflop_per_s, dtype) is not None

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib.value * GIB

    @property
    def hbm_bytes_per_s(self) -> float:
        return self.memory_bandwidth_tb_per_s.value * TERA

    @property
    def scale_up_bytes_per_s(self) -> float:
        return self.scale_up.gb_per_s_per_direction.value * GIGA

    @property
    def scale_out_bytes_per_s(self) -> float:
        return self.scale_out.gbit_per_s_per_gpu.value * GIGA / BITS_PER_BYTE

    @property
    def domain_gpus(self) -> int:
        return int(self.scale_up.domain_gpus.value)


def _sourced_leaves(node: BaseModel):
    for value in node.__dict__.values():
        items = value.values() if isinstance(value, dict) else [value]
        for item in items:
            if isinstance(item, Sourced):
                yield item
            elif isinstance(item, BaseModel):
                yield from _sourced_leaves(item)


def _listed(values: list[int], shown: int = 12) -> str:
    """'1, 2, 4, 8' or the first and last few of a long list."""
    if len(values) <= shown:
        return ", ".join(map(str, values))
    half = shown // 2
    return ", ".join(map(str, values[:half])) + ", ..., " + ", ".join(map(str, values[-half:]))


def _check_range(field: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{field} = {value:g} is outside the plausible range [{low:g}, {high:g}]; check its unit")


def _check_count(field: str, value: float, high: int) -> None:
    if not (value == int(value) and 1 <= value <= high):
        raise ValueError(f"{field} = {value:g} must be a whole number of GPUs from 1 to {high:,}")


# --------------------------------------------------------------------------- models


class MLA(_Spec):
    """Multi-head latent attention (DeepSeek-V2/V3, arXiv:2405.04434 §2.1)."""

    q_lora_rank: _int(1, MAX_WIDTH) | None
    """None: queries are projected directly from the hidden state (DeepSeek-V2-Lite)."""
    kv_lora_rank: _int(1, MAX_WIDTH)
    qk_nope_head_dim: _int(1, MAX_HEADS)
    qk_rope_head_dim: _int(0, MAX_HEADS)
    v_head_dim: _int(1, MAX_HEADS)


class MoE(_Spec):
    n_routed_experts: _int(1, MAX_EXPERTS)
    top_k: _int(1, MAX_EXPERTS)
    d_ff_expert: _int(1, MAX_FFN_WIDTH)
    """FFN width of one routed expert."""
    n_shared_experts: _int(0, MAX_EXPERTS) = 0
    d_ff_shared: _int(1, MAX_FFN_WIDTH) | None = None
    """Total width of the shared-expert FFN; defaults to n_shared_experts x d_ff_expert."""
    shared_expert_gate: bool = False
    """A sigmoid gate (h -> 1) on the shared expert output (Qwen2-MoE)."""
    first_dense_layers: _int(0, MAX_LAYERS) = 0
    """Leading layers with a dense FFN of width d_ff instead of experts (DeepSeek-V3: 3)."""
    layer_freq: _int(1, MAX_LAYERS) = 1
    """Every layer_freq-th layer (after the dense ones) is MoE; the others are dense."""
    max_nodes_per_token: _int(1, MAX_DOMAIN_GPUS) | None = None
    """Node-limited routing (DeepSeek-V3: 4); None means unrestricted."""

    @model_validator(mode="after")
    def _top_k_fits(self) -> MoE:
        if self.top_k > self.n_routed_experts:
            raise ValueError(
                f"top_k = {self.top_k} exceeds n_routed_experts = {self.n_routed_experts}; set top_k to at most "
                f"{self.n_routed_experts} (experts each token is routed to) or raise n_routed_experts"
            )
        return self

    @property
    def shared_width(self) -> int:
        if self.d_ff_shared is not None:
            return self.d_ff_shared
        return self.n_shared_experts * self.d_ff_expert


class PublishedParams(_Spec):
    total: Annotated[float, Field(gt=0, le=MAX_PARAMS)]
    activated: Annotated[float, Field(gt=0, le=MAX_PARAMS)] | None = None
    source: str
    """Paper/table or model card where the counts are stated."""
    activated_excludes_input_embedding: bool = False
    """The publisher counts only matmul weights as activated (DeepSeek, Databricks), not the embedding lookup."""
    total_digits: _int(1, 20) | None = None
    """Significant digits the total is stated with ("7B": 1); the check allows half a unit in the last digit."""
    activated_digits: _int(1, 20) | None = None

    def stated_rounding(self, which: str) -> float:
        """Relative half unit in the last digit `which` ('total' or 'activated') is stated with ('37B' covers 36.5-37.5B:
        0.5/37); 0 where the digits are not given."""
        value, digits = getattr(self, which), getattr(self, f"{which}_digits")
        if value is None or digits is None:
            return 0.0
        return 0.5 * 10 ** (math.floor(math.log10(value)) - digits + 1) / value


class PublishedLayout(_Spec):
    """The parallel layout the model was trained with, as published (fields not published are left out)."""

    tp: _int(1, MAX_GPUS) | None = None
    pp: _int(1, MAX_GPUS) | None = None
    ep: _int(1, MAX_GPUS) | None = None
    cp: _int(1, MAX_GPUS) | None = None
    zero_stage: _int(0, 3) | None = None
    schedule: Schedule | None = None
    vpp: _int(1, MAX_GPUS) | None = None
    num_gpus: _int(1, MAX_GPUS) | None = None
    fp8_recipe: Fp8Recipe | None = None
    """FP8 scaling the run used, where it trained in FP8 (the default of --fp8-recipe for this model)."""
    source: str

    def fields(self) -> dict:
        """The layout fields that are published."""
        return {k: getattr(self, k) for k in PUBLISHED_LAYOUT_FIELDS if getattr(self, k) is not None}


class ModelSpec(_Spec):
    name: Name
    """Must equal the file stem for shipped specs; the id used on the command line."""
    display_name: str | None = None
    source: str
    """Paper table or config.json the architecture numbers come from."""
    n_layers: _int(1, MAX_LAYERS)
    d_model: _int(1, MAX_WIDTH)
    vocab_size: _int(1, MAX_VOCAB)
    n_heads: _int(1, MAX_HEADS)
    n_kv_heads: _int(1, MAX_HEADS)
    """Equal to n_heads for MHA, 1 for MQA, in between for GQA. For MLA: n_heads."""
    head_dim: _int(1, MAX_HEADS)
    attention: Literal["standard", "mla"] = "standard"
    mla: MLA | None = None
    ffn: Literal["swiglu", "geglu", "gelu", "relu"]
    """swiglu/geglu: gated, three matrices; gelu/relu: two matrices."""
    d_ff: _int(1, MAX_FFN_WIDTH)
    """Dense FFN width (for MoE models: the width of the leading dense layers)."""
    moe: MoE | None = None
    mtp_depth: _int(0, MAX_MTP_DEPTH) = 0
    """Multi-token-prediction modules (DeepSeek-V3: 1)."""
    tied_embeddings: bool
    parallel_attention: bool = False
    """Attention and FFN read the same input (GPT-J, Falcon); same FLOPs. Two norms per layer are counted
    (Falcon-40B, GPT-NeoX); GPT-J and Falcon-7B share one, under 0.01% of their parameters."""
    position_embedding: Literal["rope", "learned", "alibi", "none"] = "rope"
    max_position_embeddings: _int(1, MAX_POSITIONS) | None = None
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    attention_bias: bool = False
    """Bias on the q/k/v projections (Qwen2, GPT-2, BLOOM)."""
    output_bias: bool = False
    """Bias on the attention output projection."""
    ffn_bias: bool = False
    qk_norm: bool = False
    """Per-head RMSNorm on q and k (Qwen3, Gemma 3)."""
    embedding_norm: bool = False
    """LayerNorm right after the token embedding (BLOOM)."""
    sliding_window: _int(1, MAX_POSITIONS) | None = None
    default_seq_len: _int(1, MAX_SEQ_LEN) | None = None
    """Pre-training sequence length where it is published."""
    published_params: PublishedParams | None = None
    published_layout: PublishedLayout | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.attention == "mla" and self.mla is None:
            raise ValueError(
                "attention: mla needs an `mla:` block; add one (q_lora_rank, kv_lora_rank, qk_nope_head_dim, "
                "qk_rope_head_dim, v_head_dim) or set attention: standard"
            )
        if self.attention == "standard" and self.n_heads % self.n_kv_heads:
            divisors = [d for d in range(1, self.n_heads + 1) if self.n_heads % d == 0]
            raise ValueError(
                f"n_heads = {self.n_heads} is not divisible by n_kv_heads = {self.n_kv_heads}; set n_kv_heads to a "
                f"divisor of {self.n_heads} ({_listed(divisors)})"
            )
        if self.moe and self.moe.first_dense_layers >= self.n_layers:
            raise ValueError(
                f"moe.first_dense_layers = {self.moe.first_dense_layers} leaves none of the {self.n_layers} layers MoE; "
                f"set it to at most {self.n_layers - 1}, or remove moe for a dense model"
            )
        if self.position_embedding == "learned" and self.max_position_embeddings is None:
            raise ValueError(
                "position_embedding: learned needs max_position_embeddings; add it (the length of the learned "
                "position table, e.g. 2048) or set position_embedding to rope, alibi or none"
            )
        return self

    @property
    def served_positions(self) -> int | None:
        """The longest sequence the model runs when served: a learned position table's length, and a RoPE model's
        `max_position_embeddings` (its config's, with any RoPE scaling it states), which an engine's maximum length
        follows (vLLM's max_model_len defaults to it and refuses longer prompts). None where nothing bounds it: ALiBi
        and position-free models extrapolate, and a spec that states no length is not bounded."""
        return self.max_position_embeddings if self.position_embedding in ("learned", "rope") else None

    @property
    def gated_ffn(self) -> bool:
        return self.ffn in ("swiglu", "geglu")

    def is_moe_layer(self, index: int) -> bool:
        """Layer `index` (0-based) has routed experts."""
        if self.moe is None or index < self.moe.first_dense_layers:
            return False
        return (index - self.moe.first_dense_layers) % self.moe.layer_freq == 0

    @property
    def n_moe_layers(self) -> int:
        return sum(self.is_moe_layer(i) for i in range(self.n_layers))

    @property
    def n_dense_layers(self) -> int:
        return self.n_layers - self.n_moe_layers
