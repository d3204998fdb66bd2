"""Running a student's function for the grader: in a separate process with limits, or in this one.

A grader calls the student's function through a *runner*: ``runner.run(args)``
returns ``(answer, warnings)``, where ``answer`` is the plain-data copy of what
the function returned (:mod:`vitoolkit.exercises.answers`), or raises
:class:`~vitoolkit.exercises.answers.StudentError` (the function raised, any
``BaseException``) or :class:`SubmissionAborted` (the process running it hung,
crashed or ended: grading stops).

- :class:`ChildProcess` (the default): the function runs in a child process
  (:mod:`vitoolkit.exercises._worker`) with a wall-clock budget for the whole
  submission (loading plus every call; ``timeout`` seconds) and, on Linux, a cap on
  the memory it may map beyond what the child maps at start (``RLIMIT_AS``). The
  child only computes the function's outputs; the grader (this process) builds
  the cases and compares, so neither patching the grader in the child nor exiting
  early can pass a check, and nothing the code does changes this process. On
  POSIX the children are forked from a server process that has imported torch and
  the exercises once (``multiprocessing``'s ``forkserver``), so a child costs tens of
  milliseconds after the first (which starts the server, a few seconds).
- :class:`LocalRunner`: the function runs in this process (``check(..., isolate=False)``,
  or a function that cannot be sent to another process). Exceptions (``SystemExit``
  included, ``KeyboardInterrupt`` excepted: that is you pressing Ctrl-C) are failed
  checks, and torch's default dtype, grad mode and the working directory are
  restored after every call; there is no time limit.

How :func:`function_spec` sends a function object to the child: a function of an
importable module by reference (the child imports the module); one defined in a
notebook, the REPL or the script being run (``python my_answer.py``) by its source
(``inspect.getsource``) with the imports and plain constants it uses and the source
of the helper functions it calls; failing that, one defined in the script being run
by running that script again in the child under another ``__name__`` (where a
``check()`` at its top level does nothing). Lambdas, closures, callable objects,
decorated functions and notebook functions using other global objects cannot be
sent: they are graded in this process, and the report says so.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import math
import multiprocessing
import os
import signal
import sys
import textwrap
import time
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import answers

__all__ = ["Limits", "SubmissionAborted", "IsolationUnavailable", "ChildProcess", "LocalRunner",
           "function_spec", "can_isolate", "DEFAULT_TIMEOUT", "DEFAULT_MEMORY_MB"]

#: Seconds a submission may take in all (loading its file and every call of its function).
DEFAULT_TIMEOUT = 60.0
#: Megabytes a submission may map beyond what the grading child maps at start (Linux).
DEFAULT_MEMORY_MB = 4096
_MAX_REPLY = 256 * 2**20  # bytes; the largest expected answer is under 1 MB


class SubmissionAborted(Exception):
    """The process running the student's code hung, crashed or ended; the message says which."""


class IsolationUnavailable(RuntimeError):
    """No child process can be started here (this process is a daemonic multiprocessing worker)."""


_NO_CHILDREN = ("this process is a daemonic multiprocessing worker (a Pool's), which may not start "
                "processes")


def can_isolate() -> bool:
    """False inside a daemonic multiprocessing worker, where no grading child can be started."""
    return not multiprocessing.current_process().daemon


@dataclass(frozen=True)
class Limits:
    """What a submission may use: ``timeout`` seconds in all, ``memory_mb`` extra megabytes (None: no cap)."""

    timeout: float = DEFAULT_TIMEOUT
    memory_mb: int | None = DEFAULT_MEMORY_MB
    quiet: bool = False  # the child's stdout/stderr go to /dev/null (batch grading)


def check_limits(timeout, memory_mb) -> Limits:
    """Validated :class:`Limits` (``TypeError``/``ValueError`` naming the argument)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    if memory_mb is not None:
        if isinstance(memory_mb, bool) or not isinstance(memory_mb, int):
            raise TypeError(f"memory_mb must be an integer number of megabytes or None, "
                            f"got {type(memory_mb).__name__}")
        if memory_mb < 16:
            raise ValueError(f"memory_mb must be >= 16 (megabytes), got {memory_mb}")
    return Limits(float(timeout), memory_mb)


# ------------------------------------------------------------------------------ in this process
class LocalRunner:
    """Runs ``fn`` in this process; restores torch's default dtype, grad mode and the cwd after each call."""

    isolated = False

    def __init__(self, fn):
        self.fn = fn

    def signature_problem(self, expected: list[str]) -> str | None:
        from ._worker import _signature_problem

        return _signature_problem(self.fn, expected)

    def run(self, args):
        dtype, grad, cwd = torch.get_default_dtype(), torch.is_grad_enabled(), os.getcwd()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out = self.fn(*args)
            except KeyboardInterrupt:
                raise
            except BaseException as err:  # noqa: BLE001 - SystemExit too: a result, not an exit
                raise answers.describe(err) from None
            finally:
                torch.set_default_dtype(dtype)
                torch.set_grad_enabled(grad)
                with contextlib.suppress(OSError):
                    os.chdir(cwd)
        texts = [f"{w.category.__name__}: {w.message}"[:200] for w in caught[:20]]
        return answers.decode(answers.encode(out)), texts

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------ in a child
_CONTEXT = None


