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

import gzip
import os
from pathlib import Path

import numpy as np
import torch

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

# File stems of the standard distribution (identical for MNIST and Fashion-MNIST).
_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Sub-folders where torchvision stores each kind's raw files.
_TORCHVISION_DIRS = {"mnist": "MNIST", "fashion": "FashionMNIST"}


class IDXFormatError(ValueError):
    """A file is not a valid IDX file (bad header, unknown type, wrong length)."""


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise IDXFormatError(f"{path}: corrupt gzip stream ({err})") from err
    return raw


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzipped or not, detected from its first bytes).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ndarray with the file's shape and element type (native byte order).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IDXFormatError
        If the header is malformed or the data length disagrees with it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IDXFormatError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0:
        raise IDXFormatError(
            f"{path}: not an IDX file (first two bytes {raw[:2]!r}, expected b'\\x00\\x00')"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise IDXFormatError(
            f"{path}: unknown IDX element type 0x{code:02X}; expected one of "
            + ", ".join(f"0x{c:02X}" for c in _IDX_TYPES)
        )
    if ndim < 1:
        raise IDXFormatError(f"{path}: IDX header declares {ndim} dimensions, expected >= 1")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"{path}: truncated header ({len(raw)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IDXFormatError(
            f"{path}: header declares shape {shape} of {dtype.name} ({expected} data bytes) "
            f"but the file holds {len(raw) - header}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path, array) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz``.

    Parameters
    ----------
    path : str or Path
    array : array-like of any shape (at least 1-D) and an IDX element type
        (uint8, int8, int16, int32, float32, float64).

    Returns
    -------
    Path of the written file (written atomically: a temporary file, then a rename).
    """
    path = Path(path)
    array = np.asarray(array)
    if array.ndim < 1 or array.ndim > 255:
        raise ValueError(f"array must have 1..255 dimensions, got shape {array.shape}")
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise ValueError(
            f"array dtype {array.dtype} has no IDX code; use uint8, int8, int16, int32, "
            "float32 or float64"
        )
    code = _IDX_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
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


def _load_npz(path: Path, split: str):
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            xk, yk = f"x_{split}", f"y_{split}"
            if xk not in keys or yk not in keys:
                raise ValueError(
                    f"{path}: expected arrays {xk!r} and {yk!r} (Keras' mnist.npz layout), "
                    f"found {sorted(keys)}"
                )
            return np.asarray(data[xk]), np.asarray(data[yk])
    except (OSError, EOFError) as err:  # a damaged zip
        raise ValueError(f"{path}: not a readable .npz file ({err})") from err


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
    if kind not in _TORCHVISION_DIRS:
        raise ValueError(f"kind must be 'mnist' or 'fashion', got {kind!r}")
    if split not in _STEMS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise FileNotFoundError(f"npz file not found: {path}")
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
        source = str(image_file)

    if images.ndim != 3:
        raise ValueError(f"{source}: images must have shape (n, h, w), got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{source}: labels must have shape ({images.shape[0]},) to match the images, "
            f"got {labels.shape}"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"{source}: images must be uint8 (0..255), got {images.dtype}")
    X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    if binarize:
        X = (X >= 0.5).astype(np.float32)
    return torch.from_numpy(X), torch.from_numpy(labels.astype(np.int64))
