"""Software stacks (simulator/data/stacks.yaml, inputs/stacks.py) and the two numbers of a run (issue 11): the
achievable run searches what the stack offers; the expected run uses what practitioners ran on it, realized."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simulator import api
from simulator.errors import InputError, SpecError
from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import make_job
from simulator.inputs.stacks import LayoutLimits, default_stack_name, load_stack, stack_names
from simulator.run.estimate import estimate, estimate_achievable, estimate_expected
from simulator.run.scenario import Scenario, resolve
from simulator.run.search import search

LLAMA_8B = load_model("llama-3.1-8b")
H100 = load_hardware("h100-sxm")


def test_every_stack_loads_with_sources_and_today_is_the_default():
    assert default_stack_name() == "current"
    assert set(stack_names()) >= {"megatron-2021", "megatron-2022", "fsdp-2023", "megatron-2023", "current"}
    for name in stack_names():
        s = load_stack(name)
        assert s.sources and s.description and 2015 <= s.year <= 2100
    with pytest.raises(SpecError, match="unknown stack 'tpu'.*megatron-2021"):
        load_stack("tpu")


def test_practice_lies_inside_what_the_stack_offers():
    s = load_stack("megatron-2022")
    practice = s.practice_limits
    assert practice.recompute == ["selective", "full"] and practice.zero_stage == [1]
    assert practice.schedule == ["1f1b", "interleaved"] and practice.tp_max == 8
    merged = LayoutLimits(recompute=["none", "full"]).within(LayoutLimits(recompute=["full"]))
    assert merged.recompute == ["full"]


def test_a_stack_limits_every_searched_layout():
    """Megatron-LM 2021 (Narayanan et al. 2021): 1F1B or interleaved, no or full recompute, no ZeRO, no CP, no TP overlap."""
    job = make_job(LLAMA_8B, 64, 1e12, 8192, None, "bf16")
    limits = load_stack("megatron-2021").offers
    result = search(LLAMA_8B, H100, job, {}, limits=limits)
    lay = result.layouts
    assert set(lay.schedule) <= {"1f1b", "interleaved"} and set(lay.recompute) <= {"none", "full"}
    assert set(lay.zero_stage) == {0} and set(lay.cp) == {1} and not lay.tp_overlap.any()
    everything = search(LLAMA_8B, H100, job, {})
    assert everything.n_valid > result.n_valid
    assert {"zb-h1", "dualpipe"} <= set(everything.layouts.schedule) and set(everything.layouts.zero_stage) == {0, 1, 2, 3}


def test_todays_stack_offers_everything_the_search_had():
    """The achievable run on the default stack is the unrestricted search of before stacks existed."""
    s = resolve(LLAMA_8B, H100, 64, 1e12)
    assert estimate_achievable(s).layout == estimate(LLAMA_8B, H100, s.job).layout


def test_the_user_s_layout_flags_hold_in_both_numbers():
    r = api.estimate("llama-3.1-8b", "h100", 64, "1T", stack="megatron-2022", recompute="none", zero_stage=3)
    for run in (r.estimate, r.achievable):
        assert run.layout.recompute == "none" and run.layout.zero_stage == 3


def test_the_expected_run_uses_the_practice_layout_and_costs_at_least_the_achievable():
    r = api.estimate("llama-3.1-70b", "h100", 1024, "15T", stack="megatron-2022")
    practice = load_stack("megatron-2022").practice_limits
    assert r.estimate.layout.recompute in practice.recompute and r.estimate.layout.tp <= 8
    assert r.estimate.basis == "expected" and r.achievable.basis == "achievable"
    assert r.estimate.realization >= 1 and r.estimate.gpu_hours >= r.achievable.gpu_hours  # practice is a subset
    d = r.to_dict()
    assert d["basis"] == "expected" and d["stack"] == "megatron-2022"
    assert d["achievable"]["gpu_hours"] == r.achievable.gpu_hours and d["achievable"]["layout"] == r.achievable.layout.to_dict()
    assert d["gpu_hours"] == r.estimate.gpu_hours


def test_the_realization_scales_the_expected_step_and_the_breakdown_still_adds_up():
    s = resolve(LLAMA_8B, H100, 64, 1e12, layout={"tp": 1, "pp": 1, "cp": 1, "zero_stage": 1, "recompute": "full"})
    plain = estimate_expected(s)
    realized = estimate_expected(replace(s, assumptions=replace(DEFAULT, realization=1.3)))
    assert realized.layout == plain.layout
    assert realized.step_time_s == pytest.approx(1.3 * realized.step.step_time_s, rel=1e-12)
    assert sum(realized.breakdown_s.values()) == pytest.approx(realized.step_time_s, rel=1e-9)
    assert realized.breakdown_s["realization_gap"] == pytest.approx(0.3 * realized.step.step_time_s, rel=1e-12)
    assert realized.mfu == pytest.approx(plain.mfu / 1.3 * plain.realization, rel=1e-9)


def test_a_stack_sets_the_attention_kernel_and_the_fp8_recipes():
    assert resolve(LLAMA_8B, H100, 64, 1e12, stack="megatron-2021").job.attention_kernel == "unfused"
    assert resolve(LLAMA_8B, H100, 64, 1e12, stack="megatron-2023").job.attention_kernel == "flash"
    v3 = load_model("deepseek-v3")
    h800 = load_hardware("h800")
    assert resolve(v3, h800, 2048, 1e12, precision="fp8").job.fp8_recipe == "block"  # V3's published recipe
    assert resolve(v3, h800, 2048, 1e12, precision="fp8", stack="megatron-2023").job.fp8_recipe == "tensor"
    with pytest.raises(InputError, match="fp8 is not available on stack megatron-2021"):
        resolve(LLAMA_8B, H100, 64, 1e12, precision="fp8", stack="megatron-2021")
    with pytest.raises(InputError, match="--fp8-recipe block is not available on stack megatron-2023"):
        resolve(v3, h800, 2048, 1e12, precision="fp8", fp8_recipe="block", stack="megatron-2023")


def test_a_stack_runs_its_own_flash_attention_kernel():
    """docs/model.md §7.5: fsdp-2023 ran llm-foundry's Triton FlashAttention, megatron-2023 FlashAttention-2, today's
    stack today's kernel; the scenario's rates (and so the step time) take the profile's figure for that kernel."""
    assert load_stack("fsdp-2023").attention_kernel == "triton-fa"
    assert load_stack("megatron-2023").attention_kernel == "fa2"
    assert load_stack("current").attention_kernel is None
    peak = H100.peak_flop_per_s("bf16")
    by_stack = {name: resolve(LLAMA_8B, H100, 64, 1e12, stack=name).rates.attention_flop_per_s for name in stack_names()}
    # triton-fa's 0.174 is its forward + backward rate; its forward runs faster than that (attention_split).
    assert by_stack["fsdp-2023"] == pytest.approx(peak * 0.174 * (1 + 2.5 * 2 / 1.4) / 3.5)
    assert by_stack["megatron-2023"] == pytest.approx(peak * 0.34)
    assert by_stack["current"] == pytest.approx(peak * 0.5)
    job = make_job(LLAMA_8B, 64, 1e12, 8192, None, "bf16")
    for name in ("fsdp-2023", "current"):  # Scenario.of (validation) as resolve (the command line)
        scenario = Scenario.of(LLAMA_8B, H100, job, stack=load_stack(name))
        assert scenario.rates.attention_flop_per_s == pytest.approx(by_stack[name])
    slow = Scenario.of(LLAMA_8B, H100, job, {"tp": 1, "pp": 1, "micro_batch_size": 1}, stack=load_stack("fsdp-2023"))
    fast = replace(slow, rates=Scenario.of(LLAMA_8B, H100, job, stack=load_stack("current")).rates)
    a, b = estimate_achievable(slow).breakdown_s, estimate_achievable(fast).breakdown_s
    assert a["attention_core"] == pytest.approx(b["attention_core"] * 0.5 / 0.174, rel=1e-9)


