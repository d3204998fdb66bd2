"""Hostile IDX and npz files: refused early, with an error naming the file, in bounded memory.

Each file is crafted by hand from the format description (not with the reader's
own writer), so a test fails if the reader trusts the header, inflates a whole
gzip stream, lets a size computation overflow or unpickles an object array.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import re
import tracemalloc
import zipfile

import numpy as np
import pytest

from vitoolkit.datasets import IDXFormatError, load_mnist, read_idx, write_idx
from vitoolkit.exceptions import FileFormatError, ResourceLimitError

MIB = 2**20


def _header(code: int, shape) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape)


def _gzip_of_zeros(path, header: bytes, zeros: int) -> None:
    """A gzip file whose stream is ``header`` then ``zeros`` zero bytes, written in 1 MiB steps."""
    block = bytes(MIB)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(header)
        for start in range(0, zeros, MIB):
            f.write(block[:min(MIB, zeros - start)])


def _peak(fn):
    """(exception raised by fn, peak traced bytes while it ran)."""
    tracemalloc.start()
    try:
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - returned to the test
            return err, tracemalloc.get_traced_memory()[1]
        return None, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_bomb_is_refused_from_its_header_in_small_memory(tmp_path, monkeypatch):
    # 64 MiB of zeros compress to about 64 KiB; the header truthfully declares them.
    path = tmp_path / "bomb-idx1-ubyte.gz"
    _gzip_of_zeros(path, _header(0x08, (64 * MIB,)), 64 * MIB)
    assert path.stat().st_size < MIB
    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "8M")
    err, peak = _peak(lambda: read_idx(path))
    assert isinstance(err, ResourceLimitError), err
    assert str(path) in str(err) and "64.0 MiB" in str(err) and "8.0 MiB" in str(err)
    assert peak < 256 * 1024, f"peak {peak} bytes before refusing"


def test_gzip_with_trailing_inflation_is_refused_after_the_declared_bytes(tmp_path):
    # The header declares 10 bytes; 64 MiB more follow in the stream.
    path = tmp_path / "trail.gz"
    _gzip_of_zeros(path, _header(0x08, (10,)), 10 + 64 * MIB)
    err, peak = _peak(lambda: read_idx(path))
    assert isinstance(err, IDXFormatError) and str(path) in str(err)
    assert "trailing data" in str(err)
    assert peak < 2 * MIB, f"peak {peak} bytes: the stream was inflated beyond the header"


def test_gzip_declaring_more_than_deflate_can_expand_is_refused_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "1T")  # isolate the ratio check from the limit
    path = tmp_path / "liar.gz"
    path.write_bytes(gzip.compress(_header(0x08, (2**31,))))
    err, peak = _peak(lambda: read_idx(path))
    assert isinstance(err, IDXFormatError) and str(path) in str(err)
    assert "can hold" in str(err)
    assert peak < 256 * 1024


@pytest.mark.parametrize("gz", [False, True])
def test_dimensions_whose_product_overflows_64_bits(tmp_path, gz):
    # 2**16 ** 4 = 2**64 is 0 in int64 arithmetic: an overflowing reader would accept
    # an empty data section for it.
    header = _header(0x08, (2**16,) * 4)
    path = tmp_path / ("wrap.gz" if gz else "wrap")
    path.write_bytes(gzip.compress(header) if gz else header)
    with pytest.raises(FileFormatError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert str(2**64) in str(info.value) or "can hold" in str(info.value)


def test_declared_size_larger_than_an_uncompressed_file(tmp_path):
    path = tmp_path / "big-header"
    path.write_bytes(_header(0x0E, (2**32 - 1, 2**32 - 1)) + bytes(16))
    with pytest.raises(IDXFormatError, match="holds 16") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_names_the_file(tmp_path):
    payload = _header(0x08, (4096,)) + os.urandom(4096)
    full = gzip.compress(payload)
    path = tmp_path / "cut.gz"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(IDXFormatError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_body_is_a_format_error_not_zlib_error(tmp_path):
    rng = np.random.default_rng(0)
    payload = _header(0x08, (4096,)) + rng.integers(0, 4, 4096, dtype=np.uint8).tobytes()
    data = bytearray(gzip.compress(payload))
    for i in range(12, len(data) - 8, 7):  # scramble the deflate body, keep the gzip header
        data[i] ^= 0xA5
    path = tmp_path / "corrupt.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(IDXFormatError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    # The bare zlib error is not what the caller sees (only chained, if at all).
    assert type(info.value) is IDXFormatError


def test_missing_file_and_directory_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        read_idx(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(info.value)
    with pytest.raises(IsADirectoryError) as info:
        read_idx(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(TypeError, match="path"):
        read_idx(3)


def test_valid_gzip_is_read_in_about_its_own_size(tmp_path):
    # The old reader held the inflated bytes and a copy (2x); chunked reading holds ~1x.
    n = 8 * MIB
    rng = np.random.default_rng(1)
    a = rng.integers(0, 3, n, dtype=np.uint8)  # compressible but not trivial
    path = tmp_path / "ok.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(_header(0x08, (n,)))
        f.write(a.tobytes())
    holder = {}
    err, peak = _peak(lambda: holder.setdefault("b", read_idx(path)))
    assert err is None
    np.testing.assert_array_equal(holder["b"], a)
    assert peak < 1.4 * n, f"peak {peak / n:.2f} x the data size"


def test_big_endian_types_survive_the_chunked_read(tmp_path):
    # Independent route: struct-free big-endian bytes from NumPy's '>f8'.
    values = np.linspace(-3, 3, 300_000)
    path = tmp_path / "f8"
    path.write_bytes(_header(0x0E, (300, 1000)) + values.astype(">f8").tobytes())
    out = read_idx(path)
    assert out.dtype == np.float64 and out.dtype.isnative
    np.testing.assert_array_equal(out.ravel(), values)


# -- npz --------------------------------------------------------------------------------


class _Marker:
    """Pickles as a call that creates a file: proof whether unpickling happened."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_npz_with_object_array_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.array([_Marker(marker)], dtype=object),
             y_train=np.zeros(1, dtype=np.uint8))
    with pytest.raises(FileFormatError) as info:
        load_mnist(path)
    assert str(path) in str(info.value) and "object" in str(info.value)
    assert not marker.exists()


