"""MNIST and Fashion-MNIST from local files: IDX (optionally gzipped) or ``.npz``.

Nothing is downloaded unless the caller asks (``download=True``), in which case
torchvision's downloader fetches the IDX files into ``path`` and they are then
read by the same reader as local files.

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero
bytes, one byte giving the element type (0x08 unsigned byte, 0x09 signed byte,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), one byte giving the number
of dimensions, then each dimension as a big-endian int32, then the data in
row-major order, big-endian.
"""

from __future__ import annotations

import errno
import gzip
import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..exceptions import FileFormatError, ResourceLimitError
from ..fileio import MAX_DEFLATE_RATIO, atomic_write, check_zip_members
from ..fileio import refuse_declared_size as _refuse_size
from ..validation import check_bool, check_choice

__all__ = ["IDXFormatError", "load_mnist", "read_idx", "write_idx"]

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
# Deflate's largest expansion (a gzip declaring more data per compressed byte cannot hold it).
_MAX_DEFLATE_RATIO = MAX_DEFLATE_RATIO
# Bytes read per step from a (possibly hostile) stream.
_CHUNK = 1 << 20

# File stems of the standard distribution (identical for MNIST and Fashion-MNIST).
_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Sub-folders where torchvision stores each kind's raw files.
_TORCHVISION_DIRS = {"mnist": "MNIST", "fashion": "FashionMNIST"}


class IDXFormatError(FileFormatError):
    """A file is not a valid IDX file (bad header, unknown type, wrong length, corrupt gzip).

    A :class:`vitoolkit.exceptions.FileFormatError` (so a ``ValueError``); the
    message starts with the file's path.
    """


def _as_path(path, name: str = "path") -> Path:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(path).__name__}")
    return Path(path)


def _read_exact(stream, n: int, path: Path, what: str) -> bytes:
    data = stream.read(n)
    if len(data) < n:
        raise IDXFormatError(f"{path}: {what} ({len(data)} bytes, need {n})")
    return data


def _read_into(stream, buffer: memoryview, path: Path, shape, dtype) -> None:
    """Fill ``buffer`` from ``stream`` in bounded chunks; refuse short data."""
    done, total = 0, len(buffer)
    while done < total:
        got = stream.readinto(buffer[done:done + _CHUNK])
        if not got:
            raise IDXFormatError(
                f"{path}: header declares shape {shape} of {dtype.name} ({total} data bytes) "
                f"but the file holds {done}")
        done += got


