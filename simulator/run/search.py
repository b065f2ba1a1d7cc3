"""Layout search: every candidate layout of a job evaluated at once with numpy.

The grid is the product of the options of each layout field (those the user fixed have one option);
DP follows from the GPU count. Layouts that break a divisibility rule are counted by rule and not
timed; every valid layout gets a step time, its busiest rank's memory, and GPU-hours. A layout that
does not fit in memory is kept as data (feasible = False, with the reason), never an exception.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulator.errors import InputError, LayoutError
from simulator.inputs.assumptions import DEFAULT, Assumptions
from simulator.inputs.job import Job, with_fp8_recipe
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.inputs.stacks import LayoutLimits
from simulator.model.efficiency import DeviceRates, device_rates
from simulator.model.flops import ParamCounts, flop_utilization, parameter_counts
from simulator.model.layer_work import token_flops
from simulator.model.layout import Layout, Layouts, problem_masks, problem_text
from simulator.model.step_time import StepArrays, evaluate, step
from simulator.run.cost import Pricing, pricing
from simulator.run.goodput import ettr
from simulator.units import GIB
from simulator.vocab import LAYOUT_FIELDS, RECOMPUTE_MODES

POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)
MICRO_BATCH_SIZES = (1, 2, 4, 8, 16)
CONTEXT_PARALLEL = (1, 2, 4, 8, 16)
ZERO_STAGES = (0, 1, 2, 3)
# Virtual stages per rank tried with the interleaved schedule; the others use one chunk per rank.
VIRTUAL_STAGES = (2, 3, 4, 6, 8)
OBJECTIVES = ("time", "cost")


@dataclass(frozen=True)
class SearchResult:
    """Every valid layout of a job, evaluated; `order` ranks them (feasible first, by the objective)."""

    layouts: Layouts
    steps: StepArrays
    feasible: np.ndarray
    gpu_hours: np.ndarray
    cost_usd: np.ndarray
    memory_bytes: np.ndarray
    mfu: np.ndarray
    """Model FLOP/s per GPU / the dense BF16 peak, per candidate."""
    capacity_bytes: float
    objective_values: np.ndarray
    """Step time or dollars, per candidate: what the ranking sorts by (after feasibility, before memory)."""
    grid_size: int
    invalid_by_rule: dict[str, int]
    objective: str
    context: tuple
    """(model, job, rates, counts, assumptions): to recompute one candidate's breakdown."""

    @property
    def n_valid(self) -> int:
        return len(self.layouts)

    @property
    def n_feasible(self) -> int:
        return int(self.feasible.sum())

    def reason(self, i: int) -> str:
        """Why candidate i is infeasible ('' when it fits)."""
        if self.feasible[i]:
            return ""
        mem = self.steps.memory
        parts = ", ".join(
            f"{name} {getattr(mem, name + '_bytes')[i] / GIB:.1f}"
            for name in ("weights", "gradients", "optimizer", "activations", "other")
        )
        return (
            f"does not fit: needs {self.memory_bytes[i] / GIB:.1f} GiB per GPU ({parts} GiB) "
            f"but the GPU has {self.capacity_bytes / GIB:.1f} GiB"
        )

    def closest(self) -> int:
        """The candidate needing the least memory: the nearest miss when none fits."""
        return int(self.memory_bytes.argmin())

    @functools.cached_property
    def order(self) -> np.ndarray:
        """Every candidate in rank order: feasible first, then the objective, then less memory, then index."""
        return np.lexsort((self.memory_bytes, self.objective_values, ~self.feasible))

    def top(self, k: int) -> np.ndarray:
        """The first k of `order`, without sorting everything."""
        if k >= self.n_valid:
            return self.order
        primary = np.where(self.feasible, self.objective_values, np.inf)
        cut = np.partition(primary, k - 1)[k - 1]
        pool = np.flatnonzero(primary <= cut) if np.isfinite(cut) else np.arange(self.n_valid)
        ranked = pool[np.lexsort((self.memory_bytes[pool], self.objective_values[pool], ~self.feasible[pool]))]
        return ranked[:k]

    def best(self) -> int | None:
        """Index of the best feasible candidate, or None when nothing fits."""
        first = self.top(1)
        return int(first[0]) if first.size and self.feasible[first[0]] else None

    def best_within(self, limits: LayoutLimits, given: dict | None = None) -> int | None:
        """The best feasible candidate whose free fields lie within `limits` (the practice of a stack; fields in
        `given` were fixed by the user and hold whatever the limits say), or None."""
        lay, fixed = self.layouts, set(given or ())
        mask = self.feasible.copy()
        for name in ("tp", "pp", "cp", "ep", "zero_stage", "micro_batch_size", "schedule", "recompute", "tp_overlap"):
            if name not in fixed and getattr(limits, name) is not None:
                mask &= np.isin(getattr(lay, name), getattr(limits, name))
        if limits.tp_max is not None and "tp" not in fixed:
            mask &= lay.tp <= limits.tp_max
        pool = np.flatnonzero(mask)
        if not pool.size:
            return None
        return int(pool[np.lexsort((self.memory_bytes[pool], self.objective_values[pool]))[0]])

    def rank_of(self, match: dict) -> int | None:
        """Rank (0-based, in `order`) of the best candidate whose fields equal `match`."""
        mask = np.ones(self.n_valid, dtype=bool)
        for key, value in match.items():
            mask &= getattr(self.layouts, key) == value
        if not mask.any():
            return None
        pool = np.flatnonzero(mask)
        i = pool[np.lexsort((self.memory_bytes[pool], self.objective_values[pool], ~self.feasible[pool]))[0]]
        return self._rank(int(i))

    def _rank(self, i: int) -> int:
        """Position of candidate i in `order`: how many candidates sort before it."""
        f, v, m = self.feasible, self.objective_values, self.memory_bytes
        before = (f & ~f[i]) | ((f == f[i]) & (v < v[i]))
        before |= (f == f[i]) & (v == v[i]) & ((m < m[i]) | ((m == m[i]) & (np.arange(self.n_valid) < i)))
        return int(before.sum())


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def field_options(
    model: ModelSpec, hw: HardwareProfile, job: Job, given: dict, limits: LayoutLimits | None = None
) -> dict[str, list]:
    """The options of each layout field: what the user fixed, else every value worth trying that the software
    stack's `limits` allow (a field the limits would leave empty keeps its smallest value)."""
    n = job.num_gpus
    experts = model.moe.n_routed_experts if model.moe else 1
    opts: dict[str, list] = {
        # TP beyond one NVLink domain is valid (its collectives then cross the network) and is tried too.
        "tp": [t for t in POWERS_OF_TWO if n % t == 0 and t <= model.n_heads],
        "pp": [p for p in _divisors(n) if p <= model.n_layers],
        "cp": [c for c in CONTEXT_PARALLEL if n % c == 0],
        "ep": [e for e in _divisors(experts) if e <= n],
        "zero_stage": list(ZERO_STAGES),
        "micro_batch_size": list(MICRO_BATCH_SIZES),
        "recompute": list(RECOMPUTE_MODES),
        "tp_overlap": [False, True],
    }
    for key in opts if limits else ():
        allowed = [v for v in opts[key] if limits.allows(key, v)]  # type: ignore[union-attr]
        opts[key] = allowed or opts[key][:1]
    for key, value in given.items():
        if key in opts:
            opts[key] = [value]
    return opts


