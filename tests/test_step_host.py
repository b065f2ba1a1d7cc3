"""The per-step host time (docs/model.md §7.9): each optimizer step on a stack with `step_host: fitted` (PyTorch FSDP
2023) pays a fixed time beyond the per-layer model, fitted (`costsim fit`) to the llm-foundry benchmark README's rows
that `validate public` does not check, so that the 26 it checks stay out of sample."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import yaml
from fit_support import fit_made_rows

from simulator.errors import SpecError
from simulator.inputs.assumptions import BASE, DEFAULT, FITTED_PATH
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import Job
from simulator.inputs.published import llmfoundry_readme_case, llmfoundry_readme_runs, public_cases, same_row
from simulator.inputs.stacks import load_stack
from simulator.model.efficiency import device_rates
from simulator.run.estimate import estimate_achievable
from simulator.run.scenario import Scenario, stack_rates
from simulator.units import MILLI

LAYOUT = {"tp": 1, "pp": 1, "dp": 8, "zero_stage": 3, "micro_batch_size": 4, "recompute": "none"}
ROW_70B = "|  70b | 2048 | 64 | h100_80gb | 42.57 | 56.76 |  4.212583E+14 | 8 | 4 | 2048 | 32 | 66523 | 1039 | 4194304 | amp_bf16 | DEFAULT | FULL_SHARD | True | False | 64862437376 |"  # noqa: E501


def _estimate(stack: str, step_host_s: float, accumulation: int = 1):
    """mpt-1b on 8 A100-80GB at micro-batch 4 with `accumulation` micro-batches per step."""
    tokens = 8 * 4 * 2048.0 * accumulation
    a = replace(DEFAULT, step_host_s=step_host_s)
    s = Scenario.of(load_model("mpt-1b"), load_hardware("a100-80gb"), Job(8, tokens, 2048, tokens, "bf16"), LAYOUT,
                    assumptions=a, stack=load_stack(stack))  # fmt: skip
    return estimate_achievable(s)


def test_each_optimizer_step_pays_the_host_time_once_whatever_the_micro_batches():
    """The step grows by exactly step_host_s (a breakdown term of its own), for one micro-batch per step or four."""
    for accumulation in (1, 4):
        without, with_host = _estimate("fsdp-2023", 0.0, accumulation), _estimate("fsdp-2023", 50 * MILLI, accumulation)
        assert with_host.step_time_s - without.step_time_s == pytest.approx(50 * MILLI, rel=1e-9)
        assert with_host.breakdown_s["step_host"] == pytest.approx(50 * MILLI, rel=1e-12)
        assert "step_host" not in without.breakdown_s


def test_only_a_stack_with_a_fitted_step_host_time_pays_it():
    """fsdp-2023 has `step_host: fitted`; today's and Megatron's stacks have no rows to fit it on and pay nothing."""
    assert load_stack("fsdp-2023").step_host == "fitted"
    rates = device_rates(load_hardware("h100-sxm"), DEFAULT)
    for name in ("current", "megatron-2021", "megatron-2022", "megatron-2023", "megatron-core-2025"):
        assert load_stack(name).step_host == "none"
        assert stack_rates(rates, load_stack(name), DEFAULT).step_host_s == 0.0
    assert stack_rates(rates, load_stack("fsdp-2023"), DEFAULT).step_host_s == DEFAULT.step_host_s > 0
    assert _estimate("current", 50 * MILLI).step_time_s == pytest.approx(_estimate("current", 0.0).step_time_s, rel=1e-12)


def test_the_readme_rows_are_read_verbatim_and_the_validated_rows_are_among_them():
    """validation/llmfoundry_readme_rows.yaml: 191 BF16 rows, once each; the 26 rows validate public checks
    (validation/llmfoundry.yaml) are among them as quoted."""
    rows = llmfoundry_readme_runs()
    assert len(rows) == 191 == len({r.id for r in rows})
    validated = [c for c in public_cases() if c.id.startswith("llmfoundry-")]
    assert len(validated) == 26
    assert all(any(same_row(c.quote, r.quote) for r in rows) for c in validated)
    assert {r.stack_preset for r in rows} == {"fsdp-2023"}


def test_a_readme_row_keeps_its_fields():
    case = llmfoundry_readme_case("H100 80GB BF16", ROW_70B)
    assert (case["model"], case["gpu"], case["num_gpus"], case["reported"]) == ("mpt-70b", "h100-sxm", 64, 1039.0)
    assert case["layout"]["micro_batch_size"] == 8 and case["layout"]["recompute"] == "full"
    assert case["tokens"] == case["global_batch_tokens"] == 2048 * 2048
    assert case["stack"]["pytorch"] == "2.1.0" and case["stack"]["checkpoint_early_stop"] is True
    assert llmfoundry_readme_case("H100 80GB FP8", ROW_70B.replace("amp_bf16", "amp_fp8")) is None
    assert same_row(ROW_70B, " ".join(ROW_70B.split())) and same_row(ROW_70B, ROW_70B.replace(" | ", "|"))
    assert not same_row(ROW_70B, ROW_70B.replace("1039", "1040"))


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("| 8 | 4 | 2048 |", "| 8 | 4 | 2047 |", "is not MicroBatchSize 8 x GradAccum 4 x 64 GPUs"),
        ("| 8 | 4 | 2048 |", "| 0 | 4 | 0 |", "is not MicroBatchSize 0"),
        ("| True | False |", "| yes | False |", "True or False"),
        ("| DEFAULT |", "| MIXED |", "PURE or DEFAULT"),
        ("| 1039 |", "| fast |", "could not convert"),
        ("| 64862437376 |", "", "columns where the README's tables have 20"),
    ],
)
def test_a_readme_row_that_does_not_read_says_which_column(old, new, message):
    """A row whose global batch is not micro-batch x accumulation x GPUs, whose checkpointing or MP mode is not one of
    the README's values, or that lost a column is refused, not read as something else."""
    assert old in ROW_70B
    with pytest.raises(ValueError, match=message):
        llmfoundry_readme_case("H100 80GB BF16", ROW_70B.replace(old, new))