def _read_stream(stream, path: Path, size: int | None, compressed: bool) -> np.ndarray:
    """The IDX array in ``stream``; ``size`` is the file's length on disk."""
    head = stream.read(4)
    if len(head) < 4:
        raise IDXFormatError(f"{path}: {len(head)} bytes is too short for an IDX header")
    if head[0] != 0 or head[1] != 0:
        raise IDXFormatError(
            f"{path}: not an IDX file (first two bytes {head[:2]!r}, expected b'\\x00\\x00')")
    code, ndim = head[2], head[3]
    if code not in _IDX_TYPES:
        raise IDXFormatError(
            f"{path}: unknown IDX element type 0x{code:02X}; expected one of "
            + ", ".join(f"0x{c:02X}" for c in _IDX_TYPES))
    if ndim < 1:
        raise IDXFormatError(f"{path}: IDX header declares {ndim} dimensions, expected >= 1")
    header = 4 + 4 * ndim
    dims = _read_exact(stream, 4 * ndim, path, "truncated header")
    shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(ndim))
    dtype = _IDX_TYPES[code]
    nbytes = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
    if size is not None and not compressed and size - header != nbytes:
        raise IDXFormatError(
            f"{path}: header declares shape {shape} of {dtype.name} ({nbytes} data bytes) "
            f"but the file holds {size - header}")
    if size is not None and compressed and nbytes > _MAX_DEFLATE_RATIO * size:
        raise IDXFormatError(
            f"{path}: header declares shape {shape} of {dtype.name} ({nbytes} data bytes), "
            f"more than a gzip file of {size} bytes can hold")
    _refuse_size(path, nbytes, f"the declared shape {shape} of {dtype.name}")
    native = dtype.newbyteorder("=")
    try:
        data = np.empty(shape, dtype=native)
    except ValueError as err:  # more dimensions than NumPy supports
        raise IDXFormatError(f"{path}: cannot hold shape {shape} in an array ({err})") from None
    _read_into(stream, memoryview(data.reshape(-1).view(np.uint8)), path, shape, dtype)
    if stream.read(1):
        if compressed:
            raise IDXFormatError(
                f"{path}: trailing data after the {nbytes} data bytes the header declares "
                f"(shape {shape} of {dtype.name})")
        raise IDXFormatError(  # pragma: no cover - the size check above catches it
            f"{path}: the file holds more than the {nbytes} declared data bytes")
    if native != dtype and dtype.itemsize > 1:
        data.byteswap(inplace=True)  # bytes were big-endian; the array's dtype is native
    return data


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzipped or not, detected from its first bytes).

    The file is treated as untrusted: the header is read first, the declared
    size is computed with Python integers and compared with what the file can
    hold and with the memory limit (:func:`vitoolkit.validation.memory_limit`)
    before anything is allocated, and the data is then read in bounded chunks,
    so a small gzip that would inflate to gigabytes is refused after reading a
    few bytes.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ndarray with the file's shape and element type (native byte order).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (every other ``OSError`` names the path too).
    IDXFormatError
        If the header is malformed, the data length disagrees with it, or the
        gzip stream is corrupt (a :class:`~vitoolkit.exceptions.FileFormatError`).
    ResourceLimitError
        If the declared data would need more memory than the limit.
    """
    path = _as_path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "IDX file not found", str(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "expected an IDX file, got a directory", str(path))
    with open(path, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            return _read_stream(raw, path, size, compressed=False)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _read_stream(stream, path, size, compressed=True)
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise IDXFormatError(f"{path}: corrupt gzip stream ({err})") from None


def write_idx(path, array) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz``.

    Parameters
    ----------
    path : str or Path
    array : array-like of any shape (at least 1-D) and an IDX element type
        (uint8, int8, int16, int32, float32, float64).

    Returns
    -------
    Path of the written file, written atomically
    (:func:`vitoolkit.fileio.atomic_write`: a uniquely named temporary file,
    fsync, then a rename), so a crash leaves the old file or the new one.
    """
    path = _as_path(path)
    array = np.asarray(array)
    if array.ndim < 1 or array.ndim > 255:
        raise ValueError(f"array must have 1..255 dimensions, got shape {array.shape}")
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise ValueError(
            f"array dtype {array.dtype} has no IDX code; use uint8, int8, int16, int32, "
            "float32 or float64"
        )
    too_big = [d for d in array.shape if d >= 2**32]
    if too_big:
        raise ValueError(f"array dimensions must be < 2**32 for IDX, got shape {array.shape}")
    code = _IDX_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = np.ascontiguousarray(array, dtype=_IDX_TYPES[code])
    with atomic_write(path, "wb") as handle:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, filename="") as stream:
                stream.write(header)
                stream.write(memoryview(data.reshape(-1).view(np.uint8)))
        else:
            handle.write(header)
            handle.write(memoryview(data.reshape(-1).view(np.uint8)))
    return path


def _find(directory: Path, stem: str, kind: str) -> Path | None:
    folders = [directory, directory / _TORCHVISION_DIRS[kind] / "raw"]
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _download(directory: Path, kind: str, split: str) -> None:
    try:
        import torchvision  # noqa: F401
        from torchvision import datasets
    except ImportError as err:
        raise ImportError(
            "download=True needs torchvision (pip install torchvision); or place the IDX "
            "files in the folder yourself"
        ) from err
    cls = datasets.MNIST if kind == "mnist" else datasets.FashionMNIST
    try:
        cls(root=str(directory), train=(split == "train"), download=True)
    except Exception as err:  # network errors come in many types
        raise RuntimeError(
            f"downloading {kind} into {directory} failed ({err}); check the network or "
            "place the IDX files there yourself"
        ) from err


