"""What a student's function gave back, as plain data: the only thing that crosses from its process.

The grader never trusts an object made by the student's code. :func:`encode`
(run where the student's code runs) turns a return value into plain data:
numbers, short strings, tuples/lists of those, and ``("tensor", dtype, shape,
bytes)`` records for tensors and NumPy arrays; anything else becomes a
description (its type name). :func:`decode` (run by the grader) rebuilds tensors
and arrays from the bytes, checking every size, so a forged reply can at worst
be a wrong answer. :func:`loads` unpickles such data with no globals allowed:
unpickling cannot run code.

:class:`StudentError` is an exception of the student's code, described the same way
(its type name, the builtin classes it derives from, the first line of its
message, where it was raised), whether it happened in this process or in the
grading process.
"""

from __future__ import annotations

import io
import pickle
import traceback
from pathlib import Path

import numpy as np
import torch

__all__ = ["StudentError", "Unconvertible", "encode", "decode", "dumps", "loads", "describe"]

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
_MAX_ITEMS = 64  # tuple/list entries kept; a longer sequence is described, not copied
_MAX_DEPTH = 4
_MAX_STR = 200
_NUMERIC = "biufc"  # NumPy kinds that are numbers (bool, int, uint, float, complex)


class StudentError(Exception):
    """An exception raised by the student's code, described in plain data.

    Attributes
    ----------
    type_name : str
        The exception's class name, e.g. ``"ZeroDivisionError"``.
    bases : tuple of str
        The names of the builtin exception classes it derives from (``"ValueError"``, ...).
    text : str
        The first line of its message.
    where : str
        `` (line N of FILE)`` for the innermost frame of the student's code, or ``""``.
    """

    def __init__(self, type_name: str, bases: tuple[str, ...], text: str, where: str):
        super().__init__(type_name, bases, text, where)
        self.type_name, self.bases, self.text, self.where = type_name, tuple(bases), text, where

    def is_a(self, name: str) -> bool:
        """True when the exception derives from the builtin class called ``name``."""
        return name in self.bases

    def describe(self) -> str:
        """``TypeName (line N of FILE): first line of the message``."""
        return f"{self.type_name}{self.where}" + (f": {self.text}" if self.text else "")


def _where(err: BaseException) -> str:
    """`` (line N of FILE)`` for the innermost frame outside torch, numpy and vitoolkit."""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        name = frame.filename
        if "site-packages" in name or name.startswith(_PACKAGE_DIR) or "/torch/" in name:
            continue
        return f" (line {frame.lineno} of {name if name.startswith('<') else Path(name).name})"
    return ""


def describe(err: BaseException) -> StudentError:
    """The :class:`StudentError` describing ``err`` (any ``BaseException``, ``SystemExit`` included)."""
    try:
        text = str(err).strip()
    except Exception:  # noqa: BLE001 - a student's exception whose __str__ fails
        text = ""
    if isinstance(err, SystemExit):
        text = f"exit({err.code!r})" if not text or text == str(err.code) else text
    first = text.splitlines()[0][:_MAX_STR] if text else ""
    bases = tuple(c.__name__ for c in type(err).__mro__ if c.__module__ == "builtins")
    return StudentError(type(err).__name__[:_MAX_STR], bases, first, _where(err))


class Unconvertible:
    """Stands for a returned object that is not numbers (its type name and a short description)."""

    def __init__(self, type_name: str, detail: str = ""):
        self.type_name, self.detail = type_name, detail

    def __repr__(self) -> str:
        return f"<{self.type_name}{': ' + self.detail if self.detail else ''}>"


def _array_record(arr: np.ndarray, kind: str, dtype_name: str, requires_grad: bool = False):
    arr = np.array(arr, order="C", copy=True)  # (np.ascontiguousarray would make a 0-d array 1-d)
    return ("array", kind, dtype_name, arr.dtype.str, tuple(int(s) for s in arr.shape), bool(requires_grad),
            arr.tobytes())


