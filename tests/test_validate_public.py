"""`costsim validate public`: costsim against the published runs of validation/public_runs.yaml.

Every case cites its source (paper and table, model card, or MLPerf result log) and quotes the reported
number in the YAML. Tolerances (issue 11, global constants only): the steady-state track within 8% (median),
the whole-run track within 15% (median, leave-one-out, without flagged scopes) with its band covering 70%.
The command runs once per module (json + plot).
"""

from __future__ import annotations

import functools
import json
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_support import clean_error, invoke

from simulator.analysis.public_runs import leave_one_out_errors, predict_case, reported_tokens_per_s_per_gpu
from simulator.errors import SpecError
from simulator.inputs.assumptions import DEFAULT, FITTED_PATH
from simulator.inputs.published import METRICS, dataset_path, excluded_runs, public_cases, table_cells

assert_clean_error = functools.partial(clean_error, error="line")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    png = tmp_path_factory.mktemp("plot") / "public.png"
    result = invoke("validate", "public", "--format", "json", "--plot", str(png))
    assert result.exit_code == 0, result.output
    return json.loads(result.output), png


@pytest.fixture(scope="module")
def doc(run):
    return run[0]


KNOWN_WORST = "poro-34b-lumi-1024gcd"
"""The steady-state track's worst row (docs/model.md §14): Poro 34B on 1024 MI250X GCDs (arXiv:2404.01856 §3.3), 84%
too fast. Its profile's attention, HBM and network efficiencies are assumptions, its matmul rate a ROCm 6.2 measurement
a year after the run, and no AMD run constrains a realization."""
NEXT_WORST = "megatron-moe-qwen3-235b-h100x256-ep8-fsdp"
"""The worst NVIDIA row (docs/model.md §7.8): Megatron's FSDP with EP 8, 34% slow."""


def test_steady_state_track_meets_its_target(doc):
    """Issue 11: step-level figures (throughput, step time, time-to-train) at the published layout: median |error| <= 8%
    over at least 45 runs (Megatron 2021 Table 1, Llama 3 Table 4, Nemotron-4, MLPerf, llm-foundry, Megatron-Bridge,
    ...). None but the AMD MI250X row (Poro 34B, 84% too fast) is beyond 35%; the worst NVIDIA row is the model zoo's
    FSDP row with EP 8 (docs/model.md §7.8). Megatron-Bridge
    25.11's Qwen3-30B-A3B on 16 H100 with FP8 current scaling, 94% too fast with the per-expert launch alone, is within
    2% with its per-expert quantization (§7.8)."""
    t = doc["tracks"]["steady_state"]
    rows = [c for c in doc["cases"] if c["track"] == "steady_state"]
    assert t["n"] == len(rows) >= 45
    assert t["median_abs_error"] == pytest.approx(statistics.median(abs(c["error"]) for c in rows), rel=1e-12)
    assert t["median_abs_error"] <= t["target"]["median_abs_error"] == 0.08
    # The median target is met, and with it the target as a whole once the size trend is gone (test below).
    assert t["meets_target"] is (t["size_trend"]["p_value"] >= t["target"]["size_trend_p_value"]) is True
    # The 34 rows of fitted constants (gemm_sustain 12, expert_launch_host_s 19, expert_quantize_host_s 3) at their
    # leave-one-out errors: 6.3% (6.5% before Megatron-Core's H100 table joined, out of sample, in 2026-12, 7.2% after;
    # 6.3% with the per-step host time of docs/model.md §7.9, fitted to llm-foundry README rows that are not cases).
    held_out = [abs(c["leave_one_out_error"] if c["leave_one_out_error"] is not None else c["error"]) for c in rows]
    assert sum(c["leave_one_out_error"] is not None for c in rows) == 34
    assert t["median_abs_error_leave_one_out"] == pytest.approx(statistics.median(held_out), rel=1e-12)
    assert t["median_abs_error_leave_one_out"] == pytest.approx(0.0625, abs=0.003)
    assert t["median_abs_error"] == pytest.approx(0.062, abs=0.003)
    worst = max(rows, key=lambda c: abs(c["error"]))
    assert worst["id"] == KNOWN_WORST and [c["id"] for c in rows if abs(c["error"]) > 0.35] == [KNOWN_WORST]
    assert t["max_abs_error"] == max(abs(c["error"]) for c in rows) == pytest.approx(0.843, abs=0.01)
    assert t["max_abs_error_leave_one_out"] == max(held_out)
    nvidia = [c for c in rows if c["id"] != KNOWN_WORST]
    assert max(nvidia, key=lambda c: abs(c["error"]))["id"] == NEXT_WORST
    assert max(abs(c["error"]) for c in nvidia) == pytest.approx(0.343, abs=0.01)


