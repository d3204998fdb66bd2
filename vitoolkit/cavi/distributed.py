r"""CAVI is a sum over data: the batch mixture fits on a Dask array, chunk by chunk.

A batch CAVI iteration of a conjugate mixture needs the data only through sums over rows:
the expected sufficient statistics of q(Z) (PRML eq. 10.51-10.53; Blei, Kucukelbir &
McAuliffe 2017, section 3.2) and the data terms of the ELBO (PRML eq. 10.71-10.72 and the
entropy of q(Z)). So each iteration is one map-reduce over the chunks :math:`X_c` of the
rows:

.. math::

    \text{stats} = \sum_c \mathrm{chunk\_stats}(X_c, \text{global factors})

:class:`~vitoolkit.cavi.BayesianGMM` and :class:`~vitoolkit.cavi.UnitVarianceGMM` accept a
``dask.array.Array`` (rows in chunks, all columns in each chunk) and send each chunk's
statistics to the workers: the function a worker runs on its chunk is the very function the
in-memory fit runs on the whole array (``_gauss_wishart.accumulate`` on a Design of the chunk;
``blei._assignment_stats``), so the two fits agree to round-off by construction. Every chunk's
statistics come back to the client, a few hundred numbers each, and are added there in chunk
order (:func:`sum_in_order`): the result does not depend on the number of workers, on which
worker ran which chunk, nor on a chunk recomputed after a worker died; two chunkings differ by
round-off only. The client never holds more than one sample of rows (the initialisation,
below), the K x (1 + d + Q) statistics and the factors.

Data read once per fit before the iterations (one pass each): the column means, minima,
maxima and the count of NaN/inf entries (validation and the default ``mean_prior``), then,
unless ``covariance_prior`` is given, the centred second moments (the default prior
covariance, ``ddof=1`` as ``np.cov``).

The initialisation (``init_params``) runs on a uniform sample of rows, of at most
:data:`INIT_SAMPLE` rows: when n <= INIT_SAMPLE the sample is the whole array, in order, and
the start is exactly the in-memory fit's (the same ``random_state`` draws, the same k-means).
Beyond that, ``INIT_SAMPLE`` row indices are drawn with replacement (duplicates dropped) and
``"kmeans"`` runs scikit-learn's k-means on the sample, then labels every row by its nearest
centre on the workers (one k-means assignment step, one pass over the data). This is simpler
than k-means|| (Bahmani, Moseley, Vattani, Kumar & Vassilvitskii 2012, the scalable seeding
Dask-ML implements), which over-samples candidate centres in a few passes: a uniform sample of
2**18 rows suffices when every component holds far more than 1/2**18 of the data, and a
component the sample misses is what the Dirichlet prior switches off anyway. ``"k-means++"``
and ``"random_from_data"`` pick their K seed rows from the sample; ``"random"`` (a dense (n, K)
random responsibility matrix) is refused beyond INIT_SAMPLE rows. ``UnitVarianceGMM`` starts
its means at K distinct rows (:func:`distinct_indices`, the in-memory draw up to INIT_SAMPLE).

After the fit, ``labels_`` (and ``UnitVarianceGMM.resp_``) are lazy Dask arrays; ``predict``,
``score`` and the other fitted-model methods take in-memory data (a Dask array is read into
memory).

Dask is an optional extra (``pip install vitoolkit[dask]``); this module imports it only inside
its functions, and ``fit`` looks for a Dask array without importing dask
(:func:`is_dask_array` looks for ``dask.array`` among the modules already imported).
The scheduler is Dask's current one: a ``dask.distributed.Client`` when one is active (a
``LocalCluster`` or a multi-machine cluster), else the threaded scheduler.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from ._data import check_scale, check_shape

__all__ = ["INIT_SAMPLE", "DaskData", "as_dask_data", "distinct_indices", "is_dask_array",
           "sum_in_order", "gw_accumulate", "gw_initial_stats", "gw_labels"]

#: Rows the initialisation sees at most (module docstring): 2**18 rows of d = 2 floats are 4 MB.
INIT_SAMPLE = 2**18


def is_dask_array(X) -> bool:
    """True for a ``dask.array.Array`` (without importing dask: a caller holding one has)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(X, module.Array)


