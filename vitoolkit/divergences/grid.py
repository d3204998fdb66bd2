r"""Divergences of 1-D and 2-D densities by quadrature on a grid.

The deterministic, independent route used by demos and tests: evaluate both log
densities on a regular grid and integrate with the trapezoidal rule, which
converges geometrically fast for smooth densities that decay inside the grid. The
integrals (Minka 2005, eq. 2, for :math:`D_\alpha`; Renyi 1961 for :math:`D^R_\alpha`):

.. math::

    \mathrm{KL}(p \,\|\, q) &= \int p (\log p - \log q) \, dx, \\
    D_\alpha(p \,\|\, q) &= \frac{1}{\alpha (1 - \alpha)}
        \int \big[\alpha p + (1 - \alpha) q - p^\alpha q^{1-\alpha}\big] \, dx, \\
    D^R_\alpha(p \,\|\, q) &= \frac{1}{\alpha - 1} \log \int p^\alpha q^{1-\alpha} \, dx.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import torch

from ..validation import check_choice, check_int, check_memory, check_positive, check_real
from ._checks import check_alpha, check_distribution, check_pair

__all__ = ["Grid", "make_grid", "evaluate_on_grid", "grid_divergence", "default_bounds",
           "integrand_bounds"]

_DIVERGENCES = ("kl", "alpha", "renyi")
#: Largest fraction of the integrand's mass left in the outer 1% of the grid on a side.
_TAIL_TOL = 1e-13
#: How many times a side may be moved out by the grid's width before giving up.
_MAX_DOUBLINGS = 10


class Grid(NamedTuple):
    """A regular grid: ``axes`` (one 1-D tensor per dimension) and ``points`` (..., D)."""

    axes: tuple
    points: torch.Tensor

    @property
    def shape(self) -> tuple:
        return tuple(len(a) for a in self.axes)

    def integrate(self, values: torch.Tensor) -> torch.Tensor:
        """Trapezoidal integral of ``values`` (shape ``self.shape``) over the grid."""
        out = values
        for axis in reversed(self.axes):
            out = torch.trapezoid(out, axis, dim=-1)
        return out

    def weights(self) -> torch.Tensor:
        """The trapezoidal rule's weight of every point, shape ``self.shape`` (float64).

        The product over axes of w_i = (x_{i+1} - x_{i-1}) / 2 (half a cell at the ends),
        so ``integrate(values) == (weights() * values).sum()``.
        """
        out = None
        for axis in self.axes:
            h = torch.diff(axis.to(torch.float64))
            w = torch.zeros(len(axis), dtype=torch.float64, device=axis.device)
            w[:-1] += h / 2
            w[1:] += h / 2
            out = w if out is None else out.unsqueeze(-1) * w
        return out

    def log_weights(self) -> torch.Tensor:
        """log of :meth:`weights`, flattened to (M,) in ``points.reshape(-1, D)`` order.

        For integrals in log space: log integral exp(f) = logsumexp(f.reshape(-1) + log_weights()).
        """
        return self.weights().reshape(-1).log()


def _dimension(d) -> int:
    shape = tuple(d.event_shape)
    if shape in ((), (1,)):
        return 1
    if shape == (2,):
        return 2
    raise ValueError(f"grid quadrature handles 1-D and 2-D densities, got event_shape {shape}")


def default_bounds(*dists, width: float = 10.0):
    """Bounds covering every distribution's mean +/- ``width`` standard deviations."""
    width = check_positive(width, "width")
    if not dists:
        raise TypeError("default_bounds needs at least one distribution (dists)")
    dims = set()
    for d in dists:
        check_distribution(d, "dists")
        try:
            dims.add(_dimension(d))
        except ValueError as err:
            raise ValueError(f"dists: {err}") from None
        if tuple(d.batch_shape) != ():
            raise ValueError(f"dists must be unbatched, got batch_shape {tuple(d.batch_shape)}")
    if len(dims) > 1:
        raise ValueError(f"dists must all be 1-D or all 2-D, got event shapes "
                         f"{[tuple(d.event_shape) for d in dists]}")
    lows, highs = [], []
    for d in dists:
        try:
            mean = d.mean.reshape(-1).double()
            sd = d.variance.reshape(-1).double().sqrt()
        except (NotImplementedError, AttributeError) as err:
            raise ValueError(
                f"{type(d).__name__} has no mean/variance to choose grid bounds from; "
                "pass bounds explicitly"
            ) from err
        if not bool(torch.isfinite(mean).all() and torch.isfinite(sd).all()):
            raise ValueError(f"{type(d).__name__} has non-finite moments; pass bounds explicitly")
        lows.append(mean - width * sd)
        highs.append(mean + width * sd)
    lo = torch.stack(lows).min(0).values
    hi = torch.stack(highs).max(0).values
    return [(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]


def _check_bounds(bounds, dim: int):
    """[(lo, hi)] * dim (a single (lo, hi) pair is accepted in 1-D)."""
    if dim == 1 and isinstance(bounds, (tuple, list)) and len(bounds) == 2 \
            and all(isinstance(b, (int, float)) for b in bounds):
        bounds = [tuple(bounds)]
    if not isinstance(bounds, (tuple, list)) or len(bounds) != dim:
        raise ValueError(f"bounds must be a list of {dim} (lo, hi) pair(s), one per dimension, "
                         f"got {bounds!r}")
    return bounds


def _grid_bytes(num_points: int, dim: int, arrays_per_point: int) -> int:
    """Bytes of ``arrays_per_point`` float64 arrays on a num_points^dim grid (Python ints)."""
    return num_points ** dim * arrays_per_point * 8


def _check_grid_bounds(bounds) -> list:
    """``bounds`` as a list of one or two finite (lo, hi) pairs with hi > lo; errors name it."""
    shape_error = TypeError(f"bounds must be (lo, hi), [(lo, hi)] or [(lo, hi), (lo, hi)] of "
                            f"real numbers, got {bounds!r}"[:300])
    if hasattr(bounds, "tolist") and getattr(bounds, "ndim", None) in (1, 2):
        bounds = bounds.tolist()  # a NumPy array or tensor of pairs
    if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence):
        raise shape_error
    if len(bounds) and isinstance(bounds[0], numbers.Real) and not isinstance(bounds[0], bool):
        bounds = [bounds]
    if not 1 <= len(bounds) <= 2:
        raise ValueError(f"bounds must give one (lo, hi) pair per dimension of a 1-D or 2-D "
                         f"grid, got {len(bounds)} pairs")
    pairs = []
    for pair in bounds:
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise shape_error
        try:
            lo, hi = (check_real(v, "bounds") for v in pair)
        except ValueError as err:
            raise ValueError(f"bounds must be finite with hi > lo: {err}") from None
        if not hi > lo:
            raise ValueError(f"bounds must be finite with hi > lo, got ({lo}, {hi})")
        if not math.isfinite(hi - lo):
            raise ValueError(f"bounds ({lo}, {hi}) are too wide: hi - lo overflows float64")
        pairs.append((lo, hi))
    return pairs


