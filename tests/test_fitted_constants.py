"""simulator/data/fitted_constants.yaml is checked when it is read: a bad or missing file is one error naming the file,
the key, the value and the fix (`costsim fit`, or restore the shipped copy), never a traceback, a silently clamped
constant or a fallback to the physical defaults (a fuzzer found all of these)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from simulator.errors import SpecError
from simulator.inputs import assumptions
from simulator.inputs.assumptions import BASE, DEFAULT, FITTED_PATH, FITTED_RANGES, fitted_values, read_fitted
from simulator.inputs.data_files import refitting
from simulator.inputs.files import read_yaml
from tests.cli_support import ROOT


def test_the_shipped_file_is_what_estimates_use():
    a = read_fitted(FITTED_PATH)
    assert a == DEFAULT
    assert a.gemm_sustain != BASE.gemm_sustain and dict(a.realization_by_generation).keys() >= {"ampere", "hopper"}


def _copy_with(tmp_path, old: str, new: str):
    """The shipped file with the first line that starts with `old` replaced by `new` (a line), at tmp_path."""
    lines = FITTED_PATH.read_text().splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines) if line.startswith(old))
    lines[i] = new + "\n" if new else ""
    path = tmp_path / "fitted_constants.yaml"
    path.write_text("".join(lines))
    return path


BAD = [
    ("gemm_sustain:", "gemm_sustain: abc", ["gemm_sustain is 'abc', not a number in (0, 1]"]),
    ("gemm_sustain:", "gemm_sustain: -1", ["gemm_sustain is -1, outside (0, 1]"]),
    ("gemm_sustain:", "gemm_sustain: 50", ["gemm_sustain is 50, outside (0, 1]"]),
    ("gemm_sustain:", "gemm_sustain: 0", ["gemm_sustain is 0, outside (0, 1]"]),
    ("gemm_sustain:", "gemm_sustain: .nan", ["gemm_sustain", "nan"]),
    ("gemm_sustain:", "gemm_sustain: true", ["gemm_sustain is True, not a number"]),
    ("gemm_sustain:", "", ["gemm_sustain missing"]),
    ("gemm_sustain:", "gemm_sustain: [0.7", ["not valid YAML", "line "]),
    ("realization:", "realization: 0.1", ["realization is 0.1, outside [0.5, 10]"]),
    ("step_host_s:", "step_host_s: 47", ["step_host_s is 47, outside [0, 1]"]),  # the fitted 47 ms written in ms
    ("expert_launch_host_s:", "expert_launch_host_s: -7.5e-05", ["expert_launch_host_s is -7.5e-05, outside [0, 0.001]"]),
    ("expert_quantize_host_s:", "", ["expert_quantize_host_s missing"]),
    ("      value: 1.7398", "      value: -3", ["realization_fit.by_generation.hopper.value is -3, outside [0.5, 10]"]),
    ("  sigma: 0.2396", "  sigma: x", ["realization_fit.sigma is 'x', not a number in [0, inf)"]),
]


@pytest.mark.parametrize(("old", "new", "needles"), BAD, ids=[f"{n or 'deleted'}" for _, n, _ in BAD])
def test_a_bad_constant_is_one_error_naming_file_key_value_and_fix(tmp_path, old, new, needles):
    path = _copy_with(tmp_path, old, new)
    with pytest.raises(SpecError) as err:
        read_fitted(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for needle in needles + ["costsim fit", "restore the shipped copy"]:
        assert needle in message, (needle, message)


def test_a_record_that_is_not_a_mapping_is_named():
    doc = read_yaml(FITTED_PATH)
    with pytest.raises(SpecError, match=r"^x\.yaml: realization_fit is 3, not a mapping .*costsim fit"):
        fitted_values(doc | {"realization_fit": 3}, "x.yaml")
    with pytest.raises(SpecError, match=r"^x\.yaml: step_host_fit is missing .*costsim fit"):
        fitted_values({k: v for k, v in doc.items() if k != "step_host_fit"}, "x.yaml")


def test_a_missing_or_empty_file_is_an_error_not_the_physical_defaults(tmp_path):
    """Before, a missing file silently gave gemm_sustain 0.95 and realization 1 (estimates 20-40% cheaper)."""
    with pytest.raises(SpecError, match=r"fitted_constants\.yaml: the fitted constants file is missing.*costsim fit"):
        read_fitted(tmp_path / "fitted_constants.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(SpecError, match=r"empty\.yaml: the document is missing.*costsim fit"):
        read_fitted(tmp_path / "empty.yaml")


def test_every_range_holds_the_shipped_value_and_refuses_a_unit_slip():
    """The ranges are physical (docs in FITTED_RANGES): the shipped fit lies inside each; a value in the wrong unit
    (host times in us or ms written as seconds) or a share above 1 lies outside."""
    for key, rule in FITTED_RANGES.items():
        shipped = getattr(DEFAULT, key)
        assert rule.holds(shipped), (key, shipped)
        assert not rule.holds(shipped * 1000) and not rule.holds(-shipped) and not rule.holds(float("nan")), key


def test_costsim_fit_can_start_from_a_bad_file(monkeypatch, tmp_path):
    """`costsim fit` imports its modules under data_files.refitting(): the fit starts from BASE, so a bad file must not
    stop the command that regenerates it; outside it the same file is an error."""
    monkeypatch.setattr(assumptions, "FITTED_PATH", _copy_with(tmp_path, "gemm_sustain:", "gemm_sustain: abc"))
    with pytest.raises(SpecError, match="gemm_sustain is 'abc'"):
        assumptions._fitted()
    with refitting():
        assert assumptions._fitted() is BASE
    with pytest.raises(SpecError):
        assumptions._fitted()


def _costsim_with_fitted(path, *args: str) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter whose fitted constants file is `path` (patched before anything reads it)."""
    code = (
        "import sys; from pathlib import Path; import simulator.inputs.data_files as d; "
        "path = Path(sys.argv.pop(1)); d.fitted_constants_path = lambda: path; from cli.main import main; main()"
    )
    return subprocess.run([sys.executable, "-c", code, str(path), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_cli_reports_a_bad_file_cleanly_and_help_still_works(tmp_path):
    bad = _copy_with(tmp_path, "gemm_sustain:", "gemm_sustain: 50")
    proc = _costsim_with_fitted(bad, "estimate", "llama-3-8b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.startswith(f"error: {bad}: gemm_sustain is 50, outside (0, 1]") and "costsim fit" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    for args in (["--help"], ["fit", "--help"], ["schema", "estimate"]):
        ok = _costsim_with_fitted(bad, *args)
        assert ok.returncode == 0 and ok.stdout, (args, ok.stderr)
