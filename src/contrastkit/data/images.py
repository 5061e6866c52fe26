"""Image sources: Fashion-MNIST (IDX files), scikit-learn digits, a folder of images, .npy/.npz arrays.

Every source returns uint8 tensors (N, C, H, W) so the whole split can sit on the training device.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ContrastkitError
from .base import DataInfo, DataSplits, Dataset

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std in [0, 1] units, computed on (a subsample of) the training split."""
    sample = x[: 10000].to(torch.float64) / 255.0
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def make_image_splits(name: str, train_x, train_y, test_x, test_y) -> DataSplits:
    """Wrap uint8 arrays (N, C, H, W) (labels optional) into DataSplits with the DataInfo filled in."""
    train_x = torch.as_tensor(train_x, dtype=torch.uint8).contiguous()
    test_x = torch.as_tensor(test_x, dtype=torch.uint8).contiguous()
    to_y = lambda y: None if y is None else torch.as_tensor(np.asarray(y), dtype=torch.long)  # noqa: E731
    train_y, test_y = to_y(train_y), to_y(test_y)
    num_classes = None
    if train_y is not None:
        num_classes = int(max(train_y.max(), test_y.max() if test_y is not None else 0)) + 1
    mean, std = _channel_stats(train_x)
    info = DataInfo(name=name, kind="image", shape=tuple(train_x.shape[1:]), num_classes=num_classes, mean=mean, std=std)
    return DataSplits(Dataset(train_x, train_y, info), Dataset(test_x, test_y, info))


