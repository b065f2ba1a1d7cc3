"""Communication SMs: a static partition under DualPipe with expert parallelism, contention elsewhere."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import make_job
from simulator.model.efficiency import device_rates
from simulator.model.layout import Layout
from simulator.model.step_time import Context, item_time

H800 = load_hardware("h800")
V3 = load_model("deepseek-v3")
LLAMA = load_model("llama-3.1-70b")
V3_DUALPIPE = Layout(tp=1, pp=16, dp=128, ep=64, schedule="dualpipe", zero_stage=1, recompute="selective")


def _time(model, layout: Layout, item: str, comm_sm_fraction: float):
    assumptions = replace(DEFAULT, comm_sm_fraction=comm_sm_fraction)
    job = make_job(model, 2048, 1e12, 4096, 4096 * 15360, "fp8")
    return item_time(Context(model, job, layout, device_rates(H800, assumptions), assumptions), item)


@pytest.mark.parametrize("item", ["dense", "moe", "head", "mtp"])
def test_dualpipe_with_ep_runs_every_item_on_the_sms_left_to_compute(item):
    # DeepSeek-V3 §3.2.1-3.2.2: 20 of 132 SMs serve the all-to-all for the whole chunk pair, so compute
    # (even a dense layer's or the LM head's, which move no EP bytes) runs on the rest: 1 / (1 - f) slower.
    free = _time(V3, V3_DUALPIPE, item, 0.0)
    held = _time(V3, V3_DUALPIPE, item, 0.15)
    assert float(held.forward_s) == pytest.approx(float(free.forward_s) / 0.85, rel=1e-9)
    assert float(held.backward_s) == pytest.approx(float(free.backward_s) / 0.85, rel=1e-9)
    contention = float(held.parts["comm_sm_contention"])
    assert contention == pytest.approx(0.15 / 0.85 * float(free.forward_s + free.backward_s), rel=1e-9)


def test_without_dualpipe_only_the_hidden_communication_costs_sms():
    # 1F1B: no EP all-to-all is hidden, so a dense layer and an MoE layer (exposed all-to-all) keep every SM.
    one_f_one_b = replace(V3_DUALPIPE, schedule="1f1b")
    for item in ("dense", "moe"):
        assert float(_time(V3, one_f_one_b, item, 0.15).forward_s) == pytest.approx(
            float(_time(V3, one_f_one_b, item, 0.0).forward_s), rel=1e-12
        )


def test_a_dense_model_on_dualpipe_has_no_partition():
    # No all-to-all kernels, no reserved SMs: DualPipe on a dense model costs no contention.
    layout = Layout(tp=8, pp=4, dp=64, schedule="dualpipe")
    held, free = _time(LLAMA, layout, "dense", 0.15), _time(LLAMA, layout, "dense", 0.0)
    assert float(held.forward_s) == pytest.approx(float(free.forward_s), rel=1e-12)
    assert float(held.parts.get("comm_sm_contention", 0.0)) == 0.0
