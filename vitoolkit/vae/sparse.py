r"""The sparse autoencoder: a Bernoulli KL used as a penalty, not as a bound.

A one-hidden-layer autoencoder with sigmoid units :math:`h_j(x) \in (0, 1)` and a
penalty on each unit's *average* activation over the data,
:math:`\hat\rho_j = \mathrm{mean}_x \, h_j(x)`, pulling it towards a small target rate
:math:`\rho` (Ng, "Sparse autoencoder", CS294A lecture notes, 2011, section 3):

.. math::

    \text{loss} &= \mathrm{mean}_x \, \mathrm{BCE}(x, \hat x(x))
        + \text{weight} \sum_j \mathrm{KL}\big(\mathrm{Bern}(\rho) \,\|\, \mathrm{Bern}(\hat\rho_j)\big), \\
    \mathrm{KL}\big(\mathrm{Bern}(\rho) \,\|\, \mathrm{Bern}(r)\big)
        &= \rho \log\frac{\rho}{r} + (1 - \rho) \log\frac{1 - \rho}{1 - r}.

It is the same closed-form Bernoulli KL as a binary-latent VAE's, with a
different job: here it compares one fixed rate with the *aggregate* activation
of a deterministic unit (nothing is sampled, no bound on log p(x) results);
in a VAE it compares each example's posterior q(z | x) with the prior.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli

from ..divergences import kl_divergence
from ..validation import (
    as_float_tensor,
    check_finite,
    check_int,
    check_probability,
    check_real,
    check_seed,
)
from .base import _LatentVariableModel
from .networks import check_parameter_memory, mlp_parameter_count

__all__ = ["SparseAutoencoder", "bernoulli_sparsity_penalty"]


def bernoulli_sparsity_penalty(activations: torch.Tensor, sparsity: float) -> torch.Tensor:
    r"""The sparsity penalty: each unit's Bernoulli KL from the target rate, summed (nats).

    :math:`\sum_j \mathrm{KL}(\mathrm{Bern}(\rho) \,\|\, \mathrm{Bern}(\hat\rho_j))` with
    :math:`\hat\rho_j` the mean of ``activations[:, j]`` (module docstring), a scalar.

    Parameters
    ----------
    activations : Tensor of shape (n, hidden) with values in [0, 1], n >= 1
        A tensor keeps its autograd graph (the penalty is differentiable in it).
        The average rates are clamped to [1e-6, 1 - 1e-6], so saturated units
        (exactly 0 or 1 in float32) give a large but finite penalty.
    sparsity : float in (0, 1), the target rate :math:`\rho`
    """
    sparsity = check_probability(sparsity, "sparsity", open_interval=True)
    activations = _check_activations(activations)
    rate = activations.mean(0).clamp(1e-6, 1 - 1e-6)
    target = torch.full_like(rate, sparsity)
    return kl_divergence(Bernoulli(probs=target, validate_args=False),
                         Bernoulli(probs=rate, validate_args=False)).sum()


def _check_activations(activations) -> torch.Tensor:
    name = "activations"
    if isinstance(activations, torch.Tensor) and activations.is_floating_point():
        a = activations  # keep the graph: the training loss differentiates through it
    else:
        a = as_float_tensor(activations, name, finite=False)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must have shape (n, hidden) with n, hidden >= 1, got "
                         f"{tuple(a.shape)}")
    with torch.no_grad():
        check_finite(a.detach(), name)
        lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} must be activations in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return a


class SparseAutoencoder(_LatentVariableModel):
    """Autoencoder x -> sigmoid(W x + b) -> sigmoid(W' h + b') with a Bernoulli-KL sparsity penalty.

    Parameters
    ----------
    data_dim : int
    hidden_dim : int
        Number of sigmoid hidden units.
    sparsity : float in (0, 1)
        rho, the target average activation of each unit.
    weight : float >= 0
        The penalty's weight (0: a plain sigmoid autoencoder).
    seed : int
    """

    _reports_elbo = False

    def __init__(self, data_dim: int, hidden_dim: int, *, sparsity: float = 0.05,
                 weight: float = 1.0, seed: int = 0):
        super().__init__()
        self.data_dim = check_int(data_dim, "data_dim", minimum=1)
        self.latent_dim = check_int(hidden_dim, "hidden_dim", minimum=1)
        self.sparsity = check_probability(sparsity, "sparsity", open_interval=True)
        self.weight = check_real(weight, "weight", minimum=0.0)
        seed = check_seed(seed)
        check_parameter_memory(
            mlp_parameter_count((self.data_dim, self.latent_dim, self.data_dim)),
            {"data_dim": self.data_dim, "hidden_dim": self.latent_dim})
        self.config = {"data_dim": self.data_dim, "hidden_dim": self.latent_dim,
                       "sparsity": self.sparsity, "weight": self.weight, "seed": seed}

        def build():
            self.encoder = nn.Linear(self.data_dim, self.latent_dim)
            self.decoder = nn.Linear(self.latent_dim, self.data_dim)

        self._init_seeded(seed, build)

    # The support is checked in float64 too, before float32 rounds a value onto [0, 1].
    _support_in_float64 = True

    def _check_support(self, x, name):
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"{name} has values in [{lo:.4g}, {hi:.4g}]; the sparse autoencoder's "
                             "BCE needs data in [0, 1]")

    def encode(self, x) -> torch.Tensor:
        """Hidden activations h(x) in (0, 1), shape (n, hidden_dim)."""
        return torch.sigmoid(self.encoder(self._check_x(x)))

    def forward(self, x) -> torch.Tensor:
        """``model(x)``: the reconstruction sigmoid(W' h(x) + b'), shape (n, data_dim),
        differentiable (:meth:`reconstruct` without ``no_grad``)."""
        return torch.sigmoid(self.decoder(self.encode(x)))

    @torch.no_grad()
    def reconstruct(self, x) -> torch.Tensor:
        """sigmoid(W' h(x) + b'), shape (n, data_dim)."""
        return torch.sigmoid(self.decoder(self.encode(x)))

    @torch.no_grad()
    def mean_activation(self, x) -> torch.Tensor:
        """rho_hat: each unit's average activation over ``x``, shape (hidden_dim,)."""
        return self.encode(x).mean(0)

    @torch.no_grad()
    def penalty(self, x) -> float:
        """sum_j KL(Bern(rho) || Bern(rho_hat_j)) over ``x``, in nats."""
        return float(bernoulli_sparsity_penalty(self.encode(x), self.sparsity))

    def _loss(self, x, y, *, beta, free_bits, objective, num_samples, generator=None):
        if y is not None:
            raise ValueError("SparseAutoencoder is unconditional: labels are not supported")
        h = torch.sigmoid(self.encoder(x))
        recon = F.binary_cross_entropy_with_logits(self.decoder(h), x, reduction="none").sum(-1)
        loss = recon.mean() + self.weight * bernoulli_sparsity_penalty(h, self.sparsity)
        return loss, {"loss": loss.detach(), "loc": h.detach()}
