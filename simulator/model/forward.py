"""The forward-only path of the per-layer model: one forward pass of a batch of sequences through the model on
one tensor- and expert-parallel group, as serving prefill and RL scoring (reference and log-prob) passes run it.

It reuses the training model's pieces for each layer (step_time.layer_compute: GEMMs through the efficiency
model, the attention core, the memory-bound kernels; model/layer_work.py: the per-kind work), and adds only what a
forward pass communicates: with sequence parallelism an all-gather and a reduce-scatter of the activations around
attention and around the FFN (Korthikanti et al. 2022 §4.2.2; the same bytes as two all-reduces), the context-
parallel all-gather of K and V, and one MoE dispatch and combine. Communication is charged as exposed: a forward
pass has no backward to hide it under (engines that overlap two micro-batches are a refinement for the serving
model to add). There is no loss: the LM head is its GEMM only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from simulator.inputs.assumptions import DEFAULT, Assumptions
from simulator.inputs.job import Job, with_fp8_recipe
from simulator.inputs.specs import ModelSpec
from simulator.model.comms import collective_s, moe_dispatch_combine_s
from simulator.model.efficiency import DeviceRates
from simulator.model.flops import head_gemm, layer_kinds
from simulator.model.layout import Layout
from simulator.model.step_time import Context, cp_group, ep_group, kv_width, layer_compute, tp_group
from simulator.units import BLOCK_FP8_BYTES_PER_ELEMENT, BYTES_PER_ELEMENT


@dataclass(frozen=True)
class ForwardPass:
    """Seconds of one forward pass on one GPU of the group, and where they go."""

    seconds: float
    by_component_s: dict[str, float]
    tokens: float
    """Tokens in the pass (sequences x sequence length), all of the group's."""


def forward_context(
    model: ModelSpec,
    rates: DeviceRates,
    seq_len: int,
    sequences: int,
    tp: int = 1,
    ep: int = 1,
    cp: int = 1,
    precision: str = "bf16",
    fp8_recipe: str | None = None,
    assumptions: Assumptions = DEFAULT,
    dp: int | None = None,
) -> Context:
    """The step model's Context for a forward pass: `sequences` of `seq_len` tokens on each of `dp` TP x CP groups,
    experts over EP of their GPUs (the tokens of the groups meet at the experts, as in training: with EP > 1 whole
    experts sit on each GPU, Megatron's folded expert grid, layout.folded_expert_grid; with EP 1 they are TP-sharded).
    `dp` defaults to `ep`, a trainer's layout with EP over its data-parallel ranks; a serving deployment whose experts
    span its whole stage gives dp attention groups and EP = TP x DP. `precision` fp4 (a serving one): the linear
    layers model/number_formats.py puts in NVFP4 run in FP4, the rest as in fp8."""
    dp = ep if dp is None else dp
    tokens = float(sequences * seq_len * dp)
    fp4 = precision == "fp4"
    job = Job(tp * cp * dp, tokens, seq_len, tokens, "fp8" if fp4 else precision, fp8_recipe=fp8_recipe, fp4_linears=fp4)  # type: ignore[arg-type]
    job = with_fp8_recipe(job, model)
    layout = Layout(tp=tp, cp=cp, ep=ep, dp=dp, micro_batch_size=sequences, zero_stage=0)
    return Context(model, job, layout, rates, assumptions)


def forward_comm_s(ctx: Context, kind: str) -> dict[str, float]:
    """Exposed communication of one layer's forward pass on one GPU, by kind of parallelism."""
    model, lay, job, fabric = ctx.model, ctx.layout, ctx.job, ctx.rates.fabric
    t, act = ctx.tokens_per_micro_batch, BYTES_PER_ELEMENT["bf16"]
    out = {"tp_comm": 4 * collective_s("all_gather", t * model.d_model * act, tp_group(lay), fabric)}
    out["cp_comm"] = collective_s("all_gather", 2 * t * lay.cp * kv_width(model) * act / lay.tp, cp_group(lay), fabric)
    if ctx.work[kind].ffn == "moe" and model.moe is not None:
        # FP4 deployments dispatch in block FP8 whatever the model's training recipe (DeepEP's FP8 dispatch, as in
        # decode; docs/model.md §16.14).
        block_fp8 = job.precision == "fp8" and (job.fp8_recipe == "block" or job.fp4_linears)
        dispatch = BLOCK_FP8_BYTES_PER_ELEMENT if block_fp8 else act
        out["ep_comm"] = moe_dispatch_combine_s(
            t / lay.tp, model.moe.top_k, model.d_model, dispatch, act, ep_group(lay), fabric, model.moe.max_nodes_per_token
        )
    return {k: float(v) for k, v in out.items()}


def forward_layer_s(ctx: Context, kind: str) -> dict[str, float]:
    """One layer's forward seconds by component: its GEMMs, attention core, memory-bound kernels, communication."""
    c = layer_compute(ctx, kind, gradients=False)
    out = {k: float(v) for k, v in c.gemm_parts.items()}
    out["attention_core"] = float(c.attention_forward_s)
    out["memory_bound"] = float(c.memory_bound_s)
    out["kernel_launch"] = float(c.launch_forward_s)
    return out | forward_comm_s(ctx, kind)


def forward_pass(ctx: Context, include_mtp: bool = False) -> ForwardPass:
    """The whole model once: embedding, every layer (each kind computed once, times its count), the LM head GEMM;
    with `include_mtp` the MTP modules too (speculative decoding drafts with them)."""
    t, lay, model = ctx.tokens_per_micro_batch, ctx.layout, ctx.model
    kinds = Counter(layer_kinds(model))
    if include_mtp and model.mtp_depth:
        kinds["mtp"] = model.mtp_depth
    # As step_time.embed_time.
    embedding = ctx.rates.memory_s(2 * BYTES_PER_ELEMENT["bf16"] * t * model.d_model / lay.tp, "embedding")
    total: dict[str, float] = {"embedding": float(embedding)}
    for kind, n in kinds.items():
        for k, v in forward_layer_s(ctx, kind).items():
            total[k] = total.get(k, 0.0) + n * v
    g = head_gemm(model)
    heads = 1 + (kinds["mtp"] if include_mtp else 0)
    total["lm_head"] = heads * float(ctx.gemm_s(t, g.n / lay.tp, g.k, False))
    return ForwardPass(sum(total.values()), total, t * lay.cp)
