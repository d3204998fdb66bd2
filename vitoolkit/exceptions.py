"""Every warning and exception class the toolkit raises, in one place.

Topic modules import their classes from here (and may re-export them under
their old names), so ``except vitoolkit.exceptions.X`` catches a condition
wherever it comes from:

- :class:`ConvergenceWarning`: an iterative fit stopped before its convergence
  rule held. It subclasses scikit-learn's ``ConvergenceWarning``, so
  ``sklearn.utils._testing.ignore_warnings`` and ``warnings.filterwarnings``
  written for scikit-learn's estimators apply to ours too. scikit-learn costs
  about a second to import, so the class is built on first use (PEP 562
  module ``__getattr__``); importing this module stays cheap.
- :class:`UnreliableEstimateWarning`: an importance-sampling or Monte Carlo
  estimate whose Pareto k-hat says its standard error cannot be trusted.
- :class:`LocalOptimumWarning`: the starts of a non-convex fit ended at clearly
  different optima; the best was kept, and the message says which.
- :class:`ResourceLimitError`: a request (samples, grid points, images) that
  would need more memory than the limit; raised *before* anything is allocated.
- :class:`NonFiniteError`: a computation produced NaN or inf from finite input
  (for example data scaled so far that its squares overflow).
- :class:`ELBODecreaseError`: coordinate ascent lowered its own objective (a bug
  or round-off; CAVI never decreases the ELBO in exact arithmetic).
- :class:`FileFormatError`: a file that is not what its reader expects; the
  message names the path.
- :class:`DivergedError`: an optimisation (training, an optimiser's fit, BBVI,
  the optimisation of a local posterior) made its parameters or objective
  non-finite. One class for the one condition: a :class:`NonFiniteError` (so a
  ``ValueError``: the fix is another learning rate, scale or start) and a
  ``FloatingPointError``. The old names ``TrainingDivergedError`` and
  ``OptimiserDivergedError`` are aliases of it.
- :class:`InvalidParameterError`: a constructor parameter (checked at ``fit``,
  as scikit-learn does) with the wrong type or value. Both a ``ValueError`` and
  a ``TypeError``, like scikit-learn's ``InvalidParameterError``, so code
  written for scikit-learn estimators (``except ValueError``) and code written
  for a type check (``except TypeError``) both catch it.
"""

from __future__ import annotations

__all__ = [  # noqa: F822 - ConvergenceWarning is built on first use (__getattr__)
    "ConvergenceWarning",
    "UnreliableEstimateWarning",
    "LocalOptimumWarning",
    "ResourceLimitError",
    "NonFiniteError",
    "ELBODecreaseError",
    "FileFormatError",
    "DivergedError",
    "TrainingDivergedError",
    "OptimiserDivergedError",
    "InvalidParameterError",
]


class UnreliableEstimateWarning(UserWarning):
    """A Monte Carlo estimate whose error bar cannot be trusted (Pareto k-hat too large)."""


class LocalOptimumWarning(UserWarning):
    """Several starts of an optimisation ended at clearly different optima.

    The fit with the best objective is returned; the others are local optima (for
    reverse KL on a multimodal target, a Gaussian on a lighter mode). The message
    names the objectives and the start that was kept.
    """


class ResourceLimitError(ValueError):
    """A request would need more memory than allowed; raised before allocating.

    A ``ValueError`` because the fix is a different argument value; the message
    names the argument, the size it would need and the limit
    (``vitoolkit.validation.memory_limit``).
    """


class NonFiniteError(ValueError):
    """A result became NaN or inf although every input was finite."""


class ELBODecreaseError(RuntimeError):
    """Coordinate ascent decreased the ELBO by more than round-off."""


class FileFormatError(ValueError):
    """A file is not in the format its reader expects (the message names the path)."""


class DivergedError(NonFiniteError, FloatingPointError):
    """An optimisation made its parameters or its objective non-finite.

    A ``ValueError`` (through :class:`NonFiniteError`: the fix is another learning
    rate, scale or start) and, as the older classes were, a ``FloatingPointError``.
    """


#: The names this condition had in :mod:`vitoolkit.vae.training` and
#: :mod:`vitoolkit.fitting.optimise`; the same class.
TrainingDivergedError = DivergedError
OptimiserDivergedError = DivergedError


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter of the wrong type or value (raised by ``fit``).

    Both a ``ValueError`` and a ``TypeError``, as scikit-learn's
    ``sklearn.utils._param_validation.InvalidParameterError`` is.
    """


_lazy: dict[str, type] = {}


def __getattr__(name: str):
    if name == "ConvergenceWarning":
        if name not in _lazy:
            from sklearn.exceptions import ConvergenceWarning as _SklearnConvergenceWarning

            class ConvergenceWarning(_SklearnConvergenceWarning):
                """An iterative fit stopped (``max_iter`` or ``steps``) before it converged."""

            ConvergenceWarning.__module__ = __name__
            ConvergenceWarning.__qualname__ = "ConvergenceWarning"
            _lazy[name] = ConvergenceWarning
        return _lazy[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