def make_grid(bounds, num_points: int, dtype=torch.float64) -> Grid:
    """A regular grid over ``bounds`` = [(lo, hi)] or [(lo, hi), (lo, hi)].

    ``num_points`` (an int >= 3) points per axis; a grid whose points would not fit in
    memory is refused before allocating (``ResourceLimitError`` naming ``num_points``).
    ``dtype`` is torch.float32 or torch.float64.
    """
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    pairs = _check_grid_bounds(bounds)
    big = float(torch.finfo(dtype).max)
    if any(abs(v) > big or hi - lo > big for lo, hi in pairs for v in (lo, hi)):
        raise ValueError(f"bounds {pairs} exceed the range of dtype={dtype} (largest finite "
                         f"{big:.3g})")
    num_points = check_int(num_points, "num_points", minimum=3)
    check_memory(_grid_bytes(num_points, len(pairs), len(pairs)), "num_points", num_points,
                 f"a grid of {num_points}^{len(pairs)} points")
    axes = []
    for lo, hi in pairs:
        axes.append(torch.linspace(lo, hi, num_points, dtype=dtype))
    mesh = torch.meshgrid(*axes, indexing="ij")
    return Grid(tuple(axes), torch.stack(mesh, -1))


def evaluate_on_grid(dist, grid: Grid) -> torch.Tensor:
    """``dist.log_prob`` on every grid point, shape ``grid.shape``."""
    check_distribution(dist, "dist")
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a Grid (from make_grid), got {type(grid).__name__}")
    if _event_dim(dist) != len(grid.axes):
        raise ValueError(f"dist has event_shape {tuple(dist.event_shape)} but the grid is "
                         f"{len(grid.axes)}-D")
    if tuple(dist.batch_shape) != ():
        raise ValueError(f"dist must be unbatched for grid quadrature, got batch_shape "
                         f"{tuple(dist.batch_shape)}")
    pts = grid.points
    if tuple(dist.event_shape) == ():
        pts = pts.squeeze(-1)
    with torch.no_grad():
        return dist.log_prob(pts.to(_dtype_of(dist)))


def _event_dim(dist) -> int:
    shape = tuple(dist.event_shape)
    return 1 if shape == () else int(math.prod(shape))


