r"""The conjugate Normal-Normal model: a latent-variable model whose evidence is exact.

    z ~ N(m0, s0^2),    x_i | z ~ N(z, s^2),  i = 1..n.

Everything an ELBO lesson needs is closed form here (Bishop PRML section 2.3.3;
Murphy, PML1 section 3.4.1):

- posterior  p(z | x) = N(m_n, s_n^2),  1/s_n^2 = 1/s0^2 + n/s^2,
  m_n = s_n^2 (m0/s0^2 + sum_i x_i / s^2);
- evidence   log p(x) = log N(x; m0 1, s^2 I + s0^2 1 1^T);
- ELBO of a Gaussian q(z) = N(m, v):
  ELBO(q) = sum_i [-1/2 log(2 pi s^2) - ((x_i - m)^2 + v) / (2 s^2)] - KL(q || p(z)),

so the identity log p(x) = ELBO(q) + KL(q || p(z | x)) can be checked to
floating-point precision for any q.

Beyond the identity the model carries the computations of tutorial 01's other
lessons, each with a closed form to check it against:

- the ELBO and KL over a grid of q's (:meth:`ConjugateGaussian.elbo_surface`, the data
  of an "ELBO landscape" figure) and the ELBO by quadrature (the Jensen route,
  :meth:`ConjugateGaussian.elbo_quadrature`);
- learning the prior mean theta = m0: variational EM (:meth:`~ConjugateGaussian.em_prior_loc`)
  and joint gradient training of (q, theta) on the ELBO or on -ELBO
  (:meth:`~ConjugateGaussian.gradient_fit`);
- the evidence by importance sampling from any Gaussian proposal, the prior included
  (the "naive" estimator mean_s p(x | z_s), z_s ~ p(z)), with its relative standard
  error, effective sample size and Pareto k-hat
  (:meth:`~ConjugateGaussian.importance_evidence`), and the exact relative variance of
  its weights (:meth:`~ConjugateGaussian.weight_relative_variance`).

Every method that takes the data ``x`` also takes its sufficient statistics
(:meth:`ConjugateGaussian.statistics`, a :class:`NormalStatistics`): the model only ever
sees x through (n, mean, sum of squared deviations), so a caller that evaluates the
model many times (black-box VI in :mod:`vitoolkit.gradients.bbvi`) summarises its data
once. Statistics of an (n, D) array describe D independent copies of the model, one per
column, and broadcast like a trailing batch dimension of size D.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.distributions import Distribution, Normal

from ..distributions import sample
from ..divergences import (
    Estimate,
    effective_sample_size,
    importance_estimate,
    kl_divergence,
    mean_and_stderr,
)
from ..validation import (
    all_finite,
    as_float_tensor,
    check_choice,
    check_int,
    check_memory,
    check_num_samples,
    check_positive,
    check_real,
    overflow_message,
    renamed_argument,
)

__all__ = [
    "ConjugateGaussian",
    "ElboSurface",
    "EvidenceEstimate",
    "GradientFitPath",
    "NormalStatistics",
    "independent_copies_relative_variance",
]

_OBJECTIVES = ("maximize_elbo", "minimize_negative_elbo")
#: Largest ``width`` of :meth:`ConjugateGaussian.elbo_quadrature`: q's density at |u| = 37 is
#: 1e-298, and beyond about 38.6 it underflows to 0 in float64, so a wider grid adds nothing.
MAX_QUADRATURE_WIDTH = 37.0
# exp(log_scale) is a positive, finite float64 number with room to square it within this range.
_MAX_ABS_LOG_SCALE = 700.0


def independent_copies_relative_variance(relative_variance, num_copies: int) -> torch.Tensor:
    """Relative variance of an importance weight over ``num_copies`` independent copies of a model.

    The weights of independent coordinates multiply, and so do E[w^2] / E[w]^2:
    (1 + v)^d - 1 for d copies of a problem with relative variance v. This is why the
    effective sample size of importance sampling falls exponentially with the
    dimension of z (MacKay, Information Theory, Inference and Learning Algorithms, 29.2).

    ``relative_variance`` must be finite and >= 0 (a variance over a squared mean). A result
    beyond float64's range (about 1.8e308) is refused with a ValueError naming both
    arguments and giving its logarithm, d log(1 + v).
    """
    num_copies = check_int(num_copies, "num_copies", minimum=1)
    v = as_float_tensor(relative_variance, "relative_variance", dtype=torch.float64)
    if v.numel() and bool((v < 0).any()):
        raise ValueError(f"relative_variance must be >= 0 (a variance over a squared mean), "
                         f"got min {v.min().item()!r}")
    # float(num_copies): exact below 2**53, and no OverflowError for counts beyond 2**63.
    log_growth = float(num_copies) * torch.log1p(v)
    out = torch.expm1(log_growth)
    if not bool(torch.isfinite(out).all()):
        raise ValueError(
            f"(1 + relative_variance)^num_copies - 1 overflows float64 for num_copies={num_copies} "
            f"and relative_variance up to {v.max().item():.3g}: its natural logarithm is about "
            f"{log_growth.max().item():.4g} (> 709.78); use num_copies * log1p(relative_variance)")
    return out


class ElboSurface(NamedTuple):
    """ELBO(q) and KL(q || p(z | x)) over a grid of q = N(m, sigma^2).

    ``means`` (n_m,), ``log_scales`` (n_s,); ``elbo`` and ``kl`` of shape (n_s, n_m)
    (row i: log_scales[i], column j: means[j], ``meshgrid(indexing="xy")``);
    ``log_evidence`` a scalar with elbo + kl = log_evidence everywhere.
    """

    means: torch.Tensor
    log_scales: torch.Tensor
    elbo: torch.Tensor
    kl: torch.Tensor
    log_evidence: torch.Tensor


class EvidenceEstimate(Estimate):
    """An importance-sampling estimate of the evidence from S draws of a proposal: an
    :class:`~vitoolkit.divergences.Estimate` ``(value, stderr, khat)`` with Kish's ESS.

    ``value`` (also ``log_evidence``): log (1/S) sum_s w_s; ``stderr`` (also
    ``relative_stderr``): its delta-method standard error std(w) / (sqrt(S) mean(w)), which
    is the standard error of p_hat(x) relative to p_hat(x) (Kingma & Welling 2013, App. D);
    ``khat``: Pareto k-hat of the weights; ``ess`` (an attribute, not a field):
    (sum w)^2 / sum w^2 (Kish's effective sample size, between 1 and S).
    Each of the proposal's batch shape.
    """

    def __new__(cls, log_evidence, relative_stderr, ess, khat):
        self = super().__new__(cls, log_evidence, relative_stderr, khat)
        self.ess = ess
        return self

    def __getnewargs__(self):
        return (self.value, self.stderr, self.ess, self.khat)

    @property
    def log_evidence(self) -> torch.Tensor:
        return self.value

    @property
    def relative_stderr(self) -> torch.Tensor:
        return self.stderr


class GradientFitPath(NamedTuple):
    """Iterates of :meth:`ConjugateGaussian.gradient_fit`, each of shape (num_steps + 1,).

    q = N(``loc``, exp(``log_scale``)^2), prior mean ``prior_loc``; ``elbo`` = ELBO(q; theta)
    and ``log_evidence`` = log p(x; theta) at each iterate (before the step).
    """

    loc: torch.Tensor
    log_scale: torch.Tensor
    prior_loc: torch.Tensor
    elbo: torch.Tensor
    log_evidence: torch.Tensor


class NormalStatistics(NamedTuple):
    """Sufficient statistics of data x_1..x_n for the mean of N(z, s^2): all the model uses.

    ``count`` n (an int), ``mean`` the sample mean and ``sum_sq_dev`` sum_i (x_i - mean)^2,
    float64 tensors of shape () for data (n,) or (D,) for data (n, D) (one per column).
    """

    count: int
    mean: torch.Tensor
    sum_sq_dev: torch.Tensor


class ConjugateGaussian:
    """The model z ~ N(prior_loc, prior_std^2), x_i | z ~ N(z, noise_scale^2).

    Parameters
    ----------
    prior_loc : float
    prior_std : float > 0
        The prior's standard deviation (``prior_scale``, its former name, is accepted with a
        ``DeprecationWarning``; the attribute ``prior_scale`` reads ``prior_std``).
    noise_scale : float > 0

    All results are float64 tensors.
    """

    def __init__(self, prior_loc: float = 0.0, prior_std: float = 1.0, noise_scale: float = 1.0, *,
                 prior_scale=None):
        prior_std = renamed_argument(prior_std, prior_scale, "prior_std", "prior_scale", "ConjugateGaussian")
        self.prior_loc = torch.tensor(check_real(prior_loc, "prior_loc"), dtype=torch.float64)
        self.prior_std = torch.tensor(check_positive(prior_std, "prior_std"), dtype=torch.float64)
        self.noise_scale = torch.tensor(check_positive(noise_scale, "noise_scale"), dtype=torch.float64)

    @property
    def prior_scale(self) -> torch.Tensor:
        """The former name of :attr:`prior_std`."""
        return self.prior_std

    def _inputs(self, st: NormalStatistics | None, extra: dict | None = None) -> dict:
        """The numbers a result depends on (data, model, extra), for naming an overflow's cause."""
        inputs = {}
        if st is not None:
            sd = (st.sum_sq_dev / st.count).sqrt()
            inputs["x (mean -/+ sd)"] = torch.stack([(st.mean - sd).min(), (st.mean + sd).max()])
        inputs.update(prior_loc=self.prior_loc, prior_std=self.prior_std,
                      noise_scale=self.noise_scale)
        inputs.update(extra or {})
        return inputs

    def _finite(self, values, what: str, st: NormalStatistics | None = None,
                extra: dict | None = None):
        """``values`` (a tensor or a tuple) if finite, else a ValueError naming the inputs
        (data ``x``, the model's parameters, ``extra``) large enough to explain the overflow."""
        group = (values,) if isinstance(values, torch.Tensor) else tuple(values)
        if all_finite(group):
            return values
        raise ValueError(overflow_message(what, group, self._inputs(st, extra)))

    @property
    def prior(self) -> Normal:
        """p(z) = N(prior_loc, prior_std^2)."""
        return Normal(self.prior_loc, self.prior_std)

    @staticmethod
    def statistics(x) -> NormalStatistics:
        """The sufficient statistics of data ``x`` of shape (n,) or (n, D), n >= 1.

        For (n, D) data each column is the data of one independent copy of the model.
        """
        return ConjugateGaussian._statistics(x, "x")

    @staticmethod
    def _statistics(x, name: str) -> NormalStatistics:
        """:meth:`statistics` of data passed as the argument ``name`` (what errors name)."""
        if isinstance(x, NormalStatistics):
            return x
        x = as_float_tensor(x, name, dtype=torch.float64, ndim=(1, 2))
        if x.shape[0] < 1:
            raise ValueError(f"{name} must hold at least one observation, got shape {tuple(x.shape)}")
        mean = x.mean(0)
        ss = (x - mean).pow(2).sum(0)
        if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(ss).all())):
            raise ValueError(
                f"{name} is too large: its mean or sum of squared deviations overflows float64 "
                f"(|{name}| up to {x.abs().max().item():.3g}); rescale the data")
        return NormalStatistics(x.shape[0], mean, ss)

    def _data(self, x) -> NormalStatistics:
        """Statistics of x given as an (n,) array (n >= 1, finite) or as NormalStatistics."""
        if isinstance(x, NormalStatistics):
            return x
        x = as_float_tensor(x, "x", dtype=torch.float64)
        if x.dim() != 1 or x.shape[0] < 1:
            raise ValueError(f"x must have shape (n,) with n >= 1, got {tuple(x.shape)}; "
                             "for D independent copies pass statistics(x) of an (n, D) array")
        return self.statistics(x)

    def sample_data(self, n: int, *, generator: torch.Generator | None = None):
        """Draw (z, x) from the model: z of shape (), x of shape (n,)."""
        n = check_int(n, "n", minimum=1)
        check_memory(8 * n, "n", n, f"{n} observations")
        z = sample(self.prior, generator=generator)
        x = sample(Normal(z, self.noise_scale), (n,), generator=generator)
        return z, x

    def prior_predictive(self) -> Normal:
        """p(x_1) = N(m0, s^2 + s0^2): the evidence of a single observation, as a density over x_1.

        Read as a function of the data, the evidence is a distribution over data sets
        (it integrates to one over x); once x is observed it is a single number.
        """
        return Normal(self.prior_loc, torch.sqrt(self.noise_scale**2 + self.prior_std**2))

    def posterior(self, x) -> Normal:
        """Exact p(z | x) = N(m_n, s_n^2) (PRML eq. 2.141-2.142)."""
        st = self._data(x)
        precision = 1 / self.prior_std**2 + st.count / self.noise_scale**2
        var = 1 / precision
        mean = var * (self.prior_loc / self.prior_std**2 + st.count * st.mean / self.noise_scale**2)
        # A finite precision and variance: the variance is then positive, never 0.
        self._finite((mean, var, precision), "the posterior's mean, variance and precision", st)
        return Normal(mean, var.sqrt().expand(mean.shape))

    def log_evidence(self, x) -> torch.Tensor:
        """Exact log p(x) = log N(x; m0 1, s^2 I + s0^2 1 1^T), in O(n).

        With the determinant s^(2n) (1 + n s0^2 / s^2) and the Sherman-Morrison inverse::

            log p(x) = -n/2 log(2 pi s^2) - 1/2 log(1 + n s0^2 / s^2)
                       - sum_i (x_i - xbar)^2 / (2 s^2) - n (xbar - m0)^2 / (2 (s^2 + n s0^2)).
        """
        st = self._data(x)
        return self._finite(self._log_evidence(st, self.prior_loc), "log p(x)", st)

    def _log_evidence(self, st: NormalStatistics, prior_loc: torch.Tensor) -> torch.Tensor:
        n, xbar, ss = st
        s2, s02 = self.noise_scale**2, self.prior_std**2
        return (-0.5 * n * torch.log(2 * math.pi * s2) - 0.5 * torch.log1p(n * s02 / s2)
                - ss / (2 * s2) - n * (xbar - prior_loc) ** 2 / (2 * (s2 + n * s02)))

    def with_prior_loc(self, prior_loc) -> ConjugateGaussian:
        """The same model with prior mean ``prior_loc`` (the parameter theta of tutorial 01)."""
        return ConjugateGaussian(prior_loc, self.prior_std, self.noise_scale)

    def log_likelihood(self, x, z) -> torch.Tensor:
        """log p(x | z) = sum_i log N(x_i; z, s^2) for z of any shape (...), returning (...).

        Through the sufficient statistics (n, mean, sum of squared deviations), so the cost
        does not grow with n: -n/2 log(2 pi s^2) - [sum_i (x_i - xbar)^2 + n (xbar - z)^2] / (2 s^2).
        """
        n, xbar, ss = self._data(x)
        z = torch.as_tensor(z, dtype=torch.float64)
        s2 = self.noise_scale**2
        return -0.5 * n * torch.log(2 * math.pi * s2) - (ss + n * (xbar - z).pow(2)) / (2 * s2)

    def log_joint(self, x, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(x | z) + log p(z) for z of any shape (...), returning shape (...)."""
        z = torch.as_tensor(z, dtype=torch.float64)
        return self.log_likelihood(x, z) + self.prior.log_prob(z)

    def expected_log_likelihood(self, x, q: Normal) -> torch.Tensor:
        """E_q[log p(x | z)] = sum_i [-1/2 log 2 pi s^2 - ((x_i - m)^2 + v) / (2 s^2)].

        Through the sufficient statistics: sum_i (x_i - m)^2 = sum_i (x_i - xbar)^2 + n (xbar - m)^2.
        """
        n, xbar, ss = self._data(x)
        m, v = q.loc, q.scale.pow(2)
        s2 = self.noise_scale**2
        return -0.5 * n * torch.log(2 * math.pi * s2) - (ss + n * ((xbar - m) ** 2 + v)) / (2 * s2)

    def elbo(self, x, q: Normal) -> torch.Tensor:
        """Closed-form ELBO(q) = E_q[log p(x | z)] - KL(q || p(z)) for Gaussian ``q``.

        ``q`` may be batched (a grid of variational parameters); returns q's batch shape.
        """
        if not isinstance(q, Normal):
            raise TypeError(f"q must be a torch.distributions.Normal, got {type(q).__name__}")
        st = self._data(x)
        return self._finite(self._elbo(st, q), "the ELBO", st, {"q.loc": q.loc, "q.scale": q.scale})

    def _elbo(self, st: NormalStatistics, q: Normal) -> torch.Tensor:
        return self.expected_log_likelihood(st, q) - kl_divergence(q, self.prior)

    def elbo_monte_carlo(self, x, q, num_samples: int, *,
                         generator: torch.Generator | None = None) -> Estimate:
        """Monte Carlo ELBO E_q[log p(x, z) - log q(z)] from ``num_samples`` draws of q."""
        if not isinstance(q, Distribution):
            raise TypeError(f"q must be a torch.distributions.Distribution, got {type(q).__name__}")
        if q.event_shape != ():
            raise ValueError(f"q must be a distribution over the scalar z (event shape ()), got "
                             f"{type(q).__name__} with event shape {tuple(q.event_shape)}")
        st = self._data(x)
        num_samples = check_num_samples(num_samples, minimum=2, values_per_sample=q.batch_shape.numel(),
                                        copies=4)
        z = sample(q, (num_samples,), generator=generator)
        terms = self.log_joint(st, z) - q.log_prob(z)
        self._finite(terms, "log p(x, z) - log q(z)", st, {"z drawn from q": z})
        return mean_and_stderr(terms)

    # -- the ELBO over many q's, and by the Jensen route --------------------------------
    def elbo_surface(self, x, means, log_scales) -> ElboSurface:
        """ELBO and KL(q || p(z | x)) for every q = N(m, exp(l)^2) on the grid ``means`` x ``log_scales``.

        The data of an ELBO landscape: both terms in closed form, shape (len(log_scales),
        len(means)); their sum is log p(x) at every grid point (Blei et al. 2017, eq. 13).
        """
        means = as_float_tensor(means, "means", dtype=torch.float64, ndim=1)
        log_scales = as_float_tensor(log_scales, "log_scales", dtype=torch.float64, ndim=1)
        if log_scales.numel() and bool((log_scales.abs() > _MAX_ABS_LOG_SCALE).any()):
            raise ValueError(
                f"log_scales must lie in [-{_MAX_ABS_LOG_SCALE:g}, {_MAX_ABS_LOG_SCALE:g}] so that "
                f"exp(log_scales) is a positive finite scale, got values in "
                f"[{log_scales.min().item():.4g}, {log_scales.max().item():.4g}]")
        st = self._data(x)
        size = means.shape[0] * log_scales.shape[0]
        check_memory(8 * 8 * size, "len(means) x len(log_scales)",
                     f"{means.shape[0]} x {log_scales.shape[0]}", "the grid of q's")
        m, ls = torch.meshgrid(means, log_scales, indexing="xy")
        q = Normal(m, ls.exp())
        elbo, kl = self._elbo(st, q), kl_divergence(q, self.posterior(st))
        self._finite((elbo, kl), "the ELBO and KL over the grid", st,
                     {"means": means, "log_scales": log_scales, "exp(log_scales)": ls.exp()})
        return ElboSurface(means, log_scales, elbo, kl, self.log_evidence(st))

    def elbo_quadrature(self, x, q: Normal, *, num_points: int = 4001, width: float = 12.0) -> torch.Tensor:
        """E_q[log p(x, z) - log q(z)] by trapezoidal quadrature on z = loc + scale * u, ``|u| <= width``.

        The Jensen route to the bound: log p(x) = log E_q[w] >= E_q[log w], w = p(x, z) / q(z),
        computed from its definition without the closed forms that :meth:`elbo` uses.
        ``q`` may be batched; returns its batch shape.
        """
        if not isinstance(q, Normal):
            raise TypeError(f"q must be a torch.distributions.Normal, got {type(q).__name__}")
        num_points = check_int(num_points, "num_points", minimum=2)
        width = check_real(width, "width", minimum=0.0, strict_minimum=True,
                           maximum=MAX_QUADRATURE_WIDTH)
        st = self._data(x)
        check_memory(8 * 8 * num_points * max(1, q.batch_shape.numel()), "num_points", num_points,
                     f"{num_points} nodes for each of {q.batch_shape.numel()} q's")
        u = torch.linspace(-width, width, num_points, dtype=torch.float64)
        z = q.loc.unsqueeze(-1) + q.scale.unsqueeze(-1) * u  # (..., num_points)
        log_w = self.log_joint(st, z) - q.log_prob(z.movedim(-1, 0)).movedim(0, -1)
        density = torch.exp(-0.5 * u**2) / math.sqrt(2 * math.pi)  # q's density in u
        out = torch.trapezoid(density * log_w, u, dim=-1)
        return self._finite(out, "the ELBO by quadrature", st,
                            {"q.loc": q.loc, "q.scale": q.scale, "width": torch.tensor(width)})

    # -- learning the prior mean theta ----------------------------------------------------
    def em_prior_loc(self, x, init: float, num_steps: int) -> torch.Tensor:
        """Variational EM for theta = m0 with the exact posterior as q: theta iterates (num_steps + 1,).

        E-step: q = p(z | x; theta_t) (the bound touches log p(x; theta_t)); M-step:
        theta_{t+1} = argmax_theta ELBO(q; theta) = E_q[z]. Each step cannot lower
        log p(x; theta) (Neal & Hinton 1998); the fixed point is the marginal maximum
        likelihood theta* = mean(x).
        """
        num_steps = check_int(num_steps, "num_steps", minimum=0)
        thetas = [torch.tensor(check_real(init, "init"), dtype=torch.float64)]
        for _ in range(num_steps):
            thetas.append(self.with_prior_loc(thetas[-1]).posterior(x).loc)
        return torch.stack(thetas)

    def gradient_fit(self, x, *, init=(0.0, 0.0, 0.0), num_steps: int = 200, lr: float = 0.02,
                     objective: str = "maximize_elbo") -> GradientFitPath:
        """Train q = N(loc, exp(log_scale)^2) and theta = m0 jointly by plain gradient steps.

        ``objective="maximize_elbo"`` ascends ELBO(q; theta): params += lr * grad(ELBO);
        ``"minimize_negative_elbo"`` descends the loss -ELBO(q; theta), an upper bound on
        -log p(x; theta): params -= lr * grad(-ELBO). The two are the same optimisation:
        grad(-L) = -grad(L) and lr * (-g) = -(lr * g) exactly in floating point, so the
        iterates coincide bit for bit.

        Parameters
        ----------
        x : array-like of shape (n,)
        init : (loc, log_scale, prior_loc)
        num_steps : int >= 0
        lr : float > 0
        objective : {"maximize_elbo", "minimize_negative_elbo"}
        """
        objective = check_choice(objective, _OBJECTIVES, "objective")
        num_steps = check_int(num_steps, "num_steps", minimum=0)
        lr = check_positive(lr, "lr")
        if isinstance(init, (str, bytes)) or not hasattr(init, "__len__") or len(init) != 3:
            raise ValueError(f"init must be a sequence (loc, log_scale, prior_loc) of three numbers, "
                             f"got {init!r}")
        params = [torch.tensor(check_real(v, f"init[{i}]"), dtype=torch.float64)
                  for i, v in enumerate(init)]
        x = self._data(x)
        maximize = objective == "maximize_elbo"
        rows = []

        def elbo_of(loc, log_scale, prior_loc):
            q = Normal(loc, log_scale.exp())
            return self.expected_log_likelihood(x, q) - kl_divergence(q, Normal(prior_loc, self.prior_std))

        def check_iterate(step, values, what):
            if all(bool(torch.isfinite(v).all()) for v in values):
                return
            shown = tuple(float(p.detach()) for p in params)
            if step > 0:
                raise ValueError(
                    f"gradient_fit diverged at step {step}: {what} left float64's range at "
                    f"(loc, log_scale, prior_loc) = {shown}; lr={lr!r} is too large for this "
                    "problem (or the data too large); use a smaller lr")
            extra = {f"init[{i}]": p.detach() for i, p in enumerate(params)}
            extra["exp(init[1])"] = params[1].detach().exp()
            raise ValueError(overflow_message(f"{what} at init", values, self._inputs(x, extra)))

        for step in range(num_steps + 1):
            # exp(log_scale) must be a positive finite scale before q is built from it.
            scale = params[1].detach().exp()
            check_iterate(step, [p.detach() for p in params] + [scale.log(), 1 / scale], "the iterate")
            leaves = [p.requires_grad_(True) for p in params]
            elbo = elbo_of(*leaves)
            log_evidence = self._log_evidence(x, params[2].detach())
            check_iterate(step, (elbo.detach(), log_evidence), "the ELBO")
            rows.append([p.detach() for p in params] + [elbo.detach(), log_evidence])
            if step == num_steps:
                break
            if maximize:
                grads = torch.autograd.grad(elbo, leaves)
                params = [p.detach() + lr * g for p, g in zip(params, grads, strict=True)]
            else:
                grads = torch.autograd.grad(-elbo, leaves)
                params = [p.detach() - lr * g for p, g in zip(params, grads, strict=True)]
        cols = [torch.stack(c) for c in zip(*rows, strict=True)]
        return GradientFitPath(*cols)

    # -- the evidence by importance sampling ----------------------------------------------
    def _proposal(self, proposal) -> Normal:
        if not isinstance(proposal, Normal):
            raise TypeError(f"proposal must be a torch.distributions.Normal, got {type(proposal).__name__}")
        return proposal

    def importance_log_weights(self, x, proposal: Normal, num_samples: int, *,
                               generator: torch.Generator | None = None) -> torch.Tensor:
        """log w_s = log p(x, z_s) - log proposal(z_s), z_s ~ proposal: shape ``(num_samples, *batch)``.

        With ``proposal = self.prior`` the weights are the likelihoods p(x | z_s): the naive
        estimator p(x) ~ mean_s p(x | z_s).
        """
        proposal = self._proposal(proposal)
        num_samples = check_num_samples(num_samples, minimum=2,
                                        values_per_sample=proposal.batch_shape.numel(), copies=4)
        z = sample(proposal, (num_samples,), generator=generator)
        return self.log_joint(x, z) - proposal.log_prob(z)

    def importance_evidence(self, x, proposal: Normal, num_samples: int, *,
                            generator: torch.Generator | None = None) -> EvidenceEstimate:
        """Importance-sampling estimate of p(x) from a Gaussian proposal, in log space.

        p_hat(x) = (1/S) sum_s w_s is unbiased for every proposal with full support
        (Kingma & Welling 2013, Appendix D, with the prior as the simplest proposal).
        Returns :class:`EvidenceEstimate` (log estimate, relative standard error, Kish ESS,
        Pareto k-hat of the weights).
        """
        proposal = self._proposal(proposal)
        st = self._data(x)
        log_w = self.importance_log_weights(st, proposal, num_samples, generator=generator)
        extra = {"proposal.loc": proposal.loc, "proposal.scale": proposal.scale}
        self._finite(log_w, "the log importance weights", st, extra)
        # The delta-method standard error of log p_hat is the relative standard error of p_hat.
        est = importance_estimate(log_w, warn=False)
        log_est, rel_stderr, khat = est.value, est.stderr, est.khat
        ess = effective_sample_size(log_w)
        self._finite((log_est, rel_stderr, ess), "the evidence estimate", st, extra)
        return EvidenceEstimate(log_est, rel_stderr, ess, khat)

    def weight_relative_variance(self, x, proposal: Normal) -> torch.Tensor:
        r"""Exact Var_proposal[w] / p(x)^2 = integral p(z | x)^2 / proposal(z) dz - 1 (closed form).

        The relative variance of one importance weight: the estimator from S draws has
        relative standard error sqrt(this / S), and S / (1 + this) is the large-S limit of
        Kish's ESS. Infinite when the proposal is too narrow (sigma_prop^2 <= sigma_post^2 / 2).
        For the prior as proposal it grows like s0 / (sqrt(2) s_n), i.e. like sqrt(n).
        """
        proposal = self._proposal(proposal)
        post = self.posterior(x)
        a, var_a = post.loc, post.scale**2
        b, var_b = proposal.loc, proposal.scale**2
        var_c = var_a / 2  # N(z; a, A)^2 = N(z; a, A/2) / (2 sqrt(pi A))
        prec = 1 / var_c - 1 / var_b
        safe = prec > 0
        prec_s = torch.where(safe, prec, torch.ones_like(prec))
        h = a / var_c - b / var_b
        c = a**2 / var_c - b**2 / var_b
        log_integral = (-math.log(2) - 0.5 * torch.log(math.pi * var_a)
                        + 0.5 * torch.log(var_b / var_c) + 0.5 * torch.log(2 * math.pi / prec_s)
                        + 0.5 * (h**2 / prec_s - c))
        out = torch.expm1(log_integral)
        return torch.where(safe, out, torch.full_like(out, math.inf))
