"""Output paths are checked before the work (issue 13, item 3): the folder exists and is writable, and an existing
file is kept unless --force is given. One clear error line, exit status 1, nothing written."""

from __future__ import annotations

import os

import pytest
from cli_support import clean_error, invoke

import cli.options

SWEEP = ["sweep", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T", "--tp", "1", "--pp", "1"]
COMPARE = ["compare", "llama-3.1-405b", "deepseek-v3"]
VALIDATE = ["validate", "public"]

# (command, flag, file name): every command that writes a file named on its command line
OUTPUTS = [
    (SWEEP, "--output", "rows.csv"),
    (SWEEP, "--plot", "sweep.png"),
    (COMPARE, "--plot", "waterfall.png"),
    (VALIDATE, "--plot", "scatter.png"),
]
IDS = ["sweep-output", "sweep-plot", "compare-plot", "validate-plot"]


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A folder the command may not write into (mode 0o500). Root passes the kernel's permission checks, so there
    the check is told what an ordinary user's kernel would answer."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:
        real = cli.options.writable_dir
        monkeypatch.setattr(cli.options, "writable_dir", lambda path: real(path) and path.resolve() != folder.resolve())
    yield folder
    folder.chmod(0o700)


@pytest.mark.parametrize("command, flag, name", OUTPUTS, ids=IDS)
def test_an_unwritable_folder_is_refused_before_the_work(read_only_dir, command, flag, name):
    path = read_only_dir / name
    out = clean_error(invoke(*command, flag, str(path)), flag, str(read_only_dir), "not writable", error="prefix")
    assert len(out.strip().splitlines()) == 1, out
    assert not path.exists()


@pytest.mark.parametrize("command, flag, name", OUTPUTS, ids=IDS)
def test_an_existing_file_is_kept_without_force(tmp_path, command, flag, name):
    path = tmp_path / name
    path.write_text("keep me")
    out = clean_error(invoke(*command, flag, str(path)), flag, str(path), "already exists", "--force", error="prefix")
    assert len(out.strip().splitlines()) == 1, out
    assert path.read_text() == "keep me"


@pytest.mark.parametrize("flag, name", [("--output", "rows.csv"), ("--plot", "sweep.png")])
def test_force_overwrites(tmp_path, flag, name):
    path = tmp_path / name
    path.write_text("old")
    r = invoke(*SWEEP, flag, str(path), "--force")
    assert r.exit_code == 0, r.output
    data = path.read_bytes()
    assert data != b"old"
    if name.endswith(".csv"):
        assert data.startswith(b"gpu,num_gpus,")
    else:
        assert data.startswith(b"\x89PNG")


def test_compare_plot_force_overwrites(tmp_path):
    path = tmp_path / "waterfall.png"
    path.write_text("old")
    r = invoke(*COMPARE, "--plot", str(path), "--force")
    assert r.exit_code == 0, r.output
    assert path.read_bytes().startswith(b"\x89PNG")


def test_report_refuses_an_unwritable_folder(read_only_dir):
    out = read_only_dir / "report"
    args = ["report", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T", "--output", str(out)]
    clean_error(invoke(*args), "--output", "not writable", error="prefix")
    assert not out.exists()
