"""Starting points for the fits: the target's rough scale, init dicts, random starts."""

from __future__ import annotations

import torch

from . import objectives as obj
from .family import GaussianParams

__all__ = ["reference_moments", "init_params", "default_inits"]


def reference_moments(target, proposal, bounds, generator):
    """A rough (mean (D,), variance (D,)) of the target for grids and default inits."""
    moments = target.moments()
    if moments is not None:
        return moments[0], torch.diagonal(moments[1])
    try:
        return (target.dist.mean.reshape(-1).to(torch.float64),
                target.dist.variance.reshape(-1).to(torch.float64))
    except (AttributeError, NotImplementedError):
        pass
    if target.can_sample:
        x = target.sample(4096, generator)
        return x.mean(0), x.var(0)
    if proposal is not None:
        x = proposal.sample(4096, generator)
        log_r = proposal.log_prob(x, during="SNIS (proposal density)", allow_neg_inf=False)
        log_p = target.log_prob(x, during="choosing a starting point", allow_neg_inf=True)
        w, _ = obj.snis_weights(log_p, log_r)
        mean = (w.unsqueeze(-1) * x).sum(0)
        return mean, (w.unsqueeze(-1) * (x - mean).pow(2)).sum(0)
    if bounds is not None:
        lo = torch.tensor([b[0] for b in bounds], dtype=torch.float64)
        hi = torch.tensor([b[1] for b in bounds], dtype=torch.float64)
        return (lo + hi) / 2, ((hi - lo) / 8).pow(2)
    raise ValueError(f"cannot place a starting point for {target.kind}: it has no known moments, "
                     "no sampler and no proposal; pass init={'loc': ..., 'scale': ...} and, for "
                     "quadrature, bounds=[(lo, hi), ...]")


def _as_vector(value, name, d, scalar_event):
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.dim() == 0 and scalar_event:
        t = t.reshape(1)
    if t.shape != (d,):
        want = "() or (1,)" if scalar_event else f"({d},)"
        raise ValueError(f"init {name} must have shape {want} to match the target's "
                         f"dimension D={d}, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"init {name} must be finite, got {t.tolist()}")
    return t


def init_params(init, family, target):
    """GaussianParams from an init dict with 'loc' and 'scale' (D,) or 'covariance' (D, D)."""
    if not isinstance(init, dict) or "loc" not in init:
        raise TypeError(f"init must be a dict with 'loc' and 'scale' or 'covariance' (or a list "
                        f"of such dicts), got {init!r}")
    unknown = set(init) - {"loc", "scale", "covariance"}
    if unknown:
        raise ValueError(f"init has unknown keys {sorted(unknown)}; use 'loc' and 'scale' or "
                         "'covariance'")
    d = target.dim
    loc = _as_vector(init["loc"], "loc", d, target.scalar_event)
    if "covariance" in init:
        cov = torch.as_tensor(init["covariance"], dtype=torch.float64)
        if cov.dim() == 0 and d == 1:
            cov = cov.reshape(1, 1)
        if cov.shape != (d, d):
            raise ValueError(f"init covariance must have shape ({d}, {d}) for the target's "
                             f"dimension D={d}, got shape {tuple(cov.shape)}")
        if family == "diagonal" and bool((cov - torch.diag(torch.diagonal(cov))).abs().max() > 0):
            raise ValueError("family='diagonal' needs a diagonal init covariance (or init "
                             "'scale'); got off-diagonal entries")
        tril, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0:
            raise ValueError("init covariance must be symmetric positive definite")
    else:
        scale = init.get("scale", 1.0)
        scale = _as_vector(scale if torch.as_tensor(scale).dim() else [float(scale)] * d,
                           "scale", d, target.scalar_event)
        if not bool((scale > 0).all()):
            raise ValueError(f"init scale must be positive, got {scale.tolist()}")
        tril = torch.diag(scale)
    if family == "diagonal":
        tril = torch.diag(torch.diagonal(tril))
    return GaussianParams(loc, tril, family, target.scalar_event)


def default_inits(n_init, target, ref_mean, ref_var, generator, narrow):
    """Random starts: means drawn from the target (or N(E[x], diag Var[x]) if it cannot
    sample), scale sqrt(Var[x]), divided by 3 when ``narrow``.

    A narrow start near a draw climbs into the mode it is in; a wide one can stall in
    the reverse-KL optimum that straddles several modes.
    """
    sd = ref_var.clamp_min(1e-12).sqrt()
    if target.can_sample:
        locs = target.sample(n_init, generator)
    else:
        eps = torch.randn(n_init, ref_mean.shape[0], generator=generator, dtype=torch.float64)
        locs = ref_mean + sd * eps
    return [{"loc": loc, "scale": sd / 3 if narrow else sd} for loc in locs]
