"""The amortised variational autoencoder: model, likelihoods, training, checkpoints.

- :class:`VAE`, :class:`Autoencoder` (:mod:`vitoolkit.vae.model`): encoder/decoder
  networks (:mod:`~vitoolkit.vae.networks`), the ELBO, the IWAE bound and the
  importance-sampled log-likelihood.
- :mod:`~vitoolkit.vae.likelihoods`: Bernoulli, Gaussian (fixed or learned
  variance), continuous Bernoulli.
- :func:`train`, :class:`History` (:mod:`vitoolkit.vae.training`) with the beta
  schedules of :mod:`~vitoolkit.vae.annealing`.
- :mod:`~vitoolkit.vae.checkpoint`: atomic saves, safe loads.
- :mod:`~vitoolkit.vae.diagnostics`: KL per dimension, active units, posterior
  collapse, the amortisation gap, disentanglement scores.
- :mod:`~vitoolkit.vae.latent`: interpolation, traversals, latent arithmetic.
"""

from . import annealing, diagnostics, latent
from .autoencoder import Autoencoder, sample_label_histogram
from .checkpoint import load_checkpoint, load_model, save_checkpoint, save_model
from .diagnostics import active_units, amortisation_gap, check_posterior_collapse, kl_per_dimension
from .likelihoods import LIKELIHOODS, Likelihood
from .model import KL_METHODS, OBJECTIVES, VAE, StandardNormal
from .networks import MLP, ConvDecoder, ConvEncoder
from .training import ACTIVE_UNIT_THRESHOLD, History, train

__all__ = [
    "ACTIVE_UNIT_THRESHOLD",
    "Autoencoder",
    "ConvDecoder",
    "ConvEncoder",
    "History",
    "KL_METHODS",
    "LIKELIHOODS",
    "Likelihood",
    "MLP",
    "OBJECTIVES",
    "VAE",
    "active_units",
    "amortisation_gap",
    "annealing",
    "check_posterior_collapse",
    "diagnostics",
    "kl_per_dimension",
    "latent",
    "load_checkpoint",
    "load_model",
    "sample_label_histogram",
    "save_checkpoint",
    "save_model",
    "StandardNormal",
    "train",
]
