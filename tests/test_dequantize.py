"""Uniform dequantisation and bits per dimension (Theis, van den Oord & Bethge 2016, section 3.1).

Independent routes: the exact probability of each bin of a 1-D Gaussian by the
normal CDF, the closed form of E_u[log N(x + w u; m, s^2)] (a quadratic in u), and
the bits-per-dimension formula written out by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from tests._stats import assert_mc_close
from vitoolkit.datasets.dequantize import bin_width, uniform_dequantize
from vitoolkit.discrete_likelihood import bits_per_dim, dequantized_log_prob_bound

LEVELS, M, S = 17, 0.4, 0.12  # the digits' grid 0, 1/16, ..., 1 and a 1-D Gaussian on it
W = 1 / 16


def expected_log_normal(x, w, m, s):
    """E_{u ~ U[0,1)} log N(x + w u; m, s^2) in closed form: E[(x + w u - m)^2] = d^2 + w d + w^2/3."""
    d = x - m
    return -0.5 * math.log(2 * math.pi * s * s) - (d * d + w * d + w * w / 3) / (2 * s * s)


def test_bin_width_of_the_digits_grid():
    assert bin_width(17) == pytest.approx(1 / 16)
    assert bin_width(256, 0, 255) == pytest.approx(1.0)


def test_dequantized_values_fill_their_own_bin_uniformly():
    x = torch.arange(LEVELS, dtype=torch.float64).repeat(4000) / 16
    y = uniform_dequantize(x, LEVELS, generator=torch.Generator().manual_seed(0))
    u = (y - x) / W
    assert y.dtype == x.dtype and y.shape == x.shape
    assert bool((u >= 0).all()) and bool((u < 1).all())
    assert_mc_close(u.mean(), 0.5, u.std() / math.sqrt(u.numel()))  # U[0, 1): mean 1/2
    assert_mc_close((u * u).mean(), 1 / 3, (u * u).std() / math.sqrt(u.numel()))  # E u^2 = 1/3


def test_bound_matches_its_closed_form_and_lies_below_the_exact_bin_probability():
    grid = torch.arange(LEVELS, dtype=torch.float64) / 16
    n = 20000
    x = grid.repeat(n)
    y = uniform_dequantize(x, LEVELS, generator=torch.Generator().manual_seed(1))
    log_density = torch.distributions.Normal(M, S).log_prob(y)
    bound = dequantized_log_prob_bound(log_density, W, 1).reshape(n, LEVELS)
    for k, xk in enumerate(grid.tolist()):
        exact = math.log(norm.cdf(xk + W, M, S) - norm.cdf(xk, M, S))
        closed = expected_log_normal(xk, W, M, S) + math.log(W)
        # Monte Carlo over u agrees with the closed form of the bound ...
        assert_mc_close(bound[:, k].mean(), closed, bound[:, k].std() / math.sqrt(n))
        # ... which is below the exact log probability of the bin (Jensen), by about half the
        # variance of log p over the bin where the density is smooth on the scale of a bin
        # (second-order expansion of log E e^V around E V).
        assert closed <= exact
        if abs(xk - M) < 2 * S:
            half_var = 0.5 * float(bound[:, k].var())
            assert exact - closed == pytest.approx(half_var, rel=0.25)


def test_log_probability_of_a_bin_is_at_most_zero_but_a_density_can_exceed_one():
    # A narrow Gaussian centred in the bin [1/2, 1/2 + w): its log density is positive,
    # the bound (the expectation over the bin) on the bin's log probability is not.
    s, m = 0.01, 0.5 + W / 2
    log_density_at_mode = float(torch.distributions.Normal(m, s).log_prob(torch.tensor(m)))
    assert log_density_at_mode > 0
    bound = dequantized_log_prob_bound(expected_log_normal(0.5, W, m, s), W, 1)
    exact = math.log(norm.cdf(0.5 + W, m, s) - norm.cdf(0.5, m, s))
    assert bound <= exact <= 0


def test_bits_per_dim_against_the_hand_formula():
    log_p = torch.tensor([-10.0, -44.36, 0.0], dtype=torch.float64)
    got = bits_per_dim(log_p, 64)
    want = torch.tensor([10 / (64 * math.log(2)), 44.36 / (64 * math.log(2)), 0.0],
                        dtype=torch.float64)
    assert torch.allclose(got, want, rtol=0, atol=1e-15)
    # A uniform distribution over 17 levels per pixel costs log2(17) bits per pixel.
    assert bits_per_dim(64 * math.log(1 / 17), 64) == pytest.approx(math.log2(17), abs=1e-12)
    assert isinstance(bits_per_dim(-1.0, 1), float)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(x=torch.tensor([0.5, 0.51]), levels=17), ValueError, "1 of 2 values do not, the first is 0.5"),
    (dict(x=torch.tensor([1.0625]), levels=17), ValueError, "grid"),
    (dict(x=torch.tensor([-0.0625]), levels=17), ValueError, "grid"),
    (dict(x=torch.tensor([0.5]), levels=1), ValueError, "levels"),
    (dict(x=torch.tensor([0.5]), levels=2.0), TypeError, "levels"),
    (dict(x=torch.tensor([0.5]), levels=17, low=1.0, high=0.0), ValueError, "high must be > low"),
    (dict(x=torch.tensor([float("nan")]), levels=17), ValueError, "x"),
])
def test_dequantize_refuses_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        uniform_dequantize(**kwargs)


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: dequantized_log_prob_bound(1.0, 0.0, 64), ValueError, "bin_width"),
    (lambda: dequantized_log_prob_bound(1.0, 1 / 16, 0), ValueError, "num_dims"),
    (lambda: dequantized_log_prob_bound(float("nan"), 1 / 16, 64), ValueError, "log_density"),
    (lambda: bits_per_dim(torch.tensor([1.0, float("inf")]), 64), ValueError, "log_prob"),
    (lambda: bits_per_dim(-1.0, 2.5), TypeError, "num_dims"),
    (lambda: bits_per_dim("a lot", 64), TypeError, "log_prob"),
])
def test_bits_and_bound_refuse_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
