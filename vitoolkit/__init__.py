"""vitoolkit: variational inference beyond the VAE, as course material.

Core: :mod:`vitoolkit.distributions` and :mod:`vitoolkit.divergences`.
Topics (each depends on the core only): :mod:`vitoolkit.cavi`,
:mod:`vitoolkit.fitting`, :mod:`vitoolkit.gradients`, :mod:`vitoolkit.vae`.
Figures: :mod:`vitoolkit.plotting`. Tutorials: ``vitoolkit list``.
"""

__version__ = "0.1.0"
