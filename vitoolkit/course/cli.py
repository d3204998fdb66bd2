"""The ``vitoolkit`` command: list and run the tutorials, build the book, start and check exercises.

``vitoolkit list`` shows each tutorial with the question it answers.
``vitoolkit run NAME|all [--quick] [--out DIR] [--seed N] [-v] [--notebook]`` runs tutorials,
each in its own process, writing figures, ``summary.json`` and ``log.txt`` into ``DIR/NAME``
(``--notebook``: executed as the book's notebook, which ``vitoolkit book`` then reuses).
While a tutorial runs, its sections show as it reaches them and its training epochs as a
bar on a terminal (plain lines in a log, :mod:`vitoolkit.course.runlog`); it ends with one
line (``05_vae: ok; 23 claims hold, 2 full-size claims not checked; 4 figures; 61 s``).
``-v`` shows every line the tutorial prints: each claim with its evidence, the records.
A failing tutorial makes ``run all`` exit non-zero after the rest have run.
``vitoolkit book --out DIR`` builds the course book (:mod:`vitoolkit.course.book`).
``vitoolkit exercise list|start|check|grade|solution`` hands out and grades the
exercises (:mod:`vitoolkit.exercises.command`; ``check`` and ``grade`` run the students'
files, each in its own process with a time limit).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ..fileio import check_output_dir, write_text
from .arguments import out_error, seed_type
from .catalog import TutorialInfo, find_tutorials, tutorials_dir
from .runlog import RunView, summary_line

__all__ = ["TutorialInfo", "find_tutorials", "tutorials_dir", "main"]


def _cmd_list(args) -> int:
    tutorials = find_tutorials()
    if not tutorials:
        print(f"no tutorials found in {tutorials_dir()}", file=sys.stderr)
        return 1
    width = max(len(t.name) for t in tutorials)
    for t in tutorials:
        print(f"{t.name:<{width}}  {t.question or t.title}")
    return 0


def _run_notebook(t: TutorialInfo, args, position: str) -> tuple[bool, float]:
    """Execute the tutorial as the book's notebook (or take the cached execution); copy its outputs."""
    import shutil

    from .notebooks import execute

    out = Path(args.out) / t.name
    print(f"[{position}] {t.name}: executing as a notebook{' (quick)' if args.quick else ''} ...",
          flush=True)
    run = execute(t.path, quick=args.quick, seed=args.seed, name=t.name)
    shutil.copytree(run.out, out, dirs_exist_ok=True)
    write_text(out / "log.txt", run.output)
    if args.verbose:
        print("    " + run.output.replace("\n", "\n    ").rstrip(), flush=True)
    how = "from the cache (unchanged since it was executed)" if run.cached else f"in {run.seconds:.1f} s"
    status = "ok" if run.ok else f"FAILED: {run.error}"
    counts = summary_line(run.out / "summary.json", run.seconds) if run.ok else ""
    print(f"[{position}] {t.name}: {status} {how}{'; ' + counts if counts else ''} -> {out}", flush=True)
    return run.ok, run.seconds


def _run_one(t: TutorialInfo, args, position: str) -> tuple[bool, float]:
    """Run one tutorial in its own process, showing its sections and epochs as they come."""
    if getattr(args, "notebook", False):
        return _run_notebook(t, args, position)
    out = Path(args.out) / t.name
    # Cell by cell (vitoolkit.course.script): the sections print as the run reaches them.
    cmd = [sys.executable, "-m", "vitoolkit.course.script", str(t.path), "--out", str(out),
           "--seed", str(args.seed)]
    if args.quick:
        cmd.append("--quick")
    print(f"[{position}] {t.name}: running{' (quick)' if args.quick else ''} ...", flush=True)
    start = time.perf_counter()
    start_wall = time.time() - 1.0
    log_path = out / "log.txt"
    # VITOOLKIT_PROGRESS: the lesson's training loops report their epochs (tut.progress).
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", "VITOOLKIT_PROGRESS": "1"}
    view = RunView(verbose=args.verbose)
    with open(log_path, "w", encoding="utf-8") as log, subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        try:
            for line in proc.stdout:
                log.write(line)
                view.feed(line)
        finally:
            view.close()
        code = proc.wait()
    seconds = time.perf_counter() - start
    summary = out / "summary.json"
    # A summary left by an earlier run must not pass for this one.
    ok = code == 0 and summary.is_file() and summary.stat().st_mtime >= start_wall
    counts = summary_line(summary, seconds) if summary.is_file() and summary.stat().st_mtime >= start_wall \
        else f"{seconds:.0f} s"
    status = "ok" if ok else f"FAILED (exit code {code})"
    print(f"[{position}] {t.name}: {status}; {counts} -> {out}", flush=True)
    if not ok:
        failed = _failed_claims(out / "summary.json")
        if failed:
            print("    claims that did not hold:\n      - " + "\n      - ".join(failed), file=sys.stderr)
        else:
            tail = log_path.read_text(encoding="utf-8").splitlines()[-25:]
            print("    " + "\n    ".join(tail), file=sys.stderr)
    return ok, seconds


def _failed_claims(summary: Path) -> list[str]:
    """The statements of the checked claims that did not hold, from a ``summary.json``."""
    try:
        claims = json.loads(summary.read_text(encoding="utf-8")).get("claims", [])
    except (OSError, ValueError):
        return []
    return [c.get("statement", "?") for c in claims if c.get("checked", True) and not c.get("holds")]


