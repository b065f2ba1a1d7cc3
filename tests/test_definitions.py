"""One definition each (issue 10): the vocabularies and layout fields (simulator/vocab.py) are the ones the schemas,
the Layout dataclass and the command line use; MFU is one formula (model.flops.flop_utilization) behind the
estimate, the search and the claim."""

from __future__ import annotations

import typing
from dataclasses import fields

import pytest

from cli import options, serving
from simulator import vocab
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import make_job
from simulator.inputs.plan_file import Stage
from simulator.inputs.specs import PublishedLayout
from simulator.model.flops import flop_utilization
from simulator.model.layer_work import token_flops
from simulator.model.layout import Layout
from simulator.run.estimate import estimate
from simulator.run.search import search


def _literal_values(annotation) -> set[str]:
    """The strings of a Literal, also inside Optional[...]."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return set(args)
    return set().union(*(_literal_values(a) for a in args)) if args else set()


def test_layout_fields_are_the_vocabulary():
    assert tuple(f.name for f in fields(Layout)) == vocab.LAYOUT_FIELDS


@pytest.mark.parametrize(
    "choice, values",
    [
        (options.PrecisionOpt, vocab.PRECISIONS),
        (options.ScheduleOpt, vocab.SCHEDULES),
        (options.RecomputeOpt, vocab.RECOMPUTE_MODES),
        (options.AttentionOpt, vocab.ATTENTION_KERNELS),
        (options.Fp8RecipeOpt, vocab.FP8_RECIPES),
        (serving.ServePrecision, vocab.SERVE_PRECISIONS),
        (serving.KvDtype, vocab.KV_DTYPES),
        (serving.KvAdmission, vocab.KV_ADMISSIONS),
    ],
)
def test_command_line_choices_are_the_vocabulary(choice, values):
    assert tuple(c.value for c in choice) == values


def test_the_cli_layout_flags_are_the_layout_fields():
    run = tuple(p.name for p in options.RUN_LAYOUT_FLAGS)
    search_flags = tuple(p.name for p in options.SEARCH_LAYOUT_FLAGS)
    assert run == vocab.LAYOUT_FIELDS
    assert set(search_flags) == set(vocab.LAYOUT_FIELDS) - {"dp"}  # DP follows from the others in a search


def test_plan_and_spec_schemas_take_the_vocabulary():
    stage = Stage.model_fields
    assert _literal_values(stage["schedule"].annotation) == set(vocab.SCHEDULES)
    assert _literal_values(stage["recompute"].annotation) == set(vocab.RECOMPUTE_MODES)
    assert _literal_values(stage["precision"].annotation) == set(vocab.PRECISIONS)
    assert _literal_values(stage["fp8_recipe"].annotation) == set(vocab.FP8_RECIPES)
    assert _literal_values(PublishedLayout.model_fields["schedule"].annotation) == set(vocab.SCHEDULES)
    assert set(vocab.PUBLISHED_LAYOUT_FIELDS) <= set(vocab.LAYOUT_FIELDS)
    assert all(k in Stage.model_fields for k in vocab.LAYOUT_FIELDS)


def test_flop_utilization_is_achieved_flops_over_the_peak():
    """MFU = model FLOPs per token x tokens/s per GPU / dense peak (PaLM App. B): 6e9 x 5e4 / 1e15 = 0.3."""
    assert flop_utilization(6e9, 5e4, 1e15) == pytest.approx(0.3, rel=1e-15)


def test_estimate_search_and_json_report_the_same_mfu():
    model, hw = load_model("llama-3.1-8b"), load_hardware("h100-sxm")
    job = make_job(model, 64, 1e12, 8192, None, "bf16")
    lay = {"tp": 1, "pp": 1, "cp": 1, "zero_stage": 3, "micro_batch_size": 1, "schedule": "1f1b", "recompute": "none"}
    est = estimate(model, hw, job, lay)
    by_hand = token_flops(model, 8192).training_flops * est.tokens_per_s_per_gpu / hw.peak_flop_per_s("bf16")
    assert est.mfu == pytest.approx(by_hand, rel=1e-15)
    assert est.to_dict()["mfu"] == est.mfu
    result = search(model, hw, job, lay)
    i = next(i for i in range(result.n_valid) if result.layouts.at(i) == est.layout)
    assert result.mfu[i] == pytest.approx(est.mfu, rel=1e-12)
