"""Schema errors of input files in words (issue 13): a model spec, hardware profile, plan, config.json or calibration
that does not fit its schema is refused with one `error:` line naming the file, the field path, the value given, what
the field takes (kind and range, read from the schema) and a fix for that kind of error, never a generic one."""

from __future__ import annotations

import json

import pytest
import yaml
from cli_support import ROOT, clean_error, invoke

from simulator.errors import SpecError
from simulator.inputs import specs
from simulator.inputs.calibration import load_calibration
from simulator.inputs.data_files import hardware_dir, model_dir, plan_dir
from simulator.inputs.plan_file import Stage
from simulator.inputs.schema_errors import expected_kind, field_at

ESTIMATE = ("--num-gpus", "64", "--tokens", "1T")


def _bounds(schema, name: str) -> tuple[int, int]:
    """The (low, high) bounds the schema gives an integer field, so the tests do not restate them."""
    meta = schema.model_fields[name].metadata
    low = next(m.ge for m in meta if hasattr(m, "ge"))
    high = next(m.le for m in meta if hasattr(m, "le"))
    return low, high


def _spec(tmp_path, name: str, change) -> str:
    raw = yaml.safe_load((model_dir() / "llama-3.1-8b.yaml").read_text())
    change(raw)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def _line(result, *needles: str) -> str:
    out = clean_error(result, *needles, error="prefix")
    assert len(out.strip().splitlines()) == 1, out
    return out


def _refused_spec(tmp_path, name: str, change, *needles: str) -> str:
    path = _spec(tmp_path, name, change)
    return _line(invoke("estimate", path, "--gpu", "a100-80gb", *ESTIMATE), path, *needles)


# --------------------------------------------------------------------------- model spec


def test_out_of_range_names_value_range_and_fix(tmp_path):
    low, high = _bounds(specs.ModelSpec, "n_layers")
    given = high * 100
    out = _refused_spec(tmp_path, "range", lambda r: r.update(n_layers=given), "n_layers", f"(got {given})")
    assert f"set n_layers to an integer between {low:,} and {high:,}" in out
    assert "correct the field(s) named" not in out


def test_below_range(tmp_path):
    low, high = _bounds(specs.ModelSpec, "d_model")
    out = _refused_spec(tmp_path, "below", lambda r: r.update(d_model=low - 5), "d_model", f"(got {low - 5})")
    assert f"set d_model to an integer between {low:,} and {high:,}" in out


def test_number_given_as_a_string(tmp_path):
    low, high = _bounds(specs.ModelSpec, "d_model")
    out = _refused_spec(tmp_path, "string", lambda r: r.update(d_model="4096"), "d_model", "(got '4096')")
    assert "use a number, not a string" in out and "d_model as 4096 without quotes" in out
    assert f"between {low:,} and {high:,}" in out


@pytest.mark.parametrize(
    ("given", "advice"),
    [("4096.0", "d_model as 4096 without quotes"), ("4,096", "d_model as 4096 without quotes"),
     ("4096.5", "use a whole number"), ("inf", "use a whole number")],
)  # fmt: skip
def test_an_integer_written_as_quoted_float_text_gets_its_digits(tmp_path, given, advice):
    """An integer field given '4096.0' in quotes: writing it unquoted would still fail (a float), so the advice gives the
    integer's digits; a fraction or an infinity is asked for as a whole number."""
    out = _refused_spec(tmp_path, "float-text", lambda r: r.update(d_model=given), "d_model", f"(got '{given}')")
    assert advice in out and f"as {given} without quotes" not in out


def test_an_integer_written_in_float_notation_gets_its_digits(tmp_path):
    """d_model: 4.096e3 (read as the float 4096.0) is whole: the advice names 4096, not 'a whole number'."""
    out = _refused_spec(tmp_path, "float", lambda r: r.update(d_model=4096.0), "d_model", "(got 4096.0)")
    assert "write d_model as 4096, without a decimal point or exponent" in out


def test_word_for_a_count(tmp_path):
    out = _refused_spec(tmp_path, "word", lambda r: r.update(n_heads="many"), "n_heads", "(got 'many')")
    assert "set n_heads to an integer between" in out and "not a string" not in out


def test_fraction_for_a_count(tmp_path):
    out = _refused_spec(tmp_path, "fraction", lambda r: r.update(n_layers=32.5), "n_layers", "(got 32.5)")
    assert "use a whole number: set n_layers to an integer between" in out


