"""BayesianGMM and UnitVarianceGMM on a Dask array (vitoolkit.cavi.distributed).

The independent route is the in-memory fit: it blocks the rows differently (its own Design,
threads) and sums them in another order, so agreement to 1e-10 (relative to each parameter's
size) shows that the chunked fit computes the same statistics, not merely similar ones. The
same chunking on two schedulers (threaded, a cluster of worker processes) must agree exactly:
a chunk's statistics do not depend on where it ran, and the client sums them in chunk order.

Default tier: Dask's threaded and synchronous schedulers (no cluster). The ``slow`` tests share
one ``LocalCluster(n_workers=2, processes=True, threads_per_worker=1)`` per module (a spawn
costs seconds).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="dask is an optional extra: pip install "
                         "vitoolkit[dask] (dask[array] and distributed)")
import dask  # noqa: E402

import vitoolkit  # noqa: E402
from vitoolkit.cavi import BayesianGMM, UnitVarianceGMM  # noqa: E402
from vitoolkit.cavi import distributed as dd  # noqa: E402
from vitoolkit.exceptions import NonFiniteError  # noqa: E402

PARAMS = {
    BayesianGMM: ("weights_", "means_", "covariances_", "precisions_", "weight_concentration_",
                  "mean_precision_", "degrees_of_freedom_"),
    UnitVarianceGMM: ("means_", "mean_variances_"),
}


def _data(n_per=1000, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 5.0], [-5.0, 4.0]])
    scales = np.array([1.0, 0.6, 1.4])
    return np.concatenate([c + s * rng.normal(size=(n_per, 2)) for c, s in zip(centres, scales, strict=True)])


X = _data()
SETTINGS = [
    (BayesianGMM, dict(n_components=3, covariance_type="full", tol=1e-7, random_state=1)),
    (BayesianGMM, dict(n_components=4, covariance_type="diag", tol=1e-7, random_state=2,
                       init_params="k-means++")),
    (UnitVarianceGMM, dict(n_components=3, prior_std=10.0, random_state=3)),
]
IDS = ["bayes-full-kmeans", "bayes-diag-kmeans++", "unit-variance"]


def assert_same_fit(a, b, rtol=1e-10):
    """Every fitted parameter of ``b`` equals ``a``'s to ``rtol`` of the parameter's size."""
    assert a.n_iter_ == b.n_iter_
    for name in PARAMS[type(a)]:
        x, y = getattr(a, name), getattr(b, name)
        assert np.max(np.abs(x - y)) <= rtol * np.max(np.abs(x)), name
    assert abs(a.lower_bound_ - b.lower_bound_) <= rtol * abs(a.lower_bound_)
    np.testing.assert_allclose(b.elbo_history_, a.elbo_history_, rtol=rtol)
    labels = b.labels_.compute() if hasattr(b.labels_, "compute") else b.labels_
    np.testing.assert_array_equal(labels, a.labels_)


def assert_identical(a, b):
    for name in PARAMS[type(a)] + ("elbo_history_",):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# -- default tier: threaded / synchronous schedulers ------------------------------------
@pytest.mark.parametrize("cls, kw", SETTINGS, ids=IDS)
def test_threaded_scheduler_equals_in_memory_fit(cls, kw):
    memory = cls(**kw).fit(X)
    with dask.config.set(scheduler="threads"):
        chunked = cls(**kw).fit(da.from_array(X, chunks=(700, 2)))
    assert hasattr(chunked.labels_, "compute")  # lazy: n labels need not fit in memory
    assert_same_fit(memory, chunked)
    if cls is UnitVarianceGMM:
        np.testing.assert_allclose(chunked.resp_.compute(), memory.resp_, rtol=0, atol=1e-12)


def test_two_chunkings_and_two_schedulers():
    """Two chunkings agree to round-off; one chunking on two schedulers agrees exactly."""
    cls, kw = SETTINGS[0]
    with dask.config.set(scheduler="threads"):
        a = cls(**kw).fit(da.from_array(X, chunks=(700, 2)))
        b = cls(**kw).fit(da.from_array(X, chunks=(1999, 2)))
    with dask.config.set(scheduler="synchronous"):
        c = cls(**kw).fit(da.from_array(X, chunks=(700, 2)))
    assert_same_fit(a, b)
    assert_identical(a, c)


def test_float32_and_one_dimensional_arrays():
    """float32 chunks are read as float64; a 1-D array is n samples of one feature."""
    X32 = X.astype(np.float32)
    kw = dict(n_components=3, tol=1e-7, random_state=1)
    assert_same_fit(BayesianGMM(**kw).fit(X32.astype(np.float64)),
                    BayesianGMM(**kw).fit(da.from_array(X32, chunks=(1000, 2))))
    x = X[:, 0]
    kw = dict(n_components=2, prior_std=10.0, random_state=0)
    a = UnitVarianceGMM(**kw).fit(x)
    b = UnitVarianceGMM(**kw).fit(da.from_array(x, chunks=800))
    assert b.means_.shape == (2, 1)
    assert_same_fit(a, b)


def test_check_monotonic_on_chunks():
    """The per-factor ELBO record works from the summed statistics."""
    kw = dict(n_components=3, tol=1e-7, random_state=1, check_monotonic=True)
    a = BayesianGMM(**kw).fit(X)
    b = BayesianGMM(**kw).fit(da.from_array(X, chunks=(900, 2)))
    assert [s[:2] for s in a.step_elbo_] == [s[:2] for s in b.step_elbo_]
    np.testing.assert_allclose([s[2] for s in b.step_elbo_], [s[2] for s in a.step_elbo_],
                               rtol=1e-10)


def test_sampled_kmeans_start(monkeypatch):
    """Beyond INIT_SAMPLE rows, k-means runs on a sample and every row gets its nearest
    centre: the initial statistics equal the brute-force sums over all rows, and the fit
    reaches the in-memory fit's optimum (well separated clusters)."""
    from sklearn.cluster import KMeans

    monkeypatch.setattr(dd, "INIT_SAMPLE", 500)
    data = dd.as_dask_data(da.from_array(X, chunks=(700, 2)))
    rs = np.random.RandomState(7)
    m0 = X.mean(axis=0)
    stats, proper = dd.gw_initial_stats(data, 3, "kmeans", m0, False, rs)
    assert proper
    # the same draws by hand: the sample's indices, then k-means on those rows
    rs = np.random.RandomState(7)
    idx = np.unique(rs.randint(0, X.shape[0], size=500))
    centres = KMeans(n_clusters=3, n_init=1, random_state=rs).fit(X[idx]).cluster_centers_
    labels = np.argmin(((X[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    Xc = X - m0
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(stats.nk, onehot.sum(0), rtol=1e-12)
    np.testing.assert_allclose(stats.sx, onehot.T @ Xc, rtol=1e-10)
    np.testing.assert_allclose(stats.sxx, np.einsum("nk,ni,nj->kij", onehot, Xc, Xc), rtol=1e-10)
    kw = dict(n_components=3, tol=1e-9, random_state=1)
    a = BayesianGMM(**kw).fit(X)
    b = BayesianGMM(**kw).fit(da.from_array(X, chunks=(700, 2)))
    ia, ib = np.argsort(a.means_[:, 0]), np.argsort(b.means_[:, 0])
    np.testing.assert_allclose(b.means_[ib], a.means_[ia], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(b.weights_[ib], a.weights_[ia], rtol=1e-6)
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-9)
    # UnitVarianceGMM's start: K distinct rows drawn without permuting all n
    u = UnitVarianceGMM(n_components=3, prior_std=10.0, random_state=4).fit(
        da.from_array(X, chunks=(700, 2)))
    first = u.means_history_[0]
    assert len({tuple(r) for r in first}) == 3
    assert all((X == r).all(axis=1).any() for r in first)


@pytest.mark.parametrize("array, error, words", [
    (da.from_array(X, chunks=(700, 1)), ValueError, ["X", "chunked along the rows only",
                                                     "(1, 1)", "rechunk"]),
    (da.from_array(X.astype(np.int64), chunks=(700, 2)), TypeError, ["X", "integer", "int64",
                                                                      "astype"]),
    (da.from_array(X.astype(object), chunks=(700, 2)), TypeError, ["X", "object"]),
    (da.from_array(X > 0, chunks=(700, 2)), TypeError, ["X", "boolean"]),
    (da.from_array(X.astype(complex), chunks=(700, 2)), ValueError,
     ["Complex data not supported", "X", "complex128"]),
    (da.from_array(np.where(np.arange(X.size).reshape(X.shape) == 4001, np.nan, X),
                   chunks=(700, 2)), ValueError, ["X contains 1 NaN or inf entries (of 6000)"]),
    (da.from_array(np.where(np.arange(X.size).reshape(X.shape) % 997 == 0, np.inf, X),
                   chunks=(700, 2)), ValueError, ["X contains 7 NaN or inf"]),
    (da.zeros((10, 2, 2), chunks=5), ValueError, ["X", "1-D or 2-D", "3 dimensions"]),
    (da.from_array(X * 1e160, chunks=(700, 2)), NonFiniteError, ["X", "overflow"]),
], ids=["column-chunks", "int", "object", "bool", "complex", "nan", "inf", "3-d", "overflow"])
@pytest.mark.parametrize("cls", [BayesianGMM, UnitVarianceGMM])
def test_bad_arrays_refused_by_name(cls, array, error, words):
    with pytest.raises(error) as info:
        cls(n_components=2).fit(array)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_unknown_chunks_random_start_and_record_steps_refused(monkeypatch):
    x = da.from_array(X, chunks=(700, 2))
    with pytest.raises(ValueError, match=r"unknown chunk sizes .*compute_chunk_sizes"):
        BayesianGMM(n_components=2).fit(x[x[:, 0] > 0])
    monkeypatch.setattr(dd, "INIT_SAMPLE", 1000)
    with pytest.raises(ValueError, match=r"init_params='random' .* n=3000 rows"):
        BayesianGMM(n_components=2, init_params="random").fit(x)
    with pytest.raises(ValueError, match="record_steps=True .* Dask array"):
        UnitVarianceGMM(n_components=2, record_steps=True).fit(x)


@pytest.mark.slow  # a fresh interpreter importing scikit-learn: about 2 s on an idle machine
def test_dask_is_never_imported_for_numpy_data():
    code = ("import sys, numpy as np\n"
            "from vitoolkit.cavi import BayesianGMM, UnitVarianceGMM\n"
            "x = np.random.default_rng(0).normal(size=(200, 2))\n"
            "BayesianGMM(n_components=2, random_state=0).fit(x)\n"
            "UnitVarianceGMM(n_components=2, random_state=0).fit(x)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
            "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(), timeout=120)
    assert out.returncode == 0, out.stderr


def _env() -> dict:
    """This process's environment with the vitoolkit under test first on PYTHONPATH (worker
    and child processes import it by name)."""
    root = os.path.dirname(os.path.dirname(vitoolkit.__file__))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


# -- a cluster of worker processes (slow tier) ----------------------------------------------
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed", reason="the cluster tests need "
                                      "distributed (pip install vitoolkit[dask])")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _die_once on the workers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # start-up notices (ports, dashboard) are not ours
        cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                           dashboard_address=None, env=_env())
        c = distributed.Client(cluster)
    try:
        yield c
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c.close()
            cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.slow
@pytest.mark.parametrize("cls, kw", SETTINGS, ids=IDS)
def test_cluster_equals_in_memory_and_threaded_fits(client, cls, kw):
    memory = cls(**kw).fit(X)
    x = da.from_array(X, chunks=(700, 2))
    on_cluster = cls(**kw).fit(x)
    assert_same_fit(memory, on_cluster)
    with dask.config.set(scheduler="threads"):
        threaded = cls(**kw).fit(x)
    assert_identical(on_cluster, threaded)  # where a chunk ran does not matter
    other = cls(**kw).fit(da.from_array(X, chunks=(1999, 2)))
    assert_same_fit(on_cluster, other)


def _die_once(block, marker_dir, die_at, block_info=None):
    """Kill this worker process on the ``die_at``-th read of chunk 0 (counted with files made
    atomically, so each read takes one number, whichever process it runs in)."""
    if block_info[0]["chunk-location"][0] == 0:
        count = 1
        while True:
            try:
                os.close(os.open(os.path.join(marker_dir, f"read-{count}"),
                                 os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                break
            except FileExistsError:
                count += 1
        if count == die_at:
            os._exit(1)
    return block


@pytest.mark.slow
def test_worker_killed_mid_fit_leaves_a_correct_fit(client, tmp_path):
    """Chunk 0 is read once per pass: validation (1), the prior covariance (2), the whole-array
    start (3), then one per iteration; its worker dies on the 5th read, in iteration 2. The
    nanny restarts it, the scheduler recomputes the lost chunk, and the fit equals the
    in-memory one."""
    cls, kw = SETTINGS[0]
    workers_before = set(client.scheduler_info()["workers"])
    x = da.from_array(X, chunks=(700, 2)).map_blocks(_die_once, str(tmp_path), 5,
                                                      dtype=X.dtype)
    chunked = cls(**kw).fit(x)
    reads = sorted(int(p.name.split("-")[1]) for p in tmp_path.iterdir())
    assert reads == list(range(1, len(reads) + 1)) and len(reads) >= 6  # died, then went on
    assert chunked.n_iter_ >= 3
    client.wait_for_workers(2, timeout=60)
    assert set(client.scheduler_info()["workers"]) != workers_before  # one was replaced
    assert_same_fit(cls(**kw).fit(X), chunked)
