"""Input that is well-formed but contradictory or absurd is refused with one clear line, not run into a traceback, an
`inf` or a silently different question (a read-only review's findings, 2026-12): a claim's dollars at a price of 0,
fleet rates too small to count nodes, layout flags beyond a stated stack (held, and said), a sequence longer than a
learned position table (noted), RL plans that generate more tokens than anything could, decode settings on a prefill-only
`serve`, a MoE config.json naming layers it does not have, and a search reference the search could never match."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from cli_support import clean_error, invoke

from simulator.inputs.data_files import data_dir, model_dir, plan_dir


def _one_line(result, *needles: str) -> str:
    out = clean_error(result, *needles, error="prefix")
    assert len(out.strip().splitlines()) == 1, out
    return out


@pytest.mark.parametrize("price", ["0", "1e-300"])
def test_claim_in_dollars_needs_a_price_that_gives_countable_gpu_hours(price):
    result = invoke("claim", "llama-3-8b", "--gpu", "h100-sxm", "--tokens", "15T", "--num-gpus", "1024", "--usd", "5M",
                    "--usd-per-gpu-hour", price)  # fmt: skip
    out = _one_line(result, "--usd 5,000,000")
    assert ("above $0" in out) if price == "0" else ("outside" in out and "GPU-hours" in out)


def test_fleet_rates_below_one_token_per_second_per_node_are_refused(tmp_path):
    raw = yaml.safe_load((data_dir("fleets") / "deepseek-v3-r1-day.yaml").read_text())
    raw["rates"]["prefill_input_tokens_per_s_per_node"] = 1e-300
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    _one_line(invoke("fleet", str(path)), "rates.prefill_input_tokens_per_s_per_node", "greater than or equal to 1")


@pytest.mark.parametrize(
    ("stack", "flag", "value", "offered"),
    [
        ("megatron-2021", "--schedule", "dualpipe", "it offers 1f1b, interleaved"),
        ("fsdp-2023", "--tp", "2", "it offers 1"),
        ("megatron-2022", "--cp", "2", "it offers 1"),
    ],
)
def test_layout_flags_beyond_a_stated_stack_hold_and_the_estimate_says_so(stack, flag, value, offered):
    """Layout flags hold in both numbers (issue 11), also beyond what the stated stack offers; the estimate's notes
    then say that neither number is a run that stack could do."""
    result = invoke("estimate", "llama-3-8b", "--gpu", "h100-sxm", "--num-gpus", "8", "--tokens", "1T", "--stack", stack,
                    flag, value, "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    key = flag.removeprefix("--").replace("-", "_")
    assert str(d["layout"][key]) == value and str(d["achievable"]["layout"][key]) == value
    (note,) = [n for n in d["notes"] if "layout flags beyond stack" in n]
    assert f"{flag} {value} ({offered})" in note and "could not do" in note


def test_flags_the_stack_offers_carry_no_such_note():
    result = invoke("estimate", "llama-3-8b", "--gpu", "h100-sxm", "--num-gpus", "8", "--tokens", "1T", "--stack",
                    "megatron-2021", "--schedule", "1f1b", "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not [n for n in json.loads(result.output)["notes"] if "layout flags beyond" in n]


def test_a_sequence_longer_than_a_learned_position_table_is_noted():
    """A learned table has no position past its end: the estimate says so (llm-foundry's benchmark configurations grow
    the table with the sequence, so it is a note, not a refusal), and says nothing within the table."""
    args = ("estimate", "gpt3-175b", "--gpu", "h100-sxm", "--num-gpus", "1024", "--tokens", "300B", "--format", "json")
    long = invoke(*args, "--seq-len", "65536")
    assert long.exit_code == 0, long.output
    (note,) = [n for n in json.loads(long.output)["notes"] if "position table" in n]
    assert "65,536 is longer than gpt3-175b's learned position table of 2,048" in note and "--seq-len 2,048 or less" in note
    within = invoke(*args, "--seq-len", "2048")
    assert not [n for n in json.loads(within.output)["notes"] if "position table" in n]


def _plan_error(tmp_path, change) -> str:
    raw = yaml.safe_load((plan_dir() / "deepseek-r1.yaml").read_text())
    plan = copy.deepcopy(raw)
    change(plan["stages"][0])
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return _one_line(invoke("estimate", "--plan", str(path)))


def test_rl_plans_that_generate_beyond_any_run_or_under_a_token_are_refused(tmp_path):
    def huge(stage):
        stage.update(steps=100_000_000, prompts_per_step=10_000_000, samples_per_prompt=100_000)

    assert "generated tokens, above 1e+17" in _plan_error(tmp_path, huge)

    def tiny_prompt(stage):
        stage["mean_prompt_len"] = 1e-9

    assert "mean_prompt_len" in _plan_error(tmp_path, tiny_prompt)

    def tiny_response(stage):
        stage["response_lengths"][0]["mean_response_len"] = {"value": 1e-9, "low": 1e-9, "high": 1e-9}

    assert "under one token" in _plan_error(tmp_path, tiny_response)


def test_a_stage_kind_that_is_not_text_lists_the_kinds(tmp_path):
    def numeric(stage):
        stage["kind"] = 5

    assert "'training', 'rl', 'generation'" in _plan_error(tmp_path, numeric)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--phase", "prefill", "--tpot-ms", "50"), "--tpot-ms set the decode and --phase prefill runs none"),
        (("--phase", "prefill", "--batch-per-gpu", "5"), "--batch-per-gpu set the decode"),
        (("--mtp-accept", "0.5"), "--mtp-accept is given but --mtp-depth is 0"),
    ],
)
def test_serve_refuses_settings_that_would_be_ignored(args, needle):
    _one_line(invoke("serve", "llama-3-8b", "--gpu", "h100-sxm", *args), needle)


def test_serve_names_the_degrees_it_cannot_fit():
    _one_line(invoke("serve", "deepseek-v3", "--gpu", "h800", "--dp", "1000000"), "(dp 1,000,000)", "1,024 GPUs")


def _hf(tmp_path, change) -> str:
    raw = {
        "model_type": "deepseek_v3", "hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128,
        "num_key_value_heads": 128, "intermediate_size": 18432, "moe_intermediate_size": 2048, "vocab_size": 129280,
        "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3,
        "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
        "max_position_embeddings": 163840,
    }  # fmt: skip
    change(raw)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    return str(path)


def test_a_moe_config_names_mlp_only_layers_outside_the_model(tmp_path):
    path = _hf(tmp_path, lambda c: c.update(model_type="qwen3_moe", mlp_only_layers=[0, 1000], head_dim=128))
    _one_line(invoke("estimate", path, "--gpu", "h100-sxm", "--num-gpus", "64", "--tokens", "1T"),
              "`mlp_only_layers` names layers [1000], outside the model's 61 layers")  # fmt: skip


def test_a_moe_config_whose_counts_leave_no_moe_layer_is_read_as_hugging_face_builds_it(tmp_path):
    """n_routed_experts 0 or first_k_dense_replace past the last layer: Hugging Face's modeling code builds dense MLPs
    in every layer, so the config is that dense (MLA) model, not an error."""
    from simulator.inputs.catalog import load_model

    for change in (lambda c: c.update(n_routed_experts=0), lambda c: c.update(first_k_dense_replace=100)):
        spec = load_model(_hf(tmp_path, change))
        assert spec.moe is None and spec.attention == "mla"


def test_a_spec_whose_dense_layers_cover_every_layer_is_refused(tmp_path):
    raw = yaml.safe_load((model_dir() / "deepseek-v3.yaml").read_text())
    raw["moe"]["first_dense_layers"] = raw["n_layers"]
    raw["name"] = "all-dense"
    path = tmp_path / "all-dense.yaml"
    path.write_text(yaml.safe_dump(raw))
    _one_line(invoke("estimate", str(path), "--gpu", "h100-sxm", "--num-gpus", "64", "--tokens", "1T"),
              "leaves none of the 61 layers MoE")  # fmt: skip


def test_a_model_name_is_one_line(tmp_path):
    raw = yaml.safe_load((model_dir() / "llama-3.1-8b.yaml").read_text())
    raw["name"] = "x\n\x1b[31mred"
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(raw))
    _one_line(invoke("estimate", str(path), "--gpu", "h100-sxm", "--num-gpus", "8", "--tokens", "1T"), "one line of text")


@pytest.mark.parametrize(
    ("reference", "needle"),
    [("tp=0", "tp 0 is out of range"), ("schedule=bogus", "'bogus' is not one of"), ("ep=4", "has no experts"),
     ("tp=1,tp=2", "tp is given twice")],
)  # fmt: skip
def test_a_search_reference_the_search_could_never_match_is_named(reference, needle):
    result = invoke("search", "llama-3-8b", "--gpu", "h100-sxm", "--num-gpus", "8", "--tokens", "1T", "--reference", reference)
    _one_line(result, needle)


def test_price_claim_names_an_unknown_model_as_unknown():
    result = invoke("claim", "--cheaper", "deepseek-reasoner-2025", "openai-o1-2025-01", "--ratio", "20-50", "--a-model",
                    "nosuch")  # fmt: skip
    _one_line(result, "--a-model: unknown model 'nosuch'")


def test_every_decode_only_setting_is_refused_with_phase_prefill_and_dropped_by_a_prefill_only_fleet():
    """One list (serve.DECODE_ONLY_FIELDS) both refuses the decode's settings on a prefill-only request and keeps them
    out of a fleet's prefill prediction."""
    from simulator.errors import InputError
    from simulator.run.serve import DECODE_ONLY_FIELDS, ServeRequest

    values = {"tpot_s": 0.05, "min_tokens_per_s_per_user": 20.0, "batch_per_gpu": 4.0, "max_batch_per_gpu": 8.0,
              "max_replica_sequences": 64.0, "mtp_depth": 1, "mtp_accept": 0.8, "dp": 2, "num_gpus": 8,
              "kv_admission": "full-request", "host_s_per_sequence": 30e-6}  # fmt: skip
    assert set(values) == set(DECODE_ONLY_FIELDS)
    for name, flag in DECODE_ONLY_FIELDS.items():
        extra = {"mtp_accept": 0.8} if name == "mtp_depth" else {"mtp_depth": 1} if name == "mtp_accept" else {}
        with pytest.raises(InputError, match=f"{flag}.*--phase prefill runs none"):
            ServeRequest("llama-3-8b", "h100-sxm", phase="prefill", **{name: values[name]}, **extra)


