"""Collective microbenchmarks through torch.distributed, launched with torchrun (nccl on GPUs, gloo on CPU).

Run on any cluster the same way, one process per GPU:

    torchrun --nnodes N --nproc-per-node 8 ... -m calibrate.collectives --backend nccl --output coll.json

Each rank times all-reduce, all-gather, reduce-scatter, all-to-all and send/recv over message sizes;
rank 0 writes the slowest rank's median per point, with algorithm bandwidth S / t and bus bandwidth
S / t x factor(op, n) as nccl-tests defines them (doc/PERFORMANCE.md; simulator.model.comms.bus_factor):
S is the full array (all-reduce buffer, all-gather output, reduce-scatter input), the per-rank buffer
for all-to-all and send/recv. A group that spans nodes (LOCAL_WORLD_SIZE < WORLD_SIZE) is the
scale-out tier, one inside a node the scale-up tier.

With --decode-tokens it also times decode's expert dispatch (serving): one all_to_all_single of
`tokens x copies x hidden` BF16 elements per rank (every routed copy of a token sent on its own, as decode's
low-latency kernels send them) for each token count, written as `decode_all_to_all` samples; the fit's latency
is what `costsim serve --calibration` charges per dispatch and per combine.

`costsim calibrate` launches it as a subprocess with `python -m torch.distributed.run` on the local
machine and reads the JSON back.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from calibrate.timing import Budget  # imports torch, which only the functions that run a benchmark import

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
ELEMENT_BYTES = 4  # float32 buffers, the nccl-tests default type
DECODE_ELEMENT_BYTES = 2  # BF16 tokens, as the combine returns them
DECODE_COPIES = 8
"""Routed copies per token of the decode all-to-all for a dense reference model: DeepSeek-V3's top-8."""


