"""Encoder and decoder networks: a multilayer perceptron and a small convolutional pair.

Every network maps a tensor with any number of leading (batch) dimensions,
``(..., in_features)``, to ``(..., out_features)``, so the same decoder serves a
batch of codes ``(n, latent_dim)`` and a stack of importance samples
``(k, n, latent_dim)``. Images travel flattened, ``(..., C * H * W)``, and only
the convolutional networks reshape them internally.

The MLP is the encoder/decoder family of Kingma & Welling (2013), Appendix C
(there with one tanh hidden layer); the convolutional pair halves (doubles) the
spatial size at each stride-2 layer, as in most image VAEs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..validation import check_choice, check_int, check_memory

__all__ = ["ACTIVATIONS", "MLP", "ConvEncoder", "ConvDecoder", "build_network",
           "check_parameter_memory", "mlp_parameter_count"]

#: The named hidden-layer nonlinearities.
ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}

#: The named network families.
ARCHITECTURES = ("mlp", "conv")


def check_hidden_dims(hidden_dims, name: str = "hidden_dims") -> tuple[int, ...]:
    """Validate a sequence of positive layer widths and return it as a tuple.

    A single int is one hidden layer; a string is not a sequence of widths.
    """
    if isinstance(hidden_dims, int) and not isinstance(hidden_dims, bool):
        hidden_dims = (hidden_dims,)
    if isinstance(hidden_dims, (str, bytes)) or not isinstance(hidden_dims, Sequence):
        raise TypeError(f"{name} must be a sequence of positive integers, got {hidden_dims!r}")
    return tuple(check_int(w, f"{name}[{i}]", minimum=1) for i, w in enumerate(hidden_dims))


def _activation(name: str) -> nn.Module:
    return ACTIVATIONS[check_choice(name, ACTIVATIONS, "activation")]()


def mlp_parameter_count(widths: Sequence[int]) -> int:
    """Weights and biases of a chain of affine layers ``widths[0] -> widths[1] -> ...`` (Python int)."""
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def _largest(value) -> int:
    if isinstance(value, (tuple, list)):
        return max((_largest(v) for v in value), default=0)
    return int(value)


def check_parameter_memory(count: int, arguments: dict, what: str = "the network's weights") -> None:
    """Refuse, before building, a network of ``count`` parameters that would not fit in memory.

    ``arguments`` maps the (already validated) size arguments to their values; the
    error names the largest of them. Parameters are counted in the torch default dtype.
    """
    itemsize = torch.finfo(torch.get_default_dtype()).bits // 8
    name = max(arguments, key=lambda k: _largest(arguments[k]))
    check_memory(count * itemsize, name, arguments[name], f"{what} ({count} parameters)")


class MLP(nn.Sequential):
    """Fully connected network ``in_features -> hidden_dims... -> out_features``.

    Parameters
    ----------
    in_features, out_features : int
    hidden_dims : sequence of int
        Widths of the hidden layers (may be empty: a single affine map).
    activation : str
        A key of :data:`ACTIVATIONS`, applied after every hidden layer (not the output).

    Maps inputs of shape (..., in_features) to outputs of shape (..., out_features).
    """

    def __init__(self, in_features: int, hidden_dims: Sequence[int], out_features: int,
                 activation: str = "relu"):
        in_features = check_int(in_features, "in_features", minimum=1)
        out_features = check_int(out_features, "out_features", minimum=1)
        hidden_dims = check_hidden_dims(hidden_dims)
        check_choice(activation, ACTIVATIONS, "activation")
        check_parameter_memory(mlp_parameter_count((in_features, *hidden_dims, out_features)),
                               {"in_features": in_features, "hidden_dims": hidden_dims,
                                "out_features": out_features})
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden_dims:
            layers += [nn.Linear(width, h), _activation(activation)]
            width = h
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = out_features


def _check_chw(image_shape, num_halvings: int | None, name: str = "image_shape",
               *, allow_2d: bool = True) -> tuple[int, int, int]:
    """``image_shape`` = (C, H, W) (or (H, W) with ``allow_2d``) of positive ints, H and W
    divisible by 2**num_halvings (skipped when None)."""
    if image_shape is None:
        raise ValueError(f"architecture='conv' needs {name}=(channels, height, width)")
    want = "(C, H, W) or (H, W)" if allow_2d else "(C, H, W)"
    if isinstance(image_shape, (str, bytes)) or not isinstance(image_shape, Sequence):
        raise TypeError(f"{name} must be a sequence {want} of positive integers, got {image_shape!r}")
    if len(image_shape) not in ((2, 3) if allow_2d else (3,)):
        raise ValueError(f"{name} must be {want} of positive integers, got {image_shape!r}")
    shape = tuple(check_int(s, f"{name}[{i}]", minimum=1) for i, s in enumerate(image_shape))
    shape = (1, *shape) if len(shape) == 2 else shape
    c, h, w = shape
    factor = 2 ** (num_halvings or 0)
    if h % factor or w % factor:
        raise ValueError(f"{name} {shape}: height and width must be divisible by "
                         f"2**len(hidden_dims) = {factor} for the stride-2 layers")
    return shape


def check_image_shape(image_shape, data_dim: int, num_halvings: int | None,
                      name: str = "image_shape") -> tuple[int, int, int]:
    """Validate ``image_shape`` = (C, H, W) or (H, W) against ``data_dim`` and the strides.

    ``num_halvings=None`` skips the stride check (an MLP that only reshapes images).
    """
    shape = _check_chw(image_shape, num_halvings, name)
    c, h, w = shape
    if c * h * w != data_dim:
        raise ValueError(f"{name} {shape} has {c * h * w} values but data_dim={data_dim}")
    return shape


def _conv_parameter_count(shape, channels, features: int, extra: int, kernel: int,
                          params_per_pixel: int = 1) -> int:
    """Parameters of the stride-2 stack on ``shape`` plus its linear map to/from ``features``."""
    c, h, w = shape
    count, prev = 0, c
    for ch in channels:
        count += prev * ch * kernel * kernel + ch
        prev, h, w = ch, h // 2, w // 2
    if kernel == 4:  # the decoder's last layer outputs c * params_per_pixel maps, not c
        count += (c * params_per_pixel - c) * (channels[0] * kernel * kernel + 1)
    return count + (prev * h * w + extra + 1) * features


class ConvEncoder(nn.Module):
    """Stride-2 convolutions, then a linear map: ``(..., C*H*W) -> (..., out_features)``.

    Parameters
    ----------
    image_shape : (C, H, W)
    channels : sequence of int
        Output channels of each 3x3 stride-2 convolution (each halves H and W).
    out_features : int
    extra_features : int
        Extra inputs (a conditional VAE's one-hot label) concatenated to the
        flattened convolutional features before the linear map.
    activation : str
    """

    def __init__(self, image_shape, channels: Sequence[int], out_features: int,
                 extra_features: int = 0, activation: str = "relu"):
        super().__init__()
        channels = check_hidden_dims(channels, "channels")
        if not channels:
            raise ValueError("channels must have at least one entry (architecture='conv' needs "
                             "at least one entry in hidden_dims)")
        self.image_shape = _check_chw(image_shape, len(channels), allow_2d=False)
        out_features = check_int(out_features, "out_features", minimum=1)
        self.extra_features = extra_features = check_int(extra_features, "extra_features", minimum=0)
        check_choice(activation, ACTIVATIONS, "activation")
        check_parameter_memory(
            _conv_parameter_count(self.image_shape, channels, out_features, extra_features, 3),
            {"image_shape": self.image_shape, "channels": channels, "out_features": out_features,
             "extra_features": extra_features})
        c, h, w = self.image_shape
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1), _activation(activation)]
            c, h, w = ch, h // 2, w // 2
        self.conv = nn.Sequential(*layers)
        self.head = nn.Linear(c * h * w + extra_features, out_features)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        lead = x.shape[:-1]
        feats = self.conv(x.reshape(-1, *self.image_shape)).flatten(1)
        feats = feats.reshape(*lead, feats.shape[-1])
        if extra is not None:
            feats = torch.cat([feats, extra], dim=-1)
        return self.head(feats)


class ConvDecoder(nn.Module):
    """A linear map, then stride-2 transposed convolutions: ``(..., in) -> (..., C_out*H*W)``.

    Parameters
    ----------
    in_features : int
    image_shape : (C, H, W)
        Shape of the image whose parameters are produced.
    channels : sequence of int
        Channels of the encoder's convolutions; the decoder mirrors them.
    params_per_pixel : int
        Number of output maps per image channel (2 for a Gaussian with learned
        variance: location and scale).
    activation : str
    """

    def __init__(self, in_features: int, image_shape, channels: Sequence[int],
                 params_per_pixel: int = 1, activation: str = "relu"):
        super().__init__()
        in_features = check_int(in_features, "in_features", minimum=1)
        channels = check_hidden_dims(channels, "channels")
        if not channels:
            raise ValueError("channels must have at least one entry (architecture='conv' needs "
                             "at least one entry in hidden_dims)")
        c, h, w = self.image_shape = _check_chw(image_shape, len(channels), allow_2d=False)
        self.params_per_pixel = params_per_pixel = check_int(params_per_pixel, "params_per_pixel",
                                                             minimum=1)
        check_choice(activation, ACTIVATIONS, "activation")
        check_parameter_memory(
            _conv_parameter_count(self.image_shape, channels, in_features, 0, 4,
                                  params_per_pixel),
            {"in_features": in_features, "image_shape": self.image_shape, "channels": channels,
             "params_per_pixel": params_per_pixel})
        rev = list(reversed(channels))
        self.start = (rev[0], h // 2 ** len(rev), w // 2 ** len(rev))
        self.head = nn.Linear(in_features, rev[0] * self.start[1] * self.start[2])
        layers: list[nn.Module] = [_activation(activation)]
        for i, ch in enumerate(rev):
            out = rev[i + 1] if i + 1 < len(rev) else c * params_per_pixel
            layers.append(nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1))
            if i + 1 < len(rev):
                layers.append(_activation(activation))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        c, h, w = self.image_shape
        maps = self.deconv(self.head(z).reshape(-1, *self.start))
        # (N, C*P, H, W) -> (N, P, C*H*W): parameter groups first, each a flattened image.
        maps = maps.reshape(-1, self.params_per_pixel, c * h * w)
        return maps.reshape(*lead, self.params_per_pixel * c * h * w)


def build_network(role: str, architecture: str, *, in_features: int, out_features: int,
                  hidden_dims: Sequence[int], activation: str, image_shape=None,
                  extra_features: int = 0, params_per_pixel: int = 1) -> nn.Module:
    """Build an encoder (``role="encoder"``) or decoder of the named ``architecture``.

    For ``"mlp"`` the decoder mirrors the encoder's hidden widths (the caller
    passes them reversed). For ``"conv"`` ``hidden_dims`` are convolution channels.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    if architecture == "mlp":
        return MLP(in_features, hidden_dims, out_features, activation)
    if role == "encoder":
        return ConvEncoder(image_shape, hidden_dims, out_features, extra_features, activation)
    return ConvDecoder(in_features, image_shape, hidden_dims, params_per_pixel, activation)


