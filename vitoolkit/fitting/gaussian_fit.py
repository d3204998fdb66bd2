r"""Fit a Gaussian q to a target density by reverse KL, forward KL or Minka's alpha-divergence.

One call fits the same target under every divergence, so the fits can be
compared (the lesson of Bishop PRML 10.1.2 and Minka 2005):

- ``"reverse"``  minimises KL(q || p) = E_q[log q - log p]: the variational
  inference objective; zero-forcing, so q locks onto one mode (mode-seeking).
- ``"forward"``  minimises KL(p || q) = E_p[log p - log q]: maximum likelihood;
  zero-avoiding, so q spreads over all the mass (mass-covering). For a Gaussian
  family the minimiser is the moment-matched Gaussian.
- ``"alpha"``    minimises Minka's D_alpha(p || q) (MSR-TR-2005-173, eq. 2),
  alpha -> 0 reverse, alpha -> 1 forward, alpha <= 0 mode-seeking, alpha >= 1
  mass-covering.

Methods (``method="auto"`` picks the most exact one available):

==============  =================================================  ==========================
method          route                                              divergences
==============  =================================================  ==========================
"quadrature"    deterministic, 1-D/2-D only: a grid that moves     all
                with q (reverse, alpha < 0), else the
                trapezoidal rule on a fixed grid
"stochastic"    reparameterised Monte Carlo with fixed base noise  reverse, alpha
"samples"       exact draws from the target                        forward
"snis"          self-normalised importance sampling, ``proposal``  forward
"moments"       closed form, q = N(E_p[x], Cov_p[x])               forward
==============  =================================================  ==========================

"auto" is: reverse and alpha -> quadrature in 1-D/2-D, else stochastic;
forward -> snis if a proposal is given, else moments if known exactly, else
quadrature in 1-D/2-D, else samples if the target can sample, else an error.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace

import torch
from torch.distributions import Distribution

from ..divergences import KHAT_THRESHOLD, UnreliableEstimateWarning, make_grid
from ..divergences._checks import check_alpha
from . import objectives as obj
from .evaluate import evaluate_fit
from .family import FAMILIES, GaussianParams
from .optimise import ConvergenceWarning, one_thread, optimise
from .starts import default_inits, init_params, reference_moments

__all__ = ["GaussianFit", "fit_gaussian", "fit_alpha_sweep", "ConvergenceWarning",
           "UnreliableEstimateWarning", "DIVERGENCES", "METHODS"]

#: The divergences :func:`fit_gaussian` minimises.
DIVERGENCES = ("reverse", "forward", "alpha")
#: The fitting routes (see the module docstring).
METHODS = ("auto", "quadrature", "stochastic", "samples", "snis", "moments")
_ALLOWED = {
    "reverse": ("quadrature", "stochastic"),
    "forward": ("quadrature", "samples", "snis", "moments"),
    "alpha": ("quadrature", "stochastic"),
}
_OPTIMIZERS = ("lbfgs", "adam")


@dataclass(frozen=True)
class GaussianFit:
    """A fitted Gaussian and how it was obtained.

    Attributes
    ----------
    loc : Tensor of shape (D,), or () when the target's event shape is ()
    covariance : Tensor of shape (D, D), or () (the variance) for a scalar event
    distribution : torch.distributions.Distribution
        ``Normal`` (scalar event), ``Independent(Normal, 1)`` (diagonal) or
        ``MultivariateNormal`` (full), float64.
    history : list of float
        The objective after each optimiser step (empty for ``method="moments"``);
        KL in nats for reverse/forward, J_alpha = -log A_alpha / (alpha (1 - alpha))
        for alpha (see :mod:`vitoolkit.fitting.objectives`).
    value : float or None
        The divergence at the optimum (KL, or Minka's D_alpha), from an
        evaluation independent of the fitting draws: closed form for a Gaussian
        target, quadrature for the quadrature route, else Monte Carlo. It is
        ``inf`` when the divergence is infinite for the fitted q (e.g. alpha < 0
        on a target whose tails are lighter than Gaussian, like :class:`Banana`).
    stderr : float or None
        Standard error of ``value`` when it is a Monte Carlo estimate, else None.
    value_method : str
        "closed_form", "quadrature", "monte_carlo", "snis" or "none".
    divergence, alpha, family, method : the settings used ("auto" resolved)
    n_iter : int (optimiser steps)
    n_evals : int (objective evaluations, line searches included)
    converged : bool
    seconds : float (wall time of the fit, evaluation included)
    ess : float or None (effective sample size of the SNIS weights)
    khat : float or None
        ``method="snis"`` only: the Pareto k-hat (Vehtari, Simpson, Gelman, Yao &
        Gabry, "Pareto smoothed importance sampling", JMLR 2024) of the importance
        ratios p(x_n) / r(x_n) of the draws the fit used. Below 0.5 the ratios have a
        finite variance; above ``vitoolkit.divergences.KHAT_THRESHOLD`` (0.7) the
        proposal misses mass of the target that the draws have not seen, so the
        fitted moments, ``value``, ``stderr`` and ``ess`` cannot be trusted, and
        :func:`fit_gaussian` issues an ``UnreliableEstimateWarning``. None for the
        other methods.
    init_loc : Tensor (the starting mean)
    candidates : tuple of GaussianFit
        All fits when several initialisations were run (the returned fit is the
        one with the lowest final objective); empty otherwise.
    """

    loc: torch.Tensor
    covariance: torch.Tensor
    distribution: Distribution
    history: list
    value: float | None
    stderr: float | None
    value_method: str
    divergence: str
    alpha: float | None
    family: str
    method: str
    n_iter: int
    n_evals: int
    converged: bool
    seconds: float
    ess: float | None = None
    khat: float | None = None
    init_loc: torch.Tensor | None = None
    candidates: tuple = field(default=(), repr=False)

    @property
    def scale(self) -> torch.Tensor:
        """Marginal standard deviations, the shape of ``loc``."""
        if self.covariance.dim() == 0:
            return self.covariance.sqrt()
        return torch.diagonal(self.covariance).sqrt()

    @property
    def objective(self) -> float:
        """The final value of the minimised objective (``history[-1]``, or ``value``)."""
        return self.history[-1] if self.history else float(self.value)


# ----------------------------------------------------------------------------- validation
def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_alpha(divergence, alpha):
    if divergence != "alpha":
        if alpha is not None:
            raise ValueError(f"alpha={alpha!r} is only used with divergence='alpha', "
                             f"got divergence={divergence!r}")
        return None
    if alpha is None:
        raise ValueError("divergence='alpha' needs alpha (a real number; Minka's convention: "
                         "0 is reverse KL, 1 is forward KL)")
    return check_alpha(alpha)


def _check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _resolve_method(method, divergence, alpha, target, proposal):
    _check_choice(method, "method", METHODS)
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
    if divergence == "alpha" and kind == "reverse" and method not in _ALLOWED["reverse"]:
        raise ValueError(f"method={method!r} does not apply to alpha=0 (reverse KL); "
                         f"use one of {_ALLOWED['reverse']}")
    if method not in _ALLOWED[kind]:
        raise ValueError(f"method={method!r} does not apply to divergence={divergence!r}; "
                         f"use one of {_ALLOWED[kind]} (or 'auto')")
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

# ---------------------------------------------------------------------------------- API
def fit_gaussian(target, divergence, *, alpha=None, family="full", method="auto", init=None,
                 n_init=1, proposal=None, num_samples=None, bounds=None, num_points=None,
                 optimizer="lbfgs", steps=None, lr=None, tol=1e-12, resample=True,
                 value_samples=20_000, generator=None, seed=0) -> GaussianFit:
    r"""Fit a Gaussian q to ``target`` by minimising a divergence.

    Parameters
    ----------
    target : torch.distributions.Distribution
        Unbatched, event shape () or (D,); needs ``log_prob`` (and ``sample`` for
        ``method="samples"``).
    divergence : {"reverse", "forward", "alpha"}
        KL(q || p), KL(p || q), or Minka's D_alpha(p || q) (MSR-TR-2005-173, eq. 2:
        D_alpha = integral [alpha p + (1 - alpha) q - p^alpha q^(1-alpha)] / (alpha (1 - alpha))).
    alpha : float, required for ``"alpha"`` (any real; 0 and 1 give the two KLs).
    family : {"full", "diagonal"}
        Full covariance or mean-field (diagonal).
    method : {"auto", "quadrature", "stochastic", "samples", "snis", "moments"}
        See the module docstring.
    init : dict or list of dict, optional
        ``{"loc": (D,), "scale": (D,) or float}`` or ``{"loc": ..., "covariance": (D, D)}``.
        A list runs one fit per entry and returns the best (``candidates`` holds all).
        Default: ``n_init`` random starts, means drawn from the target (from
        N(E_p[x], diag Var_p[x]) if it cannot sample), scale sqrt(Var_p[x]), a third
        of that for reverse KL and alpha < 1 (a narrow start climbs into one mode).
    n_init : int
        Number of random starts when ``init`` is None.
    proposal : torch.distributions.Distribution, optional
        Proposal r for SNIS (forward KL from ``log_prob`` alone).
    num_samples : int, optional
        Base-noise draws (stochastic) or target/proposal draws (samples/snis);
        default 2048 (stochastic) / 20000.
    bounds : list of (lo, hi) per dimension, optional
        Quadrature grid; default the target's ``quadrature_bounds`` if it has
        them (:class:`Banana`, :class:`Ring`), else E[x] +/- 7 sd of the target.
    num_points : int, optional
        Grid points per dimension (default 801 in 1-D, 101 in 2-D).
    optimizer : {"lbfgs", "adam"}
        L-BFGS with a strong-Wolfe line search (default) or Adam.
    steps : int, optional
        Maximum optimiser steps (default 200 for L-BFGS, 3000 for Adam).
    lr : float, optional
        Step size (default 1 for L-BFGS, 0.05 for Adam).
    tol : float
        Stop when the objective changes by less than ``tol * max(1, |objective|)``
        for 3 (L-BFGS) or 20 (Adam) consecutive steps, or (L-BFGS) when every
        gradient entry is below 1e-9 in absolute value.
    resample : bool
        With Adam and a Monte Carlo method, draw fresh noise every step (plain
        stochastic gradients); the run then stops when the mean objective over
        the last 50 steps is within 2 standard errors of the 50 before.
    value_samples : int
        Draws for the Monte Carlo value at the optimum (0 skips it).
    generator : torch.Generator, optional
        Source of all randomness; default ``torch.Generator().manual_seed(seed)``.
    seed : int

    Returns
    -------
    GaussianFit

    Warns
    -----
    ConvergenceWarning
        The optimiser stopped at ``steps`` before the objective settled.
    UnreliableEstimateWarning
        ``method="snis"`` and the Pareto k-hat of the importance ratios exceeds 0.7
        (see ``GaussianFit.khat``): choose a proposal with heavier tails than the target,
        covering all of its mass.

    Raises
    ------
    ValueError
        Unknown divergence/family/method, missing or non-finite ``alpha``, init
        shapes not matching the target's dimension, a forward fit on a target
        that cannot sample without a proposal (the message lists the routes).
    NonFiniteTargetError
        The target's ``log_prob`` was NaN/+inf (or -inf where q has mass).
    FloatingPointError
        The optimiser diverged (parameters are never returned as NaN).

    Notes
    -----
    The fit runs with one intra-op torch thread (restored on return): the
    tensors are small and thread synchronisation only slowed it down.
    """
    with one_thread():
        return _fit_gaussian(target, divergence, alpha=alpha, family=family, method=method,
                             init=init, n_init=n_init, proposal=proposal,
                             num_samples=num_samples, bounds=bounds, num_points=num_points,
                             optimizer=optimizer, steps=steps, lr=lr, tol=tol, resample=resample,
                             value_samples=value_samples, generator=generator, seed=seed)


def _fit_gaussian(target, divergence, *, alpha, family, method, init, n_init, proposal,
                  num_samples, bounds, num_points, optimizer, steps, lr, tol, resample,
                  value_samples, generator, seed):
    start = time.perf_counter()
    _check_choice(divergence, "divergence", DIVERGENCES)
    alpha = _check_alpha(divergence, alpha)
    _check_choice(family, "family", FAMILIES)
    _check_choice(optimizer, "optimizer", _OPTIMIZERS)
    _check_positive_int(n_init, "n_init")
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    _check_positive_int(value_samples, "value_samples", 0)
    tgt = obj.Target(target, "target")
    prop = None
    if proposal is not None:
        prop = obj.Target(proposal, "proposal")
        if prop.dim != tgt.dim or prop.scalar_event != tgt.scalar_event:
            raise ValueError(f"proposal event shape {tuple(proposal.event_shape)} does not match "
                             f"the target's {tuple(target.event_shape)}")
        if not prop.can_sample:
            raise ValueError(f"proposal ({prop.kind}) must be able to sample")
    kind, method = _resolve_method(method, divergence, alpha, tgt, prop)
    if generator is None:
        generator = torch.Generator().manual_seed(int(seed))
    if num_samples is None:
        num_samples = 2048 if method == "stochastic" else 20_000
    _check_positive_int(num_samples, "num_samples", 2)
    steps = steps if steps is not None else (200 if optimizer == "lbfgs" else 3000)
    _check_positive_int(steps, "steps")

    ref_mean, ref_var = reference_moments(tgt, prop, bounds, generator)
    grid_spec = None
    if method == "quadrature" or (method == "moments" and tgt.dim <= 2):
        if bounds is None:
            bounds = getattr(target, "quadrature_bounds", None)
        if bounds is None:
            sd = ref_var.clamp_min(1e-12).sqrt()
            bounds = [(float(m - 7 * s), float(m + 7 * s)) for m, s in zip(ref_mean, sd,
                                                                             strict=True)]
        if len(bounds) != tgt.dim:
            raise ValueError(f"bounds must give one (lo, hi) per dimension (D={tgt.dim}), "
                             f"got {len(bounds)}")
        if num_points is None:
            num_points = 801 if tgt.dim == 1 else 101
        grid_spec = (list(bounds), num_points)

    common = dict(q_grid_points=401 if tgt.dim == 1 else 121, target=tgt, kind=kind,
                  alpha=alpha, family=family, method=method,
                  divergence=divergence, proposal=prop, num_samples=num_samples,
                  grid_spec=grid_spec, optimizer=optimizer, steps=steps, lr=lr, tol=tol,
                  resample=resample, value_samples=value_samples, generator=generator)
    if method == "moments":
        mean, cov = tgt.moments()
        fit = _finish(GaussianParams(mean, _chol(cov, family), family, tgt.scalar_event),
                      [], 0, True, mean, common)
        return replace(fit, seconds=time.perf_counter() - start)

    if init is None and kind == "alpha" and alpha < 0:
        # D_alpha is infinite for alpha < 0 unless q's tails are lighter than p's, so a
        # moment-sized start is unusable: continue from the reverse-KL (alpha -> 0) fits
        pre = fit_gaussian(target, "reverse", family=family, method=method, n_init=n_init,
                           num_samples=num_samples, bounds=bounds, num_points=num_points,
                           optimizer=optimizer, steps=steps, lr=lr, tol=tol, resample=resample,
                           value_samples=0, generator=generator)
        init = [{"loc": f.loc.reshape(-1), "covariance": f.covariance.reshape(tgt.dim, tgt.dim)}
                for f in (pre.candidates or (pre,))]
    if init is None:
        narrow = kind == "reverse" or (kind == "alpha" and alpha < 1)
        inits = default_inits(n_init, tgt, ref_mean, ref_var, generator, narrow)
    else:
        inits = list(init) if isinstance(init, (list, tuple)) else [init]
        if not inits:
            raise ValueError("init must not be an empty list")
    starts = [init_params(i, family, tgt) for i in inits]
    objective = _build_objective(common)
    fits = []
    for q in starts:
        init_loc = q.loc.detach().clone()
        history, n_evals, converged = optimise(
            objective, q, optimizer=optimizer, steps=steps, lr=lr, tol=tol, resample=resample,
            generator=generator, label=f"{divergence}" + (f" (alpha={alpha})" if alpha else ""))
        if not converged:
            warnings.warn(f"the {divergence} fit ({method}, {optimizer}) did not settle within "
                          f"steps={steps}; raise steps or tol", ConvergenceWarning, stacklevel=3)
        ess, khat = (objective.ess, objective.khat) if method == "snis" else (None, None)
        fits.append(_finish(q, history, n_evals, converged, init_loc, common, ess, khat))
    best = min(fits, key=lambda f: f.objective)
    if best.khat is not None and best.khat > KHAT_THRESHOLD:
        warnings.warn(f"the forward fit by self-normalised importance sampling is unreliable: the "
                      f"Pareto k-hat of the importance ratios p/r is {best.khat:.2f} > "
                      f"{KHAT_THRESHOLD} (ESS {best.ess:.0f} of {num_samples} draws). The proposal "
                      "misses mass of the target, so the fitted moments and the value's standard "
                      "error cannot be trusted; use a proposal with heavier tails that covers the "
                      "target", UnreliableEstimateWarning, stacklevel=3)
    return replace(best, candidates=tuple(fits) if len(fits) > 1 else (),
                   seconds=time.perf_counter() - start)


def _chol(cov, family):
    if family == "diagonal":
        return torch.diag(torch.diagonal(cov).sqrt())
    return torch.linalg.cholesky(cov)


def _build_objective(c):
    tgt, kind, method = c["target"], c["kind"], c["method"]
    if method == "quadrature":
        if kind == "reverse" or (kind == "alpha" and c["alpha"] < 0):
            # nodes that move with q: a fixed grid lets q escape it (see objectives)
            nodes = obj.whitened_grid(c["q_grid_points"], tgt.dim)
            if kind == "reverse":
                return obj.ReverseKLReparam(tgt, 0, None, nodes=nodes)
            return obj.AlphaReparam(tgt, 0, None, c["alpha"], nodes=nodes)
        grid = make_grid(*c["grid_spec"])
        if kind == "forward":
            return obj.ForwardKLQuadrature(tgt, grid)
        return obj.AlphaQuadrature(tgt, grid, c["alpha"])
    n, gen = c["num_samples"], c["generator"]
    if method == "stochastic":
        if kind == "reverse":
            return obj.ReverseKLReparam(tgt, n, gen)
        return obj.AlphaReparam(tgt, n, gen, c["alpha"])
    if method == "samples":
        return obj.ForwardKLWeighted(obj.exact_draws(tgt, n), gen)
    return obj.ForwardKLWeighted(obj.snis_draws(tgt, c["proposal"], n), gen)


def _finish(q, history, n_evals, converged, init_loc, c, ess=None, khat=None):
    tgt = c["target"]
    dist = q.distribution()
    tril = q.scale_tril().detach()
    cov = tril @ tril.mT
    loc = q.loc.detach().clone()
    if tgt.scalar_event:
        loc, cov = loc[0], cov[0, 0]
        init_loc = init_loc.reshape(-1)[0]
    value, stderr, how = evaluate_fit(tgt, dist, c["kind"], c["alpha"], c["method"], c["grid_spec"],
                                   c["proposal"], c["value_samples"], c["generator"])
    return GaussianFit(loc=loc, covariance=cov, distribution=dist, history=history, value=value,
                       stderr=stderr, value_method=how, divergence=c["divergence"],
                       alpha=c["alpha"], family=c["family"], method=c["method"], n_iter=len(history),
                       n_evals=n_evals, converged=converged, seconds=0.0, ess=ess, khat=khat,
                       init_loc=init_loc)


def fit_alpha_sweep(target, alphas, *, warm_start=True, **kwargs) -> list:
    """Fit ``target`` for each alpha in ``alphas`` (in the given order).

    With ``warm_start`` each fit starts from the previous fit's Gaussian, which
    follows one branch of optima continuously and cuts the optimiser's work.
    Other keyword arguments go to :func:`fit_gaussian` (``init`` is used for
    the first alpha only).

    Returns
    -------
    list of GaussianFit, one per alpha.
    """
    alphas = [float(a) for a in alphas]
    if not alphas:
        raise ValueError("alphas must contain at least one value")
    fits = []
    for a in alphas:
        fit = fit_gaussian(target, "alpha", alpha=a, **kwargs)
        fits.append(fit)
        if warm_start:
            cov = fit.covariance.reshape(1, 1) if fit.covariance.dim() == 0 else fit.covariance
            kwargs = {**kwargs, "init": {"loc": fit.loc, "covariance": cov}, "n_init": 1}
    return fits

