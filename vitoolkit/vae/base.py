r"""The base class every model of :mod:`vitoolkit.vae` shares (VAE, Autoencoder,
CategoricalVAE, VQVAE, SparseAutoencoder): seeded initialisation, the input checks of
data ``x`` (shape, finiteness, the likelihood's support, declared once), labels ``y`` and
codes ``z``, and the declaration of the training loss that :func:`vitoolkit.vae.train`
minimises; and the memory check of the networks' sizes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..validation import (
    as_float_tensor,
    check_seed,
)
from .networks import (
    build_encoder_decoder,
    check_parameter_memory,
    mlp_parameter_count,
)

__all__ = ["check_network_size"]


def check_network_size(sizes: dict, *layer_widths) -> None:
    """Refuse, before building, networks whose weights would not fit in memory.

    ``layer_widths``: one list of consecutive widths per network (MLP layout; a
    convolutional network is smaller); ``sizes`` maps the size arguments to their
    values, and the error names the largest (:func:`~vitoolkit.vae.networks.check_parameter_memory`).
    """
    count = sum(mlp_parameter_count(widths) for widths in layer_widths)
    check_parameter_memory(count, sizes, "the networks' weights")


class _LatentVariableModel(nn.Module):
    """Input handling shared by :class:`VAE` and :class:`Autoencoder`."""

    data_dim: int
    latent_dim: int
    conditional_dim: int = 0
    image_shape: tuple | None = None

    def _init_seeded(self, seed, build) -> None:
        # Seed the initialisation without touching the caller's global random state.
        seed = check_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            build()
        self.float()  # float32 for neural training, whatever the global default

    def _build_mlp_pair(self, hidden_dims, activation: str) -> None:
        """``self.encoder`` (x -> latent_dim numbers) and ``self.decoder`` (z -> the likelihood's
        parameters) as MLPs, the pair of the discrete-latent models (one-hot or quantised z)."""
        self.encoder, self.decoder = build_encoder_decoder(
            "mlp", data_dim=self.data_dim, encoder_out=self.latent_dim, latent_dim=self.latent_dim,
            hidden_dims=hidden_dims, activation=activation,
            params_per_pixel=self.likelihood.params_per_pixel)

    @property
    def _ref(self) -> torch.Tensor:
        return next(self.parameters())

    def _as_tensor(self, x, name: str, *, cast: bool = True) -> torch.Tensor:
        ref = self._ref
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in "biuf":
                raise TypeError(f"{name} must hold real numbers, got a numpy array of dtype "
                                f"{x.dtype}")
            x = torch.from_numpy(np.ascontiguousarray(x))
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        return x.to(device=ref.device, dtype=ref.dtype) if cast else x

    #: Check the support on a float64 copy first (the autoencoders' BCE range check), before
    #: any other check, so a value just outside [0, 1] is refused whatever its dtype.
    _support_in_float64 = False

    def _check_x(self, x, name: str = "x") -> torch.Tensor:
        """Validate data: shape (n, data_dim) (or (n, *image_shape)), finite, in support."""
        if self._support_in_float64:
            x64 = as_float_tensor(x, name, dtype=torch.float64)
            if x64.numel():
                self._check_support(x64, name)
        # Checked in the caller's precision, then cast: a float64 value outside the support
        # must not become a valid one by rounding to float32 (-1e-200 -> -0.0).
        x = self._as_tensor(x, name, cast=False)
        if self.image_shape is not None and x.ndim == 1 + len(self.image_shape) \
                and tuple(x.shape[1:]) == tuple(self.image_shape):
            x = x.reshape(x.shape[0], -1)
        if x.ndim != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"{name} must have shape (n, {self.data_dim}) (the model's "
                             f"data_dim={self.data_dim}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
        finite = torch.isfinite(x).all(dim=1)
        if not bool(finite.all()):
            rows = torch.nonzero(~finite).flatten()[:5].tolist()
            raise ValueError(f"{name} contains NaN or infinite values (rows {rows}"
                             f"{', ...' if int((~finite).sum()) > 5 else ''})")
        self._check_support(x, name)
        ref = self._ref
        cast = x.to(device=ref.device, dtype=ref.dtype)
        if cast.dtype != x.dtype and not bool(torch.isfinite(cast).all()):
            raise ValueError(f"{name} has values beyond the range of the model's dtype "
                             f"{ref.dtype} (largest magnitude {float(x.abs().max()):.3g})")
        return cast

    def _check_support(self, x: torch.Tensor, name: str) -> None:
        """Refuse data outside the likelihood's support (a Bernoulli decoder needs [0, 1]):
        the model's ``likelihood`` checks it; a model without one overrides this."""
        likelihood = getattr(self, "likelihood", None)
        if likelihood is not None:
            likelihood.check_support(x, name)

    def _loss(self, x, y, *, beta, free_bits, objective, num_samples, generator=None):
        """The training loss :func:`vitoolkit.vae.train` minimises on a checked batch:
        ``(scalar loss, dict of detached per-batch figures)``. Every model declares it."""
        raise NotImplementedError(f"{type(self).__name__} does not define its training loss")

    def forward(self, x, *args, **kwargs) -> torch.Tensor:  # pragma: no cover - every model overrides
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def _check_y(self, y, n: int, name: str = "y") -> torch.Tensor | None:
        """Validate a conditional label: one-hot (n, conditional_dim) or integers (n,)."""
        if self.conditional_dim == 0:
            if y is not None:
                raise ValueError(f"{name} was given but the model is unconditional "
                                 "(conditional_dim=0)")
            return None
        if y is None:
            raise ValueError(f"{name} is required: the model is conditional "
                             f"(conditional_dim={self.conditional_dim})")
        if isinstance(y, np.ndarray):
            if y.dtype.kind not in "biuf":
                raise TypeError(f"{name} must hold integer labels or one-hot rows, got a numpy "
                                f"array of dtype {y.dtype}")
            y = torch.from_numpy(np.ascontiguousarray(y))
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(y).__name__}")
        ref = self._ref
        if y.dtype == torch.bool or y.is_complex():
            raise TypeError(f"{name} must hold integer class labels or one-hot rows, got dtype "
                            f"{y.dtype}")
        if y.ndim == 1 and not y.is_floating_point():
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.conditional_dim):
                raise ValueError(f"{name} labels must lie in 0..{self.conditional_dim - 1}, "
                                 f"got range [{int(y.min())}, {int(y.max())}]")
            y = F.one_hot(y.long(), self.conditional_dim)
        if y.ndim != 2 or y.shape[1] != self.conditional_dim or y.shape[0] != n:
            raise ValueError(f"{name} must be one-hot of shape ({n}, {self.conditional_dim}) or "
                             f"integer labels of shape ({n},), got {tuple(y.shape)}")
        y = y.to(device=ref.device, dtype=ref.dtype)
        if not bool(torch.isfinite(y).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        # One-hot: every entry 0 or 1 and exactly one 1 per row (a soft or multi-hot label
        # would be fed to the networks as a condition they never saw in training).
        binary = (y == 0) | (y == 1)
        bad = ~binary.all(dim=1) | (y.sum(dim=1) != 1)
        if bool(bad.any()):
            rows = torch.nonzero(bad).flatten()[:5].tolist()
            raise ValueError(f"{name} must be one-hot (one entry 1, the rest 0, per row); rows "
                             f"{rows}{', ...' if int(bad.sum()) > 5 else ''} are not")
        return y

    def _check_z(self, z, name: str = "z") -> torch.Tensor:
        z = self._as_tensor(z, name)
        if z.ndim < 1 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"{name} must have shape (..., {self.latent_dim}) "
                             f"(latent_dim={self.latent_dim}), got {tuple(z.shape)}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        return z

    def _with_label(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            return h
        return torch.cat([h, y.expand(*h.shape[:-1], y.shape[-1])], dim=-1)
