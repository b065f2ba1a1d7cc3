"""Training plans: the shipped plans load and run, totals are the sums of their stages, published totals are met,
and bad plans fail with one clean message.

The shipped plans fix the published layout fields, so each stage searches only a few unpublished ones (~0.3 s).
"""

from __future__ import annotations

import copy
import csv
import functools
import io
import json
from pathlib import Path

import pytest
import yaml
from cli_support import clean_error, invoke

from simulator import api
from simulator.errors import SpecError
from simulator.inputs.catalog import load_model
from simulator.inputs.data_files import plan_dir
from simulator.inputs.plan_file import load_plan, model_ref, plan_ids

assert_clean_error = functools.partial(clean_error, error="prefix")


def _plan(name):
    return api.plan(name).plan


# A small plan that evaluates complete layouts only: llama-3.1-8b on 64 x H100, two stages.
SMALL_PLAN = {
    "name": "small",
    "source": "test",
    "model": "llama-3.1-8b",
    "gpu": "h100-sxm",
    "usd_per_gpu_hour": 2.5,
    "price_source": "test quote",
    "stages": [
        {
            "name": "pre-training",
            "tokens": "1T",
            "seq_len": 8192,
            "global_batch_tokens": 4194304,
            "num_gpus": 64,
            **{"tp": 1, "pp": 1, "zero_stage": 3, "micro_batch_size": 1, "schedule": "1f1b", "recompute": "none"},
        },
        {
            "name": "long-context",
            "tokens": "20B",
            "seq_len": 32768,
            "global_batch_tokens": 4194304,
            "num_gpus": 64,
            **{"tp": 2, "pp": 1, "cp": 4, "zero_stage": 3, "micro_batch_size": 1, "schedule": "1f1b", "recompute": "full"},
        },
    ],
}


