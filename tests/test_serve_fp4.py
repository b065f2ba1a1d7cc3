"""FP4 (NVFP4) serving on Blackwell (docs/model.md §16.14): which GEMMs run in FP4 (model/number_formats.py), the
bytes an NVFP4 weight takes, the FP4 peak in prefill, the weight read in decode, and clean refusals."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from cli_support import clean_error, invoke
from test_rl_plan import SMALL_PLAN, _write

from simulator import api
from simulator.analysis.plans import run_plan
from simulator.errors import InputError
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.fleet_file import ServeOptions
from simulator.inputs.plan_file import load_plan
from simulator.model.flops import layer_gemms, layer_kinds
from simulator.model.forward import forward_context, forward_layer_s
from simulator.model.number_formats import gemm_format, gemm_formats
from simulator.model.serve.decode import Candidates, layer_step_s, weight_bytes_per_gpu
from simulator.run.serve import ServeRequest, setup_for
from simulator.units import BYTES_PER_ELEMENT, NVFP4_BYTES_PER_ELEMENT


def _formats(model_id: str, kind: str, precision: str) -> dict[str, str]:
    model = load_model(model_id)
    return {g.name: gemm_format(precision, g, model, kind) for g in layer_gemms(model, kind)}


def test_nvfp4_element_is_four_bits_plus_an_fp8_scale_per_sixteen():
    """NVFP4_DEFAULT_CFG (TensorRT Model Optimizer): E2M1 values, one E4M3 scale per 16-element block."""
    assert NVFP4_BYTES_PER_ELEMENT == pytest.approx(4 / 8 + 1 / 16)
    assert BYTES_PER_ELEMENT["fp4"] == NVFP4_BYTES_PER_ELEMENT


def test_fp4_puts_ffn_and_experts_in_fp4_and_keeps_mla_attention_and_mtp_in_fp8():
    """NVIDIA's DeepSeek recipe (examples/deepseek/ptq.py): "*attn*" and the MTP layer excluded, so FP8; routers and
    the head disabled by default (BF16); every other linear NVFP4."""
    moe = _formats("deepseek-v3", "moe", "fp4")
    for name in ("q_down", "q_up", "kv_down", "kv_up", "out_proj"):
        assert moe[name] == "fp8", name
    assert moe["router"] == "bf16"
    for name in ("shared_experts_up", "shared_experts_down", "routed_experts_up", "routed_experts_down"):
        assert moe[name] == "fp4", name
    assert _formats("deepseek-v3", "dense", "fp4")["dense_ffn_down"] == "fp4"
    assert set(_formats("deepseek-v3", "mtp", "fp4").values()) <= {"fp8", "bf16"}
    assert "fp4" not in _formats("deepseek-v3", "moe", "fp8").values()
    assert set(_formats("deepseek-v3", "moe", "bf16").values()) == {"bf16"}


def test_fp4_quantizes_gqa_attention_with_the_rest():
    """NVFP4_DEFAULT_CFG quantizes every linear but the head and routers: a GQA model's QKV and output too."""
    assert set(_formats("llama-3.1-70b", "dense", "fp4").values()) == {"fp4"}


def test_gemm_formats_vectorized_agrees_with_the_scalar_rule():
    model = load_model("deepseek-v3")
    precisions = np.array(["bf16", "fp8", "fp4", "fp4", "bf16"])
    for g in layer_gemms(model, "moe"):
        got = gemm_formats(precisions, g, model, "moe")
        assert list(got) == [gemm_format(p, g, model, "moe") for p in precisions], g.name


def _one(precision: str, batch: float = 1.0, tp: int = 1, dp: int = 1) -> Candidates:
    return Candidates(np.array([tp], float), np.array([dp], float), np.array([1.0]), np.array([batch]),
                      np.array([precision]))  # fmt: skip


