"""Pareto k-hat (Vehtari et al. 2024) against independent routes.

- Draws from a generalised Pareto with a known shape k: the exceedances of a GPD over
  any threshold are again GPD with the same k, so k-hat fitted to the top M of S draws
  estimates k with sampling sd ~ (1 + k) / sqrt(M) (the maximum-likelihood asymptotic
  sd; Zhang & Stephens' estimator is as efficient), plus the known shrinkage of the
  weakly informative prior, (M k + 5) / (M + 10) - k.
- scipy's maximum-likelihood GPD fit on the same exceedances (a peer implementation).
- The closed-form tail shape of a Gaussian importance ratio: for x ~ N(0, s^2) and
  r = N(x; 0, 1) / N(x; 0, s^2), P(r > t) ~ t^(-1/(1 - s^2)), so k = 1 - s^2 (s < 1).
- Schulman's (2020) k3 estimator: KL(q || p) by k3 from q = N(0.3, 0.2^2), p = N(0, 1), 1e5 draws.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from torch.distributions import Normal

from vitoolkit.divergences import (
    KHAT_THRESHOLD,
    UnreliableEstimateWarning,
    fit_generalized_pareto,
    kl_divergence,
    monte_carlo_kl,
    normal_ratio_tail_shape,
    pareto_khat,
    tail_khat,
    tail_length,
)

D = torch.float64
Z = 4.5  # tests/conftest.py policy: false-failure rate 6.8e-6 per check under normality


def normal(m, s):
    return Normal(torch.tensor(m, dtype=D), torch.tensor(s, dtype=D))


def gpd_draws(k, shape, seed):
    """Inverse-CDF draws of GPD(k, sigma=1): y = ((1 - u)^(-k) - 1) / k."""
    u = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=D)
    return torch.expm1(-k * torch.log1p(-u)) / k


def test_tail_length_is_the_papers_m():
    assert tail_length(100) == 20 and tail_length(10_000) == 300
    assert tail_length(100_000) == math.ceil(3 * math.sqrt(100_000))
    with pytest.raises(ValueError, match="num_samples"):
        tail_length(0)
    with pytest.raises(TypeError, match="num_samples"):
        tail_length(100.0)


@pytest.mark.parametrize("k", [0.2, 0.5, 0.9])
def test_khat_recovers_a_known_generalized_pareto_shape(k):
    S, R = 100_000, 8
    y = gpd_draws(k, (R, S), seed=int(10 * k))
    khat = pareto_khat(torch.log(y), dim=1)
    assert khat.shape == (R,) and khat.dtype == D
    M = tail_length(S)
    sd = (1 + k) / math.sqrt(M)
    expected = (M * k + 5) / (M + 10)  # the prior's shrinkage towards 0.5
    assert bool(((khat - expected).abs() < Z * sd).all()), (khat, expected, sd)
    assert abs(float(khat.mean()) - expected) < Z * sd / math.sqrt(R), (khat.mean(), expected)
    # Same draws, same answer on the raw (not log) scale.
    assert torch.allclose(tail_khat(y, dim=1, tail="right"), khat, atol=1e-10)


@pytest.mark.parametrize("k", [0.2, 0.5, 0.9])
def test_zhang_stephens_fit_agrees_with_scipy_maximum_likelihood(k):
    rng = np.random.default_rng(int(100 * k))
    n = 949
    sd = (1 + k) / math.sqrt(n)
    for _ in range(3):
        y = scipy.stats.genpareto.rvs(k, size=n, random_state=rng)
        k_zs, sigma_zs = fit_generalized_pareto(torch.as_tensor(y), prior=False)
        c, _, scale = scipy.stats.genpareto.fit(y, floc=0)
        # Two efficient estimators of the same shape differ by far less than their sd.
        assert abs(float(k_zs) - c) < 0.25 * sd, (float(k_zs), c)
        assert float(sigma_zs) == pytest.approx(scale, rel=0.05)


def test_khat_of_a_gaussian_importance_ratio_matches_its_tail_shape():
    # k = 1 - s^2; the tail approaches its Pareto limit slowly (a 1/sqrt(log t) prefactor),
    # so k-hat at S = 1e5 sits a little below the limit: the replicate mean may fall up to
    # 0.1 below k (measured: 0.08 at s = 0.2, 0.03 at s = 0.5), never above k + Z sd.
    S, R = 100_000, 8
    M = tail_length(S)
    for s in (0.2, 0.5, 0.8):
        x = s * torch.randn(R, S, generator=torch.Generator().manual_seed(int(10 * s)), dtype=D)
        log_r = normal(0.0, 1.0).log_prob(x) - normal(0.0, s).log_prob(x)
        khat = pareto_khat(log_r, dim=-1)
        k = float(normal_ratio_tail_shape(s, 1.0))
        assert k == pytest.approx(1 - s**2)
        se = (1 + k) / math.sqrt(M) / math.sqrt(R)
        assert k - 0.1 - Z * se < float(khat.mean()) < k + Z * se, (s, khat, k)
        if s == 0.2:
            assert bool((khat > KHAT_THRESHOLD).all()), khat  # every replicate flags it
        if s == 0.8:
            assert bool((khat < 0.5).all()), khat  # finite variance, every replicate


def test_normal_ratio_tail_shape_is_minus_inf_without_a_tail():
    assert float(normal_ratio_tail_shape(1.0, 1.0)) == -math.inf
    assert float(normal_ratio_tail_shape(2.0, 1.0)) == -math.inf
    torch.testing.assert_close(normal_ratio_tail_shape(torch.tensor([0.5, 0.1]), 1.0),
                               torch.tensor([0.75, 0.99], dtype=D))
    with pytest.raises(ValueError, match="positive"):
        normal_ratio_tail_shape(0.0, 1.0)


def test_khat_is_scale_free_and_stable_in_log_space():
    y = gpd_draws(0.5, (20_000,), seed=3)
    base = pareto_khat(torch.log(y))
    # Multiplying every ratio by e^800 or e^-800 would overflow/underflow exp(); the
    # log-space fit does not care.
    for shift in (800.0, -800.0):
        assert float(pareto_khat(torch.log(y) + shift)) == pytest.approx(float(base), abs=1e-9)
    # Any dim, batched: one k-hat per column equals the column's own k-hat.
    cols = torch.log(gpd_draws(0.3, (5_000, 3), seed=4))
    per_col = torch.stack([pareto_khat(cols[:, j]) for j in range(3)])
    assert torch.allclose(pareto_khat(cols, dim=0), per_col, atol=1e-12)
    assert torch.allclose(pareto_khat(cols.T, dim=-1), per_col, atol=1e-12)
    assert torch.allclose(pareto_khat(cols.float(), dim=0), per_col, atol=1e-4)  # float32 in


def test_khat_edge_cases():
    assert math.isinf(float(pareto_khat(torch.zeros(100)))) and float(pareto_khat(torch.zeros(100))) < 0
    assert math.isnan(float(pareto_khat(torch.randn(20, dtype=D))))  # S < 25: too few to fit
    lw = torch.randn(1000, dtype=D)
    lw[3] = math.inf
    assert float(pareto_khat(lw)) == math.inf
    with pytest.raises(ValueError, match="log_ratios contains NaN"):
        pareto_khat(torch.tensor([0.0, math.nan] * 50))
    with pytest.raises(ValueError, match="at least one dimension"):
        pareto_khat(torch.tensor(1.0))
    with pytest.raises(ValueError, match="tail must be"):
        tail_khat(torch.randn(100), tail="upper")
    # Left tail: the mirror image of the right tail.
    y = gpd_draws(0.6, (30_000,), seed=5)
    assert float(tail_khat(-y, tail="left")) == pytest.approx(float(tail_khat(y, tail="right")))
    assert float(tail_khat(-y, tail="both")) >= float(tail_khat(-y, tail="left"))


def test_references_example_k3_from_a_narrow_q_is_flagged_and_its_error_bar_lies():
    q, p = normal(0.3, 0.2), normal(0.0, 1.0)
    exact = float(kl_divergence(q, p))  # 1.174 nats
    with pytest.warns(UnreliableEstimateWarning, match="standard error cannot be trusted"):
        est = monte_carlo_kl(q, p, 100_000, estimator="k3", generator=torch.Generator().manual_seed(0))
    assert float(est.khat) > KHAT_THRESHOLD
    # The confident error bar excludes the truth (k3 is unbiased: the mass is in the tail
    # the draws have not reached).
    assert abs(float(est.value) - exact) > 3 * float(est.stderr), (est, exact)
    # The same pair with the log-ratio estimator: the same heavy ratio (same k-hat), but its
    # terms are log r, with finite variance: no warning, and the error bar holds.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est2 = monte_carlo_kl(q, p, 100_000, generator=torch.Generator().manual_seed(0))
    assert float(est2.khat) == float(est.khat)
    assert abs(float(est2.value) - exact) < Z * float(est2.stderr)


def test_close_pair_has_small_khat_and_no_warning():
    q, p = normal(0.2, 1.1), normal(0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for estimator in ("k3", "log_ratio"):
            est = monte_carlo_kl(q, p, 100_000, estimator=estimator,
                                 generator=torch.Generator().manual_seed(1))
            assert float(est.khat) < 0.5, (estimator, est)
            assert abs(float(est.value) - float(kl_divergence(q, p))) < Z * float(est.stderr)