def test_redundant_experts_are_capped_by_a_stage_not_by_the_expert_count():
    """8 experts over 64 GPUs need 56 redundant copies (more than the experts): allowed; more copies than the 1,024 GPUs
    a stage may hold: refused."""
    from simulator.errors import InputError
    from simulator.run.serve import ServeRequest, setup_for

    assert setup_for(ServeRequest("mixtral-8x7b", "h100-sxm", redundant_experts=56)).redundant_experts == 56
    with pytest.raises(InputError, match="more copies than the 1,024 GPUs a decode stage may hold"):
        setup_for(ServeRequest("mixtral-8x7b", "h100-sxm", redundant_experts=2000))


def test_a_tp_overlap_flag_beyond_the_stack_is_named_as_a_flag():
    from simulator.inputs.stacks import load_stack

    (item,) = load_stack("megatron-2021").beyond({"tp_overlap": True})
    assert item.startswith("--tp-overlap (it offers false)")
    assert load_stack("megatron-2021").beyond({"tp_overlap": False, "schedule": "1f1b"}) == []


# ----------------------------------------------------------------- a second fuzzing review's findings (2026-12)


@pytest.mark.parametrize(
    "args",
    [
        ("estimate", "--plan", "deepseek-v3", "--uncertainty", "--draws", "100", "--usd-per-gpu-hour", "0"),
        ("claim", "--plan", "deepseek-v3", "--gpu-hours", "2.788M", "--usd-per-gpu-hour", "0", "--uncertainty"),
        ("estimate", "llama-3-8b", "--gpu", "h100-sxm", "--num-gpus", "64", "--tokens", "15T", "--uncertainty",
         "--draws", "200", "--usd-per-gpu-hour", "0"),
    ],
)  # fmt: skip
def test_a_band_priced_at_zero_is_refused_with_the_price(args):
    """A plan's band at $0 per GPU-hour divided by zero (a traceback); a single run's blamed a missing price that was
    given. Both name the price and the fix."""
    _one_line(invoke(*args), "above $0 per GPU-hour", "$0", "--usd-per-gpu-hour above 0 (or leave out estimate's --uncertainty)")


