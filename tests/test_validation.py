"""vitoolkit.validation: every check names the argument, refuses the wrong kind with TypeError,
the wrong value with ValueError, and an oversized request with ResourceLimitError before allocating."""

from __future__ import annotations

import enum
import math
import re

import numpy as np
import pytest
import scipy.sparse
import torch
from hypothesis import given
from hypothesis import strategies as st

from vitoolkit.exceptions import ResourceLimitError
from vitoolkit.validation import (
    MAX_SEED,
    as_float_array,
    as_float_tensor,
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_memory,
    check_positive,
    check_probability,
    check_real,
    check_seed,
    check_shape,
    format_bytes,
    memory_limit,
)

NAME = "my_arg"
INT_TYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)


def named(err: pytest.ExceptionInfo) -> bool:
    return re.search(rf"\b{NAME}\b", str(err.value)) is not None


# -- check_int ---------------------------------------------------------------------------------

@given(value=st.integers(min_value=-2**80, max_value=2**80))
def test_check_int_accepts_every_python_integer(value):
    out = check_int(value, NAME)
    assert out == value and type(out) is int


@given(data=st.data(), dtype=st.sampled_from(INT_TYPES))
def test_check_int_accepts_numpy_integers_and_0d_arrays_and_tensors(data, dtype):
    info = np.iinfo(dtype)
    value = data.draw(st.integers(min_value=int(info.min), max_value=int(info.max)))
    for wrapped in (dtype(value), np.array(value, dtype=dtype)):
        out = check_int(wrapped, NAME)
        assert out == value and type(out) is int
    if dtype in (np.int8, np.int16, np.int32, np.int64, np.uint8):
        assert check_int(torch.tensor(value, dtype=getattr(torch, np.dtype(dtype).name)), NAME) == value


@given(value=st.integers(min_value=-10**6, max_value=10**6), lo=st.integers(-100, 100),
       width=st.integers(0, 200))
def test_check_int_bounds_are_inclusive(value, lo, width):
    hi = lo + width
    if lo <= value <= hi:
        assert check_int(value, NAME, minimum=lo, maximum=hi) == value
    else:
        with pytest.raises(ValueError) as err:
            check_int(value, NAME, minimum=lo, maximum=hi)
        assert named(err) and str(value) in str(err.value)


