r"""Monte Carlo KL estimates with their standard errors.

Two unbiased per-sample estimators of KL(p || q) from x ~ p, with log r = log q(x) - log p(x):

- ``"log_ratio"``: -log r. Unbiased; can be negative for a single draw; its
  variance does not vanish as q -> p only at first order.
- ``"k3"``: (r - 1) - log r. Unbiased because E_p[r] = 1; every term is >= 0
  (log is concave), and its variance is typically much lower when q is close
  to p (Schulman, "Approximating KL divergence", 2020). Its terms grow like r, so
  when E_p[r^2] = integral q^2 / p is infinite (p much narrower than q) so is their
  variance: the estimate stays unbiased but its standard error is meaningless.

Every estimate carries the Pareto k-hat of the ratio r (``Estimate.khat``, Vehtari et
al. 2024, see :mod:`vitoolkit.divergences.psis`); ``"k3"`` issues an
:class:`~vitoolkit.divergences.psis.UnreliableEstimateWarning` when it exceeds 0.7.
"""

from __future__ import annotations

import math

import torch

from ..distributions import as_param, sample
from ..exceptions import ResourceLimitError
from ..validation import check_bool, check_choice, check_memory, check_num_samples, format_bytes
from ._checks import MIN_SAMPLES, check_pair
from .estimate import Estimate, warn_if_unreliable
from .psis import tail_khat, tail_length

__all__ = ["Estimate", "monte_carlo_kl", "KL_ESTIMATORS", "CHUNK_VALUES", "MAX_DRAW_VALUES",
           "mean_and_stderr", "plan_draws", "warn_if_unreliable"]

#: The named Monte Carlo KL estimators.
KL_ESTIMATORS = ("log_ratio", "k3")
#: Draw coordinates (draws x batch x event) evaluated at once: bounds a call's working memory.
CHUNK_VALUES = 2**18
#: Most draw coordinates one Monte Carlo call evaluates (a few minutes of CPU); more is refused.
MAX_DRAW_VALUES = 2**33


def mean_and_stderr(terms: torch.Tensor, *, diagnose: bool = False) -> Estimate:
    """Sample mean over dim 0 and its standard error std / sqrt(n) (ddof = 1).

    Returns an :class:`Estimate`; its ``khat`` is NaN unless ``diagnose=True``, which
    computes the Pareto k-hat of both tails of ``terms`` over dim 0
    (:func:`~vitoolkit.divergences.psis.tail_khat`); no warning is issued here (see
    :func:`warn_if_unreliable`). Caveat: the tail fit is
    scale-free, so terms that are nearly constant with a thin spread (e.g. log q - log p
    for q fitted to one mode of a mixture) can give k-hat > 0.7 although their standard
    error is sound; for importance ratios prefer :func:`~vitoolkit.divergences.pareto_khat`
    on the log ratios.
    """
    diagnose = check_bool(diagnose, "diagnose")
    terms = as_param(terms, "terms", min_ndim=1)
    n = terms.shape[0]
    if n < 2:
        raise ValueError(f"terms must hold at least 2 draws along dim 0 for a standard error, "
                         f"got shape {tuple(terms.shape)}")
    value = terms.mean(0)
    # The standard deviation of terms divided by their largest magnitude: no overflow
    # for terms near the float64 limit.
    top = terms.detach().abs().amax(0)
    top = torch.where(top > 0, top, torch.ones_like(top))
    stderr = top * (terms / top).std(0, unbiased=True) / math.sqrt(n)
    if not diagnose:
        return Estimate(value, stderr)
    return Estimate(value, stderr, tail_khat(terms.detach(), dim=0).to(value.dtype))


def _numel(shape) -> int:
    return math.prod(int(n) for n in shape)


