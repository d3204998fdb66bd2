"""Grading a class: every submission in a folder, each isolated, one CSV row per student.

``vitoolkit exercise grade NAME DIR --out report.csv`` (:func:`grade_folder`)
grades every ``.py`` and ``.ipynb`` file in DIR (not its subfolders), in name
order, each with :func:`vitoolkit.exercises.check_file`: its own child process, a
time limit and a memory cap, its printed output discarded. All submissions are
graded on the same cases (one seed for the class, recorded in every row). The
report is written atomically (:mod:`vitoolkit.fileio`), with the columns of
:data:`COLUMNS`: ``student`` (the file name without its suffix), ``file``,
``checks_passed``, ``checks_total``, ``passed``, ``diagnosis`` (one line: the
mistake found, a load error or a time limit), ``seconds`` and ``seed``.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..fileio import check_output_file, write_text
from .files import ExerciseFileError
from .isolation import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT
from .registry import check_file, get_exercise

__all__ = ["COLUMNS", "GradeRow", "grade_folder", "submissions", "write_report"]

COLUMNS = ("student", "file", "checks_passed", "checks_total", "passed", "diagnosis", "seconds", "seed")


class GradeRow(NamedTuple):
    """One graded submission (a row of the CSV report)."""

    student: str
    file: str
    checks_passed: int
    checks_total: int
    passed: bool
    diagnosis: str
    seconds: float
    seed: int


def submissions(folder) -> list[Path]:
    """The ``.py`` and ``.ipynb`` files directly in ``folder``, sorted by name.

    Raises ``NotADirectoryError`` naming the folder when it is not one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder of submissions: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".py", ".ipynb")
                  and not p.name.startswith("."))


def grade_folder(name: str, folder, *, seed: int, timeout: float = DEFAULT_TIMEOUT,
                 memory_mb: int | None = DEFAULT_MEMORY_MB,
                 progress: Callable[[GradeRow, int, int], None] | None = None) -> list[GradeRow]:
    """Grade every submission in ``folder`` as exercise ``name``; one :class:`GradeRow` each.

    ``progress(row, i, n)`` is called after each one.
    """
    get_exercise(name)
    files = submissions(folder)
    rows = []
    for i, path in enumerate(files, 1):
        start = time.perf_counter()
        try:
            report = check_file(name, path, seed=seed, timeout=timeout, memory_mb=memory_mb, quiet=True)
            n_ok = sum(c.passed for c in report.checks)
            row = GradeRow(path.stem, path.name, n_ok, len(report.checks), report.passed,
                           report.diagnosis, 0.0, seed)
        except ExerciseFileError as err:
            row = GradeRow(path.stem, path.name, 0, 0, False, str(err), 0.0, seed)
        row = row._replace(seconds=round(time.perf_counter() - start, 3))
        rows.append(row)
        if progress is not None:
            progress(row, i, len(files))
    return rows


def write_report(rows: list[GradeRow], path) -> Path:
    """Write ``rows`` as CSV to ``path`` atomically (a header line, then one line per row)."""
    path = check_output_file(path, "--out")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([*row[:4], "yes" if row.passed else "no", " ".join(row.diagnosis.split()),
                         f"{row.seconds:.3f}", row.seed])
    return write_text(path, buffer.getvalue())
