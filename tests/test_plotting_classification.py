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


# -- boundary checks of the shared plotting helpers ------------------------------------


def test_covariance_ellipse_refuses_wrong_shapes_and_scales():
    import matplotlib.pyplot as plt

    from vitoolkit.plotting.fitting import covariance_ellipse

    fig, ax = subplots(1, 1)
    ell = covariance_ellipse([1.0, 2.0], [[4.0, 0.0], [0.0, 1.0]], n_std=1.5, ax=ax)
    # Independent route: half-lengths n_std * sqrt(eigenvalue) along the axes.
    assert ell.width == pytest.approx(2 * 1.5 * 2.0) and ell.height == pytest.approx(3.0)
    with pytest.raises(ValueError, match=r"shapes \(2,\) and \(2, 2\)"):
        covariance_ellipse([0.0, 0.0, 0.0], np.eye(3), ax=ax)
    with pytest.raises(ValueError, match="covariance must have 2 dimension"):
        covariance_ellipse([0.0, 0.0], [1.0, 1.0], ax=ax)  # was a numpy LinAlgError
    with pytest.raises(ValueError, match="symmetric"):
        covariance_ellipse([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]], ax=ax)
    with pytest.raises(ValueError, match="n_std must be > 0"):
        covariance_ellipse([0.0, 0.0], np.eye(2), n_std=-1.0, ax=ax)
    with pytest.raises(TypeError, match="n_std must be a real number"):
        covariance_ellipse([0.0, 0.0], np.eye(2), n_std=True, ax=ax)
    plt.close(fig)


def test_density_grids_refuse_oversized_and_malformed_requests(monkeypatch):
    import tracemalloc

    import matplotlib.pyplot as plt
    import torch

    from vitoolkit.exceptions import ResourceLimitError
    from vitoolkit.plotting.fitting import plot_density_1d, plot_density_2d

    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    fig, ax = subplots(1, 1)
    with pytest.raises(ValueError, match="bounds must have lo < hi"):
        plot_density_1d(normal, (1.0, -1.0), ax=ax)
    with pytest.raises(TypeError, match="num_points must be an integer"):
        plot_density_1d(normal, (-1.0, 1.0), num_points=50.0, ax=ax)
    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "16M")
    mvn = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64),
                                                 torch.eye(2, dtype=torch.float64))
    tracemalloc.start()
    try:
        with pytest.raises(ResourceLimitError, match="num_points=200000 would need"):
            plot_density_2d(mvn, [(-1, 1), (-1, 1)], num_points=200_000, ax=ax)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    with pytest.raises(ValueError, match=r"bounds\[1\] must be a pair"):
        plot_density_2d(mvn, [(-1, 1), 3.0], ax=ax)
    plt.close(fig)


def test_image_tiling_refuses_truncating_coercions():
    from vitoolkit.plotting.images import image_shape_of, square_shape, tile_images

    images = np.arange(2 * 6, dtype=float).reshape(2, 6)
    mosaic = tile_images(images, (2, 3), ncols=2, pad=1)
    # Independent route: the two 2x3 images side by side with a NaN column between them.
    np.testing.assert_array_equal(mosaic[:, :3], images[0].reshape(2, 3))
    np.testing.assert_array_equal(mosaic[:, 4:], images[1].reshape(2, 3))
    assert np.isnan(mosaic[:, 3]).all()
    with pytest.raises(TypeError, match="image_shape entries must be an integer"):
        image_shape_of((2.5, 2.4), 6)  # int() made this (2, 2), then a wrong-size error
    with pytest.raises(TypeError, match="pad must be an integer"):
        tile_images(images, (2, 3), pad=0.5)
    with pytest.raises(ValueError, match="ncols must be an integer >= 1"):
        tile_images(images, (2, 3), ncols=0)
    with pytest.raises(TypeError, match="data_dim"):
        square_shape(16.0)


def test_plotting_functions_refuse_strings_instead_of_parsing_them():
    import matplotlib.pyplot as plt
    import torch

    from vitoolkit.plotting import vae_beyond
    from vitoolkit.plotting.style import to_float

    # tensors (even ones that require grad) and bools are drawn as numbers
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    np.testing.assert_array_equal(to_float(t, "t"), [1.0, 2.0])
    np.testing.assert_array_equal(to_float(np.array([True, False]), "b"), [1.0, 0.0])
    assert np.isnan(to_float([1.0, float("nan")], "gappy")[1])  # NaN is a gap, not an error
    with pytest.raises(TypeError, match="seconds must hold real numbers"):
        cplot.plot_costs(["a", "b"], ["1.5", "2"])  # were parsed as 1.5 and 2
    fig, ax = subplots(1, 1)
    with pytest.raises(TypeError, match=r"curves\['elbo'\] must hold real numbers"):
        vae_beyond.plot_curves({"elbo": ["-1", "-2"]}, ax=ax)
    with pytest.raises(TypeError, match="complex"):
        to_float(np.array([1 + 2j]), "z")
    plt.close(fig)
