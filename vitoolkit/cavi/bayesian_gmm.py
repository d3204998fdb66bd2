r"""Variational Bayesian Gaussian mixture by CAVI (Bishop, PRML section 10.2).

Model (PRML eq. 10.37-10.40):

.. math::

    \pi \sim \mathrm{Dir}(\alpha_0), \qquad
    (\mu_k, \Lambda_k) \sim \mathcal N\big(\mu_k \mid m_0, (\beta_0 \Lambda_k)^{-1}\big)
        \, \mathcal W(\Lambda_k \mid W_0, \nu_0), \\
    z_n \mid \pi \sim \mathrm{Cat}(\pi), \qquad
    x_n \mid z_n = k \sim \mathcal N(\mu_k, \Lambda_k^{-1}).

Mean-field family :math:`q(Z) \, q(\pi) \prod_k q(\mu_k, \Lambda_k)`; each CAVI
iteration updates :math:`q(Z)` (eq. 10.46-10.49), then :math:`q(\pi)` (eq. 10.57-10.58),
then every :math:`q(\mu_k, \Lambda_k)` (eq. 10.59-10.63). The conjugate algebra lives in
:mod:`vitoolkit.cavi._gauss_wishart`; the ELBO (eq. 10.70-10.77) is assembled
there from expected log-likelihood terms, the entropy of q(Z), and the KLs of
the Dirichlet and Normal-Wishart factors from :func:`vitoolkit.divergences.kl_divergence`,
with every constant kept.

Parameter names, meanings and defaults are those of scikit-learn's
``BayesianGaussianMixture(weight_concentration_prior_type="dirichlet_distribution")``,
so the two can be fitted side by side. Differences: the bound is the full ELBO
(scikit-learn drops constants); there is no ``reg_covar`` (the Wishart prior
already keeps every :math:`W_k^{-1}` positive definite, and a jitter would break the
coordinate-ascent guarantee); ``"diag"`` is an exact per-dimension Normal-Gamma
model (scikit-learn's diag E-step uses the full-Wishart digamma sum).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..exceptions import ELBODecreaseError
from ..validation import (
    as_float_array,
    check_bool,
    check_choice,
    check_finite,
    check_positive,
    check_real,
    check_shape,
)
from . import _gauss_wishart as gw
from ._base import SKLEARN_NOTES, MixtureVI, check_scale, is_one_array, record_step
from ._init import INIT_PARAMS, initial_assignment

__all__ = ["BayesianGMM", "ELBODecreaseError"]

_COVARIANCE_TYPES = ("full", "diag")


class BayesianGMM(MixtureVI):
    r"""Variational Bayesian Gaussian mixture fitted by CAVI (PRML section 10.2).

    Parameters
    ----------
    n_components : int, default=1
        K, the number of components (an upper bound: unused ones get weight ~0).
    covariance_type : {"full", "diag"}, default="full"
    tol : float, default=1e-3
        Stop when the ELBO changes by less than ``tol`` nats between iterations
        (scikit-learn's absolute criterion); else a
        :class:`~vitoolkit.exceptions.ConvergenceWarning`.
    max_iter : int, default=100
    n_init : int, default=1
        Initialisations; the one with the largest final ELBO is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How the initial responsibilities are drawn (exactly as scikit-learn, so the same
        ``random_state`` gives the same start).
    weight_concentration_prior_type : {"dirichlet_distribution"}
        Only the finite Dirichlet prior of PRML 10.39 is implemented.
    weight_concentration_prior : float, default=1/K
        :math:`\alpha_0 > 0`. Small values switch unused components off.
    mean_precision_prior : float, default=1
        :math:`\beta_0 > 0`.
    mean_prior : array-like of shape (d,), default=mean of X
        :math:`m_0`.
    degrees_of_freedom_prior : float, default=d
        :math:`\nu_0` (> d - 1 for "full"; > 0 for "diag", one Gamma per dimension).
    covariance_prior : array-like of shape (d, d) ("full") or (d,) ("diag"), default=cov of X
        :math:`W_0^{-1}`, positive definite.
    random_state : None, int, RandomState or Generator
        An int seed in [0, 2**32 - 1]; floats, bools and strings are refused.
    check_monotonic : bool, default=False
        Record the ELBO after every factor update in ``step_elbo_`` and raise
        :class:`ELBODecreaseError` if one decreases beyond round-off.

    Attributes
    ----------
    weights_ : ndarray (K,)
        :math:`E_q[\pi_k] = \alpha_k / \sum_j \alpha_j`.
    means_ : ndarray (K, d)
        :math:`m_k`.
    covariances_ : ndarray (K, d, d) or (K, d)
        :math:`(E_q[\Lambda_k])^{-1} = (\nu_k W_k)^{-1}`, scikit-learn's convention.
    precisions_ : ndarray (K, d, d) or (K, d)
        :math:`E_q[\Lambda_k]`.
    weight_concentration_, mean_precision_, degrees_of_freedom_ : ndarray (K,)
        :math:`\alpha_k, \beta_k, \nu_k` (PRML eq. 10.58, 10.60, 10.63).
    elbo_history_ : list of float
        The full ELBO in nats after each iteration of the kept run.
    lower_bound_ : float
        The last entry of ``elbo_history_``.
    step_elbo_ : list of (int, str, float)
        With ``check_monotonic``: (iteration, factor, ELBO) after each of "init", "q(Z)",
        "q(pi)", "q(mu,Lambda)".
    n_iter_ : int
    converged_ : bool
    labels_ : ndarray (n,) of int64
        ``predict(X)`` of the training data after a final E-step (a lazy Dask array when
        ``X`` was one: fitted chunk by chunk, see :mod:`vitoolkit.cavi.distributed`).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` was a pandas DataFrame.

    Notes
    -----
    The scikit-learn conventions below are shared by the three mixture estimators
    (``vitoolkit.cavi._base.SKLEARN_NOTES``).
    """

    __doc__ += SKLEARN_NOTES

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, max_iter=100,
                 n_init=1, init_params="kmeans",
                 weight_concentration_prior_type="dirichlet_distribution",
                 weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
                 degrees_of_freedom_prior=None, covariance_prior=None, random_state=None,
                 check_monotonic=False):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.check_monotonic = check_monotonic

    _min_samples = 2
    _accepts_dask = True

    # -- validation (in fit, scikit-learn's convention) ----------------------------
    def _check_parameters(self, X):
        self._check_loop_settings(X)
        if not isinstance(self.covariance_type, str) or self.covariance_type not in _COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {_COVARIANCE_TYPES}, got "
                             f"{self.covariance_type!r} ('tied' and 'spherical' are not "
                             "implemented)")
        if not (isinstance(self.weight_concentration_prior_type, str)
                and self.weight_concentration_prior_type == "dirichlet_distribution"):
            raise ValueError(
                "weight_concentration_prior_type must be 'dirichlet_distribution' (PRML 10.39), "
                f"got {self.weight_concentration_prior_type!r}; for a Dirichlet process use "
                "sklearn.mixture.BayesianGaussianMixture")
        check_choice(self.init_params, INIT_PARAMS, "init_params")
        check_bool(self.check_monotonic, "check_monotonic")
        if not isinstance(X, np.ndarray):  # a Dask array (vitoolkit.cavi.distributed)
            from .distributed import check_init

            check_init(self.init_params, X.shape[0])

    def _make_prior(self, X: np.ndarray) -> gw.Prior:
        """Validate the prior and return it in coordinates centred at ``mean_prior_``."""
        d = X.shape[1]
        K = self.n_components
        diag = self.covariance_type == "diag"
        alpha0, beta0 = self.weight_concentration_prior, self.mean_precision_prior
        self.weight_concentration_prior_ = (
            1.0 / K if alpha0 is None else check_positive(alpha0, "weight_concentration_prior"))
        self.mean_precision_prior_ = (
            1.0 if beta0 is None else check_positive(beta0, "mean_precision_prior"))
        if self.mean_prior is None:
            self.mean_prior_ = X.mean(axis=0)
        else:
            m0 = as_float_array(self.mean_prior, "mean_prior")
            check_shape(m0.shape, (d,), "mean_prior")
            check_scale(m0[None, :], "mean_prior", n_rows=X.shape[0])  # X - m_0 must not overflow
            self.mean_prior_ = m0.copy()
        if self.degrees_of_freedom_prior is None:
            self.degrees_of_freedom_prior_ = float(d)
        else:
            nu0 = check_positive(self.degrees_of_freedom_prior, "degrees_of_freedom_prior")
            low = 0.0 if diag else d - 1.0
            if nu0 <= low:
                raise ValueError(f"degrees_of_freedom_prior must be > {low:g} for "
                                 f"covariance_type={self.covariance_type!r} with d={d}, "
                                 f"got {nu0}")
            self.degrees_of_freedom_prior_ = nu0
        self.covariance_prior_ = self._check_covariance_prior(X, diag)
        return gw.Prior(alpha=np.full(K, self.weight_concentration_prior_),
                        beta=self.mean_precision_prior_, nu=self.degrees_of_freedom_prior_,
                        W_inv=self.covariance_prior_, diag=diag)

    def _check_covariance_prior(self, X, diag):
        d = X.shape[1]
        given = self.covariance_prior is not None
        where = "covariance_prior" if given else "covariance_prior (default: covariance of X)"
        if not given and not isinstance(X, np.ndarray):  # a DaskData: one pass over chunks
            cov = X.covariance(diag)
            check_finite(cov, where)
        elif not given:
            cov = np.var(X, axis=0, ddof=1) if diag else np.atleast_2d(np.cov(X.T))
            check_finite(cov, where)
        else:
            cov = as_float_array(self.covariance_prior, "covariance_prior")
            want = (d,) if diag else (d, d)
            if diag and cov.shape == (d, d):
                raise ValueError(f"covariance_prior for covariance_type='diag' must have shape "
                                 f"({d},) (the prior variances), got {cov.shape}")
            if cov.shape != want:
                raise ValueError(f"covariance_prior must have shape {want} for covariance_type="
                                 f"{self.covariance_type!r}, got {cov.shape}")
        if diag:
            if not np.all(cov > 0):
                raise ValueError(f"{where} must be positive in every dimension, got {cov}")
            return cov.copy()
        if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12 * np.abs(cov).max()):
            raise ValueError(f"{where} must be symmetric")
        smallest = np.linalg.eigvalsh(cov)[0]
        if not smallest > 0:
            raise ValueError(f"{where} must be positive definite; its smallest eigenvalue is "
                             f"{smallest:.3g}")
        return 0.5 * (cov + cov.T)

    # -- the hooks of the shared loop ----------------------------------------------
    def _prior_context(self, X):
        return SimpleNamespace(prior=self._make_prior(X), Xc=None, passes=None,
                               dask=None if isinstance(X, np.ndarray) else X)

    def _prepare(self, X):
        return self._prior_context(X)

    def _initial_stats(self, X, prior, random_state, centre):
        """Statistics of the initial responsibilities of ``X`` (drawn exactly as scikit-learn's
        mixtures draw them; no (n, K) matrix for the hard ones) and whether they are a q(Z)
        for every row. ``centre()`` gives the centred data; it is called after k-means, so
        k-means never runs while both X and the centred copy are held."""
        start = initial_assignment(X, self.n_components, self.init_params, random_state)
        return gw.stats_from_assignment(centre(), start, prior.diag), start.covers_all

    def _centre(self, X, ctx):
        if ctx.Xc is None:
            ctx.Xc = X - self.mean_prior_
            # the feature blocks of X, cached once per fit; passing the Design itself to
            # gw.accumulate splits each E-step over threads
            ctx.passes = gw.design(ctx.Xc, ctx.prior.diag, K=self.n_components)
        return ctx.Xc

    def _initialize(self, X, ctx, random_state, steps):
        if ctx.dask is not None:
            from .distributed import gw_initial_stats

            stats, proper = gw_initial_stats(ctx.dask, self.n_components, self.init_params,
                                             self.mean_prior_, ctx.prior.diag, random_state)
        else:
            stats, proper = self._initial_stats(X, ctx.prior, random_state,
                                                lambda: self._centre(X, ctx))
        post = gw.posterior_from_stats(stats, ctx.prior)
        # "random_from_data" and "k-means++" seed one point per component: their initial
        # responsibilities are not a distribution q(Z) for every point, so no bound yet.
        if self.check_monotonic and proper:
            record_step(steps, 0, "init", gw.elbo(stats, post, ctx.prior), check=True)
        return post

    def _iterate(self, ctx, post, it, steps) -> float:
        prior, check = ctx.prior, self.check_monotonic
        if ctx.dask is not None:  # each chunk's gw.accumulate on the workers, summed in order
            from .distributed import gw_accumulate

            stats = gw_accumulate(ctx.dask, self.mean_prior_, post)
        else:
            stats = gw.accumulate(ctx.passes, post)
        if check:
            record_step(steps, it, "q(Z)", gw.elbo(stats, post, prior), check=True)
        gw.update_weights(post, stats, prior)
        if check:
            record_step(steps, it, "q(pi)", gw.elbo(stats, post, prior), check=True)
        gw.update_gauss_wishart(post, stats, prior)
        value = gw.elbo(stats, post, prior)
        if check:
            record_step(steps, it, "q(mu,Lambda)", value, check=True)
        return value

    def _set_fitted(self, X, ctx, post):
        self._prior = ctx.prior
        self._set_posterior(post)

    def _set_posterior(self, post: gw.Posterior):
        self._post = post
        self.weight_concentration_ = post.alpha.copy()
        self.mean_precision_ = post.beta.copy()
        self.degrees_of_freedom_ = post.nu.copy()
        self.weights_ = post.alpha / post.alpha.sum()
        self.means_ = post.m + self.mean_prior_
        self.precisions_ = post.expected_precision()
        if post.diag:
            self.covariances_ = 1.0 / self.precisions_
        else:
            cov = np.linalg.inv(self.precisions_)
            self.covariances_ = 0.5 * (cov + np.swapaxes(cov, 1, 2))

    def _fit_labels(self, X, ctx) -> np.ndarray:
        if ctx.dask is not None:  # a lazy Dask array (n,): n labels need not fit in memory
            from .distributed import gw_labels

            return gw_labels(ctx.dask, self.mean_prior_, self._post)
        data = ctx.passes if getattr(ctx, "passes", None) is not None else X - self.mean_prior_
        return gw.predict_labels(data, self._post)

    def _predict_validated(self, X) -> np.ndarray:
        return gw.predict_labels(X - self.mean_prior_, self._post)

    def _log_resp(self, X) -> np.ndarray:
        """log r_nk under the fitted q (PRML eq. 10.49) of validated rows; shape (n, K)."""
        return gw.log_resp(X - self.mean_prior_, self._post)

    # -- fitted model --------------------------------------------------------
    def elbo(self, X) -> float:
        """The full ELBO (nats) of data ``X`` (n, d) under the fitted global factors, with
        q(Z) set to its optimum for ``X``."""
        Xc = self._validated(X) - self.mean_prior_
        blocks = gw.design(Xc, self._post.diag, budget_bytes=0, K=self.n_components)
        return gw.elbo(gw.accumulate(blocks, self._post), self._post, self._prior)

    def elbo_from_batches(self, batches) -> tuple[float, int]:
        """Stream the ELBO over an iterable of arrays (each (m, d)); returns (ELBO, n).

        One array (or a list of rows) is read as a single batch.

        Memory is bounded by one batch, so this evaluates fits on data that does not fit in
        memory (e.g. :class:`~vitoolkit.cavi.svi.StochasticBayesianGMM`).
        """
        check_is_fitted(self)
        if is_one_array(batches):  # one array (or a list of rows) is one batch, not n rows
            batches = [batches]
        gen = (self._validated(b, "batch") - self.mean_prior_ for b in batches)
        stats = gw.accumulate((c for b in gen for c in gw.chunks_of(b)), self._post)
        return gw.elbo(stats, self._post, self._prior), stats.n

    def _score_samples(self, X) -> np.ndarray:
        """:meth:`score_samples` on checked data, in chunks, with
        :class:`vitoolkit.distributions.MultivariateStudentT` (torch imported here, not with
        the module)."""
        import torch

        from ..distributions import MultivariateStudentT

        Xc = X - self.mean_prior_
        post = self._post
        d = Xc.shape[1]
        log_w = torch.from_numpy(np.log(post.alpha) - np.log(post.alpha.sum()))
        if post.diag:
            df = post.nu[:, None].repeat(d, axis=1)  # (K, d)
            scale2 = (1 + post.beta)[:, None] / (post.nu * post.beta)[:, None] * post.W_inv
            dist = MultivariateStudentT(torch.from_numpy(df), torch.from_numpy(post.m[..., None]),
                                        torch.from_numpy(np.sqrt(scale2)[..., None, None]))
        else:
            df = post.nu + 1 - d
            factor = (1 + post.beta) / (df * post.beta)
            tril = np.linalg.cholesky(factor[:, None, None] * post.W_inv)
            dist = MultivariateStudentT(torch.from_numpy(df), torch.from_numpy(post.m),
                                        torch.from_numpy(tril))
        out = np.empty(Xc.shape[0])
        step = max(1, 2**19 // (self.n_components * d * d))  # bounds the (m, K, d, d) solve
        for start in range(0, Xc.shape[0], step):
            x = torch.from_numpy(Xc[start : start + step])
            if post.diag:
                lp = dist.log_prob(x[:, None, :, None]).sum(-1)  # (m, K)
            else:
                lp = dist.log_prob(x[:, None, :])
            out[start : start + step] = torch.logsumexp(lp + log_w, dim=1).numpy()
        return out

    def score_samples(self, X) -> np.ndarray:
        r"""log p(x_new | X), the variational posterior predictive (PRML eq. 10.81-10.82).

        .. math::

            p(x \mid X) \approx \frac{1}{\hat\alpha} \sum_k \alpha_k
                \mathrm{St}(x \mid m_k, L_k, \nu_k + 1 - d), \qquad
            L_k = \frac{(\nu_k + 1 - d) \beta_k}{1 + \beta_k} W_k,

        with :math:`\hat\alpha = \sum_k \alpha_k` and :math:`L_k` the precision of the t.
        For ``"diag"`` each component is a product of d one-dimensional t's with
        :math:`\nu_k` degrees of freedom.

        Parameters
        ----------
        X : array-like of shape (n,) or (n, d)

        Returns
        -------
        ndarray of shape (n,)
        """
        return super().score_samples(X)

    def effective_n_components(self, min_weight: float = 0.01) -> int:
        """How many components carry at least ``min_weight`` of E_q[pi] (the rest the
        Dirichlet prior has switched off, PRML section 10.2 and Fig. 10.6)."""
        check_is_fitted(self)
        w = check_real(min_weight, "min_weight", minimum=0.0, maximum=1.0, strict_maximum=True)
        return int(np.sum(self.weights_ >= w))
