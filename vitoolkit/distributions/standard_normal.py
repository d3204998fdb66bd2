"""The standard normal N(0, 1) with a given batch shape: the factors of the VAE prior."""

from __future__ import annotations

import torch
from torch.distributions import Normal

from .checks import (
    _number_or_param,
    check_validate_args,
)

__all__ = ["StandardNormal"]


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
