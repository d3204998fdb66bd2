r"""Stochastic variational inference for the Bayesian GMM (Hoffman, Blei, Wang & Paisley 2013).

Same model, priors and factors as :class:`~vitoolkit.cavi.BayesianGMM`; only the
global update changes. For a mini-batch B of a data set of N points
(Hoffman et al. 2013, sections 2.3-2.4):

1. local step: the optimal q(z_n) of every n in B given the current global factors
   (PRML eq. 10.46-10.49);
2. intermediate global parameters: the CAVI update as if the data were B repeated
   N / b times (b the batch size), i.e. the batch statistics scaled by N / b;
3. a natural-gradient step: lambda <- (1 - rho_t) lambda + rho_t lambda_hat on the
   natural parameters of each factor, rho_t = (t + tau)^{-kappa}, kappa in (0.5, 1]
   (Robbins-Monro: sum rho_t = inf, sum rho_t^2 < inf).

For the Gauss-Wishart factor the natural parameters are, up to fixed affine maps (which
commute with convex combinations) and with m_0 = 0 after centring,
(beta_k, beta_k m_k, W_k^{-1} + beta_k m_k m_k^T, nu_k), which are linear in the
statistics (N_k, sum r x, sum r x x^T), so the convex combination stays a valid
Normal-Wishart. Memory is bounded by the batch: no (N, K) array ever exists.
"""

from __future__ import annotations

import numpy as np

from . import _gauss_wishart as gw
from ._validation import as_data, check_features, check_int, check_random_state
from .bayesian_gmm import BayesianGMM

__all__ = ["StochasticBayesianGMM"]


