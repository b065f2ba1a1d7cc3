"""One calibration: plan the points, run every benchmark with a progress bar, fit, and build the file.

Besides training's benchmarks it measures the decode regime of serving (calibrate/decode.py): GEMMs of 1-256 tokens
against the weights of the reference (and --model) layers, decode attention over a KV cache at several batches and
contexts, and, with the collectives, the all-to-all of few tokens per rank of decode's expert dispatch.

Modes: `quick` (under 2 minutes on a 2-core CPU, under 5 on one H100), `full` (more shapes, sizes and
repeats) and `smoke` (a few points, for tests). A point that runs out of memory, uses a dtype or op
the device does not support, or would take too long is skipped with a note, never a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
from pydantic import ValidationError

from calibrate import attention, collectives, decode, fit, gemm, memory_kernels
from calibrate import device as dev
from calibrate.gemm import Shape
from calibrate.timing import WARM_UP_S, Budget, guarded, warm_up
from simulator.errors import InputError
from simulator.inputs.calibration import (
    SCHEMA_VERSION,
    AttentionSample,
    Calibration,
    CollectiveSample,
    DecodeAllToAllSample,
    DecodeAttentionSample,
    DecodeGemmSample,
    Fit,
    GemmSample,
    MemorySample,
    Samples,
    Workload,
    sealed,
)
from simulator.inputs.calibration import CalibrationPlan as PlanRecord
from simulator.inputs.specs import ModelSpec
from simulator.units import MEBI, MICRO

MODES = ("quick", "full", "smoke")


def llama_like(name: str, layers: int, d_model: int, heads: int, kv_heads: int, d_ff: int, vocab: int) -> ModelSpec:
    return ModelSpec(
        name=name,
        source="built in code by calibrate/ (Llama-style dense layer)",
        n_layers=layers,
        d_model=d_model,
        vocab_size=vocab,
        n_heads=heads,
        n_kv_heads=kv_heads,
        head_dim=d_model // heads,
        ffn="swiglu",
        d_ff=d_ff,
        tied_embeddings=False,
    )


CPU_REFERENCE = Workload(model=llama_like("cpu-reference-25m", 4, 512, 8, 4, 1408, 4096), batch=4, seq_len=256)
CUDA_REFERENCE = Workload(model=llama_like("cuda-reference-1b", 16, 2048, 16, 16, 5632, 32000), batch=4, seq_len=2048)


@dataclass(frozen=True)
class Sweep:
    mode: str
    budget: Budget
    squares: dict[str, list[int]]
    """Square GEMM sizes per dtype."""
    reference_tokens: list[int]
    """Token counts (GEMM m) at which the reference model's GEMMs are measured in BF16 (and FP8)."""
    other_dtype_tokens: list[int]
    attention_seq_lens: list[int]
    attention_head_dims: list[int]
    copy_elements: int
    optimizer_max_params: int
    collective_sizes: list[int]
    extra_shapes: list[Shape] = field(default_factory=list)
    dtypes: tuple[str, ...] = ("bf16", "fp32", "fp16", "fp8", "fp4")
    collectives: bool = True
    memory_budget: Budget | None = None
    """Memory-bound kernels are cheap and sensitive to other load on the machine: more repeats (default: budget)."""
    decode_tokens: list[int] = field(default_factory=lambda: [1, 16, 256])
    """Tokens (GEMM m) of the decode GEMMs, against every (n, k) of the reference and --model layers."""
    decode_dtypes: tuple[str, ...] = ("bf16", "fp8", "fp4")
    decode_batches: list[int] = field(default_factory=lambda: [1, 8])
    """Sequences of a decode attention step (one query token each)."""
    decode_contexts: list[int] = field(default_factory=lambda: [256, 1024])
    """Cached positions per sequence of a decode attention step."""
    decode_a2a_tokens: list[int] = field(default_factory=lambda: [1, 16, 128])
    """Tokens per rank of the decode all-to-all (measured with the collectives)."""
    decode_extra: list[Workload] = field(default_factory=list)
    """Models whose layers' (n, k) the decode GEMMs also take (--model)."""


