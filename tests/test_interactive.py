"""Interactive (Plotly) figures: what they draw, and that they work offline."""

from __future__ import annotations

import re

import numpy as np
import pytest

from vitoolkit.plotting.interactive import alpha_dial, elbo_explorer


def test_alpha_dial_has_one_step_per_alpha_showing_one_fit():
    x = np.linspace(-5, 5, 101)
    target = np.exp(-x**2 / 2)
    fits = np.stack([np.exp(-(x - m) ** 2 / 2) for m in (-1.0, 0.0, 1.0)])
    fig = alpha_dial(x, target, [0.0, 0.5, 1.0], fits, locs=[-1, 0, 1], scales=[1, 1, 1])
    assert len(fig.data) == 4
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["0", "0.5", "1"]
    for i, step in enumerate(steps):
        visible = step.args[0]["visible"]
        assert visible[0] and sum(visible[1:]) == 1 and visible[1 + i]
    assert np.allclose(fig.data[2].y, fits[1])
    assert fig.data[2].name == "alpha = 0.5: q = N(0.00, 1.00^2)"  # the legend names the step's fit


def test_alpha_dial_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="fitted_densities"):
        alpha_dial(np.zeros(5), np.zeros(5), [0.1, 0.2], np.zeros((3, 5)))


def test_interactive_figures_refuse_what_they_used_to_coerce():
    x = np.linspace(-1, 1, 5)
    with pytest.raises(TypeError, match="alphas must hold real numbers"):
        alpha_dial(x, x**2, ["0.5"], (x**2)[None])  # a string was parsed as 0.5
    with pytest.raises(ValueError, match="locs must have shape"):
        alpha_dial(x, x**2, [0.5], (x**2)[None], locs=[0.0, 1.0], scales=[1.0, 1.0])
    with pytest.raises(ValueError, match="target_density contains 1 NaN"):
        alpha_dial(x, np.r_[x[:4], np.nan], [0.5], (x**2)[None])
    m, s = np.linspace(-1, 1, 5), np.linspace(-1, 0, 4)
    elbo = -np.add.outer(s**2, m**2)
    with pytest.raises(TypeError, match="log_evidence must be a real number"):
        elbo_explorer(m, s, elbo, -elbo, [0.0], [0.0], [0.0], [0.0], "0.0")
    with pytest.raises(ValueError, match="path_means must have 1 dimension"):
        elbo_explorer(m, s, elbo, -elbo, [[0.0]], [0.0], [0.0], [0.0], 0.0)
    # an ELBO surface reaching -inf in its tails is drawn (clipped), not refused
    elbo[0, 0] = -np.inf
    elbo_explorer(m, s, elbo, -elbo, [0.0], [0.0], [0.0], [0.0], 0.0)


def test_elbo_explorer_reads_out_elbo_kl_and_their_sum():
    m, s = np.linspace(-1, 1, 5), np.linspace(-1, 0, 4)
    elbo = -np.add.outer(s**2, m**2)
    kl = -elbo
    fig = elbo_explorer(m, s, elbo, kl, [0.0, 0.5], [0.0, -0.5], [-1.0, -0.5], [1.0, 0.5], 0.0)
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 2 and len(fig.data) == 4
    readout = re.sub(r"<[^>]+>", " ", steps[1].args[1]["title.text"])
    assert re.search(r"ELBO = -0.500, KL\(q \|\| p\(z\|x\)\) = 0.500,\s+ELBO \+ KL = 0.000", readout)
    with pytest.raises(ValueError, match="shape"):
        elbo_explorer(m, s, elbo.T, kl, [0.0], [0.0], [0.0], [0.0], 0.0)


def test_exported_html_embeds_plotly_and_fetches_nothing():
    x = np.linspace(-1, 1, 11)
    fig = alpha_dial(x, x**2, [0.5], (x**2)[None])
    html = fig.to_html(include_plotlyjs=True, full_html=True)

    assert not re.findall(r"<script[^>]+src=", html)  # nothing loaded from elsewhere
    assert len(html) > 1_000_000  # plotly.js itself is inside