def test_a_malformed_rows_file_is_a_spec_error(tmp_path, monkeypatch):
    import simulator.inputs.published as published

    (tmp_path / "llmfoundry_readme_rows.yaml").write_text(yaml.safe_dump({"rows": [{"table": "H100", "row": "| 70b |"}]}))
    monkeypatch.setattr(published, "_validation_dir", lambda: tmp_path)
    with pytest.raises(SpecError, match=r"rows\[0\] is not a README result row"):
        llmfoundry_readme_runs()
    (tmp_path / "llmfoundry_readme_rows.yaml").write_text("rows: 3\n")
    with pytest.raises(SpecError, match="`rows:` list"):
        llmfoundry_readme_runs()


def test_the_fit_rows_leave_out_every_validation_case():
    """step_host_cases: the README rows but those validate public checks (same quoted row): 191 - 26 = 165."""
    from simulator.analysis.fit import step_host_cases

    rows = step_host_cases()
    assert len(rows) == 165

    # Independently of the quotes: no fitted row has the job and layout of a validation case.
    def key(c):
        return (c.model, c.gpu, c.job.num_gpus, c.job.seq_len, c.job.global_batch_tokens, c.layout["micro_batch_size"])

    validated = {key(c) for c in public_cases() if c.id.startswith("llmfoundry-")}
    assert len(validated) == 26 and not validated & {key(r) for r in rows}
    assert step_host_cases(held_out=[]) == llmfoundry_readme_runs()


def test_fit_recovers_a_step_host_time_the_rows_were_made_with():
    """Rows whose reported figure is costsim's own prediction at 40 ms give back 40 ms, with zero leave-one-out errors;
    fewer than two rows give no fit."""
    from simulator.analysis.fit import fit_step_host, step_host_cases

    cases = [c for c in step_host_cases() if c.job.num_gpus == 8 and c.job.seq_len == 2048][:4]
    assert len(cases) == 4
    truth = replace(BASE, gemm_sustain=DEFAULT.gemm_sustain, step_host_s=40 * MILLI)
    grid = np.arange(0.0, 100.01, 10.0) * MILLI
    fit, made = fit_made_rows(fit_step_host, cases, truth, "step_host_s", grid)
    assert fit["value"] == pytest.approx(40 * MILLI, rel=0.02)
    assert fit["constrained_by"] == 4 and fit["median_abs_leave_one_out_error"] < 0.01
    assert "5 ms" not in fit["method"] and "10 ms grid" in fit["method"]
    assert fit_step_host(made[:1], truth, grid) is None


