"""Figures of tutorial 09 (vitoolkit.plotting.classification): each function draws what it
is given, returns it, and leaves a figure the figure check finds nothing wrong with."""

from __future__ import annotations

import numpy as np
import pytest

from vitoolkit.plotting import check_figure, subplots
from vitoolkit.plotting import classification as cplot


def _clean(fig):
    fig.canvas.draw()
    assert check_figure(fig) == []


def test_posterior_2d_draws_one_ellipse_per_fit():
    x1 = np.linspace(-3, 3, 41)
    x2 = np.linspace(-2, 2, 31)
    g1, g2 = np.meshgrid(x1, x2, indexing="ij")
    density = np.exp(-0.5 * (g1**2 + g2**2))
    fig, ax = subplots(1, 1)
    cs, ellipses = cplot.plot_posterior_2d((x1, x2), density,
                                           {"a": (np.zeros(2), np.eye(2)),
                                            "b": (np.ones(2) * 0.2, np.diag([0.5, 0.2]))},
                                           reference_mean=np.zeros(2), ax=ax)
    assert set(ellipses) == {"a", "b"}
    assert ellipses["a"].width == pytest.approx(4.0)  # 2 std either side of a unit variance
    _clean(fig)


def test_surface_with_data_and_boundary():
    x = np.linspace(-2, 2, 30)
    g1, g2 = np.meshgrid(x, x, indexing="xy")
    prob = 1 / (1 + np.exp(-(g1 + g2)))
    X = np.array([[-1.0, -1.0], [1.0, 1.0], [0.5, -0.2]])
    y = np.array([0, 1, 1])
    fig, ax = subplots(1, 1)
    cs = cplot.plot_surface(x, x, prob, X=X, y=y, ax=ax, levels=np.linspace(0, 1, 11),
                            boundary=prob, title="p")
    assert len(cs.levels) == 11
    assert len(ax.collections) >= 3  # filled contours, the 0.5 line, the two classes
    _clean(fig)


def test_std_vs_reference_and_mean_offsets():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.3, 1.0, 31)
    fig, axes = subplots(1, 2)
    out = cplot.plot_std_vs_reference(ref, {"mf": 0.6 * ref, "fr": ref * 1.01}, ax=axes[0])
    assert set(out) == {"mf", "fr", "y = x"}
    np.testing.assert_allclose(out["mf"].get_offsets()[:, 1], 0.6 * ref)
    assert axes[0].get_xscale() == "log"
    offs = cplot.plot_mean_offsets({"a": rng.normal(size=31), "b": rng.normal(size=31) * 0.1},
                                   ax=axes[1])
    assert len(offs["a"].get_offsets()) == 31
    _clean(fig)


def test_reliability_and_costs():
    fig, axes = subplots(1, 2, size=5)
    out = cplot.plot_reliability({"a": (np.array([0.05, 0.5, 0.95]), np.array([0.02, 0.6, 0.97]))},
                                 ax=axes[0], counts={"a": np.array([50, 3, 80])})
    assert "perfectly calibrated" in out
    dots = cplot.plot_costs(["fast", "slow"], [0.05, 20.0], ax=axes[1])
    np.testing.assert_allclose(dots.get_offsets()[:, 0], [0.05, 20.0])
    _clean(fig)
