r"""The E-step's arithmetic over row blocks: features, the threaded kernel, and its limits.

The log-responsibilities of a Gaussian mixture are linear in a few features of each row::

    log rho_nk = F_n . C_k,   F_n = [1, x_n, quadratic terms of x_n]   (1 + d + Q numbers)

so one small GEMM per block of rows gives log rho, one ``exp`` the unnormalised
responsibilities, and a second GEMM the statistics r^T F. :mod:`._gauss_wishart` builds C
from the posterior and reads the statistics; this module only runs the passes.

Speed (``benchmarks/bench_cavi.py --parts limits,speed``). Per block of about 4 MB of
(K, rows) the kernel makes six NumPy calls: the log-rho GEMM, the floor check, ``exp2``, the
row sums (a GEMV), F / s and the statistics GEMM; the two GEMMs run batched over tiles of
about 512 KB, which stay in the L2 cache. NumPy and BLAS release the GIL inside each call, so
the blocks are shared between threads, each taking the next block from a common counter (a
thread the machine slows down takes fewer). Two limits keep two threads from halving the time
(measured on a 2-core machine, where two *processes* each running half the E-step do halve
it; ``bench_cavi.py --parts limits`` prints each call's two-thread scaling): every call hands
the GIL over once, and OpenBLAS's small GEMMs and GEMVs barely overlap when two threads of one
process call them at once (its internal locking; OpenBLAS issue 2712), while NumPy's own
``exp2``, comparison and division loops scale to both cores.

Determinism. Each block writes its statistics (per tile) and its row sums' logs into its own
slots, and the slots are summed in one fixed order at the end, so the result is bit-identical
for every thread count and every timing, whichever thread ran which block.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CHUNK = 8192  # rows per pass of chunks_of: keeps (chunk, K) blocks in cache, memory bounded
# The kernel works in base 2: rho = 2^(log2 rho), with log2(e) folded into the coefficients,
# because NumPy's exp2 is about 1.15x faster than its exp (float64, AVX-512; see the benchmark's
# limits). Rounding log2(e) into the coefficients adds one rounding per coefficient, the same
# order as the GEMM's own.
LOG2E = 1.0 / math.log(2.0)
LN2 = math.log(2.0)
# exp2 of arguments below -1022 (subnormal results) runs 10-40x slower on x86; arguments are
# floored here first. 2^-1010 ~ 1e-304 next to a row's largest term: invisible in every sum
# (it changes responsibilities by < 1e-300 relative). A Design remembers which of its blocks
# needed the floor (a block checks its minimum until then).
EXP2_FLOOR = -1010.0
# Unshifted fast path: 2^(log2 rho) directly, skipping the row-max pass and the shift, valid
# when every row's sum lies in [2^-945, 1e300]: no overflow, and the floored terms
# (<= K 2^-1010) are below 1e-18 of the row's sum. A block outside that range is redone with
# the row-max shift, and a Design remembers it.
FAST_MIN = 2.0**-945
FAST_MAX = 1e300


# -- features ----------------------------------------------------------------
def n_quad_features(d: int, diag: bool) -> int:
    return d if diag else d * (d + 1) // 2


def feature_rows(Xt: np.ndarray, diag: bool, out: np.ndarray) -> np.ndarray:
    """Write [1, x, quadratic terms] of the columns of ``Xt`` (d, m) into ``out``
    (1 + d + Q, m) and return it."""
    d = Xt.shape[0]
    out[0] = 1.0
    out[1 : 1 + d] = Xt
    if diag:
        np.multiply(Xt, Xt, out=out[1 + d :])
    else:
        row = 1 + d
        for i in range(d):
            np.multiply(Xt[i], Xt[i:], out=out[row : row + d - i])
            row += d - i
    return out


def features(X: np.ndarray, diag: bool) -> np.ndarray:
    """[1, x, quadratic terms] per row, shape (n, 1 + d + Q): one GEMM against them gives
    both the log-responsibilities and the statistics (no loop over components). The
    quadratic terms are x_i x_j for i <= j in row-major upper-triangle order."""
    n, d = X.shape
    out = np.empty((1 + d + n_quad_features(d, diag), n))
    return feature_rows(X.T, diag, out).T


def chunks_of(Xc: np.ndarray):
    for start in range(0, Xc.shape[0], CHUNK):
        yield Xc[start : start + CHUNK]


# -- threads ---------------------------------------------------------------
class _Blas:
    """Single-threaded BLAS for the skinny (K, 1 + d + Q) x (., m) products: measured 10x
    faster than OpenBLAS's own threads on a shared 2-core machine, and no slower when idle
    (the E-step runs its own threads over row blocks instead)."""

    controller = None


def blas_one_thread():
    if _Blas.controller is None:  # scikit-learn's, if it has made one: scanning costs ~0.05 s
        try:
            from sklearn.utils.parallel import _get_threadpool_controller
        except ImportError:  # pragma: no cover - private helper moved
            from threadpoolctl import ThreadpoolController as _get_threadpool_controller
        _Blas.controller = _get_threadpool_controller()
    return _Blas.controller.limit(limits=1, user_api="blas")


def n_threads() -> int:
    """Threads for the E-step: the CPUs this process may run on (``VITOOLKIT_NUM_THREADS``
    overrides)."""
    env = os.environ.get("VITOOLKIT_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


_POOL: list = [None, 0, 0]  # executor, its thread count, the process that made it


def _pool(threads: int) -> ThreadPoolExecutor:
    """One executor per process, remade when the thread count changes or after a fork (a
    forked child has the executor object but not its threads)."""
    pid = os.getpid()
    if _POOL[0] is None or _POOL[1] != threads or _POOL[2] != pid:
        if _POOL[0] is not None and _POOL[2] == pid:
            _POOL[0].shutdown(wait=False)
        _POOL[:] = [ThreadPoolExecutor(threads, thread_name_prefix="vitoolkit-cavi"), threads, pid]
    return _POOL[0]


def _split(n_blocks: int, job, most: int | None = None) -> None:
    """Run ``job(first, stop)`` over contiguous runs of blocks, one run per thread (a thread
    only pays off with a few blocks each; at most ``most`` threads, default :func:`n_threads`)."""
    threads = max(1, min(most or n_threads(), n_blocks // 2))
    cuts = [round(i * n_blocks / threads) for i in range(threads + 1)]
    if threads == 1:
        job(0, n_blocks)
    else:
        list(_pool(threads).map(job, cuts[:-1], cuts[1:]))


# -- the blocks of a data set ------------------------------------------------
def tile_rows(K: int) -> int:
    """Rows per GEMM tile: a (K, rows) tile stays about 512 KB, in the L2 cache (OpenBLAS's
    skinny GEMMs slow down 2-4x once their operands leave it)."""
    return max(512, (1 << 16) // max(K, 1) // 512 * 512)


def block_rows(K: int, n: int | None = None) -> int:
    """Rows per E-step block: up to eight GEMM tiles, about 4 MB of (K, rows). The element-wise
    passes (exp, floor check, row sums) stream from the L3 cache at full speed, and a large
    block keeps the NumPy calls, hence the GIL hand-overs, few. For ``n`` rows, blocks shrink
    (to whole tiles) so that there are about eight of them, enough to share between threads;
    the blocking depends on n and K only, never on the thread count."""
    tile = tile_rows(K)
    if n is None:
        return 8 * tile
    return min(8, max(1, -(-n // (8 * tile)))) * tile


def _tiled(a: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """A (r, m) array as a stack of (r, tile) tiles, shape (c, r, tile) (a view, no copy, over
    the first c * tile columns), and the remaining (r, m - c * tile) columns."""
    r, m = a.shape
    c = m // tile
    return a[:, : c * tile].reshape(r, c, tile).transpose(1, 0, 2), a[:, c * tile :]


class Design:
    """The centred data of a fit cut into row blocks, with each block's feature rows
    (1 + d + Q, m) cached on the first pass when they fit in ``budget_bytes`` (else
    recomputed on every pass), and the E-step's per-tile slots.

    Each block's two GEMMs run as one batched call over its tiles of ``tile`` rows (default:
    the whole block is one tile). Calling a Design returns itself (the old "generator factory"
    interface: ``passes()``); iterating yields the transposed feature blocks.
    """

    def __init__(self, Xc: np.ndarray, diag: bool, rows: int, budget_bytes: int,
                 tile: int | None = None, threads: int | None = None):
        self.Xc, self.diag = Xc, diag
        self.threads = threads  # None: n_threads(); a Dask task runs its chunk with 1
        d = Xc.shape[1]
        self.width = 1 + d + n_quad_features(d, diag)
        self.rows = rows
        self.tile = min(tile or rows, rows)
        self.bounds = [(s, min(s + rows, Xc.shape[0])) for s in range(0, Xc.shape[0], rows)]
        # each block's first statistics slot: one per tile (a partial last tile has its own)
        counts = [-(-(b - a) // self.tile) for a, b in self.bounds]
        self.first_tile = np.concatenate([[0], np.cumsum(counts)]).astype(int).tolist()
        # filled block by block on the first pass (so a fit's initialisation, e.g. k-means,
        # never holds it at the same time); None when over budget
        self.floors = [False] * len(self.bounds)  # see EXP2_FLOOR
        self.shift = [False] * len(self.bounds)  # see FAST_MIN
        self.cached = [None] * len(self.bounds) if Xc.shape[0] * self.width * 8 <= budget_bytes \
            else None
        self._slots = None
        self._work = {}

    def __call__(self):
        return self

    def __iter__(self):
        for i in range(len(self.bounds)):
            yield self.block(i)

    def block(self, i: int, buf: np.ndarray | None = None) -> np.ndarray:
        """Feature rows (1 + d + Q, m) of block ``i`` (cached, or written into ``buf``)."""
        a, b = self.bounds[i]
        if self.cached is not None:
            if self.cached[i] is None:  # each block belongs to one thread: no race
                self.cached[i] = feature_rows(self.Xc[a:b].T, self.diag,
                                              np.empty((self.width, b - a)))
            return self.cached[i]
        if buf is None:
            buf = np.empty((self.width, b - a))
        return feature_rows(self.Xc[a:b].T, self.diag, buf[:, : b - a])

    def workspace(self, key: int, K: int):
        """One thread's working arrays, made once per fit (fresh 4 MB arrays on every pass
        would cost page faults): exp (K, rows), F / s and, when the features are not
        cached, a feature buffer (width, rows)."""
        work = self._work.get(key)
        if work is None or work[0].shape[0] != K:
            buf = None if self.cached is not None else np.empty((self.width, self.rows))
            work = self._work[key] = (np.empty((K, self.rows)), np.empty((self.width, self.rows)),
                                      buf)
        return work

    def slots(self, K: int):
        """The outputs of one E-step, made once per fit: r^T F per tile (tiles, K, width), each
        row's sum of rho (n,), and each block's log-shift (blocks,)."""
        if self._slots is None or self._slots[0].shape[1] != K:
            self._slots = (np.empty((self.first_tile[-1], K, self.width)),
                           np.empty(self.Xc.shape[0]), np.zeros(len(self.bounds)))
        return self._slots


def design(Xc: np.ndarray, diag: bool, budget_bytes: int = 2**29, *, K: int = 10,
           threads: int | None = None) -> Design:
    """The row blocks of a data set held in memory, for repeated E-step passes: feature rows
    computed once per fit when they fit in ``budget_bytes``, else recomputed block by block on
    every pass. ``K`` sets the block and tile sizes (:func:`block_rows`, :func:`tile_rows`);
    ``threads`` caps the E-step's threads (default :func:`n_threads`)."""
    return Design(Xc, diag, block_rows(K, Xc.shape[0]), budget_bytes, tile_rows(K), threads)


