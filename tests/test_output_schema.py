"""Every command's `--format json` document against its pydantic model (simulator/outputs.py), and `costsim schema`
(issue 13, item 6).

Each case runs the real command on a small input and validates what it printed. The models forbid keys they do not
name, so a key added to a document without its model fails here. Inputs are chosen to reach the optional parts: an
uncertainty band, TCO and program cost, a plan's reported figures, a search reference and a search where nothing
fits, sweep answers and an infeasible row, a claim against a plan.
"""

from __future__ import annotations

import inspect
import json
from typing import Annotated, get_args, get_origin

import pytest
import typer
from cli_support import clean_error, costsim, invoke
from pydantic import BaseModel, ValidationError

import cli
from cli.options import SCHEMA_VERSION
from simulator import outputs
from simulator.outputs import COMMANDS, EstimateOutput

FIXED = ["--tp", "1", "--pp", "1", "--zero-stage", "3", "--micro-batch-size", "1", "--schedule", "1f1b", "--recompute", "none"]
ESTIMATE = ["estimate", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "64", "--tokens", "1T", *FIXED]
SEARCH = ["search", "llama-3.1-8b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T", "--tp", "1", "--pp", "1"]
TOO_BIG = ["llama-3.1-405b", "--gpu", "h100", "--num-gpus", "8", "--tokens", "1T", "--tp", "8", "--pp", "1"]
V3_CLAIM = ["claim", "deepseek-v3", "--gpu", "h800", "--gpu-hours", "2.788M", "--tokens", "14.8T", "--num-gpus", "2048"]

CASES: dict[str, tuple[str, list[str]]] = {
    # case id: (the command as `costsim schema` names it, the arguments that run it)
    "estimate": ("estimate", ESTIMATE),
    "estimate-band-tco-program": (
        "estimate",
        [*ESTIMATE, "--uncertainty", "--draws", "100", "--pricing", "tco", "--experiments-multiplier", "2"],
    ),
    "estimate-moe-fp8": (
        "estimate",
        [
            "estimate",
            "deepseek-v3",
            "--gpu",
            "h800",
            "--num-gpus",
            "2048",
            "--tokens",
            "14.8T",
            "--precision",
            "fp8",
            "--tp",
            "1",
            "--pp",
            "16",
            "--ep",
            "64",
            "--schedule",
            "dualpipe",
        ],
    ),  # fmt: skip
    "plan-reported": ("estimate --plan", ["estimate", "--plan", "deepseek-v3"]),
    "plan-band": ("estimate --plan", ["estimate", "--plan", "llama-3.1-405b", "--uncertainty", "--draws", "100"]),
    "search-reference": ("search", [*SEARCH, "--reference", "tp=1,pp=1,zero_stage=1,recompute=full"]),
    "search-nothing-fits": ("search", ["search", *TOO_BIG]),
    "sweep-answers": (
        "sweep",
        [
            "sweep",
            "llama-3.1-8b",
            "--gpu",
            "h100,a100-80gb",
            "--num-gpus",
            "8,16",
            "--tokens",
            "1T",
            "--tp",
            "1",
            "--pp",
            "1",
            "--deadline-days",
            "1000",
            "--budget-usd",
            "1e5",
        ],
    ),  # fmt: skip
    "sweep-nothing-fits": ("sweep", ["sweep", *TOO_BIG, "--deadline-days", "1"]),
    "claim-band": ("claim", [*V3_CLAIM, "--uncertainty", "--draws", "100"]),
    "claim-no-prediction": ("claim", V3_CLAIM[:-2]),
    "claim-plan-usd": ("claim", ["claim", "--plan", "deepseek-v3", "--usd", "5.576M"]),
    "compare": ("compare", ["compare", "llama-3.1-405b", "deepseek-v3"]),
    "validate-public": ("validate public", ["validate", "public"]),
    "list-gpus": ("list gpus", ["list", "gpus"]),
    "list-models": ("list models", ["list", "models"]),
    "list-stacks": ("list stacks", ["list", "stacks"]),
    "list-plans": ("list plans", ["list", "plans"]),
    "list-workloads": ("list workloads", ["list", "workloads"]),
    "serve-workload": ("serve", ["serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--workload", "inferencemax-8k1k"]),
    "serve-both-price-sheet": ("serve", ["serve", "deepseek-v3", "--gpu", "h800", "--price-sheet", "deepseek-reasoner-2025"]),
    "serve-decode": ("serve", ["serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--phase", "decode"]),
    "serve-prefill": ("serve", ["serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--phase", "prefill"]),
    "validate-serve": ("validate serve", ["validate", "serve"]),
    "fleet-given-rates": ("fleet", ["fleet", "deepseek-v3-r1-day"]),
    "fleet-predicted-rates": ("fleet", ["fleet", "deepseek-v3-r1-day", "--predict-rates"]),
    "validate-rl": ("validate rl", ["validate", "rl"]),
    "claim-cheaper": (
        "claim --cheaper",
        ["claim", "--cheaper", "deepseek-reasoner-2025", "openai-o1-2025-01", "--ratio", "20-50"],
    ),
}
NEEDS_TORCH = ("validate local", "calibrate check")
"""Run in test_torch_commands_match_their_models (a smoke calibration first)."""


