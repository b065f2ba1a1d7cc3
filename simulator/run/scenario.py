"""One run, resolved once at the edge and passed down: the model spec, the hardware with its rates (the
profile's, or a calibration's), the job (defaults filled, FP8 recipe resolved), the layout fields the user fixed,
the software stack (what the layout search may use, and what practitioners ran), the price of a GPU-hour and the
global assumptions.

The command line and the Python API build a Scenario with `resolve` from names and numbers; analysis code that
already holds the objects builds one with `Scenario.of`. Nothing below this point loads a file or chooses a
price again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from simulator.inputs.arguments import layout_values
from simulator.inputs.assumptions import DEFAULT, Assumptions
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import Job, make_job, with_fp8_recipe
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.inputs.stacks import Stack, load_stack
from simulator.model.efficiency import DeviceRates, calibrated_device, device_rates
from simulator.run.cost import CostOptions, Pricing, Rate, pricing


@dataclass(frozen=True)
class Scenario:
    model: ModelSpec
    hardware: HardwareProfile
    rates: DeviceRates
    job: Job
    pricing: Pricing
    layout: dict = field(default_factory=dict)
    """The layout fields the user fixed (None values dropped); the others are searched."""
    assumptions: Assumptions = DEFAULT
    costs: CostOptions = field(default_factory=CostOptions)
    """The cost options the pricing was chosen from (an uncertainty band needs to know whether the price was given)."""
    stack: Stack = field(default_factory=load_stack)
    """The software stack (inputs.stacks; default: today's common stack)."""
    memory_limit_bytes: float | None = None
    """Memory a layout may use per GPU (None: the GPU's). Validation lifts it for a published run that ran on a
    layout costsim's memory model finds too large, so the run is still predicted (and the miss reported)."""

    @classmethod
    def of(
        cls,
        model: ModelSpec,
        hardware: HardwareProfile,
        job: Job,
        layout: dict | None = None,
        price: Pricing | None = None,
        assumptions: Assumptions = DEFAULT,
        rates: DeviceRates | None = None,
        stack: Stack | None = None,
    ) -> Scenario:
        """A scenario of objects already loaded: the profile's rates (with the stack's attention kernel), its default
        rental price and today's stack unless given."""
        stack = stack or load_stack()
        assumptions = assumptions.for_generation(hardware.generation)
        return cls(
            model=model,
            hardware=hardware,
            rates=stack_rates(rates or device_rates(hardware, assumptions, stack.attention_kernel), stack, assumptions),
            job=with_fp8_recipe(job, model),
            pricing=price or pricing(hardware),
            layout=fixed_fields(layout),
            assumptions=assumptions,
            stack=stack,
        )


def fixed_fields(layout: dict | None) -> dict:
    """The layout fields given a value (None means: search it), each of its type and in its range."""
    return layout_values({k: v for k, v in (layout or {}).items() if v is not None})


def load_device(
    gpu: str | HardwareProfile,
    calibration: str | Path | None,
    assumptions: Assumptions = DEFAULT,
    attention_kernel: str | None = None,
):
    """(hardware profile, rates) of `gpu`; with a calibration file, the measured rates replace the profile's terms.
    `attention_kernel`: the stack's flash-attention kernel (efficiency.device_rates)."""
    if calibration is not None:
        name = gpu.name if isinstance(gpu, HardwareProfile) else gpu
        return calibrated_device(name, calibration, assumptions)
    hw = gpu if isinstance(gpu, HardwareProfile) else load_hardware(gpu)
    return hw, device_rates(hw, assumptions, attention_kernel)


def resolve(
    model: str | ModelSpec,
    gpu: str | HardwareProfile,
    num_gpus: int,
    tokens: float,
    *,
    seq_len: int | None = None,
    global_batch_tokens: float | None = None,
    precision: str = "bf16",
    fp8_recipe: str | None = None,
    attention_kernel: str | None = None,
    dropout: float = 0.0,
    layout: dict | None = None,
    costs: CostOptions | None = None,
    quoted: Rate | None = None,
    calibration: str | Path | None = None,
    assumptions: Assumptions = DEFAULT,
    stack: str | Stack | None = None,
) -> Scenario:
    """Everything one estimate needs, from names and numbers: each file read once, the price chosen once.

    `quoted`: a rental price quoted for the run (a plan's), used unless the cost options give a price. `stack`: the
    software stack by name (None: today's); it sets the attention kernel and the FP8 recipe unless they are given."""
    spec = model if isinstance(model, ModelSpec) else load_model(model)
    sw = stack if isinstance(stack, Stack) else load_stack(stack)
    hw, rates = load_device(gpu, calibration, assumptions, sw.attention_kernel)
    assumptions = assumptions.for_generation(hw.generation)  # the realization of the GPU's generation
    if precision == "fp8":
        published = spec.published_layout.fp8_recipe if spec.published_layout else None
        fp8_recipe = sw.fp8_recipe(fp8_recipe, published)
    kernel = attention_kernel or sw.attention
    job = make_job(spec, num_gpus, tokens, seq_len, global_batch_tokens, precision, kernel, dropout, fp8_recipe)
    costs = costs or CostOptions()
    rates = stack_rates(rates, sw, assumptions)
    return Scenario(spec, hw, rates, job, pricing(hw, costs, quoted), fixed_fields(layout), assumptions, costs, sw)


def stack_rates(rates: DeviceRates, stack: Stack, assumptions: Assumptions) -> DeviceRates:
    """The device rates as the stack runs them: on a stack that launches MoE experts one GEMM at a time after a host
    sync, each expert GEMM takes at least the host's launch time, and longer where the stack quantizes each expert's
    FP8 tensor apart by its current amax (docs/model.md §7.8); on a stack whose per-step host time is fitted, each
    optimizer step pays it (§7.9)."""
    per_expert = stack.expert_gemm_launch == "per_expert"
    launch_s = assumptions.expert_launch_host_s if per_expert else 0.0
    quantize_s = assumptions.expert_quantize_host_s if per_expert and stack.fp8_tensor_scaling == "current" else 0.0
    step_s = assumptions.step_host_s if stack.step_host == "fitted" else 0.0
    return replace(rates, expert_launch_host_s=launch_s, expert_quantize_host_s=quantize_s, step_host_s=step_s)
