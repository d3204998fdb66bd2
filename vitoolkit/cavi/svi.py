r"""Stochastic variational inference for the Bayesian GMM (Hoffman, Blei, Wang & Paisley 2013).

Same model, priors and factors as :class:`~vitoolkit.cavi.BayesianGMM`; only the
global update changes. For a mini-batch B of a data set of N points
(Hoffman et al. 2013, sections 2.3-2.4):

1. local step: the optimal :math:`q(z_n)` of every n in B given the current global
   factors (PRML eq. 10.46-10.49);
2. intermediate global parameters :math:`\hat\lambda`: the CAVI update as if the data
   were B repeated N / b times (b the batch size), i.e. the batch statistics scaled by
   N / b;
3. a natural-gradient step on the natural parameters :math:`\lambda` of each factor,

   .. math::

       \lambda \leftarrow (1 - \rho_t) \lambda + \rho_t \hat\lambda, \qquad
       \rho_t = (t + \tau)^{-\kappa}, \quad \kappa \in (0.5, 1]

   (Robbins-Monro: :math:`\sum_t \rho_t = \infty`, :math:`\sum_t \rho_t^2 < \infty`).

For the Gauss-Wishart factor the natural parameters are, up to fixed affine maps (which
commute with convex combinations) and with :math:`m_0 = 0` after centring,
:math:`(\beta_k, \beta_k m_k, W_k^{-1} + \beta_k m_k m_k^\top, \nu_k)`, which are linear
in the statistics :math:`(N_k, \sum_n r_{nk} x_n, \sum_n r_{nk} x_n x_n^\top)`, so the
convex combination stays a valid Normal-Wishart. Memory is bounded by the batch: no (N, K) array ever exists.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..validation import check_int, check_real
from . import _gauss_wishart as gw
from ._base import SKLEARN_NOTES, as_data, check_random_state, is_one_array
from .bayesian_gmm import BayesianGMM

__all__ = ["StochasticBayesianGMM"]


class StochasticBayesianGMM(BayesianGMM):
    r"""Bishop's variational GMM fitted by stochastic VI on a stream of mini-batches.

    Parameters are those of :class:`~vitoolkit.cavi.BayesianGMM` except ``check_monotonic``
    (data-dependent prior defaults come from the first batch of a stream, from all of X for
    :meth:`fit` on an array), plus:

    total_samples : int, default=1_000_000
        N, the size of the (possibly never materialised) data set; batch statistics are
        scaled by N / b (b the batch size). Same name as scikit-learn's online LDA.
    learning_offset : float, default=10.0
        :math:`\tau \ge 0` in :math:`\rho_t = (t + \tau)^{-\kappa}`; damps the first steps.
    learning_decay : float, default=0.7
        :math:`\kappa \in (0.5, 1]`.
    batch_size : int, default=1024
        Rows per step when :meth:`fit` is given one array.
    max_iter : int, default=10
        Passes (epochs) over an array given to :meth:`fit`.
    tol : float or None, default=None
        With a number, :meth:`fit` on an array stops when the mean of an epoch's ELBO
        estimates changes by less than ``tol`` nats from the previous epoch's (else a
        :class:`~vitoolkit.exceptions.ConvergenceWarning`); ``None`` runs all ``max_iter``
        epochs (the estimates are noisy) and leaves ``converged_`` False.
    n_init : int, default=1
        Restarts of :meth:`fit` on an array; the one with the largest exact ELBO of the data
        is kept.

    Attributes
    ----------
    elbo_history_ : list of float
        After each step, the unbiased mini-batch estimate of the full ELBO (nats) at the
        global factors the step started from (noisy; evaluate exactly with
        :meth:`elbo` or :meth:`elbo_from_batches`).
    learning_rates_ : list of float
        :math:`\rho_t` of each step.
    epoch_elbo_ : list of float
        After :meth:`fit` on an array: the mean of each epoch's estimates (what ``tol``
        compares).
    n_iter_ : int
        Epochs of :meth:`fit` on an array; steps of :meth:`partial_fit`.
    n_steps_, n_samples_seen_ : int

    Notes
    -----
    ``fit`` reads one array (NumPy, torch, pandas, a list of rows) as one data set and any
    other iterable (a generator, a list of 2-D arrays) as a stream of batches.

    The scikit-learn conventions below are shared by the three mixture estimators
    (``vitoolkit.cavi._base.SKLEARN_NOTES``).
    """

    __doc__ += SKLEARN_NOTES

    def __init__(self, n_components=1, *, covariance_type="full", total_samples=1_000_000,
                 learning_offset=10.0, learning_decay=0.7, batch_size=1024, max_iter=10,
                 tol=None, n_init=1, init_params="kmeans", weight_concentration_prior=None,
                 mean_precision_prior=None, mean_prior=None, degrees_of_freedom_prior=None,
                 covariance_prior=None, random_state=None):
        super().__init__(n_components, covariance_type=covariance_type, max_iter=max_iter,
                         tol=tol, n_init=n_init, init_params=init_params,
                         weight_concentration_prior=weight_concentration_prior,
                         mean_precision_prior=mean_precision_prior, mean_prior=mean_prior,
                         degrees_of_freedom_prior=degrees_of_freedom_prior,
                         covariance_prior=covariance_prior, random_state=random_state)
        self.total_samples = total_samples
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.batch_size = batch_size

    _tol_optional = True

    def _check_parameters(self, X):
        super()._check_parameters(X)
        check_int(self.total_samples, "total_samples", minimum=1)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_real(self.learning_offset, "learning_offset", minimum=0.0)
        kappa = check_real(self.learning_decay, "learning_decay")
        if not 0.5 < kappa <= 1:
            raise ValueError("learning_decay must be in (0.5, 1] (Robbins-Monro conditions), "
                             f"got {kappa!r}")

    # -- one SVI step --------------------------------------------------------
    def _svi_step(self, post, prior, Xc, total, t):
        """The global factors after one natural-gradient step on the centred batch ``Xc``
        (step ``t`` >= 1), the mini-batch ELBO estimate at ``post``, and rho_t."""
        stats = gw.accumulate(gw.chunks_of(Xc), post).scaled(total / Xc.shape[0])
        estimate = gw.elbo(stats, post, prior)
        target = gw.posterior_from_stats(stats, prior)
        rho = float((t + self.learning_offset) ** (-self.learning_decay))
        new = post.copy()
        new.alpha = (1 - rho) * post.alpha + rho * target.alpha
        new.beta = (1 - rho) * post.beta + rho * target.beta
        new.nu = (1 - rho) * post.nu + rho * target.nu
        bm = (1 - rho) * post.beta[:, None] * post.m + rho * target.beta[:, None] * target.m
        new.m = bm / new.beta[:, None]
        if post.diag:
            second = ((1 - rho) * (post.W_inv + post.beta[:, None] * post.m**2)
                      + rho * (target.W_inv + target.beta[:, None] * target.m**2))
            new.W_inv = np.maximum(second - new.beta[:, None] * new.m**2,
                                   prior.W_inv[None, :] * 1e-12)
        else:
            def outer(beta, m):
                return beta[:, None, None] * m[:, :, None] * m[:, None, :]
            second = ((1 - rho) * (post.W_inv + outer(post.beta, post.m))
                      + rho * (target.W_inv + outer(target.beta, target.m)))
            W_inv = second - outer(new.beta, new.m)
            new.W_inv = 0.5 * (W_inv + np.swapaxes(W_inv, 1, 2))
        return new, estimate, rho

    def _start(self, X, prior, total, random_state):
        """Global factors from the initial responsibilities of the batch ``X``, scaled to
        ``total`` points."""
        stats, _ = self._initial_stats(X, prior, random_state, lambda: X - self.mean_prior_)
        return gw.posterior_from_stats(stats.scaled(total / X.shape[0]), prior)

    # -- streaming -----------------------------------------------------------
    def partial_fit(self, X, y=None):
        """One SVI step on the mini-batch ``X`` of shape (m,) or (m, d).

        The first call (or the first after :meth:`fit`) validates the settings, fixes the
        priors (defaults from this batch) and initialises the global factors from this
        batch's initial responsibilities, scaled to ``total_samples``.
        """
        if not self.__sklearn_is_fitted__():
            self._reset()
            X = as_data(self, X, reset=True, min_samples=2)
            self._validate_parameters(X)
            prior = self._make_prior(X)
            self._prior = prior
            self._rs = check_random_state(self.random_state)
            self._total = self.total_samples
            self.n_features_in_ = X.shape[1]
            self._set_posterior(self._start(X, prior, self._total, self._rs))
            self.n_steps_ = 0
            self.n_samples_seen_ = 0
            self.elbo_history_ = []
            self.learning_rates_ = []
            self.n_iter_ = 0
            self.converged_ = False
            self._fitted = True
        else:
            X = as_data(self, X)
        new, estimate, rho = self._svi_step(self._post, self._prior, X - self.mean_prior_,
                                            self._total, self.n_steps_ + 1)
        self._set_posterior(new)
        self.n_steps_ += 1
        self.n_iter_ = self.n_steps_
        self.n_samples_seen_ += X.shape[0]
        self.elbo_history_.append(estimate)
        self.learning_rates_.append(rho)
        self.lower_bound_ = estimate
        return self

    # -- the hooks of the shared loop (fit on an array) ------------------------
    def _prepare(self, X):
        ctx = self._prior_context(X)  # no cached features: SVI never makes a full pass
        ctx.Xc = X - self.mean_prior_
        ctx.batch = min(self.batch_size, X.shape[0])
        return ctx

    def _initialize(self, X, ctx, random_state, steps):
        n = X.shape[0]
        first = X[random_state.permutation(n)[: max(ctx.batch, 2, self.n_components)]]
        post = self._start(first, ctx.prior, n, random_state)
        return SimpleNamespace(post=post, t=0, estimates=[], rates=[], seen=0,
                               random_state=random_state)

    def _iterate(self, ctx, s, it, steps) -> float:
        """One epoch: a pass over X in shuffled mini-batches; returns the mean of the epoch's
        ELBO estimates."""
        n = ctx.Xc.shape[0]
        order = s.random_state.permutation(n)
        first = len(s.estimates)
        for start in range(0, n, ctx.batch):
            batch = ctx.Xc[order[start : start + ctx.batch]]
            s.t += 1
            s.post, estimate, rho = self._svi_step(s.post, ctx.prior, batch, n, s.t)
            s.estimates.append(estimate)
            s.rates.append(rho)
            s.seen += batch.shape[0]
        return float(np.mean(s.estimates[first:]))

    def _run_score(self, X, ctx, s, history):
        if self.n_init == 1:
            return history[-1]
        stats = gw.accumulate(gw.chunks_of(ctx.Xc), s.post)  # exact ELBO of X
        return gw.elbo(stats, s.post, ctx.prior)

    def _set_fitted(self, X, ctx, s):
        super()._set_fitted(X, ctx, s.post)
        self._total = X.shape[0]
        self._rs = s.random_state
        self.epoch_elbo_ = self.elbo_history_
        self.elbo_history_ = s.estimates
        self.lower_bound_ = s.estimates[-1]
        self.learning_rates_ = s.rates
        self.n_steps_ = s.t
        self.n_samples_seen_ = s.seen

    _accepts_dask = False  # a Dask array is read into memory (np.asarray), as any array

    def fit(self, X, y=None):
        """Run SVI from scratch.

        Parameters
        ----------
        X : array-like of shape (n,) or (n, d), or an iterable of such arrays
            An array (NumPy, torch, pandas, or a list of rows) is cut into shuffled
            mini-batches of ``batch_size`` rows for ``max_iter`` epochs (``total_samples``
            is then n; prior defaults come from all of X). Any other iterable (a generator,
            a list of 2-D arrays) is streamed once, one SVI step per batch, and
            ``total_samples`` must be given.
        y : ignored
        """
        self._reset()
        if not is_one_array(X):
            for batch in X:
                self.partial_fit(batch)
            if not self.__sklearn_is_fitted__():
                raise ValueError("X was an empty iterable of batches")
            return self
        return super().fit(X)

