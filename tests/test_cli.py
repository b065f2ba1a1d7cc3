"""The `costsim` command line: listings, output formats, number parsing, and clean errors for bad input.

Commands run in-process through typer's CliRunner, except one test that runs `python -m cli` as a real
process and one that checks the estimate path imports neither torch nor matplotlib. Estimates that are
not about the layout search pass a complete layout (FIXED), so they evaluate one layout and stay fast.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_support import REQUIRED_GPU_IDS, clean_error, invoke

from simulator.inputs.data_files import plan_dir

assert_clean_error = clean_error

ROOT = Path(__file__).resolve().parents[1]

LLAMA_8B = ["estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64"]
# A complete layout for llama-3.1-8b on 64 x H100 that fits (45 GiB): evaluated as given, no search.
FIXED = ["--tp", "1", "--pp", "1", "--zero-stage", "3", "--micro-batch-size", "1", "--schedule", "1f1b", "--recompute", "none"]


# --------------------------------------------------------------------------- list


MODELS = ["deepseek-v3", "llama-3.1-405b", "llama-3.1-8b", "gpt3-175b", "mixtral-8x7b", "bloom-176b", "deepseek-v2-lite"]


def _rows(output: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in output.splitlines() if line.strip()}


def test_list_gpus_shows_every_shipped_profile():
    result = invoke("list", "gpus")
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    for gpu in REQUIRED_GPU_IDS:
        assert gpu in rows, f"{gpu} missing from `costsim list gpus`"
    assert "h100-sxm5," in rows["h100-sxm"]  # aliases listed
    assert "-" in rows["a100-80gb"]  # no FP8 peak shown as a dash


def test_list_models_shows_total_and_activated_parameters():
    result = invoke("list", "models")
    assert result.exit_code == 0, result.output
    header, *_ = result.stdout.splitlines()
    assert "total" in header and "activated" in header
    rows = _rows(result.stdout)
    for model in MODELS:
        assert model in rows, f"{model} missing from `costsim list models`"
    # Published totals (DeepSeek-V3 report: 671B; Mixtral model card: 46.7B total, 12.9B active).
    assert rows["deepseek-v3"][1] == "671B"
    assert rows["mixtral-8x7b"][1:3] == ["46.7B", "12.9B"]
    assert rows["gpt3-175b"][1] == rows["gpt3-175b"][2] == "175B"  # dense: total == activated


# --------------------------------------------------------------------------- estimate output


REQUIRED_KEYS = {
    "model", "gpu", "num_gpus", "tokens", "layout", "flops_per_token", "step_time_s", "tokens_per_s_per_gpu", "mfu", "hfu",
    "memory_per_gpu_gib", "ideal_gpu_hours", "gpu_hours", "ideal_wall_clock_days", "wall_clock_days", "cost_usd",
    "breakdown", "assumptions",
}  # fmt: skip
LAYOUT_KEYS = {"tp", "pp", "dp", "ep", "cp", "zero_stage", "micro_batch_size", "schedule", "recompute"}

INVARIANT_CASES = {
    # the search picks the layout
    "llama-8b-search": [*LLAMA_8B, "--tokens", "1T"],
    # DeepSeek-V3's published layout (TP1 PP16 EP64 DualPipe, FP8); the rest is searched
    "deepseek-v3-published": [
        "estimate", "deepseek-v3", "--gpu", "h800", "--num-gpus", "2048", "--tokens", "14.8T", "--seq-len", "4096",
        "--global-batch-tokens", "62914560", "--precision", "fp8", "--tp", "1", "--pp", "16", "--ep", "64",
        "--schedule", "dualpipe",
    ],
    # explicit layout with full recomputation: HFU > MFU
    "llama-70b-recompute-full": [
        "estimate", "llama-3.1-70b", "--gpu", "h100-sxm", "--num-gpus", "64", "--tokens", "300B", "--tp", "8", "--pp", "4",
        "--zero-stage", "1", "--micro-batch-size", "1", "--schedule", "interleaved", "--vpp", "2", "--recompute", "full",
        "--cp", "1",
    ],
}  # fmt: skip


@functools.cache
def estimate_json(case: str) -> dict:
    """One run per case for the whole module (the search case takes about a second)."""
    result = invoke(*INVARIANT_CASES[case], "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("case", INVARIANT_CASES)
def test_json_has_the_documented_keys(case):
    d = estimate_json(case)
    assert REQUIRED_KEYS <= set(d), f"missing: {REQUIRED_KEYS - set(d)}"
    assert LAYOUT_KEYS <= set(d["layout"]), f"missing: {LAYOUT_KEYS - set(d['layout'])}"
    assert isinstance(d["breakdown"], dict) and d["breakdown"]
    assert isinstance(d["assumptions"], dict) and d["assumptions"]


@pytest.mark.parametrize("case", INVARIANT_CASES)
def test_json_invariants(case):
    d = estimate_json(case)
    lay = d["layout"]
    assert d["gpu_hours"] >= d["ideal_gpu_hours"] > 0
    assert math.isclose(d["gpu_hours"], d["wall_clock_days"] * 24 * d["num_gpus"], rel_tol=1e-9)
    assert math.isclose(d["ideal_gpu_hours"], d["ideal_wall_clock_days"] * 24 * d["num_gpus"], rel_tol=1e-9)
    assert math.isclose(d["cost_usd"], d["gpu_hours"] * d["usd_per_gpu_hour"], rel_tol=1e-9)
    assert math.isclose(sum(d["breakdown"].values()), d["step_time_s"], rel_tol=1e-6)
    assert all(v >= 0 for v in d["breakdown"].values()), d["breakdown"]
    assert 0 < d["mfu"] <= d["hfu"] <= 1
    assert 0 < d["memory_per_gpu_gib"] <= d["gpu_memory_gib"]
    assert lay["tp"] * lay["pp"] * lay["dp"] * lay["cp"] == d["num_gpus"]
    assert d["flops_per_token"] > 0 and d["tokens_per_s_per_gpu"] > 0
    # throughput and step time agree: one step moves the global batch
    assert math.isclose(d["tokens_per_s_per_gpu"] * d["step_time_s"] * d["num_gpus"], d["global_batch_tokens"], rel_tol=1e-9)


def test_json_of_the_default_llama_case():
    d = estimate_json("llama-8b-search")
    assert (d["model"], d["gpu"], d["num_gpus"], d["tokens"]) == ("llama-3.1-8b", "h100-sxm", 64, 1e12)
    assert d["memory_per_gpu_gib"] <= 80
    assert d["layout_chosen_by_search"] is True


def test_published_deepseek_v3_layout_is_kept():
    d = estimate_json("deepseek-v3-published")
    lay = d["layout"]
    assert (lay["tp"], lay["pp"], lay["dp"], lay["ep"], lay["schedule"]) == (1, 16, 128, 64, "dualpipe")
    assert d["precision"] == "fp8"


def test_recompute_full_makes_hfu_exceed_mfu():
    d = estimate_json("llama-70b-recompute-full")
    assert d["layout"]["recompute"] == "full"
    assert d["hfu"] > d["mfu"] * 1.2  # full recomputation redoes the forward: about 4/3 of the model FLOPs
    assert d["layout_chosen_by_search"] is False


def test_csv_is_a_header_and_one_row():
    result = invoke(*LLAMA_8B, "--tokens", "1T", *FIXED, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert len(rows) == 2, result.stdout
    header, row = rows
    assert len(header) == len(row)
    for key in ("model", "gpu_hours", "cost_usd", "layout.tp", "breakdown.dense_ffn"):
        assert key in header
    values = dict(zip(header, row, strict=True))
    assert values["model"] == "llama-3.1-8b"
    assert float(values["gpu_hours"]) > 0


def test_table_output_has_the_step_time_breakdown():
    result = invoke(*LLAMA_8B, "--tokens", "1T", *FIXED)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "step time breakdown" in out
    for label in ("GPU-hours", "wall clock", "cost", "MFU / HFU", "memory per GPU", "TP1 PP1 DP64"):
        assert label in out


# --------------------------------------------------------------------------- number parsing


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("14.8T", 14.8e12),
        ("300B", 300e9),
        ("1.5e12", 1.5e12),
        ("62914560", 62914560.0),
        ("2t", 2e12),
        ("1_000_000_000_000", 1e12),
    ],
)
def test_tokens_parse(text, value):
    result = invoke(*LLAMA_8B, "--tokens", text, *FIXED, "--format", "json")
    assert result.exit_code == 0, result.output
    assert math.isclose(json.loads(result.stdout)["tokens"], value, rel_tol=1e-12)


@pytest.mark.parametrize("text", ["abc", "-5", "0", "", "1.2.3T", "inf", "nan", "1e400", "2.788M"])
def test_bad_tokens_give_a_clean_error(text):
    # 2.788M parses but is less than one 4M-token step
    out = assert_clean_error(invoke(*LLAMA_8B, "--tokens", text, *FIXED), "--tokens")
    assert out.startswith("error:"), out


@pytest.mark.parametrize("text", ["abc", "0", "-4M"])
def test_bad_global_batch_tokens_give_a_clean_error(text):
    out = assert_clean_error(invoke(*LLAMA_8B, "--tokens", "1T", "--global-batch-tokens", text, *FIXED), "--global-batch-tokens")
    assert out.startswith("error:"), out


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def model_file(tmp_path):
    """Write a model file into tmp_path and return its path as a string."""

    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def test_unknown_gpu_suggests_close_ids():
    out = assert_clean_error(invoke("estimate", "llama-3.1-8b", "--gpu", "h80", "--num-gpus", "8", "--tokens", "1T"), "h80")
    assert out.startswith("error: unknown GPU")
    assert "h800" in out and "costsim list gpus" in out


def test_unknown_model_suggests_close_names():
    out = assert_clean_error(
        invoke("estimate", "lama-3.1-8b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T"), "lama-3.1-8b"
    )
    assert out.startswith("error: unknown model")
    assert "llama-3.1-8b" in out and "costsim list models" in out


def test_gpu_and_model_names_are_case_insensitive():
    result = invoke("estimate", "LLAMA-3.1-8B", "--gpu", "H100", "--num-gpus", "64", "--tokens", "1T", *FIXED, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["gpu"] == "h100-sxm"


def _spec_without(field: str) -> str:
    text = (ROOT / "model_specs" / "llama-3.1-8b.yaml").read_text()
    kept = [line for line in text.splitlines() if not line.startswith(f"{field}:")]
    assert len(kept) < len(text.splitlines())
    return "\n".join(kept) + "\n"


def test_malformed_yaml_model(model_file):
    path = model_file("broken.yaml", "name: broken\nn_layers: [1, 2\n")
    out = assert_clean_error(
        invoke("estimate", path, "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T"), path, "not valid YAML"
    )
    assert out.startswith("error:")


def test_yaml_model_missing_a_field(model_file):
    path = model_file("no-dff.yaml", _spec_without("d_ff"))
    out = assert_clean_error(invoke("estimate", path, "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T"), path, "d_ff")
    assert "required" in out.lower()


def test_yaml_model_that_is_not_a_mapping(model_file):
    path = model_file("list.yaml", "- a\n- b\n")
    assert_clean_error(invoke("estimate", path, "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T"), path, "mapping")


def test_missing_model_file():
    assert_clean_error(
        invoke("estimate", "/nonexistent/dir/spec.yaml", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T"), "no such file"
    )


def test_malformed_gpu_yaml(model_file):
    path = model_file("gpu.yaml", "name: gpu\ndense_tflop_per_s: {bf16: \n")
    assert_clean_error(
        invoke("estimate", "llama-3.1-8b", "--gpu", path, "--num-gpus", "8", "--tokens", "1T"), path, "not valid YAML"
    )


def test_json_config_that_is_not_json(model_file):
    path = model_file("config.json", '{"model_type": "llama", \n')
    assert_clean_error(invoke("estimate", path, "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T"), path, "not valid JSON")


def test_json_config_with_unknown_model_type(model_file):
    path = model_file("config.json", json.dumps({"model_type": "frobnicator", "hidden_size": 4096}))
    result = invoke("estimate", path, "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T")
    out = assert_clean_error(result, path, "frobnicator", "model_type")
    assert "llama" in out  # lists the model types it does read


LLAMA_8B_CONFIG = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                   "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256}  # fmt: skip


def test_a_hugging_face_model_folder_is_read_through_its_config_json(tmp_path):
    """A downloaded model's folder reads as its config.json (transformers' from_pretrained takes the folder); the
    same counts as the file itself."""
    folder = tmp_path / "my-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA_8B_CONFIG))
    args = ("--gpu", "h100", "--num-gpus", "8", "--tokens", "1T", "--format", "json")
    by_folder = invoke("estimate", str(folder), *args)
    by_file = invoke("estimate", str(folder / "config.json"), *args)
    assert by_folder.exit_code == 0, by_folder.output
    assert json.loads(by_folder.output)["params_total"] == json.loads(by_file.output)["params_total"]


def test_a_config_json_with_a_key_given_twice_is_refused(model_file):
    """JSON keeps the last of two equal keys; a second num_hidden_layers doubled the model without a word."""
    text = json.dumps(LLAMA_8B_CONFIG)[:-1] + ', "num_hidden_layers": 64}'
    path = model_file("config.json", text)
    assert_clean_error(
        invoke("estimate", path, "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T"), path, "'num_hidden_layers' is given twice"
    )


def test_a_folder_that_is_no_model_gpu_or_plan_is_named(tmp_path):
    empty = str(tmp_path)
    run = ("--num-gpus", "8", "--tokens", "1T")
    assert_clean_error(invoke("estimate", empty, "--gpu", "h100", *run), empty, "folder with no config.json")
    assert_clean_error(invoke("estimate", "llama-3.1-8b", "--gpu", empty, *run), empty, "is a folder", "profile YAML")
    assert_clean_error(invoke("estimate", "--plan", empty), empty, "directory", "plan YAML")


LONG = "x" * 300
"""A name over the file system's 255-character limit: pathlib's exists() and is_dir() raise OSError (errno 36) on it."""
CHEAPER = ["claim", "--cheaper", "deepseek-chat-2025", "deepseek-reasoner-2025", "--ratio", "2"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["estimate", LONG, "--gpu", "h100-sxm", "--num-gpus", "8", "--tokens", "1B"], "unknown model"),
        (["estimate", LONG + ".yaml", "--gpu", "h100-sxm", "--num-gpus", "8", "--tokens", "1B"], "unknown model"),
        (["estimate", "a\x00b.json", "--gpu", "h100-sxm", "--num-gpus", "8", "--tokens", "1B"], "unknown model"),
        (["estimate", "llama-3.1-8b", "--gpu", LONG, "--num-gpus", "8", "--tokens", "1B"], "unknown GPU"),
        (["estimate", "llama-3.1-8b", "--gpu", LONG + ".yaml", "--num-gpus", "8", "--tokens", "1B"], "unknown GPU"),
        (["serve", "llama-3.1-8b", "--gpu", LONG], "unknown GPU"),
        (["sweep", LONG, "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T"], "unknown model"),
        (["estimate", "--plan", LONG], "unknown plan"),
        (["estimate", "--plan", LONG + ".yaml"], "unknown plan"),
        (["compare", LONG, "llama-3.1-8b"], "unknown plan"),
        ([*CHEAPER, "--gpu", LONG], "unknown GPU"),
        ([*CHEAPER, "--a-model", LONG], "unknown model"),
        ([*CHEAPER, "--b-model", LONG], "unknown model"),
    ],
    ids=[
        "model",
        "model-yaml",
        "model-nul",
        "gpu",
        "gpu-yaml",
        "serve-gpu",
        "sweep-model",
        "plan",
        "plan-yaml",
        "compare",
        "claim-gpu",
        "claim-a-model",
        "claim-b-model",
    ],  # fmt: skip
)
def test_a_name_the_file_system_refuses_is_an_unknown_name(args, needle):
    """A 300-character name (or one with a NUL byte) is looked up as a file before the shipped names: it gave an
    `OSError: [Errno 36] File name too long` traceback; now the usual 'unknown ...' line."""
    assert_clean_error(invoke(*args), needle, error="prefix")


def test_tp_not_dividing_the_heads():
    out = assert_clean_error(
        invoke("estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "96", "--tokens", "1T", "--tp", "3"),
        "32 attention heads",
        "TP = 3",
    )
    assert out.startswith("error:")


def test_tp_not_dividing_the_gpus():
    assert_clean_error(invoke(*LLAMA_8B, "--tokens", "1T", "--tp", "3"), "--num-gpus 64", "TP x PP x CP = 3 x 1 x 1 = 3")


def test_pp_not_dividing_the_gpus_names_the_product_rule():
    out = assert_clean_error(
        invoke("estimate", "llama-3.1-405b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T", "--tp", "8", "--pp", "7"),
        "--num-gpus 64",
        "TP x PP x CP",
        "8 x 7 x 1 = 56",
    )
    assert out.startswith("error:")


def test_explicit_dp_with_the_wrong_product():
    assert_clean_error(
        invoke(*LLAMA_8B, "--tokens", "1T", "--tp", "2", "--pp", "2", "--cp", "1", "--dp", "8"),
        "TP x PP x CP x DP = 2 x 2 x 1 x 8 = 32",
        "--num-gpus is 64",
    )


def test_ep_not_dividing_the_experts():
    assert_clean_error(
        invoke("estimate", "mixtral-8x7b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T", "--ep", "3"),
        "8 experts",
        "EP = 3",
    )


def test_ep_on_a_dense_model():
    assert_clean_error(invoke(*LLAMA_8B, "--tokens", "1T", "--ep", "2"), "EP = 2", "no experts")


def test_gpus_not_divisible_by_tp_times_pp():
    assert_clean_error(
        invoke("estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "100", "--tokens", "1T", "--tp", "8", "--pp", "4"),
        "--num-gpus 100",
        "8 x 4 x 1 = 32",
    )


def test_too_many_pipeline_stages():
    assert_clean_error(invoke(*LLAMA_8B, "--tokens", "1T", "--pp", "64"), "32 layers", "64")


def test_vpp_without_interleaving():
    assert_clean_error(invoke(*LLAMA_8B, "--tokens", "1T", "--schedule", "1f1b", "--vpp", "2"), "--vpp 2", "interleaved")


def test_layout_that_does_not_fit():
    out = assert_clean_error(
        invoke("estimate", "llama-3.1-405b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T", "--tp", "8", "--pp", "1"),
        "does not fit",
        "GiB",
        "h100-sxm has 80.0 GiB",
    )
    assert out.startswith("error:")


def test_fp8_on_a_gpu_without_fp8():
    out = assert_clean_error(
        invoke("estimate", "llama-3.1-8b", "--gpu", "a100", "--num-gpus", "64", "--tokens", "1T", "--precision", "fp8"),
        "fp8",
        "a100-80gb",
    )
    assert "no dense fp8 peak" in out and "--precision bf16" in out


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--num-gpus", "0"),
        ("--usd-per-gpu-hour", "-1"),
        ("--seq-len", "0"),
        ("--zero-stage", "4"),
        ("--tp", "0"),
        ("--format", "xml"),
    ],
)
def test_out_of_range_options(flag, value):
    args = [*LLAMA_8B, "--tokens", "1T"]
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    assert_clean_error(invoke(*args), flag)


SEARCH = ["search", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T"]
SWEEP = ["sweep", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T"]
CLAIM = ["claim", "deepseek-v3", "--gpu", "h800", "--gpu-hours", "2.788M", "--tokens", "14.8T"]
REPORT = ["report", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T"]


@pytest.mark.parametrize(
    ("command", "flag", "value", "needle"),
    [
        (LLAMA_8B, "--num-gpus", "0", "--num-gpus 0 is out of range [1, 1,000,000]"),
        (LLAMA_8B, "--tp", "99999999999999999999", "--tp 99999999999999999999 is out of range [1, 1,000,000]"),
        (LLAMA_8B, "--ep", "-1", "--ep -1 is out of range [1, 1,000,000]"),
        (LLAMA_8B, "--seq-len", "-5", "--seq-len -5 is out of range [1, 10,000,000]"),
        (LLAMA_8B, "--zero-stage", "4", "--zero-stage 4 is out of range [0, 3]"),
        (LLAMA_8B, "--dropout", "2", "--dropout 2 is out of range [0, 0.9]"),
        (LLAMA_8B, "--usd-per-gpu-hour", "-1", "--usd-per-gpu-hour -1 is out of range [0, 1,000]"),
        (LLAMA_8B, "--pue", "-1", "--pue -1 is out of range [1, 3]"),
        (LLAMA_8B, "--tokens", "-5", "--tokens '-5' = -5 is out of range [1, 1e+17]"),
        (SEARCH, "--top", "0", "--top 0 is out of range [1, 1,000,000]"),
        (SEARCH, "--micro-batch-size", "-2", "--micro-batch-size -2 is out of range [1, 1,000,000]"),
        (SWEEP, "--num-gpus", "0", "--num-gpus '0': every count must be between 1 and 1,000,000"),
        (SWEEP, "--deadline-days", "-1", "--deadline-days -1 is out of range [0.001, 36,500]"),
        (SWEEP, "--budget-usd", "1e99", "--budget-usd 1e+99 is out of range [1, 1e+13]"),
        (SWEEP, "--vpp", "0", "--vpp 0 is out of range [1, 1,000,000]"),
        (CLAIM, "--num-gpus", "-3", "--num-gpus -3 is out of range [1, 1,000,000]"),
        (CLAIM, "--gpu-hours", "-1", "--gpu-hours '-1' = -1 is out of range [0.001, 1e+12]"),
        (REPORT, "--num-gpus", "0", "--num-gpus 0 is out of range [1, 1,000,000]"),
        (REPORT, "--dp", "0", "--dp 0 is out of range [1, 1,000,000]"),
        (REPORT, "--draws", "-5", "--draws -5 is out of range [100, 1,000,000]"),
    ],
)
def test_numbers_out_of_range_name_the_option_value_and_range(tmp_path, command, flag, value, needle):
    """One line naming the option, the value, the allowed range and a fix; exit 1; not typer's usage box."""
    args = [*command, "--output", str(tmp_path / "report")] if command is REPORT else list(command)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    out = assert_clean_error(invoke(*args), needle, exit_code=1, error="prefix")
    assert len(out.strip().splitlines()) == 1, out
    assert ";" in out.split(needle, 1)[-1], f"no fix suggested: {out}"


