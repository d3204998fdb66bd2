"""The conjugate Normal-Normal model's old import path (tutorial 01 and course material).

The model lives in :mod:`vitoolkit.models.conjugate`, below the topic packages that
use it (:mod:`vitoolkit.gradients` among them); this module re-exports its public names.
"""

from .models import conjugate as _model
from .models.conjugate import (  # noqa: F401 - re-exported
    MAX_QUADRATURE_WIDTH,
    ConjugateGaussian,
    ElboSurface,
    EvidenceEstimate,
    GradientFitPath,
    NormalStatistics,
    independent_copies_relative_variance,
)

__all__ = list(_model.__all__)
