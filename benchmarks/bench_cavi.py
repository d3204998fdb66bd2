"""Benchmark: vitoolkit.cavi.BayesianGMM vs scikit-learn's BayesianGaussianMixture, and SVI.

Run: ``python benchmarks/bench_cavi.py [--quick] [--parts ...] [--memory]``. Parts
(``--parts``, comma-separated; default ``limits,speed,first,memory``):

- ``speed``: per-iteration time at n = 1e4, 1e5, 1e6 (d = 2, K = 10, full covariance), both
  fitted in this run on the same data, priors and initial responsibilities, with the largest
  relative difference (max |ours - sklearn| / max |sklearn|) of the fitted weights, means,
  covariances and precisions after the same 12 iterations. One
  iteration (E-step, M-step, bound) is timed directly after the warm-up fit, median of
  repeats (see :func:`per_iteration`); ours with its default threads and with one.
- ``limits``: the machine's limits for one E-step (memory bandwidth, NumPy and torch float64
  ``exp`` throughput) and the resulting floor for n = 1e6, K = 10.
- ``first``: the first fit in a fresh process (import, first and second fit at n = 1e4,
  12 iterations, default k-means start), ours and scikit-learn's, CPU and wall seconds.
- ``memory`` (or ``--memory``): peak resident memory of a whole fit at n = 1e7 (default
  k-means start), measured in a child process (its ``VmHWM``, the kernel's high-water mark).
- ``components``: how the cost grows with K at fixed n.
- ``svi``: stochastic VI over 1e7 points streamed in mini-batches vs the batch CAVI fit on the
  same points: ELBO per point, wall time and peak traced memory (tracemalloc).

scikit-learn is run with ``reg_covar=0`` (our model has no jitter) so the fits can be
compared to round-off; ``reg_covar`` does not change its speed. On a shared machine
OpenBLAS's threads can slow skinny matrix products many-fold, so scikit-learn is also
timed under one BLAS thread (``threadpoolctl``); ours always uses one BLAS thread per E-step
thread. The machine's load (``os.getloadavg``) is printed with every table: on a shared
machine compare the ratios within one run, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture
from threadpoolctl import threadpool_limits

from vitoolkit.cavi import BayesianGMM, StochasticBayesianGMM
from vitoolkit.cavi import _estep as es
from vitoolkit.cavi import _gauss_wishart as gw

D = 2


def make_mixture(k_true: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, size=(k_true, D))
    tril = np.tril(rng.normal(size=(k_true, D, D)) * 0.5)
    tril[:, np.arange(D), np.arange(D)] = rng.uniform(0.5, 1.5, size=(k_true, D))
    weights = rng.dirichlet(np.full(k_true, 5.0))
    return centres, tril, weights


def draw(mixture, n: int, rng: np.random.Generator) -> np.ndarray:
    centres, tril, weights = mixture
    z = rng.choice(len(weights), size=n, p=weights)
    eps = rng.normal(size=(n, D))
    return centres[z] + np.einsum("nij,nj->ni", tril[z], eps)


def timed_fit(make, X, blas_threads=None):
    with warnings.catch_warnings(), threadpool_limits(limits=blas_threads, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model = make().fit(X)
        return model, time.perf_counter() - start


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _load() -> str:
    return "load average %.2f %.2f %.2f (1/5/15 min, %d CPUs)" % (*os.getloadavg(), os.cpu_count())


def _with_threads(n_threads, fn):
    """Run ``fn`` with the E-step's thread count set (``VITOOLKIT_NUM_THREADS``)."""
    old = os.environ.get("VITOOLKIT_NUM_THREADS")
    os.environ["VITOOLKIT_NUM_THREADS"] = str(n_threads)
    try:
        return fn()
    finally:
        if old is None:
            del os.environ["VITOOLKIT_NUM_THREADS"]
        else:
            os.environ["VITOOLKIT_NUM_THREADS"] = old


