"""`costsim report`: files, valid PNGs, self-contained HTML, assumptions with sources, clean errors.

The main fixture runs DeepSeek-V3 on 2,048 H800 with the published layout flags (V3 report §3.2), which
evaluates one layout; one test runs the issue's exact command line, which searches the layout (~5-10 s).
"""

from __future__ import annotations

import base64
import functools
import re

import matplotlib.image
import pytest
from cli_support import clean_error, invoke

from simulator import api
from simulator.inputs.assumptions import Assumptions
from simulator.inputs.catalog import load_hardware, load_model
from simulator.report.document import CHART_FILES, assumption_sources, cost_breakdown_usd, scaling_curve

assert_clean_error = functools.partial(clean_error, error="line", exit_code=1)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
V3 = ["report", "deepseek-v3", "--gpu", "h800", "--num-gpus", "2048", "--tokens", "14.8T"]
V3_PUBLISHED = ["--seq-len", "4096", "--global-batch-tokens", "62914560", "--precision", "fp8", "--tp", "1", "--pp", "16"]
V3_PUBLISHED += ["--ep", "64", "--schedule", "dualpipe", "--zero-stage", "1", "--micro-batch-size", "1"]
V3_PUBLISHED += ["--recompute", "selective", "--usd-per-gpu-hour", "2"]


@pytest.fixture(scope="module")
def v3_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("v3") / "report"
    r = invoke(*V3, *V3_PUBLISHED, "--output", str(out), "--draws", "5000")
    assert r.exit_code == 0, r.output
    return out


def _check_report_dir(out):
    md = (out / "report.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 4
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE), png
        img = matplotlib.image.imread(png)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400 and img.shape[2] in (3, 4), (png, img.shape)
        assert img.std() > 0.01  # not a blank canvas
    return md, html, pngs


def test_report_writes_markdown_html_and_valid_pngs(v3_report):
    md, html, pngs = _check_report_dir(v3_report)
    assert {p.name for p in pngs} == set(CHART_FILES.values())
    for name in CHART_FILES.values():
        assert f"]({name})" in md  # Markdown references each chart by relative path
    # The HTML embeds each PNG byte for byte, so it can be forwarded alone; nothing is loaded from elsewhere.
    embedded = dict(re.findall(r'src="data:image/png;base64,([^"]+)"[^>]*data-file="([^"]+)"', html))
    by_file = {name: data for data, name in embedded.items()}
    for png in pngs:
        assert base64.b64decode(by_file[png.name]) == png.read_bytes()
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert len(sources) == len(pngs) and all(src.startswith("data:image/png;base64,") for src in sources)
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")


def test_markdown_has_estimate_band_and_every_assumption_with_its_source(v3_report):
    md = (v3_report / "report.md").read_text(encoding="utf-8")
    for heading in ("## Summary", "## Where the time goes", "## Where the money goes", "## Uncertainty", "## Scaling"):
        assert heading in md
    assert "P10" in md and "P90" in md and "surrogate" in md
    docs = assumption_sources()
    # realization_by_generation is consumed into `realization` (the GPU generation's fitted value) when the
    # scenario is built, so the report lists the realization it used.
    for name in set(Assumptions.__dataclass_fields__) - {"realization_by_generation"}:
        assert f"`{name}`" in md
        assert docs[name] != "no source given" and docs[name][:60] in md, name
    # Hardware numbers with their citations, and the price with its source.
    assert "FlashMLA issue #75" in md and "dense_tflop_per_s.bf16" in md and "989.4" in md
    assert "--usd-per-gpu-hour" in md
    html = (v3_report / "report.html").read_text(encoding="utf-8")
    assert "<table>" in html and "Llama 3 §3.3.4" in html


def test_summary_gives_the_expected_and_the_achievable_run(v3_report):
    """Issue 11: the report's figures are the expected run; the achievable run is named beside it."""
    md = (v3_report / "report.md").read_text(encoding="utf-8")
    summary = md[md.index("## Summary") : md.index("## The run")]
    assert "**expected**" in summary and "**achievable**" in summary and "realized" in summary
    rows = [line for line in summary.splitlines() if line.startswith(("| expected", "| achievable"))]
    assert len(rows) == 2
    hours = [float(r.split("|")[2].strip().rstrip("MK")) for r in rows]
    assert hours[1] < hours[0]  # both in millions for V3


