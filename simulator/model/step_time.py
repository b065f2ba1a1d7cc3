"""Step time of one training step for a model, job, layout and device.

Per pipeline rank and micro-batch, each item (embedding, dense layer, MoE layer, MTP module,
LM head) costs forward (F), backward (B) and weight-gradient (W, part of B) time: GEMMs through
the roofline efficiency model, the attention core at the flash-attention rate, memory-bound
kernels at HBM bandwidth, and the exposed part of TP, CP and EP communication (docs/model.md §5.1:
exposed = max(0, t_comm - overlap · window) where the software overlaps that kind).

    T_step = m · (F + B)_slowest rank + bubble(schedule) + exposed PP + exposed DP + optimizer

Every formula takes a Layout or a Layouts (numpy arrays, one entry per candidate) and branches only
on model and job facts, never on layout values (np.where / np.select instead). `evaluate` times many
layouts at once for the search; `step` is `evaluate` on one layout.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from simulator.inputs.assumptions import Assumptions
from simulator.inputs.job import Job, tensor_scaled_fp8
from simulator.inputs.specs import ModelSpec
from simulator.model.comms import Group, collective_s, moe_dispatch_combine_s
from simulator.model.efficiency import DeviceRates
from simulator.model.flops import ParamCounts, attention_core_dims, head_gemm, layer_kinds
from simulator.model.layer_work import LayerWork, layer_work
from simulator.model.layout import Layout, Layouts, data_parallel_sizes, folded_expert_grid, micro_batches
from simulator.model.memory import (
    LOGIT_BYTES,
    MemoryBreakdown,
    activation_bytes_per_token,
    layer_params_on_rank,
    model_state_bytes,
    optimizer_step_bytes_per_param,
    state_bytes_per_param,
    unfused_attention_bytes_per_token,
)
from simulator.model.number_formats import fp4_eligible
from simulator.model.pipeline import bubble_s, in_flight_micro_batches, stage_items
from simulator.units import BLOCK_FP8_BYTES_PER_ELEMENT, BYTES_PER_ELEMENT, DROPOUT_BYTES_PER_ELEMENT
from simulator.vocab import RECOMPUTE_MODES, SCHEDULES

# Memory-bound traffic per token and layer, in units of (hidden size x bytes per element):
# two norms (read + write) and two residual adds (read 2, write 1), forward (docs/model.md §7.6).
NORM_RESIDUAL_PASSES = 2 * 2 + 2 * 3
# Cross-entropy reads and writes each logit several times in fp32 (assumption: ~30 B per logit, docs/model.md §7.6).
CROSS_ENTROPY_BYTES_PER_LOGIT = 30.0
# The embedding's weight in the stage balance: a millionth of the heaviest item, so it stays on the first stage
# without counting as a layer.
EMBED_BALANCE_WEIGHT = 1e-6
# FP8 quantize/transpose passes per GEMM input element (X, dY, X^T, dY^T; assumption, docs/model.md §7.6).
FP8_QUANTIZE_BYTES_PER_ELEMENT = 3.0
# Bias of a GEMM (docs/model.md §7.6): the forward add runs in the GEMM epilogue (cuBLASLt bias epilogue behind
# torch addmm; Megatron's bias-GeLU and bias-dropout-add fusions); the backward reduces the output gradient for the
# bias gradient (Megatron core/tensor_parallel/layers.py: grad_output.sum(dim=0)), reading 2 B per output element
# once per step. Charged per forward as that read / 3, since callers charge the backward at twice the forward.
BIAS_GRAD_BYTES_PER_ELEMENT = BYTES_PER_ELEMENT["bf16"] / 3
# ZeRO-2/3 (FSDP SHARD_GRAD_OP/FULL_SHARD, docs/model.md §4.7): autograd writes each weight gradient in BF16 and FSDP
# casts it to the reduce dtype before its per-micro-batch reduce-scatter (PyTorch FSDP MixedPrecision(reduce_dtype=...);
# fp32 in Llama 3 §3.3.2 and Composer's DEFAULT, BF16 in Composer's PURE, where the cast is a no-op): read 2 B, write
# the reduce dtype's bytes per parameter and micro-batch. Stacks that keep the full gradient (ZeRO 0-1 here, Megatron)
# accumulate into the fp32 main gradient inside the weight-gradient GEMM (--gradient-accumulation-fusion), with no
# separate cast.
GRADIENT_BYTES_PER_ELEMENT = BYTES_PER_ELEMENT["bf16"]
# ZeRO-2/3 (FSDP, docs/model.md §7.6): before the reduce-scatter FSDP divides the whole unsharded gradient in
# place by its pre-divide factor, which exceeds 1 for every DP group of 2 or more (PyTorch
# torch/distributed/algorithms/_comm_hooks/default_hooks.py::reduce_scatter_hook, `grad.div_(gradient_predivide_factor)`;
# DefaultState._get_gradient_predivide_factor): read and write the reduce-dtype gradient, per weight and
# micro-batch. The post-divide runs on the 1/d shard only and is left out.
# Elementwise kernels launched per layer and micro-batch forward when unfused (assumption, docs/model.md §7.6): two
# norms and two residual adds; RoPE on q and k; the activation (gated: activation and product); two residual
# dropouts; MoE routing softmax and top-k, permute and un-permute. Backward launches twice as many, plus one
# bias-gradient reduction per biased GEMM. Each costs kernel_overhead_s.
NORM_RESIDUAL_KERNELS = 4
ROPE_KERNELS = 2
DROPOUT_KERNELS = 2
MOE_ROUTING_KERNELS = 4
# Cross-entropy kernels per micro-batch: forward upcast, log-softmax, loss; backward their three gradients.
CROSS_ENTROPY_KERNELS = 6


@dataclass(frozen=True)
class ItemTime:
    """One item's time per micro-batch on one rank, seconds."""

    forward_s: float = 0.0
    backward_s: float = 0.0
    weight_grad_s: float = 0.0
    exposed_comm_s: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)

    def __add__(self, other: ItemTime) -> ItemTime:
        parts = dict(self.parts)
        for k, v in other.parts.items():
            parts[k] = parts.get(k, 0.0) + v
        return ItemTime(
            self.forward_s + other.forward_s,
            self.backward_s + other.backward_s,
            self.weight_grad_s + other.weight_grad_s,
            self.exposed_comm_s + other.exposed_comm_s,
            parts,
        )


@dataclass(frozen=True)
class Context:
    model: ModelSpec
    job: Job
    layout: Layout
    rates: DeviceRates
    assumptions: Assumptions

    @functools.cached_property
    def work(self) -> Mapping[str, LayerWork]:
        """Each layer kind's GEMMs and attention FLOPs per token (built once per model and sequence length; kept on
        the context, since looking it up hashes the model spec)."""
        return layer_work(self.model, self.job.seq_len)  # type: ignore[return-value]

    @property
    def tokens_per_micro_batch(self) -> float:
        """Tokens one GPU sees per micro-batch: the sequence is split by CP; SP gathers it for GEMMs."""
        return self.layout.micro_batch_size * self.job.seq_len / self.layout.cp

    def gemm_s(self, m, n, k, fp8_eligible: bool, count=1.0, fp4: bool = False):
        """Time of weight GEMMs in the job's precision; FP8 with block scaling runs at the block-scaling factor.
        `fp4`: a GEMM that a serving pass in NVFP4 runs in FP4 (Job.fp4_linears and number_formats.fp4_eligible)."""
        dtype = "fp4" if fp4 and self.job.fp4_linears else self.gemm_dtype(fp8_eligible)
        block = dtype == "fp8" and self.job.fp8_recipe == "block"
        factor = self.assumptions.fp8_gemm_factor if block else 1.0
        return self.rates.gemm_s(m, n, k, dtype, count, factor, weight_gemm=True)

    def gemm_dtype(self, fp8_eligible: bool) -> str:
        if self.job.precision == "fp8" and fp8_eligible:
            return "fp8"
        return "fp16" if self.job.precision == "fp16" else "bf16"


