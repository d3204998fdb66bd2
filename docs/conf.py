"""Sphinx configuration of the vitoolkit course book.

Build it with ``vitoolkit book --out DIR [--quick]`` (see :mod:`vitoolkit.book`),
which runs Sphinx on a copy of this folder. ``sphinx-build -b html docs DIR`` also
works; it writes the generated gallery and API pages into this folder (ignored by
git). The tutorials are read from ``$VITOOLKIT_TUTORIALS`` or ``tutorials/``;
``VITOOLKIT_QUICK=1`` runs them in their quick setting; ``VITOOLKIT_BOOK_RUN=0``
renders them without running them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import vitoolkit  # noqa: E402
from vitoolkit import book  # noqa: E402

_TRUE = {"1", "true", "yes", "on"}
QUICK = os.environ.get("VITOOLKIT_QUICK", "").strip().lower() in _TRUE
# VITOOLKIT_BOOK_RUN=0 renders the tutorials without executing them (`vitoolkit book --no-run`).
RUN = os.environ.get("VITOOLKIT_BOOK_RUN", "1").strip().lower() in _TRUE

# Each build rewrites the tutorials as sphinx-gallery examples (Markdown cells -> reST).
book.stage_gallery(
    HERE / "_gallery_src",
    header=(HERE / "gallery_header.rst").read_text(encoding="utf-8"),
    quick=QUICK and RUN,
)

# -- project ------------------------------------------------------------------------
project = "vitoolkit"
author = "the vitoolkit authors"
copyright = "the vitoolkit authors, MIT licence"
release = version = vitoolkit.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
    "coursebook",
]
exclude_patterns = ["_build", "_gallery_src", "gallery_header.rst", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
root_doc = "index"
# Indented blocks in the tutorials' Markdown are formulas or output, not Python:
# leave them unhighlighted (the code cells name their language explicitly).
highlight_language = "none"

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

# MathJax 3 from the django-static-mathjax wheel, served from _static: the book
# renders math with no network. tex-svg-full.js is one self-contained file
# (every TeX extension and the fonts), so nothing is fetched lazily.
_mathjax = importlib.util.find_spec("mathjax")
if _mathjax is None or not _mathjax.submodule_search_locations:
    raise RuntimeError("the book needs a local MathJax: pip install django-static-mathjax "
                       "(part of the docs extra)")
_MATHJAX_JS = (Path(list(_mathjax.submodule_search_locations)[0])
               / "static" / "mathjax" / "es5" / "tex-svg-full.js")
if not _MATHJAX_JS.is_file():
    raise RuntimeError(f"MathJax file not found at {_MATHJAX_JS}; reinstall django-static-mathjax")
mathjax_path = _MATHJAX_JS.name
html_static_path = ["_static", str(_MATHJAX_JS)]

# -- the gallery ------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["_gallery_src"],
    "gallery_dirs": [book.GALLERY_DIR],
    # Every NN_name.py is executed (sphinx-gallery's default runs only plot_*.py).
    "filename_pattern": r"[\\/]\d\d_[^\\/]*\.py$",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    # Show exactly the figures each tutorial saves with tut.savefig.
    "image_scrapers": ("vitoolkit.book.tutorial_scraper",),
    # Tutorials share one process here: reset the plotting state and torch's defaults.
    "reset_modules": ("matplotlib", "seaborn", "vitoolkit.book.reset_torch"),
    # tut.record(...) returns its value; printing its repr would repeat every number.
    "capture_repr": (),
    "plot_gallery": RUN,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    # The timing pages load jQuery and DataTables from a CDN; the book works offline.
    "write_computation_times": False,
    "min_reported_time": 0,
    "thumbnail_size": (400, 280),
    "backreferences_dir": None,
    "doc_module": (),
}

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
html_css_files = ["coursebook.css"]
html_show_sourcelink = False