def plan_for(device: torch.device, mode: str) -> Sweep:
    if mode not in MODES:
        raise InputError(f"calibration mode {mode!r} is not one of {', '.join(MODES)}")
    cuda = device.type == "cuda"
    full = mode == "full"
    if mode == "smoke":
        return Sweep(
            mode,
            Budget(warmup=1, min_repeats=3, max_repeats=5, target_s=0.01, max_call_s=0.5),
            squares={"bf16": [128, 256, 512], "fp32": [128, 256], "fp16": [64], "fp8": [256], "fp4": [256]},
            reference_tokens=[256],
            other_dtype_tokens=[],
            attention_seq_lens=[64, 128],
            attention_head_dims=[64],
            copy_elements=2**22,
            optimizer_max_params=MEBI,
            collective_sizes=[2**12, 2**16],
            memory_budget=Budget(warmup=1, min_repeats=8, max_repeats=20, target_s=0.05, max_call_s=0.5),
            decode_tokens=[1, 32, 256],
            decode_batches=[1, 8],
            decode_contexts=[128, 1024],
            decode_a2a_tokens=[1, 16, 128],
        )
    if cuda:
        return Sweep(
            mode,
            Budget(warmup=5 if full else 3, min_repeats=10 if full else 5, max_repeats=100, target_s=0.2 if full else 0.05),
            squares={
                d: [256, 512, 1024, 2048, 4096, 8192] + ([16384] if full else []) for d in ("bf16", "fp16", "fp32", "fp8", "fp4")
            },
            reference_tokens=[512, 2048, 8192, 32768] if full else [1024, 8192],
            other_dtype_tokens=[8192],
            attention_seq_lens=[512, 1024, 2048, 4096, 8192] if full else [1024, 2048, 4096],
            attention_head_dims=[64, 128],
            copy_elements=2**29,
            optimizer_max_params=2**28,
            collective_sizes=[2**k for k in range(10, 31, 2 if full else 4)],
            decode_tokens=[1, 2, 4, 8, 16, 32, 64, 128, 256] if full else [1, 8, 32, 128, 256],
            decode_batches=[1, 4, 16, 64, 128] if full else [1, 16, 64],
            decode_contexts=[512, 2048, 8192, 32768] if full else [1024, 8192],
            decode_a2a_tokens=[1, 2, 4, 8, 16, 32, 64, 128, 256] if full else [1, 8, 32, 128],
        )
    return Sweep(
        mode,
        Budget(
            warmup=2 if full else 1,
            min_repeats=5 if full else 3,
            max_repeats=30 if full else 10,
            target_s=0.2 if full else 0.04,
            max_call_s=2.0 if full else 0.5,
        ),
        squares={
            "bf16": [128, 256, 512, 1024, 2048],
            "fp32": [128, 256, 512, 1024] + ([2048] if full else []),
            "fp16": [64, 128, 256],
        },
        reference_tokens=[128, 256, 512, 1024, 2048, 4096] if full else [256, 1024, 4096],
        other_dtype_tokens=[1024],
        attention_seq_lens=[64, 128, 256, 512, 1024, 2048] if full else [128, 256, 512, 1024],
        attention_head_dims=[32, 64, 128] if full else [64],
        copy_elements=2**25,
        optimizer_max_params=2**24,
        collective_sizes=[2**k for k in range(12, 25, 2 if full else 4)],
        memory_budget=Budget(warmup=2, min_repeats=10, max_repeats=40, target_s=0.3, max_call_s=2.0),
        decode_tokens=[1, 4, 16, 64, 256] if full else [1, 16, 256],
        decode_batches=[1, 4, 16] if full else [1, 8],
        decode_contexts=[256, 1024, 4096] if full else [256, 2048],
        decode_a2a_tokens=[1, 4, 16, 64, 256] if full else [1, 16, 128],
    )


def _gemm_points(plan: Sweep, ref: Workload, device: torch.device, notes: list[str]) -> list[tuple[Shape, str]]:
    points: list[tuple[Shape, str]] = []
    unsupported = {dev.FP8: dev.fp8_supported(device), dev.FP4: dev.fp4_supported(device)}
    for dtype in plan.dtypes:
        if unsupported.get(dtype):
            notes.append(f"{dtype} GEMMs: skipped, {unsupported[dtype]}")
            continue
        if dtype not in plan.squares:
            continue
        shapes = gemm.square_shapes(plan.squares[dtype])
        low_precision = dtype in ("bf16", dev.FP8, dev.FP4)  # the formats model GEMMs run in
        tokens = plan.reference_tokens if low_precision else plan.other_dtype_tokens
        for t in tokens:
            shapes += [replace(s, origin="sweep") for s in gemm.model_shapes(ref.model, t, ref.tp)]
        if low_precision:
            shapes += plan.extra_shapes
        if dtype == dev.FP8:
            shapes = _aligned(shapes, FP8_ALIGN, FP8_ALIGN)
        if dtype == dev.FP4:
            shapes = _aligned(shapes, gemm.NVFP4_ALIGN, gemm.NVFP4_ALIGN)
        shapes = sorted(gemm.unique(shapes), key=lambda s: s.flops)
        points += [(s, dtype) for s in shapes]
    return points


