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
Each (divergence, method) pair of the table is one entry of the registry
:data:`vitoolkit.fitting.routes.OBJECTIVES`; the keyword arguments are checked and
grouped into typed settings by :mod:`vitoolkit.fitting.settings`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace

import torch
from torch.distributions import Distribution

from .. import exceptions
from ..divergences import KHAT_THRESHOLD
from ..exceptions import LocalOptimumWarning, UnreliableEstimateWarning
from ..validation import check_bool, check_real
from ._checks import check_draws_memory
from .evaluate import evaluate_fit
from .family import GaussianParams
from .optimise import one_thread, optimise
from .routes import DIVERGENCES, METHODS, objective_for
from .settings import ALPHA_LIMIT, FitSettings, build_settings
from .starts import POOL_PER_START, Start, default_starts

__all__ = ["GaussianFit", "fit_gaussian", "fit_alpha_sweep", "ConvergenceWarning",  # noqa: F822
           "UnreliableEstimateWarning", "LocalOptimumWarning", "DIVERGENCES", "METHODS",
           "DEFAULT_N_INIT", "OPTIMUM_TOLERANCE"]

#: random starts of the mode-seeking fits (reverse KL, alpha < 1) when ``n_init`` is None
DEFAULT_N_INIT = 5
#: two starts ended at different optima when their objectives differ by more than this
#: (nats, relative above 1 nat), or by more than 4 standard errors of Monte Carlo values
OPTIMUM_TOLERANCE = 1e-3


def __getattr__(name):
    # vitoolkit.exceptions builds ConvergenceWarning (a scikit-learn subclass) on first use
    if name == "ConvergenceWarning":
        return exceptions.ConvergenceWarning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        All fits when several initialisations were run, in the order of the starts
        (the returned fit is the one with the lowest final objective); empty otherwise.
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

    @property
    def start_objectives(self) -> tuple:
        """The final objective of every start (``candidates``), or of this fit alone."""
        return tuple(c.objective for c in self.candidates) or (self.objective,)


