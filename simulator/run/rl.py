"""The RL step model (docs/model.md §17): one GRPO-style rollout and the training on it, from the models costsim
already has. Each part is a function of its own so it can be checked alone:

- `generate`: the rollout's responses decoded by the serving model (§16) on the generation GPUs: the layout that
  finishes the rollout soonest among those that fit in memory at the responses' mean context, with a batch per GPU
  of at most the responses spread over the generation GPUs; the prompts prefilled first; the slowest response (the
  long-tail factor x the mean, capped) decoding on after the others have finished.
- `logprob`: forward-only passes (§8.4) over every response (reference, old policy, reward models).
- `train_step`: one optimizer step of the training step model (§8) on the step's responses at prompt + response
  tokens each, at the stage's training layout.
- `refit_s`, `colocated_refit_s`: every full weight of the model reaching the GPUs that generate (NeMo RL's export
  of Megatron weights to vLLM): one broadcast over all GPUs (split), an all-gather over the training shards
  (colocated).
- `combine`: a rollout's wall time and the GPU-seconds of each part: colocated or split on-policy, the parts one
  after another; split one-step off-policy, generation overlapping training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.errors import InfeasibleError, LayoutError
from simulator.inputs.assumptions import Assumptions
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.model.comms import Fabric, Group, collective_s
from simulator.model.efficiency import DeviceRates
from simulator.model.flops import parameter_counts
from simulator.model.forward import forward_context, forward_pass
from simulator.model.layout import Layout
from simulator.model.serve.decode import Candidates, Setup, memory_per_gpu, step_s, throughput
from simulator.model.serve.search import Given, best_prefill, decode_candidates, prefill_points
from simulator.units import BYTES_PER_ELEMENT, GIB

SPLIT_PARTS = ("generation", "logprob", "training", "refit", "idle")
"""The parts of an RL stage's GPU-hours (docs/model.md §17.5); `failures` (ETTR, §9) is added per stage."""


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class Generation:
    """One rollout's generation on the generation GPUs."""

    responses: float
    gpus: int
    prompt_len: float
    response_len: float
    """Mean generated tokens per response."""
    tail_len: float
    """Tokens of the slowest response: min(cap, long-tail factor x mean)."""
    layout: dict
    """The decode deployment chosen: tp, dp, pp, gpus, batch per GPU, precision."""
    tokens_per_s_per_gpu: float
    """Decode output tokens/s per GPU at that layout (MTP included)."""
    tokens_per_s_per_user: float
    memory_per_gpu_bytes: float
    weight_bytes_per_gpu: float
    """The engine's weights on one GPU at that layout (what a sleeping engine copies to host and back, §17.4)."""
    prefill_s: float
    bulk_s: float
    """Decoding the responses' mean length: responses x mean / (GPUs x tokens/s per GPU)."""
    tail_s: float
    """The slowest response's tokens beyond the mean, at the per-sequence speed: (tail - mean) / tokens/s per user."""

    @property
    def seconds(self) -> float:
        return self.prefill_s + self.bulk_s + self.tail_s

    @property
    def busy_s(self) -> float:
        """Time the generation GPUs work at their batch; the tail is counted as idle (most sequences are done)."""
        return self.prefill_s + self.bulk_s

    def to_dict(self) -> dict:
        return {
            "responses": self.responses,
            "gpus": self.gpus,
            "prompt_len": self.prompt_len,
            "mean_response_len": self.response_len,
            "tail_response_len": self.tail_len,
            "layout": self.layout,
            "output_tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
            "tokens_per_s_per_user": self.tokens_per_s_per_user,
            "memory_per_gpu_gib": self.memory_per_gpu_bytes / GIB,
            "weight_gib_per_gpu": self.weight_bytes_per_gpu / GIB,
            "prefill_s": self.prefill_s,
            "bulk_s": self.bulk_s,
            "tail_s": self.tail_s,
            "seconds": self.seconds,
        }