def test_the_command_line_takes_a_stack_and_lists_them():
    from cli_support import invoke

    out = invoke("estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T", "--stack", "megatron-2021",
                 "--format", "json")  # fmt: skip
    import json

    d = json.loads(out.output)
    assert d["stack"] == "megatron-2021" and d["achievable"]["stack"] == "megatron-2021"
    assert d["layout"]["recompute"] == "full"  # Megatron-LM 2021 practice: full recomputation
    listed = invoke("list", "stacks")
    assert all(name in listed.output for name in stack_names()) and "Narayanan" in listed.output


def test_list_stacks_says_how_each_runs_moe_experts():
    """`costsim list stacks`: only megatron-core-2025 launches each local expert's GEMM from the host (docs/model.md
    §7.8); the table shows it in its MoE experts column."""
    import json

    from cli_support import invoke

    rows = json.loads(invoke("list", "stacks", "--format", "json").output)["stacks"]
    launch = {r["name"]: r["expert_gemm_launch"] for r in rows}
    assert launch.pop("megatron-core-2025") == "per_expert" and set(launch.values()) == {"grouped"}
    scaling = {r["name"]: r["fp8_tensor_scaling"] for r in rows}
    assert scaling.pop("megatron-core-2025") == "current" and set(scaling.values()) == {"delayed"}
    table = invoke("list", "stacks").output
    assert "MoE experts" in table and "per expert" in table and "tensor: current scaling" in table
