"""One money format for everything the report writes (text, tables and chart labels).

Three significant figures with the count suffix, trailing zeros kept: $4.74M, $5.00M, $12.4M, $618, $2.00.
A price per GPU-hour is money too and prints the same way ($2.00, $1.48).
"""

from __future__ import annotations

import math
import re

from simulator.units import GIGA, KILO, MEGA, PETA, TERA

_UNITS = (("P", PETA), ("T", TERA), ("B", GIGA), ("M", MEGA), ("K", KILO))

MONEY = re.compile(r"-?\$[0-9][0-9.,]*[KMBTP]?")
"""A dollar figure as it appears in text; every one in the report is what usd() writes (tests/test_report.py)."""


def usd(x: float) -> str:
    """Dollars in the report's one format: '$4.74M', '$5.00M', '$618', '$2.00'; negative as '-$1.20K'."""
    if not math.isfinite(x):
        raise ValueError(f"not a dollar amount: {x!r}")
    if x == 0:
        return "$0.00"
    sign = "-" if x < 0 else ""
    a = float(f"{abs(x):.3g}")  # rounded first, so 999.7K becomes 1.00M
    suffix, size = next(((s, z) for s, z in _UNITS if a >= z), ("", 1.0))
    v = a / size
    decimals = max(0, 2 - math.floor(math.log10(v) + 1e-12))
    return f"{sign}${v:.{decimals}f}{suffix}"


def is_usd(text: str) -> bool:
    """Whether `text` is a dollar figure exactly as usd() writes one ('$5M' and '$4,740,000' are not)."""
    m = re.fullmatch(r"(-?)\$([0-9]+(?:\.[0-9]+)?)([KMBTP]?)", text)
    if not m:
        return False
    value = (-1 if m.group(1) else 1) * float(m.group(2)) * dict(_UNITS).get(m.group(3), 1.0)
    return usd(value) == text
