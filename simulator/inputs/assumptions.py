"""Global efficiency and reliability assumptions: the same for every model, GPU and run.

Each value names its source, or says that it is an assumption. None of them is fitted to a
published run. A calibration file (costsim calibrate) replaces the per-GPU terms of the
hardware profiles; these global terms describe software behaviour that no microbenchmark sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from simulator.errors import SpecError
from simulator.inputs import data_files, fitted_file
from simulator.inputs.data_files import fitted_constants_path
from simulator.inputs.fitted_file import FITTED_RANGES, REFIT_FIX, FittedRange  # noqa: F401 (fit.py and tests use them)
from simulator.units import GIB, GIGA, MICRO

FITTED_PATH = fitted_constants_path()


@dataclass(frozen=True)
class Assumptions:
    gemm_sustain: float = 0.95
    """In-training GEMM rate / best-shape microbenchmark rate (clocks under sustained load, shape mix).
    The physical default 0.95 is an assumption; DEFAULT takes the value `costsim fit` fitted to the
    published throughput runs (simulator/data/fitted_constants.yaml, with in-sample and leave-one-out errors)."""
    fp8_gemm_factor: float = 0.9
    """FP8 GEMMs with fine-grained block scaling (1x128 / 128x128 scales promoted on CUDA cores, the DeepSeek-V3
    recipe, `--fp8-recipe block`) vs the best per-tensor FP8 matmul microbenchmark. Source: DeepGEMM README
    (2025-02): its kernels were 1.0-1.2x faster than the internal CUTLASS kernels of the V3-training era.
    Per-tensor FP8 (Transformer Engine, `--fp8-recipe tensor`) runs at the microbenchmark rate."""
    fp8_quantize_unfused: float = 0.5
    """Share of FP8 quantize/transpose passes (3 B per GEMM input element) not fused into GEMMs. Assumption."""
    kernel_overhead_s: float = 4 * MICRO
    """Fixed cost per kernel (launch, prologue, tail wave): every GEMM and every elementwise kernel (docs/model.md
    §7.6). Assumption."""
    overlap_efficiency: float = 0.9
    """Share of an overlap window that really hides communication. Assumption."""
    param_gather_overlap: float = 1.0
    """Share of the ZeRO-1/2 weight all-gather after the optimizer step that the stack runs under the next step's
    first forward (1: overlapped, 0: exposed; docs/model.md §5.1). 1 follows the stacks of the validation runs:
    Megatron-LM/NeMo `--overlap-param-gather` (NeMo Megatron Bridge communication-overlap docs) and FSDP weight
    prefetching (Llama 3 §3.3.2); DeepSpeed ZeRO-1/2 and Megatron's default gather after the step (0)."""
    comm_sm_fraction: float = 0.15
    """Share of SMs taken by communication kernels while they overlap compute. Source: DeepSeek-V3 report
    §3.2.2 (20 of 132 SMs for all-to-all); Calculon systems/h100_80g_nvl8.json (NVLink processor_usage 0.15).
    Under DualPipe with EP the split is static for the whole chunk pair (compute runs 1 / (1 - f) slower);
    elsewhere the contention is f x the hidden communication time (step_time.static_sm_partition)."""
    expert_launch_host_s: float = 0.0
    """Host time to launch one local expert's GEMM on a stack that launches the experts one by one after a host
    synchronisation (Stack.expert_gemm_launch `per_expert`: Transformer Engine's multi-stream GroupedLinear under
    Megatron-Core's dropless all-to-all dispatcher, docs/model.md §7.8). Each such GEMM takes at least this long, so
    many small experts run at the host's pace. The physical default 0 is a host that always keeps ahead; DEFAULT
    takes the value `costsim fit` fits to the steady-state MoE rows of those stacks (simulator/data/
    fitted_constants.yaml, with in-sample and leave-one-out errors)."""
    expert_quantize_host_s: float = 0.0
    """Host time FP8 current scaling adds to each local expert's GEMM on a per-expert stack whose `tensor` recipe
    scales by the current amax (Stack.fp8_tensor_scaling `current`): Transformer Engine quantizes each expert's
    tensor apart, a tensor object and three kernels (amax, scale, cast) per expert, where delayed, block and MXFP8
    scaling allocate and launch once for all (docs/model.md §7.8). The physical default is 0; DEFAULT takes the value
    `costsim fit` fits to the FP8 current-scaling rows of those stacks, with expert_launch_host_s held at its fit."""
    step_host_s: float = 0.0
    """Time each optimizer step adds beyond the per-layer model, on stacks with `step_host: fitted` (stacks.yaml): what
    the trainer does once per step with the GPUs waiting (the loss and metric reductions and their host syncs, logging,
    gradient-norm clipping, the optimizer's kernel launches, the next batch's first launches; docs/model.md §7.9). It is
    a fixed cost per step, so it weighs on short steps (small models, many GPUs) and vanishes on long ones. The physical
    default is 0; DEFAULT takes the value `costsim fit` fits to the llm-foundry benchmark README's rows (PyTorch FSDP,
    the `fsdp-2023` stack) that are not `validate public` cases."""
    moe_imbalance: float = 1.1
    """Busiest EP rank's routed tokens / mean, per micro-batch, for dropless MoE. Assumption."""
    memory_reserved_bytes: float = 3 * GIB
    """CUDA context, NCCL buffers and allocator fragmentation per GPU. docs/model.md §3.5 (1-3 GB); upper end."""
    failures_per_gpu_hour: float = 419 / (54 * 24 * 16384)
    """Unexpected interruptions per GPU-hour. Source: Llama 3 §3.3.4, 419 unexpected interruptions in 54 days
    on 16,384 GPUs."""
    checkpoint_blocking_s: float = 10.0
    """Training time blocked per checkpoint (asynchronous checkpointing). Assumption (docs/model.md §9 example)."""
    realization: float = 1.0
    """Realized / modelled step time of published whole runs at the layout practitioners use: what runs lose beyond
    the model's terms (stragglers, data loading, evaluation, hangs, slower early phases, imperfect kernels). The
    physical default 1 is no loss; DEFAULT takes the value `costsim fit` fits to the whole-run track
    (simulator/data/fitted_constants.yaml, with leave-one-out errors). Only the expected estimate uses it."""
    realization_by_generation: tuple[tuple[str, float], ...] = ()
    """(GPU generation, realization) fitted per generation where `costsim fit` had enough whole runs on it; a GPU
    of another generation takes `realization` (all whole runs pooled). for_hardware() applies it."""
    refit_export_bytes_per_s: float = 90 * GIGA
    """Rate at which an RL trainer exports its full BF16 weights for a refit (Megatron-Bridge `export_hf_weights`:
    per-tensor gathers over TP, EP and PP and conversion to Hugging Face tensors), the floor under any refit
    (simulator/run/rl.py; docs/model.md §17.4). Source: NVIDIA-NeMo/RL pull request #1379 (2025-10, merged before NeMo RL
    v0.4), which overlapped the export with the broadcast of split-GPU refits and measured DeepSeek-V3 at 14 s and
    Qwen3-235B-A22B at 5.5 s per refit: 1,342 GB / 14 s = 96 GB/s and 470 GB / 5.5 s = 85 GB/s. 90 GB/s (their
    geometric mean) gives each within 7%; either alone predicts the other within 13% (tests/test_rl_plan.py)."""
    pageable_copy_bytes_per_s: float = 2.2 * GIGA
    """Per GPU, either direction: tensors copied one by one between the GPU and pageable (unpinned) host memory, as an
    RL trainer moves its optimizer states out of the way of colocated generation (NeMo RL's Megatron `move_optimizer`,
    `state[k] = v.to("cpu")` and back with `.to("cuda")`; docs/model.md §17.4). Two measurements of such copies:
    NVIDIA-NeMo/RL issue #3976 (2026-09, one H100, Nsight): that optimizer offload ran 510 device-to-pageable copies,
    4.94 GB in 2.75 s of copy time, '~1.8 GB/s effective D2H'; sgl-project/sglang pull request #32032 (an H200,
    `module.to("cpu")` to pageable memory): 'only ~2.8 GB/s'. 2.2 GB/s is their geometric mean, rounded. The way back
    is assumed as fast."""
    pinned_copy_bytes_per_s: float = 55 * GIGA
    """Per GPU, either direction, to and from pinned host memory (Megatron's parameter buffers offload to a pinned
    copy). Source: the same issue's 1 GiB device-to-host benchmark on its H100 host, '~55 GB/s with pinned memory'."""
    restart_s: float = 600.0
    """Detect, restart, reload and re-warm after a failure. Assumption; with the rate above it gives Llama 3's
    '>90% effective training time' at 16K GPUs (ETTR 0.904)."""

    def to_dict(self) -> dict:
        d = asdict(self)
        by_generation = d.pop("realization_by_generation")
        return d | ({"realization_by_generation": dict(by_generation)} if by_generation else {})

    def for_generation(self, generation: str | None) -> Assumptions:
        """These assumptions with `realization` set to the fitted value of the GPU generation (the pooled value for
        a generation without its own fit) and the per-generation table consumed, so applying it twice is a no-op."""
        by_generation = dict(self.realization_by_generation)
        if not by_generation:
            return self
        value = by_generation.get(generation or "", self.realization)
        return replace(self, realization=value, realization_by_generation=())