def generation_setup(model: ModelSpec, hw: HardwareProfile, rates: DeviceRates, assumptions: Assumptions,
                     prompt_len: float, response_len: float, kv_dtype: str = "bf16", mtp_depth: int = 0,
                     mtp_accept: float = 0.0, two_batch_overlap: bool = True) -> Setup:  # fmt: skip
    """The serving model's Setup for responses of `response_len` tokens after prompts of `prompt_len` (the KV cache
    held at the mean context prompt + response / 2, docs/model.md §16.2)."""
    return Setup(model, hw, rates, assumptions, max(1, round(prompt_len)), max(1, round(response_len)), kv_dtype,
                 mtp_depth, mtp_accept, ep_overlap=two_batch_overlap)  # fmt: skip


def _candidates(s: Setup, given: Given, precision: str, batch_cap: float) -> Candidates:
    """Every decode layout of the free fields, with the batch grid cut at `batch_cap` sequences per GPU (the
    rollout's responses over the GPUs) and that cap itself as a batch. A TP group decodes at least one sequence: where
    the responses are fewer than the TP groups, one sequence per group is the batch (the other groups idle), not a
    fraction of one (a review found 1/8 of a sequence per engine decoding faster than a whole one)."""
    fields = ("tp", "dp", "pp", "batch", "precision")
    grid = decode_candidates(s, Given(given.tp, given.dp, given.pp, None, None), (precision,))
    parts = [grid, decode_candidates(s, Given(given.tp, given.dp, given.pp, batch_cap, None), (precision,))]
    engine_cap = given.max_replica_sequences
    if engine_cap is not None and given.tp is not None:
        # The engine's own cap as a batch of its own where the TP is stated (vLLM max_num_seqs over TP GPUs).
        parts.append(decode_candidates(s, Given(given.tp, given.dp, given.pp, engine_cap / given.tp, None), (precision,)))
    c = Candidates(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))
    per_group = c.tp * c.batch  # sequences a TP group decodes
    keep = ((c.batch <= batch_cap * (1 + 1e-9)) | (per_group <= 1 + 1e-9)) & (per_group >= 1 - 1e-9)
    if engine_cap is not None:
        keep &= per_group <= engine_cap * (1 + 1e-9)
    return Candidates(*(getattr(c, f)[keep] for f in fields))


def generate(s: Setup, responses: float, gpus: int, tail_len: float, precision: str, given: Given,
             memory_fraction: float = 1.0) -> Generation:  # fmt: skip
    """A rollout of `responses` responses on `gpus` GPUs (docs/model.md §17.2).

    Every decode layout (TP x DP x PP) that divides the GPUs is tried at the largest batch per GPU that fits in
    `memory_fraction` of a GPU's memory, up to responses / gpus (an engine admits every sequence it has room for);
    the layout with the shortest bulk + tail is taken."""
    batch_cap = responses / gpus
    c = _candidates(s, given, precision, batch_cap)
    memory = memory_per_gpu(s, c)
    capacity = memory_fraction * s.hw.memory_bytes
    divides = np.mod(gpus, c.gpus) == 0
    fits = (memory["total"] <= capacity) & divides
    if not divides.any():
        stated = (("tp", given.tp), ("dp", given.dp), ("pp", given.pp))
        fields = ", ".join(f"{k} {'searched' if v is None else v}" for k, v in stated)
        raise LayoutError(
            f"no decode layout of the fields given ({fields}) divides the {gpus:,} generation GPUs; give a "
            "generation_layout whose tp x dp x pp divides them, or leave fields out"
        )
    if not fits.any():
        i = int(np.argmin(np.where(divides, memory["total"], np.inf)))
        weights, kv = memory["weights"][i], memory["kv_cache"][i]
        rest = memory["total"][i] - weights - kv
        raise InfeasibleError(
            f"the {gpus:,} generation GPUs cannot hold {s.model.name}: the smallest decode layout that divides them "
            f"(TP{c.tp[i]:.0f} x DP{c.dp[i]:.0f} x PP{c.pp[i]:.0f}) needs {memory['total'][i] / GIB:,.1f} GiB per GPU "
            f"(weights {weights / GIB:,.1f} GiB, KV cache {kv / GIB:,.1f} GiB, activations and reserve {rest / GIB:,.1f} "
            f"GiB) against {capacity / GIB:,.1f} GiB; {_memory_fixes(s, precision, kv, memory['total'][i] - capacity)}"
        )
    fits &= largest_batch(c, fits)
    step = step_s(s, c)["total"]
    per_gpu, per_user = throughput(s, c, step)
    mean = float(s.output_len)
    # No faster than one response alone decodes its mean (fewer responses than TP groups leave groups idle).
    bulk = np.maximum(responses * mean / (gpus * per_gpu), mean / per_user)
    tail = max(0.0, tail_len - mean) / per_user
    total = np.where(fits, bulk + tail, np.inf)
    i = int(np.argmin(total))
    layout = {"tp": int(c.tp[i]), "dp": int(c.dp[i]), "pp": int(c.pp[i]), "gpus": int(c.gpus[i]),
              "batch_per_gpu": float(c.batch[i]), "precision": precision}  # fmt: skip
    prefill_s = _prefill_s(s, c, i, responses, gpus, precision)
    return Generation(responses, gpus, float(s.input_len), mean, max(tail_len, mean), layout, float(per_gpu[i]),
                      float(per_user[i]), float(memory["total"][i]), float(memory["weights"][i]), prefill_s, float(bulk[i]),
                      float(tail[i]))  # fmt: skip