def _decode_call(tokens: int, copies: int, hidden: int, n: int, device):
    """One all_to_all_single of tokens x copies x hidden BF16 elements per rank (rounded up to whole elements per rank)."""
    import torch
    import torch.distributed as dist

    elements = -(-tokens * copies * hidden // n) * n
    x = torch.randn(elements, device=device).to(torch.bfloat16)
    out = torch.empty_like(x)
    return lambda: dist.all_to_all_single(out, x), elements * DECODE_ELEMENT_BYTES


def _op_call(op: str, size_bytes: int, n: int, rank: int, device):
    """A zero-argument call running `op` once on fresh random buffers with S = size_bytes."""
    import torch
    import torch.distributed as dist

    def buf(elements: int):
        return torch.randn(max(1, elements), device=device)

    total = max(n, size_bytes // ELEMENT_BYTES // n * n)  # divisible by n
    if op == "all_reduce":
        x = buf(total)
        return lambda: dist.all_reduce(x), total * ELEMENT_BYTES
    if op == "all_gather":
        x, out = buf(total // n), buf(total)
        return lambda: dist.all_gather_into_tensor(out, x), total * ELEMENT_BYTES
    if op == "reduce_scatter":
        x, out = buf(total), buf(total // n)
        rs = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
        return lambda: rs(out, x), total * ELEMENT_BYTES
    if op == "all_to_all":
        x, out = buf(total), buf(total)
        return lambda: dist.all_to_all_single(out, x), total * ELEMENT_BYTES
    if op == "send_recv":
        # Every rank sends to the next and receives from the previous one at the same time (nccl-tests sendrecv).
        x, out = buf(total), buf(total)

        def call():
            # One batched NCCL group: an isend and an irecv issued apart can block on a large message (each rank's
            # send queued before its receive on one stream), and per-pair communicators created on first use can
            # wait on each other in a ring (torch.distributed.batch_isend_irecv's docstring gives this very ring).
            ops = [dist.P2POp(dist.isend, x, (rank + 1) % n), dist.P2POp(dist.irecv, out, (rank - 1) % n)]
            for r in dist.batch_isend_irecv(ops):
                r.wait()

        return call, total * ELEMENT_BYTES
    raise ValueError(op)


def _time_point(call, device, budget: Budget) -> np.ndarray:
    """Seconds of each timed call on this rank, after warm-up; every rank runs as many."""
    import torch
    import torch.distributed as dist

    def once() -> float:
        t0 = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    dist.barrier()
    first = torch.tensor([once()], dtype=torch.float64, device=device)
    dist.all_reduce(first, op=dist.ReduceOp.MAX)  # every rank must run the same number of repeats
    for _ in range(budget.warmup - 1):
        once()
    n = budget.repeats(float(first.item()))
    dist.barrier()
    return np.array([once() for _ in range(n)])


PROCESS_GROUP_TIMEOUT_S = 120.0
"""How long a rank waits in one collective for its peers (torch's default is 10 minutes, past launch's own limit)."""


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from calibrate.timing import Budget, summarize
    from simulator.model.comms import bus_factor

    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise SystemExit(f"calibrate.collectives runs one process per rank under torchrun (costsim calibrate starts it); "
                         f"{', '.join(missing)} not set. Run: python -m torch.distributed.run --standalone "
                         f"--nproc-per-node N -m calibrate.collectives --backend {args.backend} --output FILE")  # fmt: skip
    if args.backend == "nccl" and not torch.cuda.is_available():
        raise SystemExit("calibrate.collectives --backend nccl needs CUDA GPUs and torch sees none; use --backend gloo")
    if args.backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        device = torch.device("cuda", torch.cuda.current_device())
        # Bound to its GPU, and timing out before the launcher's limit (launch's timeout_s), so a rank whose peer
        # failed stops instead of waiting in a collective until it is killed.
        dist.init_process_group(args.backend, device_id=device, timeout=datetime.timedelta(seconds=PROCESS_GROUP_TIMEOUT_S))
    else:
        device = torch.device("cpu")
        dist.init_process_group(args.backend, timeout=datetime.timedelta(seconds=PROCESS_GROUP_TIMEOUT_S))
    rank, n = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", n))
    tier = "scale_up" if local >= n else "scale_out"
    budget = Budget(warmup=args.warmup, min_repeats=args.min_repeats, max_repeats=args.max_repeats, target_s=args.target_s)
    samples, notes = [], []
    for op in args.ops:
        for size in args.sizes:
            try:
                call, s_bytes = _op_call(op, size, n, rank, device)
                times = _time_point(call, device, budget)
            except (RuntimeError, ValueError) as e:  # unsupported by this backend: every rank fails alike
                notes.append(f"{op} {size} B on {args.backend}: skipped, {str(e).splitlines()[0][:120]}")
                break
            stats = [None] * n
            dist.all_gather_object(stats, summarize(times).model_dump())
            timing = max(stats, key=lambda s: s["median_s"])  # the slowest rank sets the time
            algbw = s_bytes / timing["median_s"]
            samples.append(
                {
                    "op": op,
                    "backend": args.backend,
                    "world_size": n,
                    "tier": tier,
                    "size_bytes": float(s_bytes),
                    "timing": timing,
                    "algbw_bytes_per_s": algbw,
                    "busbw_bytes_per_s": algbw * bus_factor(op, n),  # type: ignore[arg-type]
                }
            )
    decode = []
    for tokens in args.decode_tokens:
        try:
            call, s_bytes = _decode_call(tokens, args.decode_copies, args.decode_hidden, n, device)
            times = _time_point(call, device, budget)
        except (RuntimeError, ValueError) as e:
            notes.append(f"decode all-to-all {tokens} tokens per rank on {args.backend}: skipped, {str(e).splitlines()[0][:120]}")
            break
        stats = [None] * n
        dist.all_gather_object(stats, summarize(times).model_dump())
        decode.append(
            {
                "backend": args.backend,
                "world_size": n,
                "tier": tier,
                "tokens_per_rank": tokens,
                "copies_per_token": args.decode_copies,
                "hidden": args.decode_hidden,
                "element_bytes": DECODE_ELEMENT_BYTES,
                "size_bytes": float(s_bytes),
                "timing": max(stats, key=lambda s: s["median_s"]),  # the slowest rank sets the time
            }
        )
    if rank == 0:
        tmp = Path(args.output).with_suffix(".partial")
        tmp.write_text(json.dumps({"samples": samples, "decode_all_to_all": decode, "notes": notes}))
        os.replace(tmp, args.output)
    dist.barrier()
    dist.destroy_process_group()


def launch(
    backend: str,
    nproc: int,
    sizes: list[int],
    warmup: int = 2,
    min_repeats: int = 5,
    max_repeats: int = 30,
    target_s: float = 0.05,
    timeout_s: float = 300.0,
    decode_tokens: list[int] | None = None,
    decode_hidden: int = 0,
    decode_copies: int = DECODE_COPIES,
) -> tuple[list[dict], list[dict], list[str]]:
    """Run the benchmark under `python -m torch.distributed.run` with `nproc` local processes; (samples, decode
    all-to-all samples, notes). `decode_tokens`: tokens per rank of the decode all-to-all (none: not measured)."""
    with tempfile.TemporaryDirectory(prefix="costsim-coll-") as tmp:
        out = Path(tmp) / "collectives.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node", str(nproc)]
        cmd += ["-m", "calibrate.collectives", "--backend", backend, "--output", str(out)]
        cmd += ["--sizes", *map(str, sizes), "--warmup", str(warmup), "--min-repeats", str(min_repeats)]
        cmd += ["--max-repeats", str(max_repeats), "--target-s", str(target_s)]
        if decode_tokens:
            cmd += ["--decode-tokens", *map(str, decode_tokens), "--decode-hidden", str(decode_hidden)]
            cmd += ["--decode-copies", str(decode_copies)]
        env = dict(os.environ, OMP_NUM_THREADS="1")  # one thread per process: the processes share the cores
        proc = _run_ended(cmd, timeout_s, env)
        if proc is None:
            return [], [], [f"collectives ({backend}, {nproc} processes): skipped, no result within {timeout_s:.0f} s"]
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return (
                [],
                [],
                [f"collectives ({backend}, {nproc} processes): skipped, torchrun exited {proc.returncode}: {tail[0][:200]}"],
            )
        data = json.loads(out.read_text())
        return data["samples"], data.get("decode_all_to_all", []), data["notes"]


TERMINATE_GRACE_S = 30.0
"""Seconds torchrun gets to stop its workers after SIGTERM before it is killed."""


def _run_ended(cmd: list[str], timeout_s: float, env: dict) -> subprocess.CompletedProcess | None:
    """Run torchrun to its end, or stop it and its workers after `timeout_s` (None). subprocess.run's timeout kills
    only torchrun (SIGKILL), and torch starts the workers in sessions of their own
    (torch.distributed.elastic.multiprocessing.subprocess_handler: start_new_session=True), so they would outlive it,
    holding the GPUs the calibration goes on measuring; SIGTERM lets torchrun stop them first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=_repo_root())
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.communicate(timeout=TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        return None
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def _repo_root() -> str:
    """Where `-m calibrate.collectives` resolves: the folder holding the calibrate package."""
    return str(Path(__file__).resolve().parent.parent)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("nccl", "gloo"), required=True)
    p.add_argument("--output", required=True, help="JSON file rank 0 writes")
    p.add_argument("--sizes", type=int, nargs="+", default=[2**k for k in range(10, 31, 4)], help="S in bytes")
    p.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS))
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--min-repeats", type=int, default=5)
    p.add_argument("--max-repeats", type=int, default=50)
    p.add_argument("--target-s", type=float, default=0.2)
    p.add_argument("--decode-tokens", type=int, nargs="*", default=[], help="tokens per rank of the decode all-to-all")
    p.add_argument("--decode-hidden", type=int, default=7168, help="elements per routed copy (d_model)")
    p.add_argument("--decode-copies", type=int, default=DECODE_COPIES, help="routed copies per token (top-k)")
    worker(p.parse_args(argv))


if __name__ == "__main__":
    main()
