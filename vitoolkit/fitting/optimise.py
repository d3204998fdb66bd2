"""The optimisation loop shared by every fitting route.

L-BFGS with a strong-Wolfe line search (Nocedal & Wright 2006, algorithms 7.5 and
3.5) on a deterministic objective, or Adam (Kingma & Ba 2015) with optional
fresh noise every step. Stopping rules, in order: every gradient entry below
``gtol``; the objective flat to ``tol`` for 3 steps with gradients below 1e-8; no
change at rounding level for 3 steps (stalled line search); flat for 25 steps
with gradients below 1e-5 (creeping along a valley of equal optima). Parameters
are never returned non-finite: a diverging step restores the last finite ones
and raises.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .. import exceptions
from ..exceptions import DivergedError

__all__ = ["ConvergenceWarning", "OptimiserDivergedError", "optimise",  # noqa: F822
           "one_thread"]


#: The optimiser's steps made q's parameters or the objective non-finite:
#: :class:`vitoolkit.exceptions.DivergedError` (a ``ValueError``: the fix is another
#: ``lr``, ``optimizer`` or start; and a ``FloatingPointError``).
OptimiserDivergedError = DivergedError


def __getattr__(name):
    # the toolkit's one ConvergenceWarning (vitoolkit.exceptions, built on first use)
    if name == "ConvergenceWarning":
        return exceptions.ConvergenceWarning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextmanager
def one_thread():
    """Run with one intra-op thread, restoring the setting afterwards.

    The fits work on tensors of 10^3-10^4 entries, where intra-op threads add only
    synchronisation; on a shared 2-core machine that made fits about 10x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def optimise(objective, q, *, optimizer, steps, lr, tol, resample, generator, label,
              gtol=1e-9):
    history, evals = [], [0]

    settings = f"optimizer={optimizer!r}, lr={lr!r}"

    def closure():
        opt.zero_grad()
        try:
            loss = objective.loss(q)
        except FloatingPointError as err:  # q's parameters overflowed inside the objective
            if isinstance(err, OptimiserDivergedError):
                raise
            raise OptimiserDivergedError(f"the {label} fit diverged ({settings}): {err}") from None
        evals[0] += 1
        if torch.isnan(loss):
            raise OptimiserDivergedError(
                f"the {label} objective became NaN ({settings}). For alpha outside [0, 1], "
                "D_alpha is infinite for every Gaussian when the target's tails are lighter "
                "(alpha < 0) or heavier (alpha > 1) than Gaussian in some direction; otherwise "
                "try a smaller lr or init=..."
            )
        loss.backward()
        return loss.detach()

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(q.parameters(), lr=1.0 if lr is None else lr, max_iter=1,
                                max_eval=25, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-12, tolerance_change=0.0)
    else:
        opt = torch.optim.Adam(q.parameters(), lr=0.05 if lr is None else lr)
    converged, quiet, stall, last_good = False, 0, 0, q.snapshot()
    sgd = optimizer == "adam" and resample and objective.stochastic
    window = 50
    for _ in range(steps):
        loss = opt.step(closure)
        if not q.is_finite() or not bool(torch.isfinite(loss)):
            q.restore(last_good)
            raise OptimiserDivergedError(
                f"the {label} fit diverged at step {len(history) + 1} (objective {float(loss)}, "
                f"{settings}); "
                "parameters were restored to their last finite values. Try a smaller lr, "
                "optimizer='lbfgs', more num_samples or method='quadrature'"
            )
        last_good = q.snapshot()
        history.append(float(loss))
        if sgd:
            objective.resample(generator)
            # noisy objective: stop when two successive windows agree within their noise
            if len(history) >= 2 * window and len(history) % window == 0:
                last = torch.tensor(history[-window:])
                prev = torch.tensor(history[-2 * window:-window])
                noise = ((last.var() + prev.var()) / window).sqrt()
                if abs(float(last.mean() - prev.mean())) <= 2 * float(noise):
                    converged = True
                    break
            continue
        grad = max(float(p.grad.abs().max()) for p in q.parameters() if p.grad is not None)
        if optimizer == "lbfgs" and grad <= gtol:
            converged = True
            break
        if len(history) >= 2:
            change = abs(history[-2] - history[-1])
            size = max(1.0, abs(history[-1]))
            quiet = quiet + 1 if change <= tol * size else 0
            stall = stall + 1 if change <= 4e-16 * size else 0
            # a flat objective alone can stop short of the optimum in the parameters
            if quiet >= (3 if optimizer == "lbfgs" else 20) and (optimizer == "adam"
                                                                 or grad <= 1e-8):
                converged = True
                break
            if quiet >= 25 and grad <= 1e-5:  # creeping along a flat valley of optima
                converged = True
                break
            if stall >= 3:  # no progress at rounding level: the line search is stuck
                converged = grad <= 1e-5
                break
    if optimizer == "lbfgs" and history:
        with torch.no_grad():
            history[-1] = float(objective.loss(q))  # the objective at the returned parameters
            evals[0] += 1
    return history, evals[0], converged
