"""Which objective fits which divergence: a registry keyed by (divergence, method).

:data:`OBJECTIVES` maps each supported pair to a small builder that takes the
checked :class:`~vitoolkit.fitting.settings.FitSettings` and returns an
:class:`~vitoolkit.fitting.objectives.Objective`. The divergence key is the one
actually minimised (alpha = 0 is ``"reverse"``, alpha = 1 is ``"forward"``).
A new route is one builder and one entry; :func:`objective_for` looks a pair up
and, for a pair that is not registered, names the pairs that are.

:func:`resolve_method` turns ``method="auto"`` into the most exact registered
route for the target, and checks an explicit method against what the target
can do (sample, known moments, dimension).
"""

from __future__ import annotations

from typing import Any, Callable

from ..divergences import make_grid
from . import objectives as obj

#: The checked :class:`~vitoolkit.fitting.settings.FitSettings` a builder reads. Not imported
#: (even for type checking): settings imports this registry, and the import runs one way only.
FitSettings = Any

__all__ = ["DIVERGENCES", "METHODS", "OBJECTIVES", "objective_for", "resolve_method",
           "MomentMatching"]

#: The divergences :func:`~vitoolkit.fitting.fit_gaussian` minimises.
DIVERGENCES = ("reverse", "forward", "alpha")
#: The fitting routes ("auto" picks one).
METHODS = ("auto", "quadrature", "stochastic", "samples", "snis", "moments")


class MomentMatching(obj.Objective):
    """Forward KL over Gaussians in closed form: q = N(E_p[x], Cov_p[x]) (PRML 10.7).

    No optimiser runs: ``solution`` is the minimiser.
    """

    closed_form = True

    def __init__(self, target: obj.Target):
        self.solution = target.moments()


def _reverse_quadrature(s: FitSettings) -> obj.Objective:
    # nodes that move with q: a fixed grid lets q escape it (see objectives)
    nodes = obj.whitened_grid(s.grid.moving_points, s.target.dim)
    return obj.ReverseKLReparam(s.target, 0, None, nodes=nodes)


def _reverse_stochastic(s: FitSettings) -> obj.Objective:
    return obj.ReverseKLReparam(s.target, s.sampling.num_samples, s.sampling.generator)


def _alpha_quadrature(s: FitSettings) -> obj.Objective:
    if s.alpha < 0:  # moving nodes, as for reverse KL: q may shrink inside p's tails
        nodes = obj.whitened_grid(s.grid.moving_points, s.target.dim)
        return obj.AlphaReparam(s.target, 0, None, s.alpha, nodes=nodes)
    return obj.AlphaQuadrature(s.target, make_grid(*s.grid.spec), s.alpha)


def _alpha_stochastic(s: FitSettings) -> obj.Objective:
    return obj.AlphaReparam(s.target, s.sampling.num_samples, s.sampling.generator, s.alpha)


def _forward_quadrature(s: FitSettings) -> obj.Objective:
    return obj.ForwardKLQuadrature(s.target, make_grid(*s.grid.spec))


def _forward_samples(s: FitSettings) -> obj.Objective:
    return obj.ForwardKLWeighted(obj.exact_draws(s.target, s.sampling.num_samples),
                                 s.sampling.generator)


def _forward_snis(s: FitSettings) -> obj.Objective:
    return obj.ForwardKLWeighted(obj.snis_draws(s.target, s.proposal, s.sampling.num_samples),
                                 s.sampling.generator)


def _forward_moments(s: FitSettings) -> obj.Objective:
    return MomentMatching(s.target)


#: (divergence minimised, method) -> builder(settings) -> Objective
OBJECTIVES: dict[tuple[str, str], Callable[[FitSettings], obj.Objective]] = {
    ("reverse", "quadrature"): _reverse_quadrature,
    ("reverse", "stochastic"): _reverse_stochastic,
    ("alpha", "quadrature"): _alpha_quadrature,
    ("alpha", "stochastic"): _alpha_stochastic,
    ("forward", "quadrature"): _forward_quadrature,
    ("forward", "samples"): _forward_samples,
    ("forward", "snis"): _forward_snis,
    ("forward", "moments"): _forward_moments,
}


def methods_for(kind: str) -> tuple:
    """The registered methods of one divergence, in registry order."""
    return tuple(m for d, m in OBJECTIVES if d == kind)


def objective_for(kind: str, method: str) -> Callable:
    """The builder registered for (kind, method); a ``ValueError`` listing the pairs if none."""
    try:
        return OBJECTIVES[(kind, method)]
    except KeyError:
        raise _unregistered(kind, method, f"divergence={kind!r}") from None


def _unregistered(kind, method, asked) -> ValueError:
    pairs = ", ".join(f"({d!r}, {m!r})" for d, m in OBJECTIVES)
    return ValueError(f"method={method!r} does not apply to {asked}; use one of "
                      f"{methods_for(kind)} (or 'auto'). Registered (divergence, method) "
                      f"pairs: {pairs}")


def resolve_method(method, divergence, alpha, target, proposal):
    """``(kind, method)``: the divergence minimised and the route, ``"auto"`` resolved."""
    kind = divergence
    if divergence == "alpha" and alpha == 0.0:
        kind = "reverse"
    elif divergence == "alpha" and alpha == 1.0:
        kind = "forward"
    low_dim = target.dim <= 2
    if method == "auto":
        if kind in ("reverse", "alpha"):
            return kind, "quadrature" if low_dim else "stochastic"
        if proposal is not None:
            return kind, "snis"
        if target.moments() is not None:
            return kind, "moments"
        if low_dim:
            return kind, "quadrature"
        if target.can_sample:
            return kind, "samples"
        raise ValueError(_cannot_sample_message(target))
    if divergence == "alpha" and kind == "forward" and method == "stochastic":
        method = "samples" if proposal is None else "snis"  # the alpha -> 1 limit's own route
    if (kind, method) not in OBJECTIVES:
        asked = (f"alpha={alpha} ({kind} KL)" if kind != divergence else
                 f"divergence={divergence!r}")
        raise _unregistered(kind, method, asked)
    if method == "quadrature" and not low_dim:
        raise ValueError(f"method='quadrature' handles 1-D and 2-D targets, got D={target.dim}; "
                         "use method='stochastic' (reverse, alpha) or 'samples'/'snis'/'moments'"
                         " (forward)")
    if method == "samples" and not target.can_sample:
        raise ValueError(_cannot_sample_message(target))
    if method == "snis" and proposal is None:
        raise ValueError("method='snis' needs proposal=<a torch distribution that can sample, "
                         "with the target's event shape>")
    if method == "moments" and target.moments() is None:
        raise ValueError(f"the moments of {target.kind} are not known in closed form; use "
                         "method='samples', 'snis' (with a proposal) or 'quadrature' (1-D/2-D)")
    return kind, method


def _cannot_sample_message(target):
    return (f"a forward-KL fit needs E_p[.], but the target ({target.kind}) cannot sample; "
            "pass proposal=<distribution> for self-normalised importance sampling, or use "
            "method='quadrature' (1-D/2-D targets, with bounds=...) or method='moments' "
            "(targets whose mean and covariance are known)")
