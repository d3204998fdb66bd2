"""Tutorial 01 (01_elbo_anatomy.py) runs quick, every claim holds, and its key numbers are right."""

from __future__ import annotations

import pytest


@pytest.mark.tutorial_run("01_elbo_anatomy")
def test_tutorial_01_quick_numbers(quick_run):
    """Reads the session's seed-0 quick run (claims and figures: test_tutorials.py)."""
    run = quick_run("01_elbo_anatomy")
    out_dir = run.out
    summary = run.summary
    numbers = summary["numbers"]
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
    assert numbers["coverage_k3"] < 0.3 < 0.85 < numbers["coverage_log_ratio"]
    assert numbers["median_khat"] > 0.7
    assert numbers["posterior_vs_prior_ratio_tail_shape"] > 0.5
    assert numbers["elbo_monte_carlo_stderr_at_posterior"] < 1e-10
    for name in summary["figures"]:
        assert (out_dir / f"{name}.png").stat().st_size > 5000
