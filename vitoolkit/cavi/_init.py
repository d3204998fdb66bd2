"""Initial assignments of a mixture fit, drawn exactly as scikit-learn's mixtures draw them.

scikit-learn's ``BaseMixture._initialize_parameters`` builds a dense (n, K) responsibility
matrix for every ``init_params``; three of the four are hard assignments (one 1 per labelled
row), so here they are kept as labels: ``(rows, labels)`` (``rows`` ``None`` means every
row), which costs n integers instead of n x K floats (80 MB instead of 800 MB at n = 1e7,
K = 10). Only ``"random"`` is genuinely soft and is kept dense. The random draws consume
``random_state`` in the same order and amount as scikit-learn, so the same seed gives the
same start (and fits that agree to round-off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Imported with the module, not on the first fit: sklearn.cluster costs about 0.14 s of CPU on
# first import, the same price scikit-learn's own mixtures pay when sklearn.mixture is imported.
from sklearn.cluster import KMeans, kmeans_plusplus

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


@dataclass
class Assignment:
    """Initial responsibilities of ``n`` rows over ``n_components`` components.

    Exactly one of ``labels`` and ``resp`` is set:

    - ``labels`` (m,) int: row ``rows[i]`` (or row ``i`` when ``rows`` is None) has
      responsibility 1 for component ``labels[i]``; every other row has all zeros;
    - ``resp`` (n, K) float: dense responsibilities, rows summing to 1 (``"random"``).
    """

    n: int
    n_components: int
    labels: np.ndarray | None = None
    rows: np.ndarray | None = None
    resp: np.ndarray | None = None

    @property
    def covers_all(self) -> bool:
        """True when every row carries a distribution over components (a proper q(Z)):
        "kmeans" and "random"; "random_from_data" and "k-means++" seed one row per component."""
        return self.resp is not None or self.rows is None

    def dense(self) -> np.ndarray:
        """The (n, K) responsibility matrix scikit-learn would build (for tests and small n)."""
        if self.resp is not None:
            return self.resp
        out = np.zeros((self.n, self.n_components))
        rows = np.arange(self.n) if self.rows is None else self.rows
        out[rows, self.labels] = 1.0
        return out


def initial_assignment(X: np.ndarray, n_components: int, init_params: str,
                       random_state: np.random.RandomState) -> Assignment:
    """Initial assignment of the rows of ``X`` (n, d), consuming ``random_state`` exactly as
    ``sklearn.mixture.BaseMixture._initialize_parameters`` does.

    Parameters
    ----------
    X : ndarray (n, d), the data as given to ``fit`` (not centred: k-means sees the same data
        scikit-learn's does).
    n_components : int, K.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}
    random_state : numpy.random.RandomState (already resolved by ``check_random_state``).
    """
    n, K = X.shape[0], n_components
    if init_params == "kmeans":
        label = KMeans(n_clusters=K, n_init=1, random_state=random_state).fit(X).labels_
        return Assignment(n, K, labels=np.asarray(label, dtype=np.intp))
    if init_params == "random":
        resp = random_state.uniform(size=(n, K))
        resp /= resp.sum(axis=1)[:, None]
        return Assignment(n, K, resp=resp)
    if init_params == "random_from_data":
        idx = random_state.choice(n, size=K, replace=False)
        return Assignment(n, K, labels=np.arange(K), rows=np.asarray(idx, dtype=np.intp))
    if init_params == "k-means++":
        _, idx = kmeans_plusplus(X, K, random_state=random_state)
        return Assignment(n, K, labels=np.arange(K), rows=np.asarray(idx, dtype=np.intp))
    raise ValueError(f"init_params must be one of {INIT_PARAMS}, got {init_params!r}")