def write_plan(tmp_path: Path, plan: dict | str, name: str = "plan.yaml") -> str:
    path = tmp_path / name
    path.write_text(plan if isinstance(plan, str) else yaml.safe_dump(plan, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def v3_json() -> dict:
    r = invoke("estimate", "--plan", "deepseek-v3", "--format", "json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


# --------------------------------------------------------------------------- shipped plans


def test_shipped_plans_are_found_by_name():
    assert {"deepseek-v3", "llama-3.1-405b"} <= set(plan_ids())
    for name in ("deepseek-v3", "llama-3.1-405b"):
        plan, path = load_plan(name)
        assert plan.name == name == path.stem and path.parent == plan_dir()
        assert all(s.source for s in plan.stages), "every stage names its source"


def test_v3_plan_has_the_published_stages_and_recipe():
    plan, _ = load_plan("deepseek-v3")
    stages = {s.name: s for s in plan.stages}
    assert list(stages) == ["pre-training", "context-32k", "context-128k", "post-training-sft"]
    pre = stages["pre-training"]
    # DeepSeek-V3 report §4.2 (14.8T tokens, 4K, 15360 sequences), §3.1-3.2 (2048 H800, TP1 PP16 EP64 ZeRO-1 DualPipe).
    assert (pre.tokens, pre.seq_len, pre.global_batch_tokens) == (14.8e12, 4096, 15360 * 4096)
    assert (pre.num_gpus, pre.tp, pre.pp, pre.ep, pre.zero_stage, pre.schedule, pre.precision) == (
        2048, 1, 16, 64, 1, "dualpipe", "fp8",
    )  # fmt: skip
    # §4.3: two phases of 1000 steps, 32K x 1920 then 128K x 480.
    assert stages["context-32k"].tokens == 1000 * 1920 * 32768 and stages["context-32k"].global_batch_tokens == 1920 * 32768
    assert stages["context-128k"].tokens == 1000 * 480 * 131072 and stages["context-128k"].global_batch_tokens == 480 * 131072
    whole = [r for r in plan.reported if not r.stages]
    assert whole[0].gpu_hours == 2.788e6 and whole[0].cost_usd == 5.576e6  # Table 1


def test_v3_plan_totals_are_the_sums_of_its_stages(v3_json):
    d = v3_json
    stages = d["stages"]
    assert len(stages) == 4
    assert d["gpu_hours"] == pytest.approx(sum(s["gpu_hours"] for s in stages), rel=1e-12)
    assert d["wall_clock_days"] == pytest.approx(sum(s["wall_clock_days"] for s in stages), rel=1e-12)
    assert d["tokens"] == pytest.approx(sum(s["tokens"] for s in stages), rel=1e-12)
    assert d["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in stages), rel=1e-12)
    # Every stage is priced at the plan's $2/GPU-hour (DeepSeek-V3 Table 1), so cost = GPU-hours x 2.
    assert d["cost_usd"] == pytest.approx(2.0 * d["gpu_hours"], rel=1e-12)
    for s in stages:
        assert s["cost_usd"] == pytest.approx(2.0 * s["gpu_hours"], rel=1e-12)
        assert s["gpu_hours"] == pytest.approx(s["ideal_gpu_hours"] / s["goodput"]["ettr"], rel=1e-9)
    assert stages[0]["layout"]["tp"] == 1 and stages[0]["layout"]["pp"] == 16 and stages[0]["layout"]["ep"] == 64
    checks = {str(r["stages"]): r for r in d["reported"]}
    assert checks["all"]["predicted_gpu_hours"] == pytest.approx(d["gpu_hours"])
    assert checks["['pre-training']"]["predicted_gpu_hours"] == pytest.approx(stages[0]["gpu_hours"])
    assert d["error_vs_reported"] == pytest.approx(d["gpu_hours"] / 2.788e6 - 1)


def test_v3_plan_within_10_percent_of_the_reported_total(v3_json):
    """DeepSeek-V3 Technical Report (arXiv:2412.19437) Table 1: 2.788M H800 GPU-hours and $5.576M in all
    (pre-training 2,664K + context extension 119K + post-training 5K). Tolerance 10% (the issue's target),
    on GPU-hours and on dollars, both at the report's $2 per GPU-hour."""
    # Issue 11: checked against the achievable run (DeepSeek ran a frontier-tuned stack); the expected run is above it.
    achievable = v3_json["achievable"]
    error = achievable["error_vs_reported"]
    assert error == pytest.approx(achievable["gpu_hours"] / 2.788e6 - 1)
    assert abs(error) <= 0.10, f"{error:+.1%}"
    assert achievable["gpu_hours"] < v3_json["gpu_hours"]
    assert achievable["cost_usd"] == pytest.approx(2.0 * achievable["gpu_hours"], rel=1e-12)  # $2/GPU-hour, as reported
    assert abs(achievable["cost_usd"] / 5.576e6 - 1) <= 0.10
    pre = v3_json["stages"][0]
    assert pre["name"].startswith("pre")
    # Pre-training is 96% of the reported total and must hold on its own, not by errors that cancel.
    assert abs(pre["achievable"]["gpu_hours"] / 2.664e6 - 1) <= 0.10


def test_llama_plan_runs_with_the_table_4_layouts():
    result = _plan("llama-3.1-405b")
    pre, long = result.stages
    # Llama 3 paper Table 4: TP8 CP1 PP16 on 16,384 GPUs at 8K, TP8 CP16 PP16 at 128K.
    assert (pre.estimate.layout.tp, pre.estimate.layout.cp, pre.estimate.layout.pp, pre.estimate.layout.dp) == (8, 1, 16, 128)
    assert (long.estimate.layout.tp, long.estimate.layout.cp, long.estimate.layout.pp) == (8, 16, 16)
    assert result.tokens == pytest.approx(15.6e12)  # §3.4: 15.6T tokens in all
    assert result.reported_total_gpu_hours == 30.84e6  # Llama 3.1 model card
    # Priced at the h100-sxm profile's quote: the plan gives no price (Meta reports none).
    assert result.cost["cost_usd"] == pytest.approx(result.gpu_hours * pre.hw.price.usd_per_gpu_hour)


def test_llama_plan_reads_table_4_as_validate_public_does():
    """The same published run, two commands: the plan's 8K stage holds §3.3.2's layout as validate public's
    llama-3.1-405b case does (TP8 PP16 CP1, ZeRO-1 for FSDP without resharding, no recomputation) and costs it as if it
    fitted (the run ran; costsim's memory model puts it at 84.7 GiB), so its GPU-hours per token equal the case's
    within 1% (Llama 3 §3.3.2 and Table 4; Llama 3.1 model card). Before, the plan let the search take ZeRO-3 where
    ZeRO-1 did not fit and charged 89.6M GPU-hours (+190%) to validate public's 52.1M."""
    from simulator.analysis.public_runs import case_estimate
    from simulator.inputs.published import public_cases
    from simulator.run.basis_notes import MEMORY_MISS

    pre = _plan("llama-3.1-405b").stages[0]
    case = next(c for c in public_cases() if c.id == "llama-3.1-405b")
    published = case_estimate(case)
    lay = pre.estimate.layout
    assert pre.stage.ran_at_layout and (lay.tp, lay.cp, lay.pp, lay.zero_stage, lay.recompute) == (8, 1, 16, 1, "none")
    assert (lay.zero_stage, lay.recompute) == (published.layout.zero_stage, published.layout.recompute)
    assert any(n.startswith(MEMORY_MISS) for n in pre.estimate.notes)
    per_token = pre.estimate.gpu_hours / pre.stage.tokens
    assert per_token == pytest.approx(published.gpu_hours / published.job.tokens, rel=0.01)


def test_a_stage_that_ran_at_its_layout_is_costed_as_if_it_fitted(tmp_path):
    """A stage whose stated layout costsim's memory model refuses is refused, with the way to say that the run trained
    at it; with ran_at_layout it is costed at that layout, and the JSON (estimate_notes) and the table (training
    notes) say the memory model would refuse it, without the refusal's fix (the run ran)."""
    plan = json.loads(json.dumps(SMALL_PLAN))
    plan["stages"] = [plan["stages"][0] | {"num_gpus": 8, "cp": 1, "zero_stage": 1, "seq_len": 8192}]  # 8B: 99 GiB
    assert_clean_error(invoke("estimate", "--plan", write_plan(tmp_path, plan)), "does not fit", "ran_at_layout: true")
    plan["stages"][0]["ran_at_layout"] = True
    r = invoke("estimate", "--plan", write_plan(tmp_path, plan), "--format", "json")
    assert r.exit_code == 0, r.output
    stage = json.loads(r.output)["stages"][0]
    assert stage["ran_at_layout"] and stage["layout"]["zero_stage"] == 1 and stage["memory_per_gpu_gib"] > 80
    miss = [n for n in stage["estimate_notes"] if n.startswith("costsim's memory model finds no layout that fits")]
    assert len(miss) == 1 and "short" in miss[0] and "Try " not in miss[0]
    # Just the memory the least-needing layout asks for, not unlimited: the costed layout is the one the note names.
    assert f"needs {stage['memory_per_gpu_gib']:.1f} GiB per GPU" in miss[0]
    assert not any("memory is nearly full" in n for n in stage["estimate_notes"])  # over, not nearly full
    table = invoke("estimate", "--plan", write_plan(tmp_path, plan)).output
    assert "training notes" in table and "but the run ran; predicted as if it fitted" in table
    # The report's scaling table marks that size, and says the other sizes are judged by the memory model.
    r = invoke("report", "--plan", write_plan(tmp_path, plan), "--output", str(tmp_path / "report"))
    assert r.exit_code == 0, r.output
    md = (tmp_path / "report" / "report.md").read_text()
    assert "(this estimate, as if it fitted)" in md and "The other sizes are judged by the memory model" in md


def test_a_stage_that_ran_must_state_its_layout_and_one_that_could_not_have_run_is_refused(tmp_path):
    """ran_at_layout costs a refused layout as if it fitted only where the stage states it: without tp, pp, cp,
    zero_stage and recompute (a review's 405B stage stated none and was costed at TP1 PP1 with 8.8 TB per GPU, exit 0)
    the plan is refused naming them; an MoE stage must state ep too; and a stated layout needing 1.5x its GPU's memory
    or more (MAX_MEMORY_MISS; costsim's memory model misses published runs by at most 1.22x) could not have run."""
    plan = json.loads(json.dumps(SMALL_PLAN))
    bare = {k: v for k, v in plan["stages"][0].items() if k not in ("tp", "pp", "zero_stage", "recompute")}
    plan["stages"] = [bare | {"ran_at_layout": True}]
    assert_clean_error(
        invoke("estimate", "--plan", write_plan(tmp_path, plan)), "does not state tp, pp, cp, zero_stage, recompute"
    )
    moe = copy.deepcopy(plan) | {"model": "mixtral-8x7b"}
    moe["stages"][0] |= {"tp": 1, "pp": 1, "cp": 1, "zero_stage": 1, "recompute": "none"}
    assert_clean_error(invoke("estimate", "--plan", write_plan(tmp_path, moe)), "MoE model", "does not state ep")
    huge = copy.deepcopy(plan) | {"model": "llama-3.1-405b"}
    huge["stages"][0] |= {"tp": 1, "pp": 1, "cp": 1, "zero_stage": 0, "recompute": "none"}
    r = invoke("estimate", "--plan", write_plan(tmp_path, huge))
    assert_clean_error(r, "the GPU's memory, beyond the 1.5x a run that ran may need", "could not have run")
    assert "set ran_at_layout" not in r.output  # it is set


def test_the_largest_memory_miss_the_boundary_names_is_validate_publics():
    """LARGEST_PUBLISHED_MEMORY_MISS (named in the refusal above) is the largest need over its GPU's memory among
    validate public's runs that ran but do not fit costsim's memory model, and MAX_MEMORY_MISS lies above it."""
    from simulator.analysis.public_runs import case_estimate
    from simulator.inputs.catalog import load_hardware
    from simulator.inputs.published import public_cases
    from simulator.run.basis_notes import MEMORY_MISS
    from simulator.run.estimate import LARGEST_PUBLISHED_MEMORY_MISS, MAX_MEMORY_MISS

    ratios = []
    for case in public_cases():
        est = case_estimate(case)
        if any(n.startswith(MEMORY_MISS) for n in est.notes):
            ratios.append(est.step.memory.total_bytes / load_hardware(case.gpu).memory_bytes)
    assert len(ratios) >= 2 and round(max(ratios), 2) == LARGEST_PUBLISHED_MEMORY_MISS < MAX_MEMORY_MISS


def test_a_plan_band_over_two_gpu_generations_is_centred_on_the_plan(tmp_path):
    """A plan whose stages run on an Ampere and a Hopper GPU: the band's nominal is the plan's own GPU-hours, each
    stage realized at its own generation's factor (docs/model.md §12.2: 1.30 and 1.74) with the drawn realization
    applied as a ratio. Before, the first stage's generation's factor was used for every stage (a review: 133.5M
    nominal against a 134.8M plan)."""
    plan = json.loads(json.dumps(SMALL_PLAN))
    plan["stages"][0]["gpu"] = "a100-80gb"
    r = invoke("estimate", "--plan", write_plan(tmp_path, plan), "--uncertainty", "--draws", "200", "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["uncertainty"]["nominal"]["gpu_hours"] == pytest.approx(d["gpu_hours"], rel=1e-9)


def test_plan_by_path_equals_plan_by_name():
    by_path = _plan(str(plan_dir() / "llama-3.1-405b.yaml"))
    by_name = _plan("llama-3.1-405b")
    assert by_path.gpu_hours == by_name.gpu_hours


# --------------------------------------------------------------------------- user plans


def test_small_plan_table_csv_and_price_override(tmp_path):
    path = write_plan(tmp_path, SMALL_PLAN)
    r = invoke("estimate", "--plan", path)
    assert r.exit_code == 0, r.output
    assert "pre-training" in r.output and "long-context" in r.output and "total" in r.output
    r = invoke("estimate", "--plan", path, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert [row["name"] for row in rows] == ["pre-training", "long-context"]
    d = json.loads(invoke("estimate", "--plan", path, "--format", "json").output)
    assert d["cost_usd"] == pytest.approx(2.5 * d["gpu_hours"])  # the plan's own price
    d2 = json.loads(invoke("estimate", "--plan", path, "--usd-per-gpu-hour", "1", "--format", "json").output)
    assert d2["cost_usd"] == pytest.approx(1.0 * d2["gpu_hours"])  # the flag wins over the plan
    assert d2["stages"][1]["layout"]["cp"] == 4 and d2["stages"][1]["seq_len"] == 32768


def test_the_plans_price_is_for_its_gpu_only(tmp_path):
    """A plan's quoted price is a GPU-hour of its `gpu`: a stage on another GPU takes that profile's price (a review
    found a B200 stage charged the plan's $2.50 H100 quote), a stage naming the plan's GPU by an alias keeps the quote."""
    from simulator.inputs.catalog import load_hardware

    stages = [dict(SMALL_PLAN["stages"][0], gpu="a100-80gb"), dict(SMALL_PLAN["stages"][0], name="same", gpu="h100")]
    path = write_plan(tmp_path, {**SMALL_PLAN, "stages": stages})
    d = json.loads(invoke("estimate", "--plan", path, "--format", "json").output)
    other, same = d["stages"]
    assert other["cost"]["usd_per_gpu_hour"] == load_hardware("a100-80gb").price.usd_per_gpu_hour != 2.5
    assert "test quote" not in other["cost"]["price_source"]
    assert same["cost"]["usd_per_gpu_hour"] == 2.5 and "test quote" in same["cost"]["price_source"]


def test_published_figures_are_checked_and_unlike_runs_flagged(tmp_path, monkeypatch):
    """A review found `reported.gpu: not-a-gpu` accepted, a figure run on 4 A100s compared with 64 H100s without a word,
    and a second whole-plan figure ignored: the GPU must load, an unlike figure is flagged (JSON `unlike` and a table
    line), and a plan has one whole-plan figure."""
    figure = {"gpu_hours": 10_000, "source": "s", "quote": "q"}
    unlike = write_plan(tmp_path, {**SMALL_PLAN, "reported": [figure | {"gpu": "a100-80gb", "num_gpus": 4}]})
    d = json.loads(invoke("estimate", "--plan", unlike, "--format", "json").output)
    text = d["reported"][0]["unlike"]
    assert "a100-80gb" in text and "h100-sxm" in text and "4 GPUs" in text and "64" in text
    assert "flag: whole plan: the figure ran on a100-80gb" in invoke("estimate", "--plan", unlike).output
    alike = write_plan(tmp_path, {**SMALL_PLAN, "reported": [figure | {"gpu": "h100", "num_gpus": 64}]}, "alike.yaml")
    assert json.loads(invoke("estimate", "--plan", alike, "--format", "json").output)["reported"][0]["unlike"] is None
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "h100-sxm.yaml").write_text((plan_dir().parent / "hardware_profiles" / "h100-sxm.yaml").read_text())
    beside = write_plan(tmp_path, {**SMALL_PLAN, "reported": [figure | {"gpu": "hw/h100-sxm.yaml"}]}, "beside.yaml")
    monkeypatch.chdir(tmp_path / "hw")
    elsewhere = invoke("estimate", "--plan", beside, "--format", "json")
    assert elsewhere.exit_code == 0, elsewhere.output  # a figure's profile path is read beside the plan, as the stages'
    bad = write_plan(tmp_path, {**SMALL_PLAN, "reported": [figure | {"gpu": "not-a-gpu"}]}, "bad.yaml")
    assert_clean_error(invoke("estimate", "--plan", bad), "reported gpu: unknown GPU 'not-a-gpu'")
    two = write_plan(tmp_path, {**SMALL_PLAN, "reported": [figure, figure]}, "two.yaml")
    assert_clean_error(invoke("estimate", "--plan", two), "2 figures for the whole plan")


def test_a_plans_own_price_refuses_rental():
    """--rental picks one of a profile's quotes; a plan that quotes its own price would silently keep it (a review's
    --rental on-demand exited 0 at DeepSeek's $2): refused, naming the quote."""
    assert_clean_error(
        invoke("estimate", "--plan", "deepseek-v3", "--rental", "on-demand"), "quotes its own price", "drop --rental"
    )


def test_plan_tco_and_program_cost(tmp_path):
    plan = {**SMALL_PLAN, "experiments_multiplier": 2.0, "experiments_source": "test"}
    d = json.loads(invoke("estimate", "--plan", write_plan(tmp_path, plan), "--pricing", "tco", "--format", "json").output)
    c = d["cost"]
    assert c["basis"] == "tco"
    assert sum(c["components_usd"].values()) == pytest.approx(c["cost_usd"])
    assert c["cost_usd"] == pytest.approx(sum(s["cost"]["cost_usd"] for s in d["stages"]))
    assert c["program_cost_usd"] == pytest.approx(2.0 * c["cost_usd"])  # from the plan's multiplier
    assert c["energy_mwh"] == pytest.approx(d["gpu_hours"] * 0.700 * 1.82 * 0.75 * 1.25 / 1000)


def test_model_spec_path_is_relative_to_the_plan(tmp_path):
    spec = yaml.safe_load((plan_dir().parent / "model_specs" / "llama-3.1-8b.yaml").read_text())
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "my-8b.yaml").write_text(yaml.safe_dump(spec))
    path = write_plan(tmp_path, {**SMALL_PLAN, "model": "specs/my-8b.yaml", "stages": SMALL_PLAN["stages"][:1]})
    assert _plan(path).gpu_hours > 0


def test_hardware_profile_paths_are_relative_to_the_plan_as_its_model_is(tmp_path, monkeypatch):
    """`gpu:` of a plan and of a stage, given as a profile YAML beside the plan, is read there whatever the working
    directory (it used to resolve against the working directory while `model:` resolved against the plan file)."""
    (tmp_path / "gpus").mkdir()
    for name in ("h100-sxm", "a100-80gb"):
        (tmp_path / "gpus" / f"{name}.yaml").write_text((plan_dir().parent / "hardware_profiles" / f"{name}.yaml").read_text())
    stages = [dict(SMALL_PLAN["stages"][0], gpu="gpus/a100-80gb.yaml")]
    path = write_plan(tmp_path, {**SMALL_PLAN, "gpu": "gpus/h100-sxm.yaml", "stages": stages})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = _plan(path)
    assert result.plan.gpu == str(tmp_path / "gpus" / "h100-sxm.yaml")
    assert result.stages[0].hw.name == "a100-80gb"


def test_a_model_folder_is_relative_to_the_plan_as_its_files_are(tmp_path, monkeypatch):
    """`model: hf/my-llama`, a Hugging Face model's folder beside the plan, is read there whatever the working
    directory, as a spec YAML or config.json path is (it was looked up from the working directory: 'unknown model').
    A shipped name still comes first, as on the command line."""
    folder = tmp_path / "hf" / "my-llama"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(LLAMA_8B_CONFIG))
    (tmp_path / "llama-3.1-8b").mkdir()  # a folder that is also a shipped name: the name wins
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    one_stage = {**SMALL_PLAN, "stages": SMALL_PLAN["stages"][:1]}
    result = _plan(write_plan(tmp_path, {**one_stage, "model": "hf/my-llama"}))
    assert result.stages[0].estimate.model == load_model(str(folder)).name
    assert result.gpu_hours == pytest.approx(_plan(write_plan(tmp_path, one_stage, "shipped.yaml")).gpu_hours, rel=0.01)
    assert model_ref(load_plan(write_plan(tmp_path, one_stage, "named.yaml"))[0], tmp_path / "named.yaml") == "llama-3.1-8b"


LLAMA_8B_CONFIG = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                   "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256}  # fmt: skip


# --------------------------------------------------------------------------- bad input


LONG = "x" * 300
"""Over the file system's 255-character name limit: pathlib's exists() and is_dir() raise OSError (errno 36)."""


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("model", LONG, "unknown model"),
        ("model", LONG + ".yaml", "unknown model"),
        ("gpu", LONG, "unknown GPU"),
        ("gpu", LONG + ".yaml", "unknown GPU"),
        ("base", {"plan": LONG}, "unknown plan"),
        ("base", {"plan": LONG + ".yaml"}, "unknown plan"),
    ],
    ids=["model", "model-yaml", "gpu", "gpu-yaml", "base", "base-yaml"],
)
def test_a_name_in_a_plan_the_file_system_refuses_is_an_unknown_name(tmp_path, field, value, needle):
    """A 300-character `model:`, `gpu:` or `base: {plan: ...}` in a plan file gave an `OSError: [Errno 36] File name
    too long` traceback; now the loader's 'unknown ...' line, naming the plan."""
    path = write_plan(tmp_path, {**SMALL_PLAN, "stages": SMALL_PLAN["stages"][:1], field: value})
    assert_clean_error(invoke("estimate", "--plan", path), "plan small", needle)


def test_unknown_plan_name_lists_the_shipped_plans():
    assert_clean_error(invoke("estimate", "--plan", "deepseek-v4"), "unknown plan 'deepseek-v4'", "deepseek-v3", "llama-3.1-405b")


def test_missing_plan_file():
    assert_clean_error(invoke("estimate", "--plan", "no/such/plan.yaml"), "no/such/plan.yaml", "no such file")


def test_malformed_plan_yaml(tmp_path):
    path = write_plan(tmp_path, "name: x\nstages: [\n  - {name: a\n")
    assert_clean_error(invoke("estimate", "--plan", path), path, "not valid YAML")


def test_plan_that_is_not_a_mapping(tmp_path):
    assert_clean_error(invoke("estimate", "--plan", write_plan(tmp_path, "- 1\n- 2\n")), "expected a mapping")


@pytest.mark.parametrize(
    "mutate, needles",
    [
        (lambda p: p["stages"][0].update(tokens=-5), ["stages.0.tokens", "-5 is out of range (0, 1e+17]"]),
        (lambda p: p["stages"][0].update(tokens="lots"), ["stages.0.tokens", "'lots' is not a number"]),
        (lambda p: p["stages"][1].update(num_gpus=0), ["stages.1.num_gpus"]),
        (lambda p: p["stages"][0].update(tokenz=5), ["stages.0.tokenz", "Extra inputs"]),
        (lambda p: p["stages"][0].update(precision="fp4"), ["stages.0.precision"]),
        (lambda p: p.update(stages=[]), ["stages", "at least 1"]),
        (lambda p: p["stages"][1].update(name="pre-training"), ["repeated: pre-training"]),
        (lambda p: p.pop("price_source"), ["price_source"]),
        (lambda p: p.update(reported=[{"gpu_hours": 1, "stages": ["sft"], "source": "s", "quote": "q"}]), ["['sft']"]),
        (lambda p: p.update(experiments_multiplier=0.5, experiments_source="s"), ["experiments_multiplier"]),
    ],
)
def test_invalid_plans_fail_cleanly(tmp_path, mutate, needles):
    plan = json.loads(json.dumps(SMALL_PLAN))
    mutate(plan)
    path = write_plan(tmp_path, plan)
    assert_clean_error(invoke("estimate", "--plan", path), path, *needles)


def test_stage_errors_name_the_plan_and_stage(tmp_path):
    plan = json.loads(json.dumps(SMALL_PLAN))
    plan["stages"][1]["tp"] = 3  # does not divide 64 GPUs
    assert_clean_error(invoke("estimate", "--plan", write_plan(tmp_path, plan)), "plan small, stage 'long-context'")
    plan = json.loads(json.dumps(SMALL_PLAN))
    plan["gpu"] = "h900"
    assert_clean_error(invoke("estimate", "--plan", write_plan(tmp_path, plan)), "stage 'pre-training'", "unknown GPU 'h900'")


def test_plan_with_run_flags_is_refused():
    assert_clean_error(invoke("estimate", "deepseek-v3", "--plan", "deepseek-v3"), "drop MODEL")
    assert_clean_error(invoke("estimate", "--plan", "deepseek-v3", "--num-gpus", "8", "--tp", "2"), "--num-gpus", "--tp")


def test_load_plan_raises_spec_error_for_a_directory(tmp_path):
    d = tmp_path / "dir.yaml"
    d.mkdir()
    with pytest.raises(SpecError, match="directory"):
        load_plan(str(d))


def test_plan_text_fields_are_bounded_and_names_one_line(tmp_path):
    """A plan's prose (sources, quotes, notes) has at most MAX_TEXT_CHARS characters and its names one line: a
    megabyte of notes or a name with a line break would be printed into every table."""
    from simulator.inputs.plan_file import MAX_TEXT_CHARS

    long_notes = write_plan(tmp_path, {**SMALL_PLAN, "notes": "x" * (MAX_TEXT_CHARS + 1)})
    assert_clean_error(invoke("estimate", "--plan", long_notes), "notes", f"at most {MAX_TEXT_CHARS:,} characters")
    stages = [dict(SMALL_PLAN["stages"][0], name="pre\ntraining")]
    broken = write_plan(tmp_path, {**SMALL_PLAN, "stages": stages}, "broken.yaml")
    assert_clean_error(invoke("estimate", "--plan", broken), "stages.0.name", "one line")


@pytest.mark.parametrize("text", ["x\x00y", "title \x1b]0;pwned\x07", "csi \x9b2J"])
def test_prose_fields_refuse_control_characters(tmp_path, text):
    """A review's plan notes held a NUL and an OSC escape that set the terminal's title when printed: prose (plans,
    fleets, price sheets, workloads) may hold line breaks and tabs, no other control character."""
    from pydantic import TypeAdapter

    from simulator.inputs import fleet_file, serving_cases, workload_file
    from simulator.inputs.plan_file import Text

    path = write_plan(tmp_path, {**SMALL_PLAN, "notes": text})
    assert_clean_error(invoke("estimate", "--plan", path), "notes", "control characters")
    for alias in (Text, fleet_file.Text, serving_cases.Text, workload_file.Text):
        with pytest.raises(ValueError, match="control characters"):
            TypeAdapter(alias).validate_python(text)
        assert TypeAdapter(alias).validate_python("two\nlines\tand a tab") == "two\nlines\tand a tab"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["estimate", "plans/deepseek-v3.yaml", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1B"],
            "this is a plan, not a model spec; estimate, report and claim take it as --plan",
        ),
        (
            ["estimate", "hardware_profiles/h100-sxm.yaml", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1B"],
            "this is a hardware profile, not a model spec",
        ),
        (
            ["estimate", "llama-3.1-8b", "--gpu", "model_specs/llama-3.1-8b.yaml", "--num-gpus", "8", "--tokens", "1B"],
            "this is a model spec, not a hardware profile",
        ),
        (["estimate", "--plan", "model_specs/llama-3.1-8b.yaml"], "this is a model spec, not a plan"),
    ],
)
def test_a_file_of_another_kind_is_named_in_one_line(args, needle, monkeypatch):
    """A review's plan given as MODEL got 16 schema errors: a costsim file of another kind is named, with how to pass it."""
    monkeypatch.chdir(plan_dir().parent)
    out = assert_clean_error(invoke(*args), needle)
    assert len(out.strip().splitlines()) == 1, out


