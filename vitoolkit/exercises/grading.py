"""The machinery every grader shares: run the student's function safely, convert, compare, diagnose.

A grader is a function ``grade(fn, grader)`` that builds random cases from
``grader.generator`` and, for each named check, opens ``with grader.case(name) as case:``.
Inside, ``case.call(fn, ...)`` runs the student's function (an exception becomes a
failed check, not a crash; ``NotImplementedError`` stops the grading with one
"implemented" check), ``case.tensor`` converts what came back (tensors, NumPy
arrays and numbers are accepted) and checks its shape, and ``case.compare`` holds
it to the reference within a stated tolerance. When the values disagree, the
known mistakes of the exercise are tried in turn: each is a function computing
what a specific wrong formula would return on the same inputs, and the first one
the student's output matches names the probable mistake. Failing that, generic
relations are reported (a constant factor, a constant offset, a flipped sign).
Messages never contain the reference values or the reference code.
"""

from __future__ import annotations

import copy
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from ..validation import check_seed
from .report import CheckResult

__all__ = ["Grader", "Case", "Failed", "NotImplementedStub", "Mistake"]

#: (description, function of no arguments returning what that mistake produces)
Mistake = tuple[str, Callable[[], object]]

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


class Failed(Exception):
    """A check failed; the message says why (raised inside ``with grader.case(...)``)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotImplementedStub(Exception):
    """The student's function still raises ``NotImplementedError``: stop grading."""


def _where(err: BaseException) -> str:
    """`` (line N of FILE)`` for the innermost frame outside torch, numpy and vitoolkit."""
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        name = frame.filename
        if "site-packages" in name or name.startswith(_PACKAGE_DIR) or "/torch/" in name:
            continue
        return f" (line {frame.lineno} of {Path(name).name})" if not name.startswith("<") else (
            f" (line {frame.lineno} of {name})")
    return ""


def _copy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (int, float, str, type(None))) or callable(value):
        return value
    return copy.deepcopy(value)


