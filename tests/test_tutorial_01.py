"""Tutorial 01 (01_elbo_anatomy.py) runs quick and its printed claims hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from vitoolkit.cli import tutorials_dir


def test_tutorial_01_quick_numbers(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(tutorials_dir() / "01_elbo_anatomy.py"), "--quick", "--out",
         str(tmp_path)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    numbers = summary["numbers"]
    # log p(x) = ELBO + KL to round-off, and closed-form evidence = quadrature.
    assert numbers["identity_max_abs_error"] < 1e-10
    assert abs(numbers["log_evidence"] - numbers["log_evidence_quadrature"]) < 1e-8
    assert numbers["kl_at_posterior"] < 1e-12
    assert abs(numbers["surface_max_minus_log_evidence"]) < 1e-2
    assert numbers["bound_touch_max_gap"] < 1e-10
    # k3 beats log-ratio when q is near p, and loses against a wide prior.
    assert numbers["close_variance_ratio_log_ratio_over_k3"] > 1
    assert numbers["posterior_vs_prior_variance_ratio_log_ratio_over_k3"] < 1
    assert numbers["elbo_monte_carlo_stderr_at_posterior"] < 1e-10
    for name in summary["figures"]:
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
