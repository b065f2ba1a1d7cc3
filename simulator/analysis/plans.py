"""Estimating a plan (inputs.plan_file): every stage on its GPU, one after another, with totals and cost, and the
published GPU-hours the plan quotes set beside the prediction. Training stages run through the training estimate;
RL and generation stages through analysis/rl_stages.py (docs/model.md §17).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from simulator.analysis.published_mfu import with_mfu_notes
from simulator.analysis.rl_stages import RLStageResult, run_generating_stage
from simulator.errors import CostsimError, InfeasibleError, InputError, SpecError
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.plan_file import TRAINING_STAGE_FIELDS, Plan, Stage, in_plan_terms, load_plan, model_ref
from simulator.inputs.specs import HardwareProfile, ModelSpec
from simulator.run.cost import CostOptions, Rate, rental_rate, sum_blocks
from simulator.run.estimate import Estimate, as_if_it_fitted, estimate_scenario
from simulator.run.scenario import resolve
from simulator.units import SECONDS_PER_DAY, SECONDS_PER_HOUR

# --------------------------------------------------------------------------- estimating


MOE_RL_CAVEAT = (
    "MoE model in RL or generation stages: NeMo RL's DeepSeek-V3 and Qwen3-235B-A22B steps took up to 1.7x as long "
    "as costsim predicts (median 1.3x over its 26 steps of v0.4-v0.6; the on-policy H100 steps 1.2-1.6x), a gap no "
    "modelled term explains yet (costsim validate rl; its H100 Qwen3-30B-A3B steps come within 30% once Megatron-Core's "
    "per-expert GEMM launches are charged, docs/model.md §7.8 and §17.7; two of its four GB200 "
    "steps took 1.5x and 1.9x as long as costsim predicts). Read these stages' GPU-hours as a lower bound."
)
"""The caveat a plan with an MoE model's RL or generation stages carries (PlanResult.caveats)."""


@dataclass(frozen=True)
class StageResult:
    stage: Stage
    estimate: Estimate
    """The expected run of the stage."""
    hw: HardwareProfile
    cost: dict
    achievable: Estimate | None = None
    """The achievable run of the stage (the best layout the stack offers)."""

    @property
    def peak_flop_per_s(self) -> float:
        """Dense peak of the stage's GPU at the stage's precision."""
        return self.hw.peak_flop_per_s(self.stage.precision)

    @property
    def kind(self) -> str:
        return "training"

    @property
    def gpu_hours(self) -> float:
        return self.estimate.gpu_hours

    @property
    def gpu_hours_split(self) -> dict[str, float]:
        """A training stage's GPU-hours: training, and what failures and restarts cost (ETTR, docs/model.md §9)."""
        e = self.estimate
        return {"training": e.ideal_gpu_hours, "failures": e.gpu_hours - e.ideal_gpu_hours}

    def to_dict(self) -> dict:
        e = self.estimate
        d = e.to_dict()
        keys = (
            "gpu",
            "num_gpus",
            "tokens",
            "seq_len",
            "global_batch_tokens",
            "precision",
            "steps",
            "layout",
            "layout_chosen_by_search",
            "flops_per_token",
            "total_model_flops",
            "step_time_s",
            "tokens_per_s_per_gpu",
            "model_tflop_per_s_per_gpu",
            "mfu",
            "mfu_basis",
            "mfu_bf16_peak",
            "memory_per_gpu_gib",
            "ideal_gpu_hours",
            "gpu_hours",
            "ideal_wall_clock_days",
            "wall_clock_days",
            "goodput",
        )
        out = {"name": self.stage.name, "kind": "training", **{k: d[k] for k in keys if k in d}}
        out["gpu_hours_split"] = self.gpu_hours_split
        out["peak_flop_per_s"] = self.peak_flop_per_s
        out["usd_per_gpu_hour"] = self.cost["usd_per_gpu_hour"]
        out["cost_usd"] = self.cost["cost_usd"]
        out["cost"] = self.cost
        out["source"] = self.stage.source
        out["notes"] = self.stage.notes
        out["estimate_notes"] = e.all_notes
        out["ran_at_layout"] = self.stage.ran_at_layout
        if self.achievable is not None:
            out["achievable"] = self.achievable.headline()
        return out


