"""costsim validate local: small real transformers trained here against the simulator's step model.

On the CPU the issue's target is a median |step-time error| of at most 15% (done-when: `costsim validate
local --device cpu --format json`). The command calibrates first (quick, BF16), trains each case for a
few dozen steps and predicts it with simulator.model.step_time.step on the calibrated rates.

Whether the target is met depends on this machine's load while it calibrates and while it trains (0.49 was
seen with two test runs on two cores), so that test is marked `measurement` and left out of the default
suite (`python -m pytest -q -m measurement`, on a quiet machine). The default suite runs every CPU case for
a few steps on a smoke calibration and asserts what holds under any load: the output's structure, that each
case trained, and that each prediction is exactly the simulator's step model on the file's rates.

The decode cases (a tiny decoder generating with a KV cache, each step against `costsim serve`'s decode step) run
in the default suite too, in a few seconds: structure, finite positive times, and the prediction being exactly the
serving model's decode step on the file's serving rates; their accuracy is a measurement test.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from cli_support import assert_clean_exit, costsim

from calibrate import validate_local as vl
from simulator.inputs.calibration import load_calibration, measured_hardware
from simulator.inputs.job import Job
from simulator.model.efficiency import calibrated_rates
from simulator.model.flops import parameter_counts
from simulator.model.layout import Layout
from simulator.model.serve.decode import Candidates, Setup, step_s
from simulator.model.step_time import step

CPU_TARGET = 0.15  # the issue: median step-time error at most 15% on the CPU


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "cpu.json"
    proc = costsim("calibrate", "--device", "cpu", "--smoke", "--no-collectives", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.measurement
def test_validate_local_cpu_meets_the_target():
    proc = costsim("validate", "local", "--device", "cpu", "--format", "json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    cases = result["cases"]
    assert len(cases) >= 4 and len({(c["d_model"], c["layers"]) for c in cases}) >= 4  # several sizes
    assert len({(c["batch"], c["seq_len"]) for c in cases}) >= 3  # several batch shapes
    for c in cases:
        assert c["measured_step_time_s"] > 0 and c["predicted_step_time_s"] > 0
        assert c["error"] == pytest.approx(c["predicted_step_time_s"] / c["measured_step_time_s"] - 1)
        assert math.isfinite(c["last_loss"]) and c["last_loss"] < c["first_loss"] + 1.0  # it really trained
        assert {"attention_core", "dense_ffn", "lm_head", "memory_bound", "optimizer"} <= set(c["predicted_breakdown_s"])
    assert 0 <= result["median_abs_error"] <= CPU_TARGET, [round(c["error"], 3) for c in cases]
    assert result["median_abs_error"] == pytest.approx(statistics.median(abs(c["error"]) for c in cases))
    assert result["calibration"].startswith("measured now") and result["efficiency_source"].startswith("calibration")
    # Decode: the calibration measured now holds the decode GEMMs and decode attention, and serve's decode step comes
    # within a factor of 3 of each generation step (no target set yet: docs/model.md §16.13).
    assert "decode GEMM bf16" in result["serving_efficiency_source"] and "decode attention" in result["serving_efficiency_source"]
    assert [d["case"] for d in result["decode_cases"]] == [d.name for d in vl.CPU_DECODE_CASES]
    for d in result["decode_cases"]:
        assert 1 / 3 < d["predicted_step_time_s"] / d["measured_step_time_s"] < 3.0, d


def test_validate_local_runs_every_cpu_case_and_predicts_it_with_the_step_model(smoke):
    proc = costsim(
        "validate", "local", "--device", "cpu", "--calibration", str(smoke), "--steps", "3", "--warmup", "1", "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    cases = result["cases"]
    plain = [c for c in cases if c["recompute"] == "none"]
    assert [c["case"] for c in plain] == [c.model.name for c in vl.CPU_CASES]
    assert [c["case"] for c in cases[len(plain) :]] == [r.name for r in vl.CPU_RECOMPUTE_CASES]
    assert [d["case"] for d in result["decode_cases"]] == [d.name for d in vl.CPU_DECODE_CASES]
    for row, case in zip(result["decode_cases"], vl.CPU_DECODE_CASES, strict=True):
        _assert_decode_case(row, case, smoke)
    assert len({(c["d_model"], c["layers"]) for c in cases}) >= 4  # several sizes
    assert len({(c["batch"], c["seq_len"]) for c in cases}) >= 3  # several batch shapes
    assert (result["steps"], result["warmup_steps"], result["calibration"]) == (3, 1, str(smoke))
    assert result["efficiency_source"].startswith(f"calibration {smoke}")
    cal = load_calibration(smoke)
    rates = calibrated_rates(cal, measured_hardware(cal, smoke), vl.LOCAL_ASSUMPTIONS, smoke)
    runs = [(case, "none") for case in vl.CPU_CASES] + [(r.base, "full") for r in vl.CPU_RECOMPUTE_CASES]
    for c, (case, recompute) in zip(cases, runs, strict=True):
        assert c["recompute"] == recompute
        assert math.isfinite(c["measured_step_time_s"]) and c["measured_step_time_s"] > 0
        assert c["error"] == pytest.approx(c["predicted_step_time_s"] / c["measured_step_time_s"] - 1)
        assert math.isfinite(c["last_loss"]) and c["last_loss"] < c["first_loss"] + 1.0  # it trained, did not diverge
        # The prediction is the step model on the file's rates, whatever the machine's load.
        predicted = vl.predict(case, rates, recompute)
        assert c["predicted_step_time_s"] == predicted["step_time_s"] > 0
        assert {"attention_core", "dense_ffn", "lm_head", "memory_bound", "optimizer"} <= set(c["predicted_breakdown_s"])
    assert result["median_abs_error"] == pytest.approx(statistics.median(abs(c["error"]) for c in cases))
    # Each recompute case against its base: the extra seconds measured and predicted, and their ratio.
    (cost,) = result["recompute_costs"]
    by_name = {c["case"]: c for c in cases}
    again, base = by_name[vl.CPU_RECOMPUTE_CASES[0].name], by_name[vl.CPU_RECOMPUTE_CASES[0].base.model.name]
    assert cost["base"] == base["case"] and cost["case"] == again["case"]
    assert cost["predicted_extra_s"] == pytest.approx(again["predicted_step_time_s"] - base["predicted_step_time_s"])
    assert cost["predicted_extra_s"] > 0  # the step model charges the recompute
    assert cost["measured_over_predicted"] == pytest.approx(cost["measured_extra_s"] / cost["predicted_extra_s"])
    assert result["skipped"] == []
    # Not the 15% target (a measurement): an order of magnitude, which a unit slip (ms for s) breaks by far and
    # a loaded machine does not reach.
    assert 0.1 < statistics.median(c["predicted_step_time_s"] / c["measured_step_time_s"] for c in cases) < 10


def _assert_decode_case(row: dict, case: vl.DecodeCase, smoke: Path) -> None:
    """What a decode case holds however loaded the machine: its shape, finite positive times, and the prediction being
    exactly serve's decode step (one GPU, BF16) on the file's serving rates at the timed steps' mean context."""
    assert (row["case"], row["batch"], row["prompt_len"], row["new_tokens"]) == (
        case.name, case.batch, case.prompt_len, case.new_tokens
    )  # fmt: skip
    assert row["timed_steps"] == case.new_tokens - case.warmup >= 10 and 1 <= case.batch <= 64
    assert math.isfinite(row["measured_step_time_s"]) and row["measured_step_time_s"] > 0 and row["measured_spread"] >= 0
    assert row["error"] == pytest.approx(row["predicted_step_time_s"] / row["measured_step_time_s"] - 1)
    cal = load_calibration(smoke)
    hw = measured_hardware(cal, smoke)
    rates = calibrated_rates(cal, hw, vl.LOCAL_ASSUMPTIONS, smoke, serving=True)
    setup = Setup(case.model, hw, rates, vl.LOCAL_ASSUMPTIONS, case.prompt_len + case.warmup, case.new_tokens - case.warmup)
    c = Candidates(np.array([1.0]), np.array([1.0]), np.array([1.0]), np.array([float(case.batch)]), np.array(["bf16"]))
    parts = step_s(setup, c)
    assert row["predicted_step_time_s"] == float(parts["total"][0]) > 0
    assert row["mean_context"] == setup.mean_context == case.prompt_len + (case.new_tokens + case.warmup) / 2
    assert row["predicted_breakdown_s"]["attention_core"] == float(parts["attention_core"][0]) > 0
    assert {"attention_proj", "ffn", "lm_head", "elementwise", "engine_overhead"} <= set(row["predicted_breakdown_s"])


