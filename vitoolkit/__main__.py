"""``python -m vitoolkit`` is the ``vitoolkit`` command."""

import sys

from .cli import main

sys.exit(main())
