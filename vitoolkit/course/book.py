"""The course book: the tutorials as executed notebooks, built by one command.

``vitoolkit book --out DIR [--quick]`` (or :func:`build_book`) builds an HTML site
with Sphinx and MyST-NB, the engine under Jupyter Book. Each
``tutorials/NN_name.py`` (jupytext's percent format) becomes a Jupyter notebook
(:func:`tutorial_notebook`), MyST-NB executes it in a fresh ``python3`` kernel
and renders the executed notebook as the page: the narrative (MyST Markdown with
``$...$`` math), the code, the printed numbers, the figures shown inline and the
claims as callouts are exactly what a student sees when running the notebook.
Each page offers the script and the notebook for download; new tutorials join
automatically. Math is rendered by a MathJax shipped in a Python package
(``sphinx-mathjax-offline``), so the book needs no network.

A claim that does not hold, or any error in a tutorial, stops the build: the
kernel's exception (``ClaimFailed`` with the statement) is reported.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..fileio import check_output_dir, pid_alive
from .arguments import out_error, positive_int_type
from .catalog import TutorialInfo, find_tutorials, tutorials_dir

__all__ = [
    "BookBuild",
    "BookError",
    "REQUIRED_MODULES",
    "build_book",
    "docs_dir",
    "missing_modules",
    "split_warnings",
    "tutorial_notebook",
]

#: Import name -> PyPI package needed to build the book (the ``docs`` extra).
REQUIRED_MODULES = {
    "sphinx": "sphinx",
    "myst_nb": "myst-nb",
    "jupytext": "jupytext",
    "nbformat": "nbformat",
    "ipykernel": "ipykernel",
    "sphinx-mathjax-offline": "sphinx-mathjax-offline",
}

#: Folder of the Sphinx source tree (and of the site) holding the tutorial pages.
PAGES_DIR = "tutorials"


class BookError(RuntimeError):
    """The book could not be built (missing package, failed tutorial, Sphinx warnings)."""


@dataclass
class BookBuild:
    """The outcome of :func:`build_book`."""

    out: Path
    pages: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    #: Each executed tutorial's ``summary.json`` (numbers, figures, claims), by name.
    summaries: dict[str, dict] = field(default_factory=dict)

    @property
    def index(self) -> Path:
        return self.out / "index.html"


def missing_modules() -> list[str]:
    """The PyPI names of the book's packages that are not installed."""
    return [pkg for mod, pkg in REQUIRED_MODULES.items() if importlib.util.find_spec(mod) is None]