def test_a_claim_in_hours_and_dollars_reads_the_price_they_imply():
    """2.788M GPU-hours and $5M imply $1.79 per GPU-hour; the profile's $2 quote gives way (it showed $5M 'at $2.00')."""
    d = json.loads(invoke("claim", "deepseek-v3", "--gpu", "h800", "--gpu-hours", "2.788M", "--usd", "5M", "--tokens",
                          "14.8T", "--format", "json").output)  # fmt: skip
    assert d["claimed_gpu_hours"] == 2.788e6 and d["claimed_usd"] == 5e6
    assert d["usd_per_gpu_hour"] == pytest.approx(5e6 / 2.788e6, rel=1e-12)
    assert "implied by the claim" in d["price_source"]


def test_a_claim_whose_hours_dollars_and_price_disagree_is_refused():
    out = _one_line(invoke("claim", "deepseek-v3", "--gpu", "h800", "--gpu-hours", "2.788M", "--usd", "5M", "--tokens",
                           "14.8T", "--usd-per-gpu-hour", "2"), "$1.79 per GPU-hour", "$2")  # fmt: skip
    assert "give two of the three" in out
    ok = invoke("claim", "deepseek-v3", "--gpu", "h800", "--gpu-hours", "2.788M", "--usd", "5.576M", "--tokens", "14.8T",
                "--usd-per-gpu-hour", "2")  # fmt: skip
    assert ok.exit_code == 0, ok.output  # within 1%: a quote's rounding