def test_count_parsing_is_one_range_checked_path():
    from simulator.units import count_in_range

    assert count_in_range("14.8T", 1, 1e17) == 14.8e12 and count_in_range(300, 1, 1e17) == 300.0
    for bad, message in [(True, "not a number"), ("1.2.3T", "not a number"), ("nan", "out of range"), (0, "[1, ")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            count_in_range(bad, 1, 1e17)
    with pytest.raises(ValueError, match=re.escape("out of range (0, ")):
        count_in_range(0, 0, 1e17, low_open=True)


def test_global_batch_smaller_than_one_sequence():
    out = assert_clean_error(
        invoke(*LLAMA_8B, "--tokens", "1T", "--global-batch-tokens", "4096"),
        "--global-batch-tokens",
        "smaller than one sequence",
        "8192",
    )
    assert out.startswith("error:")


def test_global_batch_not_a_multiple_of_the_sequence():
    assert_clean_error(
        invoke(*LLAMA_8B, "--tokens", "1T", "--global-batch-tokens", "12288", *FIXED),
        "not a multiple of the sequence length 8192",
    )


# --------------------------------------------------------------------------- real processes


def test_python_m_cli_runs_as_a_process():
    base = [sys.executable, "-m", "cli", *LLAMA_8B]
    ok = subprocess.run(
        [*base, "--tokens", "1T", *FIXED, "--format", "json"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["model"] == "llama-3.1-8b"
    bad = subprocess.run([*base, "--tokens", "abc"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr.startswith("error: --tokens"), bad.stderr
    assert "Traceback" not in bad.stderr


def test_estimate_path_imports_neither_torch_nor_matplotlib():
    code = (
        "import sys, cli; from simulator import api; "
        'api.estimate("deepseek-v3","h800",2048,14.8e12,seq_len=4096,global_batch_tokens=62914560,precision="fp8",'
        'tp=1,pp=16,ep=64,schedule="dualpipe"); '
        'print("torch" in sys.modules, "matplotlib" in sys.modules)'
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False False"


def test_list_plans_names_every_shipped_plan_as_estimate_plan_takes_it():
    """`--plan NAME` help pointed at `costsim list plans`, which did not exist."""
    from simulator.inputs.plan_file import plan_ids

    result = invoke("list", "plans", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["plans"]
    assert [r["name"] for r in rows] == list(plan_ids())
    r1 = next(r for r in rows if r["name"] == "deepseek-r1")
    assert "rl" in r1["kinds"] and r1["model"] == "deepseek-v3" and r1["reported_gpu_hours"] == 147336
    assert "deepseek-r1" in invoke("list", "plans").output


def test_a_plan_with_rl_stages_refused_by_a_band_names_how_to_run_it(tmp_path):
    """The fix named the plan's internal `name`, which `--plan` cannot find when it differs from the file's."""
    raw = yaml.safe_load((plan_dir() / "deepseek-r1.yaml").read_text())
    raw["name"] = "renamed"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = assert_clean_error(invoke("estimate", "--plan", str(path), "--uncertainty"), "RL/generation stages")
    assert f"costsim estimate --plan {path}, without --uncertainty" in out
    out = assert_clean_error(invoke("estimate", "--plan", "deepseek-r1", "--uncertainty"), "RL/generation stages")
    assert "costsim estimate --plan deepseek-r1, without --uncertainty" in out
