"""Text of uncertainty results and of the `costsim report` document (Markdown and HTML)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from simulator.inputs.files import is_file
from simulator.report.money import usd
from simulator.report.tables import layout_text, text_table
from simulator.run.basis_notes import MEMORY_MISS, NO_TP_OVERLAP
from simulator.units import GIGA, KILO, format_count

OUTPUT_LABELS = {"gpu_hours": "GPU-hours", "wall_clock_days": "wall clock, days", "cost_usd": "cost, USD"}


def _fmt(output: str, x: float) -> str:
    if output == "wall_clock_days":
        return f"{x:.1f}"
    if output == "cost_usd":
        return usd(x)
    return format_count(x)


def _fmt_input(x: float) -> str:
    return format_count(x) if abs(x) >= KILO else f"{x:.3g}"


def uncertainty_table(u: dict) -> str:
    """The uncertainty block of `costsim estimate --uncertainty` as text."""
    lines = ["", f"uncertainty ({u['draws']:,} draws, seed {u['seed']})"]
    band = [
        (label, *(_fmt(k, v) for v in (u[k]["p10"], u[k]["p50"], u[k]["p90"], u["nominal"][k])))
        for k, label in OUTPUT_LABELS.items()
    ]
    lines.append(text_table(("", "P10", "P50", "P90", "nominal"), band, align="lrrrr", gap=2, indent=2))
    lines.append("")
    lines.append("what moves the cost most (input at its P10 / P90, all others nominal; full model)")
    tornado = [
        (
            b["label"], _fmt_input(b["input_p10"]), "..", _fmt_input(b["input_p90"]),
            _fmt("cost_usd", b["at_input_p10"]["cost_usd"]), "..", _fmt("cost_usd", b["at_input_p90"]["cost_usd"]),
        )
        for b in u["tornado"]
    ]  # fmt: skip
    if tornado:
        lines.append(text_table(("",) * 7, tornado, align="lrllrll", header=False, indent=2))
    s = u["surrogate"]
    err = max(s["max_abs_error"].values(), default=float("nan"))
    rms = max(s["rms_error"].values(), default=float("nan"))
    lines.append("")
    lines.append(
        f"draws go through a surrogate ({s['evaluations']} full-model evaluations); against {s['checks']} joint "
        f"full-model draws its error is {rms:.2%} rms, {err:.2%} at most."
    )
    lines += [f"note: {n}" for n in u["notes"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- numbers the report adds


def cost_breakdown_usd(d: dict) -> dict[str, float]:
    """Dollars of the run by what the GPUs were doing: step-time shares of the ideal cost, plus goodput losses.

    `d` is Estimate.to_dict(). Components are grouped by name: *bubble*, *comm* (exposed communication and the
    SMs it takes), *recompute*, *optimizer*; everything else is compute (GEMMs, attention, memory-bound kernels).
    """
    ideal_usd = d["ideal_gpu_hours"] * d["usd_per_gpu_hour"]
    groups = {
        "compute (GEMMs, attention, memory-bound)": 0.0,
        "activation recomputation": 0.0,
        "pipeline bubble": 0.0,
        "exposed communication": 0.0,
        "optimizer step": 0.0,
    }
    for name, seconds in d["breakdown"].items():
        groups[_cost_group(name)] += ideal_usd * seconds / d["step_time_s"]
    groups["failures, restarts, checkpoints"] = d["cost_usd"] - ideal_usd
    return groups


def _cost_group(component: str) -> str:
    if "bubble" in component:
        return "pipeline bubble"
    if "comm" in component:
        return "exposed communication"
    if "recompute" in component:
        return "activation recomputation"
    if "optimizer" in component:
        return "optimizer step"
    if component == "step_host":
        return "host time per step"
    return "compute (GEMMs, attention, memory-bound)"


SCALING_FACTORS = (1 / 4, 1 / 2, 1, 2, 4)


def scaling_curve(model, hw, est, given: dict | None = None, factors=SCALING_FACTORS) -> tuple[list[dict], list[str]]:
    """The best layout at other GPU counts: the sweep's best_row on each count, keeping the layout fields in `given`.

    `given` is what the user fixed (None: the estimate's whole layout but DP). DP follows the GPU count; the
    job (tokens, sequence, global batch, precision) stays the same. Returns the points sorted by GPU count and
    one note per GPU count left out (no valid or no fitting layout).
    """
    from dataclasses import replace

    from simulator.analysis.sweep import best_row, estimate_row

    lay = est.layout.to_dict()
    fixed = {k: v for k, v in (lay if given is None else given).items() if v is not None and k != "dp"}
    if "tp_overlap" in lay:  # estimate keeps TP overlap off unless asked; so do the other sizes
        fixed.setdefault("tp_overlap", lay["tp_overlap"])
    points, skipped = [], []
    for f in factors:
        n = est.job.num_gpus * f
        if n < 1 or n != int(n):
            continue
        if f == 1:
            row = estimate_row(est)
        else:
            job = replace(est.job, num_gpus=int(n))
            row = best_row(model, hw, job, fixed, est.pricing, est.assumptions, est.rates)
            if est.basis == "expected" and row.feasible and row.expected:
                # The report's figures are the expected run: every size at its practice layout, realized, as here.
                row = estimate_row(_expected_at(model, hw, job, row.expected["layout"], est))
        if row.feasible:
            points.append(row.to_dict())
        else:
            skipped.append(f"{int(n):,} GPUs: {row.reason}")
    return sorted(points, key=lambda p: p["num_gpus"]), skipped


def _expected_at(model, hw, job, layout: dict, est):
    """The expected run of `job` at `layout` (a sweep row's practice layout), realized as the estimate `est` is."""
    from simulator.run.estimate import estimate

    return estimate(
        model, hw, job, layout, est.pricing, est.assumptions, est.rates,
        realization=est.realization, basis=est.basis, stack=est.stack,
    )  # fmt: skip


def assumption_sources() -> dict[str, str]:
    """Field -> docstring of simulator.inputs.assumptions.Assumptions (each states its source or that it is an assumption)."""
    import ast
    import inspect

    from simulator.inputs import assumptions

    tree = ast.parse(inspect.getsource(assumptions))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Assumptions")
    out: dict[str, str] = {}
    body = cls.body
    for node, nxt in zip(body, body[1:] + [None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            doc = nxt.value.value if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant) else ""
            out[node.target.id] = " ".join(str(doc).split()) or "no source given"
    return out


def hardware_sources(hw) -> list[tuple[str, float, str, str]]:
    """(field, value, source citation or 'assumption', note) for every sourced number of a hardware profile."""
    from pydantic import BaseModel

    from simulator.inputs.specs import ASSUMPTION, Sourced

    rows: list[tuple[str, float, str, str]] = []

    def walk(node: BaseModel, prefix: str) -> None:
        for name, value in node:
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for key, item in items:
                path = f"{prefix}{name}" + (f".{key}" if key else "")
                if isinstance(item, Sourced):
                    cite = "assumption" if item.source == ASSUMPTION else f"{item.source}: {hw.sources.get(item.source, '')}"
                    rows.append((path, item.value, cite, item.note or ""))
                elif isinstance(item, BaseModel):
                    walk(item, path + ".")

    walk(hw, "")
    return rows


def costsim_version() -> str:
    """The installed costsim's version (importlib.metadata); 'unknown' when it is not installed as a package."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("costsim")
    except PackageNotFoundError:
        return "unknown"


_VALIDATION: list[dict] = []


def validation_document() -> dict:
    """The `costsim validate public` document (computed once per process: the published runs are fixed)."""
    if not _VALIDATION:
        from simulator.analysis import public_runs
        from simulator.inputs.published import excluded_runs

        _VALIDATION.append(public_runs.report(public_runs.evaluate(), excluded_runs()))
    return _VALIDATION[0]


ACCURACY_COLUMNS = ("track", "runs", "median abs. error (leave-one-out)", "max abs. error (leave-one-out)",
                    "band coverage", "target", "target met")  # fmt: skip


def _in_and_out(track: dict, stat: str) -> str:
    """A track's median or max |error| in-sample, then leave-one-out in brackets: '6.2% (6.3%)'."""
    return f"{_pct(track[f'{stat}_abs_error'])} ({_pct(track[f'{stat}_abs_error_leave_one_out'])})"


def _accuracy_section(doc: dict) -> list[Block]:
    from simulator.analysis.public_runs import TARGET_LABELS
    from simulator.analysis.size_trend import TREND_ALPHA

    rows = []
    for name, t in doc["tracks"].items():
        medians = {k: v for k, v in t["target"].items() if k.startswith("median")}
        goal = ", ".join(f"{TARGET_LABELS[k]} <= {v:.0%}" for k, v in medians.items())
        goal += f", band >= {t['target']['band_coverage']:.0%}" if "band_coverage" in t["target"] else ""
        goal += ", no size trend" if "size_trend_p_value" in t["target"] else ""
        rows.append(
            (
                name.replace("_", " "),
                f"{t['n']}",
                _in_and_out(t, "median") if t["n"] else "-",
                _in_and_out(t, "max") if t["n"] else "-",
                _pct(t["band_coverage"]) if t.get("band_coverage") is not None else "-",
                goal,
                "met" if t["meets_target"] else "NOT met",
            )
        )
    return [
        h2("How accurate is costsim?"),
        para(
            f"`costsim validate public` predicts {doc['n_cases']} published runs in the unit each reports. Steady "
            "state: step time or throughput at the published layout (what the step model predicts). Whole run: "
            "GPU-hours or days of a whole training run (the expected run, with the realization fitted to such runs). "
            "Each error is in-sample, then leave-one-out in brackets (a run that constrained a fitted constant predicted "
            "by the fit without it). Band coverage: the share of whole runs inside the "
            "P10-P90 band. No size trend: the llm-foundry rows' error does not drift with model size (permutation "
            f"p-value of log error against log parameters at least {TREND_ALPHA:g})."
            + _size_trend_sentence(doc["tracks"]["steady_state"].get("size_trend"))
        ),
        table(ACCURACY_COLUMNS, rows),
    ]


def _size_trend_sentence(s: dict | None) -> str:
    if not s:
        return ""
    return (
        f" Now: r {s['pearson_r']:+.2f}, {s['slope_per_e_fold']:+.1%} per e-fold of parameters, p {s['p_value']:.3f}"
        f" ({'a trend' if s['trend_present'] else 'no trend'})."
    )


_FILES_CITED = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.(?:md|py|yaml|json))(?![\w])")
"""A repository file named in text (docs/model.md, simulator/inputs/assumptions.py)."""


def cited_source_keys(text: str, keys) -> list[str]:
    """The source keys of `keys` that `text` names as words (a key is cited where it appears)."""
    return [k for k in keys if re.search(rf"(?<![\w]){re.escape(k)}(?![\w])", text)]


def repository_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def cited_files(text: str) -> list[str]:
    """Repository files named in `text` (only those that exist are ever cited; tests check it)."""
    return sorted(set(_FILES_CITED.findall(text)))


DOCUMENTS = {
    "docs/model.md": "costsim's model description: every formula, its derivation and its sources (in the repository)",
    "simulator/inputs/assumptions.py": "the global assumptions, each with its source or marked as an assumption",
    "simulator/data/fitted_constants.yaml": "the fitted constants (realization per GPU generation) and their fit",
    "validation/public_runs.yaml": "the published runs `costsim validate public` predicts, each with its source",
}


def _references_section(blocks: list[Block], hws, extra_documents: dict[str, str] | None = None) -> list[Block]:
    """Every source key and repository file the document cites, defined: keys from the hardware profiles' `sources`,
    files with what they hold. Keys no text cites are left out; a file is listed only where the repository has it."""
    text = "\n".join(_block_text(b) for b in blocks)
    sources: dict[str, str] = {}
    for hw in hws:
        for k, v in hw.sources.items():
            sources.setdefault(k, v)
    keys = cited_source_keys(text, sources)
    root = repository_root()
    documents = {**DOCUMENTS, **(extra_documents or {})}
    files = [f for f in cited_files(text) if f in documents or is_file(root / f)]  # a cited name can be any text
    rows = [(f"`{k}`", sources[k]) for k in keys]
    doc_rows = [(f"`{f}`", documents.get(f, "file in the costsim repository")) for f in files]
    out = [
        h2("References"),
        para("Every source key and file the report cites. Keys are those of the hardware profiles' `sources`."),
    ]
    if rows:
        out.append(table(("key", "citation"), rows))
    if doc_rows:
        out += [h3("Files of the costsim repository"), table(("file", "what it holds"), doc_rows)]
    return out


def _block_text(b: Block) -> str:
    parts = [b.text, *(c for row in b.items for c in (row if isinstance(row, tuple) else (row,)))]
    return " ".join(str(p) for p in parts)


# --------------------------------------------------------------------------- document blocks and renderers


@dataclass(frozen=True)
class Block:
    """One piece of the document. kind: h1, h2, h3, p, list, table, image.

    Text may use `code` and **bold**; both renderers understand them.
    """

    kind: str
    text: str = ""
    items: tuple = ()
    """list: the items; table: the rows (first row is the header); image: (file name, alt text)."""


def h1(text: str) -> Block:
    return Block("h1", text)


def h2(text: str) -> Block:
    return Block("h2", text)


def h3(text: str) -> Block:
    return Block("h3", text)


def para(text: str) -> Block:
    return Block("p", text)


def bullets(items) -> Block:
    return Block("list", items=tuple(items))


def table(header, rows) -> Block:
    return Block("table", items=(tuple(header), *(tuple(str(c) for c in r) for r in rows)))


def image(file_name: str, alt: str) -> Block:
    return Block("image", items=(file_name, alt))


def to_markdown(blocks: list[Block]) -> str:
    """The document as Markdown. Every text is escaped (`_md_inline`): names, sources and notes from user files
    become literal text, never live HTML, links, images or headings; only the blocks' own `code` and **bold**
    stay markup."""
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + _md_inline(b.text))
        elif b.kind == "p":
            out.append(_md_inline(b.text))
        elif b.kind == "list":
            out.append("\n".join(f"- {_md_inline(item)}" for item in b.items))
        elif b.kind == "table":
            header, *rows = b.items
            lines = ["| " + " | ".join(_md_cell(c) for c in header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines))
        elif b.kind == "image":
            out.append(f"![{_md_escape(b.items[1])}]({b.items[0]})")  # a chart file of CHART_FILES
    return "\n\n".join(out) + "\n"


_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
_MD_MARKUP = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*")
"""The markup blocks may use, as _inline_html reads it: `code` and **bold**."""
_MD_UNSAFE_IN_CODE = re.compile(r"[<>&\[\]\\|]")
"""Characters that a code span would show but a careless Markdown reader (or a table row) might not: such a span
becomes escaped text."""
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~])")
_MD_EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
"""An underscore that could open or close emphasis; one inside a word (nv_h100_wp) cannot, and stays bare."""


