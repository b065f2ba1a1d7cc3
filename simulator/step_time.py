"""Step time of one training step for a model, job, layout and device.

Per pipeline rank and micro-batch, each item (embedding, dense layer, MoE layer, MTP module,
LM head) costs forward (F), backward (B) and weight-gradient (W, part of B) time: GEMMs through
the roofline efficiency model, the attention core at the flash-attention rate, memory-bound
kernels at HBM bandwidth, and the exposed part of TP, CP and EP communication (theory.md §5:
exposed = max(0, t_comm - overlap · window) where the software overlaps that kind).

    T_step = m · (F + B)_slowest rank + bubble(schedule) + exposed PP + exposed DP + optimizer
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .assumptions import Assumptions
from .comms import Group, collective_s, moe_dispatch_combine_s
from .efficiency import DeviceRates
from .flops import (
    ParamCounts,
    attention_core_dims,
    attention_core_forward_flops_per_token,
    head_gemm,
    layer_gemms,
    layer_kinds,
    token_flops,
)
from .layout import Job, Layout, micro_batches
from .memory import (
    LOGIT_BYTES,
    MemoryBreakdown,
    activation_bytes_per_token,
    layer_params_on_rank,
    model_state_bytes,
    unfused_attention_bytes_per_token,
)
from .pipeline import bubble_s, in_flight_micro_batches, stage_items
from .specs import ModelSpec
from .units import BYTES_PER_ELEMENT

# Memory-bound traffic per token and layer, in units of (hidden size x bytes per element):
# two norms (read + write) and two residual adds (read 2, write 1), forward (theory §6.3).
NORM_RESIDUAL_PASSES = 2 * 2 + 2 * 3
# Cross-entropy reads and writes each logit several times in fp32 (feasibility study: ~30 B per logit).
CROSS_ENTROPY_BYTES_PER_LOGIT = 30.0
# FP8 quantize/transpose passes per GEMM input element (X, dY, X^T, dY^T; feasibility study).
FP8_QUANTIZE_BYTES_PER_ELEMENT = 3.0


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

    def scaled(self, factor: float) -> ItemTime:
        return ItemTime(
            self.forward_s * factor,
            self.backward_s * factor,
            self.weight_grad_s * factor,
            self.exposed_comm_s * factor,
            {k: v * factor for k, v in self.parts.items()},
        )

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s + self.exposed_comm_s


@dataclass(frozen=True)
class Context:
    model: ModelSpec
    job: Job
    layout: Layout
    rates: DeviceRates
    assumptions: Assumptions

    @property
    def tokens_per_micro_batch(self) -> float:
        """Tokens one GPU sees per micro-batch: the sequence is split by CP; SP gathers it for GEMMs."""
        return self.layout.micro_batch_size * self.job.seq_len / self.layout.cp

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
    return Group(lay.ep, lay.tp * lay.cp)


def dp_group(lay: Layout, expert: bool = False) -> Group:
    size = lay.dp * lay.cp // lay.ep if expert else lay.dp * lay.cp
    stride = lay.tp * lay.ep if expert else lay.tp
    return Group(max(1, size), stride)


def pp_group(lay: Layout) -> Group:
    return Group(2, lay.tp * lay.cp * lay.dp)


# ------------------------------------------------------------------ per item


def _gemm_time(ctx: Context, kind: str) -> tuple[float, dict[str, float]]:
    """Forward GEMM seconds of one layer per micro-batch, by component. The input-gradient and the
    weight-gradient GEMMs each cost as much as the forward (same FLOPs)."""
    lay, t = ctx.layout, ctx.tokens_per_micro_batch
    fwd, parts = 0.0, {}
    moe = ctx.model.moe
    for g in layer_gemms(ctx.model, kind):  # type: ignore[arg-type]
        k, n, m, count = g.k, g.n, t, 1.0
        if g.routed and moe is not None:
            local_experts = moe.n_routed_experts / lay.ep
            # Tokens per local expert on the busiest EP rank: t·k·EP/E, times the routing imbalance.
            m = t * g.multiplicity * lay.ep / moe.n_routed_experts * ctx.assumptions.moe_imbalance
            count = local_experts
            if lay.ep == 1:
                n, k = (n / lay.tp, k) if g.sharding == "column" else (n, k / lay.tp)
            else:
                m = m / lay.tp  # without expert TP, the TP ranks split the tokens
        elif g.sharding in ("column", "vocab"):
            n = n / lay.tp
        elif g.sharding == "row":
            k = k / lay.tp
        s = ctx.rates.gemm_s(m, n, k, ctx.gemm_dtype(g.fp8_eligible), count)
        fwd += s
        parts[g.component] = parts.get(g.component, 0.0) + s
    return fwd, parts


def _memory_bound_bytes(ctx: Context, kind: str) -> float:
    """Forward HBM traffic of the elementwise kernels of one layer per micro-batch on one GPU."""
    model, t = ctx.model, ctx.tokens_per_micro_batch / ctx.layout.tp
    act = BYTES_PER_ELEMENT["bf16"]
    h = model.d_model
    per_token = NORM_RESIDUAL_PASSES * h * act
    # RoPE on q and k (read + write).
    per_token += 2 * act * (model.n_heads + model.n_kv_heads) * model.head_dim
    widths = []
    if kind == "dense":
        widths.append((model.d_ff, 1))
    elif model.moe is not None:
        moe = model.moe
        widths.append((moe.d_ff_expert, moe.top_k * ctx.assumptions.moe_imbalance))
        if moe.shared_width:
            widths.append((moe.shared_width, 1))
        # Permute and un-permute the routed copies (read + write each way).
        per_token += 4 * act * h * moe.top_k
    for width, mult in widths:
        io = 3 if model.gated_ffn else 2  # gated: read gate and up, write product
        per_token += mult * io * act * width
    if ctx.job.precision == "fp8":
        gemm_inputs = sum(g.k * g.multiplicity for g in layer_gemms(model, kind) if g.fp8_eligible)  # type: ignore[arg-type]
        per_token += ctx.assumptions.fp8_quantize_unfused * FP8_QUANTIZE_BYTES_PER_ELEMENT * gemm_inputs / 3
    return per_token * t


def _layer_comm(ctx: Context, kind: str, fwd_compute_s: float, bwd_compute_s: float) -> tuple[float, float, dict[str, float]]:
    """(exposed, hidden) communication seconds of one layer per micro-batch, forward + backward."""
    model, lay, job, fabric = ctx.model, ctx.layout, ctx.job, ctx.rates.fabric
    t = ctx.tokens_per_micro_batch
    act = BYTES_PER_ELEMENT["bf16"]
    parts: dict[str, float] = {}
    exposed = hidden = 0.0
    if lay.tp > 1:
        # SP: an all-gather and a reduce-scatter of b·s·h around attention and around the FFN forward, their
        # mirror images backward, plus the input all-gathers redone for the weight gradients (Korthikanti
        # §4.2.2; Calculon seq_par_ag_redo): 4 + 6. Full recompute repeats the 4 forward ones (theory §3.2).
        one = collective_s("all_gather", t * model.d_model * act, tp_group(lay), fabric)
        n_coll = 10 + (4 if lay.recompute == "full" else 0)
        parts["tp_comm"] = n_coll * one
        exposed += parts["tp_comm"]
    if lay.cp > 1:
        h_kv = _kv_width(model)
        kv = collective_s("all_gather", 2 * t * lay.cp * h_kv * act / lay.tp, cp_group(lay), fabric)
        parts["cp_comm"] = 3 * kv  # all-gather K,V forward; re-gather and reduce-scatter dK,dV backward
        exposed += parts["cp_comm"]
    if kind in ("moe", "mtp") and model.moe is not None and lay.ep > 1:
        dispatch = BYTES_PER_ELEMENT["fp8"] + 4.0 / 128 if job.precision == "fp8" else act
        one_way = moe_dispatch_combine_s(
            t / lay.tp, model.moe.top_k, model.d_model, dispatch, act, ep_group(lay), fabric, model.moe.max_nodes_per_token
        )
        ep = 2 * one_way  # forward dispatch + combine, and their backward
        ep_exposed = ep
        if lay.schedule == "dualpipe":
            # DualPipe pairs a forward and a backward chunk so all-to-all hides behind the other's compute
            # (V3 §3.2.1); what exceeds the overlapped compute stays exposed.
            window = ctx.assumptions.overlap_efficiency * (fwd_compute_s + bwd_compute_s)
            ep_exposed = max(0.0, ep - window)
            hidden += min(ep, window)
        parts["ep_comm"] = ep_exposed
        exposed += ep_exposed
    return exposed, hidden, parts


def _kv_width(model: ModelSpec) -> int:
    if model.attention == "mla":
        mla = model.mla
        assert mla is not None
        return model.n_heads * (mla.qk_nope_head_dim + mla.qk_rope_head_dim + mla.v_head_dim) // 2
    return model.n_kv_heads * model.head_dim


def _attention_core_s(ctx: Context) -> tuple[float, float]:
    """(forward, backward) seconds of the attention core of one layer per micro-batch."""
    model, lay, job = ctx.model, ctx.layout, ctx.job
    if job.attention_kernel == "flash":
        core_flops = attention_core_forward_flops_per_token(model, job.seq_len) * ctx.tokens_per_micro_batch / lay.tp
        return ctx.rates.attention_s(core_flops)
    # Unfused (Megatron-LM 2021): batched GEMMs over the full s x s scores, causal mask applied afterwards,
    # then a fused scale-mask-softmax (read + write, 4 B per score) and dropout on the probabilities
    # (5 B: read, write, 1-byte mask) in HBM; backward 6 + 5 B per score (feasibility study, model C).
    d_qk, d_v = attention_core_dims(model)
    s = job.seq_len / lay.cp
    batch = lay.micro_batch_size * model.n_heads / lay.tp
    dtype = ctx.gemm_dtype(False)
    gemm = ctx.rates.gemm_s(s, s, d_qk, dtype, batch) + ctx.rates.gemm_s(s, d_v, s, dtype, batch)
    scores = batch * s * job.seq_len
    drop = 5.0 if job.dropout > 0 else 0.0
    fwd = gemm + ctx.rates.memory_s(scores * (4.0 + drop))
    bwd = 2 * gemm + ctx.rates.memory_s(scores * (6.0 + drop))
    return fwd, bwd


def _dropout_bytes(ctx: Context) -> float:
    """Forward traffic of the two residual dropouts of a layer (read, write, 1-byte mask)."""
    if ctx.job.dropout <= 0:
        return 0.0
    return 2 * 5.0 * ctx.model.d_model * ctx.tokens_per_micro_batch / ctx.layout.tp


def layer_time(ctx: Context, kind: str) -> ItemTime:
    model, lay = ctx.model, ctx.layout
    gemm_kind = "mtp" if kind == "mtp" and model.moe is not None else ("dense" if kind == "mtp" else kind)
    g_fwd, parts = _gemm_time(ctx, gemm_kind)
    a_fwd, a_bwd = _attention_core_s(ctx)
    m_fwd = ctx.rates.memory_s(_memory_bound_bytes(ctx, gemm_kind) + _dropout_bytes(ctx))
    fwd = g_fwd + a_fwd + m_fwd
    bwd = 2 * g_fwd + a_bwd + 2 * m_fwd
    recompute = 0.0
    if lay.recompute == "full":
        recompute = fwd
    elif lay.recompute == "selective":
        ups = sum(
            ctx.rates.gemm_s(ctx.tokens_per_micro_batch, g.n / lay.tp, g.k, ctx.gemm_dtype(g.fp8_eligible))
            for g in layer_gemms(model, gemm_kind)  # type: ignore[arg-type]
            if g.recomputed_in_selective
        )
        recompute = a_fwd + ups + m_fwd / 2
    bwd += recompute
    exposed, hidden, comm_parts = _layer_comm(ctx, kind, fwd, bwd)
    # Communication kernels that run under compute take SMs from it (theory §5, resource contention).
    slowdown = 1.0 + ctx.assumptions.comm_sm_fraction * min(1.0, hidden / max(fwd + bwd, 1e-30))
    parts = {k: 3 * v for k, v in parts.items()}
    parts.update(
        attention_core=a_fwd + a_bwd,
        memory_bound=3 * m_fwd,
        recompute=recompute,
        comm_sm_contention=(slowdown - 1) * (fwd + bwd),
    )
    parts.update(comm_parts)
    fwd, bwd = fwd * slowdown, bwd * slowdown
    return ItemTime(fwd, bwd, g_fwd * slowdown, exposed, parts)


def head_time(ctx: Context) -> ItemTime:
    t, lay = ctx.tokens_per_micro_batch, ctx.layout
    g = head_gemm(ctx.model)
    fwd_g = ctx.rates.gemm_s(t, g.n / lay.tp, g.k, ctx.gemm_dtype(False))
    ce = ctx.rates.memory_s(CROSS_ENTROPY_BYTES_PER_LOGIT * t * ctx.model.vocab_size / lay.tp)
    return ItemTime(fwd_g + ce / 2, 2 * fwd_g + ce / 2, fwd_g, 0.0, {"lm_head": 3 * fwd_g + ce})


def embed_time(ctx: Context) -> ItemTime:
    t = ctx.tokens_per_micro_batch
    s = ctx.rates.memory_s(2 * BYTES_PER_ELEMENT["bf16"] * t * ctx.model.d_model / ctx.layout.tp)
    return ItemTime(s, 2 * s, 0.0, 0.0, {"embedding": 3 * s})


def item_time(ctx: Context, item: str) -> ItemTime:
    if item == "embed":
        return embed_time(ctx)
    if item == "head":
        return head_time(ctx)
    if item == "mtp":
        return layer_time(ctx, "mtp") + head_time(ctx)
    return layer_time(ctx, item)


# ------------------------------------------------------------------ whole step


def model_items(model: ModelSpec) -> list[str]:
    items = ["embed", *layer_kinds(model), "head"]
    if model.mtp_depth:
        items += ["mtp"] * model.mtp_depth
    return items


def item_cost_proxy(model: ModelSpec, seq_len: int) -> dict[str, float]:
    """Forward FLOPs per token of each item kind: the balance criterion for splitting layers into stages."""
    tf = token_flops(model, seq_len)
    per_layer_core = attention_core_forward_flops_per_token(model, seq_len)
    out = {"embed": 0.0, "head": tf.forward_by_component["lm_head"]}
    for kind in ("dense", "moe"):
        if kind == "moe" and model.moe is None:
            continue
        out[kind] = sum(g.forward_flops_per_token for g in layer_gemms(model, kind)) + per_layer_core  # type: ignore[arg-type]
    if model.mtp_depth:
        out["mtp"] = tf.forward_by_component.get("mtp", 0.0) / model.mtp_depth
    # A tiny weight keeps the embedding on the first stage without counting as a layer.
    out["embed"] = 1e-6 * max(out.values())
    return out


@dataclass(frozen=True)
class StepResult:
    step_time_s: float
    breakdown_s: dict[str, float]
    memory: MemoryBreakdown
    micro_batches: int
    stage_items: list[list[str]]


def rank_items(model: ModelSpec, job: Job, layout: Layout) -> list[list[str]]:
    items = model_items(model)
    proxy = item_cost_proxy(model, job.seq_len)
    return stage_items(items, [proxy[i] for i in items], layout.pp, layout.vpp, layout.schedule)


def layout_memory(
    model: ModelSpec, job: Job, layout: Layout, rates: DeviceRates, counts: ParamCounts, assumptions: Assumptions
) -> MemoryBreakdown:
    """Peak memory alone: cheap, so the search can skip layouts that do not fit before timing them."""
    ctx = Context(model, job, layout, rates, assumptions)
    return peak_memory(ctx, rank_items(model, job, layout), counts, micro_batches(layout, job))


def step(
    model: ModelSpec, job: Job, layout: Layout, rates: DeviceRates, counts: ParamCounts, assumptions: Assumptions
) -> StepResult:
    ctx = Context(model, job, layout, rates, assumptions)
    items = model_items(model)
    ranks = rank_items(model, job, layout)
    per_kind = {kind: item_time(ctx, kind) for kind in set(items)}
    # DualPipe ranks hold two stages and run half their micro-batches through each.
    share = 0.5 if layout.schedule == "dualpipe" else 1.0
    rank_times = [sum((per_kind[i] for i in r), ItemTime()).scaled(share) for r in ranks]
    slowest = max(rank_times, key=lambda x: x.total_s)
    m = micro_batches(layout, job)
    f = slowest.forward_s + slowest.exposed_comm_s / 2
    b = slowest.backward_s + slowest.exposed_comm_s / 2
    bubble = bubble_s(layout.schedule, layout.pp, layout.vpp, f, b, slowest.weight_grad_s, f + b)
    pp_s = _pp_exposed_s(ctx, m)
    dp_s, optimizer_s = _dp_and_optimizer_s(ctx, ranks, counts, f, b, m)
    breakdown = {k: m * v for k, v in slowest.parts.items()}
    breakdown["pipeline_bubble"] = bubble
    breakdown["pp_comm_exposed"] = pp_s
    breakdown["dp_comm_exposed"] = dp_s
    breakdown["optimizer"] = optimizer_s
    total = m * slowest.total_s + bubble + pp_s + dp_s + optimizer_s
    memory = peak_memory(ctx, ranks, counts, m)
    return StepResult(total, breakdown, memory, m, ranks)


def _pp_exposed_s(ctx: Context, m: int) -> float:
    """Activation sends between stages: hidden in the steady state (async P2P) except for plain 1F1B.

    The fill and drain always wait for them: 2·(p-1)·v transfers on the critical path.
    """
    lay = ctx.layout
    if lay.pp == 1:
        return 0.0
    size = ctx.tokens_per_micro_batch * ctx.model.d_model * BYTES_PER_ELEMENT["bf16"] / lay.tp
    one = collective_s("send_recv", size, pp_group(lay), ctx.rates.fabric)
    exposed = 2 * (lay.pp - 1) * lay.vpp * one
    if lay.schedule == "1f1b":
        exposed += 2 * m * one * (1 - ctx.assumptions.overlap_efficiency)
    return exposed


def _rank_params(ranks: list[list[str]], counts: ParamCounts, layout: Layout) -> list[tuple[float, float]]:
    out = []
    for r in ranks:
        dense = expert = 0.0
        for item in r:
            d, e = layer_params_on_rank(counts, item, layout)
            dense, expert = dense + d, expert + e
        out.append((dense, expert))
    return out


def _dp_and_optimizer_s(
    ctx: Context, ranks: list[list[str]], counts: ParamCounts, f: float, b: float, m: int
) -> tuple[float, float]:
    """Gradient reduction / parameter gathers over DP (theory §3.3) and the optimizer step (§6.3)."""
    lay, fabric = ctx.layout, ctx.rates.fabric
    dense, expert = max(_rank_params(ranks, counts, lay), key=lambda x: x[0] + x[1])
    grad = BYTES_PER_ELEMENT["fp32"]
    param = BYTES_PER_ELEMENT["bf16"]
    total = 0.0
    for n_params, group in ((dense, dp_group(lay)), (expert, dp_group(lay, expert=True))):
        if group.size <= 1 or n_params == 0:
            continue
        if lay.zero_stage == 0:
            total += collective_s("all_reduce", n_params * grad, group, fabric)
        else:
            total += collective_s("reduce_scatter", n_params * grad, group, fabric)
            total += collective_s("all_gather", n_params * param, group, fabric)
    # Overlap: gradient buckets reduce during the last backward, parameter gathers prefetch under the first
    # forward (Megatron --overlap-grad-reduce / --overlap-param-gather; Llama 3 FSDP).
    exposed = max(0.0, total - ctx.assumptions.overlap_efficiency * (f + b))
    if lay.zero_stage == 3:
        # ZeRO-3 gathers the weights again for every micro-batch's forward and backward (ZeRO §7: 1.5x the
        # traffic of DP), prefetched under the previous layers' compute.
        gathers = 0.0
        for n_params, group in ((dense, dp_group(lay)), (expert, dp_group(lay, expert=True))):
            if group.size > 1 and n_params:
                gathers += 2 * m * collective_s("all_gather", n_params * param, group, fabric)
        exposed += max(0.0, gathers - ctx.assumptions.overlap_efficiency * m * (f + b))
    d_dense = lay.dp * lay.cp
    d_expert = max(1, d_dense // lay.ep)
    owned = dense / (d_dense if lay.zero_stage >= 1 else 1) + expert / (d_expert if lay.zero_stage >= 1 else 1)
    optimizer = ctx.rates.memory_s(ctx.assumptions.memory_bound_bytes_per_param_optimizer * owned)
    return exposed, optimizer


def peak_memory(ctx: Context, ranks: list[list[str]], counts: ParamCounts, m: int) -> MemoryBreakdown:
    """Memory of the busiest pipeline rank. DualPipe ranks hold two stages (both copies are in `ranks`)."""
    lay, job, model = ctx.layout, ctx.job, ctx.model
    t_local = ctx.tokens_per_micro_batch / lay.tp  # SP splits the sequence across TP ranks
    per_token = {i: activation_bytes_per_token(model, i, lay.recompute, job.precision) for i in set(model_items(model))}
    if job.attention_kernel == "unfused" and lay.recompute == "none":
        extra = unfused_attention_bytes_per_token(model, job.seq_len // lay.cp, job.dropout)
        per_token = {i: v + (extra if i not in ("embed", "head") else 0.0) for i, v in per_token.items()}
    chunks_per_rank = 2 if lay.schedule == "dualpipe" else lay.vpp
    candidates = []
    for r, ((dense, expert), items) in enumerate(zip(_rank_params(ranks, counts, lay), ranks, strict=True)):
        weights, grads, optimizer = model_state_bytes(dense, expert, lay, job.precision)
        # In-flight counts are in micro-batches of one stage chunk (theory §2.3).
        per_chunk = sum(per_token[i] for i in items) * t_local / chunks_per_rank
        in_flight = in_flight_micro_batches(lay.schedule, lay.pp, lay.vpp, m)
        if lay.schedule in ("1f1b", "zb-h1"):
            in_flight = min(lay.pp - r, m)
        acts = per_chunk * in_flight
        layers = [i for i in items if i not in ("embed", "head")]
        if lay.recompute == "full" and layers:  # one layer's full activations live while it is recomputed
            acts += max(activation_bytes_per_token(model, i, "none", job.precision) for i in layers) * t_local
        logits = LOGIT_BYTES * ctx.tokens_per_micro_batch * model.vocab_size / lay.tp if "head" in items else 0.0
        candidates.append(MemoryBreakdown(weights, grads, optimizer, acts, logits + ctx.assumptions.memory_reserved_bytes))
    return max(candidates, key=lambda mem: mem.total_bytes)
