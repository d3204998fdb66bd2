"""What ``vitoolkit run`` shows while a tutorial runs, and the line it ends with.

The tutorial's process prints its sections as it reaches them (``[section] Title``,
:mod:`vitoolkit.course.script`) and its training loops' epochs as plain progress
lines (``[progress] train: epoch 3/20, ...``, :mod:`vitoolkit.progress`).
:class:`RunView` shows them: on a terminal the epochs drive a tqdm bar that redraws
in place; elsewhere (a CI log) each is a plain line, the epochs of one loop thinned
to the first, the last and one every ``interval`` seconds. A claim that did not hold
(``[claim ✗]``) and a figure problem (``[figure ⚠]``) show as they happen; with
``verbose`` every other line the tutorial prints (records, claims, figures) is shown too.
:func:`summary_line` is the one line per tutorial at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import IO

from ..progress import parse_line
from .script import SECTION

__all__ = ["RunView", "summary_line"]

INDENT = "    "
#: Lines shown even without ``verbose``: a claim that did not hold, a figure problem.
_ALWAYS = ("[claim \u2717]", "[figure \u26a0]")
_CLOCK = re.compile(r" \(\d+(\.\d+)? s\)$")


class RunView:
    """Show one tutorial's output lines as they arrive (see the module docstring).

    Parameters
    ----------
    verbose : bool
        Show every line, not only sections and progress.
    stream : text stream, default ``sys.stdout``
    tty : bool, optional
        Draw a bar that redraws (default: whether ``stream`` is a terminal).
    interval : float
        In plain mode, the seconds between two shown epoch lines of one loop.
    """

    def __init__(self, verbose: bool = False, stream: IO[str] | None = None, tty: bool | None = None,
                 interval: float = 10.0):
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        if tty is None:
            try:
                tty = self.stream.isatty()
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.interval = interval
        self._bar = None
        self._last = None  # (desc, total, n) of the last progress line
        self._shown_at = -float("inf")

    def _write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.clear()
        print(text, file=self.stream, flush=True)
        if self._bar is not None:
            self._bar.refresh()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def feed(self, line: str) -> None:
        """Show (or not) one line of the tutorial's output."""
        line = line.rstrip("\n")
        if line.startswith(SECTION + " "):
            self._close_bar()
            self._last = None
            self._write(INDENT + line[len(SECTION) + 1:])
            return
        step = parse_line(line)
        if step is not None:
            self._progress(step, line)
            return
        if self.verbose or line.startswith(_ALWAYS):
            self._write(INDENT + line)

    def _progress(self, step: dict, line: str) -> None:
        key = (step["desc"], step["total"])
        new_loop = self._last is None or self._last[:2] != key or step["n"] <= self._last[2]
        self._last = (*key, step["n"])
        if self.tty:
            from tqdm import tqdm

            if new_loop or self._bar is None:
                self._close_bar()
                # The terminal's width ($COLUMNS, else the terminal's own, else 80 columns).
                self._bar = tqdm(total=step["total"], desc=INDENT + step["desc"], unit=step["unit"],
                                 file=self.stream, leave=False, ncols=shutil.get_terminal_size().columns)
            self._bar.update(step["n"] - self._bar.n)
            # The child's own clock "(4.1 s)" is left out: the bar shows the elapsed time.
            self._bar.set_postfix_str(_CLOCK.sub("", step["rest"]).lstrip(", "), refresh=True)
            if step["n"] >= step["total"]:
                self._close_bar()
            return
        now = time.monotonic()
        if new_loop or step["n"] >= step["total"] or now - self._shown_at >= self.interval:
            self._shown_at = now
            self._write(INDENT + line)

    def close(self) -> None:
        """Remove a bar still drawn (the tutorial stopped mid-loop)."""
        self._close_bar()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(summary_path: Path, seconds: float) -> str:
    """``23 claims hold, 2 full-size claims not checked; 4 figures; 61 s`` from a ``summary.json``.

    Claims that did not hold are counted first (``1 claim does not hold``); a figure
    problem found by the figure check adds ``1 figure problem``. Empty when the
    summary cannot be read.
    """
    try:
        summary = json.loads(Path(summary_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    claims = summary.get("claims", [])
    checked = [c for c in claims if c.get("checked", True)]
    failed = sum(not c.get("holds") for c in checked)
    held = len(checked) - failed
    unchecked = len(claims) - len(checked)
    parts = []
    if failed:
        parts.append(f"{failed} {'claim does' if failed == 1 else 'claims do'} not hold")
    parts.append(f"{held} {'claim holds' if held == 1 else 'claims hold'}")
    if unchecked:
        parts.append(f"{_plural(unchecked, 'full-size claim')} not checked")
    figures = len(summary.get("figures", [])) + len(summary.get("interactive", []))
    problems = sum(len(p) for p in summary.get("figure_problems", {}).values())
    tail = [_plural(figures, "figure")]
    if problems:
        tail.append(_plural(problems, "figure problem"))
    return ", ".join(parts) + "; " + ", ".join(tail) + f"; {seconds:.0f} s"
