"""Workload files: the request lengths a served model sees, as a distribution (`costsim serve --workload`).

A workload gives either a distribution of prompt lengths and one of output lengths, drawn independently:

    input_len:  {uniform: [820, 1024]}                  # every integer in the range equally likely
    output_len: {lognormal: {mean: 600, cv: 1.0, max: 8192}}   # cut at max, as an engine's max_tokens cuts it

(each one of `fixed: N`, `uniform: [low, high]`, `lognormal: {mean, cv, max}` or `histogram: [[length, share], ...]`),
or a list of request classes with their joint lengths:

    requests:
      - {input_len: 2000, output_len: 200, share: 0.7}
      - {input_len: 500, output_len: 1500, share: 0.3}

Shipped workloads live in workloads/ and are found by name, as plans are; simulator/model/serve/workload.py turns one
into the lengths the serving model takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Annotated

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from simulator.errors import SpecError
from simulator.inputs.data_files import data_dir, yaml_files
from simulator.inputs.files import is_dir, read_yaml, validate
from simulator.inputs.specs import prose

WORKLOAD_FOLDER = "workloads"
MAX_LEN = 10_000_000
"""Longest prompt or output, tokens (as --input-len and --output-len)."""
MIN_CV = 1e-3
"""Least coefficient of variation of a lognormal length: below it the lengths differ by under 0.1%, so give a fixed
length (and sd / mean rounds to 0 far below it, where the lognormal has no spread to compute with)."""
MAX_CV = 10.0
"""Largest coefficient of variation of a lognormal length: at 10 the median is a tenth of the mean, and the points
already sit mostly at the cap or near 1."""
MAX_HISTOGRAM_BINS = 50_000
"""Lengths one histogram may list (a trace's distinct lengths; each bin takes 3 YAML nodes of the 200,000 a file may
hold, files.MAX_YAML_NODES, so two histograms of this many bins still load)."""
MAX_REQUEST_CLASSES = 10_000
"""Request classes a workload may list (each takes about 7 YAML nodes of the 200,000 a file may hold)."""

Length = Annotated[int, Field(ge=1, le=MAX_LEN)]
MAX_SHARE = 1e12
"""Largest relative weight of a class or histogram bin (counts of requests in a trace fit)."""
Share = Annotated[float, Field(gt=0, le=MAX_SHARE)]
"""A share of requests: relative weights, normalized over the list (so 0.7/0.3 and 7/3 say the same)."""
Text = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(prose)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


@dataclass(frozen=True)
class Lengths:
    """Request classes with joint lengths: class i has `input_len[i]` prompt tokens and `output_len[i]` output tokens,
    and `weight[i]` of the requests (the weights sum to 1)."""

    input_len: np.ndarray
    output_len: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True)
class Marginal:
    """One length's distribution as the serving model uses it: its mean, its mean square and its longest value (exact
    for each form below; simulator/model/serve/workload.py), and points standing for it where a nonlinear term needs
    the whole distribution (a sliding window: workload.windowed_positions)."""

    mean: float
    mean_square: float
    longest: float
    points: tuple[np.ndarray, np.ndarray]
    """(lengths, weights): every length where there are at most WINDOW_POINTS, else WINDOW_POINTS quantile midpoints."""
    biased_points: tuple[np.ndarray, np.ndarray]
    """The same for the length-biased distribution (density in proportion to length x density): how an output length
    is seen by a batch slot, which each request holds for as many steps as it has output tokens."""


WINDOW_POINTS = 512
"""Points per length distribution for the sliding-window average. The average is of a function bounded by the window,
taken over prompts as they come and over outputs length-biased (Workload.points), so quantile midpoints of those
distributions put it within 0.5% of the exact integral even for a lognormal of cv 10 (tested), and two such
distributions make 262,144 pairs."""


def _length_biased(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = x * w
    return x, b / b.sum()


def _quantile_select(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WINDOW_POINTS quantile midpoints of stated lengths and weights (all of them when there are that few)."""
    if len(x) <= WINDOW_POINTS:
        return x, w / w.sum()
    order = np.argsort(x)
    cumulative = np.cumsum(w[order]) / w.sum()
    q = (np.arange(WINDOW_POINTS) + 0.5) / WINDOW_POINTS
    return x[order][np.minimum(np.searchsorted(cumulative, q), len(x) - 1)], np.full(WINDOW_POINTS, 1.0 / WINDOW_POINTS)


def _quantile_midpoints(inverse_cdf) -> tuple[np.ndarray, np.ndarray]:
    q = (np.arange(WINDOW_POINTS) + 0.5) / WINDOW_POINTS
    return np.array([inverse_cdf(float(p)) for p in q]), np.full(WINDOW_POINTS, 1.0 / WINDOW_POINTS)


# --------------------------------------------------------------------------- one length's distribution


def fixed_marginal(length: float) -> Marginal:
    one = (np.array([float(length)]), np.array([1.0]))
    return Marginal(float(length), float(length) ** 2, float(length), one, one)


