"""Units (issue 10): SI inside the code with the unit in the name; conversions only where data is read and where
results are shown, through the constants of simulator/units.py.

Two rules are enforced over the code (simulator/, cli/, calibrate/):
- no unit factor as a literal (1e9, 1e12, 3600, 86400, 2**30, ...) in arithmetic or a comparison outside
  simulator/units.py: every conversion names its constant (GIGA, SECONDS_PER_HOUR, GIB, ...);
- in the layers that compute (model/, run/, analysis/) no name carries a non-SI unit (tflops, _gib, _days, _us,
  ...). The accounting units of the trade are the exception, each named with its unit: GPU-hours and dollars per
  GPU-hour, and electricity in kWh as it is priced. The input schemas (which read files in datasheet units) and
  the report and command line (which show results) may name other units.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE = sorted(p for folder in ("simulator", "cli", "calibrate") for p in (ROOT / folder).rglob("*.py"))
UNITS_MODULE = ROOT / "simulator" / "units.py"

UNIT_FACTORS = {1e3, 1e6, 1e9, 1e12, 1e15, 1e-3, 1e-6, 1e-9, 3600.0, 86400.0, 8766.0, 1024.0, 60.0}
BINARY_EXPONENTS = {10, 20, 30, 40}

NON_SI_NAME = re.compile(
    r"tflop|gflop|pflop|_gib$|_mib$|_kib$|_tib$|_gb$|_mb$|_tb$|_ms$|_us$|_minutes$|_days$|_hours$|_mwh$|_gbit|_gb_|_tb_|^gib$",
    re.IGNORECASE,
)
ACCOUNTING = re.compile(r"gpu_hours$|per_gpu_hour$|_kwh$|per_kwh")
COMPUTING_LAYERS = ("simulator/model", "simulator/run", "simulator/analysis")


def _is_unit_factor(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return any(math.isclose(float(node.value), f, rel_tol=1e-12) for f in UNIT_FACTORS)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        base, exp = node.left, node.right
        return (
            isinstance(base, ast.Constant) and base.value == 2 and isinstance(exp, ast.Constant) and exp.value in BINARY_EXPONENTS
        )
    return False


def unit_literals(source: str) -> list[str]:
    """Where a unit factor appears as a literal operand of *, /, //, a power of two, or a comparison."""
    found = []
    for node in ast.walk(ast.parse(source)):
        operands: list[ast.AST] = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Div | ast.FloorDiv):
            operands = [node.left, node.right]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            operands = [node]
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        found += [f"line {node.lineno}: {ast.unparse(node)}" for o in operands if _is_unit_factor(o)]
    return found


def non_si_names(source: str) -> list[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.arg):
            names = [node.arg]
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names = [node.name]
        # Upper-case names are the conversion constants of simulator/units.py (GIB, SECONDS_PER_DAY): the tools, not
        # quantities.
        found |= {n for n in names if NON_SI_NAME.search(n) and not ACCOUNTING.search(n) and not n.isupper()}
    return sorted(found)


@pytest.mark.parametrize("path", [p for p in CODE if p != UNITS_MODULE], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_unit_literal_outside_the_units_module(path):
    assert unit_literals(path.read_text()) == []


@pytest.mark.parametrize(
    "path", [p for p in CODE if str(p.relative_to(ROOT)).startswith(COMPUTING_LAYERS)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_computing_layers_name_si_units(path):
    assert non_si_names(path.read_text()) == []


@pytest.mark.parametrize(
    "code",
    ["x = y / 1e9", "t = h * 3600", "b = 2**30 * g", "if s > 86400: pass", "r = f / 1e12", "m = x // 1024"],
)
def test_the_literal_check_catches_a_conversion(code):
    assert unit_literals(code)


@pytest.mark.parametrize("code", ["x = y / GIGA", "n = 2 * k", "w = 1e-30 + v", "limit = Field(le=1000)", "eps = 1e-6"])
def test_the_literal_check_lets_other_numbers_pass(code):
    assert unit_literals(code) == []


@pytest.mark.parametrize("name", ["tflops_per_gpu", "memory_gib", "implied_days", "latency_us", "step_ms", "tflop_per_s"])
def test_the_name_check_catches_non_si_names(name):
    assert non_si_names(f"{name} = 1") == [name]


@pytest.mark.parametrize("name", ["gpu_hours", "usd_per_gpu_hour", "usd_per_kwh", "step_time_s", "memory_bytes", "flop_per_s"])
def test_the_name_check_lets_si_and_accounting_names_pass(name):
    assert non_si_names(f"{name} = 1") == []


def test_format_rate_keeps_small_throughputs_visible():
    """A throughput below 1 token/s printed as 0 with ',.0f'; below 100 it keeps three significant figures."""
    from simulator.units import format_rate

    assert format_rate(12345.6) == "12,346"
    assert format_rate(100.0) == "100"
    assert format_rate(42.37) == "42.4"
    assert format_rate(0.000123456) == "0.000123"
    assert format_rate(0.0) == "0"


def test_counted_is_singular_only_for_exactly_one():
    from simulator.units import counted

    assert counted(1, "sequence") == "1 sequence"
    assert counted(2, "sequence") == "2 sequences"
    assert counted(0.0625, "sequence") == "0.0625 sequences"
    assert counted(1024, "step") == "1,024 steps"
    assert counted(3, "query", "queries") == "3 queries"


def test_the_estimate_table_counts_micro_batches_in_the_singular_for_one():
    """The estimate's step-time line: '(1 micro-batch)', '(4 micro-batches)'."""
    from cli_support import invoke

    one = invoke("estimate", "mpt-125m", "--gpu", "a100-80gb", "--num-gpus", "8", "--tokens", "1B",
                 "--global-batch-tokens", "131072", "--micro-batch-size", "8", "--stack", "fsdp-2023")  # fmt: skip
    four = invoke("estimate", "mpt-125m", "--gpu", "a100-80gb", "--num-gpus", "8", "--tokens", "1B",
                  "--global-batch-tokens", "524288", "--micro-batch-size", "8", "--stack", "fsdp-2023")  # fmt: skip
    assert one.exit_code == four.exit_code == 0, one.output + four.output
    assert "(1 micro-batch)" in one.output and "micro-batches" not in one.output.split("step time")[1].split("\n")[0]
    assert "(4 micro-batches)" in four.output


@pytest.mark.parametrize("text", ["14,8T", "1,5T", "2,788M", "1,0,0B", ",1T", "1,0000", "0,500"])
def test_a_comma_that_does_not_group_thousands_is_refused(text):
    """A review's --tokens 14,8T read as 148T (the comma dropped): commas group a plain number's thousands only."""
    from simulator.units import parse_count

    with pytest.raises(ValueError, match="commas group"):
        parse_count(text)


def test_the_comma_reason_reaches_the_command_line():
    """count_in_range kept only 'is not a number', whose example steered a 2,788K toward 2.788K (the second review)."""
    from cli_support import invoke

    out = invoke("estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "14,8T").output
    assert "commas group a plain number's thousands only" in out and "Traceback" not in out


def test_commas_grouping_thousands_still_read():
    from simulator.units import parse_count

    assert parse_count("62,914,560") == 62_914_560 and parse_count("1,024") == 1024 and parse_count("14.8T") == 14.8e12
