"""Exercise files: write a stub as a script or a notebook, and load a student's function from one.

:func:`load_function` RUNS THE STUDENT'S CODE: a ``.py`` file is executed as a
script (``runpy``, under a module name other than ``"__main__"``, so an
``if __name__ == "__main__":`` block does not run), and a notebook's code cells are
executed in order in one fresh namespace. Only the cells are run, not a kernel:
IPython magics (lines starting with ``%`` or ``!``) are skipped, and cells tagged
``vitoolkit-check`` (the stub's "check my answer" cell) are left out. Load only
files you would run yourself.
"""

from __future__ import annotations

import json
import os
import runpy
import traceback
from collections.abc import Callable
from pathlib import Path

from ..fileio import check_output_dir, write_text
from ..validation import check_bool, check_choice
from .registry import get_exercise, stub

__all__ = ["ExerciseFileError", "CHECK_TAG", "write_stub", "load_function", "notebook_source"]

#: Tag of the notebook cell that calls ``check``; :func:`load_function` skips it.
CHECK_TAG = "vitoolkit-check"
_MODULE_NAME = "__vitoolkit_exercise__"


class ExerciseFileError(Exception):
    """A stub could not be written, or a student's file could not be loaded."""


def _check_call(name: str) -> str:
    return f'from vitoolkit.exercises import check\n\ncheck("{name}", {name})'


def write_stub(name: str, out_dir=".", *, fmt: str = "py", force: bool = False) -> Path:
    """Write the stub of exercise ``name`` into ``out_dir`` as ``NAME.py`` or ``NAME.ipynb``.

    The script ends with an ``if __name__ == "__main__":`` block that grades it
    (``python NAME.py``, exit code 0 when every check passes); the notebook has
    a Markdown cell with the instructions, the stub, and a cell tagged
    ``vitoolkit-check`` that grades it. Writing a
    notebook needs ``nbformat`` (the ``docs`` extra). An existing file is not
    overwritten unless ``force``.
    """
    ex = get_exercise(name)
    fmt = check_choice(fmt, ("py", "ipynb"), "fmt")
    force = check_bool(force, "force")
    if isinstance(out_dir, bool) or not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path (str or os.PathLike), got {type(out_dir).__name__}")
    out_dir = Path(out_dir)
    path = out_dir / f"{name}.{fmt}"
    if path.exists() and not force:
        raise ExerciseFileError(f"{path} exists already; pass --force (force=True) to overwrite it")
    source = stub(name)
    if fmt == "py":
        text = (source + "\n\nif __name__ == \"__main__\":\n"
                "    from vitoolkit.exercises import check\n\n"
                f"    report = check(\"{name}\", {name})\n"
                "    print(report)\n"
                "    raise SystemExit(0 if report.passed else 1)\n")
        _writable(out_dir)
        write_text(path, text)
        return path
    try:
        import nbformat
        from nbformat import v4
    except ImportError:
        raise ExerciseFileError(
            "writing a notebook needs nbformat, which is not installed: pip install nbformat "
            "(or the docs extra, pip install 'vitoolkit[docs]'), or use --format py") from None
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        v4.new_markdown_cell(
            f"# Exercise `{name}` (lesson {ex.lesson})\n\n{ex.title[0].upper() + ex.title[1:]}.\n\n"
            "Write the function in the next cell (replace the `raise NotImplementedError` line), "
            "then run the last cell to grade it, or from a terminal:\n\n"
            f"```\nvitoolkit exercise check {name} {path.name}\n```"),
        v4.new_code_cell(source.rstrip("\n")),
        v4.new_code_cell(_check_call(name), metadata={"tags": [CHECK_TAG]}),
    ]
    _writable(out_dir)
    write_text(path, nbformat.writes(nb))
    return path


def _writable(out_dir: Path) -> None:
    try:
        check_output_dir(out_dir, "out_dir")
    except OSError as err:
        raise ExerciseFileError(f"{err.strerror}: {err.filename}") from None


def _strip_magics(source: str) -> str:
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        lines = lines[1:]  # a cell magic such as %%time: run the cell's code without it
    kept = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            kept.append(line[: len(line) - len(stripped)] + "pass  # IPython magic skipped")
        else:
            kept.append(line)
    return "\n".join(kept)


def notebook_source(path) -> list[str]:
    """The source of each code cell to run: magics skipped, ``vitoolkit-check`` cells left out."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExerciseFileError(f"{path} is not a readable notebook: {err}") from None
    cells = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        if CHECK_TAG in (cell.get("metadata", {}).get("tags") or []):
            continue
        source = cell.get("source", "")
        cells.append(_strip_magics("".join(source) if isinstance(source, list) else source))
    return cells


def _student_error(path: Path, err: BaseException) -> ExerciseFileError:
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if f.filename.startswith(("<cell", str(path)))]
    where = f" (line {frames[-1].lineno} of {frames[-1].filename})" if frames else ""
    return ExerciseFileError(f"running {path} failed{where}: {type(err).__name__}: {err}")


def load_function(path, name: str) -> Callable:
    """The function ``name`` defined by the file at ``path`` (a ``.py`` script or an ``.ipynb`` notebook).

    This runs the code in the file (see the module docstring): a script as
    ``runpy.run_path`` does, a notebook cell by cell in one fresh namespace.

    Raises
    ------
    ExerciseFileError
        The file is missing or of another type, its code raised, or it defines
        no callable ``name`` (the message lists the functions it does define).
    """
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a path (str or os.PathLike), got {type(path).__name__}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python function name, got {name!r}")
    path = Path(path)
    if not path.is_file():
        raise ExerciseFileError(f"no such file: {path}")
    if path.suffix == ".py":
        try:
            namespace = runpy.run_path(str(path), run_name=_MODULE_NAME)
        except Exception as err:  # noqa: BLE001 - the student's code
            raise _student_error(path, err) from None
        except SystemExit as err:
            raise ExerciseFileError(f"running {path} called exit({err.code})") from None
    elif path.suffix == ".ipynb":
        namespace = {"__name__": _MODULE_NAME, "__file__": str(path)}
        for i, source in enumerate(notebook_source(path), 1):
            try:
                code = compile(source, f"<cell {i} of {path.name}>", "exec")
                exec(code, namespace)  # noqa: S102 - running the student's notebook is the point
            except Exception as err:  # noqa: BLE001
                raise _student_error(path, err) from None
            except SystemExit as err:
                raise ExerciseFileError(f"code cell {i} of {path} called exit({err.code})") from None
    else:
        raise ExerciseFileError(f"{path}: expected a .py script or an .ipynb notebook")
    fn = namespace.get(name)
    if not callable(fn):
        defined = sorted(k for k, v in namespace.items()
                         if callable(v) and not k.startswith("_") and getattr(v, "__module__", None)
                         in (_MODULE_NAME, None))
        found = f"; it defines: {', '.join(defined)}" if defined else ""
        raise ExerciseFileError(f"{path} defines no function named {name!r}{found}")
    return fn
