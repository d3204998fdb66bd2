r"""A small library of target densities for fitting a Gaussian, each showing one lesson.

Every target is an unbatched ``torch.distributions`` object in float64 with a
normalised ``log_prob``; most also ``sample`` and expose their exact moments
(``mean``, ``variance`` and, for the 2-D ones, ``covariance_matrix`` where torch's
own type lacks it, see :func:`vitoolkit.fitting.target_moments`).

=============================  ========================================================
target                         what it demonstrates
=============================  ========================================================
:func:`bimodal_1d`             mode-seeking (reverse KL locks onto one component) vs
                               mode-covering (forward KL spans both); the separation
                               and weights are the dials
:func:`correlated_gaussian`    Bishop PRML 10.1.2: a mean-field q underestimates the
                               variance under KL(q||p) and matches the marginals under
                               KL(p||q), with closed forms for both
:func:`mixture_2d`             several isolated modes: reverse fits from different
                               initialisations land in different modes (local optima)
:class:`Banana`                curved (warped-Gaussian) mass: a Gaussian can only match
                               it on average; moments known in closed form
:class:`Ring`                  mass on a circle with a hole in the middle: the forward
                               fit is centred on the hole, where the target has almost
                               no mass; it has ``log_prob`` only (no sampler), so the
                               forward fit needs SNIS, quadrature or its moments
:class:`Funnel`                Neal's funnel: a scale that changes by orders of
                               magnitude along one coordinate; no Gaussian follows
                               the neck and the mouth at once
:class:`LogProbOnly`           hides the sampler and moments of any target, to show the
                               self-normalised importance sampling route on a target
                               whose exact answer is known
=============================  ========================================================
"""

from __future__ import annotations

import math

import torch
from torch.distributions import (
    Categorical,
    Distribution,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    constraints,
)

from ..validation import (
    as_float_tensor,
    check_bool,
    check_int,
    check_memory,
    check_positive,
    check_real,
    check_shape,
)
from ._checks import check_target

__all__ = ["bimodal_1d", "correlated_gaussian", "mixture_2d", "Banana", "Funnel", "Ring", "LogProbOnly"]

_F64 = torch.float64


def _positive_vector(value, name: str, k: int) -> torch.Tensor:
    """A float64 vector of shape (k,) with finite positive entries (never reshaped)."""
    t = as_float_tensor(value, name, dtype=_F64)
    check_shape(t.shape, (k,), name)
    if not bool((t > 0).all()):
        raise ValueError(f"{name} must be positive, got {t.tolist()}")
    return t


def _validate_flag(validate_args):
    """torch's ``validate_args``: None (torch's default) or a bool."""
    return None if validate_args is None else check_bool(validate_args, "validate_args")


def _weights(weights, k: int) -> torch.Tensor:
    w = _positive_vector(weights, "weights", k)
    return w / w.sum()


def bimodal_1d(separation: float = 4.0, weights=(0.5, 0.5), scale: float = 1.0,
               loc: float = 0.0) -> MixtureSameFamily:
    r"""Two Gaussian components at ``loc -/+ separation / 2``, each of std ``scale``.

    p(x) = w_1 N(x; loc - s/2, scale^2) + w_2 N(x; loc + s/2, scale^2).
    Its variance is scale^2 + w_1 w_2 s^2, so the forward (moment-matching) fit
    widens with the separation while the reverse fit keeps std ~ ``scale`` once
    s is larger than about 2 * scale.

    Parameters
    ----------
    separation : float >= 0
    weights : two positive numbers (normalised here)
    scale : float > 0
    loc : float
    """
    separation = check_real(separation, "separation", minimum=0.0)
    scale = check_positive(scale, "scale")
    loc = check_real(loc, "loc")
    w = _weights(weights, 2)
    means = torch.tensor([loc - separation / 2, loc + separation / 2], dtype=_F64)
    return MixtureSameFamily(Categorical(probs=w), Normal(means, torch.full((2,), scale, dtype=_F64)))


