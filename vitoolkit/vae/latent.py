"""Walking the latent space: encoder means, interpolation, traversals, arithmetic.

Pure tensor computations on a trained model (anything with the VAE interface:
``encode(x[, y])`` returning q(z|x) with a ``.mean``, ``decode(z[, y])``
returning p(x|z) with a ``.mean``; a deterministic
:class:`~vitoolkit.vae.Autoencoder`, whose ``encode`` and ``decode`` return
tensors, works too). Nothing here plots; the figures live in
:mod:`vitoolkit.plotting.vae_beyond`.

The operations follow the usual practice since Kingma & Welling (2013, Fig. 4)
and White (2016, "Sampling generative networks"): decode the encoder *means*
(not samples) so that a path in z-space gives a deterministic sequence of images.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..validation import check_int

__all__ = [
    "LatentPath",
    "Traversal",
    "analogy",
    "attribute_vector",
    "conditional_grid",
    "decode_mean",
    "encode_batched",
    "interpolate",
    "interpolate_codes",
    "interpolation_distances",
    "latent_means",
    "shift_codes",
    "traverse",
]


class LatentPath(NamedTuple):
    """Codes along a path and their decoded images."""

    codes: torch.Tensor  # (num_steps, latent_dim)
    images: torch.Tensor  # (num_steps, data_dim)


class Traversal(NamedTuple):
    """One-unit-at-a-time traversal: ``images[i, j]`` has unit ``dims[i]`` set to ``values[j]``."""

    dims: torch.Tensor  # (num_dims,)
    values: torch.Tensor  # (num_values,)
    images: torch.Tensor  # (num_dims, num_values, data_dim)


# -- model access --------------------------------------------------------------


def _device_dtype(model):
    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def check_data(x, name: str = "x", *, min_rows: int = 1) -> torch.Tensor:
    """``x`` as a finite 2-D floating tensor of at least ``min_rows`` rows."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n, data_dim), got {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} must have at least {min_rows} rows, got {x.shape[0]}")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _call(fn, arg, y):
    # Pass the condition only when there is one, so unconditional models whose
    # encode/decode take a single argument work too.
    return fn(arg) if y is None else fn(arg, y)


def _mean_and_stddev(out):
    """(mean, stddev) of a distribution, or (out, zeros) for a deterministic tensor output."""
    if isinstance(out, torch.Tensor):
        return out, torch.zeros_like(out)
    return out.mean, out.stddev


def _mean(out):
    return out if isinstance(out, torch.Tensor) else out.mean


def _prepare(model, x, y):
    device, dtype = _device_dtype(model)
    x = x.to(device=device, dtype=dtype)
    if y is not None:
        y = torch.as_tensor(y).to(device=device, dtype=dtype)
        if y.ndim != 2 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"y must be one-hot of shape ({x.shape[0]}, conditional_dim), got {tuple(y.shape)}"
            )
    return x, y


def encode_batched(model, x, y=None, *, batch_size: int = 2048):
    """Encoder means and standard deviations of q(z|x), in batches, without gradients.

    Returns
    -------
    loc, scale : Tensors of shape (n, latent_dim).
    """
    x = check_data(x)
    x, y = _prepare(model, x, y)
    locs, scales = [], []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            loc, scale = _mean_and_stddev(_call(model.encode, x[sl], None if y is None else y[sl]))
            locs.append(loc)
            scales.append(scale)
    return torch.cat(locs), torch.cat(scales)


def latent_means(model, x, y=None, *, batch_size: int = 2048) -> torch.Tensor:
    """Encoder means E_q[z | x] for every row of ``x`` (no gradients).

    Parameters
    ----------
    model : VAE-like module
    x : Tensor of shape (n, data_dim)
    y : Tensor of shape (n, conditional_dim), optional
        One-hot conditions of a conditional VAE.

    Returns
    -------
    Tensor of shape (n, latent_dim).
    """
    return encode_batched(model, x, y, batch_size=batch_size)[0]


