"""Printed numbers (at most four significant digits, nan unquoted) and the strict JSON summary."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vitoolkit.course.numbers import format_value, to_jsonable
from vitoolkit.course.tutorial import Tutorial


def _significant_digits(text: str) -> int:
    """Significant digits of a printed decimal (trailing zeros of an integer are placeholders)."""
    mantissa = text.lstrip("-").split("e")[0]
    digits = mantissa.replace(".", "").lstrip("0")
    if "." not in mantissa:
        digits = digits.rstrip("0")
    return len(digits)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_prints_with_at_most_four_significant_digits_and_reads_back_close(x):
    text = format_value(x)
    assert re.fullmatch(r"-?\d+(\.\d+)?(e[+-]\d+)?", text), text
    assert _significant_digits(text) <= 4, text
    # Rounding to 4 significant digits moves a number by at most half a unit in the 4th digit.
    assert math.isclose(float(text), x, rel_tol=5e-4, abs_tol=0.0), (x, text)


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_integers_print_exactly(n):
    assert format_value(n) == str(n) and format_value(np.int64(n)) == str(n)


def test_nested_values_are_rounded_and_non_finite_values_unquoted():
    value = {"a": np.array([[0.5145720622270481, np.nan], [np.inf, -12345.678]]),
             "b": (torch.tensor(2.0), "text", True), "c": -0.0}
    assert format_value(value) == "{'a': [[0.5146, nan], [inf, -12350]], 'b': [2, 'text', True], 'c': 0}"
    assert format_value(np.arange(12.0) / 3) == (
        "[0, 0.3333, 0.6667, 1, 1.333, 1.667, 2, 2.333, 2.667, 3, ... (12 values)]")
    assert format_value(float("nan")) == "nan" and format_value(np.float32("-inf")) == "-inf"
    assert format_value("plain text") == "plain text"


def test_summary_keeps_full_precision_as_strict_json(tmp_path, capsys):
    tut = Tutorial("t", ["--out", str(tmp_path), "--seed", "5"])
    tut.record("x", 0.5145720622270481)
    tut.record("xs", np.array([1 / 3, np.nan]))
    tut.record("fixed", 2.0 / 3.0, fmt=".2f")
    tut.claim("a gap is positive", 0.25 > 0, gap=0.123456789, err=float("inf"))
    tut.finish()
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"# t: Numbers in this run: full setting, seed 5 (output: {tmp_path})"
    assert "x = 0.5146\n" in out and "xs = [0.3333, nan]\n" in out and "fixed = 0.67\n" in out
    assert "[claim \u2713] a gap is positive  [gap=0.1235, err=inf]" in out
    assert "'nan'" not in out
    text = (tmp_path / "summary.json").read_text()

    def refuse(token):
        raise AssertionError(f"summary.json holds the non-JSON constant {token}")

    summary = json.loads(text, parse_constant=refuse)
    assert summary["numbers"]["x"] == 0.5145720622270481
    assert summary["numbers"]["xs"] == [1 / 3, "nan"]
    assert summary["claims"][0]["evidence"] == {"gap": 0.123456789, "err": "inf"}
    assert to_jsonable(np.float64("nan")) == "nan"


def test_full_only_claims_read_as_checked_at_full_size_in_the_quick_setting(tmp_path, capsys):
    tut = Tutorial("t", ["--out", str(tmp_path), "--quick"])
    tut.claim("only at full size", False, full_only=True, mig=0.0123456)
    tut.finish()
    out = capsys.readouterr().out
    assert "Numbers in this run: quick setting, seed 0" in out
    assert "[claim ~] only at full size  [mig=0.01235]  (checked at full size)" in out
    assert "0 of 0 checked claims hold" in out


@pytest.mark.parametrize("value", [float("nan"), [1.0, float("nan")]])
def test_json_round_trip_of_non_finite_values(value):
    assert json.loads(json.dumps(to_jsonable(value), allow_nan=False)) == to_jsonable(value)


def test_a_record_format_may_round_further_but_never_shows_more_than_four_digits(capsys):
    from vitoolkit.course.numbers import significant_digits
    from vitoolkit.course.tutorial import Tutorial

    assert [significant_digits(t) for t in ("0.01230", "-1.5e-03", "123.456", "0", "12.50")] == \
        [4, 2, 6, 1, 4]
    tut = Tutorial("00_numbers", argv=["--quick"])
    tut.record("coarse", 3.14159, ".2f")
    tut.record("too_fine", -30.7018412352, ".10f")
    tut.record("count", 123456, "d")
    out = capsys.readouterr().out
    assert "coarse = 3.14\n" in out and "too_fine = -30.7\n" in out and "count = 123456\n" in out
    assert tut.summary["too_fine"] == -30.7018412352
