"""Goodput (simulator/run/goodput.py): the first-order checkpoint/restart model, each term against numbers
worked out by hand (Young 1974; Daly 2006; docs/model.md §9)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from simulator.inputs.assumptions import BASE
from simulator.run.goodput import ettr, goodput

# 0.001 failures per GPU-hour on 1000 GPUs: one failure an hour, so the job MTBF is M = 3600 s.
ONE_PER_HOUR = replace(BASE, failures_per_gpu_hour=0.001, checkpoint_blocking_s=50.0, restart_s=600.0)


def test_job_mtbf_is_one_over_lambda_times_gpus():
    g = goodput(1000, 0.0, ONE_PER_HOUR)
    assert g.job_mtbf_s == pytest.approx(3600.0, rel=1e-12)
    # Twice the GPUs, half the MTBF.
    assert goodput(2000, 0.0, ONE_PER_HOUR).job_mtbf_s == pytest.approx(1800.0, rel=1e-12)


def test_young_daly_checkpoint_interval_is_sqrt_2_delta_mtbf():
    """Young 1974 / Daly 2006: tau = sqrt(2 delta M) = sqrt(2 x 50 x 3600) = 600 s."""
    g = goodput(1000, 0.0, ONE_PER_HOUR)
    assert g.checkpoint_interval_s == pytest.approx(600.0, rel=1e-12)
    # delta = 0.5 s: tau = sqrt(2 x 0.5 x 3600) = 60 s.
    assert goodput(1000, 0.0, replace(ONE_PER_HOUR, checkpoint_blocking_s=0.5)).checkpoint_interval_s == pytest.approx(60.0)


def test_ettr_is_one_minus_delta_over_tau_minus_half_tau_plus_restart_over_mtbf():
    """waste = delta/tau + (tau/2 + R)/M = 50/600 + (300 + 600)/3600 = 1/12 + 1/4 = 1/3."""
    g = goodput(1000, 0.0, ONE_PER_HOUR)
    assert g.ettr == pytest.approx(1.0 - 1.0 / 12.0 - 0.25, rel=1e-12)
    assert ettr(1000, ONE_PER_HOUR) == pytest.approx(2.0 / 3.0, rel=1e-12)


def test_expected_failures_are_wall_clock_over_ettr_times_rate():
    """Failures = (ideal wall clock / ETTR) x job failure rate = (7200 s / (2/3)) / 3600 s = 3."""
    g = goodput(1000, 7200.0, ONE_PER_HOUR)
    assert g.expected_failures == pytest.approx(3.0, rel=1e-12)
    # ETTR does not depend on the run's length.
    assert g.ettr == pytest.approx(goodput(1000, 1e6, ONE_PER_HOUR).ettr, rel=1e-15)


def test_no_failures_means_full_goodput_and_infinite_mtbf():
    g = goodput(1000, 7200.0, replace(ONE_PER_HOUR, failures_per_gpu_hour=0.0))
    assert g.ettr == 1.0
    assert g.job_mtbf_s == math.inf and g.checkpoint_interval_s == math.inf
    assert g.expected_failures == 0.0


def test_free_checkpoints_leave_only_the_restart_waste():
    """delta = 0: tau = 0 (checkpoint continuously), waste = R / M = 600 / 3600."""
    g = goodput(1000, 0.0, replace(ONE_PER_HOUR, checkpoint_blocking_s=0.0))
    assert g.checkpoint_interval_s == 0.0
    assert g.ettr == pytest.approx(1.0 - 600.0 / 3600.0, rel=1e-12)


def test_short_interval_below_one_second_still_charges_delta_over_tau():
    """delta = 1e-4 s, M = 3600 s: tau = sqrt(0.72) s; waste = delta/tau + (tau/2 + R)/M."""
    a = replace(ONE_PER_HOUR, checkpoint_blocking_s=1e-4, restart_s=0.0)
    tau = math.sqrt(2 * 1e-4 * 3600.0)
    g = goodput(1000, 0.0, a)
    assert g.checkpoint_interval_s == pytest.approx(tau, rel=1e-12)
    assert g.ettr == pytest.approx(1.0 - 1e-4 / tau - tau / 2 / 3600.0, rel=1e-12)


def test_ettr_is_floored_at_five_percent_when_failures_outpace_checkpoints():
    """One failure a minute with a 10-minute restart: waste > 1; the first-order model is clamped to 0.05."""
    a = replace(ONE_PER_HOUR, failures_per_gpu_hour=0.06)
    g = goodput(1000, 100.0, a)
    assert g.ettr == 0.05
    # Failures then follow the stretched wall clock: 100 s / 0.05 x (60 per hour / 3600 s).
    assert g.expected_failures == pytest.approx(100.0 / 0.05 * 60.0 / 3600.0, rel=1e-12)


def test_llama3_default_rate_gives_ninety_percent_ettr_on_16k_gpus():
    """Llama 3 §3.3.4: 419 unexpected interruptions in 54 days on 16,384 GPUs, and '>90% effective training time'.

    M = 54 x 24 x 3600 / 419 s; tau = sqrt(2 x 10 x M); waste = 10/tau + (tau/2 + 600)/M."""
    m = 54 * 24 * 3600 / 419
    tau = math.sqrt(2 * 10.0 * m)
    expected = 1.0 - 10.0 / tau - (tau / 2 + 600.0) / m
    g = goodput(16384, 0.0, BASE)
    assert g.job_mtbf_s == pytest.approx(m, rel=1e-9)
    assert g.ettr == pytest.approx(expected, rel=1e-9)
    assert g.ettr == pytest.approx(0.904, abs=5e-4)


def test_a_run_at_the_floor_or_shorter_than_one_checkpoint_interval_says_so():
    """goodput_notes: at the 5% floor the first-order model has no meaning (the GPU-hours are a bound), and a run
    shorter than one checkpoint interval is charged the long-run waste; a run of many intervals gets no note."""
    from simulator.run.goodput import MIN_ETTR, goodput_notes

    g = goodput(1000, 0.0, ONE_PER_HOUR)  # tau 600 s, waste 50/600 + 900/3600 = 1/3
    assert goodput_notes(g, 3600.0 * 24, ONE_PER_HOUR) == []
    short = goodput_notes(g, 60.0, ONE_PER_HOUR)
    assert len(short) == 1 and "(1 min of training) is shorter than one checkpoint interval (10 min)" in short[0]
    assert "(33.3%)" in short[0]
    floored = goodput(1_000_000, 0.0, ONE_PER_HOUR)  # a failure every 3.6 s
    assert floored.ettr == MIN_ETTR
    assert "at its 5% floor" in goodput_notes(floored, 3600.0, ONE_PER_HOUR)[0]


def test_the_default_batch_is_about_4m_tokens_in_a_count_dp_divides():
    """default_batch_sequences: 4M tokens (2^22) over the sequence length, as a multiple of the largest power of two
    at most an eighth of that count: exactly 4M at a power-of-two length, within 1/16 otherwise (839 sequences of
    5,000 tokens, a prime, ran 64 GPUs at DP 1; 832 = 13 x 64)."""
    from simulator.inputs.job import default_batch_sequences

    assert [default_batch_sequences(s) for s in (4096, 8192, 2048, 1)] == [1024, 512, 2048, 4_194_304]
    assert default_batch_sequences(5000) == 832 and default_batch_sequences(6000) == 704
    for s in (3, 100, 1000, 3000, 5000, 6000, 7000, 12_345, 100_000):
        n, target = default_batch_sequences(s), 4 * 2**20 / s
        assert abs(n / target - 1) <= 1 / 16 + 1e-12 and n % 2 ** math.floor(math.log2(max(1.0, target / 8))) == 0


def test_an_estimate_shows_its_goodput_notes_and_an_rl_steps_training_does_not():
    """Estimate.all_notes adds the goodput notes to what estimate prints; an RL stage's training estimate is one step
    and shows its `notes` alone (the stage's own goodput covers the stage; every DeepSeek-R1 RL phase said it was
    shorter than a checkpoint interval)."""
    from simulator import api

    short = api.estimate("llama-3-8b", "h100", 16384, "1B", global_batch_tokens="134217728").to_dict()
    assert any("shorter than one checkpoint interval" in n for n in short["notes"])
    plan = api.plan("deepseek-r1").to_dict()
    rl = [ph["training"] for s in plan["stages"] if s["kind"] == "rl" for ph in s["phases"]]
    assert rl and not any("checkpoint interval" in n for t in rl for n in t["notes"])
    assert any("checkpoint interval" in n for s in plan["stages"] for n in s.get("estimate_notes") or [])  # cold-start SFT
