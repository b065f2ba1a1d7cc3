"""`costsim calibrate check FILE`: is a stored calibration still true of this device?

Three checks. (1) The file is what costsim calibrate wrote (load_calibration: its SHA-256, every field
finite and in range, the provenance consistent and possible for its profile, the fit recomputed from the
samples), and the fit also follows from the samples with the memory-kernel weights of this costsim's step
model; an edited or relabelled file fails here, without measuring. (2) The device measured now is the
one the file names (kind, name, profile). (3) The
same plan (mode, reference model, extra models, dtypes, collectives) is measured again on this device
and each rate (GEMM rate per dtype, attention rate, memory-bound and copy bandwidth, collective bus
bandwidth per tier, and the serving measurements: decode GEMM operand bandwidth per dtype, decode-attention
KV bandwidth, decode all-to-all bytes per second per tier) must lie within the tolerance of the stored one.
For this comparison both sides take each point's fastest repeat (other load on the machine only slows
repeats down) and the median rate over the GEMM, attention and decode points (`capability`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from calibrate.run import Progress, calibrate, fit_all
from simulator.inputs.calibration import Calibration, Fit, Samples, first_difference, load_calibration

REFIT_TOLERANCE = 1e-6


def headline_rates(fit: Fit) -> dict[str, float]:
    out = {f"gemm {d} best FLOP/s": g.best_flop_per_s for d, g in fit.gemm.items()}
    if fit.attention:
        out["attention forward FLOP/s"] = fit.attention.forward_flop_per_s
    if fit.memory:
        out["memory-bound bytes/s"] = fit.memory.memory_bound_bytes_per_s
        if fit.memory.copy_bytes_per_s:
            out["copy bytes/s"] = fit.memory.copy_bytes_per_s
    for tier, t in fit.collectives.items():
        out[f"{tier} bus bytes/s"] = t.busbw_bytes_per_s
    for d, g in fit.decode_gemm.items():
        out[f"decode gemm {d} operand bytes/s"] = g.operand_bytes_per_s
    if fit.decode_attention:
        out["decode attention KV bytes/s"] = fit.decode_attention.kv_bytes_per_s
    for tier, a in fit.decode_all_to_all.items():
        out[f"{tier} decode all-to-all bytes/s"] = a.bytes_per_s
    return out


def fastest(samples: Samples) -> Samples:
    """The samples with each point's time replaced by its fastest repeat."""

    def visit(node):
        if isinstance(node, dict):
            if "median_s" in node and "min_s" in node:
                node["median_s"] = node["min_s"]
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)
        return node

    return Samples.model_validate(visit(samples.model_dump(mode="json")))


def capability(cal: Calibration) -> dict[str, float]:
    """What the device can do, little moved by other load on a shared machine: every point at its fastest
    repeat (other load only ever slows a repeat down), GEMM and attention rates as the median over their
    points rather than one best point, memory and collectives refitted. Drift is judged on these."""
    samples = fastest(cal.samples)
    rates = headline_rates(fit_all(samples, cal.fit.kernel_overhead_s, cal.plan.reference, []))
    for dtype in cal.fit.gemm:
        points = [s.flops / s.fitted_s for s in samples.gemm if s.dtype == dtype]
        rates[f"gemm {dtype} best FLOP/s"] = float(np.median(points))
    if samples.attention and "attention forward FLOP/s" in rates:
        points = [s.forward_flops / (s.forward.median_s + s.backward.median_s) for s in samples.attention]
        rates["attention forward FLOP/s"] = float(np.median(points))
    # Serving: the median over points of bytes per second (latency included), robust where one fitted number is not.
    for dtype in cal.fit.decode_gemm:
        points = [s.bytes_moved / s.timing.median_s for s in samples.decode_gemm if s.dtype == dtype]
        if points and f"decode gemm {dtype} operand bytes/s" in rates:
            rates[f"decode gemm {dtype} operand bytes/s"] = float(np.median(points))
    if samples.decode_attention and "decode attention KV bytes/s" in rates:
        points = [s.kv_bytes / s.timing.median_s for s in samples.decode_attention]
        rates["decode attention KV bytes/s"] = float(np.median(points))
    for tier in cal.fit.decode_all_to_all:
        points = [s.size_bytes / s.timing.median_s for s in samples.decode_all_to_all if s.tier == tier]
        if points and f"{tier} decode all-to-all bytes/s" in rates:
            rates[f"{tier} decode all-to-all bytes/s"] = float(np.median(points))
    return {k.replace(" best FLOP/s", " FLOP/s").replace("attention forward", "attention"): v for k, v in rates.items()}


def refit_mismatches(cal: Calibration) -> list[str]:
    """Headline rates of the stored fit that its own samples do not reproduce with this costsim's step model (its
    memory-kernel weights, its GEMM roofline for the fit quality), then the first other number that differs."""
    refit = fit_all(cal.samples, cal.fit.kernel_overhead_s, cal.plan.reference, [])
    stored, again = headline_rates(cal.fit), headline_rates(refit)
    out = []
    for key in sorted(set(stored) | set(again)):
        a, b = stored.get(key), again.get(key)
        if a is None or b is None or not math.isclose(a, b, rel_tol=REFIT_TOLERANCE):
            out.append(f"{key}: stored {_fmt(a)}, its samples give {_fmt(b)}")
    if not out:
        other = first_difference(cal.fit.model_dump(mode="json"), refit.model_dump(mode="json"), "fit")
        out += [other] if other else []
    return out