def build_encoder_decoder(architecture: str, *, data_dim: int, encoder_out: int, latent_dim: int,
                          hidden_dims: Sequence[int], activation: str, params_per_pixel: int = 1,
                          image_shape=None, conditional_dim: int = 0) -> tuple[nn.Module, nn.Module]:
    """The encoder/decoder pair every model of :mod:`vitoolkit.vae` builds, in this order (the
    seeded initialisation depends on it).

    The encoder maps x (data_dim, plus a one-hot label of ``conditional_dim`` for an MLP; a
    convolutional encoder takes the label as extra features) to ``encoder_out`` numbers (the
    code, or the posterior's parameters); the decoder maps z (latent_dim, plus the label) to
    ``params_per_pixel * data_dim`` numbers. An MLP decoder mirrors the encoder's hidden widths;
    for ``"conv"`` ``hidden_dims`` are channels, the same for both.
    """
    mlp = architecture == "mlp"
    encoder = build_network("encoder", architecture, in_features=data_dim + (conditional_dim if mlp else 0),
                            out_features=encoder_out, hidden_dims=hidden_dims, activation=activation,
                            image_shape=image_shape, extra_features=conditional_dim)
    decoder = build_network("decoder", architecture, in_features=latent_dim + conditional_dim,
                            out_features=params_per_pixel * data_dim,
                            hidden_dims=hidden_dims[::-1] if mlp else hidden_dims, activation=activation,
                            image_shape=image_shape, params_per_pixel=params_per_pixel)
    return encoder, decoder
