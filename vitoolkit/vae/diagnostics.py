r"""What a trained VAE does with its latent space, and how far its posterior falls short.

- :func:`kl_per_dimension` and :func:`active_units`: which latent units carry
  information (Burda, Grosse & Salakhutdinov 2015, "Importance weighted
  autoencoders", section 5.2).
- :func:`check_posterior_collapse`: units whose posterior equals the prior for
  (almost) every input (Lucas et al. 2019, "Don't blame the ELBO!", Definition 1).
- :func:`amortisation_gap`: Cremer, Li & Duvenaud (ICML 2018), "Inference
  suboptimality in variational autoencoders", section 3: the inference gap
  log p(x) - L[q] splits into the approximation gap log p(x) - L[q*] (the
  variational family) and the amortisation gap L[q*] - L[q] (the encoder).
- :func:`iwae_curve`: the IWAE bounds L_k for several k and the importance-sampled
  log p(x) from one pool of draws, with Monte Carlo standard errors and the Pareto
  k-hat of the weights (Burda, Grosse & Salakhutdinov 2015, eq. (8) and Theorem 1;
  Vehtari et al. 2024).
- :func:`mutual_information_gap` and :func:`factor_correlation`: how single
  latent units line up with known generating factors (Chen et al. 2018,
  "Isolating sources of disentanglement in VAEs", section 5, eq. (6), with the
  histogram estimator of Locatello et al. 2019, "Challenging common assumptions
  in the unsupervised learning of disentangled representations", appendix).

Every function takes a model with the VAE interface (``encode(x[, y])`` ->
Independent Normal q(z|x), ``decode(z[, y])`` -> p(x|z), ``prior``); it works in
the model's dtype, in evaluation mode (restored afterwards), and never changes
the model's parameters or their gradients.

The functions live in :mod:`vitoolkit.vae.collapse`, :mod:`vitoolkit.vae.bounds` and
:mod:`vitoolkit.vae.disentanglement` (one concept each); this module keeps their common
import path for course material.
"""

from __future__ import annotations

from ._model_inputs import _check_inputs as _check_inputs
from .bounds import AmortisationGap, BoundCurve, amortisation_gap, iwae_curve
from .collapse import (
    ACTIVITY_THRESHOLD,
    ActiveUnits,
    CollapseReport,
    active_units,
    check_posterior_collapse,
    kl_per_dimension,
)
from .disentanglement import (
    FactorScores,
    factor_correlation,
    factor_scores,
    mutual_information_gap,
    mutual_information_matrix,
)

__all__ = [
    "ActiveUnits",
    "AmortisationGap",
    "BoundCurve",
    "CollapseReport",
    "FactorScores",
    "active_units",
    "amortisation_gap",
    "check_posterior_collapse",
    "factor_correlation",
    "factor_scores",
    "iwae_curve",
    "kl_per_dimension",
    "mutual_information_gap",
    "mutual_information_matrix",
]

ACTIVITY_THRESHOLD = ACTIVITY_THRESHOLD  # re-exported (not in __all__, as before)
