"""Identical inputs give identical bytes (issue 13): no wall-clock timings in a command's output."""

from __future__ import annotations

import json

from cli_support import invoke

LLAMA_8B = ["estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T"]
FIXED = ["--tp", "1", "--pp", "1", "--zero-stage", "3", "--micro-batch-size", "1", "--schedule", "1f1b", "--recompute", "none"]


def test_identical_uncertainty_commands_give_identical_bytes():
    """Wall-clock timings are not in the JSON (issue 13): the same --uncertainty command twice, byte for byte;
    --verbose prints the timings on stderr and leaves stdout alone."""
    args = [*LLAMA_8B, *FIXED, "--uncertainty", "--draws", "2000", "--format", "json"]
    first, second = invoke(*args), invoke(*args)
    verbose = invoke(*args, "--verbose")
    for r in (first, second, verbose):
        assert r.exit_code == 0, r.output
    assert first.stdout == second.stdout == verbose.stdout
    band = json.loads(first.stdout)["uncertainty"]
    assert "draw_s" not in band and "model_evaluation_s" not in band
    assert "timing:" in verbose.stderr and "draws" in verbose.stderr and "timing:" not in first.stderr
    table = [invoke(*args[:-2]).stdout for _ in range(2)]
    assert table[0] == table[1] and "took" not in table[0]


def test_verbose_needs_uncertainty():
    """--verbose only prints the band's timings: without --uncertainty it is refused, as --draws and --seed are (a
    review found it silently accepted)."""
    r = invoke(*LLAMA_8B, *FIXED, "--verbose")
    assert r.exit_code != 0 and "add --uncertainty" in r.output and "Traceback" not in r.output