def _npz_array(archive: zipfile.ZipFile, key: str, path: Path) -> np.ndarray:
    """Array ``key`` of an open ``.npz``: header first, then a bounded, pickle-free read."""
    member = key + ".npy"
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    if dtype.hasobject:
        raise FileFormatError(
            f"{path}: array {key!r} holds Python objects (dtype {dtype}); only numeric arrays "
            "are read (loading objects would run pickled code)")
    _refuse_size(path, math.prod(shape) * dtype.itemsize,
                 f"array {key!r} of shape {shape} and dtype {dtype}")
    with archive.open(member) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def _load_npz(path: Path, split: str):
    xk, yk = f"x_{split}", f"y_{split}"
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_members(archive, path)
            keys = {name[:-4] for name in archive.namelist() if name.endswith(".npy")}
            if xk not in keys or yk not in keys:
                raise FileFormatError(
                    f"{path}: expected arrays {xk!r} and {yk!r} (Keras' mnist.npz layout), "
                    f"found {sorted(keys)}")
            return _npz_array(archive, xk, path), _npz_array(archive, yk, path)
    except (FileFormatError, ResourceLimitError):
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as err:
        raise FileFormatError(f"{path}: not a readable .npz file "
                              f"({type(err).__name__}: {err})") from None


def load_mnist(
    path,
    *,
    kind: str = "mnist",
    split: str = "train",
    binarize: bool = False,
    download: bool = False,
):
    """Load MNIST or Fashion-MNIST from local files.

    Parameters
    ----------
    path : str or Path
        Either a folder holding the standard IDX files
        (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally
        ``.gz``; also found in torchvision's ``<path>/MNIST/raw`` or
        ``<path>/FashionMNIST/raw``), or an ``.npz`` file with arrays ``x_train``,
        ``y_train``, ``x_test``, ``y_test`` (Keras' layout).
    kind : {"mnist", "fashion"}
        Which dataset (chooses torchvision's sub-folder and downloader).
    split : {"train", "test"}
    binarize : bool
        Threshold the scaled intensities at 0.5.
    download : bool
        When the files are missing, fetch them with torchvision into ``path``
        (needs torchvision and network). Off by default: nothing is downloaded
        unless asked.

    Returns
    -------
    X : Tensor of shape (n, h * w), float32 in [0, 1] (uint8 images divided by
        255), row-major (h = w = 28 for the real datasets).
    y : Tensor of shape (n,), int64 labels.
    """
    path = _as_path(path)
    kind = check_choice(kind, _TORCHVISION_DIRS, "kind")
    split = check_choice(split, _STEMS, "split")
    binarize = check_bool(binarize, "binarize")
    download = check_bool(download, "download")
    if path.suffix == ".npz":
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "npz file not found", str(path))
        images, labels = _load_npz(path, split)
        source = str(path)
    else:
        image_stem, label_stem = _STEMS[split]
        image_file, label_file = _find(path, image_stem, kind), _find(path, label_stem, kind)
        if (image_file is None or label_file is None) and download:
            path.mkdir(parents=True, exist_ok=True)
            _download(path, kind, split)
            image_file, label_file = _find(path, image_stem, kind), _find(path, label_stem, kind)
        if image_file is None or label_file is None:
            missing = [s for s, f in ((image_stem, image_file), (label_stem, label_file)) if f is None]
            raise FileNotFoundError(
                f"{kind} {split} files {missing} (optionally .gz) not found in {path} or "
                f"{path / _TORCHVISION_DIRS[kind] / 'raw'}; place them there, pass an .npz "
                "file, or call with download=True (needs torchvision and network)"
            )
        images, labels = read_idx(image_file), read_idx(label_file)
        source = f"{image_file} / {label_file.name}"

    if images.ndim != 3:
        raise FileFormatError(f"{source}: images must have shape (n, h, w), got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise FileFormatError(
            f"{source}: labels must have shape ({images.shape[0]},) to match the images, "
            f"got {labels.shape}"
        )
    if images.dtype != np.uint8:
        raise FileFormatError(f"{source}: images must be uint8 (0..255), got {images.dtype}")
    if labels.dtype.kind not in "iu":
        raise FileFormatError(f"{source}: labels must be integers, got dtype {labels.dtype}")
    X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    if binarize:
        X = (X >= 0.5).astype(np.float32)
    return torch.from_numpy(X), torch.from_numpy(labels.astype(np.int64))
