"""The exercise registry: ``register`` records an exercise; ``check``, ``stub``, ``solution`` look it up.

An exercise is its model answer (a documented function whose name is the
exercise's name: its signature and docstring are the stub a student starts
from) and a grader ``grade(fn, grader)`` (see :mod:`vitoolkit.exercises.grading`).
The graders compare with the toolkit's own implementations, so the exercises and
the toolkit cannot disagree.
"""

from __future__ import annotations

import ast
import inspect
import secrets
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from ..validation import check_seed
from .grading import Grader, NotImplementedStub
from .isolation import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT
from .report import CheckResult, Report

__all__ = ["Exercise", "EXERCISES", "register", "get_exercise", "list_exercises", "check", "check_file",
           "stub", "solution"]


@dataclass(frozen=True)
class Exercise:
    """One exercise.

    Attributes
    ----------
    name : str
        The exercise's name, which is also the name of the function the student writes.
    lesson : str
        The tutorial it belongs to, e.g. ``"01_elbo_anatomy"``.
    title : str
        One line: what the function computes.
    reference : callable
        The model answer (its signature and docstring make the stub).
    grade : callable
        ``grade(fn, grader)``: runs the checks.
    imports : str
        The import lines the stub and the solution start with.
    """

    name: str
    lesson: str
    title: str
    reference: Callable
    grade: Callable
    imports: str = "import torch\n"


#: Every registered exercise by name, in lesson order once the topic modules are imported.
EXERCISES: dict[str, Exercise] = {}


def register(*, reference: Callable, lesson: str, title: str, imports: str = "import torch\n"):
    """Decorator registering ``grade(fn, grader)`` as the grader of ``reference.__name__``."""

    def decorate(grade: Callable) -> Callable:
        name = reference.__name__
        if name in EXERCISES:  # pragma: no cover - a programming error in this package
            raise ValueError(f"exercise {name!r} is registered twice")
        EXERCISES[name] = Exercise(name, lesson, title, reference, grade, imports)
        return grade

    return decorate


def get_exercise(name: str) -> Exercise:
    """The :class:`Exercise` called ``name``; an unknown name raises ``ValueError`` listing the valid ones."""
    if not isinstance(name, str) or name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; available: {', '.join(list_exercises())}")
    return EXERCISES[name]


def list_exercises(lesson: str | None = None) -> list[str]:
    """The exercise names, in lesson order.

    Parameters
    ----------
    lesson : str, optional
        Only the exercises of this tutorial: its full name (``"04_gradient_estimators"``)
        or its number (``"04"``).
    """
    ordered = sorted(EXERCISES.values(), key=lambda e: e.lesson)  # stable: registration order within
    if lesson is not None:
        ordered = [e for e in ordered if e.lesson == lesson or e.lesson.split("_", 1)[0] == lesson]
    return [e.name for e in ordered]


def _reference_source(ex: Exercise) -> str:
    return textwrap.dedent(inspect.getsource(ex.reference))


def _header(ex: Exercise, kind: str) -> str:
    if kind == "solution":
        return (f'"""Model answer to the exercise {ex.name} (lesson {ex.lesson}), for instructors."""\n\n')
    return (
        f'"""Exercise {ex.name} (lesson {ex.lesson}): {ex.title}.\n\n'
        "Replace the ``raise NotImplementedError`` line with your code. The grader calls\n"
        "your function with float64 torch tensors; you may return tensors or NumPy arrays\n"
        "(they are converted). Check your work with\n\n"
        f"    vitoolkit exercise check {ex.name} THIS_FILE\n\n"
        f'or, in Python, ``vitoolkit.exercises.check("{ex.name}", {ex.name})``.\n'
        '"""\n\n'
    )


def stub(name: str) -> str:
    """The source a student starts from.

    The exercise's signature and docstring (the math, the shapes and the source
    paper or equation), with a body raising ``NotImplementedError``, after the
    imports it needs and a header saying how to check it.
    """
    ex = get_exercise(name)
    source = _reference_source(ex)
    func = ast.parse(source).body[0]
    lines = source.splitlines()
    end = func.body[0].end_lineno if ast.get_docstring(func) is not None else func.body[0].lineno - 1
    body = "\n".join(lines[:end])
    return (_header(ex, "stub") + ex.imports + "\n\n" + body
            + f'\n    raise NotImplementedError("write {name}")\n')


def solution(name: str) -> str:
    """The model answer's source, for instructors (the toolkit's grader accepts it)."""
    ex = get_exercise(name)
    return _header(ex, "solution") + ex.imports + "\n\n" + _reference_source(ex)


def _new_seed() -> int:
    return secrets.randbelow(2**31)


def _grade(ex: Exercise, runner, seed: int) -> Report:
    """Run ``ex``'s checks through ``runner`` (see :mod:`vitoolkit.exercises.isolation`)."""
    from .diagnosis import diagnose
    from .isolation import SubmissionAborted

    report = Report(ex.name, seed, isolated=runner.isolated)
    expected = list(inspect.signature(ex.reference).parameters)
    problem = runner.signature_problem(expected)
    if problem is not None:
        report.checks.append(CheckResult("signature", False, problem))
        report.diagnosis = problem
        return report
    grader = Grader(seed)
    try:
        ex.grade(runner, grader)
    except NotImplementedStub:
        report.checks.append(CheckResult(
            "implemented", False,
            "not implemented yet: the function raises NotImplementedError "
            "(replace that line with your code)"))
        report.diagnosis = "not implemented yet"
        return report
    except SubmissionAborted as err:
        grader.checks.append(CheckResult(grader.current or "running", False, f"{err}; grading stopped here"))
        report.checks.extend(grader.checks)
        report.diagnosis = str(err)
        return report
    report.diagnosis, report.checks = diagnose(grader.checks, grader.evidence, grader.ruled_out)
    return report