def test_fp4_weights_take_nvfp4_bytes_where_the_recipe_puts_them():
    """DeepSeek-V3 on 8 B200: the experts in NVFP4 are 0.5625 / 1 of their FP8 bytes; MLA attention stays FP8."""
    s = setup_for(ServeRequest("deepseek-v3", "b200", input_len=1024, output_len=1024))
    fp4 = weight_bytes_per_gpu(s, _one("fp4", dp=8))
    fp8 = weight_bytes_per_gpu(s, _one("fp8", dp=8))
    assert fp4["experts"][0] / fp8["experts"][0] == pytest.approx(NVFP4_BYTES_PER_ELEMENT)
    assert fp4["attention"][0] == pytest.approx(fp8["attention"][0])
    # The FFN part holds the BF16 routers, which no precision changes; the rest (dense FFNs, shared experts) is NVFP4.
    m = s.model
    router = layer_kinds(m).count("moe") * m.d_model * m.moe.n_routed_experts * BYTES_PER_ELEMENT["bf16"]
    assert (fp4["ffn"][0] - router) / (fp8["ffn"][0] - router) == pytest.approx(NVFP4_BYTES_PER_ELEMENT)
    assert fp4["embedding_and_head"][0] == pytest.approx(fp8["embedding_and_head"][0])


def test_fp4_decode_reads_fewer_weight_bytes_at_batch_one():
    """At batch 1 a dense FFN GEMM is bound by its weight read: FP4's time is about 0.5625 of FP8's, less the fixed
    kernel cost both pay."""
    s = setup_for(ServeRequest("llama-2-70b", "b200", input_len=1024, output_len=256))
    t4 = layer_step_s(s, _one("fp4"), "dense", 1.0)["ffn"][0]
    t8 = layer_step_s(s, _one("fp8"), "dense", 1.0)["ffn"][0]
    launch = 2 * s.rates.kernel_overhead_s
    assert (t4 - launch) / (t8 - launch) == pytest.approx(NVFP4_BYTES_PER_ELEMENT, rel=0.02)


def test_fp4_prefill_runs_the_ffn_at_the_fp4_peak():
    """A long prompt's FFN GEMMs are compute-bound: B200's FP4 peak is twice its FP8 peak (9,000 and 4,500 dense
    TFLOP/s, the Blackwell technical brief), each at its measured best-shape fraction (FP4 0.611 from pytorch/ao
    #2427, FP8 0.763 from the MAMF table), so FP4 takes (1 / 2) x 0.763 / 0.611 of FP8's time."""
    model, hw = load_model("llama-2-70b"), load_hardware("b200")
    assert hw.peak_flop_per_s("fp4") == 2 * hw.peak_flop_per_s("fp8")
    s = setup_for(ServeRequest("llama-2-70b", "b200", input_len=4095, output_len=1))  # its 4,096-token context
    parts = {p: forward_layer_s(forward_context(model, s.rates, 8192, 1, precision=p), "dense") for p in ("fp8", "fp4")}
    best = {k: v.value for k, v in hw.efficiency.gemm_best.items()}
    expected = 0.5 * best["fp8"] / best["fp4"]
    assert best["fp4"] < best["fp8"]
    assert parts["fp4"]["dense_ffn"] / parts["fp8"]["dense_ffn"] == pytest.approx(expected, rel=0.02)
    assert parts["fp4"]["attention_core"] == pytest.approx(parts["fp8"]["attention_core"])


def test_serve_searches_fp4_on_blackwell_and_says_which_gemms_it_puts_where():
    r = invoke("serve", "llama-3.1-70b", "--gpu", "b200", "--input-len", "1024", "--output-len", "1024", "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["decode"]["layout"]["precision"] == "fp4"
    assert "fp4_formats" in {a["name"] for a in d["assumptions"]}
    r = invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--input-len", "1024", "--output-len", "1024",
               "--format", "json")  # fmt: skip
    d = json.loads(r.output)
    assert d["decode"]["layout"]["precision"] == "fp8"
    assert "fp4_formats" not in {a["name"] for a in d["assumptions"]}


