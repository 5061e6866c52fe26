import gzip
import struct

import numpy as np
import pytest
import torch

from contrastkit.data import load_data
from contrastkit.data.images import read_idx
from contrastkit.errors import ContrastkitError


def write_idx(path, array, gz=True):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(payload)


def fake_fashion_dir(tmp_path, n_train=12, n_test=5):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, (n_train,)))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, (n_test,)))
    return tmp_path


def test_fashion_mnist_from_data_dir(tmp_path):
    splits = load_data("fashion-mnist", {"data_dir": str(fake_fashion_dir(tmp_path))})
    assert splits.train.x.shape == (12, 1, 28, 28) and splits.train.x.dtype == torch.uint8
    assert splits.test.x.shape == (5, 1, 28, 28) and splits.test.y.shape == (5,)
    assert splits.info.kind == "image" and splits.info.shape == (1, 28, 28)
    assert 0 < splits.info.mean[0] < 1 and splits.info.std[0] > 0


def test_idx_round_trip_uncompressed(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", arr, gz=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), arr)


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    with pytest.raises(ContrastkitError, match="apt-get install -y dataset-fashion-mnist"):
        load_data("fashion-mnist", {"data_dir": str(tmp_path)})


def test_corrupt_idx_names_the_file(tmp_path):
    d = fake_fashion_dir(tmp_path)
    bad = d / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated gzip stream
    with pytest.raises(ContrastkitError, match="t10k-images-idx3-ubyte.gz"):
        load_data("fashion-mnist", {"data_dir": str(d)})


def test_idx_with_wrong_length_is_reported(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"\x00" * 3)
    with pytest.raises(ContrastkitError, match="corrupt"):
        read_idx(path)


def test_digits_split_is_seeded_and_disjoint():
    a, b = load_data("digits", {"seed": 0}), load_data("digits", {"seed": 0})
    assert torch.equal(a.train.x, b.train.x)
    assert len(a.train) + len(a.test) == 1797
    assert a.train.x.max() <= 255 and a.train.x.shape[1:] == (1, 8, 8)


def test_npz_and_npy(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((20, 8, 8, 3)).astype(np.float32), y=np.arange(20) % 2)
    s = load_data(str(tmp_path / "d.npz"), {})
    assert s.train.x.shape[1:] == (3, 8, 8) and s.train.y is not None and len(s.train) + len(s.test) == 20
    np.save(tmp_path / "d.npy", rng.integers(0, 256, (10, 8, 8)).astype(np.uint8))
    s = load_data(str(tmp_path / "d.npy"), {})
    assert s.train.y is None and s.info.shape == (1, 8, 8)


def test_bad_arrays_are_reported(tmp_path):
    np.save(tmp_path / "nan.npy", np.full((4, 8, 8), np.nan, dtype=np.float32))
    with pytest.raises(ContrastkitError, match="NaN"):
        load_data(str(tmp_path / "nan.npy"), {})
    np.save(tmp_path / "shape.npy", np.zeros((4, 8), dtype=np.uint8))
    with pytest.raises(ContrastkitError, match="shape"):
        load_data(str(tmp_path / "shape.npy"), {})
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ContrastkitError, match="junk.npy"):
        load_data(str(tmp_path / "junk.npy"), {})


def test_image_folder_with_and_without_classes(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "c" / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(tmp_path / "c" / cls / f"{i}.png")
    s = load_data(str(tmp_path / "c"), {"image_size": 8})
    assert s.info.shape == (3, 8, 8) and set(torch.cat([s.train.y, s.test.y]).tolist()) == {0, 1}
    (tmp_path / "flat").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (9, 9), dtype=np.uint8)).save(tmp_path / "flat" / f"{i}.png")
    s = load_data(str(tmp_path / "flat"), {})
    assert s.train.y is None and s.info.shape == (1, 9, 9)
    (tmp_path / "flat" / "broken.png").write_bytes(b"not a png")  # skipped, named in one note (issue 17)
    s = load_data(str(tmp_path / "flat"), {})
    assert len(s.train) + len(s.test) == 4 and s.info.extra["skipped_files"] == ["broken.png"]


def test_unknown_data_lists_names():
    with pytest.raises(ContrastkitError, match="fashion-mnist"):
        load_data("no-such-thing", {})
