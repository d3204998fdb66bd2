"""The core's public boundary: resource guards, chunked Monte Carlo, parameter checks."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import torch
from _stats import assert_mc_close
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from torch.distributions import Normal

import vitoolkit.divergences as dv
import vitoolkit.divergences.monte_carlo as mc_module
from vitoolkit.distributions import (
    MultivariateStudentT,
    NormalWishart,
    StandardNormal,
    expected_log_det_wishart,
    expected_log_dirichlet,
    sample,
)
from vitoolkit.divergences import kl_divergence, monte_carlo_kl, pareto_khat
from vitoolkit.exceptions import ResourceLimitError, UnreliableEstimateWarning

D = torch.float64


def normal(m, s):
    return Normal(torch.tensor(m, dtype=D), torch.tensor(s, dtype=D))


def test_unreliable_estimate_warning_is_the_one_in_vitoolkit_exceptions():
    assert dv.UnreliableEstimateWarning is UnreliableEstimateWarning
    assert dv.psis.UnreliableEstimateWarning is UnreliableEstimateWarning


def test_absurd_monte_carlo_requests_are_refused_before_allocating():
    p, q = normal(0.0, 1.0), normal(0.5, 1.2)
    tracemalloc.start()
    try:
        with pytest.raises(ResourceLimitError, match=r"num_samples=1000000000000 would draw"):
            monte_carlo_kl(p, q, 10**12)
        # A batch too large for even one draw (2^32 pairs, within the work limit for two
        # draws): refused through the memory limit.
        big = Normal(torch.zeros(1, dtype=D).expand(2**32), torch.ones(1, dtype=D).expand(2**32),
                     validate_args=False)
        with pytest.raises(ResourceLimitError, match="num_samples=2 would need .* for one chunk"):
            monte_carlo_kl(big, big, 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200_000  # bytes of Python objects; no tensor was allocated either
    assert isinstance(ResourceLimitError("x"), ValueError)


def test_chunked_monte_carlo_equals_the_estimate_from_all_draws_at_once(monkeypatch):
    # With chunks of 1000 draws the estimate must be the mean, standard error and k-hat
    # of exactly the draws a chunk-by-chunk sampler gives (streamed moments and top-k).
    monkeypatch.setattr(mc_module, "CHUNK_VALUES", 1000)
    p, q = normal(0.0, 1.0), normal(0.5, 1.2)
    n = 10_500
    est = monte_carlo_kl(p, q, n, estimator="k3", generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    x = torch.cat([sample(p, (min(1000, n - s),), generator=g) for s in range(0, n, 1000)])
    log_r = q.log_prob(x) - p.log_prob(x)
    terms = torch.expm1(log_r) - log_r
    assert float(est.value) == pytest.approx(float(terms.mean()), rel=1e-12)
    assert float(est.stderr) == pytest.approx(float(terms.std() / math.sqrt(n)), rel=1e-9)
    assert float(est.khat) == float(pareto_khat(log_r))
    assert_mc_close(est.value, kl_divergence(p, q), est.stderr)


def test_large_request_runs_in_bounded_memory():
    # 10^7 draws: all at once (draws, two log densities, ratios, terms) would be 400+ MB.
    code = (
        "import resource, torch; from torch.distributions import Normal;"
        "from vitoolkit.divergences import monte_carlo_kl, kl_divergence;"
        "D = torch.float64;"
        "p, q = Normal(torch.tensor(0.0, dtype=D), torch.tensor(1.0, dtype=D)),"
        " Normal(torch.tensor(0.5, dtype=D), torch.tensor(1.2, dtype=D));"
        "monte_carlo_kl(p, q, 1000, generator=torch.Generator().manual_seed(0));"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        "est = monte_carlo_kl(p, q, 10**7, generator=torch.Generator().manual_seed(0));"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        "err = abs(float(est.value) - float(kl_divergence(p, q))) / float(est.stderr);"
        "print(after - before, err)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    rss_kb, z = out.stdout.split()
    assert int(rss_kb) < 150_000, out.stdout
    assert float(z) < 4.5


def test_batched_monte_carlo_broadcasts_p_against_q():
    p = Normal(torch.zeros(3, 1, dtype=D), torch.ones(3, 1, dtype=D))
    q = Normal(torch.tensor([0.3, -0.2], dtype=D), torch.tensor([1.2, 0.9], dtype=D))
    est = monte_carlo_kl(p, q, 20_000, generator=torch.Generator().manual_seed(1))
    assert est.value.shape == est.khat.shape == (3, 2)
    assert_mc_close(est.value, kl_divergence(p, q), est.stderr)


def test_num_samples_rule_is_one_integer_rule():
    p, q = normal(0.0, 1.0), normal(0.5, 1.2)
    for fn in (lambda n: monte_carlo_kl(p, q, n),
               lambda n: dv.alpha_divergence(p, q, 0.5, method="monte_carlo", num_samples=n),
               lambda n: dv.renyi_divergence(p, q, 2.0, method="monte_carlo", num_samples=n)):
        with pytest.raises(ValueError, match="num_samples must be an integer >= 2"):
            fn(1)
        with pytest.raises(TypeError, match="num_samples must be an integer >= 2"):
            fn(3.0)
        with pytest.raises(TypeError, match="num_samples"):
            fn(True)
        fn(np.int32(50))
        fn(torch.tensor(50))


# --------------------------------------------------------------------------- parameters
def test_invalid_distribution_parameters_raise_naming_the_argument():
    with pytest.raises(ValueError, match="concentration must be positive"):
        expected_log_dirichlet(torch.tensor([-1.0, 2.0]))
    with pytest.raises(ValueError, match="concentration must be positive"):
        expected_log_dirichlet(torch.tensor([0.0, 2.0]))
    with pytest.raises(ValueError, match=r"df must be > D - 1 = 1"):
        expected_log_det_wishart(torch.tensor(1.0), torch.eye(2))
    for validate in (None, False):
        with pytest.raises(ValueError, match=r"df must exceed D - 1 = 2"):
            NormalWishart(torch.zeros(3), 1.0, 2.0, scale_matrix=torch.eye(3), validate_args=validate)
        with pytest.raises(ValueError, match="mean_precision"):
            NormalWishart(torch.zeros(3), -1.0, 5.0, scale_matrix=torch.eye(3), validate_args=validate)
        with pytest.raises(ValueError, match="df must be positive"):
            MultivariateStudentT(0.0, torch.zeros(2), torch.eye(2), validate_args=validate)
        with pytest.raises(ValueError, match="scale_tril"):
            MultivariateStudentT(3.0, torch.zeros(2), -torch.eye(2), validate_args=validate)
    with pytest.raises(ValueError, match="loc must have shape"):
        MultivariateStudentT(3.0, torch.tensor(0.0), torch.eye(1))
    # At the boundary's valid side the values are numbers (D - 1 < df).
    assert torch.isfinite(expected_log_det_wishart(torch.tensor(1.0 + 1e-6), torch.eye(2)))


# --------------------------------------------------------------------------- properties
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       seed=st.integers(0, 2**16))
def test_kl_to_standard_normal_broadcasts_as_torch_normal_normal(shapes, seed):
    (p_shape, q_shape), result = shapes.input_shapes, shapes.result_shape
    gen = torch.Generator().manual_seed(seed)
    p = Normal(torch.randn(p_shape, generator=gen, dtype=D),
               torch.rand(p_shape, generator=gen, dtype=D) + 0.1)
    got = kl_divergence(p, StandardNormal.with_shape(q_shape, dtype=D))
    ref = kl_divergence(p, Normal(torch.zeros(q_shape, dtype=D), torch.ones(q_shape, dtype=D)))
    assert tuple(got.shape) == tuple(result) == tuple(ref.shape)
    torch.testing.assert_close(got, ref)
    assert bool((got >= 0).all())


@given(m=st.floats(-3, 3), s=st.floats(0.3, 3), alpha=st.floats(-0.9, 1.9))
def test_alpha_divergence_is_nonnegative_and_zero_on_the_diagonal(m, s, alpha):
    p, q = normal(0.0, 1.0), normal(m, s)
    assert float(dv.alpha_divergence(p, p, alpha)) == pytest.approx(0.0, abs=1e-12)
    try:
        value = float(dv.alpha_divergence(p, q, alpha))
    except ValueError:
        return  # infinite for this pair
    assert value >= -1e-12


# --------------------------------------------------------------------------- named errors
def test_every_argument_is_named_when_refused():
    p, q = normal(0.0, 1.0), normal(0.5, 1.2)
    with pytest.raises(TypeError, match="q must be a torch.distributions"):
        dv.cross_entropy("q", p)
    with pytest.raises(TypeError, match="p must be a torch.distributions"):
        dv.cross_entropy(q, None)
    with pytest.raises(TypeError, match="est must be an Estimate"):
        dv.warn_if_unreliable((1.0, 0.1), "x")
    with pytest.raises(TypeError, match="stacklevel"):
        dv.warn_if_unreliable(dv.Estimate(torch.tensor(1.0), torch.tensor(0.1)), "x", stacklevel=2.0)
    with pytest.raises(TypeError, match="diagnose"):
        dv.mean_and_stderr(torch.randn(10), diagnose="yes")
    with pytest.raises(ValueError, match="terms must hold at least 2 draws"):
        dv.mean_and_stderr(torch.randn(1, 5))
    with pytest.raises(ValueError, match="dim=3 is out of range"):
        pareto_khat(torch.randn(100), dim=3)
    with pytest.raises(TypeError, match="dim"):
        dv.tail_khat(torch.randn(100), dim=0.0)
    with pytest.raises(TypeError, match="prior"):
        dv.fit_generalized_pareto(torch.rand(10), prior=1)
    with pytest.raises(TypeError, match="exceedances"):
        dv.fit_generalized_pareto(np.array(["a"] * 10))
    with pytest.raises(ValueError, match="sampling_scale must be positive"):
        dv.normal_ratio_tail_shape(-1.0, 1.0)
    with pytest.raises(ValueError, match="width must be > 0"):
        dv.default_bounds(p, width=-1.0)
    with pytest.raises(TypeError, match="grid must be a Grid"):
        dv.evaluate_on_grid(p, "grid")
    with pytest.raises(ValueError, match="bounds must be a list of 1"):
        dv.grid_divergence(p, q, bounds=[(-5, 5), (-5, 5)])
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        dv.grid_divergence(p, q, "kl", alpha=float("inf"))
    with pytest.raises(ValueError, match="alpha=1e\\+300 makes the result overflow"):
        dv.alpha_divergence(p, q, 1e300)
    with pytest.raises(TypeError, match="rsample"):
        sample(p, (3,), rsample="yes")
    with pytest.raises(TypeError, match="sample_shape"):
        sample(p, (2.0,))
    with pytest.raises(ResourceLimitError, match="sample_shape"):
        sample(p, (10**6, 10**6))
    with pytest.raises(TypeError, match="logits"):
        from vitoolkit.distributions import gumbel_softmax_sample
        gumbel_softmax_sample(torch.tensor([True, False]), 0.5)
    with pytest.raises(TypeError, match="temperature"):
        from vitoolkit.distributions import check_temperature
        check_temperature("1")
    with pytest.raises(ValueError, match="scale_tril must be lower triangular"):
        expected_log_det_wishart(torch.tensor(3.0), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(TypeError, match="loc"):
        StandardNormal("0", 1.0)


def test_student_t_log_density_stays_finite_far_away():
    # log p(x) = const - (nu + d)/2 log(1 + maha/nu); at |x| = 1e200 maha overflows float64,
    # but its log does not: compare with the formula written with log maha directly.
    import scipy.special

    nu, d = 3.0, 2
    t = MultivariateStudentT(torch.tensor(nu, dtype=D), torch.zeros(2, dtype=D), torch.eye(2, dtype=D))
    x = torch.tensor([1e200, 0.0], dtype=D)
    log_maha = 2 * math.log(1e200)
    expected = (scipy.special.gammaln((nu + d) / 2) - scipy.special.gammaln(nu / 2)
                - 0.5 * d * math.log(nu * math.pi)
                - 0.5 * (nu + d) * np.logaddexp(0.0, log_maha - math.log(nu)))
    assert float(t.log_prob(x)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "bounds, error, match",
    [
        ([], ValueError, "got 0 pairs"),
        ((), ValueError, "got 0 pairs"),
        ([(0.0, 1.0)] * 3, ValueError, "got 3 pairs"),
        ([[]], TypeError, "bounds must be"),
        ([(0.0,)], TypeError, "bounds must be"),
        ([(0.0, 1.0, 2.0)], TypeError, "bounds must be"),
        ("ab", TypeError, "bounds must be"),
        (None, TypeError, "bounds must be"),
        (5, TypeError, "bounds must be"),
        ([(True, 2.0)], TypeError, "bounds"),
        ([(0.0, math.nan)], ValueError, "bounds must be finite"),
        ([(-math.inf, 0.0)], ValueError, "bounds must be finite"),
        ([(1.0, 1.0)], ValueError, "hi > lo"),
        ([(1.0, 0.0)], ValueError, "hi > lo"),
        ([(-1e308, 1e308)], ValueError, "bounds .* too wide"),
    ],
)
def test_make_grid_refuses_empty_and_invalid_bounds_by_name(bounds, error, match):
    with pytest.raises(error, match=match):
        dv.make_grid(bounds, 5)


def test_make_grid_accepts_arrays_of_pairs_and_refuses_bounds_beyond_float32():
    grid = dv.make_grid(np.array([[0.0, 1.0], [2.0, 4.0]]), 5)
    assert grid.shape == (5, 5)
    torch.testing.assert_close(grid.axes[1], torch.linspace(2.0, 4.0, 5, dtype=D))
    assert dv.make_grid((np.int64(-1), 1), 3).shape == (3,)
    with pytest.raises(ValueError, match="bounds .* exceed the range of dtype=torch.float32"):
        dv.make_grid([(-1e300, 1e300)], 5, torch.float32)