# ------------------------------------------------------------------ groups


def tp_group(lay: Layout) -> Group:
    return Group(lay.tp, 1)


def cp_group(lay: Layout) -> Group:
    return Group(lay.cp, lay.tp)


def ep_group(lay: Layout) -> Group:
    """EP ranks: consecutive (layout.folded_expert_grid: Megatron's expert rank order with expert TP 1 puts EP first)."""
    return Group(lay.ep, 1)


def dp_group(lay: Layout, expert: bool = False) -> Group:
    """Replicas of a weight: dense ones over DP x CP past the TP ranks; experts past the EP ranks of the folded grid
    (past the TP ranks with EP 1, where they are TP-sharded as dense weights are)."""
    dense, experts = data_parallel_sizes(lay)
    if not expert:
        return Group(dense, lay.tp)
    return Group(experts, np.where(folded_expert_grid(lay), lay.ep, lay.tp)[()])


def pp_group(lay: Layout) -> Group:
    return Group(2, lay.tp * lay.cp * lay.dp)


# ------------------------------------------------------------------ per item


@dataclass(frozen=True)
class GemmTimes:
    """The weight GEMMs of one layer per micro-batch on one GPU, by pass, seconds."""

    forward_s: float
    input_grad_s: float
    """dX = dY . W^T: inner dimension N (the forward's output width)."""
    weight_grad_s: float
    """dW = X^T . dY: inner dimension M (the tokens)."""
    forward_parts: dict[str, float]
    """Forward seconds by component."""
    step_parts: dict[str, float]
    """Forward + both gradients by component."""


def _gemm_time(ctx: Context, kind: str, gradients: bool = True) -> GemmTimes:
    """Weight-GEMM seconds of one layer per micro-batch: the forward [M x K].[K x N] and its two gradients, which
    have the same FLOPs but other inner dimensions (docs/model.md §7.1, §7.4). `gradients` False (a forward-only
    pass): the two gradients are not timed and read 0."""
    lay, t = ctx.layout, ctx.tokens_per_micro_batch
    fwd = dgrad = wgrad = 0.0
    forward_parts: dict[str, float] = {}
    step_parts: dict[str, float] = {}
    moe = ctx.model.moe
    for g in ctx.work[kind].gemms:
        k, n, m, count = g.k, g.n, t, 1.0
        if g.routed and moe is not None:
            local_experts = moe.n_routed_experts / lay.ep
            # Tokens per local expert on the busiest EP rank: t·k·EP/E, times the routing imbalance.
            m = t * g.multiplicity * lay.ep / moe.n_routed_experts * ctx.assumptions.moe_imbalance
            count = local_experts
            # Without EP the experts are TP-sharded; with EP (no expert TP) the TP ranks split the tokens.
            expert_tp = lay.ep == 1
            if g.sharding == "column":
                n = np.where(expert_tp, n / lay.tp, n)
            else:
                k = np.where(expert_tp, k / lay.tp, k)
            m = np.where(expert_tp, m, m / lay.tp)
        elif g.sharding in ("column", "vocab"):
            n = n / lay.tp
        elif g.sharding == "row":
            k = k / lay.tp
        if gradients:
            f, d, w = _gemm_passes_s(ctx, m, n, k, g.fp8_eligible, count)
        else:
            f, d, w = ctx.gemm_s(m, n, k, g.fp8_eligible, count, fp4_eligible(g, ctx.model, kind)), 0.0, 0.0
        if g.routed and moe is not None and ctx.rates.expert_launch_host_s > 0:
            host_s = expert_host_s(ctx.rates, ctx.job.precision, ctx.job.fp8_recipe)
            f, d, w = (_host_paced_s(x, count, host_s) for x in (f, d, w))
        fwd, dgrad, wgrad = fwd + f, dgrad + d, wgrad + w
        forward_parts[g.component] = forward_parts.get(g.component, 0.0) + f
        step_parts[g.component] = step_parts.get(g.component, 0.0) + f + d + w
    return GemmTimes(fwd, dgrad, wgrad, forward_parts, step_parts)


def expert_host_s(rates: DeviceRates, precision: str, fp8_recipe: str | None) -> float:
    """Least host time per local expert GEMM on a per-expert stack (docs/model.md §7.8): the launch, plus the expert's
    own quantization where FP8 with the tensor recipe scales by the current amax (0 where the stack does not)."""
    return rates.expert_launch_host_s + (rates.expert_quantize_host_s if tensor_scaled_fp8(precision, fp8_recipe) else 0.0)


def _host_paced_s(gpu_s: float | np.ndarray, count: float | np.ndarray, launch_s: float) -> np.ndarray:
    """Seconds of `count` expert GEMMs launched one by one from a host that must first learn the token counts (a
    dropless dispatcher's host sync): each takes the longer of its GPU time and the host's launch time
    (docs/model.md §7.8). A pass that runs no such GEMM (gpu_s 0: a forward-only pass's gradients) costs nothing."""
    return np.where(np.asarray(gpu_s) > 0, np.maximum(gpu_s, count * launch_s), gpu_s)


def _gemm_passes_s(ctx: Context, m, n, k, fp8_eligible: bool, count=1.0):
    """(forward, input-gradient, weight-gradient) seconds of a GEMM [m x k].[k x n]: the gradients are
    dY[m x n].W^T[n x k] and X^T[k x m].dY[m x n]."""
    return (
        ctx.gemm_s(m, n, k, fp8_eligible, count),
        ctx.gemm_s(m, k, n, fp8_eligible, count),
        ctx.gemm_s(k, n, m, fp8_eligible, count),
    )


def memory_bound_bytes(ctx: Context, kind: str) -> float:
    """Forward HBM traffic of the elementwise kernels of one layer per micro-batch on one GPU."""
    model, t = ctx.model, ctx.tokens_per_micro_batch / ctx.layout.tp
    act = BYTES_PER_ELEMENT["bf16"]
    h = model.d_model
    per_token = NORM_RESIDUAL_PASSES * h * act
    if model.position_embedding == "rope":
        # RoPE on q and k (read + write); ALiBi is added inside the attention kernel, learned positions at the input.
        per_token += 2 * act * (model.n_heads + model.n_kv_heads) * model.head_dim
    per_token += BIAS_GRAD_BYTES_PER_ELEMENT * bias_width(model, ctx.work[kind], ctx.assumptions.moe_imbalance)
    work = ctx.work[kind]
    widths = ffn_widths(model, work, ctx.assumptions.moe_imbalance)
    if work.ffn == "moe" and model.moe is not None:
        # Permute and un-permute the routed copies (read + write each way).
        per_token += 4 * act * h * model.moe.top_k
    for width, mult in widths:
        io = 3 if model.gated_ffn else 2  # gated: read gate and up, write product
        per_token += mult * io * act * width
    if ctx.job.precision == "fp8":
        gemm_inputs = work.fp8_input_elements
        # Per forward: the passes cover forward and backward, and the callers charge backward at 2x forward.
        per_token += ctx.assumptions.fp8_quantize_unfused * FP8_QUANTIZE_BYTES_PER_ELEMENT * gemm_inputs / 3
    return per_token * t + gradient_cast_bytes(ctx, kind)


