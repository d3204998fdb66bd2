"""Pure plotting functions: each takes ``ax=None``, returns what it drew, computes nothing.

The theme lives in :mod:`vitoolkit.plotting.style`; each topic has its own module,
imported here: ``core`` (ELBO anatomy), ``cavi``, ``fitting``, ``gradients``,
``vae``, ``vae_beyond``, ``discrete``, ``classification`` and ``families``; ``interactive`` holds
the Plotly figures (imported on use, as ``vitoolkit.plotting.interactive``).
:func:`check_figure` (``figure_check``) lists the defects a reader would notice in
a figure: legends over data, overlapping tick labels, colliding titles, empty axes.
"""

from . import cavi, classification, core, discrete, families, fitting, gradients, vae, vae_beyond
from .figure_check import check_figure
from .style import PALETTE, color, get_ax, set_theme, subplots

__all__ = [
    "PALETTE",
    "cavi",
    "classification",
    "check_figure",
    "color",
    "core",
    "discrete",
    "families",
    "fitting",
    "get_ax",
    "gradients",
    "set_theme",
    "subplots",
    "vae",
    "vae_beyond",
]
