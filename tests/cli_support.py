"""Running the CLI in tests: one runner, a wide terminal, and the check that an error is clean."""

from __future__ import annotations

from typer.testing import CliRunner

import cli

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