def _md_escape(text: str, start: bool = True) -> str:
    """Literal text in Markdown: one line; HTML's <, > and & as entities; a backslash before every character that
    could start emphasis, code, a link or image (`[`, `]`, and a `(` right after `]`) or a table cell; with `start`
    (the text opens a block) also before a heading or list marker at its beginning (a line break is a space, so
    nothing else starts a line)."""
    s = _LINE_BREAKS.sub(" ", str(text))
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_EDGE_UNDERSCORE.sub(r"\\_", _MD_SPECIAL.sub(r"\\\1", s))
    s = s.replace("\\](", "\\]\\(")
    if start:
        s = re.sub(r"^(\s*)(#|[-+=](?=\s|$))", r"\1\\\2", s)
        s = re.sub(r"^(\s*\d+)([.)])(?=\s|$)", r"\1\\\2", s)
    return s


def _md_inline(text: str, start: bool = True) -> str:
    """A block's text as Markdown: its `code` spans and **bold** kept, everything else escaped (_md_escape).
    `start`: the text opens a block (a paragraph, a list item), where a list marker would be live."""
    text = _LINE_BREAKS.sub(" ", str(text)).strip()
    out, pos = [], 0
    for m in _MD_MARKUP.finditer(text):
        out.append(_md_escape(text[pos : m.start()], start=start and pos == 0))
        code, bold = m.group(1), m.group(2)
        if code is not None:
            out.append(f"`{code}`" if not _MD_UNSAFE_IN_CODE.search(code) else _md_escape(code, start=start and m.start() == 0))
        else:
            out.append(f"**{_md_escape(bold, start=False)}**")
        pos = m.end()
    out.append(_md_escape(text[pos:], start=start and pos == 0))
    return "".join(out)


