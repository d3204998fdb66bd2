r"""The objectives a Gaussian q is fitted with: reverse KL, forward KL and Minka's alpha.

Each objective is a scalar function of the trainable :class:`GaussianParams`,
built once (grid, base noise or target draws fixed) so that it is a smooth
deterministic function L-BFGS can minimise; ``resample`` draws fresh noise for
plain stochastic-gradient runs. Below :math:`q = \mathcal N(m, L L^\top)`.

**Reverse KL** (the VI objective),
:math:`\mathrm{KL}(q \,\|\, p) = E_q[\log q - \log p]`:

- ``ReverseKLReparam``:
  :math:`-H[q] - \sum_n w_n \log p(m + L \varepsilon_n)`, with :math:`\varepsilon_n`
  either fixed Monte Carlo base noise (:math:`w_n = 1/N`; reparameterisation, Kingma &
  Welling 2013, section 2.4; the entropy in closed form, in the spirit of their
  second estimator, eq. 7, which takes the KL term in closed form)
  or the nodes of a grid in q's whitened coordinates (the deterministic
  quadrature route, :func:`whitened_grid`). The nodes move with q, which a
  fixed grid cannot do: on a fixed grid a q that grows past the grid loses its
  cost and the grid objective has a spurious minimum.
- ``ReverseKLQuadrature``: trapezoidal rule on a fixed grid (kept for
  comparison; see the caveat above).

**Forward KL** (maximum likelihood),
:math:`\mathrm{KL}(p \,\|\, q) = E_p[\log p - \log q]`:

- ``ForwardKLQuadrature``: trapezoidal rule.
- ``ForwardKLWeighted``: :math:`\sum_n w_n [\log p(x_n) - \log q(x_n)]` over exact
  draws :math:`x_n \sim p` (:math:`w_n = 1/N`) or over proposal draws
  :math:`x_n \sim r` with self-normalised importance weights
  :math:`w_n \propto p(x_n) / r(x_n)` (Owen 2013, ch. 9).
- moment matching needs no objective (see :mod:`vitoolkit.fitting.moments`).

:math:`\log q` is quadratic in x, so both weighted sums are taken exactly over the 2D
:func:`sigma_points` with the same total weight, mean and covariance as the
grid or the draws: each evaluation costs :math:`O(D^2)`, not :math:`O(N D)`.

The Gaussian log-density and entropy of q come from ``torch.distributions``
(:class:`GaussianParams`: torch's standard normal density after the change of
variables :math:`x = m + L \varepsilon`, and the entropy of its torch distribution), the
quadrature weights from the core's :meth:`vitoolkit.divergences.Grid.log_weights`;
nothing Gaussian is written here.

**Minka's alpha** (Minka 2005, MSR-TR-2005-173, eq. 2), with
:math:`A = \int p^\alpha q^{1-\alpha} \, dx`:
:math:`D_\alpha(p \,\|\, q) = (1 - A) / (\alpha (1 - \alpha))` is minimised through the
monotone transform

.. math::

    J_\alpha = -\frac{\log A}{\alpha (1 - \alpha)} = \frac{D^R_\alpha(p \,\|\, q)}{\alpha}

(Renyi's divergence scaled), which has the same minimiser, is better scaled for
:math:`\alpha` outside (0, 1), and tends to :math:`\mathrm{KL}(q \,\|\, p)` as
:math:`\alpha \to 0` and to :math:`\mathrm{KL}(p \,\|\, q)` as :math:`\alpha \to 1`, so
a sweep is continuous in :math:`\alpha`.

- ``AlphaQuadrature``: :math:`\log A` by a log-sum-exp over a fixed grid
  (:math:`0 < \alpha`, where leaving the grid is never favoured).
- ``AlphaReparam``:
  :math:`\log A = \log \sum_n w_n (p(z_n) / q(z_n))^\alpha`,
  :math:`z_n = m + L \varepsilon_n` (Monte Carlo: the estimator of Li & Turner 2016's
  variational Renyi bound; or the whitened grid, used for :math:`\alpha < 0`, where a
  fixed grid has the same spurious minimum as reverse KL).
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution

from ..distributions import sample
from ..divergences import Grid, effective_sample_size, make_grid, pareto_khat
from ..exceptions import NonFiniteError
from ._checks import check_target
from .family import STANDARD_NORMAL, GaussianParams, base_noise
from .moments import target_moments

__all__ = [
    "Target",
    "NonFiniteTargetError",
    "Objective",
    "ReverseKLQuadrature",
    "ReverseKLReparam",
    "ForwardKLQuadrature",
    "ForwardKLWeighted",
    "AlphaQuadrature",
    "AlphaReparam",
    "whitened_grid",
    "snis_weights",
]


class NonFiniteTargetError(NonFiniteError):
    """The target's ``log_prob`` returned NaN or +inf (or -inf where q has mass).

    A :class:`vitoolkit.exceptions.NonFiniteError` (so a ``ValueError``).
    """


class Target:
    """A validated target: its dimension, and ``log_prob``/``sample`` on (..., D) points.

    Parameters
    ----------
    target : torch.distributions.Distribution
        Unbatched, event shape () (D = 1) or (D,).
    """

    def __init__(self, target, name: str = "target"):
        self.dim = check_target(target, name)
        self.dist = target
        self.name = name
        self.kind = type(target).__name__
        self.scalar_event = tuple(target.event_shape) == ()
        self.dtype = _dtype_of(target)
        self._can_sample = None
        self._moments = ()
        #: a rough (mean, variance) for default grids and starts, set on first need
        self.reference = None

    def _overflowed(self, during: str) -> FloatingPointError:
        return FloatingPointError(
            f"the points where {self.name}.log_prob is evaluated became non-finite during "
            f"{during}: q's parameters overflowed (the optimiser diverged). Try a smaller "
            "lr, optimizer='lbfgs', or a start nearer the target (init=...)")

    def log_prob(self, x: torch.Tensor, *, during: str, allow_neg_inf: bool) -> torch.Tensor:
        """log p at points x of shape (..., D), as float64 (...); non-finite values raise."""
        arg = x[..., 0] if self.scalar_event else x
        try:
            lp = self.dist.log_prob(arg.to(self.dtype))
        except ValueError:
            if bool(torch.isfinite(x).all()):
                raise
            # a validating target (validate_args) refuses the overflowed points with its own
            # support error, which names no argument of the fit
            raise self._overflowed(during) from None
        if not isinstance(lp, torch.Tensor) or lp.shape != x.shape[:-1]:
            shape = tuple(lp.shape) if isinstance(lp, torch.Tensor) else type(lp).__name__
            raise ValueError(f"{self.name} ({self.kind}).log_prob must return one value per point,"
                             f" shape {tuple(x.shape[:-1])}, got {shape} during {during}")
        lp = lp.to(torch.float64)
        bad = torch.isnan(lp) | (lp == math.inf)
        if not allow_neg_inf:
            bad = bad | (lp == -math.inf)
        if bool(bad.any()):
            if not bool(torch.isfinite(x).all()):
                raise self._overflowed(during)
            where = x.detach().reshape(-1, self.dim)[bad.reshape(-1)][0].tolist()
            value = lp.detach().reshape(-1)[bad.reshape(-1)][0].item()
            hint = ("reverse KL and alpha <= 0 need log p finite wherever q has mass"
                    if value == -math.inf else "check the target's parameters")
            raise NonFiniteTargetError(
                f"{self.name} ({self.kind}).log_prob returned {value} at {int(bad.sum())} of "
                f"{bad.numel()} points during {during} (first at x={where}); {hint}"
            )
        return lp

    @property
    def can_sample(self) -> bool:
        if self._can_sample is None:
            try:
                with torch.no_grad(), torch.random.fork_rng(devices=[]):
                    self.dist.sample((1,))
                self._can_sample = True
            except NotImplementedError:
                self._can_sample = False
        return self._can_sample

    def sample(self, n: int, generator) -> torch.Tensor:
        """n exact draws, shape (n, D), float64."""
        with torch.no_grad():
            x = sample(self.dist, (n,), generator=generator).to(torch.float64)
        return x.reshape(n, self.dim)

    def moments(self):
        """``(mean (D,), covariance (D, D))`` if known exactly, else None (computed once)."""
        if self._moments == ():
            self._moments = target_moments(self.dist)
        return self._moments


def _dtype_of(dist) -> torch.dtype:
    for value in vars(dist).values():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.dtype
        if isinstance(value, Distribution):
            return _dtype_of(value)
    return torch.float64


def snis_weights(log_p: torch.Tensor, log_r: torch.Tensor):
    r"""Self-normalised importance weights of draws from r, and their effective sample size.

    .. math::

        w_n = \frac{p(x_n) / r(x_n)}{\sum_m p(x_m) / r(x_m)}, \qquad
        \mathrm{ESS} = \frac{1}{\sum_n w_n^2}

    (Kong 1992), between 1 and N: Kish's effective sample size, from
    the core (:func:`vitoolkit.divergences.effective_sample_size`).
    """
    logw = log_p - log_r
    return torch.softmax(logw, 0), float(effective_sample_size(logw.detach()))


class Objective:
    """A scalar objective of the Gaussian parameters (see the module docstring)."""

    #: whether the objective depends on random draws (``resample`` changes it)
    stochastic = False
    #: whether the minimiser is known in closed form (``solution``): no optimiser runs
    closed_form = False

    def loss(self, q: GaussianParams) -> torch.Tensor:
        raise NotImplementedError

    def resample(self, generator) -> None:
        """Draw fresh noise (plain stochastic gradients); a no-op for quadrature."""


class _GridObjective(Objective):
    def __init__(self, target: Target, grid: Grid, during: str, allow_neg_inf: bool):
        self.points = grid.points.reshape(-1, target.dim).to(torch.float64)
        self.log_w = grid.log_weights()
        with torch.no_grad():
            self.log_p = target.log_prob(self.points, during=during, allow_neg_inf=allow_neg_inf)


class ReverseKLQuadrature(_GridObjective):
    r"""Reverse KL by the trapezoidal rule on ``grid``.

    :math:`\mathrm{KL}(q \,\|\, p) = \int q (\log q - \log p) \, dx`.
    """

    def __init__(self, target: Target, grid: Grid):
        super().__init__(target, grid, "the reverse-KL fit (quadrature)", allow_neg_inf=False)

    def loss(self, q):
        log_q = q.log_prob(self.points)
        return (torch.exp(log_q + self.log_w) * (log_q - self.log_p)).sum()


def sigma_points(points: torch.Tensor, weights: torch.Tensor):
    r"""2D equally weighted points with the same total weight, mean and covariance.

    For weights :math:`w_n \ge 0` with total Z, weighted mean m and covariance
    :math:`S = C C^\top` (Cholesky), the points :math:`m \pm \sqrt D c_i` (:math:`c_i` the
    columns of C), each of weight :math:`Z / (2D)`, have the same Z, m and S. A weighted
    sum of a quadratic function depends on the points only through Z, m and S, and
    :math:`\log q` is quadratic for a Gaussian q, so, exactly,

    .. math::

        \sum_n w_n \log q(x_n) = \sum_{i=1}^D \frac{Z}{2D}
            \big[\log q(m + \sqrt D c_i) + \log q(m - \sqrt D c_i)\big]

    (the symmetric sigma points of the unscented transform, Julier & Uhlmann 2004,
    exact for polynomials of degree <= 2). A forward-KL evaluation then costs
    :math:`O(D^2)` instead of :math:`O(N D)`. Returns ``(points, weights)`` unchanged when S is singular.
    """
    total = weights.sum()
    w = weights / total
    mean = w @ points
    centred = points - mean
    cov = (centred.mT * w) @ centred
    tril, info = torch.linalg.cholesky_ex(0.5 * (cov + cov.mT))
    if int(info) != 0 or not bool(torch.isfinite(tril).all()):
        return points, weights
    d = points.shape[-1]
    spread = math.sqrt(d) * tril.mT  # rows: sqrt(D) c_i
    nodes = torch.cat([mean + spread, mean - spread])
    return nodes, torch.full((2 * d,), 1.0 / (2 * d), dtype=weights.dtype) * total


class ForwardKLQuadrature(_GridObjective):
    r"""Forward KL by the trapezoidal rule on ``grid``.

    :math:`\mathrm{KL}(p \,\|\, q) = \int p (\log p - \log q) \, dx`.
    """

    def __init__(self, target: Target, grid: Grid):
        super().__init__(target, grid, "the forward-KL fit (quadrature)", allow_neg_inf=True)
        mass = torch.exp(self.log_p + self.log_w)
        self.mass = mass
        self.const = torch.where(mass > 0, mass * self.log_p, torch.zeros_like(mass)).sum()
        self.nodes, self.node_weights = sigma_points(self.points, mass)

    def loss(self, q):
        return self.const - (self.node_weights * q.log_prob(self.nodes)).sum()


class AlphaQuadrature(_GridObjective):
    r"""Minka's alpha objective by a log-sum-exp over ``grid``.

    :math:`J_\alpha = -\log \int p^\alpha q^{1-\alpha} \, dx \, / \, (\alpha (1 - \alpha))`
    (module docstring).
    """

    def __init__(self, target: Target, grid: Grid, alpha: float):
        super().__init__(target, grid, f"the alpha={alpha} fit (quadrature)",
                         allow_neg_inf=alpha > 0)
        self.alpha = alpha

    def loss(self, q):
        a = self.alpha
        log_q = q.log_prob(self.points)
        log_a = torch.logsumexp(a * self.log_p + (1 - a) * log_q + self.log_w, 0)
        return -log_a / (a * (1 - a))


def whitened_grid(num_points: int, dim: int, width: float = 10.0):
    r"""A quadrature rule for standard-normal expectations: nodes (M, D) and log weights (M,).

    It approximates :math:`E_{\mathcal N(0, I_D)}[f(\varepsilon)]` by the trapezoidal
    rule on the regular grid :math:`[-\text{width}, \text{width}]^D`, each weight times
    the :math:`\mathcal N(0, I)` density, normalised to sum to 1. Under
    :math:`z = m + L \varepsilon` it integrates
    against q on a grid that moves and stretches with q, so q can neither leave it
    nor fall between its points. For integrands analytic in a strip of half-width
    a (in units of q's std) the error decays like :math:`e^{-2\pi a / h}`, h the spacing
    (Trefethen & Weideman 2014, "The exponentially convergent trapezoidal rule",
    SIAM Review 56(3)), which copes with the
    sharp-but-smooth valleys of log p between separated modes, where Gauss-Hermite
    rules converge slowly.
    """
    mesh = make_grid([(-width, width)] * dim, num_points).points.reshape(-1, dim)
    # the N(0, I) kernel exp(-|eps|^2 / 2); its normaliser cancels in the normalisation (and
    # leaving it out keeps the weights bit-identical to the rule's history: on targets with a
    # flat valley of optima, like Ring, the optimiser's path is sensitive to the last bit)
    log_w = -0.5 * mesh.pow(2).sum(-1)
    log_w = log_w - torch.logsumexp(log_w, 0)  # trapezoid end weights are e^-50: negligible
    return mesh, log_w


class _ReparamObjective(Objective):
    """Expectations under q as weighted sums over z = m + L eps.

    Monte Carlo: fixed base noise with equal weights (``num_samples``), or a
    deterministic rule (``nodes=(eps, log_w)``, see :func:`whitened_grid`).
    """

    stochastic = True

    def __init__(self, target: Target, num_samples: int, generator, nodes=None):
        self.target = target
        self.num_samples = num_samples
        if nodes is not None:
            self.stochastic = False
            self.eps, self.log_w = nodes
            self.log_base = STANDARD_NORMAL.log_prob(self.eps).sum(-1)
        else:
            self.resample(generator)

    def resample(self, generator):
        if not self.stochastic:
            return
        self.eps = base_noise(self.num_samples, self.target.dim, generator)
        self.log_w = torch.full((self.eps.shape[0],), -math.log(self.eps.shape[0]),
                                dtype=torch.float64)
        self.log_base = STANDARD_NORMAL.log_prob(self.eps).sum(-1)

    def _log_q_at_samples(self, q):
        # change of variables z = m + L eps: log q(z) = log N(eps; 0, I) - log|det L|, with
        # log N(eps; 0, I) fixed with the noise (exact, and no solve against every point)
        return self.log_base - q.log_diag.sum()


class ReverseKLReparam(_ReparamObjective):
    r"""Reverse KL by reparameterisation with fixed base noise (or whitened grid nodes).

    .. math::

        \mathrm{KL}(q \,\|\, p) \approx -H[q] - \frac1N \sum_n \log p(m + L \varepsilon_n)

    For a flow family (:math:`z = m + L T(\varepsilon)`) :math:`E_q[\log q] = -H[q]` is
    the base-noise average of
    :math:`\log \mathcal N(\varepsilon) - \log \lvert \det \partial z / \partial \varepsilon \rvert`
    instead (``q.expected_log_q``).
    """

    def loss(self, q):
        z = q.transform(self.eps)
        log_p = self.target.log_prob(z, during="the reverse-KL fit (under q)",
                                     allow_neg_inf=False)
        # E_q[log q]: -H[q] in closed form for a Gaussian, the base-noise average for a flow
        return q.expected_log_q(self.eps, self.log_base, self.log_w) - (self.log_w.exp() * log_p).sum()


class AlphaReparam(_ReparamObjective):
    r"""Minka's alpha objective by reparameterisation (Li & Turner 2016's estimator of log A).

    :math:`J_\alpha` with
    :math:`\log A \approx \log \frac1N \sum_n (p(z_n) / q(z_n))^\alpha`,
    :math:`z_n = m + L \varepsilon_n`.
    """

    def __init__(self, target: Target, num_samples: int, generator, alpha: float, nodes=None):
        super().__init__(target, num_samples, generator, nodes)
        self.alpha = alpha

    def loss(self, q):
        a = self.alpha
        z = q.transform(self.eps)
        log_p = self.target.log_prob(z, during=f"the alpha={a} fit (under q)",
                                     allow_neg_inf=a > 0)
        log_ratio = log_p - self._log_q_at_samples(q)
        log_a = torch.logsumexp(a * log_ratio + self.log_w, 0)
        return -log_a / (a * (1 - a))


class ForwardKLWeighted(Objective):
    r"""Forward KL over fixed weighted points (exact draws of p, or self-normalised ones).

    .. math::

        \mathrm{KL}(p \,\|\, q) \approx \sum_n w_n \big[\log p(x_n) - \log q(x_n)\big]

    ``draw(generator)`` returns ``(x (N, D), w (N,), log_p (N,), ess, khat)``: exact
    target draws with w = 1/N (ESS = N, ``khat`` None), or proposal draws with
    self-normalised weights, their ESS and the Pareto k-hat of the ratios p/r
    (a 4-tuple without ``khat`` is accepted too, and leaves ``khat`` None).
    """

    stochastic = True

    def __init__(self, draw, generator):
        self.draw = draw
        self.resample(generator)

    def resample(self, generator):
        drawn = self.draw(generator)
        self.points, self.weights, self.log_p, self.ess = drawn[:4]
        self.khat = drawn[4] if len(drawn) > 4 else None
        finite = self.weights > 0
        self.const = (self.weights[finite] * self.log_p[finite]).sum()
        self.nodes, self.node_weights = sigma_points(self.points, self.weights)

    def loss(self, q):
        return self.const - (self.node_weights * q.log_prob(self.nodes)).sum()


def exact_draws(target: Target, num_samples: int):
    """A ``draw`` for :class:`ForwardKLWeighted` from exact target samples."""
    def draw(generator):
        x = target.sample(num_samples, generator)
        log_p = target.log_prob(x, during="the forward-KL fit (exact samples)",
                                allow_neg_inf=False)
        w = torch.full((num_samples,), 1.0 / num_samples, dtype=torch.float64)
        return x, w, log_p, float(num_samples), None
    return draw


def snis_draws(target: Target, proposal: Target, num_samples: int):
    """A ``draw`` for :class:`ForwardKLWeighted` by SNIS from ``proposal``.

    Besides the weights and their ESS it returns the Pareto k-hat of the importance
    ratios p(x_n) / r(x_n) (Vehtari, Simpson, Gelman, Yao & Gabry, JMLR 2024;
    :func:`vitoolkit.divergences.pareto_khat`): above 0.7 the self-normalised
    averages, and so the fit, are unreliable.
    """
    def draw(generator):
        x = proposal.sample(num_samples, generator)
        log_r = proposal.log_prob(x, during="SNIS (proposal density)", allow_neg_inf=False)
        log_p = target.log_prob(x, during="the forward-KL fit (SNIS)", allow_neg_inf=True)
        w, ess = snis_weights(log_p, log_r)
        if not bool(torch.isfinite(w).all()):
            raise NonFiniteTargetError(
                f"{target.name} ({target.kind}) has zero density at every proposal draw; "
                "choose a proposal that overlaps the target"
            )
        khat = float(pareto_khat(log_p - log_r))
        return x, w, log_p, ess, khat
    return draw