@given(value=st.one_of(st.booleans(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
                       st.none(), st.complex_numbers(), st.just(np.bool_(True)), st.just(np.float64(2.0)),
                       st.just(torch.tensor(True)), st.just(torch.tensor(2.0)), st.just(object()),
                       st.just([1]), st.just(np.array([3]))))
def test_check_int_refuses_non_integers_with_a_type_error_naming_the_argument(value):
    with pytest.raises(TypeError) as err:
        check_int(value, NAME, minimum=0)
    assert named(err)


def test_check_int_refuses_whole_floats_and_bools_explicitly():
    for value in (2.0, True, False, "3"):
        with pytest.raises(TypeError, match=NAME):
            check_int(value, NAME)


# -- check_real and friends ----------------------------------------------------------------------

@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_check_real_accepts_finite_floats_and_returns_a_float(value):
    out = check_real(value, NAME)
    assert out == value and type(out) is float


@given(value=st.one_of(st.integers(-2**60, 2**60), st.sampled_from([np.float32(1.5), np.float64(-2.0),
                                                                  np.int64(7), torch.tensor(0.25)])))
def test_check_real_accepts_integers_and_numpy_and_tensor_scalars(value):
    assert check_real(value, NAME) == float(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan"), torch.tensor(math.inf)])
def test_check_real_refuses_nan_and_inf_with_a_value_error_naming_the_argument(value):
    with pytest.raises(ValueError) as err:
        check_real(value, NAME)
    assert named(err)


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_check_real_refuses_integers_beyond_float64_with_a_value_error(value):
    with pytest.raises(ValueError, match=f"{NAME} must be a finite number"):
        check_real(value, NAME)
    with pytest.raises(ValueError, match=NAME):
        check_positive(value, NAME)


def test_check_real_allow_inf_admits_infinity_but_never_nan():
    assert check_real(math.inf, NAME, allow_inf=True) == math.inf
    assert check_real(-math.inf, NAME, allow_inf=True) == -math.inf
    with pytest.raises(ValueError, match=NAME):
        check_real(math.nan, NAME, allow_inf=True)


@given(value=st.one_of(st.booleans(), st.text(max_size=4), st.none(), st.complex_numbers(allow_nan=False),
                       st.just(np.bool_(False)), st.just(torch.tensor(True)), st.just([1.0])))
def test_check_real_refuses_non_reals_with_a_type_error(value):
    with pytest.raises(TypeError) as err:
        check_real(value, NAME)
    assert named(err)


@given(value=st.floats(-10, 10), lo=st.floats(-5, 5), strict=st.booleans())
def test_check_real_minimum_strict_and_not(value, lo, strict):
    ok = value > lo or (value == lo and not strict)
    if ok:
        assert check_real(value, NAME, minimum=lo, strict_minimum=strict) == value
    else:
        with pytest.raises(ValueError, match=NAME):
            check_real(value, NAME, minimum=lo, strict_minimum=strict)


@given(value=st.floats(-10, 10), hi=st.floats(-5, 5), strict=st.booleans())
def test_check_real_maximum_strict_and_not(value, hi, strict):
    ok = value < hi or (value == hi and not strict)
    if ok:
        assert check_real(value, NAME, maximum=hi, strict_maximum=strict) == value
    else:
        with pytest.raises(ValueError, match=NAME):
            check_real(value, NAME, maximum=hi, strict_maximum=strict)


@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_check_positive_is_finite_and_strictly_positive(value):
    if math.isfinite(value) and value > 0:
        assert check_positive(value, NAME) == value
    else:
        with pytest.raises(ValueError, match=NAME):
            check_positive(value, NAME)


@given(value=st.floats(-1, 2), open_interval=st.booleans())
def test_check_probability(value, open_interval):
    ok = (0 < value < 1) if open_interval else (0 <= value <= 1)
    if ok:
        assert check_probability(value, NAME, open_interval=open_interval) == value
    else:
        with pytest.raises(ValueError, match=NAME):
            check_probability(value, NAME, open_interval=open_interval)


# -- check_bool, check_choice, check_seed ------------------------------------------------------------

@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.array(False), torch.tensor(True)])
def test_check_bool_accepts_bools(value):
    out = check_bool(value, NAME)
    assert type(out) is bool and out == bool(value)


@pytest.mark.parametrize("value", [0, 1, 1.0, "True", "", None, [], np.int64(1), torch.tensor(1)])
def test_check_bool_refuses_everything_else(value):
    with pytest.raises(TypeError) as err:
        check_bool(value, NAME)
    assert named(err)


class _Colour(str, enum.Enum):
    RED = "red"


def test_check_choice_accepts_members_and_str_enums_and_lists_the_choices_otherwise():
    assert check_choice("red", ("red", "blue"), NAME) == "red"
    assert check_choice(_Colour.RED, ("red", "blue"), NAME) == "red"
    for bad in ("green", "", "RED", 1, None, b"red"):
        with pytest.raises(ValueError) as err:
            check_choice(bad, ("red", "blue"), NAME)
        assert named(err) and "'blue'" in str(err.value) and "'red'" in str(err.value)


@given(value=st.integers(min_value=-2**70, max_value=2**70))
def test_check_seed_range(value):
    if 0 <= value <= MAX_SEED:
        assert check_seed(value, NAME) == value
    else:
        with pytest.raises(ValueError, match=NAME):
            check_seed(value, NAME)


def test_check_seed_refuses_floats_bools_and_none_unless_allowed():
    for value in (1.0, 1.5, True, "0", None):
        with pytest.raises(TypeError, match=NAME):
            check_seed(value, NAME)
    assert check_seed(None, NAME, allow_none=True) is None
    assert check_seed(np.uint64(2**63 - 1), NAME) == MAX_SEED