def _memory_fixes(s: Setup, precision: str, kv_bytes: float, over_bytes: float) -> str:
    """What would make a rollout fit, leaving out what the stage already does or what cannot be enough (a review found
    fp8 advised to a stage generating in fp8, and an FP8 KV cache to one whose cache was 0.1 GiB of a 3.8 GiB excess)."""
    fixes = ["give more GPUs"]
    narrower = [p for p in ("fp8", "fp4") if s.hw.has_dtype(p) and BYTES_PER_ELEMENT[p] < BYTES_PER_ELEMENT[precision]]
    if narrower:
        fixes.append(f"a narrower generation_precision ({' or '.join(narrower)})")
    if s.kv_dtype == "bf16" and kv_bytes / 2 >= over_bytes:
        fixes.append("kv_dtype fp8")
    if kv_bytes >= over_bytes:
        fixes.append("shorter responses (mean_response_len, max_response_len)")
    return ", ".join(fixes[:-1]) + f" or {fixes[-1]}" if len(fixes) > 1 else fixes[0]


def largest_batch(c: Candidates, fits: np.ndarray) -> np.ndarray:
    """True for the candidate with the largest batch that fits, one per layout (TP, DP, PP, precision)."""
    out = np.zeros(len(c), dtype=bool)
    idx = np.nonzero(fits)[0]
    if len(idx) == 0:
        return out
    keys = np.array([f"{c.tp[i]:.0f}/{c.dp[i]:.0f}/{c.pp[i]:.0f}/{c.precision[i]}" for i in idx])
    order = np.lexsort((c.batch[idx], keys))
    sorted_keys = keys[order]
    last = np.append(sorted_keys[1:] != sorted_keys[:-1], True)
    out[idx[order[last]]] = True
    return out


def _prefill_s(s: Setup, c: Candidates, i: int, responses: float, gpus: int, precision: str) -> float:
    """The prompts of the rollout prefilled on the decode layout (every response's prompt computed: conservative where
    an engine shares one prompt's prefill among its samples)."""
    tp, dp, pp = int(c.tp[i]), int(c.dp[i]), int(c.pp[i])  # the decode layout's TP x DP x PP GPUs, experts over TP x DP
    point = best_prefill(prefill_points(s, ((tp, dp),), (precision,), 0.0, None, (pp,)), float("inf"), None)
    return responses * s.input_len / (gpus * point.input_tokens_per_s_per_gpu)


# --------------------------------------------------------------------------- log-prob passes


