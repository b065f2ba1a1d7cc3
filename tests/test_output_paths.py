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


LONG = "x" * 300
"""Over the file system's 255-character name limit: pathlib's exists() and is_dir() raise OSError (errno 36) on it."""
REPORT = ["report", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T"]
SERVE = ["serve", "llama-3.1-8b", "--gpu", "h100"]
FOLDERS = [(REPORT, "--output"), (SERVE, "--report")]


@pytest.mark.parametrize("command, flag, name", OUTPUTS, ids=IDS)
def test_a_file_name_too_long_is_refused_before_the_work(tmp_path, command, flag, name):
    """It gave an `OSError: [Errno 36] File name too long` traceback (check_output_file's raw is_dir())."""
    path = tmp_path / (LONG + name)
    out = clean_error(invoke(*command, flag, str(path)), f"cannot write {flag}", "file name too long",
                      f"a name of {len(path.name)} characters", error="prefix")  # fmt: skip
    assert len(out.strip().splitlines()) == 1, out


def test_a_calibration_file_name_too_long_is_refused_before_measuring(tmp_path):
    path = tmp_path / (LONG + ".json")
    out = clean_error(invoke("calibrate", "--device", "cpu", "--smoke", "--output", str(path)), "cannot write --output",
                      "file name too long", error="prefix")  # fmt: skip
    assert "calibrating" not in out


@pytest.mark.parametrize("command, flag", FOLDERS, ids=["report", "serve"])
def test_a_report_folder_name_too_long_is_refused(tmp_path, command, flag):
    out = clean_error(invoke(*command, flag, str(tmp_path / LONG)), f"cannot write {flag}", "file name too long",
                      "a name of 300 characters", error="prefix")  # fmt: skip
    assert len(out.strip().splitlines()) == 1, out


@pytest.mark.parametrize("command, flag", FOLDERS, ids=["report", "serve"])
def test_an_empty_report_folder_is_refused(tmp_path, monkeypatch, command, flag):
    """`--output ""` was the working directory (Path("") is ".")."""
    monkeypatch.chdir(tmp_path)
    clean_error(invoke(*command, flag, ""), f"{flag} is empty", error="prefix")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command, flag", FOLDERS, ids=["report", "serve"])
def test_a_report_folder_is_not_made_with_its_parents(tmp_path, command, flag):
    """The folder the report goes in must exist (README: output files are checked before the work); a mistyped
    parent was created with mkdir -p."""
    out = tmp_path / "missing" / "report"
    clean_error(invoke(*command, flag, str(out)), flag, f"folder {out.parent} does not exist", error="prefix")
    assert not out.parent.exists()


def test_a_failed_report_leaves_no_folder(tmp_path):
    """The folder is made once the report is built: a report refused after the check (a plan with RL stages has no
    Monte Carlo band) left an empty folder behind."""
    out = tmp_path / "newdir"
    clean_error(invoke("report", "--plan", "deepseek-r1", "--output", str(out), "--draws", "100"), "RL or generation stages")
    assert not out.exists()


def test_a_report_write_that_fails_removes_the_folder_it_made(tmp_path, monkeypatch):
    """A failure while the files are written removes the new folder with what was written into it; a folder that
    was there before is kept."""
    from simulator.errors import InputError
    from simulator.report.document import write_documents

    def draw():
        (out / "chart.png").write_bytes(b"png")
        raise OSError(28, "No space left on device")

    out = tmp_path / "new"
    with pytest.raises(InputError, match="No space left on device"):
        write_documents(out, draw, list)
    assert not out.exists()
    out = tmp_path / "kept"
    out.mkdir()
    with pytest.raises(InputError):
        write_documents(out, draw, list)
    assert out.is_dir()


def test_a_dangling_link_is_a_name_in_use_and_a_folder_is_probed(tmp_path, monkeypatch):
    """A review's `fit --output link.yaml`, a link to a file that did not exist, replaced the link without --force:
    a dangling link is a name in use (os.path.lexists). And os.access says yes to root anywhere (/proc): the folder
    check creates and removes a file there, so `fit --output /proc/x.yaml` is refused before the minute of fitting."""
    link = tmp_path / "fit.yaml"
    link.symlink_to(tmp_path / "not-there.yaml")
    clean_error(invoke("fit", "--output", str(link)), "already exists; add --force", error="prefix")

    def refused(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("tempfile.mkstemp", refused)
    assert cli.options.writable_dir(tmp_path) is False
    clean_error(invoke("fit", "--output", str(tmp_path / "new.yaml")), "is not writable", error="prefix")


def test_a_folder_where_files_cannot_be_removed_is_named(tmp_path, monkeypatch):
    """A review's append-only folder (chattr +a) let the probe file be created but not removed: a traceback, and the
    probe left behind. Now the folder is refused, naming the file to remove."""
    from simulator.inputs.files import cannot_create_in

    def refused(path):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("os.unlink", refused)
    why = cannot_create_in(tmp_path)
    assert why is not None and "cannot be removed (Operation not permitted; remove " in why and ".costsim-probe." in why
