"""Datasets that need no download: scikit-learn's digits, procedural shapes, local MNIST.

- :func:`load_digits`: scikit-learn's bundled 8x8 digits, with a fixed seeded
  train / validation / test split.
- :func:`load_shapes`: squares, ellipses and triangles drawn on the fly, with the
  true generating factors (shape, scale, rotation, position).
- :func:`load_mnist`: MNIST / Fashion-MNIST from local IDX or ``.npz`` files;
  torchvision downloads only when asked. :func:`read_idx` / :func:`write_idx`
  handle the IDX format itself.
"""

from .digits import DIGITS_SPLIT_SIZES, load_digits
from .idx import IDXFormatError, load_mnist, read_idx, write_idx
from .shapes import SHAPE_NAMES, SHAPES_FACTOR_NAMES, load_shapes, render_shapes, shape_area

__all__ = [
    "DIGITS_SPLIT_SIZES",
    "IDXFormatError",
    "SHAPES_FACTOR_NAMES",
    "SHAPE_NAMES",
    "load_digits",
    "load_mnist",
    "load_shapes",
    "read_idx",
    "render_shapes",
    "shape_area",
    "write_idx",
]