BASE = Assumptions()
"""Physical defaults, nothing fitted."""


def fitted_values(doc: object, where: str, fix: str = REFIT_FIX) -> dict:
    """The Assumptions fields a fitted_constants.yaml document sets (fitted_file.parse checks the whole document: every
    constant inside its range, the realization per GPU generation, each fit's sigma and runs); one SpecError naming
    `where`, the key, the value and `fix` otherwise (`costsim fit` checks what it would write the same way)."""
    return fitted_file.parse(doc, where, fix).assumption_values()


def read_fitted(path: Path) -> Assumptions:
    """BASE with the constants of the fitted_constants.yaml at `path`, checked (fitted_file.load); a SpecError naming the
    file and the fix when it is missing, unreadable, not YAML or not what `costsim fit` writes."""
    return replace(BASE, **fitted_file.load(path).assumption_values())


def _fitted_file() -> fitted_file.FittedConstantsFile | None:
    """The shipped fitted constants file, checked; while `costsim fit` refits it (data_files.REFITTING), None when it
    cannot be read: the fit starts from BASE and does not need the file it replaces."""
    try:
        return fitted_file.load(FITTED_PATH)
    except SpecError:
        if data_files.REFITTING:
            return None
        raise


def _fitted() -> Assumptions:
    """The shipped fitted constants (BASE while `costsim fit` refits a file that cannot be read, _fitted_file)."""
    doc = _fitted_file()
    return BASE if doc is None else replace(BASE, **doc.assumption_values())


def fitted_document(path: Path | None = None) -> fitted_file.FittedConstantsFile:
    """The checked fitted constants file at `path` (default: the shipped one, read once when this module was imported):
    what the uncertainty band draws each fitted constant's spread from. Never a fallback: a file that cannot be read is
    its SpecError, also where `costsim fit` left the physical defaults in DEFAULT."""
    if path is None:
        return FITTED_FILE if FITTED_FILE is not None else fitted_file.load(FITTED_PATH)
    return fitted_file.load(path)


FITTED_FILE = _fitted_file()
"""The shipped fitted_constants.yaml, checked (None only while `costsim fit` refits a file that cannot be read)."""
DEFAULT = BASE if FITTED_FILE is None else replace(BASE, **FITTED_FILE.assumption_values())
"""What estimates use: the physical defaults with the fitted constants (gemm_sustain, realization,
expert_launch_host_s, expert_quantize_host_s, step_host_s)."""
