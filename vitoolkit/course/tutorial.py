"""The run-time contract every tutorial script follows.

A tutorial is a plain script (``tutorials/NN_name.py``) that reads top to bottom
as a lesson. It starts with::

    from vitoolkit.course import Tutorial
    tut = Tutorial("01_elbo_anatomy")

and then uses

- ``tut.quick`` (bool) to choose the small CI setting,
- ``tut.seed`` (int) to seed its local generators (``tut.generator()``,
  ``tut.rng()``),
- ``tut.record(name, value)`` to print a key number (rounded to four significant
  digits, :mod:`vitoolkit.course.numbers`) and keep it at full precision for the summary,
- ``tut.claim(statement, holds, **evidence)`` to check a sentence of the lesson
  against this run's numbers (see :meth:`Tutorial.claim`); in the quick setting a
  ``full_only`` claim reads "checked at full size", neither held nor failed,
- ``tut.progress`` (bool) to pass to long loops (``train(..., progress=tut.progress)``):
  true when ``$VITOOLKIT_PROGRESS`` is set, as ``vitoolkit run`` does,
- ``tut.savefig(fig, name)`` to save a figure (PNG, plus any extra formats asked
  for) into the output folder; in a notebook the figure is also shown inline.
  Each figure is checked as it is saved (the rules of
  :func:`vitoolkit.plotting.check_figure`: legends over data, overlapping tick
  labels, colliding titles, empty axes); what it finds is printed and recorded
  under ``"figure_problems"``,
- ``tut.finish()`` at the end to write ``summary.json``; it raises
  :class:`ClaimFailed` (so the script exits non-zero) when a claim did not hold.

``Tutorial(...)`` first states the setting and seed of the numbers that follow
(``Numbers on this page: quick setting, seed 0`` in a notebook; a script prints
``Numbers in this run: ...`` with its output folder). In a notebook no Tutorial call
echoes its return value.

Settings come from the command line (``--quick``, ``--out DIR``, ``--seed N``,
``--formats png,svg``, ``--threads N``: torch intra-op threads, default 1) or,
when the script runs where there is no command line of its own (a notebook, a
documentation build), from the environment variables ``VITOOLKIT_QUICK``,
``VITOOLKIT_OUT``, ``VITOOLKIT_SEED``, ``VITOOLKIT_FORMATS`` and
``VITOOLKIT_THREADS``. Unknown command-line arguments (a Jupyter kernel's) are
ignored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write, check_output_dir, write_text
from ..validation import MAX_SEED, check_int
from .arguments import out_error, parse_seed, positive_int_type, seed_type
from .numbers import DIGITS, format_value, plain, significant_digits, to_jsonable

__all__ = ["Tutorial", "ClaimFailed", "to_jsonable"]

_TRUE = {"1", "true", "yes", "on"}


class ClaimFailed(AssertionError):
    """A sentence of a lesson that this run's numbers contradict.

    Raised by :meth:`Tutorial.finish` with every failed statement in its message.
    """


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where figures should be displayed inline)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _as_bool(holds: Any) -> bool:
    """``holds`` as a Python bool: bools, NumPy bools and one-element tensors/arrays."""
    if isinstance(holds, (bool, np.bool_)):
        return bool(holds)
    size = getattr(holds, "size", None)
    size = size() if callable(size) else size
    numel = getattr(holds, "numel", None)
    count = numel() if callable(numel) else size
    if count == 1 and hasattr(holds, "dtype") and "bool" in str(holds.dtype):
        return bool(holds.item() if hasattr(holds, "item") else holds)
    raise TypeError(
        f"claim: holds must be a bool (the condition on this run's numbers), got "
        f"{type(holds).__name__} {holds!r}; compare numbers explicitly, e.g. a < b"
    )


#: What a claim's line says after its statement: held, did not hold, or left to the full-size run.
_MARKS = {"holds": "\u2713", "fails": "\u2717", "unchecked": "~"}
#: The words a notebook's callout opens with, by the same key.
_CALLOUT = {"holds": "Claim \u2713 holds:", "fails": "Claim \u2717 does not hold:",
            "unchecked": "Checked at full size:"}
#: The note after an unchecked claim: neutral, never a failure.
UNCHECKED_NOTE = "checked at full size"


def _claim_state(ok: bool, checked: bool) -> str:
    return "unchecked" if not checked else ("holds" if ok else "fails")


def _evidence_text(evidence: dict, sep: str = "=") -> str:
    """The evidence as ``name=value, ...``, each value rounded (:func:`format_value`)."""
    return ", ".join(f"{k}{sep}{format_value(v)}" for k, v in evidence.items())


def claim_line(statement: str, ok: bool, checked: bool, evidence: dict) -> str:
    """The printed line of a claim: ``[claim ✓] statement  [a=1.234, b=nan]``.

    A full-size claim in the quick setting (``checked=False``) reads
    ``[claim ~] statement  [...]  (checked at full size)``: neutral, not a failure.
    """
    shown = _evidence_text(evidence)
    line = f"[claim {_MARKS[_claim_state(ok, checked)]}] {statement}" + (f"  [{shown}]" if shown else "")
    return line if checked else f"{line}  ({UNCHECKED_NOTE})"


def claim_html(statement: str, ok: bool, checked: bool, evidence: dict) -> str:
    """A claim as the notebook's callout (HTML).

    Classes: ``vt-claim`` always, plus ``vt-claim-failed`` (checked, did not hold) or
    ``vt-claim-unchecked`` (a full-size claim in the quick setting, shown neutrally as
    "checked at full size" with this run's numbers labelled as the quick setting's).
    """
    import html

    state = _claim_state(ok, checked)
    kind = "vt-claim" + {"holds": "", "fails": " vt-claim-failed", "unchecked": " vt-claim-unchecked"}[state]
    shown = _evidence_text(evidence, " = ")
    if shown and state == "unchecked":
        shown = f"quick setting: {shown}"
    return (f'<div class="{kind}"><p><strong>{_CALLOUT[state]}</strong> {html.escape(statement)}</p>'
            + (f'<p class="vt-claim-evidence">{html.escape(shown)}</p>' if shown else "")
            + "</div>")


def _display(html_text: str, plain_text: str) -> None:
    from IPython.display import display

    display({"text/html": html_text, "text/plain": plain_text}, raw=True)


def setting_line(quick: bool, seed: int, where: str = "on this page") -> str:
    """``Numbers on this page: quick setting, seed 0``: what a page's numbers come from."""
    return f"Numbers {where}: {'quick' if quick else 'full'} setting, seed {seed}"


