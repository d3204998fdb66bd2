"""Mean-field coordinate-ascent variational inference (CAVI) on Gaussian mixtures.

- :class:`UnitVarianceGMM`, :func:`exact_log_evidence`: the teaching model of
  Blei, Kucukelbir & McAuliffe (2017, section 3), with the full ELBO and the exact
  evidence of tiny problems.
- :class:`BayesianGMM`: Bishop's variational Gaussian mixture (PRML section 10.2).
- :class:`StochasticBayesianGMM`: the same model by stochastic variational inference
  (Hoffman, Blei, Wang & Paisley 2013) over a stream of mini-batches.

The three are scikit-learn estimators sharing one fit loop (:mod:`vitoolkit.cavi._base`).
Importing this package does not import torch (only ``BayesianGMM.score_samples`` does).
"""

from ..exceptions import ELBODecreaseError
from .bayesian_gmm import BayesianGMM
from .blei import (
    UnitVarianceGMM,
    assignment_update,
    exact_log_evidence,
    mean_update,
    unit_variance_elbo,
)
from .svi import StochasticBayesianGMM

__all__ = [
    "BayesianGMM",
    "ELBODecreaseError",
    "StochasticBayesianGMM",
    "UnitVarianceGMM",
    "assignment_update",
    "exact_log_evidence",
    "mean_update",
    "unit_variance_elbo",
]
