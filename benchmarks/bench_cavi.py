"""Benchmark: vitoolkit.cavi.BayesianGMM vs scikit-learn's BayesianGaussianMixture, and SVI.

Run: ``python benchmarks/bench_cavi.py [--quick]``. Prints three tables:

1. Per-iteration time at n = 1e4, 1e5, 1e6 (d = 2, K = 10, full covariance), both fitted
   in this run on the same data, priors and initial responsibilities, with the largest
   difference in fitted weights and means after the same number of iterations. One
   iteration (E-step, M-step, bound) is timed directly, median of repeats
   (see :func:`per_iteration`).
2. How the cost grows with K at fixed n.
3. Stochastic VI over 1e7 points streamed in mini-batches vs the batch CAVI fit on the
   same points: ELBO per point, wall time and peak traced memory (tracemalloc).

scikit-learn is run with ``reg_covar=0`` (our model has no jitter) so the fits can be
compared to round-off; ``reg_covar`` does not change its speed. On a shared machine
OpenBLAS's threads can slow skinny matrix products many-fold, so scikit-learn is also
timed under one BLAS thread (``threadpoolctl``); ours always uses one for its products.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture
from threadpoolctl import threadpool_limits

from vitoolkit.cavi import BayesianGMM, StochasticBayesianGMM

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


def per_iteration(X, K, iters=12, seed=0):
    """Seconds per CAVI iteration: ours, scikit-learn, and scikit-learn with one BLAS thread.

    Both are first fitted for ``iters`` iterations from the same random initial
    responsibilities (drawn identically), which gives the parameter agreement. Then one
    iteration (E-step, M-step, bound) is timed directly on each fitted model, median of
    several repeats: for scikit-learn its ``_e_step``, ``_m_step`` and
    ``_compute_lower_bound`` (what its ``fit`` loop calls), for ours the same three stages.
    """
    from vitoolkit.cavi import _gauss_wishart as gw

    kw = dict(tol=0.0, random_state=seed, weight_concentration_prior=1.0 / K,
              init_params="random", max_iter=iters)
    ours, t_ours_fit = timed_fit(lambda: BayesianGMM(K, **kw), X)
    ref, t_ref_fit = timed_fit(lambda: BayesianGaussianMixture(
        n_components=K, reg_covar=0.0,
        weight_concentration_prior_type="dirichlet_distribution", **kw), X)
    repeats = max(3, min(50, int(3e6 / X.shape[0])))
    # compared before timing: the timed iterations below move scikit-learn's fitted model on
    dw = float(np.abs(ours.weights_ - ref.weights_).max())
    dm = float(np.abs(ours.means_ - ref.means_).max())

    passes = gw.design(X - ours.mean_prior_, False)
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

    t_ours = _median_time(our_iteration, repeats)
    t_ref = _median_time(ref_iteration, repeats)
    with threadpool_limits(limits=1, user_api="blas"):
        t_ref1 = _median_time(ref_iteration, repeats)
    return t_ours, t_ref, t_ref1, dw, dm, t_ours_fit, t_ref_fit


def table_speed(sizes, K, mixture):
    print(f"\n## Per-iteration time, d={D}, K={K}, full covariance (median of repeats; "
          "parameters compared after 12 iterations from the same start)")
    print(f"{'n':>10} {'ours s/it':>11} {'sklearn s/it':>13} {'speed-up':>9} "
          f"{'sklearn 1-thr':>14} {'speed-up':>9} {'max|dw|':>9} {'max|dm|':>9} "
          f"{'12-it fit ours/sk s':>20}")
    rows = []
    for n in sizes:
        X = draw(mixture, n, np.random.default_rng(n))
        ours, ref, ref1, dw, dm, fit_ours, fit_ref = per_iteration(X, K)
        rows.append((n, ours, ref))
        print(f"{n:>10.0e} {ours:>11.4f} {ref:>13.4f} {ref / ours:>8.1f}x {ref1:>14.4f} "
              f"{ref1 / ours:>8.1f}x {dw:>9.1e} {dm:>9.1e} {fit_ours:>9.2f}/{fit_ref:<9.2f}",
              flush=True)
    if len(rows) > 1:
        (n0, o0, r0), (n1, o1, r1) = rows[0], rows[-1]
        grow = np.log(n1 / n0)
        print(f"cost ~ n^{np.log(o1 / o0) / grow:.2f} (ours), n^{np.log(r1 / r0) / grow:.2f} "
              "(sklearn) over this range")


def table_components(n, Ks, mixture):
    print(f"\n## Cost vs K at n={n:.0e}, d={D}, full covariance")
    print(f"{'K':>4} {'ours s/it':>11} {'sklearn s/it':>13} {'speed-up':>9} "
          f"{'sklearn 1-thr':>14} {'speed-up':>9}")
    X = draw(mixture, n, np.random.default_rng(1))
    for K in Ks:
        ours, ref, ref1, *_ = per_iteration(X, K)
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
    parser.add_argument("--parts", default="speed,components,svi",
                        help="comma-separated subset of speed,components,svi")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    mixture = make_mixture(10)
    if "speed" in parts:
        table_speed([10**4, 10**5] if args.quick else [10**4, 10**5, 10**6], 10, mixture)
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
