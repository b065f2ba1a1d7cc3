"""Benchmark of the vectorized layout search (a script, not a test).

Prints, for DeepSeek-V3 on 2,048 H800 and Llama 3.1 405B on 16,384 H100: the candidates in the grid,
the valid ones evaluated, wall and CPU time of the search (best of several runs, one thread), candidates
per second, and the end-to-end wall time of `costsim search` next to one `costsim estimate` with an
explicit layout.

    .venv/bin/python benchmarks/bench_search.py
"""

from __future__ import annotations

import os

# One core: numpy's BLAS must not spread the small matrix products over threads.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from simulator.inputs.catalog import load_hardware, load_model  # noqa: E402
from simulator.inputs.job import Job  # noqa: E402
from simulator.run.search import search  # noqa: E402

CASES = {
    "deepseek-v3 on 2048 h800": {
        "model": "deepseek-v3",
        "gpu": "h800",
        "job": Job(2048, 14.8e12, 4096, 62914560, "fp8"),
        "cli": "deepseek-v3 --gpu h800 --num-gpus 2048 --tokens 14.8T --seq-len 4096 --global-batch-tokens 62914560 "
        "--precision fp8",
        "layout": "--tp 1 --pp 16 --ep 64 --cp 1 --zero-stage 1 --micro-batch-size 1 --schedule dualpipe --recompute selective",
    },
    "llama-3.1-405b on 16384 h100": {
        "model": "llama-3.1-405b",
        "gpu": "h100-sxm",
        "job": Job(16384, 15.6e12, 8192, 2048 * 8192, "bf16"),
        "cli": "llama-3.1-405b --gpu h100-sxm --num-gpus 16384 --tokens 15.6T --seq-len 8192 --global-batch-tokens 16777216",
        # Meta's layout; without recomputation it needs 84.7 GiB per GPU here, which estimate refuses
        "layout": "--tp 8 --pp 16 --cp 1 --zero-stage 1 --micro-batch-size 1 --schedule interleaved --vpp 4 "
        "--recompute selective",
    },
}
REPEATS = 5


def _costsim() -> list[str]:
    exe = Path(sys.executable).with_name("costsim")
    return [str(exe)] if exe.exists() else [shutil.which("costsim") or "costsim"]


def _cli_wall_s(args: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(_costsim() + args.split(), check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    print(f"{'case':<30} {'grid':>9} {'evaluated':>10} {'wall s':>7} {'cpu s':>7} {'cand/s':>11}  {'search CLI s':>12} "
          f"{'estimate CLI s':>14} {'ratio':>6}")  # fmt: skip
    for name, case in CASES.items():
        model, hw = load_model(case["model"]), load_hardware(case["gpu"])
        search(model, hw, case["job"])  # warm caches
        walls, cpus = [], []
        for _ in range(REPEATS):
            w0, c0 = time.perf_counter(), time.process_time()
            result = search(model, hw, case["job"])
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        wall, cpu = min(walls), min(cpus)
        search_cli = _cli_wall_s(f"search {case['cli']}")
        estimate_cli = _cli_wall_s(f"estimate {case['cli']} {case['layout']}")
        print(
            f"{name:<30} {result.grid_size:>9,} {result.n_valid:>10,} {wall:>7.3f} {cpu:>7.3f} "
            f"{result.grid_size / cpu:>11,.0f}  {search_cli:>12.2f} {estimate_cli:>14.2f} {search_cli / estimate_cli:>6.2f}"
        )
    print("grid: candidates checked against the layout rules; evaluated: the valid ones, each timed and sized.")
    print("wall/cpu: best of", REPEATS, "searches in one process; CLI columns: best of 3 runs, table output.")


if __name__ == "__main__":
    main()