FP8_ALIGN = 16
"""FP8 tensor cores need every GEMM dimension a multiple of 16."""


def _aligned(shapes: list, m_to: int, nk_to: int) -> list:
    """The shapes with m rounded up to a multiple of `m_to` and n, k to one of `nk_to` (gemm.round_up)."""
    return [replace(s, m=gemm.round_up(s.m, m_to), n=gemm.round_up(s.n, nk_to), k=gemm.round_up(s.k, nk_to)) for s in shapes]


def _decode_gemm_points(plan: Sweep, ref: Workload, device: torch.device) -> list[tuple[decode.DecodeShape, str]]:
    """Decode GEMMs per dtype measured (BF16; FP8 where it runs, m, n, k rounded up to multiples of 16; FP4 where it
    runs, m up to 16 and n, k up to multiples of 128)."""
    points = []
    unsupported = {dev.FP8: dev.fp8_supported(device), dev.FP4: dev.fp4_supported(device)}
    for dtype in plan.decode_dtypes:
        if dtype not in plan.dtypes or unsupported.get(dtype):
            continue  # the GEMM sweep notes an unsupported FP8 or FP4
        shapes = decode.gemm_shapes([ref, *plan.decode_extra], plan.decode_tokens)
        if dtype == dev.FP8:
            shapes = _aligned(shapes, FP8_ALIGN, FP8_ALIGN)
        if dtype == dev.FP4:  # a decode GEMM's few tokens need only the FP8-style 16; n and k hold the scale tiles
            shapes = _aligned(shapes, FP8_ALIGN, gemm.NVFP4_ALIGN)
        seen: set[tuple[int, int, int]] = set()
        for s in shapes:
            if (s.m, s.n, s.k) not in seen:
                seen.add((s.m, s.n, s.k))
                points.append((s, dtype))
    return points


Progress = Callable[[int, int, str | None], None]
"""Called as progress(done, total, label) while a calibration runs: points measured so far, all points, and the
point being measured (None when only the count moved). The command line draws it as a bar; calibrate/ draws nothing."""


