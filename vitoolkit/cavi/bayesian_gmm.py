r"""Variational Bayesian Gaussian mixture by CAVI (Bishop, PRML section 10.2).

Model (PRML eq. 10.37-10.40)::

    pi ~ Dir(alpha_0),  (mu_k, Lambda_k) ~ N(mu_k | m_0, (beta_0 Lambda_k)^{-1}) W(Lambda_k | W_0, nu_0),
    z_n | pi ~ Cat(pi),  x_n | z_n = k ~ N(mu_k, Lambda_k^{-1}).

Mean-field family q(Z) q(pi) prod_k q(mu_k, Lambda_k); each CAVI iteration
updates q(Z) (eq. 10.46-10.49), then q(pi) (eq. 10.57-10.58), then every
q(mu_k, Lambda_k) (eq. 10.59-10.63). The conjugate algebra lives in
:mod:`vitoolkit.cavi._gauss_wishart`; the ELBO (eq. 10.70-10.77) is assembled
there from expected log-likelihood terms, the entropy of q(Z), and the KLs of
the Dirichlet and Normal-Wishart factors from :func:`vitoolkit.divergences.kl_divergence`,
with every constant kept.

Parameter names, meanings and defaults are those of scikit-learn's
``BayesianGaussianMixture(weight_concentration_prior_type="dirichlet_distribution")``,
so the two can be fitted side by side. Differences: the bound is the full ELBO
(scikit-learn drops constants); there is no ``reg_covar`` (the Wishart prior
already keeps every W_k^{-1} positive definite, and a jitter would break the
coordinate-ascent guarantee); ``"diag"`` is an exact per-dimension Normal-Gamma
model (scikit-learn's diag E-step uses the full-Wishart digamma sum).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from ..distributions import MultivariateStudentT
from . import _gauss_wishart as gw
from ._validation import as_data, check_features, check_int, check_positive, check_random_state

__all__ = ["BayesianGMM", "ELBODecreaseError"]

_COVARIANCE_TYPES = ("full", "diag")
_INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


class ELBODecreaseError(RuntimeError):
    """Raised by ``check_monotonic=True`` when a coordinate update lowers the ELBO."""


class BayesianGMM:
    r"""Variational Bayesian Gaussian mixture fitted by CAVI (PRML section 10.2).

    Parameters
    ----------
    n_components : int, default=1
        K, the number of components (an upper bound: unused ones get weight ~0).
    covariance_type : {"full", "diag"}, default="full"
    tol : float, default=1e-3
        Stop when the ELBO changes by less than ``tol`` nats between iterations
        (scikit-learn's absolute criterion).
    max_iter : int, default=100
    n_init : int, default=1
        Initialisations; the one with the largest final ELBO is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How the initial responsibilities are drawn (exactly as scikit-learn, so the same
        ``random_state`` gives the same start).
    weight_concentration_prior_type : {"dirichlet_distribution"}
        Only the finite Dirichlet prior of PRML 10.39 is implemented.
    weight_concentration_prior : float, default=1/K
        alpha_0 (> 0). Small values switch unused components off.
    mean_precision_prior : float, default=1
        beta_0 (> 0).
    mean_prior : array-like of shape (d,), default=mean of X
        m_0.
    degrees_of_freedom_prior : float, default=d
        nu_0 (> d - 1 for "full"; > 0 for "diag", one Gamma per dimension).
    covariance_prior : array-like of shape (d, d) ("full") or (d,) ("diag"), default=cov of X
        W_0^{-1}, positive definite.
    random_state : None, int or RandomState
    check_monotonic : bool, default=False
        Record the ELBO after every factor update in ``step_elbo_`` and raise
        :class:`ELBODecreaseError` if one decreases beyond round-off.

    Attributes
    ----------
    weights_ : ndarray (K,)
        E_q[pi_k] = alpha_k / sum_j alpha_j.
    means_ : ndarray (K, d)
        m_k.
    covariances_ : ndarray (K, d, d) or (K, d)
        (E_q[Lambda_k])^{-1} = (nu_k W_k)^{-1}, scikit-learn's convention.
    precisions_ : ndarray (K, d, d) or (K, d)
        E_q[Lambda_k].
    weight_concentration_, mean_precision_, degrees_of_freedom_ : ndarray (K,)
        alpha_k, beta_k, nu_k.
    elbo_history_ : list of float
        The full ELBO in nats after each iteration of the kept run.
    lower_bound_ : float
        The last entry of ``elbo_history_``.
    step_elbo_ : list of (int, str, float)
        With ``check_monotonic``: (iteration, factor, ELBO) after each of "init", "q(Z)",
        "q(pi)", "q(mu,Lambda)".
    n_iter_ : int
    converged_ : bool
    """

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

    # -- validation --------------------------------------------------------
    def _check_settings(self):
        check_int(self.n_components, "n_components", 1)
        if self.covariance_type not in _COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {_COVARIANCE_TYPES}, got "
                             f"{self.covariance_type!r} ('tied' and 'spherical' are not "
                             "implemented)")
        if self.weight_concentration_prior_type != "dirichlet_distribution":
            raise ValueError(
                "weight_concentration_prior_type must be 'dirichlet_distribution' (PRML 10.39), "
                f"got {self.weight_concentration_prior_type!r}; for a Dirichlet process use "
                "sklearn.mixture.BayesianGaussianMixture")
        if self.init_params not in _INIT_PARAMS:
            raise ValueError(f"init_params must be one of {_INIT_PARAMS}, "
                             f"got {self.init_params!r}")
        check_int(self.max_iter, "max_iter", 1)
        check_int(self.n_init, "n_init", 1)
        if isinstance(self.tol, bool) or not isinstance(self.tol, (int, float)) or self.tol < 0:
            raise ValueError(f"tol must be a non-negative number, got {self.tol!r}")

    def _make_prior(self, X: np.ndarray) -> gw.Prior:
        """Validate the prior and return it in coordinates centred at ``mean_prior_``."""
        n, d = X.shape
        K = self.n_components
        diag = self.covariance_type == "diag"
        alpha0 = check_positive(self.weight_concentration_prior, "weight_concentration_prior",
                                allow_none=True)
        beta0 = check_positive(self.mean_precision_prior, "mean_precision_prior",
                               allow_none=True)
        self.weight_concentration_prior_ = 1.0 / K if alpha0 is None else alpha0
        self.mean_precision_prior_ = 1.0 if beta0 is None else beta0
        if self.mean_prior is None:
            self.mean_prior_ = X.mean(axis=0)
        else:
            m0 = np.asarray(self.mean_prior, dtype=np.float64).reshape(-1)
            if m0.shape != (d,) or not np.all(np.isfinite(m0)):
                raise ValueError(f"mean_prior must be finite with shape ({d},), "
                                 f"got shape {np.shape(self.mean_prior)}")
            self.mean_prior_ = m0
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
        if not given:
            cov = np.var(X, axis=0, ddof=1) if diag else np.atleast_2d(np.cov(X.T))
        else:
            cov = np.asarray(self.covariance_prior, dtype=np.float64)
            want = (d,) if diag else (d, d)
            if diag and cov.shape == (d, d):
                raise ValueError(f"covariance_prior for covariance_type='diag' must have shape "
                                 f"({d},) (the prior variances), got {cov.shape}")
            if cov.shape != want:
                raise ValueError(f"covariance_prior must have shape {want} for covariance_type="
                                 f"{self.covariance_type!r}, got {cov.shape}")
        where = "covariance_prior" if given else "covariance_prior (default: covariance of X)"
        if not np.all(np.isfinite(cov)):
            raise ValueError(f"{where} must be finite")
        if diag:
            if not np.all(cov > 0):
                raise ValueError(f"{where} must be positive in every dimension, got {cov}")
            return cov.copy()
        if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12 * np.abs(cov).max()):
            raise ValueError(f"{where} must be symmetric")
        if np.linalg.eigvalsh(cov)[0] <= 0:
            raise ValueError(f"{where} must be positive definite; its smallest eigenvalue is "
                             f"{np.linalg.eigvalsh(cov)[0]:.3g}")
        return 0.5 * (cov + cov.T)

    # -- initialisation ------------------------------------------------------
    def _initial_resp(self, X: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
        """Initial responsibilities, drawn exactly as scikit-learn's mixtures draw them."""
        from sklearn.cluster import KMeans, kmeans_plusplus

        n, K = X.shape[0], self.n_components
        resp = np.zeros((n, K))
        if self.init_params == "kmeans":
            label = KMeans(n_clusters=K, n_init=1, random_state=rs).fit(X).labels_
            resp[np.arange(n), label] = 1
        elif self.init_params == "random":
            resp = rs.uniform(size=(n, K))
            resp /= resp.sum(axis=1)[:, None]
        elif self.init_params == "random_from_data":
            resp[rs.choice(n, size=K, replace=False), np.arange(K)] = 1
        else:
            _, idx = kmeans_plusplus(X, K, random_state=rs)
            resp[idx, np.arange(K)] = 1
        return resp

    # -- fitting -------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit by CAVI from ``n_init`` initialisations, keeping the largest final ELBO.

        Parameters
        ----------
        X : array-like of shape (n,) or (n, d)
        y : ignored
        """
        self._check_settings()
        X = as_data(X, min_samples=2)
        if X.shape[0] < self.n_components:
            raise ValueError(f"X has {X.shape[0]} samples but n_components="
                             f"{self.n_components}; need n_samples >= n_components")
        prior = self._make_prior(X)
        Xc = X - self.mean_prior_
        rs = check_random_state(self.random_state)
        best = None
        for _ in range(self.n_init):
            resp = self._initial_resp(X, rs)
            run = self._cavi(Xc, resp, prior)
            if best is None or run[1][-1] > best[1][-1]:
                best = run
        post, history, steps, n_iter, converged = best
        self._prior = prior
        self.n_features_in_ = X.shape[1]
        self._set_posterior(post)
        self.elbo_history_ = history
        self.lower_bound_ = history[-1]
        self.step_elbo_ = steps
        self.n_iter_ = n_iter
        self.converged_ = converged
        if not converged:
            warnings.warn(f"BayesianGMM did not converge in max_iter={self.max_iter} iterations "
                          f"(tol={self.tol}); increase max_iter or tol, or try other "
                          "initialisations", ConvergenceWarning, stacklevel=2)
        return self

    def _cavi(self, Xc, resp, prior):
        stats = gw.stats_from_resp(Xc, resp, prior.diag)
        post = gw.posterior_from_stats(stats, prior)
        steps = []
        check = bool(self.check_monotonic)
        # "random_from_data" and "k-means++" seed one point per component: their initial
        # responsibilities are not a distribution q(Z) for every point, so no bound yet.
        if check and np.allclose(resp.sum(axis=1), 1.0):
            self._record(steps, 0, "init", stats, post, prior)
        history = []
        converged = False
        it = 0
        passes = gw.design(Xc, prior.diag)
        for it in range(1, self.max_iter + 1):
            stats = gw.accumulate(passes(), post, precomputed=True)
            if check:
                self._record(steps, it, "q(Z)", stats, post, prior)
            gw.update_weights(post, stats, prior)
            if check:
                self._record(steps, it, "q(pi)", stats, post, prior)
            gw.update_gauss_wishart(post, stats, prior)
            value = gw.elbo(stats, post, prior)
            if check:
                self._record(steps, it, "q(mu,Lambda)", stats, post, prior, value)
            if not np.isfinite(value):
                raise FloatingPointError(f"the ELBO became {value} at iteration {it}; "
                                         "check the scale of X and of the priors")
            history.append(value)
            if it > 1 and abs(history[-1] - history[-2]) < self.tol:
                converged = True
                break
        return post, history, steps, it, converged

    @staticmethod
    def _record(steps, it, name, stats, post, prior, value=None):
        value = gw.elbo(stats, post, prior) if value is None else value
        if steps:
            prev = steps[-1][2]
            # round-off of a sum of n terms of size abs(ELBO)/n: a few ulps of abs(ELBO)
            if value < prev - 1e-9 * max(1.0, abs(prev)):
                raise ELBODecreaseError(
                    f"the ELBO decreased at iteration {it} after updating {name}: "
                    f"{prev!r} -> {value!r} (by {prev - value:.3g} nats)")
        steps.append((it, name, value))

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

    # -- fitted model --------------------------------------------------------
    def _centred(self, X, name="X"):
        if not hasattr(self, "_post"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit first")
        X = as_data(X, name)
        check_features(X, self.n_features_in_, name)
        return X - self.mean_prior_

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities r_nk under the fitted q (PRML eq. 10.49); shape (n, K)."""
        return np.exp(gw.log_resp(self._centred(X), self._post))

    def predict(self, X) -> np.ndarray:
        """The component with the largest responsibility; shape (n,)."""
        return np.argmax(gw.log_resp(self._centred(X), self._post), axis=1)

    def fit_predict(self, X, y=None) -> np.ndarray:
        """``fit(X)`` followed by a final E-step: the labels of ``X``; shape (n,)."""
        return self.fit(X).predict(X)

    def elbo(self, X) -> float:
        """The full ELBO (nats) of data ``X`` (n, d) under the fitted global factors, with
        q(Z) set to its optimum for ``X``."""
        Xc = self._centred(X)
        return gw.elbo(gw.accumulate(gw.chunks_of(Xc), self._post), self._post, self._prior)

    def elbo_from_batches(self, batches) -> tuple[float, int]:
        """Stream the ELBO over an iterable of arrays (each (m, d)); returns (ELBO, n).

        Memory is bounded by one batch, so this evaluates fits on data that does not fit in
        memory (e.g. :class:`~vitoolkit.cavi.svi.StochasticBayesianGMM`).
        """
        if not hasattr(self, "_post"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit first")
        gen = (self._centred(b, "batch") for b in batches)
        stats = gw.accumulate((c for b in gen for c in gw.chunks_of(b)), self._post)
        return gw.elbo(stats, self._post, self._prior), stats.n

    def score_samples(self, X) -> np.ndarray:
        r"""log p(x_new | X), the variational posterior predictive (PRML eq. 10.81-10.82).

        p(x | X) ~= 1/alpha_hat sum_k alpha_k St(x | m_k, L_k, nu_k + 1 - d),
        L_k = (nu_k + 1 - d) beta_k / (1 + beta_k) W_k (L_k is the precision of the t).
        For ``"diag"`` each component is a product of d one-dimensional t's with nu_k
        degrees of freedom. Evaluated with :class:`vitoolkit.distributions.MultivariateStudentT`.

        Parameters
        ----------
        X : array-like of shape (n,) or (n, d)

        Returns
        -------
        ndarray of shape (n,)
        """
        Xc = self._centred(X)
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

    def score(self, X, y=None) -> float:
        """Mean of :meth:`score_samples` over ``X``."""
        return float(np.mean(self.score_samples(X)))

    def effective_n_components(self, min_weight: float = 0.01) -> int:
        """How many components carry at least ``min_weight`` of E_q[pi] (the rest the
        Dirichlet prior has switched off, PRML section 10.2 and Fig. 10.6)."""
        if not hasattr(self, "_post"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit first")
        if not (0 <= min_weight < 1):
            raise ValueError(f"min_weight must be in [0, 1), got {min_weight!r}")
        return int(np.sum(self.weights_ >= min_weight))
