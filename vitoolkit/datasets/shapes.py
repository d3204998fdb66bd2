"""Procedural shapes with known generating factors, for beta-VAE and disentanglement.

Each image shows one white shape (a square, an ellipse or an equilateral
triangle) on a black background, drawn from five independent factors, in the
spirit of dSprites (Matthey et al. 2017) but generated on the fly, so nothing is
downloaded and any number of images is available:

========  =====================================================================
factor    meaning
========  =====================================================================
shape     0 = square, 1 = ellipse (axes ratio 2:1), 2 = equilateral triangle
scale     circumradius of the shape (semi-major axis for the ellipse), in units
          of half the image width
rotation  angle in radians, counter-clockwise
x, y      centre of the shape; the image spans [-1, 1] in both, y pointing up
========  =====================================================================

Pixels hold the fraction of the pixel the shape covers (``supersample`` x
``supersample`` points per pixel), so edges are anti-aliased and the values lie
in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..validation import (
    as_float_array,
    as_float_tensor,
    check_bool,
    check_choice,
    check_int,
    check_memory,
    check_real,
    check_seed,
)

__all__ = [
    "SHAPE_NAMES",
    "SHAPES_FACTOR_NAMES",
    "load_shapes",
    "render_shapes",
    "shape_area",
]

#: The shapes, in the order of their code in the ``shape`` factor.
SHAPE_NAMES = ("square", "ellipse", "triangle")
#: Columns of the factor matrix :func:`load_shapes` returns.
SHAPES_FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y")

# The ellipse's minor / major axis ratio; below 1 so that rotation is visible.
_ELLIPSE_RATIO = 0.5


def shape_area(shape: str, scale) -> torch.Tensor:
    r"""Exact area of a shape of circumradius ``scale`` (same units as ``scale``).

    With s the ``scale``: square, side :math:`\sqrt 2 s`, area :math:`2 s^2`; ellipse
    (semi-axes s and s/2), :math:`\pi s (s / 2)`; equilateral triangle,
    :math:`\frac{3 \sqrt 3}{4} s^2`. ``scale`` must be positive (as in
    :func:`render_shapes`) and small enough for its square to fit in float64.
    """
    factor = {
        "square": 2.0,
        "ellipse": math.pi * _ELLIPSE_RATIO,
        "triangle": 3.0 * math.sqrt(3.0) / 4.0,
    }
    shape = check_choice(shape, SHAPE_NAMES, "shape")
    scale = as_float_tensor(scale, "scale", dtype=torch.float64)
    if bool((scale <= 0).any()):
        raise ValueError(f"scale must be > 0 (a circumradius), got min {scale.min().item()!r}")
    area = factor[shape] * scale**2
    if not bool(torch.isfinite(area).all()):
        raise ValueError(f"scale is too large: the area overflows float64 (scale up to "
                         f"{scale.max().item():.3g}; its square must stay below 1.8e308)")
    return area


def _inside(code: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Whether canonical coordinates (u, v) (centred, unrotated, unit scale) are inside.

    code : (n, 1, 1) shape codes; u, v : (n, P, S) points. Returns a bool (n, P, S).
    """
    half_side = 1.0 / math.sqrt(2.0)
    square = (u.abs() <= half_side) & (v.abs() <= half_side)
    ellipse = u**2 + (v / _ELLIPSE_RATIO) ** 2 <= 1.0
    # Equilateral triangle of circumradius 1 with a vertex pointing up: inside when
    # the projection on each outward edge normal is at most the inradius 1/2.
    triangle = v >= -0.5
    for angle in (math.pi / 6, 5 * math.pi / 6):
        triangle = triangle & (u * math.cos(angle) + v * math.sin(angle) <= 0.5)
    return torch.where(code == 0, square, torch.where(code == 1, ellipse, triangle))


