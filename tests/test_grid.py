"""Grid quadrature: the trapezoid weights, bounds chosen from the integrand, size guards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal, Normal

from vitoolkit.divergences import (
    alpha_divergence,
    default_bounds,
    grid_divergence,
    kl_divergence,
    make_grid,
    renyi_divergence,
)
from vitoolkit.exceptions import ResourceLimitError

D = torch.float64


def normal(m, s):
    return Normal(torch.tensor(m, dtype=D), torch.tensor(s, dtype=D))


@pytest.mark.parametrize("bounds", [[(-1.0, 2.0)], [(-1.0, 2.0), (0.5, 3.0)]])
def test_log_weights_reproduce_integrate_and_numpy_trapezoid(bounds):
    grid = make_grid(bounds, 9)
    values = torch.randn(grid.shape, dtype=D, generator=torch.Generator().manual_seed(0))
    by_weights = (grid.log_weights().exp() * values.reshape(-1)).sum()
    torch.testing.assert_close(by_weights, grid.integrate(values), rtol=1e-14, atol=1e-14)
    expected = values.numpy()
    for axis in reversed(grid.axes):
        expected = np.trapezoid(expected, axis.numpy(), axis=-1)
    assert float(by_weights) == pytest.approx(float(expected), rel=1e-13)
    assert grid.log_weights().shape == (math.prod(grid.shape),)


# Gaussian pairs whose geometric mean p^alpha q^(1-alpha) is centred outside +/- 10 sd of p
# and q or much wider than both (alpha outside (0, 1)), and two inside.
CASES = [
    (-2.0, (0.0, 1.0), (1.0, 1.15)),
    (-0.5, (0.0, 1.0), (1.0, 1.6)),
    (0.5, (0.0, 1.0), (3.0, 0.4)),
    (1.5, (0.0, 1.0), (1.0, 0.75)),
    (3.0, (0.0, 1.0), (1.0, 0.85)),
]


@pytest.mark.parametrize("alpha, pp, qq", CASES)
def test_grid_alpha_and_renyi_match_the_closed_form_where_moment_bounds_cut_the_integrand(alpha, pp, qq):
    p, q = normal(*pp), normal(*qq)
    exact_a = float(alpha_divergence(p, q, alpha))
    exact_r = float(renyi_divergence(p, q, alpha))
    assert float(grid_divergence(p, q, "alpha", alpha=alpha)) == pytest.approx(exact_a, rel=1e-10)
    assert float(grid_divergence(p, q, "renyi", alpha=alpha)) == pytest.approx(exact_r, rel=1e-9, abs=1e-12)


def test_the_old_moment_bounds_do_cut_the_negative_alpha_integrand():
    # The regression the integrand-driven bounds fix: mean +/- 10 sd of p and q loses
    # 0.16% of D_{-1/2}(N(0,1) || N(1,1.6^2)).
    p, q = normal(0.0, 1.0), normal(1.0, 1.6)
    exact = float(alpha_divergence(p, q, -0.5))
    old = float(grid_divergence(p, q, "alpha", alpha=-0.5, bounds=default_bounds(p, q)))
    assert (old - exact) / exact < -1e-3
    new = float(grid_divergence(p, q, "alpha", alpha=-0.5))
    assert abs(new - exact) / exact < 1e-12


def test_alpha_integrand_against_scipy_quad_independently():
    p, q, alpha = normal(0.0, 1.0), normal(1.0, 0.85), 3.0

    def integrand(x):
        lp, lq = scipy.stats.norm.logpdf(x, 0, 1), scipy.stats.norm.logpdf(x, 1, 0.85)
        return np.exp(alpha * lp + (1 - alpha) * lq)

    affinity = scipy.integrate.quad(integrand, -np.inf, np.inf, epsabs=0, epsrel=1e-12)[0]
    expected = (1 - affinity) / (alpha * (1 - alpha))
    assert float(grid_divergence(p, q, "alpha", alpha=alpha)) == pytest.approx(expected, rel=1e-9)


def test_two_dimensional_negative_alpha_matches_closed_form():
    p = MultivariateNormal(torch.tensor([0.0, 0.0], dtype=D), torch.tensor([[1.0, 0.3], [0.3, 1.0]], dtype=D))
    q = MultivariateNormal(torch.tensor([1.0, -0.5], dtype=D),
                           torch.tensor([[2.2, 0.2], [0.2, 1.9]], dtype=D))
    exact = float(alpha_divergence(p, q, -0.5))
    assert float(grid_divergence(p, q, "alpha", alpha=-0.5)) == pytest.approx(exact, rel=1e-6)
    assert float(grid_divergence(p, q)) == pytest.approx(float(kl_divergence(p, q)), rel=1e-6)


def test_an_infinite_divergence_is_reported_not_truncated():
    # alpha = -2 with q not wide enough: p^-2 q^3 grows like exp(x^2 / 6); a grid would
    # return whatever its bounds cut off, so the default bounds refuse instead.
    p, q = normal(0.0, 1.0), normal(0.0, 1.5)
    with pytest.raises(ValueError, match="infinite divergence"):
        alpha_divergence(p, q, -2.0)
    with pytest.raises(ValueError, match="may be infinite.*pass bounds explicitly"):
        grid_divergence(p, q, "alpha", alpha=-2.0)


@given(m=st.floats(-3, 3), s=st.floats(0.5, 2.0), alpha=st.floats(-1.0, 2.5))
def test_grid_matches_closed_form_whenever_it_is_finite(m, s, alpha):
    p, q = normal(0.0, 1.0), normal(m, s)
    try:
        exact = float(alpha_divergence(p, q, alpha))
    except ValueError:
        return  # infinite for this pair (tested above)
    if not math.isfinite(exact) or exact > 1e12:
        return
    prec = alpha + (1 - alpha) / s**2  # the geometric mean's precision: small means very wide
    if prec < 0.05:
        return
    got = float(grid_divergence(p, q, "alpha", alpha=alpha))
    assert got == pytest.approx(exact, rel=1e-7, abs=1e-10)
    assert got >= -1e-12


def test_oversized_grids_are_refused_before_allocating():
    import tracemalloc

    p = MultivariateNormal(torch.zeros(2, dtype=D), torch.eye(2, dtype=D))
    tracemalloc.start()
    try:
        with pytest.raises(ResourceLimitError, match="num_points=200000"):
            grid_divergence(p, p, num_points=200_000)
        with pytest.raises(ResourceLimitError, match="num_points"):
            make_grid([(-1.0, 1.0), (-1.0, 1.0)], 200_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    with pytest.raises(TypeError, match="num_points"):
        grid_divergence(normal(0, 1), normal(0, 1), num_points=401.0)
    with pytest.raises(ValueError, match="num_points must be an integer >= 3"):
        make_grid([(-1.0, 1.0)], 2)
    with pytest.raises(ValueError, match="bounds"):
        make_grid([(-1.0, float("inf"))], 11)
    with pytest.raises(ValueError, match="divergence must be one of"):
        grid_divergence(normal(0, 1), normal(0, 1), "hellinger")