def test_llmfoundry_size_trend_is_reported_and_gone(doc):
    """Issue 11: "llm-foundry rows with no size trend". The 26 rows of validation/llmfoundry.yaml (MosaicML
    llm-foundry benchmarking README, commit 061f2c7: the 25 at sequence length 2048 and the H100 7B row at 4096) carry
    their trend in the steady-state track: Pearson r of log(1 + error) against log(parameters) recomputed here from the
    cases, and its permutation p-value. It was present (r -0.42, p 0.033; settings held p 0.021) until the per-step
    host time of the FSDP stack (docs/model.md §7.9), fitted to the README's 165 other rows, so these 26 are out of
    sample: r -0.19, p 0.35; settings held p 0.60. The pins move if a change brings it back."""
    from simulator.analysis.public_runs import _model
    from simulator.model.flops import parameter_counts

    s = doc["tracks"]["steady_state"]["size_trend"]
    rows = [c for c in doc["cases"] if c["id"].startswith("llmfoundry-")]
    assert s["n"] == len(rows) == 26
    x = np.log([parameter_counts(_model(c["model"])).total for c in rows])
    y = np.log1p([c["error"] for c in rows])
    assert s["pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)
    assert s["slope_per_e_fold"] == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
    assert all(c["leave_one_out_error"] is None for c in rows)  # out of sample: no fitted constant used them
    assert s["pearson_r"] == pytest.approx(-0.191, abs=0.01)
    assert s["trend_present"] is False and s["p_value"] == pytest.approx(0.35, abs=0.02)
    # Recomputation, GPU count and GPU type held fixed (Freedman-Lane permutation): -0.18% per e-fold, p 0.60.
    partial = s["partial"]
    assert partial["controls"] == ["full recomputation", "log GPU count", "GPU a100-80gb", "GPU h100-sxm"]
    assert partial["slope_per_e_fold"] == pytest.approx(-0.0018, abs=0.0005)
    assert partial["p_value"] == pytest.approx(0.60, abs=0.02) and partial["trend_present"] is False
    assert doc["tracks"]["steady_state"]["meets_target"] is True
    assert doc["meets_target"] is True


def test_whole_run_track_is_complete_and_its_band_covers_the_runs(doc):
    """Issue 11: at least 30 published whole runs, each at its expected run (the layout practice used, realized);
    errors leave-one-out where the realization was fitted on the run; the P10-P90 band covers at least 70%."""
    t = doc["tracks"]["whole_run"]
    rows = [c for c in doc["cases"] if c["track"] == "whole_run"]
    assert t["n"] == len(rows) >= 30
    assert all(c["metric"] in ("gpu_hours", "wall_clock_days") for c in rows)
    flagged = [c for c in rows if c["scope"] != "run"]
    assert t["n_flagged"] == len(flagged) >= 1  # e.g. the Llama 3.2 1B/3B card hours (pruning and distillation)
    errors = {c["id"]: c["leave_one_out_error"] if c["leave_one_out_error"] is not None else c["error"] for c in rows}
    clean = [abs(errors[c["id"]]) for c in rows if c["scope"] == "run"]
    assert t["median_abs_error_leave_one_out_without_flagged"] == pytest.approx(statistics.median(clean), rel=1e-12)
    assert t["median_abs_error_leave_one_out"] == pytest.approx(statistics.median(abs(e) for e in errors.values()), rel=1e-12)
    assert t["max_abs_error_leave_one_out"] == max(abs(e) for e in errors.values())
    # In-sample, as each case's `error` (before, the whole-run track's median_abs_error was leave-one-out while the
    # steady state's was in-sample, and each case's `error` in-sample).
    in_sample = [abs(c["error"]) for c in rows]
    assert t["median_abs_error"] == pytest.approx(statistics.median(in_sample), rel=1e-12)
    assert t["max_abs_error"] == max(in_sample)
    clean_in_sample = [abs(c["error"]) for c in rows if c["scope"] == "run"]
    assert t["median_abs_error_without_flagged"] == pytest.approx(statistics.median(clean_in_sample), rel=1e-12)
    assert t["median_abs_error"] < t["median_abs_error_leave_one_out"]  # 9.5% and 10.2%: the fit has seen the runs
    assert t["band_coverage"] >= 0.70
    # Issue 11's target: median |error| (leave-one-out) at most 15% over the runs whose figure is the run's own.
    assert t["target"] == {"median_abs_error_leave_one_out_without_flagged": 0.15, "band_coverage": 0.70, "n": 30}
    assert t["median_abs_error_leave_one_out_without_flagged"] <= 0.15
    assert t["meets_target"] is True
    assert doc["meets_target"] is (t["meets_target"] and doc["tracks"]["steady_state"]["meets_target"])


def test_both_tracks_name_their_errors_alike(doc):
    """Every track has median and max |error| in-sample and leave-one-out under the same keys, and the table says which
    is which (before, the whole-run track's median_abs_error was leave-one-out, the steady state's in-sample)."""
    from cli.published import track_line
    from simulator.outputs import Track

    keys = ["median_abs_error", "max_abs_error", "median_abs_error_leave_one_out", "max_abs_error_leave_one_out"]
    assert set(keys) <= set(Track.model_json_schema()["required"])
    for name, t in doc["tracks"].items():
        assert all(t[k] is not None for k in keys), name
        line = track_line(name, t)
        assert (
            f"median |error| in-sample {t['median_abs_error']:.1%} (max {t['max_abs_error']:.1%}), "
            f"leave-one-out {t['median_abs_error_leave_one_out']:.1%} (max {t['max_abs_error_leave_one_out']:.1%})"
        ) in line
    whole = track_line("whole_run", doc["tracks"]["whole_run"])
    assert "target median leave-one-out without flagged <= 15%" in whole
    assert "target median in-sample <= 8%" in track_line("steady_state", doc["tracks"]["steady_state"])


def test_json_cases_and_summary_are_consistent(doc):
    cases = doc["cases"]
    assert isinstance(cases, list) and len(cases) == doc["n_cases"]
    assert len({c["id"] for c in cases}) == len(cases)
    for c in cases:
        assert c["source"] and c["quote"] and c["metric"] in METRICS
        assert c["reported"] > 0 and c["predicted"] > 0
        assert c["error"] == pytest.approx(c["predicted"] / c["reported"] - 1, rel=1e-12)
    abs_errors = [abs(c["error"]) for c in cases]
    assert doc["median_abs_error"] == pytest.approx(statistics.median(abs_errors), rel=1e-12)
    assert doc["max_abs_error"] == pytest.approx(max(abs_errors), rel=1e-12)
    assert 0 < doc["median_abs_error"] < doc["max_abs_error"] < 1  # fractions, not percent


def test_dataset_has_breadth(doc):
    """Not one paper: several model families, GPU generations, precisions and kinds of reported number."""
    cases = doc["cases"]
    assert len({c["model"] for c in cases}) >= 8
    assert {"a100-80gb", "a100-40gb", "h100-sxm", "h800", "gb200"} <= {c["gpu"] for c in cases}
    assert {"fp16", "bf16", "fp8"} <= {c["precision"] for c in cases}
    assert len({c["metric"] for c in cases}) >= 5
    assert sum(c["metric"] in ("gpu_hours", "wall_clock_days") for c in cases) >= 4  # whole-run cost targets


def test_predictions_match_the_python_api(doc):
    by_id = {c.id: c for c in public_cases()}
    for c in doc["cases"][::5]:
        assert predict_case(by_id[c["id"]]) == pytest.approx(c["predicted"], rel=1e-9), c["id"]


def test_leave_one_out_errors_come_from_the_fitted_constants(doc):
    """Runs that constrained a fitted constant show its leave-one-out error; the others show none."""
    fitted = yaml.safe_load(FITTED_PATH.read_text())
    loo = leave_one_out_errors()
    assert doc["n_fitted_cases"] == sum(c["id"] in loo for c in doc["cases"]) >= 2
    for c in doc["cases"]:
        if c["id"] in loo:
            assert c["leave_one_out_error"] == max((f["leave_one_out_error"] for f in loo[c["id"]]), key=abs)
            assert c["fitted_constants"]
        else:
            assert c["leave_one_out_error"] is None and c["fitted_constants"] == []
    for entry in fitted.get("cases", []):  # the gemm_sustain fit's own records, read independently
        assert entry["leave_one_out_error"] in [f["leave_one_out_error"] for f in loo[entry["id"]]]
    # named as the tracks name theirs (it was median_abs_leave_one_out_error beside the tracks' ..._leave_one_out)
    fitted_cases = [abs(c["leave_one_out_error"]) for c in doc["cases"] if c["leave_one_out_error"] is not None]
    assert doc["median_abs_error_leave_one_out_fitted_cases"] == pytest.approx(statistics.median(fitted_cases))
    assert "median_abs_leave_one_out_error" not in doc


def test_plot_is_a_png(run):
    import matplotlib.image

    png = run[1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 300


def test_table_and_csv(doc):
    table = invoke("validate", "public")
    assert table.exit_code == 0, table.output
    assert f"{doc['n_cases']} published runs" in table.output
    loo = doc["median_abs_error_leave_one_out_fitted_cases"]
    line = f"leave-one-out error of the {doc['n_fitted_cases']} runs that constrained a fitted constant (median |LOO| {loo:.1%})"
    assert line in table.output
    assert "deepseek-v3-pretrain" in table.output
    csv_out = invoke("validate", "public", "--format", "csv")
    assert csv_out.exit_code == 0
    lines = csv_out.output.strip().splitlines()
    assert lines[0].startswith("id,") and len(lines) == doc["n_cases"] + 1


def test_every_excluded_run_has_a_reason_and_is_not_a_case(doc):
    excluded = excluded_runs()
    assert excluded and all(len(e.reason) > 20 for e in excluded)
    ids = {c["id"] for c in doc["cases"]}
    for e in excluded:
        named = {part.strip() for part in e.id.split(",")}
        assert not named & ids or "Already a case" in e.reason, e.id


def test_reported_values_imply_sane_throughput():
    """Each reported number, turned into tokens/s per GPU, lands at 5-100% of the dense peak at its precision, but the
    Megatron-Bridge Qwen3-30B-A3B rows on 8 B200 (214 and 223 TFLOP/s of FP8's 4,500 in NVIDIA's own count: 4.8% and
    5.0%), which are named."""
    from simulator.analysis.public_runs import reported_mfu

    low = {"megatron-bridge-2511-b200x8-qwen3-30b-a3b-fp8-mx", "megatron-bridge-2602-b200x8-qwen3-30b-a3b-fp8-mx"}
    for case in public_cases():
        assert reported_tokens_per_s_per_gpu(case) > 0
        assert (0.045 if case.id in low else 0.05) < reported_mfu(case) < 1.0, case.id


def test_fp8_gemm_factor_moves_only_block_scaled_fp8_runs():
    """The block-scaling factor slows FP8 GEMMs with fine-grained scales (DeepSeek-V3's recipe) and leaves
    per-tensor FP8 runs (MLPerf, Transformer Engine) and BF16 runs alone."""
    cases = {c.id: c for c in public_cases()}
    slow, fast = replace(DEFAULT, fp8_gemm_factor=0.6), replace(DEFAULT, fp8_gemm_factor=0.9)
    v3 = cases["deepseek-v3-pretrain"]
    assert predict_case(v3, fast) < predict_case(v3, slow)  # GPU-hours
    per_tensor = [c for c in cases.values() if c.job.precision == "fp8" and c.model in ("gpt3-175b", "llama-3.1-405b")]
    assert len({c.model for c in per_tensor}) == 2
    bf16 = next(c for c in cases.values() if c.job.precision == "bf16" and c.metric == "step_time_s")
    for c in [*per_tensor[:2], bf16]:
        assert predict_case(c, fast) == pytest.approx(predict_case(c, slow), rel=1e-12), c.id


# --------------------------------------------------------------------------- bad input


def _write_dataset(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "public_runs.yaml"
    path.write_text(text)
    return path


def test_malformed_dataset_entries_raise_spec_errors(tmp_path):
    good = yaml.safe_load(dataset_path().read_text())["cases"][0]
    for patch, needle in [
        ({"metric": "furlongs"}, "unknown metric"),
        ({"includes_failures": None}, "includes_failures"),
        ({"tokens": -3}, "tokens"),
        ({"num_gpus": "many"}, "num_gpus"),
    ]:
        entry = {**good, **patch}
        path = _write_dataset(tmp_path, yaml.safe_dump({"cases": [entry]}))
        with pytest.raises(SpecError, match=needle):
            public_cases(path)
    with pytest.raises(SpecError, match="twice"):
        public_cases(_write_dataset(tmp_path, yaml.safe_dump({"cases": [good, good]})))
    with pytest.raises(SpecError, match="unknown include"):
        public_cases(_write_dataset(tmp_path, yaml.safe_dump({"includes": ["nope.yaml"], "cases": []})))


def test_broken_dataset_file_is_a_clean_cli_error(tmp_path):
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "public_runs.yaml").write_text("cases: [unclosed\n")
    assert_clean_error(invoke("validate", "public", env={"COSTSIM_DATA_DIR": str(tmp_path)}), "not valid YAML")


def test_a_data_root_that_is_not_a_folder_is_named(tmp_path):
    """A review's COSTSIM_DATA_DIR=/nonexistent listed empty tables with exit 0 and called every shipped model unknown:
    a root that is not a folder is refused by name, whatever the command."""
    env = {"COSTSIM_DATA_DIR": str(tmp_path / "nonexistent")}
    assert_clean_error(invoke("list", "gpus", env=env), "COSTSIM_DATA_DIR=", "is not a folder")
    estimate = invoke("estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1B", env=env)
    assert_clean_error(estimate, "COSTSIM_DATA_DIR=", "is not a folder")


def test_bad_plot_paths_are_clean_cli_errors(tmp_path):
    assert_clean_error(invoke("validate", "public", "--plot", str(tmp_path / "chart.txt")), ".png")
    assert_clean_error(
        invoke("validate", "public", "--plot", str(tmp_path / "missing" / "chart.png")), "--plot", "does not exist"
    )


def test_stored_realization_fit_describes_the_current_model(doc):
    """Each whole run the realization was fitted on is predicted now with the in-sample error the fit file records
    (within 0.5 points): if this fails, the model changed without `costsim fit` being rerun."""
    fit = yaml.safe_load(FITTED_PATH.read_text())["realization_fit"]
    by_id = {c["id"]: c for c in doc["cases"]}
    assert fit["constrained_by"] == len(fit["cases"]) >= 30
    for case in fit["cases"]:
        assert by_id[case["id"]]["error"] == pytest.approx(case["in_sample_error"], abs=0.005), case["id"]
        assert by_id[case["id"]]["leave_one_out_error"] == pytest.approx(case["leave_one_out_error"], abs=1e-9)


def test_a_rows_composer_mixed_precision_sets_its_gradient_reduction_bytes():
    """Composer's get_mixed_precision: PURE reduces in BF16 (2 B), DEFAULT in fp32 (4 B, the Job default); any other
    mode in a case is refused with the modes named."""
    from dataclasses import replace

    from simulator.analysis.public_runs import case_scenario
    from simulator.errors import SpecError
    from simulator.inputs.published import public_cases

    cases = {c.id: c for c in public_cases()}
    assert case_scenario(cases["llmfoundry-mpt-30b-a100-40-128"]).job.gradient_reduce_bytes == 2.0  # PURE
    assert case_scenario(cases["llmfoundry-mpt-30b-a100-80-8"]).job.gradient_reduce_bytes == 4.0  # DEFAULT
    assert case_scenario(cases["llama3-405b-16k-gpus"]).job.gradient_reduce_bytes == 4.0  # no mode: fp32
    bad = replace(cases["llmfoundry-mpt-30b-a100-80-8"], stack={**cases["llmfoundry-mpt-30b-a100-80-8"].stack,
                                                                "mixed_precision": "HALF"})  # fmt: skip
    with pytest.raises(SpecError, match=r"mixed_precision must be one of DEFAULT, PURE .* got 'HALF'"):
        case_scenario(bad)


MEGATRON_MOE_ERRORS = {
    # validation/megatron_moe_qwen3.yaml: Qwen3-235B-A22B step times on 256 H100 from the Megatron MoE model zoo
    # (yanring/Megatron-MoE-ModelZoo best_practice/Qwen3/readme.md, 'Performance Results'), predicted / reported - 1 as
    # docs/model.md §14 reports them; tolerance 0.01.
    "megatron-moe-qwen3-235b-h100x256-ep32-pp8": -0.073,
    "megatron-moe-qwen3-235b-h100x256-ep32-pp8-a2a-overlap": 0.038,
    "megatron-moe-qwen3-235b-h100x256-ep8-fsdp": 0.343,
    "megatron-moe-qwen3-235b-h100x256-tp4-ep8-pp8": 0.159,
}


def test_megatron_moe_rows_as_documented(doc):
    """Every layout degree is the row's own (nothing searched), on the megatron-core-2025 stack, and each error is the
    one §14 reports: the EP 32 rows within 8% (4 local experts: their GEMMs outlast the host's launches), the FSDP row
    34% slow, the TP 4 x EP 8 row 16% slow (16 local experts: from 35% fast before §7.8's per-expert launches)."""
    rows = {c["id"]: c for c in doc["cases"] if c["id"] in MEGATRON_MOE_ERRORS}
    assert set(rows) == set(MEGATRON_MOE_ERRORS)
    for case_id, documented in MEGATRON_MOE_ERRORS.items():
        row = rows[case_id]
        assert row["track"] == "steady_state" and row["metric"] == "step_time_s" and row["model"] == "qwen3-235b-a22b"
        assert not row["layout_searched"], row["layout_searched"]
        assert row["error"] == pytest.approx(documented, abs=0.01), case_id
    # the all-to-all overlap is not modelled: both rows of the same layout get the same prediction
    a, b = rows["megatron-moe-qwen3-235b-h100x256-ep32-pp8"], rows["megatron-moe-qwen3-235b-h100x256-ep32-pp8-a2a-overlap"]
    assert a["predicted"] == pytest.approx(b["predicted"], rel=1e-12)


def test_megatron_bridge_rows_are_the_vendor_tables_on_the_2025_megatron_stack(doc):
    """validation/megatron_bridge.yaml: the 29 rows of NVIDIA's Megatron-Bridge performance tables (25.11 and 26.02
    containers) costsim has a model and GPU for, each on the megatron-core-2025 stack at the row's own degrees. The dense
    rows (Llama 3 and 3.1, 8B-405B) land within 18% (median 8.8%); the MoE rows, with §7.8's per-expert launches and
    current-scaling quantization, within 30% (median 6.5%)."""
    from simulator.inputs.published import public_cases

    cases = {c.id: c for c in public_cases() if c.id.startswith("megatron-bridge-")}
    assert len(cases) == 29 and all(c.stack_preset == "megatron-core-2025" for c in cases.values())
    rows = [c for c in doc["cases"] if c["id"] in cases]
    assert len(rows) == 29
    for r in rows:  # the row's degrees hold; only recomputation, which the tables do not give, is searched
        stated = cases[r["id"]].layout
        assert all(r["layout"][k] == stated[k] for k in ("tp", "pp", "cp", "ep", "dp", "micro_batch_size")), r["id"]
    dense = [abs(r["error"]) for r in rows if r["model"].startswith("llama")]
    moe = [abs(r["error"]) for r in rows if not r["model"].startswith("llama")]
    assert (len(dense), len(moe)) == (13, 16)
    assert max(dense) < 0.18 and statistics.median(dense) == pytest.approx(0.088, abs=0.005)
    assert statistics.median(moe) == pytest.approx(0.065, abs=0.005)
    assert max(moe) < 0.30


def test_a_case_states_its_fp8_recipe_and_mtp_depth(doc):
    """A case's stack may give the FP8 recipe (Megatron-Bridge's FP8-MX rows: block) and remove the spec's MTP modules
    ('DeepSeekV3 (w/o MTP)'); a value that does not apply is refused with the case named."""
    from dataclasses import replace as dc_replace

    from simulator.analysis.public_runs import case_scenario
    from simulator.errors import SpecError
    from simulator.inputs.published import public_cases

    cases = {c.id: c for c in public_cases()}
    no_mtp = cases["megatron-bridge-2511-gb200x256-deepseekv3-fp8-mx-no-mtp"]
    s = case_scenario(no_mtp)
    assert s.model.mtp_depth == 0 and s.job.fp8_recipe == "block"
    with_mtp = case_scenario(dc_replace(no_mtp, stack={k: v for k, v in no_mtp.stack.items() if k != "mtp_depth"}))
    assert with_mtp.model.mtp_depth == 1
    cs = case_scenario(cases["megatron-bridge-2511-h100x8-llama3-8b-fp8-cs"])
    assert cs.job.fp8_recipe == "tensor"
    for bad in ({"mtp_depth": 2}, {"mtp_depth": "one"}, {"fp8_recipe": "mx"}):
        with pytest.raises(SpecError, match=no_mtp.id):
            case_scenario(dc_replace(no_mtp, stack=no_mtp.stack | bad))
    bf16 = cases["megatron-bridge-2511-gb200x256-deepseekv3-bf16-no-mtp"]
    with pytest.raises(SpecError, match="fp8_recipe"):
        case_scenario(dc_replace(bf16, stack=bf16.stack | {"fp8_recipe": "block"}))


ADDED_OUT_OF_SAMPLE = {
    # id: (|error| bound, source)
    "megatron-core-gpt3-175b-h100-96": (0.06, "Megatron-LM README f2e5db402c, strong scaling: MFU 47% on 96 H100"),
    "megatron-core-gpt3-175b-h100-4608": (0.07, "same paragraph: MFU 42% on 4608 H100"),
    "megatron-gpt3-175b-a100-1024": (0.10, "Megatron-LM README 152aab304d: 'around 32 seconds' per iteration"),
    "olmo-core-7b-h100-4k": (0.05, "OLMo-core README c2be557a1: 9.7-10K tokens/s per device"),
    "olmo-core-13b-h100-4k": (0.12, "same table: 4.4-4.6K tokens/s per device"),
    "llmfoundry-mpt-7b-h100-8-seq4096": (0.05, "llm-foundry benchmarking README 061f2c7, H100 7B row at 4096"),
}


def test_runs_added_from_the_compilation_are_predicted_out_of_sample(doc):
    """The runs of the reference compilation that were neither cases nor excluded until 2026-12 (sources above), added
    with nothing refitted: none of them constrains a fitted constant (leave_one_out_error is None). Tolerances are each
    row's error when added, rounded up: Megatron-Core's strong scaling keeps its 47% -> 42% MFU drop (both 5-6% too
    fast), the OLMo-core 13B row is 10% too fast."""
    by_id = {c["id"]: c for c in doc["cases"]}
    for case_id, (bound, source) in ADDED_OUT_OF_SAMPLE.items():
        c = by_id[case_id]
        assert c["leave_one_out_error"] is None, case_id
        assert abs(c["error"]) <= bound, (case_id, c["error"], source)
    # The strong-scaling loss from 96 to 4608 GPUs, reported 42/47 = 0.894, is modelled within 2%.
    ratio = by_id["megatron-core-gpt3-175b-h100-4608"]["predicted"] / by_id["megatron-core-gpt3-175b-h100-96"]["predicted"]
    assert ratio == pytest.approx(42 / 47, abs=0.02)
    # The MI250X row counts GCDs, the devices its source counts (a world size of 1024 on 128 nodes), and is shown, not
    # dropped, at its 84% error.
    poro = by_id[KNOWN_WORST]
    assert poro["gpu"] == "mi250x-gcd" and poro["num_gpus"] == 1024 and poro["error"] > 0.5


def test_mi250x_profile_is_one_gcd():
    """AMD's table gives MI250X per module (383 TFLOP/s BF16, 128 GB, 3.2 TB/s, 560 W); a GCD is half of each."""
    from simulator.inputs.catalog import load_hardware

    gcd = load_hardware("mi250x-gcd")
    assert "mi250x" not in gcd.aliases  # a count of 'MI250X' would silently mean half as many modules
    assert gcd.dense_tflop_per_s.bf16.value == pytest.approx(383.0 / 2)
    assert gcd.memory_gib.value == 64 and gcd.memory_bandwidth_tb_per_s.value == pytest.approx(3.2 / 2)
    assert gcd.tdp_w.value == pytest.approx(560 / 2) and gcd.dense_tflop_per_s.fp8 is None


def test_megatron_flop_count_is_costsims_plus_the_masked_half_of_attention():
    """Megatron-LM's 2024 count (training.py num_floating_point_operations at f2e5db402c) charges full attention,
    12 s L h per token; costsim charges the causal half. For every model of validation/megatron_core_2024 the two differ
    by exactly 6 s L h per token, so the reported TFLOP/s become tokens/s with Megatron's own count."""
    from simulator.inputs.catalog import load_model
    from simulator.inputs.files import read_json
    from simulator.inputs.published import megatron_flops_per_token
    from simulator.model.layer_work import token_flops

    folder = Path(dataset_path()).parent / "megatron_core_2024"
    configs = sorted(folder.glob("gpt-*.json"))
    assert len(configs) == 9
    for path in configs:
        c = read_json(path)
        s, layers, h = 4096, c["n_layer"], c["n_embd"]
        megatron = megatron_flops_per_token(layers, h, s, c["vocab_size"], c["n_inner"])
        ours = token_flops(load_model(str(path)), s).training_flops
        assert megatron - ours == pytest.approx(6 * s * layers * h, rel=1e-3), path.name


def test_megatron_core_table_rows_agree_with_their_quoted_columns():
    """Each weak-scaling row of validation/megatron_core_2024/runs.yaml against its quoted table row (README f2e5db402c,
    images/model_table.png): TP x PP x DP is the GPU count, the per-GPU TFLOP/s is the stated figure, the MFU column
    is it over 989 TFLOP/s to the printed percent (the 462B row's 459.9 prints as 47%, which the profile's 989.4 would
    round to 46%), and the aggregate PFLOP/s column is it times the GPUs."""
    from simulator.inputs.files import read_yaml

    doc = read_yaml(Path(dataset_path()).parent / "megatron_core_2024" / "runs.yaml")
    rows = [r for r in doc["runs"] if "reported_tflop_per_s_per_gpu" in r]
    assert len(rows) == 9
    for r in rows:
        cells = table_cells(r["quote"])
        tp, pp, dp, gpus, batch = (int(x) for x in cells[4:9])
        tflop, mfu, aggregate = float(cells[9]), float(cells[10].rstrip("%")) / 100, float(cells[11])
        assert (tp, pp, dp, gpus, batch) == (r["tp"], r["pp"], r["dp"], r["gpus"], r["global_batch"]), r["id"]
        assert tp * pp * dp == gpus and tflop == r["reported_tflop_per_s_per_gpu"], r["id"]
        assert round(tflop / 989, 2) == pytest.approx(mfu), r["id"]
        assert tflop * gpus / 1000 == pytest.approx(aggregate, abs=0.15), r["id"]


def test_megatron_core_weak_scaling_rows_are_as_published_and_too_fast(doc):
    """The nine rows of Megatron-LM's H100 model table (README f2e5db402c, images/model_table.png): each at its stated
    TP, PP and DP with the distributed optimizer and TP overlap the README names, out of sample. costsim's achievable
    run is faster than every one (+5% to +28%; the 1.7B row at TP 1 most): Megatron-Core r0.8.0 on these shapes
    realized less than the profile's GEMM rate times gemm_sustain, as llm-foundry's H100 rows do (docs/model.md §14).
    They run on the megatron-core-2025 preset: r0.8.0 had 1F1B and interleaved schedules, not ZB-H1."""
    rows = [c for c in doc["cases"] if c["id"].startswith("megatron-core-2024-gpt-")]
    assert len(rows) == 9
    for c in rows:
        assert c["layout"]["dp"] == 48 and c["layout"]["zero_stage"] == 1 and c["leave_one_out_error"] is None
        assert 0.04 < c["error"] < 0.30, (c["id"], c["error"])
        assert c["layout"]["schedule"] in ("1f1b", "interleaved"), c["id"]
    by_id = {c["id"]: c for c in rows}
    assert by_id["megatron-core-2024-gpt-462b"]["layout"]["pp"] == 16
    assert by_id["megatron-core-2024-gpt-1.7b"]["layout"]["tp"] == 1
    assert max(rows, key=lambda c: c["error"])["id"] == "megatron-core-2024-gpt-1.7b"


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("global_batch: 192,", "batch: 192,", "global_batch"),
        ("reported_mfu: 0.47", "reported_mfu: 47", "reported_mfu"),
        ("config: gpt-1.7b.json", "config: missing.json", "missing.json"),
    ],
)
def test_a_malformed_megatron_core_dataset_is_a_spec_error(tmp_path, monkeypatch, old, new, named):
    """validation/megatron_core_2024: a missing field, an MFU given in percent or a config that is not there is one
    SpecError naming it, not a KeyError or a wrong figure."""
    import shutil

    from simulator.inputs import published

    src = Path(dataset_path()).parent / "megatron_core_2024"
    dst = tmp_path / "megatron_core_2024"
    shutil.copytree(src, dst)
    runs = dst / "runs.yaml"
    text = runs.read_text()
    assert old in text
    runs.write_text(text.replace(old, new, 1))
    monkeypatch.setattr(published, "_validation_dir", lambda: tmp_path)
    with pytest.raises(SpecError, match=named.replace(".", r"\.")):
        published.megatron_core_2024_runs()


def test_the_document_names_no_path_of_this_installation(doc):
    """21 cases named their model by this installation's absolute path (a review): shipped validation files are named
    by their path in the data ('validation/...'), so the JSON is the same on every machine."""
    models = [c["model"] for c in doc["cases"]]
    assert not any(m.startswith("/") for m in models)
    assert any(m.startswith("validation/") and m.endswith(".json") for m in models)
