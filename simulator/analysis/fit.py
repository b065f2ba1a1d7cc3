"""Fit the global constants to published runs, with leave-one-out errors.

Five constants are fitted, each to its own runs:
- gemm_sustain (in-training GEMM rate / best-shape microbenchmark), to the step-level throughput of twelve runs
  (ten Megatron-LM 2021 rows on A100, two Llama 3.1 405B configurations on H100). The fit minimises the sum of
  squared log errors over a grid; leave-one-out refits without each run and predicts it.
- realization (realized / modelled step time of whole runs at the layout practitioners use), to the whole-run
  track of `validate public` (cases of scope `run`; figures that plainly cover more than one run are left out of the
  fit and reported apart), per GPU generation where it has enough runs (Hopper runs realize less of the modelled
  speed than Ampere runs), pooled otherwise. GPU-hours and days scale with the step time (ETTR does not depend on
  the run's length), so the fit is the median of log(reported / predicted at realization 1), and leave-one-out
  is the median of the others (of its group). Its sigma (RMS of the leave-one-out log errors) is the spread the
  uncertainty band draws.
- expert_launch_host_s (least host time per expert GEMM on stacks that launch a MoE layer's local experts one by one
  after the dropless dispatcher's host sync), to the steady-state MoE rows run on such stacks (Megatron-Core 2025:
  NVIDIA's Megatron-Bridge recipes and the Megatron MoE model zoo), by least squares of the log throughput error on a
  grid; leave-one-out refits without each row. The rows in FP8 with current scaling are left out: they constrain
- expert_quantize_host_s (what quantizing each expert's tensor by its current amax adds to that host time), to those
  rows, the same way, with expert_launch_host_s held at its fit.
- step_host_s (time each optimizer step adds beyond the per-layer model on the stacks with `step_host: fitted`, PyTorch
  FSDP 2023), to the llm-foundry benchmark README's rows that `validate public` does not check (165 of its 191 BF16
  rows), the same way, right after gemm_sustain; the others are fitted with it held. The 26 rows it checks, and
  OLMo-core's rows, stay out of sample.
`costsim fit` rewrites simulator/data/fitted_constants.yaml (or --output) with the data, the in-sample and the
leave-one-out errors; its `fitted_on` date stays as it was when no fitted value moved (dated), so such a refit leaves
the file's bytes unchanged.
"""

from __future__ import annotations

import datetime
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from simulator.analysis.validation import predict
from simulator.inputs.assumptions import BASE, FITTED_PATH, FITTED_RANGES, Assumptions
from simulator.inputs.published import PublishedRun, throughput_runs
from simulator.units import MICRO, MILLI

GRID = np.round(np.arange(FITTED_RANGES["gemm_sustain"].low, FITTED_RANGES["gemm_sustain"].high + 1e-4, 0.01), 4)
"""Candidate gemm_sustain values, 0.55 to 1.00 by 0.01: the range a fitted constants file may give it."""


def _log_error_table(runs: list[PublishedRun], grid: np.ndarray, at: Callable[[float], Assumptions],
                     predict_run: Callable[[PublishedRun, Assumptions], float]) -> np.ndarray:  # fmt: skip
    """log(predicted / reported) for each run (rows) at each grid value (columns), the constant set by `at`."""
    out = np.empty((len(runs), len(grid)))
    for j, g in enumerate(grid):
        a = at(float(g))
        for i, run in enumerate(runs):
            out[i, j] = math.log(predict_run(run, a) / run.reported)
    return out


def prediction_table(runs: list[PublishedRun], grid: np.ndarray = GRID) -> np.ndarray:
    """log(predicted / reported) for each throughput run (rows) at each gemm_sustain of the grid (columns)."""
    return _log_error_table(runs, grid, lambda g: replace(BASE, gemm_sustain=g), predict)


@dataclass(frozen=True)
class GridFit:
    """A least-squares grid fit and its leave-one-out refits."""

    value: float
    in_sample: np.ndarray
    """predicted / reported - 1 of each run at `value`."""
    leave_one_out: list[float]
    """Each run's error at the value refitted without it."""
    refit_values: list[float]
    """The value refitted without each run."""