def _dtype_of(dist):
    for value in vars(dist).values():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.dtype
    return torch.get_default_dtype()


def _log_mass(lp, lq, divergence, alpha):
    """log of a non-negative function whose tails bound the integrand's (same shape)."""
    if divergence == "kl":
        # p |log p - log q| and p itself (the KL integrand is p (log p - log q)).
        gap = torch.log(torch.abs(lp - lq))
        return torch.logaddexp(lp, lp + torch.nan_to_num(gap, nan=-math.inf))
    mixed = alpha * lp + (1 - alpha) * lq
    return torch.logsumexp(torch.stack([lp, lq, torch.nan_to_num(mixed, nan=-math.inf)]), 0)


def _marginal(mass, axis):
    others = tuple(d for d in range(mass.dim()) if d != axis)
    return mass.sum(others) if others else mass


def _edge_fractions(log_mass, grid, band):
    """Per axis, the fraction of the mass in the first and last ``band`` points."""
    shift = log_mass.max()
    mass = torch.exp(log_mass - shift) * grid.weights()
    total = mass.sum()
    out = []
    for axis in range(mass.dim()):
        marginal = _marginal(mass, axis)
        out.append((float(marginal[:band].sum() / total), float(marginal[-band:].sum() / total)))
    return out


def _significant_range(log_mass, grid, tol):
    """Per axis, the bounds of the points whose marginal mass is above ``tol`` of the total."""
    mass = torch.exp(log_mass - log_mass.max()) * grid.weights()
    total = mass.sum()
    out = []
    for axis, ax in enumerate(grid.axes):
        marginal = _marginal(mass, axis) / total
        keep = (marginal > tol).nonzero().squeeze(-1)
        lo_i = max(int(keep[0]) - 1, 0)
        hi_i = min(int(keep[-1]) + 1, len(ax) - 1)
        out.append((float(ax[lo_i]), float(ax[hi_i])))
    return out


