"""The model is documented in the repository (docs/model.md), and every comment that cites a document points to one
the repository contains (issue 10)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "model.md"
SOURCES = [
    p
    for folder in ("simulator", "cli", "calibrate", "tests", "benchmarks", "hardware_profiles", "model_specs", "plans")
    + ("validation", "fleets", "workloads", "prices")
    for p in sorted((ROOT / folder).rglob("*"))
    if p.suffix in (".py", ".yaml", ".md") and p.name != "test_docs.py"
] + [ROOT / "README.md"]
# Documents that live outside the repository: never cite them.
OUTSIDE = re.compile(
    r"theory\.md|theory §|feasibility(\.md| study)|peers\.md|hardware\.md|serving\.md|style\.md|shared/reference"
)


def _sections() -> set[str]:
    return set(re.findall(r"^#+ (§[\d.]+)", DOC.read_text(encoding="utf-8"), flags=re.M))


def test_the_model_document_has_numbered_sections():
    sections = _sections()
    assert {"§2", "§3", "§4", "§5", "§6", "§7", "§8", "§9", "§10", "§11", "§12"} <= sections


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_citations_of_the_model_document_name_sections_it_has(path):
    cited = set(re.findall(r"docs/model\.md (§[\d.]*\d)", path.read_text(encoding="utf-8")))
    assert cited <= _sections(), f"{path}: cites {sorted(cited - _sections())}, which docs/model.md does not have"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_citation_of_a_document_outside_the_repository(path):
    hits = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if OUTSIDE.search(line)]
    assert hits == [], f"{path} cites a document the repository does not contain: {hits[:3]}"
