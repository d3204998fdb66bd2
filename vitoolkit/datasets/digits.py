"""scikit-learn's bundled 8x8 handwritten digits, as tensors, with a fixed split.

The 1,797 images ship inside scikit-learn (the UCI "optical recognition of
handwritten digits" test set), so nothing is downloaded. Pixel counts 0..16 are
scaled to [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch

from ..validation import check_bool, check_choice, check_int, check_seed

__all__ = ["DIGITS_SPLIT_SIZES", "load_digits", "split_indices"]

#: Sizes of the fixed train / validation / test split of the 1,797 digits (70 / 15 / 15 %).
DIGITS_SPLIT_SIZES = {"train": 1257, "val": 270, "test": 270}

_SPLITS = (None, "train", "val", "test")


def split_indices(n: int, sizes: dict[str, int], split: str, seed: int) -> np.ndarray:
    """Indices of ``split`` in a seeded random partition of ``range(n)``.

    The partition takes ``sizes["train"]``, then ``sizes["val"]``, then the rest
    (``sizes["test"]``) from one permutation drawn by ``numpy.random.default_rng(seed)``,
    so the three parts are disjoint, cover everything and depend only on ``seed``.

    Parameters
    ----------
    n : int
        Number of examples.
    sizes : dict with keys "train", "val", "test" summing to ``n``.
    split : {"train", "val", "test"}
    seed : int

    Returns
    -------
    ndarray of shape (sizes[split],), sorted int64 indices.
    """
    n = check_int(n, "n", minimum=0)
    split = check_choice(split, ("train", "val", "test"), "split")
    seed = check_seed(seed)
    if not isinstance(sizes, dict) or set(sizes) != {"train", "val", "test"}:
        raise ValueError(f"sizes must be a dict with keys 'train', 'val', 'test', got {sizes!r}")
    sizes = {k: check_int(v, f"sizes[{k!r}]", minimum=0) for k, v in sizes.items()}
    if sum(sizes.values()) != n:
        raise ValueError(f"split sizes {sizes} must sum to n={n}")
    perm = np.random.default_rng(seed).permutation(n)
    a, b = sizes["train"], sizes["train"] + sizes["val"]
    part = {"train": perm[:a], "val": perm[a:b], "test": perm[b:]}[split]
    return np.sort(part).astype(np.int64)


def load_digits(*, binarize: bool = False, split: str | None = None, seed: int = 0):
    """Load scikit-learn's 8x8 digits as float32 images in [0, 1].

    Parameters
    ----------
    binarize : bool
        Threshold the scaled intensities at 0.5 (half range), giving {0, 1}
        pixels for a Bernoulli likelihood.
    split : {None, "train", "val", "test"}
        ``None`` returns all 1,797 images in scikit-learn's order; otherwise one
        part of a fixed seeded split of sizes :data:`DIGITS_SPLIT_SIZES`
        (1257 / 270 / 270), disjoint across parts for the same ``seed``.
    seed : int
        Seed of the split permutation (ignored when ``split`` is None).

    Returns
    -------
    X : Tensor of shape (n, 64), float32, values in [0, 1] (pixels row-major).
    y : Tensor of shape (n,), int64 labels 0..9.
    """
    if split is not None:
        split = check_choice(split, _SPLITS[1:], "split")
    seed = check_seed(seed)
    binarize = check_bool(binarize, "binarize")
    from sklearn.datasets import load_digits as _sk_load_digits

    data = _sk_load_digits()
    X = np.asarray(data.data, dtype=np.float64) / 16.0
    y = np.asarray(data.target, dtype=np.int64)
    if split is not None:
        idx = split_indices(len(X), DIGITS_SPLIT_SIZES, split, seed)
        X, y = X[idx], y[idx]
    if binarize:
        X = (X >= 0.5).astype(np.float64)
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
