"""One diagnosis per submission: the known mistake that explains the most failed checks.

Each failed comparison records every known mistake whose output the student's
output matches (:class:`~vitoolkit.exercises.grading.Evidence`), and each passing
comparison the mistakes it could have seen. A mistake that a passing check could
see is ruled out (the code did not make it there). Of the rest, the one matched
by the most failed checks is the diagnosis, reported once with its evidence (how
many of the failed checks it explains, and which); the failed checks it explains
name it, so the rows of a report never contradict each other. When no known
mistake matches, the diagnosis is the first failed check's message.
"""

from __future__ import annotations

from dataclasses import replace

from .grading import Evidence
from .report import CheckResult

__all__ = ["diagnose"]


def _names(names: list[str], limit: int = 3) -> str:
    shown = "; ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def diagnose(checks: list[CheckResult], evidence: dict[str, Evidence],
             ruled_out: set[str]) -> tuple[str, list[CheckResult]]:
    """``(diagnosis, checks)``: the one-line diagnosis and the checks with consistent messages."""
    failed = [c for c in checks if not c.passed]
    if not failed:
        return "", checks
    seen: dict[str, list[str]] = {}
    for c in failed:
        ev = evidence.get(c.name)
        for description in (ev.matched if ev else []):
            seen.setdefault(description, []).append(c.name)
    candidates = [d for d in seen if d not in ruled_out] or list(seen)
    if not candidates:
        first = failed[0]
        more = f" (and {len(failed) - 1} more failed checks)" if len(failed) > 1 else ""
        return f"{first.name}: {first.message}{more}", checks
    best = max(candidates, key=lambda d: len(seen[d]))  # max keeps the first of equals
    explained = seen[best]
    unexplained = [c.name for c in failed if c.name not in explained]
    if len(explained) == len(failed):
        text = f"{best} (in all {len(failed)} failed checks)" if len(failed) > 1 else best
    else:
        text = f"{best} (in {len(explained)} of {len(failed)} failed checks: {_names(explained)})"
    if best in ruled_out:
        text += "; other checks passed where this mistake would show, so it is made in some cases only"
    if unexplained:
        text += f"; not explained: {_names(unexplained)}"
    out = []
    for c in checks:
        ev = evidence.get(c.name)
        if not c.passed and ev is not None and best in ev.matched and ev.matched[0] != best:
            c = replace(c, message=c.message.replace(ev.matched[0], best, 1))
        out.append(c)
    return text, out