@dataclass(frozen=True)
class Logprob:
    passes: int
    tokens: float
    """Tokens of one pass over the rollout (responses x (prompt + response))."""
    gpus: int
    tokens_per_s_per_gpu: float
    """Forward-only throughput at the layout used (the trainer's, pipeline fill included)."""
    layout: dict
    reference_swap_s: float = 0.0
    """Swapping the reference model's weights in from host memory and the policy's back (reference_swap_s)."""

    @property
    def forward_s(self) -> float:
        return self.passes * self.tokens / (self.gpus * self.tokens_per_s_per_gpu) if self.passes else 0.0

    @property
    def seconds(self) -> float:
        return self.forward_s + self.reference_swap_s

    def to_dict(self) -> dict:
        return {"passes": self.passes, "tokens_per_pass": self.tokens, "gpus": self.gpus,
                "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu, "layout": self.layout,
                "reference_swap_s": self.reference_swap_s, "seconds": self.seconds}  # fmt: skip


def reference_swap_s(weight_bytes: float, assumptions: Assumptions) -> float:
    """Seconds per step to run the reference pass on the trainer's own GPUs: the reference weights wait in pinned host
    memory, the policy's weights go out to pinned memory, the reference's come in, and after the pass the policy's come
    back: three copies of a training GPU's weights at the pinned rate.

    NeMo RL's Megatron worker (nemo_rl/models/policy/megatron_policy_worker.py at cff17f8, v0.4): the reference
    checkpoint is held as `item.to(device="cpu", non_blocking=True)` copies, and `use_reference_model` saves the model's
    state dict the same way and swaps with `load_state_dict` on entry and exit. A non-blocking device-to-host `to()`
    allocates its destination pinned (PyTorch `_to_copy`), so all three run at `pinned_copy_bytes_per_s`."""
    return 3.0 * weight_bytes / assumptions.pinned_copy_bytes_per_s


def trainer_forward_s(model: ModelSpec, rates: DeviceRates, assumptions: Assumptions, responses: float, seq_len: int,
                      layout: Layout, precision: str, fp8_recipe: str | None = None) -> float:  # fmt: skip
    """Seconds of one forward-only pass over `responses` sequences through the trainer as it is laid out
    (docs/model.md §17.3): each pipeline takes its share in micro-batches of the layout's size, each micro-batch a
    forward pass (§8.4) on a TP x CP group with experts over EP, split over the PP stages; a forward-only pipeline fills
    once, so m micro-batches take (m + PP - 1) stage times, or (m + (PP - 1) / v) with v interleaved virtual stages."""
    mb = layout.micro_batch_size
    ctx = forward_context(model, rates, seq_len, mb, tp=layout.tp, ep=layout.ep, cp=layout.cp, precision=precision,
                          fp8_recipe=fp8_recipe, assumptions=assumptions)  # fmt: skip
    stage_s = forward_pass(ctx).seconds / layout.pp
    micro_batches = math.ceil(responses / (layout.dp * mb))
    return (micro_batches + (layout.pp - 1) / layout.vpp) * stage_s


def logprob(model: ModelSpec, rates: DeviceRates, assumptions: Assumptions, passes: int, responses: float,
            seq_len: int, gpus: int, layout: Layout, precision: str, fp8_recipe: str | None = None) -> Logprob:  # fmt: skip
    """`passes` forward passes over every response of the rollout on the training GPUs, at the training layout
    (trainer_forward_s)."""
    tokens = responses * seq_len
    described = layout.to_dict() | {"precision": precision}
    if not passes:
        return Logprob(0, tokens, gpus, 0.0, described)
    seconds = trainer_forward_s(model, rates, assumptions, responses, seq_len, layout, precision, fp8_recipe)
    return Logprob(passes, tokens, gpus, tokens / (gpus * seconds), described)


# --------------------------------------------------------------------------- refit


@dataclass(frozen=True)
class Offload:
    """The trainer's state moved to host memory and back around a colocated rollout (docs/model.md §17.4)."""

    optimizer_bytes: float
    weight_bytes: float
    to_host_s: float
    """Before the refit: optimizer states to pageable memory, weights to their pinned copy."""
    back_s: float
    """Before training: the same bytes back."""

    def to_dict(self) -> dict:
        return {"optimizer_bytes": self.optimizer_bytes, "weight_bytes": self.weight_bytes, "to_host_s": self.to_host_s,
                "back_s": self.back_s}  # fmt: skip