def bias_width(model: ModelSpec, work: LayerWork, moe_imbalance: float) -> float:
    """Output elements per token of a layer's biased GEMMs (before TP): QKV (attention_bias), the attention output
    (output_bias), each FFN's up and down projections (ffn_bias; routed copies x top-k x imbalance)."""
    h = model.d_model
    width = 0.0
    if model.attention_bias:
        width += model.n_heads * model.head_dim + 2 * model.n_kv_heads * model.head_dim
    if model.output_bias:
        width += h
    if model.ffn_bias:
        for w, mult in ffn_widths(model, work, moe_imbalance):
            width += mult * ((2 * w if model.gated_ffn else w) + h)
    return width


def ffn_widths(model: ModelSpec, work: LayerWork, moe_imbalance: float) -> list[tuple[int, float]]:
    """(width, tokens per token) of each FFN of a layer: the dense FFN, or the routed experts (top-k x imbalance)
    and the shared experts."""
    if work.ffn == "dense":
        return [(model.d_ff, 1.0)]
    moe = model.moe
    if moe is None:
        return []
    out = [(moe.d_ff_expert, moe.top_k * moe_imbalance)]
    return out + ([(moe.shared_width, 1.0)] if moe.shared_width else [])


def gradient_cast_bytes(ctx: Context, kind: str):
    """Per-forward share of the ZeRO-2/3 gradient handling before the reduce-scatter, once per micro-batch in the
    backward (/ 3 as for the bias gradients): the cast to the reduce dtype and, where the weight's DP group has 2 or
    more ranks, the in-place pre-divide (grad_handling_bytes_per_param).
    0 for ZeRO 0-1, which keep the full gradient."""
    lay, moe = ctx.layout, ctx.model.moe
    d_dense, d_expert = data_parallel_sizes(lay)
    per_micro_batch = 0.0
    for g in ctx.work[kind].gemms:
        local = g.k * g.n
        routed = g.routed and moe is not None
        if routed:
            # All experts of the layer: local ones with EP (whole), TP-sharded ones without.
            local = local * moe.n_routed_experts / np.where(lay.ep > 1, lay.ep, lay.tp)
        elif g.sharding != "replicated":
            local = local / lay.tp
        handling = grad_handling_bytes_per_param(d_expert if routed else d_dense, ctx.job.gradient_reduce_bytes)
        per_micro_batch = per_micro_batch + local * handling
    return np.where(lay.zero_stage >= 2, per_micro_batch / 3, 0.0)


def grad_handling_bytes_per_param(dp_size, reduce_bytes: float):
    """ZeRO-2/3 bytes per weight and micro-batch before the reduce-scatter in a reduce dtype of `reduce_bytes`: the cast
    from BF16 (read 2, write reduce_bytes; none when the reduce dtype is BF16), plus the in-place pre-divide (read and
    write reduce_bytes) when dp_size > 1. fp32: 6 + 8 B; BF16: 0 + 4 B."""
    cast = GRADIENT_BYTES_PER_ELEMENT + reduce_bytes if reduce_bytes != GRADIENT_BYTES_PER_ELEMENT else 0.0
    return cast + np.where(dp_size > 1, 2 * reduce_bytes, 0.0)


def memory_bound_kernels(ctx: Context, kind: str) -> tuple[float, float]:
    """(forward, backward) elementwise kernel launches of one layer per micro-batch (docs/model.md §7.6)."""
    return elementwise_kernels(ctx.model, ctx.work[kind], ctx.job.dropout > 0)


def elementwise_kernels(model: ModelSpec, work: LayerWork, dropout: bool) -> tuple[float, float]:
    """(forward, backward) elementwise kernel launches of one layer of `work` per micro-batch."""
    forward = NORM_RESIDUAL_KERNELS + (ROPE_KERNELS if model.position_embedding == "rope" else 0)
    forward += sum(2 if model.gated_ffn else 1 for _ in ffn_widths(model, work, 1.0))
    forward += MOE_ROUTING_KERNELS if work.ffn == "moe" and model.moe is not None else 0
    forward += DROPOUT_KERNELS if dropout else 0
    biased = 2 * model.ffn_bias * len(ffn_widths(model, work, 1.0)) + model.attention_bias + model.output_bias
    return float(forward), float(2 * forward + biased)


def _layer_comm(
    ctx: Context, kind: str, fwd_compute_s: float, bwd_compute_s: float, gemm_step_s: float
) -> tuple[float, float, dict[str, float]]:
    """(exposed, hidden) communication seconds of one layer per micro-batch, forward + backward."""
    model, lay, job, fabric = ctx.model, ctx.layout, ctx.job, ctx.rates.fabric
    t = ctx.tokens_per_micro_batch
    act = BYTES_PER_ELEMENT["bf16"]
    parts: dict[str, float] = {}
    # Collectives over a group of one cost 0 (comms.collective_s), so the terms below vanish for TP, CP or EP 1.
    # SP: an all-gather and a reduce-scatter of b·s·h around attention and around the FFN forward, their
    # mirror images backward, plus the input all-gathers redone for the weight gradients (Korthikanti
    # §4.2.2; Calculon seq_par_ag_redo): 4 + 6. Full recompute repeats the 4 forward ones (docs/model.md §4.3).
    one = collective_s("all_gather", t * model.d_model * act, tp_group(lay), fabric)
    tp_comm = (10 + 4 * (lay.recompute == "full")) * one
    # With TP overlap each collective is split into chunks pipelined with the GEMM it feeds or follows
    # (Wang et al. 2023, "Overlap communication with dependent computation"; TE userbuffers): it hides
    # behind the layer's GEMMs (forward, dgrad, wgrad) up to the overlap efficiency.
    tp_window = ctx.assumptions.overlap_efficiency * gemm_step_s
    overlapped = np.asarray(lay.tp_overlap, dtype=bool)
    parts["tp_comm"] = np.where(overlapped, np.maximum(0.0, tp_comm - tp_window), tp_comm)
    hidden = np.where(overlapped, np.minimum(tp_comm, tp_window), 0.0)
    h_kv = kv_width(model)
    kv = collective_s("all_gather", 2 * t * lay.cp * h_kv * act / lay.tp, cp_group(lay), fabric)
    parts["cp_comm"] = 3 * kv  # all-gather K,V forward; re-gather and reduce-scatter dK,dV backward
    exposed = parts["tp_comm"] + parts["cp_comm"]
    if kind in ("moe", "mtp") and model.moe is not None:
        # DeepSeek-V3 dispatches FP8 with 1x128 scales (§3.3.4); per-tensor FP8 stacks dispatch BF16.
        block_fp8 = job.precision == "fp8" and job.fp8_recipe == "block"
        dispatch = BLOCK_FP8_BYTES_PER_ELEMENT if block_fp8 else act
        one_way = moe_dispatch_combine_s(
            t / lay.tp, model.moe.top_k, model.d_model, dispatch, act, ep_group(lay), fabric, model.moe.max_nodes_per_token
        )
        ep = 2 * one_way  # forward dispatch + combine, and their backward
        # DualPipe pairs a forward and a backward chunk so all-to-all hides behind the other's compute
        # (V3 §3.2.1); what exceeds the overlapped compute stays exposed.
        dualpipe = lay.schedule == "dualpipe"
        window = ctx.assumptions.overlap_efficiency * (fwd_compute_s + bwd_compute_s)
        parts["ep_comm"] = np.where(dualpipe, np.maximum(0.0, ep - window), ep)
        hidden = hidden + np.where(dualpipe, np.minimum(ep, window), 0.0)
        exposed = exposed + parts["ep_comm"]
    return exposed, hidden, parts