class _Counter:
    """Counts the points of a calibration and reports each step to a Progress callback (or to nobody)."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self.progress = progress

    def show(self, label: str) -> None:
        if self.progress:
            self.progress(self.done, self.total, f"{label:<48}")

    def advance(self) -> None:
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total, None)


def measure_all(
    device: torch.device,
    plan: Sweep,
    ref: Workload,
    progress: Progress | None = None,
    external: list[CollectiveSample] | None = None,
    external_a2a: list[DecodeAllToAllSample] | None = None,
) -> tuple[Samples, float, list[str]]:
    """Run every benchmark of the plan: (samples, kernel overhead, notes). `external`, `external_a2a`: collective
    and decode all-to-all samples measured elsewhere (a cluster run of calibrate.collectives) to include."""
    external = external or []
    notes: list[str] = []
    gemm_points = _gemm_points(plan, ref, device, notes)
    att_shapes = attention.shapes(
        ref.batch, ref.model.n_heads, ref.model.n_kv_heads, plan.attention_head_dims, plan.attention_seq_lens
    )
    kernels = ["copy", *memory_kernels.KERNELS]
    n_coll = 1 if plan.collectives else 0
    decode_gemms = _decode_gemm_points(plan, ref, device)
    decode_atts = decode.attention_shapes(ref, plan.decode_batches, plan.decode_contexts)
    n_decode = len(decode_gemms) + len(decode_atts)
    bar = _Counter(1 + len(gemm_points) + len(att_shapes) + len(kernels) + n_coll + n_decode, progress)

    def point(label: str, bench: Callable[[], object], into: list) -> bool:
        """Measure one point into `into`, shown on the bar; False where it was skipped (with a note)."""
        bar.show(label)
        sample = guarded(label, notes, bench)
        if sample is not None:
            into.append(sample)
        bar.advance()
        return sample is not None

    bar.show("kernel overhead")
    overhead = gemm.kernel_overhead_s(device)
    bar.advance()
    gemms: list[GemmSample] = []
    too_slow: set[str] = set()
    for shape, dtype in gemm_points:
        if dtype in too_slow:
            bar.advance()
            continue
        label = f"{dtype} GEMM {shape.m}x{shape.n}x{shape.k}"
        if not point(label, partial(gemm.bench, shape, dtype, device, plan.budget), gemms):
            if notes and "limit per call" in notes[-1]:
                too_slow.add(dtype)  # larger shapes of this dtype would be slower still
                notes[-1] += f"; larger {dtype} GEMMs skipped too"
    atts: list[AttentionSample] = []
    for a in att_shapes:
        label = f"attention s={a.seq_len} d={a.head_dim} b={a.batch}"
        point(label, partial(attention.bench, a, "bf16", device, plan.budget), atts)
    mems: list[MemorySample] = []
    sizes = (ref.model, ref.batch, ref.seq_len, device)
    limits = (plan.memory_budget or plan.budget, plan.copy_elements, plan.optimizer_max_params)
    for k in kernels:
        point(f"memory-bound: {k}", partial(memory_kernels.bench, k, *sizes, *limits), mems)
    pool = decode.Pool(device, decode.pool_bytes(device, plan.mode == "smoke"))
    decode_gemm: list[DecodeGemmSample] = []
    too_slow.clear()
    for shape, dtype in decode_gemms:
        if dtype in too_slow:
            bar.advance()
            continue
        label = f"{dtype} decode GEMM {shape.m}x{shape.n}x{shape.k}"
        if not point(label, partial(decode.bench_gemm, shape, dtype, device, plan.budget, pool), decode_gemm):
            if notes and "limit per call" in notes[-1]:
                too_slow.add(dtype)
                notes[-1] += f"; larger {dtype} decode GEMMs skipped too"
    decode_att: list[DecodeAttentionSample] = []
    for a in decode_atts:
        label = f"decode attention b={a.batch} context={a.context}"
        point(label, partial(decode.bench_attention, a, "bf16", device, plan.budget, pool), decode_att)
    del pool
    colls: list[dict] = []
    a2a: list[dict] = []
    if plan.collectives:
        bar.show("collectives (torchrun)")
        colls, a2a, coll_notes = _collectives(device, plan, ref)
        notes += coll_notes
        bar.advance()
    elif not external_a2a:
        why = "the --collectives file holds none" if external else "with the collectives (--no-collectives)"
        notes.append(f"decode all-to-all: skipped, {why}; serve keeps the collective latency for the EP exchange")
    if gemms:
        # A launch's fixed cost cannot exceed the fastest GEMM call, which pays it too: on a VM the launch latency of
        # the 16^3 GEMM drifts (26 us, then 37 us on one H200) above the quickest real GEMM's (24 us).
        fastest = min(min(g.forward.median_s, g.input_grad.median_s, g.weight_grad.median_s) for g in gemms)
        if overhead > fastest:
            notes.append(
                f"kernel overhead: {overhead / MICRO:.1f} us measured, above the fastest GEMM call; {fastest / MICRO:.1f} us used"
            )
            overhead = fastest
    samples = Samples(
        gemm=gemms,
        attention=atts,
        memory=mems,
        collectives=[CollectiveSample(**c) for c in colls] + external,
        decode_gemm=decode_gemm,
        decode_attention=decode_att,
        decode_all_to_all=[DecodeAllToAllSample(**c) for c in a2a] + (external_a2a or []),
    )
    return samples, overhead, notes


def load_collectives(path: str) -> tuple[list[CollectiveSample], list[DecodeAllToAllSample]]:
    """(collective samples, decode all-to-all samples) from the JSON calibrate.collectives writes ({"samples": [...],
    "decode_all_to_all": [...], "notes": [...]}; files written before the decode all-to-all have none)."""
    from simulator.inputs.files import read_json

    raw = read_json(Path(path))
    if not isinstance(raw, dict) or not isinstance(raw.get("samples"), list) or not raw["samples"]:
        raise InputError(f"--collectives {path}: expected the JSON of calibrate.collectives with a non-empty 'samples' list")
    from simulator.inputs.schema_errors import format_errors

    out: dict[str, list] = {"samples": [], "decode_all_to_all": []}
    decoded = raw.get("decode_all_to_all", [])
    if not isinstance(decoded, list):
        raise InputError(
            f"--collectives {path}: decode_all_to_all must be a list; write the file again with calibrate.collectives"
        )
    for key, model in (("samples", CollectiveSample), ("decode_all_to_all", DecodeAllToAllSample)):
        for i, sample in enumerate(raw.get(key, [])):
            try:
                out[key].append(model.model_validate(sample))
            except ValidationError as e:
                raise InputError(
                    f"--collectives {path}: {key}.{i}: {format_errors(model, e, 1)}; or write the file again with "
                    "torchrun ... -m calibrate.collectives --output FILE"
                ) from None
    return out["samples"], out["decode_all_to_all"]


def _collectives(device: torch.device, plan: Sweep, ref: Workload) -> tuple[list[dict], list[dict], list[str]]:
    """(collective samples, decode all-to-all samples, notes): NCCL over the GPUs of this machine, gloo between two
    CPU processes. The decode all-to-all sends `tokens x copies x d_model` BF16 elements per rank, copies the
    reference's top-k (8, DeepSeek-V3's, for a dense reference)."""
    copies = ref.model.moe.top_k if ref.model.moe else collectives.DECODE_COPIES
    decode_args = {"decode_tokens": plan.decode_a2a_tokens, "decode_hidden": ref.model.d_model, "decode_copies": copies}
    if device.type == "cuda":
        n = torch.cuda.device_count()
        if n < 2:
            return (
                [],
                [],
                [
                    f"collectives: skipped, {n} GPU visible (needs 2 or more; run calibrate.collectives under torchrun)",
                    f"decode all-to-all: skipped, {n} GPU visible: no process group of 2 or more ranks on this machine; serve "
                    "keeps the profile's collective latency for the EP exchange",
                ],
            )
        return collectives.launch("nccl", n, plan.collective_sizes, timeout_s=240, **decode_args)
    return collectives.launch(
        "gloo", 2, plan.collective_sizes, warmup=2, min_repeats=10, max_repeats=30, target_s=0.1, **decode_args
    )


def fit_all(samples: Samples, overhead_s: float, ref: Workload, notes: list[str]) -> Fit:
    """calibrate.fit.fit_all with the memory-bound kernels weighted as the step model counts `ref` now."""
    weights = memory_kernels.step_weights(ref.model, ref.tokens)
    return fit.fit_all(samples, overhead_s, weights, f"{ref.model.name} at {ref.tokens} tokens", notes)


def calibrate(
    device_name: str,
    mode: str,
    ref: Workload | None = None,
    extra_models: list[Workload] | None = None,
    model_label: str | None = None,
    profile: str | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    collectives_enabled: bool = True,
    dtypes: tuple[str, ...] | None = None,
    log: Callable[[str], None] | None = None,
    collectives_file: str | None = None,
) -> Calibration:
    """Measure and fit on `device_name` ('cpu' or 'cuda'); returns the calibration (not yet written).

    `collectives_file`: the JSON a torchrun run of calibrate.collectives wrote (e.g. across nodes); its
    samples are used instead of measuring collectives on this machine."""
    t0 = time.perf_counter()
    external, external_a2a = load_collectives(collectives_file) if collectives_file else ([], [])
    collectives_enabled = collectives_enabled and not collectives_file
    device = dev.resolve(device_name, threads)
    torch.manual_seed(0)
    ref = ref or (CUDA_REFERENCE if device.type == "cuda" else CPU_REFERENCE)
    plan = plan_for(device, mode)
    extra = [s for r in (extra_models or []) for s in gemm.model_shapes(r.model, r.tokens, r.tp)]
    plan = replace(
        plan,
        extra_shapes=extra,
        collectives=plan.collectives and collectives_enabled,
        dtypes=dtypes or plan.dtypes,
        decode_extra=list(extra_models or []),
    )
    warm_s = WARM_UP_S[mode]
    warm_runs = warm_up(device, warm_s)
    samples, overhead, notes = measure_all(device, plan, ref, progress, external, external_a2a)
    if warm_runs:
        notes.insert(0, f"GPU warmed up for {warm_s:g} s ({warm_runs} BF16 GEMMs of 8192^3) before measuring: sustained clocks")
    fitted = fit_all(samples, overhead, ref, notes)
    if log:
        for n in notes:
            log(f"note: {n}")
    prov = dev.provenance(device, mode, model_label, time.perf_counter() - t0, profile)
    record = PlanRecord(
        reference=ref,
        extra=list(extra_models or []),
        dtypes=[d for d in plan.dtypes if d in plan.squares],  # type: ignore[misc]
        collectives=plan.collectives,
        collectives_file=collectives_file,
    )
    return sealed(
        Calibration(
            schema="costsim-calibration",
            schema_version=SCHEMA_VERSION,
            provenance=prov,
            plan=record,
            samples=samples,
            fit=fitted,
            notes=notes,
            sha256="",
        )
    )