def schedule_options(given: dict, limits: LayoutLimits | None = None) -> list[tuple[str, int]]:
    pairs = [("1f1b", 1), ("zb-h1", 1), ("dualpipe", 1)] + [("interleaved", v) for v in VIRTUAL_STAGES]
    if limits is not None and "schedule" not in given:
        pairs = [p for p in pairs if limits.allows("schedule", p[0])] or pairs[:1]
    if "schedule" in given:
        pairs = [p for p in pairs if p[0] == given["schedule"]] or [(given["schedule"], 1)]
    if "vpp" in given:
        pairs = [(s, given["vpp"]) for s, _ in dict(pairs).items()]
    return pairs


# The fields the validity rules read. ZeRO stage, recompute and TP overlap (with TP > 1, which the grid builds
# in) are read by none: every valid combination of these is valid with each of their values.
CORE_FIELDS = ("pp", "tp", "cp", "ep", "micro_batch_size")


def _core_grid(opts: dict, job: Job, given: dict, limits: LayoutLimits | None = None) -> tuple[Layouts, np.ndarray]:
    """The product of the fields the validity rules read (`opts`: field_options), PP and the schedule varying
    slowest (so layouts that share a layers-to-ranks map stay contiguous), and how many full candidates each
    row stands for."""
    scheds = schedule_options(given, limits)
    shape = [len(opts["pp"]), len(scheds)] + [len(opts[k]) for k in CORE_FIELDS[1:]]
    idx = np.indices(shape).reshape(len(shape), -1)
    col = {k: np.asarray(opts[k], dtype=np.int64)[idx[i + 1 if i else 0]] for i, k in enumerate(CORE_FIELDS)}
    schedule = np.array([s for s, _ in scheds], dtype=str)[idx[1]]
    vpp = np.array([v for _, v in scheds], dtype=np.int64)[idx[1]]
    denom = col["tp"] * col["pp"] * col["cp"]
    keep = np.ones(len(denom), dtype=bool) if "dp" in given else job.num_gpus % denom == 0  # else DP is no integer
    col = {k: v[keep] for k, v in col.items()}
    schedule, vpp, denom = schedule[keep], vpp[keep], denom[keep]
    dp = np.full(denom.shape, given["dp"], dtype=np.int64) if "dp" in given else job.num_gpus // denom
    n = len(denom)
    core = Layouts(
        tp=col["tp"],
        pp=col["pp"],
        dp=dp,
        ep=col["ep"],
        cp=col["cp"],
        zero_stage=np.full(n, opts["zero_stage"][0], dtype=np.int64),
        micro_batch_size=col["micro_batch_size"],
        schedule=schedule,
        recompute=np.full(n, opts["recompute"][0], dtype=str),
        vpp=vpp,
        tp_overlap=np.full(n, opts["tp_overlap"][0], dtype=bool),
    )
    return core, _free_count(opts, core.tp, "tp_overlap" in given)