@dataclass(frozen=True)
class PlanResult:
    plan: Plan
    path: Path
    stages: list[StageResult]
    """The training stages (what claim, compare and the uncertainty band take apart)."""
    cost: dict
    options: CostOptions
    rl_stages: list[RLStageResult] = field(default_factory=list)
    """The RL and generation stages (docs/model.md §17)."""
    base: dict | None = None
    """The plan the starting checkpoint comes from, with its published figures (base_plan); not in the totals."""

    @property
    def all_stages(self) -> list[StageResult | RLStageResult]:
        """Every stage in the plan's order."""
        by_name = {s.stage.name: s for s in [*self.stages, *self.rl_stages]}
        return [by_name[s.name] for s in self.plan.stages if s.name in by_name]

    def require_training_only(self, what: str) -> None:
        """InputError for the analyses that take only training stages apart (claim, compare, the uncertainty band,
        the report), naming the plan's RL and generation stages."""
        if self.rl_stages:
            names = ", ".join(s.stage.name for s in self.rl_stages)
            from simulator.inputs.plan_file import plan_ids

            # the name a shipped plan is run by, else the file (a plan's own `name` need not be its file's)
            ref = self.path.stem if plan_ids().get(self.path.stem) == self.path else str(self.path)
            raise InputError(
                f"{what} covers plans of training stages only; plan {self.plan.name} has RL/generation stages ({names}). "
                f"costsim estimate --plan {ref}, without --uncertainty, gives its GPU-hours, split and cost"
            )

    @property
    def gpu_hours(self) -> float:
        return sum(s.gpu_hours for s in self.all_stages)

    @property
    def ideal_gpu_hours(self) -> float:
        return sum(s.estimate.ideal_gpu_hours for s in self.stages) + sum(s.ideal_gpu_hours for s in self.rl_stages)

    @property
    def wall_clock_s(self) -> float:
        """Stages run one after another."""
        return sum(s.estimate.wall_clock_s for s in self.stages) + sum(s.wall_clock_s for s in self.rl_stages)

    @property
    def gpu_hours_split(self) -> dict[str, float]:
        """GPU-hours by part over every stage (generation, logprob, training, refit, idle, failures)."""
        out: dict[str, float] = {}
        for s in self.all_stages:
            for k, v in s.gpu_hours_split.items():
                out[k] = out.get(k, 0.0) + v
        return out

    @property
    def tokens(self) -> float:
        """Tokens trained on by the training stages."""
        return sum(s.estimate.job.tokens for s in self.stages)

    @property
    def total_model_flops(self) -> float:
        return sum(s.estimate.flops_per_token * s.estimate.job.tokens for s in self.stages)

    @property
    def productive_peak_flop_per_s(self) -> float:
        """Dense precision peak averaged over the stages, weighted by their productive GPU-time."""
        return sum(s.peak_flop_per_s * s.estimate.ideal_gpu_hours for s in self.stages) / self.ideal_gpu_hours

    def predicted_gpu_hours(self, stage_names: list[str] | None, achievable: bool = False) -> float:
        """Training stages at their expected (or achievable) layout; RL and generation stages as estimated."""
        names = set(stage_names or [s.name for s in self.plan.stages])
        training = sum((s.achievable if achievable else s.estimate).gpu_hours for s in self.stages if s.stage.name in names)
        return training + sum(s.gpu_hours for s in self.rl_stages if s.stage.name in names)

    def predicted_wall_clock_s(self, stage_names: list[str] | None) -> float:
        """Wall-clock seconds of the named stages (all: None), one after another."""
        names = set(stage_names or [s.name for s in self.plan.stages])
        training = sum(s.estimate.wall_clock_s for s in self.stages if s.stage.name in names)
        return training + sum(s.wall_clock_s for s in self.rl_stages if s.stage.name in names)

    def achievable_summary(self) -> dict:
        """The plan's totals with every stage at its achievable layout, each stage at its own price."""
        runs = [s.achievable or s.estimate for s in self.stages]
        rl = self.rl_stages  # RL and generation stages have one estimate: it stands in for both
        out = {
            "gpu_hours": sum(e.gpu_hours for e in runs) + sum(s.gpu_hours for s in rl),
            "ideal_gpu_hours": sum(e.ideal_gpu_hours for e in runs) + sum(s.ideal_gpu_hours for s in rl),
            "wall_clock_days": (sum(e.wall_clock_s for e in runs) + sum(s.wall_clock_s for s in rl)) / SECONDS_PER_DAY,
            "cost_usd": sum(e.gpu_hours * s.cost["usd_per_gpu_hour"] for e, s in zip(runs, self.stages, strict=True))
            + sum(s.cost["cost_usd"] for s in rl),
        }
        reported = self.reported_total_gpu_hours
        if reported is not None:
            out["error_vs_reported"] = out["gpu_hours"] / reported - 1.0
        return out

    def reported_checks(self) -> list[dict]:
        out = []
        for r in self.plan.reported:
            predicted = self.predicted_gpu_hours(r.stages)
            stated = {"gpu": r.gpu, "num_gpus": r.num_gpus}
            if r.wall_clock_s is not None:
                stated["reported_wall_hours"] = r.wall_clock_s / SECONDS_PER_HOUR
                stated["predicted_wall_hours"] = self.predicted_wall_clock_s(r.stages) / SECONDS_PER_HOUR
            out.append(
                {
                    **{k: v for k, v in stated.items() if v is not None},
                    "unlike": self._unlike(r),
                    "stages": r.stages or "all",
                    "reported_gpu_hours": r.gpu_hours,
                    "predicted_gpu_hours": predicted,
                    "error": predicted / r.gpu_hours - 1.0,
                    "achievable_gpu_hours": self.predicted_gpu_hours(r.stages, achievable=True),
                    "reported_cost_usd": r.cost_usd,
                    "source": r.source,
                    "quote": r.quote,
                    "note": r.note,
                }
            )
        return out

    def _unlike(self, r) -> str | None:
        """What differs between the run a figure states (its GPU, its GPU count) and the stages it covers, where it
        differs: the error then compares unlike runs."""
        names = set(r.stages or [s.name for s in self.plan.stages])
        covered = [s for s in self.all_stages if s.stage.name in names]
        differs = []
        if r.gpu is not None:
            figure_gpu = load_hardware(r.gpu).name
            others = sorted({s.hw.name for s in covered if s.hw.name != figure_gpu})
            if others:
                differs.append(f"the figure ran on {figure_gpu}, the stages run on {', '.join(others)}")
        if r.num_gpus is not None:
            counts = sorted({s.stage.num_gpus for s in covered if s.stage.num_gpus != r.num_gpus})
            if counts:
                differs.append(f"the figure used {r.num_gpus:,} GPUs, the stages {', '.join(f'{n:,}' for n in counts)}")
        return "; ".join(differs) + " (not like for like)" if differs else None

    @property
    def caveats(self) -> list[str]:
        """What the validation data say about this plan's kind of estimate beyond its own stated inputs: an RL or
        generation stage of an MoE model is charged less than the published MoE RL steps took (docs/model.md §17.7)."""
        if not self.rl_stages or load_model(model_ref(self.plan, self.path)).moe is None:
            return []
        return [MOE_RL_CAVEAT]

    @property
    def reported_total_gpu_hours(self) -> float | None:
        whole = [r for r in self.plan.reported if not r.stages]
        return whole[0].gpu_hours if whole else None

    def to_dict(self) -> dict:
        p = self.plan
        out = {
            "plan": p.name,
            "display_name": p.display_name,
            "plan_file": str(self.path),
            "source": p.source,
            "model": self.model_name,
            "gpu": p.gpu,
            "stages": [s.to_dict() for s in self.all_stages],
            "tokens": self.tokens,
            "total_model_flops": self.total_model_flops,
            "ideal_gpu_hours": self.ideal_gpu_hours,
            "gpu_hours": self.gpu_hours,
            "gpu_hours_split": self.gpu_hours_split,
            "wall_clock_days": self.wall_clock_s / SECONDS_PER_DAY,
            "usd_per_gpu_hour": self.cost["usd_per_gpu_hour"],
            "cost_usd": self.cost["cost_usd"],
            "cost": self.cost,
            "achievable": self.achievable_summary(),
            "reported": self.reported_checks(),
            "notes": p.notes,
            "caveats": self.caveats,
        }
        reported = self.reported_total_gpu_hours
        if reported is not None:
            out["reported_gpu_hours"] = reported
            out["error_vs_reported"] = self.gpu_hours / reported - 1.0
        if self.base is not None:
            out["base"] = self.base
        return out

    @property
    def model_name(self) -> str:
        if self.stages:
            return self.stages[0].estimate.model
        return load_model(model_ref(self.plan, self.path)).name


