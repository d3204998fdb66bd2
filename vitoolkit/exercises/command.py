"""``vitoolkit exercise list|start|check|solution``: the exercises from the command line.

- ``vitoolkit exercise list``: each exercise, its lesson and what it computes.
- ``vitoolkit exercise start NAME [--out DIR] [--format py|ipynb] [--force]``: write the stub.
- ``vitoolkit exercise check NAME FILE [--seed N] [--timeout S] [--memory MB]``: run
  FILE (a .py or .ipynb) in a separate process with a time limit and a memory cap,
  and grade its function ``NAME`` (:func:`vitoolkit.exercises.check_file`): one line
  per check and the diagnosis, exit code 0 when every check passes, 1 otherwise
  (also when FILE cannot be run, hangs, exits, or does not define NAME: one line
  on stderr, no traceback).
- ``vitoolkit exercise grade NAME DIR --out report.csv [--seed N] [--timeout S] [--memory MB]``:
  grade every submission in DIR, each isolated the same way, and write one CSV row
  per student (:mod:`vitoolkit.exercises.batch`); exit code 0 once the report is
  written, whatever the students' results.
- ``vitoolkit exercise solution NAME``: print the model answer (for instructors).

An unknown exercise name exits with code 2 and lists the valid ones. The
arguments are declared in :mod:`vitoolkit.course.cli` (so that building the parser does
not import torch); :func:`run` carries out the parsed subcommand.
"""

from __future__ import annotations

import sys

__all__ = ["run"]


def _known(name: str) -> bool:
    from .registry import EXERCISES, list_exercises

    if name in EXERCISES:
        return True
    print(f"unknown exercise {name!r}; valid names: {', '.join(list_exercises())}", file=sys.stderr)
    return False


def run(args) -> int:
    """Run the ``exercise`` subcommand for parsed ``args``; return the exit code."""
    from . import EXERCISES, ExerciseFileError, check_file, list_exercises, solution, write_stub

    command = args.exercise_command
    if command == "list":
        names = list_exercises()
        width = max(len(n) for n in names)
        lesson_width = max(len(EXERCISES[n].lesson) for n in names)
        for n in names:
            print(f"{n:<{width}}  {EXERCISES[n].lesson:<{lesson_width}}  {EXERCISES[n].title}")
        return 0
    if not _known(args.name):
        return 2
    if command == "solution":
        print(solution(args.name), end="")
        return 0
    if command == "start":
        from ..fileio import check_output_dir
        from ..fileio import output_error_message as out_error

        try:
            check_output_dir(args.out, "--out")
        except OSError as err:
            print(f"vitoolkit exercise start: error: {out_error(err)}", file=sys.stderr)
            return 2
        try:
            path = write_stub(args.name, args.out, fmt=args.fmt, force=args.force)
        except ExerciseFileError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"wrote {path}\nwhen your function is ready: vitoolkit exercise check {args.name} {path}")
        return 0
    if command == "grade":
        return _grade(args)
    # check (--seed was validated by the parser: vitoolkit.course.arguments.seed_type)
    try:
        report = check_file(args.name, args.file, seed=args.seed, timeout=args.timeout,
                            memory_mb=args.memory)
    except ExerciseFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report)
    return 0 if report.passed else 1


def _grade(args) -> int:
    from ..fileio import check_output_file
    from ..fileio import output_error_message as out_error
    from .batch import grade_folder, submissions, write_report
    from .registry import _new_seed

    try:
        check_output_file(args.out, "--out")
        files = submissions(args.folder)
    except OSError as err:
        print(f"vitoolkit exercise grade: error: {out_error(err) if err.filename else err}", file=sys.stderr)
        return 2
    if not files:
        print(f"vitoolkit exercise grade: error: no .py or .ipynb files in {args.folder}", file=sys.stderr)
        return 2
    seed = _new_seed() if args.seed is None else args.seed

    def progress(row, i, n):
        verdict = "passed" if row.passed else f"{row.checks_passed}/{row.checks_total}"
        print(f"[{i}/{n}] {row.student}: {verdict} ({row.seconds:.1f} s)", flush=True)

    rows = grade_folder(args.name, args.folder, seed=seed, timeout=args.timeout, memory_mb=args.memory,
                        progress=progress)
    write_report(rows, args.out)
    n_passed = sum(r.passed for r in rows)
    print(f"graded {len(rows)} submissions of {args.name} (seed {seed}): {n_passed} passed; "
          f"report: {args.out}")
    return 0
