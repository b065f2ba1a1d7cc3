"""`costsim validate serve`: predict every published serving figure in validation/serving.yaml with `costsim serve`.

Each case is predicted at what its source states (GPU, GPU count, precision, KV format, lengths, cache hits, the
layout fields given, the concurrency or latency limits it ran under); the rest is searched as `costsim serve` searches
it. Offline throughput benchmarks that run prefill and decode on the same GPUs (phase `both`) are predicted
co-located: output tokens/s per GPU over the whole request, prefill included. Nothing in the serving model is fitted
to these figures: its terms are the hardware profiles' efficiencies and the stated assumptions.

Cases whose source leaves out what a prediction needs (the GPU count, the lengths) are listed with the reason and not
predicted; none is left out because of its error.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from simulator.errors import CostsimError
from simulator.inputs.serving_cases import ServingCase, serving_cases, serving_grid_cases
from simulator.run.serve import ServeRequest, serve
from simulator.units import MICRO

TARGET_MEDIAN_ABS_ERROR = 0.20
TARGET_MAX_ABS_ERROR = 0.50
TARGET_N = 10
ASSUMED_MTP_ACCEPT = 0.85
"""Acceptance of a drafted token where a case does not state it: the lower end of the 85-90% DeepSeek-V3 reports
for its MTP module's second token (arXiv:2412.19437 §5.4.3). Assumption for deeper drafts, which accept less."""


@dataclass(frozen=True)
class Outcome:
    case: ServingCase
    predicted: float | None
    why_not: str | None = None
    layout: dict | None = None

    @property
    def error(self) -> float | None:
        return None if self.predicted is None else self.predicted / self.case.reported - 1.0


