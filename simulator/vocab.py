"""The words costsim's options and files use, each defined once: number formats, training precisions, pipeline
schedules, recompute modes, attention kernels, FP8 recipes, and the fields of a parallel layout.

Schemas (pydantic Literal fields), the model's dataclasses and the command line's choices all take them from
here (tests/test_definitions.py checks that the CLI choices and the layout dataclass agree with these tuples).
"""

from typing import Final, Literal, get_args

from simulator.units import MICRO

Dtype = Literal["fp32", "tf32", "bf16", "fp16", "fp8"]
"""Number formats of a GEMM that costsim trains in (dense peaks are quoted per format)."""
PeakDtype = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "fp4"]
"""Number formats a hardware profile quotes a dense peak for and a calibration may time: Dtype and fp4 (NVFP4 on
Blackwell), which only serving runs (costsim serve --precision fp4; no FP4 training is modelled)."""
SERVING_ONLY_DTYPES: Final = frozenset({"fp4"})
"""Formats costsim runs only in serving: a calibration fits their GEMM rate on the forward GEMM alone."""
ServePrecision = Literal["bf16", "fp8", "fp4"]
"""The weight and GEMM format a serving deployment runs (model/number_formats.py says which GEMMs each puts where)."""
KvDtype = Literal["bf16", "fp8"]
"""KV-cache formats (an FP16 cache is the same 2 bytes as BF16)."""
KvAdmission = Literal["on-demand", "full-request"]
"""What a sequence holds of the KV-cache pool while it runs: on-demand, the tokens it has so far (paged engines that
preempt when the pool fills: vLLM, SGLang); full-request, its prompt and its whole output, reserved when it is admitted
(TensorRT-LLM's default capacity scheduler, GUARANTEED_NO_EVICT)."""
Precision = Literal["bf16", "fp16", "fp8"]
"""The GEMM precision a run trains in."""
Schedule = Literal["1f1b", "interleaved", "zb-h1", "dualpipe"]
Recompute = Literal["none", "selective", "full"]
AttentionKernel = Literal["flash", "unfused"]
Fp8Recipe = Literal["tensor", "block"]
ExpertGemmLaunch = Literal["grouped", "per_expert"]
Fp8TensorScaling = Literal["delayed", "current"]
StepHost = Literal["none", "fitted"]

DTYPES: Final[tuple[Dtype, ...]] = get_args(Dtype)
PRECISIONS: Final[tuple[Precision, ...]] = get_args(Precision)
PEAK_DTYPES: Final[tuple[PeakDtype, ...]] = get_args(PeakDtype)
SERVE_PRECISIONS: Final[tuple[ServePrecision, ...]] = get_args(ServePrecision)
KV_DTYPES: Final[tuple[KvDtype, ...]] = get_args(KvDtype)
KV_ADMISSIONS: Final[tuple[KvAdmission, ...]] = get_args(KvAdmission)
MAX_HOST_S_PER_SEQUENCE: Final = 1e-3
"""Largest engine host time per running sequence per decode step a request, fleet or serving case may give: a
millisecond, far above any engine measured (TensorRT-LLM's PyTorch backend about 29 us)."""
MAX_HOST_US_PER_SEQUENCE: Final = round(MAX_HOST_S_PER_SEQUENCE / MICRO, 9)  # 1000, not 1000.0000000000001
"""The same limit in the microseconds of --host-us-per-sequence and the data files' host_us_per_sequence."""
MIN_KV_MEMORY_FRACTION: Final = 0.01
"""Smallest KV pool share of the free memory a request, fleet or serving case may give (at most 1, all of it)."""
SCHEDULES: Final[tuple[Schedule, ...]] = get_args(Schedule)
RECOMPUTE_MODES: Final[tuple[Recompute, ...]] = get_args(Recompute)
ATTENTION_KERNELS: Final[tuple[AttentionKernel, ...]] = get_args(AttentionKernel)
FP8_RECIPES: Final[tuple[Fp8Recipe, ...]] = get_args(Fp8Recipe)

LAYOUT_FIELDS: Final = (
    "tp",
    "pp",
    "dp",
    "ep",
    "cp",
    "zero_stage",
    "micro_batch_size",
    "schedule",
    "recompute",
    "vpp",
    "tp_overlap",
)
"""The fields of a parallel layout (model.layout.Layout), in its order; the CLI flags are their names with dashes."""
PUBLISHED_LAYOUT_FIELDS: Final = ("tp", "pp", "ep", "cp", "zero_stage", "schedule", "vpp")
"""The layout fields a model spec's published_layout may state."""

STEP_COMPONENTS: Final[tuple[str, ...]] = (
    "dense_ffn", "routed_experts", "shared_experts", "router", "attention_proj", "attention_core", "memory_bound",
    "kernel_launch", "recompute", "comm_sm_contention", "tp_comm", "cp_comm", "ep_comm", "lm_head", "embedding", "mtp",
    "pipeline_bubble", "pp_comm_exposed", "dp_comm_exposed", "optimizer", "step_host", "realization_gap",
)  # fmt: skip
"""Every term of an estimate's step-time breakdown: the CSV has one column for each, whatever the model (0 where
the term does not arise), so the columns do not change with the model."""
FORWARD_COMPONENTS: Final[tuple[str, ...]] = (
    "embedding", "dense_ffn", "routed_experts", "shared_experts", "router", "attention_proj", "attention_core",
    "memory_bound", "kernel_launch", "tp_comm", "cp_comm", "ep_comm", "comm_sm_contention", "lm_head",
)  # fmt: skip
"""Every term of a forward pass's breakdown (model.forward.forward_pass: a serve's prefill, whose `ep_comm` is the
part its overlap leaves exposed and `comm_sm_contention` what the overlap costs the compute, model.serve.search
._overlapped_parts): `costsim serve`'s CSV has one column for each, whatever the model (0 where the term does not
arise)."""
DECODE_COMPONENTS: Final[tuple[str, ...]] = (
    "attention_proj", "attention_core", "ffn", "experts", "elementwise", "tp_comm", "lm_head", "mtp_draft",
    "ep_comm_exposed", "engine_overhead", "host_exposed",
)  # fmt: skip
"""The terms of a decode step (model.serve.decode.step_s, less its total), in its order."""
SERVE_MEMORY_COMPONENTS: Final[tuple[str, ...]] = ("weights", "kv_cache", "activations", "reserved", "kv_pool_unused", "total")
"""A serving GPU's memory by component (model.serve.decode.memory_per_gpu, in its order), and the share a KV pool of
less than the free memory leaves unused (run.serve._memory_shown: 0 in the CSV where the pool takes it all)."""
FLOP_COMPONENTS: Final[tuple[str, ...]] = (
    "dense_ffn",
    "routed_experts",
    "shared_experts",
    "router",
    "attention_proj",
    "attention_core",
    "lm_head",
    "mtp",
)
"""Every component of the model FLOPs per token (docs/model.md §2.4), one CSV column each."""
