"""Hostile and careless input files (issue 13, item 2): each is refused with one `error:` line that names the field or
the problem, in well under 5 s, before any loop over layers or experts runs; values the schemas accept never make a
result inf or NaN."""

from __future__ import annotations

import json
import math
import os
import time

import pytest
import yaml
from cli_support import clean_error, invoke

from simulator.errors import SpecError
from simulator.inputs import files
from simulator.inputs.data_files import hardware_dir, model_dir

SECONDS = 5.0
ESTIMATE = ("--num-gpus", "64", "--tokens", "1T")


def _swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.fixture(scope="module")
def v3() -> str:
    return (model_dir() / "deepseek-v3.yaml").read_text()


@pytest.fixture(scope="module")
def a100() -> str:
    return (hardware_dir() / "a100-80gb.yaml").read_text()


def _refused(*args: str, needles: tuple[str, ...]) -> str:
    start = time.perf_counter()
    result = invoke(*args)
    elapsed = time.perf_counter() - start
    out = clean_error(result, *needles, error="prefix")
    assert elapsed < SECONDS, f"{elapsed:.1f} s: {out}"
    assert len(out.strip().splitlines()) == 1, out
    return out


# --------------------------------------------------------------------------- model spec YAML

SPEC_CASES = {
    "mtp_depth": (("mtp_depth: 1\n", "mtp_depth: 1000000\n"), ("mtp_depth", "64", "1000000")),
    "experts": (("n_routed_experts: 256", "n_routed_experts: 1099511627776"), ("moe.n_routed_experts", "1000000")),
    "heads": (("n_heads: 128", f"n_heads: {2**70}"), ("n_heads", "100000", str(2**70))),
    "sexagesimal": (("n_layers: 61", "n_layers: 1:30"), ("n_layers", "'1:30'")),
    "bool_count": (("head_dim: 128", "head_dim: true"), ("head_dim", "valid integer", "True")),
    "float_count": (("n_layers: 61", "n_layers: 61.0"), ("n_layers", "valid integer", "61.0")),
    "yes_flag": (("tied_embeddings: false", "tied_embeddings: no"), ("tied_embeddings", "valid boolean", "'no'")),
    "bigint": (("n_layers: 61", "n_layers: " + "9" * 5000), ("5,000 digits", "line 4")),
    "inf": (("d_model: 7168", "d_model: .inf"), ("`d_model` is inf", "finite")),
    "nan": (("total: 671.0e9", "total: .nan"), ("`published_params.total` is nan", "finite")),
    "layers": (("n_layers: 61", "n_layers: 1000000000"), ("n_layers", "1000")),
}


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_spec_yaml_refused(case, v3, tmp_path):
    (old, new), needles = SPEC_CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(_swap(v3, old, new))
    _refused("estimate", str(path), "--gpu", "a100-80gb", *ESTIMATE, needles=(str(path), *needles))


def test_duplicate_key_refused(v3, tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(v3 + "n_layers: 30\n")
    _refused("estimate", str(path), "--gpu", "a100-80gb", *ESTIMATE, needles=("'n_layers' is given twice", "keep one"))


def test_duplicate_key_in_flow_mapping_refused():
    with pytest.raises(SpecError, match=r"'a' is given twice \(lines 1 and 1\)"):
        files.parse_yaml("{a: 1, a: 2}", "x.yaml")


def test_many_keys_refused_fast(v3, tmp_path):
    """The 900k-key file: over the size limit; under it, over the node limit."""
    big = tmp_path / "big.yaml"
    big.write_text(v3 + "".join(f"k{i}: {i}\n" for i in range(900_000)))
    _refused("estimate", str(big), "--gpu", "a100-80gb", *ESTIMATE, needles=("bytes is over the", "byte limit"))
    many = tmp_path / "many.yaml"
    many.write_text(v3 + "".join(f"k{i}: {i}\n" for i in range(250_000)))
    assert many.stat().st_size < files.MAX_FILE_BYTES
    _refused("estimate", str(many), "--gpu", "a100-80gb", *ESTIMATE, needles=("more than 200,000 YAML nodes",))


def test_fifo_refused(tmp_path):
    fifo = tmp_path / "model.yaml"
    os.mkfifo(fifo)
    _refused("estimate", str(fifo), "--gpu", "a100-80gb", *ESTIMATE, needles=("FIFO", "not a regular file"))


def test_yaml_1_2_scalars():
    data = files.parse_yaml("a: yes\nb: on\nc: 1:30\nd: 010\ne: 1e9\nf: 0x10\ng: 2024-05-01\nh: true\ni: ~\nj: 1_000\n")
    assert data == {"a": "yes", "b": "on", "c": "1:30", "d": 10, "e": 1e9, "f": "0x10", "g": "2024-05-01", "h": True,
                    "i": None, "j": "1_000"}  # fmt: skip


def test_billion_laughs_and_self_reference_refused():
    laughs = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for i, (name, prev) in enumerate(zip("bcdefgh", "abcdefg", strict=True)):
        laughs += f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]\n"
        assert i < 7
    with pytest.raises(SpecError, match="more than 1,000,000 values"):
        files.parse_yaml(laughs, "laughs.yaml")
    with pytest.raises(SpecError, match="nests deeper than 64 levels"):
        files.parse_yaml("a: &a [*a]\n", "loop.yaml")


