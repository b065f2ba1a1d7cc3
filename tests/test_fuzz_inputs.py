"""Property-based fuzzing of every input file costsim reads (issue 13, item 10): model spec YAML, Hugging Face
config.json, hardware profiles, plans and calibration files, mutated at random (a value replaced by a hostile one:
huge, negative, NaN, inf, a bool, text, a list, deep nesting; a key removed or added; a raw YAML token such as `1:30`
or `yes` written into a line; a line repeated).

The property: a mutated file either loads or is refused with a SpecError of one line naming the file, never another
exception; and an estimate on a spec or profile that loads gives finite numbers or a CostsimError. Deterministic
(derandomize) and sized to run in about 10 s.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import yaml
from calibration_support import cpu_calibration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import api
from simulator.errors import CostsimError, SpecError
from simulator.inputs import files
from simulator.inputs.calibration import load_calibration
from simulator.inputs.data_files import hardware_dir, model_dir, plan_dir, prices_dir
from simulator.inputs.hf_config import model_from_hf_config
from simulator.inputs.plan_file import Plan
from simulator.inputs.serving_cases import PriceSheet
from simulator.inputs.specs import HardwareProfile, ModelSpec

WHERE = "fuzz-input"
FAST = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
SLOW = settings(FAST, max_examples=25)  # each example runs an estimate

# --------------------------------------------------------------------------- strategies


def _nested(depth: int) -> object:
    node: object = 1
    for _ in range(depth):
        node = [node]
    return node


HOSTILE = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -1, 1, 2, 3, 2**31, 2**63, 10**29, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1e300, -0.0, 1e-300, float("nan"), float("inf"), -float("inf")]),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.sampled_from(["1:30", "yes", "off", "0x10", "1e9", "14.8T", ".inf", "", "~", "2024-01-01"]),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.integers(min_value=1, max_value=150).map(_nested),
)
RAW_TOKENS = ["1:30", "yes", "no", "on", "0x10", "010", "1e9", "1_000", ".nan", "-.inf", "9" * 5000, "[" * 80,
              "{a: 1, a: 2}", "&a [*a]", "!!python/object/apply:os.system ['true']", "!!binary aGk=",
              "!!timestamp 2024-01-01", "2024-01-01", "+1", "@", "'", "[1, 2", "*undefined", "!!int 1:30",
              "!!float 1_0.5", "true", "null", "- 1"]  # fmt: skip


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a parsed document (the root excluded)."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


@st.composite
def mutated(draw, base: dict) -> dict:
    """`base` with one to three mutations: a value replaced, a key removed, or an unknown key added."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if op == "replace":
            parent[path[-1]] = draw(HOSTILE)
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=6))] = draw(HOSTILE)
    return doc


@st.composite
def raw_yaml(draw, text: str) -> str:
    """`text` with a raw YAML token written as one line's value, or a line repeated."""
    lines = text.splitlines()
    i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
    if draw(st.booleans()):
        lines.insert(i, lines[i])
    elif ":" in lines[i]:
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {draw(st.sampled_from(RAW_TOKENS))}"
    return "\n".join(lines) + "\n"


def _dump(doc: object) -> str:
    return yaml.safe_dump(doc, sort_keys=False, width=10_000)


# --------------------------------------------------------------------------- the property


def _refused_cleanly(e: SpecError, where: str = WHERE) -> None:
    text = str(e)
    assert "\n" not in text, text
    assert where in text, text
    assert len(text) < 2000, text


def _load(parse, text: str, schema) -> object | None:
    """The schema object, or None after a clean refusal; any other exception fails the test."""
    try:
        raw = parse(text, WHERE)
        return schema(raw) if callable(schema) and not isinstance(schema, type) else files.validate(raw, schema, WHERE)
    except SpecError as e:
        _refused_cleanly(e)
        return None


def _finite(doc: object) -> None:
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, float):
            assert math.isfinite(node)


LAYOUT = dict(tp=1, pp=1, ep=1, cp=1, zero_stage=1, micro_batch_size=1, schedule="1f1b", recompute="full", tp_overlap=False)


def _estimate_is_finite(model: str, gpu: str) -> None:
    try:
        result = api.estimate(model, gpu, 8, "1B", **LAYOUT)
    except CostsimError as e:
        assert "\n" not in str(e).strip() or "Traceback" not in str(e)
        return
    _finite(json.loads(result.to_json()))
    assert math.isfinite(result.gpu_hours) and result.gpu_hours > 0


# --------------------------------------------------------------------------- model specs


def _yaml_doc(path) -> dict:
    return yaml.safe_load(path.read_text())


SPECS = {name: _yaml_doc(model_dir() / f"{name}.yaml") for name in ("llama-3.2-1b", "deepseek-v3", "mixtral-8x7b", "gpt3-175b")}


