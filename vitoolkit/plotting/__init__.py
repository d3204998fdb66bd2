"""Pure plotting functions: each takes ``ax=None``, returns what it drew, computes nothing.

The theme lives in :mod:`vitoolkit.plotting.style`; each topic has its own module
(``core``, ``cavi``, ``fitting``, ``gradients``, ``vae``), imported here.
"""

from .style import PALETTE, color, get_ax, set_theme, subplots

__all__ = ["PALETTE", "color", "get_ax", "set_theme", "subplots"]