def out_and_back_s(offload: Offload | None) -> tuple[float, float]:
    """(seconds out, seconds back) of an offload; (0, 0) where there is none."""
    return (offload.to_host_s, offload.back_s) if offload else (0.0, 0.0)


def training_state_offload(optimizer_bytes: float, weight_bytes: float, assumptions: Assumptions) -> Offload:
    """Seconds to move a training GPU's optimizer states (one tensor at a time, to pageable host memory) and its
    weights (to a pinned host copy) out before the refit, and the same back before training.

    NeMo RL's Megatron worker (nemo_rl/models/policy/megatron_policy_worker.py at cff17f8, v0.4): colocated,
    `offload_before_refit` frees the gradient buffers and moves every optimizer state tensor with `v.to("cpu")`,
    `offload_after_refit` copies the parameter buffers to pinned memory (Megatron's `offload_to_cpu`), and
    `prepare_for_training` brings both back (`v.to("cuda")`); with its precision-aware optimizer (grpo_math_1B.yaml)
    the states are the fp32 master weights and both Adam moments, the optimizer bytes the memory model counts (§3.1)."""
    one_way = optimizer_bytes / assumptions.pageable_copy_bytes_per_s + weight_bytes / assumptions.pinned_copy_bytes_per_s
    return Offload(optimizer_bytes, weight_bytes, one_way, one_way)


def engine_sleep_wake_s(engine_weight_bytes: float, assumptions: Assumptions) -> float:
    """Seconds per step for a colocated rollout engine to give its GPU memory to the trainer and take it back: its
    weights to pinned host memory after generation and back before the refit overwrites them (two copies at the
    pinned rate); the KV cache is dropped, not copied.

    NeMo RL v0.4 (nemo_rl/models/generation/vllm/vllm_worker.py at cff17f8): colocated, `finish_generation` calls
    vLLM's `sleep(level=1)` and `refit_policy_generation` calls `wake_up(tags=["weights"])` before streaming the new
    weights in. vLLM's sleep mode (vllm/device_allocator/cumem.py, CuMemAllocator) backs every weight allocation up
    with `cudaMemcpy` into a `torch.empty(..., pin_memory=True)` host tensor and copies it back on wake-up."""
    return 2.0 * engine_weight_bytes / assumptions.pinned_copy_bytes_per_s


def refit_model_bytes(model: ModelSpec) -> float:
    """Bytes a refit moves: every weight of the model (MTP modules excluded) in BF16, the dtype the trainer exports.

    NeMo RL v0.4 (NVIDIA-NeMo/RL nemo_rl/models/policy/megatron_policy_worker.py at cff17f8) refits vLLM from
    Megatron through Megatron-Bridge's `export_hf_weights`, which yields every Hugging Face tensor whole (gathered over
    TP and EP, broadcast over PP) in the policy's dtype; the vLLM workers keep their shards of each (docs/model.md
    §17.4)."""
    return parameter_counts(model).total * BYTES_PER_ELEMENT["bf16"]


def refit_s(model_bytes: float, gpus: int, fabric: Fabric, export_bytes_per_s: float) -> float:
    """Weight refit on split GPUs: every full weight (`refit_model_bytes`) reaches every GPU of the job, timed as one
    broadcast of those bytes over all `gpus` (nccl-tests doc/PERFORMANCE.md: a broadcast's bus bandwidth is its
    algorithm bandwidth, factor 1), at the bus bandwidth of a group that size (§4.2: NVLink inside one node,
    min(NVLink, GPUs per node x NIC) across nodes), and no faster than the trainer exports the weights
    (`export_bytes_per_s`, Assumptions.refit_export_bytes_per_s): the export and the broadcast overlap, bucket by
    bucket (NVIDIA-NeMo/RL pull request #1379), so the slower of the two sets the time.

    NeMo RL v0.4, the same worker file: colocated (colocated_refit_s), `stream_weights_via_ipc_zmq` hands every
    exported full tensor to the vLLM worker on the same GPU (CUDA IPC), so every training rank assembles the whole
    model from its TP, EP and PP peers; split (this function), `broadcast_weights_for_collective` broadcasts every
    full tensor from training rank 0 over a group of all training and generation ranks (nemo_rl/algorithms/grpo.py:
    world_size = train + inference world sizes). The optimizer offload around the refit is not modelled."""
    return _no_faster_than_export(collective_s("broadcast", model_bytes, Group(gpus, 1), fabric), model_bytes, export_bytes_per_s)


