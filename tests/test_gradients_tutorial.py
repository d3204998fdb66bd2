"""Tutorial 04 in its quick setting (as a subprocess) and the gradient plotting functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vitoolkit.gradients.bbvi import ConjugateGaussianModel
from vitoolkit.gradients.experiments import (
    bbvi_comparison,
    estimator_table,
    gumbel_softmax_sweep,
    variance_vs_dimension,
    variance_vs_k,
    variance_vs_num_samples,
)
from vitoolkit.plotting import gradients as gplot
from vitoolkit.plotting import subplots

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "tutorials" / "04_gradient_estimators.py"
FIGURES = ("per_sample_estimates", "variance_vs_k", "variance_vs_dimension", "baselines",
           "variance_vs_num_samples", "gumbel_softmax", "bbvi")


@pytest.mark.tutorial_run("04_gradient_estimators")
def test_tutorial_04_quick_run(quick_run):
    """Reads the session's seed-0 quick run (claims and figures: test_tutorials.py)."""
    run = quick_run("04_gradient_estimators")
    out_dir = run.out
    summary = run.summary
    assert summary["quick"] is True
    assert summary["figures"] == list(FIGURES)
    for name in FIGURES:
        assert (out_dir / f"{name}.png").stat().st_size > 10_000
    numbers = summary["numbers"]
    # The claims the tutorial prints, checked against what they claim.
    assert numbers["sample_requires_grad"] is False
    assert numbers["pathwise_refuses_step"] is True
    assert numbers["quadratic_dmu_score_variance_closed_form"] == 30.0
    assert numbers["stl_max_abs_at_posterior"] < 1e-10
    assert numbers["gumbel_bias_at_tau_min"] < numbers["gumbel_bias_at_tau_max"]
    assert numbers["cosine_k10_variance_ratio_pathwise_over_score"] > 10
    # Issue 10: the lesson's sentences are claims on the run's numbers, all holding.
    claims = summary["claims"]
    assert len(claims) >= 8
    assert all(c["holds"] for c in claims if c["checked"]), [
        c["statement"] for c in claims if c["checked"] and not c["holds"]]


@pytest.fixture(scope="module")
def results():
    gen = torch.Generator().manual_seed(0)
    model = ConjugateGaussianModel(torch.randn((10, 2), generator=gen, dtype=torch.float64))
    cost = lambda b: ((b - 0.3) ** 2).sum(-1)  # noqa: E731
    return {
        "k": variance_vs_k("quadratic", [0.5, 1.0, 2.0], num_samples=2_000, generator=gen),
        "dim": variance_vs_dimension([1, 2], num_samples=1_000, generator=gen),
        "n": variance_vs_num_samples("cosine", [1, 4], replicates=50, generator=gen),
        "table": estimator_table("cosine", num_samples=2_000, generator=gen),
        "gs": gumbel_softmax_sweep(cost, torch.zeros(3), [0.5, 1.0], num_samples=2_000,
                                   generator=gen),
        "bbvi": bbvi_comparison(model, ("stl", "score"), num_iterations=5, num_samples=4),
    }


def test_plot_functions_draw_on_the_given_axes(results):
    fig, axes = subplots(2, 4)
    ax = axes.ravel()
    lines = gplot.plot_variance_vs_k(results["k"], "scale", ax=ax[0])
    # 4 estimators + 2 closed forms (score, pathwise).
    assert len(lines) == 6 and ax[0].get_xscale() == "log" and ax[0].get_ylabel()
    assert len(gplot.plot_variance_vs_dimension(results["dim"], ax=ax[1])) >= 4
    assert len(gplot.plot_variance_vs_num_samples(results["n"], "snr", ax=ax[2])) == 8
    drawn = gplot.plot_estimator_variances(results["table"], ax=ax[3])
    assert len(drawn) == 2 and len(ax[3].get_yticklabels()) == len(results["table"]["estimators"])
    assert len(gplot.plot_gumbel_softmax(results["gs"], "bias", ax=ax[4])) >= 3
    assert len(gplot.plot_bbvi(results["bbvi"], "distance", ax=ax[5])) == 2
    hist = {"score": np.random.default_rng(0).normal(size=100)}
    assert len(gplot.plot_gradient_histograms(hist, 0.0, ax=ax[6])) == 2
    for a in ax[:7]:
        assert a.get_title() and a.get_xlabel()
    with pytest.raises(ValueError, match="quantity"):
        gplot.plot_bbvi(results["bbvi"], "loss", ax=ax[7])


def test_one_figure_legend_outside_the_panels(results):
    fig, axes = subplots(1, 2)
    gplot.plot_variance_vs_k(results["k"], "loc", ax=axes[0], legend=False)
    gplot.plot_variance_vs_k(results["k"], "scale", ax=axes[1], legend=False)
    assert axes[0].get_legend() is None and axes[1].get_legend() is None
    leg = gplot.figure_legend(fig, axes)
    labels = [t.get_text() for t in leg.get_texts()]
    assert len(labels) == len(set(labels)) == 6  # 4 estimators + 2 closed forms, once each
    assert fig.legends == [leg]
    check = pytest.importorskip("vitoolkit.plotting.figure_check")
    assert check.check_figure(fig) == []


def test_exact_zero_variance_is_written_in_the_axes_not_the_legend(results):
    dim = {**results["dim"], "variance": {"pathwise": {"loc": np.zeros(2), "scale": np.ones(2)}},
           "closed_form": {}}
    fig, ax = subplots(1, 1)
    drawn = gplot.plot_variance_vs_dimension(dim, ax=ax, legend=False)
    assert "variance exactly 0" in drawn[0].get_text()