# ---------------------------------------------------------------------------------- API
def fit_gaussian(target, divergence, *, alpha=None, family="full", method="auto", init=None,
                 n_init=None, proposal=None, num_samples=None, bounds=None, num_points=None,
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
    alpha : float, required for ``"alpha"`` (a real number in [-100, 100]; 0 and 1 give the
        two KLs).
    family : {"full", "diagonal"}
        Full covariance or mean-field (diagonal).
    method : {"auto", "quadrature", "stochastic", "samples", "snis", "moments"}
        See the module docstring.
    init : dict or list of dict, optional
        ``{"loc": (D,), "scale": (D,) or float}`` or ``{"loc": ..., "covariance": (D, D)}``
        (for a target with event shape () the loc may be a number). Arrays of another
        shape are refused, never reshaped. A list runs one fit per entry and returns the
        best (``candidates`` holds all). With ``init`` (and ``bounds`` for quadrature) the
        target's rough moments are never computed.
        Default: ``n_init`` random starts spread over the target's mass (one start:
        a draw from the target, or from N(E_p[x], diag Var_p[x]) if it cannot sample;
        several: k-means centres of such draws, see
        :func:`vitoolkit.fitting.starts.default_starts`), scale sqrt(Var_p[x]), a third
        of that for reverse KL and alpha < 1 (a narrow start climbs into one mode).
    n_init : int >= 1 or None
        Number of random starts when ``init`` is None; the fit with the lowest final
        objective is kept (as scikit-learn's ``GaussianMixture(n_init=...)`` keeps the
        best likelihood). Default None: ``DEFAULT_N_INIT`` (5) for the mode-seeking
        objectives (reverse KL, alpha < 1), whose optima are local on a multimodal
        target, and 1 for the others (forward KL and alpha >= 1 have one optimum in
        the Gaussian family). ``n_init=1`` is a single start drawn from the target.
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
    LocalOptimumWarning
        Several converged starts (``n_init`` > 1 or a list ``init``) ended at optima whose
        objectives differ by more than ``OPTIMUM_TOLERANCE`` (or by more than 4
        standard errors of their Monte Carlo values); the message gives every
        start's objective and the kept fit's mean (``candidates`` holds them all).
    UnreliableEstimateWarning
        ``method="snis"`` and the Pareto k-hat of the importance ratios exceeds 0.7
        (see ``GaussianFit.khat``): choose a proposal with heavier tails than the target,
        covering all of its mass.

    Raises
    ------
    TypeError
        An argument of the wrong kind (a bool or a string where a number is meant, a
        float count or seed, a target that is not a torch distribution); the message
        names the argument.
    ValueError
        Unknown divergence/family/method, missing or non-finite ``alpha``, init
        shapes not matching the target's dimension (never reshaped), a
        (divergence, method) pair with no registered objective (the message lists
        the registered pairs), a forward fit on a target that cannot sample without
        a proposal (the message lists the routes).
    vitoolkit.exceptions.ResourceLimitError
        ``num_samples``, ``value_samples`` or ``num_points`` would need more memory than
        ``vitoolkit.validation.memory_limit()``; refused before anything is allocated.
    NonFiniteTargetError
        The target's ``log_prob`` was NaN/+inf (or -inf where q has mass).
    OptimiserDivergedError
        The optimiser diverged (parameters are never returned as NaN); the message names
        ``lr`` and ``optimizer``. Both a ``ValueError`` (a ``NonFiniteError``) and a
        ``FloatingPointError``, as it was before.

    Notes
    -----
    The arguments are checked and grouped into typed settings at entry
    (:func:`vitoolkit.fitting.settings.build_settings`), and the objective comes
    from the registry :data:`vitoolkit.fitting.routes.OBJECTIVES`, keyed by
    (divergence, method). The fit runs with one intra-op torch thread (restored on
    return): the tensors are small and thread synchronisation only slowed it down.
    """
    n_init = _default_n_init(divergence, alpha) if n_init is None else n_init
    settings = build_settings(
        target, divergence, alpha=alpha, family=family, method=method, init=init, n_init=n_init,
        proposal=proposal, num_samples=num_samples, bounds=bounds, num_points=num_points,
        optimizer=optimizer, steps=steps, lr=lr, tol=tol, resample=resample,
        value_samples=value_samples, generator=generator, seed=seed)
    if settings.starts.inits is None and settings.starts.n_init > 1:
        # the starts are picked from POOL_PER_START draws each: refuse a pool that cannot fit
        check_draws_memory(POOL_PER_START * settings.starts.n_init, settings.target.dim, "n_init",
                           "the pool of draws the starts are picked from")
    with one_thread():
        return _fit(settings)


def _default_n_init(divergence, alpha) -> int:
    """DEFAULT_N_INIT for reverse KL and alpha < 1, else 1 (bad values are refused later)."""
    mode_seeking = divergence == "reverse" or (
        divergence == "alpha" and isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
        and alpha < 1)
    return DEFAULT_N_INIT if mode_seeking else 1


def _fit(s: FitSettings) -> GaussianFit:
    """Run one checked fit (every start) and return the best."""
    start = time.perf_counter()
    build = objective_for(s.kind, s.method)
    # starts first: random starts draw from the generator before the objective's noise
    starts = () if s.method == "moments" else _starts(s)
    objective = build(s)
    if objective.closed_form:
        mean, cov = objective.solution
        tril = (torch.diag(torch.diagonal(cov).sqrt()) if s.family == "diagonal"
                else torch.linalg.cholesky(cov))
        params = Start(mean, tril).params(s.family, s.target.scalar_event)
        fit = _finish(params, [], 0, True, mean, s)
        return replace(fit, seconds=time.perf_counter() - start)

    fits = []
    opt = s.optimiser
    for first in starts:
        q = first.params(s.family, s.target.scalar_event)
        init_loc = q.loc.detach().clone()
        history, n_evals, converged = optimise(
            objective, q, optimizer=opt.name, steps=opt.steps, lr=opt.lr, tol=opt.tol,
            resample=opt.resample, generator=s.sampling.generator, label=s.label)
        if not converged:
            warnings.warn(f"the {s.divergence} fit ({s.method}, {opt.name}) did not settle "
                          f"within steps={opt.steps}; raise steps or tol",
                          exceptions.ConvergenceWarning, stacklevel=3)
        ess, khat = (objective.ess, objective.khat) if s.method == "snis" else (None, None)
        fits.append(_finish(q, history, n_evals, converged, init_loc, s, ess, khat))
    best = min(fits, key=lambda f: f.objective)
    _warn_if_optima_differ(fits, best, s)
    if best.khat is not None and best.khat > KHAT_THRESHOLD:
        warnings.warn(f"the forward fit by self-normalised importance sampling is unreliable: the "
                      f"Pareto k-hat of the importance ratios p/r is {best.khat:.2f} > "
                      f"{KHAT_THRESHOLD} (ESS {best.ess:.0f} of {s.sampling.num_samples} draws). "
                      "The proposal misses mass of the target, so the fitted moments and the "
                      "value's standard error cannot be trusted; use a proposal with heavier "
                      "tails that covers the target", UnreliableEstimateWarning, stacklevel=3)
    return replace(best, candidates=tuple(fits) if len(fits) > 1 else (),
                   seconds=time.perf_counter() - start)


def _different_optimum(fit: GaussianFit, best: GaussianFit) -> bool:
    """Whether ``fit`` ended at a clearly worse optimum than ``best``.

    Monte Carlo values (``stderr`` set) are compared with their errors, since the last
    step of a resampling optimiser is itself noisy; deterministic objectives by value.
    """
    if fit.stderr is not None and best.stderr is not None and fit.value is not None:
        gap, noise = fit.value - best.value, 4 * (fit.stderr**2 + best.stderr**2) ** 0.5
    else:
        gap, noise = fit.objective - best.objective, 0.0
    return gap > max(OPTIMUM_TOLERANCE * max(1.0, abs(best.objective)), noise)


def _warn_if_optima_differ(fits, best, s: FitSettings) -> None:
    """Warn when converged starts ended at clearly different optima (an unconverged start
    is no optimum; ConvergenceWarning has already said so)."""
    if not best.converged:
        return
    worse = [i for i, f in enumerate(fits) if f.converged and _different_optimum(f, best)]
    if not worse:
        return
    kept = next(i for i, f in enumerate(fits) if f is best)
    objectives = ", ".join(f"{f.objective:.4g}" for f in fits)
    loc = [round(v, 4) for v in best.loc.reshape(-1).tolist()]
    warnings.warn(f"the {s.divergence} fit's starts ended at different optima: {len(worse)} of "
                  f"{len(fits)} starts stopped at a worse local optimum (final objectives "
                  f"{objectives}); kept start {kept}, objective {best.objective:.4g}, mean {loc}. "
                  "The other fits are in GaussianFit.candidates; pass init=... to choose the "
                  "start yourself", LocalOptimumWarning, stacklevel=3)


def _starts(s: FitSettings) -> tuple:
    """The given starts, or random ones (for alpha < 0: the reverse-KL fits from them)."""
    if s.starts.inits is not None:
        return s.starts.inits
    mean, var = s.reference_moments()
    if s.kind == "alpha" and s.alpha < 0:
        # D_alpha is infinite for alpha < 0 unless q's tails are lighter than p's, so a
        # moment-sized start is unusable: continue from the reverse-KL (alpha -> 0) fits
        reverse = replace(s, divergence="reverse", alpha=None, kind="reverse",
                          sampling=replace(s.sampling, value_samples=0))
        with warnings.catch_warnings():  # the alpha fits from these starts are compared below
            warnings.simplefilter("ignore", LocalOptimumWarning)
            pre = _fit(reverse)
        return tuple(Start(f.loc.reshape(-1), torch.linalg.cholesky(
            f.covariance.reshape(s.target.dim, s.target.dim))) for f in (pre.candidates or (pre,)))
    narrow = s.kind == "reverse" or (s.kind == "alpha" and s.alpha < 1)
    return default_starts(s.starts.n_init, s.target, mean, var, s.sampling.generator, narrow)


def _finish(q: GaussianParams, history, n_evals, converged, init_loc, s: FitSettings, ess=None,
            khat=None) -> GaussianFit:
    dist = q.distribution()
    tril = q.scale_tril().detach()
    cov = tril @ tril.mT
    loc = q.loc.detach().clone()
    if s.target.scalar_event:
        loc, cov = loc[0], cov[0, 0]
        init_loc = init_loc.reshape(-1)[0]
    value, stderr, how = evaluate_fit(s.target, dist, s.kind, s.alpha, s.method, s.grid.spec,
                                      s.proposal, s.sampling.value_samples, s.sampling.generator)
    return GaussianFit(loc=loc, covariance=cov, distribution=dist, history=history, value=value,
                       stderr=stderr, value_method=how, divergence=s.divergence, alpha=s.alpha,
                       family=s.family, method=s.method, n_iter=len(history), n_evals=n_evals,
                       converged=converged, seconds=0.0, ess=ess, khat=khat, init_loc=init_loc)


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
    if isinstance(alphas, (str, bytes)) or not hasattr(alphas, "__iter__"):
        raise TypeError(f"alphas must be a sequence of real numbers, got {type(alphas).__name__}")
    alphas = [check_real(a, f"alphas[{i}]", minimum=-ALPHA_LIMIT, maximum=ALPHA_LIMIT)
              for i, a in enumerate(alphas)]
    if not alphas:
        raise ValueError("alphas must contain at least one value")
    warm_start = check_bool(warm_start, "warm_start")
    for name in ("divergence", "alpha"):
        if name in kwargs:
            raise TypeError(f"fit_alpha_sweep sets {name} itself; got {name}={kwargs[name]!r}")
    fits = []
    for a in alphas:
        fit = fit_gaussian(target, "alpha", alpha=a, **kwargs)
        fits.append(fit)
        if warm_start:
            cov = fit.covariance.reshape(1, 1) if fit.covariance.dim() == 0 else fit.covariance
            kwargs = {**kwargs, "init": {"loc": fit.loc, "covariance": cov}, "n_init": 1}
    return fits
