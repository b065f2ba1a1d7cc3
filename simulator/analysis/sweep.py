"""Scaling sweeps and inverse questions: the best layout per GPU type and cluster size, and which
cluster meets a deadline most cheaply or finishes soonest within a budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator.errors import InfeasibleError, InputError, LayoutError
from simulator.inputs.assumptions import DEFAULT, Assumptions
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.inputs.stacks import Stack, load_stack
from simulator.run.cost import CostOptions, Pricing, pricing
from simulator.run.scenario import fixed_fields, resolve
from simulator.run.search import breakdown_of, search
from simulator.units import GIB, MAX_GPUS, SECONDS_PER_DAY, SECONDS_PER_HOUR

if TYPE_CHECKING:
    from simulator.inputs.job import Job
    from simulator.model.efficiency import DeviceRates
    from simulator.run.estimate import Estimate


@dataclass(frozen=True)
class SweepRow:
    gpu: str
    num_gpus: int
    feasible: bool
    layout: dict | None
    step_time_s: float | None
    wall_clock_s: float | None
    gpu_hours: float | None
    cost_usd: float | None
    mfu: float | None
    memory_per_gpu_bytes: float | None
    candidates: int
    reason: str
    exposed_comm_s: float | None = None
    """Communication on the critical path per step plus the SM share it takes from compute: where
    GPUs that differ only in their links (H800 against H100) differ."""
    expected: dict | None = None
    """The expected run on this cluster: the best practice layout of the stack, realized (gpu_hours, cost_usd,
    wall_clock_s, layout); the row's own numbers are the achievable run."""
    price_quote: dict | None = None
    """The GPU's price (Pricing.quote): dollars per GPU-hour, kind, date, and whether it is flagged (not the kind
    asked for, default on-demand), so rows of different GPUs show whether their dollars compare like with like."""

    def to_dict(self) -> dict:
        """The row as `costsim sweep` prints it: days and GiB where the record keeps seconds and bytes."""
        out = dict(self.__dict__)
        wall_s, mem_bytes = out.pop("wall_clock_s"), out.pop("memory_per_gpu_bytes")
        out = {k: out[k] for k in ("gpu", "num_gpus", "feasible", "layout", "step_time_s")} | {
            "wall_clock_days": None if wall_s is None else wall_s / SECONDS_PER_DAY,
            **{k: out[k] for k in ("gpu_hours", "cost_usd", "mfu")},
            "memory_per_gpu_gib": None if mem_bytes is None else mem_bytes / GIB,
            **{k: out[k] for k in ("candidates", "reason", "exposed_comm_s")},
            **price_columns(self.price_quote),
        }
        if self.expected is not None:
            e = self.expected
            out["expected"] = {
                "gpu_hours": e["gpu_hours"],
                "cost_usd": e["cost_usd"],
                "wall_clock_days": e["wall_clock_s"] / SECONDS_PER_DAY,
                "layout": e["layout"],
            }
        return out


def price_columns(quote: dict | None) -> dict:
    """A row's price as flat columns (the same in JSON and CSV): usd_per_gpu_hour, price_kind, price_date, price_flagged."""
    q = quote or {}
    return {
        "usd_per_gpu_hour": q.get("usd_per_gpu_hour"),
        "price_kind": q.get("kind"),
        "price_date": q.get("date"),
        "price_flagged": bool(q.get("flagged")),
    }


