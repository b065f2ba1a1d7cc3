"""Search serving deployments: every parallel layout x batch x precision at once (decode, vectorized), and the
prefill layouts and batch sizes (a few dozen forward passes). Latency targets filter; the best is the most tokens per
second per GPU that meets them. The throughput-interactivity curve is the upper envelope of everything that fits.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from simulator.errors import InfeasibleError, LayoutError
from simulator.inputs.specs import ModelSpec
from simulator.model.forward import forward_context, forward_pass
from simulator.model.serve.decode import (
    ROUNDING_RELATIVE,
    Candidates,
    Setup,
    hbm_needed_bytes,
    kv_pool_bytes,
    memory_per_gpu,
    step_s,
    throughput,
)
from simulator.units import GIB, MILLI

POWERS_OF_TWO = tuple(2**i for i in range(11))  # 1 .. 1024
SUB_ONE_BATCHES = tuple(2.0**-i for i in range(10, 0, -1))
"""Sequences per GPU below one: 1/1024 .. 1/2, so that a TP group of t GPUs may decode 1, 2, 4 .. t/2 sequences
(tp x batch must be whole for an engine's batch, `Given.whole_sequences`). Long contexts need them: one 128K-token
sequence's KV cache fills a GPU at one sequence per GPU whatever the TP, and only fewer sequences than GPUs fit."""
BATCH_GRID = tuple(sorted({*SUB_ONE_BATCHES, *range(1, 17), *(int(round(2 ** (i / 4))) for i in range(16, 53))}))
"""Sequences per GPU: the powers of two below one, every count to 16, then four steps per doubling to 8,192."""
MAX_STAGE_GPUS = 1024
CURVE_POINTS = 24


@dataclass(frozen=True)
class Given:
    """Layout fields the user fixed (None: searched)."""

    tp: int | None = None
    dp: int | None = None
    pp: int | None = None
    batch: float | None = None
    num_gpus: int | None = None
    """GPUs of one deployment (tp x dp x pp), when fixed."""
    max_batch: float | None = None
    """The engine's cap on decode sequences per GPU per micro-batch (its CUDA-graph or dispatch buffer size), when
    stated: the searched batches stop there, the cap itself included."""
    max_replica_sequences: float | None = None
    """A cap on the sequences of one attention replica (a TP group: tp x batch), where a source states it per rank
    of a layout whose TP is searched; rows above it are dropped."""
    whole_sequences: bool = False
    """Keep only rows whose attention replica (a TP group) decodes a whole number of sequences, at least one: an
    engine's batch (costsim serve). False where the batch is an average over a rollout's GPUs (RL generation)."""


def _options(given: int | None, default: tuple[int, ...]) -> tuple[int, ...]:
    return (given,) if given is not None else default


def check_tp(model, tp: int | None) -> None:
    """Tensor parallelism splits attention by heads: the degree must divide them."""
    if tp is not None and model.n_heads % tp:
        divisors = [t for t in POWERS_OF_TWO if model.n_heads % t == 0]
        raise LayoutError(
            f"--tp {tp} does not divide the {model.n_heads} attention heads of {model.name}; use one of "
            f"{', '.join(map(str, divisors))}"
        )


def batch_grid(tp: int | None = None) -> tuple[float, ...]:
    """BATCH_GRID, and with a stated TP every k / tp below one (k = 1 .. tp - 1): a TP group of any size may decode
    fewer sequences than its GPUs (the powers of two below one give that only at power-of-two TPs)."""
    if tp is None or tp <= 1:
        return BATCH_GRID
    return tuple(sorted({*BATCH_GRID, *(k / tp for k in range(1, tp))}))


def capped_batches(max_batch: float | None, tp: int | None = None) -> tuple[float, ...]:
    """The decode batch grid (batch_grid) up to an engine's cap, with the cap itself; the whole grid without one."""
    grid = batch_grid(tp)
    if max_batch is None:
        return grid
    cap = {max_batch} if max_batch <= grid[-1] else set()  # a cap above the grid does not widen it
    return tuple(sorted({b for b in grid if b < max_batch} | cap))


def decode_candidates(s: Setup, given: Given, precisions: tuple[str, ...]) -> Candidates:
    """Every combination of the free fields: TP up to the heads and the NVLink domain, attention-DP (MoE only: a
    dense model's replicas do not change a GPU's work), PP, batch and precision."""
    model, domain = s.model, s.hw.domain_gpus
    check_tp(model, given.tp)
    tps = _options(given.tp, tuple(t for t in POWERS_OF_TWO if t <= max(domain, 1) and model.n_heads % t == 0))
    if given.num_gpus is not None:  # a fixed deployment: every factorisation of its GPU count
        counts = tuple(d for d in range(1, given.num_gpus + 1) if given.num_gpus % d == 0)
        dps = _options(given.dp, counts if model.moe else (1,))
        pps = _options(given.pp, tuple(p for p in counts if p <= min(16, model.n_layers)))
    else:
        dps = _options(given.dp, POWERS_OF_TWO if model.moe else (1,))
        pps = _options(given.pp, tuple(p for p in (1, 2, 4, 8, 16) if p <= model.n_layers))
    batches = _options(given.batch, capped_batches(given.max_batch, given.tp))
    grid = np.array(list(itertools.product(tps, dps, pps, batches)), dtype=float).reshape(-1, 4)
    stage_ok = grid[:, 0] * grid[:, 1] <= MAX_STAGE_GPUS
    keep = stage_ok.copy()
    cap_ok = np.ones(len(grid), dtype=bool)
    if given.max_replica_sequences is not None:
        cap_ok = grid[:, 0] * grid[:, 3] <= given.max_replica_sequences
        keep &= cap_ok
    if given.num_gpus is not None:
        keep &= grid[:, 0] * grid[:, 1] * grid[:, 2] == given.num_gpus
    whole_ok = _whole_sequences(grid, given, keep) if given.whole_sequences else np.ones(len(grid), dtype=bool)
    keep &= whole_ok
    grid = grid[keep]
    n = len(grid)
    prec = np.repeat(np.array(precisions), n)
    grid = np.tile(grid, (len(precisions), 1))
    if len(grid) == 0:
        stated = ", ".join(f"{k} {v:,.0f}" for k, v in (("tp", given.tp), ("dp", given.dp), ("pp", given.pp)) if v is not None)
        if given.num_gpus is not None:
            if not stated:
                max_tp, max_pp = max(tps), min(16, model.n_layers)
                dp_text = (
                    f"up to {MAX_STAGE_GPUS:,} GPUs of tp x dp per stage"
                    if model.moe
                    else ("1 (a dense model's replicas are separate deployments)")
                )
                raise LayoutError(
                    f"no decode layout has tp x dp x pp = {given.num_gpus:,} GPUs: tp is a power of two up to {max_tp} "
                    f"(the NVLink domain, dividing the {model.n_heads} heads), dp {dp_text}, pp at most {max_pp} "
                    "dividing the count; give a GPU count of that form for one deployment (a fleet is many of them)"
                )  # fmt: skip
            raise LayoutError(
                f"no decode layout has tp x dp x pp = {given.num_gpus:,} GPUs with the fields given ({stated}); give a "
                "GPU count that is a product of them, or leave fields out to search them"
            )
        # The rules that remove rows, each named once (the stage size only where it binds).
        rules = [f"a stage holds at most {MAX_STAGE_GPUS:,} GPUs (tp x dp)"] if not stage_ok.all() else []
        rules += ["a replica's sequences stay within its cap"] if not cap_ok.all() else []
        if given.max_batch is not None:
            rules.append(f"batches stop at --max-batch-per-gpu {given.max_batch:g}")
        rules += ["a TP group decodes a whole number of sequences (tp x batch)"] if not whole_ok.all() else []
        fixes = ["give smaller degrees"] + (["a larger --max-batch-per-gpu"] if given.max_batch is not None else [])
        if given.max_batch is not None and given.max_batch * max(tps) < 1:
            # Under one sequence per GPU, only a wider TP group or a larger cap holds a whole sequence (a review).
            widest = max(tps)
            fixes = [f"use a --max-batch-per-gpu of at least {1 / widest:g} (one sequence per TP{widest} group)"]
        raise LayoutError(
            f"no decode layout fits{f' the fields given ({stated})' if stated else ''}: {'; '.join(rules)}; "
            f"{' or '.join(fixes)}, or leave fields out to search them"
        )
    return Candidates(grid[:, 0], grid[:, 1], grid[:, 2], grid[:, 3], prec)


WHOLE_SEQUENCE_SLACK = 1e-5
"""Relative slack within which tp x batch counts as a whole number of sequences: float noise, and a batch per GPU
typed to six digits (0.333333 at TP3 is one sequence)."""


def _whole_sequences(grid: np.ndarray, given: Given, keep: np.ndarray) -> np.ndarray:
    """Rows whose TP group holds a whole number of sequences, at least one; a stated batch that gives none is refused."""
    per_replica = grid[:, 0] * grid[:, 3]
    slack = WHOLE_SEQUENCE_SLACK * per_replica  # float noise of tp x batch (0.125 x 8)
    whole = (np.abs(per_replica - np.round(per_replica)) <= slack) & (per_replica >= 1 - WHOLE_SEQUENCE_SLACK)
    if given.batch is not None and keep.any() and not (whole & keep).any():
        tps = sorted({int(t) for t in grid[keep, 0]})
        tp = tps[-1]
        near = sorted({max(1, math.floor(given.batch * tp)), max(1, math.ceil(given.batch * tp))})
        raise LayoutError(
            f"--batch-per-gpu {given.batch:g} gives {given.batch * tp:g} sequences per TP{tp} group"
            + (f" (and fewer at TP{', TP'.join(str(t) for t in tps[:-1])})" if len(tps) > 1 else "")
            + "; a TP group decodes whole sequences, so tp x batch must be a whole number of at least 1: give e.g. "
            f"--batch-per-gpu {' or '.join(f'{n / tp:.10g}' for n in near)} at TP{tp}, or leave it out to search it"
        )
    return whole


@dataclass(frozen=True)
class DecodeSearch:
    candidates: Candidates
    step: dict[str, np.ndarray]
    memory: dict[str, np.ndarray]
    tokens_per_s_per_gpu: np.ndarray
    tokens_per_s_per_user: np.ndarray
    fits: np.ndarray
    hbm_needed_bytes: np.ndarray
    """HBM each candidate needs (memory total, with the KV cache grown to its pool: decode.hbm_needed_bytes)."""
    setup: Setup
    """What was searched (the refusal message names the KV options and formats it could change)."""

    def curve(self, chosen: int | None = None) -> list[dict]:
        """Upper envelope of tokens/s per GPU against tokens/s per user over the layouts that fit, thinned: the
        Pareto-optimal candidates (none other is as fast per user and faster per GPU), of which, for each of
        CURVE_POINTS per-user speeds (log-spaced over the range reached), the best throughput at that speed or more;
        and the candidate `chosen` (the reported decode), which the curve then passes through. Tokens/s per GPU falls
        strictly as tokens/s per user rises."""
        ok = self.fits & np.isfinite(self.tokens_per_s_per_gpu)
        if not ok.any():
            return []
        front = _pareto_front(self.tokens_per_s_per_user, self.tokens_per_s_per_gpu, ok)
        user = self.tokens_per_s_per_user[front]  # rising (tokens/s per GPU falling)
        levels = np.geomspace(max(user[0], 1e-3), user[-1], CURVE_POINTS)
        # The best throughput at a speed or more is the first front point at or past it.
        kept = set(np.searchsorted(user, levels * (1 - 1e-9), side="left").clip(0, len(front) - 1).tolist())
        picked = [int(front[k]) for k in sorted(kept)]
        if chosen is not None:
            u, g = self.tokens_per_s_per_user[chosen], self.tokens_per_s_per_gpu[chosen]
            # The chosen candidate is on the front but where throughputs tie within rounding (best_decode's rule takes
            # the fastest per user among them): a point that beats or equals it in both gives way to it (another layout
            # with exactly its rates would repeat the point, and the curve falls strictly).
            user, gpu = self.tokens_per_s_per_user, self.tokens_per_s_per_gpu
            picked = [i for i in picked if i == chosen or not (user[i] >= u and gpu[i] >= g)]
            picked = sorted({*picked, int(chosen)}, key=lambda i: self.tokens_per_s_per_user[i])
        per_user, per_gpu = self.tokens_per_s_per_user, self.tokens_per_s_per_gpu
        return [{"tokens_per_s_per_user": float(per_user[i]), "tokens_per_s_per_gpu": float(per_gpu[i])} for i in picked]


def _pareto_front(per_user: np.ndarray, per_gpu: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Indices of the candidates in `ok` that no other beats per GPU at the same speed per user or more, ordered by
    speed per user (rising; their throughput per GPU falls strictly)."""
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((-per_gpu[idx], -per_user[idx]))]  # fastest per user first; at a tie, most per GPU first
    best_after = np.maximum.accumulate(per_gpu[order])  # the best throughput at this speed or more
    on_front = np.r_[True, per_gpu[order][1:] > best_after[:-1]]
    return order[on_front][::-1]


def search_decode(s: Setup, given: Given, precisions: tuple[str, ...]) -> DecodeSearch:
    c = decode_candidates(s, given, precisions)
    step = step_s(s, c)
    memory = memory_per_gpu(s, c)
    per_gpu, per_user = throughput(s, c, step["total"])
    needed = hbm_needed_bytes(s, memory)
    return DecodeSearch(c, step, memory, per_gpu, per_user, needed <= s.hw.memory_bytes, needed, s)


def narrower_precision_hint(precisions, fp4_available: bool) -> str:
    """What a refusal suggests by the narrowest weight format the search already tried: nothing once FP4 was."""
    have = set(str(p) for p in precisions)
    if "fp4" in have:
        return ""
    if "fp8" in have:
        return "use --precision fp4, " if fp4_available else "use a GPU with FP4 tensor cores (Blackwell) and --precision fp4, "
    return "use a narrower --precision (fp8, fp4), " if fp4_available else "use a narrower --precision (fp8; fp4 on Blackwell), "


def best_decode(found: DecodeSearch, min_tokens_per_s_per_user: float | None) -> int:
    """Index of the highest throughput per GPU that fits and meets the per-user speed."""
    ok = found.fits.copy()
    if not ok.any():
        i = int(np.argmin(found.hbm_needed_bytes))
        need, have, s = found.hbm_needed_bytes[i], found.candidates.gpus[i], found.setup
        pool = "" if s.kv_memory_fraction == 1 else f" in a pool of {s.kv_memory_fraction:.0%} of the free memory"
        finding = (
            f"no decode layout fits: the smallest needs {need / GIB:.1f} GiB per GPU on {have:.0f} GPUs "
            f"(weights {found.memory['weights'][i] / GIB:.1f} GiB, KV cache {found.memory['kv_cache'][i] / GIB:.1f} GiB"
            f"{pool})"
        )
        raise InfeasibleError(
            f"{finding}; "
            + ("raise --kv-memory-fraction, " if s.kv_memory_fraction < 1 else "")
            + ("use --kv-admission on-demand (KV taken as tokens come), " if s.kv_admission == "full-request" else "")
            + "allow more GPUs (leave --tp/--dp/--pp/--num-gpus out), "
            + narrower_precision_hint(found.candidates.precision, s.hw.has_dtype("fp4"))
            + ("use --kv-dtype fp8, " if s.kv_dtype == "bf16" else "")
            + "or shorter requests (--input-len/--output-len, --workload)",
            finding,
        )
    if min_tokens_per_s_per_user is not None:
        fast = eligible(found, min_tokens_per_s_per_user)
        if not fast.any():
            best = float(found.tokens_per_s_per_user[ok].max())
            finding = (
                f"no layout reaches {min_tokens_per_s_per_user:,.4g} tokens/s per user (TPOT "
                f"{1 / min_tokens_per_s_per_user / MILLI:.4g} ms); the fastest that fits gives {best:,.4g} tokens/s "
                f"(TPOT {1 / best / MILLI:.4g} ms)"
            )
            raise InfeasibleError(f"{finding}; relax --tpot-ms / --min-tokens-per-s-per-user, or allow more GPUs", finding)
        ok = fast
    return _fastest_per_gpu_then_per_user(found.tokens_per_s_per_gpu, found.tokens_per_s_per_user, ok)


def eligible(found: DecodeSearch, min_tokens_per_s_per_user: float | None) -> np.ndarray:
    """The candidates that fit and meet the per-user speed (best_decode picks among them)."""
    ok = found.fits.copy()
    if min_tokens_per_s_per_user is not None:
        ok &= found.tokens_per_s_per_user >= min_tokens_per_s_per_user
    return ok


def best_per_layout(found: DecodeSearch, ok: np.ndarray) -> list[int]:
    """One candidate per layout (TP, DP, PP, precision) among `ok`, each picked as best_decode picks (the most tokens/s
    per GPU, ties within rounding to the fastest per user), fastest per GPU first."""
    c = found.candidates
    idx = np.nonzero(ok)[0]
    if len(idx) == 0:
        return []
    keys = np.array([f"{c.tp[i]:g}/{c.dp[i]:g}/{c.pp[i]:g}/{c.precision[i]}" for i in idx])
    picks = []
    for key in np.unique(keys):
        members = np.zeros(len(c), dtype=bool)
        members[idx[keys == key]] = True
        picks.append(_fastest_per_gpu_then_per_user(found.tokens_per_s_per_gpu, found.tokens_per_s_per_user, members))
    return sorted(picks, key=lambda i: -found.tokens_per_s_per_gpu[i])


def _fastest_per_gpu_then_per_user(per_gpu: np.ndarray, per_user: np.ndarray, ok: np.ndarray) -> int:
    """The candidate with the most tokens/s per GPU among `ok`; among those that tie with it, the fastest per user
    (the smallest batch that reaches the same rate), not whichever rounding favours."""
    rate = np.where(ok, per_gpu, -np.inf)
    tied = ok & (rate >= rate.max() * (1.0 - ROUNDING_RELATIVE))
    return int(np.argmax(np.where(tied, per_user, -np.inf)))


# ------------------------------------------------------------------ prefill

PREFILL_TOKENS_PER_GPU = (1024, 2048, 4096, 8192, 16384, 32768)
"""Prompt tokens per GPU per forward pass tried (engines chunk prefill at a few thousand tokens), and one prompt per
TP group per pass besides (`prefill_batches`): the shortest TTFT a layout has."""


def prefill_expert_parallel(model: ModelSpec, tp: int, groups: int | None) -> tuple[int, int]:
    """(dp, ep) of a prefill stage of `groups` attention-DP groups of `tp` GPUs: a MoE model's experts spread whole
    over all tp x dp GPUs (EP = TP x DP), as DeepSeek's and SGLang's prefill run them (DeepEP over the unit) and as
    decode spreads them (decode.weight_bytes_per_gpu); None: one group with TP-sharded experts (EP 1). A dense model
    has no experts (EP 1), and its groups are independent replicas: a pass's rate per GPU is one group's, and the
    groups are kept so a co-located prefill shows its decode's layout."""
    if groups is None:
        return 1, 1
    return (groups, 1) if model.moe is None else (groups, tp * groups)


def prefill_batches(input_len: int, tp: int) -> tuple[int, ...]:
    """Prompts per TP group per pass: those that put each PREFILL_TOKENS_PER_GPU on a GPU (at least one), and one.
    A TP group of t GPUs at 1,024 tokens per GPU would take t prompts of 1,024 tokens, so without the single prompt
    a wide group could never show the TTFT it reaches on one prompt alone."""
    return tuple(sorted({1, *(max(1, round(per_gpu * tp / input_len)) for per_gpu in PREFILL_TOKENS_PER_GPU)}))


@dataclass(frozen=True)
class PrefillPoint:
    tp: int
    ep: int
    sequences: int
    """Prompts per forward pass on each TP group."""
    precision: str
    seconds: float
    """One forward pass of the batch (computed tokens only)."""
    by_component_s: dict
    input_tokens_per_s_per_gpu: float
    """Prompt tokens (cache hits included) per second per GPU."""
    computed_tokens_per_s_per_gpu: float
    """Tokens the pass computes per second per GPU: the prompts' misses in whole tokens, at least one a prompt (an
    engine computes a fully cached prompt's last token for its logits); what computing a token costs."""
    ttft_s: float
    memory_bytes: float
    pp: int = 1
    weight_bytes: float = 0.0
    """The weights of one GPU (its share of memory_bytes; the rest is the KV cache, activations and the reserve)."""
    kv_bytes: float = 0.0
    """The KV pool of one GPU: the cache the pass writes, grown to its pool (kv_pool_bytes) where the pool takes only
    a share of the free memory."""
    hit_rate: float = 0.0
    """The prompts' cache-hit share the pass was sized at."""
    workspace_bytes: float = 0.0
    """The pass's activations on one GPU (prefill_workspace_bytes)."""
    dp: int = 1
    """Attention data-parallel groups of `tp` GPUs each: the stage's tp x dp GPUs, over which a MoE model's experts
    spread (ep = tp x dp), or experts TP-sharded (ep 1, dp 1)."""

    @property
    def gpus(self) -> int:
        """GPUs of the deployment: tp x dp per pipeline stage."""
        return self.tp * self.dp * self.pp

    @property
    def prompts_per_pass(self) -> int:
        return self.sequences * self.dp

    @property
    def layout_text(self) -> str:
        """As the table shows decode's layouts."""
        return f"TP{self.tp} DP{self.dp} PP{self.pp} EP{self.ep}"

    @property
    def uncached_tokens_per_s_per_gpu(self) -> float:
        """The prompts' cache misses per second per GPU: input_tokens_per_s_per_gpu x (1 - hit rate), the mean misses
        the passes serve. A price per uncached token at this rate charges what the passes cost: a day's misses at it
        take the GPU time of its input at the input rate (at the whole tokens a pass computes, a day of 99.9%-hit
        prompts cost 3% less than its passes)."""
        return self.input_tokens_per_s_per_gpu * (1.0 - self.hit_rate)


PREFILL_GROUPS = (1, 8, 16, 32, 64)
"""Attention data-parallel groups per prefill stage a search tries (DeepSeek's prefill unit is 32 attention replicas
of one GPU over EP32)."""


def prefill_layouts(model: ModelSpec, tps: tuple[int, ...], ep: int | None) -> tuple[tuple[int, int | None], ...]:
    """(tp, attention groups) of the prefill stages a search tries (prefill_points): a dense model one TP group; a
    MoE model, at each TP, its experts TP-sharded (None) and spread whole over tp x dp GPUs for each PREFILL_GROUPS
    whose tp x dp divides the experts. A stated `ep` (expert parallelism, the stage's GPUs) fixes dp = ep / tp: TPs
    that do not divide it are left out (run.serve refuses a stated TP that does not), and ep 1 is TP-sharded."""
    if model.moe is None or ep == 1:
        return tuple((tp, None) for tp in tps)
    if ep is not None:
        return tuple((tp, ep // tp) for tp in tps if ep % tp == 0)
    experts = model.moe.n_routed_experts
    out = []
    for tp in tps:
        out.append((tp, None))
        out += [(tp, g) for g in PREFILL_GROUPS if tp * g > 1 and experts % (tp * g) == 0]
    return tuple(out)


def prefill_points(s: Setup, layouts: tuple[tuple[int, int | None], ...], precisions: tuple[str, ...],
                   cache_hit_rate: float, kv_transfer_bytes_per_s: float | None,
                   pps: tuple[int, ...] = (1,)) -> list[PrefillPoint]:  # fmt: skip
    """Prefill at each layout and batch (docs/model.md §16.7). `layouts`: (tp, attention groups) pairs, the groups
    being the attention data-parallel TP groups per stage, over whose tp x dp GPUs a MoE model's experts spread whole
    (prefill_expert_parallel), as decode spreads them; None for one group with its experts TP-sharded (EP 1; a dense
    model's only layout). A pass over whole prompts, then cache hits: a hit
    skips its linear work, and the missed tokens still attend to the cached prefix, so with hit share h everything
    but the attention core is a pass over the missed tokens alone (its GEMMs at that M: no faster than reading the
    weights, its fixed per-pass costs whole) and the causal attention core scales by 1 - h^2
    ((miss x prefix + miss^2 / 2) / (len^2 / 2)).
    Pipeline stages split the layers: a pass takes all pp stage times (TTFT), and with pp passes in flight a GPU's
    rate is as without pipelining while it holds 1/pp of the weights. TTFT adds the KV transfer to a decode node
    when disaggregated. Memory: the weights, the KV cache the pass writes (from a pool of `kv_memory_fraction` of the
    free memory) and its activations, the reserve."""
    from simulator.model.serve.decode import prefill_workspace_bytes, weight_bytes_per_gpu
    from simulator.model.serve.kv_cache import kv_bytes_per_token, kv_shard

    model, points = s.model, []
    hit = cache_hit_rate
    kv_per_token = kv_bytes_per_token(model, s.kv_dtype)
    weights: dict[tuple, float] = {}
    batches = [(tp, group, sequences) for tp, group in layouts for sequences in prefill_batches(s.input_len, tp)]
    for (tp, group, sequences), precision in itertools.product(batches, precisions):
        dp, ep = prefill_expert_parallel(model, tp, group)
        ctx = forward_context(model, s.rates, s.input_len, sequences, tp=tp, ep=ep, precision=precision,
                              assumptions=s.assumptions, dp=dp)  # fmt: skip
        fp = forward_pass(ctx)  # the same pass whatever the pipeline stages (they split it, not change it)
        computed = max(1, round(s.input_len * (1.0 - hit)))  # tokens of a prompt the pass computes (one at least)
        parts = _missed_pass_s(s, sequences, tp, dp, ep, precision, computed) if hit else dict(fp.by_component_s)
        cached = 1.0 - computed / s.input_len  # the hit share of the whole tokens the pass computes
        parts["attention_core"] = fp.by_component_s["attention_core"] * (1.0 - cached * cached)
        parts = _overlapped_parts(parts, s)
        seconds = sum(parts.values())
        gpus = tp * dp
        prompts = sequences * dp
        tokens_per_tp_group = sequences * s.input_len
        workspace = prefill_workspace_bytes(model, tokens_per_tp_group, tp)
        transfer = s.input_len * kv_per_token / kv_transfer_bytes_per_s if kv_transfer_bytes_per_s else 0.0
        for pp in pps:
            key = (tp, dp, pp, precision)
            if key not in weights:  # experts over the stage's tp x dp GPUs, as decode's weight_bytes_per_gpu spreads them
                c = Candidates(np.array([tp]), np.array([dp]), np.array([pp]), np.array([0]), np.array([precision]))
                weights[key] = float(sum(v[0] for v in weight_bytes_per_gpu(s, c).values()))
            kv = kv_pool_bytes(s, tokens_per_tp_group * kv_per_token * float(kv_shard(model, np.array([float(tp)]))[0]) / pp)
            memory = weights[key] + kv + workspace + s.assumptions.memory_reserved_bytes
            points.append(
                PrefillPoint(
                    tp, ep, sequences, precision, seconds, parts,
                    prompts * s.input_len / seconds / gpus, prompts * computed / seconds / gpus,
                    seconds + transfer, memory, pp, weights[key], kv, hit, workspace, dp,
                )
            )  # fmt: skip
    return points


def _missed_pass_s(s: Setup, sequences: int, tp: int, dp: int, ep: int, precision: str, tokens: int) -> dict[str, float]:
    """Seconds by component of the forward pass over the prompts' missed tokens only: (1 - hit) x their length in
    whole tokens, at least one per prompt (an engine computes a fully cached prompt's last token for its logits)."""
    miss_ctx = forward_context(s.model, s.rates, tokens, sequences, tp=tp, ep=ep, precision=precision,
                               assumptions=s.assumptions, dp=dp)  # fmt: skip
    return dict(forward_pass(miss_ctx).by_component_s)


def _overlapped_parts(parts: dict[str, float], s: Setup) -> dict[str, float]:
    """A prefill pass's seconds by component with its EP dispatch and combine hidden under the other micro-batch's
    compute (DeepSeek's dual micro-batch overlap, SGLang's two-batch overlap), up to the overlap efficiency: `ep_comm`
    becomes the exposed part, as in a training step's breakdown, and the parts sum to the pass. Prefill exchanges with
    DeepEP's normal (high-throughput) kernels, which run on SMs of their own ('support SM number control',
    `Buffer.set_num_sms(24)`; deepseek-ai/DeepEP docs/legacy.md), so the compute they overlap loses those SMs while
    they run: `comm_sm_contention`, `comm_sm_fraction` of the hidden time, the contention of training (docs/model.md
    §5.2, §16.5). Decode's low-latency kernels overlap through a receive hook 'without any SM occupation' (same file)
    and pay none."""
    ep_comm_s = parts.get("ep_comm", 0.0)
    if not s.ep_overlap or not ep_comm_s:
        return parts
    compute = sum(parts.values()) - ep_comm_s
    hidden = min(ep_comm_s, s.assumptions.overlap_efficiency * compute)
    return parts | {"ep_comm": ep_comm_s - hidden, "comm_sm_contention": s.assumptions.comm_sm_fraction * hidden}


NEAR_BEST = 0.98
"""Prefill batches within 2% of the best throughput count as equal; the one with the shortest TTFT is taken."""


def best_prefill(points: list[PrefillPoint], hbm_bytes: float, max_ttft_s: float | None, kv_dtype: str = "bf16") -> PrefillPoint:
    fits = [p for p in points if p.memory_bytes <= hbm_bytes]
    if not fits:
        smallest = min(points, key=lambda p: p.memory_bytes)
        rest = smallest.memory_bytes - smallest.weight_bytes - smallest.kv_bytes
        finding = (
            f"no prefill layout fits: the smallest needs {smallest.memory_bytes / GIB:.1f} GiB per GPU at "
            f"{smallest.layout_text} (weights {smallest.weight_bytes / GIB:.1f} GiB, KV cache "
            f"{smallest.kv_bytes / GIB:.1f} GiB, activations and reserve {rest / GIB:.1f} GiB) against "
            f"{hbm_bytes / GIB:.1f} GiB"
        )
        largest = max(("weights", smallest.weight_bytes), ("kv", smallest.kv_bytes), ("activations", rest), key=lambda x: x[1])
        if largest[0] == "weights":
            fix = "allow wider layouts (leave --tp/--ep/--pp out) or use a narrower --precision (fp8; fp4 on Blackwell)"
        elif largest[0] == "kv" and kv_dtype == "bf16":  # the prompt's cache fills the GPU: halve it, or shorten it
            fix = "use --kv-dtype fp8 or shorter prompts (--input-len, --workload)"
        else:  # the pass's activations (or an FP8 cache): a wider layout or narrower weights barely help
            fix = "use shorter prompts (--input-len, --workload)"
        raise InfeasibleError(f"{finding}; {fix}", finding)
    if max_ttft_s is not None:
        fast = [p for p in fits if p.ttft_s <= max_ttft_s]
        if not fast:
            quickest = min(fits, key=lambda p: p.ttft_s)
            finding = (
                f"no prefill layout reaches TTFT {max_ttft_s / MILLI:.3g} ms; the quickest ({quickest.layout_text}, "
                f"{quickest.sequences} prompt(s) per TP group per pass) gives "
                f"{quickest.ttft_s / MILLI:.3g} ms"
            )
            raise InfeasibleError(f"{finding}; relax --ttft-ms or shorten --input-len", finding)
        fits = fast
    top = max(p.input_tokens_per_s_per_gpu for p in fits)
    return min((p for p in fits if p.input_tokens_per_s_per_gpu >= NEAR_BEST * top), key=lambda p: p.ttft_s)