def test_claim_band_flags_without_uncertainty_are_refused_as_estimate_refuses_them():
    _one_line(
        invoke("claim", "--plan", "deepseek-v3", "--usd", "5.576M", "--draws", "5"), "--draws only apply with --uncertainty"
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (("serve", "llama-3-8b", "--gpu", "h100-sxm", "--pricing", "tco", "--usd-per-gpu-hour", "5"), "--pricing tco"),
        (("estimate", "llama-3-8b", "--gpu", "h100-sxm", "--num-gpus", "64", "--tokens", "15T", "--rental", "reserved",
          "--usd-per-gpu-hour", "9"), "--rental reserved"),
        (("estimate", "llama-3-8b", "--gpu", "h100-sxm", "--num-gpus", "64", "--tokens", "15T", "--rental", "reserved",
          "--pricing", "tco"), "--rental reserved"),
    ],
)  # fmt: skip
def test_price_flags_that_would_be_dropped_are_refused(args, needle):
    _one_line(invoke(*args), needle)


@pytest.mark.parametrize("field", ["gpu", "model"])
def test_a_fleet_file_names_a_shipped_model_and_gpu_even_with_its_rates_given(tmp_path, field):
    raw = yaml.safe_load((data_dir("fleets") / "deepseek-v3-r1-day.yaml").read_text())
    raw[field] = "no-such-name"
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    _one_line(invoke("fleet", str(path)), str(path), "no-such-name")


def test_a_fleet_price_under_a_cent_is_refused_with_the_range_its_help_states():
    _one_line(invoke("fleet", "deepseek-v3-r1-day", "--usd-per-gpu-hour", "0"), "[0.01, 1,000]")
    _one_line(invoke("fleet", "deepseek-v3-r1-day", "--usd-per-gpu-hour", "1e-300"), "[0.01, 1,000]")
    assert "0.01 to 1,000" in " ".join(invoke("fleet", "--help").output.split())


def test_a_sweep_with_no_valid_layout_in_any_cell_is_an_error_and_one_that_does_not_fit_is_data():
    _one_line(invoke("sweep", "llama-3-8b", "--gpu", "h100-sxm", "--num-gpus", "64,128", "--tokens", "1T", "--tp", "3"),
              "no cell of the sweep has a valid layout", "TP = 3")  # fmt: skip
    memory = invoke("sweep", "llama-3.1-405b", "--gpu", "l40s", "--num-gpus", "8", "--tokens", "1T")
    assert memory.exit_code == 0 and "no layout fits" in memory.output


@pytest.mark.parametrize("ratio, needle", [("1e30", "must be above 0 and at most"), ("abc", "is not a number or a range")])
def test_a_ratio_in_another_notation_is_judged_by_its_size(ratio, needle):
    from simulator.analysis.price_claim import parse_ratio

    _one_line(invoke("claim", "--cheaper", "deepseek-reasoner-2025", "openai-o1-2025-01", "--ratio", ratio), needle)
    assert parse_ratio("2e1").low == 20.0