def colocated_refit_s(model_bytes: float, model_parallel_gpus: int, fabric: Fabric, export_bytes_per_s: float) -> float:
    """Weight refit of a colocated stage: each training rank assembles every full weight from the ranks that shard
    the model with it (PP x lcm(TP, EP) ranks: TP shards dense weights, the EP group on the folded expert grid the
    experts) and hands it to the vLLM worker on its own GPU over CUDA IPC (NeMo RL v0.4 `stream_weights_via_ipc_zmq`,
    see refit_s), timed as an all-gather of the whole model's bytes over a group that size, and no faster than the
    export that produces those tensors (`export_bytes_per_s`, the same export as on split GPUs). Where one GPU holds
    the whole model there is nothing to gather, but the export still runs. The IPC handoff itself is not modelled."""
    gather_s = collective_s("all_gather", model_bytes, Group(model_parallel_gpus, 1), fabric)
    return _no_faster_than_export(gather_s, model_bytes, export_bytes_per_s)


def _no_faster_than_export(transport_s: float, model_bytes: float, export_bytes_per_s: float) -> float:
    """A refit's time: its transport overlaps the trainer's export bucket by bucket, so the slower of the two sets it."""
    return max(float(transport_s), model_bytes / export_bytes_per_s)


# --------------------------------------------------------------------------- one rollout


@dataclass(frozen=True)
class Rollout:
    """One rollout and the training on it: wall seconds and GPU-seconds by part."""

    wall_s: float
    gpu_s: dict[str, float]
    """GPU-seconds by part (SPLIT_PARTS); they sum to wall_s x all GPUs."""
    schedule: str


ONE_STEP_OFF = "one-step off-policy"
TRAINER_SIDE = "logprob prep + logprob + training prep + training"
"""The trainer's side of a step as a schedule names it: the passes and the state's trips around them (validate rl's
logprob_prep and training_prep; a trip not taken is 0)."""


def combine(generation_busy_s: float, generation_tail_s: float, logprob_s: float, training_s: float, refit_s: float,
            num_gpus: int, generation_gpus: int, colocated: bool, off_policy: bool) -> Rollout:  # fmt: skip
    """Wall time and GPU-seconds of one rollout (docs/model.md §17.5).

    colocated (every GPU generates, then scores, then trains): wall = generation + logprob + training + refit.
    split on-policy: the same sum; each side idles while the other works.
    split one-step off-policy: generation of the next rollout overlaps scoring and training of this one:
    wall = max(generation, logprob + training) + refit.
    `logprob_s` and `training_s` carry the trainer's state trips before them (TRAINER_SIDE names them), `refit_s` the
    state's way out and the engine's wake."""
    generation_s = generation_busy_s + generation_tail_s
    # Colocated, every GPU does every phase; split, each side does its own (and refit touches all of them).
    gen_gpus, train_gpus = (num_gpus, num_gpus) if colocated else (generation_gpus, num_gpus - generation_gpus)
    if off_policy and not colocated:
        wall = max(generation_s, logprob_s + training_s) + refit_s
        schedule = f"split GPUs, {ONE_STEP_OFF}: step = max(generation, {TRAINER_SIDE}) + refit"
    else:
        wall = generation_s + logprob_s + training_s + refit_s
        setting = "colocated" if colocated else "split GPUs"
        schedule = f"{setting}, synchronous: step = generation + {TRAINER_SIDE} + refit"
    gpu = {
        "generation": gen_gpus * generation_busy_s,
        "logprob": train_gpus * logprob_s,
        "training": train_gpus * training_s,
        "refit": num_gpus * refit_s,
    }
    gpu["idle"] = num_gpus * wall - sum(gpu.values())
    return Rollout(wall, gpu, schedule)
