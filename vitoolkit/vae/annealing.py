r"""Schedules for the KL weight beta as a function of the optimisation step.

A schedule is a callable ``schedule(step) -> float`` (step = 0, 1, 2, ... counts
mini-batch updates), so :func:`vitoolkit.vae.train` accepts it wherever it
accepts a constant ``beta``. Plain functions of the step work too.

- :func:`constant`: beta fixed (beta = 1 is the ELBO; beta > 1 the beta-VAE of
  Higgins et al. 2017).
- :func:`linear_warmup`: beta rises linearly from ``start`` to ``end`` over
  ``steps`` updates, then stays at ``end`` (KL annealing, Bowman et al. 2016,
  section 3.1; "warm-up", Sonderby et al. 2016, section 2.3).
- :func:`cyclical`: the warm-up repeated every ``period`` steps, rising during
  the first ``ratio`` of each cycle and held at ``end`` for the rest
  (Fu et al. 2019, "Cyclical annealing schedule", eq. (5) with a linear ramp).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..validation import check_int, check_real

__all__ = ["Schedule", "constant", "linear_warmup", "cyclical", "as_schedule"]


def _finite_nonneg(value, name: str) -> float:
    return check_real(value, name, minimum=0.0)


def _positive_int(value, name: str) -> int:
    return check_int(value, name, minimum=1)


@dataclass(frozen=True)
class Schedule:
    """A named beta schedule; call it with the step number to get beta.

    Attributes
    ----------
    kind : {"constant", "linear", "cyclical"}
    start, end : float
        beta at the start of a ramp and after it (``constant`` uses ``end``).
    steps : int
        Ramp length (``linear``) or cycle length (``cyclical``) in updates.
    ratio : float
        Fraction of each cycle spent ramping (``cyclical`` only).
    """

    kind: str
    start: float = 0.0
    end: float = 1.0
    steps: int = 1
    ratio: float = 1.0

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return self.end
        if self.kind == "linear":
            t = min(step / self.steps, 1.0)
        else:
            t = min((step % self.steps) / (self.steps * self.ratio), 1.0)
        return self.start + (self.end - self.start) * t


def constant(value: float = 1.0) -> Schedule:
    """A constant KL weight: beta = ``value`` at every step."""
    return Schedule("constant", end=_finite_nonneg(value, "value"))


def linear_warmup(steps: int, start: float = 0.0, end: float = 1.0) -> Schedule:
    r"""KL annealing: beta rises linearly from ``start`` to ``end`` over ``steps`` updates.

    .. math::

        \beta(t) = \text{start} + (\text{end} - \text{start}) \min(t / \text{steps}, 1)

    (Bowman et al. 2016, section 3.1; Sonderby et al. 2016, section 2.3).
    """
    return Schedule("linear", _finite_nonneg(start, "start"), _finite_nonneg(end, "end"),
                    _positive_int(steps, "steps"))


def cyclical(period: int, ratio: float = 0.5, start: float = 0.0, end: float = 1.0) -> Schedule:
    r"""Cyclical annealing: the linear warm-up repeated every ``period`` updates.

    .. math::

        \beta(t) = \text{start} + (\text{end} - \text{start})
            \min\Big(\frac{t \bmod \text{period}}{\text{ratio} \cdot \text{period}}, 1\Big)

    (Fu et al. 2019, "Cyclical annealing schedule", eq. (5) with a linear ramp).
    """
    ratio = check_real(ratio, "ratio", minimum=0.0, maximum=1.0, strict_minimum=True)
    return Schedule("cyclical", _finite_nonneg(start, "start"), _finite_nonneg(end, "end"),
                    _positive_int(period, "period"), ratio)


def as_schedule(beta):
    """A number becomes :func:`constant`; a callable is returned unchanged."""
    if isinstance(beta, Schedule) or callable(beta):
        return beta
    return constant(check_real(beta, "beta", minimum=0.0))
