r"""Fit a normalizing flow q to a target by reverse KL, with the Gaussian fits' machinery.

:func:`fit_flow` is :func:`~vitoolkit.fitting.fit_gaussian` with
``divergence="reverse"``, ``method="stochastic"`` and a richer family: the same checked
settings (:func:`~vitoolkit.fitting.settings.build_settings`), the same starts, the
same objective (:class:`~vitoolkit.fitting.objectives.ReverseKLReparam`, reparameterised
Monte Carlo, Kingma & Welling 2013, section 2.4) and the same optimiser loop
(:func:`~vitoolkit.fitting.optimise.optimise`). Only the family differs
(:class:`~vitoolkit.fitting.flows.FlowParams`: :math:`z = m + L \, T(\varepsilon)`), so a flow and a
Gaussian fitted with the same keyword arguments had the same objective and budget.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace

from .. import exceptions
from ..divergences import mean_and_stderr
from ..validation import check_choice, check_int
from .flows import FLOW_KINDS, FlowDistribution, FlowParams, make_layers
from .gaussian_fit import _starts
from .objectives import ReverseKLReparam
from .optimise import one_thread, optimise
from .settings import build_settings

__all__ = ["FlowFit", "fit_flow"]


@dataclass(frozen=True)
class FlowFit:
    """A fitted flow and how it was obtained.

    Attributes
    ----------
    distribution : :class:`~vitoolkit.fitting.flows.FlowDistribution` (detached)
    history : list of float, the objective (KL(q||p) up to log Z) after each step
    value : float or None
        KL(q || p) at the optimum estimated on ``value_samples`` fresh draws of q,
        E_q[log q - log p] (KL itself for a normalised target, -ELBO otherwise).
    stderr : float or None, its Monte Carlo standard error
    kind : str, num_layers : int
    n_iter, n_evals : int
    converged : bool
    seconds : float (wall time, evaluation included)
    candidates : tuple of FlowFit (all starts, when several ran)
    """

    distribution: FlowDistribution
    history: list
    value: float | None
    stderr: float | None
    kind: str
    num_layers: int
    n_iter: int
    n_evals: int
    converged: bool
    seconds: float
    candidates: tuple = field(default=(), repr=False)

    @property
    def objective(self) -> float:
        return self.history[-1] if self.history else float(self.value)

    @property
    def num_parameters(self) -> int:
        return self.distribution.num_parameters


def fit_flow(target, *, kind="affine_autoregressive", num_layers=4, hidden_dims=(32, 32),
             init=None, n_init=1, num_samples=None, optimizer="adam", steps=None, lr=None,
             tol=1e-12, resample=True, value_samples=20_000, generator=None, seed=0) -> FlowFit:
    r"""Fit a normalizing flow to ``target`` by minimising the reverse KL.

    The flow is :math:`z = m + L \, T(\varepsilon)`,
    :math:`\varepsilon \sim \mathcal N(0, I)` (:mod:`vitoolkit.fitting.flows`); the
    objective is :math:`\mathrm{KL}(q \,\|\, p)`, up to the target's normaliser
    (see the module docstring).

    Parameters
    ----------
    target : torch.distributions.Distribution
        Unbatched, event shape (D,) with D >= 2, differentiable ``log_prob`` (normalised
        or not).
    kind : {"affine_autoregressive", "planar"}
        The layers (:func:`vitoolkit.fitting.flows.make_layers`).
    num_layers : int >= 1
    hidden_dims : sequence of int, the autoregressive networks' widths
    init, n_init, num_samples, optimizer, steps, lr, tol, resample, value_samples, generator, seed
        As in :func:`~vitoolkit.fitting.fit_gaussian` (``init`` gives the Gaussian the
        flow starts from; the default optimiser here is Adam with fresh noise each step).

    Returns
    -------
    FlowFit

    Warns
    -----
    ConvergenceWarning
        The optimiser stopped at ``steps`` before the objective settled.
    """
    settings = build_settings(
        target, "reverse", alpha=None, family="full", method="stochastic", init=init,
        n_init=n_init, proposal=None, num_samples=num_samples, bounds=None, num_points=None,
        optimizer=optimizer, steps=steps, lr=lr, tol=tol, resample=resample,
        value_samples=value_samples, generator=generator, seed=seed)
    if settings.target.scalar_event or settings.target.dim < 2:
        raise ValueError(f"fit_flow needs a target with event shape (D,), D >= 2, got "
                         f"{tuple(target.event_shape)}; in 1-D use fit_gaussian")
    num_layers = check_int(num_layers, "num_layers", minimum=1, maximum=64)
    kind = check_choice(kind, FLOW_KINDS, "kind")
    if isinstance(hidden_dims, (str, bytes)) or not hasattr(hidden_dims, "__iter__"):
        raise TypeError(f"hidden_dims must be a sequence of positive ints, got {hidden_dims!r}")
    hidden_dims = tuple(check_int(h, f"hidden_dims[{i}]", minimum=1, maximum=4096)
                        for i, h in enumerate(hidden_dims))
    with one_thread():
        return _fit(settings, kind, num_layers, hidden_dims)


def _fit(s, kind, num_layers, hidden_dims) -> FlowFit:
    start = time.perf_counter()
    starts = _starts(s)
    objective = ReverseKLReparam(s.target, s.sampling.num_samples, s.sampling.generator)
    opt, gen = s.optimiser, s.sampling.generator
    fits = []
    for first in starts:
        layers = make_layers(kind, s.target.dim, num_layers, hidden_dims, generator=gen)
        q = FlowParams(first.loc, first.scale_tril, layers)
        history, n_evals, converged = optimise(
            objective, q, optimizer=opt.name, steps=opt.steps, lr=opt.lr, tol=opt.tol,
            resample=opt.resample, generator=gen, label="reverse (flow)")
        if not converged:
            warnings.warn(f"the flow fit ({opt.name}) did not settle within steps={opt.steps}; "
                          "raise steps or tol", exceptions.ConvergenceWarning, stacklevel=3)
        dist = q.distribution()
        value = stderr = None
        if s.sampling.value_samples:
            z, log_q = dist.sample_with_log_prob((s.sampling.value_samples,), generator=gen)
            log_p = s.target.log_prob(z, during="the flow fit's evaluation", allow_neg_inf=True)
            est = mean_and_stderr(log_q - log_p)
            value, stderr = float(est.value), float(est.stderr)
        fits.append(FlowFit(distribution=dist, history=history, value=value, stderr=stderr,
                            kind=kind, num_layers=num_layers, n_iter=len(history),
                            n_evals=n_evals, converged=converged, seconds=0.0))
    best = min(fits, key=lambda f: f.objective)
    return replace(best, candidates=tuple(fits) if len(fits) > 1 else (),
                   seconds=time.perf_counter() - start)