def base_plan(plan: Plan) -> dict:
    """The plan the starting checkpoint comes from, with its published GPU-hours and dollars (read from its file, not
    estimated here, and not in this plan's totals)."""
    base = plan.base
    assert base is not None
    try:
        other, path = load_plan(base.plan)
    except SpecError as e:
        raise SpecError(f"plan {plan.name}: base.plan: {e}") from None
    names = [s.name for s in other.stages]
    unknown = [n for n in base.stages or [] if n not in names]
    if unknown:
        raise SpecError(
            f"plan {plan.name}: base.stages names {unknown}, which plan {other.name} does not have; its stages are {names}"
        )
    wanted = set(base.stages or names)
    reported = [
        {"stages": r.stages or "all", "gpu_hours": r.gpu_hours, "cost_usd": r.cost_usd, "source": r.source, "quote": r.quote}
        for r in other.reported
        if set(r.stages or names) <= wanted
    ]
    return {
        "plan": other.name,
        "display_name": other.display_name,
        "stages": base.stages or "all",
        "note": base.note,
        "reported": reported,
        "in_totals": False,
        "estimate_with": f"costsim estimate --plan {other.name}",
    }


def quoted_price(plan: Plan, stage_gpu: str | None = None) -> Rate | None:
    """The plan's own price with who quotes it, for a stage on the plan's GPU; None where the plan quotes none or the
    stage runs on another GPU (a quote for one GPU does not price another: that stage takes its profile's price)."""
    if plan.usd_per_gpu_hour is None:
        return None
    if stage_gpu is not None and stage_gpu != plan.gpu:
        try:
            if load_hardware(stage_gpu).name != load_hardware(plan.gpu).name:
                return None
        except CostsimError:
            return None  # the stage's own run names the bad GPU, with the stage
    return rental_rate(plan.usd_per_gpu_hour, f"plan {plan.name}: {plan.price_source}")


