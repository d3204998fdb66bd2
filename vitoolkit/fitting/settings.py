"""The settings of one :func:`~vitoolkit.fitting.fit_gaussian` call, grouped and typed.

``fit_gaussian`` keeps its flat keyword arguments (they are public); at its entry
:func:`build_settings` checks every one of them once (``vitoolkit.validation``:
messages name the argument, ``TypeError`` for a wrong kind, ``ValueError`` for a
wrong value, memory refused before it is allocated) and groups them:

==========================  ======================================================
:class:`OptimiserSettings`  ``optimizer``, ``steps``, ``lr``, ``tol``, ``resample``
:class:`SamplingSettings`   ``num_samples``, ``value_samples``, ``generator``/``seed``
:class:`GridSettings`       ``bounds``, ``num_points`` (quadrature routes only)
:class:`StartSettings`      ``init``, ``n_init``
:class:`FitSettings`        the problem: target, proposal, divergence, alpha,
                            family, method (``"auto"`` resolved), and the above
==========================  ======================================================

Defaults that depend on the route (steps, sample counts, grid bounds) are resolved
here too, so the fitting code reads plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..validation import check_bool, check_choice, check_int, check_positive, check_real, check_seed
from ._checks import (
    check_bounds,
    check_dimension_memory,
    check_draws_memory,
    check_generator,
    check_grid_memory,
)
from .family import FAMILIES
from .objectives import Target
from .routes import DIVERGENCES, METHODS, resolve_method
from .starts import parse_inits, reference_moments

__all__ = ["OPTIMIZERS", "ALPHA_LIMIT", "OptimiserSettings", "SamplingSettings", "GridSettings",
           "StartSettings", "FitSettings", "build_settings"]

#: The optimisers.
OPTIMIZERS = ("lbfgs", "adam")
#: Largest abs(alpha) accepted: beyond it (p/q)^alpha over- or underflows float64 for density
#: ratios the targets reach, and D_alpha is no longer a useful number.
ALPHA_LIMIT = 100.0


@dataclass(frozen=True)
class OptimiserSettings:
    """How the parameters are optimised (see :mod:`vitoolkit.fitting.optimise`).

    Attributes
    ----------
    name : {"lbfgs", "adam"}
    steps : int >= 1, the most optimiser steps
    lr : float > 0, or None for the optimiser's default (1 for L-BFGS, 0.05 for Adam)
    tol : float >= 0, relative change of the objective that counts as settled
    resample : bool, fresh noise every Adam step on a Monte Carlo objective
    """

    name: str
    steps: int
    lr: float | None
    tol: float
    resample: bool


@dataclass(frozen=True)
class SamplingSettings:
    """The random draws of a fit.

    Attributes
    ----------
    num_samples : int >= 2, base-noise draws (stochastic) or target/proposal draws
    value_samples : int, draws for the Monte Carlo value at the optimum (0: none)
    generator : torch.Generator, the source of every random number
    """

    num_samples: int
    value_samples: int
    generator: torch.Generator


@dataclass(frozen=True)
class GridSettings:
    """The quadrature grid.

    Attributes
    ----------
    bounds : tuple of (lo, hi), one per dimension, for the fixed grid; None when not
        given and not needed (off the grid routes)
    num_points : int >= 3 or None, fixed-grid points per dimension
    moving_points : int, points per dimension of the grid that moves with q
        (reverse KL and alpha < 0, see :func:`vitoolkit.fitting.objectives.whitened_grid`)
    used : bool, whether the fit integrates on the grid (quadrature, and the value of a
        moments fit in 1-D/2-D); ``bounds`` and ``num_points`` are then resolved
    """

    bounds: tuple | None
    num_points: int | None
    moving_points: int
    used: bool = False

    @property
    def spec(self):
        """``(bounds, num_points)`` of the fixed grid when it is used, else None."""
        return (list(self.bounds), self.num_points) if self.used else None


@dataclass(frozen=True)
class StartSettings:
    """Where the optimiser starts.

    Attributes
    ----------
    inits : tuple of :class:`~vitoolkit.fitting.starts.Start`, or None for random starts
    n_init : int >= 1, the number of random starts
    """

    inits: tuple | None
    n_init: int


@dataclass(frozen=True)
class FitSettings:
    """Everything one fit needs, checked.

    Attributes
    ----------
    target, proposal : :class:`~vitoolkit.fitting.objectives.Target` (proposal or None)
    divergence : {"reverse", "forward", "alpha"}, as asked
    alpha : float or None
    kind : the divergence minimised: ``divergence``, except that alpha = 0 is
        "reverse" and alpha = 1 is "forward"
    family : {"full", "diagonal"}
    method : the route, "auto" resolved (see :data:`vitoolkit.fitting.routes.OBJECTIVES`)
    optimiser, sampling, grid, starts : the groups above
    """

    target: Target
    proposal: Target | None
    divergence: str
    alpha: float | None
    kind: str
    family: str
    method: str
    optimiser: OptimiserSettings
    sampling: SamplingSettings
    grid: GridSettings
    starts: StartSettings

    def reference_moments(self):
        """A rough (mean (D,), variance (D,)) of the target, computed once and only on demand
        (for default grid bounds and random starts; an ``init`` and ``bounds`` skip it)."""
        tgt = self.target
        if tgt.reference is None:
            tgt.reference = reference_moments(tgt, self.proposal, self.grid.bounds,
                                              self.sampling.generator)
        return tgt.reference

    @property
    def label(self) -> str:
        return self.divergence + (f" (alpha={self.alpha})" if self.alpha else "")


def _check_alpha(divergence, alpha):
    if divergence != "alpha":
        if alpha is not None:
            raise ValueError(f"alpha={alpha!r} is only used with divergence='alpha', "
                             f"got divergence={divergence!r}")
        return None
    if alpha is None:
        raise ValueError("divergence='alpha' needs alpha (a real number; Minka's convention: "
                         "0 is reverse KL, 1 is forward KL)")
    return check_real(alpha, "alpha", minimum=-ALPHA_LIMIT, maximum=ALPHA_LIMIT)


def _check_proposal(proposal, tgt):
    if proposal is None:
        return None
    prop = Target(proposal, "proposal")
    if prop.dim != tgt.dim or prop.scalar_event != tgt.scalar_event:
        raise ValueError(f"proposal event shape {tuple(proposal.event_shape)} does not match "
                         f"the target's {tuple(tgt.dist.event_shape)}")
    if not prop.can_sample:
        raise ValueError(f"proposal ({prop.kind}) must be able to sample")
    return prop


def build_settings(target, divergence, *, alpha, family, method, init, n_init, proposal,
                   num_samples, bounds, num_points, optimizer, steps, lr, tol, resample,
                   value_samples, generator, seed) -> FitSettings:
    """Check :func:`~vitoolkit.fitting.fit_gaussian`'s arguments and group them."""
    divergence = check_choice(divergence, DIVERGENCES, "divergence")
    alpha = _check_alpha(divergence, alpha)
    family = check_choice(family, FAMILIES, "family")
    method = check_choice(method, METHODS, "method")
    optimizer = check_choice(optimizer, OPTIMIZERS, "optimizer")
    n_init = check_int(n_init, "n_init", minimum=1)
    tol = check_real(tol, "tol", minimum=0.0)
    lr = None if lr is None else check_positive(lr, "lr")
    resample = check_bool(resample, "resample")
    value_samples = check_int(value_samples, "value_samples", minimum=0)
    if value_samples == 1:
        raise ValueError("value_samples must be 0 (no Monte Carlo value) or >= 2 (a standard "
                         "error needs two draws), got 1")
    seed = check_seed(seed)
    generator = check_generator(generator)
    tgt = Target(target, "target")
    check_dimension_memory(tgt.dim, family)
    prop = _check_proposal(proposal, tgt)
    if value_samples:
        check_draws_memory(value_samples, tgt.dim, "value_samples")
    if num_points is not None:
        num_points = check_int(num_points, "num_points", minimum=3)
        check_grid_memory(num_points, tgt.dim)
    if bounds is not None:
        bounds = tuple(check_bounds(bounds, tgt.dim))
    starts = StartSettings(None if init is None else
                           parse_inits(init, tgt.dim, tgt.scalar_event, family), n_init)

    kind, method = resolve_method(method, divergence, alpha, tgt, prop)
    if num_samples is None:
        num_samples = 2048 if method == "stochastic" else 20_000
    num_samples = check_int(num_samples, "num_samples", minimum=2)
    check_draws_memory(num_samples, tgt.dim, "num_samples")  # even if this route draws none
    steps = check_int(200 if optimizer == "lbfgs" and steps is None else
                      3000 if steps is None else steps, "steps", minimum=1)
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    settings = FitSettings(
        target=tgt, proposal=prop, divergence=divergence, alpha=alpha, kind=kind,
        family=family, method=method,
        optimiser=OptimiserSettings(optimizer, steps, lr, tol, resample),
        sampling=SamplingSettings(num_samples, value_samples, generator),
        grid=GridSettings(bounds, num_points, 401 if tgt.dim == 1 else 121), starts=starts)
    if method == "quadrature" or (method == "moments" and tgt.dim <= 2):
        settings = _with_grid(settings)
    return settings


def _with_grid(settings: FitSettings) -> FitSettings:
    """Resolve the grid: the target's own ``quadrature_bounds`` or E[x] +/- 7 sd by default."""
    tgt = settings.target
    bounds, num_points = settings.grid.bounds, settings.grid.num_points
    if bounds is None:
        bounds = getattr(tgt.dist, "quadrature_bounds", None)
        if bounds is not None:
            bounds = tuple(check_bounds(bounds, tgt.dim, f"{tgt.kind}.quadrature_bounds"))
    if bounds is None:
        mean, var = settings.reference_moments()
        sd = var.clamp_min(1e-12).sqrt()
        bounds = tuple((float(m - 7 * s), float(m + 7 * s)) for m, s in zip(mean, sd, strict=True))
    if num_points is None:
        num_points = 801 if tgt.dim == 1 else 101
    return replace(settings, grid=replace(settings.grid, bounds=bounds, num_points=num_points,
                                          used=True))