def _free_count(opts: dict, tp: np.ndarray, overlap_given: bool) -> np.ndarray:
    """Candidates per core row: ZeRO stages x recompute modes x TP-overlap settings (only off without TP)."""
    overlap = np.full(len(tp), len(opts["tp_overlap"])) if overlap_given else np.where(tp > 1, len(opts["tp_overlap"]), 1)
    return len(opts["zero_stage"]) * len(opts["recompute"]) * overlap


def _expand(core: Layouts, opts: dict, rows: np.ndarray) -> Layouts:
    """Core rows `rows` times every value of the free fields (TP overlap on only with TP > 1)."""
    core = core.take(np.flatnonzero(rows))
    free = [(z, r, o) for z in opts["zero_stage"] for r in opts["recompute"] for o in opts["tp_overlap"]]
    zero = np.array([f[0] for f in free], dtype=np.int64)
    over = np.array([f[2] for f in free], dtype=bool)
    reps = len(free)
    row = np.repeat(np.arange(len(core)), reps)
    which = np.tile(np.arange(reps), len(core))
    keep = ~(over[which] & (core.tp[row] == 1)) if len(opts["tp_overlap"]) > 1 else np.ones(len(row), dtype=bool)
    row, which = row[keep], which[keep]
    cols = {name: getattr(core, name)[row] for name in ("tp", "pp", "dp", "ep", "cp", "micro_batch_size", "vpp")}
    return Layouts(
        **cols,
        schedule=core.schedule[row],
        zero_stage=zero[which],
        recompute=np.array([f[1] for f in free], dtype=str)[which],
        tp_overlap=over[which],
    )


def _valid_layouts(
    model: ModelSpec, hw: HardwareProfile, job: Job, given: dict, limits: LayoutLimits | None = None
) -> tuple[Layouts, int, dict[str, int]]:
    """The valid layouts, the size of the grid, and how many candidates each rule rules out.

    The rules read only TP, PP, CP, EP, micro-batch size, schedule and virtual stages, so they are checked on
    that smaller product (each row weighted by the candidates it stands for) and only valid rows are expanded
    over ZeRO stage, recompute and TP overlap."""
    opts = field_options(model, hw, job, given, limits)
    core, weight = _core_grid(opts, job, given, limits)
    masks = problem_masks(model, job, core)
    invalid = np.logical_or.reduce(list(masks.values()))
    by_rule = {rule: int(weight[m].sum()) for rule, m in masks.items() if m.any()}
    valid = _expand(core, opts, ~invalid)
    if not len(valid):
        raise LayoutError(_no_valid_layout_message(model, job, core, masks, given))
    return valid, int(weight.sum()), by_rule