def _fmt(x: float | None) -> str:
    return "absent" if x is None else f"{x:.4g}"


def device_mismatches(stored: Calibration, fresh: Calibration) -> list[str]:
    """Where the device measured now is not the one the stored calibration names."""
    a, b = stored.provenance, fresh.provenance
    out = []
    for key in ("device_kind", "device_name", "hardware_profile"):
        if getattr(a, key) != getattr(b, key):
            out.append(f"{key}: the file says {getattr(a, key)!r}, this device is {getattr(b, key)!r}")
    return out


def serving_rate(key: str) -> bool:
    """A serving rate (decode GEMM operand bandwidth, decode-attention KV bandwidth, decode all-to-all): latency-bound
    points of microseconds, which drift more from run to run than a large GEMM (the H200 of 2026-12-04: its decode GEMM
    bandwidth 31% lower two minutes later, its BF16 GEMM rate 11%); `serving_tolerance` judges them."""
    return key.startswith("decode ") or "decode all-to-all" in key


def graph_timed(samples: Samples) -> dict[str, bool]:
    """Whether each kind of decode sample ('decode gemm', 'decode attention') was timed as CUDA graphs (all of its
    samples; a kind without samples is left out)."""
    out = {}
    for kind, points in (("decode gemm", samples.decode_gemm), ("decode attention", samples.decode_attention)):
        if points:
            out[kind] = all(s.cuda_graph for s in points)
    return out


def timed_otherwise(key: str, stored: dict[str, bool], fresh: dict[str, bool]) -> bool:
    """A rate whose samples the file and this run timed differently (queued from the host then, CUDA graphs now): their
    ratio is the change of method, not of the device (the H200 file of 2026-12-04 ran decode GEMMs at the host's
    dispatch rate, several times under what graphs measure)."""
    kind = next((k for k in stored if key.startswith(k)), None)
    return kind is not None and kind in fresh and stored[kind] != fresh[kind]


def decode_fit(key: str) -> bool:
    """A decode GEMM fit, which exists only where some point of the dtype was memory-bound in that run."""
    return key.startswith("decode gemm ")


def check(path: str | Path, tolerance: float, progress: Progress | None = None, stored: Calibration | None = None,
          serving_tolerance: float | None = None) -> dict:  # fmt: skip
    """Measure again as the stored calibration was measured, and compare. `progress`: see calibrate.run.Progress.
    `serving_tolerance`: the drift allowed to the serving rates (serving_rate); None: `tolerance`.

    A file that is not what costsim calibrate wrote raises SpecError (load_calibration) before anything is measured.
    `stored`: the file already loaded (and so verified) by load_calibration."""
    serving_tolerance = tolerance if serving_tolerance is None else serving_tolerance
    stored = stored or load_calibration(path)
    p = stored.provenance
    tampered = refit_mismatches(stored)
    result = {
        "file": str(path),
        "stored_device": p.device_name,
        "stored_date": p.date,
        "measured_device": None,
        "tolerance": tolerance,
        "serving_tolerance": serving_tolerance,
        "fit_matches_samples": not tampered,
        "fit_mismatches": tampered,
        "device_matches": None,
        "device_mismatches": [],
        "rates": [],
        "not_measured_again": [],
        "not_fitted_again": [],
        "timed_otherwise": [],
        "ok": False,
    }
    if tampered:  # an edited file fails as it stands: nothing to measure against
        return result
    fresh = calibrate(
        p.device_kind,
        p.mode,
        ref=stored.plan.reference,
        extra_models=list(stored.plan.extra),
        model_label=p.model,
        profile=p.hardware_profile,
        threads=p.cpu_threads,
        progress=progress,
        collectives_enabled=stored.plan.collectives,
        dtypes=tuple(stored.plan.dtypes),
    )
    old, new = capability(stored), capability(fresh)
    methods = (graph_timed(stored.samples), graph_timed(fresh.samples))
    otherwise = sorted(k for k in set(old) & set(new) if timed_otherwise(k, *methods))
    rows = []
    for key in sorted(set(old) & set(new) - set(otherwise)):
        ratio = new[key] / old[key]
        drift = ratio - 1.0
        allowed = serving_tolerance if serving_rate(key) else tolerance
        rows.append({"rate": key, "stored": old[key], "measured": new[key], "drift": drift, "tolerance": allowed,
                     "ok": abs(drift) <= allowed})  # fmt: skip
    missing = sorted(set(old) - set(new))
    if stored.plan.collectives_file:  # measured elsewhere (across nodes): not measurable again here
        missing = [m for m in missing if " bus bytes/s" not in m and "all-to-all" not in m]
    # A dtype's decode GEMM fit needs a memory-bound point, which a run may find and the next not (the quick mode's few
    # FP8 points on the H200): listed, not failed; its points are compared in the rates where both runs fitted one.
    unfitted = [m for m in missing if decode_fit(m)]
    missing = [m for m in missing if not decode_fit(m)]
    other_device = device_mismatches(stored, fresh)
    result.update(
        measured_device=fresh.provenance.device_name,
        device_matches=not other_device,
        device_mismatches=other_device,
        rates=rows,
        not_measured_again=missing,
        not_fitted_again=unfitted,
        timed_otherwise=otherwise,
        ok=all(r["ok"] for r in rows) and not missing and not other_device,
    )
    return result
