"""Functions for notebooks and the CLI: names and numbers in, result objects out."""

from __future__ import annotations

from simulator.inputs.specs import HardwareProfile, load_hardware, load_model
from simulator.model.efficiency import DeviceRates
from simulator.model.layout import make_job
from simulator.run.estimate import Estimate, estimate


def load_device(gpu: str, calibration: str | None) -> tuple[HardwareProfile, DeviceRates | None]:
    """The hardware profile of `gpu` and, with a calibration file, the measured rates that replace its terms."""
    if calibration is None:
        return load_hardware(gpu), None
    from simulator.inputs.assumptions import DEFAULT
    from simulator.model.efficiency import calibrated_device

    return calibrated_device(gpu, calibration, DEFAULT)


def run_estimate(
    model: str,
    gpu: str,
    num_gpus: int,
    tokens: float,
    seq_len: int | None = None,
    global_batch_tokens: float | None = None,
    precision: str = "bf16",
    layout: dict | None = None,
    usd_per_gpu_hour: float | None = None,
    attention_kernel: str = "flash",
    dropout: float = 0.0,
    calibration: str | None = None,
    fp8_recipe: str | None = None,
    device: tuple[HardwareProfile, DeviceRates | None] | None = None,
) -> Estimate:
    """`calibration`: a file from `costsim calibrate`; its measured rates replace the profile's efficiency terms.
    `device`: what load_device(gpu, calibration) returned, when the caller needs the hardware too."""
    spec = load_model(model)
    hw, rates = device or load_device(gpu, calibration)
    job = make_job(spec, num_gpus, tokens, seq_len, global_batch_tokens, precision, attention_kernel, dropout, fp8_recipe)
    return estimate(spec, hw, job, layout, usd_per_gpu_hour, rates=rates)


def run_plan(plan: str, cost_options=None):
    """A shipped plan by name or a plan YAML path -> PlanResult (every stage estimated, totals, cost)."""
    from simulator.analysis.plans import load_plan
    from simulator.analysis.plans import run_plan as _run_plan

    spec, path = load_plan(plan)
    return _run_plan(spec, path, cost_options)


def run_compare(a: str, b: str) -> dict:
    """GPU-hours of plan a / plan b as a product of factors (simulator.analysis.compare)."""
    from simulator.analysis.compare import compare, summarize

    return compare(summarize(run_plan(a)), summarize(run_plan(b)))