def plan_draws(num_samples: int, batch_shape, event_shape, *, what: str,
               arrays_per_value: int = 6, itemsize: int = 8) -> int:
    """Refuse an oversized Monte Carlo request before drawing; return the draws per chunk.

    Sizes are Python integers (no overflow). A request is refused with a
    :class:`~vitoolkit.exceptions.ResourceLimitError` naming ``num_samples`` when it would
    evaluate more than :data:`MAX_DRAW_VALUES` draw coordinates (draws x batch x event; the
    work, since chunking bounds the memory) or when a single draw of the whole batch does
    not fit in memory (:func:`vitoolkit.validation.check_memory`). Otherwise the draws
    are taken :data:`CHUNK_VALUES` coordinates at a time.
    """
    per_draw = _numel(batch_shape) * max(1, _numel(event_shape))
    total = num_samples * per_draw
    if total > MAX_DRAW_VALUES:
        raise ResourceLimitError(
            f"num_samples={num_samples} would draw {total:,} values ({what}: batch shape "
            f"{tuple(batch_shape)}, event shape {tuple(event_shape)}), {format_bytes(total * itemsize)} "
            f"of draws, more than the {MAX_DRAW_VALUES:,} one call evaluates (minutes of CPU); "
            "use a smaller num_samples")
    chunk = max(1, min(num_samples, CHUNK_VALUES // per_draw))
    check_memory(chunk * per_draw * arrays_per_value * itemsize, "num_samples", num_samples,
                 f"one chunk of {chunk} draws ({what})")
    return chunk


class _RunningMoments:
    """Mean and sum of squared deviations over dim 0, merged chunk by chunk in float64.

    Chan, Golub & LeVeque's pairwise update: exact in exact arithmetic, and as accurate as
    the two-pass formula on each chunk.
    """

    def __init__(self):
        self.n = 0
        self.mean = None
        self.m2 = None

    def add(self, terms: torch.Tensor) -> None:
        t = terms.to(torch.float64)
        c = t.shape[0]
        mean_c = t.mean(0)
        m2_c = (t - mean_c).pow(2).sum(0)
        if self.n == 0:
            self.n, self.mean, self.m2 = c, mean_c, m2_c
            return
        n = self.n + c
        delta = mean_c - self.mean
        self.mean = self.mean + delta * (c / n)
        self.m2 = self.m2 + m2_c + delta.pow(2) * (self.n * c / n)
        self.n = n

    def estimate(self, dtype) -> Estimate:
        stderr = torch.sqrt(self.m2 / (self.n - 1)) / math.sqrt(self.n)
        return Estimate(self.mean.to(dtype), stderr.to(dtype))


class _TopRows:
    """The ``k`` largest values over dim 0 of a stream of chunks (for a tail fit)."""

    def __init__(self, k: int):
        self.k = k
        self.rows = None
        self._pending: list[torch.Tensor] = []
        self._pending_rows = 0

    def add(self, values: torch.Tensor) -> None:
        self._pending.append(values)
        self._pending_rows += values.shape[0]
        if self._pending_rows >= 4 * self.k:
            self._reduce()

    def _reduce(self) -> None:
        parts = ([] if self.rows is None else [self.rows]) + self._pending
        cat = torch.cat(parts, 0)
        self.rows = torch.topk(cat, min(self.k, cat.shape[0]), dim=0).values if cat.shape[0] > self.k \
            else cat
        self._pending, self._pending_rows = [], 0

    def result(self) -> torch.Tensor:
        if self._pending:
            self._reduce()
        return self.rows


def _ratio_khat(top_log_r: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Pareto k-hat of r from its largest log values (dim 0) out of ``num_samples`` draws."""
    from .psis import _right_tail_khat

    t = top_log_r.detach().to(torch.float64)
    if bool(torch.isnan(t).any()):
        raise ValueError("log_ratios contains NaN")
    batch = t.shape[1:]
    rows = t.reshape(t.shape[0], -1).T
    return _right_tail_khat(rows, log_scale=True, num_samples=num_samples).reshape(batch)


def monte_carlo_kl(p, q, num_samples: int, *, estimator: str = "log_ratio",
                   generator: torch.Generator | None = None) -> Estimate:
    r"""Monte Carlo estimate of KL(p || q) = E_p[log p(x) - log q(x)].

    Works for any pair with ``p.sample`` and ``log_prob`` on both, including
    mixtures (``MixtureSameFamily``) that have no closed form.

    Parameters
    ----------
    p, q : torch.distributions.Distribution
    num_samples : int >= 2
        Draws are taken and averaged in chunks of about :data:`CHUNK_VALUES` values,
        so memory stays bounded whatever ``num_samples`` is; a request of more than
        :data:`MAX_DRAW_VALUES` values (draws x batch x event) is refused before
        drawing (``ResourceLimitError``, a ``ValueError``).
    estimator : {"log_ratio", "k3"}
        See the module docstring for their variance trade-off.
    generator : torch.Generator, optional
        Local source of randomness (the global state is left untouched).

    Returns
    -------
    Estimate
        ``value`` and ``stderr`` of shape ``broadcast(p.batch_shape, q.batch_shape)``,
        and ``khat`` (same shape; NaN below 25 draws): the Pareto k-hat (Vehtari et al.
        2024) of the importance ratio r = q(x)/p(x), x ~ p, the same for both estimators.
        It says how heavy the ratio's tail is: above 0.7, any average of r (the k3 terms
        grow like r; importance sampling) has a meaningless standard error.

    Warns
    -----
    UnreliableEstimateWarning
        For ``"k3"`` when ``khat`` > 0.7: its standard error cannot be trusted. The
        ``"log_ratio"`` terms are log r, not r: a heavy ratio tail does not make their
        variance infinite (measured on a Gaussian fitted to one mode of a bimodal target:
        ratio k-hat ~3, yet +/- 2 s.e. intervals cover the exact KL 94.5% of the time),
        so it never warns. (A scale-free tail fit to the log r terms themselves raises
        false alarms on such near-constant terms, so none is made.)
    """
    batch = check_pair(p, q)
    num_samples = check_num_samples(num_samples, minimum=MIN_SAMPLES)
    estimator = check_choice(estimator, KL_ESTIMATORS, "estimator")
    chunk = plan_draws(num_samples, batch, p.event_shape, what="monte_carlo_kl")
    if p.batch_shape != batch:
        p = p.expand(batch)  # draws of the broadcast shape, so q.log_prob lines up
    moments = _RunningMoments()
    top = _TopRows(tail_length(num_samples) + 1)
    dtype = None
    for start in range(0, num_samples, chunk):
        c = min(chunk, num_samples - start)
        with torch.no_grad():
            x = sample(p, (c,), generator=generator)
            log_p = p.log_prob(x)
            log_q = q.log_prob(x)
        if not bool(torch.isfinite(log_p).all()):
            raise ValueError("p.log_prob returned non-finite values on p's own samples")
        log_r = torch.broadcast_to(log_q - log_p, (c, *batch))
        dtype = log_r.dtype
        moments.add(-log_r if estimator == "log_ratio" else torch.expm1(log_r) - log_r)
        top.add(log_r)
    est = moments.estimate(dtype)
    value, stderr = est.value, est.stderr
    est = Estimate(value, stderr, _ratio_khat(top.result(), num_samples).to(dtype))
    if estimator == "k3":
        warn_if_unreliable(est, f"monte_carlo_kl(estimator='k3', num_samples={num_samples})")
    return est
