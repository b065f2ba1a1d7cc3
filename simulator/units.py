"""Unit constants and formatting. The only module where unit literals may appear.

Inside costsim every dimensional value is in SI base units with the unit in its name
(`_bytes`, `_s`, `_flops`, `_flop_per_s`, `_usd`). Conversion happens where data is read
(the input schemas, which hold datasheet units such as GiB and GB/s) and where results are shown
(the report, the command line, and the to_dict of a result record). The accounting units of the trade
are kept as they are quoted, each named with its unit: GPU-hours (`gpu_hours`, computed from seconds in one
place, inputs.job.Job.gpu_hours), dollars per GPU-hour, and electricity in kWh. tests/test_units.py enforces
both rules: no unit factor as a literal outside this module, no non-SI name in model/, run/ and analysis/.
"""

import math
import re
from typing import Final

# Decimal (datasheet) prefixes: GB, TB/s, TFLOP/s.
KILO: Final = 1e3
MEGA: Final = 1e6
GIGA: Final = 1e9
TERA: Final = 1e12
PETA: Final = 1e15

MILLI: Final = 1e-3
MICRO: Final = 1e-6

# Binary prefixes: memory capacity as drivers report it (GiB), and power-of-two counts (4 Mi tokens).
KIB: Final = 2**10
MIB: Final = 2**20
GIB: Final = 2**30
MEBI: Final = 2**20
"""A binary million of things that are not bytes (Llama's 4M-token batch is 4 x 2^20 tokens)."""

BITS_PER_BYTE: Final = 8
SECONDS_PER_MINUTE: Final = 60.0
SECONDS_PER_HOUR: Final = 3600.0
SECONDS_PER_DAY: Final = 86_400.0
HOURS_PER_YEAR: Final = 8766.0  # 365.25 days

