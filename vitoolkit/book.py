"""The course book: every tutorial as a sphinx-gallery page, built by one command.

``vitoolkit book --out DIR [--quick]`` (or :func:`build_book`) builds an HTML site
from ``docs/`` with Sphinx and sphinx-gallery. Each ``tutorials/NN_name.py``
becomes a page with its narrative, rendered math, code, printed numbers and
figures, and download links for the script and a Jupyter notebook; new
tutorials join automatically.

Tutorials are written for Jupyter (jupytext's percent format: ``# %%`` code
cells, ``# %% [markdown]`` Markdown cells), while sphinx-gallery reads its text
blocks as reStructuredText. :func:`gallery_script` bridges the two: it rewrites
each Markdown cell into reStructuredText with pandoc (``$...$`` becomes
``:math:``) and leaves every line of code untouched, so the book executes exactly
the tutorial's code. The downloadable notebook is made from the original script
by jupytext (:func:`tutorial_notebook`), so its Markdown is the author's own.

Figures reach the page through :func:`tutorial_scraper`, which shows exactly the
PNGs the tutorial saved with ``tut.savefig``, whether or not it closed them.

The optional packages (the ``docs`` extra) are sphinx, sphinx-gallery, jupytext,
nbformat, pypandoc-binary (pandoc itself) and django-static-mathjax (a local
MathJax, so the book renders math without a network).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .cli import find_tutorials, tutorials_dir

__all__ = [
    "BookBuild",
    "BookError",
    "REQUIRED_MODULES",
    "build_book",
    "docs_dir",
    "gallery_script",
    "markdown_to_rst",
    "missing_modules",
    "reset_torch",
    "split_cells",
    "split_warnings",
    "stage_gallery",
    "tutorial_notebook",
    "tutorial_scraper",
]

#: Import name -> PyPI package needed to build the book (the ``docs`` extra).
REQUIRED_MODULES = {
    "sphinx": "sphinx",
    "sphinx_gallery": "sphinx-gallery",
    "jupytext": "jupytext",
    "nbformat": "nbformat",
    "pypandoc": "pypandoc-binary",
    "mathjax": "django-static-mathjax",
}

#: Name of the folder (inside the Sphinx source tree) the gallery pages are written to.
GALLERY_DIR = "auto_tutorials"

_CELL_MARKER = re.compile(r"^#\s?%%(?P<rest>.*)$")
_MARKDOWN_TAG = re.compile(r"\[(markdown|md)\]", re.IGNORECASE)
# A paragraph pandoc passes through unchanged, used to convert many cells in one call.
_BREAK = "VITOOLKITCELLBREAK"


class BookError(RuntimeError):
    """The book could not be built (missing package, failed tutorial, Sphinx warnings)."""


@dataclass
class BookBuild:
    """The result of :func:`build_book`.

    Attributes
    ----------
    out : Path
        The HTML site; open ``out / "index.html"``.
    pages : list of Path
        Every HTML page of the site (tutorial pages, index, API reference, ...).
    tutorial_pages : dict of str to Path
        The gallery page of each tutorial, by tutorial name.
    seconds : float
        Wall-clock time of the build.
    quick : bool
        Whether the tutorials ran in their quick setting.
    warnings : list of str
        Sphinx's warnings (empty for a clean build).
    workdir : Path or None
        The staged Sphinx sources and doctrees, when kept (``workdir`` given).
    """

    out: Path
    pages: list[Path]
    tutorial_pages: dict[str, Path]
    seconds: float
    quick: bool
    warnings: list[str] = field(default_factory=list)
    workdir: Path | None = None


def missing_modules() -> list[str]:
    """PyPI names of the ``docs`` packages that are not installed (empty when ready)."""
    return [pkg for mod, pkg in REQUIRED_MODULES.items() if importlib.util.find_spec(mod) is None]


def _require(modules: Sequence[str]) -> None:
    missing = [REQUIRED_MODULES[m] for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise BookError(
            f"building the book needs {', '.join(missing)}; install the docs extra: "
            f"pip install -e '.[docs]'"
        )


def docs_dir() -> Path:
    """Where the Sphinx sources live: ``$VITOOLKIT_DOCS``, else ``docs/`` beside the package."""
    env = os.environ.get("VITOOLKIT_DOCS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "docs"


# -- tutorial source -> cells -----------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    kind: str  # "markdown" or "code"
    source: str


def _uncomment(line: str) -> str:
    # jupytext writes Markdown lines as "# text" and blank Markdown lines as "#".
    if line.startswith("# "):
        return line[2:]
    if line.startswith("#"):
        return line[1:]
    return line


def split_cells(source: str) -> tuple[str, list[_Cell]]:
    """Split a tutorial's source into its module docstring and percent-format cells.

    Parameters
    ----------
    source : str
        The text of a ``tutorials/NN_name.py`` script.

    Returns
    -------
    docstring : str
        The module docstring (cleaned by :func:`inspect.cleandoc`).
    cells : list
        Cells in order, each with ``kind`` (``"markdown"`` for ``# %% [markdown]``
        cells, ``"code"`` otherwise) and ``source`` (Markdown uncommented; code
        verbatim). Code before the first ``# %%`` marker is a code cell.
    """
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree)
    if not docstring:
        raise ValueError("a tutorial must start with a module docstring (title, then 'Question:')")
    lines = source.splitlines()
    rest = lines[tree.body[0].end_lineno:]
    cells: list[_Cell] = []
    kind, body = "code", []

    def flush():
        text = "\n".join(body).strip("\n")
        if text.strip():
            cells.append(_Cell(kind, text))

    for line in rest:
        match = _CELL_MARKER.match(line)
        if match:
            flush()
            kind = "markdown" if _MARKDOWN_TAG.search(match.group("rest")) else "code"
            body = []
        else:
            body.append(_uncomment(line) if kind == "markdown" else line)
    flush()
    return docstring, cells


# -- Markdown -> reStructuredText ----------------------------------------------------


def markdown_to_rst(texts: Sequence[str]) -> list[str]:
    """Convert Markdown fragments to reStructuredText with pandoc, in one call.

    Parameters
    ----------
    texts : sequence of str
        Markdown fragments (pandoc's Markdown: ``$...$`` and ``$$...$$`` math,
        lists, emphasis, code, links, headings).

    Returns
    -------
    list of str
        One reStructuredText fragment per input, in order.
    """
    if not texts:
        return []
    _require(["pypandoc"])
    import pypandoc

    for i, text in enumerate(texts):
        if _BREAK in text:
            raise ValueError(f"texts[{i}] contains the reserved word {_BREAK!r}")
    joined = f"\n\n{_BREAK}\n\n".join(texts)
    rst = pypandoc.convert_text(joined, "rst", format="markdown-smart", extra_args=["--wrap=preserve"])
    parts = re.split(rf"^{_BREAK}\s*$", rst.replace("\r\n", "\n"), flags=re.M)
    if len(parts) != len(texts):
        raise BookError(f"pandoc returned {len(parts)} fragments for {len(texts)} Markdown cells")
    return [part.strip("\n") + "\n" for part in parts]


def _docstring_markdown(docstring: str) -> str:
    """The docstring as Markdown: its first line a title, ``Question:`` set in bold."""
    lines = docstring.strip().splitlines()
    title, body = lines[0].strip(), lines[1:]
    out = [f"# {title}", ""]
    for line in body:
        if line.lower().startswith("question:"):
            line = f"**Question:** {line.split(':', 1)[1].strip()}"
        out.append(line)
    return "\n".join(out)


def _plain_title(title: str, header: str) -> str:
    """Use the title as written when it is already clean reST (no backslash escapes).

    sphinx-gallery copies the title's source text into the gallery's thumbnails,
    where pandoc's escapes (``\\|``) would show.
    """
    from docutils.core import publish_doctree
    from docutils.utils import SystemMessage

    lines = header.splitlines()
    if len(lines) < 2 or not set(lines[1]) <= {"="}:
        return header
    try:
        tree = publish_doctree(f"{title}\n{'=' * len(title)}\n",
                               settings_overrides={"report_level": 2, "halt_level": 2,
                                                   "warning_stream": False})
    except SystemMessage:
        return header
    if tree.astext().strip() != title:
        return header
    return "\n".join([title, "=" * len(title), *lines[2:]]) + "\n"


def _literal(text: str) -> str:
    """A Python string literal for ``text``: a raw triple-quoted one when it is safe."""
    if "'''" not in text and not text.endswith("\\"):
        return "r'''" + text + "'''"
    return repr(text)


def _comment(text: str) -> str:
    return "\n".join(f"# {line}" if line.strip() else "#" for line in text.splitlines())


def gallery_script(path: str | os.PathLike, *, note: str | None = None) -> str:
    """Rewrite a tutorial as a sphinx-gallery example with reStructuredText text blocks.

    The code cells are copied verbatim (the book runs exactly the tutorial's code);
    the docstring and Markdown cells go through :func:`markdown_to_rst`. A code
    cell is preceded by an empty line so that sphinx-gallery keeps its leading
    comments as code rather than reading them as text.

    Parameters
    ----------
    path : path-like
        A ``tutorials/NN_name.py`` script in jupytext's percent format.
    note : str, optional
        reStructuredText added to the page header as a ``note`` admonition.

    Returns
    -------
    str
        The source of the sphinx-gallery example.
    """
    path = Path(path)
    docstring, cells = split_cells(path.read_text(encoding="utf-8"))
    markdown = [_docstring_markdown(docstring)] + [c.source for c in cells if c.kind == "markdown"]
    converted = iter(markdown_to_rst(markdown))
    header = _plain_title(docstring.strip().splitlines()[0].strip(), next(converted))
    if note:
        indented = "\n".join("   " + line if line else "" for line in note.strip().splitlines())
        header = f"{header}\n.. note::\n\n{indented}\n"
    parts = [_literal(header)]
    for cell in cells:
        if cell.kind == "markdown":
            parts.append("# %%\n" + _comment(next(converted)))
        else:
            parts.append("# %%\n\n" + cell.source)
    return "\n\n".join(parts) + "\n"


def _is_docstring_only(source: str) -> bool:
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return (len(body) == 1 and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str))


def tutorial_notebook(path: str | os.PathLike):
    """Convert a tutorial script to a Jupyter notebook with jupytext.

    Parameters
    ----------
    path : path-like
        A ``tutorials/NN_name.py`` script in jupytext's percent format.

    Returns
    -------
    nbformat.NotebookNode
        A version-4 notebook with a Python 3 kernelspec; ``# %% [markdown]``
        cells are Markdown cells, every other cell is a code cell, and the module
        docstring becomes the opening Markdown cell (title and question).
    """
    _require(["jupytext", "nbformat"])
    import jupytext
    import nbformat

    path = Path(path)
    notebook = jupytext.read(path, fmt="py:percent")
    # The module docstring opens the notebook as a Markdown title cell, not a string literal.
    first = notebook.cells[0] if notebook.cells else None
    if first is not None and first.cell_type == "code" and _is_docstring_only(first.source):
        docstring = ast.get_docstring(ast.parse(first.source)) or ""
        notebook.cells[0] = nbformat.v4.new_markdown_cell(_docstring_markdown(docstring))
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata.setdefault("language_info", {"name": "python"})
    # jupytext keeps its own format notes; a downloaded notebook does not pair with a script.
    notebook.metadata.pop("jupytext", None)
    return notebook


# -- figures: the scraper sphinx-gallery calls after each code block ----------------------

# How many of each running tutorial's figures are already on the page.
_SHOWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tutorial_scraper(block, block_vars, gallery_conf, **kwargs) -> str:
    """Show on the page the figures a tutorial saved with ``tut.savefig`` in this block.

    A sphinx-gallery image scraper: it finds the :class:`vitoolkit.tutorial.Tutorial`
    in the example's globals, copies each PNG saved since the previous block into
    sphinx-gallery's image folder, and closes matplotlib's figures. Figures that
    were drawn but never saved are not shown, as they are not part of the lesson.
    """
    import matplotlib.pyplot as plt
    from sphinx_gallery.scrapers import figure_rst

    from .tutorial import Tutorial

    plt.close("all")
    tuts = [v for v in block_vars["example_globals"].values() if isinstance(v, Tutorial)]
    if not tuts:
        return ""
    tut = tuts[0]
    new = tut.figures[_SHOWN.get(tut, 0):]
    _SHOWN[tut] = len(tut.figures)
    rst = []
    for name, target in zip(new, block_vars["image_path_iterator"], strict=False):
        source = Path(tut.out) / f"{name}.png"
        if not source.is_file():
            raise BookError(f"tutorial {tut.name} saved figure {name!r} but {source} is missing; "
                            "the book needs PNG among the figure formats")
        shutil.copyfile(source, target)
        # One image per directive: full text width (a projector), alt text from its name.
        rst.append(figure_rst([target], gallery_conf["src_dir"], name.replace("_", " ")))
    return "".join(rst)


_TORCH_THREADS: list[int] = []


def reset_torch(gallery_conf, fname) -> None:
    """Give each tutorial torch's defaults, as a fresh process would (a reset for sphinx-gallery).

    The book runs every tutorial in one process; one that changes the default
    dtype, turns gradients off or pins the thread count must not change the
    next one. The thread count seen at the first call is the one restored.
    """
    import torch

    if not _TORCH_THREADS:
        _TORCH_THREADS.append(torch.get_num_threads())
    torch.set_num_threads(_TORCH_THREADS[0])
    torch.set_default_dtype(torch.float32)
    torch.set_grad_enabled(True)


# -- the build ------------------------------------------------------------------------------

QUICK_NOTE = ("This page was built in the quick setting (``VITOOLKIT_QUICK=1``): smaller "
              "runs than the full lesson, so its numbers and figures are noisier. Run "
              "``vitoolkit run NAME`` or the notebook for the full setting.")


def stage_gallery(
    dest: str | os.PathLike,
    *,
    tutorials: str | os.PathLike | None = None,
    header: str = "",
    quick: bool = False,
) -> list[Path]:
    """Write the sphinx-gallery examples folder: a header and one example per tutorial.

    Parameters
    ----------
    dest : path-like
        The examples folder to (re)create.
    tutorials : path-like, optional
        Folder of ``NN_name.py`` scripts; default :func:`vitoolkit.cli.tutorials_dir`.
    header : str
        reStructuredText of the gallery's front page (``GALLERY_HEADER.rst``).
    quick : bool
        Add a note to every page saying it was built in the quick setting.

    Returns
    -------
    list of Path
        The original tutorial scripts, in order.
    """
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    header = header.rstrip() + "\n"
    if quick:
        header += "\n.. note::\n\n   " + QUICK_NOTE.replace("NAME", "NN_name") + "\n"
    (dest / "GALLERY_HEADER.rst").write_text(header, encoding="utf-8")
    found = find_tutorials(tutorials_dir() if tutorials is None else Path(tutorials))
    for t in found:
        note = QUICK_NOTE.replace("NAME", t.name) if quick else None
        (dest / t.path.name).write_text(gallery_script(t.path, note=note), encoding="utf-8")
    return [t.path for t in found]



def _stage_docs(docs: Path, dest: Path) -> None:
    ignore = shutil.ignore_patterns("_build", GALLERY_DIR, "generated", "_gallery_src",
                                    "__pycache__", ".*")
    shutil.copytree(docs, dest, ignore=ignore)


_WARNING_START = re.compile(r"^(?:\S.*?: )?(?:WARNING|ERROR|CRITICAL|SEVERE): ")


def split_warnings(text: str) -> list[str]:
    """Split Sphinx's warning log into one string per warning (some span several lines)."""
    entries: list[str] = []
    for line in text.splitlines():
        if _WARNING_START.match(line) or not entries:
            entries.append(line)
        else:
            entries[-1] += "\n" + line
    return [e for e in entries if e.strip()]


def build_book(
    out: str | os.PathLike,
    *,
    quick: bool = False,
    tutorials: str | os.PathLike | None = None,
    docs: str | os.PathLike | None = None,
    workdir: str | os.PathLike | None = None,
    strict: bool = False,
    verbose: bool = False,
    run_tutorials: bool = True,
) -> BookBuild:
    """Build the course book as an HTML site.

    Sphinx runs in its own process on a copy of ``docs/`` (the repository stays
    clean); sphinx-gallery executes every tutorial once, in its quick setting
    when ``quick`` is true (``VITOOLKIT_QUICK=1``).

    Parameters
    ----------
    out : path-like
        Folder for the HTML site (``out/index.html`` is the entry page).
    quick : bool, default False
        Run the tutorials in their small CI setting.
    tutorials : path-like, optional
        Folder of ``NN_name.py`` scripts; default :func:`vitoolkit.cli.tutorials_dir`.
    docs : path-like, optional
        Sphinx sources; default :func:`docs_dir`.
    workdir : path-like, optional
        Where to stage the sources and doctrees; kept for inspection when given,
        else a temporary folder removed after the build.
    strict : bool, default False
        Treat Sphinx warnings as errors (``-W --keep-going``). Otherwise the
        warnings are returned in :attr:`BookBuild.warnings`; a failing tutorial
        fails the build either way.
    verbose : bool, default False
        Stream Sphinx's output instead of showing it only on failure.
    run_tutorials : bool, default True
        Execute the tutorials. ``False`` renders their text and code only (no
        output, no figures): a fast check of the pages and the docstrings.

    Returns
    -------
    BookBuild

    Raises
    ------
    BookError
        A ``docs`` package is missing, there are no tutorials, a tutorial failed,
        or (with ``strict``) Sphinx warned.
    """
    _require(list(REQUIRED_MODULES))
    tutorials = Path(tutorials) if tutorials is not None else tutorials_dir()
    docs = Path(docs) if docs is not None else docs_dir()
    if not (docs / "conf.py").is_file():
        raise BookError(f"docs must be a Sphinx source folder with conf.py; got {docs}")
    found = find_tutorials(tutorials)
    if not found:
        raise BookError(f"tutorials must hold NN_name.py scripts; none found in {tutorials}")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    temp = None
    if workdir is None:
        temp = tempfile.TemporaryDirectory(prefix="vitoolkit-book-")
        work = Path(temp.name)
    else:
        work = Path(workdir).resolve()
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
    try:
        src = work / "source"
        _stage_docs(docs, src)
        warnings_file = work / "warnings.txt"
        cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-d", str(work / "doctrees"),
               "-w", str(warnings_file)]
        if not verbose:
            cmd.append("-q")
        if strict:
            cmd += ["-W", "--keep-going"]
        cmd += [str(src), str(out)]
        env = {
            **os.environ,
            "VITOOLKIT_TUTORIALS": str(tutorials.resolve()),
            "VITOOLKIT_QUICK": "1" if quick else "0",
            "VITOOLKIT_BOOK_RUN": "1" if run_tutorials else "0",
            "VITOOLKIT_FORMATS": "png",
            "MPLBACKEND": "Agg",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("VITOOLKIT_OUT", None)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=work, text=True,
                              stdout=None if verbose else subprocess.PIPE,
                              stderr=subprocess.STDOUT if not verbose else None)
        seconds = time.perf_counter() - start
        warnings = []
        if warnings_file.is_file():
            warnings = split_warnings(warnings_file.read_text(encoding="utf-8"))
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout or "").splitlines()[-40:])
            shown = "\n".join(warnings[:40])
            raise BookError(f"sphinx-build failed (exit code {proc.returncode}) after "
                            f"{seconds:.0f} s.\nWarnings:\n{shown}\nOutput:\n{tail}")
        pages = sorted(p for p in out.rglob("*.html")
                       if not {"_static", "_sources", "_downloads", "_images"} & set(
                           p.relative_to(out).parts))
        tutorial_pages = {t.name: out / GALLERY_DIR / f"{t.name}.html" for t in found}
        absent = [name for name, page in tutorial_pages.items() if not page.is_file()]
        if absent:
            raise BookError(f"no page was built for tutorials {absent}")
        return BookBuild(out=out, pages=pages, tutorial_pages=tutorial_pages, seconds=seconds,
                         quick=quick, warnings=warnings,
                         workdir=None if temp is not None else work)
    finally:
        if temp is not None:
            temp.cleanup()


def add_arguments(parser) -> None:
    """Add the ``book`` subcommand's options to an argparse parser."""
    parser.add_argument("--out", required=True, help="folder for the HTML site")
    parser.add_argument("--quick", action="store_true",
                        help="run the tutorials in their quick setting (VITOOLKIT_QUICK=1)")
    parser.add_argument("--strict", action="store_true",
                        help="treat Sphinx warnings (e.g. malformed docstrings) as errors")
    parser.add_argument("--no-run", dest="run_tutorials", action="store_false",
                        help="do not execute the tutorials (a fast check of pages and docstrings)")
    parser.add_argument("-v", "--verbose", action="store_true", help="stream Sphinx's output")


def run(args) -> int:
    """Run the ``book`` subcommand for parsed ``args``; return the exit code."""
    print(f"building the book{' (quick)' if args.quick else ''} into {args.out} ...", flush=True)
    try:
        result = build_book(args.out, quick=args.quick, strict=args.strict, verbose=args.verbose,
                            run_tutorials=args.run_tutorials)
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"built {len(result.pages)} pages ({len(result.tutorial_pages)} tutorials) "
          f"in {result.seconds:.0f} s with {len(result.warnings)} warnings: "
          f"{result.out / 'index.html'}")
    return 0