def encode(value, depth: int = 0):
    """``value`` as plain data (see the module docstring); never raises."""
    try:
        if value is None or type(value) in (bool, int, float):
            return value
        if type(value) is complex:
            return ("complex", value.real, value.imag)
        if isinstance(value, str):
            return ("str", str(value)[:_MAX_STR], len(value))
        if isinstance(value, torch.Tensor):
            t = value.detach()
            if t.layout != torch.strided or t.device.type != "cpu":
                return ("object", f"a tensor ({t.layout}, device {t.device})", "")
            name = str(t.dtype).replace("torch.", "")
            if t.dtype in (torch.bfloat16,):
                t = t.to(torch.float32)
            return _array_record(t.contiguous().numpy(), "tensor", name, value.requires_grad)
        if isinstance(value, (np.ndarray, np.generic)):
            arr = np.asarray(value)
            if arr.dtype.kind not in _NUMERIC:
                kinds = {"U": "strings", "S": "bytes", "O": "Python objects"}
                what = kinds.get(arr.dtype.kind, "non-numbers")
                return ("object", f"a NumPy array of {what} (dtype {arr.dtype})", "")
            return _array_record(arr, "ndarray", str(arr.dtype))
        if isinstance(value, (tuple, list)):
            kind = "list" if isinstance(value, list) else "tuple"
            if depth >= _MAX_DEPTH or len(value) > _MAX_ITEMS:
                return ("object", f"a {kind} of {len(value)} items", "")
            return (kind, [encode(v, depth + 1) for v in value])
        if isinstance(value, (int, float)):  # subclasses (e.g. a student's float subclass)
            return float(value)
        return ("object", f"a {type(value).__name__[:_MAX_STR]}", "")
    except Exception as err:  # noqa: BLE001 - a hostile object: describe it, never fail here
        return ("object", "an unreadable value", type(err).__name__)


def _decode_array(record) -> torch.Tensor | np.ndarray | Unconvertible:
    _, kind, dtype_name, dtype_str, shape, requires_grad, data = record
    dtype = np.dtype(dtype_str)
    if dtype.kind not in _NUMERIC or dtype.hasobject:
        return Unconvertible("array", f"of dtype {dtype}")
    if not all(isinstance(s, int) and s >= 0 for s in shape) or len(shape) > 32:
        raise ValueError("malformed array shape")
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(data):
        raise ValueError("array size does not match its data")
    arr = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    if kind == "ndarray":
        return arr
    t = torch.from_numpy(arr)
    if dtype_name == "bfloat16":
        t = t.to(torch.bfloat16)
    if requires_grad and (t.is_floating_point() or t.is_complex()):
        t.requires_grad_(True)
    return t


def decode(data, depth: int = 0):
    """The value :func:`encode` described: tensors, arrays, numbers, strings, tuples/lists.

    Raises ``ValueError`` for data :func:`encode` cannot have produced.
    """
    if data is None or type(data) in (bool, int, float):
        return data
    if depth > _MAX_DEPTH + 1 or not isinstance(data, tuple) or not data or not isinstance(data[0], str):
        raise ValueError("malformed answer")
    tag = data[0]
    if tag == "complex" and len(data) == 3:
        return complex(float(data[1]), float(data[2]))
    if tag == "str" and len(data) == 3:
        return str(data[1])
    if tag == "array" and len(data) == 7:
        return _decode_array(data)
    if tag in ("tuple", "list") and len(data) == 2 and isinstance(data[1], list):
        items = [decode(v, depth + 1) for v in data[1][:_MAX_ITEMS]]
        return tuple(items) if tag == "tuple" else items
    if tag == "object" and len(data) == 3:
        return Unconvertible(str(data[1])[:_MAX_STR], str(data[2])[:_MAX_STR])
    raise ValueError(f"malformed answer (tag {tag[:20]!r})")


def dumps(data) -> bytes:
    """Plain data as bytes (pickle protocol 4; :func:`loads` reads it back without running code)."""
    return pickle.dumps(data, protocol=4)


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):  # noqa: ARG002 - nothing may be imported
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only plain data is accepted")


def loads(payload: bytes):
    """Plain data from :func:`dumps`; any class or function reference is refused (no code runs)."""
    return _PlainUnpickler(io.BytesIO(payload)).load()