def _error_summary(in_sample, leave_one_out) -> dict:
    """A fit's summary lines in fitted_constants.yaml."""
    return {
        "median_abs_in_sample_error": float(np.median(np.abs(in_sample))),
        "median_abs_leave_one_out_error": float(np.median(np.abs(leave_one_out))),
        "max_abs_leave_one_out_error": float(np.max(np.abs(leave_one_out))),
    }


def _grid_fit(table: np.ndarray, grid: np.ndarray) -> GridFit:
    """The grid value minimising the squared log errors of all runs, and each run's error from the fit without it."""
    rows = np.arange(table.shape[0])
    value, col = _best(table, grid, rows)
    refits = [_best(table, grid, rows[rows != i]) for i in rows]
    loo = [float(np.expm1(col_i[i])) for i, (_, col_i) in zip(rows, refits, strict=True)]
    return GridFit(value, np.expm1(col), loo, [v for v, _ in refits])


def _case_record(case: PublishedRun, in_sample: float, leave_one_out: float, **extra) -> dict:
    """One run's line in fitted_constants.yaml (`extra` after its metric)."""
    return {"id": case.id, "source": case.source, "metric": case.metric, **extra, "reported": case.reported,
            "in_sample_error": float(in_sample), "leave_one_out_error": float(leave_one_out)}  # fmt: skip


def _best(table: np.ndarray, grid: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray]:
    """Grid value minimising squared log error over `rows`, refined by a parabola through its neighbours."""
    sse = (table[rows] ** 2).sum(axis=0)
    j = int(np.argmin(sse))
    if 0 < j < len(grid) - 1:
        y0, y1, y2 = sse[j - 1], sse[j], sse[j + 1]
        denom = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / denom if denom > 0 else 0.0
        x = grid[j] + shift * (grid[1] - grid[0])
    else:
        x = grid[j]
    col = np.array([np.interp(x, grid, table[i]) for i in range(table.shape[0])])
    return float(x), col


def fit(runs: list[PublishedRun] | None = None, whole_runs: list[PublishedRun] | None = None) -> dict:
    """The five constants: gemm_sustain from `runs` (default: the throughput runs); step_host_s from the llm-foundry
    README rows that are not validation cases (step_host_cases) at the fitted gemm_sustain; then, both held, realization
    from `whole_runs` (default: the whole-run track), expert_launch_host_s from the steady-state MoE rows of per-expert
    stacks (expert_launch_cases), and expert_quantize_host_s from those rows in FP8 current scaling
    (expert_quantize_cases) with expert_launch_host_s held too. gemm_sustain's runs are on stacks that charge no
    per-step host time, so it does not depend on step_host_s."""
    runs = runs or throughput_runs()
    sustain = _grid_fit(prediction_table(runs), GRID)
    out = {
        "gemm_sustain": round(sustain.value, 4),
        "fitted_on": datetime.date.today().isoformat(),
        "command": "costsim fit",
        "constrained_by": len(runs),
        **_error_summary(sustain.in_sample, sustain.leave_one_out),
        "cases": [_case_record(*row) for row in zip(runs, sustain.in_sample, sustain.leave_one_out, strict=True)],
    }
    held = replace(BASE, gemm_sustain=out["gemm_sustain"])
    step_host = fit_step_host(step_host_cases(), held)
    if step_host is not None:
        held = replace(held, step_host_s=step_host["value"])
    if whole_runs is None:
        from simulator.inputs.published import public_cases

        whole_runs = [c for c in public_cases() if c.track == "whole_run"]
    fits = {"realization": fit_realization(whole_runs, held), "expert_launch_host_s": None,
            "expert_quantize_host_s": None, "step_host_s": step_host}  # fmt: skip
    launch = fits["expert_launch_host_s"] = fit_expert_launch(expert_launch_cases(), held)
    if launch is not None:
        held = replace(held, expert_launch_host_s=launch["value"])
        fits["expert_quantize_host_s"] = fit_expert_quantize(expert_quantize_cases(), held)
    # fitted_constants.yaml: every fitted value first, then gemm_sustain's record, then each other fit's record.
    fitted = {name: f for name, f in fits.items() if f is not None}
    head = {"gemm_sustain": out.pop("gemm_sustain")} | {name: f["value"] for name, f in fitted.items()}
    return head | out | {FIT_RECORDS[name]: f for name, f in fitted.items()}


FIT_RECORDS = {"realization": "realization_fit", "expert_launch_host_s": "expert_launch_fit",
               "expert_quantize_host_s": "expert_quantize_fit", "step_host_s": "step_host_fit"}  # fmt: skip