def test_the_shipped_value_is_the_fit_of_the_readme_rows_and_its_data_are_written_beside_it():
    """DEFAULT takes fitted_constants.yaml's step_host_s; the file holds the 165 rows that constrain it, each with its
    in-sample and leave-one-out error (docs/model.md §7.9: 47 ms, 3.5% median in sample and leave-one-out)."""
    from simulator.analysis.fit import step_host_cases

    doc = yaml.safe_load(FITTED_PATH.read_text())
    fit = doc["step_host_fit"]
    assert DEFAULT.step_host_s == doc["step_host_s"] == fit["value"]
    assert 20 * MILLI < fit["value"] < 100 * MILLI
    assert [c["id"] for c in fit["cases"]] == [c.id for c in step_host_cases()]
    assert fit["constrained_by"] == 165
    assert all({"in_sample_error", "leave_one_out_error"} <= set(c) for c in fit["cases"])
    assert fit["median_abs_leave_one_out_error"] == pytest.approx(0.035, abs=0.003)
    assert 0 < fit["sigma"] < 0.5


def test_stored_step_host_fit_describes_the_current_model():
    """A spread of the fitted rows (every 15th) is predicted now with the in-sample error the fit file records (within
    0.5 points): if this fails, the model changed without `costsim fit` being rerun."""
    from simulator.analysis.fit import step_host_cases
    from simulator.analysis.public_runs import predict_case

    fit = yaml.safe_load(FITTED_PATH.read_text())["step_host_fit"]
    by_id = {c.id: c for c in step_host_cases()}
    for record in fit["cases"][::15]:
        case = by_id[record["id"]]
        assert predict_case(case) / case.reported - 1 == pytest.approx(record["in_sample_error"], abs=0.005), case.id


def test_the_band_draws_the_step_host_time_where_the_stack_charges_it():
    """--uncertainty on fsdp-2023 draws step_host_s (lognormal, sigma the fit's jackknife standard error); on today's
    stack it is not an input."""
    from simulator.analysis.uncertainty import Point, apply, band_for_estimate, host_time_sigma
    from simulator.run.estimate import estimate_expected
    from simulator.run.scenario import resolve

    sigma, source = host_time_sigma(key="step_host_fit")
    assert sigma == yaml.safe_load(FITTED_PATH.read_text())["step_host_fit"]["sigma"] and "jackknife" in source
    fsdp = estimate_expected(resolve("mpt-1b", "a100-80gb", 64, 1e10, stack="fsdp-2023"))
    band = band_for_estimate(fsdp, "mpt-1b", "a100-80gb", draws=2000)
    (h,) = [i for i in band.inputs if i.name == "step_host_s"]
    assert h.nominal == fsdp.rates.step_host_s == DEFAULT.step_host_s
    base = Point(fsdp.assumptions, fsdp.rates, 2.0, 1e10)
    assert apply(base, band.inputs, {"step_host_s": 2 * h.nominal}).rates.step_host_s == 2 * h.nominal
    today = estimate_expected(resolve("mpt-1b", "a100-80gb", 64, 1e10))
    assert all(i.name != "step_host_s" for i in band_for_estimate(today, "mpt-1b", "a100-80gb", draws=2000).inputs)