def search(
    model: ModelSpec,
    hw: HardwareProfile,
    job: Job,
    given: dict | None = None,
    assumptions: Assumptions = DEFAULT,
    rates: DeviceRates | None = None,
    price: Pricing | None = None,
    objective: str = "time",
    counts: ParamCounts | None = None,
    progress: Callable[[int, int], None] | None = None,
    limits: LayoutLimits | None = None,
    memory_limit_bytes: float | None = None,
) -> SearchResult:
    """Evaluate every valid layout of `job` consistent with the `given` fields. `price`: the price chosen for the run
    (default: the profile's rental quote); `limits`: what the software stack allows for the fields not given
    (inputs.stacks; None: everything)."""
    if objective not in OBJECTIVES:
        raise LayoutError(f"objective {objective!r} is unknown; use one of {', '.join(OBJECTIVES)}")
    if objective == "cost" and (price or pricing(hw)).usd_per_gpu_hour == 0:
        # Every layout would cost $0 and tie: the ranking would fall to the memory tie-break, not to anything cheaper.
        raise InputError(
            "--objective cost ranks layouts by dollars, and a GPU-hour priced at $0 makes every one $0; give a price "
            "above 0 or use --objective time (the same ranking at any fixed price per GPU-hour)"
        )
    given = {k: v for k, v in (given or {}).items() if v is not None}
    job = with_fp8_recipe(job, model)
    hw.peak_flop_per_s(job.precision)  # unknown dtype on this GPU -> SpecError
    rates = rates or device_rates(hw, assumptions)
    counts = counts or parameter_counts(model)
    valid, grid_size, invalid_by_rule = _valid_layouts(model, hw, job, given, limits)
    steps = _evaluate_all(model, job, valid, rates, counts, assumptions, progress)
    memory = steps.memory.total_bytes
    capacity = hw.memory_bytes if memory_limit_bytes is None else memory_limit_bytes
    feasible = memory <= capacity
    gpu_hours = job.gpu_hours(steps.step_time_s, ettr(job.num_gpus, assumptions))
    cost = (price or pricing(hw)).cost_usd(gpu_hours)
    return SearchResult(
        layouts=valid,
        steps=steps,
        feasible=feasible,
        gpu_hours=gpu_hours,
        cost_usd=cost,
        memory_bytes=memory,
        mfu=flop_utilization(
            token_flops(model, job.seq_len).training_flops,
            job.tokens_per_s_per_gpu(steps.step_time_s),
            hw.peak_flop_per_s(job.precision),  # the precision used, as Estimate.mfu
        ),
        capacity_bytes=capacity,
        objective_values=steps.step_time_s if objective == "time" else cost,
        grid_size=grid_size,
        invalid_by_rule=invalid_by_rule,
        objective=objective,
        context=(model, job, rates, counts, assumptions),
    )


def _evaluate_all(model, job, lays: Layouts, rates, counts, assumptions, progress) -> StepArrays:
    """Evaluate all layouts in one call (no breakdown); `progress(done, total)` advances per group."""
    done = [0]

    def advance(k: int) -> None:
        done[0] += k
        if progress:
            progress(done[0], len(lays))

    return evaluate(model, job, lays, rates, counts, assumptions, progress=advance, breakdown=False)


def _no_valid_layout_message(model: ModelSpec, job: Job, grid: Layouts, masks: dict[str, np.ndarray], given: dict) -> str:
    if not len(grid):
        lay = Layout(**{k: v for k, v in given.items() if k in LAYOUT_FIELDS})
        rules = problem_masks(model, job, lay)
        # Rules about the model that the given degrees break, besides not dividing the GPU count.
        other = [problem_text(r, model, job, lay) for r in ("heads", "kv_heads", "stages", "cp_seq") if rules[r].any()]
        product = lay.tp * lay.pp * lay.cp
        return (
            f"no valid layout for {model.name}: --num-gpus {job.num_gpus} is not divisible by TP x PP x CP = "
            f"{lay.tp} x {lay.pp} x {lay.cp} = {product}; pick degrees that divide {job.num_gpus}"
            + "".join(f"\n  - {t}" for t in other)
        )
    # Rules that every candidate breaks decide it (usually a given flag); otherwise name the rules that rule out
    # the most candidates, with one example each.
    decisive = [rule for rule, m in masks.items() if m.all()]
    counts = sorted(((int(m.sum()), rule) for rule, m in masks.items() if m.any()), reverse=True)
    rules = decisive or [rule for _, rule in itertools.islice(counts, 3)]
    lines = [problem_text(rule, model, job, grid.at(int(np.flatnonzero(masks[rule])[0]))) for rule in rules]
    lead = "every candidate breaks" if decisive else "for example"
    return (
        f"no valid layout for {model.name} on {job.num_gpus} GPUs with the given flags ({len(grid)} combinations of "
        "TP, PP, CP, EP, micro-batch and schedule tried); "
        f"{lead}:\n  - " + "\n  - ".join(lines)
    )


