"""How an engine admits sequences to its KV cache (docs/model.md §16.8): on demand (paged, preemptive: vLLM, SGLang)
a running sequence holds its mean context; TensorRT-LLM's default capacity scheduler (GUARANTEED_NO_EVICT) admits a
request only when blocks for its prompt plus its whole output are free, so the batch that fits is smaller; and the
engine's KV pool takes only a share of the free memory (--kv_cache_free_gpu_mem_fraction, 0.9 by default)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_support import clean_error, invoke

from simulator import api
from simulator.errors import InputError
from simulator.inputs.fleet_file import ServeOptions
from simulator.inputs.serving_cases import serving_cases
from simulator.model.serve.decode import Candidates, hbm_needed_bytes, kv_bytes_per_gpu, memory_per_gpu
from simulator.run.serve import ServeRequest, serve_flags, setup_for

LLAMA = dict(input_len=128, output_len=2048, precision="fp4", kv_dtype="fp8", tp=1, num_gpus=1)


def _one(batch: float) -> Candidates:
    a = lambda v: np.array([float(v)])  # noqa: E731
    return Candidates(a(1), a(1), a(1), a(batch), np.array(["fp8"]))


def test_full_request_admission_reserves_prompt_plus_whole_output():
    """KV held per sequence: on demand, input + output / 2 (continuous batching holds sequences at every point of
    their output); reserved at admission, input + output."""
    on_demand = setup_for(ServeRequest("llama-3.1-70b", "h200", input_len=1000, output_len=1000))
    reserved = setup_for(ServeRequest("llama-3.1-70b", "h200", input_len=1000, output_len=1000,
                                      kv_admission="full-request"))  # fmt: skip
    assert on_demand.admitted_context == 1500 and reserved.admitted_context == 2000
    ratio = kv_bytes_per_gpu(reserved, _one(64))[0] / kv_bytes_per_gpu(on_demand, _one(64))[0]
    assert ratio == pytest.approx(2000 / 1500)
    # What a decode step reads is the same: the tokens the sequences hold, not what is reserved for them.
    assert reserved.mean_context == on_demand.mean_context


def test_the_kv_pool_takes_only_its_share_of_the_free_memory():
    """HBM needed = weights + activations + reserve + KV / fraction: a pool of fraction f of the free memory holds the
    KV, the rest stays unused."""
    s = setup_for(ServeRequest("llama-3.1-70b", "h200", kv_memory_fraction=0.9))
    memory = memory_per_gpu(s, _one(64))
    needed = hbm_needed_bytes(s, memory)[0]
    other = memory["weights"][0] + memory["activations"][0] + memory["reserved"][0]
    assert needed == pytest.approx(other + memory["kv_cache"][0] / 0.9)
    assert hbm_needed_bytes(setup_for(ServeRequest("llama-3.1-70b", "h200")), memory)[0] == pytest.approx(memory["total"][0])


def test_reserving_whole_requests_shrinks_the_batch_and_the_throughput_of_a_kv_bound_decode():
    """128 in / 2,048 out on one B200: reserving input + output positions (2,176) instead of the mean context (1,152)
    fits about half the sequences; the batch falls by about that and the throughput by less (weights are read once
    per step whatever the batch)."""
    base = api.serve("llama-3.1-70b", "b200", phase="decode", **LLAMA).to_dict()["decode"]
    full = api.serve("llama-3.1-70b", "b200", phase="decode", kv_admission="full-request", **LLAMA).to_dict()["decode"]
    batch_ratio = full["batch_per_gpu"] / base["batch_per_gpu"]
    assert 1152 / 2176 / 1.25 < batch_ratio < 1152 / 2176 * 1.25  # the batch grid has four steps per doubling
    rate_ratio = full["output_tokens_per_s_per_gpu"] / base["output_tokens_per_s_per_gpu"]
    assert batch_ratio < rate_ratio < 1.0


def test_a_smaller_pool_never_raises_the_batch():
    batches = [api.serve("llama-3.1-70b", "b200", phase="decode", kv_memory_fraction=f, **LLAMA).to_dict()["decode"]
               ["batch_per_gpu"] for f in (1.0, 0.9, 0.5)]  # fmt: skip
    assert batches[0] >= batches[1] >= batches[2] and batches[0] > batches[2]


def test_the_request_and_assumptions_say_how_kv_is_admitted():
    d = api.serve("llama-3.1-70b", "b200", kv_admission="full-request", kv_memory_fraction=0.95, **LLAMA).to_dict()
    assert d["request"]["kv_admission"] == "full-request" and d["request"]["kv_memory_fraction"] == 0.95
    names = {a["name"]: a for a in d["assumptions"]}
    assert names["kv_admission"]["value"] == "full-request" and "GUARANTEED_NO_EVICT" in names["kv_admission"]["source"]
    assert names["kv_memory_fraction"]["value"] == 0.95


def test_cli_flags_and_table():
    r = invoke("serve", "llama-3.1-70b", "--gpu", "b200", "--input-len", "128", "--output-len", "2048",
               "--kv-admission", "full-request", "--kv-memory-fraction", "0.9", "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["request"]["kv_admission"] == "full-request"
    r = invoke("serve", "llama-3.1-70b", "--gpu", "b200", "--kv-admission", "full-request", "--kv-memory-fraction", "0.9")
    assert r.exit_code == 0, r.output
    assert "KV reserved for whole requests, KV pool 90% of free memory" in r.output


@pytest.mark.parametrize(("flags", "needle"), [
    (["--kv-admission", "greedy"], "greedy"),
    (["--kv-memory-fraction", "0"], "--kv-memory-fraction"),
    (["--kv-memory-fraction", "1.5"], "--kv-memory-fraction"),
    (["--kv-memory-fraction", "nan"], "--kv-memory-fraction"),
])  # fmt: skip
def test_bad_kv_admission_input_is_refused_cleanly(flags, needle):
    clean_error(invoke("serve", "llama-3.1-70b", "--gpu", "h100", *flags), needle)


def test_request_checks_its_kv_options():
    with pytest.raises(InputError, match="--kv-admission 'all' is not one of on-demand, full-request"):
        ServeRequest("llama-3.1-70b", "h100", kv_admission="all")
    with pytest.raises(InputError, match="between 0.01 and 1"):
        ServeRequest("llama-3.1-70b", "h100", kv_memory_fraction=0.0)


def test_printed_commands_carry_the_kv_options_and_leave_the_defaults_out():
    assert serve_flags({"kv_admission": "on-demand", "kv_memory_fraction": 1.0}) == []
    assert serve_flags({"kv_admission": "full-request", "kv_memory_fraction": 0.9}) == [
        "--kv-admission", "full-request", "--kv-memory-fraction", "0.9"]  # fmt: skip


def test_fleet_serve_options_take_the_kv_options():
    o = ServeOptions(input_len=1000, output_len=1000, kv_admission="full-request", kv_memory_fraction=0.9)
    assert o.request()["kv_admission"] == "full-request"
    with pytest.raises(Exception, match="kv_admission"):
        ServeOptions(input_len=1000, output_len=1000, kv_admission="lazy")


def test_tensorrt_llm_cases_whose_batch_memory_sets_reserve_whole_requests():
    """Every TensorRT-LLM v1.0 case (trtllm-bench, GUARANTEED_NO_EVICT by default) says so; the vLLM, SGLang and
    DeepSeek cases take pages on demand."""
    for case in serving_cases():
        if case.id.startswith("trtllm-") and not case.id.startswith("trtllm-v0.5"):
            assert case.kv_admission == "full-request", case.id
        elif not case.id.startswith("trtllm-"):
            assert case.kv_admission == "on-demand", case.id


def test_decode_attention_reads_the_cache_at_the_published_rate():
    """docs/model.md §16.3: the attention core reads the KV cache at the profile's published decode-attention rate
    (B200: FlashInfer #1415's 5,830.86 GB/s of 7,700 = 0.757) where one exists, else at the HBM rate of the other
    kernels (H200: none published)."""
    from simulator.inputs.assumptions import DEFAULT
    from simulator.inputs.catalog import load_hardware
    from simulator.model.efficiency import device_rates

    b200 = load_hardware("b200")
    assert b200.efficiency.decode_attention.value == pytest.approx(5830.86 / 7700, abs=1e-3)
    rates = device_rates(b200, DEFAULT)
    assert rates.kv_read_bytes_per_s == pytest.approx(b200.hbm_bytes_per_s * 0.757)
    assert rates.kv_read_s(1e9) == pytest.approx(1e9 / rates.kv_read_bytes_per_s)
    h200 = device_rates(load_hardware("h200"), DEFAULT)
    assert h200.kv_read_bytes_per_s is None and h200.kv_read_s(1e9) == pytest.approx(1e9 / h200.hbm_bytes_per_s)


def test_admission_changes_what_fits_not_what_a_step_reads():
    """A decode step reads the tokens its sequences hold (the mean context) whatever the engine reserved for them:
    at the same candidates the step times are equal."""
    from simulator.model.serve.decode import step_s

    args = dict(input_len=1000, output_len=1000)
    on_demand = setup_for(ServeRequest("llama-3.1-70b", "h200", **args))
    reserved = setup_for(ServeRequest("llama-3.1-70b", "h200", kv_admission="full-request", **args))
    c = _one(64)
    a, b = step_s(on_demand, c), step_s(reserved, c)
    assert a["total"][0] == pytest.approx(b["total"][0]) and a["total"][0] > 0
    assert kv_bytes_per_gpu(reserved, c)[0] > kv_bytes_per_gpu(on_demand, c)[0]


def test_admission_is_a_decode_setting_and_the_pool_binds_prefill_too():
    with pytest.raises(InputError, match="--kv-admission set the decode and --phase prefill runs none"):
        ServeRequest("llama-3.1-70b", "h100", phase="prefill", kv_admission="full-request")
    # The prompt's KV comes from the pool: a pool of 1% cannot hold a 100,000-token prompt that fits otherwise.
    args = dict(phase="prefill", input_len=100_000, output_len=1, tp=8, pp=1)
    assert api.serve("llama-3.1-70b", "h200", **args).to_dict()["prefill"]["input_tokens_per_s_per_gpu"] > 0
    with pytest.raises(Exception, match="no prefill layout fits"):
        api.serve("llama-3.1-70b", "h200", kv_memory_fraction=0.01, **args)


def test_the_memory_shown_holds_the_pool_share_left_unused():
    d = api.serve("llama-3.1-70b", "b200", kv_memory_fraction=0.5, **LLAMA).to_dict()["memory_per_gpu_gib"]
    assert d["kv_pool_unused"] == pytest.approx(d["kv_cache"])
    assert d["total"] == pytest.approx(sum(v for k, v in d.items() if k != "total"))
    assert "kv_pool_unused" not in api.serve("llama-3.1-70b", "b200", **LLAMA).to_dict()["memory_per_gpu_gib"]


def test_a_refusal_names_the_pool_share_and_the_kv_options_that_caused_it():
    with pytest.raises(Exception) as e:
        api.serve("llama-3.1-70b", "h100", input_len=100_000, output_len=20_000, kv_admission="full-request",
                  kv_memory_fraction=0.01, tp=1, num_gpus=1, phase="decode")  # fmt: skip
    assert "in a pool of 1% of the free memory" in str(e.value)
    assert "raise --kv-memory-fraction, use --kv-admission on-demand" in str(e.value)


@pytest.mark.parametrize(("precisions", "fp4", "hint"), [
    (["bf16", "fp8"], False, "use a GPU with FP4 tensor cores (Blackwell) and --precision fp4, "),
    (["bf16"], False, "use a narrower --precision (fp8; fp4 on Blackwell), "),
    (["bf16", "fp8", "fp4"], True, ""),
    (["fp8"], True, "use --precision fp4, "),
    (["fp8"], False, "use a GPU with FP4 tensor cores (Blackwell) and --precision fp4, "),
    (["bf16"], True, "use a narrower --precision (fp8, fp4), "),
])  # fmt: skip
def test_a_refusal_suggests_only_a_format_narrower_than_those_tried(precisions, fp4, hint):
    from simulator.model.serve.search import narrower_precision_hint

    assert narrower_precision_hint(np.array(precisions), fp4) == hint


def test_a_refusal_on_fp8_weights_with_an_fp8_cache_suggests_neither_again():
    with pytest.raises(Exception) as e:
        api.serve("deepseek-v3", "h100", precision="fp8", kv_dtype="fp8", tp=1, dp=1, num_gpus=1, phase="decode")
    assert "--kv-dtype fp8" not in str(e.value) and "narrower --precision (fp8" not in str(e.value)
    assert "GPU with FP4 tensor cores" in str(e.value)


def test_a_profile_with_a_decode_attention_rate_out_of_range_is_refused(tmp_path):
    """A fraction of 0 would make every KV read take forever: the profile is refused, naming the field and its range."""
    from simulator.inputs.data_files import hardware_dir

    text = (hardware_dir() / "b200.yaml").read_text()
    old = "decode_attention: {value: 0.757"
    assert old in text
    path = tmp_path / "b200.yaml"
    path.write_text(text.replace(old, "decode_attention: {value: 0"))
    clean_error(invoke("serve", "llama-3.1-8b", "--gpu", str(path)), "efficiency.decode_attention = 0", "[0.01, 1]")