def test_flag_given_as_text(tmp_path):
    out = _refused_spec(tmp_path, "flag", lambda r: r.update(tied_embeddings="maybe"), "tied_embeddings", "(got 'maybe')")
    assert "write tied_embeddings as true or false" in out


def test_missing_field_names_what_to_add(tmp_path):
    low, high = _bounds(specs.ModelSpec, "d_model")
    out = _refused_spec(tmp_path, "missing", lambda r: r.pop("d_model"), "d_model: is required but missing")
    assert f"add d_model, an integer between {low:,} and {high:,}" in out


def test_extra_field_says_remove_and_suggests_the_name(tmp_path):
    out = _refused_spec(tmp_path, "extra", lambda r: r.update(n_layer=3), "n_layer", "(got 3)")
    assert "remove n_layer: ModelSpec has no such field (did you mean n_layers?)" in out
    out = _refused_spec(tmp_path, "extra2", lambda r: r.update(colour="blue"), "colour")
    assert "remove colour: ModelSpec has no such field" in out and "did you mean" not in out


def test_choice_lists_the_values_and_the_closest(tmp_path):
    out = _refused_spec(tmp_path, "choice", lambda r: r.update(ffn="swiglue"), "ffn", "(got 'swiglue')")
    choices = specs.ModelSpec.model_fields["ffn"].annotation.__args__
    assert "use one of" in out and all(repr(c) in out for c in choices)
    assert "(did you mean swiglu?)" in out


def test_custom_rule_carries_its_own_fix(tmp_path):
    out = _refused_spec(tmp_path, "rule", lambda r: r.update(n_kv_heads=5), "n_heads = 32 is not divisible by n_kv_heads = 5")
    divisors = [d for d in range(1, 33) if 32 % d == 0]
    assert f"set n_kv_heads to a divisor of 32 ({', '.join(map(str, divisors))})" in out


def test_several_problems_each_with_its_fix(tmp_path):
    def change(r):
        r.update(n_layers=0, d_model="4096", n_layer=1)

    out = _refused_spec(tmp_path, "several", change, "3 problems")
    assert "(1)" in out and "(2)" in out and "(3)" in out
    assert "set n_layers to an integer" in out and "without quotes" in out and "remove n_layer" in out


# --------------------------------------------------------------------------- nested fields, profiles, plans


def test_nested_field_of_a_profile(tmp_path):
    raw = yaml.safe_load((hardware_dir() / "h100-sxm.yaml").read_text())
    raw["price"]["usd_per_gpu_hour"] = 0
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    kind = expected_kind(field_at(specs.HardwareProfile, ("price", "usd_per_gpu_hour")))
    assert kind.startswith("a number between 0.01")  # MIN_USD_PER_GPU_HOUR
    out = _line(invoke("estimate", "llama-3.1-8b", "--gpu", str(path), *ESTIMATE), str(path), "price.usd_per_gpu_hour", "(got 0)")
    assert f"set price.usd_per_gpu_hour to {kind}" in out


def test_plan_stage_fields(tmp_path):
    raw = yaml.safe_load((plan_dir() / "deepseek-v3.yaml").read_text())
    raw["stages"][0]["seq_len"] = "4K"
    raw["stages"][1]["tokenz"] = 5
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    low, high = _bounds(Stage, "seq_len")
    out = _line(invoke("estimate", "--plan", str(path)), str(path), "stages.0.seq_len", "(got '4K')", "stages.1.tokenz")
    assert f"set stages.0.seq_len to an integer between {low:,} and {high:,}" in out
    assert "remove stages.1.tokenz: Stage has no such field (did you mean tokens?)" in out


def test_config_json_names_the_key_to_change(tmp_path):
    raw = json.loads((ROOT / "tests" / "data" / "hf_configs" / "llama.json").read_text())
    low, high = _bounds(specs.ModelSpec, "d_model")
    raw["hidden_size"] = high * 2
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    out = _line(invoke("estimate", str(path), "--gpu", "a100-80gb", *ESTIMATE), str(path), f"(got {high * 2})")
    assert f"change `hidden_size` in the file so that d_model is an integer between {low:,} and {high:,}" in out


# --------------------------------------------------------------------------- calibration


def test_calibration_field_names_what_it_takes(tmp_path):
    from calibration_support import cpu_calibration

    raw = json.loads(cpu_calibration().to_json())
    raw["provenance"]["device_count"] = 0
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SpecError) as err:
        load_calibration(path)
    msg = str(err.value)
    assert str(path) in msg and "provenance.device_count" in msg and "(got 0)" in msg
    assert "provenance.device_count takes an integer between 1 and" in msg
    assert "costsim calibrate --output FILE" in msg