def _float_block(block) -> np.ndarray:
    return np.ascontiguousarray(block, dtype=np.float64)


def _on_float(fn, block, *args):
    """``fn`` on a chunk read as a C-contiguous float64 NumPy array (what a task runs)."""
    return fn(_float_block(block), *args)


def _on_float_kw(block, fn, **kwargs):
    return fn(_float_block(block), **kwargs)


def _moments_chunk(block):
    """One chunk's row count, column sums, minima, maxima and NaN/inf count (pass 1)."""
    x = block
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad or x.shape[0] == 0:
        return x.shape[0], np.zeros(x.shape[1]), np.zeros(x.shape[1]), np.zeros(x.shape[1]), bad
    return x.shape[0], x.sum(axis=0), x.min(axis=0), x.max(axis=0), 0


def _centred_chunk(block, mean):
    """One chunk's centred second moments sum_n (x_n - mean)(x_n - mean)^T, (d, d)."""
    xc = block - mean
    return xc.T @ xc


def sum_in_order(parts):
    """The sum of per-chunk results in chunk order (a left fold): arrays, numbers, tuples of
    them, or dataclasses of them (field by field). The order is fixed by the chunking alone."""
    total = parts[0]
    for part in parts[1:]:
        total = _add(total, part)
    return total


def _add(a, b):
    if dataclasses.is_dataclass(a):
        return type(a)(**{f.name: _add(getattr(a, f.name), getattr(b, f.name))
                          for f in dataclasses.fields(a) if f.init})
    if isinstance(a, tuple):
        return tuple(_add(x, y) for x, y in zip(a, b, strict=True))
    return a + b


@dataclasses.dataclass
class DaskData:
    """A validated Dask array (n, d) chunked along rows only, with the column statistics of
    its first pass. Made by :func:`as_dask_data`; the estimators' ``X`` during a fit."""

    array: object  # dask.array.Array (n, d), real floating, one chunk along the columns
    mean_: np.ndarray  # (d,)

    @property
    def shape(self) -> tuple[int, int]:
        return self.array.shape

    @property
    def ndim(self) -> int:
        return 2

    @property
    def n_chunks(self) -> int:
        return len(self.array.chunks[0])

    def mean(self, axis=0) -> np.ndarray:
        """Column means (``axis=0`` only), from the first pass."""
        if axis != 0:  # pragma: no cover - internal use only
            raise ValueError("DaskData.mean supports axis=0 only")
        return self.mean_.copy()

    def map_chunks(self, fn, *args) -> list:
        """``fn(chunk, *args)`` for every non-empty chunk (a NumPy (m, d) array) on Dask's
        current scheduler; the results in chunk order. Array ``args`` are sent once per call,
        not once per chunk."""
        import dask

        shared = [dask.delayed(a, pure=True)
                  if isinstance(a, np.ndarray) or dataclasses.is_dataclass(a) else a for a in args]
        call = dask.delayed(_on_float, pure=True)
        blocks = self.array.to_delayed().ravel()
        tasks = [call(fn, b, *shared) for b, m in zip(blocks, self.array.chunks[0], strict=True) if m]
        return list(dask.compute(*tasks))

    def map_reduce(self, fn, *args):
        """:func:`sum_in_order` of :meth:`map_chunks`: one pass, reduced in chunk order."""
        return sum_in_order(self.map_chunks(fn, *args))

    def covariance(self, diag: bool) -> np.ndarray:
        """The sample covariance (ddof=1) as ``np.cov(X.T)`` ((d, d)), or the variances
        (``diag``, (d,)): one more pass over the chunks (centred, then summed in order)."""
        n = self.shape[0]
        S = self.map_reduce(_centred_chunk, self.mean_) / (n - 1)
        return np.diag(S).copy() if diag else S

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """The rows ``idx`` (sorted ascending, no repeats) as a float64 NumPy array."""
        return _float_block(self.array[idx].compute())

    def to_numpy(self) -> np.ndarray:
        """The whole array in memory (the initialisation of a small array)."""
        return _float_block(self.array.compute())

    def sample_rows(self, random_state, size: int | None = None):
        """A uniform sample of rows for the initialisation: ``(indices, rows)``. The whole array
        (indices ``None``) when n <= ``size`` (default :data:`INIT_SAMPLE`), drawing nothing
        from ``random_state``; else ``size`` indices drawn with replacement from
        ``random_state``, sorted, repeats dropped."""
        n = self.shape[0]
        size = INIT_SAMPLE if size is None else size
        if n <= size:
            return None, self.to_numpy()
        idx = np.unique(random_state.randint(0, n, size=size))
        return idx, self.rows(idx)

    def map_blocks(self, fn, *, dtype, n_columns: int | None = None, **kwargs):
        """A lazy Dask array of ``fn(chunk, **kwargs)`` per chunk: (n,) when ``n_columns`` is
        None (e.g. labels), else (n, n_columns) (e.g. responsibilities)."""
        if n_columns is None:
            return self.array.map_blocks(_on_float_kw, dtype=dtype, drop_axis=1, fn=fn, **kwargs)
        return self.array.map_blocks(_on_float_kw, dtype=dtype, fn=fn,
                                     chunks=(self.array.chunks[0], (n_columns,)), **kwargs)


