"""Write an exercise's stub as a script or a notebook (``vitoolkit exercise start``).

Above both :mod:`vitoolkit.exercises.registry` (the exercise and its stub source) and
:mod:`vitoolkit.exercises.files` (the file format), so neither imports the other for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..fileio import write_text
from ..validation import check_bool, check_choice
from .files import CHECK_TAG, ExerciseFileError, _writable
from .registry import get_exercise, stub

__all__ = ["write_stub"]


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