def _arguments(name, seed, timeout, memory_mb):
    from .isolation import check_limits

    ex = get_exercise(name)
    seed = check_seed(seed, "seed", allow_none=True)
    return ex, (_new_seed() if seed is None else seed), check_limits(timeout, memory_mb)


def check(name: str, fn: Callable, *, seed: int | None = None, timeout: float = DEFAULT_TIMEOUT,
          memory_mb: int | None = DEFAULT_MEMORY_MB, isolate: bool = True) -> Report:
    """Grade ``fn`` as the exercise ``name``.

    Runs the exercise's checks on random cases and edge cases (broadcasting,
    batch shapes, magnitudes where a naive formula overflows) and compares with
    the toolkit's own implementation within the tolerance each check states (a
    float32 answer within float32's: :func:`vitoolkit.exercises.grading.precision_tolerance`).
    A failed check's message names the probable mistake when the output matches
    a known one, and ``Report.diagnosis`` names the one mistake that explains the
    most failed checks. The function receives float64 torch tensors and may return
    tensors or NumPy arrays.

    By default the function runs in a separate process with a time limit and a
    memory cap (:mod:`vitoolkit.exercises.isolation`): this process only builds
    the cases and compares, so nothing the function does (exiting, hanging,
    patching the grader, changing torch's defaults) changes the verdict or this
    process. A function defined in a notebook or the REPL is sent by its source
    with the imports and constants it uses; one that cannot be sent (a lambda, a
    closure, a callable object) is graded in this process, and ``Report.note``
    says so: for isolation, save it in a file and use :func:`check_file`.

    Parameters
    ----------
    name : str
        One of :func:`list_exercises`.
    fn : callable
        The student's function.
    seed : int, optional
        Seed of the random cases. By default a fresh one each call (recorded in
        ``Report.seed``); grading is deterministic given the seed.
    timeout : float, default 60
        Seconds the function may take in all (every call together), when isolated.
    memory_mb : int or None, default 4096
        Megabytes it may allocate, when isolated (Linux: ``RLIMIT_AS`` in the child); None for no cap.
    isolate : bool, default True
        False grades in this process (faster to start; no time limit, no isolation).

    Returns
    -------
    Report
        ``passed``, ``checks`` (name, passed, message), ``diagnosis``; ``print`` it for a table.
    """
    from ._worker import in_grading_child
    from .isolation import _NO_CHILDREN, ChildProcess, Limits, LocalRunner, can_isolate, function_spec

    ex, seed, limits = _arguments(name, seed, timeout, memory_mb)
    if not callable(fn):
        raise TypeError(f"fn must be the function to grade, got {type(fn).__name__}")
    if type(isolate) is not bool:
        raise TypeError(f"isolate must be True or False, got {isolate!r}")
    if in_grading_child():
        return Report(ex.name, seed, note="not graded: this code is itself being graded (check() inside "
                                          "the grading process does nothing)")
    spec, why = function_spec(fn) if isolate else (None, "")
    if spec is not None and not can_isolate():
        spec, why = None, _NO_CHILDREN
    if spec is None:
        note = (f"graded in this process, without a time limit: {why}; for isolation save it in a file and "
                f"run: vitoolkit exercise check {ex.name} FILE") if isolate else ""
        report = _grade(ex, LocalRunner(fn), seed)
        report.note = note
        return report
    from .files import ExerciseFileError

    expected = list(inspect.signature(ex.reference).parameters)
    if spec[0] == "file":  # the script being run, run again: its printed output was seen already
        limits = Limits(limits.timeout, limits.memory_mb, quiet=True)
    try:
        runner = ChildProcess(spec, expected, limits)
    except ExerciseFileError as err:
        return Report(ex.name, seed, [CheckResult("loading", False, str(err))], diagnosis=str(err),
                      isolated=True)
    try:
        return _grade(ex, runner, seed)
    finally:
        runner.close()


def check_file(name: str, path, *, seed: int | None = None, timeout: float = DEFAULT_TIMEOUT,
               memory_mb: int | None = DEFAULT_MEMORY_MB, quiet: bool = False) -> Report:
    """Grade the function ``name`` defined in the file ``path`` (a ``.py`` script or ``.ipynb`` notebook).

    The file is run in a separate process (see :func:`check`; the time limit
    covers running the file and every call), so a file that hangs, exits or
    crashes cannot stop or fool the grader. ``quiet`` sends the file's printed
    output to /dev/null (batch grading).

    Raises
    ------
    ExerciseFileError
        The file is missing, too large, not a valid notebook, or running it failed,
        hung or ended the process before it defined a function ``name``.
    """
    from .files import check_submission_path
    from .isolation import _NO_CHILDREN, ChildProcess, Limits, LocalRunner, can_isolate

    ex, seed, limits = _arguments(name, seed, timeout, memory_mb)
    path = check_submission_path(path)
    if not can_isolate():
        from .files import load_function

        report = _grade(ex, LocalRunner(load_function(path, ex.name)), seed)
        report.note = f"graded in this process, without a time limit: {_NO_CHILDREN}"
        return report
    expected = list(inspect.signature(ex.reference).parameters)
    runner = ChildProcess(("file", str(path), ex.name), expected,
                          Limits(limits.timeout, limits.memory_mb, bool(quiet)))
    try:
        return _grade(ex, runner, seed)
    finally:
        runner.close()
