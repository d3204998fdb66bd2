r"""Test costs that know their exact Gaussian expectations and gradients.

Each cost is separable, :math:`f(x) = \sum_d g(x_d)`, so ``cost(x)`` maps a tensor
(..., D) to (...). Under a factorised Gaussian
:math:`q = \prod_d \mathcal N(x_d \mid \mu_d, \sigma_d^2)` the expectation
:math:`E_q[f] = \sum_d E[g(x_d)]` and its gradients with respect to :math:`\mu_d` and
:math:`\sigma_d` are one-dimensional closed forms, which is what makes these
costs the reference setting of Mohamed, Rosca, Figurnov & Mnih (JMLR 2020,
section 3 and figures 2-3): :math:`(x - k)^2`, :math:`\exp(-k x^2)` and :math:`\cos(k x)`.

A cost also says whether it is differentiable (the pathwise estimator needs
f'), and, for the linear and quadratic costs, the closed-form variances of the
score-function and pathwise per-sample estimators (Mohamed, Rosca, Figurnov & Mnih 2020,
section 3, derived per coordinate for a diagonal Gaussian).

The parameter ``k`` may be a tensor: it broadcasts against ``x``, so one call
evaluates a whole sweep over k (give ``k`` shape (K, 1) and ``loc`` shape (K, 1)).
"""

from __future__ import annotations

import math

import torch

from ..validation import all_finite, as_float_tensor, check_choice, overflow_message

__all__ = [
    "Cost",
    "Linear",
    "Quadratic",
    "GaussianBump",
    "Cosine",
    "Step",
    "COSTS",
    "make_cost",
]

_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _as64(value, name: str) -> torch.Tensor:
    return as_float_tensor(value, name, dtype=torch.float64)