def decode_mean(model, z, y=None) -> torch.Tensor:
    """Decoder means E[x | z] for codes ``z`` of shape (..., latent_dim), without gradients.

    Parameters
    ----------
    model : VAE-like module
    z : Tensor of shape (..., latent_dim)
    y : Tensor of shape (..., conditional_dim), optional
        Conditions with the same leading shape as ``z`` (conditional VAE).

    Returns
    -------
    Tensor of shape (..., data_dim).
    """
    device, dtype = _device_dtype(model)
    z = torch.as_tensor(z).to(device=device, dtype=dtype)
    if z.ndim < 1:
        raise ValueError(f"z must have shape (..., latent_dim), got {tuple(z.shape)}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("z contains NaN or infinite values")
    lead = z.shape[:-1]
    z2 = z.reshape(-1, z.shape[-1])
    y2 = None
    if y is not None:
        y = torch.as_tensor(y).to(device=device, dtype=dtype)
        if y.shape[:-1] != lead:
            raise ValueError(
                f"y must have shape {(*lead, -1)} (the leading shape of z), got {tuple(y.shape)}"
            )
        y2 = y.reshape(-1, y.shape[-1])
    with torch.no_grad():
        mean = _mean(_call(model.decode, z2, y2))
    return mean.reshape(*lead, mean.shape[-1])


# -- paths ------------------------------------------------------------------


def interpolate_codes(z_start, z_end, num_steps: int = 8, *, method: str = "linear"):
    r"""Points from ``z_start`` to ``z_end`` (both included).

    ``"linear"``: :math:`z(t) = (1 - t) z_0 + t z_1`. ``"spherical"`` (slerp, White
    2016, section 2.1):

    .. math::

        z(t) = \frac{\sin((1 - t) \omega)}{\sin \omega} z_0 + \frac{\sin(t \omega)}{\sin \omega} z_1,
        \qquad \cos \omega = \frac{\langle z_0, z_1 \rangle}{\lVert z_0 \rVert \, \lVert z_1 \rVert};

    under a :math:`\mathcal N(0, I)` prior in many dimensions a linear path passes through
    the low-norm region the prior rarely visits, while slerp keeps the norm typical.

    Parameters
    ----------
    z_start, z_end : Tensor of shape (latent_dim,)
    num_steps : int >= 2
    method : {"linear", "spherical"}

    Returns
    -------
    Tensor of shape (num_steps, latent_dim).
    """
    z0 = torch.as_tensor(z_start)
    z1 = torch.as_tensor(z_end).to(z0.dtype)
    if z0.ndim != 1 or z0.shape != z1.shape:
        raise ValueError(
            f"z_start and z_end must be 1-D of equal shape, got {tuple(z0.shape)} "
            f"and {tuple(z1.shape)}"
        )
    num_steps = check_int(num_steps, "num_steps", minimum=2)
    t = torch.linspace(0.0, 1.0, num_steps, dtype=z0.dtype).unsqueeze(-1)
    if method == "linear":
        return (1 - t) * z0 + t * z1
    if method != "spherical":
        raise ValueError(f"method must be 'linear' or 'spherical', got {method!r}")
    n0, n1 = z0.norm(), z1.norm()
    if float(n0) == 0.0 or float(n1) == 0.0:
        raise ValueError("spherical interpolation needs non-zero end points")
    cos = torch.clamp(z0 @ z1 / (n0 * n1), -1.0, 1.0)
    omega = torch.arccos(cos)
    if float(torch.sin(omega)) < 1e-6:  # (anti)parallel: the great circle is undefined
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def interpolate(model, x_start, x_end, num_steps: int = 8, *, method: str = "linear",
                y=None) -> LatentPath:
    """Decode the path between the encoder means of two inputs.

    Parameters
    ----------
    model : VAE-like module
    x_start, x_end : Tensor of shape (data_dim,)
    num_steps : int >= 2
    method : {"linear", "spherical"}, see :func:`interpolate_codes`
    y : Tensor of shape (conditional_dim,), optional
        One condition used for both ends and the decoder (conditional VAE).

    Returns
    -------
    LatentPath
        ``codes`` (num_steps, latent_dim); ``images`` (num_steps, data_dim), the
        first and last being the reconstructions of the two inputs.
    """
    ends = torch.stack([torch.as_tensor(x_start), torch.as_tensor(x_end)])
    yy = None if y is None else torch.as_tensor(y).reshape(1, -1).expand(2, -1)
    z = latent_means(model, ends, yy)
    codes = interpolate_codes(z[0], z[1], num_steps, method=method)
    ydec = None if y is None else torch.as_tensor(y).reshape(1, -1).expand(num_steps, -1)
    return LatentPath(codes, decode_mean(model, codes, ydec))


def interpolation_distances(model, x_start, x_end, reference, num_steps: int = 9) -> torch.Tensor:
    """Distance from each decoded point of a linear latent path to the nearest ``reference`` image.

    For each pair (x_start[i], x_end[i]) the encoder means are joined by a straight
    line, ``num_steps`` points on it are decoded (means), and each decoded image's
    Euclidean distance to its nearest row of ``reference`` (e.g. the training set)
    is returned. A latent space with "holes" decodes the middle of such paths to
    images far from every real one, farther than the decoded end points.

    Parameters
    ----------
    model : VAE-like module or Autoencoder
    x_start, x_end : Tensor of shape (n, data_dim)
    reference : Tensor of shape (m, data_dim)
    num_steps : int >= 2

    Returns
    -------
    Tensor of shape (num_steps, n), float64: row t is the point (1 - t) z_start + t z_end,
    t = 0, 1/(num_steps - 1), ..., 1.
    """
    from .generation import nearest_distance

    za, zb = latent_means(model, x_start), latent_means(model, x_end)
    if za.shape != zb.shape:
        raise ValueError(f"x_start and x_end must have the same shape, got codes {tuple(za.shape)} "
                         f"and {tuple(zb.shape)}")
    num_steps = check_int(num_steps, "num_steps", minimum=2)
    ref = check_data(reference, "reference")
    t = torch.linspace(0.0, 1.0, num_steps, dtype=za.dtype, device=za.device)
    return torch.stack([nearest_distance(decode_mean(model, (1 - ti) * za + ti * zb), ref)
                        for ti in t])


def traverse(model, z=None, *, dims=None, values=None, y=None) -> Traversal:
    """Vary one latent unit at a time around a base code and decode.

    This is how Higgins et al. (2017, Fig. 1 and section 4) show what each unit
    of a beta-VAE encodes: a disentangled unit changes one generating factor.

    Parameters
    ----------
    model : VAE-like module (``model.prior`` gives the latent dimension when ``z`` is None)
    z : Tensor of shape (latent_dim,), optional
        Base code, e.g. the encoder mean of one image; defaults to the prior mean 0.
    dims : sequence of int, optional
        Units to traverse; defaults to all.
    values : Tensor of shape (num_values,), optional
        Values each unit takes; defaults to 7 points in [-3, 3] (the prior's +-3 sd).
    y : Tensor of shape (conditional_dim,), optional

    Returns
    -------
    Traversal
    """
    device, dtype = _device_dtype(model)
    if z is None:
        z = torch.zeros(model.prior.event_shape[-1], dtype=dtype, device=device)
    z = torch.as_tensor(z).to(device=device, dtype=dtype)
    if z.ndim != 1:
        raise ValueError(f"z must have shape (latent_dim,), got {tuple(z.shape)}")
    d = z.shape[0]
    dims_t = torch.arange(d) if dims is None else torch.as_tensor(dims, dtype=torch.long).reshape(-1)
    if dims_t.numel() == 0 or int(dims_t.min()) < 0 or int(dims_t.max()) >= d:
        raise ValueError(f"dims must be non-empty indices in 0..{d - 1}, got {dims!r}")
    vals = torch.linspace(-3.0, 3.0, 7) if values is None else torch.as_tensor(values).reshape(-1)
    vals = vals.to(device=device, dtype=dtype)
    if vals.numel() == 0 or not bool(torch.isfinite(vals).all()):
        raise ValueError("values must be a non-empty finite 1-D tensor")
    codes = z.expand(len(dims_t), len(vals), d).clone()
    for i, dim in enumerate(dims_t.tolist()):
        codes[i, :, dim] = vals
    ydec = None
    if y is not None:
        ydec = torch.as_tensor(y).reshape(1, 1, -1).expand(len(dims_t), len(vals), -1)
    return Traversal(dims_t, vals, decode_mean(model, codes, ydec))


# -- arithmetic --------------------------------------------------------------


def attribute_vector(codes, mask) -> torch.Tensor:
    """Mean code of examples with an attribute minus the mean of those without.

    Adding this vector to a code moves it towards the attribute ("smile vector",
    White 2016, section 3.3; Larsen et al. 2016, section 5).

    Parameters
    ----------
    codes : Tensor of shape (n, latent_dim)
    mask : bool Tensor of shape (n,), True where the attribute is present

    Returns
    -------
    Tensor of shape (latent_dim,).
    """
    codes = check_data(codes, "codes")
    mask = torch.as_tensor(mask, dtype=torch.bool, device=codes.device).reshape(-1)
    if mask.shape[0] != codes.shape[0]:
        raise ValueError(f"mask must have shape ({codes.shape[0]},), got {tuple(mask.shape)}")
    if not bool(mask.any()) or bool(mask.all()):
        raise ValueError("mask must contain both True and False entries")
    return codes[mask].mean(0) - codes[~mask].mean(0)


def shift_codes(codes, direction, amounts) -> torch.Tensor:
    """Codes moved along a direction by each amount: ``codes + a * direction``.

    Parameters
    ----------
    codes : Tensor of shape (n, latent_dim)
    direction : Tensor of shape (latent_dim,)
    amounts : Tensor of shape (m,)

    Returns
    -------
    Tensor of shape (n, m, latent_dim).
    """
    codes = check_data(codes, "codes")
    direction = torch.as_tensor(direction, dtype=codes.dtype, device=codes.device)
    if direction.shape != codes.shape[1:]:
        raise ValueError(
            f"direction must have shape ({codes.shape[1]},), got {tuple(direction.shape)}"
        )
    amounts = torch.as_tensor(amounts, dtype=codes.dtype, device=codes.device).reshape(-1)
    return codes[:, None, :] + amounts[None, :, None] * direction


def analogy(model, x_a, x_b, x_c, y=None) -> torch.Tensor:
    """Analogy "a is to b as c is to ?": decode z_c + (z_b - z_a), z the encoder means.

    Parameters
    ----------
    model : VAE-like module
    x_a, x_b, x_c : Tensor of shape (n, data_dim)
        Rows are independent analogies.
    y : Tensor of shape (n, conditional_dim), optional

    Returns
    -------
    Tensor of shape (n, data_dim).
    """
    za = latent_means(model, x_a, y)
    zb = latent_means(model, x_b, y)
    zc = latent_means(model, x_c, y)
    if not (za.shape == zb.shape == zc.shape):
        raise ValueError(
            f"x_a, x_b, x_c must have the same shape, got {tuple(za.shape)}, "
            f"{tuple(zb.shape)}, {tuple(zc.shape)} codes"
        )
    return decode_mean(model, zc + (zb - za), y)


def conditional_grid(model, z, conditions) -> torch.Tensor:
    """Decode each code under each condition of a conditional VAE.

    With z the encoder mean of an image under its own label, the rows keep the
    "style" the label does not explain while the columns change the class
    (Kingma et al. 2014, "Semi-supervised learning with deep generative models",
    Fig. 1; Sohn et al. 2015).

    Parameters
    ----------
    model : conditional VAE-like module
    z : Tensor of shape (n, latent_dim)
    conditions : Tensor of shape (m, conditional_dim), one-hot rows

    Returns
    -------
    Tensor of shape (n, m, data_dim).
    """
    z = check_data(z, "z")
    conditions = check_data(conditions, "conditions")
    n, m = z.shape[0], conditions.shape[0]
    zz = z[:, None, :].expand(n, m, -1)
    cc = conditions.to(z.dtype)[None, :, :].expand(n, m, -1)
    return decode_mean(model, zz.reshape(n * m, -1), cc.reshape(n * m, -1)).reshape(n, m, -1)

