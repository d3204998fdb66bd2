"""Distributions the toolkit needs that ``torch.distributions`` lacks, and sampling helpers.

- :class:`NormalWishart`: the Gauss-Wishart factor of Bishop's variational
  mixture (PRML eq. 10.40), p(mu, Lambda) = N(mu | m, (beta Lambda)^-1) W(Lambda | W, nu).
- :class:`MultivariateStudentT`: the posterior predictive of that mixture
  (PRML eq. 10.81, B.68).
- :class:`StandardNormal`: N(0, 1) with a given batch shape, the factors of the
  VAE prior; its KL from any ``Normal`` has a short closed form registered in
  :mod:`vitoolkit.divergences`.
- :func:`sample`: draw from any distribution with a local ``torch.Generator``
  (torch's ``sample`` only uses the global one).
- :func:`expected_log_dirichlet`, :func:`expected_log_det_wishart`: the two
  expectations every conjugate-exponential ELBO of a mixture needs.
- :func:`gumbel_softmax_sample`: one Gumbel draw giving both an exact categorical
  sample (Gumbel-max) and its Gumbel-softmax / Concrete relaxation, from a local
  generator.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from torch.distributions import Distribution, MultivariateNormal, Normal, Wishart, constraints
from torch.distributions.utils import broadcast_all

from . import expectations as _ex
from .validation import as_float_array, check_bool, check_int, check_memory, check_real

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

__all__ = [
    "reparameterise",
    "StandardNormal",
    "NormalWishart",
    "MultivariateStudentT",
    "sample",
    "expected_log_dirichlet",
    "expected_log_det_wishart",
    "GumbelSoftmaxSample",
    "gumbel_max_sample",
    "gumbel_softmax_sample",
    "check_temperature",
]


class StandardNormal(Normal):
    """N(0, 1) in every batch entry: loc = 0 and scale = 1, nothing else.

    It behaves exactly as ``Normal(loc, scale)`` with those values; the separate
    type lets ``kl_divergence(Normal(m, s), StandardNormal(...))`` use the short
    closed form (m^2 + s^2 - 1)/2 - log s (Kingma & Welling 2013, Appendix B),
    which a VAE evaluates at every training step.

    The parameters are given only to fix the batch shape, dtype and device
    (``StandardNormal(torch.zeros(L), torch.ones(L))``, or
    :meth:`with_shape`). Any other value is refused with a ``ValueError``, and
    so is a ``loc`` or ``scale`` that requires grad: the closed form treats them
    as the constants 0 and 1, so a shifted or learnable prior must be a plain
    ``Normal``.

    Parameters
    ----------
    loc : float or Tensor, default 0.0
        All zeros.
    scale : float or Tensor, default 1.0
        All ones (broadcast against ``loc``).
    validate_args : bool, optional
        As for ``Normal``; the 0/1 check runs regardless.
    """

    def __init__(self, loc=0.0, scale=1.0, validate_args=None):
        check_validate_args(validate_args)
        loc = _number_or_param(loc, "loc")
        scale = _number_or_param(scale, "scale")
        try:
            super().__init__(loc, scale, validate_args=validate_args)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"StandardNormal: loc and scale must broadcast: {err}") from None
        for name, tensor, value in (("loc", self.loc, 0), ("scale", self.scale, 1)):
            if tensor.requires_grad:
                raise ValueError(f"StandardNormal: {name} must be a constant {value} (it requires "
                                 "grad); use torch.distributions.Normal for a learnable prior")
            if not bool((tensor == value).all()):
                raise ValueError(f"StandardNormal: {name} must be {value} everywhere, got values "
                                 f"in [{float(tensor.min())}, {float(tensor.max())}]; use "
                                 "torch.distributions.Normal for another mean or scale")

    @classmethod
    def with_shape(cls, batch_shape=(), *, dtype=None, device=None,
                   validate_args=None) -> StandardNormal:
        """N(0, 1) with batch shape ``batch_shape`` (dtype default: torch's default dtype)."""
        shape = torch.Size(batch_shape)
        dtype = torch.get_default_dtype() if dtype is None else dtype
        return cls(torch.zeros(shape, dtype=dtype, device=device),
                   torch.ones(shape, dtype=dtype, device=device), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        """A view with a larger ``batch_shape`` (still a ``StandardNormal``)."""
        new = self._get_checked_instance(StandardNormal, _instance)
        return super().expand(batch_shape, _instance=new)


# -- argument checks shared by the core (vitoolkit.divergences imports them) ---------
def as_param(value, name: str, *, dtype=None, min_ndim: int = 0, finite: bool = True,
             allow_neg_inf: bool = False) -> torch.Tensor:
    """A real floating tensor from ``value`` (tensor, array or number), named in every error.

    Tensors keep their autograd graph, dtype and device (integer tensors become the
    default float dtype, or ``dtype``); other input is read as float64 (or ``dtype``).
    Strings, bools, complex and object input are refused with a ``TypeError``; NaN and
    inf (with ``allow_neg_inf``, NaN and +inf) and fewer than ``min_ndim`` dimensions
    with a ``ValueError``.
    """
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must hold real numbers, got complex dtype {value.dtype}")
        if value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got a boolean tensor")
        t = value
        if dtype is not None and t.dtype != dtype:
            t = t.to(dtype)
        elif t.dtype not in _FLOAT_DTYPES:
            t = t.to(torch.get_default_dtype())
    else:
        t = torch.from_numpy(as_float_array(value, name, finite=False))
        if dtype is not None:
            t = t.to(dtype)
    if t.dim() < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape "
                         f"{tuple(t.shape)}")
    if finite:
        bad = torch.isnan(t) | (torch.isposinf(t) if allow_neg_inf else torch.isinf(t))
        if bool(bad.any()):
            raise ValueError(f"{name} contains {int(bad.sum())} NaN or inf entries (of {t.numel()})")
    return t


def _number_or_param(value, name: str):
    """A Python int/float kept as it is (torch's scalar convention), anything else as_param."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return check_real(value, name)
    return as_param(value, name)


def check_validate_args(value) -> None:
    """``validate_args`` is None, True or False (torch's convention)."""
    if value is not None:
        check_bool(value, "validate_args")


def check_sample_shape(sample_shape, name: str = "sample_shape") -> torch.Size:
    """A shape (a tuple or list of integers >= 0, or a torch.Size); an int n means (n,)."""
    if isinstance(sample_shape, (int,)) and not isinstance(sample_shape, bool):
        sample_shape = (sample_shape,)
    if isinstance(sample_shape, (str, bytes)) or not isinstance(sample_shape, (tuple, list, torch.Size)):
        raise TypeError(f"{name} must be a tuple of integers, got {type(sample_shape).__name__}")
    return torch.Size(check_int(n, name, minimum=0) for n in sample_shape)


def check_draw_memory(sample_shape: torch.Size, per_draw_shape, name: str = "sample_shape",
                      itemsize: int = 8, arrays: int = 3) -> None:
    """Refuse, before drawing, draws that would not fit in memory (sizes in Python ints)."""
    per_draw = math.prod(int(n) for n in per_draw_shape)
    count = math.prod(int(n) for n in sample_shape)
    check_memory(count * per_draw * itemsize * arrays, name, tuple(sample_shape),
                 f"{count:,} draws of shape {tuple(per_draw_shape)}")


def check_distribution_arg(d, name: str) -> None:
    if not isinstance(d, Distribution):
        raise TypeError(f"{name} must be a torch.distributions.Distribution, got {type(d).__name__}")


def _check_lower_cholesky(tril: torch.Tensor, name: str) -> None:
    """Lower triangular with a positive diagonal (a Cholesky factor)."""
    if bool((torch.triu(tril, diagonal=1) != 0).any()):
        raise ValueError(f"{name} must be lower triangular (a Cholesky factor); its upper "
                         "triangle has non-zero entries")
    _check_positive_tensor(torch.diagonal(tril, dim1=-2, dim2=-1), f"{name}'s diagonal")


def sample(dist: Distribution, sample_shape=torch.Size(), *, generator=None, rsample=False):
    """Draw ``dist.sample(sample_shape)`` (or ``rsample``) from a local generator.

    Parameters
    ----------
    dist : torch.distributions.Distribution
    sample_shape : tuple of int
    generator : torch.Generator, optional
        When given, the draw is a deterministic function of the generator's
        state, and the global random state is left untouched.
    rsample : bool
        Use the reparameterised sampler (keeps gradients).
    """
    check_distribution_arg(dist, "dist")
    sample_shape = check_sample_shape(sample_shape)
    rsample = check_bool(rsample, "rsample")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    check_draw_memory(sample_shape, dist.batch_shape + dist.event_shape)
    draw = dist.rsample if rsample else dist.sample
    if generator is None:
        return draw(torch.Size(sample_shape))
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return draw(torch.Size(sample_shape))


class GumbelSoftmaxSample(NamedTuple):
    """A categorical draw and its relaxation from the same Gumbel noise.

    ``hard``: one-hot argmax(logits + G), an exact draw of Cat(softmax(logits));
    ``soft``: softmax((logits + G) / temperature), a point of the simplex.
    Both have the shape of the logits.
    """

    soft: torch.Tensor
    hard: torch.Tensor


def reparameterise(loc: torch.Tensor, scale: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r"""The reparameterised Gaussian sample z = loc + scale * eps, eps ~ N(0, I) given.

    Kingma & Welling (2013), section 2.4 (eq. 4's g(eps, x) for a Gaussian q): the sample is a
    differentiable function of (loc, scale), which is what pathwise gradients differentiate.
    ``loc`` and ``scale`` broadcast against ``eps`` (e.g. (D,) or (n, D) against (S, ..., D));
    no input checks (the topic modules' inner loops call it).
    """
    return loc + scale * eps


def check_temperature(temperature, name: str = "temperature") -> float:
    """A positive finite temperature (the Gumbel-softmax tau), as a float."""
    return check_real(temperature, name, minimum=0.0, strict_minimum=True)


def gumbel_softmax_sample(logits: torch.Tensor, temperature: float, sample_shape=torch.Size(), *,
                          generator=None) -> GumbelSoftmaxSample:
    r"""Gumbel-max draw and Gumbel-softmax (Concrete) relaxation sharing one noise draw.

    With G_c ~ Gumbel(0, 1) i.i.d. (G = -log(-log U), U ~ Uniform(0, 1)):

    - argmax_c (logits_c + G_c) is an exact draw of Cat(softmax(logits))
      (the Gumbel-max trick; Maddison, Mnih & Teh 2017, section 2);
    - y = softmax((logits + G) / tau) is the Gumbel-softmax / Concrete sample
      (Jang, Gu & Poole 2017, eq. 1; Maddison et al. 2017, eq. 10): differentiable
      in the logits, and y tends to the one-hot draw as tau -> 0.

    Parameters
    ----------
    logits : Tensor of shape (..., K)
        Unnormalised log-probabilities (gradients flow through ``soft``).
    temperature : float > 0
    sample_shape : tuple of int
        Leading shape of independent draws.
    generator : torch.Generator, optional

    Returns
    -------
    GumbelSoftmaxSample(soft, hard), each of shape ``sample_shape + logits.shape``.
    """
    tau = check_temperature(temperature)
    logits, perturbed = _gumbel_perturbed(logits, sample_shape, generator, arrays=4)
    return GumbelSoftmaxSample(torch.softmax(perturbed / tau, dim=-1),
                               _one_hot_argmax(perturbed.detach()))


def gumbel_max_sample(logits: torch.Tensor, sample_shape=torch.Size(), *,
                      generator=None) -> torch.Tensor:
    r"""Exact one-hot draws of Cat(softmax(logits)) by the Gumbel-max trick:
    one_hot(argmax_c (logits_c + G_c)), G_c ~ Gumbel(0, 1) i.i.d. (Maddison, Mnih & Teh 2017,
    section 2).

    The ``hard`` half of :func:`gumbel_softmax_sample`, without the relaxation: for the same
    ``generator`` state both give the same draws.

    Parameters
    ----------
    logits : Tensor of shape (..., K)
        Unnormalised log-probabilities (-inf allowed, not for a whole row).
    sample_shape : tuple of int
        Leading shape of independent draws.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor of shape ``sample_shape + logits.shape``, one-hot along the last dimension, with the
    dtype of ``logits`` and no gradient.
    """
    logits, perturbed = _gumbel_perturbed(logits, sample_shape, generator, arrays=3)
    return _one_hot_argmax(perturbed.detach())


def _gumbel_perturbed(logits, sample_shape, generator, arrays: int):
    """Validated logits and logits + G for G ~ Gumbel(0, 1) of shape sample_shape + logits.shape
    (G = -log(-log U), U clamped away from 0 and 1)."""
    logits = as_param(logits, "logits", min_ndim=1, allow_neg_inf=True)
    if logits.shape[-1] < 1:
        raise ValueError(f"logits must have at least one category, got shape {tuple(logits.shape)}")
    if bool(torch.isneginf(logits).all(-1).any()):
        raise ValueError("logits: every category is -inf in some row (no probability mass)")
    sample_shape = check_sample_shape(sample_shape)
    check_draw_memory(sample_shape, logits.shape, arrays=arrays)
    shape = sample_shape + logits.shape
    u = torch.rand(shape, generator=generator, dtype=logits.dtype, device=logits.device)
    tiny = torch.finfo(logits.dtype).tiny
    gumbel = -torch.log(-torch.log(u.clamp(tiny, 1.0 - torch.finfo(logits.dtype).eps)))
    return logits, logits + gumbel


def _one_hot_argmax(perturbed: torch.Tensor) -> torch.Tensor:
    hard = torch.nn.functional.one_hot(perturbed.argmax(-1), perturbed.shape[-1])
    return hard.to(perturbed.dtype)


def expected_log_dirichlet(concentration: torch.Tensor) -> torch.Tensor:
    r"""E[log pi_k] under Dir(pi | alpha) = psi(alpha_k) - psi(sum_j alpha_j) (PRML eq. 10.66).

    Parameters
    ----------
    concentration : Tensor of shape (..., K), positive.

    Raises
    ------
    ValueError
        Naming ``concentration`` when an entry is not positive and finite (digamma of a
        non-positive number is a number, but not this expectation).
    """
    concentration = as_param(concentration, "concentration", min_ndim=1)
    _check_positive_tensor(concentration, "concentration")
    return _ex.expected_log_dirichlet_unchecked(concentration)


def _check_positive_tensor(t: torch.Tensor, name: str, minimum: float = 0.0,
                           what: str = "positive") -> None:
    """Every entry of ``t`` finite and > ``minimum``; otherwise a ValueError naming ``name``."""
    bad = ~(torch.isfinite(t) & (t > minimum))
    if bool(bad.any()):
        worst = t[bad].reshape(-1)[0].item()
        raise ValueError(f"{name} must be {what} and finite everywhere; {int(bad.sum())} of "
                         f"{t.numel()} entries are not (e.g. {worst!r})")


def expected_log_det_wishart(df: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    r"""E[log det Lambda] under W(Lambda | W, nu) (PRML eq. 10.65, B.81).

    sum_{i=1}^{D} psi((nu + 1 - i) / 2) + D log 2 + log det W.

    Parameters
    ----------
    df : Tensor of shape (...), nu > D - 1.
    scale_tril : Tensor of shape (..., D, D), Cholesky factor of W.

    Raises
    ------
    ValueError
        Naming ``df`` when some nu <= D - 1 (the Wishart is not defined there).
    """
    scale_tril = as_param(scale_tril, "scale_tril", min_ndim=2)
    d = scale_tril.shape[-1]
    _check_square(scale_tril, "scale_tril", d)
    _check_lower_cholesky(scale_tril, "scale_tril")
    df = as_param(df, "df", dtype=scale_tril.dtype).to(scale_tril.device)
    _check_positive_tensor(df, "df", d - 1, f"> D - 1 = {d - 1} (the Wishart degrees of freedom)")
    return _ex.expected_log_det_wishart_unchecked(df, scale_tril)


class NormalWishart(Distribution):
    r"""Gauss-Wishart distribution over a mean and a precision matrix.

    p(mu, Lambda) = N(mu | m, (beta Lambda)^{-1}) W(Lambda | W, nu)
    (Bishop PRML eq. 10.40 and B.68-B.80).

    A draw is a pair ``(mean, precision)`` of shapes ``sample_shape + batch_shape
    + (D,)`` and ``... + (D, D)``; :meth:`log_prob` takes such a pair.

    Parameters
    ----------
    loc : Tensor of shape (..., D)
        m, the mean of mu.
    mean_precision : Tensor of shape (...)
        beta > 0, how many pseudo-observations the mean is worth.
    df : Tensor of shape (...)
        nu > D - 1, the Wishart degrees of freedom.
    scale_matrix : Tensor of shape (..., D, D), optional
        W, the Wishart scale (E[Lambda] = nu W). Give this or ``scale_tril``.
    scale_tril : Tensor of shape (..., D, D), optional
        Lower Cholesky factor of W.
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "mean_precision": constraints.positive,
        "df": constraints.positive,
        "scale_tril": constraints.lower_cholesky,
    }
    has_rsample = False

    def __init__(self, loc, mean_precision, df, *, scale_matrix=None, scale_tril=None,
                 validate_args=None):
        check_validate_args(validate_args)
        if (scale_matrix is None) == (scale_tril is None):
            raise ValueError("NormalWishart: give exactly one of scale_matrix or scale_tril")
        loc = as_param(loc, "loc", min_ndim=1)
        dtype = loc.dtype
        mean_precision = as_param(mean_precision, "mean_precision", dtype=dtype)
        df = as_param(df, "df", dtype=dtype)
        if scale_tril is None:
            scale_matrix = as_param(scale_matrix, "scale_matrix", dtype=dtype, min_ndim=2)
            _check_square(scale_matrix, "scale_matrix", loc.shape[-1])
            scale_tril, info = torch.linalg.cholesky_ex(scale_matrix)
            if bool((info != 0).any()):
                raise ValueError("scale_matrix must be symmetric positive definite")
        else:
            scale_tril = as_param(scale_tril, "scale_tril", dtype=dtype, min_ndim=2)
            _check_square(scale_tril, "scale_tril", loc.shape[-1])
            _check_lower_cholesky(scale_tril, "scale_tril")
        d = loc.shape[-1]
        try:
            mean_precision, df = broadcast_all(mean_precision, df)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"NormalWishart: mean_precision and df do not broadcast: {err}") from None
        try:
            batch_shape = torch.broadcast_shapes(
                loc.shape[:-1], mean_precision.shape, df.shape, scale_tril.shape[:-2]
            )
        except RuntimeError as err:
            raise ValueError(
                "NormalWishart: batch shapes of loc, mean_precision, df and the scale do not "
                f"broadcast: {tuple(loc.shape[:-1])}, {tuple(mean_precision.shape)}, "
                f"{tuple(df.shape)}, {tuple(scale_tril.shape[:-2])}"
            ) from err
        # Checked whatever validate_args says: the entropy, KL and expectations return
        # numbers for invalid parameters, not errors.
        if bool((~(df > d - 1)).any()):
            raise ValueError(f"NormalWishart: df must exceed D - 1 = {d - 1} (the Wishart degrees "
                             f"of freedom), got {df}")
        _check_positive_tensor(mean_precision, "mean_precision")
        self.loc = loc.expand(batch_shape + (d,))
        self.mean_precision = mean_precision.expand(batch_shape)
        self.df = df.expand(batch_shape)
        self.scale_tril = scale_tril.expand(batch_shape + (d, d))
        super().__init__(batch_shape, torch.Size((d,)), validate_args=validate_args)

    @property
    def wishart(self) -> Wishart:
        """The marginal W(Lambda | W, nu) as a torch ``Wishart``."""
        return Wishart(self.df, scale_tril=self.scale_tril, validate_args=False)

    @property
    def scale_matrix(self) -> torch.Tensor:
        """W = L L^T."""
        return self.scale_tril @ self.scale_tril.mT

    @property
    def expected_precision(self) -> torch.Tensor:
        """E[Lambda] = nu W (PRML B.80)."""
        return self.df[..., None, None] * self.scale_matrix

    @property
    def expected_log_det_precision(self) -> torch.Tensor:
        """E[log det Lambda] (PRML eq. 10.65)."""
        return expected_log_det_wishart(self.df, self.scale_tril)

    @property
    def mean(self) -> torch.Tensor:
        """E[mu] = m."""
        return self.loc

    def expected_mahalanobis(self, x: torch.Tensor) -> torch.Tensor:
        r"""E[(x - mu)^T Lambda (x - mu)] = D / beta + nu (x - m)^T W (x - m) (PRML eq. 10.64).

        ``x`` has shape (..., D) broadcasting against the batch shape.
        """
        diff = x - self.loc
        proj = (diff.unsqueeze(-2) @ self.scale_tril).squeeze(-2)
        d = self.loc.shape[-1]
        return d / self.mean_precision + self.df * proj.pow(2).sum(-1)

    def expand(self, batch_shape, _instance=None):
        """A view of this distribution with a larger ``batch_shape`` (torch's convention)."""
        batch_shape = torch.Size(batch_shape)
        d = self.event_shape[0]
        return NormalWishart(
            self.loc.expand(batch_shape + (d,)),
            self.mean_precision.expand(batch_shape),
            self.df.expand(batch_shape),
            scale_tril=self.scale_tril.expand(batch_shape + (d, d)),
            validate_args=False,
        )

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad(), warnings.catch_warnings():
            # torch's Bartlett sampler redraws singular matrices and warns; the redraw is exact.
            warnings.filterwarnings("ignore", message="Singular sample detected")
            precision = self.wishart.sample(sample_shape)
            precision = 0.5 * (precision + precision.mT)
            cov_prec = self.mean_precision[..., None, None] * precision
            mean = MultivariateNormal(
                self.loc.expand(precision.shape[:-1]), precision_matrix=cov_prec,
                validate_args=False,
            ).sample()
        return mean, precision

    def log_prob(self, value):
        mean, precision = value
        log_w = self.wishart.log_prob(precision)
        normal = MultivariateNormal(
            self.loc, precision_matrix=self.mean_precision[..., None, None] * precision,
            validate_args=False,
        )
        return log_w + normal.log_prob(mean)

    def entropy(self):
        r"""H = H[W(Lambda)] + E_Lambda H[N(m, (beta Lambda)^-1)]
        = H[W] + D/2 (1 + log 2 pi) - D/2 log beta - 1/2 E[log det Lambda] (PRML B.82, B.41)."""
        d = self.event_shape[0]
        log_det_w = _ex.log_det_tril(self.scale_tril)
        e_log_det = _ex.expected_log_det_wishart_unchecked(self.df, log_det_scale=log_det_w, dim=d)
        # E[log det (beta Lambda)^-1] = -(D log beta + E[log det Lambda])
        return (_ex.wishart_entropy(self.df, log_det_w, d)
                + _ex.gaussian_entropy(-(d * torch.log(self.mean_precision) + e_log_det), d))


class MultivariateStudentT(Distribution):
    r"""Multivariate Student-t St(x | mu, Sigma, nu) (Bishop PRML eq. 2.162, B.68).

    log p(x) = lgamma((nu+D)/2) - lgamma(nu/2) - D/2 log(nu pi) - 1/2 log det Sigma
               - (nu+D)/2 log(1 + (x-mu)^T Sigma^{-1} (x-mu) / nu).

    Parameters
    ----------
    df : Tensor of shape (...), nu > 0.
    loc : Tensor of shape (..., D).
    scale_tril : Tensor of shape (..., D, D), Cholesky factor of Sigma (the
        scale matrix, not the covariance: Cov = nu / (nu - 2) Sigma).
    """

    arg_constraints = {
        "df": constraints.positive,
        "loc": constraints.real_vector,
        "scale_tril": constraints.lower_cholesky,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, df, loc, scale_tril, validate_args=None):
        check_validate_args(validate_args)
        loc = as_param(loc, "loc")
        if loc.dim() < 1:
            raise ValueError(f"loc must have shape (..., D), got shape {tuple(loc.shape)}")
        dtype = loc.dtype
        self.loc = loc
        self.scale_tril = as_param(scale_tril, "scale_tril", dtype=dtype, min_ndim=2)
        self.df = as_param(df, "df", dtype=dtype)
        d = self.loc.shape[-1]
        _check_square(self.scale_tril, "scale_tril", d)
        # Checked whatever validate_args says (log_prob returns numbers for df <= 0).
        _check_positive_tensor(self.df, "df", 0.0, "positive (the degrees of freedom)")
        _check_lower_cholesky(self.scale_tril, "scale_tril")
        try:
            batch_shape = torch.broadcast_shapes(
                self.loc.shape[:-1], self.df.shape, self.scale_tril.shape[:-2]
            )
        except RuntimeError as err:
            raise ValueError(
                "MultivariateStudentT: batch shapes of df, loc and scale_tril do not broadcast: "
                f"{tuple(self.df.shape)}, {tuple(self.loc.shape[:-1])}, "
                f"{tuple(self.scale_tril.shape[:-2])}") from err
        super().__init__(batch_shape, torch.Size((d,)), validate_args=validate_args)

    @property
    def mean(self):
        m = self.loc.expand(self.batch_shape + self.event_shape).clone()
        m[self.df.expand(self.batch_shape) <= 1] = float("nan")
        return m

    @property
    def covariance_matrix(self):
        scale = self.scale_tril @ self.scale_tril.mT
        return (self.df / (self.df - 2))[..., None, None] * scale

    def rsample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        z = torch.randn(shape, dtype=self.loc.dtype)
        chi2 = torch.distributions.Chi2(self.df.expand(self.batch_shape)).rsample(sample_shape)
        y = (self.scale_tril @ z.unsqueeze(-1)).squeeze(-1)
        return self.loc + y * torch.rsqrt(chi2 / self.df).unsqueeze(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        d = self.event_shape[0]
        diff = value - self.loc
        batch = torch.broadcast_shapes(diff.shape[:-1], self.scale_tril.shape[:-2])
        sol = torch.linalg.solve_triangular(
            self.scale_tril.expand(batch + (d, d)), diff.expand(batch + (d,)).unsqueeze(-1),
            upper=False,
        ).squeeze(-1)
        # log(1 + maha / nu) with maha = |sol|^2 computed from the scaled norm, so a point
        # 1e200 scales away gives a finite (very negative) log density, not -inf.
        top = sol.abs().amax(-1)
        safe = torch.where(top > 0, top, torch.ones_like(top))
        log_maha = 2 * (torch.log(safe) + 0.5 * torch.log((sol / safe.unsqueeze(-1)).pow(2).sum(-1)))
        log_maha = torch.where(top > 0, log_maha, torch.full_like(log_maha, -math.inf))
        half_logdet = torch.log(torch.diagonal(self.scale_tril, dim1=-2, dim2=-1)).sum(-1)
        nu = self.df
        return (
            torch.lgamma((nu + d) / 2)
            - torch.lgamma(nu / 2)
            - 0.5 * d * torch.log(nu * math.pi)
            - half_logdet
            - 0.5 * (nu + d) * torch.logaddexp(torch.zeros_like(log_maha), log_maha - torch.log(nu))
        )


def _check_square(matrix: torch.Tensor, name: str, d: int) -> None:
    if matrix.dim() < 2 or matrix.shape[-1] != d or matrix.shape[-2] != d:
        raise ValueError(f"{name} must have shape (..., {d}, {d}) (D = {d} from loc's last "
                         f"dimension), got {tuple(matrix.shape)}")
