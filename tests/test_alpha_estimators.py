"""Monte Carlo alpha and Renyi divergences: the plain and the self-normalised estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _stats import assert_mc_close
from torch.distributions import Normal

from vitoolkit.distributions import sample
from vitoolkit.divergences import alpha_divergence, kl_divergence, renyi_divergence
from vitoolkit.exceptions import ResourceLimitError

D = torch.float64


def normal(m, s):
    return Normal(torch.tensor(m, dtype=D), torch.tensor(s, dtype=D))


def mc(p, q, alpha, estimator, *, n=100_000, seed=0, sample_from="q", fn=alpha_divergence):
    return fn(p, q, alpha, method="monte_carlo", num_samples=n, estimator=estimator,
              generator=torch.Generator().manual_seed(seed), sample_from=sample_from)


# q wider than p: the ratio w = p/q is bounded, every moment finite.
P, Q = normal(0.0, 1.0), normal(0.3, 1.2)


def test_self_normalised_terms_are_tfps_amari_alpha_on_the_same_draws():
    # TFP's documented amari_alpha(logu, alpha, self_normalized=True):
    # f(u) = [(u**alpha - 1) - alpha (u - 1)] / (alpha (alpha - 1)), averaged over z ~ q.
    alpha, n = 0.7, 5000
    est = mc(P, Q, alpha, "self_normalised", n=n, seed=3)
    z = sample(Q, (n,), generator=torch.Generator().manual_seed(3)).numpy()
    logu = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)) - (
        -0.5 * ((z - 0.3) / 1.2) ** 2 - math.log(1.2) - 0.5 * math.log(2 * math.pi))
    u = np.exp(logu)
    f = ((u**alpha - 1) - alpha * (u - 1)) / (alpha * (alpha - 1))
    assert float(est.value) == pytest.approx(f.mean(), rel=1e-12)
    assert float(est.stderr) == pytest.approx(f.std(ddof=1) / math.sqrt(n), rel=1e-10)


def test_variance_near_alpha_one_plain_blows_up_self_normalised_does_not():
    # Same draws (same seed): the plain terms (1 - w^alpha)/(alpha (1 - alpha)) have variance
    # ~ Var(w)/(1 - alpha)^2; the control variate removes that part.
    exact = float(alpha_divergence(P, Q, 0.999))
    plain = mc(P, Q, 0.999, "plain")
    normalised = mc(P, Q, 0.999, "self_normalised")
    ratio = (float(plain.stderr) / float(normalised.stderr)) ** 2
    assert ratio > 1e5  # measured 9e6 here (issue 11 reports 2,400 for its pair)
    assert_mc_close(normalised.value, exact, normalised.stderr)
    assert_mc_close(plain.value, exact, plain.stderr)
    # And the expected growth: the plain variance at 0.99 is about 100x smaller than at 0.999.
    plain_99 = mc(P, Q, 0.99, "plain")
    growth = (float(plain.stderr) / float(plain_99.stderr)) ** 2
    assert 50 < growth < 200
    auto = mc(P, Q, 0.999, "auto")
    assert torch.equal(auto.value, normalised.value)


@pytest.mark.parametrize("q", [normal(1.5, 1.0), normal(0.3, 0.6)])
def test_auto_takes_the_self_normalised_form_near_alpha_one_for_unbounded_ratios(q):
    # Lognormal ratio (shifted means) and a heavy ratio tail (q narrower than p): near
    # alpha = 1 both forms' terms share w's tail, and the plain one's 1/(1 - alpha)^2 wins.
    plain, normalised = mc(P, q, 0.999, "plain"), mc(P, q, 0.999, "self_normalised")
    assert (float(plain.stderr) / float(normalised.stderr)) ** 2 > 1e4
    assert torch.equal(mc(P, q, 0.999, "auto").value, normalised.value)


@pytest.mark.parametrize("alpha", [-0.5, 0.3, 0.8, 0.999, 1.5, 2.0])
@pytest.mark.parametrize("sample_from", ["q", "p"])
def test_both_estimators_match_the_closed_form(alpha, sample_from):
    # A pair with the ratio's moments finite in both directions for these alphas.
    p, q = normal(0.0, 1.0), normal(0.4, 1.1)
    exact_a, exact_r = alpha_divergence(p, q, alpha), renyi_divergence(p, q, alpha)
    for estimator in ("plain", "self_normalised", "auto"):
        est = mc(p, q, alpha, estimator, sample_from=sample_from, seed=7)
        assert_mc_close(est.value, exact_a, est.stderr)
        est_r = mc(p, q, alpha, estimator, sample_from=sample_from, seed=7, fn=renyi_divergence)
        assert_mc_close(est_r.value, exact_r, est_r.stderr)


@pytest.mark.parametrize("alpha, sample_from, kl", [(1.0, "q", "forward"), (0.0, "p", "reverse"),
                                                    (0.0, "q", "reverse"), (1.0, "p", "forward")])
def test_the_kl_limits_respect_sample_from(alpha, sample_from, kl):
    exact = kl_divergence(P, Q) if kl == "forward" else kl_divergence(Q, P)
    for estimator in ("plain", "self_normalised"):
        est = mc(P, Q, alpha, estimator, sample_from=sample_from, seed=2)
        assert_mc_close(est.value, exact, est.stderr)
    est = mc(P, Q, alpha, "auto", sample_from=sample_from, seed=2, fn=renyi_divergence)
    if alpha == 1.0:
        assert_mc_close(est.value, kl_divergence(P, Q), est.stderr)


def test_auto_keeps_the_plain_form_when_the_ratio_tail_is_heavy():
    # Sampling from q = N(0, 0.6^2), narrower than p = N(0, 1): w = p/q has tail shape
    # 1 - 0.36 = 0.64, so the self-normalised terms (linear in w) have infinite variance,
    # while the plain terms w^0.3 have tail 0.19. "auto" must not be fooled.
    p, q = normal(0.0, 1.0), normal(0.3, 0.6)
    plain = mc(p, q, 0.3, "plain", seed=5)
    auto = mc(p, q, 0.3, "auto", seed=5)
    assert torch.equal(auto.value, plain.value)
    assert float(plain.khat) < 0.5 < float(mc(p, q, 0.3, "self_normalised", seed=5).khat)
    assert_mc_close(plain.value, alpha_divergence(p, q, 0.3), plain.stderr)


def test_batched_pairs_broadcast_and_choose_per_entry():
    p = Normal(torch.zeros(3, 1, dtype=D), torch.ones(3, 1, dtype=D))
    q = Normal(torch.tensor([0.3, -0.2], dtype=D), torch.tensor([1.2, 0.6], dtype=D))
    est = alpha_divergence(p, q, 0.6, method="monte_carlo", num_samples=40_000,
                           generator=torch.Generator().manual_seed(1))
    assert est.value.shape == est.stderr.shape == est.khat.shape == (3, 2)
    assert_mc_close(est.value, alpha_divergence(p, q, 0.6), est.stderr)


def test_closed_form_keeps_precision_as_alpha_tends_to_zero_and_one():
    p, q = normal(0.0, 1.0), normal(0.0, 0.5)
    assert float(alpha_divergence(p, q, 1e-200)) == pytest.approx(float(kl_divergence(q, p)), rel=1e-12)
    assert float(alpha_divergence(p, q, 1 - 1e-15)) == pytest.approx(float(kl_divergence(p, q)), rel=1e-9)
    assert float(alpha_divergence(p, q, 1e-9)) == pytest.approx(float(kl_divergence(q, p)), rel=1e-8)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="estimator must be one of"):
        alpha_divergence(P, Q, 0.5, method="monte_carlo", num_samples=10, estimator="tfp")
    with pytest.raises(ValueError, match="sample_from must be one of"):
        alpha_divergence(P, Q, 0.5, method="monte_carlo", num_samples=10, sample_from="r")
    with pytest.raises(ValueError, match="num_samples is required"):
        alpha_divergence(P, Q, 0.5, method="monte_carlo")
    with pytest.raises(TypeError, match="num_samples must be an integer >= 2"):
        renyi_divergence(P, Q, 0.5, method="monte_carlo", num_samples=100.0)
    with pytest.raises(ResourceLimitError, match="num_samples=1000000000000"):
        alpha_divergence(P, Q, 0.5, method="monte_carlo", num_samples=10**12)