def test_validate_local_decode_cases_run_on_the_cpu(smoke):
    """Both CPU decode cases (batch 1 and 16), alone: the JSON and the table, in a few seconds."""
    names = [d.name for d in vl.CPU_DECODE_CASES]
    proc = costsim("validate", "local", "--device", "cpu", "--calibration", str(smoke), *(f"--case={n}" for n in names),
                   "--format", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["cases"] == [] and result["median_abs_error"] is None
    assert [d["case"] for d in result["decode_cases"]] == names
    for row, case in zip(result["decode_cases"], vl.CPU_DECODE_CASES, strict=True):
        _assert_decode_case(row, case, smoke)
    assert result["decode_median_abs_error"] == pytest.approx(statistics.median(abs(d["error"]) for d in result["decode_cases"]))
    assert result["serving_efficiency_source"].startswith(f"calibration {smoke}")
    assert "decode GEMM bf16, decode attention" in result["serving_efficiency_source"]
    assert "not measured, defaults: decode all-to-all" in result["serving_efficiency_source"]  # --no-collectives
    table = costsim("validate", "local", "--device", "cpu", "--calibration", str(smoke), f"--case={names[0]}")
    assert table.returncode == 0, table.stderr
    assert names[0] in table.stdout and "median |decode step-time error|" in table.stdout and "device: " in table.stdout


def test_validate_local_with_a_calibration_file_prints_a_table(smoke):
    proc = costsim("validate", "local", "--device", "cpu", "--calibration", str(smoke), "--case", "cpu-tiny", "--steps", "3")
    assert proc.returncode == 0, proc.stderr
    assert "cpu-tiny" in proc.stdout and "median |step-time error|" in proc.stdout and f"calibration: {smoke}" in proc.stdout


def test_the_prediction_is_the_simulator_step_model(smoke):
    """No separate model: the prediction equals simulator.model.step_time.step on a single-device layout."""
    cal = load_calibration(smoke)
    rates = calibrated_rates(cal, measured_hardware(cal, smoke), vl.LOCAL_ASSUMPTIONS, smoke)
    case = vl.CPU_CASES[1]
    tokens = case.batch * case.seq_len
    direct = step(
        case.model,
        Job(1, float(tokens), case.seq_len, tokens),
        Layout(micro_batch_size=case.batch, zero_stage=0),
        rates,
        parameter_counts(case.model),
        vl.LOCAL_ASSUMPTIONS,
    )
    assert vl.predict(case, rates)["step_time_s"] == direct.step_time_s
    assert vl.LOCAL_ASSUMPTIONS.gemm_sustain == 1.0 and vl.LOCAL_ASSUMPTIONS.memory_reserved_bytes == 0.0


def test_validate_local_bad_input_is_a_clean_error(smoke, tmp_path):
    for args, needle in (
        (["--case", "no-such-case"], "unknown case no-such-case"),
        (["--calibration", str(tmp_path / "missing.json")], "no such file"),
        (["--calibration", str(smoke), "--threads", "2"], "measured with 1 CPU threads"),
    ):
        proc = costsim("validate", "local", "--device", "cpu", *args)
        assert_clean_exit(proc, needle)
        assert proc.stderr.startswith("error: "), proc.stderr


def test_validate_local_refuses_an_edited_calibration(tmp_path):
    """The closed loop reads calibrations through the same loader: an edited fit, its hash recomputed, is refused."""
    from test_calibrate_integrity import cpu_calibration, forge

    from simulator.inputs.calibration import write_calibration

    genuine = write_calibration(cpu_calibration(), tmp_path / "cpu.json")

    def edit(raw: dict) -> None:
        raw["fit"]["gemm"]["bf16"]["best_flop_per_s"] *= 10

    bad = forge(genuine, tmp_path / "x10.json", edit, reseal=True)
    proc = costsim("validate", "local", "--device", "cpu", "--calibration", str(bad))
    assert_clean_exit(proc, f"calibration {bad}", "fit.gemm.bf16.best_flop_per_s is", "10x")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_full_recompute_runs_each_layer_forward_again_and_keeps_its_input_only():
    """transformer.DecoderLM(recompute=True) checkpoints each block: the same loss and gradients as without, one more
    forward of every block in the backward, and less saved for the backward."""
    import torch

    from calibrate import transformer

    spec = vl.CPU_CASES[0].model
    device = torch.device("cpu")
    grads, forwards = {}, {}
    for recompute in (False, True):
        torch.manual_seed(0)
        model, opt = transformer.build(spec, 64, device, recompute=recompute)
        calls = []
        forward = model.blocks[0].forward

        def counted(x, forward=forward, calls=calls):
            calls.append(1)
            return forward(x)

        model.blocks[0].forward = counted
        tokens, targets = transformer.random_batch(spec, 2, 64, device)
        model(tokens, targets).backward()
        grads[recompute] = [g.clone() for g in opt.main_grads]  # the fp32 main gradients the hooks filled
        forwards[recompute] = len(calls)
    assert forwards == {False: 1, True: 2}
    # The same gradients (up to the order of BF16 sums, which a multi-threaded CPU kernel may change between calls).
    for a, b in zip(grads[False], grads[True], strict=True):
        assert float((a - b).norm()) <= 1e-2 * float(a.norm()) + 1e-6
    assert any(bool(g.abs().sum() > 0) for g in grads[True])


def test_early_stopping_recompute_skips_only_the_down_projection():
    """With early stopping (transformer.CHECKPOINT_EARLY_STOP, PyTorch's default for non-reentrant checkpoints) the
    backward's recomputation of a block stops once the down projection's input is saved again, before that GEMM runs:
    every GEMM of the block but the down projection runs twice per step, the down projection once. This is the
    forward time step_time.early_stop_skip_s takes off the recompute term (docs/model.md §2.5)."""
    import torch

    from calibrate import transformer

    assert transformer.CHECKPOINT_EARLY_STOP
    spec = vl.CPU_CASES[0].model
    device = torch.device("cpu")
    torch.manual_seed(0)
    model, _ = transformer.build(spec, 32, device, recompute=True)
    block = model.blocks[0]
    calls = {name: 0 for name in ("qkv", "out", "up", "down")}
    for name in calls:
        getattr(block, name).register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    tokens, targets = transformer.random_batch(spec, 1, 32, device)
    model(tokens, targets).backward()
    assert calls == {"qkv": 2, "out": 2, "up": 2, "down": 1}


def test_validate_local_predicts_recompute_as_the_trainer_checkpoints(smoke):
    """predict() charges the recompute case as the trainer checkpoints (early stopping): one forward of every layer
    less its down projection, exactly that GEMM's time per layer below a whole forward."""
    cal = load_calibration(smoke)
    rates = calibrated_rates(cal, measured_hardware(cal, smoke), vl.LOCAL_ASSUMPTIONS, smoke)
    case = vl.CPU_RECOMPUTE_CASES[0].base
    base = vl.predict(case, rates)["step_time_s"]
    early = vl.predict(case, rates, "full")["step_time_s"] - base
    whole = vl.predict(case, rates, "full", early_stop=False)["step_time_s"] - base
    m = case.model
    down_s = rates.gemm_s(case.batch * case.seq_len, m.d_model, m.d_ff, "bf16", weight_gemm=True)
    assert 0 < early < whole
    assert whole - early == pytest.approx(m.n_layers * down_s, rel=1e-9)


def test_recompute_costs_pair_each_recompute_case_with_its_base():
    rows = [
        {"case": "a", "recompute": "none", "d_model": 8, "layers": 2, "batch": 1, "seq_len": 4,
         "measured_step_time_s": 1.0, "predicted_step_time_s": 0.9},
        {"case": "a-full-recompute", "recompute": "full", "d_model": 8, "layers": 2, "batch": 1, "seq_len": 4,
         "measured_step_time_s": 1.25, "predicted_step_time_s": 1.2},
        {"case": "b-full-recompute", "recompute": "full", "d_model": 16, "layers": 2, "batch": 1, "seq_len": 4,
         "measured_step_time_s": 2.0, "predicted_step_time_s": 2.0},
    ]  # fmt: skip
    (cost,) = vl.recompute_costs(rows)  # b's base did not run: no pair
    assert cost["base"] == "a" and cost["case"] == "a-full-recompute"
    assert cost["measured_extra_s"] == pytest.approx(0.25) and cost["predicted_extra_s"] == pytest.approx(0.3)
    assert cost["measured_over_predicted"] == pytest.approx(0.25 / 0.3)


def test_the_step_model_charges_each_memory_bound_class_at_its_own_rate(smoke):
    """The closed loop's rates carry the trainer's measured rate per kernel class (DeviceRates.memory_s(bytes, kind)):
    doubling the optimizer's halves the step's optimizer time and leaves the layers' memory-bound time alone."""
    from dataclasses import replace

    cal = load_calibration(smoke)
    rates = calibrated_rates(cal, measured_hardware(cal, smoke), vl.LOCAL_ASSUMPTIONS, smoke)
    assert set(rates.memory_bytes_per_s_by_kind) == {"layer", "cross_entropy", "embedding", "optimizer"}
    by_kind = rates.memory_bytes_per_s_by_kind
    faster = replace(rates, memory_bytes_per_s_by_kind={**by_kind, "optimizer": 2 * by_kind["optimizer"]})
    case = vl.CPU_CASES[1]
    base, fast = vl.predict(case, rates)["breakdown_s"], vl.predict(case, faster)["breakdown_s"]
    assert fast["optimizer"] == pytest.approx(base["optimizer"] / 2, rel=1e-9) and base["optimizer"] > 0
    assert fast["memory_bound"] == base["memory_bound"] > 0
