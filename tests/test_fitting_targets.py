"""Targets of vitoolkit.fitting, their moments, the plots, and tutorial 03 (quick run)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from _stats import assert_mc_close, sample_variance_and_stderr

from vitoolkit.distributions import sample
from vitoolkit.divergences import make_grid
from vitoolkit.fitting import (
    Banana,
    LogProbOnly,
    Ring,
    bimodal_1d,
    correlated_gaussian,
    fit_gaussian,
    mixture_2d,
    target_moments,
)

ROOT = Path(__file__).resolve().parents[1]


def _grid_moments(dist, bounds, n=401):
    """Mass, mean and covariance of a 2-D density by the trapezoidal rule."""
    grid = make_grid(bounds, n)
    dens = torch.exp(dist.log_prob(grid.points))
    mass = grid.integrate(dens)
    mean = torch.stack([grid.integrate(dens * grid.points[..., i]) for i in range(2)])
    centred = grid.points - mean
    cov = torch.stack([torch.stack([grid.integrate(dens * centred[..., i] * centred[..., j])
                                    for j in range(2)]) for i in range(2)])
    return mass, mean, cov


@pytest.mark.parametrize("radius,width", [(2.5, 0.4), (1.5, 0.5), (3.0, 0.2)])
def test_ring_normalised_and_moments_match_quadrature(radius, width):
    ring = Ring(radius, width)
    mass, mean, cov = _grid_moments(ring, ring.quadrature_bounds, n=601)
    assert abs(float(mass) - 1) < 1e-8
    m, c = target_moments(ring)
    torch.testing.assert_close(mean, m, atol=1e-9, rtol=0)
    torch.testing.assert_close(cov, c, atol=1e-7, rtol=1e-7)


def test_ring_has_no_sampler_and_says_what_to_use():
    with pytest.raises(NotImplementedError, match="snis"):
        Ring().sample((3,))


def test_banana_normalised_and_moments_match_quadrature():
    banana = Banana(0.5, (1.5, 0.5))
    mass, mean, cov = _grid_moments(banana, banana.quadrature_bounds, n=801)
    assert abs(float(mass) - 1) < 1e-7
    m, c = target_moments(banana)
    torch.testing.assert_close(mean, m, atol=1e-6, rtol=0)
    torch.testing.assert_close(cov, c, atol=1e-5, rtol=1e-5)


def test_banana_samples_have_the_stated_moments(gen):
    banana = Banana(0.4, (1.2, 0.6))
    x = sample(banana, (200_000,), generator=gen)
    m, c = target_moments(banana)
    assert_mc_close(x.mean(0), m, x.std(0) / math.sqrt(x.shape[0]))
    var, se = sample_variance_and_stderr(x)
    assert_mc_close(var, torch.diagonal(c), se)
    # the log density is that of the sampler: x1 ~ N(0, s1^2) marginally
    assert torch.allclose(banana.log_prob(torch.tensor([[0.3, 0.1]])),
                          torch.distributions.Normal(0.0, 1.2).log_prob(torch.tensor(0.3)).double()
                          + torch.distributions.Normal(0.4 * (0.09 - 1.44), 0.6)
                          .log_prob(torch.tensor(0.1)).double())


@pytest.mark.parametrize("sep,weights", [(4.0, (0.5, 0.5)), (2.0, (0.2, 0.8))])
def test_bimodal_moments_are_the_closed_form(sep, weights, gen):
    p = bimodal_1d(sep, weights)
    m, c = target_moments(p)
    w1, w2 = weights
    assert float(m) == pytest.approx(w2 * sep / 2 - w1 * sep / 2, abs=1e-12)
    assert float(c) == pytest.approx(1 + w1 * w2 * sep**2, rel=1e-12)
    x = sample(p, (100_000,), generator=gen)
    var, se = sample_variance_and_stderr(x)
    assert_mc_close(var, c.reshape(()), se)


def test_mixture_2d_moments_match_samples(gen):
    p = mixture_2d(4, radius=2.0, scale=0.5, weights=[1, 2, 3, 4])
    m, c = target_moments(p)
    x = sample(p, (200_000,), generator=gen)
    assert_mc_close(x.mean(0), m, x.std(0) / math.sqrt(x.shape[0]))
    var, se = sample_variance_and_stderr(x)
    assert_mc_close(var, torch.diagonal(c), se)


def test_correlated_gaussian_covariance():
    p = correlated_gaussian(0.5, (2.0, 3.0), (1.0, -1.0))
    torch.testing.assert_close(p.covariance_matrix, torch.tensor([[4.0, 3.0], [3.0, 9.0]],
                                                                 dtype=torch.float64))


def test_log_prob_only_hides_sampler_and_moments():
    wrapped = LogProbOnly(Banana())
    with pytest.raises(NotImplementedError, match="proposal"):
        wrapped.sample((2,))
    assert target_moments(wrapped) is None
    x = torch.tensor([[0.1, 0.2]], dtype=torch.float64)
    assert torch.equal(wrapped.log_prob(x), Banana().log_prob(x))


@pytest.mark.parametrize("bad", [
    lambda: bimodal_1d(-1.0), lambda: bimodal_1d(2.0, (1.0, -1.0)), lambda: bimodal_1d(2.0, (1,)),
    lambda: correlated_gaussian(1.0), lambda: mixture_2d(0), lambda: mixture_2d(locs=[1.0, 2.0]),
    lambda: Banana(scales=(1.0, 0.0)), lambda: Ring(width=-1.0), lambda: LogProbOnly("p"),
])
def test_targets_validate_their_arguments(bad):
    with pytest.raises((ValueError, TypeError)):
        bad()


def test_plots_return_what_they_drew():
    from vitoolkit.plotting import fitting as fp
    from vitoolkit.plotting import subplots

    p1 = bimodal_1d(5.0)
    fits1 = [fit_gaussian(p1, d, value_samples=0, n_init=1) for d in ("reverse", "forward")]
    p2 = correlated_gaussian(0.8)
    fits2 = [fit_gaussian(p2, d, family="diagonal") for d in ("reverse", "forward")]
    fig, axes = subplots(1, 4)
    lines = fp.plot_fits_1d(p1, fits1, ["reverse", "forward"], (-8, 8), ax=axes[0])
    assert len(lines) == 3
    _, ells = fp.plot_fits_2d(p2, fits2, ["reverse", "forward"], [(-3, 3), (-3, 3)],
                              ax=axes[1])
    # a 2-sd ellipse of N(0, diag(v)) has axis lengths 4 sqrt(v)
    widths = sorted([ells[0].width, ells[0].height])
    assert widths == pytest.approx([4 * math.sqrt(1 - 0.64)] * 2, rel=1e-6)
    assert len(fp.plot_separation_sweep([1, 2], {"a": [1, 2], "b": [2, 3]}, ax=axes[2])) == 2
    runs = [fit_gaussian(p2, "reverse", method=m, n_init=1) for m in ("quadrature", "stochastic")]
    assert len(fp.plot_histories(runs, ["GH", "MC"], ax=axes[3])) == 2
    with pytest.raises(ValueError, match="empty history"):
        fp.plot_histories(fits2[1:], ["moments"])
    fig2, row = subplots(1, 2, squeeze=False)
    alpha_fits = [fit_gaussian(p2, "alpha", alpha=a, n_init=1) for a in (0.2, 0.8)]
    assert len(fp.plot_alpha_row(p2, alpha_fits, [(-3, 3), (-3, 3)], row[0])) == 2


@pytest.mark.tutorial_run("03_forward_vs_reverse_kl")
def test_tutorial_03_quick_run(quick_run):
    """Reads the session's seed-0 quick run (claims and figures: test_tutorials.py)."""
    run = quick_run("03_forward_vs_reverse_kl")
    out_dir = run.out
    summary = run.summary
    assert summary["quick"] is True
    assert summary["figures"], "the tutorial saved no figures"
    for name in summary["figures"]:
        assert (out_dir / f"{name}.png").stat().st_size > 0
    numbers = summary["numbers"]
    # the SNIS fits report their Pareto k-hat: small for the wide proposal, > 0.7 for the narrow
    assert numbers["forward_snis_khat"] < 0.5 < 0.7 < numbers["forward_narrow_snis_khat"]
    # the printed Bishop numbers are the closed forms
    assert numbers["bishop_reverse_var_x1"] == pytest.approx(numbers["bishop_closed_form_reverse_var_x1"],
                                                            rel=1e-6)
    assert numbers["bishop_forward_var_x1"] == pytest.approx(numbers["bishop_closed_form_forward_var_x1"],
                                                            rel=1e-6)


