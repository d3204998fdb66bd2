"""The result of grading one exercise: a list of named checks, printable as a short table."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CheckResult", "Report"]


@dataclass(frozen=True)
class CheckResult:
    """One named check of a student's function.

    Attributes
    ----------
    name : str
        What was checked (the case and the property), e.g. ``"broadcasting: q (4, 1, 2) vs p (3, 2)"``.
    passed : bool
    message : str
        On a failure, what went wrong and the probable mistake; on a pass, the
        error measured and the tolerance it was held to.
    """

    name: str
    passed: bool
    message: str = ""


@dataclass
class Report:
    """The checks of one graded exercise.

    ``print(report)`` (or showing it as the last value of a notebook cell)
    gives one line per check and a summary line; ``report.passed`` is True when
    every check passed.

    Attributes
    ----------
    exercise : str
        The exercise's name.
    seed : int
        The seed of the random cases: ``check(name, fn, seed=report.seed)``
        repeats exactly these cases.
    checks : list of CheckResult
    diagnosis : str
        One line: the known mistake that explains the most failed checks, with
        the evidence (:mod:`vitoolkit.exercises.diagnosis`); empty when all passed.
    isolated : bool
        True when the code ran in a separate process with a time limit
        (:mod:`vitoolkit.exercises.isolation`); False when it ran in this process.
    note : str
        How it was graded, when that needs saying (e.g. why it was not isolated).
    """

    exercise: str
    seed: int
    checks: list[CheckResult] = field(default_factory=list)
    diagnosis: str = ""
    isolated: bool = False
    note: str = ""

    @property
    def passed(self) -> bool:
        """True when there is at least one check and every check passed."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that did not pass."""
        return [c for c in self.checks if not c.passed]

    def lines(self) -> list[str]:
        """One line per check: ``PASS|FAIL  name  message``, names aligned."""
        width = max((len(c.name) for c in self.checks), default=0)
        return [f"{'PASS' if c.passed else 'FAIL'}  {c.name:<{width}}  {c.message}".rstrip()
                for c in self.checks]

    def summary(self) -> str:
        """``name: k of n checks passed (seed s)``."""
        n_ok = sum(c.passed for c in self.checks)
        verdict = "all passed" if self.passed else "not yet"
        return (f"{self.exercise}: {n_ok} of {len(self.checks)} checks passed - {verdict} "
                f"(seed {self.seed}; check(..., seed={self.seed}) repeats these cases)")

    def __str__(self) -> str:
        extra = [f"diagnosis: {self.diagnosis}"] if self.diagnosis and not self.passed else []
        extra += [f"note: {self.note}"] if self.note else []
        return "\n".join([*self.lines(), *extra, self.summary()])

    def __repr__(self) -> str:
        # The table, so that a Report left as the last value of a notebook cell prints readably.
        return str(self)