def correlated_gaussian(rho: float = 0.9, scales=(1.0, 1.0), loc=(0.0, 0.0)) -> MultivariateNormal:
    r"""A correlated 2-D Gaussian: the target of Bishop's mean-field example (PRML 10.1.2).

    .. math::

        \mathcal N(\text{loc}, \Sigma), \qquad
        \Sigma = \begin{pmatrix} s_1^2 & \rho s_1 s_2 \\ \rho s_1 s_2 & s_2^2 \end{pmatrix}.

    The mean-field reverse fit has variances
    :math:`1 / \Lambda_{ii} = s_i^2 (1 - \rho^2)`, the forward fit the marginals
    :math:`s_i^2`, and both minima equal :math:`-\frac12 \log(1 - \rho^2)`.
    """
    rho = check_real(rho, "rho", minimum=-1.0, maximum=1.0, strict_minimum=True,
                     strict_maximum=True)
    s = _positive_vector(scales, "scales", 2)
    m = as_float_tensor(loc, "loc", dtype=_F64)
    check_shape(m.shape, (2,), "loc")
    cov = torch.stack([torch.stack([s[0] ** 2, rho * s[0] * s[1]]),
                       torch.stack([rho * s[0] * s[1], s[1] ** 2])])
    return MultivariateNormal(m, covariance_matrix=cov)


def mixture_2d(n_modes: int = 3, radius: float = 3.0, scale: float = 0.6, weights=None,
               locs=None) -> MixtureSameFamily:
    r"""A 2-D mixture of isotropic Gaussians N(m_k, scale^2 I).

    By default the ``n_modes`` centres m_k sit evenly on a circle of ``radius``
    (the first on the positive x-axis); pass ``locs`` of shape (K, 2) instead to
    place them yourself. ``weights`` default to equal.
    """
    scale = check_positive(scale, "scale")
    if scale > 1e150:  # scale**2 overflows float64
        raise ValueError(f"scale={scale!r} overflows float64 when squared (the variance)")
    if locs is None:
        n_modes = check_int(n_modes, "n_modes", minimum=1)
        check_memory(n_modes * 64, "n_modes", n_modes, "the components")
        radius = check_positive(radius, "radius")
        angle = 2 * math.pi * torch.arange(n_modes, dtype=_F64) / n_modes
        centres = radius * torch.stack([angle.cos(), angle.sin()], -1)
    else:
        centres = as_float_tensor(locs, "locs", dtype=_F64)
        check_shape(centres.shape, (None, 2), "locs")
        if centres.shape[0] < 1:
            raise ValueError("locs must hold at least one centre, got shape (0, 2)")
    k = centres.shape[0]
    w = _weights(torch.ones(k, dtype=_F64) if weights is None else weights, k)
    cov = torch.eye(2, dtype=_F64).expand(k, 2, 2) * scale**2
    return MixtureSameFamily(Categorical(probs=w), MultivariateNormal(centres, covariance_matrix=cov))


