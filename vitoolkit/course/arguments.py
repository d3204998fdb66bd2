"""The command-line arguments every course entry point shares, validated one way.

``vitoolkit run``, ``vitoolkit book``, ``vitoolkit exercise check`` and every
tutorial script (through :class:`vitoolkit.course.Tutorial`) read ``--seed``,
``--threads`` and ``--out`` with these functions, so one value is accepted or
refused the same way everywhere, with a message naming the option:

- :func:`seed_type`: a decimal integer in ``[0, 2**63 - 1]``
  (:func:`vitoolkit.validation.check_seed`); ``1.5``, ``-1``, ``2**70`` and
  ``1e3`` are refused, not truncated or wrapped.
- :func:`positive_int_type`: a decimal integer >= 1 (``--threads``).
- :func:`out_error`: the one-line message for an ``--out`` that
  :func:`vitoolkit.fileio.check_output_dir` refused (not a folder, not
  writable), naming the option and the path.
"""

from __future__ import annotations

import argparse
import re

from ..fileio import output_error_message
from ..validation import MAX_SEED, check_int, check_seed

__all__ = ["seed_type", "parse_seed", "positive_int_type", "out_error"]

_INTEGER = re.compile(r"[+-]?[0-9]+")


def _integer(text, what: str) -> int:
    """``text`` (a str from the command line or the environment, or an int) as an int."""
    if isinstance(text, str):
        stripped = text.strip()
        if not _INTEGER.fullmatch(stripped):
            raise TypeError(f"{what}, got {text!r}")
        return int(stripped)
    return text


def parse_seed(text, name: str = "--seed") -> int:
    """A seed given as text (or an int): a decimal integer in ``[0, 2**63 - 1]``.

    Raises ``ValueError`` (a ``TypeError`` for a non-integer such as ``"1.5"``)
    whose message names ``name``.
    """
    expected = f"{name} must be an integer in 0..2**63-1 ({MAX_SEED})"
    value = _integer(text, expected)
    try:
        return check_seed(value, name)
    except ValueError:
        raise ValueError(f"{expected}, got {value}") from None


def seed_type(text: str) -> int:
    """``argparse`` type of ``--seed`` (see :func:`parse_seed`)."""
    try:
        return parse_seed(text, "--seed")
    except (TypeError, ValueError) as err:
        # argparse prefixes "argument --seed: "; say the rule once.
        raise argparse.ArgumentTypeError(str(err).replace("--seed must be", "must be")) from None


def positive_int_type(text: str) -> int:
    """``argparse`` type of a count option such as ``--threads``: a decimal integer >= 1."""
    try:
        return check_int(_integer(text, "must be an integer >= 1"), "value", minimum=1)
    except (TypeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err).replace("value must be", "must be")) from None


#: One line for an ``OSError`` from :func:`vitoolkit.fileio.check_output_dir`; it lives in
#: :mod:`vitoolkit.fileio` so that :mod:`vitoolkit.exercises` (below the course layer) uses it too.
out_error = output_error_message

