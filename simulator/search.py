"""Layout search: every candidate layout of a job evaluated at once with numpy.

The grid is the product of the options of each layout field (those the user fixed have one option);
DP follows from the GPU count. Layouts that break a divisibility rule are counted by rule and not
timed; every valid layout gets a step time, its busiest rank's memory, and GPU-hours. A layout that
does not fit in memory is kept as data (feasible = False, with the reason), never an exception.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .assumptions import DEFAULT, Assumptions
from .efficiency import DeviceRates, device_rates
from .errors import LayoutError
from .flops import ParamCounts, parameter_counts, token_flops
from .goodput import goodput
from .layout import RECOMPUTE_MODES, Job, Layout, Layouts, problem_masks, problem_text, with_fp8_recipe
from .specs import HardwareProfile, ModelSpec
from .step_time import StepArrays, evaluate, step
from .units import GIB, SECONDS_PER_HOUR

LAYOUT_FIELDS = ("tp", "pp", "dp", "ep", "cp", "zero_stage", "micro_batch_size", "schedule", "recompute", "vpp", "tp_overlap")
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
    capacity_bytes: float
    order: np.ndarray
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

    def best(self) -> int | None:
        """Index of the best feasible candidate, or None when nothing fits."""
        if not self.order.size or not self.feasible[self.order[0]]:
            return None
        return int(self.order[0])

    def rank_of(self, match: dict) -> int | None:
        """Rank (0-based, in `order`) of the best candidate whose fields equal `match`."""
        mask = np.ones(self.n_valid, dtype=bool)
        for key, value in match.items():
            mask &= getattr(self.layouts, key) == value
        positions = np.flatnonzero(mask[self.order])
        return int(positions[0]) if positions.size else None


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def field_options(model: ModelSpec, hw: HardwareProfile, job: Job, given: dict) -> dict[str, list]:
    """The options of each layout field: what the user fixed, else every value worth trying."""
    n = job.num_gpus
    experts = model.moe.n_routed_experts if model.moe else 1
    opts: dict[str, list] = {
        "tp": [t for t in POWERS_OF_TWO if n % t == 0 and t <= model.n_heads],
        "pp": [p for p in _divisors(n) if p <= model.n_layers],
        "cp": [c for c in CONTEXT_PARALLEL if n % c == 0],
        "ep": [e for e in _divisors(experts) if e <= n],
        "zero_stage": list(ZERO_STAGES),
        "micro_batch_size": list(MICRO_BATCH_SIZES),
        "recompute": list(RECOMPUTE_MODES),
        "tp_overlap": [False, True],
    }
    for key, value in given.items():
        if key in opts:
            opts[key] = [value]
    return opts


def schedule_options(given: dict) -> list[tuple[str, int]]:
    pairs = [("1f1b", 1), ("zb-h1", 1), ("dualpipe", 1)] + [("interleaved", v) for v in VIRTUAL_STAGES]
    if "schedule" in given:
        pairs = [p for p in pairs if p[0] == given["schedule"]] or [(given["schedule"], 1)]
    if "vpp" in given:
        pairs = [(s, given["vpp"]) for s, _ in dict(pairs).items()]
    return pairs


def candidate_grid(model: ModelSpec, hw: HardwareProfile, job: Job, given: dict) -> Layouts:
    """The product of the field options, with DP = GPUs / (TP x PP x CP) (or the given DP)."""
    opts = field_options(model, hw, job, given)
    scheds = schedule_options(given)
    names = ("tp", "pp", "cp", "ep", "zero_stage", "micro_batch_size", "recompute", "tp_overlap")
    dtypes = {"recompute": str, "tp_overlap": bool}
    shape = [len(opts[k]) for k in names] + [len(scheds)]
    idx = np.indices(shape).reshape(len(shape), -1)
    col = {k: np.asarray(opts[k], dtype=dtypes.get(k, np.int64))[idx[i]] for i, k in enumerate(names)}
    sched = np.array([s for s, _ in scheds], dtype=str)[idx[-1]]
    vpp = np.array([v for _, v in scheds], dtype=np.int64)[idx[-1]]
    denom = col["tp"] * col["pp"] * col["cp"]
    # Not layouts at all: DP would not be an integer, or TP overlap without TP (unless asked for).
    keep = np.ones(len(denom), dtype=bool) if "dp" in given else job.num_gpus % denom == 0
    if "tp_overlap" not in given:
        keep &= ~(col["tp_overlap"] & (col["tp"] == 1))
    col = {k: v[keep] for k, v in col.items()}
    sched, vpp, denom = sched[keep], vpp[keep], denom[keep]
    dp = np.full(denom.shape, given["dp"], dtype=np.int64) if "dp" in given else job.num_gpus // denom
    return Layouts(
        tp=col["tp"],
        pp=col["pp"],
        dp=dp,
        ep=col["ep"],
        cp=col["cp"],
        zero_stage=col["zero_stage"],
        micro_batch_size=col["micro_batch_size"],
        schedule=sched,
        recompute=col["recompute"],
        vpp=vpp,
        tp_overlap=col["tp_overlap"],
    )


def search(
    model: ModelSpec,
    hw: HardwareProfile,
    job: Job,
    given: dict | None = None,
    assumptions: Assumptions = DEFAULT,
    rates: DeviceRates | None = None,
    usd_per_gpu_hour: float | None = None,
    objective: str = "time",
    counts: ParamCounts | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SearchResult:
    """Evaluate every valid layout of `job` consistent with the `given` fields."""
    if objective not in OBJECTIVES:
        raise LayoutError(f"objective {objective!r} is unknown; use one of {', '.join(OBJECTIVES)}")
    given = {k: v for k, v in (given or {}).items() if v is not None}
    job = with_fp8_recipe(job, model)
    rates = rates or device_rates(hw, assumptions)
    counts = counts or parameter_counts(model)
    grid = candidate_grid(model, hw, job, given)
    masks = problem_masks(model, job, grid)
    invalid = np.logical_or.reduce(list(masks.values())) if masks else np.zeros(len(grid), dtype=bool)
    valid = grid.take(np.flatnonzero(~invalid))
    if not len(valid):
        raise LayoutError(_no_valid_layout_message(model, job, grid, masks, given))
    steps = _evaluate_all(model, job, valid, rates, counts, assumptions, progress)
    memory = steps.memory.total_bytes
    feasible = memory <= hw.memory_bytes
    ettr = goodput(job.num_gpus, 0.0, assumptions).ettr
    gpu_hours = job.steps * steps.step_time_s * job.num_gpus / SECONDS_PER_HOUR / ettr
    price = usd_per_gpu_hour if usd_per_gpu_hour is not None else hw.price.usd_per_gpu_hour
    cost = gpu_hours * price
    key = steps.step_time_s if objective == "time" else cost
    # Feasible first, then the objective, then less memory.
    order = np.lexsort((memory, key, ~feasible))
    return SearchResult(
        layouts=valid,
        steps=steps,
        feasible=feasible,
        gpu_hours=gpu_hours,
        cost_usd=cost,
        memory_bytes=memory,
        capacity_bytes=hw.memory_bytes,
        order=order,
        grid_size=len(grid),
        invalid_by_rule={rule: int(m.sum()) for rule, m in masks.items() if m.any()},
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


def _no_valid_layout_message(
    model: ModelSpec, job: Job, grid: Layouts, masks: dict[str, np.ndarray], given: dict
) -> str:
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
    # Name the rules that rule out the most candidates, with one example each.
    counts = sorted(((int(m.sum()), rule) for rule, m in masks.items() if m.any()), reverse=True)
    lines = []
    for _, rule in itertools.islice(counts, 3):
        example = grid.at(int(np.flatnonzero(masks[rule])[0]))
        lines.append(problem_text(rule, model, job, example))
    return (
        f"no valid layout for {model.name} on {job.num_gpus} GPUs with the given flags ({len(grid)} candidates tried); "
        "for example:\n  - " + "\n  - ".join(lines)
    )


def flops_per_token(model: ModelSpec, job: Job) -> float:
    return token_flops(model, job.seq_len).training_flops


def candidate_rows(result: SearchResult, job: Job, peak_flop_per_s: float, flops_per_tok: float, limit: int | None = None):
    """Candidates in rank order as plain dicts (what --format json/csv dumps)."""
    order = result.order if limit is None else result.order[:limit]
    lay = result.layouts
    cols = {k: getattr(lay, k)[order].tolist() for k in LAYOUT_FIELDS}
    step_s = result.steps.step_time_s[order]
    tokens_per_s_per_gpu = job.global_batch_sequences * job.seq_len / step_s / job.num_gpus
    mfu = (flops_per_tok * tokens_per_s_per_gpu / peak_flop_per_s).tolist()
    feasible = result.feasible[order].tolist()
    gpu_hours = result.gpu_hours[order].tolist()
    cost = result.cost_usd[order].tolist()
    mem_gib = (result.memory_bytes[order] / GIB).tolist()
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
                "memory_per_gpu_gib": mem_gib[r],
                "reason": "" if feasible[r] else result.reason(i),
            }
        )
    return rows


def breakdown_of(result: SearchResult, i: int) -> dict[str, float]:
    """Step-time breakdown of candidate i: the same formulas on a batch of one."""
    model, job, rates, counts, assumptions = result.context
    return step(model, job, result.layouts.at(i), rates, counts, assumptions).breakdown_s


def layout_at(result: SearchResult, i: int) -> Layout:
    return result.layouts.at(i)


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
            f"{result.layouts.at(best).describe()} is {ref_s / best_s - 1.0:.1%} faster than "
            f"{result.layouts.at(reference).describe()}; the reference spends more on {why}"
            if top
            else "the reference layout is as fast as the best"
        ),
    }
