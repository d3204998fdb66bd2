"""Tutorial 02 runs in its quick setting and reports what it claims."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "02_cavi_gmm.py"
FIGURES = ("cavi_1d", "cavi_2d", "restarts", "evidence_gap", "em_vs_vb", "svi_vs_batch")


def test_tutorial_02_quick(tmp_path):
    proc = subprocess.run([sys.executable, str(TUTORIAL), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["quick"] is True
    for name in FIGURES:
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000, name
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