"""Each constant fitted after gemm_sustain, in the order fitted_constants.yaml lists it, and the key of its fit's record
(its data, errors and sigma)."""
STEP_HOST_GRID_S = np.round(np.arange(0.0, 200.01, 5.0), 4) * MILLI
"""Candidate host times per optimizer step (0-200 ms)."""


def step_host_cases(rows: list[PublishedRun] | None = None, held_out: list[PublishedRun] | None = None) -> list[PublishedRun]:
    """The rows that constrain step_host_s: the llm-foundry benchmark README's rows (default: every BF16 row,
    published.llmfoundry_readme_runs) run on a stack with `step_host: fitted`, but those that are `validate public`
    cases (`held_out`, default: the public cases; the same quoted row), which stay out of sample."""
    from simulator.inputs.published import llmfoundry_readme_runs, public_cases, same_row
    from simulator.inputs.stacks import load_stack

    rows = llmfoundry_readme_runs() if rows is None else rows
    quotes = [c.quote for c in (public_cases() if held_out is None else held_out)]
    return [
        r for r in rows
        if load_stack(r.stack_preset).step_host == "fitted" and not any(same_row(r.quote, q) for q in quotes)
    ]  # fmt: skip


def fit_step_host(cases: list[PublishedRun], assumptions: Assumptions,
                  grid: np.ndarray = STEP_HOST_GRID_S) -> dict | None:  # fmt: skip
    """step_host_s from the rows of `step_host_cases` (None with fewer than two), as fit_expert_launch: least squares
    of the log throughput errors on a grid, each row's leave-one-out error from the fit without it."""
    return _host_time_fit(cases, assumptions, grid, "step_host_s",
                          "least squares of log(predicted / reported throughput) over the llm-foundry benchmark README's "
                          "BF16 rows on stacks with step_host fitted that validate public does not check")  # fmt: skip


EXPERT_LAUNCH_GRID_S = np.round(np.arange(0.0, 200.01, 2.0), 4) * MICRO
"""Candidate host times per expert GEMM launch (0-200 us)."""
EXPERT_QUANTIZE_GRID_S = np.round(np.arange(0.0, 400.01, 4.0), 4) * MICRO
"""Candidate host times current scaling adds per expert GEMM (0-400 us)."""


def _per_expert_moe_cases(cases: list[PublishedRun] | None) -> list[PublishedRun]:
    """The steady-state MoE rows run on a stack that launches experts one by one."""
    from simulator.inputs.catalog import load_model
    from simulator.inputs.published import public_cases
    from simulator.inputs.stacks import load_stack

    cases = public_cases() if cases is None else cases
    return [
        c for c in cases
        if c.track == "steady_state" and load_model(c.model).moe is not None
        and load_stack(c.stack_preset).expert_gemm_launch == "per_expert"
    ]  # fmt: skip


def current_scaled(case: PublishedRun) -> bool:
    """Whether a run quantizes each expert by its current amax: FP8 with the tensor recipe (as its scenario resolves
    it) on a stack whose tensor recipe scales that way (Stack.fp8_tensor_scaling)."""
    from simulator.analysis.public_runs import case_scenario
    from simulator.inputs.job import tensor_scaled_fp8

    s = case_scenario(case, BASE)
    return tensor_scaled_fp8(s.job.precision, s.job.fp8_recipe) and s.stack.fp8_tensor_scaling == "current"


def expert_launch_cases(cases: list[PublishedRun] | None = None) -> list[PublishedRun]:
    """The rows that constrain expert_launch_host_s: the steady-state MoE rows of per-expert stacks, but those in FP8
    current scaling, whose host time also holds the per-expert quantization (expert_quantize_cases)."""
    return [c for c in _per_expert_moe_cases(cases) if not current_scaled(c)]


def expert_quantize_cases(cases: list[PublishedRun] | None = None) -> list[PublishedRun]:
    """The rows that constrain expert_quantize_host_s: the steady-state MoE rows of per-expert stacks in FP8 current
    scaling."""
    return [c for c in _per_expert_moe_cases(cases) if current_scaled(c)]


