"""``vitoolkit exercise list|start|check|solution``: the exercises from the command line.

- ``vitoolkit exercise list``: each exercise, its lesson and what it computes.
- ``vitoolkit exercise start NAME [--out DIR] [--format py|ipynb] [--force]``: write the stub.
- ``vitoolkit exercise check NAME FILE [--seed N]``: load the function ``NAME``
  from FILE (a .py or .ipynb; this runs the code in FILE, see
  :func:`vitoolkit.exercises.load_function`) and grade it: one line per check,
  exit code 0 when every check passes, 1 otherwise (also when FILE cannot be
  run or does not define NAME).
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
    from . import EXERCISES, ExerciseFileError, check, list_exercises, load_function, solution, write_stub

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
        from ..course.arguments import out_error
        from ..fileio import check_output_dir

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
    # check (--seed was validated by the parser: vitoolkit.course.arguments.seed_type)
    try:
        fn = load_function(args.file, args.name)
    except ExerciseFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    report = check(args.name, fn, seed=args.seed)
    print(report)
    return 0 if report.passed else 1
