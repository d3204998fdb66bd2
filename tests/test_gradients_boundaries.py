"""The public boundary of vitoolkit.gradients and vitoolkit.conjugate (issue 12).

Inputs so large that the computation overflows float64 are refused by a ValueError that
names the argument responsible; inputs that are large but still representable keep giving
the closed-form answer, checked here against plain Python arithmetic.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from vitoolkit import gradients
from vitoolkit.conjugate import ConjugateGaussian, independent_copies_relative_variance

F64 = torch.float64


def t64(*values):
    return torch.tensor(values, dtype=F64)


# -- costs and make_cost ----------------------------------------------------------------


@pytest.mark.parametrize("name", [True, None, 1, b"linear", object(), 1 + 1j])
def test_make_cost_refuses_a_name_that_is_not_a_string(name):
    with pytest.raises(TypeError, match=r"^name must be a str"):
        gradients.make_cost(name)


def test_make_cost_lists_the_valid_names_for_an_unknown_one():
    with pytest.raises(ValueError, match=r"^name must be one of \['cosine', 'gaussian'"):
        gradients.make_cost("no-such-cost")
    assert isinstance(gradients.make_cost("step", 0.5), gradients.Step)


@pytest.mark.parametrize("cls", [gradients.Linear, gradients.Quadratic, gradients.Cosine,
                                 gradients.GaussianBump, gradients.Step])
def test_cost_refuses_an_empty_k_and_a_k_that_does_not_broadcast(cls):
    with pytest.raises(ValueError, match=r"^k must hold at least one value"):
        cls(torch.zeros(0, dtype=F64))
    cost = cls(t64(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match=r"^k of shape \(3,\) does not broadcast"):
        cost.expectation(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
    with pytest.raises(ValueError, match=r"^k of shape \(3,\) does not broadcast"):
        cost.exact_gradient(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
    with pytest.raises(ValueError, match=r"^k of shape \(3,\) does not broadcast"):
        cost(torch.zeros(4, 2, dtype=F64))


def test_quadratic_expectation_names_k_when_it_overflows_and_is_exact_below():
    loc, scale = t64(0.5, -0.5), t64(1.0, 2.0)
    with pytest.raises(ValueError, match=r"k is too large \(magnitude up to 1e\+200\)"):
        gradients.Quadratic(1e200).expectation(loc, scale)
    # 1e100 is large but its square fits: the closed form sum_d (mu_d - k)^2 + sigma_d^2.
    k = 1e100
    exact = sum((m - k) ** 2 + s**2 for m, s in ((0.5, 1.0), (-0.5, 2.0)))
    assert gradients.Quadratic(k).expectation(loc, scale).item() == pytest.approx(exact, rel=1e-15)


def test_step_gradient_names_a_scale_too_small_for_float64():
    with pytest.raises(ValueError, match=r"scale is too small \(down to 1e-320\)"):
        gradients.exact_gaussian_gradient(gradients.Step(), t64(0.0, 0.5), t64(1e-320, 1.0))


# -- estimators ---------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", gradients.ESTIMATORS)
@pytest.mark.parametrize(("loc", "scale", "culprit"), [
    ((1e300, 0.5), (1.0, 2.0), "loc"),
    ((-8e158, 0.5), (1.0, 2.0), "loc"),
    ((0.5, -0.5), (2.6e199, 2.0), "scale"),
])
def test_gaussian_gradients_name_the_argument_that_overflows(estimator, loc, scale, culprit):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=rf"{culprit} is too large"):
        gradients.gaussian_gradients(gradients.Quadratic(), t64(*loc), t64(*scale),
                                     estimator=estimator, num_samples=16, generator=g)


def test_gaussian_gradients_name_loc_when_only_the_score_products_overflow():
    # f ~ 1e280 is finite, but f * eps / scale with scale 1e-40 is not.
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"'score' gradient estimates: 32 of 64 values are not "
                                         r"finite .*: loc is too large \(magnitude up to 1e\+140\)"):
        gradients.gaussian_gradients(gradients.Quadratic(), t64(1e140, 0.5), t64(1e-40, 1.0),
                                     estimator="score", num_samples=16, generator=g)


def test_large_but_representable_loc_keeps_the_unbiased_pathwise_estimate():
    # Quadratic pathwise: d/d loc = 2 (x - k) = 2 (loc - k) + 2 scale eps; its mean over
    # draws is within a few standard errors of the exact 2 (loc - k), even at loc = 1e100.
    g = torch.Generator().manual_seed(3)
    loc, scale = t64(1e100, 0.5), t64(1.0, 2.0)
    s = gradients.gaussian_gradients(gradients.Quadratic(), loc, scale, estimator="pathwise",
                                     num_samples=4000, generator=g)
    exact, _ = gradients.exact_gaussian_gradient(gradients.Quadratic(), loc, scale)
    assert torch.isfinite(s.loc).all() and torch.isfinite(s.scale).all()
    assert exact[0].item() == 2e100
    assert abs(s.loc[:, 1].mean().item() - exact[1].item()) < 4 * s.loc[:, 1].std().item() / math.sqrt(4000)


@pytest.mark.parametrize(("loc", "scale", "culprit"), [
    ((2.6e199, 0.5), (1.0, 2.0), "loc"),
    ((0.5, -0.5), (2.9e271, 2.0), "scale"),
])
def test_gauss_hermite_expectation_names_the_argument_that_overflows(loc, scale, culprit):
    with pytest.raises(ValueError, match=rf"{culprit} is too large"):
        gradients.gauss_hermite_expectation(gradients.Quadratic(), t64(*loc), t64(*scale))
    # A cost that is not separable goes through the tensor-product rule: same naming.
    with pytest.raises(ValueError, match=rf"{culprit} is too large"):
        gradients.gauss_hermite_expectation(lambda x: (x**2).sum(-1), t64(*loc), t64(*scale))


# -- the conjugate model ------------------------------------------------------------------


def test_independent_copies_refuses_invalid_and_overflowing_variances():
    for bad in (-0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"^relative_variance"):
            independent_copies_relative_variance(bad, 3)
    for copies in (10**12, 2**70):
        with pytest.raises(ValueError, match=r"num_copies=\d+ and relative_variance up to 0.5"):
            independent_copies_relative_variance(0.5, copies)
    # No overflow when nothing grows: (1 + 0)^d - 1 = 0 even for d = 2**70.
    assert independent_copies_relative_variance(0.0, 2**70).item() == 0.0
    # (1 + v)^d - 1 against Python's arithmetic, up to the largest representable result.
    assert independent_copies_relative_variance(0.5, 10).item() == pytest.approx(1.5**10 - 1, rel=1e-14)
    d = 1750  # 1.5**1750 ~ 1e308
    assert independent_copies_relative_variance(0.5, d).item() == pytest.approx(1.5**d, rel=1e-12)


@pytest.mark.parametrize(("kwargs", "culprit"), [
    ({"prior_loc": 1e300}, "prior_loc is too large"),
    ({"prior_std": 1e300}, "prior_std is too large"),
    ({"noise_scale": 1e-300}, "noise_scale is too small"),
])
def test_log_evidence_names_the_model_parameter_that_overflows(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        ConjugateGaussian(**kwargs).log_evidence(t64(0.5, 1.0))


def test_data_too_large_for_float64_is_refused_by_name():
    model, q = ConjugateGaussian(), Normal(t64(0.0)[0], t64(1.0)[0])
    with pytest.raises(ValueError, match=r"^x is too large: its mean or sum of squared deviations"):
        model.log_evidence(t64(0.5, 1.0, -0.3) * 1e300)
    big = t64(1e160, 1e160)  # statistics fit; (xbar - m)^2 does not
    for call in (lambda: model.log_evidence(big), lambda: model.elbo(big, q),
                 lambda: model.elbo_monte_carlo(big, q, 8),
                 lambda: model.importance_evidence(big, q, 8),
                 lambda: model.elbo_quadrature(big, q),
                 lambda: model.gradient_fit(big, num_steps=2)):
        with pytest.raises(ValueError, match=r"x \(mean -/\+ sd\) is too large"):
            call()


def test_elbo_monte_carlo_refuses_a_q_over_vectors():
    q = MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match=r"^q must be a distribution over the scalar z"):
        ConjugateGaussian().elbo_monte_carlo(t64(0.5, 1.0), q, 8)


def test_gradient_fit_blames_lr_when_the_iterates_diverge():
    model, x = ConjugateGaussian(), t64(0.5, 1.0, -0.3)
    with pytest.raises(ValueError, match=r"diverged at step 1: .* lr=1e\+300 is too large"):
        model.gradient_fit(x, num_steps=5, lr=1e300)
    with pytest.raises(ValueError, match=r"exp\(init\[1\]\) is too large"):
        model.gradient_fit(x, init=(0.0, 800.0, 0.0), num_steps=5)
    # A step size that is large but stable still converges to the exact answer:
    # the prior mean to mean(x) (marginal maximum likelihood), q to the posterior.
    path = model.gradient_fit(x, num_steps=400, lr=0.2)
    post = model.with_prior_loc(x.mean()).posterior(x)
    assert path.prior_loc[-1].item() == pytest.approx(x.mean().item(), abs=1e-6)
    assert path.loc[-1].item() == pytest.approx(post.loc.item(), abs=1e-6)


def test_elbo_surface_refuses_log_scales_outside_the_float64_range_by_name():
    model, x, means = ConjugateGaussian(), t64(0.5, 1.0, -0.3), torch.linspace(-1, 1, 5, dtype=F64)
    for bad in (-1e10, 1e199, 701.0):
        with pytest.raises(ValueError, match=r"^log_scales must lie in \[-700, 700\]"):
            model.elbo_surface(x, means, t64(bad, 0.0))
    with pytest.raises(ValueError, match=r"exp\(log_scales\) is too large"):
        model.elbo_surface(x, means, t64(600.0, 0.0))
    with pytest.raises(ValueError, match=r"means is too large"):
        model.elbo_surface(x, t64(1e300, 0.0), t64(0.0))
    # Within range the surface still satisfies ELBO + KL = log p(x) everywhere.
    surf = model.elbo_surface(x, means, t64(-300.0, 0.0, 300.0))
    assert torch.isfinite(surf.elbo).all()
    torch.testing.assert_close(surf.elbo[1] + surf.kl[1], surf.log_evidence.expand(5))


def test_elbo_quadrature_width_is_bounded_where_q_underflows():
    model, x = ConjugateGaussian(), t64(0.5, 1.0, -0.3)
    q = Normal(t64(0.3)[0], t64(0.8)[0])
    with pytest.raises(ValueError, match=r"^width must be <= 37"):
        model.elbo_quadrature(x, q, width=1e300)
    # At the largest width the trapezoidal rule still agrees with the closed form.
    wide = model.elbo_quadrature(x, q, num_points=40001, width=37.0)
    assert wide.item() == pytest.approx(model.elbo(x, q).item(), abs=1e-9)


def test_experiments_name_their_cost_argument_and_the_k_that_overflows():
    from vitoolkit.gradients import experiments

    with pytest.raises(ValueError, match=r"^cost must be one of \['cosine'"):
        experiments.estimator_table("no-such-cost", num_samples=10)
    with pytest.raises(TypeError, match=r"^cost must be a str"):
        experiments.variance_vs_k(None, [1.0], num_samples=10)
    with pytest.raises(ValueError, match=r"the cost's k is too large \(magnitude up to 1e\+300\)"):
        experiments.estimator_table("quadratic", k=1e300, num_samples=10)


def test_run_bbvi_blames_the_start_or_the_learning_rate():
    from vitoolkit.gradients import bbvi

    data = torch.randn(20, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"^data is too large"):
        bbvi.ConjugateGaussianModel(data * 1e300)
    model = bbvi.ConjugateGaussianModel(data)

    def run(**kwargs):
        return bbvi.run_bbvi(model, estimator="pathwise", num_iterations=5, num_samples=8,
                             generator=torch.Generator().manual_seed(0), **kwargs)

    with pytest.raises(ValueError, match=r"diverged at iteration 1 .* learning_rate=1e\+300 is too large"):
        run(learning_rate=1e300)
    with pytest.raises(ValueError, match=r"^run_bbvi cannot start from init_loc/init_scale .* loc is too"):
        run(init_loc=t64(1e300, 0.0))
    result = run()  # the ordinary run is untouched: its ELBO rises towards log p(x)
    assert result.elbo[-1] > result.elbo[0] and result.elbo[-1] <= model.log_evidence() + 1e-9