class Banana(Distribution):
    r"""A warped Gaussian, the banana: mass bent along a parabola.

    .. math::

        x_1 \sim \mathcal N(0, s_1^2), \qquad
        x_2 \mid x_1 \sim \mathcal N\big(b (x_1^2 - s_1^2), s_2^2\big).

    The mass bends along the parabola :math:`x_2 = b (x_1^2 - s_1^2)`. The exact moments
    are :math:`E[x] = 0` and :math:`\mathrm{Cov}[x] = \mathrm{diag}(s_1^2, 2 b^2 s_1^4 + s_2^2)`
    (:math:`x_1` and :math:`x_2` are uncorrelated although dependent, because
    :math:`E[x_1^3] = 0`), so the forward fit is known in closed form while the reverse
    fit sits in the bend.

    Parameters
    ----------
    curvature : float
        b; 0 gives an axis-aligned Gaussian.
    scales : (s1, s2), positive.
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, curvature: float = 0.5, scales=(1.5, 0.5), validate_args=None):
        self.curvature = check_real(curvature, "curvature")
        self.scales = _positive_vector(scales, "scales", 2)
        try:
            finite = bool(torch.isfinite(self.covariance_matrix).all())
        except OverflowError:  # curvature**2 of a Python float
            finite = False
        if not finite:
            raise ValueError(f"curvature={curvature!r} with scales={self.scales.tolist()} makes the "
                             "variance of x2 (2 b^2 s1^4 + s2^2) overflow float64")
        validate_args = _validate_flag(validate_args)
        super().__init__(torch.Size(), torch.Size((2,)), validate_args=validate_args)

    def _centre(self, x1):
        return self.curvature * (x1.pow(2) - self.scales[0] ** 2)

    def log_prob(self, value):
        value = torch.as_tensor(value, dtype=_F64)
        x1, x2 = value[..., 0], value[..., 1]
        s1, s2 = self.scales
        return (Normal(torch.zeros((), dtype=_F64), s1).log_prob(x1)
                + Normal(self._centre(x1), s2).log_prob(x2))

    def rsample(self, sample_shape=torch.Size()):
        eps = torch.randn(torch.Size(sample_shape) + (2,), dtype=_F64)
        x1 = self.scales[0] * eps[..., 0]
        x2 = self._centre(x1) + self.scales[1] * eps[..., 1]
        return torch.stack([x1, x2], -1)

    @property
    def quadrature_bounds(self):
        """A box holding all but ~1e-9 of the mass (abs(x1) <= 6 s1 and the bend it reaches).

        The mass trails far along the parabola, so mean +/- k sd boxes cut it off.
        """
        s1, s2 = (float(v) for v in self.scales)
        ends = sorted([-self.curvature * s1**2, self.curvature * 35 * s1**2])
        return [(-6 * s1, 6 * s1), (ends[0] - 7 * s2, ends[1] + 7 * s2)]

    @property
    def mean(self):
        return torch.zeros(2, dtype=_F64)

    @property
    def covariance_matrix(self):
        s1, s2 = self.scales
        return torch.diag(torch.stack([s1**2, 2 * self.curvature**2 * s1**4 + s2**2]))

    @property
    def variance(self):
        return torch.diagonal(self.covariance_matrix)


class Funnel(Distribution):
    r"""Neal's funnel: a scale that varies by orders of magnitude across the density.

    .. math::

        v \sim \mathcal N(0, s^2), \qquad x_i \mid v \sim \mathcal N(0, e^v), \quad
        i = 1, \dots, D - 1 \quad (D \ge 2).

    Neal (2003), "Slice sampling", Annals of Statistics 31(3), section 8 (there s = 3,
    D = 10). The scale of x changes by a factor :math:`e^{s}` per standard deviation of
    v: a narrow neck (:math:`v \ll 0`) and a wide mouth (:math:`v \gg 0`). Moments:
    :math:`E = 0`, :math:`\mathrm{Var}\, v = s^2`,
    :math:`\mathrm{Var}\, x_i = E[e^v] = e^{s^2/2}`, all uncorrelated.

    Parameters
    ----------
    dim : int >= 2, D (the first coordinate is v)
    scale : float > 0, s
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, dim: int = 2, scale: float = 3.0, validate_args=None):
        self.dim = check_int(dim, "dim", minimum=2, maximum=10_000)
        self.scale = check_positive(scale, "scale")
        if self.scale > 20:
            raise ValueError(f"scale={scale!r} makes Var x = exp(scale^2 / 2) overflow; use <= 20")
        validate_args = _validate_flag(validate_args)
        super().__init__(torch.Size(), torch.Size((self.dim,)), validate_args=validate_args)

    def log_prob(self, value):
        value = torch.as_tensor(value, dtype=_F64)
        v, x = value[..., 0], value[..., 1:]
        zero = torch.zeros((), dtype=_F64)
        return (Normal(zero, torch.tensor(self.scale, dtype=_F64)).log_prob(v)
                + Normal(zero, (v / 2).exp().unsqueeze(-1)).log_prob(x).sum(-1))

    def rsample(self, sample_shape=torch.Size()):
        eps = torch.randn(torch.Size(sample_shape) + (self.dim,), dtype=_F64)
        v = self.scale * eps[..., :1]
        return torch.cat([v, (v / 2).exp() * eps[..., 1:]], -1)

    @property
    def mean(self):
        return torch.zeros(self.dim, dtype=_F64)

    @property
    def variance(self):
        var = torch.full((self.dim,), math.exp(self.scale**2 / 2), dtype=_F64)
        var[0] = self.scale**2
        return var

    @property
    def covariance_matrix(self):
        return torch.diag(self.variance)