def _context():
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["vitoolkit.exercises"])
        else:  # pragma: no cover - Windows
            ctx = multiprocessing.get_context("spawn")
        _CONTEXT = ctx
    return _CONTEXT


@contextlib.contextmanager
def _without_main():
    # multiprocessing re-runs the parent's main script in each child ("safe importing of the main
    # module"); the child needs nothing from it, and a student's script calling check() at module
    # level would otherwise run itself again in every child.
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _ended(exitcode) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = {"SIGSEGV": " (a crash in native code)", "SIGBUS": " (a crash in native code)",
               "SIGABRT": " (an abort)", "SIGKILL": " (out of memory, or killed)"}.get(name, "")
        return f"was killed by {name}{why}"
    return f"ended with exit status {exitcode} (os._exit, or a crash)"


class ChildProcess:
    """Runs the function described by ``spec`` (see :func:`function_spec`) in a child process.

    ``expected`` are the argument names the function must accept. Raises
    :class:`~vitoolkit.exercises.files.ExerciseFileError` when the function cannot
    be loaded (the code raised, hung or exited while defining it).
    """

    isolated = True

    def __init__(self, spec, expected: list[str], limits: Limits):
        if not can_isolate():
            raise IsolationUnavailable(_NO_CHILDREN)
        self.spec, self.limits = spec, limits
        self.budget = limits.timeout
        what = f"running {spec[1]}" if spec[0] == "file" else "loading your function"
        ctx = _context()
        self.conn, child_conn = ctx.Pipe(duplex=True)
        memory = None if limits.memory_mb is None else limits.memory_mb * 2**20
        from . import _worker

        self.process = ctx.Process(target=_worker.serve, name="vitoolkit-grading",
                                   args=(child_conn, spec, list(expected), memory, limits.quiet), daemon=True)
        with _without_main():
            self.process.start()
        child_conn.close()
        try:
            reply = self._receive(what)
        except SubmissionAborted as err:
            self.close()
            from .files import ExerciseFileError

            raise ExerciseFileError(str(err)) from None
        if reply[0] == "load_error" and len(reply) == 2:
            self.close()
            from .files import ExerciseFileError

            raise ExerciseFileError(str(reply[1]))
        if reply[0] != "ready" or len(reply) != 2:
            self.close()
            raise SubmissionAborted("the grading process sent a malformed reply")
        self._problem = None if reply[1] is None else str(reply[1])

    def signature_problem(self, expected: list[str]) -> str | None:  # noqa: ARG002 - checked by the child
        return self._problem

    def _kill(self) -> None:
        # The child leads its own process group (see _worker): ending the group ends whatever the
        # submission started too, even after the child itself has exited.
        pid = self.process.pid
        if pid is not None and hasattr(os, "killpg"):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        elif self.process.is_alive():  # pragma: no cover - no process groups
            self.process.kill()
        self.process.join(5)

    def _receive(self, what: str):
        start = time.monotonic()
        try:
            ready = self.conn.poll(max(self.budget, 0.0))
        finally:
            self.budget -= time.monotonic() - start
        if not ready:
            self._kill()
            raise SubmissionAborted(f"{what} did not finish within the time limit of "
                                    f"{self.limits.timeout:g} s "
                                    "(an endless loop? a very slow computation?)")
        try:
            payload = self.conn.recv_bytes(_MAX_REPLY)
        except OSError:
            if self.process.is_alive():  # a reply over the size limit
                self._kill()
                raise SubmissionAborted(f"the process {what} sent a reply larger than "
                                        f"{_MAX_REPLY // 2**20} MB") from None
            self.process.join(2)
            code = self.process.exitcode
            self._kill()
            raise SubmissionAborted(f"the process {what} {_ended(code)} before answering") from None
        except EOFError:
            self.process.join(2)
            code = self.process.exitcode
            self._kill()
            raise SubmissionAborted(f"the process {what} {_ended(code)} before answering") from None
        try:
            reply = answers.loads(payload)
            if not isinstance(reply, tuple) or not reply or not isinstance(reply[0], str):
                raise ValueError("not a tuple")
        except Exception:  # noqa: BLE001 - forged or corrupted: the student loses, the grader goes on
            self._kill()
            raise SubmissionAborted(f"the process {what} sent a malformed reply") from None
        return reply

    def run(self, args):
        if not self.process.is_alive():
            raise SubmissionAborted(f"the process running your function {_ended(self.process.exitcode)}")
        try:
            self.conn.send(("call", tuple(args)))
        except (OSError, ValueError):
            self.process.join(2)
            raise SubmissionAborted(f"the process running your function {_ended(self.process.exitcode)} "
                                    "before answering") from None
        reply = self._receive("running your function")
        try:
            if reply[0] == "raised":
                type_name, bases, text, where = reply[1]
                raise answers.StudentError(str(type_name), tuple(str(b) for b in bases), str(text),
                                           str(where))
            if reply[0] != "ok" or len(reply) != 4:
                raise ValueError("unexpected reply")
            value = answers.decode(reply[1])
            for i, calls in reply[3]:
                if 0 <= i < len(args) and getattr(type(args[i]), "records_calls", False):
                    args[i].calls.extend(z for z in map(answers.decode, calls) if isinstance(z, torch.Tensor))
            return value, [str(w)[:200] for w in reply[2]][:20]
        except answers.StudentError:
            raise
        except Exception:  # noqa: BLE001
            self._kill()
            raise SubmissionAborted("the process running your function sent a malformed reply") from None

    def close(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self.conn.send(("stop",))
            self.process.join(0.5)
        self._kill()
        self.conn.close()


# ------------------------------------------------------------------------------ sending a function
def _resolves(module, fn) -> bool:
    obj = module
    for part in fn.__qualname__.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return obj is fn


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _literal(value) -> bool:
    try:
        return ast.literal_eval(repr(value)) == value and type(ast.literal_eval(repr(value))) is type(value)
    except (ValueError, SyntaxError, TypeError, RecursionError):
        return False


def _function_source(fn) -> str | None:
    if not isinstance(fn, types.FunctionType) or fn.__closure__ or fn.__name__ == "<lambda>":
        return None
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    if (len(tree.body) != 1 or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef))
            or tree.body[0].name != fn.__name__ or tree.body[0].decorator_list):
        return None
    return source