def test_npz_that_is_not_a_zip_names_the_file(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"\x93NUMPY not really" + bytes(100))
    with pytest.raises(FileFormatError) as info:
        load_mnist(path)
    assert str(path) in str(info.value)


def _npy_header(shape, descr="|u1") -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue()


def test_npz_declaring_a_huge_array_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "8M")
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x_train.npy", _npy_header((2**40,)))
        z.writestr("y_train.npy", _npy_header((1,)) + b"\x00")
    err, peak = _peak(lambda: load_mnist(path))
    assert isinstance(err, ResourceLimitError) and str(path) in str(err)
    assert "x_train" in str(err)
    assert peak < 256 * 1024


def test_npz_with_short_array_data_names_the_file(tmp_path):
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x_train.npy", _npy_header((2, 3, 3)) + bytes(5))
        z.writestr("y_train.npy", _npy_header((2,)) + bytes(2))
    with pytest.raises(FileFormatError) as info:
        load_mnist(path)
    assert str(path) in str(info.value)


def test_npz_float_labels_are_refused_not_truncated(tmp_path):
    path = tmp_path / "floats.npz"
    np.savez(path, x_train=np.zeros((2, 3, 3), dtype=np.uint8), y_train=np.array([1.5, 2.0]))
    with pytest.raises(FileFormatError, match="labels must be integers"):
        load_mnist(path)


# -- atomic write_idx -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_idx_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch,
                                                                       suffix):
    path = tmp_path / f"a{suffix}"
    old = np.arange(5, dtype=np.uint8)
    write_idx(path, old)
    before = path.read_bytes()

    import vitoolkit.datasets.idx as idx

    def failing(_data):  # the header is already written when the data fails
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(idx, "memoryview", failing, raising=False)
    with pytest.raises(OSError, match="No space left"):
        write_idx(path, np.arange(7, dtype=np.uint8))
    monkeypatch.undo()
    assert path.read_bytes() == before
    np.testing.assert_array_equal(read_idx(path), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_write_idx_leaves_no_temporary_and_replaces_atomically(tmp_path):
    path = tmp_path / "b.gz"
    for n in (3, 4):
        write_idx(path, np.arange(n, dtype=np.int16))
    np.testing.assert_array_equal(read_idx(path), np.arange(4, dtype=np.int16))
    assert [p.name for p in tmp_path.iterdir()] == ["b.gz"]


def test_more_dimensions_than_numpy_supports_is_a_format_error(tmp_path):
    path = tmp_path / "deep"
    path.write_bytes(_header(0x08, (1,) * 100) + b"\x07")
    with pytest.raises(IDXFormatError, match="cannot hold shape") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# -- checkpoints (vitoolkit.vae.checkpoint): capped before inflating, weights checked -------------


def _deflated_checkpoint(path, numel: int) -> None:
    """A valid checkpoint whose zip members are deflated: ``numel`` float32 zeros in ~KiB."""
    import torch

    from vitoolkit.vae import save_checkpoint

    plain = path.with_suffix(".plain")
    save_checkpoint(plain, {"w": torch.zeros(numel)})
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED,
                                                        compresslevel=9) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    plain.unlink()