def render_shapes(
    shape, scale, rotation, x, y, *, image_size: int = 16, supersample: int = 4
) -> torch.Tensor:
    """Draw shapes from their factors.

    Parameters
    ----------
    shape : int tensor-like of shape (n,)
        Codes into :data:`SHAPE_NAMES`.
    scale, rotation, x, y : tensor-like of shape (n,)
        The factors (see the module docstring); ``scale`` > 0.
    image_size : int
        Side of the square image in pixels.
    supersample : int
        Points per pixel side used to estimate the covered fraction of a pixel.

    Returns
    -------
    Tensor of shape (n, image_size, image_size), float32 in [0, 1]; row 0 is the
    top of the image (y = 1), column 0 its left edge (x = -1).
    """
    image_size = check_int(image_size, "image_size", minimum=1)
    supersample = check_int(supersample, "supersample", minimum=1)
    codes = as_float_array(shape, "shape", ndim=1)
    if not np.array_equal(codes, np.round(codes)):
        raise ValueError("shape must hold integer codes into SHAPE_NAMES, got non-integer values")
    n = codes.shape[0]
    if n and (codes.min() < 0 or codes.max() >= len(SHAPE_NAMES)):
        raise ValueError(f"shape codes must be in 0..{len(SHAPE_NAMES) - 1}, got {np.unique(codes)}")
    shape = torch.as_tensor(codes.astype(np.int64))
    values = []
    for name, t in zip(("scale", "rotation", "x", "y"), (scale, rotation, x, y), strict=True):
        t = as_float_array(t, name, ndim=1, finite=False)
        if t.shape[0] != n:
            raise ValueError(f"{name} must have shape ({n},) like shape, got {tuple(t.shape)}")
        if not np.isfinite(t).all():
            raise ValueError(f"{name} must be finite")
        values.append(torch.as_tensor(t))
    scale, rotation, cx, cy = values
    if n and not bool((scale > 0).all()):
        raise ValueError("scale must be positive")

    m = image_size * supersample
    # One pass holds about six float64 (m * m) point arrays per image; the output n images.
    check_memory(48 * m * m, "image_size", image_size,
                 f"the {m} x {m} sub-pixel grid of one image (supersample={supersample})")
    check_memory(4 * n * image_size**2, "n", n, f"{n} images of {image_size} x {image_size}")
    # Sample points at the centres of the sub-pixels, in [-1, 1].
    t = -1.0 + (2.0 * torch.arange(m, dtype=torch.float64) + 1.0) / m
    gy, gx = torch.meshgrid(-t, t, indexing="ij")  # rows run from y = 1 down to y = -1
    gx = gx.reshape(1, -1)
    gy = gy.reshape(1, -1)

    out = torch.empty(n, image_size, image_size, dtype=torch.float32)
    chunk = max(1, 2**22 // (m * m))  # bound the memory of one pass
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        dx = gx - cx[sl, None]
        dy = gy - cy[sl, None]
        c, s = torch.cos(rotation[sl, None]), torch.sin(rotation[sl, None])
        # Rotate the points by -rotation into the shape's frame, then unscale.
        u = (c * dx + s * dy) / scale[sl, None]
        v = (-s * dx + c * dy) / scale[sl, None]
        inside = _inside(shape[sl, None], u, v).to(torch.float32)
        inside = inside.reshape(-1, image_size, supersample, image_size, supersample)
        out[sl] = inside.mean(dim=(2, 4))
    return out


def _check_range(value, name: str) -> tuple[float, float]:
    """A pair ``(low, high)`` of finite numbers with ``low <= high``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}")
    low = check_real(value[0], f"{name}[0]")
    high = check_real(value[1], f"{name}[1]")
    if low > high:
        raise ValueError(f"{name} must have low <= high, got {value!r}")
    return low, high


def _check_shapes(shapes) -> list[str]:
    """``shapes`` as a list of names: a non-empty sequence of str (not a str itself)."""
    if isinstance(shapes, (str, bytes)):
        raise ValueError(f"shapes must be a non-empty sequence of names such as ('square',), "
                         f"not a single string, got {shapes!r}")
    if isinstance(shapes, torch.Tensor) or not hasattr(shapes, "__iter__"):
        raise TypeError(f"shapes must be a sequence of shape names from {SHAPE_NAMES}, "
                        f"got {type(shapes).__name__}")
    items = list(shapes)
    if not items:
        raise ValueError(f"shapes must be a non-empty sequence of names, got {shapes!r}")
    wrong = [s for s in items if not isinstance(s, str)]
    if wrong:
        raise TypeError(f"shapes must hold names (str) from {SHAPE_NAMES}, got "
                        f"{type(wrong[0]).__name__} {wrong[0]!r:.60}")
    return items


def load_shapes(
    n: int,
    *,
    seed: int = 0,
    image_size: int = 16,
    shapes: Sequence[str] = SHAPE_NAMES,
    scale_range: tuple[float, float] = (0.35, 0.6),
    rotation_range: tuple[float, float] = (0.0, math.pi / 4),
    position_range: tuple[float, float] = (-0.35, 0.35),
    supersample: int = 4,
    binarize: bool = False,
):
    """Generate ``n`` shape images and the factors that generated them.

    Every factor is drawn independently: the shape uniformly from ``shapes``,
    the others uniformly from their ranges. The default rotation range (a
    quarter turn at most, half of a square's symmetry period pi/2) keeps rotation
    identifiable from the image; the default ranges keep every shape inside the
    image (max centre offset + max circumradius = 0.95 < 1).

    Parameters
    ----------
    n : int
        Number of images.
    seed : int
        Seed of the local generator; the same seed gives the same images.
    image_size : int
        Side of the square image in pixels.
    shapes : sequence of str
        Subset of :data:`SHAPE_NAMES` to draw from.
    scale_range, rotation_range, position_range : (float, float)
        Uniform ranges of the circumradius, of the angle (radians) and of each
        centre coordinate.
    supersample : int
        Anti-aliasing points per pixel side.
    binarize : bool
        Threshold pixel coverage at 0.5.

    Returns
    -------
    X : Tensor of shape (n, image_size ** 2), float32 in [0, 1], images row-major.
    factors : Tensor of shape (n, 5), float32, columns :data:`SHAPES_FACTOR_NAMES`
        (the shape column holds the integer code into :data:`SHAPE_NAMES`).
    """
    n = check_int(n, "n", minimum=1)
    seed = check_seed(seed)
    image_size = check_int(image_size, "image_size", minimum=1)
    supersample = check_int(supersample, "supersample", minimum=1)
    binarize = check_bool(binarize, "binarize")
    # One image (and its sub-pixel grid) must fit before n of them are considered.
    check_memory(4 * (image_size**2 + 5), "image_size", image_size,
                 f"one image of {image_size} x {image_size}")
    check_memory(4 * n * (image_size**2 + 5), "n", n,
                 f"{n} images of {image_size} x {image_size} and their factors")
    shapes = _check_shapes(shapes)
    unknown = [s for s in shapes if s not in SHAPE_NAMES]
    if unknown:
        raise ValueError(f"shapes must be among {SHAPE_NAMES}, got unknown {unknown}")
    scale_lo, scale_hi = _check_range(scale_range, "scale_range")
    if scale_lo <= 0:
        raise ValueError(f"scale_range must be positive (scale_range[0] > 0), got {scale_range!r}")
    rot_lo, rot_hi = _check_range(rotation_range, "rotation_range")
    pos_lo, pos_hi = _check_range(position_range, "position_range")

    rng = np.random.default_rng(seed)
    codes = np.array([SHAPE_NAMES.index(s) for s in shapes])
    shape = codes[rng.integers(0, len(codes), size=n)]
    scale = rng.uniform(scale_lo, scale_hi, size=n)
    rotation = rng.uniform(rot_lo, rot_hi, size=n)
    x = rng.uniform(pos_lo, pos_hi, size=n)
    y = rng.uniform(pos_lo, pos_hi, size=n)

    images = render_shapes(
        shape, scale, rotation, x, y, image_size=image_size, supersample=supersample
    )
    X = images.reshape(n, -1)
    if binarize:
        X = (X >= 0.5).to(torch.float32)
    factors = torch.as_tensor(np.stack([shape, scale, rotation, x, y], axis=1), dtype=torch.float32)
    return X, factors
