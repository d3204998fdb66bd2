"""``python -m vitoolkit`` is the ``vitoolkit`` command."""

import sys

from .course.cli import main

sys.exit(main())
