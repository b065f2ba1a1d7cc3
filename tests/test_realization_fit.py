"""The realization constant (analysis/fit.py): realized / modelled step time of published whole runs, fitted per GPU
generation where a generation has enough runs (MIN_RUNS_PER_GENERATION), pooled otherwise, with leave-one-out errors.

The fit's arithmetic is checked on synthetic ratios (predict_case replaced), so a one-line change to the median, the
grouping or the leave-one-out fails here; the stored fit is checked against the current model in
tests/test_validate_public.py (the whole-run cases' in-sample errors)."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import pytest
import yaml

from simulator import api
from simulator.analysis import fit as fit_module
from simulator.analysis import public_runs
from simulator.inputs.assumptions import BASE, DEFAULT, FITTED_PATH
from simulator.inputs.published import public_cases

# reported / predicted-at-realization-1 of synthetic whole runs: five Ampere, five Hopper, two Blackwell (too few).
RATIOS = {
    ("a100-80gb", 0): 1.1, ("a100-80gb", 1): 1.2, ("a100-40gb", 2): 1.3, ("a100-80gb", 3): 1.5, ("a800", 4): 1.25,
    ("h100-sxm", 0): 1.6, ("h100-sxm", 1): 1.8, ("h800", 2): 2.0, ("h100-sxm", 3): 1.7, ("h200", 4): 2.4,
    ("b200", 0): 1.0, ("gb200", 1): 3.0,
}  # fmt: skip


@pytest.fixture
def synthetic(monkeypatch):
    template = next(c for c in public_cases() if c.track == "whole_run" and not c.flagged)
    cases = [replace(template, id=f"{gpu}-{i}", gpu=gpu, reported=100.0) for gpu, i in RATIOS]
    flagged = replace(template, id="broader", gpu="h100-sxm", reported=100.0, scope="broader")
    steady = replace(template, id="steady", gpu="h100-sxm", reported=100.0, track="steady_state")
    ratio = {c.id: RATIOS[(c.gpu, int(c.id.rsplit("-", 1)[1]))] for c in cases}
    ratio |= {"broader": 10.0, "steady": 10.0}
    seen = []

    def fake_predict(case, assumptions):
        seen.append(assumptions)
        return case.reported / ratio[case.id]

    monkeypatch.setattr(public_runs, "predict_case", fake_predict)
    return fit_module.fit_realization([*cases, flagged, steady], BASE), seen


def _median_log(values):
    return math.exp(statistics.median(math.log(v) for v in values))


def test_each_generation_with_enough_runs_gets_the_median_of_its_runs(synthetic):
    result, seen = synthetic
    assert fit_module.MIN_RUNS_PER_GENERATION == 5
    assert set(result["by_generation"]) == {"ampere", "hopper"}  # two Blackwell runs are too few
    ampere = [v for (gpu, _), v in RATIOS.items() if gpu.startswith("a")]
    hopper = [v for (gpu, _), v in RATIOS.items() if gpu.startswith("h")]
    assert result["by_generation"]["ampere"]["value"] == pytest.approx(_median_log(ampere), abs=1e-4)  # 1.25
    assert result["by_generation"]["hopper"]["value"] == pytest.approx(_median_log(hopper), abs=1e-4)  # 1.8
    assert result["by_generation"]["hopper"]["constrained_by"] == 5
    # The pooled value covers every run of scope `run` (flagged and steady-state cases left out): 12 runs.
    assert result["constrained_by"] == 12
    assert result["value"] == pytest.approx(_median_log(RATIOS.values()), abs=1e-4)
    # Predictions are made at realization 1, whatever the defaults hold.
    assert all(a.realization == 1.0 and a.realization_by_generation == () for a in seen)


def test_leave_one_out_refits_the_runs_own_group(synthetic):
    result, _ = synthetic
    by_id = {c["id"]: c for c in result["cases"]}
    # An Ampere run: the median of the other four Ampere runs.
    others = [1.2, 1.3, 1.5, 1.25]
    assert by_id["a100-80gb-0"]["leave_one_out_error"] == pytest.approx(_median_log(others) / 1.1 - 1, rel=1e-9)
    assert by_id["a100-80gb-0"]["in_sample_error"] == pytest.approx(1.25 / 1.1 - 1, rel=1e-9)
    # A Blackwell run (no generation fit): the pooled median of the other eleven.
    pooled_others = [v for k, v in RATIOS.items() if k != ("gb200", 1)]
    assert by_id["gb200-1"]["leave_one_out_error"] == pytest.approx(_median_log(pooled_others) / 3.0 - 1, rel=1e-9)
    assert by_id["gb200-1"]["generation"] == "blackwell"
    loo_logs = [math.log1p(c["leave_one_out_error"]) for c in result["cases"]]
    assert result["sigma"] == pytest.approx(math.sqrt(statistics.fmean(x * x for x in loo_logs)), abs=1e-4)


def test_assumptions_apply_the_generation_value_once():
    a = replace(BASE, realization=1.3, realization_by_generation=(("ampere", 1.2), ("hopper", 1.8)))
    assert a.for_generation("hopper").realization == 1.8
    assert a.for_generation("ampere").realization == 1.2
    assert a.for_generation("blackwell").realization == 1.3 and a.for_generation(None).realization == 1.3
    once = a.for_generation("hopper")
    assert once.for_generation("ampere") == once  # consumed: applying again changes nothing
    assert BASE.for_generation("hopper") is BASE


def test_estimates_use_the_fitted_value_of_their_gpu_generation():
    fitted = yaml.safe_load(FITTED_PATH.read_text())["realization_fit"]
    by_generation = {g: f["value"] for g, f in fitted["by_generation"].items()}
    assert dict(DEFAULT.realization_by_generation) == by_generation and {"ampere", "hopper"} <= set(by_generation)
    for gpu, expected in (("h100", by_generation["hopper"]), ("a100-80gb", by_generation["ampere"])):
        runs = api.estimate("llama-3.1-8b", gpu, 64, 1e11)
        assert runs.estimate.realization == expected and runs.achievable.realization == 1.0
    if "blackwell" not in by_generation:
        assert api.estimate("llama-3.1-8b", "b200", 64, 1e11).estimate.realization == fitted["value"]
