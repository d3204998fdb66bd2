"""Tutorial 02 runs in its quick setting and reports what it claims."""

from __future__ import annotations

from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "02_cavi_gmm.py"
FIGURES = ("cavi_1d", "cavi_2d", "restarts", "evidence_gap", "em_vs_vb", "svi_vs_batch")


@pytest.mark.tutorial_run("02_cavi_gmm")
def test_tutorial_02_quick(quick_run):
    """Reads the session's seed-0 quick run (claims and figures: test_tutorials.py)."""
    run = quick_run("02_cavi_gmm")
    out_dir = run.out
    summary = run.summary
    assert summary["quick"] is True
    for name in FIGURES:
        assert (out_dir / f"{name}.png").stat().st_size > 10_000, name
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