def as_dask_data(X, name: str = "X", *, min_samples: int = 1) -> DaskData:
    """Validate a Dask array for a mixture fit, with one pass over its chunks.

    Parameters
    ----------
    X : dask.array.Array of shape (n,) or (n, d)
        Real floating dtype (float16/32/64; each chunk is read as float64), chunked along the
        rows only (``X.chunks[1]`` a single chunk), chunk sizes known. A 1-D ``X`` is n samples
        of one feature, as for NumPy input.
    name : str
        The argument's name in messages.
    min_samples : int
        Fewest rows accepted.

    Raises
    ------
    TypeError
        A non-floating dtype (integer, boolean, object, string): convert with
        ``X.astype("float64")`` first (a conversion chosen by the caller, not here).
    ValueError
        Complex dtype (``"Complex data not supported"``, scikit-learn's wording), a rank other
        than 1 or 2, chunks along the columns, unknown chunk sizes, too few rows, NaN or inf.
    vitoolkit.exceptions.NonFiniteError
        Finite values whose sums of squares overflow float64.
    """
    dtype = X.dtype
    if dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} must hold real numbers, got a "
                         f"Dask array of complex dtype {dtype}")
    if dtype.kind != "f":
        what = {"b": "boolean", "O": "object", "i": "integer", "u": "unsigned integer"}
        raise TypeError(f"{name} must be a Dask array of real floating dtype (float32 or "
                        f"float64), got {what.get(dtype.kind, 'non-numeric')} dtype {dtype}; "
                        f"convert it first, e.g. {name}.astype('float64')")
    if X.ndim not in (1, 2):
        raise ValueError(f"{name} must be a 1-D or 2-D Dask array, got {X.ndim} dimensions "
                         f"(shape={X.shape})")
    if any(np.isnan(c) for cs in X.chunks for c in cs):
        raise ValueError(f"{name} has unknown chunk sizes {X.chunks}; call "
                         f"{name}.compute_chunk_sizes() first")
    if X.ndim == 1:
        X = X[:, None]
    n, d = X.shape
    if len(X.chunks[1]) != 1:
        raise ValueError(f"{name} must be chunked along the rows only (each chunk holding all "
                         f"{d} columns), got column chunks {X.chunks[1]}; rechunk with "
                         f"{name}.rechunk({{1: -1}})")
    check_shape(X.shape, name, min_samples=min_samples)
    data = DaskData(X, np.zeros(d))
    parts = [p for p in data.map_chunks(_moments_chunk) if p[0]]
    bad = sum(p[4] for p in parts)
    if bad:  # the in-memory wording (validation.check_finite)
        raise ValueError(f"{name} contains {bad} NaN or inf entries (of {n * d})")
    data.mean_ = sum_in_order([p[1] for p in parts]) / n
    low = np.min([p[2] for p in parts], axis=0)
    high = np.max([p[3] for p in parts], axis=0)
    check_scale(np.stack([low, high]), name, n_rows=n)
    return data