# -- arrays ------------------------------------------------------------------------------------------

@given(shape=st.lists(st.integers(0, 4), max_size=3), bad=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_check_finite_counts_the_bad_entries_for_numpy_and_torch(shape, bad):
    arr = np.zeros(shape)
    assert check_finite(arr, NAME) is arr
    assert check_finite(torch.from_numpy(arr), NAME) is not None
    if arr.size:
        arr.reshape(-1)[0] = bad
        for value in (arr, torch.from_numpy(arr)):
            with pytest.raises(ValueError) as err:
                check_finite(value, NAME)
            assert named(err) and f"1 NaN or inf entries (of {arr.size})" in str(err.value)


def test_check_shape_matches_wildcards_and_never_reshapes():
    check_shape((3, 2), (None, 2), NAME)
    check_shape(torch.Size([4]), (4,), NAME)
    for shape in ((3,), (3, 2, 1), (2, 3), (6,)):
        with pytest.raises(ValueError) as err:
            check_shape(shape, (None, 2), NAME)
        assert named(err) and "(*, 2)" in str(err.value) and str(tuple(shape)) in str(err.value)


@given(values=st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=6),
       dtype=st.sampled_from([np.int32, np.int64, np.uint8, np.float32, np.float64]))
def test_as_float_array_returns_float64_with_the_same_values(values, dtype):
    src = np.array(values).astype(dtype)
    out = as_float_array(src, NAME)
    assert out.dtype == np.float64 and out.shape == src.shape
    np.testing.assert_array_equal(out, src.astype(np.float64))
    np.testing.assert_array_equal(as_float_array(src.tolist(), NAME), out)


def test_as_float_array_detaches_tensors_that_require_grad():
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    out = as_float_array(t, NAME)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    out[0] = 5.0
    assert t[0].item() == 1.0  # a copy, not a view of the caller's tensor


@pytest.mark.parametrize("value, what", [
    (scipy.sparse.csr_matrix(np.eye(3)), "sparse"),
    (scipy.sparse.coo_matrix(np.eye(2)), "sparse"),
    (np.array([1 + 2j, 3.0]), "complex"),
    (torch.tensor([1 + 2j]), "complex"),
    (np.array(["a", "b"], dtype=object), "non-numeric"),
    (np.array([object()], dtype=object), "non-numeric"),
    (np.array([True, False]), "boolean"),
    (torch.tensor([True]), "boolean"),
    (torch.eye(2).to_sparse(), "sparse"),
    ("1.0", "str"),
    (b"12", "bytes"),
    (np.array(["1.0"]), "<U3"),
    ([[1.0, 2.0], [3.0]], "real numbers"),
    (None, "NoneType"),
    (np.array([1.0, None], dtype=object), "non-numeric"),
])
def test_as_float_array_refuses_sparse_complex_object_bool_and_text(value, what):
    with pytest.raises(TypeError) as err:
        as_float_array(value, NAME)
    assert named(err) and what in str(err.value)


def test_as_float_array_rank_and_finiteness():
    with pytest.raises(ValueError, match=f"{NAME} must have 2 dimension"):
        as_float_array(np.zeros(3), NAME, ndim=2)
    assert as_float_array(np.zeros(3), NAME, ndim=(1, 2)).shape == (3,)
    with pytest.raises(ValueError, match=NAME):
        as_float_array([1.0, math.nan], NAME)
    assert math.isnan(as_float_array([1.0, math.nan], NAME, finite=False)[1])