def integrand_bounds(p, q, divergence: str = "kl", *, alpha: float | None = None,
                     num_points: int | None = None, tol: float = _TAIL_TOL,
                     max_doublings: int = _MAX_DOUBLINGS):
    """Grid bounds chosen from the integrand of the divergence, not from p and q alone.

    Starts from :func:`default_bounds` (mean +/- 10 sd of p and q) and, while the
    integrand's mass (p * abs(log p - log q) and p for KL; p, q and p^alpha q^(1-alpha) for the
    alpha and Renyi divergences) in the outer 1% of the grid on a side exceeds ``tol`` of
    its total, moves that side out by the current width. The geometric mean
    p^alpha q^(1-alpha) is centred outside both densities when alpha < 0 or alpha > 1, so
    moment-based bounds alone can cut it off. Finally the bounds are trimmed to where the
    mass is above ``tol`` (plus one cell), so the points are not wasted on empty space.

    Raises ``ValueError`` when the tails have not decayed after ``max_doublings`` moves
    (the divergence may be infinite, or the tails too heavy: pass bounds explicitly).
    """
    dim = _dimension(p)
    if num_points is None:
        num_points = 4001 if dim == 1 else 601
    bounds = default_bounds(p, q)
    band = max(2, num_points // 100)
    for _ in range(max_doublings + 1):
        grid = make_grid(bounds, num_points)
        log_mass = _log_mass(*_log_densities(p, q, grid), divergence, alpha)
        if bool(torch.isposinf(log_mass).any()):
            return bounds  # the integrand is infinite somewhere: so is the divergence
        fractions = _edge_fractions(log_mass, grid, band)
        moved = False
        new = []
        for (lo, hi), (left, right) in zip(bounds, fractions, strict=True):
            width = hi - lo
            if not left <= tol:
                lo, moved = lo - width, True
            if not right <= tol:
                hi, moved = hi + width, True
            new.append((lo, hi))
        if not moved:
            return _significant_range(log_mass, grid, tol * 1e-3)
        bounds = new
    raise ValueError(
        f"the {divergence} integrand of {type(p).__name__} and {type(q).__name__} still has "
        f"more than {tol:g} of its mass at the edge of bounds {bounds} after {max_doublings} "
        "doublings: the divergence may be infinite or the tails too heavy for a grid; pass "
        "bounds explicitly")


def _log_densities(p, q, grid):
    lp = evaluate_on_grid(p, grid).double()
    lq = evaluate_on_grid(q, grid).double()
    if bool(torch.isnan(lp).any() or torch.isnan(lq).any()):
        raise ValueError("log densities were NaN on the grid")
    return lp, lq


def grid_divergence(p, q, divergence: str = "kl", *, alpha: float | None = None, bounds=None,
                    num_points: int | None = None) -> torch.Tensor:
    r"""A divergence between two 1-D or 2-D densities by trapezoidal quadrature.

    Parameters
    ----------
    p, q : torch.distributions.Distribution
        Unbatched, event_shape (), (1,) or (2,).
    divergence : {"kl", "alpha", "renyi"}
        ``"kl"`` is :math:`\mathrm{KL}(p \,\|\, q)`; ``"alpha"`` Minka's
        :math:`D_\alpha(p \,\|\, q)`; ``"renyi"`` :math:`D^R_\alpha(p \,\|\, q)` (the
        integrals are in the module docstring).
    alpha : float, required for "alpha" and "renyi".
    bounds : [(lo, hi)] per dimension, optional
        Default: chosen from the integrand by :func:`integrand_bounds` (expanded until
        its tails carry less than 1e-13 of its mass, then trimmed).
    num_points : int >= 3, optional
        Points per dimension (default 4001 in 1-D, 601 in 2-D). A grid that would not
        fit in memory is refused before allocating (``ResourceLimitError``).

    Returns
    -------
    Tensor (scalar, float64).
    """
    check_pair(p, q)
    for d, name in ((p, "p"), (q, "q")):
        if tuple(d.batch_shape) != ():
            raise ValueError(f"{name} must be unbatched for grid quadrature, got batch_shape "
                             f"{tuple(d.batch_shape)}")
    divergence = check_choice(divergence, _DIVERGENCES, "divergence")
    try:
        dim = _dimension(p)
    except ValueError as err:
        raise ValueError(f"p and q: {err}") from None
    if alpha is not None:
        alpha = check_alpha(alpha)
    elif divergence != "kl":
        raise ValueError(f"alpha is required for divergence={divergence!r}")
    if bounds is not None:
        bounds = _check_bounds(bounds, dim)
    if num_points is None:
        num_points = 4001 if dim == 1 else 601
    num_points = check_int(num_points, "num_points", minimum=3)
    # Points, two log densities and about five temporaries per point, before allocating.
    check_memory(_grid_bytes(num_points, dim, dim + 8), "num_points", num_points,
                 f"quadrature on {num_points}^{dim} points")
    kind, a = divergence, alpha
    if divergence == "alpha" and alpha == 0.0:
        p, q, kind = q, p, "kl"
    elif divergence in ("alpha", "renyi") and alpha == 1.0:
        kind = "kl"
    if bounds is None:
        bounds = integrand_bounds(p, q, kind, alpha=a, num_points=num_points)
    grid = make_grid(bounds, num_points)
    lp, lq = _log_densities(p, q, grid)
    if kind == "kl":
        dens = torch.exp(lp)
        integrand = torch.where(dens > 0, dens * (lp - lq), torch.zeros_like(dens))
        return grid.integrate(integrand)
    mixed = torch.exp(alpha * lp + (1 - alpha) * lq)
    mixed = torch.where(torch.isnan(mixed), torch.zeros_like(mixed), mixed)
    if kind == "renyi":
        return torch.log(grid.integrate(mixed)) / (alpha - 1)
    return grid.integrate(_alpha_integrand(lp, lq, alpha, mixed))


def _alpha_integrand(lp, lq, alpha, mixed):
    """[alpha p + (1-alpha) q - p^alpha q^(1-alpha)] / (alpha (1-alpha)) without cancellation.

    For alpha < 1/2, with d = log p - log q, it equals
    [p - q - q expm1(alpha d) / alpha] / (1 - alpha), which tends to the KL(q || p)
    integrand as alpha -> 0 instead of dividing a difference of nearly equal numbers by
    alpha; for alpha >= 1/2 the same with p and q swapped and 1 - alpha (Minka's
    D_alpha(p || q) = D_{1-alpha}(q || p)). Points where that form is not finite (a
    density zero) use the direct one.
    """
    direct = (alpha * torch.exp(lp) + (1 - alpha) * torch.exp(lq) - mixed) / (alpha * (1 - alpha))
    if alpha >= 0.5:
        lp, lq, alpha = lq, lp, 1.0 - alpha
    t = alpha * (lp - lq)
    big = t > 30  # expm1(t) = exp(t) to double precision: no cancellation to avoid
    term = torch.where(big, torch.exp(lq + t.clamp_min(30)) / alpha,
                       torch.exp(lq) * torch.expm1(t.clamp_max(30)) / alpha)
    stable = (torch.exp(lp) - torch.exp(lq) - term) / (1 - alpha)
    return torch.where(torch.isfinite(stable), stable, direct)
