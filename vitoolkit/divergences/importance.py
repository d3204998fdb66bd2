r"""Importance sampling's summary of its weights: the estimate, its error, ESS and k-hat.

Draws z_s ~ q, s = 1..S, and log weights log w_s = log p(z_s) - log q(z_s) (p possibly
unnormalised, e.g. p(x, z)) give the importance-sampling estimate of Z = E_q[w] in log
space, the log-mean-exp

    log Z_hat = log (1/S) sum_s w_s = LSE(log w) - log S,

which is unbiased for Z and, through Jensen's inequality, a lower bound on log Z in
expectation (the IWAE bound, Burda, Grosse & Salakhutdinov 2015, eq. (8)). Everything
else follows from two log-sum-exps:

- the delta-method standard error of log Z_hat, sd(w) / (sqrt(S) mean(w)), equal to the
  relative standard error of Z_hat: sqrt(relvar(w) / S) (Kingma & Welling 2013, App. D);
  the same expansion gives the bias, E[log Z_hat] ~ log Z - stderr^2 / 2;
- Kish's effective sample size, (sum w)^2 / sum w^2 = exp(2 LSE(log w) - LSE(2 log w)),
  between 1 and S;
- the Pareto k-hat of the weights (:func:`~vitoolkit.divergences.pareto_khat`, Vehtari
  et al. 2024): above :data:`~vitoolkit.divergences.KHAT_THRESHOLD` (0.7) the weights
  are so heavy-tailed that the estimate and its standard error cannot be trusted.

:func:`importance_estimate` computes them from all S log weights at once;
:class:`StreamingImportanceEstimate` accumulates the same figures over chunks of draws
(running log-sum-exps and each column's M + 1 largest log weights) for an S whose log
weights do not fit in memory. Draws run along the first dimension; the rest is batch.
"""

from __future__ import annotations

import math

import torch

from ..distributions import as_param
from ..validation import check_bool, check_int
from ._checks import check_dim
from .estimate import Estimate, warn_if_unreliable
from .psis import _right_tail_khat, pareto_khat, tail_length

__all__ = [
    "Estimate",
    "ImportanceEstimate",
    "log_mean_exp_unchecked",
    "effective_sample_size_unchecked",
    "importance_estimate_unchecked",
    "StreamingImportanceEstimate",
    "effective_sample_size",
    "importance_estimate",
    "log_mean_exp",
]


#: The old name of :class:`~vitoolkit.divergences.Estimate` for importance-sampled summaries:
#: ``value`` log (1/S) sum_s w_s (the IWAE bound L_S when w_s = p(x, z_s) / q(z_s | x)),
#: ``stderr`` its delta-method standard error sd(w) / (sqrt(S) mean(w)) (NaN for S = 1; the
#: bias is E[value] ~ log Z - stderr^2 / 2), ``khat`` the Pareto k-hat of the weights (NaN
#: when S <= 20). A column whose weights are all zero has value -inf, stderr and khat NaN.
ImportanceEstimate = Estimate


# -- the kernels (no input checks: the topic modules' inner loops call them) ----------------
# Public under ``*_unchecked`` names (the checked functions below are the user-facing ones);
# the old private names stay as aliases.


