"""fit_gaussian against closed forms (Bishop PRML 10.1.2, Minka 2005) and independent routes."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from _stats import assert_mc_close
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Distribution, MultivariateNormal, Normal, constraints

from vitoolkit.divergences import KHAT_THRESHOLD, grid_divergence, log_alpha_affinity
from vitoolkit.fitting import (
    Banana,
    ConvergenceWarning,
    LogProbOnly,
    NonFiniteTargetError,
    Ring,
    UnreliableEstimateWarning,
    bimodal_1d,
    correlated_gaussian,
    fit_alpha_sweep,
    fit_gaussian,
    mixture_2d,
    target_moments,
)
from vitoolkit.fitting.family import base_noise

F64 = torch.float64


def _gaussian(cov, loc=None):
    cov = torch.as_tensor(cov, dtype=F64)
    loc = torch.zeros(cov.shape[0], dtype=F64) if loc is None else torch.as_tensor(loc, dtype=F64)
    return MultivariateNormal(loc, covariance_matrix=cov)


SIGMA_3D = [[2.0, 0.8, -0.5], [0.8, 1.0, 0.3], [-0.5, 0.3, 1.5]]


# --------------------------------------------------------------- Bishop PRML 10.1.2
@pytest.mark.parametrize("method", ["quadrature", "stochastic"])
def test_bishop_mean_field_reverse_variances_are_inverse_precision_diagonal(method):
    p = correlated_gaussian(0.8, (1.5, 0.7), (1.0, -2.0))
    sigma = p.covariance_matrix
    lam = torch.linalg.inv(sigma)
    fit = fit_gaussian(p, "reverse", family="diagonal", method=method, n_init=1)  # one optimum
    torch.testing.assert_close(torch.diagonal(fit.covariance), 1 / torch.diagonal(lam),
                               rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(fit.loc, p.loc, rtol=0, atol=1e-7)
    # the minimum, 1/2 log(prod Lambda_ii |Sigma|), and -1/2 log(1 - rho^2) in 2-D
    minimum = 0.5 * math.log(float(torch.diagonal(lam).prod() * torch.linalg.det(sigma)))
    assert fit.value == pytest.approx(minimum, rel=1e-9)
    assert minimum == pytest.approx(-0.5 * math.log(1 - 0.8**2), rel=1e-12)
    assert fit.history[-1] == pytest.approx(minimum, rel=1e-7)  # the objective is the KL itself


@pytest.mark.parametrize("method", ["quadrature", "samples", "moments"])
def test_bishop_mean_field_forward_variances_are_marginals(method):
    p = correlated_gaussian(-0.6, (0.8, 2.0), (0.5, 0.0))
    sigma = p.covariance_matrix
    fit = fit_gaussian(p, "forward", family="diagonal", method=method, num_samples=40_000)
    minimum = 0.5 * math.log(float(torch.diagonal(sigma).prod() / torch.linalg.det(sigma)))
    assert minimum == pytest.approx(-0.5 * math.log(1 - 0.36), rel=1e-12)
    if method == "samples":
        # the optimum is the sample moments of the draws: within their standard errors
        n = 40_000
        sd = torch.diagonal(sigma).sqrt()
        assert_mc_close(fit.loc, p.loc, sd / math.sqrt(n))
        assert_mc_close(torch.diagonal(fit.covariance), torch.diagonal(sigma),
                        torch.diagonal(sigma) * math.sqrt(2 / n))
        assert fit.value == pytest.approx(minimum, abs=0.01)
    else:
        torch.testing.assert_close(torch.diagonal(fit.covariance), torch.diagonal(sigma),
                                   rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(fit.loc, p.loc, rtol=0, atol=1e-7)
        assert fit.value == pytest.approx(minimum, rel=1e-9)


def test_bishop_in_three_dimensions_by_reparameterised_gradients():
    p = _gaussian(SIGMA_3D, [1.0, 0.0, -1.0])
    lam = torch.linalg.inv(p.covariance_matrix)
    rev = fit_gaussian(p, "reverse", family="diagonal", n_init=1)  # a Gaussian: one optimum
    assert rev.method == "stochastic"
    torch.testing.assert_close(torch.diagonal(rev.covariance), 1 / torch.diagonal(lam),
                               rtol=1e-7, atol=1e-9)
    fwd = fit_gaussian(p, "forward", family="diagonal")
    torch.testing.assert_close(fwd.covariance, torch.diag(torch.diagonal(p.covariance_matrix)))
    expected = 0.5 * math.log(float(torch.diagonal(lam).prod() * torch.linalg.det(
        p.covariance_matrix)))
    assert rev.value == pytest.approx(expected, rel=1e-9)


@settings(max_examples=15)
@given(rho=st.floats(-0.95, 0.95), s1=st.floats(0.3, 3.0), s2=st.floats(0.3, 3.0))
def test_mean_field_reverse_never_wider_than_forward(rho, s1, s2):
    p = correlated_gaussian(rho, (s1, s2))
    rev = fit_gaussian(p, "reverse", family="diagonal", n_init=1)  # a Gaussian: one optimum
    fwd = fit_gaussian(p, "forward", family="diagonal")
    closed = torch.tensor([s1**2, s2**2], dtype=F64) * (1 - rho**2)
    torch.testing.assert_close(torch.diagonal(rev.covariance), closed, rtol=1e-6, atol=1e-9)
    assert bool((torch.diagonal(rev.covariance) <= torch.diagonal(fwd.covariance) * (1 + 1e-7)).all())
    assert rev.value == pytest.approx(fwd.value, rel=1e-7, abs=1e-10)  # both -1/2 log(1-rho^2)


def test_full_family_recovers_a_gaussian_target_under_every_divergence():
    p = correlated_gaussian(0.7, (1.0, 2.0), (0.5, 0.5))
    for div, alpha in [("reverse", None), ("forward", None), ("alpha", 0.5), ("alpha", 2.0)]:
        fit = fit_gaussian(p, div, alpha=alpha, method="quadrature", n_init=1)
        torch.testing.assert_close(fit.covariance, p.covariance_matrix, rtol=1e-6, atol=1e-7)
        assert fit.value == pytest.approx(0.0, abs=1e-10)


# --------------------------------------------------------------- forward KL routes
def test_forward_quadrature_equals_exact_moments_on_non_gaussian_targets():
    for p in (mixture_2d(3), Banana(), Ring()):
        fit = fit_gaussian(p, "forward", method="quadrature", num_points=201)
        mean, cov = target_moments(p)
        torch.testing.assert_close(fit.loc, mean, rtol=0, atol=1e-6)
        torch.testing.assert_close(fit.covariance, cov, rtol=1e-6, atol=1e-6)


def test_forward_from_exact_samples_matches_the_moments_within_standard_errors():
    p = Banana()
    n = 20_000
    fit = fit_gaussian(p, "forward", method="samples", num_samples=n, seed=3)
    mean, cov = target_moments(p)
    assert_mc_close(fit.loc, mean, torch.diagonal(cov).sqrt() / math.sqrt(n))
    # its value, a Monte Carlo KL on fresh draws, against the quadrature KL of the same q
    exact = grid_divergence(p, fit.distribution, "kl", bounds=p.quadrature_bounds,
                            num_points=401)
    assert_mc_close(fit.value, exact, fit.stderr)


def test_forward_weighted_objective_is_minimised_at_weighted_moments():
    from vitoolkit.fitting.family import GaussianParams
    from vitoolkit.fitting.objectives import ForwardKLWeighted
    from vitoolkit.fitting.optimise import one_thread as _one_thread
    from vitoolkit.fitting.optimise import optimise as _optimise

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(300, 2, generator=gen, dtype=F64) * torch.tensor([1.0, 3.0], dtype=F64)
    w = torch.rand(300, generator=gen, dtype=F64)
    w = w / w.sum()
    objective = ForwardKLWeighted(lambda g: (x, w, torch.zeros(300, dtype=F64), 1.0), gen)
    q = GaussianParams(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), "full")
    with _one_thread():
        _, _, converged = _optimise(objective, q, optimizer="lbfgs", steps=200, lr=None,
                                    tol=1e-12, resample=False, generator=gen, label="test")
    assert converged
    mean = (w.unsqueeze(-1) * x).sum(0)
    cov = ((x - mean).mT * w) @ (x - mean)
    torch.testing.assert_close(q.loc.detach(), mean, rtol=0, atol=1e-6)
    tril = q.scale_tril().detach()
    torch.testing.assert_close(tril @ tril.mT, cov, rtol=1e-6, atol=1e-6)


def test_snis_forward_fit_matches_the_moments_of_a_log_prob_only_target():
    p = mixture_2d(3, radius=2.0, scale=0.7)
    proposal = _gaussian(9.0 * torch.eye(2))
    fit = fit_gaussian(LogProbOnly(p), "forward", proposal=proposal, num_samples=40_000)
    assert fit.method == "snis" and fit.ess is not None and 1 < fit.ess <= 40_000
    mean, cov = target_moments(p)
    se = torch.diagonal(cov).sqrt() / math.sqrt(fit.ess)
    assert_mc_close(fit.loc, mean, se)
    exact = grid_divergence(p, fit.distribution, "kl", bounds=[(-8, 8), (-8, 8)], num_points=401)
    assert_mc_close(fit.value, exact, fit.stderr)


# ------------------------------------------------ SNIS reliability: the Pareto k-hat
def _normal(loc, scale):
    return Normal(torch.tensor(float(loc), dtype=F64), float(scale))


def test_snis_fit_reports_a_small_khat_when_the_proposal_covers_the_target():
    # p / r is bounded when r = N(0, 5^2) is wider than every component of p: k-hat < 0.5
    # (finite variance); no warning (warnings are errors in this suite)
    fit = fit_gaussian(LogProbOnly(bimodal_1d(6.0)), "forward", proposal=_normal(0, 5),
                       num_samples=5_000, seed=0)
    assert fit.method == "snis" and fit.khat is not None and fit.khat < 0.5


def test_snis_fit_with_a_proposal_that_misses_the_modes_warns_and_reports_khat():
    # r = N(0, 1) sits in the valley of modes at -/+3: ratios p/r have a heavy tail in 5000
    # draws (k-hat 0.76-1.09 over seeds 0-19), the ESS collapses and the fit is off
    message = r"k-hat of the importance ratios p/r is \d\.\d\d > 0\.7"
    with pytest.warns(UnreliableEstimateWarning, match=message):
        fit = fit_gaussian(LogProbOnly(bimodal_1d(6.0)), "forward", proposal=_normal(0, 1),
                           num_samples=5_000, seed=0)
    assert fit.khat > KHAT_THRESHOLD
    assert fit.ess < 100


def test_snis_khat_is_the_tail_of_p_over_r_not_r_over_p():
    # p = N(0, 1), r = N(0, s^2): p/r is bounded for s > 1 (k-hat < 0.5) and heavy-tailed for
    # s < 1, with shape k = 1 - s^2 (r/p would be the other way round)
    p = LogProbOnly(_normal(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliableEstimateWarning)
        heavy = fit_gaussian(p, "forward", proposal=_normal(0, 0.2), num_samples=5_000, seed=0)
    light = fit_gaussian(p, "forward", proposal=_normal(0, 2.0), num_samples=5_000, seed=0)
    assert light.khat < 0.5 < KHAT_THRESHOLD < heavy.khat


def test_khat_is_none_for_routes_without_importance_weights():
    p = bimodal_1d(6.0)
    for method in ("moments", "quadrature", "samples"):
        assert fit_gaussian(p, "forward", method=method, num_samples=2_000).khat is None
    assert fit_gaussian(p, "reverse").khat is None


def test_forward_routes_agree_on_a_1d_mixture():
    p = bimodal_1d(4.0, (0.3, 0.7))
    moments = fit_gaussian(p, "forward", method="moments")
    quad = fit_gaussian(p, "forward", method="quadrature")
    samp = fit_gaussian(p, "forward", method="samples", num_samples=50_000)
    assert moments.loc.shape == () and moments.covariance.shape == ()
    assert float(quad.loc) == pytest.approx(float(moments.loc), abs=1e-8)
    assert float(quad.covariance) == pytest.approx(float(moments.covariance), rel=1e-8)
    sd = float(moments.scale)
    assert_mc_close(samp.loc, moments.loc, sd / math.sqrt(50_000))
    assert_mc_close(samp.value, moments.value, samp.stderr)


# --------------------------------------------------------------- mode seeking vs covering
def test_symmetric_bimodal_reverse_seeks_one_mode_forward_covers_both():
    sep = 8.0
    p = bimodal_1d(sep)
    rev = fit_gaussian(p, "reverse", n_init=4)
    fwd = fit_gaussian(p, "forward")
    assert float(rev.scale) == pytest.approx(1.0, rel=0.01)  # one component's std
    assert abs(float(rev.loc)) == pytest.approx(sep / 2, rel=0.01)
    assert float(fwd.scale) == pytest.approx(math.sqrt(1 + sep**2 / 4), rel=1e-9)
    assert float(fwd.loc) == pytest.approx(0.0, abs=1e-12)
    # reverse KL at one mode is about log 2 (the other half of the mass is ignored)
    assert rev.value == pytest.approx(math.log(2), abs=1e-3)


def test_reverse_fits_from_several_starts_land_in_different_modes():
    p = mixture_2d(3, radius=3.0, scale=0.5)
    starts = [{"loc": 2.5 * torch.tensor([math.cos(a), math.sin(a)]), "scale": 1.0}
              for a in (0.2, 2.2, 4.3)]
    fit = fit_gaussian(p, "reverse", init=starts)
    assert len(fit.candidates) == 3
    centres = p.component_distribution.loc
    nearest = {int(torch.cdist(c.loc.unsqueeze(0), centres).argmin()) for c in fit.candidates}
    assert nearest == {0, 1, 2}
    assert fit.objective == min(c.objective for c in fit.candidates)


def test_stochastic_and_quadrature_reverse_fits_agree():
    p = bimodal_1d(6.0, (0.4, 0.6))
    init = {"loc": 2.0, "scale": 1.0}
    quad = fit_gaussian(p, "reverse", init=init)
    mc = fit_gaussian(p, "reverse", init=init, method="stochastic", num_samples=8192)
    assert float(mc.loc) == pytest.approx(float(quad.loc), abs=0.03)
    assert float(mc.scale) == pytest.approx(float(quad.scale), abs=0.03)
    # the Monte Carlo value at the optimum against quadrature, within its standard error
    exact = grid_divergence(mc.distribution, p, "kl")
    assert_mc_close(mc.value, exact, mc.stderr)


# --------------------------------------------------------------- alpha family
def test_alpha_objective_matches_the_closed_form_affinity():
    from vitoolkit.fitting.family import GaussianParams
    from vitoolkit.fitting.objectives import AlphaQuadrature, Target

    p = correlated_gaussian(0.6, (1.0, 1.5))
    q = GaussianParams(torch.tensor([0.3, -0.2], dtype=F64),
                       torch.tensor([[1.1, 0.0], [0.4, 0.9]], dtype=F64), "full")
    from vitoolkit.divergences import make_grid
    grid = make_grid([(-9, 9), (-11, 11)], 241)
    for a in (-0.5, 0.3, 0.9, 1.3):
        got = AlphaQuadrature(Target(p), grid, a).loss(q).detach()
        want = -log_alpha_affinity(p, q.distribution(), a) / (a * (1 - a))
        assert float(got) == pytest.approx(float(want), rel=1e-7)


@pytest.mark.parametrize("method", ["quadrature", "stochastic"])
def test_alpha_limits_approach_the_reverse_and_forward_fits(method):
    p = bimodal_1d(7.0, (0.45, 0.55))
    init = {"loc": 3.0, "scale": 1.0}
    rev = fit_gaussian(p, "reverse", init=init, method=method, value_samples=0)
    fwd = fit_gaussian(p, "forward", method="quadrature" if method == "quadrature" else "samples",
                       value_samples=0)
    gaps = []
    for a in (1e-2, 1e-3):
        near0 = fit_gaussian(p, "alpha", alpha=a, init=init, method=method, value_samples=0)
        gaps.append(abs(float(near0.loc - rev.loc)) + abs(float(near0.scale - rev.scale)))
    assert gaps[1] < gaps[0] and gaps[1] < 2e-3
    far = []
    for a in (1 - 1e-2, 1 - 1e-3):
        near1 = fit_gaussian(p, "alpha", alpha=a, method="quadrature", value_samples=0, n_init=1)
        far.append(abs(float(near1.loc - fwd.loc)) + abs(float(near1.scale - fwd.scale)))
    if method == "quadrature":
        assert far[1] < far[0] and far[1] < 2e-3


def test_alpha_exactly_zero_and_one_are_the_two_kls():
    p = bimodal_1d(5.0)
    init = {"loc": 2.0, "scale": 1.0}
    a0 = fit_gaussian(p, "alpha", alpha=0, init=init)
    rev = fit_gaussian(p, "reverse", init=init)
    assert float(a0.loc) == float(rev.loc) and a0.value == rev.value
    a1 = fit_gaussian(p, "alpha", alpha=1)
    fwd = fit_gaussian(p, "forward")
    assert float(a1.covariance) == float(fwd.covariance)


def test_mean_field_alpha_variance_moves_monotonically_from_reverse_to_forward():
    p = correlated_gaussian(0.9)
    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    fits = fit_alpha_sweep(p, alphas, family="diagonal", n_init=1)
    v = [float(f.covariance[0, 0]) for f in fits]
    assert v[0] == pytest.approx(1 - 0.81, rel=1e-7) and v[-1] == pytest.approx(1.0, rel=1e-7)
    assert all(b > a for a, b in zip(v, v[1:], strict=False))
    # the value at each optimum is Minka's D_alpha in closed form (Gaussian target)
    assert all(f.value_method == "closed_form" and f.value > 0 for f in fits)


def test_alpha_sweep_on_a_bimodal_target_goes_from_one_mode_to_both():
    p = bimodal_1d(7.0)
    fits = fit_alpha_sweep(p, [0.0, 0.5, 1.0], init={"loc": 3.0, "scale": 1.0})
    scales = [float(f.scale) for f in fits]
    assert scales[0] == pytest.approx(1.0, rel=0.02)
    assert scales[-1] == pytest.approx(math.sqrt(1 + 49 / 4), rel=1e-9)


def test_negative_alpha_starts_from_the_reverse_fit():
    p = mixture_2d(2, radius=2.5, scale=0.6)
    # one start each (the modes tie, so with several starts either could be kept)
    rev = fit_gaussian(p, "reverse", seed=2, n_init=1)
    fit = fit_gaussian(p, "alpha", alpha=-1.0, seed=2, n_init=1)
    # D_{-1}(p||q) = D_2(q||p) = (integral q^2/p - 1)/2 is minimised at one component
    assert fit.converged and abs(float(fit.loc[0])) == pytest.approx(2.5, abs=0.01)
    assert float(fit.scale.max()) == pytest.approx(0.6, rel=0.01)
    assert float(fit.loc[0]) * float(rev.loc[0]) > 0  # continued from the reverse fit's mode


# --------------------------------------------------------------- bad input
class _NanTarget(Distribution):
    arg_constraints = {}
    support = constraints.real

    def __init__(self):
        super().__init__(torch.Size(), torch.Size(), validate_args=False)

    def log_prob(self, x):
        return torch.where(x > 1.5, torch.full_like(x, math.nan), -0.5 * x**2)

    @property
    def mean(self):
        return torch.zeros((), dtype=F64)

    @property
    def variance(self):
        return torch.ones((), dtype=F64)


def test_non_finite_target_log_density_is_reported_naming_the_target():
    with pytest.raises(NonFiniteTargetError, match="_NanTarget"):
        fit_gaussian(_NanTarget(), "reverse")
    with pytest.raises(NonFiniteTargetError, match="_NanTarget"):
        fit_gaussian(_NanTarget(), "reverse", method="stochastic")


def test_forward_without_sampler_or_proposal_names_the_alternatives():
    three_d = LogProbOnly(_gaussian(SIGMA_3D))
    with pytest.raises(ValueError, match="proposal") as info:
        fit_gaussian(three_d, "forward")
    assert "quadrature" in str(info.value) and "moments" in str(info.value)
    with pytest.raises(ValueError, match="cannot sample"):
        fit_gaussian(Ring(), "forward", method="samples")
    with pytest.raises(ValueError, match="proposal"):
        fit_gaussian(Ring(), "forward", method="snis")


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(divergence="alpha"), ValueError, "needs alpha"),
    (dict(divergence="alpha", alpha=float("nan")), ValueError, "finite"),
    (dict(divergence="alpha", alpha="half"), TypeError, "real number"),
    (dict(divergence="reverse", alpha=0.5), ValueError, "only used"),
    (dict(divergence="kl"), ValueError, "divergence"),
    (dict(divergence="reverse", family="block"), ValueError, "family"),
    (dict(divergence="reverse", method="moments"), ValueError, "does not apply"),
    (dict(divergence="reverse", init={"loc": [0.0, 0.0, 0.0]}), ValueError, "D=2"),
    (dict(divergence="reverse", init={"loc": [0.0, 0.0], "scale": [1.0]}), ValueError, "D=2"),
    (dict(divergence="reverse", family="diagonal",
          init={"loc": [0.0, 0.0], "covariance": [[1.0, 0.5], [0.5, 1.0]]}), ValueError, "diagonal"),
    (dict(divergence="reverse", init={"loc": [0.0, 0.0], "covariance": [[1.0]]}), ValueError,
     r"\(2, 2\)"),
    (dict(divergence="forward", proposal=Normal(0.0, 1.0)), ValueError, "event shape"),
    (dict(divergence="reverse", num_samples=1, method="stochastic"), ValueError, "num_samples"),
])
def test_bad_arguments_raise_clear_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        fit_gaussian(correlated_gaussian(0.5), **kwargs)


def test_batched_or_non_distribution_targets_are_rejected():
    with pytest.raises(ValueError, match="unbatched"):
        fit_gaussian(Normal(torch.zeros(3), 1.0), "reverse")
    with pytest.raises(TypeError, match="torch.distributions"):
        fit_gaussian(lambda x: -x**2, "reverse")


def test_too_few_steps_warn_and_never_return_nan():
    with pytest.warns(ConvergenceWarning):
        fit = fit_gaussian(bimodal_1d(6.0), "reverse", steps=1)
    assert bool(torch.isfinite(fit.loc)) and bool(torch.isfinite(fit.covariance))


def test_sgd_with_fresh_noise_converges_near_the_quadrature_fit():
    p = bimodal_1d(6.0)
    init = {"loc": 2.0, "scale": 1.0}
    quad = fit_gaussian(p, "reverse", init=init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sgd = fit_gaussian(p, "reverse", init=init, method="stochastic", optimizer="adam",
                           num_samples=256, steps=1500, lr=0.02)
    assert float(sgd.loc) == pytest.approx(float(quad.loc), abs=0.1)
    assert float(sgd.scale) == pytest.approx(float(quad.scale), abs=0.1)


def test_base_noise_has_exact_first_two_moments():
    eps = base_noise(101, 3, torch.Generator().manual_seed(0))
    assert eps.shape == (102, 3)
    torch.testing.assert_close(eps.mean(0), torch.zeros(3, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(eps.mT @ eps / 102, torch.eye(3, dtype=F64), atol=1e-12, rtol=0)


def test_one_dimensional_fit_needs_few_objective_evaluations():
    # Speed is measured in benchmarks/bench_fitting.py; here only the machine-independent
    # part: a 1-D fit converges in a few dozen objective evaluations.
    fit = fit_gaussian(bimodal_1d(6.0), "reverse")
    assert fit.converged and fit.n_evals <= 60, fit.n_evals


def test_moving_grid_avoids_the_fixed_grid_spurious_minimum_of_reverse_kl():
    from vitoolkit.divergences import kl_divergence, make_grid
    from vitoolkit.fitting.family import GaussianParams
    from vitoolkit.fitting.objectives import (
        ReverseKLQuadrature,
        ReverseKLReparam,
        Target,
        whitened_grid,
    )

    p = correlated_gaussian(0.9)
    minimum = -0.5 * math.log(1 - 0.81)  # the best mean-field reverse KL (Bishop 10.1.2)
    fixed = ReverseKLQuadrature(Target(p), make_grid([(-7, 7), (-7, 7)], 101))
    moving = ReverseKLReparam(Target(p), 0, None, nodes=whitened_grid(121, 2))
    for scale in (0.5, 1000.0):
        q = GaussianParams(torch.zeros(2, dtype=F64), scale * torch.eye(2, dtype=F64), "diagonal")
        exact = float(kl_divergence(q.distribution(), p))
        assert float(moving.loss(q).detach()) == pytest.approx(exact, rel=1e-9)
        if scale == 0.5:
            assert float(fixed.loss(q).detach()) == pytest.approx(exact, rel=1e-9)
    # a q far wider than the grid keeps only a sliver of its mass on it: the fixed-grid
    # objective then drops below the true minimum, a minimum that does not exist
    assert float(fixed.loss(q).detach()) < minimum < exact


# --------------------------------------------------------------- one core, one warning class
def test_one_convergence_warning_and_non_finite_error_class():
    import sklearn.exceptions

    import vitoolkit.exceptions as exc
    import vitoolkit.fitting as fitting
    from vitoolkit.fitting import gaussian_fit, optimise

    assert ConvergenceWarning is exc.ConvergenceWarning
    assert fitting.ConvergenceWarning is optimise.ConvergenceWarning is gaussian_fit.ConvergenceWarning
    assert issubclass(ConvergenceWarning, sklearn.exceptions.ConvergenceWarning)
    assert issubclass(NonFiniteTargetError, exc.NonFiniteError)
    assert issubclass(NonFiniteTargetError, ValueError)
    assert UnreliableEstimateWarning is exc.UnreliableEstimateWarning


def test_importing_fitting_does_not_import_sklearn():
    import subprocess
    import sys

    code = "import sys, vitoolkit.fitting; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_sigma_points_give_the_weighted_sum_of_any_gaussian_log_density(gen):
    from vitoolkit.fitting.objectives import sigma_points

    x = torch.randn(500, 3, generator=gen, dtype=F64) * torch.tensor([1.0, 3.0, 0.5], dtype=F64)
    w = torch.rand(500, generator=gen, dtype=F64) * 2.7
    nodes, weights = sigma_points(x, w)
    assert nodes.shape == (6, 3) and float(weights.sum()) == pytest.approx(float(w.sum()), rel=1e-14)
    for _ in range(3):
        a = torch.randn(3, 3, generator=gen, dtype=F64)
        q = MultivariateNormal(torch.randn(3, generator=gen, dtype=F64),
                               covariance_matrix=a @ a.mT + 0.1 * torch.eye(3, dtype=F64))
        direct = (w * q.log_prob(x)).sum()
        assert float((weights * q.log_prob(nodes)).sum()) == pytest.approx(float(direct), rel=1e-12)
    # points on a line: the identity still holds (any factor of the covariance will do)
    line = torch.stack([torch.arange(5.0, dtype=F64)] * 2, -1)
    nodes, weights = sigma_points(line, torch.ones(5, dtype=F64))
    direct = q.log_prob(torch.cat([line, torch.zeros(5, 1, dtype=F64)], -1)).sum()
    padded = torch.cat([nodes, torch.zeros(nodes.shape[0], 1, dtype=F64)], -1)
    assert float((weights * q.log_prob(padded)).sum()) == pytest.approx(float(direct), rel=1e-10)
    # a covariance without a Cholesky factor (one point) keeps the points themselves
    one = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    same, same_w = sigma_points(one, torch.tensor([2.0], dtype=F64))
    assert torch.equal(same, one) and torch.equal(same_w, torch.tensor([2.0], dtype=F64))


def test_family_log_density_and_entropy_are_torchs(gen):
    from vitoolkit.fitting.family import GaussianParams

    x = torch.randn(50, 3, generator=gen, dtype=F64) * 2
    a = torch.randn(3, 3, generator=gen, dtype=F64)
    tril = torch.linalg.cholesky(a @ a.mT + 0.2 * torch.eye(3, dtype=F64))
    loc = torch.randn(3, generator=gen, dtype=F64)
    full = GaussianParams(loc, tril, "full")
    mvn = MultivariateNormal(loc, scale_tril=tril)
    torch.testing.assert_close(full.log_prob(x).detach(), mvn.log_prob(x), rtol=1e-13, atol=1e-12)
    assert float(full.entropy().detach()) == pytest.approx(float(mvn.entropy()), rel=1e-13, abs=1e-13)
    diag = GaussianParams(loc, torch.diag(torch.diagonal(tril)), "diagonal")
    ind = torch.distributions.Independent(Normal(loc, torch.diagonal(tril)), 1)
    torch.testing.assert_close(diag.log_prob(x).detach(), ind.log_prob(x), rtol=1e-13, atol=1e-12)
    assert float(diag.entropy().detach()) == pytest.approx(float(ind.entropy()), rel=1e-13, abs=1e-13)


# --------------------------------------------------------------- registry and settings
def test_every_registered_route_recovers_a_gaussian_target():
    from vitoolkit.fitting import OBJECTIVES

    p = correlated_gaussian(0.6, (1.2, 0.8), (0.5, -1.0))
    cov = p.covariance_matrix
    proposal = _gaussian(4.0 * torch.eye(2))
    assert set(OBJECTIVES) == {("reverse", "quadrature"), ("reverse", "stochastic"),
                               ("alpha", "quadrature"), ("alpha", "stochastic"),
                               ("forward", "quadrature"), ("forward", "samples"),
                               ("forward", "snis"), ("forward", "moments")}
    n = 40_000
    for divergence, method in OBJECTIVES:
        alpha = 0.5 if divergence == "alpha" else None
        fit = fit_gaussian(p, divergence, alpha=alpha, method=method, num_samples=n,
                           proposal=proposal if method == "snis" else None, value_samples=0,
                           n_init=1)  # a Gaussian target: one optimum
        assert fit.method == method
        if method in ("samples", "snis"):
            ess = n if method == "samples" else fit.ess
            se = torch.diagonal(cov).sqrt() / math.sqrt(ess)
            assert_mc_close(fit.loc, p.loc, se)
            assert_mc_close(torch.diagonal(fit.covariance), torch.diagonal(cov),
                            torch.diagonal(cov) * math.sqrt(2 / ess))
        else:
            torch.testing.assert_close(fit.loc, p.loc, rtol=0, atol=1e-7)
            torch.testing.assert_close(fit.covariance, cov, rtol=1e-6, atol=1e-7)


def test_an_unregistered_pair_lists_the_registered_ones():
    from vitoolkit.fitting.routes import objective_for

    with pytest.raises(ValueError, match=r"Registered \(divergence, method\) pairs: .*'forward', "
                                         r"'moments'"):
        fit_gaussian(correlated_gaussian(0.5), "reverse", method="samples")
    with pytest.raises(ValueError, match="does not apply"):
        objective_for("alpha", "moments")


def test_settings_are_grouped_typed_and_resolved():
    from vitoolkit.fitting.settings import build_settings

    base = dict(alpha=None, family="full", method="auto", init=None, n_init=2, proposal=None,
                num_samples=None, bounds=None, num_points=None, optimizer="lbfgs", steps=None,
                lr=None, tol=1e-12, resample=True, value_samples=100, generator=None, seed=3)
    s = build_settings(Banana(), "reverse", **base)
    assert (s.kind, s.method) == ("reverse", "quadrature")
    assert (s.optimiser.name, s.optimiser.steps, s.optimiser.lr) == ("lbfgs", 200, None)
    assert s.grid.used and s.grid.bounds == tuple(Banana().quadrature_bounds)
    assert s.grid.num_points == 101 and s.starts.n_init == 2 and s.starts.inits is None
    s = build_settings(_gaussian(SIGMA_3D), "alpha", **{**base, "alpha": 0.3,
                                                       "optimizer": "adam"})
    assert (s.method, s.optimiser.steps, s.sampling.num_samples) == ("stochastic", 3000, 2048)
    assert not s.grid.used and s.grid.spec is None
    s = build_settings(bimodal_1d(), "alpha", **{**base, "alpha": 1, "init": {"loc": 1.0}})
    assert (s.divergence, s.kind, s.method) == ("alpha", "forward", "moments")
    assert s.starts.inits[0].loc.shape == (1,) and s.sampling.num_samples == 20_000


def test_reference_moments_are_not_computed_when_init_and_bounds_are_given(monkeypatch):
    import vitoolkit.fitting.settings as settings_module

    def refuse(*args, **kwargs):
        raise AssertionError("reference_moments called although init and bounds were given")

    monkeypatch.setattr(settings_module, "reference_moments", refuse)
    p = bimodal_1d(6.0)
    fit = fit_gaussian(p, "reverse", init={"loc": 2.0, "scale": 1.0}, bounds=[(-12.0, 12.0)])
    assert abs(float(fit.loc) - 3.0) < 0.1
    fit = fit_gaussian(p, "forward", method="quadrature", init={"loc": 0.0, "scale": 3.0},
                       bounds=[(-12.0, 12.0)])
    assert float(fit.covariance) == pytest.approx(1 + 9, rel=1e-6)
    with pytest.raises(AssertionError, match="reference_moments called"):
        fit_gaussian(p, "reverse")  # random starts need it


# --------------------------------------------------------------- the boundary (issue 12)
@pytest.mark.parametrize("kwargs,err,name", [
    (dict(tol=True), TypeError, "tol"),
    (dict(tol=-1.0), ValueError, "tol"),
    (dict(tol="1e-9"), TypeError, "tol"),
    (dict(steps=True), TypeError, "steps"),
    (dict(steps=10.0), TypeError, "steps"),
    (dict(steps=0), ValueError, "steps"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=2**70), ValueError, "seed"),
    (dict(n_init=2.0), TypeError, "n_init"),
    (dict(num_samples="2048", method="stochastic"), TypeError, "num_samples"),
    (dict(num_points=100.0), TypeError, "num_points"),
    (dict(num_points=2), ValueError, "num_points"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr="0.1"), TypeError, "lr"),
    (dict(resample=1), TypeError, "resample"),
    (dict(value_samples=1), ValueError, "value_samples"),
    (dict(value_samples=-5), ValueError, "value_samples"),
    (dict(generator=0), TypeError, "generator"),
    (dict(optimizer="sgd"), ValueError, "optimizer"),
    (dict(bounds=[(-5.0, 5.0)]), ValueError, "bounds"),
    (dict(bounds=[(-5.0, 5.0), (True, 5.0)]), TypeError, "bounds"),
    (dict(bounds=[(-5.0, 5.0), (5.0, -5.0)]), ValueError, "bounds"),
    (dict(bounds=[(-5.0, 5.0), torch.tensor(1.0)]), TypeError, r"bounds\[1\]"),
    (dict(bounds=torch.tensor(1.0)), TypeError, "bounds"),
    (dict(bounds=[(-5.0, 5.0), (float("nan"), 5.0)]), ValueError, "bounds"),
    (dict(init={"loc": [[0.0, 0.0]]}), ValueError, "init\\['loc'\\]"),
    (dict(init={"loc": [0.0, 0.0], "scale": [[1.0, 1.0]]}), ValueError, "init\\['scale'\\]"),
    (dict(init={"loc": ["0", "0"]}), TypeError, "init\\['loc'\\]"),
    (dict(init={"loc": [0.0, float("inf")]}), ValueError, "init\\['loc'\\]"),
    (dict(init={"loc": [0.0, 0.0], "scale": 1.0, "covariance": torch.eye(2)}), ValueError,
     "init"),
    (dict(init=[{"loc": [0.0, 0.0]}, {"loc": [0.0]}]), ValueError, "init\\[1\\]\\['loc'\\]"),
    (dict(init="centre"), TypeError, "init"),
    (dict(init=[]), ValueError, "init"),
    (dict(init={"loc": [0.0, 0.0], "covariance": [[1.0, 0.9], [0.0, 1.0]]}), ValueError,
     "symmetric"),
    (dict(init={"loc": [0.0, 0.0], "covariance": [[1.0, 2.0], [2.0, 1.0]]}), ValueError,
     "positive definite"),
])
def test_fit_gaussian_refuses_bad_values_naming_the_argument(kwargs, err, name):
    with pytest.raises(err, match=name):
        fit_gaussian(correlated_gaussian(0.5), "reverse", **kwargs)


def test_oversized_requests_are_refused_before_allocating(monkeypatch):
    import resource

    from vitoolkit.exceptions import ResourceLimitError

    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "1G")
    p = correlated_gaussian(0.5)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ResourceLimitError, match="num_samples=1000000000000"):
        fit_gaussian(p, "reverse", method="stochastic", num_samples=10**12)
    with pytest.raises(ResourceLimitError, match="num_points=200000"):
        fit_gaussian(p, "forward", method="quadrature", num_points=200_000)
    with pytest.raises(ResourceLimitError, match="value_samples"):
        fit_gaussian(p, "reverse", value_samples=10**11)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 100_000  # nothing near the requested terabytes was touched


def test_fit_alpha_sweep_checks_its_alphas():
    with pytest.raises(TypeError, match=r"alphas\[1\]"):
        fit_alpha_sweep(correlated_gaussian(0.5), [0.5, "1"])
    with pytest.raises(TypeError, match="alphas"):
        fit_alpha_sweep(correlated_gaussian(0.5), 0.5)
    with pytest.raises(TypeError, match="warm_start"):
        fit_alpha_sweep(correlated_gaussian(0.5), [0.5], warm_start="yes")
    with pytest.raises(TypeError, match="sets alpha itself"):
        fit_alpha_sweep(correlated_gaussian(0.5), [0.5], alpha=0.3)


def test_scalar_event_targets_take_scalar_or_length_one_inits_only():
    p = bimodal_1d(6.0)
    a = fit_gaussian(p, "reverse", init={"loc": 2.0, "scale": 1.0}, value_samples=0)
    b = fit_gaussian(p, "reverse", init={"loc": [2.0], "scale": [1.0]}, value_samples=0)
    assert float(a.loc) == float(b.loc)
    with pytest.raises(ValueError, match=r"init\['loc'\] must have shape \(\) or \(1,\)"):
        fit_gaussian(p, "reverse", init={"loc": [[2.0]]})


def test_a_diverging_step_size_is_reported_as_such_not_as_a_bad_target():
    from vitoolkit.fitting import OptimiserDivergedError

    with pytest.raises(OptimiserDivergedError, match=r"lr=1e\+30.*smaller lr") as info:
        fit_gaussian(correlated_gaussian(0.5), "reverse", lr=1e30, steps=5, value_samples=0)
    assert isinstance(info.value, FloatingPointError) and isinstance(info.value, ValueError)


def test_alpha_beyond_its_limit_is_refused_by_name():
    with pytest.raises(ValueError, match="alpha must be <= 100"):
        fit_gaussian(correlated_gaussian(0.5), "alpha", alpha=1e10)
    with pytest.raises(ValueError, match=r"alphas\[0\] must be >= -100"):
        fit_alpha_sweep(correlated_gaussian(0.5), [-1e300])
