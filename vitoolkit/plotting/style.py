"""One figure style for the whole toolkit: theme, palette and axes helpers.

Every plotting function in :mod:`vitoolkit.plotting` takes ``ax=None`` (drawing
on the current axes when none is given), returns what it drew, and never runs
an algorithm: it receives numbers already computed by the topic modules.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns

__all__ = ["PALETTE", "set_theme", "get_ax", "subplots", "color", "to_numpy", "to_float"]

#: Okabe-Ito colour-blind-safe palette (Okabe & Ito 2008), in the order used for series.
PALETTE = [
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
]


def to_numpy(x):
    """A NumPy array from a tensor (detached, on the CPU) or any array-like."""
    import numpy as np

    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return np.asarray(x)


def to_float(x, name: str):
    """``x`` as a float64 NumPy array to draw, refusing what is not numbers (the error names ``name``).

    Tensors are detached and copied to the CPU; bools count as 0/1. Strings,
    complex numbers and ragged or object arrays raise a ``TypeError`` instead of
    being parsed or truncated. NaN and inf are kept: a plot shows them as gaps.
    """
    import numpy as np

    from ..validation import as_float_array

    a = to_numpy(x) if not isinstance(x, (str, bytes)) else x
    if isinstance(a, np.ndarray) and a.dtype.kind == "b":
        a = a.astype(np.float64)
    return as_float_array(a, name, finite=False)


def color(i: int) -> str:
    """The ``i``-th colour of :data:`PALETTE` (cycling)."""
    return PALETTE[i % len(PALETTE)]


def set_theme(context: str = "talk", font_scale: float = 0.8) -> None:
    """Apply the toolkit theme: seaborn whitegrid, Okabe-Ito palette, slide-sized fonts."""
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE, font_scale=font_scale)
    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.titlesize": "medium",
            "axes.titleweight": "bold",
            "legend.frameon": True,
            "legend.framealpha": 0.9,
            "image.cmap": "viridis",
        }
    )
    # A y tick label may sit at the top of its axis, centred on it, so it rises half its
    # height above the axes; a title wider than its axes must clear that for any data.
    from matplotlib.font_manager import FontProperties

    tick = FontProperties(size=plt.rcParams["ytick.labelsize"]).get_size_in_points()
    plt.rcParams["axes.titlepad"] = max(6.0, tick + 2.0)


def get_ax(ax=None):
    """Return ``ax`` or, when ``None``, the current axes (creating a figure if needed)."""
    return plt.gca() if ax is None else ax


def subplots(nrows: int = 1, ncols: int = 1, *, size: float = 4.0, **kwargs):
    """``plt.subplots`` with the toolkit theme and panels of ``size`` inches.

    Returns ``(fig, ax)`` exactly as :func:`matplotlib.pyplot.subplots` does: one
    ``Axes`` for a 1x1 grid, a 1-D array for a single row or column, a 2-D array
    otherwise (pass ``squeeze=False`` to always get a 2-D array). Importing the
    toolkit never changes matplotlib's backend, so figures show inline in Jupyter.
    """
    set_theme()
    kwargs.setdefault("figsize", (size * ncols * 1.2, size * nrows))
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, **kwargs)