def distinct_indices(n: int, size: int, random_state) -> np.ndarray:
    """``size`` distinct row indices in [0, n), in draw order: ``random_state.choice(n, size,
    replace=False)`` (the in-memory fit's draw) when n <= :data:`INIT_SAMPLE`, else uniform
    draws with repeats rejected (``choice`` would permute all n rows: 800 MB at n = 1e8)."""
    if n <= INIT_SAMPLE:
        return random_state.choice(n, size=size, replace=False)
    picked: dict = {}
    while len(picked) < size:
        picked.setdefault(int(random_state.randint(0, n)), None)
    return np.fromiter(picked, dtype=np.intp, count=size)


# -- Bishop's variational GMM (BayesianGMM) on chunks ---------------------------------
def _gw_estep_chunk(block, m0, post, K):
    """One chunk's E-step statistics: the in-memory fit's ``accumulate`` on a Design of the
    chunk (one thread: Dask runs the chunks in parallel)."""
    from . import _gauss_wishart as gw

    Xc = block - m0
    return gw.accumulate(gw.design(Xc, post.diag, budget_bytes=0, K=K, threads=1), post)


def _gw_labels_chunk(block, m0, post, K):
    from . import _gauss_wishart as gw

    Xc = block - m0
    return gw.predict_labels(gw.design(Xc, post.diag, budget_bytes=0, K=K, threads=1), post)


def _gw_nearest_chunk(block, m0, centres, diag, K):
    """Statistics of the hard k-means labels of a chunk (each row to its nearest centre)."""
    from sklearn.metrics import pairwise_distances_argmin

    from . import _gauss_wishart as gw
    from ._init import Assignment

    x = block
    labels = pairwise_distances_argmin(x, centres)
    return gw.stats_from_assignment(x - m0, Assignment(x.shape[0], K, labels=labels), diag)


def gw_accumulate(data: DaskData, m0: np.ndarray, post):
    """One E-step (PRML eq. 10.46-10.53) over the chunks of ``data`` centred at ``m0`` (d,):
    each chunk's ``Stats`` on a worker, summed in chunk order on the client."""
    return data.map_reduce(_gw_estep_chunk, m0, post.copy(), post.m.shape[0])


def gw_labels(data: DaskData, m0: np.ndarray, post):
    """argmax_k r_nk of every row as a lazy Dask array (n,) of int64."""
    return data.map_blocks(_gw_labels_chunk, dtype=np.int64, m0=m0, post=post.copy(),
                           K=post.m.shape[0])


def gw_initial_stats(data: DaskData, K: int, init_params: str, m0: np.ndarray, diag: bool,
                     random_state):
    """Statistics of the initial responsibilities (module docstring: a sample of at most
    :data:`INIT_SAMPLE` rows) and whether they form a q(Z) for every row."""
    from sklearn.cluster import KMeans

    from . import _gauss_wishart as gw
    from ._init import initial_assignment

    idx, sample = data.sample_rows(random_state)
    if idx is not None and init_params == "kmeans":
        # k-means on the sample, then every row labelled by its nearest centre on the workers
        centres = KMeans(n_clusters=K, n_init=1, random_state=random_state).fit(sample)
        return data.map_reduce(_gw_nearest_chunk, m0, centres.cluster_centers_, diag, K), True
    # the whole array (the in-memory start exactly), or seed rows picked from the sample
    start = initial_assignment(sample, K, init_params, random_state)
    return gw.stats_from_assignment(sample - m0, start, diag), idx is None and start.covers_all


def check_init(init_params: str, n: int) -> None:
    """Refuse ``init_params="random"`` beyond :data:`INIT_SAMPLE` rows (its (n, K) matrix)."""
    if init_params == "random" and n > INIT_SAMPLE:
        raise ValueError(f"init_params='random' draws a dense (n, K) responsibility matrix; with "
                         f"a Dask array of n={n} rows (more than INIT_SAMPLE={INIT_SAMPLE}) use "
                         "'kmeans', 'k-means++' or 'random_from_data'")