def candidate_rows(result: SearchResult, limit: int | None = None):
    """Candidates in rank order as plain dicts (what --format json/csv dumps)."""
    order = result.order if limit is None else result.top(limit)
    lay = result.layouts
    cols = {k: getattr(lay, k)[order].tolist() for k in LAYOUT_FIELDS}
    step_s = result.steps.step_time_s[order]
    mfu = result.mfu[order].tolist()
    feasible = result.feasible[order].tolist()
    gpu_hours = result.gpu_hours[order].tolist()
    cost = result.cost_usd[order].tolist()
    shown_memory = (result.memory_bytes[order] / GIB).tolist()  # the rows are output: GiB as printed
    step_list = step_s.tolist()
    rows = []
    for r, i in enumerate(order.tolist()):
        rows.append(
            {
                "rank": r + 1,
                "layout": {k: cols[k][r] for k in LAYOUT_FIELDS},
                "feasible": feasible[r],
                "step_time_s": step_list[r],
                "gpu_hours": gpu_hours[r],
                "cost_usd": cost[r],
                "mfu": mfu[r],
                "memory_per_gpu_gib": shown_memory[r],
                "reason": "" if feasible[r] else result.reason(i),
            }
        )
    return rows


def breakdown_of(result: SearchResult, i: int) -> dict[str, float]:
    """Step-time breakdown of candidate i: the same formulas on a batch of one."""
    model, job, rates, counts, assumptions = result.context
    return step(model, job, result.layouts.at(i), rates, counts, assumptions).breakdown_s


# What a larger term on the slowest pipeline rank usually means, for the explanation of a ranking.
TERM_HINTS = {
    "lm_head": "the busiest pipeline rank also computes the LM head and cross-entropy: stage imbalance",
    "mtp": "the busiest pipeline rank also holds the MTP module: stage imbalance",
    "embedding": "the busiest pipeline rank also holds the embedding",
    "dense_ffn": "more dense layers on the busiest rank",
    "pipeline_bubble": "pipeline fill and drain: more stages per micro-batch",
    "tp_comm": "exposed tensor-parallel collectives",
    "cp_comm": "exposed context-parallel K/V exchange",
    "ep_comm": "expert all-to-all not hidden behind compute",
    "dp_comm_exposed": "gradient reduction not hidden behind the last backward",
    "pp_comm_exposed": "activation sends between stages",
    "recompute": "recomputed activations",
    "comm_sm_contention": "communication kernels taking SMs from compute",
    "optimizer": "optimizer step over more parameters per GPU",
}


def explain(result: SearchResult, reference: int, best: int) -> dict:
    """Why `best` beats `reference`: per-term step-time differences, largest first, and the layouts."""
    ref_terms, best_terms = breakdown_of(result, reference), breakdown_of(result, best)
    keys = sorted(set(ref_terms) | set(best_terms))
    diffs = {k: ref_terms.get(k, 0.0) - best_terms.get(k, 0.0) for k in keys}
    terms = sorted(diffs.items(), key=lambda kv: -abs(kv[1]))
    ref_s, best_s = float(result.steps.step_time_s[reference]), float(result.steps.step_time_s[best])
    top = [(k, v) for k, v in terms if v > 0][:3]
    why = ", ".join(f"{k} {v:+.3f} s ({TERM_HINTS.get(k, 'per step')})" for k, v in top)
    return {
        "reference_layout": result.layouts.at(reference).to_dict(),
        "best_layout": result.layouts.at(best).to_dict(),
        "reference_step_time_s": ref_s,
        "best_step_time_s": best_s,
        "slower_by": ref_s / best_s - 1.0,
        "terms_s": [{"term": k, "reference_minus_best_s": v} for k, v in terms if v != 0.0],
        "summary": (
            f"{result.layouts.at(best).describe()} takes {1.0 - best_s / ref_s:.1%} less time per step than "
            f"{result.layouts.at(reference).describe()}; the reference spends more on {why}"
            if top
            else "the reference layout is as fast as the best"
        ),
    }
