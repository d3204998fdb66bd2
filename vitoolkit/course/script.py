"""Run a tutorial script cell by cell, announcing each section as the run reaches it.

``python -m vitoolkit.course.script PATH [ARGS...]`` runs ``PATH`` as ``python PATH
ARGS...`` would (same ``__main__`` module, ``sys.argv``, ``sys.path[0]``, exit status),
one jupytext percent cell (``# %%``) at a time: before a Markdown cell's section is
taught, its headings (``# ## Title``, level 2 and deeper, a subsection indented;
the title cell is the lesson's name) print as ``[section] Title``. Each code cell is compiled with the
script's real file name and line numbers, so a traceback points into the script.
``vitoolkit run`` starts each tutorial this way and shows the sections as progress
(:mod:`vitoolkit.course.cli`).
"""

from __future__ import annotations
import __future__

import os
import sys
import traceback
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SECTION", "Cell", "headings", "percent_cells", "run_script"]

#: The start of the line announcing a section.
SECTION = "[section]"
_FUTURE_FLAGS = 0
for _name in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _name).compiler_flag


@dataclass(frozen=True)
class Cell:
    """One percent-format cell: ``"code"`` or ``"markdown"``, its first line's number, its text."""

    kind: str
    line: int
    text: str


def percent_cells(source: str) -> list[Cell]:
    """The cells of a jupytext percent script, in order.

    A line starting with ``# %%`` opens a cell (``# %% [markdown]`` a Markdown one;
    tags such as ``tags=["hide-input"]`` do not matter here); lines before the first
    marker form a code cell. ``line`` is the 1-based number of the cell's first line
    after its marker.
    """
    cells: list[Cell] = []
    kind, start, lines = "code", 1, []
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        if line.startswith("# %%"):
            if "".join(lines).strip():
                cells.append(Cell(kind, start, "".join(lines)))
            kind = "markdown" if "[markdown]" in line or "[md]" in line else "code"
            start, lines = number + 1, []
        else:
            lines.append(line)
    if "".join(lines).strip():
        cells.append(Cell(kind, start, "".join(lines)))
    return cells


def headings(markdown: str, min_level: int = 2) -> list[str]:
    """The Markdown headings of a percent cell's commented text, from ``min_level`` down.

    Each is its title, indented two spaces per level below ``min_level``.
    """
    found = []
    for line in markdown.splitlines():
        text = line[2:] if line.startswith("# ") else ""  # "# ## Title" -> "## Title"
        level = len(text) - len(text.lstrip("#"))
        title = text[level:].strip()
        if level >= min_level and title and text[level:level + 1] == " ":
            found.append("  " * (level - min_level) + title)  # a subsection indented under its section
    return found


def run_script(path: str | os.PathLike, argv: Sequence[str] = ()) -> None:
    """Run the script at ``path`` cell by cell as ``__main__`` (see the module docstring).

    Exceptions propagate with tracebacks into the script's own lines.
    """
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    module = types.ModuleType("__main__")
    module.__file__ = str(path)
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    sys.argv = [str(path), *argv]
    sys.path[0] = str(path.resolve().parent)
    flags = 0
    for cell in percent_cells(source):
        if cell.kind == "markdown":
            for title in headings(cell.text):
                print(f"{SECTION} {title}", flush=True)
            continue
        # Blank lines before the cell keep its line numbers those of the file.
        code = compile("\n" * (cell.line - 1) + cell.text, str(path), "exec", flags=flags, dont_inherit=True)
        flags |= code.co_flags & _FUTURE_FLAGS
        exec(code, module.__dict__)


def _script_frames(tb):
    """The traceback from the script's first frame on (this runner's frames left out)."""
    here = os.path.abspath(__file__)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == here:
        tb = tb.tb_next
    return tb


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m vitoolkit.course.script PATH [ARGS...]", file=sys.stderr)
        return 2
    try:
        run_script(argv[0], argv[1:])
    except SystemExit:
        raise
    except KeyboardInterrupt:
        return 130
    except BaseException as err:  # noqa: B036 - reported as Python reports an uncaught exception
        sys.stdout.flush()
        traceback.print_exception(type(err), err, _script_frames(err.__traceback__))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