def test_every_shipped_yaml_reads_as_before():
    """The strict loader reads every shipped file as PyYAML's YAML 1.1 loader did (numbers as numbers; the only
    difference, 200e9 as a number and not a string, is one every schema took either way)."""

    def norm(x):
        if isinstance(x, dict):
            return {norm(k): norm(v) for k, v in x.items()}
        if isinstance(x, list):
            return [norm(v) for v in x]
        if isinstance(x, str):
            try:
                return float(x)
            except ValueError:
                return x
        return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else x

    root = model_dir().parent
    paths = [p for folder in ("model_specs", "hardware_profiles", "plans", "validation") for p in (root / folder).rglob("*.yaml")]
    assert len(paths) > 60
    for path in paths:
        text = path.read_text()
        assert norm(files.parse_yaml(text, path)) == norm(yaml.safe_load(text)), path


# --------------------------------------------------------------------------- config.json


def _config(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


DS3 = {"model_type": "deepseek_v3", "num_hidden_layers": 61, "hidden_size": 7168, "num_attention_heads": 128,
       "vocab_size": 129280, "intermediate_size": 18432}  # fmt: skip
GEMMA2 = {"model_type": "gemma2", "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
          "vocab_size": 1000, "intermediate_size": 512, "sliding_window": 128}  # fmt: skip
MPT = {"model_type": "mpt", "n_layers": 4, "d_model": 256, "n_heads": 4, "vocab_size": 1000}

CONFIG_CASES = {
    "moe_layers": (json.dumps({**DS3, "num_hidden_layers": 1_000_000_000}), ("`num_hidden_layers` = 1,000,000,000", "1,000")),
    "moe_layers_float": (json.dumps({**DS3, "num_hidden_layers": 1e9}), ("`num_hidden_layers` = 1,000,000,000",)),
    "layer_types": (json.dumps({**GEMMA2, "layer_types": 5}), ("`layer_types` = 5", "must be a list")),
    "expansion_nan": (json.dumps(MPT)[:-1] + ', "expansion_ratio": NaN}', ("`expansion_ratio` is nan", "finite")),
    "expansion_huge": (json.dumps({**MPT, "expansion_ratio": 1e300}), ("`expansion_ratio` = 1e+300", "at most 1000")),
    "bigint": ('{"model_type": "llama", "num_hidden_layers": ' + "9" * 5000 + "}", ("5,000 digits",)),
    "deep": ("[" * 100_000 + "]" * 100_000, ("nested too deeply",)),
    "deep_under_recursion": ('{"a": ' * 200 + "1" + "}" * 200, ("nests deeper than 64 levels",)),
    "infinity": (json.dumps({**DS3, "hidden_size": float("inf")}), ("`hidden_size` is inf",)),
    "huge_float": ('{"model_type": "llama", "hidden_size": 1e999}', ("`hidden_size` is inf",)),
    "heads": (json.dumps({**DS3, "num_attention_heads": 2**70}), ("n_heads", "100000")),
    "mlp_only_layers": (
        json.dumps(
            {
                "model_type": "qwen2_moe",
                "num_hidden_layers": 1000,
                "hidden_size": 64,
                "num_attention_heads": 4,
                "num_key_value_heads": 4,
                "vocab_size": 100,
                "intermediate_size": 64,
                "moe_intermediate_size": 32,
                "mlp_only_layers": [3, *range(2000, 500_000)],
            }
        ),
        ("`mlp_only_layers` names layers [2000, 2001", "(498000 layers)", "outside the model's 1000 layers"),
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_json_refused(case, tmp_path):
    text, needles = CONFIG_CASES[case]
    path = _config(tmp_path, f"{case}.json", text)
    _refused("estimate", str(path), "--gpu", "a100-80gb", *ESTIMATE, needles=(str(path), *needles))


# --------------------------------------------------------------------------- hardware profiles

PROFILE_CASES = {  # case: (key, shipped value, hostile value, what the message holds)
    "scale_out_zero": ("gbit_per_s_per_gpu", "200", "0", ("scale_out.gbit_per_s_per_gpu = 0", "[1, 1e+06]")),
    "scale_up_zero": ("gb_per_s_per_direction", "300", "0", ("scale_up.gb_per_s_per_direction = 0",)),
    "latency_inf": ("collective_latency_us", "20", ".inf", ("`efficiency.collective_latency_us.value` is inf",)),
    "efficiency_above_1": ("hbm", "0.85", "1.7", ("efficiency.hbm = 1.7", "[0.01, 1]")),
    "domain_half": ("domain_gpus", "8", "0.5", ("scale_up.domain_gpus = 0.5", "whole number")),
    "domain_huge": ("domain_gpus", "8", "1e300", ("scale_up.domain_gpus = 1e+300",)),
    "tdp_zero": ("tdp_w", "400", "0", ("tdp_w = 0",)),
    "peak_nan": ("fp16", "312", ".nan", ("`dense_tflop_per_s.fp16.value` is nan",)),
    "value_bool": ("tdp_w", "400", "true", ("tdp_w.value", "valid number")),
}


@pytest.mark.parametrize("case", sorted(PROFILE_CASES))
def test_profile_refused(case, a100, tmp_path):
    key, shipped, hostile, needles = PROFILE_CASES[case]
    path = tmp_path / "a100-80gb.yaml"  # the name must match the file stem
    path.write_text(_swap(a100, f"{key}: {{value: {shipped}", f"{key}: {{value: {hostile}"))
    _refused("estimate", "llama-3.1-8b", "--gpu", str(path), *ESTIMATE, needles=(str(path), *needles))


def test_slowest_profile_allowed_gives_finite_results(a100, tmp_path):
    """At the lowest rates the schema allows the estimate is slow but finite: no inf, NaN or null."""
    text = a100
    for old, new in [("gbit_per_s_per_gpu: {value: 200", "gbit_per_s_per_gpu: {value: 1"),
                     ("gb_per_s_per_direction: {value: 300", "gb_per_s_per_direction: {value: 1"),
                     ("scale_up_bus: {value: 0.78", "scale_up_bus: {value: 0.01"),
                     ("scale_out_bus: {value: 0.96", "scale_out_bus: {value: 0.01"),
                     ("collective_latency_us: {value: 20", "collective_latency_us: {value: 1000000")]:  # fmt: skip
        text = _swap(text, old, new)
    path = tmp_path / "a100-80gb.yaml"
    path.write_text(text)
    result = invoke("estimate", "llama-3.2-1b", "--gpu", str(path), "--num-gpus", "16", "--tokens", "1B", "--format", "json")
    assert result.exit_code == 0, result.output
    _assert_finite(json.loads(result.output))


def _assert_finite(doc, where="") -> None:
    stack = [(doc, where)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, f"{at}.{k}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(node))
        elif isinstance(node, float):
            assert math.isfinite(node), at


# --------------------------------------------------------------------------- plans


def test_plan_strict_counts(tmp_path):
    from simulator.inputs.data_files import plan_dir

    text = (plan_dir() / "deepseek-v3.yaml").read_text()
    path = tmp_path / "plan.yaml"
    path.write_text(text.replace("num_gpus: 2048", "num_gpus: true", 1))
    _refused("estimate", "--plan", str(path), needles=("num_gpus", "valid integer"))


def test_a_step_time_that_is_not_finite_is_refused_not_reported():
    """The last guard (run/estimate.py check_finite_step): never an `inf` or NaN result, whatever slipped past."""
    import math

    import pytest

    from simulator.errors import SpecError
    from simulator.run.estimate import check_finite_step

    check_finite_step(1.5, {"dense_ffn": 1.5}, "h100-sxm")
    for bad in (math.inf, math.nan, 0.0, -1.0):
        with pytest.raises(SpecError, match="h100-sxm") as e:
            check_finite_step(bad, {"dense_ffn": 1.0, "dp_comm_exposed": bad}, "h100-sxm")
        assert "\n" not in str(e.value)
    with pytest.raises(SpecError, match="dp_comm_exposed"):
        check_finite_step(math.inf, {"dense_ffn": 1.0, "dp_comm_exposed": math.inf}, "h100-sxm")
