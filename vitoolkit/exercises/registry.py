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
from .report import CheckResult, Report

__all__ = ["Exercise", "EXERCISES", "register", "get_exercise", "list_exercises", "check", "stub",
           "solution"]


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


def check(name: str, fn: Callable, *, seed: int | None = None) -> Report:
    """Grade ``fn`` as the exercise ``name``.

    Runs the exercise's checks on random cases and edge cases (broadcasting,
    batch shapes, magnitudes where a naive formula overflows) and compares with
    the toolkit's own implementation within the tolerance each check states.
    A failed check's message names the probable mistake when the output matches
    a known one. The function may be defined anywhere, including a notebook cell;
    it receives float64 torch tensors and may return tensors or NumPy arrays.

    Parameters
    ----------
    name : str
        One of :func:`list_exercises`.
    fn : callable
        The student's function.
    seed : int, optional
        Seed of the random cases. By default a fresh one each call (recorded in
        ``Report.seed``); grading is deterministic given the seed.

    Returns
    -------
    Report
        ``passed``, ``checks`` (name, passed, message); ``print`` it for a table.
    """
    ex = get_exercise(name)
    if not callable(fn):
        raise TypeError(f"fn must be the function to grade, got {type(fn).__name__}")
    seed = check_seed(seed, "seed", allow_none=True)
    if seed is None:
        seed = _new_seed()
    report = Report(ex.name, seed)
    expected = list(inspect.signature(ex.reference).parameters)
    try:
        inspect.signature(fn).bind(*expected)
    except TypeError:
        report.checks.append(CheckResult(
            "signature", False,
            f"{getattr(fn, '__name__', 'fn')}{inspect.signature(fn)} cannot be called with the "
            f"{len(expected)} positional arguments ({', '.join(expected)})"))
        return report
    except ValueError:  # pragma: no cover - builtins without a signature: just try them
        pass
    grader = Grader(seed)
    try:
        ex.grade(fn, grader)
    except NotImplementedStub:
        report.checks.append(CheckResult(
            "implemented", False,
            "not implemented yet: the function raises NotImplementedError "
            "(replace that line with your code)"))
        return report
    report.checks.extend(grader.checks)
    return report
