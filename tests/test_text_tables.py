"""Text tables through rich (issue 13): one helper (simulator.report.tables.render) lays out every table as plain text,
with no ANSI codes whether or not the output is a terminal, the same characters whatever the terminal's width, and
the columns and numbers of the JSON."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from cli_support import ROOT, invoke

from simulator.report.tables import key_values, text_table

ESC = "\x1b"
COMMANDS = [
    ["list", "gpus"],
    ["list", "models"],
    ["list", "stacks"],
    ["estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T"],
    ["estimate", "--plan", "deepseek-v3"],
    ["compare", "deepseek-v3", "llama-3.1-405b"],
    ["claim", "deepseek-v3", "--gpu", "h800", "--gpu-hours", "2.788M", "--tokens", "14.8T", "--num-gpus", "2048"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_tables_do_not_depend_on_the_terminal(args):
    """Narrow or wide terminal, colour asked for or not: the same bytes, none of them an escape code."""
    wide = invoke(*args)
    narrow = invoke(*args, env={"COLUMNS": "40", "TERMINAL_WIDTH": "40", "FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert wide.exit_code == 0 and narrow.exit_code == 0, wide.output + narrow.output
    assert wide.stdout == narrow.stdout
    assert ESC not in wide.stdout
    assert all(line == line.rstrip() for line in wide.stdout.splitlines())


def test_no_escape_codes_on_a_real_terminal():
    """Under a pseudo-terminal (rich would colour there by default) the table stays plain text."""
    proc = subprocess.run(
        ["script", "-qc", ".venv/bin/costsim list models", "/dev/null"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "FORCE_COLOR": "1"},
    )  # fmt: skip
    if proc.returncode != 0 and "not found" in proc.stderr:
        pytest.skip("no `script` to make a pseudo-terminal")
    assert "deepseek-v3" in proc.stdout and ESC not in proc.stdout


def test_list_models_fits_80_columns_and_keeps_its_numbers():
    out = invoke("list", "models").stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    doc = json.loads(invoke("list", "models", "--format", "json").stdout)["models"]
    header, *rows = out.splitlines()
    assert header.split()[:5] == ["name", "total", "activated", "layers", "d_model"]
    assert len(rows) == len(doc)
    for line, m in zip(rows, doc, strict=True):
        cells = line.split()
        assert cells[0] == m["name"] and cells[3:5] == [str(m["n_layers"]), str(m["d_model"])]


def test_numeric_columns_are_right_aligned_under_their_header():
    out = invoke("list", "gpus").stdout
    header, *rows = out.splitlines()
    end = header.index("bf16") + len("bf16")
    doc = {g["id"]: g for g in json.loads(invoke("list", "gpus", "--format", "json").stdout)["gpus"]}
    for line in rows:
        gpu = line.split()[0]
        if gpu not in doc:
            continue  # the footnote
        peak = f"{doc[gpu]['dense_tflop_per_s_bf16']:.0f}"
        assert line[end - len(peak) : end] == peak, (line, peak)


def test_cells_are_text_not_markup():
    out = text_table(("a", "b"), [("[bold]x[/bold]", "[chosen by search]"), (":smile:", "1")])
    assert "[bold]x[/bold]" in out and "[chosen by search]" in out and ":smile:" in out


def test_alignment_gap_indent_and_wrapping():
    out = text_table(("name", "n"), [("alpha", 1), ("b", 22)], align="lr", gap=3, indent=2)
    assert out.splitlines() == ["  name     n", "  alpha    1", "  b       22"]
    words = "one two three four five six seven eight nine ten"
    wrapped = text_table(("id", "text"), [("x", words)], max_widths={1: 12})
    lines = wrapped.splitlines()
    assert len(lines) > 2 and all(len(line) <= len("id ") + 12 for line in lines)
    assert " ".join(line[3:].strip() for line in lines[1:]) == words  # nothing lost, nothing cut


def test_key_values_align_values_two_spaces_after_the_longest_label():
    out = key_values([("model", "x"), ("memory per GPU", "58.6 GiB\n(of 80)")])
    assert out.splitlines() == ["model           x", "memory per GPU  58.6 GiB", "                (of 80)"]


def test_schema_row_gives_every_field_of_the_output_model_a_column():
    """A null sub-object still gives its fields' columns; an open dict takes its listed keys, else the document's;
    an unnamed leaf is kept at the end; an excluded field gives none."""
    from pydantic import BaseModel

    from simulator.report.tables import schema_row

    class Inner(BaseModel):
        a: float
        b: int | None = None

    class Doc(BaseModel):
        name: str
        inner: Inner | None = None
        parts: dict[str, float]
        extra: dict[str, float]
        notes: list[str]

    doc = {"name": "x", "inner": None, "parts": {"q": 1.0}, "extra": {"z": 2.0}, "notes": ["n"], "stray": 3}
    row = schema_row(doc, Doc, {"parts": ("p", "q")}, exclude=("notes",))
    assert list(row) == ["name", "inner.a", "inner.b", "parts.p", "parts.q", "extra.z", "stray"]
    assert row["inner.a"] is None and row["parts.p"] is None and row["parts.q"] == 1.0 and row["stray"] == 3
    full = schema_row(doc | {"inner": {"a": 1.5, "b": 2}}, Doc, {"parts": ("p", "q")}, exclude=("notes",))
    assert list(full) == list(row) and full["inner.a"] == 1.5