# ----------------------------------------------------------------------------------------- IDX / Fashion-MNIST
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): big-endian header (magic, dims...) then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ContrastkitError(f"cannot read {path}: {e}; the file is corrupt or truncated, reinstall or re-download it")
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ContrastkitError(f"{path} is not a uint8 IDX file (bad magic number); is it the right file?")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(data) - offset != expected:
        raise ContrastkitError(
            f"{path} is corrupt: header says {dims} = {expected} values but the file holds {len(data) - offset}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims).copy()


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.exists():
            return candidate
    return None


def load_fashion_mnist(cfg: dict[str, Any]) -> DataSplits:
    directory = Path(cfg.get("data_dir") or os.environ.get("CONTRASTKIT_FASHION_MNIST") or FASHION_MNIST_DIR)
    paths = {key: _find_idx(directory, stem) for key, stem in FASHION_MNIST_FILES.items()}
    missing = [FASHION_MNIST_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise ContrastkitError(
            f"Fashion-MNIST not found in {directory} (missing {', '.join(missing)}[.gz]). Install it with "
            "`sudo apt-get install -y dataset-fashion-mnist` (Debian), or download the four IDX files and pass "
            "--data-dir DIR"
        )
    arrays = {key: read_idx(p) for key, p in paths.items()}
    return make_image_splits(
        "fashion-mnist",
        arrays["train_x"][:, None],
        arrays["train_y"],
        arrays["test_x"][:, None],
        arrays["test_y"],
    )


def load_digits(cfg: dict[str, Any]) -> DataSplits:
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 → 0..255
    y = bunch.target
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    order = rng.permutation(len(x))
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    return make_image_splits("digits", x[train], y[train], x[test], y[test])


# ------------------------------------------------------------------------------------------------ folders
def _read_image(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if size is not None and img.size != size:
                img = img.resize(size, Image.BILINEAR, reducing_gap=None)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise ContrastkitError(f"cannot read image {path}: {e}; remove or replace the file")


def load_image_folder(root: Path, cfg: dict[str, Any]) -> DataSplits:
    """A folder of images; class sub-folders are optional (their names become labels, for evaluation only).

    A `train/` + `test/` layout is respected; otherwise a seeded `test_fraction` (default 0.2) is held out.
    Images are resized to `image_size` (default: the first image's size) and stored as uint8.
    """
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_files, train_labels, classes = _scan_folder(root / "train")
        test_files, test_labels, _ = _scan_folder(root / "test", classes)
    else:
        files, labels, classes = _scan_folder(root)
        rng = np.random.default_rng(int(cfg.get("seed", 0)))
        order = rng.permutation(len(files))
        n_test = max(1, int(round(len(files) * float(cfg.get("test_fraction", 0.2)))))
        test_idx, train_idx = order[:n_test], order[n_test:]
        train_files, test_files = [files[i] for i in train_idx], [files[i] for i in test_idx]
        train_labels = None if labels is None else [labels[i] for i in train_idx]
        test_labels = None if labels is None else [labels[i] for i in test_idx]
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(train_files[0]) as first:
            mode = "L" if first.mode in ("L", "1", "I;16", "I") else "RGB"
            size = (int(cfg["image_size"]),) * 2 if cfg.get("image_size") else first.size
    except (UnidentifiedImageError, OSError) as e:
        raise ContrastkitError(f"cannot read image {train_files[0]}: {e}; remove or replace the file")

    def stack(paths):
        arr = np.stack([_read_image(p, mode, size) for p in paths])
        return arr[:, None] if arr.ndim == 3 else arr.transpose(0, 3, 1, 2)

    return make_image_splits(root.name, stack(train_files), train_labels, stack(test_files), test_labels)


def _scan_folder(root: Path, classes: list[str] | None = None):
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir())
    if subdirs:
        classes = classes or subdirs
        files, labels = [], []
        for label, name in enumerate(classes):
            for p in sorted((root / name).rglob("*")):
                if p.suffix.lower() in IMAGE_SUFFIXES:
                    files.append(p)
                    labels.append(label)
    else:
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        labels = None
    if len(files) < 2:
        raise ContrastkitError(f"image folder {root} holds {len(files)} images; need at least 2 ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files, labels, classes


# ------------------------------------------------------------------------------------------------ arrays
def _as_nchw(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3:  # (N, H, W) grayscale
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # NHWC → NCHW
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ContrastkitError(
            f"{path}: images must have shape (N, H, W), (N, C, H, W) or (N, H, W, C) with C in (1, 3); got {x.shape}"
        )
    if x.dtype != np.uint8:
        if not np.isfinite(x).all():
            raise ContrastkitError(f"{path}: the image array contains NaN or inf values")
        if x.min() >= 0 and x.max() <= 1.0:
            x = np.round(x * 255.0)
        elif x.min() < 0 or x.max() > 255:
            raise ContrastkitError(f"{path}: image values must lie in [0, 1] or [0, 255]; got [{x.min()}, {x.max()}]")
        x = x.astype(np.uint8)
    return np.ascontiguousarray(x)


def load_arrays(path: Path, cfg: dict[str, Any]) -> DataSplits:
    """.npz with keys x[_train]/y[_train] (and optional x_test/y_test), or a .npy image array (no labels)."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ContrastkitError(f"cannot read {path}: {e}; is it a valid .npy/.npz file?")
    if isinstance(loaded, np.ndarray):
        arrays = {"x": loaded}
    else:
        arrays = {k: loaded[k] for k in loaded.files}
    x = arrays.get("x_train", arrays.get("x"))
    if x is None:
        raise ContrastkitError(f"{path}: expected an array named 'x' or 'x_train' (found {sorted(arrays)})")
    y = arrays.get("y_train", arrays.get("y"))
    x = _as_nchw(x, path)
    if "x_test" in arrays:
        return make_image_splits(path.stem, x, y, _as_nchw(arrays["x_test"], path), arrays.get("y_test"))
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    order = rng.permutation(len(x))
    n_test = max(1, int(round(len(x) * float(cfg.get("test_fraction", 0.2)))))
    te, tr = order[:n_test], order[n_test:]
    return make_image_splits(path.stem, x[tr], None if y is None else y[tr], x[te], None if y is None else y[te])


from . import register_source, register_suffix  # noqa: E402  (after definitions: the package imports us)

register_source("fashion-mnist")(load_fashion_mnist)
register_source("digits")(load_digits)
register_suffix(".npy", ".npz")(load_arrays)
