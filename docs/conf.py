"""Sphinx configuration of the vitoolkit course book (Sphinx + MyST-NB).

Build it with ``vitoolkit book --out DIR [--quick]`` (see :mod:`vitoolkit.course.book`),
which executes the tutorials as notebooks (or takes them from its cache), stages this
folder with one executed-notebook page per tutorial and runs Sphinx on it. Sphinx
never executes anything itself.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import vitoolkit

# -- project ------------------------------------------------------------------------
project = "vitoolkit"
author = "the vitoolkit authors"
copyright = "the vitoolkit authors, MIT licence"
release = version = vitoolkit.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "tutorials/_downloads", "tutorials/results",
                    "tutorials/*.py"]
templates_path = ["_templates"]
root_doc = "index"

# -- the tutorials: executed notebooks ------------------------------------------------
# Every page is the notebook a student runs, executed in a fresh python3 kernel by
# vitoolkit.course.notebooks before Sphinx starts (cached while nothing changes).
nb_execution_mode = "off"
nb_merge_streams = True
nb_output_stderr = "remove"  # progress bars; errors still stop the build
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3  # the index links each course question to its section
myst_dmath_double_inline = True

# -- API reference: numpydoc docstrings, formulas rendered by MathJax -----------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
# Types are stated in the numpydoc "Parameters" sections; signatures stay short.
autodoc_typehints = "none"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True

# -- math offline ------------------------------------------------------------------
# MathJax 3 from the sphinx-mathjax-offline wheel (a package made to ship it), copied
# into _static by setup() below: no CDN, and pages work from file://. Its own Sphinx
# hook does the same copy but does not declare itself safe for parallel reading,
# which would execute the notebooks one at a time.
_spec = importlib.util.find_spec("sphinx-mathjax-offline")
if _spec is None or not _spec.submodule_search_locations:
    raise RuntimeError("the book needs a local MathJax: pip install sphinx-mathjax-offline "
                       "(part of the docs extra)")
MATHJAX_DIR = Path(list(_spec.submodule_search_locations)[0]) / "static" / "mathjax"
mathjax_path = "mathjax/tex-chtml.js"
# Ambiguous type names in docstrings (many result tuples have a field "loc") are not errors.
suppress_warnings = ["ref.python"]


def _copy_mathjax(app, exc):
    from sphinx.util.fileutil import copy_asset

    if exc is None:
        copy_asset(str(MATHJAX_DIR), os.path.join(app.outdir, "_static", "mathjax"))


def setup(app):
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# -- HTML ---------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"vitoolkit {release}: the course book"
html_theme_options = {
    "description": "Variational inference beyond the VAE, as course material",
    "page_width": "1180px",
    "sidebar_width": "250px",
    "fixed_sidebar": False,
    "show_relbars": True,
}
html_static_path = ["_static"]
html_css_files = ["coursebook.css"]
html_show_sourcelink = False
