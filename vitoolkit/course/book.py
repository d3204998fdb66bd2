"""The course book: the tutorials as executed notebooks, built by one command.

``vitoolkit book --out DIR [--quick]`` (or :func:`build_book`) builds an HTML site
with Sphinx, MyST-NB and sphinx-book-theme (the engine and the theme of Jupyter Book)
from the tutorials' full-size runs; ``--quick`` builds from their small runs (as the
tests do) and marks every page as the quick setting. Each
``tutorials/NN_name.py`` (jupytext's percent format) becomes a Jupyter notebook
(:func:`tutorial_notebook`), executed in a fresh ``python3`` kernel once per
change (:mod:`vitoolkit.course.notebooks` keeps executed notebooks in a cache), and
MyST-NB renders the executed notebook as the page: the narrative (MyST Markdown with
``$...$`` math), the code, the printed numbers, the figures shown inline and the
claims as callouts are exactly what a student sees when running the notebook.
Each page offers the script and the notebook for download; new tutorials join
automatically. Math is rendered by a MathJax shipped in a Python package
(``sphinx-mathjax-offline``), so the book needs no network.

A claim that does not hold, or any error in a tutorial, stops the build: the
kernel's exception (``ClaimFailed`` with the statement) is reported. An existing
output folder is replaced only when it holds an earlier book and nothing else.
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
from .notebooks import Execution, NotebookError, download_cell, execute_many, tutorial_notebook

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
    "nbclient": "nbclient",
    "sphinx-mathjax-offline": "sphinx-mathjax-offline",
    "sphinx_book_theme": "sphinx-book-theme",
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
    #: Each tutorial's notebook execution (``cached`` tells whether it ran), by name.
    executed: dict[str, Execution] = field(default_factory=dict)

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


def _stage(docs: Path, dest: Path, tutorials: Sequence[TutorialInfo],
           executed: dict[str, Execution] | None) -> list[str]:
    """Copy the Sphinx sources into ``dest`` and write one notebook page per tutorial.

    A page is the executed notebook when ``executed`` has it (with the download
    links as its second cell), else the notebook without outputs.
    """
    import nbformat

    shutil.copytree(docs, dest, ignore=shutil.ignore_patterns("_build", "generated", "tutorials"))
    pages = dest / PAGES_DIR
    pages.mkdir()
    names = []
    for t in tutorials:
        if executed is not None:
            nb = executed[t.name].notebook()
            nb.cells.insert(1, download_cell(t.path))
        else:
            nb = tutorial_notebook(t.path, downloads=True)
        nbformat.write(nb, pages / f"{t.name}.ipynb")
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
    if index.is_file() and re.search(r"^exercises$", index.read_text(encoding="utf-8"), re.M):
        (dest / "exercises.md").write_text(exercises_page(names), encoding="utf-8")
    return names


def exercises_page(lessons: Sequence[str]) -> str:
    """The book's exercises page (MyST): every autograded exercise, its lesson and the commands.

    Written from the exercise registry at each build, so the page lists exactly the
    exercises ``vitoolkit exercise list`` shows; a lesson not in the book is named
    without a link.
    """
    from ..exercises import get_exercise, list_exercises

    rows = []
    for name in list_exercises():
        ex = get_exercise(name)
        lesson = (f"[{ex.lesson}]({PAGES_DIR}/{ex.lesson}.ipynb)" if ex.lesson in lessons
                  else ex.lesson)
        rows.append(f"| `{ex.name}` | {lesson} | {ex.title.replace('|', '&#124;')} |")
    return "\n".join([
        "# Exercises",
        "",
        "Each lesson ends with an exercise: a function to write, graded by the toolkit on fresh",
        "random cases and edge cases against its own implementation, with a diagnosis of the",
        "probable mistake when a check fails (never the answer). Your code runs in a separate",
        "process with a time limit.",
        "",
        "```bash",
        "vitoolkit exercise start NAME            # a stub: the signature, the maths, the source",
        "vitoolkit exercise check NAME my_file.py # grade it (a .py or .ipynb)",
        "```",
        "",
        "| exercise | lesson | what you write |",
        "| --- | --- | --- |",
        *rows,
        "",
    ])


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


def build_book(
    out: str | os.PathLike,
    *,
    quick: bool = False,
    run: bool = True,
    strict: bool = False,
    tutorials: Sequence[TutorialInfo] | None = None,
    jobs: int | str = "auto",
    timeout: int = 1800,
    cache: bool = True,
    seed: int = 0,
    report=None,
) -> BookBuild:
    """Build the course book into ``out`` and return what was built.

    The tutorials are executed as notebooks first (:mod:`vitoolkit.course.notebooks`:
    ``jobs`` kernels at a time, each reused from the cache when its inputs are
    unchanged), then Sphinx renders the executed notebooks without running anything.

    Parameters
    ----------
    out : path
        Output folder (created; an earlier book there is replaced).
    quick : bool
        Run each tutorial in its quick setting (for tests; every page then carries a
        banner saying so). The default builds the published book from full-size runs.
    run : bool
        Execute the notebooks (``False`` renders the code without outputs).
    strict : bool
        Sphinx warnings are errors.
    tutorials : list of TutorialInfo, optional
        Defaults to every tutorial in :func:`vitoolkit.course.catalog.tutorials_dir`.
    jobs : int or "auto"
        Notebooks executed at a time and Sphinx's parallel jobs ("auto": the CPU count).
    timeout : int
        Seconds allowed per notebook cell.
    cache : bool
        Reuse executed notebooks whose tutorial, setting, seed and package are unchanged.
    seed : int
        The seed of every tutorial's run.
    report : callable(Execution, done, total), optional
        Called as each notebook finishes executing (``vitoolkit book`` prints a line).
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
    n_jobs = (os.cpu_count() or 1) if jobs == "auto" else int(jobs)
    executed = None
    if run:
        try:
            executed = execute_many(tutorials, quick=quick, seed=seed, jobs=n_jobs, cache=cache,
                                    timeout=timeout, report=report)
        except NotebookError as err:
            raise BookError(str(err)) from None
        failed = [e for e in executed.values() if not e.ok]
        if failed:
            raise BookError("\n".join(f"tutorial {e} failed: {e.error}\n  (the executed notebook: "
                                      f"{e.notebook_path})" for e in failed))
    with tempfile.TemporaryDirectory(prefix="vitoolkit-book-") as tmp:
        src = Path(tmp) / "src"
        try:
            pages = _stage(docs_dir(), src, tutorials, executed)
        except NotebookError as err:
            raise BookError(str(err)) from None
        html = Path(tmp) / "html"
        cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-T", "-j", str(n_jobs),
               "-d", str(Path(tmp) / "doctrees"), str(src), str(html)]
        if strict:
            cmd += ["-W", "--keep-going"]
        # A quick build says so on every page (docs/conf.py reads the setting).
        env = dict(os.environ, VITOOLKIT_BOOK_SETTING=("quick" if quick else "full") if run else "code")
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env)
        warnings = split_warnings(proc.stderr)
        if proc.returncode != 0:
            raise BookError(f"sphinx-build failed (exit {proc.returncode}):\n"
                            + ("\n".join(warnings[-20:]) or proc.stderr[-4000:]))
        _write_manifest(html)
        _replace_folder(html, out)
    summaries = {}
    for name, e in (executed or {}).items():
        summary = e.out / "summary.json"
        if summary.is_file():
            summaries[name] = json.loads(summary.read_text(encoding="utf-8"))
    return BookBuild(out=out, pages=pages, seconds=time.perf_counter() - start, warnings=warnings,
                     summaries=summaries, executed=executed or {})


