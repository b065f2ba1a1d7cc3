"""One decode step on one GPU, for many candidate deployments at once (docs/model.md §16.3-§16.8).

A deployment is a pipeline of `pp` stages; each stage has `tp x dp` GPUs. Attention and dense FFNs are split by
tensor parallelism over `tp` GPUs and replicated over `dp` attention-data-parallel groups (DeepSeek's "DP
attention"); a MoE layer's experts are spread over all `tp x dp` GPUs of the stage (expert parallelism). Every GPU
holds `batch` sequences of one micro-batch; `pp` micro-batches are in flight, so each stage is always busy, a
sequence advances one step per `pp` stage times, and a GPU's share of the output is batch / (pp x stage time).

Per layer and GPU the step costs (Scaling Book, inference.md, "Step Time (General)"; docs/model.md §16.3):
- weight GEMMs through the efficiency model's roofline (`DeviceRates.gemm_s`): a decode GEMM of few tokens reads its
  whole weight, so it is bandwidth-bound until the tokens per GEMM pass the ridge point;
- the attention core: the larger of reading the KV cache (at a calibration's decode-attention bandwidth where given)
  and its FLOPs (MLA decode is near the ridge, GQA far below);
- routed experts: only the experts a step's tokens touch are read (balls in bins over expert slots, redundant slots
  included), each at its tokens, the busiest GPU carrying `moe_imbalance` x the mean;
- the elementwise kernels (norms, residuals, activation) as HBM bytes plus a fixed cost per kernel;
- communication: TP all-reduces exposed; the EP dispatch and combine of decode's low-latency kernels (every routed
  copy sent on its own) exposed with one micro-batch; with two, each dispatch hides under its own micro-batch's
  shared experts and the other's attention before the attention kernel, each combine under the other's attention
  kernel, output projection and gate, and the routed experts hide nothing (DeepSeek's decode schedule, SGLang's
  two-batch overlap; `two_batch_exposed_s`).
Plus a fixed per-step cost of the engine (scheduling, sampling). Every function takes numpy arrays, one entry per
candidate, and has no branches on values, so one call evaluates a whole search.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from simulator.inputs.assumptions import Assumptions
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.model.comms import Group, collective_s, moe_low_latency_exchange_s
from simulator.model.efficiency import DeviceRates
from simulator.model.flops import Gemm, head_gemm, layer_gemms, layer_kinds
from simulator.model.number_formats import GEMM_FORMATS, gemm_formats
from simulator.model.serve.kv_cache import cached_positions, kv_bytes_per_token, kv_shard
from simulator.model.serve.workload import one_request, windowed_positions
from simulator.units import BLOCK_FP8_BYTES_PER_ELEMENT, BYTES_PER_ELEMENT, MILLI

ELEMENTWISE_BYTES_PER_TOKEN_PER_WIDTH = 16.0
"""HBM bytes per token per d_model element of a layer's elementwise kernels: two fused residual-add + RMSNorm
kernels, each reading the residual and the block output and writing the new residual and the normed input of the
next block (2 x 4 x 2 B in BF16). Assumption, docs/model.md §16.3."""
ACTIVATION_BYTES_PER_FFN_ELEMENT = 6.0
"""The gated activation reads gate and up and writes their product: 3 x 2 B per FFN-width element. Assumption."""
ELEMENTWISE_KERNELS_PER_LAYER = 6
"""Kernels per layer besides GEMMs and attention (norms, residual adds, activation, rotary). Assumption."""
MLA_EXTRA_KERNELS_PER_LAYER = 3
"""Kernels an MLA layer runs in decode beyond its five projection GEMMs, its attention kernel and the elementwise
kernels above: the RMSNorms of the query and KV latents (2), and the absorbed kv_up, which runs as two batched GEMMs
(W_UK on the query before attention, W_UV on its output after) where the GEMM list has one (1). TensorRT-LLM's
decode layer of DeepSeek-R1 lists them as Module2 '2x RMSNorm', Module4 'UK_BGEMM' and Module7 'UV_GEMM'
(NVIDIA/TensorRT-LLM docs/source/blogs/tech_blog/blog1_Pushing_Latency_Boundaries_Optimizing_DeepSeek-R1_Performance_
on_NVIDIA_B200_GPUs.md, 'Everything in One Diagram'). docs/model.md §16.3."""
MOE_EXTRA_KERNELS_PER_LAYER = 4
"""Kernels a MoE layer runs in decode beyond its router, expert and shared-expert GEMMs: top-k selection, the
permute of tokens to their experts and the indexed reduction of the expert outputs after them ('dispatches input
tokens to their designated experts, then applies indexed local reduction on each expert's outputs', the same blog,
'Sparse Experts as GEMMs'; Module10 'routerGEMM & topK'), and the routed experts' own gated activation (the
elementwise count above has one activation per layer). docs/model.md §16.3."""
ROUNDING_RELATIVE = 1e-9
"""Step times or throughputs within this relative distance are one: a host-bound step (host_floor_s) is the same for
one micro-batch or two and gives every larger batch the same tokens/s per GPU, up to rounding. Two micro-batches replace
one, and the search prefers a higher throughput per GPU, only beyond it."""
DECODE_STEP_OVERHEAD_S = 0.3 * MILLI
"""Engine time per decode step not hidden under the GPU (scheduling, sampling, input preparation). vLLM measured
4-13 ms of GPU idle per step before it overlapped them (vllm-project/vllm#6854, 2024); with asynchronous scheduling
the estimate for what remains is 200-300 us (vllm-project/vllm#10634). Assumption at that estimate's upper end."""


@dataclass(frozen=True)
class Setup:
    """What is the same for every candidate: the model, the GPU, the request and the numeric formats."""

    model: ModelSpec
    hw: HardwareProfile
    rates: DeviceRates
    assumptions: Assumptions
    input_len: int
    output_len: int
    kv_dtype: str = "bf16"
    mtp_depth: int = 0
    mtp_accept: float = 0.0
    redundant_experts: int = 0
    ep_overlap: bool = True
    kv_admission: str = "on-demand"
    """What a running sequence holds of the KV pool (vocab.KvAdmission): on-demand, the tokens it has; full-request,
    its prompt and whole output, reserved at admission (TensorRT-LLM's GUARANTEED_NO_EVICT)."""
    kv_memory_fraction: float = 1.0
    """Share of the memory left after weights, activations and the reserve that the engine gives its KV pool
    (TensorRT-LLM's free_gpu_memory_fraction, 0.9 by default there; 1: all of it). The rest stays unused."""
    host_s_per_sequence: float = 0.0
    """Host time the engine spends per running sequence per decode step (scheduling, sampling, bookkeeping), done
    while the GPU runs the previous step: a step lasts the longer of the two (host_floor_s). 0: the ideal engine."""
    window_positions: tuple[float, float] | None = None
    """Under a sliding window, the KV positions a running sequence holds (on demand, reserved whole) averaged over a
    workload's requests (workload.windowed_positions); None: those of one request of input_len and output_len."""
    prefill_reserve_tokens: int = 0
    """Tokens per TP group of the smallest prefill pass (one prompt) a co-located engine runs on the decode GPUs, whose
    activations it sets aside before sizing its KV pool (vLLM profiles a pass of its largest token batch first, SGLang
    keeps 1 - mem_fraction_static for activations; workspace_bytes); 0 where the GPU only decodes."""

    @property
    def mean_context(self) -> float:
        """Mean cached context of a sequence while it decodes: the prompt plus half the output (continuous batching
        holds sequences at every point of their generation)."""
        return self.input_len + self.output_len / 2.0

    @property
    def admitted_context(self) -> float:
        """KV positions one running sequence holds against the pool: its mean context when pages are taken as tokens
        come; its prompt plus whole output when the scheduler reserves them at admission, so that no sequence is ever
        evicted. The second holds output / 2 more positions per sequence, so (input + output / 2) / (input + output)
        of the batch fits: about half at 128 in / 2,048 out, three quarters at 1,000 / 1,000 (docs/model.md §16.8)."""
        if self.kv_admission == "full-request":
            return float(self.input_len + self.output_len)
        return self.mean_context

    def _windowed(self) -> tuple[float, float]:
        if self.window_positions is not None:
            return self.window_positions
        return windowed_positions(one_request(self.input_len, self.output_len), float(self.model.sliding_window))

    @property
    def read_positions(self) -> float:
        """KV positions a decode step reads per sequence: the mean context, or under a sliding window the window-capped
        positions averaged over the sequence's decode (the cap of the mean context would overstate them)."""
        if self.model.sliding_window is None:
            return float(cached_positions(self.model, self.mean_context))
        return self._windowed()[0]

    @property
    def held_positions(self) -> float:
        """KV positions a running sequence holds against the pool: admitted_context, window-capped as read_positions
        (reserved whole: its prompt and output up to the window)."""
        if self.model.sliding_window is None:
            return float(cached_positions(self.model, self.admitted_context))
        return self._windowed()[1 if self.kv_admission == "full-request" else 0]

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens a sequence gains per verified step with MTP drafts (Leviathan et al. 2023, Thm 3.8):
        (1 - a^(g+1)) / (1 - a); 1 without drafts."""
        g, a = self.mtp_depth, self.mtp_accept
        if g == 0:
            return 1.0
        return float(sum(a**i for i in range(g + 1)))

    @property
    def expert_slots(self) -> int:
        moe = self.model.moe
        return (moe.n_routed_experts + self.redundant_experts) if moe else 0


@dataclass(frozen=True)
class Candidates:
    """Deployments to evaluate, one entry per candidate (numpy arrays of equal length)."""

    tp: np.ndarray
    dp: np.ndarray
    pp: np.ndarray
    batch: np.ndarray
    """Sequences per GPU in one micro-batch."""
    precision: np.ndarray
    """Serving precision per candidate: an array of strings (bf16, fp8, fp4; model/number_formats.py)."""

    @property
    def stage_gpus(self) -> np.ndarray:
        return self.tp * self.dp

    @property
    def gpus(self) -> np.ndarray:
        return self.tp * self.dp * self.pp

    def __len__(self) -> int:
        return len(self.tp)


# ------------------------------------------------------------------ weights and memory


def _bytes_per_element(s: Setup, c: Candidates, g: Gemm, kind: str) -> np.ndarray:
    """Bytes per weight element of one GEMM in each candidate's format (model/number_formats.py)."""
    formats = gemm_formats(c.precision, g, s.model, kind)
    return np.select([formats == d for d in GEMM_FORMATS], [BYTES_PER_ELEMENT[d] for d in GEMM_FORMATS])


def _local_width(g: Gemm, tp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) of one TP rank's slice of a non-routed GEMM."""
    n = g.n / tp if g.sharding in ("column", "vocab") else np.full_like(tp, g.n, dtype=float)
    k = g.k / tp if g.sharding == "row" else np.full_like(tp, g.k, dtype=float)
    return n, k


def _layer_counts(model: ModelSpec, mtp_depth: int) -> Counter:
    counts = Counter(layer_kinds(model))
    if mtp_depth and model.mtp_depth:
        counts["mtp"] = min(mtp_depth, model.mtp_depth)
    return counts


def weight_bytes_per_gpu(s: Setup, c: Candidates) -> dict[str, np.ndarray]:
    """Weight bytes one GPU of the busiest (last) stage holds, by component."""
    model, tp = s.model, c.tp.astype(float)
    out = {"attention": np.zeros(len(c)), "ffn": np.zeros(len(c)), "experts": np.zeros(len(c))}
    for kind, count in _layer_counts(model, s.mtp_depth).items():
        per_stage = count / c.pp if kind != "mtp" else count  # MTP modules sit on the last stage with the head
        for g in layer_gemms(model, kind):
            b = _bytes_per_element(s, c, g, kind)
            if g.routed:
                # Whole slots per GPU (the busiest holds the ceiling); more GPUs than slots split each expert.
                slots_here = np.where(c.stage_gpus <= s.expert_slots, np.ceil(s.expert_slots / c.stage_gpus), 1.0)
                split = np.maximum(1.0, c.stage_gpus / s.expert_slots)
                params = slots_here * g.k * g.n / split
                out["experts"] += per_stage * params * b
            else:
                n, k = _local_width(g, tp)
                out["attention" if g.component == "attention_proj" else "ffn"] += per_stage * n * k * b
    head = head_gemm(model)
    embed_and_head = (1 if model.tied_embeddings else 2) * head.k * head.n / tp * BYTES_PER_ELEMENT["bf16"]
    out["embedding_and_head"] = np.where(c.pp > 1, head.k * head.n / tp * BYTES_PER_ELEMENT["bf16"], embed_and_head)
    return out


def kv_bytes_per_gpu(s: Setup, c: Candidates) -> np.ndarray:
    """KV cache one GPU holds for its running sequences: its TP group's sequences (tp x batch) at the positions each
    holds against the pool (Setup.held_positions), its share of the heads; the pp micro-batches in flight each
    cache 1/pp of the layers, so pp cancels."""
    context = s.held_positions
    return c.tp * c.batch * context * kv_bytes_per_token(s.model, s.kv_dtype) * kv_shard(s.model, c.tp)


def workspace_bytes(s: Setup, c: Candidates) -> np.ndarray:
    """Activations of one step: the logits in fp32 and the widest FFN activation, for the TP group's tokens; on a GPU
    that also prefills (co-located), no less than its smallest prefill pass's (Setup.prefill_reserve_tokens), since the
    two take turns in the same memory."""
    model = s.model
    tokens = c.tp * c.batch * (1 + s.mtp_depth)
    widest = max(model.d_ff, model.moe.d_ff_expert * model.moe.top_k if model.moe else 0)
    step = tokens * (model.vocab_size / c.tp * BYTES_PER_ELEMENT["fp32"] + 2 * widest / c.tp * BYTES_PER_ELEMENT["bf16"])
    return np.maximum(step, prefill_workspace_bytes(model, s.prefill_reserve_tokens, c.tp))


def prefill_workspace_bytes(model: ModelSpec, tokens_per_tp_group: float | np.ndarray, tp: float | np.ndarray):
    """Activations a prefill pass keeps on one GPU at a time: the hidden states in and out and its FFN shard's, in BF16,
    for the tokens its TP group computes together."""
    return tokens_per_tp_group * (2 * model.d_model + model.d_ff / tp) * BYTES_PER_ELEMENT["bf16"]


def memory_per_gpu(s: Setup, c: Candidates) -> dict[str, np.ndarray]:
    """Bytes per GPU by component; `total` is what must fit in HBM."""
    w = weight_bytes_per_gpu(s, c)
    out = {"weights": sum(w.values()), "kv_cache": kv_bytes_per_gpu(s, c), "activations": workspace_bytes(s, c)}
    out["reserved"] = np.full(len(c), s.assumptions.memory_reserved_bytes)
    out["total"] = out["weights"] + out["kv_cache"] + out["activations"] + out["reserved"]
    return out


def kv_pool_bytes(s: Setup, kv_bytes):
    """The KV pool a cache of `kv_bytes` must come from when the engine gives the pool only a share of the free
    memory: kv / fraction (the rest of that memory stays unused)."""
    return kv_bytes / s.kv_memory_fraction


def hbm_needed_bytes(s: Setup, memory: dict[str, np.ndarray]) -> np.ndarray:
    """HBM a candidate needs: its total, with the KV cache grown to its pool (`kv_pool_bytes`)."""
    return memory["total"] - memory["kv_cache"] + kv_pool_bytes(s, memory["kv_cache"])


# ------------------------------------------------------------------ step time


def _gemm_s(s: Setup, c: Candidates, m, n, k, g: Gemm, kind: str, count=1.0):
    """Seconds of weight GEMMs, each candidate in its format (a format the GPU lacks: inf, never chosen)."""
    formats = gemm_formats(c.precision, g, s.model, kind)
    t = np.full(len(c), np.inf)
    for dtype in GEMM_FORMATS:
        here = formats == dtype
        if here.any() and dtype in s.rates.peak_flop_per_s:
            t = np.where(here, s.rates.gemm_s(m, n, k, dtype, count, weight_gemm=True), t)
    return t


def _routed_s(s: Setup, c: Candidates, g: Gemm, kind: str, tokens_per_gpu) -> np.ndarray:
    """One routed-expert GEMM on the busiest GPU: only the expert slots hit this step, each at its tokens."""
    moe = s.model.moe
    assert moe is not None
    slots, gpus = float(s.expert_slots), c.stage_gpus.astype(float)
    pairs = gpus * tokens_per_gpu * moe.top_k  # token-expert pairs of the stage
    split = np.maximum(1.0, gpus / slots)  # more GPUs than slots: each expert's width is split
    local_slots = slots * split / gpus
    p_hit = 1.0 - np.power(1.0 - 1.0 / slots, pairs)
    tokens_per_hit = s.assumptions.moe_imbalance * pairs / slots / np.maximum(p_hit, 1e-12)
    n = g.n / split if g.sharding == "column" else np.full(len(c), float(g.n))
    k = g.k / split if g.sharding == "row" else np.full(len(c), float(g.k))
    count = local_slots * p_hit
    # One grouped GEMM runs every local expert (DeepGEMM, CUTLASS grouped): one kernel's fixed cost, not one each.
    per_kernel_extra = (np.maximum(count, 1.0) - 1.0) * s.rates.kernel_overhead_s
    return _gemm_s(s, c, tokens_per_hit, n, k, g, kind, count=count) - per_kernel_extra


def _attention_core_s(s: Setup, c: Candidates, tokens_per_seq) -> np.ndarray:
    """Decode attention of one layer: the TP group's sequences read their cache (the GPU's share of it) and
    every new token attends to the whole context."""
    model = s.model
    context = s.read_positions
    if model.attention == "mla":
        assert model.mla is not None
        per_key = 2.0 * (2 * model.mla.kv_lora_rank + model.mla.qk_rope_head_dim)  # absorbed MLA (latent QK and AV)
    else:
        per_key = 4.0 * model.head_dim
    flops = c.batch * tokens_per_seq * context * per_key * model.n_heads  # heads / tp on tp x batch sequences
    layer_kv = kv_bytes_per_token(model, s.kv_dtype) / model.n_layers
    kv_bytes = c.tp * c.batch * context * layer_kv * kv_shard(model, c.tp)
    return np.maximum(s.rates.kv_read_s(kv_bytes), flops / s.rates.attention_flop_per_s) + s.rates.kernel_overhead_s


def layer_step_s(s: Setup, c: Candidates, kind: str, tokens_per_seq: float) -> dict[str, np.ndarray]:
    """Seconds of one layer of `kind` in one decode step on one GPU, by component."""
    return _layer_parts(s, c, kind, tokens_per_seq)[0]


FFN_COMPONENTS = ("dense_ffn", "shared_experts")
"""The non-routed FFN GEMMs' components, whose activations the elementwise kernels read and write."""


def ffn_activation_width(gemms) -> float:
    """Elements per token of the non-routed FFN activations (dense FFN and shared experts): the inner dimension of
    their down projections. MLA's q_down and kv_down are attention GEMMs and do not count."""
    return float(sum(g.k for g in gemms if g.component in FFN_COMPONENTS and g.name.endswith("_down") and not g.routed))


PRE_CORE_GEMMS = ("q_proj", "q_down", "q_up", "kv_down", "qkv_proj")
"""Attention GEMMs that run before the attention kernel (SGLang's decode `op_decode_attn_0`, DeepSeek's ATTN-0: 'MLA
down/up projection and other ops ... before core attention'); the absorbed kv_up is split, W_UK before, W_UV after."""
POST_CORE_GEMMS = ("out_proj", "router", "shared_gate")
"""GEMMs after the attention kernel and before the dispatch (DeepSeek's ATTN-1: 'core attention, attention output
projection and MoE routing gate')."""


def _layer_parts(s: Setup, c: Candidates, kind: str, tokens_per_seq: float):
    """(seconds by component, the two-batch-overlap terms) of one layer: see `layer_step_s` and
    `two_batch_exposed_s`."""
    model, tp = s.model, c.tp.astype(float)
    tokens_tp = tp * c.batch * tokens_per_seq  # tokens through a TP group's GEMMs
    tokens_gpu = c.batch * tokens_per_seq
    out = {k: np.zeros(len(c)) for k in ("attention_proj", "attention_core", "ffn", "experts", "elementwise", "tp_comm")}
    pre_core_s, post_core_s = np.zeros(len(c)), np.zeros(len(c))
    ffn_width = ffn_activation_width(layer_gemms(model, kind))
    for g in layer_gemms(model, kind):
        if g.routed:
            out["experts"] += _routed_s(s, c, g, kind, tokens_gpu)
            continue
        n, k = _local_width(g, tp)
        key = "attention_proj" if g.component == "attention_proj" else "ffn"
        t_s = _gemm_s(s, c, tokens_tp, n, k, g, kind)
        out[key] += t_s
        if g.name == "kv_up":
            pre_core_s, post_core_s = pre_core_s + t_s / 2, post_core_s + t_s / 2
        elif g.name in PRE_CORE_GEMMS or g.component == "shared_experts":
            pre_core_s = pre_core_s + t_s
        elif g.name in POST_CORE_GEMMS:
            post_core_s = post_core_s + t_s
    out["attention_core"] = _attention_core_s(s, c, tokens_per_seq)
    elementwise_bytes = tokens_tp * (ELEMENTWISE_BYTES_PER_TOKEN_PER_WIDTH * model.d_model
                                     + ACTIVATION_BYTES_PER_FFN_ELEMENT * ffn_width / tp)  # fmt: skip
    moe_layer = model.moe is not None and any(g.routed for g in layer_gemms(model, kind))
    out["elementwise"] = elementwise_bytes / s.rates.hbm_bytes_per_s + extra_kernels(model, moe_layer) * s.rates.kernel_overhead_s
    act = BYTES_PER_ELEMENT["bf16"]
    # Two all-reduces over the TP group per layer, a MoE layer's as a dense one's: after attention, and after the FFN
    # or MoE, whose TP ranks each hold a partial sum of every token of the group (TensorRT-LLM's Module9 and Module13
    # 'oneshotAllReduce', blog1 above). With TP 1 (attention DP) they cost nothing; the EP exchange is ep_comm.
    out["tp_comm"] = 2 * collective_s("all_reduce", tokens_tp * model.d_model * act, Group(c.tp, 1), s.rates.fabric)
    zero = np.zeros(len(c))
    overlap = {"dispatch_s": zero, "combine_s": zero, "dispatch_window_s": zero, "combine_window_s": zero}
    if moe_layer:
        assert model.moe is not None
        group = Group(c.stage_gpus, 1)
        # FP8 and FP4 deployments dispatch in block FP8 (DeepEP's low-latency dispatch sends FP8 with 1x128 scales;
        # an NVFP4 expert quantizes its input after it arrives). The combine is BF16.
        dispatch_bytes = np.where(c.precision != "bf16", BLOCK_FP8_BYTES_PER_ELEMENT, act)
        dispatch_s = moe_low_latency_exchange_s(tokens_gpu, model.moe.top_k, model.d_model, dispatch_bytes, group, s.rates.fabric)
        combine_s = moe_low_latency_exchange_s(tokens_gpu, model.moe.top_k, model.d_model, act, group, s.rates.fabric)
        # Only attention-DP groups exchange tokens: with one group (dp 1) every GPU already holds every token after
        # the attention all-reduce, runs its local experts on them and the MoE all-reduce combines them (TensorRT-LLM
        # TP8 min-latency, blog1 Module12-13: no all-to-all).
        dispatch_s, combine_s = np.where(c.dp > 1, dispatch_s, 0.0), np.where(c.dp > 1, combine_s, 0.0)
        out["ep_comm"] = dispatch_s + combine_s
        # The layer's elementwise kernels but the MoE's own (top-k, permute, reduction, routed activation) run in the
        # two windows, one residual-add + RMSNorm pass in each (docs/model.md §16.5).
        moe_kernels_s = MOE_EXTRA_KERNELS_PER_LAYER * s.rates.kernel_overhead_s
        windowed_s = (out["elementwise"] - moe_kernels_s) / 2
        overlap = {
            "dispatch_s": dispatch_s,
            "combine_s": combine_s,
            "dispatch_window_s": pre_core_s + windowed_s,
            "combine_window_s": out["attention_core"] + post_core_s + windowed_s,
        }
    else:
        out["ep_comm"] = np.zeros(len(c))
    return out, overlap


def two_batch_exposed_s(overlap: dict[str, np.ndarray]) -> np.ndarray:
    """EP exchange one micro-batch leaves exposed in one MoE layer when two micro-batches overlap (docs/model.md
    §16.5). DeepSeek's decode schedule (deepseek-ai/profile-data README and assets/decode.jpg) and SGLang's
    two-batch overlap (python/sglang/srt/operations_strategy.py `_compute_moe_deepseek_blog_decode`, five stages,
    `tbo_delta_stages=2`) run one micro-batch's dispatch while the stream computes its shared experts and the other
    micro-batch's attention up to the attention kernel (ATTN-0), and its combine while the stream computes the other
    micro-batch's attention kernel, output projection and gate (ATTN-1); the routed experts (MLP) run with nothing
    in flight. So each exchange hides only under its own window:
    exposed = max(0, dispatch - dispatch window) + max(0, combine - combine window)."""
    return np.maximum(0.0, overlap["dispatch_s"] - overlap["dispatch_window_s"]) + np.maximum(
        0.0, overlap["combine_s"] - overlap["combine_window_s"]
    )


def extra_kernels(model: ModelSpec, moe_layer: bool) -> int:
    """Fixed-cost kernels of one decode layer besides its GEMMs and its attention kernel."""
    mla = MLA_EXTRA_KERNELS_PER_LAYER if model.attention == "mla" else 0
    return ELEMENTWISE_KERNELS_PER_LAYER + mla + (MOE_EXTRA_KERNELS_PER_LAYER if moe_layer else 0)


COMPUTE_PARTS = ("attention_proj", "attention_core", "ffn", "experts", "elementwise", "lm_head")


def step_s(s: Setup, c: Candidates) -> dict[str, np.ndarray]:
    """One decode step of one micro-batch on a GPU of the busiest stage, by component, `total` and `micro_batches`.

    The engine runs the step's sequences as one micro-batch, its EP dispatch and combine exposed, or, where it
    overlaps them (`Setup.ep_overlap`) and the TP group holds at least two sequences, as two micro-batches of half
    the sequences each, one's exchange hidden under the other's compute, each dispatch and combine under its own
    window of the schedule (`two_batch_exposed_s`; DeepSeek's decode, deepseek-ai/profile-data README: 'decoding also
    leverages two micro-batches for overlapping computation and all-to-all communication'; SGLang's two-batch
    overlap). Each micro-batch runs every kernel and reads every weight it touches, so the split
    pays the weight reads and fixed kernel costs twice; the faster of the two is taken (docs/model.md §16.5)."""
    one = _micro_batches_s(s, c, 1)
    if not s.ep_overlap:
        return one
    half = Candidates(c.tp, c.dp, c.pp, c.batch / 2.0, c.precision)
    two = _micro_batches_s(s, half, 2)
    # Two micro-batches only where they are faster by more than rounding: a host-bound step is the same either way.
    split = (c.tp * c.batch >= 2.0) & (two["total"] < one["total"] * (1.0 - ROUNDING_RELATIVE))
    return {k: np.where(split, two[k], one[k]) for k in one}


def _micro_batches_s(s: Setup, c: Candidates, micro_batches: int) -> dict[str, np.ndarray]:
    """A step of `micro_batches` micro-batches of `c.batch` sequences per GPU each; the EP exchange of one hides
    under the other's compute, layer by layer, when there are two (`two_batch_exposed_s`).

    With MTP the step verifies 1 + depth tokens per sequence, and the draft modules run `depth` times on one
    token each before it."""
    model = s.model
    verify = 1.0 + s.mtp_depth
    parts: dict[str, np.ndarray] = {}
    exposed_s = np.zeros(len(c))
    for kind, count in Counter(layer_kinds(model)).items():
        layer, overlap = _layer_parts(s, c, kind, verify)
        for k, v in layer.items():
            parts[k] = parts.get(k, 0.0) + count / c.pp * v
        exposed_s = exposed_s + count / c.pp * (two_batch_exposed_s(overlap) if micro_batches > 1 else layer["ep_comm"])
    head = head_gemm(model)
    head_n, head_k = _local_width(head, c.tp.astype(float))
    parts["lm_head"] = _gemm_s(s, c, c.tp * c.batch * verify, head_n, head_k, head, "head")
    draft = np.zeros(len(c))
    if s.mtp_depth and model.mtp_depth:
        one = layer_step_s(s, c, "mtp", 1.0)
        draft = s.mtp_depth * (sum(one.values()) + _gemm_s(s, c, c.tp * c.batch, head_n, head_k, head, "head"))
    parts["mtp_draft"] = draft
    parts = {k: micro_batches * v for k, v in parts.items()}
    compute = sum(parts[k] for k in COMPUTE_PARTS) + parts["mtp_draft"]
    parts.pop("ep_comm")
    parts["ep_comm_exposed"] = micro_batches * exposed_s
    parts["engine_overhead"] = np.full(len(c), DECODE_STEP_OVERHEAD_S)
    gpu_s = compute + parts["tp_comm"] + parts["ep_comm_exposed"] + parts["engine_overhead"]
    parts["host_exposed"] = np.maximum(0.0, host_floor_s(s, c, micro_batches) - gpu_s)
    parts["total"] = gpu_s + parts["host_exposed"]
    parts["micro_batches"] = np.full(len(c), float(micro_batches))
    return parts


def host_floor_s(s: Setup, c: Candidates, micro_batches: int) -> np.ndarray:
    """Host seconds of one decode step: the engine's time per running sequence x the sequences one engine process
    steps (its replica's tp x batch per micro-batch, every micro-batch of the step). An overlap scheduler prepares
    step n + 1 while the GPU runs step n, so the host is exposed only where it is the longer (docs/model.md §16.3)."""
    return s.host_s_per_sequence * c.tp * c.batch * micro_batches


def throughput(s: Setup, c: Candidates, step_total_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(output tokens/s per GPU, tokens/s per user) at a stage time: one micro-batch (tp x dp x batch sequences)
    leaves the last stage per stage time, on tp x dp x pp GPUs; a sequence waits for all `pp` stages."""
    accepted = s.tokens_per_step
    cycle_s = c.pp * step_total_s
    return c.batch * accepted / cycle_s, accepted / cycle_s