# -- the kernel ------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _ones(K: int) -> np.ndarray:
    """A read-only vector of K ones (the row-sum GEMV's left factor), made once per K."""
    ones = np.ones(K)
    ones.setflags(write=False)
    return ones


def _log_rho(Ct, Ft, L, tile):
    """L = Ct @ Ft, one batched GEMM over the tiles (and one for a partial last tile)."""
    (Ft_t, Ft_r), (L_t, L_r) = _tiled(Ft, tile), _tiled(L, tile)
    np.matmul(Ct, Ft_t, out=L_t)
    if Ft_r.shape[1]:
        np.matmul(Ct, Ft_r, out=L_r)


def _statistics(L, G, out, tile):
    """r^T F per tile into ``out`` (tiles, K, width): e (F / s)^T, batched as :func:`_log_rho`.
    (OpenBLAS runs these long-inner-dimension GEMMs one caller thread at a time; measured, six
    GEMVs per block instead run side by side but cost more in all.)"""
    (L_t, L_r), (G_t, G_r) = _tiled(L, tile), _tiled(G, tile)
    c = L_t.shape[0]
    np.matmul(L_t, G_t.transpose(0, 2, 1), out=out[:c])
    if L_r.shape[1]:
        np.matmul(L_r, G_r.T, out=out[c])


