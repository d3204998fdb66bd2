"""Progress of a long loop: a tqdm bar on a terminal or in Jupyter, plain lines in a log.

:func:`progress_bar` wraps the loop's iterable. On a terminal (its stream is a TTY)
or in a Jupyter kernel it is a ``tqdm.auto`` bar, as before; where the output goes
to a file or a pipe (a CI log, ``vitoolkit run``'s child process) a redrawn bar
would be noise, so each completed step prints one plain line instead::

    [progress] train: epoch 3/20, loss=123.45, val=-118.20 (4.1 s)

``vitoolkit run`` reads these lines from the tutorial it runs (:data:`PREFIX`,
:func:`parse_line`) and shows them as its own bar on a terminal, or passes them
on to its log.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["PREFIX", "PlainProgress", "parse_line", "progress_bar"]

#: The start of a plain progress line.
PREFIX = "[progress]"
_LINE = re.compile(r"^\[progress\] (?P<desc>.+?): (?P<unit>\S+) (?P<n>\d+)/(?P<total>\d+)(?P<rest>.*)$")


class _Silent:
    """The loop as it is, with the bar's methods doing nothing (``enabled=False``)."""

    def __init__(self, iterable: Iterable):
        self._iterable = iterable

    def __iter__(self) -> Iterator:
        return iter(self._iterable)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


class PlainProgress:
    """One line per completed step: ``[progress] desc: unit n/total, key=value, ... (t s)``.

    A step counts as completed when the loop asks for the next item, or at
    :meth:`close` for the step the loop left with ``break`` (a loop that stops
    early leaves after finishing its step). The postfix set during a step
    (:meth:`set_postfix`, as tqdm's) is printed with it.
    """

    def __init__(self, iterable: Iterable, *, total: int | None, initial: int = 0, desc: str = "",
                 unit: str = "it", file: IO[str] | None = None):
        self._iterable = iterable
        self.total = total
        self.n = initial
        self.desc = desc
        self.unit = unit
        self._file = file
        self._postfix = ""
        self._pending = False
        self._start = time.perf_counter()

    def __iter__(self) -> Iterator:
        for item in self._iterable:
            self._pending = True
            yield item
            self._step()

    def _step(self) -> None:
        self._pending = False
        self.n += 1
        total = f"/{self.total}" if self.total is not None else ""
        postfix = f", {self._postfix}" if self._postfix else ""
        seconds = time.perf_counter() - self._start
        stream = self._file if self._file is not None else sys.stderr
        print(f"{PREFIX} {self.desc}: {self.unit} {self.n}{total}{postfix} ({seconds:.1f} s)",
              file=stream, flush=True)

    def set_postfix(self, ordered_dict: dict | None = None, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        if self._pending:
            self._step()


def _interactive(stream: IO[str]) -> bool:
    """A terminal, or a Jupyter kernel's output (where tqdm.auto draws a widget)."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_bar(iterable: Iterable, *, enabled: bool, total: int | None = None, initial: int = 0,
                 desc: str = "", unit: str = "it", file: IO[str] | None = None):
    """A progress display over ``iterable``: tqdm where it can redraw, plain lines where it cannot.

    Parameters
    ----------
    iterable : iterable
        The loop's iterable.
    enabled : bool
        ``False`` returns the loop unchanged (``set_postfix`` and ``close`` do nothing).
    total : int, optional
        The number of steps (with ``initial``, as tqdm's).
    initial : int, default 0
        The step a resumed loop starts from.
    desc, unit : str
        The label and the name of a step (``"train"``, ``"epoch"``).
    file : text stream, optional
        Where to write (default ``sys.stderr``, read when called).

    Returns
    -------
    iterable
        The loop, with tqdm's ``set_postfix(dict)`` and ``close()``.
    """
    if not enabled:
        return _Silent(iterable)
    stream = file if file is not None else sys.stderr
    if _interactive(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, file=file)
    return PlainProgress(iterable, total=total, initial=initial, desc=desc, unit=unit, file=file)


def parse_line(line: str) -> dict | None:
    """A plain progress line as ``{"desc", "unit", "n", "total", "rest"}``; None for other lines."""
    match = _LINE.match(line.rstrip("\n"))
    if match is None:
        return None
    found = match.groupdict()
    return {**found, "n": int(found["n"]), "total": int(found["total"])}
