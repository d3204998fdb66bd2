"""Datasets: digits split, procedural shapes against their factors, the IDX/npz loaders."""

from __future__ import annotations

import gzip
import importlib.util
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vitoolkit.datasets import (
    DIGITS_SPLIT_SIZES,
    SHAPE_NAMES,
    SHAPES_FACTOR_NAMES,
    IDXFormatError,
    load_digits,
    load_mnist,
    load_shapes,
    read_idx,
    render_shapes,
    shape_area,
    write_idx,
)
from vitoolkit.datasets.digits import split_indices

# -- digits ---------------------------------------------------------------------------


def test_digits_full_set_matches_the_raw_counts():
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.dtype == torch.float32 and y.dtype == torch.int64
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    # The raw images are counts 0..16: scaling back must give integers.
    counts = X.double() * 16
    assert torch.equal(counts, counts.round())
    assert sorted(y.unique().tolist()) == list(range(10))


def test_digits_binarised_is_the_threshold_of_the_continuous():
    X, _ = load_digits()
    B, _ = load_digits(binarize=True)
    assert set(B.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(B, (X >= 0.5).float())


def test_digits_split_sizes_disjoint_and_covering():
    X, y = load_digits()
    seen = []
    for split, size in DIGITS_SPLIT_SIZES.items():
        Xs, ys = load_digits(split=split, seed=3)
        assert Xs.shape == (size, 64) and ys.shape == (size,)
        idx = split_indices(len(X), DIGITS_SPLIT_SIZES, split, 3)
        assert torch.equal(Xs, X[idx]) and torch.equal(ys, y[idx])
        seen.append(idx)
    all_idx = np.concatenate(seen)
    assert len(np.unique(all_idx)) == len(X) == len(all_idx)


def test_digits_split_is_deterministic_and_depends_on_seed():
    a, _ = load_digits(split="train", seed=0)
    b, _ = load_digits(split="train", seed=0)
    c, _ = load_digits(split="train", seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_digits_split_keeps_every_class_in_each_part():
    for split in ("train", "val", "test"):
        _, y = load_digits(split=split)
        assert len(y.unique()) == 10


@pytest.mark.parametrize(
    "kwargs, match",
    [({"split": "validation"}, "split"), ({"seed": -1}, "seed"), ({"binarize": "yes"}, "binarize")],
)
def test_digits_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        load_digits(**kwargs)


# -- shapes -------------------------------------------------------------------------------


def test_shapes_outputs_ranges_and_factor_columns():
    X, f = load_shapes(300, seed=1, image_size=12)
    assert X.shape == (300, 144) and f.shape == (300, len(SHAPES_FACTOR_NAMES))
    assert X.dtype == torch.float32 and f.dtype == torch.float32
    assert float(X.min()) >= 0.0 and float(X.max()) <= 1.0
    shape, scale, rot, x, y = f.T
    assert set(shape.unique().tolist()) == {0.0, 1.0, 2.0}
    assert float(scale.min()) >= 0.35 and float(scale.max()) <= 0.6
    assert float(rot.min()) >= 0.0 and float(rot.max()) <= math.pi / 4 + 1e-6
    for c in (x, y):
        assert float(c.abs().max()) <= 0.35 + 1e-6


def test_shapes_pixels_agree_with_the_factors():
    # Pixels entirely outside the circumscribed circle are empty and pixels
    # entirely inside the inscribed circle are full, whatever the rotation.
    size = 16
    X, f = load_shapes(200, seed=4, image_size=size)
    imgs = X.reshape(-1, size, size).double()
    c = -1.0 + (2.0 * torch.arange(size, dtype=torch.float64) + 1.0) / size
    gy, gx = torch.meshgrid(-c, c, indexing="ij")
    half_diag = math.sqrt(2.0) / size
    inradius = {0: 1 / math.sqrt(2.0), 1: 0.5, 2: 0.5}
    for img, (shape, scale, _, x, y) in zip(imgs, f.double(), strict=True):
        dist = ((gx - x) ** 2 + (gy - y) ** 2).sqrt()
        assert float(img[dist > scale + half_diag].sum()) == 0.0
        inner = dist < inradius[int(shape)] * scale - half_diag
        assert bool(inner.any()) and bool((img[inner] == 1.0).all())


def test_shapes_deterministic_in_seed():
    a = load_shapes(50, seed=7)
    b = load_shapes(50, seed=7)
    c = load_shapes(50, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_shapes_images_are_the_rendering_of_their_factors():
    X, f = load_shapes(40, seed=2, image_size=10)
    again = render_shapes(f[:, 0], f[:, 1].double(), f[:, 2].double(), f[:, 3].double(),
                          f[:, 4].double(), image_size=10)
    # The factors are stored in float32, so re-rendering differs only on a few edge sub-pixels.
    assert float((again.reshape(40, -1) - X).abs().max()) <= 2 / 16


def test_shapes_subset_and_binarize():
    X, f = load_shapes(100, seed=0, shapes=("ellipse",), binarize=True)
    assert set(f[:, 0].unique().tolist()) == {float(SHAPE_NAMES.index("ellipse"))}
    assert set(X.unique().tolist()) <= {0.0, 1.0}


def _moments(img):
    """Area (in [-1, 1]^2 units), centroid and central second moments of an image."""
    s = img.shape[0]
    c = -1.0 + (2.0 * torch.arange(s, dtype=torch.float64) + 1.0) / s
    gy, gx = torch.meshgrid(-c, c, indexing="ij")
    w = img.double()
    mass = w.sum()
    area = mass * (2.0 / s) ** 2
    mx, my = (w * gx).sum() / mass, (w * gy).sum() / mass
    mxx = (w * (gx - mx) ** 2).sum() / mass
    myy = (w * (gy - my) ** 2).sum() / mass
    mxy = (w * (gx - mx) * (gy - my)).sum() / mass
    return area, mx, my, mxx, myy, mxy


@settings(max_examples=20)
@given(
    shape=st.integers(0, 2),
    scale=st.floats(0.35, 0.6),
    rotation=st.floats(0.0, math.pi / 4),
    x=st.floats(-0.35, 0.35),
    y=st.floats(-0.35, 0.35),
)
def test_rendered_area_and_centroid_match_the_factors(shape, scale, rotation, x, y):
    # Independent route: the exact area of each shape and the fact that all three
    # (regular polygon, ellipse) have their centroid at the centre.
    img = render_shapes([shape], [scale], [rotation], [x], [y], image_size=48, supersample=6)[0]
    area, mx, my, *_ = _moments(img)
    exact = float(shape_area(SHAPE_NAMES[shape], scale))
    # Anti-aliasing error is at most the perimeter times a sub-pixel width.
    sub = 2.0 / (48 * 6)
    assert abs(float(area) - exact) <= 8 * scale * sub
    assert abs(float(mx) - x) <= 2 * sub and abs(float(my) - y) <= 2 * sub


@given(rotation=st.floats(0.05, math.pi / 2 - 0.05))
def test_ellipse_orientation_from_second_moments_is_the_rotation(rotation):
    img = render_shapes([1], [0.6], [rotation], [0.0], [0.0], image_size=48, supersample=6)[0]
    _, _, _, mxx, myy, mxy = _moments(img)
    angle = 0.5 * math.atan2(2 * float(mxy), float(mxx - myy))
    assert abs(angle - rotation) < 0.02


def test_render_rejects_bad_factors():
    with pytest.raises(ValueError, match="scale must be positive"):
        render_shapes([0], [0.0], [0.0], [0.0], [0.0])
    with pytest.raises(ValueError, match="shape codes"):
        render_shapes([3], [0.5], [0.0], [0.0], [0.0])
    with pytest.raises(ValueError, match="rotation must have shape"):
        render_shapes([0, 1], [0.5, 0.5], [0.0], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="x must be finite"):
        render_shapes([0], [0.5], [0.0], [float("nan")], [0.0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n must be"),
        ({"n": 5, "shapes": ("hexagon",)}, "shapes must be among"),
        ({"n": 5, "shapes": "square"}, "shapes must be a non-empty"),
        ({"n": 5, "scale_range": (0.0, 0.5)}, "scale_range"),
        ({"n": 5, "rotation_range": (1.0, 0.0)}, "rotation_range"),
        ({"n": 5, "image_size": 0}, "image_size"),
        ({"n": 5, "seed": 1.5}, "seed"),
    ],
)
def test_load_shapes_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        load_shapes(**kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n": 5, "binarize": "yes"}, TypeError, "binarize must be True or False"),
        ({"n": 5, "binarize": 1}, TypeError, "binarize"),
        ({"n": 5.0}, TypeError, "n must be an integer"),
        ({"n": True}, TypeError, "n must be an integer"),
        ({"n": 5, "seed": 2**70}, ValueError, "seed must be an integer <="),
        ({"n": 5, "supersample": 2.0}, TypeError, "supersample"),
        ({"n": 5, "scale_range": "ab"}, ValueError, "scale_range must be a pair"),
        ({"n": 5, "position_range": (0.0, float("nan"))}, ValueError, r"position_range\[1\]"),
        ({"n": 5, "rotation_range": (0.0, "1")}, TypeError, r"rotation_range\[1\]"),
    ],
)
def test_load_shapes_arguments_are_not_coerced(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_shapes(**kwargs)


def test_render_refuses_what_it_used_to_coerce():
    with pytest.raises(ValueError, match="integer codes"):  # 1.7 was truncated to 1
        render_shapes([1.7], [0.5], [0.0], [0.0], [0.0])
    with pytest.raises(ValueError, match="scale must have 1 dimension"):  # was flattened
        render_shapes([0, 1], [[0.5, 0.5]], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(TypeError, match="rotation must hold real numbers"):
        render_shapes([0], [0.5], [True], [0.0], [0.0])
    with pytest.raises(ValueError, match="shape must be one of"):
        shape_area("hexagon", 1.0)
    with pytest.raises(ValueError, match="scale must be > 0"):
        shape_area("square", -1.0)


def test_oversized_shapes_requests_are_refused_before_allocating(monkeypatch):
    import tracemalloc

    from vitoolkit.exceptions import ResourceLimitError

    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "64M")
    tracemalloc.start()
    try:
        with pytest.raises(ResourceLimitError, match="n=100000000 would need"):
            load_shapes(10**8)
        with pytest.raises(ResourceLimitError, match="image_size=4000 would need"):
            render_shapes([0], [0.5], [0.0], [0.0], [0.0], image_size=4000)
        # A huge image is blamed on image_size, not on the (small) number of images.
        for size in (10**12, 2**70):
            with pytest.raises(ResourceLimitError, match=rf"^image_size={size} would need"):
                load_shapes(4, image_size=size)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, peak


@pytest.mark.parametrize("shapes", [True, 1.0, 1 + 1j, object(), torch.zeros(2), ("square", 1)])
def test_load_shapes_refuses_shapes_that_are_not_names(shapes):
    with pytest.raises(TypeError, match=r"^shapes must"):
        load_shapes(4, image_size=8, shapes=shapes)


def test_load_shapes_takes_any_sequence_of_names_identically():
    a = load_shapes(6, seed=3, image_size=8, shapes=("square", "triangle"))
    b = load_shapes(6, seed=3, image_size=8, shapes=np.array(["square", "triangle"]))
    c = load_shapes(6, seed=3, image_size=8, shapes=iter(["square", "triangle"]))
    for other in (b, c):
        assert torch.equal(a[0], other[0]) and torch.equal(a[1], other[1])


def test_shape_area_refuses_a_degenerate_or_overflowing_scale():
    for bad in (0.0, [0.5, 0.0]):
        with pytest.raises(ValueError, match=r"^scale must be > 0"):
            shape_area("square", bad)
    with pytest.raises(ValueError, match=r"^scale is too large: the area overflows"):
        shape_area("triangle", [0.5, 2.6e199])
    # Large but representable: the closed form 2 s^2 of the square, exactly.
    assert shape_area("square", 1e150).item() == 2 * 1e150**2


def test_split_indices_validates_its_arguments():
    sizes = {"train": 2, "val": 1, "test": 1}
    assert split_indices(4, sizes, "val", 0).shape == (1,)
    with pytest.raises(TypeError, match="seed"):
        split_indices(4, sizes, "val", 1.5)
    with pytest.raises(ValueError, match="sizes must be a dict"):
        split_indices(4, {"train": 4}, "train", 0)
    with pytest.raises(ValueError, match=r"sizes\['val'\] must be an integer >= 0"):
        split_indices(4, {"train": 4, "val": -1, "test": 1}, "train", 0)
    with pytest.raises(ValueError, match="split must be one of"):
        split_indices(4, sizes, "dev", 0)


# -- IDX and MNIST ---------------------------------------------------------------------

_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    a = (np.arange(60).reshape(3, 4, 5) - 20).astype(dtype)
    if np.dtype(dtype).kind == "u":
        a = np.arange(60, dtype=dtype).reshape(3, 4, 5)
    path = write_idx(tmp_path / f"a{suffix}", a)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5)))
