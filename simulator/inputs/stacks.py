"""Software stacks (simulator/data/stacks.yaml): what a training framework of a given time offered and what runs on
it used by default.

A stack limits the layout search to the layouts it supports (`offers`: the achievable estimate) and names the
conservative subset practitioners ran (`practice`: the expected estimate's layout: activation checkpointing, TP
inside a node, no TP overlap, the framework's optimizer sharding). It also sets the attention kernel and the FP8
recipes on offer. Layout fields the user fixes always hold, inside or outside these sets.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.errors import InputError, SpecError
from simulator.inputs.arguments import reference
from simulator.inputs.files import read_yaml, validate
from simulator.vocab import AttentionKernel, ExpertGemmLaunch, Fp8Recipe, Fp8TensorScaling, Recompute, Schedule, StepHost


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayoutLimits(_Schema):
    """Values each layout field may take (None: any). `tp_max` caps TP (inside one NVLink node)."""

    tp: list[int] | None = None
    pp: list[int] | None = None
    cp: list[int] | None = None
    ep: list[int] | None = None
    zero_stage: list[int] | None = None
    micro_batch_size: list[int] | None = None
    schedule: list[Schedule] | None = None
    recompute: list[Recompute] | None = None
    tp_overlap: list[bool] | None = None
    tp_max: int | None = Field(None, ge=1)

    def allows(self, field: str, value: object) -> bool:
        if field == "tp" and self.tp_max is not None and int(value) > self.tp_max:  # type: ignore[call-overload]
            return False
        allowed = getattr(self, field, None)
        return allowed is None or value in allowed

    def within(self, other: LayoutLimits) -> LayoutLimits:
        """These limits applied on top of `other` (practice inside what the stack offers)."""
        merged = {}
        for name in LayoutLimits.model_fields:
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "tp_max":
                merged[name] = min(v for v in (mine, theirs) if v is not None) if mine or theirs else None
            elif mine is None or theirs is None:
                merged[name] = mine if theirs is None else theirs
            else:
                merged[name] = [v for v in mine if v in theirs] or list(theirs)
        return LayoutLimits(**merged)


class Stack(_Schema):
    name: str
    description: str
    year: int = Field(ge=2015, le=2100)
    sources: list[str] = Field(min_length=1)
    attention: AttentionKernel
    attention_kernel: str | None = None
    """The flash-attention kernel generation the stack ran (a key of a hardware profile's efficiency.attention_kernels:
    fa2, triton-fa); None: today's kernel (the profile's `attention`). Profiles without a figure for it use `attention`."""
    fp8: list[Fp8Recipe]
    expert_gemm_launch: ExpertGemmLaunch = "grouped"
    """How the stack runs a MoE layer's local experts: `grouped`, one kernel for all of them (DeepGEMM, CUTLASS
    grouped GEMM) or launches the host issues ahead of the GPU; `per_expert`, one GEMM launch per expert issued after
    the dropless dispatcher's host sync (Transformer Engine's multi-stream GroupedLinear under Megatron-Core), each
    taking at least Assumptions.expert_launch_host_s (docs/model.md §7.8)."""
    fp8_tensor_scaling: Fp8TensorScaling = "delayed"
    """How the stack's `tensor` FP8 recipe takes its scales: `delayed`, from an amax history (Transformer Engine's
    DelayedScaling, its default), or `current`, from each tensor's own amax (Float8CurrentScaling: Megatron-Core's
    --fp8-recipe tensorwise, Megatron-Bridge's FP8-CS). Under `current` a per-expert stack quantizes every local
    expert's input apart, which adds Assumptions.expert_quantize_host_s to each expert GEMM's host time (§7.8)."""
    step_host: StepHost = "none"
    """Whether each optimizer step of this stack's trainer pays the fitted per-step host time (Assumptions.step_host_s,
    docs/model.md §7.9): `fitted`, the FSDP stack whose llm-foundry README rows it is fitted to; `none`, nothing
    charged (no rows of the stack to fit it on)."""
    offers: LayoutLimits
    practice: LayoutLimits

    @property
    def practice_limits(self) -> LayoutLimits:
        """What practitioners ran: the practice subset of what the stack offers."""
        return self.practice.within(self.offers)

    def beyond(self, layout: dict) -> list[str]:
        """The layout fields given that the stack does not offer, each as 'FLAG VALUE (it offers ...)': a layout flag
        holds as given (issue 11), so a run with one is not a run that stack could do, which the caller says."""
        out = []
        for field in LayoutLimits.model_fields:
            if field == "tp_max":
                continue
            value = layout.get(field)
            if value is None or self.offers.allows(field, value):
                continue
            offered = getattr(self.offers, field, None)
            what = ", ".join(str(v).lower() for v in offered) if offered else f"TP up to {self.offers.tp_max}"
            flag = "--" + field.replace("_", "-")
            given = (flag if value else "--no-" + flag[2:]) if isinstance(value, bool) else f"{flag} {value}"
            out.append(f"{given} (it offers {what})")
        return out

    def beyond_note(self, layout: dict) -> str | None:
        """The note an estimate on this stack carries when layout flags go beyond what it offers; None otherwise."""
        beyond = self.beyond(layout)
        if not beyond:
            return None
        return (
            f"layout flags beyond stack {self.name} ({self.year}): {'; '.join(beyond)}; they hold as given, so both "
            "numbers are for a run that stack could not do; leave them out or choose a --stack that offers them"
        )

    def fp8_recipe(self, given: str | None, published: str | None) -> str:
        """The FP8 recipe a run uses on this stack: as given, else the model's published one where the stack offers
        it, else the stack's first; InputError when the stack has none or not the one given."""
        if not self.fp8:
            raise InputError(
                f"--precision fp8 is not available on stack {self.name} ({self.year}); use --precision bf16 or a later --stack"
            )
        if given is not None and given not in self.fp8:
            raise InputError(f"--fp8-recipe {given} is not available on stack {self.name}; use one of {', '.join(self.fp8)}")
        return given or (published if published in self.fp8 else self.fp8[0])


class StackFile(_Schema):
    default: str
    stacks: dict[str, dict]

    @model_validator(mode="after")
    def _default_exists(self) -> StackFile:
        if self.default not in self.stacks:
            raise ValueError(f"default stack {self.default!r} is not one of {', '.join(self.stacks)}; set default to one of them")
        return self


def stacks_path() -> Path:
    return Path(str(files("simulator.data"))) / "stacks.yaml"


@functools.lru_cache(maxsize=1)
def _stack_file() -> tuple[str, dict[str, Stack]]:
    path = stacks_path()
    doc = validate(read_yaml(path), StackFile, path)
    stacks = {name: validate({"name": name, **raw}, Stack, f"{path}: stack {name}") for name, raw in doc.stacks.items()}
    return doc.default, stacks


def stack_names() -> list[str]:
    return list(_stack_file()[1])


def default_stack_name() -> str:
    return _stack_file()[0]


def load_stack(name: str | None = None) -> Stack:
    """A stack by name (None: the default, today's common stack)."""
    default, stacks = _stack_file()
    if name is not None:
        name = reference("stack", name, "a stack name (costsim list stacks)")
    key = (name or default).strip().lower()
    if key not in stacks:
        raise SpecError(f"unknown stack {name!r}; stacks: {', '.join(stacks)} (see `costsim list stacks`)")
    return stacks[key]