def fit_expert_launch(cases: list[PublishedRun], assumptions: Assumptions,
                      grid: np.ndarray = EXPERT_LAUNCH_GRID_S) -> dict | None:  # fmt: skip
    """expert_launch_host_s from the rows of `expert_launch_cases` (None with fewer than two): the grid value that
    minimises the squared log errors (a step time's log error is a throughput's with its sign turned, so the rows'
    own metrics can be mixed), and each row's leave-one-out error from the fit without it (errors in the row's own
    metric, as validate public gives them)."""
    return _host_time_fit(cases, assumptions, grid, "expert_launch_host_s",
                          "least squares of log(predicted / reported throughput) over the steady-state MoE rows of "
                          "stacks with expert_gemm_launch per_expert, but those in FP8 current scaling")  # fmt: skip


def fit_expert_quantize(cases: list[PublishedRun], assumptions: Assumptions,
                        grid: np.ndarray = EXPERT_QUANTIZE_GRID_S) -> dict | None:  # fmt: skip
    """expert_quantize_host_s from the rows of `expert_quantize_cases` (None with fewer than two), as
    fit_expert_launch, with `assumptions` holding the fitted expert_launch_host_s."""
    return _host_time_fit(cases, assumptions, grid, "expert_quantize_host_s",
                          "least squares of log(predicted / reported throughput) over the steady-state MoE rows of "
                          "stacks with expert_gemm_launch per_expert in FP8 current scaling, expert_launch_host_s at "
                          "its fit")  # fmt: skip


def _host_time_fit(cases: list[PublishedRun], assumptions: Assumptions, grid: np.ndarray, constant: str,
                   method: str) -> dict | None:  # fmt: skip
    """A host-time constant of Assumptions fitted on a grid to `cases` (None with fewer than two), with its
    leave-one-out errors and the jackknife sigma of its log."""
    from simulator.analysis.public_runs import predict_case

    if len(cases) < 2:
        return None
    table = _log_error_table(cases, grid, lambda h: replace(assumptions, **{constant: h}), predict_case)
    fitted = _grid_fit(table, grid)
    # Jackknife standard error of log(value) from the leave-one-out refits: how far the fitted value moves with its data.
    logs = np.log(np.maximum(fitted.refit_values, grid[1]))
    n = len(cases)
    sigma = float(np.sqrt((n - 1) / n * np.sum((logs - logs.mean()) ** 2)))
    return {
        "constant": constant,
        "value": float(f"{fitted.value:.3g}"),
        "sigma": round(sigma, 4),
        "method": f"{method}, on a {_duration(grid[1] - grid[0])} grid refined by a parabola; sigma: jackknife "
        "standard error of log(value) from the leave-one-out refits",
        "constrained_by": n,
        **_error_summary(fitted.in_sample, fitted.leave_one_out),
        "cases": [_case_record(*row) for row in zip(cases, fitted.in_sample, fitted.leave_one_out, strict=True)],
    }


def _duration(seconds: float) -> str:
    """A grid step as the method line gives it: '2 us', '5 ms'."""
    return f"{seconds / MILLI:.0f} ms" if seconds >= MILLI else f"{seconds / MICRO:.0f} us"


UNKNOWN_GENERATION = "unknown"
"""A whole run's `generation` in fitted_constants.yaml where its GPU's profile names none."""
MIN_RUNS_PER_GENERATION = 5
"""Whole runs a GPU generation needs for its own realization; with fewer its runs take the pooled value. Five keeps
one run from setting a generation's median; the leave-one-out errors show how well each value predicts."""


