"""The fit loop shared by the CAVI mixture estimators, as scikit-learn's ``BaseMixture``.

:class:`MixtureVI` owns what :class:`~vitoolkit.cavi.UnitVarianceGMM`,
:class:`~vitoolkit.cavi.BayesianGMM` and :class:`~vitoolkit.cavi.StochasticBayesianGMM`
have in common: input validation (``X``, ``random_state``, ``tol``, ``max_iter``,
``n_init``), ``n_init`` restarts keeping the largest final ELBO, the convergence rule
``|ELBO_t - ELBO_{t-1}| < tol`` (times ``|ELBO_{t-1}|`` for a relative ``tol``), the
:class:`~vitoolkit.exceptions.ConvergenceWarning`, the optional per-factor ELBO record
(``step_elbo_``, :class:`~vitoolkit.exceptions.ELBODecreaseError`), the final E-step that
gives ``labels_``, and ``NotFittedError`` before ``fit``. A model supplies hooks:

- ``_check_parameters(X)``: validate the hyper-parameters (in ``fit``, scikit-learn's rule);
- ``_prepare(X) -> ctx``: what every restart shares (priors, centred data, cached features);
- ``_initialize(X, ctx, random_state, steps) -> state``: one restart's starting factors;
- ``_iterate(ctx, state, it, steps) -> float``: one iteration of coordinate updates on
  ``state``, returning the ELBO (nats) after it;
- ``_run_score(X, ctx, state, history) -> float``: how restarts are compared (default:
  the last ELBO);
- ``_set_fitted(X, ctx, state)``: publish the fitted attributes;
- ``_log_resp(X) -> (n, K)``: log responsibilities of validated data under the fit.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
from sklearn.utils.validation import _check_feature_names, check_is_fitted

from ..exceptions import ELBODecreaseError, InvalidParameterError, NonFiniteError
from ..validation import as_float_array, check_int, check_memory, check_real
from ._data import check_scale, check_shape

__all__ = ["MixtureVI", "SKLEARN_NOTES", "as_data", "as_matrix", "check_random_state", "check_scale",
           "check_tol", "is_one_array",
           "record_step"]

#: The scikit-learn notes each mixture estimator's docstring ends with (appended there,
#: so ``help(BayesianGMM)`` lists the checks it skips and why).
SKLEARN_NOTES = """
    A scikit-learn estimator (``clone``, ``get_params``/``set_params``, ``GridSearchCV``,
    ``Pipeline``), with ``ClusterMixin`` (``labels_``, ``fit_predict``) and ``DensityMixin``
    (``score``). Hyper-parameters are validated in :meth:`fit`, not in ``__init__``; the
    fitted-model methods raise ``sklearn.exceptions.NotFittedError`` before :meth:`fit`.
    Complex ``X`` raises ``ValueError("Complex data not supported ...")`` (scikit-learn's
    convention); sparse, boolean, string and object ``X`` a ``TypeError``;
    NaN/inf a ``ValueError``; finite data whose squares overflow float64 (say 1e200) a
    :class:`~vitoolkit.exceptions.NonFiniteError` naming ``X``.

    ``sklearn.utils.estimator_checks.check_estimator`` passes except:

    - ``check_fit1d`` (expected to fail): a 1-D ``X`` is accepted by design, read as n
      samples of one feature (the course's 1-D examples);
    - ``check_array_api_input`` (skipped by scikit-learn unless ``SCIPY_ARRAY_API=1``): the
      fit runs in NumPy only.
"""

#: scikit-learn's estimator checks these estimators fail on purpose (listed in each class
#: docstring; tests/test_cavi_sklearn.py runs every other check).
EXPECTED_FAILED_CHECKS = {
    "check_fit1d": "a 1-D X is accepted by design, read as n samples of one feature",
}

_PREDICT_CHUNK = 2**16  # rows per block in predict/score: bounds the (rows, K) arrays
#: (n, K) float64 arrays a fit holds at once, rounded up from tracemalloc peaks (8.3 for
#: UnitVarianceGMM, 3.2 for BayesianGMM and StochasticBayesianGMM's final E-step) ...
_RESP_ARRAYS = 10
#: ... (n, K, d) arrays (BayesianGMM's full-covariance E-step: 1.3) ...
_DIFF_ARRAYS = 2
#: ... and (K, d, d) arrays of per-component statistics.
_STAT_MATRICES = 24


def fit_bytes(n: int, d: int, K: int) -> int:
    """An upper bound on the bytes a fit of n samples, d features and K components allocates
    (Python integers: no overflow), checked against the memory limit before fitting."""
    return 8 * (_RESP_ARRAYS * n * K + _DIFF_ARRAYS * n * K * d + _STAT_MATRICES * K * d * d
                + 4 * n * d)


def check_random_state(value, name: str = "random_state") -> np.random.RandomState:
    """scikit-learn's ``check_random_state`` without its silent coercions.

    ``None`` (NumPy's global ``RandomState``), an integer seed in [0, 2**32 - 1], a
    ``RandomState`` (used as is) or a ``Generator`` (seeds a new ``RandomState`` from it).
    A float, a bool or a string is refused with a ``TypeError`` naming ``name``.
    """
    if value is None:
        return np.random.mtrand._rand
    if isinstance(value, np.random.RandomState):
        return value
    if isinstance(value, np.random.Generator):
        return np.random.RandomState(int(value.integers(2**32 - 1)))
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be None, an int seed, a numpy RandomState or Generator, "
                        f"got {value!r} ({type(value).__name__})")
    return np.random.RandomState(check_int(value, name, minimum=0, maximum=2**32 - 1))


def check_tol(value, name: str = "tol") -> float:
    """A finite number >= 0 (bools and strings refused)."""
    return check_real(value, name, minimum=0.0)


def as_data(estimator, X, name: str = "X", *, reset: bool = False,
            min_samples: int = 1) -> np.ndarray:
    """``X`` as a C-contiguous float64 array (n, d); a 1-D ``X`` is read as (n, 1) by design.

    Refuses sparse, complex, boolean, string and object input, NaN/inf, too few rows, and
    data so large that its squares overflow float64 (a ``NonFiniteError`` naming ``name``),
    so no NaN appears deep inside an update. With ``reset=False`` the number of features
    must be the fitted one (scikit-learn's message).
    """
    _check_feature_names(estimator, X, reset=reset)
    arr = as_matrix(X, name, min_samples=min_samples)
    n, d = arr.shape
    if not reset:
        expected = estimator.n_features_in_
        if d != expected:
            hint = ""
            if np.ndim(X) == 1:
                hint = (f"; a 1-D {name} is read as {n} samples of one feature. Reshape your "
                        f"data with {name}.reshape(1, -1) if it is a single sample")
            raise ValueError(f"{name} has {d} features, but {type(estimator).__name__} is "
                             f"expecting {expected} features as input{hint}")
    return arr


def as_matrix(X, name: str = "X", *, min_samples: int = 1) -> np.ndarray:
    """:func:`as_data` without an estimator: validated data as a float64 (n, d) array."""
    try:
        arr = as_float_array(X, name, ndim=(1, 2))
    except TypeError as err:
        if "complex" in str(err):
            # scikit-learn's convention for its estimators (its check_complex_data)
            raise ValueError(f"Complex data not supported: {err}") from None
        if "non-numeric" in str(err):  # say which entry, as scikit-learn does
            try:
                np.asarray(X, dtype=np.float64)
            except (TypeError, ValueError) as detail:
                raise TypeError(f"{err}: {detail}") from None
        raise
    if arr.ndim == 1:
        arr = arr[:, None]
    check_shape(arr.shape, name, min_samples=min_samples)
    check_scale(arr, name)
    return np.ascontiguousarray(arr)


def is_one_array(X) -> bool:
    """True for one data set (an array, a tensor, a DataFrame, a sparse matrix to be refused,
    or a list/tuple of rows or numbers); False for an iterable of batches."""
    if hasattr(X, "__array__") or hasattr(X, "__array_interface__") or hasattr(X, "tocsr"):
        return True
    if isinstance(X, (str, bytes)):
        return True  # refused by the validation with a message naming X
    if isinstance(X, (list, tuple)):
        return len(X) == 0 or np.ndim(X[0]) <= 1
    return not hasattr(X, "__iter__")  # None, a number...: refused by the validation


def record_step(steps: list, it: int, name: str, value: float, *, check: bool) -> None:
    """Append (iteration, factor, ELBO) to ``steps``; with ``check`` raise
    :class:`ELBODecreaseError` when the ELBO fell by more than round-off."""
    if check and steps:
        prev = steps[-1][2]
        # round-off of a sum of n terms of size abs(ELBO)/n: a few ulps of abs(ELBO)
        if value < prev - 1e-9 * max(1.0, abs(prev)):
            raise ELBODecreaseError(
                f"the ELBO decreased at iteration {it} after updating {name}: "
                f"{prev!r} -> {value!r} (by {prev - value:.3g} nats)")
    steps.append((it, name, value))


class _Run:
    __slots__ = ("state", "history", "steps", "n_iter", "converged", "score")

    def __init__(self, state, history, steps, n_iter, converged):
        self.state, self.history, self.steps = state, history, steps
        self.n_iter, self.converged = n_iter, converged
        self.score = -math.inf


class MixtureVI(ClusterMixin, DensityMixin, BaseEstimator):
    """Base class: the CAVI fit loop (module docstring). Not for direct use."""

    #: "absolute": stop when |dELBO| < tol; "relative": when |dELBO| < tol * |ELBO_{t-1}|.
    _tol_kind = "absolute"
    #: smallest number of rows ``fit`` accepts
    _min_samples = 1

    # -- hooks ---------------------------------------------------------------
    def _check_parameters(self, X):  # pragma: no cover - abstract
        raise NotImplementedError

    def _validate_parameters(self, X):
        """Run :meth:`_check_parameters`; a plain ``TypeError`` or ``ValueError`` it raises
        becomes :class:`vitoolkit.exceptions.InvalidParameterError` (both at once, as
        scikit-learn's ``InvalidParameterError``), so ``except ValueError`` written for
        scikit-learn estimators catches ``n_components=1.5`` too. Subclasses with a meaning
        of their own (``ResourceLimitError``) pass through unchanged."""
        try:
            self._check_parameters(X)
        except (TypeError, ValueError) as err:
            if type(err) in (TypeError, ValueError):
                raise InvalidParameterError(str(err)) from None
            raise

    def _prepare(self, X):
        return None

    def _initialize(self, X, ctx, random_state, steps):  # pragma: no cover - abstract
        raise NotImplementedError

    def _iterate(self, ctx, state, it, steps) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_score(self, X, ctx, state, history) -> float:
        return history[-1]

    def _set_fitted(self, X, ctx, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit_labels(self, X, ctx) -> np.ndarray:
        """``labels_``: the final E-step's argmax on the training data."""
        return self._predict_validated(X)

    def _log_resp(self, X) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score_samples(self, X) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared settings -------------------------------------------------------
    def _check_loop_settings(self, X):
        """n_components (<= n), max_iter, n_init, tol (``None`` allowed where the model
        says so) and random_state: the loop's own arguments."""
        K = check_int(self.n_components, "n_components", minimum=1)
        check_int(self.max_iter, "max_iter", minimum=1)
        check_int(self.n_init, "n_init", minimum=1)
        if not (self.tol is None and self._tol_optional):
            check_tol(self.tol)
        check_random_state(self.random_state)
        if X.shape[0] < K:
            raise ValueError(f"X has {X.shape[0]} samples but n_components={K}; need "
                             "n_samples >= n_components")
        n, d = X.shape
        check_memory(fit_bytes(n, d, K), "n_components", K,
                     f"a fit of {n} samples x {K} components in {d} dimension(s) (the (n, K) "
                     "responsibilities and the per-component d x d statistics)",
                     advice="use a smaller n_components or fewer samples")

    _tol_optional = False

    # -- the loop --------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit from ``n_init`` initialisations, keeping the one with the largest final ELBO.

        Parameters
        ----------
        X : array-like of shape (n,) or (n, d), or a ``dask.array.Array``
            A 1-D ``X`` is n samples of one feature. A Dask array (models that accept one:
            ``BayesianGMM``, ``UnitVarianceGMM``) is fitted chunk by chunk on Dask's current
            scheduler, equal to the in-memory fit to round-off; ``labels_`` (and
            ``UnitVarianceGMM.resp_``) are then lazy Dask arrays (:mod:`vitoolkit.cavi.distributed`).
        y : ignored

        Returns
        -------
        self
        """
        self._reset()
        X = self._fit_data(X)
        self._validate_parameters(X)
        random_state = check_random_state(self.random_state)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ctx = self._prepare(X)
            best = None
            for _ in range(self.n_init):
                run = self._single_run(X, ctx, random_state)
                run.score = self._run_score(X, ctx, run.state, run.history)
                if best is None or run.score > best.score:
                    best = run
        self.n_features_in_ = X.shape[1]
        self.elbo_history_ = best.history
        self.lower_bound_ = best.history[-1]
        self.step_elbo_ = best.steps
        self.n_iter_ = best.n_iter
        self.converged_ = best.converged
        self._set_fitted(X, ctx, best.state)
        self._fitted = True
        # a final E-step, so that fit(X).predict(X) == fit_predict(X) == labels_
        self.labels_ = self._fit_labels(X, ctx)
        if not best.converged and self.tol is not None:
            from ..exceptions import ConvergenceWarning

            warnings.warn(
                f"{type(self).__name__} did not converge in max_iter={self.max_iter} iterations "
                f"(tol={self.tol}); increase max_iter or tol, or try other initialisations",
                ConvergenceWarning, stacklevel=2)
        return self

    #: whether ``fit`` takes a Dask array (:mod:`vitoolkit.cavi.distributed`)
    _accepts_dask = False

    def _fit_data(self, X):
        """``fit``'s validated ``X``: a float64 array, or for a Dask array (when the model
        accepts one) a :class:`~vitoolkit.cavi.distributed.DaskData`."""
        if self._accepts_dask:
            from .distributed import is_dask_array

            if is_dask_array(X):
                from .distributed import as_dask_data

                return as_dask_data(X, min_samples=self._min_samples)
        return as_data(self, X, reset=True, min_samples=self._min_samples)

    def _single_run(self, X, ctx, random_state) -> _Run:
        steps: list = []
        state = self._initialize(X, ctx, random_state, steps)
        history: list = []
        converged = False
        it = 0
        tol = self.tol
        for it in range(1, self.max_iter + 1):
            value = float(self._iterate(ctx, state, it, steps))
            if not math.isfinite(value):
                raise NonFiniteError(
                    f"the ELBO became {value} at iteration {it} although X is finite; the scale "
                    "of X or of the priors overflows float64: rescale X or change the priors")
            history.append(value)
            if tol is not None and it > 1:
                change = abs(history[-1] - history[-2])
                scale = abs(history[-2]) if self._tol_kind == "relative" else 1.0
                if change < tol * scale:
                    converged = True
                    break
        return _Run(state, history, steps, it, converged)

    def _reset(self):
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)
        for name in ("_fitted",):
            self.__dict__.pop(name, None)

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "_fitted", False)

    # -- the fitted model ----------------------------------------------------
    def _validated(self, X, name: str = "X") -> np.ndarray:
        check_is_fitted(self)
        return as_data(self, X, name)

    def _predict_validated(self, X) -> np.ndarray:
        out = np.empty(X.shape[0], dtype=np.int64)
        for start in range(0, X.shape[0], _PREDICT_CHUNK):
            out[start : start + _PREDICT_CHUNK] = np.argmax(
                self._log_resp(X[start : start + _PREDICT_CHUNK]), axis=1)
        return out

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities of new points under the fitted factors; shape (n, K)."""
        X = self._validated(X)
        K = self.n_components
        check_memory(_RESP_ARRAYS * X.shape[0] * K * 8, "X", X.shape,
                     f"the ({X.shape[0]}, {K}) responsibilities",
                     advice="pass fewer rows at a time")
        return np.exp(self._log_resp(X))

    def predict(self, X) -> np.ndarray:
        """The component with the largest responsibility; shape (n,), int64."""
        return self._predict_validated(self._validated(X))

    def fit_predict(self, X, y=None) -> np.ndarray:
        """``fit(X)`` then the labels of ``X`` (``labels_``); shape (n,)."""
        return self.fit(X).labels_

    def score_samples(self, X) -> np.ndarray:
        """Log density of each row of ``X`` under the fitted model; shape (n,)."""
        X = self._validated(X)
        check_memory(_RESP_ARRAYS * X.shape[0] * self.n_components * 8, "X", X.shape,
                     f"the ({X.shape[0]}, {self.n_components}) per-component log densities",
                     advice="pass fewer rows at a time")
        return self._score_samples(X)

    def score(self, X, y=None) -> float:
        """Mean of :meth:`score_samples` over ``X``."""
        return float(np.mean(self.score_samples(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.target_tags.required = False
        return tags