def test_serve_names_its_own_flags_and_limits():
    out = _one_line(invoke("serve", "llama-3-8b", "--gpu", "h100-sxm", "--report", "README.md"), "--report README.md")
    assert "--output" not in out
    out = _one_line(invoke("serve", "llama-3-8b", "--gpu", "h100-sxm", "--num-gpus", "1000000"), "1,000,000 GPUs")
    assert "tp is a power of two up to 8" in out and "pp at most 16" in out and "()" not in out


def test_a_spec_whose_published_total_is_far_from_its_shapes_is_noted(tmp_path):
    """A user spec's published_params.total of 1e3 against the 8.03B its shapes count passed silently; the estimate
    now names both numbers (it uses the shapes). No shipped spec is off by more than PUBLISHED_TOTAL_NOTE."""
    from pathlib import Path

    from simulator.inputs.catalog import load_model
    from simulator.run.sanity import PUBLISHED_TOTAL_NOTE, published_total_note

    raw = yaml.safe_load((model_dir() / "llama-3-8b.yaml").read_text())
    raw["published_params"]["total"] = 1e3
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw))
    args = ("estimate", str(path), "--gpu", "h100-sxm", "--num-gpus", "64", "--tokens", "1T", "--format", "json")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    (note,) = [n for n in json.loads(result.output)["notes"] if "published_params.total" in n]
    assert "is 1000 but its shapes count 8.03e+09" in note
    assert PUBLISHED_TOTAL_NOTE == 0.10
    assert all(published_total_note(load_model(p.stem)) is None for p in Path(model_dir()).glob("*.yaml"))


@pytest.mark.parametrize("flag", ["--draws", "--seed"])
def test_band_flags_with_a_price_claim_are_refused(flag):
    _one_line(invoke("claim", "--cheaper", "deepseek-reasoner-2025", "openai-o1-2025-01", "--ratio", "20-50", flag, "5"),
              f"drop {flag}")  # fmt: skip


def test_a_bf16_run_on_a_gpu_without_bf16_says_it_is_modelled_in_fp16():
    """V100 tensor cores take FP16 only (Volta whitepaper); its profile's bf16 entry holds the FP16 rate
    (bf16_native: false), so a bf16 estimate says so. fp16 runs and GPUs with BF16 get no such note."""
    from simulator.inputs.catalog import hardware_ids, load_hardware

    def notes(gpu: str, precision: str) -> list[str]:
        args = ("estimate", "llama-3.1-8b", "--gpu", gpu, "--num-gpus", "64", "--tokens", "10B", "--format", "json")
        result = invoke(*args, "--precision", precision)
        assert result.exit_code == 0, result.output
        return [n for n in json.loads(result.output)["notes"] if "no BF16 tensor cores" in n]

    (note,) = notes("v100", "bf16")
    assert "FP16 peak of 125 TFLOP/s" in note
    assert notes("v100", "fp16") == [] and notes("a100-80gb", "bf16") == []
    profiles = {p.stem for p in hardware_ids().values()}
    assert {n for n in profiles if not load_hardware(n).bf16_native} == {"v100"}


def test_a_generation_without_its_own_realization_fit_is_named(tmp_path):
    """A profile whose generation has no realization fit (a typo such as 'hoper', or a new architecture) takes the
    value pooled over all whole runs: x1.34 instead of hopper's x1.74 moved a Llama 3.1 8B estimate from 49.7K to
    38.3K GPU-hours with no word. The estimate now says so and suggests the nearest fitted name."""
    from simulator.inputs.assumptions import DEFAULT
    from simulator.inputs.data_files import hardware_dir

    raw = yaml.safe_load((hardware_dir() / "h100-sxm.yaml").read_text())
    raw["name"], raw["generation"] = "typo", "hoper"
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw))

    def notes(gpu: str) -> list[str]:
        result = invoke("estimate", "llama-3.1-8b", "--gpu", gpu, "--num-gpus", "16", "--tokens", "1T", "--format", "json")
        assert result.exit_code == 0, result.output
        return [n for n in json.loads(result.output)["notes"] if "no realization fit of its own" in n]

    (note,) = notes(str(path))
    assert "'hoper'" in note and "did you mean hopper?" in note
    assert notes("h100-sxm") == [] and notes("a100-80gb") == []
    assert {"hopper", "ampere"} <= set(dict(DEFAULT.realization_by_generation))


