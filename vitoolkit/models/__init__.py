"""Probabilistic models shared by the topic packages, in the core below them.

- :mod:`vitoolkit.models.conjugate`: the conjugate Normal-Normal model with exact evidence
  (:class:`ConjugateGaussian`; tutorial 01, and the reference model of black-box VI in
  :mod:`vitoolkit.gradients.bbvi`).
- :mod:`vitoolkit.models.logistic`: Bayesian logistic regression (:class:`LogisticPosterior`),
  the one model :mod:`vitoolkit.fitting` (Laplace, NUTS, Gaussian VI) and
  :mod:`vitoolkit.gradients` (black-box VI) both use.
"""

from .conjugate import ConjugateGaussian, NormalStatistics

__all__ = ["ConjugateGaussian", "NormalStatistics"]