def test_idx_round_trip_property(tmp_path_factory, a):
    path = tmp_path_factory.mktemp("idx") / "x.idx"
    np.testing.assert_array_equal(read_idx(write_idx(path, a)), a)


def test_idx_header_is_the_documented_layout(tmp_path):
    # Independent route: hand-assemble the bytes from the format description.
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16)
    write_idx(tmp_path / "a", a)
    expected = bytes([0, 0, 0x0B, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    expected += b"".join(int(v).to_bytes(2, "big", signed=True) for v in a.ravel())
    assert (tmp_path / "a").read_bytes() == expected


def _write_mnist(folder, n=5, h=28, w=28, split="train", gz=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    stem = {"train": "train", "test": "t10k"}[split]
    ext = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"{stem}-images-idx3-ubyte{ext}", images)
    write_idx(folder / f"{stem}-labels-idx1-ubyte{ext}", labels)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_from_idx(tmp_path, gz, split):
    images, labels = _write_mnist(tmp_path, split=split, gz=gz)
    X, y = load_mnist(tmp_path, split=split)
    assert X.shape == (5, 784) and X.dtype == torch.float32
    np.testing.assert_allclose(X.numpy(), images.reshape(5, -1) / 255.0, rtol=1e-6)
    assert y.dtype == torch.int64 and y.tolist() == labels.tolist()
    Xb, _ = load_mnist(tmp_path, split=split, binarize=True)
    assert torch.equal(Xb, (X >= 0.5).float())


def test_load_fashion_from_torchvision_layout(tmp_path):
    images, labels = _write_mnist(tmp_path / "FashionMNIST" / "raw", n=3)
    X, y = load_mnist(tmp_path, kind="fashion")
    np.testing.assert_allclose(X.numpy(), images.reshape(3, -1) / 255.0, rtol=1e-6)
    assert y.tolist() == labels.tolist()


def test_load_mnist_from_npz(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (4, 6, 6), dtype=np.uint8),
        "y_train": np.arange(4, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (2, 6, 6), dtype=np.uint8),
        "y_test": np.array([7, 3], dtype=np.uint8),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    X, y = load_mnist(tmp_path / "mnist.npz", split="test")
    np.testing.assert_allclose(X.numpy(), arrays["x_test"].reshape(2, -1) / 255.0, rtol=1e-6)
    assert y.tolist() == [7, 3]
    np.savez(tmp_path / "other.npz", images=arrays["x_train"])
    with pytest.raises(ValueError, match="x_train"):
        load_mnist(tmp_path / "other.npz")


def test_missing_files_do_not_download_and_say_how(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="npz file not found"):
        load_mnist(tmp_path / "nothing.npz")


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None,
                    reason="torchvision present: would attempt a download")
def test_download_without_torchvision_is_a_clear_error(tmp_path):
    with pytest.raises(ImportError, match="pip install torchvision"):
        load_mnist(tmp_path, download=True)


def _bad_files():
    good = bytes([0, 0, 0x08, 1]) + (3).to_bytes(4, "big") + bytes([1, 2, 3])
    return {
        "magic": (b"\x01\x02" + good[2:], "not an IDX file"),
        "type": (bytes([0, 0, 0x07, 1]) + good[4:], "unknown IDX element type"),
        "short": (good[:2], "too short"),
        "header": (bytes([0, 0, 0x08, 3]) + (3).to_bytes(4, "big"), "truncated header"),
        "truncated": (good[:-1], "holds 2"),
        "trailing": (good + b"\x00", "holds 4"),
        "ndim": (bytes([0, 0, 0x08, 0]), "0 dimensions"),
        "gzip": (gzip.compress(good)[:-6], "corrupt gzip"),
    }


@pytest.mark.parametrize("case", list(_bad_files()))
def test_bad_idx_files_raise_clear_errors(tmp_path, case):
    data, match = _bad_files()[case]
    path = tmp_path / "bad"
    path.write_bytes(data)
    with pytest.raises(IDXFormatError, match=match):
        read_idx(path)


def test_mismatched_labels_and_wrong_image_rank(tmp_path):
    _write_mnist(tmp_path, n=4)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="labels must have shape"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((3, 784), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"images must have shape \(n, h, w\)"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="no IDX code"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("kwargs, match", [({"kind": "kmnist"}, "kind"), ({"split": "val"}, "split")])
def test_load_mnist_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_mnist(tmp_path, **kwargs)
