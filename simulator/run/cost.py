"""Cost bases for a run's GPU-hours: rental, or total cost of ownership; energy, CO2 and whole-program cost.

Rental: GPU-hours x the profile's quoted $/GPU-hour (kind, date and source shown) or a given price.

TCO, straight-line amortization plus energy (docs/model.md §10.2; Cottier et al. 2024, "The rising costs of
training frontier AI models", arXiv:2405.21015, code epoch-research/training-cost-trends):

    capital per GPU        = GPU price x server cost multiplier / (1 - interconnect share)
    capital per GPU-hour   = capital per GPU / (lifetime hours x fleet utilization)
    energy per GPU-hour    = TDP x server power multiplier x average power fraction x PUE      (kWh)
    TCO per GPU-hour       = capital per GPU-hour + energy per GPU-hour x $/kWh

The capital splits into the GPU itself, the rest of the server, and the cluster network. Energy (MWh)
and CO2 (tonnes, for a grid intensity) are reported on both bases: they are physical, not prices.
The experiments multiplier turns the final run into a whole-program estimate (ablations, failed runs);
it is always reported apart from the final run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.errors import InputError, SpecError
from simulator.inputs.arguments import is_number
from simulator.inputs.specs import HardwareProfile
from simulator.units import HOURS_PER_YEAR, KILO, MAX_USD_PER_GPU_HOUR

BASES = ("rental", "tco")
ON_DEMAND = "on-demand"
"""The kind of every profile's default quote where the reference has one, so that GPUs priced by default compare
like with like (issue 13, item 7); a profile without an on-demand quote keeps its other kind, and tables flag it."""
RENTAL_KINDS = (ON_DEMAND, "reserved")


@dataclass(frozen=True)
class Default:
    """A default input with where it comes from."""

    value: float
    source: str


# Global TCO defaults. Per-GPU values (purchase price, server multipliers, TDP) live in the hardware profiles.
EPOCH = "Epoch AI training-cost-trends (github.com/epoch-research/training-cost-trends)"
DEFAULTS: dict[str, Default] = {
    "server_cost_multiplier": Default(1.64, f"{EPOCH}, hardware.py: server cost / chip cost 'return 1.64  # average'"),
    "interconnect_share": Default(0.19, f"{EPOCH}: CLUSTER_INTERCONNECT_COST_FRACTION = 0.19 of total cluster cost"),
    "lifetime_years": Default(5.0, f"{EPOCH}, get_server_lifetime: 5 years for servers bought in 2023 or later"),
    "fleet_utilization": Default(
        1.0, "assumption: the run is charged only for the hours it holds the GPUs (idle fleet time not spread onto it)"
    ),
    "server_power_multiplier": Default(1.8, f"{EPOCH}, energy.py: server power / GPU TDP, default for GPUs"),
    "average_power_fraction": Default(0.75, f"{EPOCH}, energy.py: average power / server TDP during training, 'return 0.75'"),
    "pue": Default(1.25, f"{EPOCH}, energy.py: PUE 1.25 for non-hyperscalers (1.1 hyperscalers; Uptime 2025 average 1.54)"),
    "usd_per_kwh": Default(0.0826, f"{EPOCH}, energy.py: US industrial electricity price, 2025"),
    "grid_kg_co2_per_kwh": Default(
        0.414,
        "derived from the Llama 3.1 model card (github.com/meta-llama/llama-models MODEL_CARD.md): 8,930 t CO2eq "
        "location-based for 30.84M H100-hours at 700 W, 8.93e6 kg / 21.6e6 kWh",
    ),
}

# Plausible ranges of user inputs: outside them the number is almost certainly a unit slip.
RANGES: dict[str, tuple[float, float, str]] = {
    "pue": (1.0, 3.0, "--pue"),
    "usd_per_kwh": (0.0, 2.0, "--usd-per-kwh"),
    "grid_kg_co2_per_kwh": (0.0, 2.0, "--grid-kg-co2-per-kwh"),
    "gpu_purchase_usd": (100.0, 1e6, "--gpu-purchase-usd"),
    "experiments_multiplier": (1.0, 100.0, "--experiments-multiplier"),
    "usd_per_gpu_hour": (0.0, MAX_USD_PER_GPU_HOUR, "--usd-per-gpu-hour"),
}


@dataclass(frozen=True)
class CostOptions:
    """What the user chose; None means the default (the profile's, or DEFAULTS)."""

    basis: str = "rental"
    usd_per_gpu_hour: float | None = None
    gpu_purchase_usd: float | None = None
    pue: float | None = None
    usd_per_kwh: float | None = None
    grid_kg_co2_per_kwh: float | None = None
    experiments_multiplier: float | None = None
    rental_kind: str | None = None
    """on-demand or reserved: which of the profile's quotes rental uses (None: the profile's default)."""

    def __post_init__(self) -> None:
        if self.rental_kind not in (None, *RENTAL_KINDS):
            raise InputError(f"--rental {self.rental_kind!r} is not a price kind; use on-demand or reserved")
        if self.basis not in BASES:
            raise InputError(f"--pricing {self.basis!r} is not a cost basis; use rental (a $/GPU-hour price) or tco")
        if self.usd_per_gpu_hour is not None and self.basis == "tco":
            raise InputError(
                f"--usd-per-gpu-hour {self.usd_per_gpu_hour:g} is a rental price, and --pricing tco prices the hour from "
                "the purchase price, power and energy instead; drop --usd-per-gpu-hour, or use --pricing rental"
            )
        if self.rental_kind is not None and (self.usd_per_gpu_hour is not None or self.basis == "tco"):
            other = f"--usd-per-gpu-hour {self.usd_per_gpu_hour:g}" if self.usd_per_gpu_hour is not None else "--pricing tco"
            raise InputError(
                f"--rental {self.rental_kind} picks one of the GPU profile's list prices, and {other} replaces them; "
                "give one of the two"
            )
        for name, (low, high, flag) in RANGES.items():
            value = getattr(self, name)
            if value is None:
                continue
            if not is_number(value):
                raise InputError(f"{flag} {value!r} must be a number from {low:g} to {high:g}")
            if name == "experiments_multiplier" and value < low:
                raise InputError(
                    f"{flag} {value:g} is below 1: it multiplies the final run into the whole program (ablations, "
                    "failed runs), so it is at least 1; typical values are 1.2-4"
                )
            if not low <= value <= high:
                raise InputError(f"{flag} {value:g} is out of range [{low:g}, {high:g}]; check the value and its unit")


@dataclass(frozen=True)
class Rate:
    """Dollars per GPU-hour split into named components, with the inputs used."""

    components_usd_per_gpu_hour: dict[str, float]
    source: str
    inputs: dict[str, dict] = field(default_factory=dict)
    kind: str = "given"
    """What kind of price: a profile quote's kind (on-demand, reserved, assumed), given (--usd-per-gpu-hour), quoted
    (a plan's own price) or tco (amortized capital and energy)."""
    date: str | None = None
    """YYYY-MM of a profile quote (None for the other kinds)."""

    @property
    def usd_per_gpu_hour(self) -> float:
        return sum(self.components_usd_per_gpu_hour.values())

    def quote(self, wanted_kind: str = ON_DEMAND) -> dict:
        """What a table shows beside the dollars: the price, its kind and date, and whether it is of the kind the
        run asked for (`wanted_kind`: --rental, default on-demand). A profile quote of another kind (H800's reserved
        $2, an assumed price) is `flagged`: its dollars do not compare like with like against the other GPUs'."""
        return {
            "usd_per_gpu_hour": self.usd_per_gpu_hour,
            "kind": self.kind,
            "date": self.date,
            "flagged": self.kind not in (wanted_kind, "given", "quoted", "tco"),
            "label": quote_label(self.kind, self.date),
        }


def quote_label(kind: str, date: str | None) -> str:
    """'on-demand 2026-01', 'reserved 2024-12', 'given': a price's kind and date in a few characters."""
    return kind if date is None else f"{kind} {date}"


def _sourced(value: float, source: str) -> dict:
    return {"value": value, "source": source}


def _profile_factor(hw: HardwareProfile, name: str) -> dict:
    factor = getattr(hw.tco, name) if hw.tco else None
    if factor is None:
        d = DEFAULTS[name]
        return _sourced(d.value, d.source)
    return _sourced(factor.value, f"profile {hw.name}: {hw.sources.get(factor.source, factor.source)}")


def _option(opts: CostOptions, name: str) -> dict:
    value = getattr(opts, name)
    if value is not None:
        return _sourced(value, f"--{name.replace('_', '-')}")
    d = DEFAULTS[name]
    return _sourced(d.value, d.source)


def rental_rate(usd_per_gpu_hour: float, source: str, kind: str = "quoted", date: str | None = None) -> Rate:
    """A rental price: a profile quote (its kind and date), a plan's own price (quoted) or a given one."""
    inputs = {"usd_per_gpu_hour": _sourced(usd_per_gpu_hour, source)}
    return Rate({"rental": usd_per_gpu_hour}, source, inputs, kind, date)


def chosen_rental_rate(hw: HardwareProfile, opts: CostOptions, quoted: Rate | None = None) -> Rate:
    """The rental price of a run, the first that applies: --usd-per-gpu-hour; a price quoted for the run
    (a plan's); the profile's quote of the --rental kind (its default quote when no kind is asked for)."""
    if opts.usd_per_gpu_hour is not None:
        return rental_rate(opts.usd_per_gpu_hour, "--usd-per-gpu-hour", "given")
    if quoted is not None:
        return quoted
    try:
        p = hw.price.quote(opts.rental_kind)
    except SpecError as e:
        raise SpecError(f"{hw.name}: {e}") from None
    source = f"{p.kind} price {p.date}, {hw.sources.get(p.source, p.source)}"
    return rental_rate(p.usd_per_gpu_hour, source, p.kind, p.date)


def price_held_fixed(opts: CostOptions) -> bool | str:
    """Whether an uncertainty band keeps the price as given rather than drawing it, and why when that is not a flag."""
    return "the TCO rate is held fixed" if opts.basis == "tco" else opts.usd_per_gpu_hour is not None


def purchase_price(hw: HardwareProfile, opts: CostOptions) -> dict:
    if opts.gpu_purchase_usd is not None:
        return _sourced(opts.gpu_purchase_usd, "--gpu-purchase-usd")
    if hw.purchase_usd is None:
        raise SpecError(
            f"--pricing tco needs a GPU purchase price and profile {hw.name} has none (no public price); "
            "pass --gpu-purchase-usd, or use --pricing rental"
        )
    return _sourced(hw.purchase_usd.value, f"profile {hw.name}: {hw.sources.get(hw.purchase_usd.source, hw.purchase_usd.source)}")


def energy_kwh_per_gpu_hour(hw: HardwareProfile, opts: CostOptions) -> tuple[float, dict]:
    """Facility energy per GPU-hour: the GPU's TDP scaled to its server's draw, average load and the PUE."""
    inputs = {
        "tdp_w": _sourced(hw.tdp_w.value, f"profile {hw.name}: {hw.sources.get(hw.tdp_w.source, hw.tdp_w.source)}"),
        "server_power_multiplier": _profile_factor(hw, "server_power_multiplier"),
        "average_power_fraction": _sourced(DEFAULTS["average_power_fraction"].value, DEFAULTS["average_power_fraction"].source),
        "pue": _option(opts, "pue"),
    }
    kwh = (
        inputs["tdp_w"]["value"]
        / KILO
        * inputs["server_power_multiplier"]["value"]
        * inputs["average_power_fraction"]["value"]
        * inputs["pue"]["value"]
    )
    return kwh, inputs


def tco_rate(hw: HardwareProfile, opts: CostOptions) -> Rate:
    """Amortized capital (GPU, rest of the server, network) plus energy, per GPU-hour."""
    price = purchase_price(hw, opts)
    server = _profile_factor(hw, "server_cost_multiplier")
    share = DEFAULTS["interconnect_share"]
    life = DEFAULTS["lifetime_years"]
    util = DEFAULTS["fleet_utilization"]
    hours = life.value * HOURS_PER_YEAR * util.value
    gpu_usd = price["value"]
    server_usd = gpu_usd * server["value"]
    cluster_usd = server_usd / (1.0 - share.value)  # the network is `share` of the whole cluster's cost
    kwh, energy_inputs = energy_kwh_per_gpu_hour(hw, opts)
    usd_per_kwh = _option(opts, "usd_per_kwh")
    components = {
        "gpus": gpu_usd / hours,
        "servers": (server_usd - gpu_usd) / hours,
        "network": (cluster_usd - server_usd) / hours,
        "energy": kwh * usd_per_kwh["value"],
    }
    inputs = {
        "gpu_purchase_usd": price,
        "server_cost_multiplier": server,
        "interconnect_share": _sourced(share.value, share.source),
        "lifetime_years": _sourced(life.value, life.source),
        "fleet_utilization": _sourced(util.value, util.source),
        **energy_inputs,
        "usd_per_kwh": usd_per_kwh,
    }
    source = (
        f"TCO: ${gpu_usd:,.0f} GPU x {server['value']:g} server / (1 - {share.value:g} network) over "
        f"{life.value:g} years, plus energy at ${usd_per_kwh['value']:g}/kWh, PUE {energy_inputs['pue']['value']:g}"
    )
    return Rate(components, source, inputs, "tco")


@dataclass(frozen=True)
class Pricing:
    """The price of a GPU-hour for one run, chosen once from the cost options: the rate on the chosen basis, the
    rental rate and (where the GPU has a purchase price) the TCO rate beside it, and the energy per GPU-hour.

    Everything that prices the run (estimate, plans, search, sweep, report) reads it from here, so the command
    line and the Python API give the same dollars for the same options."""

    basis: str
    rental: Rate
    tco: Rate | None
    kwh_per_gpu_hour: float
    energy_inputs: dict
    grid: dict
    experiments_multiplier: float | None = None
    rental_kind: str = ON_DEMAND
    """The kind of quote the run asked for (--rental; default on-demand): a quote of another kind is flagged."""

    @property
    def rate(self) -> Rate:
        """The rate on the chosen basis."""
        assert self.tco is not None or self.basis == "rental"
        return self.tco if self.basis == "tco" else self.rental  # type: ignore[return-value]

    @property
    def usd_per_gpu_hour(self) -> float:
        return self.rate.usd_per_gpu_hour

    @property
    def quote(self) -> dict:
        """The price's kind and date, and whether it is flagged (Rate.quote): what search, sweep and the report show."""
        return self.rate.quote(self.rental_kind)

    def cost_usd(self, gpu_hours):
        """Dollars of `gpu_hours` (a number or an array) on the chosen basis."""
        return gpu_hours * self.usd_per_gpu_hour

    def block(self, gpu_hours: float) -> dict:
        """The cost of `gpu_hours` on the chosen basis, with energy, CO2, the other basis and the program cost."""
        energy_kwh = gpu_hours * self.kwh_per_gpu_hour
        out = {
            "basis": self.basis,
            "cost_usd": self.cost_usd(gpu_hours),
            "usd_per_gpu_hour": self.usd_per_gpu_hour,
            "price_source": self.rate.source,
            "price_quote": self.quote,
            "components_usd": {k: gpu_hours * v for k, v in self.rate.components_usd_per_gpu_hour.items()},
            "rental_cost_usd": gpu_hours * self.rental.usd_per_gpu_hour,
            "tco_cost_usd": gpu_hours * self.tco.usd_per_gpu_hour if self.tco else None,
            "energy_mwh": energy_kwh / KILO,
            "co2_t": energy_kwh * self.grid["value"] / KILO,
            "inputs": {**self.rate.inputs, **self.energy_inputs, "grid_kg_co2_per_kwh": self.grid},
        }
        return with_program(out, gpu_hours, self.experiments_multiplier)


def pricing(hw: HardwareProfile, opts: CostOptions | None = None, quoted: Rate | None = None) -> Pricing:
    """Choose the price of a GPU-hour of `hw` once. `quoted`: a rental price quoted for the run (a plan's);
    chosen_rental_rate decides whether it applies."""
    opts = opts or CostOptions()
    rental = chosen_rental_rate(hw, opts, quoted)
    tco = tco_rate(hw, opts) if opts.basis == "tco" or _has_purchase_price(hw, opts) else None
    kwh_per_gpu_hour, energy_inputs = energy_kwh_per_gpu_hour(hw, opts)
    grid = _option(opts, "grid_kg_co2_per_kwh")
    kind = opts.rental_kind or ON_DEMAND
    return Pricing(opts.basis, rental, tco, kwh_per_gpu_hour, energy_inputs, grid, opts.experiments_multiplier, kind)


def cost_block(gpu_hours: float, hw: HardwareProfile, opts: CostOptions, quoted: Rate | None = None) -> dict:
    """The cost of `gpu_hours` on the chosen basis (Pricing.block of the price chosen for these options)."""
    return pricing(hw, opts, quoted).block(gpu_hours)


def _has_purchase_price(hw: HardwareProfile, opts: CostOptions) -> bool:
    return opts.gpu_purchase_usd is not None or hw.purchase_usd is not None


def with_program(block: dict, gpu_hours: float, multiplier: float | None) -> dict:
    """Add the whole-program figures (final run x multiplier), kept apart from the final run's."""
    if multiplier is None:
        return block
    return {
        **block,
        "experiments_multiplier": multiplier,
        "program_gpu_hours": gpu_hours * multiplier,
        "program_cost_usd": block["cost_usd"] * multiplier,
        "program_energy_mwh": block["energy_mwh"] * multiplier,
        "program_co2_t": block["co2_t"] * multiplier,
    }


def sum_blocks(blocks: list[dict], gpu_hours: float, multiplier: float | None) -> dict:
    """Total of per-stage cost blocks (stages may differ in GPU and price)."""
    components: dict[str, float] = {}
    for b in blocks:
        for k, v in b["components_usd"].items():
            components[k] = components.get(k, 0.0) + v
    tco = [b["tco_cost_usd"] for b in blocks]
    out = {
        "basis": blocks[0]["basis"],
        "cost_usd": sum(b["cost_usd"] for b in blocks),
        "usd_per_gpu_hour": sum(b["cost_usd"] for b in blocks) / gpu_hours,
        "price_source": "; ".join(dict.fromkeys(b["price_source"] for b in blocks)),
        "price_quote": _joint_quote([b["price_quote"] for b in blocks], sum(b["cost_usd"] for b in blocks) / gpu_hours),
        "components_usd": components,
        "rental_cost_usd": sum(b["rental_cost_usd"] for b in blocks),
        "tco_cost_usd": None if any(t is None for t in tco) else sum(tco),
        "energy_mwh": sum(b["energy_mwh"] for b in blocks),
        "co2_t": sum(b["co2_t"] for b in blocks),
        "inputs": {"grid_kg_co2_per_kwh": blocks[0]["inputs"]["grid_kg_co2_per_kwh"]},
    }
    return with_program(out, gpu_hours, multiplier)


def _joint_quote(quotes: list[dict], usd_per_gpu_hour: float) -> dict:
    """The quote of stages priced alike; else a mixed one at the blended price (`usd_per_gpu_hour`), flagged when any
    stage's quote is."""
    if all(q == quotes[0] for q in quotes):
        return quotes[0]
    labels = ", ".join(sorted({q["label"] for q in quotes}))
    flagged = any(q["flagged"] for q in quotes)
    return {"usd_per_gpu_hour": usd_per_gpu_hour, "kind": "mixed", "date": None, "flagged": flagged, "label": f"mixed: {labels}"}