def _shifted_block(Ct2, Ft, L, G, s, tile):
    """The safe route for one block: 2^(log2 rho - row max), floored, from base-2 coefficients
    ``Ct2``. Writes rho / 2^max into ``L``, the row sums into ``s`` and F / s into ``G``; returns
    the block's summed row maxima in nats."""
    _log_rho(Ct2, Ft, L, tile)
    mx = L.max(axis=0)
    L -= mx
    np.maximum(L, EXP2_FLOOR, out=L)
    np.exp2(L, out=L)
    np.matmul(_ones(L.shape[0]), L, out=s)
    np.divide(Ft, s, out=G)
    return LN2 * float(mx.sum())


def _fast_block(Ct2, Ft, L, G, s, tile, floored: bool) -> bool:
    """The fast route for one block: 2^(log2 rho) unshifted (a handful of NumPy calls, see the
    module docstring). Returns whether the block needed the exp floor."""
    _log_rho(Ct2, Ft, L, tile)
    if floored or np.minimum.reduce(L.reshape(-1)) < EXP2_FLOOR:  # a 1-D reduction: the
        # whole-array L.min() holds the GIL (measured: two threads no faster than one)
        np.maximum(L, EXP2_FLOOR, out=L)
        floored = True
    np.exp2(L, out=L)
    np.matmul(_ones(L.shape[0]), L, out=s)  # the row sums as a GEMV: 1.6x np.sum(axis=0)
    np.divide(Ft, s, out=G)
    return floored