def test_cost_breakdown_adds_up_to_the_cost():
    est = api.estimate(
        "deepseek-v3", "h800", 2048, 14.8e12, seq_len=4096, global_batch_tokens=62914560, precision="fp8",
        **{"tp": 1, "pp": 16, "ep": 64, "schedule": "dualpipe", "zero_stage": 1, "micro_batch_size": 1, "recompute": "selective"},
        usd_per_gpu_hour=2.0,
    ).estimate  # fmt: skip
    d = est.to_dict()
    costs = cost_breakdown_usd(d)
    assert sum(costs.values()) == pytest.approx(d["cost_usd"], rel=1e-9)
    assert costs["failures, restarts, checkpoints"] == pytest.approx(d["cost_usd"] * (1 - d["goodput"]["ettr"]), rel=1e-9)
    assert costs["pipeline bubble"] == pytest.approx(
        d["ideal_gpu_hours"] * 2.0 * d["breakdown"]["pipeline_bubble"] / d["step_time_s"], rel=1e-9
    )
    points, _ = scaling_curve(load_model("deepseek-v3"), load_hardware("h800"), est, given={"tp": 1, "pp": 16, "ep": 64})
    mine = next(p for p in points if p["num_gpus"] == 2048)
    assert mine["gpu_hours"] == pytest.approx(est.gpu_hours, rel=1e-12)
    days = [p["wall_clock_days"] for p in points]
    assert len(points) >= 3 and days == sorted(days, reverse=True)  # more GPUs, fewer days


def test_issue_command_line_writes_the_report(tmp_path):
    """The exact done-when command: no layout flags, so the layout and the scaling points are searched."""
    out = tmp_path / "dir"
    r = invoke(*V3, "--output", str(out), "--draws", "2000")
    assert r.exit_code == 0, r.output
    md, _, _ = _check_report_dir(out)
    assert "(chosen by search)" in md


# --------------------------------------------------------------------------- bad input


def test_existing_directory_needs_force(tmp_path):
    out = tmp_path / "used"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert_clean_error(invoke(*V3, *V3_PUBLISHED, "--output", str(out), "--draws", "500"), "--force", str(out))
    assert not (out / "report.md").exists()
    r = invoke(*V3, *V3_PUBLISHED, "--output", str(out), "--draws", "500", "--force")
    assert r.exit_code == 0, r.output
    assert (out / "report.md").exists() and (out / "notes.txt").read_text() == "keep me"


def test_output_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert_clean_error(invoke(*V3, *V3_PUBLISHED, "--output", str(f)), "is a file")


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--gpu", "h900"], ["h900"]),
        (["--tokens", "lots"], ["--tokens", "lots"]),
        (["--draws", "0"], ["--draws 0"]),
        (["--tokens-spread", "5"], ["--tokens-spread 5"]),
        (["--tp", "3"], ["TP"]),
    ],
)
def test_bad_input_gives_a_clean_error_and_writes_nothing(tmp_path, args, needles):
    out = tmp_path / "r"
    base = ["report", "deepseek-v3", "--gpu", "h800", "--num-gpus", "2048", "--tokens", "14.8T", "--pp", "16", "--ep", "64"]
    flags = dict(zip(base[2::2], base[3::2], strict=True))
    for k, v in zip(args[::2], args[1::2], strict=True):
        flags[k] = v
    argv = ["report", "deepseek-v3", *[x for kv in flags.items() for x in kv], "--output", str(out)]
    assert_clean_error(invoke(*argv), *needles)
    assert not out.exists()


def test_cost_bases_show_rental_as_used_and_tco_from_the_pricing_model(v3_report):
    from simulator.run.cost import CostOptions, tco_rate

    est = api.estimate(
        "deepseek-v3", "h800", 2048, 14.8e12, seq_len=4096, global_batch_tokens=62914560, precision="fp8",
        **{"tp": 1, "pp": 16, "ep": 64, "schedule": "dualpipe", "zero_stage": 1, "micro_batch_size": 1, "recompute": "selective"},
        usd_per_gpu_hour=2.0,
    ).estimate  # fmt: skip
    d, hw = est.to_dict(), load_hardware("h800")
    block = d["cost"]
    assert block["rental_cost_usd"] == pytest.approx(d["cost_usd"], rel=1e-12)  # the price the estimate used ($2)
    assert block["tco_cost_usd"] == pytest.approx(d["gpu_hours"] * tco_rate(hw, CostOptions()).usd_per_gpu_hour, rel=1e-12)
    md = (v3_report / "report.md").read_text(encoding="utf-8")
    assert "## Cost bases, energy and CO2" in md and "TCO: owning the cluster" in md
    assert f"{block['energy_mwh']:,.0f} MWh" in md


def test_a_gpu_without_a_purchase_price_gets_rental_only(tmp_path):
    out = tmp_path / "l40s"
    r = invoke(
        "report", "llama-3.1-8b", "--gpu", "l40s", "--num-gpus", "64", "--tokens", "100B", "--output", str(out), "--draws", "500"
    )
    assert r.exit_code == 0, r.output
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "no public purchase price" in md and "TCO: owning the cluster" not in md
