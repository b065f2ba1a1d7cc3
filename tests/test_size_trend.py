"""analysis.size_trend: the trend of log(1 + error) against log(model size), raw and with row settings held fixed,
with a permutation p-value (issue 11: "llm-foundry rows with no size trend")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.analysis.size_trend import PERMUTATIONS, TREND_ALPHA, residualize, trend

X = np.log(np.array([125e6, 350e6, 760e6, 1.3e9, 2.7e9, 6.7e9, 13e9, 30e9, 70e9]))
WIGGLE = np.array([0.004, -0.006, 0.002, 0.005, -0.003, -0.004, 0.006, -0.002, -0.002])


def test_slope_r_and_standard_error_are_those_of_least_squares():
    y = 0.01 - 0.02 * (X - X.mean()) + WIGGLE
    t = trend(X, y)
    slope, intercept = np.polyfit(X, y, 1)
    resid = y - (slope * X + intercept)
    sxx = float(((X - X.mean()) ** 2).sum())
    assert t.n == 9
    assert t.slope_per_e_fold == pytest.approx(slope, rel=1e-12)
    assert t.pearson_r == pytest.approx(np.corrcoef(X, y)[0, 1], rel=1e-12)
    # Standard error of the slope with n - 2 degrees of freedom.
    assert t.slope_standard_error == pytest.approx(math.sqrt(float(resid @ resid) / (9 - 2) / sxx), rel=1e-12)


def test_a_strong_trend_has_the_smallest_p_value_and_none_has_a_large_one():
    strong = trend(X, -0.02 * X)  # perfectly ordered: no shuffle does better
    assert strong.p_value == pytest.approx(1 / (PERMUTATIONS + 1))
    assert strong.present and strong.pearson_r == pytest.approx(-1.0)
    # Errors that alternate in sign along the size order: r near 0, p near 1.
    flat = trend(X, np.array([0.01, -0.01, 0.01, -0.01, 0.0, 0.01, -0.01, 0.01, -0.01]))
    assert abs(flat.pearson_r) < 0.25 and flat.p_value > 0.5 and not flat.present
    assert TREND_ALPHA == 0.05


def test_the_p_value_is_deterministic_and_matches_the_t_test_where_errors_are_normal():
    rng = np.random.default_rng(7)
    x = np.linspace(0, 5, 40)
    y = 0.01 * x + rng.normal(0, 0.05, 40)
    a, b = trend(x, y), trend(x, y)
    assert a == b
    # With normal errors the permutation p-value is close to the t-test's; the t-test's two-sided p of this sample
    # (t = slope / se, 38 degrees of freedom) is computed here by numerical integration of the t density.
    t_stat = a.slope_per_e_fold / a.slope_standard_error
    grid = np.linspace(abs(t_stat), 60, 200_001)
    dof = 38
    density = (
        math.gamma((dof + 1) / 2) / (math.sqrt(dof * math.pi) * math.gamma(dof / 2)) * (1 + grid**2 / dof) ** (-(dof + 1) / 2)
    )
    p_t = 2 * float(np.trapezoid(density, grid))
    assert a.p_value == pytest.approx(p_t, abs=0.02)


def test_holding_a_confounding_setting_fixed_removes_a_trend_it_carries():
    """Errors that depend only on a setting that comes with size (checkpointing of the large models) show a raw trend
    and none once the setting is held fixed."""
    checkpointed = (X > np.log(5e9)).astype(float)
    y = -0.06 * checkpointed + WIGGLE
    raw = trend(X, y)
    partial = trend(X, y, checkpointed[:, None])
    assert raw.present and raw.slope_per_e_fold < -0.01
    assert not partial.present and abs(partial.slope_per_e_fold) < 0.005
    # Frisch-Waugh-Lovell: the partial slope is the size coefficient of the regression on size and the setting.
    design = np.column_stack([np.ones(9), X, checkpointed])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    assert partial.slope_per_e_fold == pytest.approx(coef[1], rel=1e-9, abs=1e-12)


def test_partial_statistics_are_those_of_the_full_regression():
    """With controls: the slope, its standard error (n - 2 - rank degrees of freedom) and r are the size coefficient
    of the regression on size and the controls, its standard error, and the correlation of the two residuals."""
    rng = np.random.default_rng(3)
    controls = np.column_stack([(X > np.log(5e9)).astype(float), rng.normal(size=9)])
    y = -0.01 * X + 0.03 * controls[:, 0] + WIGGLE
    t = trend(X, y, controls)
    design = np.column_stack([np.ones(9), X, controls])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    cov = float(resid @ resid) / (9 - 4) * np.linalg.inv(design.T @ design)
    assert t.slope_per_e_fold == pytest.approx(coef[1], rel=1e-9)
    assert t.slope_standard_error == pytest.approx(math.sqrt(cov[1, 1]), rel=1e-9)
    rx, ry = residualize(X, controls), residualize(y, controls)
    assert t.pearson_r == pytest.approx(np.corrcoef(rx, ry)[0, 1], rel=1e-9)


def _exact_p(x, y, controls):
    """Every permutation of 7 rows: the Freedman-Lane p-value without Monte Carlo error."""
    import itertools

    from simulator.analysis.size_trend import permutation_p_value

    rx, ry = residualize(x, controls), residualize(y, controls)
    r = float(rx @ ry / math.sqrt(float(rx @ rx) * float(ry @ ry)))
    perms = np.array([ry[list(p)] for p in itertools.permutations(range(len(ry)))])
    # permutation_p_value counts the observed arrangement once more: (1 + hits) / (N + 1) over all N permutations.
    p_with_observed = permutation_p_value(rx, perms, controls, r)
    return (p_with_observed * (len(perms) + 1) - 1) / len(perms)


@pytest.mark.parametrize(
    ("y", "with_controls", "exact"),
    [
        ([0.02, 0.015, -0.004, 0.006, -0.012, -0.01, -0.021], False, 0.0036),
        ([0.0191, -0.0015, -0.0102, 0.004, 0.0078, -0.0195, -0.0011], True, 0.1278),
    ],
)
def test_the_monte_carlo_p_value_matches_the_exact_permutation_test(y, with_controls, exact):
    """At 7 rows all 5,040 permutations give the exact Freedman-Lane p-value. The second case is one where shuffling
    the residual sizes against fixed residual errors (the shortcut that rejects too often) gives 0.087 instead."""
    x = X[:7]
    y = np.array(y)
    controls = np.array([[0], [0], [0], [1], [1], [1], [1]], dtype=float) if with_controls else None
    assert _exact_p(x, y, controls) == pytest.approx(exact, abs=5e-5)
    assert trend(x, y, controls).p_value == pytest.approx(exact, abs=0.012)  # about 4 Monte Carlo standard errors


def test_residualize_removes_the_intercept_and_the_controls():
    c = np.column_stack([X**2])
    r = residualize(3.0 + 2.0 * X**2, c)
    assert np.allclose(r, 0.0, atol=1e-9)
    assert residualize(np.array([1.0, 2.0, 3.0]), None) == pytest.approx([-1.0, 0.0, 1.0])


@pytest.mark.parametrize(
    ("sizes", "errors", "controls", "message"),
    [
        ([1.0, 2.0], [0.1, 0.2], None, "at least 3"),
        ([1.0, 2.0, 3.0], [0.1, 0.2], None, "at least 3"),
        ([1.0, 1.0, 1.0], [0.1, 0.2, 0.3], None, "vary"),
        ([1.0, 2.0, 3.0], [0.1, 0.1, 0.1], None, "vary"),
        ([1.0, 2.0, 3.0], [0.1, 0.3, 0.2], np.array([[0.0], [1.0], [0.0]]), "degree of freedom"),
    ],
)
def test_too_few_or_constant_rows_are_refused(sizes, errors, controls, message):
    with pytest.raises(ValueError, match=message):
        trend(sizes, errors, controls)


def test_settings_are_recomputation_log_gpu_count_and_one_indicator_per_extra_gpu_type():
    from simulator.analysis.size_trend import settings

    controls, names = settings([8, 64, 128], ["h100-sxm", "a100-40gb", "a100-80gb"], [True, False, True])
    assert names == ["full recomputation", "log GPU count", "GPU a100-80gb", "GPU h100-sxm"]
    assert controls.tolist() == [[1.0, math.log(8), 0.0, 1.0], [0.0, math.log(64), 0.0, 0.0], [1.0, math.log(128), 1.0, 0.0]]
    without, names = settings([8, 16], ["b200", "b200"])
    assert names == ["log GPU count"] and without.shape == (2, 1)