class Ring(Distribution):
    r"""Mass on a circle of radius r and width w in 2-D, a density with a hole in the middle.

    .. math::

        p(x) = \frac1Z \exp\Big(-\frac{(\lVert x \rVert - r)^2}{2 w^2}\Big), \qquad
        Z = 2\pi \int_0^\infty \rho \, e^{-(\rho - r)^2 / (2 w^2)} \, d\rho
          = 2\pi \big[w^2 e^{-r^2/(2w^2)} + r w \sqrt{2\pi} \, \Phi(r / w)\big].

    :math:`E[x] = 0` and :math:`\mathrm{Cov}[x] = \frac12 E[\lVert x \rVert^2] \, I`, with
    :math:`E[\lVert x \rVert^2]` from the same Gaussian
    integrals (moments of a truncated normal). There is no sampler, on purpose:
    it is the toolkit's "log density only" target.

    Parameters
    ----------
    radius : float > 0
    width : float > 0
    """

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self, radius: float = 2.5, width: float = 0.4, validate_args=None):
        self.radius = check_positive(radius, "radius")
        self.width = check_positive(width, "width")
        validate_args = _validate_flag(validate_args)
        r, w = self.radius, self.width
        if r > 1e100 or w > 1e100:
            raise ValueError(f"radius={radius!r} and width={width!r} must be at most 1e100 (the "
                             "moments take their cubes)")
        e = math.exp(-0.5 * (r / w) ** 2)
        i0 = w * math.sqrt(2 * math.pi) * 0.5 * math.erfc(-r / (w * math.sqrt(2)))
        # integrals of u^k exp(-u^2/(2 w^2)) over u > -r (u = rho - r)
        i1 = w**2 * e
        i2 = w**2 * i0 - w**2 * r * e
        i3 = w**2 * r**2 * e + 2 * w**4 * e
        radial = i1 + r * i0  # integral of rho exp(...)
        self._log_norm = math.log(2 * math.pi * radial)
        self._second_moment = (i3 + 3 * r * i2 + 3 * r**2 * i1 + r**3 * i0) / radial
        super().__init__(torch.Size(), torch.Size((2,)), validate_args=validate_args)

    def log_prob(self, value):
        value = torch.as_tensor(value, dtype=_F64)
        # sqrt(|x|^2 + tiny) keeps the gradient finite at the origin
        rho = (value.pow(2).sum(-1) + 1e-300).sqrt()
        return -0.5 * ((rho - self.radius) / self.width) ** 2 - self._log_norm

    @property
    def quadrature_bounds(self):
        """The box abs(x_i) <= r + 8 w, holding all but ~1e-15 of the mass."""
        edge = self.radius + 8 * self.width
        return [(-edge, edge), (-edge, edge)]

    def sample(self, sample_shape=torch.Size()):
        raise NotImplementedError(
            "Ring has no sampler on purpose (a log-density-only target): fit it with "
            "method='quadrature', 'moments', or 'snis' with a proposal"
        )

    @property
    def mean(self):
        return torch.zeros(2, dtype=_F64)

    @property
    def covariance_matrix(self):
        return torch.eye(2, dtype=_F64) * (self._second_moment / 2)

    @property
    def variance(self):
        return torch.diagonal(self.covariance_matrix)


class LogProbOnly(Distribution):
    """Wrap a target so only its ``log_prob`` is visible (no ``sample``, no moments).

    Used to show that self-normalised importance sampling recovers the forward
    fit that exact samples or the moments give for the wrapped target.
    """

    arg_constraints = {}

    def __init__(self, target: Distribution):
        check_target(target, "target")
        self.target = target
        super().__init__(target.batch_shape, target.event_shape, validate_args=False)

    @property
    def support(self):
        return self.target.support

    def log_prob(self, value):
        return self.target.log_prob(value)

    def sample(self, sample_shape=torch.Size()):
        raise NotImplementedError(
            f"LogProbOnly({type(self.target).__name__}) hides the sampler: use SNIS "
            "(proposal=...), quadrature in 1-D/2-D, or the unwrapped target"
        )

    def __repr__(self):
        return f"LogProbOnly({self.target!r})"
