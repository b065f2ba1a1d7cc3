"""`costsim fit`: it prints the fit before it writes, a failed write is one clear error, --output and --dry-run, a line
per GPU generation for the realization, and a refit that moves no value keeps the file's date (and bytes).

The fit itself takes a minute; these tests stand the shipped file's document in for its result (test_published.py,
test_realization_fit.py and the others check that the shipped file is what the fit gives)."""

from __future__ import annotations

import errno
import os

import pytest

from simulator.analysis import fit as fitting
from simulator.errors import InputError, SpecError
from simulator.inputs.assumptions import FITTED_PATH
from simulator.inputs.files import read_yaml
from tests.cli_support import clean_error, invoke


@pytest.fixture
def shipped() -> dict:
    return read_yaml(FITTED_PATH)


@pytest.fixture
def refit(monkeypatch, shipped):
    """`costsim fit` with the fit replaced by the shipped document dated today (what a refit of an unchanged model
    gives)."""
    result = shipped | {"fitted_on": "2099-01-01"}
    monkeypatch.setattr(fitting, "fit", lambda: dict(result))
    return result


def test_a_refit_that_moves_no_value_leaves_the_file_byte_for_byte(tmp_path, shipped):
    """Before, fitted_on was always today's date: every refit changed the file. Now the previous date stays where no
    fitted value moved; a moved value (a generation's realization too) takes the new date."""
    today = shipped | {"fitted_on": "2099-01-01"}
    assert fitting.changed_values(shipped, today) == []
    fitting.write(fitting.dated(today, shipped), tmp_path / "fit.yaml")
    assert (tmp_path / "fit.yaml").read_bytes() == FITTED_PATH.read_bytes()
    moved = today | {"gemm_sustain": 0.8}
    assert fitting.changed_values(shipped, moved) == [f"gemm_sustain {shipped['gemm_sustain']} -> 0.8"]
    assert fitting.dated(moved, shipped)["fitted_on"] == "2099-01-01"
    by_generation = shipped["realization_fit"]["by_generation"] | {"hopper": {"value": 1.9}}
    hopper = today | {"realization_fit": shipped["realization_fit"] | {"by_generation": by_generation}}
    assert fitting.dated(hopper, shipped)["fitted_on"] == "2099-01-01"
    assert fitting.dated(today, None)["fitted_on"] == "2099-01-01"  # nothing to compare with


def test_the_header_names_the_fit_module():
    assert FITTED_PATH.read_text().startswith(fitting.HEADER)
    assert "(simulator/analysis/fit.py)" in fitting.HEADER and os.path.exists(fitting.__file__)


def test_a_failed_write_is_one_error_naming_the_path_and_the_reason(tmp_path, shipped):
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(InputError, match=rf"cannot write the fitted constants to {folder} \(Is a directory\)"):
        fitting.write(shipped, folder)
    missing = tmp_path / "no" / "fit.yaml"
    with pytest.raises(InputError, match=r"\(No such file or directory\).*--output PATH"):
        fitting.write(shipped, missing)
    assert list(folder.iterdir()) == [] and not missing.parent.exists()  # no temporary file left behind


def test_a_fit_estimates_would_refuse_is_not_written(tmp_path, shipped):
    with pytest.raises(SpecError, match=r"^the fit: gemm_sustain: Input should be less than or equal to 1 .*not written to"):
        fitting.write(shipped | {"gemm_sustain": 1.5}, tmp_path / "fit.yaml")
    assert not (tmp_path / "fit.yaml").exists()


def test_fit_prints_every_constant_with_its_errors_then_writes_output(tmp_path, refit, shipped):
    out = tmp_path / "fit.yaml"
    r = invoke("fit", "--output", str(out))
    assert r.exit_code == 0, r.output
    realization = shipped["realization_fit"]
    for generation, f in realization["by_generation"].items():  # the realization's errors were never printed
        line = next(x for x in r.output.splitlines() if x.startswith(f"  {generation} = {f['value']:.4f}"))
        assert f"in-sample {f['median_abs_in_sample_error']:.1%}" in line
        assert f"leave-one-out {f['median_abs_leave_one_out_error']:.1%} (max {f['max_abs_leave_one_out_error']:.1%})" in line
    assert f"realization from {realization['constrained_by']} whole runs" in r.output
    for name in ("gemm_sustain = ", "expert_launch_host_s = ", "expert_quantize_host_s = ", "step_host_s = "):
        assert name in r.output
    assert r.output.rstrip().endswith(f"written to {out}") and "fitted values unchanged" not in r.output
    assert read_yaml(out) == refit  # no previous file there: today's date
    again = clean_error(invoke("fit", "--output", str(out)), "already exists", "--force", error="prefix")
    assert "gemm_sustain =" not in again  # refused before the minute of fitting
    assert invoke("fit", "--output", str(out), "--force").exit_code == 0


def test_a_failed_write_comes_after_the_printed_fit(tmp_path, refit, monkeypatch):
    real = fitting.tempfile.mkstemp

    def read_only(*args, **kwargs):  # the write's temporary file fails; the output check's probe before the fit does not
        if kwargs.get("prefix", "").startswith(".costsim-probe."):
            return real(*args, **kwargs)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(fitting.tempfile, "mkstemp", read_only)
    out = tmp_path / "fit.yaml"
    r = invoke("fit", "--output", str(out))
    text = clean_error(r, f"error: cannot write the fitted constants to {out} (Read-only file system)", "--dry-run")
    assert text.index("gemm_sustain = ") < text.index("error:")  # the minute of fitting is not lost
    assert "Traceback" not in text and not out.exists()


def test_dry_run_writes_nothing(tmp_path, refit, monkeypatch):
    before = FITTED_PATH.read_bytes()
    monkeypatch.chdir(tmp_path)
    r = invoke("fit", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "fitted values unchanged (against" in r.output and r.output.rstrip().endswith("not written (--dry-run)")
    assert FITTED_PATH.read_bytes() == before and list(tmp_path.iterdir()) == []
    clean_error(invoke("fit", "--dry-run", "--output", "x.yaml"), "--dry-run writes nothing", error="prefix")
    clean_error(invoke("fit", "--output", "x.json"), "--output x.json: give a path ending in .yaml", error="prefix")


def test_an_empty_output_names_the_fits_own_file(tmp_path, monkeypatch):
    """`costsim fit --output ""` suggested 'chart.yaml' (the wording of --plot)."""
    monkeypatch.chdir(tmp_path)
    out = clean_error(invoke("fit", "--output", ""), "--output is empty; give a file name such as fitted_constants.yaml",
                      error="prefix")  # fmt: skip
    assert "chart" not in out and "gemm_sustain =" not in out and list(tmp_path.iterdir()) == []
