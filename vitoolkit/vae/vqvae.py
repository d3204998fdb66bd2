r"""The vector-quantised VAE (van den Oord, Vinyals & Kavukcuoglu 2017).

The encoder maps x to ``num_latents`` vectors z_e(x)_l in R^D; each is replaced
by its nearest codebook vector e_k (k = argmin_j ||z_e - e_j||, their eq. (1)-(2)),
and the decoder reconstructs x from the quantised z_q. Training minimises, per
example (their eq. (3)),

    loss = -log p(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2,

where sg is stop-gradient: the codebook term moves the codes to the encoder
outputs, the commitment term (beta = ``commitment``, 0.25 in the paper) keeps
the encoder near its codes. The quantiser has no gradient, so the decoder's
gradient at z_q is copied to z_e unchanged: the straight-through estimator
(Bengio, Leonard & Courville 2013), z = z_e + sg[z_q - z_e].

Where did the KL go? The posterior is deterministic and one-hot,
q(z = k | x) = 1 for the nearest code, and the prior is uniform over the K
codes, so KL(q || p) = log K per latent: a constant (section 3.1 of the paper),
which is why it is left out of the loss. :attr:`VQVAE.kl` is that number, and
:meth:`VQVAE.elbo` = log p(x | z_q) - L log K is a true lower bound on log p(x)
under the uniform prior.

Codebook usage: codes that no input selects get no gradient from the codebook
term and stay where they are ("dead" codes); :meth:`~VQVAE.codebook_perplexity`
(exp of the entropy of the code frequencies; K when every code is used equally,
1 when one code takes everything) and :meth:`~VQVAE.dead_codes` measure it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..validation import check_int, check_memory, check_real, check_seed
from .base import _LatentVariableModel, check_network_size
from .likelihoods import make_likelihood
from .networks import check_hidden_dims

__all__ = ["VQVAE"]


class VQVAE(_LatentVariableModel):
    """Vector-quantised VAE with an MLP encoder and decoder.

    Parameters
    ----------
    data_dim : int
        Observed values per example (pixels, flattened).
    num_embeddings : int >= 1
        K, the codebook size.
    embedding_dim : int >= 1
        D, the size of each code vector.
    hidden_dims : sequence of int
        Encoder hidden widths; the decoder mirrors them.
    likelihood : str
        The observation model p(x | z_q), as for :class:`~vitoolkit.vae.VAE`.
    num_latents : int >= 1
        L, the number of code vectors per example (each quantised separately;
        the paper's spatial grid of latents, flattened).
    commitment : float >= 0
        beta of the commitment loss (0.25 in the paper, section 4).
    activation, observation_scale, min_scale, seed
        As for :class:`~vitoolkit.vae.VAE`.
    """

    _reports_elbo = True

    def __init__(self, data_dim: int, num_embeddings: int, embedding_dim: int,
                 hidden_dims=(256, 128), likelihood: str = "bernoulli", *, num_latents: int = 1,
                 commitment: float = 0.25, activation: str = "relu",
                 observation_scale: float = 0.1, min_scale: float = 0.01, seed: int = 0):
        super().__init__()
        seed = check_seed(seed)
        self.data_dim = check_int(data_dim, "data_dim", minimum=1)
        self.num_embeddings = check_int(num_embeddings, "num_embeddings", minimum=1)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", minimum=1)
        self.num_latents = check_int(num_latents, "num_latents", minimum=1)
        self.latent_dim = self.num_latents * self.embedding_dim
        hidden_dims = check_hidden_dims(hidden_dims)
        self.commitment = check_real(commitment, "commitment", minimum=0.0)
        self.likelihood = make_likelihood(likelihood, observation_scale=observation_scale,
                                          min_scale=min_scale)
        check_network_size({"data_dim": self.data_dim, "num_embeddings": self.num_embeddings,
                            "embedding_dim": self.embedding_dim, "num_latents": self.num_latents,
                            "hidden_dims": hidden_dims},
                           [self.data_dim, *hidden_dims, self.latent_dim],
                           [self.latent_dim, *hidden_dims[::-1],
                            self.likelihood.params_per_pixel * self.data_dim],
                           [self.num_embeddings, self.embedding_dim])
        self.config = {
            "data_dim": self.data_dim, "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim, "hidden_dims": list(hidden_dims),
            "likelihood": self.likelihood.name, "num_latents": self.num_latents,
            "commitment": self.commitment, "activation": activation,
            "observation_scale": float(observation_scale), "min_scale": float(min_scale),
            "seed": seed,
        }

        def build():
            self._build_mlp_pair(hidden_dims, activation)
            k = self.num_embeddings
            # Uniform(-1/K, 1/K), the initialisation of the common reference implementations.
            self.codebook = nn.Parameter(torch.empty(k, self.embedding_dim).uniform_(-1 / k, 1 / k))

        self._init_seeded(seed, build)

    def extra_repr(self) -> str:
        return (f"data_dim={self.data_dim}, num_embeddings={self.num_embeddings}, "
                f"embedding_dim={self.embedding_dim}, num_latents={self.num_latents}")

    def forward(self, x) -> torch.Tensor:
        """``model(x)``: the per-example ELBO of the one-hot posterior, :meth:`elbo`
        (``x`` of shape (n, data_dim), returns (n,) nats, differentiable through the
        straight-through code; the training loss is :meth:`loss`)."""
        return self.elbo(x)

    @property
    def kl(self) -> float:
        """KL(q(z | x) || p(z)) = L log K for every x: one-hot q, uniform prior (sec. 3.1)."""
        return self.num_latents * math.log(self.num_embeddings)

    # -- the three maps --------------------------------------------------------
    def _encode(self, x) -> torch.Tensor:
        return self.encoder(x).reshape(x.shape[0], self.num_latents, self.embedding_dim)

    def encode(self, x) -> torch.Tensor:
        """Encoder outputs z_e(x), shape (n, L, D) (before quantisation)."""
        return self._encode(self._check_x(x))

    def _quantize(self, z_e, name: str = "the encoder's output z_e(x)"):
        # argmin over a NaN distance picks code 0: a NaN encoding must not become a code.
        finite = torch.isfinite(z_e.detach())
        if not bool(finite.all()):
            bad = int((~finite).sum())
            weights = "" if name == "z_e" else (
                "; the model's weights hold NaN or inf" if not all(
                    bool(torch.isfinite(p).all()) for p in self.parameters())
                else "; the encoder overflowed on this input")
            raise ValueError(f"{name} contains {bad} NaN or infinite entries (of "
                             f"{z_e.numel()}): it cannot be quantised to a code{weights}")
        if not bool(torch.isfinite(self.codebook.detach()).all()):
            raise ValueError("the codebook holds NaN or infinite entries: no code can be chosen")
        # Squared distances to every code, (..., L, K); argmin is eq. (1) of the paper.
        dist = (z_e.pow(2).sum(-1, keepdim=True) - 2 * z_e @ self.codebook.T
                + self.codebook.pow(2).sum(-1))
        indices = dist.argmin(-1)
        return self.codebook[indices], indices

    def quantize(self, z_e):
        """Nearest codes: ``(z_q, indices)``, shapes (..., L, D) and (..., L).

        ``z_q`` is the plain codebook lookup (its gradient reaches the codebook,
        not ``z_e``); the training loss adds the straight-through copy. A ``z_e`` holding
        NaN or inf is refused (``ValueError`` naming it): it has no nearest code.
        """
        z_e = self._as_tensor(z_e, "z_e")
        if z_e.ndim < 1 or z_e.shape[-1] != self.embedding_dim:
            raise ValueError(f"z_e must have shape (..., {self.embedding_dim}), "
                             f"got {tuple(z_e.shape)}")
        return self._quantize(z_e, "z_e")

    def decode(self, z_q):
        """p(x | z_q) for codes of shape (..., L, D) or (..., L * D)."""
        z_q = self._as_tensor(z_q, "z_q")
        if z_q.ndim >= 2 and tuple(z_q.shape[-2:]) == (self.num_latents, self.embedding_dim):
            z_q = z_q.reshape(*z_q.shape[:-2], self.latent_dim)
        z_q = self._check_z(z_q, "z_q")
        return self.likelihood.distribution(self.decoder(z_q))

    def _terms(self, x):
        """log p(x | z_q) with the straight-through gradient, the two VQ losses, z_e, indices."""
        z_e = self._encode(x)
        z_q, indices = self._quantize(z_e)
        z_st = z_e + (z_q - z_e).detach()  # straight-through: forward z_q, backward to z_e
        recon = self.likelihood.distribution(
            self.decoder(z_st.reshape(x.shape[0], self.latent_dim))).log_prob(x)
        codebook = (z_e.detach() - z_q).pow(2).sum((-1, -2))
        commit = (z_e - z_q.detach()).pow(2).sum((-1, -2))
        return recon, codebook, commit, z_e, indices

    def loss(self, x) -> torch.Tensor:
        """-log p(x | z_q) + codebook loss + commitment * commitment loss, shape (n,) (eq. 3)."""
        recon, codebook, commit, _, _ = self._terms(self._check_x(x))
        return -recon + codebook + self.commitment * commit

    def elbo(self, x) -> torch.Tensor:
        """log p(x | z_q(x)) - L log K: the ELBO of the one-hot q under the uniform prior, (n,)."""
        x = self._check_x(x)
        return self._terms(x)[0] - self.kl

    @torch.no_grad()
    def reconstruct(self, x) -> torch.Tensor:
        """Decoder mean at the quantised code, shape (n, data_dim)."""
        x = self._check_x(x)
        z_q, _ = self._quantize(self._encode(x))
        return self.likelihood.distribution(
            self.decoder(z_q.reshape(x.shape[0], self.latent_dim))).mean

    @torch.no_grad()
    def sample(self, n: int, *, generator=None) -> torch.Tensor:
        """Decoder means at codes drawn from the uniform prior, shape (n, data_dim).

        (The paper fits an autoregressive prior over codes afterwards; under the
        uniform prior the latents are independent, so samples are poor.)
        """
        n = check_int(n, "n", minimum=1)
        check_memory(n * (self.latent_dim + 2 * self.data_dim) * 8, "n", n,
                     "the codes and decoded samples")
        idx = torch.randint(0, self.num_embeddings, (n, self.num_latents), generator=generator)
        z = self.codebook[idx.to(self.codebook.device)].reshape(n, self.latent_dim)
        return self.likelihood.distribution(self.decoder(z)).mean

    # -- codebook usage -----------------------------------------------------------
    @torch.no_grad()
    def codebook_usage(self, x) -> torch.Tensor:
        """How often each code is selected over ``x`` (all latents): counts, shape (K,)."""
        x = self._check_x(x)
        _, indices = self._quantize(self._encode(x))
        return torch.bincount(indices.reshape(-1), minlength=self.num_embeddings)

    def codebook_perplexity(self, x) -> float:
        """exp(entropy of the code frequencies over ``x``): between 1 and K."""
        counts = self.codebook_usage(x).double()
        p = counts / counts.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        return float(entropy.exp())

    def dead_codes(self, x) -> int:
        """Number of codes no example of ``x`` selects."""
        return int((self.codebook_usage(x) == 0).sum())

    # -- used by vitoolkit.vae.train ------------------------------------------------
    def _loss(self, x, y, *, beta: float, free_bits: float, objective: str, num_samples: int,
              generator=None):
        if y is not None:
            raise ValueError("VQVAE is unconditional: labels are not supported")
        if objective != "elbo" or beta != 1.0 or free_bits > 0:
            raise ValueError("VQVAE trains its own loss (reconstruction + codebook + "
                             "commitment): use objective='elbo' without beta or free_bits")
        recon, codebook, commit, z_e, _ = self._terms(x)
        loss = (-recon + codebook + self.commitment * commit).mean()
        n = x.shape[0]
        kl_dims = torch.full((n, self.num_latents), math.log(self.num_embeddings),
                             dtype=recon.dtype, device=recon.device)
        return loss, {"loss": loss.detach(), "recon": recon.detach().sum(), "kl_dims": kl_dims,
                      "loc": z_e.detach().reshape(n, -1)}