def docs_dir() -> Path:
    """The book's Sphinx sources: ``$VITOOLKIT_DOCS``, else ``docs/`` beside the package."""
    env = os.environ.get("VITOOLKIT_DOCS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "docs"


def tutorial_notebook(path: str | os.PathLike, *, downloads: bool = False):
    """The Jupyter notebook a tutorial script becomes (an ``nbformat`` node).

    jupytext reads the percent format as it is; only the header docstring, which
    a script needs and a notebook shows as a string, becomes the notebook's
    opening Markdown cell: its first line as the page title, the rest as text.
    With ``downloads=True`` a second Markdown cell links the script and the
    notebook for download (the book's pages; the downloadable notebook has none).
    """
    import ast

    import jupytext
    import nbformat

    path = Path(path)
    source = path.read_text(encoding="utf-8")
    nb = jupytext.reads(source, fmt="py:percent")
    doc = ast.get_docstring(ast.parse(source))
    if doc is None:
        raise BookError(f"{path}: a tutorial starts with a docstring (its title and question)")
    first = nb.cells[0] if nb.cells else None
    if first is not None and first.cell_type == "code":
        try:
            only_docstring = len(ast.parse(first.source).body) == 1
        except SyntaxError:
            only_docstring = False
        if only_docstring:
            nb.cells.pop(0)
    title, _, rest = doc.strip().partition("\n")
    header = [nbformat.v4.new_markdown_cell(f"# {title.strip()}\n\n{rest.strip()}".rstrip())]
    if downloads:
        header.append(nbformat.v4.new_markdown_cell(
            f"Download this lesson: {{download}}`the script <{path.name}>` (run it with "
            f"`python {path.name}`) or {{download}}`the notebook <_downloads/{path.stem}.ipynb>` "
            "(open it in Jupyter; every figure shows when its cell runs)."
        ))
    nb.cells[:0] = header
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for cell in nb.cells:
        cell.metadata = {}
    return nb


def _stage(docs: Path, dest: Path, tutorials: Sequence[TutorialInfo]) -> list[str]:
    """Copy the Sphinx sources into ``dest`` and write one notebook page per tutorial."""
    import nbformat

    shutil.copytree(docs, dest, ignore=shutil.ignore_patterns("_build", "generated", "tutorials"))
    pages = dest / PAGES_DIR
    pages.mkdir()
    names = []
    for t in tutorials:
        nbformat.write(tutorial_notebook(t.path, downloads=True), pages / f"{t.name}.ipynb")
        # The download targets: the script and a notebook without the download cell.
        shutil.copyfile(t.path, pages / t.path.name)
        downloads = pages / "_downloads"
        downloads.mkdir(exist_ok=True)
        nbformat.write(tutorial_notebook(t.path), downloads / f"{t.name}.ipynb")
        names.append(t.name)
    # A partial build (some tutorials only) keeps the index free of dangling links.
    index = dest / "index.md"
    if index.is_file():
        pattern = re.compile(PAGES_DIR + r"/(\d\d_[A-Za-z0-9_]+)\.ipynb")
        kept = [line for line in index.read_text(encoding="utf-8").splitlines()
                if all(m in names for m in pattern.findall(line))]
        index.write_text("\n".join(kept) + "\n", encoding="utf-8")
    (pages / "index.md").write_text(
        "# The tutorials\n\n```{toctree}\n:maxdepth: 1\n\n"
        + "".join(f"{n}\n" for n in names) + "```\n", encoding="utf-8")
    return names


def split_warnings(text: str) -> list[str]:
    """Sphinx's warnings and errors in its stderr, each with its continuation lines.

    Sphinx writes ``path:line: WARNING: message`` (or ``WARNING: message``); other
    processes' log lines (a kernel's ``[IPKernelApp] WARNING | ...``) are not Sphinx
    warnings and are left out.
    """
    entries: list[str] = []
    open_entry = False
    for line in text.splitlines():
        if _SPHINX_WARNING.search(line):
            entries.append(line)
            open_entry = True
        elif open_entry and line.startswith((" ", "\t")) and line.strip():
            entries[-1] += "\n" + line
        else:
            open_entry = False
    return entries


_SPHINX_WARNING = re.compile(r"(^|: )(WARNING|ERROR|CRITICAL|SEVERE): ")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _failure_detail(stderr: str, warnings: list[str]) -> str:
    """What a reader needs from a failed build: the tutorial's own error, else the warnings."""
    text = _ANSI.sub("", stderr)
    lines = text.splitlines()
    # A notebook that raised: nbclient's report names the cell and ends with the exception.
    for marker in ("ClaimFailed", "CellExecutionError"):
        hits = [i for i, line in enumerate(lines) if marker in line]
        if hits:
            start = max(0, hits[-1] - 2) if marker == "ClaimFailed" else hits[0]
            return "\n".join(lines[start:start + 30])
    return "\n".join(warnings[-20:]) or text[-4000:]


def build_book(
    out: str | os.PathLike,
    *,
    quick: bool = False,
    run: bool = True,
    strict: bool = False,
    tutorials: Sequence[TutorialInfo] | None = None,
    jobs: int | str = "auto",
    timeout: int = 1800,
) -> BookBuild:
    """Build the course book into ``out`` and return what was built.

    Parameters
    ----------
    out : path
        Output folder (created; an earlier book there is replaced).
    quick : bool
        Run each tutorial in its quick setting.
    run : bool
        Execute the notebooks (``False`` renders the code without outputs).
    strict : bool
        Sphinx warnings are errors.
    tutorials : list of TutorialInfo, optional
        Defaults to every tutorial in :func:`vitoolkit.course.catalog.tutorials_dir`.
    jobs : int or "auto"
        Sphinx parallel jobs (notebooks execute in parallel).
    timeout : int
        Seconds allowed per notebook.
    """
    missing = missing_modules()
    if missing:
        raise BookError("the book needs the docs extra: pip install -e '.[docs]' (missing: "
                        + ", ".join(missing) + ")")
    tutorials = list(find_tutorials(tutorials_dir()) if tutorials is None else tutorials)
    if not tutorials:
        raise BookError(f"no tutorials found in {tutorials_dir()}")
    out = Path(out).resolve()
    try:
        _check_out(out, "out")
    except OSError as err:
        raise BookError(f"{out_error(err, 'out')} (the output folder is not a directory "
                        "or not writable)") from None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vitoolkit-book-") as tmp:
        src = Path(tmp) / "src"
        pages = _stage(docs_dir(), src, tutorials)
        html = Path(tmp) / "html"
        # The kernels use Jupyter's inline backend, as a student's would.
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        env = {**env, "VITOOLKIT_QUICK": "1" if quick else "0",
               "VITOOLKIT_BOOK_RUN": "1" if run else "0",
               "VITOOLKIT_BOOK_TIMEOUT": str(int(timeout)),
               "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-T", "-j", str(jobs),
               "-d", str(Path(tmp) / "doctrees"), str(src), str(html)]
        if strict:
            cmd += ["-W", "--keep-going"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
        warnings = split_warnings(proc.stderr)
        if proc.returncode != 0:
            raise BookError(f"sphinx-build failed (exit {proc.returncode}):\n"
                            + _failure_detail(proc.stderr, warnings))
        summaries = {}
        for name in pages:
            summary = src / PAGES_DIR / "results" / name / "summary.json"
            if summary.is_file():
                summaries[name] = json.loads(summary.read_text(encoding="utf-8"))
        _replace_folder(html, out)
    return BookBuild(out=out, pages=pages, seconds=time.perf_counter() - start, warnings=warnings,
                     summaries=summaries)


def _check_out(out: Path, name: str) -> None:
    """``out`` can be replaced by a book: a writable folder (created) whose parent is writable.

    A non-empty folder is replaced only if it holds a book built earlier (Sphinx's
    ``.buildinfo``): ``--out .`` must not delete the files of the current folder.
    """
    check_output_dir(out, name)
    check_output_dir(out.resolve().parent, f"{name}'s parent")
    if any(out.iterdir()) and not (out / ".buildinfo").is_file():
        raise FileExistsError(errno.EEXIST, f"{name} is a non-empty folder that holds no book "
                              "built earlier; refusing to replace it", str(out))


def _replace_folder(source: Path, out: Path) -> None:
    """Put a copy of ``source`` at ``out``, never leaving a half-copied ``out``.

    The copy is made beside ``out`` under a name carrying this process's id, then
    swapped in by two renames; copies left by killed builds are removed first.
    """
    prefix = f".{out.name}."
    for entry in out.parent.glob(prefix + "*.tmp"):
        pid = entry.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
    new = out.with_name(f"{prefix}{os.getpid()}.new.tmp")
    old = out.with_name(f"{prefix}{os.getpid()}.old.tmp")
    shutil.rmtree(new, ignore_errors=True)
    try:
        shutil.copytree(source, new)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if out.exists():
        os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)


def add_arguments(parser) -> None:
    """The ``vitoolkit book`` options."""
    parser.add_argument("--out", default="book", help="output folder (default: book)")
    parser.add_argument("--quick", action="store_true", help="run the tutorials' small setting")
    parser.add_argument("--no-run", dest="run", action="store_false",
                        help="render the tutorials without executing them")
    parser.add_argument("--strict", action="store_true", help="Sphinx warnings are errors")
    parser.add_argument("--jobs", default="auto", type=_jobs_type,
                        help="parallel Sphinx jobs, an integer >= 1 or 'auto' (default: auto)")


def _jobs_type(text: str):
    if text == "auto":
        return text
    try:
        return positive_int_type(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{err} or 'auto'") from None


def run(args) -> int:
    """Entry point of ``vitoolkit book``."""
    try:  # before any tutorial runs: the folder the book will replace must be writable
        _check_out(Path(args.out).resolve(), "--out")
    except OSError as err:
        print(f"vitoolkit book: error: {out_error(err)}", file=sys.stderr)
        return 2
    try:
        result = build_book(args.out, quick=args.quick, run=args.run, strict=args.strict,
                            jobs=args.jobs)
    except BookError as err:
        print(f"vitoolkit book: {err}", file=sys.stderr)
        return 1
    for w in result.warnings:
        print(w, file=sys.stderr)
    print(f"built {len(result.pages)} tutorial pages in {result.seconds:.1f} s: {result.index}")
    return 0
