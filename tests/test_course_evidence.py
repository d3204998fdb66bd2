"""The claims' comparisons against SciPy's t statistics (the same standard errors)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from vitoolkit.course.evidence import (
    between,
    difference_of_estimates,
    independent_difference,
    mean_and_stderr,
    paired_difference,
)


def test_paired_matches_scipy_ttest_rel():
    rng = np.random.default_rng(0)
    a = rng.normal(size=40)
    b = a - 0.3 + 0.5 * rng.normal(size=40)
    d = paired_difference(a, b)
    assert d.z == pytest.approx(stats.ttest_rel(a, b).statistic, rel=1e-12)
    assert d.mean == pytest.approx(np.mean(a - b))
    assert d.wins == int((a > b).sum()) and d.n == 40


def test_independent_matches_welch():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 2.0, size=30), rng.normal(0.0, 0.5, size=50)
    d = independent_difference(torch.tensor(a), b)
    assert d.z == pytest.approx(stats.ttest_ind(a, b, equal_var=False).statistic, rel=1e-12)


def test_decisions_and_evidence():
    d = difference_of_estimates(1.0, 0.3, 0.2, 0.4)
    assert d.stderr == pytest.approx(0.5) and d.mean == pytest.approx(0.8)
    assert d.exceeds(1.5) and not d.exceeds(2) and not d.falls_short(0) and d.within(2)
    assert difference_of_estimates(0.0, 0.1, 1.0, 0.0).falls_short(3)
    ev = d.evidence(2)
    assert ev["factor"] == 2.0 and ev["z"] == pytest.approx(1.6)
    assert difference_of_estimates(1.0, 0.0, 1.0, 0.0).z == 0.0
    assert math.isinf(difference_of_estimates(2.0, 0.0, 1.0, 0.0).z)


def test_between_is_two_sided():
    assert between(0.5, 0, 1) and between(0.5, 1, 0)
    assert not between(1.5, 0, 1) and not between(-0.5, 0, 1) and not between(1.0, 0, 1)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        mean_and_stderr([1.0])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([1.0, float("nan")], [0.0, 0.0])
    with pytest.raises(ValueError, match="pair up"):
        paired_difference([1.0, 2.0, 3.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="stderr_b"):
        difference_of_estimates(0, 1, 0, -1)