def request_for(case: ServingCase) -> ServeRequest:
    """The `costsim serve` request of a case: what its source states."""
    lay = case.layout
    input_len, output_len = case.input_len, case.output_len
    if case.phase == "decode" and case.kv_len_mean is not None:
        # A decode node's mean cached context is what its step reads: prompt + output / 2 = kv_len_mean.
        input_len, output_len = max(1, case.kv_len_mean - 1), 2
    output_len = output_len or 1
    input_len = input_len or 1
    gpus = case.num_gpus
    batch = case.concurrency / gpus if case.concurrency and gpus else None
    cap = case.max_batch_per_rank if batch is None else None  # a fixed concurrency already sets the batch
    tp, dp = lay.tp, lay.dp
    if lay.attention_dp:
        # Attention data-parallel over the stage's GPUs (DeepSeek's "MLA DP144", TensorRT-LLM's "--tp N
        # --enable_attention_dp"): attention TP 1, every GPU of a stage its own attention replica, MoE over all.
        tp = 1
        dp = dp or (gpus // (lay.pp or 1) if gpus and case.phase != "prefill" else None)
    accept = case.mtp_accept
    if case.mtp_depth and accept is None:
        accept = ASSUMED_MTP_ACCEPT
    slo = case.slo
    return ServeRequest(
        case.model,
        case.gpu,
        input_len=input_len,
        output_len=output_len,
        cache_hit_rate=case.cache_hit_rate,
        phase=case.phase,
        deployment="colocated" if case.phase == "both" else "disaggregated",
        precision=case.precision,
        kv_dtype=case.kv_dtype,
        tp=tp,
        dp=dp,
        pp=lay.pp,
        ep=lay.ep if case.phase == "prefill" else None,
        num_gpus=gpus if case.phase != "prefill" else None,
        batch_per_gpu=batch,
        # An engine's per-rank cap is per attention replica: a GPU under attention DP, a TP group otherwise; with TP
        # given it is cap / tp sequences per GPU, with TP searched it bounds tp x batch.
        max_batch_per_gpu=cap / tp if cap is not None and tp is not None else None,
        max_replica_sequences=cap if tp is None else None,
        mtp_depth=case.mtp_depth or 0,
        redundant_experts=case.redundant_experts,
        two_batch_overlap=case.two_batch_overlap,
        kv_admission=case.kv_admission,
        kv_memory_fraction=case.kv_memory_fraction,
        host_s_per_sequence=case.host_us_per_sequence * MICRO,
        mtp_accept=accept if case.mtp_depth else None,
        tpot_s=slo.tpot_s if slo else None,
        ttft_s=slo.ttft_s if slo else None,
    )


def predicted_value(case: ServingCase, d: dict) -> float:
    """The figure of a `serve` document in the case's metric."""
    m = case.metric
    if m == "output_tokens_per_s_per_gpu":
        block = d["per_request"] if case.phase == "both" else d["decode"]
        return block["output_tokens_per_s_per_gpu"]
    if m == "total_tokens_per_s_per_gpu":
        return d["per_request"]["total_tokens_per_s_per_gpu"]
    if m == "input_tokens_per_s_per_gpu":
        return d["prefill"]["input_tokens_per_s_per_gpu"]
    if m == "tokens_per_s_per_user":
        return d["decode"]["tokens_per_s_per_user"]
    if m == "tpot_s":
        return d["decode"]["tpot_s"]
    if m == "ttft_s":
        return d["prefill"]["ttft_s"]
    raise CostsimError(f"validation/serving.yaml case {case.id}: metric {m!r} has no serve figure")


def _unsupported(case: ServingCase) -> str | None:
    if not case.predictable:
        return "the source does not state the GPU count or the lengths a prediction needs"
    return None


def predict(case: ServingCase) -> Outcome:
    why = _unsupported(case)
    if why:
        return Outcome(case, None, why)
    try:
        d = serve(request_for(case)).to_dict()
    except CostsimError as e:
        return Outcome(case, None, f"costsim serve refused it: {e}")
    layout = (d.get("decode") or d.get("prefill") or {}).get("layout")
    return Outcome(case, predicted_value(case, d), None, layout)


def evaluate() -> list[Outcome]:
    return [predict(c) for c in serving_cases()]


def evaluate_grid() -> list[Outcome]:
    """Every measured cell of the throughput grid (validation/serving_grid.yaml), predicted as a case. A malformed grid
    file stops `validate serve` as a malformed case file does: the command reports both tracks or neither."""
    return [predict(c) for c in serving_grid_cases()]


def _error_summary(errors: list[float]) -> dict:
    """n, signed median, median and max |error| of a group of figures' errors (predicted / reported - 1)."""
    absolute = [abs(e) for e in errors]
    return {"n": len(errors), "median_error": statistics.median(errors), "median_abs_error": statistics.median(absolute),
            "max_abs_error": max(absolute)}  # fmt: skip


def grid_report(outcomes: list[Outcome]) -> dict:
    """The grid track: every cell's error, the whole grid's medians and how many fall within the target's two
    thresholds (20% and 50%), and each table column (one model on one GPU, TP and format) apart, where a bias by GPU
    generation or model family shows. Outside issue 12's target: the curated cases of validation/serving.yaml carry
    that."""
    cells, by_column = [], {}
    for o in outcomes:
        c = o.case
        cells.append({"id": c.id, "model": c.model, "gpu": c.gpu, "tp": c.num_gpus, "precision": c.precision,
                      "input_len": c.input_len, "output_len": c.output_len, "reported": c.reported,
                      "predicted": o.predicted, "error": o.error, "not_predicted_because": o.why_not})  # fmt: skip
        if o.error is not None:
            by_column.setdefault((c.model, c.gpu, c.num_gpus, c.precision), []).append(o.error)
    predicted = [o for o in outcomes if o.error is not None]
    errors = [o.error for o in predicted]
    summary = _error_summary(errors) if errors else dict.fromkeys(("median_error", "median_abs_error", "max_abs_error"))
    worst = max(predicted, key=lambda o: abs(o.error)).case.id if predicted else None
    out = {
        "in_target": False,
        "n_cells": len(outcomes),
        "n_predicted": len(errors),
        "median_error": summary["median_error"],
        "median_abs_error": summary["median_abs_error"],
        "max_abs_error": summary["max_abs_error"],
        "worst_cell": worst,
        "within_20_percent": sum(abs(e) <= TARGET_MEDIAN_ABS_ERROR for e in errors) if errors else None,
        "within_50_percent": sum(abs(e) <= TARGET_MAX_ABS_ERROR for e in errors) if errors else None,
        "not_predicted_because": dict(Counter(o.why_not for o in outcomes if o.why_not)),
    }
    out["by_column"] = [{"model": m, "gpu": g, "tp": tp, "precision": p} | _error_summary(e)
                        for (m, g, tp, p), e in by_column.items()]  # fmt: skip
    out["cells"] = cells
    return out


def report(outcomes: list[Outcome], grid: list[Outcome] | None = None) -> dict:
    rows = []
    for o in outcomes:
        c = o.case
        rows.append({
            "id": c.id, "source": c.source, "model": c.model, "gpu": c.gpu, "num_gpus": c.num_gpus,
            "phase": c.phase, "metric": c.metric, "unit": c.unit, "reported": c.reported,
            "predicted": o.predicted, "error": o.error, "predicted_layout": o.layout,
            "not_predicted_because": o.why_not, "assumptions": list(c.assumptions), "why": c.why,
        })  # fmt: skip
    errors = [abs(o.error) for o in outcomes if o.error is not None]
    by_precision = {}
    for precision in sorted({o.case.precision for o in outcomes}):
        own = [o.error for o in outcomes if o.error is not None and o.case.precision == precision]
        if own:
            by_precision[precision] = _error_summary(own)
    worst = max((o for o in outcomes if o.error is not None), key=lambda o: abs(o.error), default=None)
    median = statistics.median(errors) if errors else None
    worst_abs = max(errors) if errors else None
    return {
        "cases": rows,
        "n_cases": len(errors),
        "n_not_predicted": sum(o.predicted is None for o in outcomes),
        "median_abs_error": median,
        "max_abs_error": worst_abs,
        "worst_case": worst.case.id if worst else None,
        # FP4 rests on assumed Blackwell efficiencies (docs/model.md §16.14): each format's figures apart.
        "by_precision": by_precision,
        "error_convention": "predicted / reported - 1 in the reported metric's unit",
        "target": {"n": TARGET_N, "median_abs_error": TARGET_MEDIAN_ABS_ERROR, "max_abs_error": TARGET_MAX_ABS_ERROR},
        "meets_target": bool(
            errors and len(errors) >= TARGET_N and median <= TARGET_MEDIAN_ABS_ERROR and worst_abs <= TARGET_MAX_ABS_ERROR
        ),
        "grid": grid_report(grid) if grid is not None else None,
    }
