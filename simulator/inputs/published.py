"""Published runs: the one record of a published training run or throughput configuration, and the loaders of
the datasets that ship in validation/ (public_runs.yaml, which includes the Megatron-LM 2021 Table 1 rows and
Llama 3's Table 4).

A run is the job and the layout fields its source states, the metric it reports (GPU-hours, wall-clock days,
MLPerf time-to-train, tokens/s or TFLOP/s per GPU, step time) and the reported value with a quote. Layout fields a
source leaves out are searched by the estimate, never guessed here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from simulator.errors import SpecError
from simulator.inputs.data_files import validation_dir
from simulator.inputs.files import is_file, read_json, read_yaml
from simulator.inputs.job import Job
from simulator.units import GIGA, TERA, count_in_range


@dataclass(frozen=True)
class Metric:
    unit: str
    time: bool
    """True for durations (GPU-hours, days, minutes, seconds), False for rates."""


METRICS: dict[str, Metric] = {
    "gpu_hours": Metric("GPU-hours", True),
    "wall_clock_days": Metric("days", True),
    "time_to_train_minutes": Metric("minutes", True),
    "step_time_s": Metric("s per step", True),
    "tokens_per_s_per_gpu": Metric("tokens/s per GPU", False),
    "model_tflop_per_s_per_gpu": Metric("model TFLOP/s per GPU (causal attention)", False),
    "eq3_tflop_per_s_per_gpu": Metric("TFLOP/s per GPU (Narayanan Eq. 3, recompute included)", False),
}
FAILURE_METRICS = ("gpu_hours", "wall_clock_days", "time_to_train_minutes")
"""Metrics that span a whole run, where `includes_failures` chooses goodput-applied or ideal figures."""
TRACKS = ("steady_state", "whole_run")
"""steady_state: a step-level figure (step time, throughput, MLPerf time-to-train) at the published layout, predicted
as the achievable run; whole_run: the GPU-hours or days of a whole published run, predicted as the expected run."""
SCOPES = ("run", "broader")
"""run: the figure covers this run; broader: it plainly covers more (a card's hours that hold several runs)."""


@dataclass(frozen=True)
class PublishedRun:
    id: str
    source: str
    quote: str
    model: str
    """Shipped model name or a spec / config.json path."""
    gpu: str
    job: Job
    layout: dict
    """The layout fields the source states; estimate() searches the others."""
    metric: str
    reported: float
    includes_failures: bool | None = None
    why: str = ""
    track: str = "steady_state"
    scope: str = "run"
    scope_note: str = ""
    assumptions: tuple[dict, ...] = ()
    """Every job field the source does not state: {field, value, why}."""
    stack: dict = field(default_factory=dict)
    """What the source states about the software: framework, year, recompute, sequence_parallel, flash_attention,
    network (`unknown` where it is silent)."""

    @property
    def unit(self) -> str:
        return METRICS[self.metric].unit

    @property
    def flagged(self) -> bool:
        return self.scope != "run"

    @property
    def stack_preset(self) -> str:
        """The software stack preset (inputs.stacks) of the run's framework and year; today's stack when unknown."""
        return stack_preset(self.stack)


def stack_preset(stack: dict) -> str:
    """The preset of a stated framework and year: FSDP-style stacks (PyTorch FSDP, Composer/llm-foundry, OLMo-core)
    to fsdp-2023; otherwise by year: 2021 and before megatron-2021, 2022 megatron-2022, 2023 megatron-2023, later
    current. An explicit `preset` wins."""
    if stack.get("preset"):
        return str(stack["preset"])
    framework = str(stack.get("framework", "")).lower()
    if any(k in framework for k in ("fsdp", "composer", "llm foundry", "llm-foundry", "olmo")):
        return "fsdp-2023"
    year = stack.get("year")
    if not isinstance(year, int):
        return "current"
    by_year = {2022: "megatron-2022", 2023: "megatron-2023"}
    return "megatron-2021" if year <= 2021 else by_year.get(year, "current")


@dataclass(frozen=True)
class Exclusion:
    id: str
    reason: str


# ------------------------------------------------------------------ loading


def dataset_path() -> Path:
    return validation_dir() / "public_runs.yaml"


_INCLUDED_WHY = {
    "eq3_tflop_per_s_per_gpu": "Per-GPU throughput counted with Narayanan Eq. 3 (recomputation included), 2021 stack: FP16, "
    "materialised attention, dropout 0.1; micro-batch and virtual stages from NVIDIA's run_table_1.sh.",
    "model_tflop_per_s_per_gpu": "Step-level model TFLOP/s per GPU (no failures); no recomputation and FSDP as stated "
    "(ZeRO-1 here: fp32 gradients accumulated over micro-batches), 4 virtual stages and micro-batch 1 assumed "
    "(validation/llama3_table4.yaml).",
}


def _throughput_run(id: str, source: str, model: str, gpu: str, job: Job, layout: dict, metric: str, reported) -> PublishedRun:
    """A row of a shipped throughput table (Megatron-LM 2021, Llama 3 Table 4), quoted from its numbers."""
    quote = f"{reported:g} TFLOP/s per GPU ({job.num_gpus} GPUs, batch {job.global_batch_sequences})"
    return PublishedRun(id, source, quote, model, gpu, job, layout, metric, float(reported), why=_INCLUDED_WHY.get(metric, ""))


def _require(entry: dict, key: str, where: str):
    if key not in entry or entry[key] is None:
        raise SpecError(f"{where}: missing field `{key}`")
    return entry[key]


def _number(entry: dict, key: str, where: str, minimum: float = 0.0) -> float:
    """A number above `minimum`; strings such as 14.8e12 (YAML 1.1 reads it as text) or 14.8T are parsed."""
    try:
        return count_in_range(_require(entry, key, where), minimum, math.inf, low_open=True)
    except ValueError as e:
        raise SpecError(f"{where}: `{key}` = {e}") from None


def _case(entry: object, index: int, path: Path) -> PublishedRun:
    if not isinstance(entry, dict):
        raise SpecError(f"{path}: cases[{index}] must be a mapping, got {type(entry).__name__}")
    where = f"{path}: case {entry.get('id', index)!r}"
    metric = _require(entry, "metric", where)
    if metric not in METRICS:
        raise SpecError(f"{where}: unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    includes_failures = entry.get("includes_failures")
    if metric in FAILURE_METRICS and not isinstance(includes_failures, bool):
        raise SpecError(f"{where}: metric {metric} needs `includes_failures: true|false` (goodput applied or not)")
    layout = entry.get("layout") or {}
    if not isinstance(layout, dict):
        raise SpecError(f"{where}: `layout` must be a mapping of published layout fields")
    job = Job(
        num_gpus=int(_number(entry, "num_gpus", where)),
        tokens=_number(entry, "tokens", where),
        seq_len=int(_number(entry, "seq_len", where)),
        global_batch_tokens=_number(entry, "global_batch_tokens", where),
        precision=_require(entry, "precision", where),
    )
    track = entry.get("track") or ("whole_run" if metric in ("gpu_hours", "wall_clock_days") else "steady_state")
    scope = entry.get("scope") or "run"
    if track not in TRACKS:
        raise SpecError(f"{where}: track {track!r} is unknown; use {' or '.join(TRACKS)}")
    if scope not in SCOPES:
        raise SpecError(f"{where}: scope {scope!r} is unknown; use {' or '.join(SCOPES)}")
    stack = entry.get("stack") or {}
    assumptions = entry.get("assumptions") or []
    if not isinstance(stack, dict) or not isinstance(assumptions, list):
        raise SpecError(f"{where}: `stack` must be a mapping and `assumptions` a list of {{field, value, why}}")
    return PublishedRun(
        id=str(_require(entry, "id", where)),
        source=str(_require(entry, "source", where)),
        quote=str(_require(entry, "quote", where)),
        model=str(_require(entry, "model", where)),
        gpu=str(_require(entry, "gpu", where)),
        job=job,
        layout=dict(layout),
        metric=metric,
        reported=_number(entry, "reported", where),
        includes_failures=includes_failures,
        why=str(entry.get("why", "")),
        track=track,
        scope=scope,
        scope_note=str(entry.get("scope_note", "") or "").strip(),
        assumptions=tuple(a for a in assumptions if isinstance(a, dict)),
        stack=dict(stack),
    )


def _listing(path: Path, key: str, what: str = "") -> dict:
    """A dataset file: a mapping with a list under `key` (SpecError naming the file otherwise)."""
    doc = read_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise SpecError(f"{path}: expected a mapping with a `{key}:` list{what}")
    return doc


def _document(path: Path | None = None) -> tuple[Path, dict]:
    path = path or dataset_path()
    return path, _listing(path, "cases")


def public_cases(path: Path | None = None) -> list[PublishedRun]:
    """Every case: the included shipped datasets first, then the YAML's own cases. Ids are unique."""
    path, doc = _document(path)
    cases: list[PublishedRun] = []
    for name in doc.get("includes") or []:
        if name in INCLUDES:
            cases += INCLUDES[name]()
        elif is_file(path.parent / str(name)) and str(name).endswith(".yaml"):
            included, more = _document(path.parent / str(name))
            cases += [_case(e, i, included) for i, e in enumerate(more["cases"])]
        else:
            raise SpecError(f"{path}: unknown include {name!r}; known: {', '.join(INCLUDES)} or a case file beside it")
    cases += [_case(e, i, path) for i, e in enumerate(doc["cases"])]
    seen: set[str] = set()
    for c in cases:
        if c.id in seen:
            raise SpecError(f"{path}: case id {c.id!r} appears twice")
        seen.add(c.id)
    return cases


def excluded_runs(path: Path | None = None) -> list[Exclusion]:
    path, doc = _document(path)
    return [Exclusion(str(e.get("id")), str(e.get("reason", "")).strip()) for e in doc.get("excluded") or []]


def _validation_dir() -> Path:
    return validation_dir()


def megatron_2021_runs() -> list[PublishedRun]:
    path = _validation_dir() / "megatron2021" / "runs.yaml"
    doc = read_yaml(path)
    runs = []
    for r in doc["runs"]:
        s = r["seq_len"]
        batch_tokens = r["global_batch"] * s
        layout = dict(
            tp=r["tp"],
            pp=r["pp"],
            cp=1,
            ep=1,
            zero_stage=0,
            micro_batch_size=r["micro_batch"],
            schedule="interleaved" if r["virtual_stages"] > 1 else "1f1b",
            vpp=r["virtual_stages"],
            recompute="full",
            tp_overlap=False,  # Megatron-LM 2021 did not overlap TP communication
        )
        # The 2021 stack: FP16, materialised attention with 0.1 dropout (Table 1 setup; docs/model.md §12).
        job = Job(r["gpus"], batch_tokens, s, batch_tokens, "fp16", attention_kernel="unfused", dropout=0.1)
        config = str(path.parent / r["config"])
        runs.append(
            _throughput_run(
                r["id"],
                doc["source"],
                config,
                "a100-80gb",
                job,
                layout,
                "eq3_tflop_per_s_per_gpu",
                r["reported_tflop_per_s_per_gpu"],
            )
        )
    return runs


def llama3_runs() -> list[PublishedRun]:
    path = _validation_dir() / "llama3_table4.yaml"
    doc = read_yaml(path)
    runs = []
    for r in doc["runs"]:
        job = Job(r["gpus"], r["global_batch_tokens"], r["seq_len"], r["global_batch_tokens"], "bf16")
        layout = dict(
            tp=r["tp"],
            pp=r["pp"],
            cp=r["cp"],
            zero_stage=r.get("zero_stage", 1),  # as the row states (validation/llama3_table4.yaml)
            micro_batch_size=r["micro_batch"],
            schedule="interleaved",
            vpp=r["vpp"],
            recompute=r.get("recompute", "none"),
            tp_overlap=False,  # Llama 3 §3.3.2 describes no TP communication overlap (docs/model.md §12)
        )
        runs.append(
            _throughput_run(
                r["id"],
                doc["source"],
                r["model"],
                r["gpu"],
                job,
                layout,
                "model_tflop_per_s_per_gpu",
                r["reported_model_tflop_per_s_per_gpu"],
            )
        )
    return runs


def megatron_flops_per_token(layers: int, hidden: int, seq_len: int, padded_vocab: int, ffn_hidden: int) -> float:
    """Training FLOPs per token as Megatron-LM counted them in 2024 (megatron/training/training.py
    num_floating_point_operations at f2e5db402c, MHA, no MoE, no gated MLP): 12 L h^2 (2 + s/h + ffn/h + V/(2 L h)).
    Attention is counted in full (s/h), where costsim counts causal attention (half)."""
    return 12 * layers * hidden**2 * (2 + seq_len / hidden + ffn_hidden / hidden + padded_vocab / (2 * layers * hidden))


def megatron_core_2024_runs() -> list[PublishedRun]:
    """Megatron-Core's H100 weak-scaling table and strong-scaling end points (validation/megatron_core_2024/runs.yaml),
    as tokens/s per GPU through Megatron's own FLOP count. A missing or malformed field is a SpecError naming the file
    and the run."""
    from simulator.inputs.catalog import load_hardware

    path = _validation_dir() / "megatron_core_2024" / "runs.yaml"
    doc = _listing(path, "runs")
    s = int(_number(doc, "seq_len", str(path)))
    precision = str(_require(doc, "precision", str(path)))
    gpu = str(_require(doc, "gpu", str(path)))
    # MFU figures are of the GPU's dense peak at the run's precision (the table's 432.8 TFLOP/s print as 44%).
    peak_tflop = load_hardware(gpu).peak_flop_per_s(precision) / TERA
    runs = []
    for index, r in enumerate(doc["runs"]):
        if not isinstance(r, dict):
            raise SpecError(f"{path}: runs[{index}] must be a mapping")
        where = f"{path}: run {r.get('id', index)!r}"
        config = path.parent / str(_require(r, "config", where))
        c = read_json(config)
        if not isinstance(c, dict):
            raise SpecError(f"{config}: expected a JSON object")
        dims = {k: int(_number(c, k, str(config))) for k in ("n_layer", "n_embd", "vocab_size", "n_inner")}
        if "reported_tflop_per_s_per_gpu" in r:
            tflop = _number(r, "reported_tflop_per_s_per_gpu", where)
        else:
            try:
                tflop = count_in_range(_require(r, "reported_mfu", where), 0.0, 1.0, low_open=True) * peak_tflop
            except ValueError as e:
                raise SpecError(f"{where}: `reported_mfu` = {e} (a fraction: 0.47 for 47%)") from None
        per_token = megatron_flops_per_token(dims["n_layer"], dims["n_embd"], s, dims["vocab_size"], dims["n_inner"])
        batch_tokens = _number(r, "global_batch", where) * s
        job = Job(int(_number(r, "gpus", where)), batch_tokens, s, batch_tokens, precision)
        stated = {k: int(_number(r, k, where)) for k in ("tp", "pp", "dp") if k in r}
        # --overlap-param-gather runs the distributed optimizer (ZeRO-1), on every row; --tp-comm-overlap where a row
        # states TP above 1 (the strong-scaling rows state no layout: the search takes the rest).
        layout = stated | {"zero_stage": 1} | ({"tp_overlap": stated["tp"] > 1} if "tp" in stated else {})
        why = (
            f"{tflop:.1f} TFLOP/s per GPU in Megatron's count ({per_token / GIGA:.1f} GFLOP per token, full attention), "
            "end-to-end training throughput ('including data loading, optimizer steps, communication, and logging')."
        )
        runs.append(
            PublishedRun(
                id=str(_require(r, "id", where)),
                source=str(_require(doc, "source", str(path))),
                quote=str(_require(r, "quote", where)),
                model=str(config),
                gpu=gpu,
                job=job,
                layout=layout,
                metric="tokens_per_s_per_gpu",
                reported=tflop * TERA / per_token,
                why=why + ("" if "tp" in stated else " TP, PP and DP of the strong-scaling points are not published: searched."),
                assumptions=({"field": "precision", "value": precision, "why": "MFU of the 16-bit dense peak"},),
                stack=dict(doc.get("stack") or {}),
            )
        )
    return runs


LLMFOUNDRY_README_GPUS = {"a100_40gb": "a100-40gb", "a100_80gb": "a100-80gb", "h100_80gb": "h100-sxm"}
"""The README's GPU column -> hardware profile id."""


def llmfoundry_readme_case(table: str, row: str) -> dict | None:
    """One row of the llm-foundry benchmark README as a case entry of validation/public_runs.yaml's format, with the
    stack fields validation/llmfoundry.yaml's cases record (FSDP FULL_SHARD, Triton flash attention, PyTorch 1.13.1 for
    'bf16 PURE' rows and 2.1.0 with early-stopping recomputation for 'amp_bf16 DEFAULT' rows); None for FP8 rows;
    ValueError for a row without the tables' 20 columns, with a column that does not read, or with a global batch that is
    not micro-batch x accumulation x GPUs."""
    f = table_cells(row)
    if len(f) != 20:
        raise ValueError(f"{len(f)} columns where the README's tables have 20")
    if "FP8" in table or f[14] not in ("bf16", "amp_bf16"):
        return None
    size, seq, n, gpu = f[0], int(f[1]), int(f[2]), LLMFOUNDRY_README_GPUS[f[3]]
    mb, accum, sequences = int(f[7]), int(f[8]), int(f[9])
    if min(seq, n, mb, accum) < 1 or sequences != mb * accum * n:
        raise ValueError(f"GlobalBatchSize {sequences} is not MicroBatchSize {mb} x GradAccum {accum} x {n} GPUs")
    if f[15] not in ("PURE", "DEFAULT") or f[17] not in ("True", "False"):
        raise ValueError(f"MP Mode {f[15]!r} / Activation Checkpointing {f[17]!r}: expected PURE or DEFAULT / True or False")
    pure, ckpt = f[15] == "PURE", f[17] == "True"
    recompute = "full" if ckpt else "none"
    return {
        "id": f"readme-{size}-{gpu}-{n}-s{seq}-mb{mb}-ga{accum}",
        "source": f"mosaicml/llm-foundry scripts/train/benchmarking/README.md (commit 061f2c7), table '{table}'",
        "quote": row,
        "model": f"mpt-{size}",
        "gpu": gpu,
        "num_gpus": n,
        "tokens": sequences * seq,
        "seq_len": seq,
        "global_batch_tokens": sequences * seq,
        "precision": "bf16",
        "layout": {"tp": 1, "pp": 1, "dp": n, "zero_stage": 3, "micro_batch_size": mb, "recompute": recompute},
        "metric": "tokens_per_s_per_gpu",
        "reported": float(f[12]),
        "why": "a row of the llm-foundry benchmark README (a measured steady-state throughput)",
        "track": "steady_state",
        "assumptions": [],
        "stack": {
            "framework": "llm-foundry / Composer (PyTorch FSDP)",
            "year": 2023,
            "recompute": recompute,
            "sequence_parallel": False,
            "flash_attention": True,
            "network": table,
            "mixed_precision": f[15],
            "pytorch": "1.13.1" if pure else "2.1.0",
            "checkpoint_early_stop": not pure,
        },
    }


def llmfoundry_readme_runs() -> list[PublishedRun]:
    """Every BF16 result row of the llm-foundry benchmark README (validation/llmfoundry_readme_rows.yaml), once each
    (the README repeats one 125M row)."""
    path = _validation_dir() / "llmfoundry_readme_rows.yaml"
    rows = _listing(path, "rows", " of {table, row}")["rows"]
    runs, seen = [], set()
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or not isinstance(r.get("table"), str) or not isinstance(r.get("row"), str):
            raise SpecError(f"{path}: rows[{i}] must be a mapping with `table` and `row` strings")
        try:
            entry = llmfoundry_readme_case(r["table"], r["row"])
        except (ValueError, KeyError, IndexError) as e:
            raise SpecError(f"{path}: rows[{i}] is not a README result row ({e}); copy the row verbatim") from None
        if entry is not None and entry["id"] not in seen:
            seen.add(entry["id"])
            runs.append(_case(entry, i, path))
    return runs


def table_cells(row: str) -> list[str]:
    """The cells of a quoted Markdown table row ('| a | b |' -> ['a', 'b']), inner runs of spaces as one."""
    return [" ".join(c.split()) for c in row.strip().strip("|").split("|")]


def same_row(a: str, b: str) -> bool:
    """Whether two quoted table rows are the same row, whatever their spacing: the same cells."""
    return table_cells(a) == table_cells(b)


def throughput_runs() -> list[PublishedRun]:
    return megatron_2021_runs() + llama3_runs()


# Shipped datasets a `includes:` entry may name, with the loader that reads them.
INCLUDES: dict[str, Callable[[], list[PublishedRun]]] = {
    "megatron2021/runs.yaml": megatron_2021_runs,
    "llama3_table4.yaml": llama3_runs,
    "megatron_core_2024/runs.yaml": megatron_core_2024_runs,
}