def test_checkpoint_that_inflates_beyond_the_limit_is_refused_before_torch_load(tmp_path, monkeypatch):
    import vitoolkit.vae.checkpoint as ckpt

    path = tmp_path / "bomb.pt"
    _deflated_checkpoint(path, 4 * MIB)  # 16 MiB of weights in ~20 KiB
    assert path.stat().st_size < 64 * 1024
    assert ckpt.load_checkpoint(path)["w"].shape == (4 * MIB,)  # a valid file under the default limit
    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "4M")

    def inflating(*args, **kwargs):  # pragma: no cover - reached only if the cap fails
        raise AssertionError("torch.load ran before the size check")

    monkeypatch.setattr(ckpt.torch, "load", inflating)
    for load in (ckpt.load_checkpoint, ckpt.load_model):
        with pytest.raises(ResourceLimitError, match=r"bomb\.pt.*16\.0 MiB.*4\.0 MiB"):
            load(path)


def test_checkpoint_that_is_not_a_zip_archive_is_refused_by_name(tmp_path):
    import torch

    from vitoolkit.vae import load_checkpoint

    path = tmp_path / "legacy.pt"
    # The pre-1.6 pickle format: its storages are sized by the pickle, not by the archive.
    torch.save({"format": "vitoolkit.vae.checkpoint/1"}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match=r"legacy\.pt.*not a readable checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_model_with_non_finite_weights_is_refused_on_load_naming_file_and_tensor(tmp_path, bad):
    import torch

    from vitoolkit.vae import VAE, VQVAE, CategoricalVAE, load_model, save_model

    for model in (VAE(6, 2, hidden_dims=(4,)), VQVAE(6, 3, 2, hidden_dims=(4,)),
                  CategoricalVAE(6, 2, 3, hidden_dims=(4,))):
        name = next(k for k, v in model.state_dict().items() if v.is_floating_point())
        with torch.no_grad():
            model.state_dict()[name].view(-1)[0] = bad
        path = tmp_path / f"{type(model).__name__}.pt"
        save_model(model, path)
        with pytest.raises(ValueError, match=rf"{path.name}.*tensor model_state\['{re.escape(name)}'\] "
                                             r"holds 1 NaN or infinite"):
            load_model(path)
        with pytest.raises(ValueError, match="NaN or infinite"):
            load_model(path, type(model)(**model.config))


def test_training_checkpoint_with_non_finite_optimiser_state_is_refused_on_resume(tmp_path):
    import torch

    from vitoolkit.vae import VAE, load_checkpoint, save_checkpoint, train

    x = (torch.rand(16, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    path = tmp_path / "run.pt"
    train(VAE(6, 2, hidden_dims=(4,)), x, epochs=1, batch_size=8, checkpoint=path, progress=False)
    state = load_checkpoint(path)
    moments = next(iter(state["optimizer_state"]["state"].values()))
    moments["exp_avg_sq"].view(-1)[0] = float("nan")
    save_checkpoint(path, state)
    with pytest.raises(ValueError, match=r"run\.pt.*tensor optimizer_state\['state'\].*exp_avg_sq"):
        train(VAE(6, 2, hidden_dims=(4,)), x, epochs=2, batch_size=8, checkpoint=path, resume=True,
              progress=False)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_training_checkpoint_with_a_non_finite_best_value_is_refused(bad):
    import torch

    from vitoolkit.vae.checkpoint import check_training_state

    state = {"model_class": "VAE", "model_config": {}, "model_state": {},
             "optimizer_state": {"state": {}, "param_groups": []}, "shuffle_state": None,
             "noise_state": None, "epoch": 1, "step": 2, "history": {}, "best_value": bad,
             "best_state": None, "bad_epochs": 0, "settings": {}}
    state["shuffle_state"] = state["noise_state"] = torch.zeros(8, dtype=torch.uint8)
    match = r"run\.pt is damaged: key 'best_value' must be a real number or -inf"
    with pytest.raises(ValueError, match=match):
        check_training_state(state, "run.pt")
    state["best_value"] = float("-inf")  # before the first validation epoch
    check_training_state(state, "run.pt")
