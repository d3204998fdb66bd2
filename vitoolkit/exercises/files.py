"""Exercise files: load a student's function from a script or a notebook (stubs are written by
:mod:`vitoolkit.exercises.stubs`).

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

from ..fileio import check_output_dir

__all__ = ["ExerciseFileError", "CHECK_TAG", "MAX_FILE_BYTES", "load_function",
           "notebook_source",
           "check_submission_path"]

#: Tag of the notebook cell that calls ``check``; :func:`load_function` skips it.
CHECK_TAG = "vitoolkit-check"
_MODULE_NAME = "__vitoolkit_exercise__"


class ExerciseFileError(Exception):
    """A stub could not be written, or a student's file could not be loaded."""


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


#: Largest submission file read (bytes); a larger one is refused before it is read.
MAX_FILE_BYTES = 10 * 2**20


def check_submission_path(path) -> Path:
    """``path`` as a :class:`~pathlib.Path` to an existing ``.py`` or ``.ipynb`` file of at most 10 MB.

    Raises ``TypeError`` for a non-path and :class:`ExerciseFileError` otherwise;
    a notebook's structure is checked too (:func:`notebook_source`).
    """
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise ExerciseFileError(f"no such file: {path}")
    if path.suffix not in (".py", ".ipynb"):
        raise ExerciseFileError(f"{path}: expected a .py script or an .ipynb notebook")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ExerciseFileError(f"{path} is {size / 2**20:.1f} MB; a submission may be at most "
                                f"{MAX_FILE_BYTES / 2**20:.0f} MB (clear the notebook's outputs?)")
    if path.suffix == ".ipynb":
        notebook_source(path)
    return path


def _read_capped(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ExerciseFileError(f"{path} is not a readable notebook: {err.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ExerciseFileError(f"{path} is larger than {MAX_FILE_BYTES / 2**20:.0f} MB; a submission may be "
                                "at most that (clear the notebook's outputs?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ExerciseFileError(
            f"{path} is not a readable notebook: not UTF-8 text (byte {err.start})") from None


def _cell_error(path: Path, index: int, problem: str) -> ExerciseFileError:
    return ExerciseFileError(f"{path}: cell {index} {problem}")


def notebook_source(path) -> list[str]:
    """The source of each code cell to run: magics skipped, ``vitoolkit-check`` cells left out.

    The notebook is read only when it is at most 10 MB, and its structure is
    checked (a JSON object with a list of cells, each an object whose
    ``cell_type`` is a string and whose ``source`` is a string or a list of
    strings); any problem is one :class:`ExerciseFileError` line naming the file
    and the cell.
    """
    path = Path(path)
    text = _read_capped(path)
    try:
        nb = json.loads(text)
    except ValueError as err:
        raise ExerciseFileError(f"{path} is not a readable notebook: invalid JSON ({err})") from None
    except RecursionError:
        raise ExerciseFileError(f"{path} is not a readable notebook: its JSON is nested too deeply") from None
    if not isinstance(nb, dict):
        raise ExerciseFileError(f"{path} is not a notebook: its JSON is a {type(nb).__name__}, not an object")
    cells_value = nb.get("cells", [])
    if not isinstance(cells_value, list):
        raise ExerciseFileError(f"{path} is not a notebook: 'cells' is a {type(cells_value).__name__}, "
                                "not a list")
    cells = []
    for i, cell in enumerate(cells_value, 1):
        if not isinstance(cell, dict):
            raise _cell_error(path, i, f"is a {type(cell).__name__}, not an object")
        kind = cell.get("cell_type")
        if not isinstance(kind, str):
            raise _cell_error(path, i, f"has no valid 'cell_type' (got {type(kind).__name__})")
        if kind != "code":
            continue
        metadata = cell.get("metadata", {})
        if not isinstance(metadata, dict):
            raise _cell_error(path, i, f"has 'metadata' of type {type(metadata).__name__}, not an object")
        tags = metadata.get("tags") or []
        if not isinstance(tags, list):
            raise _cell_error(path, i, f"has 'tags' of type {type(tags).__name__}, not a list")
        if CHECK_TAG in tags:
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise _cell_error(path, i, "has a 'source' that is neither a string nor a list of strings")
        cells.append(_strip_magics(source))
    return cells


def _student_error(path: Path, err: BaseException) -> ExerciseFileError:
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if f.filename.startswith(("<cell", str(path)))]
    where = f" (line {frames[-1].lineno} of {frames[-1].filename})" if frames else ""
    text = str(err).strip().splitlines()
    return ExerciseFileError(f"running {path} failed{where}: {type(err).__name__}"
                             + (f": {text[0][:200]}" if text else ""))


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
    path = check_submission_path(path)
    if path.suffix == ".py":
        try:
            namespace = runpy.run_path(str(path), run_name=_MODULE_NAME)
        except SystemExit as err:
            raise ExerciseFileError(f"running {path} called exit({err.code})") from None
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # noqa: BLE001 - the student's code
            raise _student_error(path, err) from None
    else:
        namespace = {"__name__": _MODULE_NAME, "__file__": str(path)}
        for i, source in enumerate(notebook_source(path), 1):
            try:
                code = compile(source, f"<cell {i} of {path.name}>", "exec")
                exec(code, namespace)  # noqa: S102 - running the student's notebook is the point
            except SystemExit as err:
                raise ExerciseFileError(f"code cell {i} of {path} called exit({err.code})") from None
            except KeyboardInterrupt:
                raise
            except BaseException as err:  # noqa: BLE001
                raise _student_error(path, err) from None
    fn = namespace.get(name)
    if not callable(fn):
        defined = sorted(k for k, v in namespace.items()
                         if callable(v) and not k.startswith("_") and getattr(v, "__module__", None)
                         in (_MODULE_NAME, None))
        found = f"; it defines: {', '.join(defined)}" if defined else ""
        raise ExerciseFileError(f"{path} defines no function named {name!r}{found}")
    return fn