class Cost:
    r"""A separable cost with exact Gaussian expectations, :math:`f(x) = \sum_d g(x_d)`.

    Subclasses define :meth:`elementwise` (g), :meth:`expectation_1d`
    (:math:`E[g(x)]` for :math:`x \sim \mathcal N(\mu, \sigma^2)`) and :meth:`gradient_1d` (its derivatives
    in mu and sigma).

    Parameters
    ----------
    k : float or Tensor
        The cost's parameter; a tensor broadcasts against the inputs.

    Attributes
    ----------
    name : str
    differentiable : bool
        False when g is piecewise constant (its derivative is zero almost
        everywhere), so the pathwise estimator does not apply.
    """

    name = "cost"
    differentiable = True
    formula = "g(x)"

    def __init__(self, k=1.0):
        self.k = _as64(k, "k")
        if self.k.numel() == 0:
            raise ValueError(f"k must hold at least one value, got an empty tensor of shape "
                             f"{tuple(self.k.shape)}")

    def _check_input_shape(self, *shapes) -> None:
        """Refuse inputs (torch.Size shapes, or values) that ``k`` does not broadcast against.

        Called once torch has failed to broadcast (so that valid calls pay nothing), or
        before a computation that would not notice.
        """
        shapes = [tuple(v) if isinstance(v, torch.Size) else tuple(torch.as_tensor(v).shape)
                  for v in shapes]
        try:
            torch.broadcast_shapes(self.k.shape, *shapes)
        except RuntimeError:
            raise ValueError(
                f"k of shape {tuple(self.k.shape)} does not broadcast against inputs of shape "
                f"{' and '.join(map(str, shapes))}; for a sweep over k give it shape (K, 1) "
                "and loc shape (K, D)"
            ) from None

    def _checked(self, values, what: str, loc, scale):
        """``values`` if finite, else a ValueError naming k, loc or scale as the cause."""
        group = (values,) if isinstance(values, torch.Tensor) else tuple(values)
        if all_finite(group):
            return values
        inputs = {"k": self.k, "loc": torch.as_tensor(loc), "scale": torch.as_tensor(scale)}
        raise ValueError(overflow_message(f"{type(self).__name__}.{what}", group, inputs))

    def __repr__(self) -> str:
        k = self.k.item() if self.k.numel() == 1 else f"tensor{tuple(self.k.shape)}"
        return f"{type(self).__name__}(k={k})"

    # -- the function ---------------------------------------------------------
    def elementwise(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) = sum over the last dimension of g(x_d); (..., D) -> (...)."""
        try:
            return self.elementwise(x).sum(-1)
        except RuntimeError:
            self._check_input_shape(x)  # a ValueError naming k if k is why x does not fit
            raise

    # -- exact moments under N(mu, sigma^2), per coordinate -------------------
    def expectation_1d(self, loc, scale) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def gradient_1d(self, loc, scale):  # pragma: no cover - abstract
        raise NotImplementedError

    def expectation(self, loc, scale) -> torch.Tensor:
        """E_q[f] for q = N(loc, diag(scale^2)); loc, scale of shape (..., D) -> (...).

        Raises a ValueError naming k, loc or scale when the result overflows float64.
        """
        try:
            out = self.expectation_1d(loc, scale).sum(-1)
        except RuntimeError:
            self._check_input_shape(loc, scale)
            raise
        return self._checked(out, "expectation", loc, scale)

    def exact_gradient(self, loc, scale):
        """(d/d loc, d/d scale) of E_q[f], each of the broadcast shape of loc and scale."""
        try:
            grads = self.gradient_1d(loc, scale)
        except RuntimeError:
            self._check_input_shape(loc, scale)
            raise
        g_loc, g_scale = self._checked(grads, "exact_gradient", loc, scale)
        shape = torch.broadcast_shapes(loc.shape, scale.shape, self.k.shape)
        return g_loc.expand(shape), g_scale.expand(shape)

    def estimator_variance(self, estimator: str, loc, scale):
        """Closed-form per-sample variances (of d/d loc, d/d scale) of an estimator.

        Raises ``NotImplementedError`` where no closed form is known.
        """
        raise NotImplementedError(
            f"no closed-form variance of the {estimator!r} estimator for {self.name!r}"
        )


class Linear(Cost):
    r"""The linear cost, the sum of the coordinates (``k`` is unused).

    :math:`f(x) = \sum_d x_d`. Per-sample variances (coordinate i; Mohamed et al. 2020,
    section 3, with the D-dimensional form derived from it coordinate by coordinate):
    score function

    .. math::

        \mathrm{Var}\Big[\widehat{\partial_{\mu_i}}\Big]
            &= \frac{(\sum_d \mu_d)^2 + \sum_d \sigma_d^2 + 2 \sigma_i^2}{\sigma_i^2} - 1, \\
        \mathrm{Var}\Big[\widehat{\partial_{\sigma_i}}\Big]
            &= \frac{2 (\sum_d \mu_d)^2 + 2 \sum_{d \ne i} \sigma_d^2 + 10 \sigma_i^2}{\sigma_i^2};

    pathwise 0 and 1. In one dimension: :math:`\mu^2/\sigma^2 + 2` and
    :math:`2 \mu^2/\sigma^2 + 10`.
    """

    name = "linear"
    formula = "x"

    def elementwise(self, x):
        return x + 0.0 * self.k

    def expectation_1d(self, loc, scale):
        return loc + 0.0 * scale + 0.0 * self.k

    def gradient_1d(self, loc, scale):
        zero = 0.0 * (loc + scale + self.k)
        return zero + 1.0, zero

    def estimator_variance(self, estimator, loc, scale):
        loc, scale = torch.broadcast_tensors(loc, scale)
        if estimator == "pathwise":
            return torch.zeros_like(loc), torch.ones_like(scale)
        if estimator != "score":
            return super().estimator_variance(estimator, loc, scale)
        m2 = loc.sum(-1, keepdim=True) ** 2
        s2 = scale**2
        s2_all = s2.sum(-1, keepdim=True)
        var_loc = (m2 + s2_all + 2 * s2) / s2 - 1.0
        var_scale = (2 * m2 + 2 * (s2_all - s2) + 10 * s2) / s2
        return var_loc, var_scale


class Quadratic(Cost):
    r"""The quadratic cost, the squared distance of every coordinate from k.

    :math:`f(x) = \sum_d (x_d - k)^2`. With :math:`a = \mu - k`,

    .. math::

        E[g] = a^2 + \sigma^2, \qquad \partial_\mu E[g] = 2 a, \qquad
        \partial_\sigma E[g] = 2 \sigma.

    Per-sample variances in one dimension (Mohamed et al. 2020, section 3): score
    :math:`a^4/\sigma^2 + 14 a^2 + 15 \sigma^2` (for :math:`\mu`) and
    :math:`2 a^4/\sigma^2 + 60 a^2 + 74 \sigma^2` (for :math:`\sigma`); pathwise
    :math:`4 \sigma^2` and :math:`4 a^2 + 8 \sigma^2`. In D dimensions the score terms
    gain the other coordinates' sum :math:`R = \sum_{d \ne i} (x_d - k)^2` (independent
    of :math:`x_i`), e.g.
    :math:`E[f^2 \varepsilon_i^2] = E[g_i^2 \varepsilon_i^2] + 2 E[R] E[g_i \varepsilon_i^2] + E[R^2]`.
    """

    name = "quadratic"
    formula = "(x - k)^2"

    def elementwise(self, x):
        return (x - self.k) ** 2

    def expectation_1d(self, loc, scale):
        return (loc - self.k) ** 2 + scale**2

    def gradient_1d(self, loc, scale):
        a = loc - self.k
        return 2 * a + 0.0 * scale, 2 * scale + 0.0 * a

    def estimator_variance(self, estimator, loc, scale):
        a, s = torch.broadcast_tensors(loc - self.k, scale)
        a2, s2 = a**2, s**2
        if estimator == "pathwise":
            return 4 * s2, 4 * a2 + 8 * s2
        if estimator != "score":
            return super().estimator_variance(estimator, loc, scale)
        # Moments of the other coordinates' sum R (independent of coordinate i).
        mean_g = a2 + s2
        var_g = 4 * a2 * s2 + 2 * s2**2
        mean_r = mean_g.sum(-1, keepdim=True) - mean_g
        var_r = var_g.sum(-1, keepdim=True) - var_g
        r2 = var_r + mean_r**2
        # E[g^2 eps^2], E[g eps^2], E[g^2 (eps^2-1)^2], E[g (eps^2-1)^2] from Gaussian moments.
        e_loc = (a2**2 + 18 * a2 * s2 + 15 * s2**2) + 2 * mean_r * (a2 + 3 * s2) + r2
        e_scale = (2 * a2**2 + 60 * a2 * s2 + 78 * s2**2) + 2 * mean_r * (2 * a2 + 10 * s2) + 2 * r2
        return e_loc / s2 - 4 * a2, e_scale / s2 - 4 * s2


class GaussianBump(Cost):
    r"""The Gaussian bump cost, a sum of unnormalised Gaussians of width set by k >= 0.

    :math:`f(x) = \sum_d \exp(-k x_d^2)`. With :math:`c = 1 + 2 k \sigma^2`,

    .. math::

        E[g] = c^{-1/2} \exp(-k \mu^2 / c), \qquad
        \partial_\mu E[g] = -\frac{2 k \mu}{c} E[g], \qquad
        \partial_\sigma E[g] = \Big(-\frac{2 k \sigma}{c} + \frac{4 k^2 \mu^2 \sigma}{c^2}\Big) E[g].
    """

    name = "gaussian"
    formula = "exp(-k x^2)"

    def __init__(self, k=1.0):
        super().__init__(k)
        if bool((self.k < 0).any()):
            raise ValueError(f"k must be >= 0 for exp(-k x^2), got {k!r}")

    def elementwise(self, x):
        return torch.exp(-self.k * x**2)

    def expectation_1d(self, loc, scale):
        c = 1 + 2 * self.k * scale**2
        return c.rsqrt() * torch.exp(-self.k * loc**2 / c)

    def gradient_1d(self, loc, scale):
        c = 1 + 2 * self.k * scale**2
        e = self.expectation_1d(loc, scale)
        g_loc = -2 * self.k * loc / c * e
        g_scale = (-2 * self.k * scale / c + 4 * self.k**2 * loc**2 * scale / c**2) * e
        return g_loc, g_scale


class Cosine(Cost):
    r"""The cosine cost, oscillating with frequency k in every coordinate.

    :math:`f(x) = \sum_d \cos(k x_d)`. From the Gaussian characteristic function,

    .. math::

        E[g] = \cos(k \mu) \, e^{-k^2 \sigma^2 / 2}, \qquad
        \partial_\mu E[g] = -k \sin(k \mu) \, e^{-k^2 \sigma^2 / 2}, \qquad
        \partial_\sigma E[g] = -k^2 \sigma \cos(k \mu) \, e^{-k^2 \sigma^2 / 2}.
    """

    name = "cosine"
    formula = "cos(k x)"

    def elementwise(self, x):
        return torch.cos(self.k * x)

    def expectation_1d(self, loc, scale):
        return torch.cos(self.k * loc) * torch.exp(-0.5 * (self.k * scale) ** 2)

    def gradient_1d(self, loc, scale):
        damp = torch.exp(-0.5 * (self.k * scale) ** 2)
        g_loc = -self.k * torch.sin(self.k * loc) * damp
        g_scale = -(self.k**2) * scale * torch.cos(self.k * loc) * damp
        return g_loc, g_scale


class Step(Cost):
    r"""The step cost, counting the coordinates above k: not differentiable (f' = 0 almost everywhere).

    :math:`f(x) = \sum_d \mathbb 1[x_d > k]`. With :math:`z = (\mu - k)/\sigma`,

    .. math::

        E[g] = \Phi(z), \qquad \partial_\mu E[g] = \frac{\phi(z)}{\sigma}, \qquad
        \partial_\sigma E[g] = -\frac{\phi(z) \, z}{\sigma}.

    The expectation is smooth although f is not,
    which is why the score-function and measure-valued estimators still work
    and the pathwise estimator (which would return exactly 0) does not.
    """

    name = "step"
    differentiable = False
    formula = "1[x > k]"

    def elementwise(self, x):
        return (x > self.k).to(x.dtype)

    def expectation_1d(self, loc, scale):
        return torch.special.ndtr((loc - self.k) / scale)

    def gradient_1d(self, loc, scale):
        z = (loc - self.k) / scale
        pdf = torch.exp(-0.5 * z**2) / _SQRT_2PI
        return pdf / scale, -pdf * z / scale


#: The test costs by name.
COSTS = {
    "linear": Linear,
    "quadratic": Quadratic,
    "gaussian": GaussianBump,
    "cosine": Cosine,
    "step": Step,
}


def make_cost(name: str, k=1.0) -> Cost:
    """The test cost called ``name`` (one of :data:`COSTS`) with parameter ``k``.

    A ``name`` that is not a string is a TypeError; an unknown one a ValueError listing
    the valid names.
    """
    return _cost_by_name(name, k)


def _cost_by_name(value, k=1.0, *, name: str = "name") -> Cost:
    """:func:`make_cost` for an argument called ``name`` (what its errors name)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {sorted(COSTS)}, got {type(value).__name__} "
                        f"({value!r:.80})")
    return COSTS[check_choice(value, COSTS, name)](k)
