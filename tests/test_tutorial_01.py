"""Tutorial 01 (01_elbo_anatomy.py) runs quick, every claim holds, and its key numbers are right."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from vitoolkit.course.cli import tutorials_dir


def test_tutorial_01_quick_numbers(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(tutorials_dir() / "01_elbo_anatomy.py"), "--quick", "--out",
         str(tmp_path)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    numbers = summary["numbers"]
    claims = summary["claims"]
    assert len(claims) >= 8 and all(c["holds"] for c in claims if c["checked"])
    assert not any(summary.get("figure_problems", {}).values()), summary.get("figure_problems")
    # log p(x) = ELBO + KL to round-off, and closed-form evidence = quadrature.
    assert numbers["identity_max_abs_error"] < 1e-10
    assert abs(numbers["log_evidence"] - numbers["log_evidence_quadrature"]) < 1e-8
    assert numbers["kl_at_posterior"] < 1e-12
    assert numbers["jensen_vs_identity_max_abs_diff"] < 1e-8
    assert abs(numbers["surface_max_minus_log_evidence"]) < 1e-2
    assert numbers["bound_touch_max_gap"] < 1e-10
    assert abs(numbers["em_thetas"][-1] - numbers["mean_of_x"]) < 1e-8
    assert numbers["ascent_vs_descent_max_abs_diff"] == 0.0
    # Prior sampling's ESS collapses with n; importance sampling from q keeps it.
    prior_ess, q_ess = numbers["evidence_ess_fraction_prior"], numbers["evidence_ess_fraction_q"]
    assert prior_ess[0] > 100 * prior_ess[-1] and min(q_ess) > 0.7
    # k3 beats log-ratio when q is near p; against a wide prior its error bar lies and k-hat says so.
    assert numbers["close_variance_ratio_log_ratio_over_k3"] > 1
    assert numbers["coverage_k3"] < 0.2 < 0.85 < numbers["coverage_log_ratio"]
    assert numbers["median_khat"] > 0.7
    assert numbers["posterior_vs_prior_ratio_tail_shape"] > 0.5
    assert numbers["elbo_monte_carlo_stderr_at_posterior"] < 1e-10
    for name in summary["figures"]:
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