def as_tensor(value, what: str) -> torch.Tensor:
    """``value`` (tensor, NumPy array, number or nested list) as a detached float64 tensor."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise Failed(f"{what} is complex ({value.dtype}); expected real numbers")
        return value.detach().cpu().to(torch.float64)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Failed(f"{what} is a {type(value).__name__}; expected a tensor "
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


def _within(got, want, rtol, atol) -> bool:
    return bool(((got - want).abs() <= atol + rtol * want.abs()).all())


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

    def __enter__(self) -> Case:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.grader.checks.append(CheckResult(self.name, True, self.note))
            return False
        if issubclass(exc_type, Failed):
            message = exc.message
            if self.warnings:
                message += f" [warnings from your code: {'; '.join(sorted(set(self.warnings)))}]"
            self.grader.checks.append(CheckResult(self.name, False, message))
            return True
        return False  # NotImplementedStub and errors of the grader itself propagate

    # -- running the student's code -------------------------------------------------
    def call(self, fn: Callable, *args):
        """``fn(*args)`` on copies of the arguments; an exception becomes a failed check."""
        args = tuple(_copy(a) for a in args)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out = fn(*args)
            except NotImplementedError:
                raise NotImplementedStub() from None
            except Exception as err:  # noqa: BLE001 - any error of the student's code is a result
                text = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise Failed(f"your function raised {type(err).__name__}{_where(err)}"
                             + (f": {text}" if text else "")) from None
        self.warnings += [f"{w.category.__name__}: {w.message}" for w in caught]
        return out

    def expect_raises(self, fn: Callable, args, error: type[BaseException], why: str) -> None:
        """Pass when ``fn(*args)`` raises ``error``; say ``why`` it should when it does not."""
        args = tuple(_copy(a) for a in args)
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            try:
                fn(*args)
            except error:
                self.note = f"raised {error.__name__}"
                return
            except NotImplementedError:
                raise NotImplementedStub() from None
            except Exception as err:  # noqa: BLE001
                raise Failed(f"raised {type(err).__name__}{_where(err)}, expected {error.__name__}: "
                             f"{why}") from None
        raise Failed(f"returned a value; expected {error.__name__}: {why}")

    # -- what came back ---------------------------------------------------------------
    def unpack(self, out, names: tuple[str, ...]) -> tuple:
        """Split a returned tuple into ``len(names)`` parts, or fail naming what is expected."""
        want = "(" + ", ".join(names) + ")"
        if isinstance(out, (torch.Tensor, np.ndarray)) or not isinstance(out, (tuple, list)):
            raise Failed(f"returned one {type(out).__name__}; expected a tuple {want}")
        if len(out) != len(names):
            raise Failed(f"returned a tuple of {len(out)} values; expected {len(names)}: {want}")
        return tuple(out)

    def tensor(self, value, what: str, shape: tuple[int, ...],
               shape_hints: Mapping[tuple[int, ...], str] | None = None) -> torch.Tensor:
        """``value`` as a float64 tensor of ``shape``; a wrong shape fails with its hint."""
        t = as_tensor(value, what)
        got = tuple(t.shape)
        if got != tuple(shape):
            hint = (shape_hints or {}).get(got)
            raise Failed(f"{what} has shape {got}, expected {tuple(shape)}" + (f": {hint}" if hint else ""))
        return t

    def finite(self, t: torch.Tensor, what: str, hint: str = "") -> None:
        """Fail when ``t`` holds a NaN or an infinity."""
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            kinds = []
            if bool(torch.isnan(t).any()):
                kinds.append("nan")
            if bool(torch.isinf(t).any()):
                kinds.append("inf")
            raise Failed(f"{what} has {int(bad.sum())} non-finite entries ({'/'.join(kinds)})"
                         + (f": {hint}" if hint else ""))

    def compare(self, got: torch.Tensor, want: torch.Tensor, what: str, *, rtol: float,
                atol: float = 0.0, mistakes: Iterable[Mistake] = (), nonfinite_hint: str = "",
                fallback: str = "") -> None:
        """Pass when ``|got - want| <= atol + rtol |want|`` everywhere; otherwise diagnose.

        ``mistakes`` are tried in order: the first whose output ``got`` matches
        (and the reference does not) is named. ``fallback`` is added when none
        matches and no generic relation (constant factor or offset) explains the
        difference.
        """
        want = want.to(torch.float64)
        if got.shape != want.shape:  # pragma: no cover - graders check shapes first
            raise Failed(f"{what} has shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        if bool(torch.isfinite(want).all()):
            self.finite(got, what, nonfinite_hint)
        if _within(got, want, rtol, atol):
            max_abs, max_rel = _closeness(got, want)
            self.note = (f"max abs error {_fmt(max_abs)}, max rel error {_fmt(max_rel)} "
                         f"(tolerance: rtol {rtol:g}, atol {atol:g})")
            return
        for description, produce in mistakes:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    candidate = as_tensor(produce(), "mistake")
            except Failed:  # pragma: no cover - a mistake that cannot be formed here
                continue
            if candidate.shape != got.shape or not bool(torch.isfinite(candidate).all()):
                continue
            if _within(candidate, want, rtol, atol):
                continue  # this mistake is invisible on these inputs
            if _within(got, candidate, max(rtol, 1e-6), max(atol, 1e-9)):
                raise Failed(f"{what} is wrong: {description}")
        max_abs, max_rel = _closeness(got, want)
        relation = _generic_relation(got, want)
        detail = (f"{what} is wrong: {relation}" if relation else
                  f"{what} differs from the expected value in {int((~self._ok(got, want, rtol, atol)).sum())}"
                  f" of {got.numel()} entries")
        if fallback and not relation:
            detail += f"; {fallback}"
        raise Failed(f"{detail} (max abs error {_fmt(max_abs)}, max rel error {_fmt(max_rel)}; "
                     f"tolerance: rtol {rtol:g}, atol {atol:g})")

    @staticmethod
    def _ok(got, want, rtol, atol) -> torch.Tensor:
        return (got - want).abs() <= atol + rtol * want.abs()

    def require(self, condition: bool, message: str) -> None:
        """Fail with ``message`` unless ``condition``."""
        if not condition:
            raise Failed(message)


class Grader:
    """Collects the checks of one grading run; ``generator`` seeds every random case."""

    def __init__(self, seed: int):
        self.seed = check_seed(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.checks: list[CheckResult] = []

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
