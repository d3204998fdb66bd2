"""The figure check: figures built to have each defect are flagged, clean figures pass."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG

from vitoolkit.plotting import check_figure, subplots
from vitoolkit.plotting.figure_check import _quads_overlap, _segments_hit
from vitoolkit.plotting.images import plot_image_grid

X = np.linspace(0.0, 10.0, 200)


@pytest.fixture(autouse=True)
def _own_rc_params():
    """Each test starts from the same matplotlib settings (a theme set by one test is undone)."""
    with plt.rc_context(plt.rcParamsDefault):
        yield


def _one(problems, *words):
    """Exactly one problem, containing every word."""
    assert len(problems) == 1, problems
    for word in words:
        assert word in problems[0], problems
    return problems[0]


# -- geometry -------------------------------------------------------------------

def test_segment_clipping_finds_segments_that_only_cross_the_box():
    box = np.array([0.0, 0.0, 1.0, 1.0])
    seg = np.array([
        [-1.0, 0.5, 2.0, 0.5],  # crosses, no end inside: inside length 1
        [-1.0, -1.0, 2.0, 2.0],  # diagonal through: inside length sqrt(2)
        [2.0, 2.0, 3.0, 3.0],  # outside
        [0.5, 0.5, 0.5, 0.5],  # a point inside
        [-1.0, 1.5, 2.0, 1.5],  # parallel, above
    ])
    hit, length = _segments_hit(seg, box)
    assert hit.tolist() == [True, True, False, True, False]
    np.testing.assert_allclose(length, [1.0, np.sqrt(2.0), 0.0, 0.0, 0.0], atol=1e-12)


def test_rotated_rectangles_are_compared_as_rotated():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]) * 10
    diamond = np.array([[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]) * 5 + [17.0, 5.0]
    assert not _quads_overlap(square, diamond)  # their bounding boxes overlap by 2 px
    assert _quads_overlap(square, diamond - [5.0, 0.0])


# -- legends --------------------------------------------------------------------

def test_a_legend_placed_by_best_away_from_the_data_passes():
    fig, ax = subplots()
    ax.plot(X, np.sin(X), label="sin")
    ax.plot(X, 0.5 * np.cos(X), label="cos")
    ax.set_ylim(-1.2, 2.5)
    ax.legend(loc="best")
    ax.set_title("clean")
    assert check_figure(fig) == []


def test_a_legend_over_lines_is_flagged_naming_the_axes_and_the_lines():
    fig, ax = subplots()
    ax.plot(X, 0.9 + 0.01 * X, label="high")
    ax.plot(X, X / 10, label="rising")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper right")
    ax.set_title("Two lines")
    _one(check_figure(fig), 'axes "Two lines"', "legend covers", 'line "high"', 'line "rising"')


def test_a_legend_over_a_segment_between_distant_vertices_is_flagged():
    fig, ax = subplots()
    ax.plot([0.0, 1.0], [0.0, 1.0], label="diagonal")  # two vertices, both far from the legend
    ax.legend(loc="center")
    ax.set_title("One segment")
    _one(check_figure(fig), 'axes "One segment"', 'line "diagonal"')


def test_markers_only_lines_count_their_markers_not_the_gaps():
    fig, ax = subplots()
    ax.plot([0.0, 1.0], [0.0, 1.0], "o", label="two points")  # no line between the markers
    ax.legend(loc="center")
    ax.set_title("markers")
    assert check_figure(fig) == []
    ax.plot([0.5], [0.5], "s", label="centre")
    _one(check_figure(fig), 'markers of line "centre"')


def test_a_legend_over_scatter_points_and_bars_is_flagged():
    fig, (a, b) = subplots(1, 2)
    pts = np.random.default_rng(0).normal(size=(400, 2))
    a.scatter(*pts.T, s=8, label="samples")
    a.legend(loc="center")
    a.set_title("scatter")
    b.bar(range(5), [1, 2, 3, 4, 5], label="rising bars")
    b.legend(loc="upper right")
    b.set_title("bars")
    problems = check_figure(fig)
    assert len(problems) == 2, problems
    assert 'axes "scatter"' in problems[0] and 'scatter points "samples"' in problems[0]
    assert 'axes "bars"' in problems[1] and 'bar "rising bars"' in problems[1]


def test_bars_whose_tops_are_below_the_legend_pass():
    fig, ax = subplots()
    ax.bar(range(5), [5, 4, 3, 2, 1], label="falling bars")
    ax.legend(loc="upper right")
    ax.set_title("bars")
    assert check_figure(fig) == []


def test_a_legend_over_a_band_edge_is_flagged():
    fig, ax = subplots()
    ax.fill_between(X, 0.0, 0.95, alpha=0.3, label="band")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    ax.set_title("band")
    _one(check_figure(fig), 'filled area "band"')


def test_a_reference_line_across_the_axes_is_exempt_unless_mostly_hidden():
    fig, ax = subplots()
    ax.plot(X, np.sin(X) - 2.5, label="curve")
    ax.axhline(0.0, color="k", ls="--", label="reference level")
    ax.set_ylim(-4, 1)
    ax.legend(loc="upper right")  # sits on the reference line, away from the curve
    ax.set_title("reference")
    assert check_figure(fig) == []


def test_images_are_exempt_unless_the_legend_hides_a_meaningful_fraction():
    fig, ax = subplots()
    ax.imshow(np.random.default_rng(1).random((20, 20)))
    ax.plot([2.0], [2.0], "o", label="a point")
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title("image")
    assert check_figure(fig) == []
    fig, ax = plt.subplots(figsize=(2.0, 2.0))
    ax.imshow(np.random.default_rng(1).random((20, 20)))
    ax.plot([2.0], [2.0], "o", label="a point with a long label\nover two lines")
    ax.legend(loc="lower right", fontsize="large")
    ax.set_title("small image")
    _one(check_figure(fig), 'axes "small image"', "image")


def test_a_figure_legend_over_another_axes_data_is_flagged():
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
    a.plot(X, np.sin(X), label="left")
    b.plot(X, X, label="right")
    a.set_title("left panel")
    b.set_title("right panel")
    fig.legend(loc="center", bbox_to_anchor=(0.75, 0.55))
    problem = _one(check_figure(fig), 'axes "right panel"', "the figure legend covers")
    assert "left panel" not in problem


def test_a_legend_outside_its_axes_is_checked_against_the_axes_it_overlaps():
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
    a.plot(X, np.sin(X), label="left")
    b.plot(X, np.full_like(X, 0.5), label="flat")
    b.set_ylim(0, 1)
    a.set_title("has the legend")
    b.set_title("gets covered")
    a.legend(loc="center left", bbox_to_anchor=(1.25, 0.5))
    _one(check_figure(fig), 'axes "gets covered"', 'the legend of axes "has the legend"')


# -- tick labels -------------------------------------------------------------------

def test_overlapping_x_tick_labels_are_flagged():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(np.arange(12))
    ax.set_xticks(np.arange(12), [f"label {i}" for i in range(12)])
    ax.set_title("crowded")
    _one(check_figure(fig), 'axes "crowded"', "x tick labels overlap", '"label 0" / "label 1"')


def test_overlapping_y_tick_labels_are_flagged():
    fig, ax = plt.subplots(figsize=(3, 1.5))
    ax.plot(np.arange(30))
    ax.set_yticks(np.arange(0, 30, 2))
    ax.set_title("tall")
    _one(check_figure(fig), 'axes "tall"', "y tick labels overlap")


def test_rotated_tick_labels_that_do_not_touch_pass():
    fig, ax = subplots()
    ax.plot(np.arange(8))
    ax.set_xticks(np.arange(8), [f"a long name {i}" for i in range(8)], rotation=45, ha="right")
    ax.set_title("rotated")
    assert check_figure(fig) == []
    assert ax.get_xticklabels()[0].get_rotation() == 45  # the check leaves the figure as it was


def test_tick_labels_outside_the_view_limits_are_ignored():
    fig, ax = subplots()
    ax.plot(np.arange(10))
    ax.set_xticks([0, 5, 9, 50, 50.001], ["0", "5", "9", "hidden", "hidden too"])
    ax.set_xlim(-0.5, 9.5)
    ax.set_title("limits")
    assert check_figure(fig) == []


def test_log_axes_and_minor_labels_pass():
    fig, ax = subplots()
    ax.loglog(np.logspace(0, 4, 50), np.logspace(0, 2, 50), label="power law")
    ax.legend(loc="lower right")
    ax.set_title("log")
    assert check_figure(fig) == []


# -- titles ------------------------------------------------------------------------

def test_titles_that_collide_are_flagged():
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3))
    a.plot(X)
    b.plot(X)
    a.set_title("a very long title that runs over the title of its neighbour")
    b.set_title("second")
    problems = check_figure(fig)
    assert any("collides with the title of axes \"second\"" in p for p in problems), problems


def _wide_title_figure(top: float, titlepad: float):
    """A lone axes squeezed by a legend beside it, under a title wider than the axes."""
    with plt.rc_context({"axes.titlepad": titlepad}):
        fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
        for i in range(4):
            ax.plot(X, np.linspace(-26.7, top - 0.1 * i, X.size), label=f"a long series name {i}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title("A title much wider than its squeezed axes, centred over them")
        fig.canvas.draw()
    return fig, ax


@pytest.mark.parametrize("top", [-22.0, -19.0, -19.37])
def test_a_title_over_the_tick_label_column_is_flagged_wherever_the_ticks_fall(top):
    """The verdict must not depend on whether a tick happens to sit at the top of the axis."""
    fig, ax = _wide_title_figure(top, titlepad=6.0)
    ticks = ax.get_yticks()
    at_top = bool(np.isclose(ticks, ax.get_ylim()[1], atol=1e-9).any())
    problems = check_figure(fig)
    assert any("reaches into the y tick labels" in p for p in problems), (at_top, problems)


def test_a_wide_title_lifted_clear_of_the_tick_labels_passes():
    fig, _ = _wide_title_figure(-19.0, titlepad=20.0)
    assert check_figure(fig) == []


def test_the_theme_lifts_titles_clear_of_a_label_at_the_top_of_the_axis():
    fig, ax = subplots(1, 1, size=4)
    ax.plot(X, X)
    ax.set_ylim(0, 10)  # a tick, and its label, at the very top
    ax.set_title("A title that is much wider than the axes it belongs to, on purpose")
    assert check_figure(fig) == []


def test_a_title_colliding_with_the_axes_above_is_flagged():
    fig, (a, b) = plt.subplots(2, 1, figsize=(4, 3.5))
    a.plot(X)
    b.plot(X)
    a.set_xlabel("x label of the top panel")
    a.set_title("top")
    b.set_title("bottom")
    problems = check_figure(fig)
    assert any(p.startswith('the title of axes "bottom" collides with') for p in problems), problems


def test_a_suptitle_over_an_axes_title_is_flagged():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(X)
    ax.set_title("axes title")
    fig.suptitle("the figure's title", y=0.93)
    problems = check_figure(fig)
    assert any("collides" in p and 'the suptitle "the figure\'s title"' in p
               and 'the title of axes "axes title"' in p for p in problems), problems


def test_a_clean_grid_with_suptitle_colorbar_and_images_passes():
    fig, axes = subplots(2, 2)
    xx, yy = np.meshgrid(X, X)
    cs = axes[0, 0].contourf(xx, yy, np.sin(xx) * np.cos(yy))
    fig.colorbar(cs, ax=axes[0, 0], label="value")
    axes[0, 0].set_title("contours")
    axes[0, 1].hist(np.random.default_rng(2).normal(size=500), bins=30, label="draws")
    axes[0, 1].legend(loc="upper left", fontsize="x-small")
    axes[0, 1].set_title("histogram")
    plot_image_grid(np.random.default_rng(3).random((9, 64)), ax=axes[1, 0], title="digits")
    axes[1, 1].errorbar([1, 10, 100], [1.0, 1.5, 1.7], yerr=0.1, fmt="o-", label="estimate")
    axes[1, 1].set_xscale("log")
    axes[1, 1].legend(loc="lower right")
    axes[1, 1].set_title("error bars")
    fig.suptitle("four clean panels")
    assert check_figure(fig) == []


# -- empty axes ----------------------------------------------------------------

def test_an_empty_axes_is_flagged():
    fig, (a, b) = subplots(1, 2)
    a.plot(X, X)
    a.set_title("full")
    b.set_title("nothing")
    _one(check_figure(fig), 'axes "nothing"', "empty")


@pytest.mark.parametrize("how", ["outside the limits", "all NaN", "axis off"])
def test_axes_showing_nothing_are_empty(how):
    fig, ax = subplots()
    if how == "outside the limits":
        ax.plot(X, X + 100)
        ax.set_ylim(0, 1)
    elif how == "all NaN":
        ax.plot(X, np.full_like(X, np.nan))
    else:
        ax.axis("off")
    ax.set_title(how)
    _one(check_figure(fig), f'axes "{how}"', "empty")


def test_hidden_axes_text_panels_and_untitled_axes():
    fig, (a, b, c) = subplots(1, 3)
    a.plot(X, X)
    b.text(0.5, 0.5, "a text panel", ha="center")
    b.axis("off")
    c.set_visible(False)
    assert check_figure(fig) == []
    fig, (a, b) = subplots(1, 2)
    a.plot(X, X)
    b.set_xlabel("time")
    _one(check_figure(fig), "axes 2 of 2 (untitled; labels time)", "empty")


# -- drawing -------------------------------------------------------------------------

def test_figures_on_another_canvas_are_drawn_with_agg_and_keep_their_canvas():
    fig, ax = plt.subplots()
    ax.set_title("svg")
    canvas = FigureCanvasSVG(fig)
    assert check_figure(fig) == ['axes "svg": empty (nothing plotted inside its limits); plot into it, '
                                 "or remove it (fig.delaxes(ax)) or hide it (ax.set_visible(False))"]
    assert fig.canvas is canvas
    assert not isinstance(fig.canvas, FigureCanvasAgg)


def test_checking_while_saving_finds_what_check_figure_finds(tmp_path, monkeypatch):
    from vitoolkit.plotting import figure_check

    fig, (a, b) = subplots(1, 2)
    a.plot(X, 0.9 + 0.01 * X, label="high")
    a.set_ylim(0, 1.05)
    a.legend(loc="upper right")
    a.set_title("covered")
    b.set_title("nothing")
    measured = []
    real = figure_check._measure
    monkeypatch.setattr(figure_check, "_measure", lambda f, r: measured.append(r) or real(f, r))
    with figure_check.checked_draw(fig) as check:
        fig.savefig(tmp_path / "f.png", dpi=150, bbox_inches="tight")
    assert len(measured) == 1  # the layout-only pass of bbox_inches="tight" is not measured
    assert check.error is None
    assert check.problems == check_figure(fig)
    assert len(check.problems) == 2
    fig.canvas.draw()  # after the block, draws are no longer checked
    assert len(measured) == 2  # (the check_figure call above)


def test_an_error_inside_the_check_never_breaks_the_save(tmp_path, monkeypatch):
    from vitoolkit.plotting import figure_check

    def broken(fig, renderer):
        raise RuntimeError("measuring failed")

    monkeypatch.setattr(figure_check, "_measure", broken)
    fig, ax = subplots()
    ax.plot(X, X)
    with figure_check.checked_draw(fig) as check:
        fig.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
    assert isinstance(check.error, RuntimeError) and check.problems is None
    with pytest.raises(RuntimeError, match="measuring failed"):
        check_figure(fig)


def test_a_non_figure_is_refused_by_name():
    import matplotlib.pyplot as plt

    from vitoolkit.plotting.figure_check import checked_draw

    fig, ax = plt.subplots()
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure, got Axes"):
        check_figure(ax)
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure, got str"), \
            checked_draw("figure.png"):
        pass
    plt.close(fig)