@FAST
@given(data=st.data(), name=st.sampled_from(sorted(SPECS)))
def test_model_spec_mutations(data, name):
    _load(files.parse_yaml, _dump(data.draw(mutated(SPECS[name]))), ModelSpec)


@FAST
@given(data=st.data(), name=st.sampled_from(sorted(SPECS)))
def test_model_spec_raw_yaml(data, name):
    _load(files.parse_yaml, data.draw(raw_yaml((model_dir() / f"{name}.yaml").read_text())), ModelSpec)


@SLOW
@given(doc=mutated(SPECS["llama-3.2-1b"]))
def test_estimate_on_a_loaded_spec_is_finite(doc, tmp_path_factory):
    if _load(files.parse_yaml, _dump(doc), ModelSpec) is None:
        return
    path = tmp_path_factory.mktemp("spec") / "fuzz.yaml"
    path.write_text(_dump(doc))
    _estimate_is_finite(str(path), "a100-80gb")


# --------------------------------------------------------------------------- config.json

CONFIGS = {name: json.loads((Path(__file__).parent / "data" / "hf_configs" / f"{name}.json").read_text())
           for name in ("llama", "deepseek_v3", "qwen2_moe", "mpt", "gemma2", "falcon", "gpt2")}  # fmt: skip


@FAST
@given(data=st.data(), name=st.sampled_from(sorted(CONFIGS)))
def test_config_json_mutations(data, name):
    text = json.dumps(data.draw(mutated(CONFIGS[name])))  # NaN and Infinity as Python's json writes them
    _load(files.parse_json, text, lambda raw: model_from_hf_config(raw, WHERE))


@FAST
@given(
    text=st.one_of(
        st.text(max_size=50),
        st.sampled_from(
            [
                '{"a": ' * 500 + "1" + "}" * 500,
                "[" * 5000,
                "1" * 5000,
                "NaN",
                "-Infinity",
                '{"model_type": "llama"}',
                "[]",
                "null",
            ]
        ),
    )
)
def test_config_json_garbage(text):
    _load(files.parse_json, text, lambda raw: model_from_hf_config(raw, WHERE))


# --------------------------------------------------------------------------- hardware profiles

PROFILES = {name: _yaml_doc(hardware_dir() / f"{name}.yaml") for name in ("a100-80gb", "b200", "l40s")}


@FAST
@given(data=st.data(), name=st.sampled_from(sorted(PROFILES)))
def test_profile_mutations(data, name):
    _load(files.parse_yaml, _dump(data.draw(mutated(PROFILES[name]))), HardwareProfile)


@SLOW
@given(doc=mutated(PROFILES["a100-80gb"]))
def test_estimate_on_a_loaded_profile_is_finite(doc, tmp_path_factory):
    if _load(files.parse_yaml, _dump(doc), HardwareProfile) is None:
        return
    path = tmp_path_factory.mktemp("profile") / "a100-80gb.yaml"
    path.write_text(_dump(doc))
    _estimate_is_finite("llama-3.2-1b", str(path))


# --------------------------------------------------------------------------- plans

PLAN = _yaml_doc(plan_dir() / "deepseek-v3.yaml")


@FAST
@given(doc=mutated(PLAN))
def test_plan_mutations(doc):
    _load(files.parse_yaml, _dump(doc), Plan)


# --------------------------------------------------------------------------- calibration files


@pytest.fixture(scope="module")
def calibration_doc() -> dict:
    return json.loads(cpu_calibration().to_json())


@settings(FAST, max_examples=40)
@given(data=st.data())
def test_calibration_mutations(data, calibration_doc, tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "cal.json"
    path.write_text(json.dumps(data.draw(mutated(calibration_doc))))
    try:
        load_calibration(path)
    except SpecError as e:
        _refused_cleanly(e, str(path))


# --------------------------------------------------------------------------- serving inputs: fleet files, price sheets


def _fleet_doc() -> dict:
    from simulator.inputs.fleet_file import fleet_dir

    return _yaml_doc(fleet_dir() / "deepseek-v3-r1-day.yaml")


FLEET = _fleet_doc()


@FAST
@given(doc=mutated(FLEET))
def test_fleet_file_mutations(doc):
    """A mutated fleet file loads, or is refused in one line naming it; a loaded one closes its books finitely."""
    from simulator.run.fleet import fleet_day

    try:
        day = fleet_day(yaml.safe_load(_dump(doc)))
    except SpecError as e:
        assert "\n" not in str(e) and len(str(e)) < 2000, str(e)
        return
    except CostsimError as e:  # a loaded file whose numbers cannot close (e.g. no way to price a GPU-hour)
        assert "\n" not in str(e), str(e)
        return
    _finite(day.to_dict())


PRICE_SHEET = _yaml_doc(prices_dir() / "deepseek-reasoner-2025.yaml")


@FAST
@given(doc=mutated(PRICE_SHEET))
def test_price_sheet_mutations(doc):
    _load(files.parse_yaml, _dump(doc), PriceSheet)
