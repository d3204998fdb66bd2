"""Image grids: one tiling and one grid-drawing function for every image figure.

Images arrive flattened, as ``(n, H*W)`` (tiled row by row, ``ncols`` per row)
or as ``(rows, cols, H*W)`` (a table: traversals, interpolations, classes).
"""

from __future__ import annotations

import math

import numpy as np

from ..validation import check_int, check_memory
from .style import get_ax, to_numpy

__all__ = ["image_shape_of", "square_shape", "tile_images", "plot_image_grid"]


def square_shape(data_dim: int) -> tuple[int, int]:
    """(s, s) for data_dim = s^2 (8x8 digits, 16x16 shapes, 28x28 MNIST)."""
    data_dim = check_int(data_dim, "data_dim", minimum=1)
    s = math.isqrt(data_dim)
    if s * s != data_dim:
        raise ValueError(f"data_dim={data_dim} is not a square number of pixels; "
                         "pass image_shape=(H, W)")
    return s, s


def image_shape_of(image_shape, width: int) -> tuple[int, int]:
    """Validate ``image_shape`` against ``width`` values per image (None: square)."""
    if image_shape is None:
        return square_shape(width)
    if isinstance(image_shape, (str, bytes)) or not hasattr(image_shape, "__len__"):
        raise TypeError(f"image_shape must be a pair (H, W), got {image_shape!r}")
    shape = tuple(check_int(s, "image_shape entries", minimum=1) for s in tuple(image_shape)[-2:])
    if len(shape) != 2 or shape[0] * shape[1] != width:
        raise ValueError(f"image_shape {tuple(image_shape)} does not match {width} values per image")
    return shape


def tile_images(images, image_shape=None, ncols: int | None = None, pad: int = 1,
                fill: float = np.nan) -> np.ndarray:
    """Arrange flattened images into one mosaic array for ``imshow``.

    Parameters
    ----------
    images : array-like of shape (n, H*W) or (rows, cols, H*W)
        A 2-D input fills rows of ``ncols`` images (default: a near-square grid).
    image_shape : (H, W), optional
        Default: square images.
    pad : int
        Pixels of ``fill`` (NaN: drawn blank) between images.

    Returns
    -------
    ndarray of shape (rows (H + pad) - pad, cols (W + pad) - pad)
    """
    pad = check_int(pad, "pad", minimum=0)
    if ncols is not None:
        ncols = check_int(ncols, "ncols", minimum=1)
    a = to_numpy(images).astype(float)
    if a.ndim == 2:
        n = a.shape[0]
        ncols = ncols or max(1, math.ceil(math.sqrt(n)))
        nrows = math.ceil(n / ncols)
        padded = np.full((nrows * ncols, a.shape[1]), fill)
        padded[:n] = a
        a = padded.reshape(nrows, ncols, -1)
    if a.ndim != 3:
        raise ValueError(f"images must have shape (n, H*W) or (rows, cols, H*W), got {a.shape}")
    h, w = image_shape_of(image_shape, a.shape[-1])
    rows, cols = a.shape[:2]
    check_memory(8 * (rows * (h + pad)) * (cols * (w + pad)), "pad" if pad > max(h, w) else "images",
                 pad if pad > max(h, w) else a.shape, "the image mosaic")
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), fill, dtype=float)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = \
                a[r, c].reshape(h, w)
    return out


def plot_image_grid(images, image_shape=None, *, ncols: int | None = None, row_labels=None,
                    col_labels=None, ax=None, title: str = "", xlabel: str = "", ylabel: str = "",
                    vmin: float = 0.0, vmax: float = 1.0, cmap: str = "gray_r"):
    """Draw flattened images as a grid (see :func:`tile_images` for the shapes).

    ``row_labels`` / ``col_labels`` label the rows and columns of the grid.

    Returns
    -------
    AxesImage
    """
    ax = get_ax(ax)
    a = to_numpy(images)
    h, w = image_shape_of(image_shape, a.shape[-1])
    mosaic = tile_images(a, (h, w), ncols)
    im = ax.imshow(mosaic, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    rows = (mosaic.shape[0] + 1) // (h + 1)
    cols = (mosaic.shape[1] + 1) // (w + 1)
    if col_labels is not None:
        ax.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(cols)], list(col_labels),
                      fontsize="x-small")
    else:
        ax.set_xticks([])
    if row_labels is not None:
        ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(rows)], list(row_labels),
                      fontsize="x-small")
    else:
        ax.set_yticks([])
    ax.grid(False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return im