def kv_width(model: ModelSpec) -> int:
    if model.attention == "mla":
        mla = model.mla
        assert mla is not None
        return model.n_heads * (mla.qk_nope_head_dim + mla.qk_rope_head_dim + mla.v_head_dim) // 2
    return model.n_kv_heads * model.head_dim


def _attention_core_s(ctx: Context, kind: str) -> tuple[float, float]:
    """(forward, backward) seconds of the attention core of one layer per micro-batch."""
    model, lay, job = ctx.model, ctx.layout, ctx.job
    if job.attention_kernel == "flash":
        core_flops = ctx.work[kind].attention_core_flops * ctx.tokens_per_micro_batch / lay.tp
        return ctx.rates.attention_s(core_flops)
    # Unfused (Megatron-LM 2021): batched GEMMs over the full s x s scores, causal mask applied afterwards,
    # then a fused scale-mask-softmax (read + write, 4 B per score) and dropout on the probabilities
    # (5 B: read, write, 1-byte mask) in HBM; backward 6 + 5 B per score (assumption, docs/model.md §7.5).
    d_qk, d_v = attention_core_dims(model)
    s = job.seq_len / lay.cp
    batch = lay.micro_batch_size * model.n_heads / lay.tp
    dtype = ctx.gemm_dtype(False)
    gemm = ctx.rates.gemm_s(s, s, d_qk, dtype, batch) + ctx.rates.gemm_s(s, d_v, s, dtype, batch)
    scores = batch * s * job.seq_len
    drop = DROPOUT_BYTES_PER_ELEMENT if job.dropout > 0 else 0.0  # a job fact, not a layout one
    fwd = gemm + ctx.rates.memory_s(scores * (4.0 + drop))
    bwd = 2 * gemm + ctx.rates.memory_s(scores * (6.0 + drop))
    return fwd, bwd


def _dropout_bytes(ctx: Context) -> float:
    """Forward traffic of the two residual dropouts of a layer (read, write, 1-byte mask)."""
    if ctx.job.dropout <= 0:
        return 0.0
    return 2 * DROPOUT_BYTES_PER_ELEMENT * ctx.model.d_model * ctx.tokens_per_micro_batch / ctx.layout.tp


def by_recompute(lay: Layout | Layouts, values: dict[str, object]):
    """Pick, per layout, the value of its recompute mode."""
    rec = np.asarray(lay.recompute)
    return np.select([rec == mode for mode in RECOMPUTE_MODES], [values[mode] for mode in RECOMPUTE_MODES])


@dataclass(frozen=True)
class LayerCompute:
    """The compute of one layer per micro-batch on one GPU, before communication and overlap: forward GEMMs by
    component, the attention core (forward and backward) and the memory-bound kernels (forward). Shared by the
    training step (layer_time) and the forward-only path (model/forward.py)."""

    gemm_s: float
    gemm_parts: dict[str, float]
    gemm_input_grad_s: float
    gemm_weight_grad_s: float
    gemm_step_parts: dict[str, float]
    """Forward + both gradient GEMMs by component."""
    attention_forward_s: float
    attention_backward_s: float
    memory_bound_s: float
    launch_forward_s: float = 0.0
    """Fixed launch cost of the forward's elementwise kernels (memory_bound_kernels x kernel_overhead_s)."""
    launch_backward_s: float = 0.0

    @property
    def forward_s(self):
        return self.gemm_s + self.attention_forward_s + self.memory_bound_s + self.launch_forward_s


def layer_compute(ctx: Context, kind: str, gradients: bool = True) -> LayerCompute:
    """The layer's compute (LayerCompute); `gradients` False for a forward-only pass (its gradient GEMMs read 0)."""
    g = _gemm_time(ctx, kind, gradients)
    a_fwd, a_bwd = _attention_core_s(ctx, kind)
    m_fwd = ctx.rates.memory_s(memory_bound_bytes(ctx, kind) + _dropout_bytes(ctx), "layer")
    n_fwd, n_bwd = memory_bound_kernels(ctx, kind)
    overhead = ctx.rates.kernel_overhead_s
    return LayerCompute(
        g.forward_s, g.forward_parts, g.input_grad_s, g.weight_grad_s, g.step_parts,
        a_fwd, a_bwd, m_fwd, n_fwd * overhead, n_bwd * overhead,
    )  # fmt: skip


def early_stop_skip_s(ctx: Context, kind: str) -> float:
    """Forward seconds full recomputation skips under an early-stopping checkpoint (Job.checkpoint_early_stop): the
    layer's last GEMM, whose output no backward needs, when that is a dense FFN's down projection (PyTorch saves a
    GEMM's inputs before it runs, so recomputation stops as the last one is saved). MoE layers skip nothing here:
    which of their GEMMs runs last depends on the implementation."""
    # A residual dropout after the down projection saves its mask, so the recompute must run that GEMM again.
    if not ctx.job.checkpoint_early_stop or ctx.work[kind].ffn != "dense" or ctx.job.dropout > 0:
        return 0.0
    last = ctx.work[kind].gemms[-1]
    if last.name != "dense_ffn_down":
        return 0.0
    return ctx.gemm_s(ctx.tokens_per_micro_batch, last.n, last.k / ctx.layout.tp, last.fp8_eligible)


