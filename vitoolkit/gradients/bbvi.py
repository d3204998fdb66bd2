r"""Black-box variational inference with a choice of ELBO gradient estimator.

The loop of Ranganath, Gerrish & Blei (AISTATS 2014), with q = N(loc, diag(scale^2))
parameterised by (loc, log scale) and optimised by Adam: at every iteration
the ELBO gradient is estimated with one of :data:`~vitoolkit.gradients.elbo.ELBO_ESTIMATORS`
from ``num_samples`` draws, so runs that differ only in the estimator (same seed,
same step size) show what its variance costs. ``"score_baseline"`` uses a
moving average of past ELBO terms as its baseline (Ranganath et al., section 3).

Two models with a reference posterior:

- :class:`ConjugateGaussianModel`: z ~ N(m0, s0^2 I), x_i | z ~ N(z, s^2 I), D independent
  copies of :class:`vitoolkit.conjugate.ConjugateGaussian` (whose closed forms it uses).
  The posterior is Gaussian and in the mean-field family, so the exact ELBO is
  log p(x) - KL(q || p(z | x)) and the distance is that KL, which reaches 0.
- :class:`BayesianLogisticRegression`: w ~ N(0, s0^2 I), y_i ~ Bernoulli(sigmoid(x_i . w)).
  The reference posterior mean and covariance come from self-normalised
  importance sampling with a Student-t proposal centred on the Laplace
  approximation (Bishop PRML 4.4, 11.1.4); the ELBO is computed by
  Gauss-Hermite quadrature (deterministic, so the curves show the optimiser,
  not the evaluation noise).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch.distributions import Independent, Normal

from ..distributions import MultivariateStudentT, sample
from ..divergences import kl_divergence
from ..divergences.importance import effective_sample_size_unchecked, log_mean_exp_unchecked
from ..exceptions import DivergedError
from ..models.conjugate import ConjugateGaussian
from ..models.logistic import LogisticPosterior
from ..validation import (
    as_float_tensor,
    check_int,
    check_memory,
    check_positive,
    check_real,
    check_seed,
    renamed_argument,
)
from ._checks import WORKING_COPIES, as_params, check_choice, check_num_samples
from .elbo import ELBO_ESTIMATORS, elbo_terms

__all__ = [
    "ConjugateGaussianModel",
    "BayesianLogisticRegression",
    "BBVIResult",
    "run_bbvi",
]

def _diag_normal(loc, scale):
    return Independent(Normal(loc, scale), 1)


class ConjugateGaussianModel:
    r"""z ~ N(prior_loc, prior_std^2 I_D), x_i | z ~ N(z, noise_scale^2 I_D), i = 1..n.

    D independent copies of :class:`vitoolkit.conjugate.ConjugateGaussian`, one per
    column of the data, evaluated through the data's sufficient statistics (computed
    once). Posterior (Bishop PRML eq. 2.141-2.142, per coordinate):
    precision = 1/s0^2 + n/s^2, mean = (m0/s0^2 + sum_i x_i / s^2) / precision.

    Parameters
    ----------
    data : array-like of shape (n,) or (n, D)
    prior_loc, prior_std, noise_scale : float
        (``prior_scale``, the former name of ``prior_std``, is accepted with a
        ``DeprecationWarning``.)
    """

    def __init__(self, data, prior_loc: float = 0.0, prior_std: float = 1.0,
                 noise_scale: float = 1.0, *, prior_scale=None):
        prior_std = renamed_argument(prior_std, prior_scale, "prior_std", "prior_scale",
                                     "ConjugateGaussianModel")
        x = as_float_tensor(data, "data", dtype=torch.float64, ndim=(1, 2))
        if x.ndim == 1:
            x = x.unsqueeze(-1)
        if x.shape[0] < 1:
            raise ValueError(f"data must have shape (n,) or (n, D) with n >= 1, got {tuple(x.shape)}")
        self.model = ConjugateGaussian(prior_loc, prior_std, noise_scale)
        self.data = x
        self.prior_loc = float(self.model.prior_loc)
        self.prior_std = float(self.model.prior_std)
        self.prior_scale = self.prior_std  # the former name
        self.noise_scale = float(self.model.noise_scale)
        self.statistics = ConjugateGaussian._statistics(x, "data")
        post = self.model.posterior(self.statistics)
        self.posterior_loc, self.posterior_scale = post.loc, post.scale
        self._log_evidence = float(self.model.log_evidence(self.statistics).sum())

    @property
    def dim(self) -> int:
        return self.data.shape[1]

    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) for z of shape (..., D); returns (...)."""
        return self.model.log_joint(self.statistics, z).sum(-1)

    def posterior(self):
        """The exact posterior p(z | x), a diagonal Gaussian (Independent Normal)."""
        return _diag_normal(self.posterior_loc, self.posterior_scale)

    def log_evidence(self) -> float:
        """log p(x) in closed form (the sum of the D coordinates' evidences)."""
        return self._log_evidence

    def elbo(self, loc, scale) -> float:
        """The exact ELBO = log p(x) - KL(q || p(z | x))."""
        return self.log_evidence() - self.distance(loc, scale)

    def distance(self, loc, scale) -> float:
        """KL(q || p(z | x)) in nats (closed form)."""
        return float(kl_divergence(_diag_normal(loc, scale), self.posterior()))