#: The value the last Tutorial call returned, which the notebook must not echo.
_QUIET: list = [None]


def _install_quiet_displayhook() -> None:
    """Wrap the kernel's display hook once so that it skips :data:`_QUIET`'s value.

    IPython installs ``shell.display_trap.hook`` as ``sys.displayhook`` for each cell;
    the wrapper forwards every other result unchanged.
    """
    import IPython

    trap = IPython.get_ipython().display_trap
    if getattr(trap.hook, "_vitoolkit_quiet", False):
        return
    inner = trap.hook

    def hook(value):
        quiet, _QUIET[0] = _QUIET[0], None
        if value is not None and value is quiet:
            return None
        return inner(value)

    hook._vitoolkit_quiet = True
    trap.hook = hook
    if sys.displayhook is inner:  # the current cell, already inside the trap
        sys.displayhook = hook


class Tutorial:
    """Settings, outputs and the summary of one tutorial run.

    Parameters
    ----------
    name : str
        The tutorial's name, ``NN_name`` (the file name without ``.py``).
    argv : list of str, optional
        Command-line arguments; defaults to ``sys.argv[1:]``.
    """

    def __init__(self, name: str, argv: list[str] | None = None):
        parser = argparse.ArgumentParser(prog=f"{name}.py", add_help=True)
        parser.add_argument("--quick", action="store_true", help="small setting for CI")
        parser.add_argument("--out", default=None, help="output folder")
        parser.add_argument("--seed", type=seed_type, default=None,
                            help="random seed, an integer in 0..2**63-1 (default 0)")
        parser.add_argument("--formats", default=None, help="figure formats, e.g. png,svg")
        parser.add_argument("--threads", type=positive_int_type, default=None,
                            help="torch intra-op threads (default 1)")
        args, _unknown = parser.parse_known_args(sys.argv[1:] if argv is None else argv)

        env = os.environ
        self.name = name
        self.quick = bool(args.quick) or env.get("VITOOLKIT_QUICK", "").lower() in _TRUE
        #: Whether long loops in the lesson show progress (``train(..., progress=tut.progress)``):
        #: on when ``$VITOOLKIT_PROGRESS`` is set (``vitoolkit run`` sets it), off in notebooks.
        self.progress = env.get("VITOOLKIT_PROGRESS", "").lower() in _TRUE
        # One rule for every tutorial (vitoolkit.course.arguments): 0 <= seed <= 2**63 - 1.
        self.seed = args.seed if args.seed is not None else parse_seed(
            env.get("VITOOLKIT_SEED", "0"), "VITOOLKIT_SEED")
        out = args.out or env.get("VITOOLKIT_OUT") or os.path.join("results", name)
        try:
            self.out = check_output_dir(out, "--out" if args.out else "VITOOLKIT_OUT"
                                        if env.get("VITOOLKIT_OUT") else "the output folder")
        except OSError as err:
            if args.out and argv is None:  # a script run from a shell: a usage error, no traceback
                parser.error(out_error(err))
            raise
        formats = args.formats or env.get("VITOOLKIT_FORMATS", "png")
        self.formats = [f.strip().lower() for f in formats.split(",") if f.strip()]
        unknown = set(self.formats) - {"png", "svg", "pdf"}
        if unknown:
            raise ValueError(f"formats must be among png, svg, pdf; got {sorted(unknown)}")
        if args.threads is not None:
            self.threads = args.threads
        else:
            try:
                self.threads = positive_int_type(env.get("VITOOLKIT_THREADS", "1"))
            except argparse.ArgumentTypeError as err:
                raise ValueError(f"threads (VITOOLKIT_THREADS) {err}") from None
        # The tutorials' models are small: one intra-op thread avoids synchronisation
        # costs that dominate tiny tensor operations. Restored by finish().
        import torch

        self._threads_before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        self.summary: dict[str, Any] = {}
        self.figures: list[str] = []
        self.claims: list[dict[str, Any]] = []
        self.figure_problems: dict[str, list[str]] = {}
        self._start = time.perf_counter()
        self._notebook = _in_notebook()
        if self._notebook:
            _install_quiet_displayhook()
        self.interactive: list[str] = []
        #: "Numbers on this page: quick setting, seed 0" (the notebook's line; a script prints
        #: "Numbers in this run: ..." with the output folder).
        self.setting = setting_line(self.quick, self.seed)
        if self._notebook:
            _display(f'<p class="vt-setting">{self.setting}</p>', self.setting)
        else:
            print(f"# {name}: {setting_line(self.quick, self.seed, 'in this run')} (output: {self.out})")

    # -- randomness -------------------------------------------------------
    def derived_seed(self, offset: int = 0) -> int:
        """``seed + offset``, wrapped into ``[0, 2**63 - 1]`` (so it is a valid seed for any seed).

        Equal to ``seed + offset`` unless the sum passes ``2**63 - 1``; use it wherever
        a tutorial needs a second seed (``derived_seed(1)`` rather than ``seed + 1``).
        """
        offset = check_int(offset, "offset", minimum=0)
        return (self.seed + offset) % (MAX_SEED + 1)

    def generator(self, offset: int = 0):
        """A fresh ``torch.Generator`` seeded with :meth:`derived_seed` ``(offset)``."""
        import torch

        return torch.Generator().manual_seed(self.derived_seed(offset))

    def rng(self, offset: int = 0) -> np.random.Generator:
        """A fresh ``numpy.random.Generator`` seeded with :meth:`derived_seed` ``(offset)``."""
        return np.random.default_rng(self.derived_seed(offset))

    def choose(self, quick: Any, full: Any) -> Any:
        """Return ``quick`` in the quick setting, else ``full``."""
        return quick if self.quick else full

    # -- outputs ----------------------------------------------------------
    def record(self, name: str, value: Any, fmt: str | None = None) -> Any:
        """Print a key number and keep it for ``summary.json``; return ``value``.

        The printed value is rounded to at most four significant digits, nested
        lists, arrays and dicts included (:func:`~vitoolkit.course.numbers.format_value`;
        NaN prints as ``nan``); ``fmt`` (a format spec such as ``".2f"``) may round a
        number further, never show more than four significant digits of a float;
        ``summary.json`` keeps the full precision. In a notebook the
        returned value is not echoed as the cell's result.
        """
        value_json = to_jsonable(value)
        self.summary[name] = value_json
        shown = format_value(value)
        if fmt is not None and isinstance(value_json, (int, float)) and not isinstance(value_json, bool):
            formatted = format(value_json, fmt)
            # fmt may round further (".2f") or show an integer as it is, never more digits.
            if isinstance(value_json, int) or significant_digits(formatted) <= DIGITS:
                shown = formatted
        print(f"{name} = {shown}")
        return self._quiet(value)

    def claim(self, statement: str, holds: Any, *, full_only: bool = False, **evidence: Any) -> bool:
        """Check one sentence of the lesson against this run's numbers.

        Parameters
        ----------
        statement : str
            The sentence exactly as the student reads it in the text.
        holds : bool
            The condition on this run's numbers that makes the sentence true
            (a Python or NumPy bool, or a one-element boolean tensor).
        full_only : bool, default False
            The sentence is about the full-size run only; in the quick setting it
            is printed and recorded but a failure does not fail the run.
        **evidence
            The numbers the claim rests on (floats, tensors, arrays, lists), printed
            with it rounded to four significant digits and recorded in ``summary.json``
            at full precision.

        Returns
        -------
        bool
            Whether the claim held. A claim that does not hold (and is checked in
            this setting) makes :meth:`finish` raise :class:`ClaimFailed`.
        """
        if not isinstance(statement, str) or not statement.strip():
            raise TypeError(f"claim: statement must be a non-empty str, got {statement!r}")
        ok = _as_bool(holds)
        checked = not (full_only and self.quick)
        evidence_json = {k: to_jsonable(v) for k, v in evidence.items()}
        self.claims.append({
            "statement": statement,
            "holds": ok,
            "checked": checked,
            "full_only": bool(full_only),
            "setting": "quick" if self.quick else "full",
            "evidence": evidence_json,
        })
        shown = {k: plain(v) for k, v in evidence.items()}
        line = claim_line(statement, ok, checked, shown)
        if self._notebook:
            _display(claim_html(statement, ok, checked, shown), line)
        else:
            print(line)
        return self._quiet(ok)

    def _quiet(self, value):
        """Return ``value``; in a notebook, a cell ending in this call does not echo it.

        ``record`` prints its value, ``claim`` shows a callout and ``savefig`` the figure:
        the returned value shown again as the cell's result would only repeat them.
        """
        if self._notebook:
            _QUIET[0] = value
        return value

    @property
    def failed_claims(self) -> list[str]:
        """The statements of the claims checked in this setting that did not hold."""
        return [c["statement"] for c in self.claims if c["checked"] and not c["holds"]]

    def _record_figure_problems(self, name: str, problems: list[str]) -> None:
        self.figure_problems[name] = list(problems)
        for problem in problems:
            print(f"[figure \u26a0] {name}: {problem}")

    def savefig(self, fig, name: str) -> list[Path]:
        """Save ``fig`` as ``<out>/<name>.<fmt>`` for each format, checking it; return the paths.

        The drawing that writes the file is measured by
        :func:`vitoolkit.plotting.check_figure`'s rules (legends over data,
        overlapping tick labels, colliding titles, empty axes; no extra draw):
        what it finds is printed as ``[figure ⚠] name: problem`` and recorded in
        ``summary.json`` under ``"figure_problems"`` (one list per figure, empty
        when clean). A problem does not fail the run; the test suite asserts
        there are none. Each file is written to a temporary name in the same
        folder, fsynced and moved into place (:func:`vitoolkit.fileio.atomic_write`),
        so a reader never sees half a figure. In a
        Jupyter kernel the figure is then displayed inline; either way it is
        closed afterwards, so a long lesson does not accumulate open figures.
        """
        if not isinstance(name, str) or not name or "/" in name or "\\" in name:
            raise ValueError(f"savefig: name must be a plain file stem, got {name!r}")
        from vitoolkit.plotting.figure_check import check_figure, checked_draw

        paths = []
        with checked_draw(fig) as check:
            for fmt in self.formats:
                path = self.out / f"{name}.{fmt}"
                with atomic_write(path, "wb") as handle:  # a file object: the format is explicit
                    fig.savefig(handle, dpi=150, bbox_inches="tight", format=fmt)
                paths.append(path)
        problems = check.problems
        if check.error is not None:
            problems = [f"the figure check could not run: {type(check.error).__name__}: {check.error}"]
        elif problems is None:  # nothing was drawn (e.g. an invisible figure): check it on its own
            problems = check_figure(fig)
        self._record_figure_problems(name, problems)
        self.figures.append(name)
        import matplotlib.pyplot as plt

        if _in_notebook():
            import io

            from IPython.display import Image, display

            # The PNG itself, whatever matplotlib backend the kernel runs.
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
            display(Image(data=buffer.getvalue(), format="png"))
        else:
            print(f"[figure] {paths[0]}")
        plt.close(fig)
        return self._quiet(paths)

    def save_interactive(self, fig, name: str) -> Path:
        """Save a Plotly figure as ``<out>/<name>.html``, self-contained (plotly.js inside).

        The file opens from ``file://`` with no network. In a Jupyter kernel (and so
        in the course book) the figure is also shown inline, as one output holding
        two forms: Plotly's own MIME type (``application/vnd.plotly.v1+json``,
        drawn by the renderer the ``plotly`` package installs into JupyterLab,
        Notebook 7 and VS Code) and an HTML ``<div>`` whose script calls the page's
        ``Plotly`` without embedding plotly.js (about 4.6 MB). The course book
        shows the HTML form and loads plotly.js once, from its ``_static`` folder,
        on the pages that have such a figure (see ``docs/conf.py``). Figures come
        from :mod:`vitoolkit.plotting.interactive`.
        """
        if not isinstance(name, str) or not name or "/" in name or "\\" in name:
            raise ValueError(f"save_interactive: name must be a plain file stem, got {name!r}")
        if not hasattr(fig, "to_html"):
            raise TypeError(f"save_interactive: fig must be a plotly Figure, got {type(fig).__name__}")
        path = write_text(self.out / f"{name}.html", fig.to_html(include_plotlyjs=True, full_html=True))
        self.interactive.append(name)
        if self._notebook:
            from IPython.display import display

            config = {"responsive": True, "displaylogo": False}
            bundle = {
                "application/vnd.plotly.v1+json": {**json.loads(fig.to_json()), "config": config},
                "text/html": fig.to_html(include_plotlyjs=False, full_html=False, config=config,
                                         default_width="100%", div_id=f"vt-plotly-{name}"),
                "text/plain": f"[interactive figure {name}: {path.name}]",
            }
            display(bundle, raw=True)
        else:
            print(f"[interactive] {path}")
        return self._quiet(path)

    def finish(self) -> Path:
        """Write ``summary.json`` (numbers, figures, claims, settings) atomically; return its path.

        The file is strict JSON at full precision; a non-finite number is stored as the
        string ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has no NaN). In a notebook the
        returned path is not echoed as the cell's result.

        Raises
        ------
        ClaimFailed
            After writing the summary, when a claim checked in this setting did
            not hold; the message lists every such statement.
        """
        payload = {
            "tutorial": self.name,
            "quick": self.quick,
            "seed": self.seed,
            "seconds": round(time.perf_counter() - self._start, 3),
            "figures": self.figures,
            "interactive": self.interactive,
            "numbers": self.summary,
            "claims": self.claims,
            "figure_problems": self.figure_problems,
        }
        # allow_nan=False: the file is strict JSON (non-finite numbers are the strings
        # "nan", "inf", "-inf", see to_jsonable).
        path = write_text(self.out / "summary.json",
                          json.dumps(payload, indent=2, sort_keys=False, allow_nan=False))
        import torch

        torch.set_num_threads(self._threads_before)
        held = sum(c["holds"] for c in self.claims if c["checked"])
        checked = sum(c["checked"] for c in self.claims)
        problems = sum(len(p) for p in self.figure_problems.values())
        mark = f", \u26a0 {problems} figure problem(s)" if problems else ""
        if not self._notebook:
            print(f"[summary] {path}  ({held} of {checked} checked claims hold{mark})")
        failed = self.failed_claims
        if failed:
            lines = "\n".join(f"  - {s}" for s in failed)
            raise ClaimFailed(f"{self.name}: {len(failed)} claim(s) did not hold on this run:\n{lines}")
        return self._quiet(path)
