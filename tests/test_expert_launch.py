"""Per-expert GEMM launches on Megatron-Core MoE stacks (docs/model.md §7.8): each of a MoE layer's local expert GEMMs
takes at least the host's launch time where the stack launches them one by one after the dropless dispatcher's host
sync, plus the expert's own quantization where FP8 current scaling quantizes each expert apart; both host times are
fitted (`costsim fit`) to steady-state MoE rows of such stacks, with leave-one-out errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import yaml
from fit_support import fit_made_rows

from simulator.inputs.assumptions import BASE, DEFAULT, FITTED_PATH
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import Job
from simulator.inputs.stacks import load_stack
from simulator.model.efficiency import device_rates
from simulator.model.layout import Layout
from simulator.model.step_time import Context, _gemm_time, _host_paced_s, expert_host_s
from simulator.run.estimate import estimate_achievable
from simulator.run.scenario import Scenario, stack_rates
from simulator.units import MICRO

LAYOUT = {"tp": 1, "pp": 1, "cp": 1, "ep": 8, "dp": 8, "micro_batch_size": 1, "zero_stage": 1, "recompute": "none"}


def _context(model: str, launch_s: float, tokens: int = 4096) -> Context:
    job = Job(8, tokens, tokens, tokens, "bf16")
    rates = replace(device_rates(load_hardware("b200"), DEFAULT), expert_launch_host_s=launch_s)
    lay = Layout(tp=1, dp=8, ep=8, micro_batch_size=1)
    return Context(load_model(model), job, lay, rates, DEFAULT)


def _step_s(model: str, stack: str, launch_s: float) -> float:
    a = replace(DEFAULT, expert_launch_host_s=launch_s)
    job = Job(8, 8 * 4096.0 * 64, 4096, 8 * 4096.0 * 64, "bf16")
    layout = LAYOUT if load_model(model).moe else LAYOUT | {"ep": 1}
    s = Scenario.of(load_model(model), load_hardware("b200"), job, layout, assumptions=a, stack=load_stack(stack))
    return estimate_achievable(s).step_time_s


def test_host_paced_formula_is_the_longer_of_gpu_time_and_launches():
    """max(GPU seconds, local experts x launch seconds) per routed GEMM and pass; a pass with no GEMM stays 0."""
    assert float(_host_paced_s(1e-3, 16, 80 * MICRO)) == pytest.approx(16 * 80 * MICRO)
    assert float(_host_paced_s(5e-3, 16, 80 * MICRO)) == pytest.approx(5e-3)
    assert float(_host_paced_s(0.0, 16, 80 * MICRO)) == 0.0
    got = _host_paced_s(np.array([1e-4, 1e-2]), np.array([4.0, 32.0]), 100 * MICRO)
    assert got == pytest.approx([4e-4, 1e-2])


def test_each_routed_gemm_of_each_pass_takes_local_experts_times_the_launch():
    """With a launch time far above any GPU time, a MoE layer's routed GEMMs cost exactly 3 passes (forward, input and
    weight gradient) x their GEMMs x local experts x the launch time; the attention GEMMs do not change."""
    launch = 10e-3
    paced, free = _gemm_time(_context("qwen3-30b-a3b", launch), "moe"), _gemm_time(_context("qwen3-30b-a3b", 0.0), "moe")
    local = 128 / 8
    routed = [g for g in _context("qwen3-30b-a3b", 0.0).work["moe"].gemms if g.routed]
    assert paced.step_parts["routed_experts"] == pytest.approx(3 * len(routed) * local * launch, rel=1e-9)
    assert paced.forward_parts["routed_experts"] == pytest.approx(len(routed) * local * launch, rel=1e-9)
    for part, seconds in free.step_parts.items():
        if part != "routed_experts":
            assert paced.step_parts[part] == seconds, part


def test_only_a_per_expert_stack_pays_and_dense_models_never_do():
    h = 80 * MICRO
    grouped, per_expert = _step_s("qwen3-30b-a3b", "current", h), _step_s("qwen3-30b-a3b", "megatron-core-2025", h)
    assert per_expert > 1.3 * grouped
    assert _step_s("qwen3-30b-a3b", "megatron-core-2025", 0.0) == pytest.approx(grouped, rel=1e-12)
    assert _step_s("llama-3.1-8b", "megatron-core-2025", h) == pytest.approx(_step_s("llama-3.1-8b", "current", h), rel=1e-12)


def test_stack_rates_carry_the_launch_time_of_per_expert_stacks_only():
    rates = device_rates(load_hardware("h100-sxm"), DEFAULT)
    a = replace(DEFAULT, expert_launch_host_s=70 * MICRO, expert_quantize_host_s=150 * MICRO)
    per_expert = stack_rates(rates, load_stack("megatron-core-2025"), a)
    assert (per_expert.expert_launch_host_s, per_expert.expert_quantize_host_s) == (70 * MICRO, 150 * MICRO)
    for name in ("current", "megatron-2023", "fsdp-2023"):
        other = stack_rates(rates, load_stack(name), a)
        assert other.expert_launch_host_s == other.expert_quantize_host_s == 0.0
    assert load_stack("megatron-core-2025").expert_gemm_launch == "per_expert"
    assert load_stack("megatron-core-2025").fp8_tensor_scaling == "current"
    assert load_stack().expert_gemm_launch == "grouped"


def test_expert_host_s_adds_the_quantization_for_fp8_current_scaling_only():
    """expert_host_s: h + q for FP8 with the tensor recipe (quantized by its current amax, expert by expert); h for
    BF16 and for block-scaled FP8 (bulk-allocated, no amax pass)."""
    rates = replace(device_rates(load_hardware("h100-sxm"), DEFAULT), expert_launch_host_s=70 * MICRO,
                    expert_quantize_host_s=150 * MICRO)  # fmt: skip
    assert expert_host_s(rates, "fp8", "tensor") == pytest.approx(220 * MICRO)
    assert expert_host_s(rates, "fp8", "block") == pytest.approx(70 * MICRO)
    assert expert_host_s(rates, "bf16", None) == pytest.approx(70 * MICRO)


def test_an_fp8_tensor_step_on_the_per_expert_stack_pays_the_quantization():
    """The same FP8 MoE step on megatron-core-2025 is slower with the tensor recipe than the host-paced launches alone
    make it, by the quantization time; with the block recipe or BF16 the quantization costs nothing."""

    def step(precision: str, recipe: str | None, quantize_s: float) -> float:
        a = replace(DEFAULT, expert_launch_host_s=80 * MICRO, expert_quantize_host_s=quantize_s)
        job = Job(8, 8 * 4096.0 * 64, 4096, 8 * 4096.0 * 64, precision, fp8_recipe=recipe)  # type: ignore[arg-type]
        s = Scenario.of(load_model("qwen3-30b-a3b"), load_hardware("b200"), job, LAYOUT, assumptions=a,
                        stack=load_stack("megatron-core-2025"))  # fmt: skip
        return estimate_achievable(s).step_time_s

    assert step("fp8", "tensor", 150 * MICRO) > 1.2 * step("fp8", "tensor", 0.0)
    assert step("fp8", "block", 150 * MICRO) == pytest.approx(step("fp8", "block", 0.0), rel=1e-12)
    assert step("bf16", None, 150 * MICRO) == pytest.approx(step("bf16", None, 0.0), rel=1e-12)


def test_fit_recovers_a_launch_time_the_rows_were_made_with():
    """Rows whose reported figure is costsim's own prediction at 50 us give back 50 us, with in-sample and
    leave-one-out errors of zero."""
    from simulator.analysis.fit import expert_launch_cases, fit_expert_launch

    cases = [c for c in expert_launch_cases() if "qwen3-30b" in c.id or "tp4-ep8" in c.id][:3]
    assert len(cases) == 3
    truth = replace(BASE, gemm_sustain=DEFAULT.gemm_sustain, expert_launch_host_s=50 * MICRO)
    grid = np.arange(0.0, 100.01, 10.0) * MICRO
    fit, made = fit_made_rows(fit_expert_launch, cases, truth, "expert_launch_host_s", grid)
    assert fit["value"] == pytest.approx(50 * MICRO, rel=0.02)
    assert fit["constrained_by"] == 3 and fit["median_abs_leave_one_out_error"] < 0.01
    assert fit["sigma"] < 0.02  # every leave-one-out refit finds the same value
    assert fit_expert_launch(made[:1], truth, grid) is None


def test_fit_recovers_a_quantization_time_the_rows_were_made_with():
    """FP8 current-scaling rows made at q = 120 us (h held) give back 120 us with zero leave-one-out errors."""
    from simulator.analysis.fit import expert_quantize_cases, fit_expert_quantize

    cases = expert_quantize_cases()
    assert len(cases) >= 2
    truth = replace(BASE, gemm_sustain=DEFAULT.gemm_sustain, expert_launch_host_s=DEFAULT.expert_launch_host_s,
                    expert_quantize_host_s=120 * MICRO)  # fmt: skip
    grid = np.arange(0.0, 240.01, 20.0) * MICRO
    fit, _ = fit_made_rows(fit_expert_quantize, cases, truth, "expert_quantize_host_s", grid)
    assert fit["value"] == pytest.approx(120 * MICRO, rel=0.02)
    assert fit["median_abs_leave_one_out_error"] < 0.01


def test_the_shipped_value_is_the_fit_and_its_data_are_written_beside_it():
    """DEFAULT takes simulator/data/fitted_constants.yaml's expert_launch_host_s; the file holds the rows that
    constrain it (every steady-state MoE row of a per-expert stack but those in FP8 current scaling, from three
    sources: the Megatron-Bridge tables, the Megatron MoE model zoo and a Pai-Megatron-Patch user's measurement), each
    with its in-sample and leave-one-out error."""
    from simulator.analysis.fit import current_scaled, expert_launch_cases

    doc = yaml.safe_load(FITTED_PATH.read_text())
    fit = doc["expert_launch_fit"]
    assert DEFAULT.expert_launch_host_s == doc["expert_launch_host_s"] == fit["value"]
    assert 20 * MICRO < fit["value"] < 200 * MICRO
    ids = [c["id"] for c in fit["cases"]]
    assert ids == [c.id for c in expert_launch_cases()] and fit["constrained_by"] == len(ids) >= 19
    assert not any(current_scaled(c) for c in expert_launch_cases())
    assert {i.split("-")[0] + "-" + i.split("-")[1] for i in ids} == {"megatron-bridge", "megatron-moe", "pai-megatron"}
    assert all({"in_sample_error", "leave_one_out_error"} <= set(c) for c in fit["cases"])
    assert fit["median_abs_leave_one_out_error"] == pytest.approx(0.112, abs=0.005)  # docs/model.md §7.8


def test_the_shipped_quantization_time_is_the_fit_of_the_current_scaling_rows():
    """expert_quantize_host_s is fitted to the FP8 current-scaling MoE rows of the per-expert stack (Megatron-Bridge's
    H100 FP8-CS tables: Qwen3-30B-A3B on 16 GPUs and Qwen3-235B-A22B on 256, two independent configurations), with
    expert_launch_host_s held; each row's leave-one-out error is the fit of the others predicting it."""
    from simulator.analysis.fit import expert_quantize_cases

    doc = yaml.safe_load(FITTED_PATH.read_text())
    fit = doc["expert_quantize_fit"]
    assert DEFAULT.expert_quantize_host_s == doc["expert_quantize_host_s"] == fit["value"]
    assert 50 * MICRO < fit["value"] < 400 * MICRO
    cases = expert_quantize_cases()
    assert [c["id"] for c in fit["cases"]] == [c.id for c in cases] and fit["constrained_by"] == len(cases) >= 3
    assert len({c.model for c in cases}) >= 2
    assert fit["max_abs_leave_one_out_error"] < 0.10  # docs/model.md §7.8: 3.5%


@pytest.mark.parametrize("key", ["expert_launch_fit", "expert_quantize_fit"])
def test_stored_launch_fit_describes_the_current_model(key):
    """Each row a host time was fitted on is predicted now (validate public) with the in-sample error the fit file
    records (within 0.5 points): if this fails, the model changed without `costsim fit` being rerun."""
    from simulator.analysis.public_runs import evaluate

    fit = yaml.safe_load(FITTED_PATH.read_text())[key]
    ids = {c["id"] for c in fit["cases"]}
    now = {r.case.id: r for r in evaluate() if r.case.id in ids}
    assert set(now) == ids
    for case in fit["cases"]:
        assert now[case["id"]].error == pytest.approx(case["in_sample_error"], abs=0.005), case["id"]


def test_an_moe_estimate_on_todays_stack_says_what_per_expert_launches_would_cost():
    """estimate's notes: an MoE run on a grouped stack with many local experts names the slowdown of the same layout
    on megatron-core-2025 (the ratio of the two modelled steps); none on that stack itself, for few local experts or a
    dense model."""
    from simulator.run.estimate import PER_EXPERT_NOTE_RATIO, estimate, estimate_scenario
    from simulator.run.scenario import resolve

    def notes(model: str, **kw) -> list[str]:
        s = resolve(model, "h100-sxm", 64, 1e12, **kw)
        return [n for n in estimate_scenario(s).expected.notes if "local experts per GPU" in n]

    s = resolve("qwen3-30b-a3b", "h100-sxm", 64, 1e12, layout={"ep": 8})
    runs = estimate_scenario(s)
    (note,) = [n for n in runs.expected.notes if "local experts per GPU" in n]
    slow = estimate(s.model, s.hardware, s.job, runs.expected.layout.to_dict(), s.pricing, s.assumptions,
                    stack_rates(s.rates, load_stack("megatron-core-2025"), s.assumptions))  # fmt: skip
    ratio = slow.step.step_time_s / runs.expected.step.step_time_s
    assert ratio >= PER_EXPERT_NOTE_RATIO and f"{ratio:.2f}x" in note and "16 local experts" in note
    assert notes("qwen3-30b-a3b", layout={"ep": 8}, stack="megatron-core-2025") == []
    assert notes("qwen3-30b-a3b", layout={"ep": 32}) == []
    assert notes("llama-3.1-8b") == []


def test_the_band_draws_the_launch_time_where_the_stack_charges_it():
    """--uncertainty on megatron-core-2025 draws expert_launch_host_s (lognormal, sigma the fit's jackknife standard
    error), and a draw moves the step through the rates; on today's stack it is not an input."""
    from simulator.analysis.uncertainty import Point, apply, band_for_estimate, host_time_sigma
    from simulator.run.estimate import estimate_expected
    from simulator.run.scenario import resolve

    sigma, source = host_time_sigma()
    fit = yaml.safe_load(FITTED_PATH.read_text())["expert_launch_fit"]
    assert sigma == fit["sigma"] and 0 < sigma < 0.5 and "jackknife" in source
    layout = {"ep": 8, "micro_batch_size": 1, "recompute": "none"}
    per_expert = estimate_expected(resolve("qwen3-30b-a3b", "h100-sxm", 64, 1e12, layout=layout, stack="megatron-core-2025"))
    band = band_for_estimate(per_expert, "qwen3-30b-a3b", "h100-sxm", draws=2000)
    (h,) = [i for i in band.inputs if i.name == "expert_launch_host_s"]
    assert h.nominal == per_expert.rates.expert_launch_host_s == DEFAULT.expert_launch_host_s
    assert "expert_launch_host_s" in [t.name for t in band.tornado]
    base = Point(per_expert.assumptions, per_expert.rates, 2.0, 1e12)
    assert apply(base, band.inputs, {"expert_launch_host_s": 2 * h.nominal}).rates.expert_launch_host_s == 2 * h.nominal
    assert all(i.name != "expert_quantize_host_s" for i in band.inputs)  # a BF16 run: no quantization to draw
    fp8 = estimate_expected(resolve("qwen3-30b-a3b", "h100-sxm", 64, 1e12, layout=layout, stack="megatron-core-2025",
                                    precision="fp8", fp8_recipe="tensor"))  # fmt: skip
    (q,) = [i for i in band_for_estimate(fp8, "qwen3-30b-a3b", "h100-sxm", draws=2000).inputs
            if i.name == "expert_quantize_host_s"]  # fmt: skip
    assert q.nominal == DEFAULT.expert_quantize_host_s > 0
    grouped = estimate_expected(resolve("qwen3-30b-a3b", "h100-sxm", 64, 1e12, layout=layout))
    inputs = band_for_estimate(grouped, "qwen3-30b-a3b", "h100-sxm", draws=2000).inputs
    assert all(i.name not in ("expert_launch_host_s", "expert_quantize_host_s") for i in inputs)


def test_an_fp8_tensor_moe_estimate_on_the_per_expert_stack_says_current_scaling_is_assumed():
    """The stack's tensor recipe is taken as current scaling (Megatron-Bridge's FP8-CS), though Megatron-LM defaults to
    delayed scaling: the estimate says so, with the quantization time; BF16, block FP8 and grouped stacks say nothing."""
    from simulator.run.estimate import estimate_scenario
    from simulator.run.scenario import resolve

    def notes(**kw) -> list[str]:
        s = resolve("qwen3-30b-a3b", "h100-sxm", 64, 1e12, layout={"ep": 8}, **kw)
        return [n for n in estimate_scenario(s).expected.notes if "taken as current scaling" in n]

    (note,) = notes(stack="megatron-core-2025", precision="fp8", fp8_recipe="tensor")
    assert f"{DEFAULT.expert_quantize_host_s / MICRO:.0f} us" in note and "delayed scaling" in note
    assert (
        notes(stack="megatron-core-2025") == [] and notes(stack="megatron-core-2025", precision="fp8", fp8_recipe="block") == []
    )
    assert notes(precision="fp8", fp8_recipe="tensor") == []
