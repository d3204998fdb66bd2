"""The fast paths of the CAVI kernel give the same numbers as the plain routes (no timing here):
initial assignments as scikit-learn draws them, statistics from labels without an (n, K)
matrix, the threaded and cached E-step, the exp floor, and the entropy from the statistics."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.mixture import BayesianGaussianMixture

from vitoolkit.cavi import BayesianGMM
from vitoolkit.cavi import _gauss_wishart as gw
from vitoolkit.cavi._init import INIT_PARAMS, initial_assignment


def blobs(seed, n_per=400, d=2, k=3, spread=6.0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-spread, spread, size=(k, d))
    return np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres])


@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_initial_assignment_is_scikit_learns_and_consumes_the_same_draws(init_params):
    X = blobs(0)
    K = 5
    ref = BayesianGaussianMixture(n_components=K, init_params=init_params)
    captured = {}
    ref._initialize = lambda X, resp: captured.setdefault("resp", resp)
    rs_ref = np.random.RandomState(11)
    ref._initialize_parameters(X, rs_ref)
    rs = np.random.RandomState(11)
    start = initial_assignment(X, K, init_params, rs)
    np.testing.assert_array_equal(start.dense(), captured["resp"])
    assert start.covers_all == np.allclose(captured["resp"].sum(axis=1), 1.0)
    # the generators are left in the same state: the next restart (n_init) draws alike
    assert rs.randint(2**31) == rs_ref.randint(2**31)


def test_unknown_init_is_rejected():
    with pytest.raises(ValueError, match="init_params"):
        initial_assignment(blobs(0), 3, "spectral", np.random.RandomState(0))


@pytest.mark.parametrize("diag", [False, True])
@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_statistics_from_labels_equal_the_dense_route(init_params, diag):
    X = blobs(1, d=3)
    Xc = X - X.mean(axis=0)
    start = initial_assignment(X, 4, init_params, np.random.RandomState(2))
    fast = gw.stats_from_assignment(Xc, start, diag)
    dense = gw.stats_from_resp(Xc, start.dense(), diag)
    # independent route: the definitions N_k = sum_n r_nk, s_k = sum_n r_nk x_n, S_k
    r = start.dense()
    np.testing.assert_allclose(fast.nk, r.sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast.sx, r.T @ Xc, rtol=1e-12, atol=1e-10)
    sxx = np.einsum("nk,ni,nj->kij", r, Xc, Xc)
    np.testing.assert_allclose(fast.sxx, np.einsum("kii->ki", sxx) if diag else sxx,
                               rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(fast.entropy, dense.entropy, rtol=1e-12, atol=1e-12)
    assert fast.n == dense.n == X.shape[0]


def test_statistics_from_labels_hold_no_n_by_k_matrix():
    n, K = 200_000, 20
    X = np.random.default_rng(3).normal(size=(n, 2))
    start = initial_assignment(X, K, "random_from_data", np.random.RandomState(0))
    labels = np.random.default_rng(4).integers(0, K, size=n)
    start.labels, start.rows = labels, None  # a hard assignment of every row, as k-means gives
    tracemalloc.start()
    gw.stats_from_assignment(X, start, False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < n * K * 8 / 8  # an (n, K) float matrix would be 32 MB; the chunks are ~3 MB


def _fitted(cov="full", n_per=3000, K=6):
    X = blobs(5, n_per=n_per, d=2, k=4)
    model = BayesianGMM(K, covariance_type=cov, random_state=0, max_iter=4, tol=0.0,
                        init_params="random")
    with pytest.warns(Warning):
        model.fit(X)
    return X - model.mean_prior_, model._post, model._prior


def _dense_estep(Xc, post):
    """Responsibilities from log rho by scipy's logsumexp over the full (n, K) matrix."""
    L = gw.features(Xc, post.diag) @ gw.log_rho_coefficients(post)
    log_r = L - logsumexp(L, axis=1, keepdims=True)
    r = np.exp(log_r)
    F = gw.features(Xc, post.diag)
    raw = r.T @ F
    entropy = -float(np.sum(r * log_r))
    return raw, entropy


@pytest.mark.parametrize("cov", ["full", "diag"])
@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("budget", [0, 2**29])
@pytest.mark.parametrize("tile", [None, 384])  # 384: two batched tiles and a partial one per block
def test_threaded_and_cached_estep_equal_the_dense_route(cov, threads, budget, tile,
                                                         monkeypatch):
    monkeypatch.setenv("VITOOLKIT_NUM_THREADS", threads)
    Xc, post, _ = _fitted(cov)
    raw, entropy = _dense_estep(Xc, post)
    des = gw.Design(Xc, post.diag, rows=1024, budget_bytes=budget, tile=tile)
    for _ in range(2):  # the first pass fills the cache, the second reads it
        stats = gw.accumulate(des, post)
        d = Xc.shape[1]
        nk, sx, sxx = gw.unpack_stats(raw, d, post.diag)
        np.testing.assert_allclose(stats.nk, nk, rtol=1e-11)
        np.testing.assert_allclose(stats.sx, sx, rtol=1e-11, atol=1e-8)
        np.testing.assert_allclose(stats.sxx, sxx, rtol=1e-11, atol=1e-8)
        np.testing.assert_allclose(stats.entropy, entropy, rtol=1e-9, atol=1e-8)
        assert stats.n == Xc.shape[0]
    plain = gw.accumulate(gw.chunks_of(Xc), post)
    np.testing.assert_allclose(plain.sxx, stats.sxx, rtol=1e-12)


