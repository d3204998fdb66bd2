"""Every tutorial checks itself: its claims hold and its figures are clean (issue 10).

- Quick setting: the run succeeds, it makes at least :data:`MIN_CLAIMS` claims,
  every claim checked in the quick setting holds, and the figure check
  (:func:`vitoolkit.plotting.check_figure`) found nothing on any figure it saved.
  Seed 0 (the notebook the book shows) is in the default tier, seeds 1 and 2 in the
  slow tier; ``VITOOLKIT_TEST_SEEDS`` ("0-4", "0,7") chooses other seeds, which then
  all run in the default tier (``tests/conftest.py``).
- Full size, seed 0 (slow tier): the same, and every claim, ``full_only`` ones
  included, holds.

Tutorials are found with :func:`vitoolkit.course.cli.find_tutorials`, so a new tutorial
is covered the moment it is added. Each (tutorial, seed, setting) runs once per
session through the ``tutorial_run`` fixture (``tests/conftest.py``), which starts the
runs in the background as the session begins (each test declares its run with
``@pytest.mark.tutorial_run``).
"""

from __future__ import annotations

import os

import pytest

from vitoolkit.course.cli import find_tutorials, tutorials_dir

TUTORIALS = find_tutorials(tutorials_dir())
NAMES = [t.name for t in TUTORIALS]


def _parse_seeds(text: str) -> list[int]:
    """``"0-2"`` -> [0, 1, 2]; ``"0,5,7"`` -> [0, 5, 7] (ranges and lists may mix)."""
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise pytest.UsageError(f"VITOOLKIT_TEST_SEEDS={text!r}: expected seeds such as '0-2' or '0,5,7'")
        seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return list(dict.fromkeys(seeds))


#: The quick-setting seeds and whether each is in the slow tier.
_ENV_SEEDS = os.environ.get("VITOOLKIT_TEST_SEEDS", "").strip()
SEEDS = _parse_seeds(_ENV_SEEDS) if _ENV_SEEDS else [0, 1, 2]
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
    """Parameters (name, seed), each marked with the run it reads (started early by the fixture).

    Unless ``VITOOLKIT_TEST_SEEDS`` chose them, seeds other than 0 are in the slow tier.
    """
    def marks(name, seed):
        run = pytest.mark.tutorial_run(name, seed=seed, quick=quick)
        return [run, pytest.mark.slow] if (seed != 0 and not _ENV_SEEDS) else [run]

    return [pytest.param(name, seed, id=f"{name}-seed{seed}", marks=marks(name, seed))
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
