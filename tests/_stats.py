"""Statistical assertions for randomized tests (policy in ``conftest.py``)."""

from __future__ import annotations

import math

import torch

Z = 4.5


def _t(x):
    return torch.as_tensor(x, dtype=torch.float64)


def assert_mc_close(estimate, exact, stderr, z: float = Z, atol: float = 1e-10):
    """Assert |estimate - exact| <= z * stderr + atol elementwise, with a readable message.

    ``atol`` (default 1e-10) only absorbs floating-point round-off where the
    standard error is zero (e.g. a zero-variance estimator)."""
    estimate, exact, stderr = _t(estimate), _t(exact), _t(stderr)
    err = (estimate - exact).abs()
    bound = z * stderr + atol
    bad = ~(err <= bound)
    if bool(bad.any()):
        raise AssertionError(
            f"Monte Carlo check failed at {int(bad.sum())} of {bad.numel()} entries: "
            f"estimate={estimate[bad].tolist()}, exact={exact[bad].tolist()}, "
            f"stderr={stderr[bad].tolist()}, z={z}"
        )


def sample_variance_and_stderr(x: torch.Tensor, dim: int = 0):
    """Unbiased sample variance along ``dim`` and its standard error sqrt((m4 - s^4)/n)."""
    x = _t(x)
    n = x.shape[dim]
    centred = x - x.mean(dim, keepdim=True)
    var = centred.pow(2).sum(dim) / (n - 1)
    m4 = centred.pow(4).mean(dim)
    se = ((m4 - var.pow(2)).clamp_min(0) / n).sqrt()
    return var, se


def assert_variance_close(samples, exact_variance, dim: int = 0, z: float = Z, rtol: float = 0.0):
    """Assert a sample variance matches a closed form within z standard errors."""
    var, se = sample_variance_and_stderr(samples, dim)
    exact = _t(exact_variance)
    assert_mc_close(var, exact, se, z=z, atol=rtol * exact.abs())


__all__ = ["Z", "assert_mc_close", "assert_variance_close", "sample_variance_and_stderr", "math"]