def layer_time(ctx: Context, kind: str) -> ItemTime:
    lay = ctx.layout
    c = layer_compute(ctx, kind)
    g_fwd, parts, a_fwd, a_bwd, m_fwd = c.gemm_s, c.gemm_parts, c.attention_forward_s, c.attention_backward_s, c.memory_bound_s
    fwd = c.forward_s
    g_grads = c.gemm_input_grad_s + c.gemm_weight_grad_s
    bwd = g_grads + a_bwd + 2 * m_fwd + c.launch_backward_s
    ups = sum(
        (
            ctx.gemm_s(ctx.tokens_per_micro_batch, g.n / lay.tp, g.k, g.fp8_eligible)
            for g in ctx.work[kind].gemms
            if g.recomputed_in_selective
        ),
        0.0,
    )
    selective = a_fwd + ups + (m_fwd + c.launch_forward_s) / 2
    recompute = by_recompute(lay, {"none": 0.0, "selective": selective, "full": fwd - early_stop_skip_s(ctx, kind)})
    bwd = bwd + recompute
    # Under a static SM partition the compute that hides communication runs on fewer SMs, so it lasts longer.
    window = _sm_dilation(ctx)
    exposed, hidden, comm_parts = _layer_comm(ctx, kind, fwd * window, bwd * window, (g_fwd + g_grads) * window)
    # Communication kernels that run under compute take SMs from it while they run (docs/model.md §5.2, resource
    # contention: rho x hidden time). A static SM partition is charged for the whole item in item_time instead.
    share = np.minimum(1.0, hidden / np.maximum(fwd + bwd, 1e-30))
    slowdown = np.where(static_sm_partition(ctx), 1.0, 1.0 + ctx.assumptions.comm_sm_fraction * share)
    parts = dict(c.gemm_step_parts)
    parts.update(
        attention_core=a_fwd + a_bwd,
        memory_bound=3 * m_fwd,
        kernel_launch=c.launch_forward_s + c.launch_backward_s,
        recompute=recompute,
        comm_sm_contention=(slowdown - 1) * (fwd + bwd),
    )
    parts.update(comm_parts)
    fwd, bwd = fwd * slowdown, bwd * slowdown
    return ItemTime(fwd, bwd, c.gemm_weight_grad_s * slowdown, exposed, parts)


def head_time(ctx: Context) -> ItemTime:
    t, lay = ctx.tokens_per_micro_batch, ctx.layout
    g = head_gemm(ctx.model)
    fwd_g, dgrad, wgrad = _gemm_passes_s(ctx, t, g.n / lay.tp, g.k, False)
    ce = ctx.rates.memory_s(CROSS_ENTROPY_BYTES_PER_LOGIT * t * ctx.model.vocab_size / lay.tp, "cross_entropy")
    launch = CROSS_ENTROPY_KERNELS * ctx.rates.kernel_overhead_s / 2  # per pass: half forward, half backward
    return ItemTime(
        fwd_g + ce / 2 + launch,
        dgrad + wgrad + ce / 2 + launch,
        wgrad,
        0.0,
        {"lm_head": fwd_g + dgrad + wgrad + ce, "kernel_launch": 2 * launch},
    )


def embed_time(ctx: Context) -> ItemTime:
    t = ctx.tokens_per_micro_batch
    s = ctx.rates.memory_s(2 * BYTES_PER_ELEMENT["bf16"] * t * ctx.model.d_model / ctx.layout.tp, "embedding")
    return ItemTime(s, 2 * s, 0.0, 0.0, {"embedding": 3 * s})


def static_sm_partition(ctx: Context):
    """Whether every compute kernel of the layout runs beside SMs reserved for communication.

    DualPipe with expert parallelism: each forward/backward chunk pair interleaves attention, MLP,
    all-to-all dispatch and combine, with "the ratio of GPU SMs dedicated to communication versus
    computation" set by hand (DeepSeek-V3 §3.2.1); the all-to-all kernels hold 20 of the H800's 132 SMs
    (§3.2.2), which the report's hardware section (§3.5.1) says "will limit the computational throughput".
    The partition holds for the whole chunk pair, not only while bytes move, so the compute of every item
    on the rank runs on the remaining SMs (docs/model.md §5.3: overlapped compute at about 112/132 of full speed;
    every compute kernel of V3 is slowed by 132/112)."""
    lay, moe = ctx.layout, ctx.model.moe
    return (lay.schedule == "dualpipe") & (lay.ep > 1) & (moe is not None)


def _sm_dilation(ctx: Context):
    """How much longer compute takes on the SMs left to it (1 - comm_sm_fraction) where they are partitioned."""
    return np.where(static_sm_partition(ctx), 1.0 / (1.0 - ctx.assumptions.comm_sm_fraction), 1.0)


def _on_partitioned_sms(ctx: Context, t: ItemTime) -> ItemTime:
    """Compute time on the SMs left to compute where they are partitioned."""
    dilation = _sm_dilation(ctx)
    parts = dict(t.parts)
    parts["comm_sm_contention"] = parts.get("comm_sm_contention", 0.0) + (dilation - 1.0) * (t.forward_s + t.backward_s)
    return ItemTime(t.forward_s * dilation, t.backward_s * dilation, t.weight_grad_s * dilation, t.exposed_comm_s, parts)


def item_time(ctx: Context, item: str) -> ItemTime:
    if item == "embed":
        t = embed_time(ctx)
    elif item == "head":
        t = head_time(ctx)
    elif item == "mtp":
        t = layer_time(ctx, "mtp") + head_time(ctx)
    else:
        t = layer_time(ctx, item)
    return _on_partitioned_sms(ctx, t)


# ------------------------------------------------------------------ whole step


def model_items(model: ModelSpec) -> list[str]:
    items = ["embed", *layer_kinds(model), "head"]
    if model.mtp_depth:
        items += ["mtp"] * model.mtp_depth
    return items


def item_cost_proxy(model: ModelSpec, seq_len: int) -> dict[str, float]:
    """Forward FLOPs per token of each item kind: the balance criterion for splitting layers into stages."""
    head = head_gemm(model).forward_flops_per_token
    out = {"embed": 0.0, "head": head}
    for kind, w in layer_work(model, seq_len).items():
        # An MTP item carries its own head (V3 Eq. 21-22).
        out[kind] = w.forward_flops + (head if kind == "mtp" else 0.0)
    # A tiny weight keeps the embedding on the first stage without counting as a layer.
    out["embed"] = EMBED_BALANCE_WEIGHT * max(out.values())
    return out


@dataclass(frozen=True)
class StepResult:
    step_time_s: float
    breakdown_s: dict[str, float]
    memory: MemoryBreakdown
    micro_batches: int
    stage_items: list[list[str]]
    rank_busy_s: list[float] = field(default_factory=list)
    """Per pipeline rank: seconds of forward, backward and exposed layer communication per step (no bubble,
    DP or optimizer); the slowest rank sets the step, the spread shows the stage imbalance."""


@dataclass(frozen=True)
class StepArrays:
    """Step time, breakdown and busiest-rank memory of many layouts (one entry per layout)."""

    step_time_s: np.ndarray
    breakdown_s: dict[str, np.ndarray]
    memory: MemoryBreakdown
    """Fields are arrays."""
    micro_batches: np.ndarray


def rank_items(model: ModelSpec, job: Job, layout: Layout) -> list[list[str]]:
    items = model_items(model)
    proxy = item_cost_proxy(model, job.seq_len)
    return stage_items(items, [proxy[i] for i in items], layout.pp, layout.vpp, layout.schedule)


def step(
    model: ModelSpec, job: Job, layout: Layout, rates: DeviceRates, counts: ParamCounts, assumptions: Assumptions
) -> StepResult:
    """One layout: `evaluate` on a batch of one."""
    out = evaluate(model, job, Layouts.of([layout]), rates, counts, assumptions)
    breakdown = {k: float(v[0]) for k, v in out.breakdown_s.items() if v[0] != 0.0}
    ranks = rank_items(model, job, layout)
    m = int(out.micro_batches[0])
    return StepResult(
        float(out.step_time_s[0]),
        breakdown,
        _scalar_memory(out.memory),
        m,
        ranks,
        _rank_busy_s(Context(model, job, layout, rates, assumptions), ranks, m),
    )