# Bytes per element of each numeric format.
NVFP4_BYTES_PER_ELEMENT: Final = 0.5 + 1.0 / 16
"""An NVFP4 element: 4-bit E2M1 with one FP8 (E4M3) scale per block of 16 elements (TensorRT Model Optimizer
modelopt/torch/quantization/config.py, NVFP4_DEFAULT_CFG: num_bits (2, 1), block_sizes {-1: 16, scale_bits (4, 3)});
the one FP32 scale per tensor is negligible. Weights and GEMM inputs alike (W4A4)."""
BYTES_PER_ELEMENT: Final = {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp4": NVFP4_BYTES_PER_ELEMENT}
BLOCK_FP8_BYTES_PER_ELEMENT: Final = BYTES_PER_ELEMENT["fp8"] + BYTES_PER_ELEMENT["fp32"] / 128
"""An FP8 element with its share of a 1x128 fp32 scale (DeepSeek-V3 §3.3: cached GEMM inputs and dispatch)."""
DROPOUT_BYTES_PER_ELEMENT: Final = 5.0
"""Dropout in HBM per element: read and write the BF16 values (2 + 2 B) and a 1-byte mask (assumption, docs/model.md §7.5-7.6)."""

_SUFFIXES: Final = {"K": KILO, "M": MEGA, "B": GIGA, "G": GIGA, "T": TERA, "P": PETA}


class MisplacedCommaError(ValueError):
    """A count whose comma does not group thousands (a decimal comma): the reason is worth more than 'not a number'."""


THOUSANDS_GROUPED: Final = re.compile(r"^[+-]?[1-9]\d{0,2}(,\d{3})+(\.\d*)?$")
"""A count whose commas group its thousands: '62,914,560', '1,024'. Not with a suffix: '2,788M' is 2.788M in a decimal-
comma locale and 2,788M in another."""


def parse_count(text: str) -> float:
    """Parse '14.8T', '300B', '2.788M', '1.5e12' or '62914560' into a number.

    B and G both mean 1e9 (billions of tokens); raises ValueError on anything else. Commas group thousands only
    ('4,194,304'): a decimal comma ('14,8T') would read as 148T, so it is refused.
    """
    s = str(text).strip().replace("_", "")
    if "," in s:
        if not THOUSANDS_GROUPED.match(s):
            raise MisplacedCommaError(
                "commas group a plain number's thousands only (4,194,304); write a decimal point (14.8T) or the whole "
                "number (2788000)"
            )
        s = s.replace(",", "")
    if not s:
        raise ValueError("empty number")
    mult = 1.0
    if s[-1].upper() in _SUFFIXES:
        mult = _SUFFIXES[s[-1].upper()]
        s = s[:-1]
    return float(s) * mult


# Plausible ranges of counts a person types: outside them the number is almost certainly a slip of the suffix.
TOKENS_RANGE: Final = (1.0, 1e17)
"""Tokens and tokens per batch."""
GPU_HOURS_RANGE: Final = (1e-3, 1e12)
"""Claimed GPU-hours."""
MAX_GPUS: Final = 1_000_000
"""The largest cluster: no GPU count, parallel degree or micro-batch may exceed it."""
COUNT_EXAMPLES: Final = "14.8T, 300B, 2.788M or 1.5e12"
MIN_USD_PER_GPU_HOUR: Final = 0.01
"""Least price a file may quote above zero: a cent per GPU-hour (the cheapest rentals are tens of cents); a price of
1e-300 gave a fleet margin of 300 digits."""
MAX_USD_PER_GPU_HOUR: Final = 1000.0
"""No accelerator rents for more per hour; a larger price is a typo (the priciest quotes are tens of dollars)."""
DEFAULT_DRAWS: Final = 10_000
"""Joint draws of an uncertainty band: enough for stable P10/P90, and under a second with the surrogate."""


def count_in_range(value: object, low: float, high: float, *, low_open: bool = False) -> float:
    """`value` (a number, or text such as '14.8T') as a finite float in [low, high], or (low, high] with `low_open`.

    The one parse-and-range check behind every count a user gives (command line, notebook, plan and
    dataset YAML). Raises ValueError whose message starts with the value and ends with a fix; callers put
    the field's name in front and re-raise as their own error type.
    """
    try:
        if isinstance(value, bool):  # True is an int to Python, never a count to a person
            raise ValueError
        x = float(value) if isinstance(value, int | float) else parse_count(str(value))
    except MisplacedCommaError as e:  # say why, not only that it is not a number
        raise ValueError(f"{value!r} is not a number: {e}") from None
    except ValueError:
        raise ValueError(f"{value!r} is not a number; write e.g. {COUNT_EXAMPLES}") from None
    above_low = x > low if low_open else x >= low
    if not (above_low and x <= high and math.isfinite(x)):
        shown = repr(value) if isinstance(value, int | float) else f"{value!r} = {x:.4g}"
        bounds = f"{'(' if low_open else '['}{low:.4g}, {high:.4g}]"
        raise ValueError(f"{shown} is out of range {bounds}; check the value and its suffix")
    return x


def gib(n_bytes: float) -> float:
    return n_bytes / GIB


def format_bytes(n_bytes: float) -> str:
    """Binary units for memory, e.g. 85.9e9 -> '80.0 GiB'."""
    for unit, size in (("TiB", 2**40), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(n_bytes) >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes:.0f} B"


def format_rate(x: float) -> str:
    """A throughput for a table: whole numbers with separators from 100 up (12,345), three significant figures below
    (a model far too large for its GPUs gives 0.000123 tokens/s, which ',.0f' printed as 0)."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def counted(n: float, noun: str, plural: str | None = None) -> str:
    """'1 sequence', '2 sequences', '0.5 sequences': a count and its noun, singular only for exactly one."""
    return f"{n:,g} {noun if n == 1 else plural or noun + 's'}"


def format_count(x: float) -> str:
    """Human count: 2.66e6 -> '2.66M'."""
    for unit, size in (("P", PETA), ("T", TERA), ("B", GIGA), ("M", MEGA), ("K", KILO)):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}"


def share_text(x: float) -> str:
    """A share as a percentage with as many decimals as it needs to read true: 56%, 99.9%, 99.99% (':.0%' printed a
    99.9% cache-hit rate as 100%, which serve refuses); 0% and 100% only for exactly 0 and 1."""
    for decimals in range(0, 4):
        text = f"{x:.{decimals}%}"
        if (text not in ("100%", f"100.{'0' * decimals}%") or x == 1.0) and (float(text[:-1]) != 0 or x == 0.0):
            return text
    return f"{x:.4%}"
