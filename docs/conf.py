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
# Cells tagged hide-input (a lesson's checks: tut.claim, tut.record) are folded; their
# output (the claim callouts, the printed numbers) stays shown.
nb_code_prompt_show = "Show the checking code"
nb_code_prompt_hide = "Hide the checking code"
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
# An interactive figure's output also carries Plotly's MIME type, for JupyterLab's plotly
# renderer; MyST-NB has no renderer for it and shows the output's text/html form instead.
suppress_warnings = ["ref.python", "mystnb.unknown_mime_type"]


# -- interactive figures: plotly.js once --------------------------------------------
# A notebook's Plotly output carries no plotly.js (Tutorial.save_interactive); the book
# copies the one of the installed plotly package into _static and loads it, before the
# figures' own scripts, on the pages that have a Plotly figure, so the pages share it.
_plotly = importlib.util.find_spec("plotly")
PLOTLY_JS = (Path(list(_plotly.submodule_search_locations)[0]) / "package_data" / "plotly.min.js"
             if _plotly is not None and _plotly.submodule_search_locations else None)


def _mathjax_unused(folder, names):
    """MathJax's other combined bundles and SVG output: the book loads tex-chtml.js only
    (which fetches its fonts, TeX extensions and accessibility parts from the folders kept)."""
    if Path(folder) == MATHJAX_DIR:
        return [n for n in names if n.endswith(".js") and n != Path(mathjax_path).name]
    if Path(folder) == MATHJAX_DIR / "output":
        return [n for n in names if n.startswith("svg")]
    return []


def _copy_assets(app, exc):
    import shutil

    from sphinx.util.fileutil import copy_asset

    if exc is None:
        static = Path(app.outdir) / "_static"
        shutil.copytree(MATHJAX_DIR, static / "mathjax", ignore=_mathjax_unused, dirs_exist_ok=True)
        if PLOTLY_JS is not None and PLOTLY_JS.is_file():
            copy_asset(str(PLOTLY_JS), str(static))
        # The theme's source maps serve only a developer's browser tools (3.5 MB).
        for path in list(static.glob("scripts/*.map")) + list(static.glob("styles/*.map")):
            path.unlink()


def _page_assets(app, pagename, templatename, context, doctree):
    """plotly.js on the pages that draw a Plotly figure; the lesson's download buttons."""
    if doctree is not None and "Plotly.newPlot" in doctree.astext():
        app.add_js_file("plotly.min.js", priority=200)
    # The header's download menu: the script and the notebook a student runs (the files
    # the page's download cell links), and the browser's print-to-PDF.
    pathto = context["pathto"]
    files = [(str(src), str(dest)) for src, (docs, dest) in app.env.dlfiles.items() if pagename in docs]
    buttons = []
    for suffix, icon, tip in ((".py", "fab fa-python", "Download the script"),
                              (".ipynb", "fas fa-code", "Download the notebook")):
        for src, dest in files:
            if src.endswith(suffix):
                buttons.append({"type": "link", "url": pathto("_downloads/" + dest, 1),
                                "text": suffix, "icon": icon, "tooltip": tip,
                                "label": f"download-{suffix[1:]}-button"})
    if buttons:
        buttons.append({"type": "javascript", "javascript": "window.print()", "text": ".pdf",
                        "tooltip": "Print to PDF", "icon": "fas fa-file-pdf",
                        "label": "download-pdf-button"})
        context.setdefault("header_buttons", []).insert(0, {
            "type": "group", "tooltip": "Download this lesson", "icon": "fas fa-download",
            "buttons": buttons, "label": "download-buttons"})


def setup(app):
    app.connect("build-finished", _copy_assets)
    app.connect("html-page-context", _page_assets, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# -- HTML: sphinx-book-theme (the theme of Jupyter Book) ---------------------------------
# Its fonts and icons (FontAwesome) are files inside the theme's package: nothing
# comes from a CDN.
#: "quick" when ``vitoolkit book --quick`` built these pages (set by the book builder).
BOOK_SETTING = os.environ.get("VITOOLKIT_BOOK_SETTING", "")
html_theme = "sphinx_book_theme"
html_title = f"vitoolkit {release}: the course book"
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 2,  # the sidebar lists every lesson
    "show_toc_level": 2,  # "on this page": sections and subsections
    "use_download_button": False,  # replaced by the lesson's own download menu (_page_assets)
    "use_fullscreen_button": False,
    "use_sidenotes": False,
    "navigation_with_keys": False,
    "navbar_persistent": [],  # the sidebar has the search field; no empty header bar above

    "pygments_light_style": "tango",
    "pygments_dark_style": "monokai",
    "announcement": (
        "Quick setting (<code>vitoolkit book --quick</code>): the numbers and figures come "
        "from the tutorials' small, fast runs, not the course's; full-size claims are "
        "checked at full size only."
        if BOOK_SETTING == "quick" else ""),
}
html_context = {"default_mode": "auto"}  # light or dark as the reader's system prefers
html_static_path = ["_static"]
html_css_files = ["coursebook.css"]
html_show_sourcelink = False
html_copy_source = False