class StochasticBayesianGMM(BayesianGMM):
    r"""Bishop's variational GMM fitted by stochastic VI on a stream of mini-batches.

    Parameters are those of :class:`~vitoolkit.cavi.BayesianGMM` (data-dependent prior
    defaults are taken from the first batch), plus:

    total_samples : int, default=1_000_000
        N, the size of the (possibly never materialised) data set; batch statistics are
        scaled by N / b (b the batch size). Same name as scikit-learn's online LDA.
    learning_offset : float, default=10.0
        tau >= 0 in rho_t = (t + tau)^{-kappa}; damps the first steps.
    learning_decay : float, default=0.7
        kappa in (0.5, 1].
    batch_size : int, default=1024
        Rows per step when :meth:`fit` is given one array.
    max_iter : int, default=10
        Passes (epochs) over an array given to :meth:`fit`.

    Attributes
    ----------
    elbo_history_ : list of float
        After each step, the unbiased mini-batch estimate of the full ELBO (nats) at the
        global factors the step started from (noisy; evaluate exactly with
        :meth:`elbo` or :meth:`elbo_from_batches`).
    learning_rates_ : list of float
        rho_t of each step.
    n_steps_, n_samples_seen_ : int
    """

    def __init__(self, n_components=1, *, covariance_type="full", total_samples=1_000_000,
                 learning_offset=10.0, learning_decay=0.7, batch_size=1024, max_iter=10,
                 init_params="kmeans", weight_concentration_prior=None,
                 mean_precision_prior=None, mean_prior=None, degrees_of_freedom_prior=None,
                 covariance_prior=None, random_state=None):
        super().__init__(n_components, covariance_type=covariance_type, max_iter=max_iter,
                         init_params=init_params,
                         weight_concentration_prior=weight_concentration_prior,
                         mean_precision_prior=mean_precision_prior, mean_prior=mean_prior,
                         degrees_of_freedom_prior=degrees_of_freedom_prior,
                         covariance_prior=covariance_prior, random_state=random_state)
        self.total_samples = total_samples
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.batch_size = batch_size

    def _check_svi_settings(self):
        self._check_settings()
        check_int(self.total_samples, "total_samples", 1)
        check_int(self.batch_size, "batch_size", 1)
        tau = self.learning_offset
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau >= 0:
            raise ValueError(f"learning_offset must be a number >= 0, got {tau!r}")
        kappa = self.learning_decay
        if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) \
                or not 0.5 < kappa <= 1:
            raise ValueError("learning_decay must be in (0.5, 1] (Robbins-Monro conditions), "
                             f"got {kappa!r}")

    def partial_fit(self, X, y=None):
        """One SVI step on the mini-batch ``X`` of shape (m,) or (m, d).

        The first call validates the settings, fixes the priors (defaults from this
        batch) and initialises the global factors from this batch's initial
        responsibilities, scaled to ``total_samples``.
        """
        if not hasattr(self, "_post"):
            self._check_svi_settings()
            X = as_data(X, "X", min_samples=2)
            if X.shape[0] < self.n_components:
                raise ValueError(f"the first batch X has {X.shape[0]} samples but n_components="
                                 f"{self.n_components}; it initialises the components, so it "
                                 "needs at least n_components samples")
            self._prior = self._make_prior(X)
            self.n_features_in_ = X.shape[1]
            self._rs = check_random_state(self.random_state)
            resp = self._initial_resp(X, self._rs)
            self._total = getattr(self, "_fit_total", None) or self.total_samples
            scale = self._total / X.shape[0]
            stats = gw.stats_from_resp(X - self.mean_prior_, resp, self._prior.diag)
            self._set_posterior(gw.posterior_from_stats(stats.scaled(scale), self._prior))
            self.n_steps_ = 0
            self.n_samples_seen_ = 0
            self.elbo_history_ = []
            self.learning_rates_ = []
            self.n_iter_ = 0
            self.converged_ = False
        else:
            X = as_data(X, "X")
            check_features(X, self.n_features_in_, "X")
        self._step(X - self.mean_prior_)
        return self

    def _step(self, Xc):
        prior, post = self._prior, self._post
        scale = self._total / Xc.shape[0]
        stats = gw.accumulate(gw.chunks_of(Xc), post).scaled(scale)
        self.elbo_history_.append(gw.elbo(stats, post, prior))
        target = gw.posterior_from_stats(stats, prior)
        t = self.n_steps_ + 1
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
        self._set_posterior(new)
        self.n_steps_ = t
        self.n_iter_ = t
        self.n_samples_seen_ += Xc.shape[0]
        self.learning_rates_.append(rho)
        self.lower_bound_ = self.elbo_history_[-1]

    def fit(self, X, y=None):
        """Run SVI from scratch.

        Parameters
        ----------
        X : array of shape (n,) or (n, d), or an iterable of such arrays
            An array is cut into shuffled mini-batches of ``batch_size`` rows for
            ``max_iter`` epochs (``total_samples`` is then n); any other iterable is
            streamed once, one SVI step per batch, and ``total_samples`` must be given.
        """
        for name in ("_post", "_prior"):
            if hasattr(self, name):
                delattr(self, name)
        try:
            import torch

            is_array = isinstance(X, (np.ndarray, torch.Tensor))
        except ImportError:  # pragma: no cover
            is_array = isinstance(X, np.ndarray)
        if not is_array:
            for batch in X:
                self.partial_fit(batch)
            if not hasattr(self, "_post"):
                raise ValueError("X was an empty iterable of batches")
            return self
        X = as_data(X, min_samples=2)
        self._check_svi_settings()
        epochs = check_int(self.max_iter, "max_iter", 1)
        self._fit_total = X.shape[0]
        order_rs = check_random_state(self.random_state)
        bs = min(self.batch_size, X.shape[0])
        for _ in range(epochs):
            order = order_rs.permutation(X.shape[0])
            for start in range(0, X.shape[0], bs):
                batch = X[order[start : start + bs]]
                if not hasattr(self, "_post") and batch.shape[0] < max(2, self.n_components):
                    batch = X[order[:max(2, self.n_components)]]
                self.partial_fit(batch)
        del self._fit_total
        return self
