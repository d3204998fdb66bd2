"""The machinery every grader shares: run the student's function, convert, compare, diagnose.

A grader is a function ``grade(fn, grader)`` that builds random cases from
``grader.generator`` and, for each named check, opens ``with grader.case(name) as case:``.
Inside, ``case.call(fn, ...)`` runs the student's function through its runner
(:mod:`vitoolkit.exercises.isolation`: usually a child process; an exception of any
kind becomes a failed check, not a crash; ``NotImplementedError`` stops the grading
with one "implemented" check), ``case.tensor`` converts what came back (tensors,
NumPy arrays and numbers are accepted; ``None``, strings, complex numbers and lists of
tensors each fail with their own message) and checks its shape, and ``case.compare``
holds it to the reference within a stated tolerance, widened for a float32 answer to
float32's (:func:`precision_tolerance`). When the values disagree, the known mistakes
of the exercise are tried: each is a function computing what a specific wrong formula
would return on the same inputs, and those the student's output matches are recorded
as evidence (:class:`Evidence`) for the one diagnosis of the submission
(:mod:`vitoolkit.exercises.diagnosis`). Failing that, generic relations are reported
(a constant factor, a constant offset, a flipped sign). Messages never contain the
reference values or the reference code.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from ..validation import check_seed
from .answers import StudentError, Unconvertible
from .report import CheckResult

__all__ = ["Grader", "Case", "Failed", "NotImplementedStub", "Mistake", "Evidence", "KAPPA",
           "precision_tolerance"]

#: (description, function of no arguments returning what that mistake produces)
Mistake = tuple[str, Callable[[], object]]

#: The conditioning factor of the low-precision tolerance (see :func:`precision_tolerance`).
KAPPA = 16.0


def precision_tolerance(dtype: torch.dtype) -> float:
    r"""The relative tolerance an answer computed in ``dtype`` is held to at least: KAPPA * eps(dtype).

    Rounding to a format with machine epsilon eps perturbs each input and each
    operation by at most eps/2 relative (the unit roundoff u). An evaluation of
    the exercise formulas takes a few (about 5 to 10) rounded steps per entry
    after cancellation-free sums (torch's sums are blocked or pairwise, so their
    error grows like log n, not n); Higham (2002), *Accuracy and Stability of
    Numerical Algorithms*, eq. (3.8) and section 4.2, bound such an evaluation
    by gamma_n = n u / (1 - n u) relative to the magnitude of the terms. With
    n = 2 KAPPA = 32, gamma_n ~ KAPPA eps: for float32 that is 1.9e-6, well below
    the smallest error a known mistake makes in the graded cases (a wrong
    constant, factor or term: relative errors of 1e-3 and more), and float32
    solutions of every exercise use at most 0.3 of it (measured over 6 seeds,
    tests/test_exercises.py). For float64
    KAPPA eps = 3.6e-15 is below every check's stated tolerance, which therefore applies.
    Answers in float16 or bfloat16 (eps ~ 1e-3, the size of the mistakes to catch) are
    held to float32's tolerance.
    """
    return KAPPA * float(torch.finfo(dtype).eps)


class Failed(Exception):
    """A check failed; the message says why (raised inside ``with grader.case(...)``).

    ``key`` names the kind of problem without the numbers of this check (the
    evidence the one diagnosis is built from); by default the message itself.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = message if key is None else key


class NotImplementedStub(Exception):
    """The student's function still raises ``NotImplementedError``: stop grading."""


@dataclass
class Evidence:
    """What one check says about known mistakes.

    ``matched``: the mistakes whose output the student's output equals (and the
    correct one does not); ``visible``: the mistakes this check could see (their
    output differs from the correct one); ``what``: the output concerned. A
    failure other than a comparison records its hint (or message) as both.
    """

    what: str
    matched: list[str] = field(default_factory=list)
    visible: list[str] = field(default_factory=list)


def _copy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (int, float, str, type(None))) or callable(value):
        return value
    return copy.deepcopy(value)


_LOW_PRECISION = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
_NUMPY_LOW = {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16}


