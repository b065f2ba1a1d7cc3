"""report.md escapes every string that comes from a user's file (issue 13, item 4): a model spec and a hardware
profile whose names, sources and notes hold HTML, links, images and a new line with a heading put none of them
live into the Markdown (report.html was escaped already, and stays so)."""

from __future__ import annotations

import re

import pytest
import yaml
from cli_support import ROOT, invoke

from simulator.report.document import CHART_FILES, bullets, h1, para, table, to_markdown

HOSTILE = (
    "Evil <script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) "
    "![pixel](http://remote.example/img.png) <http://remote.example> `<b>code</b>` **bold**\n# Injected heading\n"
    "- injected item | cell\n<!-- comment -->"
)


def _assert_inert(md: str) -> None:
    charts = [f"]({name})" for name in CHART_FILES.values()]
    md = "\n".join(line for line in md.splitlines() if not (line.startswith("![") and line.endswith(tuple(charts))))
    assert "<script" not in md.lower()
    assert "<img" not in md.lower() and "<b>" not in md and "<!--" not in md and "<http" not in md
    assert "](javascript:" not in md and "](http://remote" not in md
    assert not re.search(r"!\[[^\]]*\]\(", md), "a live image"
    assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(", md), "a live link"
    injected = [line for line in md.splitlines() if re.match(r"\s*#+\s*Injected", line)]
    assert not injected, injected  # the user's "# Injected heading" is not a heading line
    assert not any(line.lstrip().startswith("- injected") for line in md.splitlines())


def test_markdown_writer_escapes_every_kind_of_block():
    md = to_markdown(
        [h1(f"Cost of {HOSTILE}"), para(f"Training **{HOSTILE}** with `costsim report x.yaml`."),
         bullets([HOSTILE, f"Model spec `{HOSTILE}`: source."]), table(("name", "value"), [(HOSTILE, "1")])]
    )  # fmt: skip
    _assert_inert(md)
    assert "`costsim report x.yaml`" in md  # the document's own code spans and bold stay markup
    assert "**Evil &lt;script&gt;" in md
    table_rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert all(line.count(" | ") == 1 for line in table_rows), table_rows  # the user's | does not add a column


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    spec = yaml.safe_load((ROOT / "model_specs" / "llama-3.1-8b.yaml").read_text())
    spec["display_name"] = HOSTILE
    spec["source"] = HOSTILE
    spec["published_params"]["source"] = HOSTILE
    model = folder / "llama-3.1-8b.yaml"
    model.write_text(yaml.safe_dump(spec))
    profile = yaml.safe_load((ROOT / "hardware_profiles" / "h100-sxm.yaml").read_text())
    profile["display_name"] = HOSTILE
    profile["sources"] = {k: HOSTILE for k in profile["sources"]}
    gpu = folder / "h100-sxm.yaml"  # a profile's name must match its file name
    gpu.write_text(yaml.safe_dump(profile))
    out = folder / "report"
    args = ["report", str(model), "--gpu", str(gpu), "--num-gpus", "8", "--tokens", "100B", "--output", str(out)]
    args += ["--tp", "1", "--pp", "1", "--zero-stage", "1", "--micro-batch-size", "1", "--recompute", "none"]
    r = invoke(*args, "--draws", "1000")
    assert r.exit_code == 0, r.output
    return out


def test_hostile_names_and_sources_are_inert_in_report_md(hostile_report):
    md = (hostile_report / "report.md").read_text(encoding="utf-8")
    assert md.count("Evil &lt;script&gt;") >= 4  # the names and sources are there, as text
    _assert_inert(md)
    assert md.splitlines()[0].startswith("# Training cost of Evil")  # the title is the only level-1 heading
    assert sum(line.startswith("# ") for line in md.splitlines()) == 1


def test_hostile_names_stay_escaped_in_report_html(hostile_report):
    html = (hostile_report / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "<img src=x" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html
