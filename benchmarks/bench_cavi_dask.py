"""Benchmark: BayesianGMM on a Dask array read from disk, on a local cluster, vs in memory.

Run: ``python benchmarks/bench_cavi_dask.py [--n 1e8] [--memory-n 1e7] [--iters 5]``
(needs the ``dask`` extra: ``pip install vitoolkit[dask]``).

1. Writes n rows (d = 2) of a K = 10 component Gaussian mixture to a ``.npy`` file in a
   temporary directory (or ``--dir``), block by block with ``ndarray.tofile`` (the writing
   process never maps the file, so its resident memory stays small), and prints its size
   (n = 1e8: 1.6 GB; the free space is checked first).
2. Starts ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``; each chunk of
   ``--chunk-rows`` rows is read by the worker that computes it (``np.load(mmap_mode="r")`` of
   its rows: the data never passes through the client), and fits ``BayesianGMM(n_components=10)``
   for ``--iters`` iterations from the sampled k-means start.
3. Fits the same model in memory on the first ``--memory-n`` rows, in this process, after.

Printed: the client's peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``,
read after the Dask fit and before anything of size n is loaded in the client) and each
worker's; the time per iteration (the E-step pass; the M-step and the bound cost
microseconds), the setup passes (validation and moments, covariance, initialisation), and the
per-point ratio (Dask seconds per row per iteration) / (in-memory seconds per row per
iteration). The machine's load average is printed too: on a shared machine compare the ratio
within one run, not the absolute times.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
import warnings

import numpy as np

K = 10
D = 2


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"(load average {one:.2f} / {five:.2f} over 1 / 5 min, {os.cpu_count()} CPUs)"


def write_data(path: str, n: int, block: int = 2**22, seed: int = 0) -> int:
    """n rows of a 10-component mixture in a .npy file, written block by block; its bytes."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(K) / K
    centres = 10.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (n, D)})
        for start in range(0, n, block):
            m = min(block, n - start)
            rows = centres[rng.integers(K, size=m)] + rng.normal(size=(m, D))
            rows.tofile(f)
    return os.path.getsize(path)


def read_rows(path: str, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of the .npy file (run on the worker that needs them)."""
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def dask_array(path: str, n: int, chunk_rows: int):
    import dask
    import dask.array as da

    parts = [da.from_delayed(dask.delayed(read_rows, pure=True)(path, s, min(s + chunk_rows, n)),
                             shape=(min(s + chunk_rows, n) - s, D), dtype=np.float64)
             for s in range(0, n, chunk_rows)]
    return da.concatenate(parts, axis=0)


class Timer:
    """Records the duration of each call of a module function (the E-step passes)."""

    def __init__(self, module, name):
        self.module, self.name, self.times = module, name, []
        self.original = getattr(module, name)

    def __enter__(self):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = self.original(*args, **kwargs)
            self.times.append(time.perf_counter() - t0)
            return out

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc):
        setattr(self.module, self.name, self.original)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e8, help="rows on disk (default 1e8)")
    parser.add_argument("--memory-n", type=float, default=1e7,
                        help="rows of the in-memory fit (default 1e7, capped at n)")
    parser.add_argument("--iters", type=int, default=5, help="CAVI iterations (default 5)")
    parser.add_argument("--chunk-rows", type=int, default=2**21,
                        help="rows per Dask chunk (default 2**21, 32 MB)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", default=None, help="where to write the .npy (default: a temp dir)")
    args = parser.parse_args()
    n, n_mem = int(args.n), int(min(args.memory_n, args.n))

    from dask.distributed import Client, LocalCluster

    from vitoolkit.cavi import BayesianGMM
    from vitoolkit.cavi import _gauss_wishart as gw
    from vitoolkit.cavi import distributed as dd

    base = tempfile.mkdtemp(prefix="bench_cavi_dask_", dir=args.dir)
    try:
        need = n * D * 8
        free = shutil.disk_usage(base).free
        if need > 0.8 * free:
            raise SystemExit(f"{need / 1e9:.1f} GB needed in {base} but {free / 1e9:.1f} GB free; "
                             "use a smaller --n or another --dir")
        path = os.path.join(base, "X.npy")
        t0 = time.perf_counter()
        size = write_data(path, n)
        print(f"# BayesianGMM on a Dask array from disk: n={n:.3g}, d={D}, K={K}, "
              f"{args.iters} iterations, full covariance")
        print(f"data: {path}, {size / 1e9:.2f} GB ({size} bytes), written in "
              f"{time.perf_counter() - t0:.1f} s")
        rss_start = maxrss_mb()
        kw = dict(n_components=K, max_iter=args.iters, tol=0.0, random_state=0)
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            X = dask_array(path, n, args.chunk_rows)
            print(f"cluster: {args.workers} worker processes x 1 thread; {X.numblocks[0]} chunks "
                  f"of {args.chunk_rows} rows; {_load()}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Timer(dd, "gw_accumulate") as estep, Timer(dd, "as_dask_data") as check, \
                        Timer(dd.DaskData, "covariance") as cov, \
                        Timer(dd, "gw_initial_stats") as init:
                    t0 = time.perf_counter()
                    model = BayesianGMM(**kw).fit(X)
                    t_fit = time.perf_counter() - t0
            rss_client = maxrss_mb()
            rss_workers = client.run(lambda: __import__("resource").getrusage(
                __import__("resource").RUSAGE_SELF).ru_maxrss / 1024.0)
        print(f"Dask fit: {t_fit:.1f} s in all; setup passes: validation + moments "
              f"{check.times[0]:.1f} s, covariance {cov.times[0]:.1f} s, sampled k-means start "
              f"{init.times[0]:.1f} s; {_load()}")
        it = np.array(estep.times)
        print(f"time per iteration (E-step pass over {n:.3g} rows): median {np.median(it):.2f} s, "
              f"min {it.min():.2f} s, all {np.round(it, 2).tolist()}")
        print(f"client peak RSS: {rss_client:.0f} MB (at start {rss_start:.0f} MB: imports); "
              f"the data are {size / 1e6:.0f} MB")
        print("worker peak RSS (MB): " + ", ".join(f"{v:.0f}" for v in rss_workers.values()))
        print(f"ELBO per point after {args.iters} iterations: {model.lower_bound_ / n:.6f}; "
              f"weights {np.round(np.sort(model.weights_), 4).tolist()}")

        # the in-memory fit on the first n_mem rows, in this process (after the peak was read)
        Xm = np.array(np.load(path, mmap_mode="r")[:n_mem])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Timer(gw, "accumulate") as mem:
                t0 = time.perf_counter()
                BayesianGMM(**kw).fit(Xm)
                t_mem = time.perf_counter() - t0
        im = np.array(mem.times[: args.iters])  # the last call is labels_'s, not timed here
        print(f"in-memory fit, n={n_mem:.3g} (default threads: {os.cpu_count()}): {t_mem:.1f} s in "
              f"all; time per iteration median {np.median(im):.3f} s; {_load()}")
        ratio = (np.median(it) / n) / (np.median(im) / n_mem)
        print(f"per-point time ratio, Dask / in-memory: {ratio:.2f} "
              f"({1e9 * np.median(it) / n:.1f} vs {1e9 * np.median(im) / n_mem:.1f} ns per row "
              "per iteration)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