def _md_cell(text: str) -> str:
    """A table cell: _md_inline's text, in which every | is escaped already (code spans with one are text)."""
    return _md_inline(text, start=False)


def _inline_html(text: str) -> str:
    import html
    import re

    s = html.escape(str(text))
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)


HTML_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 980px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 0.2em; }
h1 { border-bottom: 2px solid #2f6db5; padding-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.1em; margin-top: 1.6em; }
@media print {
  body { max-width: none; margin: 0; font-size: 10pt; color: #000; }
  h1, h2, h3 { break-after: avoid; page-break-after: avoid; }
  table, figure, img, tr { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  p, li { orphans: 3; widows: 3; }
  code { background: none; }
}
"""


def to_html(blocks: list[Block], images: dict[str, bytes]) -> str:
    """One self-contained HTML file: the PNGs are embedded as base64 data URIs, so it can be forwarded alone."""
    import base64
    import html

    title = next((b.text for b in blocks if b.kind == "h1"), "costsim report")
    body: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            body.append(f"<{b.kind}>{_inline_html(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline_html(b.text)}</p>")
        elif b.kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table":
            header, *rows = b.items
            head = "<tr>" + "".join(f"<th>{_inline_html(c)}</th>" for c in header) + "</tr>"
            cells = ["<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in r) + "</tr>" for r in rows]
            body.append("<table>" + head + "".join(cells) + "</table>")
        elif b.kind == "image":
            name, alt = b.items
            data = base64.b64encode(images[name]).decode("ascii")
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" data-file="{html.escape(name)}">'
                f"<figcaption>{html.escape(alt)}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------- the report


CHART_FILES = {
    "step_time": "step_time_breakdown.png",
    "cost": "cost_breakdown.png",
    "tornado": "sensitivity_tornado.png",
    "distribution": "cost_distribution.png",
    "scaling": "scaling_curve.png",
}
DOCUMENT_FILES = ("report.md", "report.html")


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _summary(d: dict, u: dict, model_label: str, hw) -> list[Block]:
    rows = [
        (OUTPUT_LABELS[k], _fmt(k, u["nominal"][k]), _fmt(k, u[k]["p10"]), _fmt(k, u[k]["p50"]), _fmt(k, u[k]["p90"]))
        for k in OUTPUT_LABELS
    ]
    return [
        h2("Summary"),
        para(
            f"Training **{model_label}** on {format_count(d['tokens'])} tokens with {d['num_gpus']:,} {hw.display_name} "
            f"GPUs takes an estimated **{d['wall_clock_days']:.1f} days**, **{format_count(d['gpu_hours'])} GPU-hours** "
            f"and **{usd(d['cost_usd'])}** at {usd(d['usd_per_gpu_hour'])} per GPU-hour ({d['price_source']})."
        ),
        *_two_numbers(d),
        para(
            f"With the uncertain inputs drawn from their documented ranges ({u['draws']:,} draws), the cost lies between "
            f"{usd(u['cost_usd']['p10'])} (P10) and {usd(u['cost_usd']['p90'])} (P90). This band covers the inputs' "
            "uncertainty and, for the expected run, the spread of what published whole runs realized; the README's "
            "validation section shows how the model compares with published runs."
        ),
        table(("", "estimate", "P10", "P50", "P90"), rows),
    ]


def _two_numbers(d: dict) -> list[Block]:
    """What the figures above stand for (the expected run) and what the run can cost (the achievable run)."""
    a = d.get("achievable")
    if not a:
        return []
    realization = d.get("realization")
    return [
        para(
            "These figures are the **expected** run: what runs like it realized, at the layout practice uses on the "
            f"{d['stack']} software stack"
            + (f", its step time times {realization:.2f} (fitted to published whole runs)" if realization else "")
            + ". The **achievable** run, the best layout that stack offers as costsim models it"
            + ("" if a["layout"].get("tp_overlap") else f",{NO_TP_OVERLAP}")
            + ", would take "
            f"**{format_count(a['gpu_hours'])} GPU-hours**, {a['wall_clock_days']:.1f} days and "
            f"**{usd(a['cost_usd'])}** ({layout_text(a['layout'])}, MFU {_pct(a['mfu'])})."
        ),
        table(
            ("", "GPU-hours", "days", "cost", "MFU"),
            [
                (name, format_count(r["gpu_hours"]), f"{r['wall_clock_days']:.1f}", usd(r["cost_usd"]), _pct(r["mfu"]))
                for name, r in (("expected", d), ("achievable", a))
            ],
        ),
    ]


def _run_table(d: dict, model_label: str, hw) -> list[Block]:
    mem = d["memory_breakdown_gib"]
    layout = layout_text(d["layout"]) + (" (chosen by search)" if d["layout_chosen_by_search"] else " (given)")
    rows = [
        (
            "model",
            f"{model_label}: {format_count(d['params_total'])} parameters, {format_count(d['params_activated'])} activated",
        ),
        (
            "cluster",
            f"{d['num_gpus']:,} x {hw.display_name}, {d['precision']} GEMMs"
            + (f" ({d['fp8_recipe']} scaling)" if d["precision"] == "fp8" and d.get("fp8_recipe") else ""),
        ),
        (
            "tokens",
            f"{format_count(d['tokens'])}, sequence length {d['seq_len']:,}, "
            f"batch {format_count(d['global_batch_tokens'])} tokens",
        ),
        ("optimizer steps", f"{d['steps']:,.0f} of {d['step_time_s']:.3f} s ({d['micro_batches']} micro-batches each)"),
        ("parallel layout", layout),
        (
            "FLOPs per token",
            f"{d['flops_per_token'] / GIGA:.1f} GFLOP model, {d['hardware_flops_per_token'] / GIGA:.1f} GFLOP hardware "
            f"(6N: {d['flops_6nd_per_token'] / GIGA:.1f})",
        ),
        (
            "throughput",
            f"{d['tokens_per_s_per_gpu']:,.0f} tokens/s per GPU, {d['model_tflop_per_s_per_gpu']:.0f} model TFLOP/s per GPU",
        ),
        (
            "MFU / HFU",
            f"{_pct(d['mfu'])} / {_pct(d['hfu'])} of the {d['mfu_basis']}"
            + (f" (MFU {_pct(d['mfu_bf16_peak'])} of the dense BF16 peak)" if d["precision"] == "fp8" else ""),
        ),
        ("memory per GPU", f"{mem['total']:.1f} of {d['gpu_memory_gib']:.0f} GiB"),
        (
            "goodput",
            f"{_pct(d['goodput']['ettr'])} of wall-clock time trains (job MTBF {d['goodput']['job_mtbf_hours']:.1f} h, "
            f"{d['goodput']['expected_failures']:.0f} expected failures)",
        ),
        ("ideal (no failures)", f"{format_count(d['ideal_gpu_hours'])} GPU-hours, {d['ideal_wall_clock_days']:.1f} days"),
    ]
    return [h2("The run"), table(("", ""), rows)]


def _step_section(d: dict) -> list[Block]:
    total = d["step_time_s"]
    rows = [
        (k.replace("_", " "), f"{v:.3f}", _pct(v / total))
        for k, v in sorted(d["breakdown"].items(), key=lambda kv: -kv[1])
        if v > 0
    ]
    return [
        h2("Where the time goes"),
        para("Seconds per optimizer step on the slowest pipeline rank, by component (exposed communication only)."),
        image(CHART_FILES["step_time"], "Step-time breakdown"),
        table(("component", "seconds per step", "share"), rows + [("total", f"{total:.3f}", "100%")]),
        *([para("Worth a look:"), bullets(d["notes"])] if d.get("notes") else []),
    ]


def _cost_section(costs: dict[str, float]) -> list[Block]:
    total = sum(costs.values())
    rows = [(k, usd(v), _pct(v / total)) for k, v in costs.items()]
    return [
        h2("Where the money goes"),
        para(
            "The ideal cost (no failures) split by each component's share of the step time, plus the time lost to "
            "failures, restarts and checkpoints (goodput model)."
        ),
        image(CHART_FILES["cost"], "Cost breakdown"),
        table(("category", "USD", "share"), rows + [("total", usd(total), "100%")]),
    ]


def _cost_bases_section(block: dict, gpu_hours: float) -> list[Block]:
    rows = [("rental (used above)", usd(block["rental_cost_usd"] / gpu_hours), usd(block["rental_cost_usd"]))]
    if block["tco_cost_usd"] is not None:
        tco = block["tco_cost_usd"]
        rows.append(("TCO: owning the cluster", usd(tco / gpu_hours), usd(tco)))
    inputs = block["inputs"]
    grid = inputs["grid_kg_co2_per_kwh"]
    return [
        h2("Cost bases, energy and CO2"),
        para(
            "Rental prices GPU-hours at a quoted rate. TCO amortizes the GPU, the rest of the server and the network "
            "over the hardware's lifetime and adds the energy (after Epoch AI's method; `costsim estimate --pricing tco` "
            "shows each component and takes other inputs)."
            + ("" if block["tco_cost_usd"] is not None else " This GPU has no public purchase price, so no TCO is shown.")
        ),
        table(("basis", "USD per GPU-hour", "USD"), rows),
        para(
            f"Energy: {block['energy_mwh']:,.0f} MWh (TDP x server overhead x load x PUE {inputs['pue']['value']:g}); "
            f"CO2: {block['co2_t']:,.0f} t at {grid['value']:g} kg/kWh ({grid['source']})."
        ),
    ]


def _uncertainty_section(u: dict) -> list[Block]:
    s = u["surrogate"]
    err = max(s["max_abs_error"].values(), default=float("nan"))
    tornado = [
        (
            b["label"],
            f"{_fmt_input(b['input_p10'])} to {_fmt_input(b['input_p90'])}",
            usd(b["at_input_p10"]["cost_usd"]),
            usd(b["at_input_p90"]["cost_usd"]),
        )
        for b in u["tornado"]
    ]
    inputs = [
        (
            f"{i['label']} (`{i['name']}`)",
            f"{_fmt_input(i['nominal'])} {i['unit']}",
            i["distribution"],
            i["source"] + ("" if i["moves_answer"] else " (does not move this run)"),
        )
        for i in u["inputs"]
    ]
    return [
        h2("Uncertainty"),
        para(
            f"{u['draws']:,} joint draws of the uncertain inputs (seed {u['seed']}). P10/P50/P90 of GPU-hours, days and "
            "dollars are in the summary. The tornado shows the cost with one input at its P10 and at its P90 and all "
            "others at their nominal values, evaluated with the full model."
        ),
        image(CHART_FILES["distribution"], "Distribution of the drawn cost"),
        image(CHART_FILES["tornado"], "Sensitivity tornado: what moves the cost most"),
        table(("input", "P10 to P90", "cost at P10", "cost at P90"), tornado),
        h3("Distributions and their sources"),
        table(("input", "nominal", "distribution", "source or reason"), inputs),
        para(
            f"Method: the draws go through a surrogate, not the full model. It is built from {s['evaluations']} full-model "
            f"evaluations ({s['method']}). Against {s['checks']} joint draws evaluated with the full model, its error "
            f"is {max(s['rms_error'].values(), default=float('nan')):.2%} rms and {err:.2%} at most."
        ),
        bullets(u["notes"]),
    ]


def _scaling_section(points: list[dict], skipped: list[str], d: dict) -> list[Block]:
    as_if = any(n.startswith(MEMORY_MISS) for n in d.get("notes") or [])
    here = " (this estimate, as if it fitted)" if as_if else " (this estimate)"
    rows = [
        (
            f"{p['num_gpus']:,}" + (here if p["num_gpus"] == d["num_gpus"] else ""),
            layout_text(p["layout"]),
            f"{p['wall_clock_days']:.1f}",
            format_count(p["gpu_hours"]),
            usd(p["cost_usd"]),
            _pct(p["mfu"]),
        )
        for p in points
    ]
    blocks = [
        h2("Scaling with cluster size"),
        para(
            "The same job (tokens, sequence length, global batch, precision) on other GPU counts, each at the layout "
            "the expected run would use there (the fastest of the stack's practice), realized as above, keeping the "
            "layout flags that were given. More GPUs finish sooner; "
            "GPU-hours usually grow because the same batch is split more ways."
        ),
        image(CHART_FILES["scaling"], "Scaling curve: days and GPU-hours against the GPU count"),
        table(("GPUs", "layout", "days", "GPU-hours", "cost", "MFU"), rows),
    ]
    if as_if:
        blocks.append(
            para(
                "This estimate's own size is costed as if it fitted: the run trained at its layout, which costsim's "
                "memory model puts above the GPU's memory (the estimate's notes give the numbers). The other sizes "
                "are judged by the memory model, so a size the run also trained at may be left out below."
            )
        )
    if skipped:
        blocks.append(para("GPU counts left out:"))
        blocks.append(bullets(skipped))
    return blocks


def _sources_section(d: dict, hw, model) -> list[Block]:
    docs = assumption_sources()
    rows = [
        (f"`{k}`", f"{v:.4g}" if isinstance(v, int | float) else str(v), docs.get(k, "no source given"))
        for k, v in d["assumptions"].items()
    ]
    hw_rows = [(f"`{path}`", f"{value:g}", cite, note) for path, value, cite, note in hardware_sources(hw)]
    p = hw.price
    return [
        h2("Assumptions and their sources"),
        h3("Global assumptions (`simulator/inputs/assumptions.py`)"),
        para("The same for every model, GPU and run. Each names its source or says it is an assumption."),
        table(("assumption", "value", "source"), rows),
        h3(f"Hardware profile `{hw.name}`" + (f" (`hardware_profiles/{hw.name}.yaml`)" if _shipped(hw) else "")),
        para(f"Efficiencies used: {d['efficiency_source']}."),
        table(("quantity", "value", "source", "note"), hw_rows),
        h3("Model and price"),
        bullets(
            [
                f"Model spec `{d['model']}`: {model.source}.",
                f"Price used: {usd(d['usd_per_gpu_hour'])} per GPU-hour ({d['price_source']}).",
                f"Profile price: {usd(p.usd_per_gpu_hour)} per GPU-hour, {p.kind}, {p.date}, "
                f"{hw.sources.get(p.source, p.source)}.",
            ]
        ),
    ]


def _shipped(hw) -> bool:
    return is_file(repository_root() / "hardware_profiles" / f"{hw.name}.yaml")


def _conventions(d: dict) -> list[Block]:
    return [
        h2("Conventions and limits"),
        bullets(
            [
                f"FLOPs: {d['flops_convention']}.",
                f"MFU and HFU are measured against the {d['mfu_basis']}; peaks are dense, never the 2:4-sparse headline.",
                "GPU-hours and days include the time lost to failures, restarts and checkpoints (goodput); the ideal "
                "figures in the run table do not.",
                "Cost = GPU-hours x price per GPU-hour (rental accounting); it excludes experiments and ablations "
                "before the run, post-training, data, storage and staff.",
                "The uncertainty band holds the parallel layout fixed and covers the documented input ranges only.",
            ]
        ),
    ]


def _generated(command: str) -> Block:
    import datetime

    return para(f"Generated by costsim {costsim_version()} on {datetime.date.today().isoformat()} with `{command}`.")


def build_document(d: dict, u: dict, costs: dict, scaling: tuple[list[dict], list[str]], hw, model, command: str) -> list[Block]:
    model_label = model.display_name or model.name
    blocks = [
        h1(f"Training cost of {model_label} on {d['num_gpus']:,} x {hw.display_name}"),
        _generated(command),
        *_summary(d, u, model_label, hw),
        *_run_table(d, model_label, hw),
        *_step_section(d),
        *_cost_section(costs),
        *_cost_bases_section(d["cost"], d["gpu_hours"]),
        *_uncertainty_section(u),
        *_scaling_section(*scaling, d),
        *_accuracy_section(validation_document()),
        *_sources_section(d, hw, model),
        *_conventions(d),
    ]
    return blocks + _references_section(blocks, [hw])


def prepare_output(out_dir, force: bool, flag: str = "--output"):
    """The output directory `out_dir`, checked before the work and not created (write_documents creates it once the
    report is built, so a failed command leaves no folder behind): a name the file system takes, not a file, empty
    unless `force`, and where it is new, in a folder that exists (`flag`: the option that named it, for the
    messages)."""
    import os
    from pathlib import Path

    from simulator.errors import InputError
    from simulator.inputs.files import is_dir, refused_name

    if not str(out_dir).strip():
        raise InputError(f"{flag} is empty; give the directory for report.md, report.html and the charts, e.g. {flag} report")
    path = Path(out_dir)
    refused = refused_name(path)
    if refused is not None:
        raise InputError(f"cannot write {flag} {path}: {refused}; pick another directory")
    if os.path.exists(path) and not is_dir(path):
        raise InputError(f"{flag} {path} is a file, not a directory; give a directory path")
    if is_dir(path):
        try:
            used = any(path.iterdir())
        except OSError as e:
            raise InputError(f"cannot write {flag} {path}: {e.strerror}; pick a directory you can write to") from None
        if used and not force:
            raise InputError(f"{flag} {path} already exists and is not empty; pick a new directory or add --force to overwrite")
    elif not is_dir(path.parent):
        raise InputError(f"{flag} {path}: folder {path.parent} does not exist; create it or pick another path")
    return path


def write_report(
    est,
    model,
    hw,
    band,
    out_dir,
    force: bool = False,
    command: str = "costsim report",
    given: dict | None = None,
    achievable=None,
) -> dict[str, object]:
    """Write report.md, report.html and the PNG charts of an estimate and its uncertainty band into `out_dir`.

    `given`: the layout fields the user fixed (kept by the scaling curve's searches; None: the whole layout).
    `achievable`: the achievable run beside `est` (the expected run), named in the summary.
    Returns {"markdown": path, "html": path, "charts": {name: path}}.
    """

    path = prepare_output(out_dir, force)
    d, u = est.to_dict(), band.to_dict()
    if achievable is not None:
        d["achievable"] = achievable.headline()
    costs = cost_breakdown_usd(d)
    scaling = scaling_curve(model, hw, est, given)
    return _write_files(path, d, band, costs, scaling, lambda: build_document(d, u, costs, scaling, hw, model, command))


def _write_files(path, d: dict, band, costs: dict, scaling, blocks) -> dict[str, object]:
    """Draw the charts of one run `d` (Estimate.to_dict()) and its band, then write report.md and report.html from
    `blocks()` (called after the charts exist)."""
    from simulator.report import charts

    u = band.to_dict()
    files = {k: path / v for k, v in CHART_FILES.items()}

    def draw() -> dict:
        charts.step_time_chart(d["breakdown"], files["step_time"])
        charts.cost_chart(costs, files["cost"])
        charts.tornado_chart(u["tornado"], u["nominal"]["cost_usd"], files["tornado"])
        charts.distribution_chart(band.samples["cost_usd"], u["cost_usd"], u["nominal"]["cost_usd"], files["distribution"])
        charts.scaling_chart(scaling[0], d["num_gpus"], files["scaling"])
        return files

    return write_documents(path, draw, blocks)


def write_documents(path, draw, blocks) -> dict[str, object]:
    """Create the folder `path` (checked by prepare_output) if it is new, `draw()` the charts (returns {name: PNG
    path}), then write report.md and report.html (the charts embedded) from `blocks()`, called after the charts
    exist. A write that fails is one InputError naming the folder, and a folder this call created is removed."""
    import shutil

    from simulator.errors import InputError

    try:
        path.mkdir()  # its folder was checked to exist (prepare_output): no mkdir -p of a mistyped path
        created = True
    except FileExistsError:
        created = False
    except OSError as e:
        raise InputError(f"cannot create the report folder {path}: {e.strerror}; pick a writable directory") from None
    try:
        try:
            files = draw()
            built = blocks()
            (path / "report.md").write_text(to_markdown(built), encoding="utf-8")
            images = {f.name: f.read_bytes() for f in files.values()}
            (path / "report.html").write_text(to_html(built, images), encoding="utf-8")
        except OSError as e:
            raise InputError(f"cannot write the report into {path}: {e.strerror}; pick a writable directory") from None
    except BaseException:
        if created:  # the folder this call made holds only what it wrote: no half report is left behind
            shutil.rmtree(path, ignore_errors=True)
        raise
    return {"markdown": path / "report.md", "html": path / "report.html", "charts": files}


# --------------------------------------------------------------------------- the report of a plan


def _plan_summary(p: dict, u: dict) -> list[Block]:
    a = p["achievable"]
    stages = [
        (
            s["name"],
            format_count(s["tokens"]),
            f"{s['num_gpus']:,} x {s['gpu']}",
            layout_text(s["layout"]),
            format_count(s["gpu_hours"]),
            format_count(s["achievable"]["gpu_hours"]) if s.get("achievable") else "-",
            usd(s["cost_usd"]),
        )
        for s in p["stages"]
    ]
    return [
        h2("Summary"),
        para(
            f"The plan's {len(p['stages'])} stages, run one after another, take an estimated **{p['wall_clock_days']:.1f} "
            f"days**, **{format_count(p['gpu_hours'])} GPU-hours** and **{usd(p['cost_usd'])}** (the **expected** run: "
            f"what runs like these realized). The **achievable** run, each stage at the best layout its stack offers "
            f"(TP-communication overlap off unless the plan gives it; `costsim search` tries it too), "
            f"would take **{format_count(a['gpu_hours'])} GPU-hours** and **{usd(a['cost_usd'])}**. With the uncertain "
            f"inputs drawn ({u['draws']:,} draws) the expected cost lies between {usd(u['cost_usd']['p10'])} (P10) and "
            f"{usd(u['cost_usd']['p90'])} (P90)."
        ),
        table(
            ("", "GPU-hours", "days", "cost"),
            [
                ("expected", format_count(p["gpu_hours"]), f"{p['wall_clock_days']:.1f}", usd(p["cost_usd"])),
                ("achievable", format_count(a["gpu_hours"]), f"{a['wall_clock_days']:.1f}", usd(a["cost_usd"])),
            ],
        ),
        h3("Stages"),
        table(("stage", "tokens", "GPUs", "layout", "GPU-hours expected", "GPU-hours achievable", "cost"), stages),
    ]


def _claim_section(checks: list[dict]) -> list[Block]:
    """Each figure the plan quotes (simulator.analysis.claim.ClaimResult.to_dict() of it) against the plan's two numbers."""
    if not checks:
        return [h2("Published claim"), para("The plan quotes no published GPU-hours, so there is no claim to check.")]
    rows = []
    for c in checks:
        p = c["prediction"]
        rows.append(
            (
                c["scope"].split(": ", 1)[-1],
                format_count(c["claimed_gpu_hours"]),
                usd(c["claimed_usd"]) if c.get("claimed_usd") is not None else "-",
                format_count(p["achievable_gpu_hours"]),
                format_count(p["expected_gpu_hours"]),
                _pct(c["mfu_at_claimed_precision"]),
                c["verdict"].upper(),
            )
        )
    whole = next((c for c in checks if c["stages"] is None), checks[0])
    return [
        h2("Published claim"),
        para(
            "Each figure the plan's source publishes, placed against costsim's **achievable** and **expected** "
            "GPU-hours for the same stages, with the verdict of `costsim claim`: frontier between the two or below the "
            "achievable run by less than the step model's largest error, plausible at or above the expected run, "
            "optimistic or implausible below the achievable run by more than that error. MFU is against the dense "
            "peak of each stage's precision."
        ),
        table(("stages", "claimed GPU-hours", "claimed cost", "achievable", "expected", "MFU needed", "verdict"), rows),
        para(f"Whole plan: **{whole['verdict'].upper()}**: {whole['reason']}."),
    ]


def _comparison_section(c: dict | None) -> list[Block]:
    if c is None:
        return []
    rows = [(f["factor"].replace("_", " "), f"{f['value']:.3g}x") for f in c["factor_details"]]
    return [
        h2(f"Comparison with {c['b']['name']}"),
        para(
            f"GPU-hours of {c['a']['name']} / {c['b']['name']} = **{c['ratio']:.3g}x** (predicted), the product of the "
            "factors below (`costsim compare`)."
            + (f" The published figures give {c['reported_ratio']:.3g}x." if "reported_ratio" in c else "")
        ),
        table(("factor", "ratio"), rows),
    ]


def build_plan_document(
    p: dict,
    u: dict,
    checks: list[dict],
    comparison: dict | None,
    stage: dict,
    costs: dict,
    scaling,
    hws,
    model,
    command: str,
    stage_name: str,
) -> list[Block]:
    """The report of a plan: its totals and stages, the published claim, a comparison, the plan's uncertainty band;
    the time, money and scaling sections of its largest stage."""
    hw = next(h for h in hws if h.name == stage["gpu"])
    blocks = [
        h1(f"Training cost of {p['display_name'] or p['plan']}"),
        _generated(command),
        para(f"Plan `{p['plan']}`: {p['source']}."),
        *_plan_summary(p, u),
        *_claim_section(checks),
        *_comparison_section(comparison),
        para(f"The sections that follow, up to the uncertainty band, are those of the largest stage, **{stage_name}**."),
        *_run_table(stage, model.display_name or model.name, hw),
        *_step_section(stage),
        *_cost_section(costs),
        *_cost_bases_section(stage["cost"], stage["gpu_hours"]),
        *_uncertainty_section(u),
        *_scaling_section(*scaling, stage),
        *_accuracy_section(validation_document()),
        *_sources_section(stage, hw, model),
        *_conventions(stage),
    ]
    return blocks + _references_section(blocks, hws)


def write_plan_report(plan_result, band, out_dir, force: bool = False, command: str = "costsim report", compare_with=None):
    """report.md, report.html and the charts of a plan (simulator.analysis.plans.PlanResult) and its band.

    `compare_with`: another PlanResult, compared with this one (`costsim compare`), or None."""
    from simulator.analysis.claim import assess_plan_claim
    from simulator.inputs.catalog import load_model
    from simulator.inputs.plan_file import model_ref

    path = prepare_output(out_dir, force)
    p, u = plan_result.to_dict(), band.to_dict()
    checks = [
        assess_plan_claim(plan_result, r.gpu_hours, r.stages or None).to_dict() | {"claimed_usd": r.cost_usd}
        for r in plan_result.plan.reported
    ]
    comparison = None
    if compare_with is not None:
        from simulator.analysis.compare import compare_plans

        comparison = compare_plans(plan_result, compare_with)
    largest = max(plan_result.stages, key=lambda s: s.estimate.gpu_hours)
    est, model = largest.estimate, load_model(model_ref(plan_result.plan, plan_result.path))
    d = est.to_dict()
    if largest.achievable is not None:
        d["achievable"] = largest.achievable.headline()
    costs = cost_breakdown_usd(d)
    scaling = scaling_curve(model, largest.hw, est, largest.stage.layout())
    hws = list({s.hw.name: s.hw for s in plan_result.stages}.values())
    return _write_files(
        path, d, band, costs, scaling,
        lambda: build_plan_document(p, u, checks, comparison, d, costs, scaling, hws, model, command, largest.stage.name),
    )  # fmt: skip