def uniform_marginal(low: int, high: int) -> Marginal:
    """Every integer from `low` to `high` equally likely (the random datasets of the serving benchmarks): mean
    (low + high) / 2, mean square from the sums of squares 1^2 + ... + k^2 = k (k + 1) (2k + 1) / 6."""
    n = high - low + 1
    squares = (high * (high + 1) * (2 * high + 1) - (low - 1) * low * (2 * low - 1)) / 6
    if n <= WINDOW_POINTS:
        points = (np.arange(low, high + 1, dtype=float), np.full(n, 1.0 / n))
        biased = _length_biased(*points)
    else:  # continuous on [low - 1/2, high + 1/2]; length-biased, its CDF grows as x^2
        a, b = low - 0.5, high + 0.5
        points = _quantile_midpoints(lambda p: a + p * (b - a))
        biased = _quantile_midpoints(lambda p: math.sqrt(a * a + p * (b * b - a * a)))
    return Marginal((low + high) / 2, squares / n, float(high), points, biased)


def lognormal_marginal(mean: float, cv: float, cap: float) -> Marginal:
    """A lognormal of this mean and coefficient of variation (sd / mean) held between one token and `cap`: a length
    that would run past the cap stops there (an engine's max_tokens, a context limit), so the mean falls below `mean`
    where the cap binds, and a request has at least one token (a heavy tail's mass below one token counts as one).
    With sigma^2 = ln(1 + cv^2), mu = ln(mean) - sigma^2 / 2, Phi the standard normal CDF and z_k(x) =
    (ln x - mu - k sigma^2) / sigma, the partial moments of the lognormal give
    E[clip(X, 1, c)^k] = Phi(z_0(1)) + exp(k mu + k^2 sigma^2 / 2) (Phi(z_k(c)) - Phi(z_k(1))) + c^k (1 - Phi(z_0(c)))."""
    sigma2 = math.log1p(cv * cv)
    mu, sigma = math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)
    phi = NormalDist().cdf

    def z(x: float, k: int) -> float:
        return (math.log(x) - mu - k * sigma2) / sigma

    below_one, above = phi(z(1.0, 0)), 1.0 - phi(z(cap, 0))

    def moment(k: int) -> float:
        inside = math.exp(k * mu + k * k * sigma2 / 2.0) * (phi(z(cap, k)) - phi(z(1.0, k)))
        return below_one + inside + cap**k * above

    normal = NormalDist(mu, sigma)
    points = _quantile_midpoints(lambda p: min(max(math.exp(normal.inv_cdf(p)), 1.0), cap))
    # Length-biased, clip(X, 1, cap) has an atom at one token with that token's share of E[clip], the lognormal of
    # mu + sigma^2 between one token and the cap with the share of E[clip] that lies there, and an atom at the cap.
    m1 = moment(1)
    shifted = NormalDist(mu + sigma2, sigma)
    low_cdf, high_cdf = shifted.cdf(0.0), shifted.cdf(math.log(cap))
    one_share = below_one / m1
    inside_scale = math.exp(mu + sigma2 / 2.0) / m1
    inside_share = inside_scale * (high_cdf - low_cdf)

    def biased_quantile(p: float) -> float:
        if p < one_share:
            return 1.0
        if p < one_share + inside_share:
            return min(max(math.exp(shifted.inv_cdf(low_cdf + (p - one_share) / inside_scale)), 1.0), cap)
        return cap

    return Marginal(m1, moment(2), float(cap), points, _quantile_midpoints(biased_quantile))


def histogram_marginal(lengths, shares) -> Marginal:
    """Stated lengths with their shares of requests (normalized to sum to 1)."""
    x, w = np.asarray(lengths, dtype=float), np.asarray(shares, dtype=float)
    w = w / w.sum()
    return Marginal(
        float(w @ x), float(w @ (x * x)), float(x.max()), _quantile_select(x, w), _quantile_select(*_length_biased(x, w))
    )


class _Schema(BaseModel):
    # strict: a length is an integer (not "1024" or 1024.5); no number is inf or NaN
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class LogNormal(_Schema):
    mean: Annotated[float, Field(ge=1, le=MAX_LEN)]
    """Mean length before the cut, tokens."""
    cv: Annotated[float, Field(ge=MIN_CV, le=MAX_CV)]
    """Standard deviation over mean."""
    max: Length
    """Where lengths stop (an engine's max_tokens or the context limit): longer draws count as this length."""

    @model_validator(mode="after")
    def _cap_above_mean(self) -> LogNormal:
        if self.max < self.mean:
            raise ValueError(
                f"max {self.max:,} is below the mean {self.mean:g}: most draws would sit at the cap; give a max above the "
                "mean (the length an engine stops at), or a fixed length"
            )
        return self


