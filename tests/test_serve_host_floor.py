"""The engine's host time per decode step (docs/model.md §16.3): an overlap scheduler prepares step n + 1 while the GPU
runs step n, so a step lasts the longer of the GPU's time and the host's, which grows with the sequences one engine
process steps. TensorRT-LLM's PyTorch backend measured about 29 us per sequence (NVIDIA/TensorRT-LLM #10273); the
default, 0, is the ideal engine."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from cli_support import clean_error, invoke

from simulator import api
from simulator.errors import InputError
from simulator.inputs.fleet_file import ServeOptions
from simulator.inputs.serving_cases import serving_cases, serving_grid_cases
from simulator.model.serve.decode import Candidates, host_floor_s, step_s
from simulator.run.serve import ServeRequest, serve_flags, setup_for
from simulator.units import MICRO

QWEN = dict(input_len=1000, output_len=1000, precision="fp4", kv_dtype="fp8", tp=1, num_gpus=1)


def _candidates(tp: float, batch: float) -> Candidates:
    a = lambda v: np.array([float(v)])  # noqa: E731
    return Candidates(a(tp), a(1), a(1), a(batch), np.array(["fp4"]))


def test_a_step_lasts_the_longer_of_the_gpu_and_the_host():
    s = setup_for(ServeRequest("qwen3-30b-a3b", "b200", **QWEN))
    c = _candidates(1, 1024)
    ideal = step_s(s, c)
    assert ideal["host_exposed"][0] == 0.0
    slow_host = replace(s, host_s_per_sequence=100 * MICRO)  # 102 ms of host work for 1,024 sequences
    step = step_s(slow_host, c)
    host = 100 * MICRO * 1024  # the same sequences whether stepped as one micro-batch or two halves
    assert host > ideal["total"][0]
    assert step["total"][0] == pytest.approx(host)
    assert step["host_exposed"][0] == pytest.approx(host - ideal["total"][0])
    fast_host = replace(s, host_s_per_sequence=1 * MICRO)  # 1 ms: hidden under the GPU
    assert step_s(fast_host, c)["total"][0] == pytest.approx(ideal["total"][0])


def test_the_host_steps_the_sequences_of_one_engine_process():
    """A TP group is one process for all its sequences (tp x batch per GPU); every micro-batch of the step counts;
    attention-DP groups and pipeline stages are processes of their own, each stepping its own sequences."""
    s = replace(setup_for(ServeRequest("llama-3.1-70b", "h200")), host_s_per_sequence=10 * MICRO)
    assert host_floor_s(s, _candidates(8, 16), 1)[0] == pytest.approx(10 * MICRO * 8 * 16)
    assert host_floor_s(s, _candidates(1, 16), 2)[0] == pytest.approx(10 * MICRO * 16 * 2)
    a = lambda v: np.array([float(v)])  # noqa: E731
    wide = Candidates(a(2), a(8), a(4), a(16), np.array(["fp8"]))  # TP2 x DP8 x PP4
    assert host_floor_s(s, wide, 1)[0] == pytest.approx(10 * MICRO * 2 * 16)


def test_a_split_step_charges_the_host_for_the_same_sequences():
    """With two micro-batches of half the sequences each, the host still steps every sequence once."""
    s = replace(setup_for(ServeRequest("deepseek-v3", "h800")), host_s_per_sequence=500 * MICRO)
    c = _candidates(1, 256)
    a = lambda v: np.array([float(v)])  # noqa: E731
    half = Candidates(c.tp, a(1), c.pp, c.batch / 2, c.precision)
    assert host_floor_s(s, half, 2)[0] == pytest.approx(host_floor_s(s, c, 1)[0])


def test_a_host_bound_search_takes_the_fastest_per_user_of_the_tied_batches():
    """Once the host is the longer, every larger batch gives the same tokens/s per GPU (1 / h per sequence slot); the
    search then takes the smallest such batch, the fastest per user, not whichever rounding favours."""
    options = QWEN | dict(phase="decode", host_s_per_sequence=29.4 * MICRO, input_len=128, output_len=128)
    d = api.serve("qwen3-30b-a3b", "b200", **options).to_dict()["decode"]
    assert d["breakdown_s"]["host_exposed"] > 0
    assert d["output_tokens_per_s_per_gpu"] == pytest.approx(1 / (29.4 * MICRO), rel=1e-6)
    bigger = api.serve("qwen3-30b-a3b", "b200", batch_per_gpu=4 * d["batch_per_gpu"], **options).to_dict()["decode"]
    assert bigger["output_tokens_per_s_per_gpu"] == pytest.approx(d["output_tokens_per_s_per_gpu"], rel=1e-6)
    assert d["tokens_per_s_per_user"] > 3 * bigger["tokens_per_s_per_user"]


def test_serve_charges_the_host_where_it_binds():
    ideal = api.serve("qwen3-30b-a3b", "b200", phase="decode", batch_per_gpu=2048, **QWEN).to_dict()
    host = api.serve("qwen3-30b-a3b", "b200", phase="decode", batch_per_gpu=2048, host_s_per_sequence=29.4 * MICRO,
                     **QWEN).to_dict()  # fmt: skip
    assert host["request"]["host_s_per_sequence"] == pytest.approx(29.4 * MICRO)
    assert host["decode"]["stage_time_s"] == pytest.approx(max(ideal["decode"]["stage_time_s"], 29.4 * MICRO * 2048))
    assert host["decode"]["output_tokens_per_s_per_gpu"] < ideal["decode"]["output_tokens_per_s_per_gpu"]
    names = {a["name"]: a for a in host["assumptions"]}
    assert names["host_s_per_sequence"]["value"] == pytest.approx(29.4 * MICRO)


def test_cli_takes_microseconds_and_says_so():
    r = invoke("serve", "qwen3-30b-a3b", "--gpu", "b200", "--host-us-per-sequence", "29.4", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["request"]["host_s_per_sequence"] == pytest.approx(29.4 * MICRO)
    r = invoke("serve", "qwen3-30b-a3b", "--gpu", "b200", "--host-us-per-sequence", "29.4")
    assert r.exit_code == 0 and "host 29.4 us per sequence" in r.output


@pytest.mark.parametrize("value", ["-1", "1000.5", "5000", "nan", "inf"])
def test_bad_host_times_are_refused_cleanly(value):
    clean_error(invoke("serve", "llama-3.1-70b", "--gpu", "h100", "--host-us-per-sequence", value),
                "--host-us-per-sequence")  # fmt: skip


def test_the_largest_host_time_is_accepted_everywhere():
    assert invoke("serve", "llama-3.1-70b", "--gpu", "h100", "--host-us-per-sequence", "1000").exit_code == 0
    ServeRequest("llama-3.1-70b", "h100", host_s_per_sequence=1000 * MICRO)
    assert ServeOptions(input_len=1, output_len=1, host_us_per_sequence=1000).request()["host_s_per_sequence"] <= 1e-3


def test_request_checks_its_host_time_and_names_both_units():
    """The API takes seconds, the CLI microseconds: a value given in the wrong one is named in both, with the fix."""
    with pytest.raises(InputError, match=r"29\.4 s \(2\.94e\+07 us\) must be a number between 0 and 1,000 us"):
        ServeRequest("llama-3.1-70b", "h100", host_s_per_sequence=29.4)
    with pytest.raises(InputError, match="'fast' must be a number"):
        ServeRequest("llama-3.1-70b", "h100", host_s_per_sequence="fast")
    with pytest.raises(InputError, match="must be a number"):
        ServeRequest("llama-3.1-70b", "h100", host_s_per_sequence=True)


def test_printed_commands_and_fleets_carry_the_host_time():
    assert serve_flags({"host_s_per_sequence": 0.0}) == []
    assert serve_flags({"host_s_per_sequence": 29.4 * MICRO}) == ["--host-us-per-sequence", "29.4"]
    o = ServeOptions(input_len=1000, output_len=1000, host_us_per_sequence=29.4)
    assert o.request()["host_s_per_sequence"] == pytest.approx(29.4 * MICRO)
    with pytest.raises(Exception, match="host_us_per_sequence"):
        ServeOptions(input_len=1000, output_len=1000, host_us_per_sequence=-3)


def test_tensorrt_llm_pytorch_backend_cases_state_the_measured_host_time():
    """The TensorRT-LLM cases of its PyTorch backend (perf overview v1.0, the DeepSeek-R1 guide) and every grid cell
    carry the measured 29.4 us; the v0.5 engine (the C++ TensorRT runtime), vLLM, SGLang and DeepSeek's cases none."""
    for case in serving_cases():
        pytorch_backend = case.id.startswith("trtllm-") and not case.id.startswith("trtllm-v0.5")
        assert case.host_us_per_sequence == (29.4 if pytorch_backend else 0.0), case.id
    assert {c.host_us_per_sequence for c in serving_grid_cases()} == {29.4}
