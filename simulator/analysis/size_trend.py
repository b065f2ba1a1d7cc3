"""Does costsim's error drift with model size? The trend of log(1 + error) against log(parameters) over a family of
steady-state rows measured on one stack (the llm-foundry MPT benchmark, issue 11: "llm-foundry rows with no size
trend"), raw and with the row's own settings held fixed.

- raw: Pearson r of log(1 + error) against log(parameters), the least-squares slope per e-fold of parameters with its
  standard error, and a two-sided permutation p-value (the share of shuffles of the errors whose |r| reaches the
  observed |r|; exact for exchangeable errors of any shape, unlike the t-test's normal errors). A trend "remains"
  while p < TREND_ALPHA.
- partial: the same after regressing both sides on the row's settings that change the step's makeup but are not
  size: full activation recomputation (checkpointed rows are the large models in these tables), log GPU count (FSDP
  collectives grow with the group) and the GPU type. The partial slope says whether size itself carries the
  trend or the settings that come with size do (Frisch-Waugh-Lovell: the slope of residuals on residuals is the
  size coefficient of the full regression). Its p-value is Freedman and Lane's permutation test (1983): shuffle the
  errors' residuals on the controls, take the controls out again, correlate with the residual sizes. Shuffling the
  residual sizes against fixed residual errors instead rejects too often (about 8% at 5% on these 25 rows' design).

The permutation uses a fixed seed, so the report is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

TREND_ALPHA = 0.05
"""Significance level below which a size trend counts as present (two-sided)."""
PERMUTATIONS = 20_000
"""Shuffles of the permutation test: the p-value's Monte Carlo standard error, sqrt(p(1-p)/N), is 0.0015 at p = 0.05
and 0.0035 at most."""
SEED = 20231003
"""Fixed so that `validate public` reports the same p-value on every run."""


@dataclass(frozen=True)
class Trend:
    n: int
    pearson_r: float
    slope_per_e_fold: float
    """d log(1 + error) / d log(parameters): about the change in error per e-fold (2.7x) of model size."""
    slope_standard_error: float
    p_value: float
    """Two-sided permutation p-value of r."""

    @property
    def present(self) -> bool:
        return self.p_value < TREND_ALPHA

    def to_dict(self) -> dict:
        return asdict(self) | {"trend_present": self.present}


def settings(num_gpus, gpus, recompute_full=None) -> tuple[np.ndarray, list[str]]:
    """(controls, their names) of rows' settings that change a step's makeup but are not model size: full
    recomputation (when given), log GPU count and the GPU type (one indicator per type beyond the first, sorted)."""
    types = sorted(set(gpus))[1:]
    columns = [] if recompute_full is None else [("full recomputation", [float(f) for f in recompute_full])]
    columns += [("log GPU count", [math.log(n) for n in num_gpus])]
    columns += [(f"GPU {t}", [float(g == t) for g in gpus]) for t in types]
    return np.column_stack([c for _, c in columns]), [name for name, _ in columns]


def _design(n: int, controls: np.ndarray | None) -> np.ndarray:
    """An intercept column and the controls (rows x columns), if any."""
    if controls is None or not np.size(controls):
        return np.ones((n, 1))
    return np.column_stack([np.ones(n), np.asarray(controls, dtype=float)])


def residualize(values: np.ndarray, controls: np.ndarray | None) -> np.ndarray:
    """`values` (or each row of a 2-D array of them) less their least-squares fit on an intercept and `controls`
    (rows x columns); centred when None."""
    v = np.asarray(values, dtype=float)
    design = _design(v.shape[-1], controls)
    coef, *_ = np.linalg.lstsq(design, v.T, rcond=None)
    return v - (design @ coef).T


def trend(log_sizes, log_errors, controls: np.ndarray | None = None, permutations: int = PERMUTATIONS) -> Trend:
    """The trend of `log_errors` on `log_sizes` with `controls` (rows x columns, or None) held fixed.

    Degrees of freedom for the slope's standard error: n - 2 - the rank of the controls (the intercept, the slope
    and each control column that is not a combination of the others)."""
    x_raw = np.asarray(log_sizes, dtype=float)
    y_raw = np.asarray(log_errors, dtype=float)
    n = len(x_raw)
    if n != len(y_raw) or n < 3:
        raise ValueError(f"a trend needs at least 3 paired rows, got {n} sizes and {len(y_raw)} errors")
    x, y = residualize(x_raw, controls), residualize(y_raw, controls)
    sxx, syy = float(x @ x), float(y @ y)
    # Relative to the raw spread: what the controls leave of a constant is rounding, not variation.
    if sxx <= 1e-18 * max(float(x_raw @ x_raw), 1e-300) or syy <= 1e-18 * max(float(y_raw @ y_raw), 1e-300):
        raise ValueError("a trend needs sizes and errors that vary once the controls are held fixed")
    r = float(x @ y / math.sqrt(sxx * syy))
    slope = float(x @ y / sxx)
    rank = int(np.linalg.matrix_rank(_design(n, controls))) - 1  # control columns beyond the intercept
    dof = n - 2 - rank
    if dof < 1:
        raise ValueError(f"{n} rows leave no degree of freedom after {rank} controls")
    resid = y - slope * x
    se = math.sqrt(float(resid @ resid) / dof / sxx)
    rng = np.random.default_rng(SEED)
    shuffled = np.array([rng.permutation(y) for _ in range(permutations)])
    p = permutation_p_value(x, shuffled, controls, r)
    return Trend(n, r, slope, se, p)


def permutation_p_value(x_resid: np.ndarray, y_shuffles: np.ndarray, controls: np.ndarray | None, r: float) -> float:
    """Two-sided p-value of the (partial) correlation `r` of residual sizes `x_resid` with the errors, from shuffles of
    the errors' residuals on the controls (rows of `y_shuffles`): each shuffle has the controls taken out again
    (Freedman-Lane; without controls, a shuffle of the centred errors). The observed arrangement counts as one of the
    permutations, so p is never 0."""
    resid = residualize(y_shuffles, controls)
    norms = np.sqrt(np.einsum("ij,ij->i", resid, resid) * float(x_resid @ x_resid))
    r_perm = resid @ x_resid / np.where(norms > 0, norms, np.inf)
    return (1 + int(np.sum(np.abs(r_perm) >= abs(r) - 1e-12))) / (len(y_shuffles) + 1)