def test_as_float_tensor_keeps_a_tensor_of_the_right_dtype_and_detaches_grad():
    t = torch.zeros(3, dtype=torch.float64)
    assert as_float_tensor(t, NAME, dtype=torch.float64) is t
    g = torch.zeros(3, requires_grad=True)
    out = as_float_tensor(g, NAME, dtype=torch.float32)
    assert not out.requires_grad
    assert as_float_tensor([1, 2], NAME).dtype == torch.get_default_dtype()
    assert as_float_tensor(np.arange(3), NAME, dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("value, what", [
    (torch.tensor([1 + 1j]), "complex"), (torch.tensor([True]), "boolean"),
    (torch.eye(2).to_sparse(), "sparse"), (scipy.sparse.csr_matrix(np.eye(2)), "sparse"),
    (np.array([1j]), "complex"), ("abc", "str"),
])
def test_as_float_tensor_refusals(value, what):
    with pytest.raises(TypeError) as err:
        as_float_tensor(value, NAME)
    assert named(err) and what in str(err.value)


def test_as_float_tensor_rank_and_finiteness():
    with pytest.raises(ValueError, match=NAME):
        as_float_tensor(torch.zeros(2, 2), NAME, ndim=1)
    with pytest.raises(ValueError, match=NAME):
        as_float_tensor(torch.tensor([math.inf]), NAME)
    assert torch.isinf(as_float_tensor(torch.tensor([math.inf]), NAME, finite=False)).all()


# -- memory ------------------------------------------------------------------------------------------

@given(number=st.integers(1, 10**6), unit=st.sampled_from(["", "K", "M", "G", "T", "k", "m", "g"]))
def test_memory_limit_reads_the_environment_with_binary_suffixes(number, unit):
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[unit.upper()]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VITOOLKIT_MAX_MEMORY", f"{number}{unit}")
        assert memory_limit() == number * scale


def test_memory_limit_default_is_half_the_ram_and_a_bad_setting_is_named(monkeypatch):
    import os

    monkeypatch.delenv("VITOOLKIT_MAX_MEMORY", raising=False)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory_limit() == ram // 2
    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "lots")
    with pytest.raises(ValueError, match="VITOOLKIT_MAX_MEMORY"):
        memory_limit()


@given(nbytes=st.integers(0, 2**100))
def test_check_memory_refuses_exactly_the_requests_over_the_limit(nbytes):
    limit = 3 * 2**20
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VITOOLKIT_MAX_MEMORY", "3M")
        if nbytes <= limit:
            assert check_memory(nbytes, NAME, 7, "draws") is None
        else:
            with pytest.raises(ResourceLimitError) as err:
                check_memory(nbytes, NAME, 7, "draws")
            assert isinstance(err.value, ValueError)
            text = str(err.value)
            assert f"{NAME}=7" in text and format_bytes(nbytes) in text and "3.0 MiB" in text
            assert "for draws" in text


def test_check_memory_is_called_before_allocating_in_a_typical_guard(monkeypatch):
    """The intended use: compute the size with Python ints (no overflow), refuse, never allocate."""
    import tracemalloc

    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "64M")
    n = 10**12
    tracemalloc.start()
    try:
        with pytest.raises(ResourceLimitError, match="num_samples=1000000000000"):
            check_memory(n * 8 * 3, "num_samples", n, "draws")
            np.empty(n * 3)  # never reached
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


@pytest.mark.parametrize("n, text", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (3 * 2**20, "3.0 MiB"),
                                     (2**30 + 2**29, "1.5 GiB"), (5 * 2**40, "5.0 TiB")])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


def test_check_num_samples_is_one_function_for_every_sampler():
    from vitoolkit.exceptions import ResourceLimitError
    from vitoolkit.gradients._checks import check_num_samples as in_gradients
    from vitoolkit.vae.importance import check_num_samples as in_vae
    from vitoolkit.validation import check_num_samples

    assert in_gradients is check_num_samples and in_vae is check_num_samples
    assert check_num_samples(1) == 1 and check_num_samples(5, minimum=2) == 5
    with pytest.raises(ValueError, match="num_samples"):
        check_num_samples(1, minimum=2)
    with pytest.raises(TypeError, match="pool"):
        check_num_samples(2.0, "pool")
    with pytest.raises(ResourceLimitError, match=r"num_samples=1000000000000 would need .* 8 float64 arrays"):
        check_num_samples(10**12, values_per_sample=1000, copies=8)
    assert check_num_samples(10, values_per_sample=1000, copies=8) == 10