def _cmd_run(args) -> int:
    tutorials = find_tutorials()
    by_name = {t.name: t for t in tutorials}
    if args.name == "all":
        chosen = tutorials
    elif args.name in by_name:
        chosen = [by_name[args.name]]
    else:
        # Accept the number alone ("01") or the name without its number.
        matches = [t for t in tutorials if t.name.split("_", 1)[0] == args.name
                   or t.name.split("_", 1)[-1] == args.name]
        if len(matches) != 1:
            valid = ", ".join(["all"] + [t.name for t in tutorials])
            print(f"unknown tutorial {args.name!r}; valid names: {valid}", file=sys.stderr)
            return 2
        chosen = matches
    if args.notebook:
        from .book import missing_modules

        missing = missing_modules()
        if missing:
            print("vitoolkit run: error: --notebook needs the docs extra: pip install -e '.[docs]' "
                  f"(missing: {', '.join(missing)})", file=sys.stderr)
            return 2
    # Every output folder is proved writable before the first tutorial runs.
    try:
        for t in chosen:
            check_output_dir(Path(args.out) / t.name, "--out")
    except OSError as err:
        print(f"vitoolkit run: error: {out_error(err)}", file=sys.stderr)
        return 2
    results = {}
    for i, t in enumerate(chosen, 1):
        ok, seconds = _run_one(t, args, f"{i}/{len(chosen)}")
        results[t.name] = {"ok": ok, "seconds": round(seconds, 2)}
    write_text(Path(args.out) / "index.json",
               json.dumps({"quick": args.quick, "seed": args.seed, "tutorials": results}, indent=2))
    failed = [name for name, r in results.items() if not r["ok"]]
    if failed:
        print(f"{len(failed)} of {len(chosen)} tutorials failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    print(f"all {len(chosen)} tutorials ran; figures and summaries in {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitoolkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the tutorials and the question each answers")
    run = sub.add_parser("run", help="run one tutorial or all of them")
    run.add_argument("name", help="a tutorial name (see `vitoolkit list`) or 'all'")
    run.add_argument("--quick", action="store_true", help="the small setting used by CI")
    run.add_argument("--out", default="results", help="output folder (default: results)")
    run.add_argument("--seed", type=seed_type, default=0,
                     help="random seed, an integer in 0..2**63-1 (default: 0)")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="show every line each tutorial prints (each claim with its numbers, the records)")
    run.add_argument("--notebook", action="store_true",
                     help="execute each tutorial as the book's notebook (kept in the notebook cache, so "
                     "`vitoolkit book` with the same setting and seed reuses it; needs the docs extra)")
    book = sub.add_parser("book", help="build the course book (HTML gallery of the tutorials)")
    from .book import add_arguments as add_book_arguments

    add_book_arguments(book)
    exercise = sub.add_parser("exercise", help="start, check and list the exercises (autograded)")
    _add_exercise_arguments(exercise)
    return parser


def _add_exercise_arguments(parser) -> None:
    # Declared here rather than in vitoolkit.exercises so that building the parser (and
    # `vitoolkit list`) does not import torch; the subcommands run vitoolkit.exercises.command.
    sub = parser.add_subparsers(dest="exercise_command", required=True,
                                metavar="{list,start,check,grade,solution}")
    sub.add_parser("list", help="list the exercises and the lesson each belongs to")
    start = sub.add_parser("start", help="write the stub of an exercise to start from")
    start.add_argument("name", help="an exercise name (see `vitoolkit exercise list`)")
    start.add_argument("--out", default=".", help="folder to write NAME.py or NAME.ipynb into (default: .)")
    start.add_argument("--format", dest="fmt", choices=("py", "ipynb"), default="py",
                       help="a Python script (default) or a Jupyter notebook (needs nbformat)")
    start.add_argument("--force", action="store_true", help="overwrite an existing file")
    check = sub.add_parser("check", help="grade the function NAME defined in FILE (runs FILE's code)")
    check.add_argument("name", help="an exercise name (see `vitoolkit exercise list`)")
    check.add_argument("file", help="a .py script or .ipynb notebook that defines the function NAME")
    check.add_argument("--seed", type=seed_type, default=None,
                       help="seed of the random cases, an integer in 0..2**63-1 "
                            "(default: a fresh one, printed)")
    _add_limits(check)
    grade = sub.add_parser("grade", help="grade every submission in a folder into a CSV report (instructors)")
    grade.add_argument("name", help="an exercise name (see `vitoolkit exercise list`)")
    grade.add_argument("folder",
                       help="folder of submissions: one .py or .ipynb per student (named after them)")
    grade.add_argument("--out", required=True, help="the CSV report to write (one row per submission)")
    grade.add_argument("--seed", type=seed_type, default=None,
                       help="seed of the cases, the same for every submission "
                            "(default: a fresh one, recorded)")
    _add_limits(grade)
    solution = sub.add_parser("solution", help="print the model answer (for instructors)")
    solution.add_argument("name", help="an exercise name (see `vitoolkit exercise list`)")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def _memory_mb(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an integer number of megabytes or 'none', got {text!r}") from None
    if value < 16:
        raise argparse.ArgumentTypeError(f"must be >= 16 (megabytes), got {value}")
    return value


def _add_limits(parser) -> None:
    parser.add_argument("--timeout", type=_positive_seconds, default=60.0,
                        help="seconds a submission may take in all, loading included (default: 60)")
    parser.add_argument("--memory", type=_memory_mb, default=4096,
                        help="megabytes a submission may allocate (Linux; 'none': no cap; default: 4096)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        return _cmd_list(args)
    if args.command == "book":
        from .book import run as run_book

        return run_book(args)
    if args.command == "exercise":
        from ..exercises.command import run as run_exercise

        return run_exercise(args)
    return _cmd_run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
