"""Wall time of `--uncertainty` for DeepSeek-V3 on 2,048 H800 (published layout): a script, not a test.

    .venv/bin/python benchmarks/bench_uncertainty.py [--draws N] [--repeat R]

Prints the full-model evaluations and their time (building and checking the surrogate), the time to draw
and evaluate all draws, the band, and the surrogate's largest error against joint full-model draws.
"""

from __future__ import annotations

import argparse
import statistics
import time

from simulator import api
from simulator.analysis.uncertainty import band_for_estimate
from simulator.inputs.catalog import load_hardware, load_model

# DeepSeek-V3 report §3.2 and §4.2: 2,048 H800, PP16, EP64, DualPipe, ZeRO-1, FP8, 15,360 x 4K-token batch.
V3_LAYOUT = {"tp": 1, "pp": 16, "ep": 64, "cp": 1, "zero_stage": 1, "schedule": "dualpipe", "recompute": "selective"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    spec, hw = load_model("deepseek-v3"), load_hardware("h800")
    job = {"seq_len": 4096, "global_batch_tokens": 62914560, "precision": "fp8"}
    est = api.estimate("deepseek-v3", "h800", 2048, 14.8e12, **job, **V3_LAYOUT, usd_per_gpu_hour=2.0).estimate
    totals, draw_times, model_times = [], [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        band = band_for_estimate(est, spec, hw, price_fixed=False, draws=args.draws)
        totals.append(time.perf_counter() - t0)
        draw_times.append(band.draw_s)
        model_times.append(band.model_evaluation_s)
    s = band.surrogate
    print(f"deepseek-v3 on 2048 x h800, layout {est.layout.describe()}")
    print(f"draws                      {band.draws:,}")
    print(f"full-model evaluations     {s.evaluations} ({s.checks} of them check the surrogate)")
    print(f"model evaluations, median  {statistics.median(model_times):.3f} s")
    print(f"draws + surrogate, median  {statistics.median(draw_times):.3f} s")
    print(f"total per band, median     {statistics.median(totals):.3f} s  (min {min(totals):.3f} s over {args.repeat} runs)")
    rms, worst = max(s.rms_error.values()), max(s.max_abs_error.values())
    print(f"surrogate error            {rms:.3%} rms, {worst:.3%} max over {s.checks} joint full-model draws")
    for k, b in band.bands.items():
        print(f"{k:<26} P10 {b.p10:,.4g}  P50 {b.p50:,.4g}  P90 {b.p90:,.4g}  (nominal {band.nominal[k]:,.4g})")


if __name__ == "__main__":
    main()