def answer_dtype(value) -> torch.dtype | None:
    """The floating dtype of a returned tensor or array, when it is below float64 (else None)."""
    if isinstance(value, torch.Tensor) and value.dtype in _LOW_PRECISION:
        return value.dtype
    if isinstance(value, (np.ndarray, np.generic)):
        return _NUMPY_LOW.get(np.asarray(value).dtype)
    return None


def _kind(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def as_tensor(value, what: str) -> torch.Tensor:
    """``value`` (tensor, NumPy array, number or nested list of numbers) as a detached float64 tensor.

    Anything else fails with a plain message: ``None`` (a missing ``return``), a
    string, complex numbers (their imaginary part is never dropped), a list of
    tensors, or another object.
    """
    if value is None:
        raise Failed(f"{what}: your function returned None; is the return statement missing?")
    if isinstance(value, str):
        raise Failed(f"{what} is a string ({value[:40]!r}); expected a tensor of numbers",
                     key="a string was returned; expected a tensor of numbers")
    if isinstance(value, Unconvertible):
        raise Failed(f"{what} is {value.type_name}" + (f" ({value.detail})" if value.detail else "")
                     + "; expected a tensor (a NumPy array or a number is accepted too)")
    if isinstance(value, complex) or (isinstance(value, torch.Tensor) and value.is_complex()) or (
            isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.kind == "c"):
        dtype = value.dtype if hasattr(value, "dtype") else "complex"
        raise Failed(f"{what} is complex ({dtype}); expected real numbers (a log or sqrt of a negative "
                     "number? the imaginary part is not dropped)")
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool:
            raise Failed(f"{what} is a tensor of booleans (a comparison?); expected numbers")
        return value.detach().cpu().to(torch.float64)
    if isinstance(value, (list, tuple)):
        tensors = [v for v in value if isinstance(v, (torch.Tensor, np.ndarray))]
        if tensors:
            shapes = sorted({tuple(v.shape) for v in tensors})
            advice = "expected one tensor (torch.stack combines a list of tensors)"
            raise Failed(f"{what} is a {type(value).__name__} of {len(value)} values "
                         f"({len(tensors)} tensors or arrays, shapes {', '.join(map(str, shapes[:3]))}); "
                         + advice, key=f"a {type(value).__name__} of tensors was returned; " + advice)
        if any(isinstance(v, (list, tuple)) for v in value) and not all(
                isinstance(v, (list, tuple)) for v in value):
            raise Failed(f"{what} is a ragged {type(value).__name__}; expected a tensor")
    if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.kind == "b":
        raise Failed(f"{what} is an array of booleans (a comparison?); expected numbers")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError, OverflowError, Warning):
        raise Failed(f"{what} is {_kind(value)}; expected a tensor "
                     "(a NumPy array or a number is accepted too)") from None
    return torch.from_numpy(arr.copy())


def _fmt(x: float) -> str:
    return f"{x:.2g}" if x != 0 else "0"


