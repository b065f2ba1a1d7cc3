"""simulator/data/fitted_constants.yaml is checked when it is read: a bad or missing file is one error naming the file,
the key, the value and the fix (`costsim fit`, or restore the shipped copy), never a traceback, a silently clamped
constant or a fallback to the physical defaults (a fuzzer found all of these)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from simulator.errors import SpecError
from simulator.inputs import assumptions
from simulator.inputs.assumptions import (
    BASE,
    DEFAULT,
    FITTED_PATH,
    FITTED_RANGES,
    fitted_document,
    fitted_values,
    read_fitted,
)
from simulator.inputs.data_files import refitting
from simulator.inputs.files import read_yaml
from simulator.inputs.fitted_file import hardware_generations, parse
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
    ("gemm_sustain:", "gemm_sustain: abc", ["gemm_sustain: Input should be a valid number (got 'abc')", "between 0.55 and 1"]),
    ("gemm_sustain:", "gemm_sustain: -1", ["gemm_sustain: Input should be greater than or equal to 0.55 (got -1)"]),
    ("gemm_sustain:", "gemm_sustain: 50", ["gemm_sustain: Input should be less than or equal to 1 (got 50)"]),
    ("gemm_sustain:", "gemm_sustain: 0", ["gemm_sustain: Input should be greater than or equal to 0.55 (got 0)"]),
    # a sustained share below the fit's own grid (0.55-1.00) was accepted down to any positive number
    ("gemm_sustain:", "gemm_sustain: 1.0e-9", ["gemm_sustain: Input should be greater than or equal to 0.55 (got 1e-09)"]),
    ("gemm_sustain:", "gemm_sustain: .nan", ["gemm_sustain", "nan"]),
    ("gemm_sustain:", "gemm_sustain: true", ["gemm_sustain: Input should be a valid number (got True)"]),
    ("gemm_sustain:", "", ["gemm_sustain: is required but missing"]),
    ("gemm_sustain:", "gemm_sustain: [0.7", ["not valid YAML", "line "]),
    ("realization:", "realization: 0.1", ["realization: Input should be greater than or equal to 0.5 (got 0.1)"]),
    ("step_host_s:", "step_host_s: 47", ["step_host_s: Input should be less than or equal to 1 (got 47)"]),  # ms as s
    ("expert_launch_host_s:", "expert_launch_host_s: -7.5e-05", ["expert_launch_host_s:", "(got -7.5e-05)", "0.001"]),
    ("expert_quantize_host_s:", "", ["expert_quantize_host_s: is required but missing"]),
    ("      value: 1.7936", "      value: -3", ["realization_fit.by_generation.hopper.value:", "(got -3)"]),
    ("  sigma: 0.2685", "  sigma: x", ["realization_fit.sigma: Input should be a valid number (got 'x')", "between 0 and 2"]),
    # the sigmas below were accepted and broke or silently changed the uncertainty band
    ("  sigma: 0.2685", "  sigma: 1.0e+6", ["realization_fit.sigma:", "(got 1000000.0)", "between 0 and 2"]),
    ("  sigma: 0.2685", "  sigma: -0.1", ["realization_fit.sigma:", "(got -0.1)"]),
    ("  constrained_by: 32", '  constrained_by: "x"', ["realization_fit.constrained_by: Input should be a valid integer"]),
    ("  constrained_by: 32", "  constrained_by: 0", ["realization_fit.constrained_by:", "(got 0)", "at least 1"]),
    ("  constrained_by: 32", "  constrained_by: 29", ["realization_fit: constrained_by is 29 but 32 cases are listed"]),
    ("  leave_one_out_error: -0.0425", "  leave_one_out_error: abc", ["cases.0.leave_one_out_error:", "(got 'abc')"]),
    ("  leave_one_out_error: -0.0425", "  leave_one_out_error: -1.5", ["cases.0.leave_one_out_error:", "above -1"]),
    ("  leave_one_out_error: -0.0425", "  leave_one_out_error: 1.0e+9", ["gemm_sustain's spread", "outside [0, 2]"]),
    ("  in_sample_error: -0.0404", "  in_sample_error: .inf", ["in_sample_error", "inf"]),
    ("    hopper:", "    hoppper:", ["realization_fit.by_generation: 'hoppper' is not", "(did you mean hopper?)"]),
    ("realization:", "realization: 1.5", ["realization_fit.value is 1.3571 but realization is 1.5"]),
    ("command:", "command: costsim fit\nrealisation: 1.3", ["realisation: Extra inputs are not permitted", "remove realisation"]),
    ("fitted_on:", "fitted_on: yesterday", ["fitted_on: is not a date written YYYY-MM-DD (got 'yesterday')"]),
]
"""(the start of the line replaced, its replacement, what the error says): the first 16 from 0858041, the others a
review found accepted."""


@pytest.mark.parametrize(("old", "new", "needles"), BAD, ids=[f"{n or 'deleted'}" for _, n, _ in BAD])
def test_a_bad_constant_is_one_error_naming_file_key_value_and_fix(tmp_path, old, new, needles):
    path = _copy_with(tmp_path, old, new)
    with pytest.raises(SpecError) as err:
        read_fitted(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for needle in needles + ["costsim fit", "restore the shipped copy"]:
        assert needle in message, (needle, message)


def test_the_realization_per_generation_is_required(tmp_path):
    """Without the by_generation block every GPU silently took the pooled realization: Hopper runs 1.34 instead of
    1.74; the block is required. Empty, as a fit over a validation set with too few runs per generation writes it, it
    is read, and every estimate says it pools (a review: the reader refused what costsim fit writes)."""
    from simulator.inputs.catalog import load_hardware
    from simulator.run.sanity import pooled_realization_note

    text = FITTED_PATH.read_text()
    start = text.index("  by_generation:\n")
    end = text.index("\n  median_abs_in_sample_error:", start) + 1
    path = tmp_path / "fitted_constants.yaml"
    path.write_text(text[:start] + text[end:])
    with pytest.raises(SpecError, match=r"costsim fit") as err:
        read_fitted(path)
    assert str(err.value).startswith(f"{path}: realization_fit.by_generation: is required but missing"), str(err.value)
    path.write_text(text[:start] + "  by_generation: {}\n" + text[end:])
    assert read_fitted(path).realization_by_generation == ()
    note = pooled_realization_note(load_hardware("h100-sxm"), {})
    assert note is not None and "no GPU generation has a realization fit of its own" in note


def test_the_generations_are_those_of_the_hardware_profiles():
    """by_generation may name only a generation some hardware profile has (what for_generation looks up)."""
    from simulator.inputs.catalog import load_hardware_file
    from simulator.inputs.data_files import hardware_dir

    profiles = {load_hardware_file(p).generation for p in hardware_dir().glob("*.yaml")} - {None}
    assert hardware_generations() >= profiles >= {"ampere", "hopper"}
    doc = read_yaml(FITTED_PATH)
    with pytest.raises(SpecError, match=r"'hopper' is not the generation of any hardware profile.*are ampere; "):
        parse(doc, "x.yaml", generations=frozenset({"ampere"}))


def test_the_uncertainty_band_reads_the_checked_file(tmp_path):
    """uncertainty.py parsed the file again on its own: a bad case error fell back to sigma 0.1, a bad constrained_by
    dropped the realization from the band. Now each spread comes from the one checked reader."""
    from simulator.analysis.uncertainty import gemm_sustain_sigma, host_time_sigma, realization_sigma

    doc = read_yaml(FITTED_PATH)
    logs = [math.log1p(c["leave_one_out_error"]) for c in doc["cases"]]
    assert gemm_sustain_sigma()[0] == pytest.approx(math.sqrt(sum(x * x for x in logs) / len(logs)))
    assert realization_sigma()[0] == doc["realization_fit"]["sigma"] == fitted_document().realization_fit.sigma
    assert host_time_sigma(key="step_host_fit")[0] == doc["step_host_fit"]["sigma"]
    bad = _copy_with(tmp_path, "  leave_one_out_error: -0.0425", "  leave_one_out_error: abc")
    for spread in (gemm_sustain_sigma, realization_sigma, host_time_sigma):
        with pytest.raises(SpecError, match="cases.0.leave_one_out_error"):
            spread(bad)
    with pytest.raises(SpecError, match="the fitted constants file is missing"):
        gemm_sustain_sigma(tmp_path / "missing.yaml")


def test_a_record_that_is_not_a_mapping_is_named():
    doc = read_yaml(FITTED_PATH)
    with pytest.raises(SpecError, match=r"^x\.yaml: realization_fit: Input should be a valid dictionary.*costsim fit"):
        fitted_values(doc | {"realization_fit": 3}, "x.yaml")
    with pytest.raises(SpecError, match=r"^x\.yaml: step_host_fit: is required but missing.*costsim fit"):
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
    with pytest.raises(SpecError, match="gemm_sustain: Input should be a valid number"):
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
    assert proc.stderr.startswith(f"error: {bad}: gemm_sustain: Input should be less than or equal to 1 (got 50)")
    assert "costsim fit" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    for args in (["--help"], ["fit", "--help"], ["schema", "estimate"]):
        ok = _costsim_with_fitted(bad, *args)
        assert ok.returncode == 0 and ok.stdout, (args, ok.stderr)


def test_the_band_of_a_file_with_a_huge_sigma_is_an_error_not_a_traceback(tmp_path):
    """realization_fit.sigma 1e6 ended `estimate ... --uncertainty` in an OverflowError traceback (uncertainty.py's
    quantile)."""
    bad = _copy_with(tmp_path, "  sigma: 0.2685", "  sigma: 1.0e+6")
    args = ["estimate", "llama-3-8b", "--gpu", "h100-sxm", "--num-gpus", "8", "--tokens", "1T", "--uncertainty"]
    proc = _costsim_with_fitted(bad, *args)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith(f"error: {bad}: realization_fit.sigma:") and "(got 1000000.0)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
