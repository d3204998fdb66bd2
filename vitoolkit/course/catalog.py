"""The tutorials a course has: where they live, their titles and the questions they answer.

Shared by the ``vitoolkit`` command (:mod:`vitoolkit.course.cli`) and the book builder
(:mod:`vitoolkit.course.book`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TutorialInfo", "find_tutorials", "tutorials_dir"]


@dataclass(frozen=True)
class TutorialInfo:
    """A tutorial script: its name, path, title and one-line question."""

    name: str
    path: Path
    title: str
    question: str


def tutorials_dir() -> Path:
    """Where the tutorial scripts live.

    ``$VITOOLKIT_TUTORIALS`` if set, else the ``tutorials/`` folder beside the
    installed package (a source checkout or an editable install), else
    ``./tutorials``.
    """
    env = os.environ.get("VITOOLKIT_TUTORIALS")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[2] / "tutorials"
    if beside.is_dir():
        return beside
    return Path.cwd() / "tutorials"


def header_markdown(source: str) -> str | None:
    """The tutorial's opening Markdown cell (its title and question), without the ``# `` prefixes.

    A tutorial starts with a ``# %% [markdown]`` cell whose first line is the title
    (``# # Title``) and which states the course question (``# Question: ...``): the
    script reads it as comments and Jupyter (jupytext) opens it as a Markdown cell.
    Returns None when the first cell is not Markdown.
    """
    lines = source.splitlines()
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or not lines[i].strip().startswith("# %% [markdown]"):
        return None
    text = []
    for line in lines[i + 1:]:
        if not line.startswith("#") or line.startswith("# %%"):
            break
        text.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(text).strip()


def _describe(path: Path) -> tuple[str, str]:
    doc = header_markdown(path.read_text(encoding="utf-8")) or ""
    lines = [line.strip() for line in doc.splitlines()]
    title = next((line.lstrip("#").strip() for line in lines if line), path.stem)
    question = next(
        (line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("question:")),
        "",
    )
    return title, question


def find_tutorials(directory: Path | None = None) -> list[TutorialInfo]:
    """All ``NN_name.py`` scripts in ``directory``, in order."""
    directory = tutorials_dir() if directory is None else Path(directory)
    found = []
    for path in sorted(directory.glob("[0-9][0-9]_*.py")):
        title, question = _describe(path)
        found.append(TutorialInfo(path.stem, path, title, question))
    return found
