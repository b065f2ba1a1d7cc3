"""The JSON document of `costsim validate rl` (docs/model.md §17.7), in the style of simulator/outputs.py: fixed objects
forbid unknown keys; a case's split and detail are mappings (their parts differ between a benchmark step and a plan's
stages)."""

from __future__ import annotations

from typing import Literal

from simulator.outputs import Document, _Fixed


class RLCaseOutput(_Fixed):
    """One published RL figure and its prediction."""

    id: str
    track: Literal["benchmark", "plan"]
    """benchmark: a NeMo RL GRPO step (the target); plan: a DeepSeek-R1 stage through plans/deepseek-r1.yaml."""
    source: str
    evidence: Literal["primary", "secondary"]
    model: str
    gpu: str
    num_gpus: int | None
    metric: str
    unit: str
    reported: float
    predicted: float | None
    error: float | None
    """predicted / reported - 1; null when not predicted."""
    band: list[float] | None
    """The prediction with the banded inputs (long tail) at their low and high ends."""
    split: dict | None
    """Seconds of the step by part (benchmark), or the stages and their GPU-hours (plan)."""
    detail: dict | None
    not_predicted_because: str | None
    assumptions: list[str]


class RLAssumption(_Fixed):
    name: str
    value: float | int | str | dict
    source: str


class ValidateRLOutput(Document):
    """`costsim validate rl --format json`: every published RL figure predicted, and the summary of the NeMo RL steps."""

    cases: list[RLCaseOutput]
    n_cases: int
    """Benchmark steps predicted."""
    n_not_predicted: int
    median_abs_error: float | None
    max_abs_error: float | None
    worst_case: str | None
    within_target: int
    """Benchmark steps within the target."""
    error_convention: str
    target: dict
    meets_target: bool
    assumptions: list[RLAssumption]
