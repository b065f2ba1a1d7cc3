"""`costsim claim --cheaper A B --ratio N`: a price claim 'A is N times cheaper than B' between two price sheets
(simulator/analysis/price_claim.py; docs/model.md §16.12). Called by `costsim claim` (cli/published.py)."""

from __future__ import annotations

import textwrap

from cli.options import Format, echo_result, fail

VERDICT_WIDTH = 110
"""Characters per line of the verdict under the table."""


def price_claim(
    cheaper: tuple[str, str] | None,
    gpu: str | None,
    usd_per_gpu_hour: float | None,
    format: Format,
    price_flags: dict,
    training: dict,
) -> None:
    """Run the price claim and print it; a training-claim flag, or a price flag without --cheaper, is one error."""
    from simulator import api
    from simulator.errors import CostsimError, InputError

    try:
        if cheaper is None:
            given = [k for k, v in price_flags.items() if v is not None]
            raise InputError(
                f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to a price claim; add --cheaper A B "
                "(two price-sheet ids), e.g. --cheaper deepseek-reasoner-2025 openai-o1-2025-01 --ratio 20-50"
            )
        flags = [x for x in cheaper if x.startswith("-")]
        if flags:
            raise InputError(
                f"--cheaper takes two price-sheet ids, A then B; it got {cheaper[0]!r} and {cheaper[1]!r}. Write e.g. "
                "--cheaper deepseek-reasoner-2025 openai-o1-2025-01 --ratio 20-50"
            )
        clash = [k for k, v in training.items() if v is not None]
        if clash:
            raise InputError(f"--cheaper checks a price claim; drop {', '.join(clash)} (the options of a training claim)")
        if price_flags["--ratio"] is None:
            raise InputError("--cheaper A B needs --ratio N, the claimed factor or range (e.g. --ratio 20-50)")
        result = api.price_claim(
            cheaper[0], cheaper[1], price_flags["--ratio"], mix=price_flags["--mix"],
            cache_hit_rate=price_flags["--cache-hit-rate"], gpu=gpu, a_model=price_flags["--a-model"],
            b_model=price_flags["--b-model"], usd_per_gpu_hour=usd_per_gpu_hour, workload=price_flags["--workload"],
        )  # fmt: skip
        d = result.to_dict()
    except CostsimError as e:
        fail(e)
    echo_result(format, d, result.rows(), lambda: price_claim_table(d))


def _usd(x: float | None) -> str:
    return "-" if x is None else f"${x:.3g}"


def _cost_cells(c: dict, kind: str) -> tuple[str, str]:
    from simulator.inputs.serving_cases import PRICE_KEYS

    if c["unknown_architecture"]:
        return "unknown", "-"
    if kind == "mix":
        return _usd(c["usd_per_million_mix"]), f"{c['margin']:+.0%}"
    return _usd(c[PRICE_KEYS[kind]]), f"{c['margin_by_kind'][kind]:+.0%}"


def price_claim_table(d: dict) -> str:
    from simulator.analysis.price_claim import KIND_LABELS, KINDS
    from simulator.report.tables import key_values, text_table

    a, b = d["sheets"]["a"], d["sheets"]["b"]
    mix = d["mix"]
    shares = ", ".join(f"{mix['shares'][k]:.1%} {KIND_LABELS[k]}" for k in KINDS)
    head = [
        ("claim", d["claim"]),
        ("A", f"{a['model']} ({a['provider']}, {a['date']}), {a['file']}, evidence {a['evidence']}"),
        ("B", f"{b['model']} ({b['provider']}, {b['date']}), {b['file']}, evidence {b['evidence']}"),
        ("token mix", f"{shares} ({mix['source']})"),
    ]
    if d["gpu"] is not None:
        head.append(("GPU", f"{d['gpu']} ({d['gpu_source']})"))
    for side, c in d["cost"].items():
        if not c["unknown_architecture"]:
            formats = sorted({lay["precision"] for lay in c["layouts"].values()})
            head.append((f"{side.upper()} serve", f"{c['serve_command']}  ({'/'.join(formats)} weights)"))
    cells = []
    for kind in (*KINDS, "mix"):
        price_a, price_b = a["list_usd_per_million"][kind], b["list_usd_per_million"][kind]
        cells.append((KIND_LABELS.get(kind, "at the mix"), _usd(price_a), _usd(price_b), f"{d['price_ratio'][kind]:.3g}x",
                      *_cost_cells(d["cost"]["a"], kind), *_cost_cells(d["cost"]["b"], kind)))  # fmt: skip
    columns = ("$/M tokens", "A list", "B list", "B/A price", "A cost", "A margin", "B cost", "B margin")
    lines = [key_values(head), "", text_table(columns, cells, align="lrrrrrrr"), ""]
    for part in (d["verdict_price"], d["verdict_cost"]):
        lines += textwrap.wrap(part, VERDICT_WIDTH) + [""]
    if all(c["unknown_architecture"] for c in d["cost"].values()):
        lines.append("cost: neither sheet names an architecture, so nothing is modelled (docs/model.md §16.12)")
    else:
        lines.append("cost: modelled by costsim serve (docs/model.md §16); margin = list price / cost - 1")
    return "\n".join(lines)
