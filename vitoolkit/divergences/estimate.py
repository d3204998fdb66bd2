r"""The one result of every Monte Carlo and importance summary, and its one warning.

:class:`Estimate` is a named tuple ``(value, stderr, khat)``: the estimate, its standard
error (same shape) and the Pareto k-hat diagnostic of what was averaged (Vehtari et al.
2024, section 3; NaN where the summary does not compute one). Every Monte Carlo KL
(:func:`~vitoolkit.divergences.monte_carlo_kl`), average with its error
(:func:`~vitoolkit.divergences.mean_and_stderr`), importance-sampled estimate
(:func:`~vitoolkit.divergences.importance_estimate`, the VAE's ``log_likelihood`` and
``iwae_estimate``) and the conjugate model's evidence returns one.

:func:`warn_if_unreliable` is the one place the package decides that an estimate's
error bar cannot be trusted (k-hat above :data:`~vitoolkit.divergences.KHAT_THRESHOLD`,
0.7), with the wording for averaged terms or for importance weights.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch

from ..exceptions import UnreliableEstimateWarning
from ..validation import check_bool, check_int
from .psis import KHAT_THRESHOLD

__all__ = ["Estimate", "warn_if_unreliable"]


class _EstimateFields(NamedTuple):
    value: torch.Tensor
    stderr: torch.Tensor
    khat: torch.Tensor


class Estimate(_EstimateFields):
    r"""A Monte Carlo or importance-sampled estimate: ``(value, stderr, khat)``.

    ``value``: the estimate; ``stderr``: its standard error (for an importance estimate of
    log Z the delta-method error sd(w) / (sqrt(S) mean(w)), i.e. the relative standard
    error of Z_hat, Kingma & Welling 2013, App. D); ``khat``: the Pareto k-hat of what was
    averaged (Vehtari et al. 2024), NaN where not computed (``Estimate(value, stderr)``).
    Above 0.7 the standard error cannot be trusted. All three of one shape.

    A named tuple of three fields (``est.value``, ``est.stderr``, ``est.khat``; ``est[0]``,
    ``est[1]``, ``est[2]``). Iterating it gives the pair ``(value, stderr)``, so that the
    unpacking course material has always written, ``value, stderr = est``, stays valid;
    ``khat`` is read by name.
    """

    __slots__ = ()

    def __new__(cls, value, stderr, khat=None):
        if khat is None:
            khat = torch.full_like(torch.as_tensor(value), math.nan)
        return super().__new__(cls, value, stderr, khat)

    def __iter__(self):
        """The pair ``(value, stderr)``: ``value, stderr = est`` (k-hat by name)."""
        yield self.value
        yield self.stderr

    @classmethod
    def concatenate(cls, parts, dim: int = 0) -> Estimate:
        """One estimate from estimates of consecutive chunks (each field concatenated on ``dim``)."""
        parts = list(parts)
        if not parts:
            raise ValueError("Estimate.concatenate: parts must hold at least one Estimate")
        return Estimate(*(torch.cat([getattr(part, name) for part in parts], dim=dim)
                          for name in cls._fields))

    def __getnewargs__(self):
        return (self.value, self.stderr, self.khat)

    def _asdict(self) -> dict:
        """``{"value": ..., "stderr": ..., "khat": ...}``: all three fields."""
        return {"value": self.value, "stderr": self.stderr, "khat": self.khat}

    def _replace(self, **changes) -> Estimate:
        """A copy with the named fields replaced (``value``, ``stderr``, ``khat``)."""
        unknown = set(changes) - set(self._fields)
        if unknown:
            raise ValueError(f"Estimate._replace: unknown fields {sorted(unknown)}; "
                             f"expected some of {self._fields}")
        fields = {**Estimate._asdict(self), **changes}
        return Estimate(fields["value"], fields["stderr"], fields["khat"])


def warn_if_unreliable(est: Estimate, what: str, *, stacklevel: int = 3,
                       importance: bool = False) -> None:
    """Issue an :class:`~vitoolkit.exceptions.UnreliableEstimateWarning` when any ``est.khat``
    exceeds :data:`~vitoolkit.divergences.KHAT_THRESHOLD` (0.7).

    Parameters
    ----------
    est : Estimate
    what : str
        Names the estimate in the message.
    stacklevel : int >= 1
        Passed to :func:`warnings.warn` (2: the line calling this function).
    importance : bool
        ``est`` summarises importance weights (one column per example): the message
        speaks of the weights p(x, z)/q(z|x), and a column whose weights are all zero
        (``value`` -inf) is warned about too.
    """
    if not isinstance(est, Estimate):
        raise TypeError(f"est must be an Estimate (from monte_carlo_kl, mean_and_stderr...), "
                        f"got {type(est).__name__}")
    stacklevel = check_int(stacklevel, "stacklevel", minimum=1)
    importance = check_bool(importance, "importance")
    khat = torch.as_tensor(est.khat)
    if importance:
        empty = torch.as_tensor(est.value).detach() == -math.inf
        if bool(empty.any()):
            warnings.warn(
                f"{what}: {int(empty.sum())} of {empty.numel()} examples have every importance "
                "weight zero (all log weights -inf): the estimate is -inf and its standard "
                "error and Pareto k-hat are NaN. The proposal puts no draw where the target "
                "has mass; use a proposal that covers the target.",
                UnreliableEstimateWarning, stacklevel=stacklevel)
    bad = khat > KHAT_THRESHOLD
    if not bool(bad.any()):
        return
    if importance:
        warnings.warn(
            f"{what}: {int(bad.sum())} of {khat.numel()} examples have Pareto k-hat > "
            f"{KHAT_THRESHOLD} (worst {float(khat[bad].max()):.2f}). For them the importance "
            "weights p(x, z)/q(z|x) are so heavy-tailed that the estimate and its standard "
            "error cannot be trusted (the estimate is likely too low); use more samples or "
            "a proposal closer to the posterior.",
            UnreliableEstimateWarning, stacklevel=stacklevel)
        return
    worst = float(khat[bad].max())
    where = "" if khat.dim() == 0 else f" ({int(bad.sum())} of {khat.numel()} entries)"
    warnings.warn(
        f"{what}: Pareto k-hat {worst:.2f} > {KHAT_THRESHOLD}{where}. The averaged terms have "
        "a tail so heavy that their variance is infinite (or effectively so): the estimate is "
        "unbiased but its standard error cannot be trusted (it is computed from draws that "
        "have not yet met the tail carrying the variance) and the value may be far off.",
        UnreliableEstimateWarning, stacklevel=stacklevel,
    )
