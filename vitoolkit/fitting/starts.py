"""Starting points for the fits: ``init`` dicts checked at the boundary, random starts."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..validation import as_float_tensor
from ._checks import F64, as_vector
from .family import GaussianParams

__all__ = ["Start", "parse_inits", "reference_moments", "default_starts", "spread_locations",
           "POOL_PER_START"]

#: target draws per start from which :func:`spread_locations` picks the starting means
POOL_PER_START = 64


@dataclass(frozen=True)
class Start:
    """One starting Gaussian: ``loc`` (D,) and a lower-triangular ``scale_tril`` (D, D)."""

    loc: torch.Tensor
    scale_tril: torch.Tensor

    def params(self, family: str, scalar_event: bool) -> GaussianParams:
        """Trainable parameters of the family (a diagonal family keeps diag(scale_tril))."""
        tril = self.scale_tril
        if family == "diagonal":
            tril = torch.diag(torch.diagonal(tril))
        return GaussianParams(self.loc, tril, family, scalar_event)


def parse_inits(init, dim: int, scalar_event: bool, family: str) -> tuple:
    """``init`` (a dict, or a list/tuple of dicts) as a tuple of :class:`Start`.

    Each dict has ``"loc"`` of shape (D,) and either ``"scale"`` (D,) or a float, or
    ``"covariance"`` (D, D), symmetric positive definite (diagonal for
    ``family="diagonal"``). For a target with event shape () the loc may be a number,
    and for D = 1 the covariance a number. Nothing else is reshaped.
    """
    if isinstance(init, dict):
        return (_parse_one(init, "init", dim, scalar_event, family),)
    if not isinstance(init, (list, tuple)):
        raise TypeError(f"init must be a dict with 'loc' and 'scale' or 'covariance', or a list "
                        f"of such dicts, got {type(init).__name__}")
    if not init:
        raise ValueError("init must not be an empty list")
    return tuple(_parse_one(entry, f"init[{i}]", dim, scalar_event, family)
                 for i, entry in enumerate(init))


def _parse_one(entry, name, dim, scalar_event, family) -> Start:
    if not isinstance(entry, dict) or "loc" not in entry:
        raise TypeError(f"{name} must be a dict with 'loc' and 'scale' or 'covariance', got "
                        f"{entry!r}")
    unknown = set(entry) - {"loc", "scale", "covariance"}
    if unknown:
        raise ValueError(f"{name} has unknown keys {sorted(unknown)}; use 'loc' and 'scale' or "
                         "'covariance'")
    if "scale" in entry and "covariance" in entry:
        raise ValueError(f"{name} gives both 'scale' and 'covariance'; give one")
    loc = as_vector(entry["loc"], f"{name}['loc']", dim, scalar_event=scalar_event)
    if "covariance" in entry:
        cov = as_float_tensor(entry["covariance"], f"{name}['covariance']", dtype=F64)
        if cov.dim() == 0 and dim == 1:
            cov = cov.reshape(1, 1)
        if tuple(cov.shape) != (dim, dim):
            raise ValueError(f"{name}['covariance'] must have shape ({dim}, {dim}) for the "
                             f"target's dimension D={dim}, got shape {tuple(cov.shape)}")
        if family == "diagonal" and bool((cov - torch.diag(torch.diagonal(cov))).abs().max() > 0):
            raise ValueError(f"family='diagonal' needs a diagonal {name}['covariance'] (or "
                             "'scale'); got off-diagonal entries")
        if float((cov - cov.mT).abs().max()) > 1e-10 * float(cov.abs().max()):
            raise ValueError(f"{name}['covariance'] must be symmetric, got {cov.tolist()}")
        tril, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0:
            raise ValueError(f"{name}['covariance'] must be positive definite")
        return Start(loc, tril)
    scale = as_float_tensor(entry.get("scale", 1.0), f"{name}['scale']", dtype=F64)
    if scale.dim() == 0:
        scale = scale.expand(dim)  # one number for every dimension (documented)
    scale = as_vector(scale, f"{name}['scale']", dim, scalar_event=scalar_event)
    if not bool((scale > 0).all()):
        raise ValueError(f"{name}['scale'] must be positive, got {scale.tolist()}")
    return Start(loc, torch.diag(scale))


def reference_moments(target, proposal, bounds, generator):
    """A rough (mean (D,), variance (D,)) of the target, for default grids and random starts."""
    moments = target.moments()
    if moments is not None:
        return moments[0], torch.diagonal(moments[1])
    try:
        return (target.dist.mean.reshape(-1).to(F64), target.dist.variance.reshape(-1).to(F64))
    except (AttributeError, NotImplementedError):
        pass
    if target.can_sample:
        x = target.sample(4096, generator)
        return x.mean(0), x.var(0)
    if proposal is not None:
        from .objectives import snis_weights

        x = proposal.sample(4096, generator)
        log_r = proposal.log_prob(x, during="SNIS (proposal density)", allow_neg_inf=False)
        log_p = target.log_prob(x, during="choosing a starting point", allow_neg_inf=True)
        w, _ = snis_weights(log_p, log_r)
        mean = (w.unsqueeze(-1) * x).sum(0)
        return mean, (w.unsqueeze(-1) * (x - mean).pow(2)).sum(0)
    if bounds is not None:
        lo = torch.tensor([b[0] for b in bounds], dtype=F64)
        hi = torch.tensor([b[1] for b in bounds], dtype=F64)
        return (lo + hi) / 2, ((hi - lo) / 8).pow(2)
    raise ValueError(f"cannot place a starting point for {target.kind}: it has no known moments, "
                     "no sampler and no proposal; pass init={'loc': ..., 'scale': ...} and, for "
                     "quadrature, bounds=[(lo, hi), ...]")


def default_starts(n_init, target, ref_mean, ref_var, generator, narrow) -> tuple:
    r"""Random starts, scale :math:`\sqrt{\mathrm{Var}[x]}` (divided by 3 when ``narrow``).

    One start (``n_init=1``) has its mean drawn from the target (or from
    :math:`\mathcal N(E[x], \mathrm{diag}\,\mathrm{Var}[x])` if it cannot sample). Several
    starts have their means spread over the target's mass by :func:`spread_locations`: the
    centres of a k-means clustering of ``POOL_PER_START * n_init`` such draws, so that every
    region holding mass gets a start (a plain draw per start may put them all in the
    heaviest mode; scikit-learn's ``GaussianMixture`` initialises its ``n_init`` runs from
    k-means for the same reason).

    A narrow start near a draw climbs into the mode it is in; a wide one can stall in
    the reverse-KL optimum that straddles several modes.
    """
    sd = ref_var.clamp_min(1e-12).sqrt()
    pool = POOL_PER_START * n_init if n_init > 1 else 1
    if target.can_sample:
        locs = target.sample(pool, generator)
    else:
        eps = torch.randn(pool, ref_mean.shape[0], generator=generator, dtype=F64)
        locs = ref_mean + sd * eps
    if n_init > 1:
        locs = spread_locations(locs, n_init, generator)
    tril = torch.diag(sd / 3 if narrow else sd)
    return tuple(Start(loc, tril) for loc in locs)


def spread_locations(points: torch.Tensor, k: int, generator, iterations: int = 20) -> torch.Tensor:
    """``k`` points spread over a cloud: k-means centres, seeded by k-means++.

    Parameters
    ----------
    points : Tensor of shape (N, D), N >= k
    k : int, the number of centres
    generator : torch.Generator, the seeding's randomness
    iterations : int, Lloyd steps after the seeding

    Returns
    -------
    Tensor of shape (k, D)

    Notes
    -----
    k-means++ (Arthur & Vassilvitskii 2007, section 2.2) draws each new centre with
    probability proportional to its squared distance to the nearest centre already
    chosen; Lloyd's steps (Lloyd 1982) then move every centre to the mean of its
    cluster, so the centres sit inside the mass, not on its outliers.
    """
    n = points.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centres = points[first:first + 1]
    for _ in range(1, k):
        d2 = torch.cdist(points, centres).pow(2).min(dim=1).values
        if float(d2.sum()) <= 0:  # every point already on a centre: repeat one
            nxt = int(torch.randint(n, (1,), generator=generator))
        else:
            nxt = int(torch.multinomial(d2 / d2.sum(), 1, generator=generator))
        centres = torch.cat([centres, points[nxt:nxt + 1]])
    for _ in range(iterations):
        label = torch.cdist(points, centres).argmin(dim=1)
        moved = centres.clone()
        for j in range(k):
            members = points[label == j]
            if members.shape[0]:
                moved[j] = members.mean(0)
        if torch.equal(moved, centres):
            break
        centres = moved
    return centres
