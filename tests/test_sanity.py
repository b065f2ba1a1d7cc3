"""Sanity notes: an estimate says when its step leans on a bubble, exposed communication, stage imbalance or
nearly full memory, and stays quiet otherwise."""

from __future__ import annotations

import json

from cli_support import invoke

from simulator.model.memory import MemoryBreakdown
from simulator.run.sanity import sanity_notes
from simulator.units import GIB

ROOMY = MemoryBreakdown(10 * GIB, 5 * GIB, 5 * GIB, 20 * GIB, 3 * GIB)  # 43 of 80 GiB


def _notes(breakdown=None, busy=(1.0, 1.0), memory=ROOMY, step_s=10.0):
    items = [["embed", "dense"], ["dense", "head"]][: len(busy)]
    return sanity_notes(step_s, breakdown or {"dense_ffn": step_s}, list(busy), items, memory, 80 * GIB)


def test_a_balanced_compute_bound_step_has_no_notes():
    assert _notes() == []


def test_each_threshold_speaks_only_beyond_it():
    assert _notes({"pipeline_bubble": 1.5}) == []  # 15%: at the threshold
    (bubble,) = _notes({"pipeline_bubble": 2.0})
    assert "pipeline bubble is 20% of the step" in bubble and "--vpp" in bubble
    (comm,) = _notes({"tp_comm": 1.5, "dp_comm_exposed": 1.0})
    assert "exposed communication is 25%" in comm and "mostly tp_comm" in comm
    assert _notes(busy=(1.1, 1.0)) == []  # x1.05 of the mean
    (rank,) = _notes(busy=(1.0, 1.4))
    assert "pipeline rank 1 is busy x1.17" in rank and "dense, head" in rank
    full = MemoryBreakdown(40 * GIB, 10 * GIB, 10 * GIB, 14 * GIB, 3 * GIB)  # 77 of 80 GiB
    (memory,) = _notes(memory=full)
    assert "77.0 of 80 GiB" in memory and "--zero-stage" in memory


def test_a_network_bound_estimate_carries_the_note_in_json_and_table():
    # TP 32 spans four 8-GPU NVLink domains, so the TP collectives cross the network.
    args = ["estimate", "llama-3.1-70b", "--gpu", "h100-sxm", "--num-gpus", "256", "--tokens", "1T", "--tp", "32", "--pp", "1"]
    table = invoke(*args)
    assert table.exit_code == 0, table.output
    assert "exposed communication is" in table.output
    d = json.loads(invoke(*args, "--format", "json").output)
    assert any("mostly tp_comm" in n for n in d["notes"])


def test_the_report_lists_the_notes_under_the_step_breakdown(tmp_path):
    out = tmp_path / "report"
    args = ["report", "llama-3.1-70b", "--gpu", "h100-sxm", "--num-gpus", "256", "--tokens", "1T", "--tp", "32", "--pp", "1"]
    r = invoke(*args, "--output", str(out), "--draws", "500")
    assert r.exit_code == 0, r.output
    md = (out / "report.md").read_text(encoding="utf-8")
    step, rest = md.split("## Where the time goes", 1)[1].split("## ", 1)
    assert "Worth a look:" in step and "exposed communication is" in step
    assert "exposed communication is" not in rest
