"""vitoolkit: variational inference beyond the VAE, as course material.

Core: :mod:`vitoolkit.distributions`, :mod:`vitoolkit.divergences` and
:mod:`vitoolkit.expectations` (the conjugate-exponential expectations, written
once for NumPy and torch); the public boundary's :mod:`vitoolkit.validation`,
:mod:`vitoolkit.exceptions` and :mod:`vitoolkit.fileio` (atomic writes).
Topics (each depends on the core only): :mod:`vitoolkit.cavi`,
:mod:`vitoolkit.fitting`, :mod:`vitoolkit.gradients`, :mod:`vitoolkit.vae`.
Figures: :mod:`vitoolkit.plotting`. Tutorials: ``vitoolkit list``.
"""

__version__ = "0.1.0"