def log_mean_exp_unchecked(log_weights: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """:func:`log_mean_exp` without input checks: LSE(log w) - log S along ``dim``
    (differentiable). ``log_weights`` must be a float tensor with S >= 1 along ``dim``."""
    return torch.logsumexp(log_weights, dim=dim) - math.log(log_weights.shape[dim])


def effective_sample_size_unchecked(log_weights: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """:func:`effective_sample_size` (Kish's) without input checks: exp(2 LSE(log w) - LSE(2 log w))
    along ``dim``, relative to the maximum (no overflow)."""
    lw = log_weights.detach()
    top = lw.amax(dim=dim, keepdim=True)
    shifted = lw - torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    return torch.exp(2 * torch.logsumexp(shifted, dim=dim) - torch.logsumexp(2 * shifted, dim=dim))


def importance_estimate_unchecked(log_weights: torch.Tensor) -> Estimate:
    """:func:`importance_estimate` without input checks or warning; draws along dim 0."""
    k = log_weights.shape[0]
    value = log_mean_exp_unchecked(log_weights, 0)
    with torch.no_grad():
        lw = log_weights.detach()
        if k > 1:
            # Weights divided by their mean (computed in log space): sd of this / sqrt(k) is
            # the delta-method sd of log mean w, Kingma & Welling (2013) App. D's estimator.
            rel = torch.exp(lw - value.detach())
            stderr = rel.std(dim=0, unbiased=True) / math.sqrt(k)
        else:
            stderr = torch.full_like(value, math.nan)
        khat = pareto_khat(lw, dim=0).to(value.dtype)
        empty = value.detach() == -math.inf  # every weight zero: nothing to estimate
        if bool(empty.any()):
            stderr = stderr.masked_fill(empty, math.nan)
            khat = khat.masked_fill(empty, math.nan)
    return Estimate(value, stderr, khat)


_log_mean_exp = log_mean_exp_unchecked
_kish_ess = effective_sample_size_unchecked
_importance_estimate = importance_estimate_unchecked


# -- the public, checked functions -----------------------------------------------------------


def _checked_log_weights(log_weights, dim: int | None = None):
    """A float tensor of log weights (NaN and +inf refused, -inf a zero weight), non-empty."""
    t = as_param(log_weights, "log_weights", min_ndim=1, allow_neg_inf=True)
    if dim is not None:
        dim = check_dim(dim, t.dim())
    if t.numel() == 0 or t.shape[0 if dim is None else dim] == 0:
        raise ValueError(f"log_weights is empty (shape {tuple(t.shape)}): no draws")
    return t, dim


def log_mean_exp(log_weights, dim: int = 0) -> torch.Tensor:
    r"""log (1/S) sum_s exp(log_weights_s) along ``dim``: the importance-sampling estimate of log Z.

    Parameters
    ----------
    log_weights : array-like of shape (..., S, ...)
        log w_s for S draws along ``dim``; -inf is a zero weight; NaN and +inf are refused.
    dim : int, default 0
        The dimension of the draws; it is reduced.

    Returns
    -------
    Tensor of the remaining shape, in the input's dtype, differentiable (a tensor input
    keeps its autograd graph). -inf where every weight is zero.
    """
    t, dim = _checked_log_weights(log_weights, dim)
    return log_mean_exp_unchecked(t, dim)


def effective_sample_size(log_weights, dim: int = 0) -> torch.Tensor:
    r"""Kish's effective sample size (sum_s w_s)^2 / sum_s w_s^2 of importance weights, 1 to S.

    Computed in log space as exp(2 LSE(log w) - LSE(2 log w)) relative to the largest log
    weight, so log weights of any size are safe. For large S it approaches S / (1 + relvar(w)).
    It says how many equally weighted draws the weighted ones are worth, not whether
    their variance is finite: read it with :func:`~vitoolkit.divergences.pareto_khat`.

    Parameters
    ----------
    log_weights : array-like of shape (..., S, ...)
        log w_s (unnormalised is fine), S draws along ``dim``; -inf is a zero weight;
        NaN and +inf are refused.
    dim : int, default 0

    Returns
    -------
    Tensor (no gradient) of the remaining shape; NaN where every weight is zero.
    """
    t, dim = _checked_log_weights(log_weights, dim)
    return effective_sample_size_unchecked(t, dim)


def importance_estimate(log_weights, *, what: str = "importance-sampled estimate",
                        warn: bool = True, stacklevel: int = 2) -> Estimate:
    r"""log (1/S) sum_s w_s per column of ``log_weights``, its standard error and Pareto k-hat.

    Parameters
    ----------
    log_weights : array-like of shape (S, ...)
        log w_s = log p(x, z_s) - log q(z_s | x) for S draws (rows) and any batch of
        columns (e.g. n examples); -inf is a zero weight; NaN and +inf are refused.
    what : str
        Names the estimate in the warning.
    warn : bool
        Issue :class:`~vitoolkit.divergences.UnreliableEstimateWarning` when any
        column's k-hat exceeds 0.7.
    stacklevel : int >= 1
        Passed to :func:`warnings.warn` (2 points at this function's caller).

    Returns
    -------
    Estimate
        ``(value, stderr, khat)``, each of the batch shape. ``value`` keeps the gradient
        of ``log_weights``;
        ``stderr`` (NaN for S = 1) and ``khat`` (NaN for S <= 20, -inf when the largest
        weights are all equal) are detached. A column whose weights are all zero has
        ``value`` -inf and ``stderr`` and ``khat`` NaN.

    Warns
    -----
    UnreliableEstimateWarning
        With ``warn``: some column's k-hat exceeds 0.7, or some column's weights are all zero.
    """
    warn = check_bool(warn, "warn")
    stacklevel = check_int(stacklevel, "stacklevel", minimum=1)
    t, _ = _checked_log_weights(log_weights)
    est = importance_estimate_unchecked(t)
    if warn:
        warn_if_unreliable(est, what, stacklevel=stacklevel + 1, importance=True)
    return est


class StreamingImportanceEstimate:
    r""":func:`importance_estimate` accumulated over chunks of draws, without keeping them.

    For an S whose log weights (S x batch) do not fit in memory: feed the draws chunk by
    chunk to :meth:`update` (each of shape (S_c, ...), the batch shape fixed by the first),
    then :meth:`result` gives the same :class:`ImportanceEstimate` as the one-shot function
    on all S draws, up to float rounding. The log-sum-exps of log w and 2 log w run in
    float64 relative to each column's largest log weight m seen so far (rescaled when m
    grows), so log weights of any size keep their precision: value = m + LSE(log w - m)
    - log S; the standard error uses sum_s rel_s^2 = exp(LSE(2 log w) - 2 (value + log S)
    + 2 log S), since the relative weights rel_s = w_s / mean(w) have mean 1: sd(rel)^2 =
    (sum rel^2 - S) / (S - 1); Kish's ESS is exp(2 LSE(log w - m) - LSE(2 (log w - m))).
    The Pareto k-hat needs only the M + 1 largest log weights of each column
    (M = :func:`~vitoolkit.divergences.tail_length`), kept as the draws pass. Nothing is
    differentiable. Like the one-shot function, a chunk holding NaN or +inf is refused
    (-inf is a zero weight), and a column whose weights are all zero has value -inf and
    NaN standard error and k-hat.

    Parameters
    ----------
    num_samples : int >= 1
        S, the total number of draws that will be fed (it sets the tail length M).
    """

    def __init__(self, num_samples: int):
        self.num_samples = check_int(num_samples, "num_samples", minimum=1)
        self.seen = 0
        self._shift = self._lse = self._lse2 = self._top = None
        self._dtype = None

    @staticmethod
    def tail_size(num_samples: int) -> int:
        """M + 1: log weights kept per column for the Pareto fit (any Python int S)."""
        if num_samples < 2**53:
            return tail_length(num_samples) + 1
        return 3 * math.isqrt(num_samples) + 2  # ceil(3 sqrt(S)) + 1, without a float overflow

    @staticmethod
    def memory_bytes(num_samples: int, columns: int, itemsize: int) -> int:
        """Bytes held besides one chunk: the tails (twice, while merging) and the sums."""
        return columns * (2 * StreamingImportanceEstimate.tail_size(num_samples) * itemsize + 32)

    def update(self, log_weights: torch.Tensor) -> None:
        """Add a chunk of draws: a tensor of shape (S_c, ...) (rows are draws).

        Raises ``ValueError`` naming ``log_weights`` if it holds NaN or +inf (as
        :func:`importance_estimate` does), has another batch shape than the first
        chunk, or brings the draws beyond ``num_samples``.
        """
        if not isinstance(log_weights, torch.Tensor) or not log_weights.is_floating_point():
            raise TypeError(f"log_weights must be a floating-point tensor, got {type(log_weights).__name__}")
        lw = log_weights.detach()
        if lw.dim() < 1 or (self._lse is not None and lw.shape[1:] != self._lse.shape):
            expected = "(S_c, ...)" if self._lse is None else f"(S_c, {', '.join(map(str, self._lse.shape))})"
            raise ValueError(f"log_weights must have shape {expected}, got {tuple(lw.shape)}")
        if self.seen + lw.shape[0] > self.num_samples:
            raise ValueError(f"log_weights brings the draws to {self.seen + lw.shape[0]}, more than "
                             f"num_samples={self.num_samples}")
        bad = torch.isnan(lw) | (lw == math.inf)
        if bool(bad.any()):
            raise ValueError(f"log_weights contains {int(bad.sum())} NaN or +inf entries (of "
                             f"{lw.numel()}): a log weight must be a real number or -inf (a zero "
                             "weight)")
        if lw.shape[0] == 0:
            return
        lw64 = lw.double()
        top = lw64.amax(dim=0)
        if self._shift is None:
            self._shift = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
            self._lse = torch.logsumexp(lw64 - self._shift, dim=0)
            self._lse2 = torch.logsumexp(2 * (lw64 - self._shift), dim=0)
            self._dtype = lw.dtype
        else:
            # The shift is the largest finite log weight seen (0 while a column has none).
            seen = self._lse > -math.inf
            grown = torch.where(seen, torch.maximum(self._shift, top), top)
            shift = torch.where(torch.isfinite(grown), grown, self._shift)
            delta = self._shift - shift  # <= 0 where a finite weight was seen; finite
            self._lse = torch.logaddexp(self._lse + delta, torch.logsumexp(lw64 - shift, dim=0))
            self._lse2 = torch.logaddexp(self._lse2 + 2 * delta,
                                         torch.logsumexp(2 * (lw64 - shift), dim=0))
            self._shift = shift
        self.seen += lw.shape[0]
        keep = self.tail_size(self.num_samples)
        merged = lw if self._top is None else torch.cat([self._top, lw], dim=0)
        if merged.shape[0] > keep:
            merged = torch.topk(merged, keep, dim=0, largest=True, sorted=False).values
        self._top = merged

    def _check_complete(self) -> None:
        if self.seen != self.num_samples:
            raise ValueError(f"{self.seen} of num_samples={self.num_samples} draws were fed; "
                             "update with the rest first")

    def result(self, dtype: torch.dtype | None = None) -> Estimate:
        """The :class:`ImportanceEstimate` of all S draws, in ``dtype`` (default the chunks').

        ``dtype`` is None or a floating torch dtype (others are refused: an integer or
        complex dtype would truncate or reinterpret the figures).
        """
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be None or a floating torch dtype (torch.float32, "
                            f"torch.float64, ...), got {dtype!r}")
        self._check_complete()
        k = self.num_samples
        value = self._shift + self._lse - math.log(k)
        empty = self._lse == -math.inf
        if k > 1:
            sum_rel2 = torch.exp(self._lse2 - 2 * self._lse + 2 * math.log(k))
            var = ((sum_rel2 - k) / (k - 1)).clamp_min(0)
            stderr = torch.sqrt(var / k).masked_fill(empty, math.nan)
        else:
            stderr = torch.full_like(value, math.nan)
        khat = self._khat().masked_fill(empty, math.nan)
        dtype = self._dtype if dtype is None else dtype
        return Estimate(value.to(dtype), stderr.to(dtype), khat.to(dtype))

    def effective_sample_size(self) -> torch.Tensor:
        """Kish's ESS of all S draws, exp(2 LSE(log w - m) - LSE(2 (log w - m))) (float64);
        NaN where every weight is zero."""
        self._check_complete()
        return torch.exp(2 * self._lse - self._lse2)

    def _khat(self) -> torch.Tensor:
        """Pareto k-hat from the M + 1 largest log weights, by :func:`pareto_khat`'s own fit."""
        batch = self._lse.shape
        rows = self._top.double().reshape(self._top.shape[0], -1).T  # (columns, M + 1)
        return _right_tail_khat(rows, log_scale=True, num_samples=self.num_samples).reshape(batch)
