"""A plain autoencoder with the VAE's networks, and a check of what its prior draws decode to.

The deterministic autoencoder minimises a reconstruction loss only; nothing
ties its codes to a prior, so decoding z ~ N(0, I) samples its code space in
the wrong proportions (some digits over-produced, others almost never).
:func:`sample_label_histogram` puts a number on that for any generator.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..validation import as_float_tensor, check_choice, check_int, check_memory, check_seed
from .base import _LatentVariableModel
from .networks import (
    ARCHITECTURES,
    build_encoder_decoder,
    check_hidden_dims,
    check_image_shape,
    check_parameter_memory,
    mlp_parameter_count,
)

__all__ = ["Autoencoder", "sample_label_histogram"]


class Autoencoder(_LatentVariableModel):
    """A deterministic autoencoder with the VAE's networks, for comparison.

    Parameters
    ----------
    data_dim, latent_dim, hidden_dims, architecture, image_shape, activation, seed
        As for :class:`VAE`.
    loss : {"bce", "mse"}
        Reconstruction loss summed over pixels. ``"bce"`` squashes the decoder
        output through a sigmoid (reconstructions in (0, 1), data must be in
        [0, 1]); ``"mse"`` leaves it unbounded.
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims=(256, 128), *,
                 architecture: str = "mlp", image_shape=None, activation: str = "relu",
                 loss: str = "bce", seed: int = 0):
        super().__init__()
        self.data_dim = check_int(data_dim, "data_dim", minimum=1)
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        hidden_dims = check_hidden_dims(hidden_dims)
        architecture = check_choice(architecture, ARCHITECTURES, "architecture")
        self.loss_name = loss = check_choice(loss, ("bce", "mse"), "loss")
        seed = check_seed(seed)
        mlp = architecture == "mlp"
        if mlp:  # the conv networks check their own size
            widths = (self.data_dim, *hidden_dims, self.latent_dim)
            check_parameter_memory(
                mlp_parameter_count(widths) + mlp_parameter_count(widths[::-1]),
                {"data_dim": self.data_dim, "latent_dim": self.latent_dim,
                 "hidden_dims": hidden_dims})
        # An MLP ignores the image shape, but a given one must still describe the data.
        shape = None if image_shape is None and mlp else check_image_shape(
            image_shape, self.data_dim, None if mlp else len(hidden_dims))
        self.image_shape = None if mlp else shape
        self.config = {"data_dim": self.data_dim, "latent_dim": self.latent_dim,
                       "hidden_dims": list(hidden_dims), "architecture": architecture,
                       "image_shape": None if image_shape is None else list(image_shape),
                       "activation": activation, "loss": loss, "seed": seed}

        def build():
            self.encoder, self.decoder = build_encoder_decoder(
                architecture, data_dim=self.data_dim, encoder_out=self.latent_dim,
                latent_dim=self.latent_dim, hidden_dims=hidden_dims, activation=activation,
                image_shape=self.image_shape)

        self._init_seeded(seed, build)

    # The support is checked in float64 too, before the model's float32 can round a
    # value just outside [0, 1] onto its boundary.
    _support_in_float64 = True

    def _check_support(self, x, name):
        if self.loss_name == "bce":
            lo, hi = float(x.min()), float(x.max())
            if lo < 0 or hi > 1:
                raise ValueError(f"{name} has values in [{lo:.4g}, {hi:.4g}]; loss='bce' needs "
                                 "data in [0, 1] (or use loss='mse')")

    def encode(self, x) -> torch.Tensor:
        """Codes of shape (n, latent_dim) for ``x`` of shape (n, data_dim)."""
        return self.encoder(self._check_x(x))

    def decode(self, z) -> torch.Tensor:
        """Reconstructions of shape (..., data_dim) for codes ``z`` of shape (..., latent_dim)."""
        out = self.decoder(self._check_z(z))
        return torch.sigmoid(out) if self.loss_name == "bce" else out

    def _per_example_loss(self, x):
        codes = self.encoder(x)
        out = self.decoder(codes)
        if self.loss_name == "bce":
            return F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1), codes
        return (out - x).pow(2).sum(-1), codes

    def loss(self, x) -> torch.Tensor:
        """Reconstruction loss per example, summed over pixels: shape (n,)."""
        return self._per_example_loss(self._check_x(x))[0]

    def forward(self, x) -> torch.Tensor:
        """``model(x)``: the reconstruction decode(encode(x)), shape (n, data_dim),
        differentiable (a deterministic autoencoder has no ELBO; its loss is :meth:`loss`)."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def reconstruct(self, x) -> torch.Tensor:
        """decode(encode(x)), shape (n, data_dim)."""
        return self.decode(self.encode(x))

    def _loss(self, x, y, *, beta, free_bits, objective, num_samples, generator=None):
        per, codes = self._per_example_loss(x)
        loss = per.mean()
        return loss, {"loss": loss.detach(), "loc": codes.detach()}


def sample_label_histogram(samples, data, labels, num_classes: int | None = None):
    """Share of generated images whose nearest data image has each label.

    A generative model whose prior draws decode to every kind of digit, in the
    data's proportions, "covers" the data; a latent space whose codes do not
    follow the prior that is sampled (a plain autoencoder's) over- or
    under-produces some classes. Nearest is the Euclidean distance in pixel space.

    Parameters
    ----------
    samples : Tensor of shape (m, data_dim)
        Generated images (for example decoded prior draws).
    data : Tensor of shape (n, data_dim)
    labels : Tensor of shape (n,), integers in 0..num_classes-1
    num_classes : int, optional
        Default: ``labels.max() + 1``.

    Returns
    -------
    Tensor of shape (num_classes,), float64, summing to 1.
    """
    samples = as_float_tensor(samples, "samples", dtype=torch.float64, ndim=2)
    data = as_float_tensor(data, "data", dtype=torch.float64, ndim=2)
    if samples.shape[0] == 0 or data.shape[0] == 0:
        raise ValueError(f"samples and data must have at least one row, got shapes "
                         f"{tuple(samples.shape)} and {tuple(data.shape)}")
    if samples.shape[1] != data.shape[1]:
        raise ValueError(f"samples (m, d) and data (n, d) must share d, got "
                         f"{tuple(samples.shape)} and {tuple(data.shape)}")
    labels = _check_labels(labels, data.shape[0])
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    else:
        num_classes = check_int(num_classes, "num_classes", minimum=1)
        check_memory(8 * num_classes, "num_classes", num_classes, "the class counts")
        if int(labels.max()) >= num_classes:
            raise ValueError(f"labels must lie in 0..num_classes-1 = 0..{num_classes - 1}, "
                             f"got a label {int(labels.max())}")
    # The (m, n) distance matrix in float64, in blocks of samples.
    block = max(1, 2**24 // data.shape[0])
    nearest = torch.cat([labels[torch.cdist(samples[i:i + block], data).argmin(dim=1)]
                         for i in range(0, samples.shape[0], block)])
    counts = torch.bincount(nearest, minlength=num_classes).to(torch.float64)
    return counts / counts.sum()


def _check_labels(labels, n: int) -> torch.Tensor:
    """Integer class labels of shape (n,), non-negative, as an int64 tensor."""
    if isinstance(labels, torch.Tensor):
        t = labels.detach().cpu()
    else:
        if labels is None or isinstance(labels, (str, bytes)):
            raise TypeError(f"labels must be an array of integer class labels, got "
                            f"{type(labels).__name__}")
        try:
            arr = np.asarray(labels)
        except (TypeError, ValueError) as err:
            raise TypeError(f"labels must be an array of integer class labels: {err}") from None
        if arr.dtype.kind not in "iu":
            raise TypeError(f"labels must hold integers, got dtype {arr.dtype}")
        t = torch.from_numpy(arr.astype(np.int64))
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(f"labels must hold integers, got dtype {t.dtype}")
    if t.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) like the rows of data, got {tuple(t.shape)}")
    if bool((t < 0).any()):
        raise ValueError(f"labels must be non-negative class indices, got {int(t.min())}")
    return t.to(torch.int64)
