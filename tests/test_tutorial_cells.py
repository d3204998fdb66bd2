"""Tutorial cells as the page shows them: teaching code in front, the checks folded.

A lesson's bookkeeping (``tut.record``, ``tut.claim``) lives in cells tagged ``hide-input``
(jupytext: ``# %% tags=["hide-input"]``), which the book folds while still showing their
output (the printed numbers and the claim callouts). This reads every tutorial with
jupytext, as Jupyter and the book do.
"""

from __future__ import annotations

import pytest

from vitoolkit.course.catalog import find_tutorials

jupytext = pytest.importorskip("jupytext")

TUTORIALS = find_tutorials()
FOLDED = {"hide-input", "remove-input", "hide-cell", "remove-cell"}


def _cells(info):
    return jupytext.read(info.path, fmt="py:percent").cells


@pytest.mark.parametrize("info", TUTORIALS, ids=lambda t: t.name)
def test_checks_are_folded_and_teaching_code_is_not(info):
    unfolded_checks, folded_teaching = [], []
    for i, cell in enumerate(_cells(info)):
        if cell.cell_type != "code":
            continue
        folded = bool(set(cell.metadata.get("tags", [])) & FOLDED)
        checks = "tut.claim(" in cell.source or "tut.record(" in cell.source
        if checks and not folded:
            unfolded_checks.append(f"cell {i}: {cell.source.strip().splitlines()[0][:70]}")
        if folded and ("savefig(" in cell.source or "save_interactive(" in cell.source):
            folded_teaching.append(f"cell {i}: a figure is drawn in a folded cell")
    assert not unfolded_checks, (f"{info.name}: claim/record code in cells a reader sees "
                                 f"(tag them hide-input): {unfolded_checks}")
    assert not folded_teaching, f"{info.name}: {folded_teaching}"
