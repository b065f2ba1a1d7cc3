"""A small, dependency-free mutation tester for costsim's physics modules.

For each module it parses the source with `ast`, generates one-line mutants

  - arithmetic operator swaps   + <-> -,  * <-> /,  // -> /   (same precedence, so a token swap is the AST mutant)
  - comparison swaps            < <-> <=,  > <-> >=
  - numeric constant changes    c -> c*2, c -> c+1, c -> 0     (skipped where the result equals c)
  - swapped arguments of a call with exactly two positional arguments (not max/min/np.maximum/np.minimum,
    where the swap is equivalent by construction)
  - max <-> min,  np.maximum <-> np.minimum

skipping docstrings and other strings, type annotations, `raise` statements and f-strings (error messages),
assert statements and logging/printing/warning calls. Each mutant is an edit of one token (or the two argument
texts of one call), so it can be shown as `file:line: original -> mutant`.

Every mutant runs the chosen tests in a copy of the repository made once per worker in a temporary directory
(no .venv, no .git): the mutated file is written there, the tests run with PYTHONPATH pointing at the copy
first and the copy as working directory, bytecode caching off (a same-size edit within one second would
otherwise reuse a stale .pyc). The real checkout is never written. Before the first mutant the tool checks that
each mutated module is imported from the copy, and that the unmutated tests pass there. A mutant first runs its
module's own closed-form test file (OWN_TESTS) and, only if that passes, the whole subset with `pytest -x`: the
verdict is the same as running the subset at once, at a fraction of the time. Killed: some test failed or the
mutant broke import/collection; survived: every test passed; timed out: the run exceeded the per-mutant limit
(counted as detected in the score).

    .venv/bin/python benchmarks/mutation.py                       # every physics module, every mutant
    .venv/bin/python benchmarks/mutation.py --modules simulator/run/goodput.py --max-mutants 50
    .venv/bin/python benchmarks/mutation.py --list                # count the mutants, run nothing
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PHYSICS_MODULES = (
    "simulator/model/comms.py",
    "simulator/model/memory.py",
    "simulator/model/pipeline.py",
    "simulator/model/step_time.py",
    "simulator/model/flops.py",
    "simulator/model/layer_work.py",  # per-layer work and token FLOPs, split out of flops.py; skipped where absent
    "simulator/model/efficiency.py",
    "simulator/run/goodput.py",
)

# New closed-form unit tests first (they kill most mutants within a second under -x), then fast existing ones.
FAST_TESTS = (
    "tests/test_goodput.py",
    "tests/test_comms.py",
    "tests/test_pipeline.py",
    "tests/test_memory.py",
    "tests/test_efficiency.py",
    "tests/test_flops.py",
    "tests/test_step_time.py",
    "tests/test_overlap.py",
    "tests/test_mtp.py",
    "tests/test_fp8_recipe.py",
    "tests/test_published.py",
    "tests/test_pipeline_ranks.py",
    "tests/test_layout.py",
)

# A module's own closed-form tests run first (one small file collects in about a second); only a mutant they miss
# runs the whole subset. The verdict is the same as running the subset at once: killed means some test failed.
OWN_TESTS = {
    "simulator/model/comms.py": ("tests/test_comms.py",),
    "simulator/model/memory.py": ("tests/test_memory.py",),
    "simulator/model/pipeline.py": ("tests/test_pipeline.py",),
    "simulator/model/step_time.py": ("tests/test_step_time.py",),
    "simulator/model/flops.py": ("tests/test_flops.py",),
    "simulator/model/layer_work.py": ("tests/test_flops.py", "tests/test_step_time.py"),
    "simulator/model/efficiency.py": ("tests/test_efficiency.py",),
    "simulator/run/goodput.py": ("tests/test_goodput.py",),
}

ARITH_SWAPS = {ast.Add: (ast.Sub,), ast.Sub: (ast.Add,), ast.Mult: (ast.Div,), ast.Div: (ast.Mult,), ast.FloorDiv: (ast.Div,)}
CMP_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
SYMBOL = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
}  # fmt: skip
NAME_SWAPS = {"max": "min", "min": "max"}
ATTR_SWAPS = {"maximum": "minimum", "minimum": "maximum"}
COMMUTATIVE_CALLS = {"max", "min", "maximum", "minimum"}
LOG_CALLS = {"print", "debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
LOG_OWNERS = {"log", "logger", "logging", "warnings", "LOG", "LOGGER"}


@dataclass(frozen=True)
class Edit:
    """Replace the text between (line, col) and (end_line, end_col) (1-based lines, character columns)."""

    line: int
    col: int
    end_line: int
    end_col: int
    text: str


@dataclass(frozen=True)
class Mutant:
    module: str
    line: int
    kind: str
    edits: tuple[Edit, ...]
    original: str
    """The source line(s) before the mutation, stripped."""
    mutated: str

    def label(self) -> str:
        return f"{self.module}:{self.line}: {self.original} -> {self.mutated}"


# --------------------------------------------------------------------------- generating mutants


class _Source:
    """Source text with conversions between ast's UTF-8 byte columns and character columns."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))

    def char_col(self, line: int, byte_col: int) -> int:
        return len(self.lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))

    def start(self, node: ast.AST) -> tuple[int, int]:
        return node.lineno, self.char_col(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def end(self, node: ast.AST) -> tuple[int, int]:
        return node.end_lineno, self.char_col(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def op_token(self, after: tuple[int, int], before: tuple[int, int], symbol: str) -> tokenize.TokenInfo | None:
        """The first OP token spelled `symbol` between two positions (an operator between its operands)."""
        for tok in self.tokens:
            if tok.type == tokenize.OP and tok.string == symbol and after <= tok.start and tok.end <= before:
                return tok
        return None

    def apply(self, edits: tuple[Edit, ...]) -> str:
        """The text with the edits applied (edits must not overlap)."""
        offsets = [0]
        for line in self.lines:
            offsets.append(offsets[-1] + len(line))
        text = self.text
        for e in sorted(edits, key=lambda e: (e.line, e.col), reverse=True):
            a = offsets[e.line - 1] + e.col
            b = offsets[e.end_line - 1] + e.end_col
            text = text[:a] + e.text + text[b:]
        return text


def _skipped_subtrees(tree: ast.AST) -> set[int]:
    """ids of nodes whose subtrees are never mutated: annotations, messages, assertions, logging."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif isinstance(node, ast.arg):
            mark(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(node.returns)
        elif isinstance(node, (ast.Raise, ast.Assert, ast.JoinedStr)):
            mark(node)
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "print":
                mark(node)
            elif isinstance(f, ast.Attribute) and f.attr in LOG_CALLS and isinstance(f.value, ast.Name):
                if f.value.id in LOG_OWNERS:
                    mark(node)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in ("Literal", "Annotated"):
            mark(node)
    return skip


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _literal(value) -> str:
    return repr(value) if not isinstance(value, float) or value == value else "float('nan')"


def _mutated_line(src: _Source, edits: tuple[Edit, ...]) -> tuple[str, str]:
    first = min(e.line for e in edits)
    last = max(e.end_line for e in edits)
    before = "".join(src.lines[first - 1 : last])
    after_text = src.apply(edits)
    after_lines = after_text.splitlines(keepends=True)
    # The edit keeps the line count (single-token edits) or changes only the argument block.
    delta = len(after_lines) - len(src.lines)
    after = "".join(after_lines[first - 1 : last + delta])

    def squash(s: str) -> str:
        return " ".join(s.split())

    return squash(before), squash(after)


def mutants_of(module: str, text: str) -> list[Mutant]:
    src = _Source(text)
    tree = ast.parse(text)
    skip = _skipped_subtrees(tree)
    out: list[Mutant] = []

    def add(node: ast.AST, kind: str, edits: tuple[Edit, ...]) -> None:
        original, mutated = _mutated_line(src, edits)
        if original != mutated:
            out.append(Mutant(module, node.lineno, kind, edits, original, mutated))  # type: ignore[attr-defined]

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in ARITH_SWAPS:
            left, right = (node.left, node.right) if isinstance(node, ast.BinOp) else (node.target, node.value)
            symbol = SYMBOL[type(node.op)] + ("=" if isinstance(node, ast.AugAssign) else "")
            tok = src.op_token(src.end(left), src.start(right), symbol)
            if tok is None:
                continue
            for new in ARITH_SWAPS[type(node.op)]:
                new_symbol = SYMBOL[new] + ("=" if isinstance(node, ast.AugAssign) else "")
                edit = Edit(tok.start[0], tok.start[1], tok.end[0], tok.end[1], new_symbol)
                add(node, "arithmetic", (edit,))
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                if type(op) not in CMP_SWAPS:
                    continue
                tok = src.op_token(src.end(operands[i]), src.start(operands[i + 1]), SYMBOL[type(op)])
                if tok is not None:
                    new = SYMBOL[CMP_SWAPS[type(op)]]
                    add(node, "comparison", (Edit(tok.start[0], tok.start[1], tok.end[0], tok.end[1], new),))
        elif isinstance(node, ast.Constant) and _number(node.value):
            c = node.value
            (l0, c0), (l1, c1) = src.start(node), src.end(node)
            seen = {c}
            for new in (c * 2, c + 1, type(c)(0)):
                if new in seen:
                    continue
                seen.add(new)
                add(node, "constant", (Edit(l0, c0, l1, c1, _literal(new)),))
        elif isinstance(node, ast.Name) and node.id in NAME_SWAPS and isinstance(node.ctx, ast.Load):
            (l0, c0), (l1, c1) = src.start(node), src.end(node)
            add(node, "max/min", (Edit(l0, c0, l1, c1, NAME_SWAPS[node.id]),))
        elif isinstance(node, ast.Attribute) and node.attr in ATTR_SWAPS and isinstance(node.value, ast.Name):
            if node.value.id in ("np", "numpy"):
                l1, c1 = src.end(node)
                add(node, "max/min", (Edit(l1, c1 - len(node.attr), l1, c1, ATTR_SWAPS[node.attr]),))
        if isinstance(node, ast.Call) and len(node.args) == 2 and not node.keywords:
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            a, b = node.args
            if name in COMMUTATIVE_CALLS or any(isinstance(x, ast.Starred) for x in (a, b)):
                continue
            ta = ast.get_source_segment(text, a)
            tb = ast.get_source_segment(text, b)
            if ta is None or tb is None or ta == tb:
                continue
            ea = Edit(*src.start(a), *src.end(a), tb)
            eb = Edit(*src.start(b), *src.end(b), ta)
            add(node, "swap args", (ea, eb))
    out.sort(key=lambda m: (m.line, m.kind, m.mutated))
    return out


# --------------------------------------------------------------------------- running mutants


def _copy_tree(dest: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if n in (".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache")}

    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["COSTSIM_DATA_DIR"] = str(copy)
    env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def _module_name(path: str) -> str:
    return path[:-3].replace("/", ".")


def _verify_copy(copy: Path, modules: list[str]) -> None:
    """Every module to mutate must be imported from the copy, not from the checkout (or its editable install)."""
    code = "import importlib, json, sys; print(json.dumps([importlib.import_module(m).__file__ for m in sys.argv[1:]]))"
    names = [_module_name(m) for m in modules]
    res = subprocess.run(
        [sys.executable, "-c", code, *names], cwd=copy, env=_env(copy), capture_output=True, text=True, timeout=120
    )
    if res.returncode != 0:
        raise SystemExit(f"cannot import the modules from the copy:\n{res.stderr}")
    for module, where in zip(modules, json.loads(res.stdout), strict=True):
        if Path(where).resolve() != (copy / module).resolve():
            raise SystemExit(f"{module} is imported from {where}, not from the copy {copy}; refusing to run")


def _pytest(copy: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=", *tests]
    if not any("hypothesis" in (copy / t).read_text(encoding="utf-8") for t in tests if (copy / t).is_file()):
        cmd[5:5] = ["-p", "no:hypothesispytest"]  # its plugin takes 0.7 s to import, more than most test files run
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, ""
    # 1: a test failed; 2: interrupted or collection error (a mutant that breaks the import is detected too).
    status = "survived" if res.returncode == 0 else "killed"
    return status, time.monotonic() - t0, res.stdout[-2000:]


@dataclass
class Outcome:
    mutant: Mutant
    status: str
    seconds: float


class Worker:
    def __init__(self, root: Path, index: int, tests: list[str], timeout: float, staged: bool = True):
        self.copy = root / f"w{index}"
        _copy_tree(self.copy)
        self.tests, self.timeout, self.staged = tests, timeout, staged

    def run(self, mutant: Mutant, originals: dict[str, str]) -> Outcome:
        target = self.copy / mutant.module
        src = _Source(originals[mutant.module])
        target.write_text(src.apply(mutant.edits), encoding="utf-8")
        try:
            first = [t for t in OWN_TESTS.get(mutant.module, ()) if t in self.tests] if self.staged else []
            seconds = 0.0
            if first:
                status, seconds, _ = _pytest(self.copy, first, self.timeout)
                if status != "survived":
                    return Outcome(mutant, status, seconds)
            status, more, _ = _pytest(self.copy, self.tests, self.timeout)
        finally:
            target.write_text(originals[mutant.module], encoding="utf-8")
        return Outcome(mutant, status, seconds + more)


def _report(outcomes: list[Outcome], generated: dict[str, int], modules: list[str]) -> dict:
    per: dict[str, dict[str, int]] = {}
    for m in modules:
        per[m] = {"generated": generated[m], "run": 0, "killed": 0, "survived": 0, "timeout": 0}
    for o in outcomes:
        row = per[o.mutant.module]
        row["run"] += 1
        row[o.status] += 1
    total = {k: sum(r[k] for r in per.values()) for k in ("generated", "run", "killed", "survived", "timeout")}
    return {"modules": per, "total": total}


def _score(row: dict[str, int]) -> str:
    detected = row["killed"] + row["timeout"]
    return f"{100.0 * detected / row['run']:.1f}%" if row["run"] else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", nargs="+", default=None, help="source files to mutate (repo-relative; default: physics)")
    p.add_argument("--tests", nargs="+", default=None, help="test files to run per mutant (default: a fast subset)")
    p.add_argument("--max-mutants", type=int, default=None, help="run a random sample of this many (fixed seed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="mutants run in parallel (one repository copy each)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per mutant (default: 3 x baseline + 10)")
    p.add_argument("--lines", default=None, help="only mutants on these lines, e.g. 40-60 (with one module)")
    p.add_argument("--list", action="store_true", help="list the mutants and their count; run nothing")
    p.add_argument("--json", type=Path, default=None, help="also write the outcomes to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no line per mutant")
    p.add_argument("--no-stages", action="store_true", help="run the whole subset for every mutant (no own-tests-first)")
    args = p.parse_args(argv)

    modules = [str(Path(m)) for m in args.modules] if args.modules else [m for m in PHYSICS_MODULES if (REPO / m).exists()]
    originals = {m: (REPO / m).read_text(encoding="utf-8") for m in modules}
    all_mutants: list[Mutant] = []
    generated = {}
    for m in modules:
        ms = mutants_of(m, originals[m])
        if args.lines:
            lo, _, hi = args.lines.partition("-")
            ms = [x for x in ms if int(lo) <= x.line <= int(hi or lo)]
        generated[m] = len(ms)
        all_mutants += ms
    if args.list:
        for x in all_mutants:
            print(x.label())
        for m in modules:
            print(f"{m}: {generated[m]} mutants")
        print(f"total: {len(all_mutants)} mutants")
        return 0
    chosen = all_mutants
    if args.max_mutants is not None and args.max_mutants < len(all_mutants):
        chosen = sorted(random.Random(args.seed).sample(all_mutants, args.max_mutants), key=lambda x: (x.module, x.line))
    tests = args.tests or [t for t in FAST_TESTS if (REPO / t).exists()]

    with tempfile.TemporaryDirectory(prefix="costsim-mutation-") as tmp:
        root = Path(tmp)
        first = Worker(root, 0, tests, timeout=600, staged=not args.no_stages)
        _verify_copy(first.copy, modules)
        status, base_s, out = _pytest(first.copy, tests, 600)
        if status != "survived":
            print(out, file=sys.stderr)
            raise SystemExit("the unmutated tests do not pass in the copy; fix them before mutating")
        timeout = args.timeout or 3 * base_s + 10
        print(
            f"{len(all_mutants)} mutants in {len(modules)} modules, running {len(chosen)}; "
            f"{len(tests)} test files, baseline {base_s:.1f}s, timeout {timeout:.0f}s per mutant, {args.jobs} job(s)",
            flush=True,
        )
        first.timeout = timeout
        workers = [first] + [Worker(root, i, tests, timeout, not args.no_stages) for i in range(1, max(1, args.jobs))]
        free = list(workers)
        outcomes: list[Outcome] = []
        t0 = time.monotonic()

        def job(m: Mutant) -> Outcome:
            w = free.pop()
            try:
                return w.run(m, originals)
            finally:
                free.append(w)

        with ThreadPoolExecutor(max_workers=len(workers)) as pool:
            for i, o in enumerate(pool.map(job, chosen), 1):
                outcomes.append(o)
                if not args.quiet:
                    mark = {"killed": "killed  ", "survived": "SURVIVED", "timeout": "timeout "}[o.status]
                    print(f"[{i}/{len(chosen)} {time.monotonic() - t0:6.0f}s] {mark} {o.mutant.label()}", flush=True)

    rep = _report(outcomes, generated, modules)
    print("\nper module: killed / run (score counts timeouts as detected); generated")
    for m, row in rep["modules"].items():
        print(
            f"  {m:36s} {row['killed']:4d} / {row['run']:4d} killed, {row['survived']:3d} survived, "
            f"{row['timeout']:2d} timed out  {_score(row):>6s}   ({row['generated']} generated)"
        )
    t = rep["total"]
    print(
        f"  {'overall':36s} {t['killed']:4d} / {t['run']:4d} killed, {t['survived']:3d} survived, "
        f"{t['timeout']:2d} timed out  {_score(t):>6s}   ({t['generated']} generated)"
    )
    survivors = [o for o in outcomes if o.status == "survived"]
    if survivors:
        print("\nsurvivors:")
        for o in survivors:
            print(f"  {o.mutant.label()}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "report": rep,
                    "outcomes": [
                        {**{k: v for k, v in asdict(o.mutant).items() if k != "edits"}, "status": o.status, "seconds": o.seconds}
                        for o in outcomes
                    ],
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