#: The list of a book's own files, written into the book (see :func:`_check_out`).
MANIFEST = ".vitoolkit-book"


def _write_manifest(html: Path) -> None:
    files = sorted(str(p.relative_to(html)) for p in html.rglob("*") if p.is_file())
    (html / MANIFEST).write_text("\n".join(files + [MANIFEST]) + "\n", encoding="utf-8")


def _check_out(out: Path, name: str) -> None:
    """``out`` can be replaced by a book: a writable folder (created) whose parent is writable.

    A non-empty folder is replaced only if it holds a book built earlier and nothing
    else: every file in it is listed in that book's manifest (``.vitoolkit-book``).
    ``--out .`` must not delete the current folder's files, nor a file a user saved
    beside an old book.
    """
    check_output_dir(out, name)
    check_output_dir(out.resolve().parent, f"{name}'s parent")
    if not any(out.iterdir()):
        return
    manifest = out / MANIFEST
    if not manifest.is_file():
        raise FileExistsError(errno.EEXIST, f"{name} is a non-empty folder that holds no book "
                              "built earlier; refusing to replace it", str(out))
    known = set(manifest.read_text(encoding="utf-8").splitlines())
    foreign = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                     if p.is_file() and str(p.relative_to(out)) not in known)
    if foreign:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FileExistsError(errno.EEXIST, f"{name} holds an earlier book and files that are not "
                              f"part of it ({listed}); move them or choose another folder", str(out))


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
                        help="notebooks executed at a time and parallel Sphinx jobs, an integer >= 1 "
                        "or 'auto' (the CPU count; the default)")
    parser.add_argument("--seed", default=0, type=int, help="the tutorials' seed (default: 0)")
    parser.add_argument("--no-cache", dest="cache", action="store_false",
                        help="execute every notebook even if an unchanged copy is cached")


def _jobs_type(text: str):
    if text == "auto":
        return text
    try:
        return positive_int_type(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{err} or 'auto'") from None


def _progress_printer(start: float):
    """The report ``build_book`` calls as each notebook finishes: its time and the time so far."""

    def report(e: Execution, done: int, total: int) -> None:
        how = "from the cache" if e.cached else f"executed in {e.seconds:.0f} s"
        state = "ok" if e.ok else f"FAILED: {e.error}"
        print(f"[{done}/{total}] {e.name}: {how}, {state} ({time.perf_counter() - start:.0f} s so far)",
              flush=True)

    return report


def run(args) -> int:
    """Entry point of ``vitoolkit book``."""
    try:  # before any tutorial runs: the folder the book will replace must be writable
        _check_out(Path(args.out).resolve(), "--out")
    except OSError as err:
        print(f"vitoolkit book: error: {out_error(err)}", file=sys.stderr)
        return 2
    if args.run:  # the first notebook may take minutes: say what is happening
        print(f"executing the tutorials as notebooks ({'quick' if args.quick else 'full'} setting, "
              f"seed {args.seed}; unchanged ones come from the cache) ...", flush=True)
    try:
        result = build_book(args.out, quick=args.quick, run=args.run, strict=args.strict,
                            jobs=args.jobs, cache=args.cache, seed=args.seed,
                            report=_progress_printer(time.perf_counter()))
    except BookError as err:
        print(f"vitoolkit book: {err}", file=sys.stderr)
        return 1
    for w in result.warnings:
        print(w, file=sys.stderr)
    how = (f"{'quick' if args.quick else 'full-size'} runs, seed {args.seed}" if args.run
           else "code only, not run")
    print(f"built {len(result.pages)} tutorial pages ({how}) in {result.seconds:.1f} s: {result.index}")
    return 0