def _closeness(got: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    err = (got - want).abs()
    max_abs = float(err.max()) if err.numel() else 0.0
    rel = err / want.abs().clamp_min(torch.finfo(torch.float64).tiny)
    max_rel = float(rel.max()) if rel.numel() else 0.0
    return max_abs, max_rel


def _reference_size(want: torch.Tensor, scale) -> torch.Tensor:
    if scale is None:
        return want.abs()
    return torch.maximum(want.abs(), torch.as_tensor(scale, dtype=torch.float64).abs().expand_as(want))


def _ok(got, want, rtol, atol, size) -> torch.Tensor:
    return (got - want).abs() <= atol + rtol * size


def _within(got, want, rtol, atol, size=None) -> bool:
    return bool(_ok(got, want, rtol, atol, want.abs() if size is None else size).all())


def _generic_relation(got: torch.Tensor, want: torch.Tensor) -> str | None:
    """A constant factor, a flipped sign or a constant offset between ``got`` and ``want``."""
    if got.numel() < 2 or not bool(torch.isfinite(got).all()):
        return None
    scale = float(want.abs().max())
    mask = want.abs() > 1e-6 * max(scale, 1e-300)
    if int(mask.sum()) >= 2:
        ratio = got[mask] / want[mask]
        r = float(ratio.mean())
        if float((ratio - r).abs().max()) <= 1e-6 * max(abs(r), 1e-12) and abs(r - 1) > 1e-6:
            named = {2.0: "twice the expected value: is a factor 1/2 missing?",
                     0.5: "half the expected value: is there an extra factor 1/2?",
                     -1.0: "the expected value with the sign flipped",
                     0.0: "zero where the expected value is not"}
            for value, text in named.items():
                if abs(r - value) <= 1e-6:
                    return text
            return f"off by a constant factor {r:.4g} everywhere"
    diff = got - want
    c = float(diff.mean())
    if float((diff - c).abs().max()) <= 1e-6 * max(abs(c), 1e-12) and abs(c) > 1e-9 * max(scale, 1.0):
        return f"off by the same additive constant {c:.4g} everywhere: a constant term is dropped or extra"
    return None


class Case:
    """One named check: a context manager that records a pass, or the failure raised inside it."""

    def __init__(self, grader: Grader, name: str):
        self.grader = grader
        self.name = name
        self.note = ""
        self.warnings: list[str] = []
        self.low_dtype: torch.dtype | None = None  # the lowest precision among the answers converted
        self.evidence: Evidence | None = None  # what the failing comparison matched
        self.ruled_out: set[str] = set()  # mistakes a passing comparison could see, so not made

    def __enter__(self) -> Case:
        self.grader.current = self.name
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.grader.checks.append(CheckResult(self.name, True, self.note))
            self.grader.ruled_out |= self.ruled_out
            return False
        if issubclass(exc_type, Failed):
            message = exc.message
            if self.warnings:
                message += f" [warnings from your code: {'; '.join(sorted(set(self.warnings)))}]"
            self.grader.checks.append(CheckResult(self.name, False, message))
            self.grader.evidence[self.name] = self.evidence or Evidence("", [exc.key], [exc.key])
            self.grader.ruled_out |= self.ruled_out
            return True
        return False  # NotImplementedStub, SubmissionAborted and errors of the grader itself propagate

    # -- running the student's code -------------------------------------------------
    def _run(self, fn, args):
        from .isolation import LocalRunner

        runner = fn if hasattr(fn, "signature_problem") else LocalRunner(fn)
        return runner.run(tuple(_copy(a) for a in args))

    def call(self, fn: Callable, *args):
        """``fn(*args)`` on copies of the arguments, through the submission's runner.

        ``fn`` is a runner (:mod:`vitoolkit.exercises.isolation`) or a plain
        function (run in this process). Any exception of the student's code is a
        failed check; ``NotImplementedError`` stops the grading.
        """
        try:
            out, caught = self._run(fn, args)
        except StudentError as err:
            if err.is_a("NotImplementedError"):
                raise NotImplementedStub() from None
            text = f"your function raised {err.describe()}"
            raise Failed(text, key=text) from None
        self.warnings += caught
        return out

    def expect_raises(self, fn: Callable, args, error: type[BaseException], why: str) -> None:
        """Pass when ``fn(*args)`` raises ``error`` (a builtin exception); else say ``why`` it should."""
        try:
            self._run(fn, args)
        except StudentError as err:
            if err.is_a(error.__name__):
                self.note = f"raised {error.__name__}"
                return
            if err.is_a("NotImplementedError"):
                raise NotImplementedStub() from None
            raise Failed(f"raised {err.type_name}{err.where}, expected {error.__name__}: {why}") from None
        raise Failed(f"returned a value; expected {error.__name__}: {why}")

    # -- what came back ---------------------------------------------------------------
    def unpack(self, out, names: tuple[str, ...]) -> tuple:
        """Split a returned tuple into ``len(names)`` parts, or fail naming what is expected."""
        want = "(" + ", ".join(names) + ")"
        if out is None:
            raise Failed("your function returned None; is the return statement missing? "
                         f"expected a tuple {want}")
        if isinstance(out, (torch.Tensor, np.ndarray)) or not isinstance(out, (tuple, list)):
            kind = getattr(out, "type_name", type(out).__name__)
            raise Failed(f"returned one {kind}; expected a tuple {want}")
        if len(out) != len(names):
            raise Failed(f"returned a tuple of {len(out)} values; expected {len(names)}: {want}")
        return tuple(out)

    def tensor(self, value, what: str, shape: tuple[int, ...],
               shape_hints: Mapping[tuple[int, ...], str] | None = None) -> torch.Tensor:
        """``value`` as a float64 tensor of ``shape``; a wrong shape fails with its hint.

        A float32 (or lower) answer is remembered: :meth:`compare` then holds it to
        that precision's tolerance and names the dtype when it fails.
        """
        low = answer_dtype(value)
        if low is not None and (self.low_dtype is None
                                or torch.finfo(low).eps > torch.finfo(self.low_dtype).eps):
            self.low_dtype = low
        t = as_tensor(value, what)
        got = tuple(t.shape)
        if got != tuple(shape):
            hint = (shape_hints or {}).get(got)
            if hint:
                self.evidence = Evidence(what, [hint], [hint])
            raise Failed(f"{what} has shape {got}, expected {tuple(shape)}" + (f": {hint}" if hint else ""))
        return t

    def _dtype_note(self) -> str:
        if self.low_dtype is None:
            return ""
        name = _LOW_PRECISION[self.low_dtype]
        return (f" [your answer is {name}, held to float32's tolerance (rtol {self._held_to:.1g}); these "
                "inputs need float64: compute in the dtype of the inputs]")

    @property
    def _held_to(self) -> float:
        # float16 and bfloat16 round by about 1e-3, the size of the mistakes a grader must see: they
        # are held to float32's tolerance, and a failure names their dtype.
        return precision_tolerance(torch.float32)

    @property
    def slack(self) -> float:
        """The relative rounding allowance of the answers seen so far (0 for float64 answers)."""
        return 0.0 if self.low_dtype is None else self._held_to

    def finite(self, t: torch.Tensor, what: str, hint: str = "") -> None:
        """Fail when ``t`` holds a NaN or an infinity."""
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            kinds = []
            if bool(torch.isnan(t).any()):
                kinds.append("nan")
            if bool(torch.isinf(t).any()):
                kinds.append("inf")
            if hint:
                self.evidence = Evidence(what, [hint], [hint])
            raise Failed(f"{what} has {int(bad.sum())} non-finite entries ({'/'.join(kinds)})"
                         + (f": {hint}" if hint else "") + self._dtype_note())

    def tolerance(self, rtol: float, atol: float, condition: float = 1.0) -> tuple[float, float]:
        """The check's ``(rtol, atol)``, widened to the answer's precision when it is below float64.

        ``condition`` is the condition number of the computation on these inputs
        (how much a relative perturbation of the inputs is amplified): rounding
        the inputs to float32 alone moves a correct answer by that much.
        """
        if self.low_dtype is None:
            return rtol, atol
        return max(rtol, self._held_to * max(float(condition), 1.0)), atol

    def compare(self, got: torch.Tensor, want: torch.Tensor, what: str, *, rtol: float,
                atol: float = 0.0, scale=None, condition: float = 1.0, mistakes: Iterable[Mistake] = (),
                nonfinite_hint: str = "", fallback: str = "") -> None:
        """Pass when ``|got - want| <= atol + rtol max(|want|, scale)`` everywhere; otherwise diagnose.

        ``scale`` (a number or a tensor broadcasting to ``want``) is the magnitude
        of the terms the formula combines: rounding in a correct computation is
        relative to them, not to a result that cancels to near zero. A float32
        answer is held to :func:`precision_tolerance` times ``condition`` (see
        :meth:`tolerance`) at least.

        Every mistake in ``mistakes`` is tried: those whose output ``got`` matches
        (and the reference does not) are recorded as evidence for the one
        diagnosis of the submission, and the first is named. ``fallback`` is added
        when none matches and no generic relation (constant factor or offset)
        explains the difference.
        """
        want = want.to(torch.float64)
        if got.shape != want.shape:  # pragma: no cover - graders check shapes first
            raise Failed(f"{what} has shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        if bool(torch.isfinite(want).all()):
            self.finite(got, what, nonfinite_hint)
        rtol, atol = self.tolerance(rtol, atol, condition)
        size = _reference_size(want, scale)
        passed = _within(got, want, rtol, atol, size)
        evidence = Evidence(what)
        for description, produce in mistakes:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    candidate = as_tensor(produce(), "mistake")
            except Failed:  # pragma: no cover - a mistake that cannot be formed here
                continue
            if candidate.shape != got.shape or not bool(torch.isfinite(candidate).all()):
                continue
            if _within(candidate, want, rtol, atol, size):
                continue  # this mistake is invisible on these inputs
            evidence.visible.append(description)
            if not passed and _within(got, candidate, max(rtol, 1e-6), max(atol, 1e-9),
                                      _reference_size(candidate, scale)):
                evidence.matched.append(description)
        if passed:
            self.ruled_out.update(evidence.visible)
        else:
            self.evidence = evidence
        max_abs, max_rel = _closeness(got, want)
        tolerance = f"tolerance: rtol {rtol:g}, atol {atol:g}"
        if scale is not None:
            tolerance += " relative to the terms"
        if passed:
            self.note = f"max abs error {_fmt(max_abs)}, max rel error {_fmt(max_rel)} ({tolerance})"
            if self.low_dtype is not None:
                self.note += f"; a {_LOW_PRECISION[self.low_dtype]} answer, held to its precision"
                if self.low_dtype != torch.float32:
                    self.note += " (float32's)"
            return
        if evidence.matched:
            raise Failed(f"{what} is wrong: {evidence.matched[0]}")
        relation = _generic_relation(got, want)
        detail = (f"{what} is wrong: {relation}" if relation else
                  f"{what} differs from the expected value in "
                  f"{int((~_ok(got, want, rtol, atol, size)).sum())} of {got.numel()} entries")
        if fallback and not relation:
            detail += f"; {fallback}"
        raise Failed(f"{detail} (max abs error {_fmt(max_abs)}, max rel error {_fmt(max_rel)}; {tolerance})"
                     + self._dtype_note())

    def require(self, condition: bool, message: str) -> None:
        """Fail with ``message`` unless ``condition``."""
        if not condition:
            raise Failed(message + (self._dtype_note() if self.low_dtype is not None else ""))


class Grader:
    """Collects the checks of one grading run; ``generator`` seeds every random case.

    ``evidence`` maps each failed check's name to what it says about the known
    mistakes (:class:`Evidence`); ``ruled_out`` holds the mistakes a passing
    comparison could see (so they were not made); ``current`` is the name of the
    check running.
    """

    def __init__(self, seed: int):
        self.seed = check_seed(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.checks: list[CheckResult] = []
        self.evidence: dict[str, Evidence] = {}
        self.ruled_out: set[str] = set()
        self.current = ""

    def case(self, name: str) -> Case:
        """A named check: ``with grader.case(name) as case: ...``."""
        return Case(self, name)

    # -- random inputs (float64, from the grader's generator) -------------------------
    def randn(self, *shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, dtype=torch.float64)

    def uniform(self, low: float, high: float, *shape) -> torch.Tensor:
        u = torch.rand(shape, generator=self.generator, dtype=torch.float64)
        return low + (high - low) * u

    def bernoulli(self, p: float, *shape) -> torch.Tensor:
        return (torch.rand(shape, generator=self.generator, dtype=torch.float64) < p).to(torch.float64)

    def new_seed(self) -> int:
        """A seed for a separate generator (so the toolkit's routines can draw the same noise)."""
        return int(torch.randint(0, 2**62, (1,), generator=self.generator))
