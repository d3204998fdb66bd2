"""Tutorial 02 runs in its quick setting and reports what it claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "02_cavi_gmm.py"
FIGURES = ("cavi_1d", "cavi_2d", "restarts", "evidence_gap", "em_vs_vb", "svi_vs_batch")


@pytest.mark.tutorial_run("02_cavi_gmm")
def test_tutorial_02_quick(tutorial_run):
    """Reads the session's shared seed-0 quick run (no second run of the tutorial)."""
    run = tutorial_run("02_cavi_gmm")
    assert run.ok, run.tail()
    out_dir = run.out
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["quick"] is True
    for name in FIGURES:
        assert (out_dir / f"{name}.png").stat().st_size > 10_000, name
    claims = summary["claims"]
    assert len(claims) >= 8, len(claims)
    assert all(c["holds"] for c in claims if c["checked"]), [c["statement"] for c in claims
                                                             if not c["holds"]]
    assert not any(summary.get("figure_problems", {}).values()), summary["figure_problems"]
    numbers = summary["numbers"]
    assert numbers["cavi_1d_smallest_step_change"] >= -1e-9 * abs(numbers["cavi_1d_final_elbo"])
    assert abs(numbers["tiny_K1_gap"]) < 1e-8
    for K in (2, 3):
        assert numbers[f"tiny_K{K}_gap"] > 0
    assert abs(numbers["tiny_K2_gap"] - numbers["tiny_K2_log_K_factorial"]) < 0.05
    assert numbers["restart_distinct_optima"] >= 2
    assert numbers["vb_components_with_weight_over_1pct"] == 3
    assert numbers["em_components_with_weight_over_1pct"] > 3
    assert 0 <= numbers["svi_relative_gap"] < 1e-2