def _rank_busy_s(ctx: Context, ranks: list[list[str]], m: int) -> list[float]:
    """Busy seconds per step of each rank; a DualPipe rank runs half the micro-batches through each of its stages."""
    times = {item: item_time(ctx, item) for item in {i for r in ranks for i in r}}
    per_item = {i: float(t.forward_s + t.backward_s + t.exposed_comm_s) for i, t in times.items()}
    share = float(micro_batch_share(ctx.layout))
    return [share * m * sum(per_item[i] for i in r) for r in ranks]


def micro_batch_share(lay: Layout | Layouts):
    """Share of the micro-batches that pass through each stage a rank holds: DualPipe ranks hold two stages
    and run half their micro-batches through each."""
    return np.where(lay.schedule == "dualpipe", 0.5, 1.0)


def _scalar_memory(mem: MemoryBreakdown) -> MemoryBreakdown:
    return MemoryBreakdown(*(float(np.asarray(getattr(mem, f.name))[0]) for f in fields(MemoryBreakdown)))


def evaluate(
    model: ModelSpec,
    job: Job,
    lays: Layouts,
    rates: DeviceRates,
    counts: ParamCounts,
    assumptions: Assumptions,
    progress: Callable[[int], None] | None = None,
    breakdown: bool = True,
) -> StepArrays:
    """Step time and memory of every layout in `lays` (all must be valid); the per-term breakdown
    unless `breakdown` is False (a search needs it only for the few layouts it reports).

    Item times are computed once per distinct combination of the fields they depend on; the
    layers-to-ranks map depends only on (PP, virtual stages, schedule), so layouts are grouped by it
    and each group's ranks are combined with matrix products: no Python loop per layout.
    """
    n = len(lays)
    kinds = sorted(set(model_items(model)))
    item_key, item_layouts = _item_time_classes(lays)
    ctx = Context(model, job, item_layouts, rates, assumptions)
    per_class = _stack_item_times([item_time(ctx, k) for k in kinds], len(item_layouts), breakdown)
    schedule_code = np.zeros(n, dtype=np.int64)
    for code, name in enumerate(SCHEDULES):
        schedule_code[lays.schedule == name] = code
    # Mixed-radix key of (PP, virtual stages, schedule): one integer per layers-to-ranks map.
    group_key = (lays.pp * (int(lays.vpp.max(initial=0)) + 1) + lays.vpp) * len(SCHEDULES) + schedule_code
    runs = np.flatnonzero(np.diff(group_key)) + 1
    if n and len(runs) + 1 == len(np.unique(group_key)):
        order = None  # every group is already one contiguous run (the search builds its grid that way)
    else:
        # One gather puts every group in a contiguous slice; results are scattered back through `order`.
        order = np.argsort(group_key, kind="stable")
        lays, item_key = lays.take(order), item_key[order]
        runs = np.flatnonzero(np.diff(group_key[order])) + 1
    bounds = [0, *runs.tolist(), n]
    m = np.asarray(micro_batches(lays, job))
    step_s = np.zeros(n)
    terms: dict[str, np.ndarray] = {}
    mem_fields = {f.name: np.zeros(n) for f in fields(MemoryBreakdown)}
    items = model_items(model)
    proxy = item_cost_proxy(model, job.seq_len)
    costs = [proxy[i] for i in items]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True) if n else []:
        sl = slice(a, b)
        ranks = stage_items(items, costs, int(lays.pp[a]), int(lays.vpp[a]), str(lays.schedule[a]))  # type: ignore[arg-type]
        # Ranks holding the same items cost the same; keep the first of each (it holds the most activations).
        full_matrix = np.array([[r.count(k) for k in kinds] for r in ranks], dtype=float)
        _, keep = np.unique(full_matrix, axis=0, return_index=True)
        keep = np.sort(keep)
        counts_matrix = full_matrix[keep]
        ranks = [ranks[i] for i in keep]
        sub = Context(model, job, lays.slice(sl), rates, assumptions)
        mem = _peak_memory(sub, ranks, keep, kinds, counts_matrix, counts, m[sl])
        for name in mem_fields:
            mem_fields[name][sl] = getattr(mem, name)
        here = {name: v[:, item_key[sl]] for name, v in per_class.items()}
        total, parts = _group_step(sub, counts_matrix, here, counts, kinds, m[sl])
        step_s[sl] = total
        for key, value in parts.items() if breakdown else ():
            terms.setdefault(key, np.zeros(n))[sl] = value
        if progress:
            progress(b - a)
    if order is None:
        return StepArrays(step_s, terms, MemoryBreakdown(**mem_fields), m)
    back = np.empty(n, dtype=np.int64)
    back[order] = np.arange(n)
    return StepArrays(
        step_s[back],
        {k: v[back] for k, v in terms.items()},
        MemoryBreakdown(**{k: v[back] for k, v in mem_fields.items()}),
        m[back],
    )


# What item_time reads of a layout: TP, CP, EP, micro-batch size, recompute, TP overlap, whether DualPipe
# overlaps EP, whether ZeRO-3 casts the weight gradients and whether the DP groups pre-divide them (gradient_cast_bytes).
ITEM_TIME_FIELDS = ("tp", "cp", "ep", "micro_batch_size", "tp_overlap")


def _item_time_classes(lays: Layouts) -> tuple[np.ndarray, Layouts]:
    """(class of each layout, one representative layout per class) for the fields item times depend on."""
    key = np.zeros(len(lays), dtype=np.int64)
    for f in ITEM_TIME_FIELDS:
        values = np.asarray(getattr(lays, f), dtype=np.int64)
        key = key * (int(values.max(initial=0)) + 1) + values
    d_dense, d_expert = data_parallel_sizes(lays)
    columns = (
        lays.recompute == "selective",
        lays.recompute == "full",
        lays.schedule == "dualpipe",
        lays.zero_stage >= 2,
        np.asarray(d_dense) > 1,
        np.asarray(d_expert) > 1,
    )
    for column in columns:
        key = key * 2 + column
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return inverse.ravel(), lays.take(first)


def _stack_item_times(per_kind: list[ItemTime], n: int, with_parts: bool) -> dict[str, np.ndarray]:
    """Field name -> array (kinds, classes): forward, backward, weight_grad, exposed_comm and each part."""

    def row(v) -> np.ndarray:
        return np.broadcast_to(np.asarray(v, dtype=float), (n,))

    out = {
        name: np.stack([row(getattr(t, name)) for t in per_kind])
        for name in ("forward_s", "backward_s", "weight_grad_s", "exposed_comm_s")
    }
    for key in sorted({k for t in per_kind for k in t.parts}) if with_parts else ():
        out["part:" + key] = np.stack([row(t.parts.get(key, 0.0)) for t in per_kind])
    return out


