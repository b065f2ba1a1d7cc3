"""The llm-foundry study (studies/llmfoundry_all_rows.py, docs/model.md §14) reads the README's rows as
copied: all 191 BF16 rows become cases, and the 25 rows `validate public` checks are among them verbatim."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "llmfoundry_all_rows.py"


def _study():
    spec = importlib.util.spec_from_file_location("llmfoundry_all_rows", STUDY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_bf16_row_is_read_once_and_the_validated_rows_are_among_them():
    study = _study()
    rows = study.read_rows()
    assert len(rows) == 191
    assert len({r["id"] for r in rows}) == 191
    quotes = {r["quote"] for r in rows}
    validated = yaml.safe_load((ROOT / "validation" / "llmfoundry.yaml").read_text())["cases"]
    assert len(validated) == 25
    assert all(c["quote"] in quotes for c in validated)


def test_a_row_keeps_its_fields():
    study = _study()
    row = "|  70b | 2048 | 64 | h100_80gb | 42.57 | 56.76 |  4.212583E+14 | 8 | 4 | 2048 | 32 | 66523 | 1039 | 4194304 | amp_bf16 | DEFAULT | FULL_SHARD | True | False | 64862437376 |"  # noqa: E501
    case = study.parse_row("H100 80GB BF16", row)
    assert (case["model"], case["gpu"], case["num_gpus"], case["reported"]) == ("mpt-70b", "h100-sxm", 64, 1039.0)
    assert case["layout"]["micro_batch_size"] == 8 and case["layout"]["recompute"] == "full"
    assert case["tokens"] == 2048 * 2048
    assert case["stack"]["pytorch"] == "2.1.0" and case["stack"]["checkpoint_early_stop"] is True
    assert study.parse_row("H100 80GB FP8", row.replace("amp_bf16", "amp_fp8")) is None
