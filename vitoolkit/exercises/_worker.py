"""The grading child: loads the student's function, then calls it on the arguments the grader sends.

This runs in a separate process (started by :mod:`vitoolkit.exercises.isolation`),
the only one that executes the student's code. It never grades: for each
request it calls the function and sends back, as plain data
(:mod:`vitoolkit.exercises.answers`), what the function returned or raised and
the warnings it emitted, so whatever the code does to this process (patching the
grader, changing torch's defaults, exiting) cannot change the verdict, which the
parent computes.

Messages to the parent are ``send_bytes(answers.dumps(...))``:
``("ready", problem)`` (``problem``: why the function cannot take the expected
arguments, or ``None``), ``("load_error", text)``, and per call
``("ok", answer, warnings, recorded)`` or ``("raised", error, warnings)``.
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings

from . import answers

__all__ = ["serve", "in_grading_child"]

_IN_CHILD = False
_MAX_WARNINGS = 20


def in_grading_child() -> bool:
    """True inside a grading child (where ``check`` must not start another one)."""
    return _IN_CHILD


def _limit_memory(extra_bytes: int | None) -> None:
    """Cap the address space at what is mapped now plus ``extra_bytes`` (Linux; elsewhere no cap)."""
    if extra_bytes is None:
        return
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as fh:
            mapped = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = mapped + int(extra_bytes)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, ValueError):  # pragma: no cover - not Linux
        pass


def _silence() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _load(spec):
    kind = spec[0]
    if kind == "file":
        from .files import load_function

        return load_function(spec[1], spec[2])
    if kind == "import":
        import importlib

        obj = importlib.import_module(spec[1])
        for part in spec[2].split("."):
            obj = getattr(obj, part)
        return obj
    if kind == "source":
        namespace = {"__name__": "__vitoolkit_exercise__"}
        exec(compile(spec[1], "<your function>", "exec"), namespace)  # noqa: S102 - the point
        return namespace[spec[2]]
    raise ValueError(f"unknown kind of submission {kind!r}")


def _signature_problem(fn, expected: list[str]) -> str | None:
    if not callable(fn):
        return f"{getattr(fn, '__name__', 'it')} is a {type(fn).__name__}, not a function"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature: just try them
        return None
    try:
        signature.bind(*expected)
    except TypeError:
        return (f"{getattr(fn, '__name__', 'fn')}{signature} cannot be called with the "
                f"{len(expected)} positional arguments ({', '.join(expected)})")
    return None


def _warning_texts(caught) -> list[str]:
    return [f"{w.category.__name__}: {w.message}"[:200] for w in caught[:_MAX_WARNINGS]]


def _call(fn, args):
    recorders = [i for i, a in enumerate(args) if getattr(type(a), "records_calls", False)]
    for i in recorders:
        args[i].calls = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = fn(*args)
        except BaseException as err:  # noqa: BLE001 - SystemExit, KeyboardInterrupt too: all are results
            e = answers.describe(err)
            return ("raised", (e.type_name, e.bases, e.text, e.where), _warning_texts(caught))
    recorded = [(i, [answers.encode(z) for z in args[i].calls[:100]]) for i in recorders]
    return ("ok", answers.encode(out), _warning_texts(caught), recorded)


def serve(conn, spec, expected: list[str], memory_bytes: int | None, quiet: bool) -> None:
    """The child's main loop: load ``spec``, report, then answer ``("call", args)`` until ``("stop",)``."""
    global _IN_CHILD
    _IN_CHILD = True
    if hasattr(os, "setpgid"):
        os.setpgid(0, 0)  # its own process group: the parent ends whatever it starts, too
    if quiet:
        _silence()
    _limit_memory(memory_bytes)
    sys.argv = [str(spec[1]) if spec[0] == "file" else "vitoolkit-grader"]

    def send(message) -> None:
        conn.send_bytes(answers.dumps(message))

    try:
        fn = _load(spec)
    except BaseException as err:  # noqa: BLE001 - the student's module code
        from .files import ExerciseFileError

        if isinstance(err, ExerciseFileError):
            send(("load_error", str(err)))
        else:
            where = f"running {spec[1]}" if spec[0] == "file" else "loading your function"
            send(("load_error", f"{where} failed: {answers.describe(err).describe()}"))
        return
    send(("ready", _signature_problem(fn, expected)))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if not isinstance(request, tuple) or request[0] != "call":
            return
        send(_call(fn, list(request[1])))
