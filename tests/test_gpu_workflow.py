"""The GPU runner's workflow (.github/workflows/gpu-calibration.yml) names files and flags that exist: it runs only on
a GPU runner, so nothing else would notice a path it watches moving (its paths named simulator/calibration.py,
efficiency.py and step_time.py after they had moved under simulator/inputs and simulator/model) or a flag renamed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from cli_support import invoke

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "gpu-calibration.yml"


def _doc() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_the_paths_that_trigger_the_gpu_workflow_exist():
    on = _doc()[True]  # YAML 1.1 reads the key `on` as true
    for pattern in on["push"]["paths"]:
        if pattern.endswith("/**"):
            assert (ROOT / pattern[:-3]).is_dir(), pattern
        else:
            assert (ROOT / pattern).is_file(), pattern


def test_the_gpu_workflow_fails_a_step_whose_pipe_fails():
    """Its gates pipe costsim into tee; GitHub's default shell (bash -e) takes tee's status, so a failed gate would
    pass. `shell: bash` runs steps with -o pipefail."""
    doc = _doc()
    assert doc["defaults"]["run"]["shell"] == "bash"
    for job in doc["jobs"].values():
        for step in job["steps"]:
            assert step.get("shell", "bash") == "bash", step.get("name")


def test_every_costsim_flag_the_gpu_workflow_passes_exists():
    """Each `costsim SUBCOMMAND ... --flag` of the workflow's steps is in that subcommand's --help."""
    runs = [step["run"].replace("\\\n", " ") for job in _doc()["jobs"].values() for step in job["steps"] if "run" in step]
    calls = [line.split("costsim", 1)[1] for run in runs for line in run.splitlines() if ".venv/bin/costsim " in line]
    assert len(calls) >= 4
    for call in calls:
        words = shlex.split(call.split("|")[0])
        command = [w for w in words[:2] if not w.startswith("-") and not w.startswith("$") and "/" not in w
                   and not w.endswith(".json")]  # fmt: skip
        help_text = invoke(*command, "--help").output
        for flag in {w.split("=")[0] for w in words if re.fullmatch(r"--[a-z][a-z-]*(=.*)?", w)}:
            assert flag in help_text, (command, flag)