def per_iteration(X, K, iters=12, seed=0):
    """Seconds per CAVI iteration: ours (default threads and one thread), scikit-learn, and
    scikit-learn with one BLAS thread; and the largest parameter difference.

    Both are first fitted for ``iters`` iterations from the same random initial
    responsibilities (drawn identically): that is the warm-up, and gives the parameter
    agreement. Then one iteration (E-step, M-step, bound) is timed directly on each fitted
    model, median of several repeats: for scikit-learn its ``_e_step``, ``_m_step`` and
    ``_compute_lower_bound`` (what its ``fit`` loop calls), for ours the same three stages
    as its fit loop runs them (:func:`gw.accumulate` over the fit's :func:`gw.design`, the two
    factor updates, :func:`gw.elbo`).
    """
    kw = dict(tol=0.0, random_state=seed, weight_concentration_prior=1.0 / K,
              init_params="random", max_iter=iters)
    ours, t_ours_fit = timed_fit(lambda: BayesianGMM(K, **kw), X)
    ref, t_ref_fit = timed_fit(lambda: BayesianGaussianMixture(
        n_components=K, reg_covar=0.0,
        weight_concentration_prior_type="dirichlet_distribution", **kw), X)
    repeats = max(7, min(50, int(3e6 / X.shape[0])))
    # compared before timing: the timed iterations below move scikit-learn's fitted model on
    diff = max(float(np.abs(getattr(ours, a) - getattr(ref, a)).max()
                     / np.abs(getattr(ref, a)).max())
               for a in ("weights_", "means_", "covariances_", "precisions_"))

    passes = gw.design(X - ours.mean_prior_, False, K=K)
    post, prior = ours._post.copy(), ours._prior

    def our_iteration():
        stats = gw.accumulate(passes(), post, precomputed=True)
        gw.update_weights(post, stats, prior)
        gw.update_gauss_wishart(post, stats, prior)
        gw.elbo(stats, post, prior)

    def ref_iteration():
        log_prob_norm, log_resp = ref._e_step(X)
        ref._m_step(X, log_resp)
        ref._compute_lower_bound(log_resp, log_prob_norm)

    our_iteration()  # fills the design's feature cache, as the fit's first pass does
    ours_repeats = max(repeats, 30)  # ours is cheap: more repeats steady its median
    t_ours = _median_time(our_iteration, ours_repeats)
    t_ours1 = _with_threads(1, lambda: _median_time(our_iteration, ours_repeats))
    t_ref = _median_time(ref_iteration, repeats)
    with threadpool_limits(limits=1, user_api="blas"):
        t_ref1 = _median_time(ref_iteration, repeats)
    return dict(ours=t_ours, ours1=t_ours1, ref=t_ref, ref1=t_ref1, diff=diff,
                fit_ours=t_ours_fit, fit_ref=t_ref_fit)


def table_speed(sizes, K, mixture):
    print(f"\n## Per-iteration time, d={D}, K={K}, full covariance (median of repeats after a "
          f"12-iteration warm-up fit from the same start; E-step threads: {gw.n_threads()})")
    print(_load())
    print(f"{'n':>8} {'ours ms/it':>11} {'1-thr ms/it':>12} {'sklearn ms/it':>14} {'ratio':>7} "
          f"{'sk 1-BLAS ms/it':>16} {'ratio':>7} {'max rel. diff':>14} "
          f"{'12-it fit ours/sk s':>20}")
    rows = []
    for n in sizes:
        X = draw(mixture, n, np.random.default_rng(n))
        r = per_iteration(X, K)
        rows.append((n, r["ours"], r["ref"]))
        print(f"{n:>8.0e} {1e3 * r['ours']:>11.2f} {1e3 * r['ours1']:>12.2f} "
              f"{1e3 * r['ref']:>14.1f} {r['ref'] / r['ours']:>6.1f}x {1e3 * r['ref1']:>16.1f} "
              f"{r['ref1'] / r['ours']:>6.1f}x {r['diff']:>14.1e} "
              f"{r['fit_ours']:>9.2f}/{r['fit_ref']:<9.2f}", flush=True)
    print(_load())
    if len(rows) > 1:
        (n0, o0, r0), (n1, o1, r1) = rows[0], rows[-1]
        grow = np.log(n1 / n0)
        print(f"cost ~ n^{np.log(o1 / o0) / grow:.2f} (ours), n^{np.log(r1 / r0) / grow:.2f} "
              "(sklearn) over this range")
    return rows


