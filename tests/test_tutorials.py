"""Every tutorial checks itself: its claims hold and its figures are clean (issue 10).

- Quick setting, seeds 0, 1 and 2: the run succeeds, it makes at least
  :data:`MIN_CLAIMS` claims, every claim checked in the quick setting holds, and
  the figure check (:func:`vitoolkit.plotting.check_figure`) found nothing on any
  figure it saved.
- Full size, seed 0 (marked ``slow``, still in the default run): the same, and
  every claim, ``full_only`` ones included, holds.

Tutorials are found with :func:`vitoolkit.course.cli.find_tutorials`, so a new tutorial
is covered the moment it is added. Each (tutorial, seed, setting) runs once per
session through the ``tutorial_run`` fixture (``tests/conftest.py``); the seed-0
quick run is the notebook execution that ``test_notebooks.py`` inspects, seeds 1
and 2 and the full run are subprocesses (``python tutorials/NN.py ...``), which
the fixture starts in the background, two at a time, as soon as the first test
needs a run (each test declares its run with ``@pytest.mark.tutorial_run``).
"""

from __future__ import annotations

import pytest

from vitoolkit.course.cli import find_tutorials, tutorials_dir

TUTORIALS = find_tutorials(tutorials_dir())
NAMES = [t.name for t in TUTORIALS]
SEEDS = (0, 1, 2)
#: Issue 10: each tutorial backs its sentences with at least this many claims.
MIN_CLAIMS = 8


def _claims_report(run, summary) -> str:
    lines = [f"{run}: claims that did not hold:"]
    for c in summary["claims"]:
        if c["checked"] and not c["holds"]:
            lines.append(f"  - {c['statement']}  evidence={c['evidence']}")
    return "\n".join(lines)


def _check_claims(run, *, every: bool) -> None:
    summary = run.summary
    assert summary["tutorial"] == run.name
    assert summary["quick"] is run.quick and summary["seed"] == run.seed, summary
    claims = summary.get("claims", [])
    assert len(claims) >= MIN_CLAIMS, (
        f"{run}: {len(claims)} claims; a tutorial backs its sentences with at least {MIN_CLAIMS}")
    if every:
        unchecked = [c["statement"] for c in claims if not c["checked"]]
        assert not unchecked, f"{run}: claims not checked at full size: {unchecked}"
    failed = [c for c in claims if c["checked"] and not c["holds"]]
    assert not failed, _claims_report(run, summary)
    assert run.ok, f"{run} failed:\n{run.tail()}"


def _check_figures(run) -> None:
    summary = run.summary
    figures = summary["figures"]
    assert figures, f"{run} saved no figure"
    for name in figures:
        assert (run.out / f"{name}.png").stat().st_size > 5000, f"{run}: {name}.png is (nearly) empty"
    problems = summary.get("figure_problems")
    assert problems is not None, f"{run}: summary.json has no figure_problems (figures not checked)"
    assert set(figures) <= set(problems), f"{run}: unchecked figures {set(figures) - set(problems)}"
    found = [f"  - {name}: {p}" for name, ps in problems.items() for p in ps]
    assert not found, f"{run}: the figure check found problems:\n" + "\n".join(found)


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 6, NAMES


def _runs(seeds, quick: bool):
    """Parameters (name, seed), each marked with the run it reads (started early by the fixture)."""
    return [pytest.param(name, seed, id=f"{name}-seed{seed}",
                         marks=pytest.mark.tutorial_run(name, seed=seed, quick=quick))
            for name in NAMES for seed in seeds]


@pytest.mark.parametrize(("name", "seed"), _runs(SEEDS, quick=True))
def test_quick_run_claims_hold(tutorial_run, name, seed):
    _check_claims(tutorial_run(name, seed=seed, quick=True), every=False)


@pytest.mark.parametrize(("name", "seed"), _runs(SEEDS, quick=True))
def test_quick_run_figures_are_clean(tutorial_run, name, seed):
    _check_figures(tutorial_run(name, seed=seed, quick=True))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "seed"), _runs([0], quick=False))
def test_full_run_every_claim_holds_and_figures_are_clean(tutorial_run, name, seed):
    run = tutorial_run(name, seed=seed, quick=False)
    _check_claims(run, every=True)
    _check_figures(run)
