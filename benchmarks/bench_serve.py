"""Benchmark of the serving search (a script, not a test).

Prints, for DeepSeek-V3 on H800 and Llama 3.1 70B on H100 (the latter also at a shipped workload's length
distribution): the decode configurations evaluated (layout x batch x
precision), the time of the vectorized decode search and its rate (target >= 1e5 configurations/s), and the wall
time of one whole `serve` (decode search, prefill search, document; target < 1 s) in this process and through the CLI.

    .venv/bin/python benchmarks/bench_serve.py
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from simulator.model.serve.search import Given, search_decode  # noqa: E402
from simulator.run.serve import ServeRequest, serve, setup_for  # noqa: E402

CASES = {
    "deepseek-v3 on h800": ServeRequest("deepseek-v3", "h800", input_len=4096, output_len=1024),
    "llama-3.1-70b on h100": ServeRequest("llama-3.1-70b", "h100-sxm", input_len=4096, output_len=1024),
    "llama-3.1-70b on h100, workload inferencemax-8k1k": ServeRequest("llama-3.1-70b", "h100-sxm",
                                                                      workload="inferencemax-8k1k"),
}  # fmt: skip
REPEATS = 5


def best_of(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    costsim = shutil.which("costsim") or str(Path(sys.executable).parent / "costsim")
    for name, req in CASES.items():
        s = setup_for(req)
        found = search_decode(s, Given(), ("bf16", "fp8"))
        n = len(found.candidates)
        t_search = best_of(lambda s=s: search_decode(s, Given(), ("bf16", "fp8")))
        t_serve = best_of(lambda req=req: serve(req).to_dict())
        lengths = (["--workload", req.workload] if req.workload else
                   ["--input-len", str(req.input_len), "--output-len", str(req.output_len)])  # fmt: skip
        cli = [costsim, "serve", req.model, "--gpu", req.gpu, *lengths, "--format", "json"]
        t = time.perf_counter()
        subprocess.run(cli, check=True, capture_output=True)
        t_cli = time.perf_counter() - t
        print(f"{name}: {n:,} decode configurations in {t_search * 1000:.1f} ms = {n / t_search:,.0f} configurations/s "
              f"(target >= 100,000); one serve {t_serve * 1000:.0f} ms in process (target < 1 s), "
              f"{t_cli:.2f} s through the CLI (interpreter start included)")  # fmt: skip


if __name__ == "__main__":
    main()