@pytest.mark.parametrize("bad,err,name", [
    (lambda: bimodal_1d("4"), TypeError, "separation"),
    (lambda: bimodal_1d(4.0, scale=True), TypeError, "scale"),
    (lambda: bimodal_1d(4.0, weights=[[0.5, 0.5]]), ValueError, "weights"),
    (lambda: correlated_gaussian(0.5, scales=(1.0, 1.0, 1.0)), ValueError, "scales"),
    (lambda: correlated_gaussian(0.5, loc=[[0.0, 0.0]]), ValueError, "loc"),
    (lambda: correlated_gaussian(float("nan")), ValueError, "rho"),
    (lambda: mixture_2d(2.0), TypeError, "n_modes"),
    (lambda: mixture_2d(locs=[[0.0, 0.0, 0.0]]), ValueError, "locs"),
    (lambda: mixture_2d(2, weights=[1.0, 1.0, 1.0]), ValueError, "weights"),
    (lambda: Banana(curvature="0.5"), TypeError, "curvature"),
    (lambda: Banana(scales=[1.0]), ValueError, "scales"),
    (lambda: Ring(radius=float("inf")), ValueError, "radius"),
    (lambda: target_moments("p"), TypeError, "target"),
])
def test_targets_name_the_bad_argument(bad, err, name):
    with pytest.raises(err, match=name):
        bad()