def test_a_fitted_row_enters_the_size_trend_at_its_leave_one_out_error():
    """validate public's size trend takes a row's leave-one-out error where the row constrained a fitted constant (the
    trend of errors the rows did not help set), its plain error otherwise."""
    from simulator.analysis.public_runs import _model, evaluate, size_trend
    from simulator.model.flops import parameter_counts

    rows = evaluate([c for c in public_cases() if c.id.startswith("llmfoundry-")])
    x = np.log([parameter_counts(_model(r.case.model)).total for r in rows])
    plain = size_trend(rows)
    assert plain["pearson_r"] == pytest.approx(np.corrcoef(x, np.log1p([r.error for r in rows]))[0, 1], rel=1e-9)
    held = [0.3 * (i % 3) - 0.2 for i in range(len(rows))]
    fitted = [replace(r, fits=[{"constant": "c", "in_sample_error": r.error, "leave_one_out_error": e}])
              for r, e in zip(rows, held, strict=True)]  # fmt: skip
    assert size_trend(fitted)["pearson_r"] == pytest.approx(np.corrcoef(x, np.log1p(held))[0, 1], rel=1e-9)


def test_the_per_expert_note_keeps_the_runs_own_step_host_time():
    """An MoE run on fsdp-2023 compared with megatron-core-2025's per-expert launches: only the launches differ, so
    the run's per-step host time is in both steps. With a host time as long as the run's step, the ratio r0 without it
    becomes (r0 + 1) / 2 (it would be r0 / 2, below 1 and no note, were the host time dropped from the slow side)."""
    import re

    from simulator.run.estimate import per_expert_launch_note
    from simulator.run.scenario import resolve

    layout = {"ep": 8, "micro_batch_size": 1, "recompute": "none", "tp": 1, "pp": 1}

    def note_ratio(step_host_s: float) -> tuple[float, float]:
        s = resolve("qwen3-30b-a3b", "h100-sxm", 64, 1e12, layout=layout, stack="fsdp-2023",
                    assumptions=replace(DEFAULT, step_host_s=step_host_s))  # fmt: skip
        est = estimate_achievable(s)
        return float(re.search(r"takes ([\d.]+)x as long", per_expert_launch_note(s, est)).group(1)), est.step_time_s

    r0, step0 = note_ratio(0.0)
    assert r0 > 1.2
    r1, _ = note_ratio(step0)
    assert r1 == pytest.approx((r0 + 1) / 2, abs=0.01)


def test_the_report_counts_the_step_host_time_as_its_own_cost_group():
    from simulator.report.document import _cost_group

    assert _cost_group("step_host") == "host time per step"
    assert _cost_group("optimizer") == "optimizer step" and _cost_group("dense_ffn").startswith("compute")


def test_the_other_fits_hold_the_fitted_step_host_time(monkeypatch):
    """costsim fit: step_host_s is fitted right after gemm_sustain (at it), and realization and the expert host times
    are fitted with it held, so a whole run or MoE row on a charging stack would be predicted as estimates predict it.
    The fits are stubbed; only the order and what each receives are checked."""
    import simulator.analysis.fit as fitting

    seen = {}
    monkeypatch.setattr(fitting, "prediction_table", lambda runs: np.zeros((len(runs), len(fitting.GRID))))
    monkeypatch.setattr(fitting, "step_host_cases", lambda: [])
    monkeypatch.setattr(fitting, "expert_launch_cases", lambda: [])
    monkeypatch.setattr(fitting, "expert_quantize_cases", lambda: [])

    def stub(name, value):
        def record(cases, assumptions, *args):
            seen[name] = assumptions
            return {"value": value}

        return record

    monkeypatch.setattr(fitting, "fit_step_host", stub("step_host", 0.031))
    monkeypatch.setattr(fitting, "fit_realization", stub("realization", 1.2))
    monkeypatch.setattr(fitting, "fit_expert_launch", stub("launch", 8e-5))
    monkeypatch.setattr(fitting, "fit_expert_quantize", stub("quantize", 1e-4))
    out = fitting.fit(runs=public_cases()[:2], whole_runs=[])
    assert seen["step_host"].step_host_s == 0.0 and seen["step_host"].gemm_sustain == out["gemm_sustain"]
    for name in ("realization", "launch", "quantize"):
        assert seen[name].step_host_s == 0.031 and seen[name].gemm_sustain == out["gemm_sustain"], name
    assert list(out)[:5] == ["gemm_sustain", "realization", "expert_launch_host_s", "expert_quantize_host_s", "step_host_s"]