def _schema(command: str) -> dict:
    r = invoke("schema", *command.split())
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _check(command: str, doc: dict) -> None:
    """The document validates against the command's model, and `costsim schema` names every top-level key."""
    COMMANDS[command].model_validate(doc)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert set(doc) <= set(_schema(command)["properties"]), set(doc) - set(_schema(command)["properties"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_json_output_matches_its_model(case):
    command, args = CASES[case]
    r = invoke(*args, "--format", "json")
    assert r.exit_code == 0, r.output
    _check(command, json.loads(r.stdout))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("smoke") / "cpu.json"
    proc = costsim("calibrate", "--device", "cpu", "--smoke", "--no-collectives", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_torch_commands_match_their_models(smoke):
    local = costsim("validate", "local", "--device", "cpu", "--calibration", str(smoke), "--case", "cpu-tiny", "--steps",
                    "3", "--warmup", "1", "--format", "json")  # fmt: skip
    assert local.returncode == 0, local.stderr
    _check("validate local", json.loads(local.stdout))
    check = costsim("calibrate", "check", str(smoke), "--format", "json")
    assert check.returncode in (0, 1), check.stderr  # 1: drift beyond the tolerance, a result like any other
    _check("calibrate check", json.loads(check.stdout))


def test_every_described_command_is_run_here():
    assert {c for c, _ in CASES.values()} | set(NEEDS_TORCH) == set(COMMANDS)


def _json_commands(command, path=()):
    """Every CLI command with a --format option that offers json, as its words."""
    if _offers_json(command.callback):
        yield " ".join(path)
    for name, sub in getattr(command, "commands", {}).items():
        yield from _json_commands(sub, (*path, name))


def _offers_json(function) -> bool:
    """Whether a command's function takes `format`, a choice with a json member."""
    param = inspect.signature(function, eval_str=True).parameters.get("format") if function else None
    if param is None:
        return False
    choice = get_args(param.annotation)[0] if get_origin(param.annotation) is Annotated else param.annotation
    return "json" in {m.value for m in choice}


NOT_YET_DESCRIBED: set[str] = set()
"""Commands that print JSON without a model yet (none)."""


def test_every_command_that_prints_json_has_a_model():
    """A new command with --format json needs its model in simulator.outputs.COMMANDS (and a case above)."""
    printing = set(_json_commands(typer.main.get_command(cli.app)))
    assert len(printing) >= 10
    assert (printing | {"estimate --plan", "claim --cheaper"}) - NOT_YET_DESCRIBED == set(COMMANDS)


def test_a_key_the_model_does_not_name_fails():
    """Drift is caught: a new key in the estimate document, at the top or inside a fixed object, is refused until
    the model names it; an open-ended mapping (the step-time breakdown) takes new components."""
    r = invoke(*ESTIMATE, "--format", "json")
    doc = json.loads(r.stdout)
    EstimateOutput.model_validate(doc)
    with pytest.raises(ValidationError, match="new_key"):
        EstimateOutput.model_validate({**doc, "new_key": 1})
    with pytest.raises(ValidationError, match="new_key"):
        EstimateOutput.model_validate({**doc, "layout": {**doc["layout"], "new_key": 1}})
    with pytest.raises(ValidationError, match="step_time_s"):
        EstimateOutput.model_validate({k: v for k, v in doc.items() if k != "step_time_s"})
    EstimateOutput.model_validate({**doc, "breakdown": {**doc["breakdown"], "new_term": 0.5}})


def _models(model: type[BaseModel], seen: set) -> None:
    """`model` and every model its fields hold, into `seen`."""
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for t in _types(field.annotation):
            if isinstance(t, type) and issubclass(t, BaseModel):
                _models(t, seen)


def _types(annotation):
    yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _types(arg)


def test_every_object_forbids_unknown_keys_and_carries_the_version():
    seen: set = set()
    for model in COMMANDS.values():
        _models(model, seen)
    assert len(seen) > 40
    assert all(m.model_config.get("extra") == "forbid" for m in seen), [m for m in seen if m.model_config.get("extra")]
    assert outputs.SCHEMA_VERSION == SCHEMA_VERSION  # the models and the printed documents agree
    for command in COMMANDS:
        schema = outputs.json_schema(command)
        assert schema["schema_version"] == SCHEMA_VERSION
        assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
        assert schema["additionalProperties"] is False


def test_schema_prints_json_schema_of_a_command():
    schema = _schema("estimate --plan")
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["title"] == "costsim estimate --plan --format json"
    assert {"stages", "gpu_hours", "cost", "schema_version"} <= set(schema["required"])
    assert schema["properties"]["gpu_hours"]["type"] == "number"
    assert "step_time_s" in schema["$defs"]["PlanStage"]["properties"]
    assert "description" in schema["$defs"]["Goodput"]["properties"]["ettr"]  # field docstrings are descriptions


@pytest.mark.parametrize("args", [(), ("--list",)])
def test_schema_without_a_command_lists_the_commands(args):
    r = invoke("schema", *args)
    assert r.exit_code == 0, r.output
    listed = [line[:16].strip() for line in r.stdout.splitlines()]
    assert listed == list(COMMANDS)


def test_schema_of_an_unknown_command_is_a_clean_error():
    out = clean_error(invoke("schema", "fit"), "'fit'", "'estimate'", "'list gpus'", error="prefix", exit_code=1)
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        (["estimate", "llama-3-8b"], "estimate"),
        (["search", "--gpu", "h100"], "search"),
        (["estimate", "--plan", "plans/x.yaml", "--format", "json"], "estimate --plan"),
        (["estimate", "--plan=plans/x.yaml"], "estimate --plan"),
        (["claim", "--cheaper", "a", "b", "--ratio", "10"], "claim --cheaper"),
        (["claim", "deepseek-v3", "--gpu-hours", "2.788M"], "claim"),
        (["list", "gpus", "--format", "json"], "list gpus"),
        (["costsim", "validate", "public", "--plot", "x.png"], "validate public"),
    ],
)
def test_schema_takes_the_command_as_typed_with_its_arguments_and_options(typed, name):
    """The help says 'the command as typed'; `schema estimate llama-3-8b` and `schema search --gpu h100` were refused
    ('no JSON output is described'). The arguments and options are ignored but for those that pick another document."""
    r = invoke("schema", *typed)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["title"] == f"costsim {name} --format json"
    assert outputs.command_name(" ".join(typed)) == name


def test_schema_of_a_group_lists_its_commands():
    """`costsim schema validate` lists the validate commands it describes; a subcommand it does not is an error that
    names them."""
    validate = ["validate public", "validate local", "validate serve", "validate rl"]
    assert outputs.subcommands("validate") == validate and outputs.subcommands("claim") == []
    r = invoke("schema", "validate")
    assert r.exit_code == 0, r.output
    assert [line[:16].strip() for line in r.stdout.splitlines()] == validate
    out = clean_error(invoke("schema", "validate", "publik"), "'validate publik'", error="prefix", exit_code=1)
    assert all(f"'{c}'" in out for c in validate) and "'estimate'" not in out


def test_schema_takes_the_program_name_and_refuses_list_with_a_command():
    """`costsim schema costsim estimate ...` is the command as pasted: the program's name is dropped (alone it lists the
    commands, as `costsim schema` does), and --list beside a command was ignored (it listed everything)."""
    assert json.loads(invoke("schema", "costsim", "estimate", "llama-3-8b").output)["title"] == "costsim estimate --format json"
    assert invoke("schema", "costsim").output == invoke("schema").output
    clean_error(invoke("schema", "--list", "estimate"), "--list lists every command", error="prefix")
    assert invoke("schema", "costsim", "validate").output == invoke("schema", "validate").output  # a group, pasted
