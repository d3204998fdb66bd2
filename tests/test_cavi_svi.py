"""StochasticBayesianGMM (Hoffman, Blei, Wang & Paisley 2013)."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from vitoolkit.cavi import BayesianGMM, StochasticBayesianGMM


def blobs(seed, n_per=300, k=3):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(k, 2))
    return np.concatenate([c + 0.8 * rng.normal(size=(n_per, 2)) for c in centres])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_step_size_one_on_the_whole_data_is_one_cavi_iteration(covariance_type):
    X = blobs(0)
    kw = dict(covariance_type=covariance_type, random_state=4, init_params="random")
    svi = StochasticBayesianGMM(3, total_samples=X.shape[0], learning_offset=0.0, **kw)
    svi.partial_fit(X)  # rho_1 = (1 + 0)^-kappa = 1: the natural-gradient step is CAVI
    with pytest.warns(ConvergenceWarning):
        cavi = BayesianGMM(3, max_iter=1, **kw).fit(X)
    for name in ("weights_", "means_", "covariances_", "degrees_of_freedom_",
                 "mean_precision_"):
        np.testing.assert_allclose(getattr(svi, name), getattr(cavi, name), rtol=1e-10,
                                   atol=1e-12, err_msg=name)
    # and its ELBO estimate from the full "batch" is the exact ELBO before the step
    assert svi.learning_rates_ == [1.0]


def test_svi_reaches_the_batch_elbo():
    X = blobs(1, n_per=400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        batch = BayesianGMM(3, random_state=0, tol=1e-6, max_iter=500).fit(X)
    svi = StochasticBayesianGMM(3, batch_size=100, max_iter=30, random_state=0).fit(X)
    gap = (batch.lower_bound_ - svi.elbo(X)) / abs(batch.lower_bound_)
    assert -1e-9 <= gap < 2e-3
    np.testing.assert_allclose(np.sort(svi.means_[:, 0]), np.sort(batch.means_[:, 0]), atol=0.1)
    # the per-step estimates are unbiased for the ELBO; late ones scatter around the batch value
    late = np.array(svi.elbo_history_[-36:])
    assert abs(late.mean() - batch.lower_bound_) < 4.5 * late.std() / 6 + 1e-3 * abs(
        batch.lower_bound_)


def test_robbins_monro_schedule():
    svi = StochasticBayesianGMM(2, total_samples=10_000, learning_offset=3.0,
                                learning_decay=0.8, random_state=0)
    for b in range(5):
        svi.partial_fit(blobs(b, n_per=50, k=2))
    np.testing.assert_allclose(svi.learning_rates_, (np.arange(1, 6) + 3.0) ** -0.8)
    assert svi.n_steps_ == 5 and svi.n_samples_seen_ == 500


def test_memory_is_bounded_by_the_batch_not_the_stream():
    def stream(n_batches, size=2000):
        for b in range(n_batches):
            yield blobs(b, n_per=size // 2, k=2)

    peaks = []
    for n_batches in (10, 80):
        svi = StochasticBayesianGMM(4, total_samples=2000 * n_batches, random_state=0)
        tracemalloc.start()
        svi.fit(stream(n_batches))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    batch_bytes = 2000 * 2 * 8
    assert peaks[1] < 1.5 * peaks[0] + 64 * 1024
    assert peaks[1] < 60 * batch_bytes
    # the streamed ELBO evaluation is bounded the same way and counts every point
    value, n = svi.elbo_from_batches(stream(80))
    assert n == 160_000 and np.isfinite(value)


@pytest.mark.parametrize("kwargs, match", [
    ({"learning_decay": 0.5}, "learning_decay"),
    ({"learning_decay": 1.5}, "learning_decay"),
    ({"learning_offset": -1.0}, "learning_offset"),
    ({"total_samples": 0}, "total_samples"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_settings_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StochasticBayesianGMM(2, **kwargs).partial_fit(blobs(0, n_per=20))


def test_bad_batches():
    svi = StochasticBayesianGMM(2, random_state=0).partial_fit(blobs(0, n_per=20))
    with pytest.raises(ValueError, match="X has 3 features, but StochasticBayesianGMM is expecting 2"):
        svi.partial_fit(np.zeros((5, 3)))
    bad = blobs(1, n_per=20)
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="X contains 1 NaN or inf"):
        svi.partial_fit(bad)
    with pytest.raises(ValueError, match="empty iterable"):
        StochasticBayesianGMM(2).fit(iter([]))
    with pytest.raises(ValueError, match="n_components"):
        StochasticBayesianGMM(5).partial_fit(np.zeros((3, 2)))