def parse_gpu_counts(text: str) -> list[int]:
    """'256,512,1024' or a geometric range '256,512,...,16384' (the ratio of the first two)."""
    if any(not p.strip() for p in text.split(",")):  # '64,,128' dropped its empty item silently
        raise InputError(f"--num-gpus {text!r} has an empty item; write e.g. 256,512,1024 or 256,512,...,16384")
    parts = [p.strip() for p in text.split(",")]
    try:
        if "..." in parts:
            if len(parts) != 4 or parts[2] != "...":
                raise ValueError
            a, b, last = int(parts[0]), int(parts[1]), int(parts[3])
            if a >= 1 and b > a and b % a:
                raise InputError(
                    f"--num-gpus {text!r}: a ... range multiplies by the whole factor of its first two counts, and "
                    f"{b:,} / {a:,} is not whole; write e.g. {a},{2 * a},...,{last} or list the counts"
                )
            if a < 1 or b <= a or last < b:
                raise ValueError
            counts = [a]
            while counts[-1] * (b // a) <= last:
                counts.append(counts[-1] * (b // a))
            if counts[-1] != last and last <= MAX_GPUS:  # the range would stop short of the end it names
                raise InputError(
                    f"--num-gpus {text!r}: {last:,} is not in the range {', '.join(f'{c:,}' for c in counts)}, ... (each "
                    f"count x{b // a}); end it at {counts[-1]:,} or {counts[-1] * (b // a):,}, or list the counts"
                )
        else:
            counts = [int(p) for p in parts]
    except ValueError:
        raise InputError(
            f"--num-gpus {text!r} is not a list of GPU counts; write e.g. 256,512,1024 or 256,512,...,16384"
        ) from None
    if not counts or min(counts) < 1 or max(counts) > MAX_GPUS:
        raise InputError(f"--num-gpus {text!r}: every count must be between 1 and {MAX_GPUS:,}; write e.g. 256,512,...,16384")
    return sorted(set(counts))


def best_row(
    model: ModelSpec,
    hw: HardwareProfile,
    job: Job,
    given: dict,
    price: Pricing | None = None,
    assumptions: Assumptions = DEFAULT,
    rates: DeviceRates | None = None,
    stack: Stack | None = None,
) -> SweepRow:
    """The best feasible layout of `job` on `hw` (the layout fields in `given` fixed) within what the software
    stack offers (the achievable run), with the expected run beside it; or why there is none.

    `price`: the price chosen for the run (default: the profile's rental quote); `rates`: the device's efficiency
    terms when they are not the profile's (a calibration); `stack`: default today's."""
    num_gpus = job.num_gpus
    stack = stack or load_stack()
    price = price or pricing(hw)
    quote = price.quote
    given = fixed_fields(given)  # a field given as None is searched, not fixed (the expected run's practice applies)
    try:
        result = search(model, hw, job, given, assumptions, rates, price, limits=stack.offers)
    except (LayoutError, InfeasibleError) as e:
        reason = " ".join(str(e).split())
        return SweepRow(hw.name, num_gpus, False, None, None, None, None, None, None, None, 0, reason, price_quote=quote)
    best = result.best()
    if best is None:
        smallest = result.closest()
        return SweepRow(
            hw.name, num_gpus, False, None, None, None, None, None, None, float(result.memory_bytes[smallest]),
            result.n_valid, "no layout fits; the one needing the least " + result.reason(smallest), price_quote=quote,
        )  # fmt: skip
    step_s = float(result.steps.step_time_s[best])
    gpu_hours = float(result.gpu_hours[best])
    return SweepRow(
        gpu=hw.name,
        num_gpus=num_gpus,
        feasible=True,
        layout=result.layouts.at(best).to_dict(),
        step_time_s=step_s,
        wall_clock_s=gpu_hours * SECONDS_PER_HOUR / num_gpus,
        gpu_hours=gpu_hours,
        cost_usd=float(result.cost_usd[best]),
        mfu=float(result.mfu[best]),
        memory_per_gpu_bytes=float(result.memory_bytes[best]),
        candidates=result.n_valid,
        reason="",
        exposed_comm_s=exposed_comm_s(breakdown_of(result, best)),
        expected=_expected(result, stack, given, assumptions.for_generation(hw.generation).realization, num_gpus),
        price_quote=quote,
    )


def _expected(result, stack: Stack, given: dict, realization: float, num_gpus: int) -> dict | None:
    """The expected run among the candidates: the best practice layout, its GPU-hours and dollars scaled by the
    realization (both follow the step time; ETTR does not depend on the run's length)."""
    i = result.best_within(stack.practice_limits, given)
    if i is None:
        return None
    hours = float(result.gpu_hours[i]) * realization
    return {
        "gpu_hours": hours,
        "cost_usd": float(result.cost_usd[i]) * realization,
        "wall_clock_s": hours * SECONDS_PER_HOUR / num_gpus,
        "layout": result.layouts.at(i).to_dict(),
    }


def estimate_row(est: Estimate) -> SweepRow:
    """An estimate as a row beside best_row's: its own layout, given or searched."""
    return SweepRow(
        gpu=est.gpu,
        num_gpus=est.job.num_gpus,
        feasible=True,
        layout=est.layout.to_dict(),
        step_time_s=est.step_time_s,
        wall_clock_s=est.wall_clock_s,
        gpu_hours=est.gpu_hours,
        cost_usd=est.cost_usd,
        mfu=est.mfu,
        memory_per_gpu_bytes=est.step.memory.total_bytes,
        candidates=est.candidates_evaluated,
        reason="",
        exposed_comm_s=exposed_comm_s(est.step.breakdown_s),
        price_quote=est.pricing.quote,
    )


def exposed_comm_s(breakdown: dict[str, float]) -> float:
    return sum(v for k, v in breakdown.items() if "comm" in k)


def sweep(
    model: ModelSpec,
    gpus: list[HardwareProfile],
    gpu_counts: list[int],
    job_args: dict,
    given: dict,
    costs: CostOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    stack: Stack | None = None,
) -> list[SweepRow]:
    """The best row of every GPU type and count; each GPU priced once from `costs` (default: its rental quote).

    Each cluster is resolved as `costsim estimate` resolves it (simulator.run.scenario.resolve: the stack's attention
    kernel and FP8 recipe, the GPU's assumptions and rates), so a row's layout typed into `estimate` gives the row's
    step time, GPU-hours and dollars."""
    rows = []
    total = len(gpus) * len(gpu_counts)
    stack = stack or load_stack()
    for hw in gpus:
        price = pricing(hw, costs)
        for n in gpu_counts:
            s = resolve(model, hw, n, **job_args, costs=costs, stack=stack)  # a bad count is an input error
            rows.append(best_row(model, s.hardware, s.job, given, price, s.assumptions, s.rates, stack))
            if progress:
                progress(len(rows), total)
    return rows


NOTHING_FITS = "no swept cluster can train this model (nothing fits); add larger clusters or GPUs with more memory"


def _within(
    rows: list[SweepRow], measure: Callable[[SweepRow], float], limit: float, rank: Callable[[SweepRow], tuple]
) -> tuple[SweepRow | None, SweepRow | None]:
    """(the feasible row ranked first among those whose `measure` is within `limit`, None) or, when none is,
    (None, the feasible row with the smallest `measure`: the nearest miss; None when nothing is feasible)."""
    feasible = [r for r in rows if r.feasible]
    ok = [r for r in feasible if measure(r) <= limit]
    if ok:
        return min(ok, key=rank), None
    return None, min(feasible, key=measure, default=None)


def cheapest_within(rows: list[SweepRow], deadline_s: float) -> tuple[SweepRow | None, str]:
    """The cheapest feasible row that finishes within the deadline."""
    best, fastest = _within(rows, lambda r: r.wall_clock_s, deadline_s, lambda r: (r.cost_usd, r.wall_clock_s))
    days = deadline_s / SECONDS_PER_DAY
    if best is not None:
        return best, f"cheapest run finishing within {days:g} days"
    if fastest is None:
        return None, NOTHING_FITS
    return None, (
        f"no swept cluster finishes within {days:g} days: the fastest is {fastest.num_gpus} x {fastest.gpu} "
        f"with {fastest.wall_clock_s / SECONDS_PER_DAY:.1f} days; add larger GPU counts to --num-gpus"
    )


def fastest_within(rows: list[SweepRow], budget_usd: float) -> tuple[SweepRow | None, str]:
    """The fastest feasible row whose cost stays within the budget."""
    best, cheapest = _within(rows, lambda r: r.cost_usd, budget_usd, lambda r: (r.wall_clock_s, r.cost_usd))
    if best is not None:
        return best, f"fastest run costing at most ${budget_usd:,.0f}"
    if cheapest is None:
        return None, NOTHING_FITS
    return None, (
        f"no swept cluster stays within ${budget_usd:,.0f}: the cheapest is {cheapest.num_gpus} x {cheapest.gpu} "
        f"at ${cheapest.cost_usd:,.0f}"
    )
