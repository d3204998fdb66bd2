"""The amortised variational autoencoder: model, likelihoods, training, checkpoints.

- :class:`VAE`, :class:`Autoencoder` (:mod:`vitoolkit.vae.model`): encoder/decoder
  networks (:mod:`~vitoolkit.vae.networks`), the ELBO, the IWAE bound and the
  importance-sampled log-likelihood; :mod:`~vitoolkit.vae.importance` draws the importance
  weights p(x, z)/q(z|x) (their summary is the core's :mod:`vitoolkit.divergences.importance`).
- :mod:`~vitoolkit.vae.likelihoods`: Bernoulli, Gaussian (fixed or learned
  variance), continuous Bernoulli.
- :func:`train`, :class:`History` (:mod:`vitoolkit.vae.training`) with the beta
  schedules of :mod:`~vitoolkit.vae.annealing`.
- :mod:`~vitoolkit.vae.checkpoint`: atomic saves, safe loads.
- :mod:`~vitoolkit.vae.diagnostics`: KL per dimension, active units, posterior
  collapse, the amortisation gap, disentanglement scores.
- :mod:`~vitoolkit.vae.latent`: interpolation, traversals, latent arithmetic.
- Discrete latents: :class:`VQVAE` (:mod:`~vitoolkit.vae.vqvae`), :class:`CategoricalVAE`
  with Gumbel-softmax, REINFORCE and VIMCO (:mod:`~vitoolkit.vae.categorical`), and the
  sparse autoencoder's Bernoulli-KL penalty (:mod:`~vitoolkit.vae.sparse`).
- The forward KL for the encoder: wake-sleep and reweighted wake-sleep
  (:mod:`~vitoolkit.vae.wake_sleep`, ``train(..., objective="wake_sleep"|"rws")``), and the
  linear-Gaussian VAE whose posterior is exact (:mod:`~vitoolkit.vae.linear_gaussian`).
"""

from . import annealing, diagnostics, latent
from .autoencoder import Autoencoder, sample_label_histogram
from .categorical import BASELINES, CATEGORICAL_ESTIMATORS, ESTIMATORS, CategoricalVAE
from .checkpoint import load_checkpoint, load_model, save_checkpoint, save_model
from .diagnostics import active_units, amortisation_gap, check_posterior_collapse, kl_per_dimension
from .likelihoods import LIKELIHOODS, Likelihood
from .linear_gaussian import linear_gaussian_evidence, linear_gaussian_posterior
from .model import KL_METHODS, OBJECTIVES, VAE, StandardNormal
from .networks import MLP, ConvDecoder, ConvEncoder
from .sparse import SparseAutoencoder, bernoulli_sparsity_penalty
from .training import ACTIVE_UNIT_THRESHOLD, TRAIN_OBJECTIVES, History, train
from .vqvae import VQVAE
from .wake_sleep import rws_loss, wake_sleep_loss

__all__ = [
    "ACTIVE_UNIT_THRESHOLD",
    "Autoencoder",
    "BASELINES",
    "CategoricalVAE",
    "CATEGORICAL_ESTIMATORS",
    "ESTIMATORS",
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
    "SparseAutoencoder",
    "StandardNormal",
    "TRAIN_OBJECTIVES",
    "VQVAE",
    "bernoulli_sparsity_penalty",
    "linear_gaussian_evidence",
    "linear_gaussian_posterior",
    "rws_loss",
    "train",
    "wake_sleep_loss",
]