def fit_realization(cases: list[PublishedRun], assumptions: Assumptions) -> dict | None:
    """The realization constant from whole runs of scope `run` (None with fewer than two): pooled over all runs (the
    value for GPUs of a generation without enough runs), and per GPU generation with MIN_RUNS_PER_GENERATION runs or
    more. Each run's leave-one-out error refits its own group's median without it."""
    from simulator.analysis.public_runs import predict_case
    from simulator.inputs.catalog import load_hardware

    runs = [c for c in cases if c.track == "whole_run" and not c.flagged]
    if len(runs) < 2:
        return None
    at_one = replace(assumptions, realization=1.0, realization_by_generation=())
    logs = np.array([math.log(c.reported / predict_case(c, at_one)) for c in runs])
    gens = [load_hardware(c.gpu).generation or UNKNOWN_GENERATION for c in runs]
    # runs on profiles of no generation are pooled: no GPU looks up a realization under UNKNOWN_GENERATION
    fitted = sorted(g for g in set(gens) if g != UNKNOWN_GENERATION and gens.count(g) >= MIN_RUNS_PER_GENERATION)
    group = np.array([g if g in fitted else "" for g in gens])
    value = float(np.exp(np.median(logs)))

    def centre(members: np.ndarray) -> float:
        return float(np.median(logs[members]))

    idx = np.arange(len(runs))
    own = np.array([centre(group == g) if g else math.log(value) for g in group])
    loo_logs = np.array([centre((group == group[i]) & (idx != i)) if group[i] else centre(idx != i) for i in idx]) - logs
    in_sample = np.expm1(own - logs)
    loo = np.expm1(loo_logs)
    sigma = float(np.sqrt(np.mean(loo_logs**2)))
    by_generation = {
        g: {
            "value": round(float(np.exp(centre(group == g))), 4),
            "constrained_by": int(np.sum(group == g)),
            **_error_summary(in_sample[group == g], loo[group == g]),
        }
        for g in fitted
    }
    return {
        "constant": "realization",
        "value": round(value, 4),
        "sigma": round(sigma, 4),
        "method": "median of log(reported / predicted at realization 1) over whole runs of scope `run`, per GPU "
        f"generation with {MIN_RUNS_PER_GENERATION}+ runs (by_generation), pooled otherwise (value)",
        "constrained_by": len(runs),
        "by_generation": by_generation,
        **_error_summary(in_sample, loo),
        "cases": [_case_record(c, e, le, generation=g) for c, g, e, le in zip(runs, gens, in_sample, loo, strict=True)],
    }


HEADER = "# Written by `costsim fit` (simulator/analysis/fit.py). Do not edit by hand; refit instead.\n"


def values_of(doc: object) -> dict | None:
    """What a fitted_constants document fits (each constant of FITTED_RANGES and each generation's realization), as
    written; None for a document that is not a mapping."""
    if not isinstance(doc, dict):
        return None
    record = doc.get("realization_fit")
    table = record.get("by_generation") if isinstance(record, dict) else None
    if isinstance(table, dict):
        table = {g: f.get("value") if isinstance(f, dict) else f for g, f in table.items()}
    return {key: doc.get(key) for key in FITTED_RANGES} | {"realization_by_generation": table}


def changed_values(previous: object, result: dict) -> list[str] | None:
    """'name old -> new' for each fitted value of `result` that differs from the `previous` document (empty: none
    moved); None when there is no previous document to compare with."""
    before, after = values_of(previous), values_of(result)
    if before is None or after is None:
        return None
    return [f"{key} {before[key]} -> {value}" for key, value in after.items() if before[key] != value]


def dated(result: dict, previous: object) -> dict:
    """`result` with the previous document's `fitted_on` where no fitted value moved (changed_values is empty), so a
    refit that changes nothing leaves the file's bytes as they were; its own date (today) otherwise. The date is when
    the constants were last fitted to a different value; each run's errors are rewritten either way."""
    if changed_values(previous, result) == [] and isinstance(previous.get("fitted_on"), str):
        return result | {"fitted_on": previous["fitted_on"]}
    return result


def read_previous(path: Path) -> object:
    """The document at `path` for dated() and changed_values(); None where there is none or it cannot be read."""
    from simulator.errors import SpecError
    from simulator.inputs.files import read_yaml

    try:
        return read_yaml(path) if os.path.lexists(path) else None
    except SpecError:
        return None


def write(result: dict, path: Path = FITTED_PATH) -> None:
    """`result` as fitted_constants.yaml at `path`, in one step (a temporary file in the same folder, renamed over it).
    A result that estimates would refuse (assumptions.fitted_values) is not written; a failed write is an InputError
    naming the path and the system's reason, and leaves `path` as it was."""
    from simulator.errors import InputError
    from simulator.inputs.assumptions import fitted_values as checked

    checked(result, "the fit", fix=f"estimates would refuse it, so it is not written to {path}")
    text = HEADER + yaml.safe_dump(result, sort_keys=False)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; the file keeps the permissions of any other
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        tmp = None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise InputError(
            f"cannot write the fitted constants to {path} ({reason}); the fit is printed above. Pass --output PATH to "
            "write it to a folder you can write to, or --dry-run to only print it"
        ) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