class BayesianLogisticRegression:
    r"""w ~ N(0, prior_std^2 I_D), y_i | w ~ Bernoulli(sigmoid(x_i . w)).

    The model is :class:`vitoolkit.models.logistic.LogisticPosterior` (without an intercept
    column), the one Bayesian logistic regression of the package (``self.posterior``); this
    class adds what black-box VI needs: the reference posterior moments and the ELBO of a
    mean-field Gaussian.

    Parameters
    ----------
    features : array-like of shape (n, D)
    labels : array-like of shape (n,), values in {0, 1}
    prior_std : float > 0
        s in w ~ N(0, s^2 I_D) (``prior_scale``, its former name, is accepted with a
        ``DeprecationWarning``).
    reference_samples : int
        Importance samples for the reference posterior moments.
    seed : int
        Seed of the local generator used for the reference.
    """

    def __init__(self, features, labels, prior_std: float = 1.0,
                 reference_samples: int = 200_000, seed: int = 0, *, prior_scale=None):
        prior_std = renamed_argument(prior_std, prior_scale, "prior_std", "prior_scale",
                                     "BayesianLogisticRegression")
        x = as_float_tensor(features, "features", dtype=torch.float64, ndim=2)
        if isinstance(labels, torch.Tensor) and labels.dtype == torch.bool:
            labels = labels.to(torch.float64)  # a boolean label vector is unambiguous
        y = as_float_tensor(labels, "labels", dtype=torch.float64)
        if x.shape[0] < 1:
            raise ValueError(f"features must have shape (n, D) with n >= 1, got {tuple(x.shape)}")
        if y.shape != x.shape[:1]:
            raise ValueError(f"labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")
        if not bool(((y == 0) | (y == 1)).all()):
            raise ValueError("labels must be 0 or 1")
        self.features, self.labels = x, y
        self.prior_std = check_positive(prior_std, "prior_std")
        self.posterior = LogisticPosterior(x, y, self.prior_std, fit_intercept=False)
        # Draws (S, D) and linear predictors (S, n), a few copies of each.
        n = check_num_samples(reference_samples, "reference_samples", minimum=2,
                              values_per_sample=x.shape[0] + x.shape[1],
                              copies=4)
        self._reference(n, check_seed(seed))

    @classmethod
    def synthetic(cls, num_data: int = 100, dim: int = 2, *, generator=None, **kwargs):
        """Data from the model itself: x ~ N(0, I), w ~ N(0, I), y ~ Bernoulli(sigmoid(x . w))."""
        num_data = check_int(num_data, "num_data", minimum=1)
        dim = check_int(dim, "dim", minimum=1)
        check_memory(8 * 2 * num_data * (dim + 1), "num_data", num_data, f"{num_data} x {dim} features")
        x = torch.randn((num_data, dim), generator=generator, dtype=torch.float64)
        w = torch.randn((dim,), generator=generator, dtype=torch.float64)
        u = torch.rand((num_data,), generator=generator, dtype=torch.float64)
        return cls(x, (u < torch.sigmoid(x @ w)).to(torch.float64), **kwargs)

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    @property
    def prior_scale(self) -> float:
        """The former name of :attr:`prior_std`."""
        return self.prior_std

    def log_joint(self, w: torch.Tensor) -> torch.Tensor:
        """log p(y, w | X) for w of shape (..., D); returns (...) (the model's log joint)."""
        return self.posterior.log_prob(w)

    def _prior(self) -> Normal:
        """p(w) per coordinate: N(0, prior_std^2)."""
        return self.posterior._prior

    def _laplace(self):
        """The Laplace approximation N(mode, H^-1) (PRML 4.4) from the model's Newton mode."""
        mode = self.posterior.newton_mode()
        return mode, torch.linalg.inv(self.posterior.hessian(mode))

    def _reference(self, num_samples, seed):
        mode, cov = self._laplace()
        # Heavy-tailed proposal (Student-t, 5 dof) so the importance weights have finite variance.
        proposal = MultivariateStudentT(5.0, mode, torch.linalg.cholesky(cov))
        gen = torch.Generator().manual_seed(seed)
        w = sample(proposal, (num_samples,), generator=gen)
        log_w = self.log_joint(w) - proposal.log_prob(w)
        weights = torch.softmax(log_w, 0)
        mean = (weights.unsqueeze(-1) * w).sum(0)
        centred = w - mean
        self.laplace_mode = mode
        self.laplace_covariance = cov
        self.posterior_mean = mean
        self.posterior_covariance = (weights[:, None, None]
                                     * centred.unsqueeze(-1) * centred.unsqueeze(-2)).sum(0)
        self.effective_sample_size = float(effective_sample_size_unchecked(log_w))  # 1 / sum(weights^2)
        self.log_evidence = float(log_mean_exp_unchecked(log_w))

    def elbo(self, loc, scale, num_nodes: int = 48) -> float:
        r"""The ELBO of q = N(loc, diag(scale^2)), deterministic.

        Under q each linear predictor eta_i = x_i . w is N(x_i . loc, sum_d x_id^2 scale_d^2),
        so E_q[log p(y | w)] is n one-dimensional Gauss-Hermite integrals of
        y_i eta_i - softplus(eta_i); the prior term and the entropy together are
        -KL(q || p(w)), in closed form.
        """
        loc, scale = as_params(loc, scale)
        if loc.shape != (self.dim,):
            raise ValueError(f"loc and scale must have shape ({self.dim},), got {tuple(loc.shape)}")
        num_nodes = check_int(num_nodes, "num_nodes", minimum=2, maximum=300)
        t, w = np.polynomial.hermite.hermgauss(num_nodes)
        t = torch.from_numpy(t).unsqueeze(-1)
        w = torch.from_numpy(w / math.sqrt(math.pi)).unsqueeze(-1)
        mean = self.features @ loc
        sd = ((self.features**2) @ scale**2).sqrt()
        eta = mean + math.sqrt(2.0) * sd * t  # (num_nodes, n)
        expected_lik = (self.labels * mean).sum() - (w * torch.nn.functional.softplus(eta)).sum()
        kl = kl_divergence(Normal(loc, scale), self._prior()).sum()
        return float(expected_lik - kl)

    def distance(self, loc, scale) -> float:
        """Standardised distance of q's mean to the posterior mean,
        sqrt(sum_d (loc_d - E[w_d])^2 / Var[w_d])."""
        sd = torch.diagonal(self.posterior_covariance).sqrt()
        return float((((loc - self.posterior_mean) / sd) ** 2).sum().sqrt())


