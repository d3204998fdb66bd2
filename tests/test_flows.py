"""Richer families: flow densities against independent routes, the k-hat verdict on known cases,
fit_flow's API, the funnel and eight-schools targets, PSIS, and the flow encoder's gaps."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, StudentT

from vitoolkit.divergences import pareto_khat, pareto_smooth
from vitoolkit.fitting import Funnel, correlated_gaussian, fit_gaussian
from vitoolkit.fitting.diagnose import check_fit
from vitoolkit.fitting.eight_schools import (
    SCHOOLS_SIGMA,
    SCHOOLS_Y,
    EightSchools,
    _Marginal,
    eight_schools_reference,
    to_centred,
)
from vitoolkit.fitting.family import STANDARD_NORMAL
from vitoolkit.fitting.flow_fit import fit_flow
from vitoolkit.fitting.flows import FlowDistribution, make_layers, planar_layer, push_forward

F64 = torch.float64
NAN = float("nan")


def _random_flow(kind, dim, seed=0, layers=3, spread=0.4):
    g = torch.Generator().manual_seed(seed)
    ts = make_layers(kind, dim, layers, (8,), generator=g)
    with torch.no_grad():  # move away from the identity start, so the test sees real layers
        for t in ts:
            for p in getattr(t, "parameters", lambda: [])():
                p.add_(spread * torch.randn(p.shape, generator=g, dtype=F64))
    loc = torch.randn(dim, generator=g, dtype=F64)
    tril = torch.tril(0.3 * torch.randn(dim, dim, generator=g, dtype=F64), -1) + torch.diag(
        torch.rand(dim, generator=g, dtype=F64) + 0.5)
    return FlowDistribution(loc, tril, ts)


def _log_q_by_autograd_jacobian(dist, eps):
    """log N(eps) - log|det dz/d eps| with the Jacobian of the whole map from autograd."""
    def f(e):
        u, _ = push_forward(dist.layers, e.unsqueeze(0))
        return (dist.loc + u @ dist.scale_tril.mT)[0]

    out = []
    for e in eps:
        jac = torch.autograd.functional.jacobian(f, e)
        out.append(STANDARD_NORMAL.log_prob(e).sum() - torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(out)


@pytest.mark.parametrize("kind", ["affine_autoregressive", "planar"])
def test_flow_log_density_matches_the_numerical_jacobian(kind):
    dist = _random_flow(kind, 3)
    eps = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    expected = _log_q_by_autograd_jacobian(dist, eps)
    with torch.no_grad():
        z, log_det = dist._push(eps)
    got = STANDARD_NORMAL.log_prob(eps).sum(-1) - log_det
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    if kind == "affine_autoregressive":  # the inverse route gives the same density
        with torch.no_grad():
            torch.testing.assert_close(dist.log_prob(z.clone()), expected, rtol=1e-8, atol=1e-8)
    else:
        with pytest.raises(NotImplementedError, match="no inverse"):
            dist.log_prob(z.clone() + 0.1)


def test_flow_density_integrates_to_one_on_a_grid():
    dist = _random_flow("affine_autoregressive", 2, seed=3, spread=0.15)
    z, _ = dist.sample_with_log_prob((4000,), generator=torch.Generator().manual_seed(0))
    lo, hi = z.min(0).values - 5, z.max(0).values + 5
    axes = [torch.linspace(float(lo[d]), float(hi[d]), 401, dtype=F64) for d in range(2)]
    g1, g2 = torch.meshgrid(*axes, indexing="ij")
    with torch.no_grad():
        dens = dist.log_prob(torch.stack([g1, g2], -1)).exp()
    mass = torch.trapezoid(torch.trapezoid(dens, axes[1], dim=1), axes[0])
    assert abs(float(mass) - 1) < 2e-3


def test_planar_layer_has_the_requested_effective_u_and_refuses_a_fold():
    u, w = torch.tensor([0.5, 0.2], dtype=F64), torch.tensor([1.0, 2.0], dtype=F64)
    layer = planar_layer(u, w, 0.3)
    torch.testing.assert_close(layer.u_hat(layer.u, layer.w), u)
    with pytest.raises(ValueError, match="w\\^T u > -1"):
        planar_layer(-u * 3, w, 0.0)


def test_sample_with_log_prob_equals_log_prob_of_the_draws():
    dist = _random_flow("affine_autoregressive", 4, seed=5)
    z, log_q = dist.sample_with_log_prob((50,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(dist.log_prob(z.clone()), log_q, rtol=1e-8, atol=1e-8)


# ----------------------------------------------------------------------------- the verdict
def test_khat_is_small_when_q_equals_p_and_large_when_q_is_much_narrower_than_a_heavy_tail():
    gen = torch.Generator().manual_seed(0)
    p = MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64) * 2.0)
    same = check_fit(p, p, num_samples=4000, generator=gen)
    assert same.khat < 0.5 and same.reliable
    assert abs(same.elbo) < 1e-12  # log p - log q = 0 for every draw
    heavy = Independent(StudentT(torch.tensor(2.0, dtype=F64), torch.zeros(2, dtype=F64),
                                 torch.ones(2, dtype=F64)), 1)
    narrow = MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64) * 0.25)
    bad = check_fit(narrow, heavy, num_samples=4000, generator=gen)
    assert bad.khat > 0.7 and not bad.reliable


def test_psis_weights_are_normalised_share_pareto_khat_and_estimate_a_moment():
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(20000, generator=gen, dtype=F64)  # q = N(0, 1), p = N(0, 0.8^2): light tail
    log_r = Normal(0.0, 0.8).log_prob(z) - Normal(0.0, 1.0).log_prob(z)
    log_w, k = pareto_smooth(log_r)
    assert abs(float(torch.logsumexp(log_w, 0))) < 1e-12
    assert float(k) == pytest.approx(float(pareto_khat(log_r)))
    w = log_w.exp()
    second = float((w * z**2).sum())
    ess = 1 / float((w**2).sum())
    stderr = math.sqrt(float((w * (z**2 - second) ** 2).sum()) / ess)
    assert abs(second - 0.64) < 4.5 * stderr
    with pytest.raises(ValueError, match="more than 20 draws"):
        pareto_smooth(log_r[:10])


# ----------------------------------------------------------------------------- fit_flow
def test_base_noise_with_fewer_pairs_than_dimensions_is_antithetic_and_unwhitened():
    from vitoolkit.fitting.family import base_noise

    eps = base_noise(128, 100, torch.Generator().manual_seed(0))  # 64 pairs < 100 dimensions
    assert eps.shape == (128, 100) and bool(torch.isfinite(eps).all())
    torch.testing.assert_close(eps[:64], -eps[64:])
    white = base_noise(400, 10, torch.Generator().manual_seed(0))
    torch.testing.assert_close(white.mT @ white / 400, torch.eye(10, dtype=F64))



def test_fit_flow_recovers_a_gaussian_target_and_beats_mean_field_on_a_correlated_one():
    target = correlated_gaussian(0.9)
    kw = dict(init={"loc": torch.zeros(2), "scale": 1.0}, optimizer="adam", steps=300, lr=0.02,
              num_samples=128, value_samples=4000, seed=0)
    flow = fit_flow(target, num_layers=1, hidden_dims=(8,), **kw)
    mf = fit_gaussian(target, "reverse", family="diagonal", method="stochastic", **kw)
    exact_mf = -0.5 * math.log(1 - 0.9**2)  # Bishop PRML 10.1.2
    assert mf.value == pytest.approx(exact_mf, abs=0.02)
    assert flow.value < 0.05 and flow.value < exact_mf - 10 * flow.stderr
    assert flow.n_iter <= 300 and flow.seconds > 0 and flow.num_parameters > 5


def test_fit_flow_refuses_bad_arguments():
    with pytest.raises(ValueError, match="D >= 2"):
        fit_flow(Normal(torch.tensor(0.0, dtype=F64), 1.0), steps=2)
    with pytest.raises(ValueError, match="kind"):
        fit_flow(correlated_gaussian(0.5), kind="spline", steps=2)
    with pytest.raises(ValueError, match="num_layers"):
        fit_flow(correlated_gaussian(0.5), num_layers=0, steps=2)
    with pytest.raises(TypeError, match="hidden_dims"):
        fit_flow(correlated_gaussian(0.5), hidden_dims=16, steps=2)
    with pytest.raises(TypeError, match="q must be"):
        check_fit("not a distribution", correlated_gaussian(0.5))
    with pytest.raises(ValueError, match="scale_tril"):
        FlowDistribution(torch.zeros(2, dtype=F64), -torch.eye(2, dtype=F64), [])


def test_fit_flow_with_lbfgs_on_fixed_noise_reaches_the_gaussian_optimum():
    # L-BFGS evaluates the same base noise several times per step; Pyro's layers cached their
    # last output by identity, so the second push returned a graph already freed (RuntimeError)
    from vitoolkit.exceptions import ConvergenceWarning

    target = correlated_gaussian(0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a short run: not the point here
        fit = fit_flow(target, num_layers=1, hidden_dims=(4,), optimizer="lbfgs", num_samples=128,
                       steps=15, value_samples=4000, seed=0)
        again = fit_flow(target, num_layers=1, hidden_dims=(4,), optimizer="adam", resample=False,
                         num_samples=64, steps=5, value_samples=0, seed=0)
    # the full-rank Gaussian (KL = 0) is in the family; mean-field's optimum is 0.83 nats
    assert fit.value < 0.05 and fit.value > -4.5 * fit.stderr
    assert len(again.history) == 5


def test_a_diverging_fit_is_refused_naming_lr_not_by_the_targets_validation():
    # a validating target (MultivariateNormal) raised its own support error at the overflowed draws
    from vitoolkit.fitting import OptimiserDivergedError

    target = correlated_gaussian(0.5)
    with pytest.raises(OptimiserDivergedError, match=r"lr=1e\+300"):
        fit_flow(target, lr=1e300, steps=3, num_samples=8, value_samples=0)
    with pytest.raises(OptimiserDivergedError, match=r"lr=1e\+300"):
        fit_gaussian(target, "reverse", method="stochastic", optimizer="adam", lr=1e300, steps=3,
                     num_samples=8, value_samples=0)


def test_lesson10_helpers_refuse_bad_arguments_by_name():
    from vitoolkit.exceptions import ResourceLimitError
    from vitoolkit.fitting import draws_with_log_prob

    q = correlated_gaussian(0.5)
    with pytest.raises(TypeError, match="^q must be"):
        draws_with_log_prob("q", 10)
    with pytest.raises(ValueError, match="num_samples"):
        draws_with_log_prob(q, 0)
    with pytest.raises(TypeError, match="generator"):
        draws_with_log_prob(q, 10, generator=0)
    with pytest.raises(ResourceLimitError, match="num_samples"):
        draws_with_log_prob(q, 10**12)
    with pytest.raises(ValueError, match=r"w must have shape \(\.\.\., 10\)"):
        to_centred(torch.zeros(4, 9, dtype=F64))
    with pytest.raises(ValueError, match="w gives a non-finite theta"):
        to_centred(torch.tensor([0.0, 1e3] + [1.0] * 8, dtype=F64))  # tau = e^1000
    with pytest.raises(ValueError, match="eps of shape"):
        push_forward(make_layers("planar", 3, 1), torch.zeros(5, 2, dtype=F64))
    with pytest.raises(ValueError, match="layers do not fit loc"):
        FlowDistribution(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), make_layers("planar", 3, 1))
    with pytest.raises(TypeError, match=r"layers\[0\] must be"):
        FlowDistribution(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), ["planar"])
    with pytest.raises(ResourceLimitError, match="dim=1000000000000"):
        make_layers("planar", 10**12, 1)
    with pytest.raises(ValueError, match="u contains 1 NaN"):
        planar_layer(torch.tensor([NAN, 0.0], dtype=F64), torch.ones(2, dtype=F64), 0.0)
    with pytest.raises(ValueError, match="value must have shape"):
        FlowDistribution(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), []).log_prob(torch.zeros(3))


# ----------------------------------------------------------------------------- targets
def test_funnel_density_is_normalised_and_its_draws_have_the_stated_moments():
    f = Funnel(2, 1.0)
    v = torch.linspace(-8, 8, 801, dtype=F64)
    x = torch.linspace(-30, 30, 1601, dtype=F64)
    g1, g2 = torch.meshgrid(v, x, indexing="ij")
    dens = f.log_prob(torch.stack([g1, g2], -1)).exp()
    assert float(torch.trapezoid(torch.trapezoid(dens, x, dim=1), v)) == pytest.approx(1, abs=1e-6)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        draws = f.sample((200_000,))
    var = draws.var(0)
    m4 = (draws - draws.mean(0)).pow(4).mean(0)
    se = ((m4 - var**2) / draws.shape[0]).sqrt()
    assert bool(((var - f.variance).abs() < 4.5 * se).all())


def test_eight_schools_marginal_is_the_centred_density_with_theta_integrated_out():
    centred = EightSchools()
    marginal = _Marginal()
    theta = torch.linspace(-150, 150, 30001, dtype=F64)
    for mu, log_tau in ((3.0, 1.5), (-2.0, 0.2), (8.0, 2.5)):
        tau = math.exp(log_tau)
        # log p = priors + sum_j log int N(theta_j; mu, tau) N(y_j; theta_j, sigma_j) dtheta_j
        logs = []
        for y, s in zip(SCHOOLS_Y, SCHOOLS_SIGMA, strict=True):
            dens = (Normal(torch.tensor(mu, dtype=F64), tau).log_prob(theta)
                    + Normal(theta, s).log_prob(torch.tensor(y, dtype=F64))).exp()
            logs.append(math.log(float(torch.trapezoid(dens, theta))))
        w = torch.tensor([mu, log_tau] + [0.0] * 8, dtype=F64)
        priors = float(centred.log_prob(w)) - float(
            Normal(torch.tensor(mu, dtype=F64), tau).log_prob(torch.zeros(8, dtype=F64)).sum()
            + Normal(torch.zeros(8, dtype=F64), torch.tensor(SCHOOLS_SIGMA, dtype=F64))
            .log_prob(torch.tensor(SCHOOLS_Y, dtype=F64)).sum())
        assert float(marginal.log_prob(torch.tensor([mu, log_tau], dtype=F64))) == pytest.approx(
            priors + sum(logs), abs=1e-8)


def test_eight_schools_reference_is_converged_and_non_centred_maps_to_centred():
    coarse, fine = eight_schools_reference(201), eight_schools_reference(401)
    assert float((coarse.mean - fine.mean).abs().max()) < 1e-4
    assert abs(coarse.log_evidence - fine.log_evidence) < 1e-6
    # the non-centred density is the centred one after theta = mu + tau eta (Jacobian tau^8)
    w = torch.tensor([1.0, 0.7] + [0.3, -0.2, 1.1, 0.0, -1.0, 0.5, 0.2, -0.4], dtype=F64)
    lhs = EightSchools(centred=False).log_prob(w)
    rhs = EightSchools().log_prob(to_centred(w)) + 8 * w[1]
    torch.testing.assert_close(lhs, rhs)


# ----------------------------------------------------------------------------- the VAE
def test_flow_encoder_with_no_layers_reproduces_the_librarys_gaussian_gap():
    from vitoolkit.vae import VAE, amortisation_gap
    from vitoolkit.vae.flow_posterior import PlanarFlowPosterior, flow_amortisation_gap

    vae = VAE(6, 2, (8,), seed=0)
    x = torch.bernoulli(torch.full((5, 6), 0.4), generator=torch.Generator().manual_seed(0))
    flow = PlanarFlowPosterior(vae, 0)
    a = amortisation_gap(vae, x, steps=0, eval_samples=300, generator=torch.Generator().manual_seed(3))
    b = flow_amortisation_gap(vae, flow, x, steps=0, eval_samples=300,
                              generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(b.elbo_amortised, a.elbo_amortised, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b.log_likelihood, a.log_likelihood, rtol=1e-5, atol=1e-5)
    with_flow = PlanarFlowPosterior(vae, 2, seed=1)
    g = flow_amortisation_gap(vae, with_flow, x, steps=20, eval_samples=200,
                              generator=torch.Generator().manual_seed(3))
    assert bool((g.approximation_gap >= 0).all()) and bool((g.amortisation_gap >= 0).all())