def test_the_dial_keeps_its_axes_fixed_and_its_legend_off_the_data():
    """Every slider step is drawn on the same axes, which hold the target and every fit."""
    x = np.linspace(-6, 6, 241)
    target = (np.exp(-(x + 2) ** 2 / 2) + np.exp(-(x - 2) ** 2 / 2)) / (2 * np.sqrt(2 * np.pi))
    # a narrow fit peaks at 0.8, twice the target's height, a wide one at 0.1
    fits = np.stack([np.exp(-x**2 / (2 * s**2)) / (s * np.sqrt(2 * np.pi)) for s in (0.5, 4.0)])
    fig = alpha_dial(x, target, [0.0, 1.0], fits)
    lo, hi = fig.layout.yaxis.range
    assert fig.layout.yaxis.autorange is False and lo == 0.0
    assert hi >= fits.max() and hi <= 1.1 * fits.max()
    assert tuple(fig.layout.xaxis.range) == (-6.0, 6.0) and fig.layout.xaxis.autorange is False
    # the slider changes only visibility and the title, never the axes
    for step in fig.layout.sliders[0].steps:
        assert not any(k.startswith(("yaxis", "xaxis")) for k in step.args[1])
    assert fig.layout.legend.y >= 1.0 and fig.layout.legend.yanchor == "bottom"  # above the plot
    assert fig.layout.width is None  # follows the page's width


def test_the_explorer_keeps_the_grid_and_path_in_view():
    m, s = np.linspace(-1, 1, 5), np.linspace(-1, 0, 4)
    elbo = -np.add.outer(s**2, m**2)
    fig = elbo_explorer(m, s, elbo, -elbo, [0.0, 1.5], [0.0, -0.5], [-1.0, -0.5], [1.0, 0.5], 0.0)
    assert tuple(fig.layout.xaxis.range) == (-1.0, 1.5) and tuple(fig.layout.yaxis.range) == (-1.0, 0.0)
    assert fig.layout.xaxis.autorange is False and fig.layout.yaxis.autorange is False


def test_save_interactive_shows_the_figure_without_embedding_plotly_js(tmp_path, monkeypatch):
    """The file is self-contained; the notebook output carries the figure as Plotly's MIME
    type (JupyterLab's renderer) and as HTML calling the page's Plotly (the book loads
    plotly.js once), never plotly.js itself."""
    import json

    pytest.importorskip("IPython")
    import IPython.display

    from vitoolkit.course import Tutorial

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    tut = Tutorial("nb", ["--out", str(tmp_path)])
    tut._notebook = True
    x = np.linspace(-1, 1, 11)
    fig = alpha_dial(x, x**2, [0.5, 1.0], np.stack([x**2, x**4]))
    path = tut.save_interactive(fig, "dial")
    tut.finish()
    page = path.read_text(encoding="utf-8")
    assert len(page) > 1_000_000 and not re.findall(r"<script[^>]+src=", page)  # plotly.js inside
    [(bundle, raw)] = shown
    assert raw and set(bundle) == {"application/vnd.plotly.v1+json", "text/html", "text/plain"}
    spec = bundle["application/vnd.plotly.v1+json"]
    assert json.dumps(spec)  # JSON as sent to the front end (no NumPy arrays)
    y = spec["data"][2]["y"]
    if isinstance(y, dict):  # plotly.js's typed-array form: {"dtype": "f8", "bdata": base64}
        import base64

        y = np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])
    assert np.allclose(y, x**4) and spec["layout"]["yaxis"]["range"][0] == 0
    html = bundle["text/html"]
    assert "Plotly.newPlot" in html and 'id="vt-plotly-dial"' in html
    assert len(html) < 100_000 and "<script src" not in html  # plotly.js is not embedded
    assert json.loads((tmp_path / "summary.json").read_text())["interactive"] == ["dial"]