# -- the machine's limits for one E-step ----------------------------------------------
def _best_time(fn, repeats=7):
    fn()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def machine_limits(n=10**6, K=10):
    """Memory bandwidth and exp throughput, and the floor they set for one E-step.

    One E-step needs n K exponentials (nothing cheaper gives the responsibilities) and must
    read the data (n d doubles; our fit reads its cached (1 + d + Q) feature rows instead).
    Best of repeats (the least disturbed run on a shared machine).
    """
    print("\n## The machine's limits for one E-step (best of repeats)")
    print(_load())
    big = np.random.default_rng(0).normal(size=2 * 10**7)  # 160 MB: far beyond the caches
    dst = np.empty_like(big)
    t_copy = _best_time(lambda: np.copyto(dst, big), 5)
    t_sum = _best_time(lambda: big.sum(), 5)
    bw_copy = 2 * big.nbytes / t_copy
    bw_read = big.nbytes / t_sum
    m = 10**7
    v = np.random.default_rng(1).uniform(-30.0, 0.0, size=m)
    out = np.empty_like(v)
    t_exp1 = _best_time(lambda: np.exp(v, out=out))
    pool = ThreadPoolExecutor(2)
    halves = [(slice(0, m // 2)), slice(m // 2, m)]
    t_exp2 = _best_time(lambda: list(pool.map(lambda h: np.exp(v[h], out=out[h]), halves)))
    # the kernel uses exp2 (log2 e folded into its coefficients)
    t_pow1 = _best_time(lambda: np.exp2(v, out=out))
    t_pow2 = _best_time(lambda: list(pool.map(lambda h: np.exp2(v[h], out=out[h]), halves)))
    sub = np.random.default_rng(2).uniform(-740.0, -708.0, size=10**6)
    t_sub = _best_time(lambda: np.exp(sub), 3) * 10
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tv = torch.from_numpy(v)
    t_torch1 = _best_time(lambda: torch.exp(tv))
    torch.set_num_threads(threads)
    pool.shutdown()
    width = 1 + D + D * (D + 1) // 2
    floor_exp = n * K / m * t_pow2
    floor_mem = n * width * 8 / bw_read
    print(f"memory bandwidth: copy {bw_copy / 1e9:.1f} GB/s (read + write), sum {bw_read / 1e9:.1f} GB/s"
          " (read)")
    print(f"exp, float64, 1e7 values in [-30, 0]: NumPy {1e3 * t_exp1:.1f} ms on 1 thread, "
          f"{1e3 * t_exp2:.1f} ms on 2; torch {1e3 * t_torch1:.1f} ms on 1 thread "
          f"({t_torch1 / t_exp1:.1f}x NumPy); NumPy on subnormal results [-740, -708]: "
          f"{1e3 * t_sub:.0f} ms per 1e7 (why the E-step floors its arguments)")
    print(f"exp2, float64, the same values: NumPy {1e3 * t_pow1:.1f} ms on 1 thread, "
          f"{1e3 * t_pow2:.1f} ms on 2 (the E-step's kernel works in base 2)")
    print(f"E-step floor at n={n:.0e}, K={K}: {1e3 * floor_exp:.1f} ms of exp2 on 2 threads + "
          f"{1e3 * floor_mem:.1f} ms to read the {width} feature rows "
          f"(they overlap at best: limit ~{1e3 * max(floor_exp, floor_mem):.1f}"
          f"-{1e3 * (floor_exp + floor_mem):.1f} ms)")
    # ours, timed the same way (best of repeats), on a 12-iteration fit of the speed table's data
    X = draw(make_mixture(10), n, np.random.default_rng(n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = BayesianGMM(K, tol=0.0, max_iter=12, random_state=0, init_params="random",
                            weight_concentration_prior=1.0 / K).fit(X)
    des = gw.design(X - model.mean_prior_, False, K=K)
    t_ours2 = _best_time(lambda: gw.accumulate(des, model._post))
    t_ours1 = _with_threads(1, lambda: _best_time(lambda: gw.accumulate(des, model._post)))
    print(f"our E-step at n={n:.0e}, K={K}: {1e3 * t_ours2:.1f} ms on 2 threads "
          f"({t_ours2 / max(floor_exp, floor_mem):.1f}x the limit), {1e3 * t_ours1:.1f} ms on 1 "
          f"({t_ours1 / (n * K / m * t_pow1):.1f}x one thread's exp2 time); the rest of the "
          "E-step is six NumPy calls per (K, rows) block (log-rho GEMM, floor check, exp2, row-sum "
          "GEMV, F / s, statistics GEMM), each handing the GIL over once")
    kernel_scaling(K)
    return floor_exp, floor_mem


def kernel_scaling(K, rows=None, reps=40):
    """Each of the E-step kernel's calls on one thread, and on two threads at once (each on its
    own arrays): where two threads lose to two processes."""
    tile = es.tile_rows(K)
    rows = rows or 8 * tile
    W = 1 + D + D * (D + 1) // 2
    rng = np.random.default_rng(3)

    def calls():
        Ft, Ct = rng.normal(size=(W, rows)), rng.normal(size=(K, W)) * 0.1
        L, G = np.empty((K, rows)), np.empty((W, rows))
        s, out = np.empty(rows), np.empty((rows // tile, K, W))
        src = rng.uniform(-30.0, 0.0, size=(K, rows))
        Lt, Gt = (a.reshape(a.shape[0], -1, tile).transpose(1, 0, 2) for a in (L, G))
        ones = np.ones(K)
        return {
            "log-rho GEMM (batched)": lambda: np.matmul(Ct, Ft.reshape(W, -1, tile).transpose(1, 0, 2),
                                                        out=Lt),
            "floor check": lambda: np.minimum.reduce(src.reshape(-1)),
            "exp2": lambda: np.exp2(src, out=L),
            "row sums (GEMV)": lambda: np.matmul(ones, L, out=s),
            "F / s": lambda: np.divide(Ft, s, out=G),
            "statistics GEMM (batched)": lambda: np.matmul(Lt, Gt.transpose(0, 2, 1), out=out),
        }

    a, b = calls(), calls()
    pool = ThreadPoolExecutor(2)
    print(f"the kernel's calls, {rows} rows: ms per 1e6 rows on 1 thread; two threads at once, "
          "each on its own arrays (2.0x = perfect)")
    with threadpool_limits(limits=1, user_api="blas"):
        def loop(f):
            for _ in range(reps):
                f()

        for name in a:
            pair = (a[name], b[name])
            one = _best_time(lambda pair=pair: loop(pair[0]), 5)
            two = _best_time(lambda pair=pair: list(pool.map(loop, pair)), 5)
            print(f"  {name:28s} {1e3 * one * 1e6 / (reps * rows):6.2f} ms   two threads "
                  f"{2 * one / two:4.2f}x")
    pool.shutdown()


# -- first fit in a fresh process ---------------------------------------------------
_FIRST_FIT = textwrap.dedent("""
    import json, sys, time, warnings
    c0, w0 = time.process_time(), time.perf_counter()
    import numpy as np
    if sys.argv[1] == "ours":
        from vitoolkit.cavi import BayesianGMM as M
        kw = {}
    else:
        from sklearn.mixture import BayesianGaussianMixture as M
        kw = dict(weight_concentration_prior_type="dirichlet_distribution", reg_covar=0.0)
    c1, w1 = time.process_time(), time.perf_counter()
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(1000, 2)) + rng.uniform(-20, 20, size=2)
                        for _ in range(10)])
    warnings.simplefilter("ignore")
    def fit():
        c, w = time.process_time(), time.perf_counter()
        M(n_components=10, max_iter=12, tol=0.0, random_state=0, **kw).fit(X)
        return time.process_time() - c, time.perf_counter() - w
    first, second = fit(), fit()
    print(json.dumps(dict(import_cpu=c1 - c0, import_wall=w1 - w0, first_cpu=first[0],
                          first_wall=first[1], second_cpu=second[0], second_wall=second[1])))
""")


def table_first_fit(runs=3):
    """Fresh processes, alternating ours and scikit-learn; the best of ``runs`` of each
    figure (the least disturbed on a shared machine)."""
    print(f"\n## First fit in a fresh process: n=1e4, d=2, K=10, 12 iterations, k-means start "
          f"(best of {runs} processes each; seconds)")
    print(_load())
    results = {"ours": [], "sklearn": []}
    for _ in range(runs):
        for who in results:
            out = subprocess.run([sys.executable, "-c", _FIRST_FIT, who], capture_output=True,
                                 text=True, check=True)
            results[who].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'':>8} {'import cpu/wall':>16} {'first fit cpu/wall':>19} {'second fit cpu/wall':>20}")
    for who, rs in results.items():
        best = {k: min(r[k] for r in rs) for k in rs[0]}
        print(f"{who:>8} {best['import_cpu']:>7.3f}/{best['import_wall']:<8.3f} "
              f"{best['first_cpu']:>9.3f}/{best['first_wall']:<9.3f} "
              f"{best['second_cpu']:>10.3f}/{best['second_wall']:<9.3f}")
    print(_load())


# -- peak memory at n = 1e7 ----------------------------------------------------------
_MEMORY = textwrap.dedent("""
    import json, sys, time, warnings
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from bench_cavi import draw, make_mixture
    from vitoolkit.cavi import BayesianGMM
    n, max_iter = int(sys.argv[1]), int(sys.argv[2])
    X = np.empty((n, 2))
    mixture = make_mixture(10)
    step = 10**6
    for start in range(0, n, step):  # drawn in slices: the generator's temporaries stay small
        X[start:start + step] = draw(mixture, min(step, n - start),
                                     np.random.default_rng([n, start]))
    def peak_mb():  # VmHWM: this process's own peak (ru_maxrss would include the parent's,
        # which Linux carries across fork and exec)
        with open("/proc/self/status") as f:
            line = next(ln for ln in f if ln.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    before = peak_mb()
    warnings.simplefilter("ignore")
    c, w = time.process_time(), time.perf_counter()
    model = BayesianGMM(10, max_iter=max_iter, random_state=0).fit(X)
    print(json.dumps(dict(peak_mb=peak_mb(),
                          before_mb=before, data_mb=X.nbytes / 2**20,
                          cpu=time.process_time() - c, wall=time.perf_counter() - w,
                          n_iter=model.n_iter_)))
""")


def table_memory(n=10**7, max_iter=20):
    print(f"\n## Peak resident memory of a batch fit at n={n:.0e}, d={D}, K=10, k-means start, "
          f"max_iter={max_iter} (child process, its VmHWM)")
    print(_load())
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", _MEMORY, str(n), str(max_iter), here],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"data {r['data_mb']:.0f} MB; process peak before the fit {r['before_mb']:.0f} MB "
          f"(interpreter, libraries, data); peak with the fit {r['peak_mb']:.0f} MB "
          f"(goal < 1536 MB); fit {r['n_iter']} iterations, {r['wall']:.1f} s wall, "
          f"{r['cpu']:.1f} s CPU")
    return r


def table_components(n, Ks, mixture):
    print(f"\n## Cost vs K at n={n:.0e}, d={D}, full covariance")
    print(f"{'K':>4} {'ours s/it':>11} {'sklearn s/it':>13} {'speed-up':>9} "
          f"{'sklearn 1-thr':>14} {'speed-up':>9}")
    X = draw(mixture, n, np.random.default_rng(1))
    for K in Ks:
        r = per_iteration(X, K)
        ours, ref, ref1 = r["ours"], r["ref"], r["ref1"]
        print(f"{K:>4} {ours:>11.4f} {ref:>13.4f} {ref / ours:>8.1f}x {ref1:>14.4f} "
              f"{ref1 / ours:>8.1f}x", flush=True)


def stream(mixture, n_total, batch, seed=123):
    for b, start in enumerate(range(0, n_total, batch)):
        yield draw(mixture, min(batch, n_total - start), np.random.default_rng([seed, b]))


def table_svi(n_total, batch, K, mixture, batch_max_iter):
    print(f"\n## SVI over {n_total:.0e} streamed points (batches of {batch}) vs batch CAVI, "
          f"K={K}")
    tracemalloc.start()
    start = time.perf_counter()
    svi = StochasticBayesianGMM(K, total_samples=n_total, random_state=0,
                                mean_prior=np.zeros(D), covariance_prior=100.0 * np.eye(D))
    svi.fit(stream(mixture, n_total, batch))
    t_svi = time.perf_counter() - start
    peak_svi = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    elbo_svi, n_seen = svi.elbo_from_batches(stream(mixture, n_total, batch))

    X = np.concatenate(list(stream(mixture, n_total, batch)))
    tracemalloc.start()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full = BayesianGMM(K, random_state=0, mean_prior=np.zeros(D),
                           covariance_prior=100.0 * np.eye(D), max_iter=batch_max_iter,
                           tol=1e-7 * n_total).fit(X)
    t_batch = time.perf_counter() - start
    peak_batch = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    elbo_batch = full.lower_bound_
    per_svi, per_batch = elbo_svi / n_seen, elbo_batch / n_total
    print(f"{'method':>8} {'ELBO/point':>11} {'time s':>8} {'peak MB':>9} {'steps/iters':>12} "
          f"{'eff. K':>7}")
    print(f"{'SVI':>8} {per_svi:>11.5f} {t_svi:>8.1f} {peak_svi / 2**20:>9.1f} "
          f"{svi.n_steps_:>12} {svi.effective_n_components():>7}")
    print(f"{'batch':>8} {per_batch:>11.5f} {t_batch:>8.1f} {peak_batch / 2**20:>9.1f} "
          f"{full.n_iter_:>12} {full.effective_n_components():>7}")
    print(f"relative ELBO/point gap (batch - SVI)/|batch| = "
          f"{(per_batch - per_svi) / abs(per_batch):.2e}  (goal: < 1e-2); "
          f"data held by the batch fit: {X.nbytes / 2**20:.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--parts", default="limits,speed,first,memory",
                        help="comma-separated subset of limits,speed,first,memory,components,svi")
    parser.add_argument("--memory", action="store_true", help="only the n=1e7 peak-memory run")
    args = parser.parse_args()
    parts = {"memory"} if args.memory else set(args.parts.split(","))
    mixture = make_mixture(10)
    if "limits" in parts:
        machine_limits()
    if "speed" in parts:
        table_speed([10**4, 10**5] if args.quick else [10**4, 10**5, 10**6], 10, mixture)
    if "first" in parts:
        table_first_fit(1 if args.quick else 3)
    if "memory" in parts:
        table_memory(10**6 if args.quick else 10**7, 5 if args.quick else 20)
    if "components" in parts:
        if args.quick:
            table_components(10**4, [2, 10], mixture)
        else:
            table_components(10**5, [2, 5, 10, 20, 40], mixture)
    if "svi" in parts:
        table_svi(10**6 if args.quick else 10**7, 10**4, 10, make_mixture(5, seed=1),
                  30 if args.quick else 100)


if __name__ == "__main__":
    main()