def test_threaded_estep_does_not_depend_on_timing(monkeypatch):
    monkeypatch.setenv("VITOOLKIT_NUM_THREADS", "2")
    Xc, post, _ = _fitted(n_per=5000)
    des = gw.Design(Xc, post.diag, rows=1024, budget_bytes=0)
    a, b = gw.accumulate(des, post), gw.accumulate(des, post)
    assert np.array_equal(a.sxx, b.sxx) and a.entropy == b.entropy


def test_estep_is_bit_identical_for_every_thread_count(monkeypatch):
    # every tile writes its own slot and the slots are summed in one order at the end
    Xc, post, _ = _fitted(n_per=5000)
    results = []
    for threads in ("1", "2", "3", "5"):
        monkeypatch.setenv("VITOOLKIT_NUM_THREADS", threads)
        des = gw.Design(Xc, post.diag, rows=1024, budget_bytes=2**29, tile=256)
        results.append(gw.accumulate(des, post))
    for r in results[1:]:
        assert np.array_equal(r.sxx, results[0].sxx) and np.array_equal(r.nk, results[0].nk)
        assert r.entropy == results[0].entropy


def test_exp_floor_leaves_far_components_at_zero_responsibility():
    # points far from every component but one: log rho differences of -1e4 (exp underflows)
    Xc, post, _ = _fitted()
    far = Xc * 200.0
    raw, _ = _dense_estep(far, post)
    des = gw.design(far, post.diag)
    for _ in range(2):  # the first pass finds the blocks that need the floor, the next uses it
        stats = gw.accumulate(des, post)
        np.testing.assert_allclose(stats.nk, raw[:, 0], rtol=1e-11, atol=1e-300)
        assert np.isfinite(stats.entropy)
    assert all(des.floors) and all(des.shift)  # every block needed the row-max shift too
    plain = gw.accumulate(gw.chunks_of(far), post)  # every block floored
    np.testing.assert_allclose(plain.nk, stats.nk, rtol=1e-12)


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_fast_path_and_shifted_blocks_agree_with_the_dense_route(cov):
    # a few outliers far from every component force their blocks onto the shifted path;
    # the other blocks take the unshifted one
    Xc, post, _ = _fitted(cov)
    Xc = Xc.copy()
    Xc[::2000] *= 300.0
    raw, entropy = _dense_estep(Xc, post)
    des = gw.Design(Xc, post.diag, rows=1024, budget_bytes=2**29)
    for _ in range(2):
        stats = gw.accumulate(des, post)
        nk, sx, sxx = gw.unpack_stats(raw, Xc.shape[1], post.diag)
        np.testing.assert_allclose(stats.nk, nk, rtol=1e-11)
        np.testing.assert_allclose(stats.sxx, sxx, rtol=1e-11)
        np.testing.assert_allclose(stats.entropy, entropy, rtol=1e-9, atol=1e-8)
    assert 0 < sum(des.shift) < len(des.bounds)


def test_posterior_cache_follows_assignment():
    _, post, prior = _fitted()
    prec = post.expected_precision()
    np.testing.assert_allclose(prec, post.nu[:, None, None] * np.linalg.inv(post.W_inv),
                               rtol=1e-12)
    post.W_inv = post.W_inv * 2.0  # assignment invalidates the cached W, log det, E[Lambda]
    np.testing.assert_allclose(post.expected_precision(), prec / 2.0, rtol=1e-12)
    np.testing.assert_allclose(post.log_det_W(), -np.linalg.slogdet(post.W_inv)[1], rtol=1e-12)
    post.nu = post.nu + 1.0
    np.testing.assert_allclose(post.expected_precision(),
                               post.nu[:, None, None] * np.linalg.inv(post.W_inv), rtol=1e-12)
    copy = post.copy()
    assert copy._cache is None and np.array_equal(copy.expected_precision(),
                                                  post.expected_precision())


def test_kernel_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from vitoolkit.cavi import _gauss_wishart as gw; "
            "import vitoolkit.expectations; from vitoolkit.cavi import _init; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("cov", ["full", "diag"])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_predict_labels_equal_the_argmax_of_the_responsibilities(cov, threads, monkeypatch):
    monkeypatch.setenv("VITOOLKIT_NUM_THREADS", threads)
    Xc, post, _ = _fitted(cov)
    want = np.argmax(gw.log_resp(Xc, post), axis=1)
    np.testing.assert_array_equal(gw.predict_labels(Xc, post), want)
    des = gw.Design(Xc, post.diag, rows=1024, budget_bytes=2**29)
    gw.accumulate(des, post)  # cache filled
    np.testing.assert_array_equal(gw.predict_labels(des, post), want)


def test_threaded_estep_works_in_a_forked_child(monkeypatch):
    import multiprocessing

    monkeypatch.setenv("VITOOLKIT_NUM_THREADS", "2")
    Xc, post, _ = _fitted(n_per=3000)
    des = gw.Design(Xc, post.diag, rows=1024, budget_bytes=0)
    want = gw.accumulate(des, post).nk  # the parent's pool exists now
    ctx = multiprocessing.get_context("fork")
    with warnings.catch_warnings():  # Python >= 3.12 warns about fork() with live threads
        warnings.simplefilter("ignore", DeprecationWarning)
        with ctx.Pool(1) as pool:
            got = pool.apply_async(_child_estep, (des, post)).get(timeout=60)
    np.testing.assert_array_equal(got, want)


def _child_estep(des, post):
    return gw.accumulate(des, post).nk