def estep_design(des: Design, Ct: np.ndarray):
    """One E-step over a :class:`Design` with coefficients ``Ct`` (K, width), threaded over its
    blocks. Returns (r^T F as (K, width), sum_n log sum_k rho_nk, rows)."""
    K = Ct.shape[0]
    Ct2 = Ct * LOG2E
    raws, sums, shifts = des.slots(K)
    tile = des.tile

    def run(i, Ft, L, G):
        a, b = des.bounds[i]
        Li, Gi, s = L[:, : b - a], G[:, : b - a], sums[a:b]
        if des.shift[i]:
            shifts[i] = _shifted_block(Ct2, Ft, Li, Gi, s, tile)
        else:
            des.floors[i] = _fast_block(Ct2, Ft, Li, Gi, s, tile, des.floors[i])
            shifts[i] = 0.0
        _statistics(Li, Gi, raws[des.first_tile[i] : des.first_tile[i + 1]], tile)

    def pull(w, counter):
        """Worker ``w``: blocks from the shared counter until none is left (a thread slowed by
        the machine simply takes fewer blocks); each block's row sums end as their logs."""
        L, G, buf = des.workspace(w, K)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while (i := next(counter)) < len(des.bounds):
                run(i, des.block(i, buf), L, G)
                a, b = des.bounds[i]
                np.log(sums[a:b], out=sums[a:b])

    nb = len(des.bounds)
    with blas_one_thread():
        # a thread pays off with a few blocks each
        threads = max(1, min(des.threads or n_threads(), nb // 2))
        counter = itertools.count()  # next() is atomic under the GIL: each block runs once
        if threads == 1:
            pull(0, counter)
        else:
            list(_pool(threads).map(pull, range(threads), [counter] * threads))
        # the fast route's range check, on the logs: a row far from every component (or
        # overflowing) sends its block to the shifted route, now and after
        if not _in_range_log(sums):
            L, G, buf = des.workspace(0, K)
            for i in range(nb):
                a, b = des.bounds[i]
                if not des.shift[i] and not _in_range_log(sums[a:b]):
                    des.shift[i] = True
                    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                        run(i, des.block(i, buf), L, G)
                    np.log(sums[a:b], out=sums[a:b])
    # fixed order, independent of the thread count and timing
    return raws.sum(axis=0), float(sums.sum()) + float(shifts.sum()), des.Xc.shape[0]


_LOG_FAST_MIN, _LOG_FAST_MAX = math.log(FAST_MIN), math.log(FAST_MAX)


def _in_range_log(log_s: np.ndarray) -> bool:
    """Every row's log sum of rho within the fast route's range (False for NaN)."""
    return bool(np.minimum.reduce(log_s) >= _LOG_FAST_MIN and np.maximum.reduce(log_s) <= _LOG_FAST_MAX)


def estep_blocks(blocks, Ct: np.ndarray):
    """One E-step over an iterable of feature blocks Ft (width, m), each on the safe route
    (row-max shift and floor). Returns as :func:`estep_design`."""
    K, width = Ct.shape
    Ct2 = Ct * LOG2E
    raw = np.zeros((K, width))
    lse = 0.0
    n = 0
    with blas_one_thread():
        for Ft in blocks:
            m = Ft.shape[1]
            L, G, s = np.empty((K, m)), np.empty((width, m)), np.empty(m)
            lse += _shifted_block(Ct2, Ft, L, G, s, m) + float(np.log(s).sum())
            raw += L @ G.T
            n += m
    return raw, lse, n


def argmax_design(des: Design, Ct: np.ndarray) -> np.ndarray:
    """argmax_k log rho_nk for every row of a :class:`Design`, shape (n,) int64 (threaded, no
    (n, K) array beyond one block per thread)."""
    out = np.empty(des.Xc.shape[0], dtype=np.int64)

    def job(first, stop):
        buf = None if des.cached is not None else np.empty((des.width, des.rows))
        for i in range(first, stop):
            a, b = des.bounds[i]
            np.argmax(Ct @ des.block(i, buf), axis=0, out=out[a:b])

    with blas_one_thread():
        _split(len(des.bounds), job, des.threads)
    return out