RAN_AT_LAYOUT_HINT = (
    "; if the stage's source states that the run trained at this layout, set ran_at_layout: true in the stage to cost "
    "it as if it fitted (the estimate then says that costsim's memory model would refuse it)"
)


def run_stage(plan: Plan, spec: ModelSpec, stage: Stage, opts: CostOptions) -> StageResult:
    """One stage on its GPU; `spec` is the plan's model, loaded once for every stage."""
    if stage.ran_at_layout and spec.moe is not None and stage.ep is None:
        raise InputError(
            f"plan {plan.name}, stage {stage.name!r}: ran_at_layout: true says the run trained at the stage's layout, "
            f"but {spec.name} is an MoE model and the stage does not state ep; state the published expert "
            "parallelism, or drop ran_at_layout"
        )
    try:
        scenario = resolve(
            spec,
            stage.gpu or plan.gpu,
            stage.num_gpus,
            stage.tokens,
            seq_len=stage.seq_len,
            global_batch_tokens=stage.global_batch_tokens,
            precision=stage.precision,
            fp8_recipe=stage.fp8_recipe,
            layout=stage.layout(),
            costs=opts,
            quoted=quoted_price(plan, stage.gpu),
        )
        runs = as_if_it_fitted(estimate_scenario, scenario) if stage.ran_at_layout else estimate_scenario(scenario)
        runs = with_mfu_notes(runs, scenario.hardware)
    except CostsimError as e:
        hint = RAN_AT_LAYOUT_HINT if isinstance(e, InfeasibleError) and not stage.ran_at_layout else ""
        text = in_plan_terms(str(e), TRAINING_STAGE_FIELDS)
        if hint:
            text = text.rstrip(".")  # the hint goes on the sentence ('... or more GPUs; if the stage's source ...')
        raise type(e)(f"plan {plan.name}, stage {stage.name!r}: {text}{hint}") from None
    return StageResult(stage, runs.expected, scenario.hardware, runs.expected.cost, runs.achievable)


def run_plan(plan: Plan, plan_path: Path, opts: CostOptions | None = None) -> PlanResult:
    """Estimate every stage; totals are sums (stages run one after another)."""
    opts = opts or CostOptions()
    if opts.rental_kind is not None and plan.usd_per_gpu_hour is not None:
        raise InputError(
            f"plan {plan.name} quotes its own price (${plan.usd_per_gpu_hour:g}/GPU-hour: {plan.price_source}), which "
            f"--rental {opts.rental_kind} would not change; drop --rental, or replace the price with --usd-per-gpu-hour"
        )
    if opts.experiments_multiplier is None and plan.experiments_multiplier is not None:
        opts = replace(opts, experiments_multiplier=plan.experiments_multiplier)
    try:
        spec = load_model(model_ref(plan, plan_path))
    except CostsimError as e:
        raise type(e)(f"plan {plan.name}: {e}") from None
    for r in plan.reported:
        if r.gpu is not None:
            try:
                load_hardware(r.gpu)
            except CostsimError as e:
                raise type(e)(f"plan {plan.name}: reported gpu: {e}") from None
    stage_opts = replace(opts, experiments_multiplier=None)
    stages, rl = [], []
    for s in plan.stages:
        if isinstance(s, Stage):
            stages.append(run_stage(plan, spec, s, stage_opts))
        else:
            rl.append(run_generating_stage(plan, spec, s, stage_opts, quoted_price(plan, s.gpu)))
    blocks = [r.cost for r in [*stages, *rl]]
    gpu_hours = sum(s.estimate.gpu_hours for s in stages) + sum(s.gpu_hours for s in rl)
    total = sum_blocks(blocks, gpu_hours, opts.experiments_multiplier)
    return PlanResult(plan, plan_path, stages, total, opts, rl, base_plan(plan) if plan.base else None)