@pytest.mark.parametrize("gemm_best", [{"fp8": {"value": 0.7, "source": "assumption"}}, {}])
def test_a_profile_without_a_bf16_gemm_rate_is_refused(tmp_path, gemm_best):
    """Every dtype without its own gemm_best falls back to bf16's; a profile without one raised KeyError: 'bf16'."""
    from simulator.inputs.data_files import hardware_dir

    raw = yaml.safe_load((hardware_dir() / "h100-sxm.yaml").read_text())
    raw["name"], raw["efficiency"]["gemm_best"] = "nobf16", gemm_best
    path = tmp_path / "nobf16.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = invoke("estimate", "llama-3.1-8b", "--gpu", str(path), "--num-gpus", "16", "--tokens", "1T")
    _one_line(result, "efficiency.gemm_best needs a bf16 entry")


def test_a_plan_of_too_many_stages_or_phases_is_refused_before_the_work(tmp_path):
    """Each stage is a layout search (up to ~2 s) and each response phase a rollout model: 3,000 stages ran past a
    minute, so a plan may have at most MAX_STAGES stages and an RL stage MAX_RESPONSE_PHASES phases."""
    from simulator.inputs.plan_file import MAX_RESPONSE_PHASES, MAX_STAGES

    raw = yaml.safe_load((plan_dir() / "llama-3.1-405b.yaml").read_text())
    raw.pop("reported", None)
    raw["stages"] = [dict(raw["stages"][0], name=f"s{i}") for i in range(MAX_STAGES + 1)]
    path = tmp_path / "many.yaml"
    path.write_text(yaml.safe_dump(raw))
    _one_line(invoke("estimate", "--plan", str(path)), "stages", f"at most {MAX_STAGES} items")

    r1 = yaml.safe_load((plan_dir() / "deepseek-r1.yaml").read_text())
    rl = next(s for s in r1["stages"] if s.get("kind") == "rl")
    first = rl["response_lengths"][0]
    rl["response_lengths"] = [dict(first, from_step=i) for i in range(MAX_RESPONSE_PHASES + 1)]
    path.write_text(yaml.safe_dump(r1))
    _one_line(invoke("estimate", "--plan", str(path)), "response_lengths", f"at most {MAX_RESPONSE_PHASES:,} items")


def test_an_rl_stage_cannot_feed_more_minibatches_than_it_has_steps(tmp_path):
    """minibatches_per_rollout 100,000 in a 10,400-step stage printed a 6-day rollout inside a 0.01-day stage."""
    r1 = yaml.safe_load((plan_dir() / "deepseek-r1.yaml").read_text())
    rl = next(s for s in r1["stages"] if s.get("kind") == "rl")
    rl["minibatches_per_rollout"] = rl["steps"] + 1
    path = tmp_path / "mb.yaml"
    path.write_text(yaml.safe_dump(r1))
    _one_line(invoke("estimate", "--plan", str(path)), "minibatches_per_rollout", f"{rl['steps']:,} steps")


def test_files_refuse_a_price_or_published_hours_too_small_to_be_real(tmp_path):
    """A fleet priced at 1e-300 per GPU-hour printed a 300-digit margin, a plan's reported 1e-300 GPU-hours a
    300-digit error: prices in files start at a cent per GPU-hour, published GPU-hours where claim's start."""
    from simulator.units import GPU_HOURS_RANGE, MIN_USD_PER_GPU_HOUR

    raw = yaml.safe_load((plan_dir() / "deepseek-v3.yaml").read_text())
    raw["usd_per_gpu_hour"] = 1e-300
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    _one_line(invoke("estimate", "--plan", str(path)), "usd_per_gpu_hour", f"{MIN_USD_PER_GPU_HOUR}")
    raw["usd_per_gpu_hour"] = 2.0
    raw["reported"][0]["gpu_hours"] = 1e-300
    path.write_text(yaml.safe_dump(raw))
    _one_line(invoke("estimate", "--plan", str(path)), "gpu_hours", f"{GPU_HOURS_RANGE[0]:.4g}")
