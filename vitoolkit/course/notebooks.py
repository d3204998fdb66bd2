"""Each tutorial executed as a notebook once: the run the book shows and the tests check.

A tutorial script (jupytext's percent format) becomes a Jupyter notebook
(:func:`tutorial_notebook`) and runs in a fresh ``python3`` kernel with Jupyter's
inline backend, as a student's would (:func:`execute`). The executed notebook, its
figures and its ``summary.json`` are kept in a cache keyed by everything that can
change what the notebook shows: the tutorial's source, the setting (quick or full)
and seed, the source of the whole ``vitoolkit`` package and the versions of Python,
NumPy, PyTorch and matplotlib. So ``vitoolkit book`` rebuilt with unchanged
tutorials executes nothing, and the book the test suite checks is made from the very
notebooks its notebook tests executed.

Only runs that succeed are cached; a failed run is left beside the cache (``*.failed``)
for inspection and runs again next time. The cache lives in ``$VITOOLKIT_CACHE``, else
``$XDG_CACHE_HOME/vitoolkit``, else ``~/.cache/vitoolkit``; delete the folder to empty it.
Entries are written under a file lock and moved into place by one rename, so parallel
builds (threads, or pytest-xdist workers) share them safely.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .catalog import TutorialInfo

__all__ = ["Execution", "NotebookError", "cache_dir", "execute", "execute_many", "tutorial_notebook"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: Seconds a notebook may run (a full-size lesson on a loaded 2-core machine included).
DEFAULT_TIMEOUT = 1800


#: ast.parse (here and inside jupytext) is not thread-safe in CPython 3.11 ("AST constructor
#: recursion depth mismatch"): notebooks are converted one at a time.
_CONVERT_LOCK = threading.Lock()


class NotebookError(RuntimeError):
    """A tutorial could not be turned into a notebook (no header docstring)."""


@dataclass
class Execution:
    """One execution of a tutorial as a notebook (or its cached copy)."""

    name: str
    quick: bool
    seed: int
    #: The run's folder: ``NAME.ipynb`` (executed), ``summary.json`` and the figures.
    out: Path
    ok: bool
    #: The failing cell's exception, one paragraph (``ClaimFailed: <statement>``); "" when ok.
    error: str
    #: Everything the cells printed, tracebacks included (ANSI colours removed).
    output: str
    seconds: float
    cached: bool

    @property
    def notebook_path(self) -> Path:
        return self.out / f"{self.name}.ipynb"

    def notebook(self):
        """The executed notebook (an ``nbformat`` node)."""
        import nbformat

        return nbformat.read(self.notebook_path, as_version=4)

    def __str__(self) -> str:
        return f"{self.name} ({'quick' if self.quick else 'full'}, seed {self.seed})"


def tutorial_notebook(path: str | os.PathLike, *, downloads: bool = False):
    """The Jupyter notebook a tutorial script becomes (an ``nbformat`` node).

    jupytext reads the percent format as it is: the opening Markdown cell (the title
    and the course question, :func:`~vitoolkit.course.catalog.header_markdown`) is
    the notebook's first cell. With ``downloads=True`` a second Markdown cell links
    the script and the notebook for download (the book's pages; the downloadable
    notebook has none). Cell tags (``hide-input`` on the cells that check the
    lesson's claims) are kept; other cell metadata is dropped.
    """
    import jupytext

    from .catalog import header_markdown

    path = Path(path)
    source = path.read_text(encoding="utf-8")
    if header_markdown(source) is None:
        raise NotebookError(f"{path}: a tutorial starts with a Markdown cell (# %% [markdown]) "
                            "holding its title and question")
    with _CONVERT_LOCK:
        nb = jupytext.reads(source, fmt="py:percent")
    if downloads:
        nb.cells.insert(1, download_cell(path))
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for cell in nb.cells:
        tags = list(cell.metadata.get("tags", []))
        cell.metadata = {"tags": tags} if tags else {}
    return nb


def download_cell(path: Path):
    """The Markdown cell linking a book page's script and notebook for download."""
    import nbformat

    return nbformat.v4.new_markdown_cell(
        f"Download this lesson: {{download}}`the script <{path.name}>` (run it with "
        f"`python {path.name}`) or {{download}}`the notebook <_downloads/{path.stem}.ipynb>` "
        "(open it in Jupyter; every figure shows when its cell runs)."
    )


# -- the cache -----------------------------------------------------------------------

def cache_dir() -> Path:
    """Where executed notebooks are kept (see the module docstring)."""
    env = os.environ.get("VITOOLKIT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vitoolkit"


@lru_cache(maxsize=1)
def _environment_digest() -> str:
    """A hash of the package's source and the versions that change what a lesson prints."""
    import matplotlib
    import numpy
    import torch

    import vitoolkit

    h = hashlib.sha256()
    root = Path(vitoolkit.__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    for part in (sys.version, platform.machine(), numpy.__version__, torch.__version__,
                 matplotlib.__version__):
        h.update(part.encode())
    return h.hexdigest()


def _key(path: Path, quick: bool, seed: int) -> str:
    h = hashlib.sha256()
    h.update(path.read_bytes())
    h.update(f"quick={quick};seed={seed};".encode())
    h.update(_environment_digest().encode())
    return h.hexdigest()[:20]


# -- execution -----------------------------------------------------------------------

def _kernel_env(out: Path, quick: bool, seed: int) -> dict:
    # Jupyter's inline backend, as a student's kernel has; the settings by environment.
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND" and not k.startswith("VITOOLKIT_")}
    env.update({"VITOOLKIT_OUT": str(out), "VITOOLKIT_SEED": str(seed),
                "VITOOLKIT_QUICK": "1" if quick else "0", "JUPYTER_PLATFORM_DIRS": "1",
                "PYDEVD_DISABLE_FILE_VALIDATION": "1", "PYTHONUNBUFFERED": "1"})
    return env


def output_text(nb) -> str:
    """Everything the notebook's cells printed, and their tracebacks (ANSI colours removed)."""
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                parts.append(o.get("text", ""))
            elif o.get("output_type") == "error":
                parts.append(_ANSI.sub("", "\n".join(o.get("traceback", []))) + "\n")
    return "".join(parts)


def _error_summary(nb) -> str:
    """The first error output of the notebook as ``Name: value`` (a claim's statement included)."""
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                return _ANSI.sub("", f"{o.get('ename', 'Error')}: {o.get('evalue', '')}")
    return ""


def _run(path: Path, name: str, quick: bool, seed: int, out: Path, timeout: int):
    """Execute the notebook into ``out`` in this process; returns (ok, notebook)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = tutorial_notebook(path)
    client = NotebookClient(nb, timeout=timeout, startup_timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(out)}},
                            # the kernel's start-up notices are not the lesson's output
                            extra_arguments=["--Application.log_level=ERROR"])
    ok = True
    with warnings.catch_warnings():
        # The Jupyter machinery's own deprecations are not the lesson's business.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        with client.setup_kernel(env=_kernel_env(out, quick, seed)):
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            except CellExecutionError:
                ok = False
            if ok:
                # Which backend is in effect once the lesson ran (a lesson must not switch a
                # student's notebook away from inline figures): asked of the kernel in a cell
                # that is not part of the notebook, kept in its metadata.
                probe = nbformat.v4.new_code_cell("import matplotlib; print(matplotlib.get_backend())")
                nb.cells.append(probe)
                try:
                    client.execute_cell(probe, len(nb.cells) - 1)
                finally:
                    nb.cells.pop()
                backend = "".join(o.get("text", "") for o in probe.get("outputs", [])).strip()
                nb.metadata["vitoolkit"] = {"backend_after_run": backend}
    nb.metadata.setdefault("vitoolkit", {}).update({"quick": quick, "seed": seed})
    nbformat.write(nb, out / f"{name}.ipynb")
    return ok, nb


def execute(path: str | os.PathLike, *, quick: bool = True, seed: int = 0, cache: bool = True,
            timeout: int = DEFAULT_TIMEOUT, name: str | None = None,
            root: str | os.PathLike | None = None) -> Execution:
    """Execute one tutorial as a notebook, or return its cached execution.

    Parameters
    ----------
    path : path of the tutorial script.
    quick, seed : the setting and seed (``VITOOLKIT_QUICK``, ``VITOOLKIT_SEED`` in the kernel).
    cache : bool
        Reuse a cached successful execution (``False`` always executes; either way a
        successful run becomes the cached one).
    timeout : int
        Seconds allowed per cell.
    name : str, optional
        The tutorial's name (default: the file's stem).
    root : path, optional
        The cache folder (default: :func:`cache_dir`, read when called).
    """
    from filelock import FileLock

    path = Path(path)
    name = name or path.stem
    seed = int(seed)
    root = Path(root if root is not None else cache_dir()) / "notebooks"
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"{name}-{'quick' if quick else 'full'}-seed{seed}-{_key(path, quick, seed)}"
    with FileLock(str(entry) + ".lock"):
        if cache and (entry / f"{name}.ipynb").is_file():
            import nbformat

            nb = nbformat.read(entry / f"{name}.ipynb", as_version=4)
            return Execution(name, quick, seed, entry, True, "", output_text(nb), 0.0, True)
        work = entry.with_name(f"{entry.name}.{os.getpid()}.{threading.get_ident()}.partial")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        start = time.perf_counter()
        # In a process of its own: the Jupyter client's event loops, sockets and threads
        # never touch the caller's process (a test session, a book build's threads).
        cmd = [sys.executable, "-m", "vitoolkit.course.notebooks", str(path), str(work), "--name", name,
               "--seed", str(seed), "--timeout", str(int(timeout))] + (["--quick"] if quick else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        nb_path = work / f"{name}.ipynb"
        if nb_path.is_file():
            import nbformat

            nb = nbformat.read(nb_path, as_version=4)
            ok, error, output = proc.returncode == 0, _error_summary(nb), output_text(nb)
        else:  # the kernel or the client died before the notebook was written
            ok, error, output = False, (proc.stderr.strip().splitlines() or ["no output"])[-1], proc.stderr
        if not ok and not error:
            error = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        target = entry if ok else entry.with_name(entry.name + ".failed")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)
        return Execution(name, quick, seed, target, ok, error, output, seconds, False)


def execute_many(tutorials: Sequence[TutorialInfo], *, quick: bool = True, seed: int = 0,
                 jobs: int = 2, cache: bool = True, timeout: int = DEFAULT_TIMEOUT,
                 report: Callable[[Execution, int, int], None] | None = None,
                 root: str | os.PathLike | None = None) -> dict[str, Execution]:
    """Execute several tutorials, ``jobs`` kernels at a time; ``report`` hears of each as it finishes.

    Returns the executions by tutorial name, in the order given. The cache folder
    (``root``, default :func:`cache_dir`) is fixed when the call starts.
    """
    done: dict[str, Execution] = {}
    root = Path(root if root is not None else cache_dir())
    with ThreadPoolExecutor(max(1, int(jobs)), thread_name_prefix="notebook") as pool:
        futures = {pool.submit(execute, t.path, quick=quick, seed=seed, cache=cache, timeout=timeout,
                               name=t.name, root=root): t.name for t in tutorials}
        for future in as_completed(futures):
            run = future.result()
            done[run.name] = run
            if report is not None:
                report(run, len(done), len(futures))
    return {t.name: done[t.name] for t in tutorials}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vitoolkit.course.notebooks PATH OUT [--quick] [--seed S]``: one execution.

    Writes ``OUT/NAME.ipynb``; exits 0 when every cell ran, 1 when one raised.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vitoolkit.course.notebooks")
    parser.add_argument("path", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--name")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT)
    args = parser.parse_args(argv)
    ok, _nb = _run(args.path, args.name or args.path.stem, args.quick, args.seed, args.out, args.timeout)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
