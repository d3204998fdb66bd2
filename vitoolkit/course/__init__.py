"""Course tooling: the tutorial runtime, the ``vitoolkit`` command and the course book.

Tutorials start with ``from vitoolkit.course import Tutorial``. The algorithm layers
(the core, the four topics, plotting) never import this package; it sits above them.

- :mod:`vitoolkit.course.tutorial`: :class:`Tutorial` (settings, numbers, claims, figures,
  ``summary.json``) and :class:`ClaimFailed`.
- :mod:`vitoolkit.course.catalog`: finding the tutorials and their questions.
- :mod:`vitoolkit.course.cli`: the ``vitoolkit`` command.
- :mod:`vitoolkit.course.notebooks`: each tutorial executed as a notebook, once per change
  (cached), for the book and the tests.
- :mod:`vitoolkit.course.book`: the course book (Sphinx + MyST-NB).
"""

from .catalog import TutorialInfo, find_tutorials, tutorials_dir
from .tutorial import ClaimFailed, Tutorial, to_jsonable

__all__ = ["ClaimFailed", "Tutorial", "TutorialInfo", "find_tutorials", "to_jsonable", "tutorials_dir"]