def test_fp4_on_a_gpu_without_fp4_is_refused_with_the_fix():
    out = clean_error(invoke("serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--precision", "fp4"), "no FP4", exit_code=1)
    assert "--precision fp8" in out and "b200, gb200" in out


def test_fp4_is_not_a_kv_cache_format():
    clean_error(invoke("serve", "llama-3.1-70b", "--gpu", "b200", "--kv-dtype", "fp4"), "fp4", exit_code=2)


def test_rl_stage_generates_in_fp4_on_blackwell_and_is_refused_elsewhere(tmp_path):
    """A plan's RL stage may roll out in NVFP4 (generation_precision fp4) where the GPU has FP4 tensor cores: the
    rollout is faster than in FP8 on the same GPUs; on a GPU without FP4 the plan is refused with the fix."""

    def generation_s(gpu: str, precision: str) -> float:
        plan = copy.deepcopy(SMALL_PLAN)
        plan["gpu"] = gpu
        plan["stages"][0]["generation_precision"] = precision
        spec, path = load_plan(_write(tmp_path, plan))
        return sum(p.generation.seconds for p in run_plan(spec, path).rl_stages[0].phases)

    assert generation_s("b200", "fp4") < generation_s("b200", "fp8")
    plan = copy.deepcopy(SMALL_PLAN)
    plan["stages"][0]["generation_precision"] = "fp4"
    out = clean_error(invoke("estimate", "--plan", _write(tmp_path, plan)), "h100-sxm has no fp4", exit_code=1)
    assert "b200, gb200" in out


def test_fp4_is_refused_as_a_training_precision():
    """FP4 is a serving format: the API's training estimate and training claim refuse it instead of running BF16
    under an fp4 label."""
    with pytest.raises(InputError, match="not a training precision.*serving format"):
        api.estimate("llama-3.1-8b", gpu="b200", num_gpus=8, tokens="1T", precision="fp4")
    with pytest.raises(InputError, match="not a training precision"):
        api.claim("llama-3.1-8b", gpu="b200", gpu_hours=20000, tokens="1T", num_gpus=8, precision="fp4")


def test_a_fleet_file_may_serve_in_fp4():
    options = ServeOptions(input_len=1000, output_len=500, precision="fp4", kv_dtype="fp8")
    assert options.precision == "fp4"
    with pytest.raises(ValueError, match="kv_dtype"):
        ServeOptions(input_len=1000, output_len=500, kv_dtype="fp4")


def test_price_claim_on_blackwell_says_its_cost_is_an_fp4_deployment():
    r = invoke("claim", "--cheaper", "deepseek-reasoner-2025", "openai-o1-2025-01", "--ratio", "20-50", "--gpu", "b200",
               "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert {lay["precision"] for lay in d["cost"]["a"]["layouts"].values()} == {"fp4"}
    assert "a_fp4_formats" in {a["name"] for a in d["assumptions"]}
    text = invoke("claim", "--cheaper", "deepseek-reasoner-2025", "openai-o1-2025-01", "--ratio", "20-50", "--gpu", "b200")
    assert "(fp4 weights)" in text.output


def test_the_gpus_named_for_a_format_are_the_profiles_with_its_peak():
    """The refusal's list of GPUs that have a format comes from the shipped profiles, not a list kept by hand."""
    from simulator.inputs.catalog import gpus_with, hardware_ids

    with_fp4 = gpus_with("fp4").split(", ")
    assert with_fp4 == ["b200", "gb200"]
    with_fp8 = gpus_with("fp8").split(", ")
    assert {"h100-sxm", "h800", "h200", "b200", "gb200", "mi300x"} <= set(with_fp8) and "a100-80gb" not in with_fp8
    profiles = {p.stem for p in hardware_ids().values()}
    assert set(with_fp8) < profiles and set(with_fp4) < set(with_fp8)