def _group_step(
    ctx: Context, counts_matrix: np.ndarray, per_kind: dict[str, np.ndarray], counts: ParamCounts, kinds: list[str], m
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Step time of layouts that share one layers-to-ranks map (rows of counts_matrix: ranks, columns: kinds;
    per_kind: field -> array (kinds, layouts))."""
    lay = ctx.layout
    share = micro_batch_share(lay)
    totals = counts_matrix @ (per_kind["forward_s"] + per_kind["backward_s"] + per_kind["exposed_comm_s"])
    slow_counts = counts_matrix[np.argmax(totals, axis=0)].T  # (kinds, layouts): the slowest rank's items

    def on_slowest(values: np.ndarray) -> np.ndarray:
        return share * (slow_counts * values).sum(axis=0)

    fwd, bwd, wgrad, comm = (on_slowest(per_kind[k]) for k in ("forward_s", "backward_s", "weight_grad_s", "exposed_comm_s"))
    parts = {k[5:]: m * on_slowest(v) for k, v in per_kind.items() if k.startswith("part:")}
    f = fwd + comm / 2
    b = bwd + comm / 2
    parts["pipeline_bubble"] = bubble_s(lay.schedule, lay.pp, lay.vpp, f, b, wgrad, f + b)
    parts["pp_comm_exposed"] = _pp_exposed_s(ctx, m)
    dense_r, expert_r, pick = _busiest_rank(ctx, kinds, counts_matrix, counts)
    cols = np.arange(len(lay))
    buckets = gradient_buckets(kinds, counts_matrix, pick)
    parts["dp_comm_exposed"], parts["optimizer"] = _dp_and_optimizer_s(
        ctx, dense_r[pick, cols], expert_r[pick, cols], f, b, m, buckets
    )
    # Once per optimizer step, whatever the layout (docs/model.md §7.9).
    parts["step_host"] = np.full(len(lay), ctx.rates.step_host_s)
    total = (
        m * (fwd + bwd + comm)
        + parts["pipeline_bubble"]
        + parts["pp_comm_exposed"]
        + parts["dp_comm_exposed"]
        + parts["optimizer"]
        + parts["step_host"]
    )
    return total, parts


def _pp_exposed_s(ctx: Context, m):
    """Activation sends between stages: hidden in the steady state (async P2P) except for plain 1F1B.

    The fill and drain always wait for them: 2·(p-1)·v transfers on the critical path.
    """
    lay = ctx.layout
    size = ctx.tokens_per_micro_batch * ctx.model.d_model * BYTES_PER_ELEMENT["bf16"] / lay.tp
    one = collective_s("send_recv", size, pp_group(lay), ctx.rates.fabric)
    exposed = 2 * (lay.pp - 1) * lay.vpp * one
    exposed = exposed + np.where(lay.schedule == "1f1b", 2 * m * one * (1 - ctx.assumptions.overlap_efficiency), 0.0)
    return np.where(lay.pp == 1, 0.0, exposed)


def _params_per_kind(ctx: Context, kinds: list[str], counts: ParamCounts) -> tuple[np.ndarray, np.ndarray]:
    """(dense, expert) parameters on one GPU of one item of each kind: arrays (kinds, layouts)."""
    n = len(ctx.layout)
    pairs = [layer_params_on_rank(counts, k, ctx.layout) for k in kinds]
    dense = np.stack([np.broadcast_to(np.asarray(d, dtype=float), (n,)) for d, _ in pairs])
    expert = np.stack([np.broadcast_to(np.asarray(e, dtype=float), (n,)) for _, e in pairs])
    return dense, expert


def _busiest_rank(ctx: Context, kinds: list[str], counts_matrix: np.ndarray, counts: ParamCounts):
    """(dense, expert) parameters per rank (arrays (ranks, layouts)) and the index of the rank holding the most."""
    dense_k, expert_k = _params_per_kind(ctx, kinds, counts)
    dense_r, expert_r = counts_matrix @ dense_k, counts_matrix @ expert_k  # (ranks, layouts)
    return dense_r, expert_r, np.argmax(dense_r + expert_r, axis=0)


def _busiest_params(ctx: Context, kinds: list[str], counts_matrix: np.ndarray, counts: ParamCounts):
    """(dense, expert) parameters of the rank holding the most parameters."""
    dense_r, expert_r, pick = _busiest_rank(ctx, kinds, counts_matrix, counts)
    cols = np.arange(dense_r.shape[1])
    return dense_r[pick, cols], expert_r[pick, cols]


def gradient_buckets(kinds: list[str], counts_matrix: np.ndarray, pick) -> np.ndarray:
    """DP communication chunks of a rank: one per transformer layer it holds, at least one (docs/model.md §5.1).

    Megatron's DP overlap is "chunked by the granularity of a Transformer layer" and "exposes only one DP
    communication chunk" (NeMo Megatron Bridge, communication-overlap docs); FSDP communicates per wrapped
    transformer block (Zhao et al. 2023, arXiv:2304.11277, Fig. 5)."""
    is_layer = np.array([k not in ("embed", "head") for k in kinds], dtype=float)
    return np.maximum(1.0, (counts_matrix @ is_layer)[pick])


@dataclass(frozen=True)
class DpTraffic:
    """Seconds per step of each data-parallel collective on one GPU (docs/model.md §4.7)."""

    reduce_s: object
    """Gradient all-reduce (ZeRO-0) or reduce-scatter (ZeRO >= 1): once per step for ZeRO-0/1, once per
    micro-batch for ZeRO-2/3 (a GPU that keeps only its gradient shard reduces each micro-batch's gradients before
    freeing them)."""
    param_gather_s: object
    """ZeRO-1/2: all-gather of the updated weights after the optimizer step (ZeRO-0 and ZeRO-3: none)."""
    zero3_gathers_s: object
    """ZeRO-3: weight all-gathers before every micro-batch's forward and backward, 2m per step."""

    @property
    def total_s(self):
        return self.reduce_s + self.param_gather_s + self.zero3_gathers_s


def dp_traffic_s(ctx: Context, dense, expert, m) -> DpTraffic:
    """Each DP collective per step, dense parameters over DP x CP and experts over their own DP group.

    ZeRO §7 (Rajbhandari et al. 2020, arXiv:1910.02054): stages 1-2 move what DP moves (reduce-scatter the
    gradients, all-gather the updated weights); stage 3 reduce-scatters the gradients and all-gathers the weights
    for each forward and each backward, 1.5x DP, with no gather after the step (the weights stay sharded).
    With m micro-batches, stages 2-3 reduce-scatter after every micro-batch's backward: a GPU that keeps only its
    gradient shard cannot accumulate the full gradient locally (PyTorch FSDP SHARD_GRAD_OP / FULL_SHARD outside
    no_sync, which Composer never enters for FSDP, composer/trainer/trainer.py; DeepSpeed stages 2-3 "communicate
    during non gradient accumulation boundaries", deepspeedai/DeepSpeed#338). Stages 0-1 keep the full gradient,
    accumulate over the micro-batches and reduce once per step (Megatron's distributed optimizer; Llama 3's FSDP,
    which accumulates fp32 gradients over micro-batches and reduce-scatters them once, arXiv:2407.21783 §3.3.2).
    Gradients reduce in Job.gradient_reduce_bytes (fp32 unless the stack says otherwise, Llama 3 §3.3.2); weights
    gather in their BF16."""
    lay, fabric = ctx.layout, ctx.rates.fabric
    param, _, _ = state_bytes_per_param(ctx.job.precision, ctx.job.fp8_recipe)
    grad = ctx.job.gradient_reduce_bytes
    z = lay.zero_stage
    reductions = np.where(z >= 2, m, 1)
    reduce = gather = zero3 = 0.0
    for n_params, group in ((dense, dp_group(lay)), (expert, dp_group(lay, expert=True))):
        present = n_params > 0
        op = np.where(
            z == 0,
            collective_s("all_reduce", n_params * grad, group, fabric),
            collective_s("reduce_scatter", n_params * grad, group, fabric),
        )
        one_gather = collective_s("all_gather", n_params * param, group, fabric)
        reduce = reduce + np.where(present, reductions * op, 0.0)
        gather = gather + np.where(present & (z >= 1) & (z <= 2), one_gather, 0.0)
        zero3 = zero3 + np.where(present & (z == 3), 2 * m * one_gather, 0.0)
    return DpTraffic(reduce, gather, zero3)


def dp_window_s(lay: Layout | Layouts, f, b, m, param_gather_overlap: float):
    """Compute time per step under which DP traffic can run, one window shared by all of it (docs/model.md §5.1).

    Gradient buckets reduce while the last micro-batch's backward runs (Megatron --overlap-grad-reduce; FSDP
    reduce-scatter per unit): B; ZeRO-2 reduces each micro-batch's gradients under its own backward: m·B.
    ZeRO-1/2's weight all-gather runs after the optimizer step, so it hides only under the next step's first
    forward, where the stack overlaps it (Megatron --overlap-param-gather; FSDP prefetch, Llama 3 §3.3.2):
    `param_gather_overlap`·F. ZeRO-3's per-pass gathers prefetch under every forward and backward (FSDP
    forward/backward prefetch) and its per-micro-batch reductions run under every backward: m·(F + B)."""
    z = lay.zero_stage
    sharded_update = (z >= 1) & (z <= 2)
    backward = np.where(z == 2, m, 1) * b
    return np.where(z == 3, m * (f + b), backward + np.where(sharded_update, param_gather_overlap * f, 0.0))


def dp_exposure_s(traffic: DpTraffic, window, buckets, overlap_efficiency: float, param_gather_overlap: float):
    """(exposed, hidden) seconds of DP traffic per step: exposed = total - min(hideable, η·window).

    Per pass one chunk cannot hide: the last gradient bucket is ready only when the backward ends, and the first
    weight chunk is needed before compute starts; so 1/buckets of what overlaps is exposed. A ZeRO-1/2 weight
    gather the stack does not overlap (1 - `param_gather_overlap`) is exposed whole."""
    overlapped = traffic.reduce_s + param_gather_overlap * traffic.param_gather_s + traffic.zero3_gathers_s
    hideable = overlapped * (1.0 - 1.0 / buckets)
    hidden = np.minimum(hideable, overlap_efficiency * window)
    return traffic.total_s - hidden, hidden


def _dp_and_optimizer_s(ctx: Context, dense, expert, f, b, m, buckets=1.0):
    """(DP communication, optimizer) seconds per step: DP traffic (docs/model.md §4.7) left exposed by the shared
    window (§5.1) plus the SMs its hidden part takes (§5.2, as for TP and EP), and the optimizer step (§7.6).

    `dense`, `expert`: parameters on the GPU; `f`, `b`: forward and backward seconds of one micro-batch;
    `buckets`: DP communication chunks (gradient_buckets)."""
    lay, a = ctx.layout, ctx.assumptions
    traffic = dp_traffic_s(ctx, dense, expert, m)
    window = dp_window_s(lay, f, b, m, a.param_gather_overlap)
    exposed, hidden = dp_exposure_s(traffic, window, buckets, a.overlap_efficiency, a.param_gather_overlap)
    # Hidden DP kernels take SMs from the compute they overlap (docs/model.md §5.2); under a static SM partition
    # they run on the SMs already set aside for communication (§5.3).
    contention = np.where(static_sm_partition(ctx), 0.0, a.comm_sm_fraction * hidden)
    d_dense, d_expert = data_parallel_sizes(lay)
    sharded = lay.zero_stage >= 1
    owned = dense / np.where(sharded, d_dense, 1) + expert / np.where(sharded, d_expert, 1)
    optimizer = ctx.rates.memory_s(optimizer_step_bytes_per_param(ctx.job.precision, ctx.job.fp8_recipe) * owned, "optimizer")
    return exposed + contention, optimizer


def _peak_memory(
    ctx: Context,
    ranks: list[list[str]],
    rank_index: np.ndarray,
    kinds: list[str],
    counts_matrix: np.ndarray,
    counts: ParamCounts,
    m,
) -> MemoryBreakdown:
    """Memory of the busiest pipeline rank of layouts sharing one layers-to-ranks map.

    `ranks` holds the items of the ranks at positions `rank_index`. DualPipe ranks hold two stages
    (both copies are in `ranks`)."""
    lay, job, model = ctx.layout, ctx.job, ctx.model
    n = len(lay)
    t_local = ctx.tokens_per_micro_batch / lay.tp  # SP splits the sequence across TP ranks
    unfused = job.attention_kernel == "unfused"
    extra = unfused_attention_bytes_per_token(model, job.seq_len // lay.cp, job.dropout) if unfused else 0.0
    per_token = np.stack(
        [
            by_recompute(lay, {mode: activation_bytes_per_token(model, k, mode, job.precision) for mode in RECOMPUTE_MODES})
            + (np.where(lay.recompute == "none", extra, 0.0) if k not in ("embed", "head") else 0.0)
            for k in kinds
        ]
    )  # (kinds, layouts)
    full_layer = np.array([activation_bytes_per_token(model, k, "none", job.precision) for k in kinds])
    dense_k, expert_k = _params_per_kind(ctx, kinds, counts)
    weights, grads, optimizer = model_state_bytes(
        counts_matrix @ dense_k, counts_matrix @ expert_k, lay, job.precision, job.fp8_recipe
    )
    # In-flight counts are in micro-batches of the rank's whole set of layers, every schedule (docs/model.md §3.4).
    in_flight = in_flight_micro_batches(lay.schedule, lay.pp, lay.vpp, m, rank_index[:, None])
    acts = (counts_matrix @ per_token) * t_local * in_flight
    is_layer = np.array([k not in ("embed", "head") for k in kinds])
    # One layer's full activations live while it is recomputed.
    largest_layer = np.max(np.where((counts_matrix > 0) & is_layer, full_layer, 0.0), axis=1)[:, None]
    acts = acts + np.where(lay.recompute == "full", largest_layer * t_local, 0.0)
    has_head = np.array(["head" in r for r in ranks])[:, None]
    logits = np.where(has_head, LOGIT_BYTES * ctx.tokens_per_micro_batch * model.vocab_size / lay.tp, 0.0)
    other = logits + ctx.assumptions.memory_reserved_bytes
    parts = [np.broadcast_to(x, (len(ranks), n)) for x in (weights, grads, optimizer, acts, other)]
    pick = np.argmax(sum(parts), axis=0)
    cols = np.arange(n)
    return MemoryBreakdown(*(x[pick, cols] for x in parts))
