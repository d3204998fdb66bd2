"""Sphinx glue for the vitoolkit course book.

- ``.. answered-by:: NN_name`` links a course question to the gallery page of the
  tutorial that answers it, or says the tutorial is not part of this build (so a
  book built while tutorials are still being written has no dangling link).
- After sphinx-gallery has generated its pages, the downloadable ``.py``,
  ``.ipynb`` and ``.zip`` of every tutorial are replaced by the original script
  and its jupytext notebook, so a student downloads the author's Markdown, not
  the reStructuredText the page was rendered from.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import nbformat
from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from vitoolkit import book
from vitoolkit.cli import find_tutorials, tutorials_dir

logger = logging.getLogger(__name__)


class AnsweredBy(SphinxDirective):
    """``.. answered-by:: NN_name``: a paragraph linking to that tutorial's page."""

    required_arguments = 1
    has_content = False

    def run(self):
        name = self.arguments[0].strip()
        docname = f"{book.GALLERY_DIR}/{name}"
        para = nodes.paragraph(classes=["course-answer"])
        para += nodes.Text("Answered by: ")
        if docname in self.env.found_docs:
            ref = addnodes.pending_xref(
                "", refdomain="std", reftype="doc", reftarget=f"/{docname}",
                refexplicit=False, refwarn=True, refdoc=self.env.docname,
            )
            ref += nodes.inline("", name, classes=["xref", "std", "std-doc"])
            para += ref
        else:
            logger.info("tutorial %s is not part of this build", name)
            para += nodes.literal("", name)
            para += nodes.Text(" (not part of this build yet)")
        return [para]


def _replace_downloads(app) -> None:
    gallery = Path(app.srcdir) / book.GALLERY_DIR
    for t in find_tutorials(tutorials_dir()):
        if not (gallery / f"{t.name}.rst").is_file():
            continue
        shutil.copyfile(t.path, gallery / t.path.name)
        notebook = gallery / f"{t.name}.ipynb"
        nbformat.write(book.tutorial_notebook(t.path), notebook)
        bundle = gallery / f"{t.name}.zip"
        if bundle.exists():
            with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.write(t.path, t.path.name)
                zf.write(notebook, notebook.name)


def setup(app):
    app.add_directive("answered-by", AnsweredBy)
    # sphinx-gallery generates its pages on builder-inited at the default priority 500.
    app.connect("builder-inited", _replace_downloads, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
