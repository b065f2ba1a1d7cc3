"""Running the CLI in tests: one runner, a wide terminal, and the check that an error is clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import cli

ROOT = Path(__file__).resolve().parents[1]

REQUIRED_GPU_IDS = [
    "h800",
    "h100-sxm",
    "h100-pcie",
    "h200",
    "h20",
    "a100-40gb",
    "a100-80gb",
    "a800",
    "v100",
    "b200",
    "gb200",
    "mi300x",
    "l40s",
]
"""The GPU ids the command line must know (issue 2)."""

RUNNER = CliRunner()
ENV = {"TERMINAL_WIDTH": "200", "COLUMNS": "200", "NO_COLOR": "1"}


def invoke(*args: str, env: dict | None = None):
    return RUNNER.invoke(cli.app, list(args), env={**ENV, **(env or {})})


def clean_error(result, *needles: str, error: str | None = None, exit_code: int | None = None) -> str:
    """Non-zero exit through SystemExit (not an escaped exception), no traceback, and every needle in the output.

    error="prefix": the output starts with "error:"; error="line": it contains "error:".
    exit_code: the exact exit status expected."""
    out = result.output
    assert result.exit_code != 0, out
    if exit_code is not None:
        assert result.exit_code == exit_code, out
    assert isinstance(result.exception, SystemExit), f"escaped exception {result.exception!r}\n{out}"
    assert "Traceback" not in out
    if error == "prefix":
        assert out.startswith("error:"), out
    elif error == "line":
        assert "error:" in out, out
    for needle in needles:
        assert needle in out, f"{needle!r} not in:\n{out}"
    return out


def costsim(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter (torchrun, real imports, real exit codes)."""
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def assert_clean_exit(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A subprocess that failed cleanly: exit 1, an 'error:' line, no traceback, every needle on stderr."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") or "\nerror: " in proc.stderr, proc.stderr
    for n in needles:
        assert n in proc.stderr, (n, proc.stderr)
