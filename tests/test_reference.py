"""Reference posteriors (vitoolkit.fitting.reference): the grid against closed forms, and
Pyro's NUTS against the numerically exact grid posterior of a 2-D logistic regression."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from vitoolkit.fitting.laplace import laplace_approximation
from vitoolkit.fitting.logistic import LogisticPosterior, make_toy_data
from vitoolkit.fitting.reference import grid_reference, nuts_reference

F64 = torch.float64


def test_grid_reference_on_a_gaussian_is_exact():
    cov = torch.tensor([[1.5, -0.8], [-0.8, 1.0]], dtype=F64)
    loc = torch.tensor([0.5, -1.0], dtype=F64)
    target = MultivariateNormal(loc, cov)
    bounds = [(0.5 - 12, 0.5 + 12), (-1 - 12, -1 + 12)]
    ref = grid_reference(target, bounds, num_points=241)
    torch.testing.assert_close(ref.mean, loc, atol=1e-10, rtol=0)
    torch.testing.assert_close(ref.covariance, cov, atol=1e-10, rtol=0)
    assert abs(ref.log_normaliser) < 1e-10  # a normalised density integrates to 1
    assert ref.density.shape == (241, 241) and ref.points.shape == (241**2, 2)
    assert float(ref.weights.sum()) == pytest.approx(1.0, abs=1e-12)


def test_grid_reference_1d():
    target = MultivariateNormal(torch.tensor([2.0], dtype=F64), torch.tensor([[0.25]], dtype=F64))
    ref = grid_reference(target, [(-4.0, 8.0)], num_points=2001)
    assert float(ref.mean) == pytest.approx(2.0, abs=1e-10)
    assert float(ref.std) == pytest.approx(0.5, abs=1e-10)


def test_grid_reference_refuses_a_grid_that_cuts_the_mass():
    target = MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="widen bounds"):
        grid_reference(target, [(-1.0, 6.0), (-6.0, 6.0)], num_points=101)
    with pytest.raises(ValueError, match="target must have event shape .* 1-D and 2-D"):
        grid_reference(MultivariateNormal(torch.zeros(3, dtype=F64), torch.eye(3, dtype=F64)),
                       [(-5, 5)] * 3)
    with pytest.raises(ValueError, match="one \\(lo, hi\\) per dimension"):
        grid_reference(target, [(-6.0, 6.0)])


@pytest.fixture(scope="module")
def toy():
    X, y = make_toy_data(40, weights=(1.5, 1.5), correlation=0.9,
                         generator=torch.Generator().manual_seed(1))
    post = LogisticPosterior(X, y, prior_std=3.0, fit_intercept=False)
    lap = laplace_approximation(post, hessian=post.hessian)
    exact = grid_reference(post, post.box(lap.loc, lap.scale, 9.0), num_points=121)
    return post, lap, exact


@pytest.mark.parametrize("whiten", [True, False])
def test_nuts_matches_the_exact_posterior(toy, whiten):
    """NUTS's mean within 5 Monte Carlo standard errors of the grid's (false-failure rate
    ~6e-7 per coordinate if the ESS is right), and its std within 10%; both chains mixed."""
    pytest.importorskip("pyro")
    post, lap, exact = toy
    pre = (lap.loc, lap.covariance) if whiten else None
    ref = nuts_reference(post, num_samples=600, warmup_steps=200, num_chains=2, precondition=pre,
                         seed=0)
    assert ref.samples.shape == (1200, 2)
    assert float(ref.rhat.max()) < 1.02 and float(ref.ess.min()) > 200
    assert ref.num_divergences == 0
    err = (ref.mean - exact.mean).abs()
    assert bool((err < 5 * ref.mean_stderr).all()), (ref.mean, exact.mean, ref.mean_stderr)
    torch.testing.assert_close(ref.std, exact.std, rtol=0.1, atol=0)
    assert ref.method.startswith("nuts (pyro")


def test_nuts_is_seeded_and_leaves_the_global_generator_alone(toy):
    pytest.importorskip("pyro")
    post, lap, _ = toy
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = nuts_reference(post, num_samples=40, warmup_steps=60, num_chains=1,
                       precondition=(lap.loc, lap.covariance), seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    b = nuts_reference(post, num_samples=40, warmup_steps=60, num_chains=1,
                       precondition=(lap.loc, lap.covariance), seed=7)
    torch.testing.assert_close(a.samples, b.samples)
    assert math.isfinite(float(a.ess.min()))


def test_nuts_validates_its_arguments(toy):
    pytest.importorskip("pyro")
    post, lap, _ = toy
    with pytest.raises(ValueError, match="num_samples"):
        nuts_reference(post, num_samples=1)
    with pytest.raises(ValueError, match="precondition"):
        nuts_reference(post, num_samples=10, precondition=(torch.zeros(3), torch.eye(3)))
    with pytest.raises(TypeError, match="torch.distributions"):
        nuts_reference(object(), num_samples=10)


def test_grid_reference_refuses_bad_values_and_oversized_grids(monkeypatch):
    from vitoolkit.exceptions import NonFiniteError, ResourceLimitError
    from vitoolkit.fitting.logistic import LogisticPosterior

    target = MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    box = [(-6.0, 6.0), (-6.0, 6.0)]
    with pytest.raises(TypeError, match="num_points"):
        grid_reference(target, box, num_points=101.0)
    with pytest.raises(TypeError, match=r"bounds\[0\]\[1\]"):
        grid_reference(target, [(-6.0, "6"), (-6.0, 6.0)])
    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "1G")
    with pytest.raises(ResourceLimitError, match="num_points=200000"):
        grid_reference(target, box, num_points=200_000)
    broken = LogisticPosterior(torch.ones(4, 2, dtype=F64), torch.tensor([0.0, 1.0, 0.0, 1.0]),
                               fit_intercept=False)
    broken.labels = torch.full((4,), math.nan, dtype=F64)
    with pytest.raises(NonFiniteError, match="NaN or \\+inf"):
        grid_reference(broken, box, num_points=11)


def test_nuts_refuses_bad_values_before_sampling(toy):
    post, lap, _ = toy
    with pytest.raises(TypeError, match="seed"):
        nuts_reference(post, num_samples=10, seed=1.0)
    with pytest.raises(TypeError, match="num_chains"):
        nuts_reference(post, num_samples=10, num_chains=True)
    with pytest.raises(ValueError, match="init"):
        nuts_reference(post, num_samples=10, init=torch.zeros(1, 2, dtype=F64))
    with pytest.raises(TypeError, match="precondition"):
        nuts_reference(post, num_samples=10, precondition=lap.loc)
