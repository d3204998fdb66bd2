"""Shared test set-up and the policy for randomized tests.

Policy for randomized (Monte Carlo) tests
-----------------------------------------
- Every random draw comes from a local generator with a fixed seed
  (``torch.Generator().manual_seed(...)`` or ``numpy.random.default_rng(...)``);
  nothing seeds or reads the global random state, so each test is
  deterministic and order-independent.
- A Monte Carlo estimate is compared with its exact value through its standard
  error: ``|estimate - exact| <= Z * stderr`` (``assert_mc_close`` in
  ``tests/_stats.py``), with ``Z = 4.5`` unless a test states otherwise. Under
  the normal approximation a correct estimator fails such a check with
  probability 2 * (1 - Phi(4.5)) = 6.8e-6 per check, so across the few hundred
  such checks in the suite the chance that *some* seed would fail a correct
  implementation is below 1e-3. Because seeds are fixed, a check that passes
  once passes always; the bound is the false-failure rate over fresh seeds.
- The number of draws is chosen so that Z * stderr is small compared with the
  errors the check must catch (a wrong constant, a missing factor of 2).
- Variance checks compare a sample variance with the closed form through the
  standard error of the sample variance, sqrt((m4 - s^4) / n), estimated from
  the same draws.
- Hypothesis property tests use ``derandomize=True`` profiles (see below), so
  CI runs are reproducible too.

Other set-up: warnings are errors (pyproject ``filterwarnings = error``);
the classical algorithms run in float64, which the ``float64`` fixture makes
the torch default for a test that needs it; matplotlib uses the Agg backend.
"""

from __future__ import annotations

import os

import matplotlib
import pytest
import torch
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: The z-score of the standard-error tolerance used by Monte Carlo checks.
Z = 4.5


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for the whole suite.

    The suite runs many tiny tensor operations (small networks, batched
    estimators); a second thread only adds hand-off latency, and on a shared
    2-core machine it made small networks train up to 20x slower.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def float64():
    """Make float64 the torch default for one test, restoring the previous default."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch.float64
    finally:
        torch.set_default_dtype(old)


@pytest.fixture
def gen():
    """A fresh, fixed-seed local torch generator."""
    return torch.Generator().manual_seed(12345)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
