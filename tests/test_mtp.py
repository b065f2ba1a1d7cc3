"""Multi-token prediction modules: the same projection and block in FLOPs, time and memory, one module per depth."""

from __future__ import annotations

import pytest

from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import make_job
from simulator.model.efficiency import device_rates
from simulator.model.flops import layer_gemms, parameter_counts
from simulator.model.layer_work import token_flops
from simulator.model.layout import Layout
from simulator.model.memory import layer_params_on_rank
from simulator.model.step_time import Context, layer_time

H100 = load_hardware("h100-sxm")
DENSE_MTP = load_model("llama-3.1-8b").model_copy(update={"mtp_depth": 1})
V3 = load_model("deepseek-v3")


def test_a_dense_mtp_module_is_a_dense_layer_plus_its_projection():
    d = DENSE_MTP.d_model
    mtp = {g.name: g for g in layer_gemms(DENSE_MTP, "mtp")}
    dense = {g.name: g for g in layer_gemms(DENSE_MTP, "dense")}
    assert set(mtp) - set(dense) == {"mtp_proj"}
    assert (mtp["mtp_proj"].k, mtp["mtp_proj"].n) == (2 * d, d)  # V3 Eq. 21: M_k in R^{d x 2d}
    tf = token_flops(DENSE_MTP, 8192)
    layer = sum(g.forward_flops_per_token for g in dense.values()) + tf.forward_by_component["attention_core"] / 32
    assert tf.forward_by_component["mtp"] == pytest.approx(layer + 2 * 2 * d * d + tf.forward_by_component["lm_head"])


def test_the_step_model_times_the_mtp_projection_of_a_dense_model():
    job = make_job(DENSE_MTP, 64, 1e12, 8192, None, "bf16")
    ctx = Context(DENSE_MTP, job, Layout(tp=8, dp=8), device_rates(H100, DEFAULT), DEFAULT)
    mtp, dense = layer_time(ctx, "mtp"), layer_time(ctx, "dense")
    proj = ctx.gemm_s(ctx.tokens_per_micro_batch, DENSE_MTP.d_model, 2 * DENSE_MTP.d_model, False)
    assert float(mtp.forward_s - dense.forward_s) == pytest.approx(float(proj), rel=1e-6)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_each_mtp_item_holds_one_module_whatever_the_depth(depth):
    one = parameter_counts(V3)
    deep = parameter_counts(V3.model_copy(update={"mtp_depth": depth}))
    lay = Layout(tp=1, pp=16, dp=128, ep=64)
    assert deep.mtp == pytest.approx(depth * one.mtp)
    assert layer_params_on_rank(deep, "mtp", lay) == pytest.approx(layer_params_on_rank(one, "mtp", lay))