def test_a_plans_csv_carries_its_band_on_every_stage_row(tmp_path):
    """`estimate --plan --uncertainty --format csv` was byte-identical to the CSV without the band (a review): each
    stage row now carries the whole plan's P10/P50/P90, empty without --uncertainty, under the same header; the API's
    rows (to_frame) are the same."""
    import csv
    import io

    path = write_plan(tmp_path, SMALL_PLAN)
    plain = list(csv.DictReader(io.StringIO(invoke("estimate", "--plan", path, "--format", "csv").output)))
    banded_out = invoke("estimate", "--plan", path, "--format", "csv", "--uncertainty", "--draws", "200").output
    banded = list(csv.DictReader(io.StringIO(banded_out)))
    assert list(plain[0]) == list(banded[0]) and len(banded) == 2
    bands = [f"plan_{k}_{p}" for k in ("gpu_hours", "wall_clock_days", "cost_usd") for p in ("p10", "p50", "p90")]
    assert set(bands) <= set(plain[0]) and all(r[k] == "" for r in plain for k in bands)
    d = json.loads(invoke("estimate", "--plan", path, "--format", "json", "--uncertainty", "--draws", "200").output)
    for row in banded:
        assert float(row["plan_gpu_hours_p10"]) == pytest.approx(d["uncertainty"]["gpu_hours"]["p10"], rel=1e-9)
        assert float(row["plan_cost_usd_p90"]) == pytest.approx(d["uncertainty"]["cost_usd"]["p90"], rel=1e-9)
    frame = api.plan(path, uncertainty=True, draws=200).to_frame()
    assert frame["plan_gpu_hours_p50"].iloc[0] == pytest.approx(d["uncertainty"]["gpu_hours"]["p50"], rel=1e-9)