class BBVIResult(NamedTuple):
    """A black-box VI run: final ``loc``, ``scale`` (D,) and per-iteration histories.

    ``elbo``, ``distance`` have num_iterations + 1 entries (the first at the
    initial q); ``grad_variance`` (num_iterations,) is the per-sample variance
    of the gradient estimates summed over all parameters.
    """

    loc: torch.Tensor
    scale: torch.Tensor
    elbo: np.ndarray
    distance: np.ndarray
    grad_variance: np.ndarray


def run_bbvi(model, *, estimator: str, num_iterations: int, num_samples: int,
             learning_rate: float = 0.05, generator: torch.Generator | None = None,
             init_loc=None, init_scale=None, baseline_decay: float = 0.9) -> BBVIResult:
    r"""Maximise the ELBO of ``model`` over q = N(loc, diag(scale^2)) with one gradient estimator.

    Adam (Kingma & Ba 2015) on (loc, log scale); the gradient for log scale is
    scale * d/d scale. Compare estimators with the same ``generator`` seed,
    ``learning_rate`` and ``num_samples``.

    Parameters
    ----------
    model : ConjugateGaussianModel or BayesianLogisticRegression
        Anything with ``dim``, ``log_joint(z)``, ``elbo(loc, scale)``, ``distance(loc, scale)``.
    estimator : {"pathwise", "stl", "score", "score_baseline"}
    num_iterations : int >= 1
    num_samples : int >= 2
        Draws per gradient estimate.
    learning_rate : float > 0
    generator : torch.Generator, optional
    init_loc, init_scale : array-like of shape (D,), optional
        Default 0 and 1.
    baseline_decay : float in [0, 1)
        Moving-average decay of the ``"score_baseline"`` baseline.
    """
    key = check_choice(estimator, ELBO_ESTIMATORS, "estimator")
    for attr in ("dim", "log_joint", "elbo", "distance"):
        if not hasattr(model, attr):
            raise TypeError(f"model must have dim, log_joint, elbo and distance; "
                            f"{type(model).__name__} has no {attr}")
    d = check_int(model.dim, "model.dim", minimum=1)
    n = check_num_samples(num_samples, minimum=2, values_per_sample=d, copies=WORKING_COPIES)
    num_iterations = check_int(num_iterations, "num_iterations", minimum=1)
    learning_rate = check_positive(learning_rate, "learning_rate")
    baseline_decay = check_real(baseline_decay, "baseline_decay", minimum=0.0, maximum=1.0,
                                strict_maximum=True)
    loc0 = torch.zeros(d) if init_loc is None else init_loc
    scale0 = torch.ones(d) if init_scale is None else init_scale
    loc0, scale0 = as_params(loc0, scale0, loc_name="init_loc", scale_name="init_scale")
    if loc0.shape != (d,):
        raise ValueError(f"init_loc and init_scale must have shape ({d},), got {tuple(loc0.shape)}")
    loc = loc0.clone().requires_grad_(True)
    log_scale = scale0.log().requires_grad_(True)
    optimiser = torch.optim.Adam([loc, log_scale], lr=learning_rate)
    elbos, distances, variances = [], [], []
    baseline = None

    def blame(step, err):
        # What made q unusable: the initial values at step 0, the step size afterwards.
        state = (f"loc in [{loc.min().item():.3g}, {loc.max().item():.3g}], "
                 f"log scale in [{log_scale.min().item():.3g}, {log_scale.max().item():.3g}]")
        if step == 0:
            return ValueError(f"run_bbvi cannot start from init_loc/init_scale ({state}): {err}")
        return DivergedError(f"run_bbvi diverged at iteration {step} ({state}): {err}; "
                          f"learning_rate={learning_rate!r} is too large, use a smaller one")

    for step in range(num_iterations):
        with torch.no_grad():
            scale = log_scale.exp()
            if not (bool(torch.isfinite(loc).all()) and bool(((scale > 0) & (scale < math.inf)).all())):
                raise blame(step, "q = N(loc, exp(log scale)^2) is not a valid finite Gaussian")
            elbos.append(model.elbo(loc.detach(), scale))
            distances.append(model.distance(loc.detach(), scale))
        try:
            grads, w = elbo_terms(model.log_joint, loc.detach(), scale, key, n, generator,
                                  baseline=baseline)
        except ValueError as err:
            if "finite" not in str(err):  # a model error (a shape, a type): not the iterate's fault
                raise
            raise blame(step, err) from err
        if key == "score_baseline":
            mean_w = w.mean(0)
            baseline = mean_w if baseline is None else (
                baseline_decay * baseline + (1 - baseline_decay) * mean_w)
        g_loc = grads.loc
        g_log_scale = grads.scale * scale
        variances.append(float(g_loc.var(0).sum() + g_log_scale.var(0).sum()))
        optimiser.zero_grad()
        loc.grad = -g_loc.mean(0)  # Adam minimises; we ascend the ELBO
        log_scale.grad = -g_log_scale.mean(0)
        optimiser.step()
    with torch.no_grad():
        scale = log_scale.exp()
        elbos.append(model.elbo(loc.detach(), scale))
        distances.append(model.distance(loc.detach(), scale))
    return BBVIResult(loc.detach().clone(), scale.detach().clone(), np.asarray(elbos),
                      np.asarray(distances), np.asarray(variances))