class LengthDistribution(_Schema):
    """One length's distribution: exactly one of the four forms."""

    fixed: Length | None = None
    uniform: Annotated[list[Length], Field(min_length=2, max_length=2)] | None = None
    """[low, high]: every integer between them, both included, equally likely."""
    lognormal: LogNormal | None = None
    histogram: Annotated[list[Annotated[list[float], Field(min_length=2, max_length=2)]],
                         Field(min_length=1, max_length=MAX_HISTOGRAM_BINS)] | None = None  # fmt: skip
    """[[length, share], ...]: the lengths seen and their shares of requests."""

    @model_validator(mode="after")
    def _one_form(self) -> LengthDistribution:
        given = [k for k in ("fixed", "uniform", "lognormal", "histogram") if getattr(self, k) is not None]
        if len(given) != 1:
            what = "none" if not given else " and ".join(given)
            raise ValueError(
                f"gives {what}; give exactly one of fixed: N, uniform: [low, high], lognormal: {{mean, cv, max}} or "
                "histogram: [[length, share], ...]"
            )
        if self.uniform is not None and self.uniform[0] > self.uniform[1]:
            raise ValueError(f"uniform [{self.uniform[0]:,}, {self.uniform[1]:,}] has low above high; give [low, high]")
        for length, share in self.histogram or []:
            if length != int(length) or not 1 <= length <= MAX_LEN:
                raise ValueError(f"histogram length {length:g} must be a whole number of tokens from 1 to {MAX_LEN:,}")
            if not 0 < share <= MAX_SHARE:
                raise ValueError(f"histogram share {share:g} (length {length:g}) must be above 0; drop lengths never seen")
        return self

    def marginal(self) -> Marginal:
        if self.fixed is not None:
            return fixed_marginal(self.fixed)
        if self.uniform is not None:
            return uniform_marginal(*self.uniform)
        if self.lognormal is not None:
            return lognormal_marginal(self.lognormal.mean, self.lognormal.cv, self.lognormal.max)
        return histogram_marginal([b[0] for b in self.histogram], [b[1] for b in self.histogram])


class RequestClass(_Schema):
    input_len: Length
    output_len: Length
    share: Share


class Workload(_Schema):
    name: Name
    display_name: Text | None = None
    source: Text
    """Where the lengths come from: a benchmark's definition, a trace, or 'assumption: ...'."""
    quote: Text | None = None
    notes: Text | None = None
    input_len: LengthDistribution | None = None
    output_len: LengthDistribution | None = None
    requests: Annotated[list[RequestClass], Field(min_length=1, max_length=MAX_REQUEST_CLASSES)] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> Workload:
        marginals = self.input_len is not None or self.output_len is not None
        if self.requests is not None and marginals:
            raise ValueError(
                "gives requests and input_len/output_len; give request classes (joint lengths) or the two length "
                "distributions, not both"
            )
        if self.requests is None and (self.input_len is None or self.output_len is None):
            missing = " and ".join(k for k in ("input_len", "output_len") if getattr(self, k) is None)
            raise ValueError(f"no {missing}; give both input_len and output_len distributions, or a requests list")
        return self

    def points(self) -> Lengths:
        """Points standing for the whole distribution (the classes, or every pair of the two marginals' points), for
        the terms that are not linear in the lengths (workload.windowed_positions)."""
        d = self.lengths()
        if isinstance(d, Lengths):
            return d
        # Outputs as a batch slot sees them (length-biased), weighted back by 1 / length so that the slot averages of
        # windowed_positions, E[O g] / E[O], come out as the length-biased means of g they are.
        (i, wi), (o, wb) = d[0].points, d[1].biased_points
        ii, oo = np.meshgrid(i, o, indexing="ij")
        return Lengths(ii.ravel(), oo.ravel(), np.outer(wi, wb / o).ravel())

    def lengths(self) -> Lengths | tuple[Marginal, Marginal]:
        """The request classes (joint lengths), or the prompt and output distributions (independent)."""
        if self.requests is not None:
            r = self.requests
            w = np.array([c.share for c in r], dtype=float)
            return Lengths(np.array([c.input_len for c in r], dtype=float), np.array([c.output_len for c in r], dtype=float),
                           w / w.sum())  # fmt: skip
        return self.input_len.marginal(), self.output_len.marginal()


# --------------------------------------------------------------------------- loading


def workload_dir() -> Path:
    return data_dir(WORKLOAD_FOLDER)


def workload_ids() -> dict[str, Path]:
    return yaml_files(workload_dir())


def load_workload_file(path: Path) -> Workload:
    if is_dir(path):
        raise SpecError(f"{path}: is a directory; pass a workload YAML file")
    return validate(read_yaml(path), Workload, path)


def load_workload(workload: str | Path) -> tuple[Workload, str]:
    """A shipped workload by name, or a path to a workload YAML (a .yaml/.yml name or one with a folder in it is a
    path). Returns it and how to name it: the shipped name, or the path as given."""
    text = str(workload)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or "/" in text or is_dir(path):
        return load_workload_file(path), text
    ids = workload_ids()
    key = text.strip().lower()
    if key not in ids:
        shipped = ", ".join(ids) or "none"
        raise SpecError(
            f"unknown workload {text[:200]!r}; shipped workloads: {shipped}. Pass one of these names or a workload YAML "
            "path (ending .yaml)"
        )
    return load_workload_file(ids[key]), key