def _ship_source(fn) -> str | None:
    """Source defining ``fn`` with the imports, constants and helper functions it uses, or None."""
    head: list[str] = []
    bodies: list[str] = []
    seen: set[int] = set()

    def add(f) -> bool:
        if id(f) in seen:
            return True
        seen.add(id(f))
        source = _function_source(f)
        if source is None:
            return False
        for name in sorted(_code_names(f.__code__)):
            if name not in f.__globals__:
                continue
            value = f.__globals__[name]
            if isinstance(value, types.ModuleType):
                head.append(f"import {value.__name__} as {name}")
            elif isinstance(value, types.FunctionType) and value.__module__ == fn.__module__:
                if not add(value):
                    return False
            elif (getattr(value, "__module__", None) not in (None, fn.__module__, "__main__")
                  and isinstance(getattr(value, "__qualname__", None), str) and "." not in value.__qualname__
                  and getattr(sys.modules.get(value.__module__), value.__qualname__, None) is value):
                head.append(f"from {value.__module__} import {value.__qualname__} as {name}")
            elif _literal(value):
                head.append(f"{name} = {value!r}")
            else:
                return False
        bodies.append(source)
        return True

    if not add(fn):
        return None
    text = "\n".join(dict.fromkeys(head)) + "\n\n" + "\n\n".join(reversed(bodies))
    try:
        compile(text, "<your function>", "exec")
    except SyntaxError:
        return None
    return text


def function_spec(fn) -> tuple[tuple | None, str]:
    """How to load ``fn`` in a child: ``(spec, "")``, or ``(None, why it cannot be sent)``."""
    if not isinstance(fn, types.FunctionType):
        return None, (f"a {type(fn).__name__} (not a plain function defined with def) cannot be sent "
                      "to another process")
    if fn.__name__ == "<lambda>":
        return None, "a lambda cannot be sent to another process"
    module = sys.modules.get(fn.__module__)
    resolves = module is not None and "<locals>" not in fn.__qualname__ and _resolves(module, fn)
    path = getattr(module, "__file__", None)
    if resolves and fn.__module__ != "__main__" and path:
        return ("import", fn.__module__, fn.__qualname__), ""
    source = _ship_source(fn)
    if source is not None:
        return ("source", source, fn.__name__), ""
    if resolves and path and Path(path).suffix == ".py" and Path(path).is_file():
        # The script being run: run it again in the child (its `if __name__ == "__main__":` block
        # does not run there, and a check() at its top level does nothing there).
        return ("file", str(Path(path).resolve()), fn.__name__), ""
    return None, ("its source, or a global object it uses, cannot be sent to another process "
                  "(a closure, a decorated function, or a global that is not a module, a function or "
                  "a constant)")
