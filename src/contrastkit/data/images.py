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
    if sample[:, 0].numel() < 2:  # one 1×1 image: no spread to measure
        return tuple(float(m) for m in sample.mean(dim=(0, 2, 3))), (1.0,) * sample.shape[1]
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def make_image_splits(name: str, train_x, train_y, test_x, test_y, extra: dict | None = None) -> DataSplits:
    """Wrap uint8 arrays (N, C, H, W) (labels optional) into DataSplits with the DataInfo filled in."""
    train_x = torch.as_tensor(train_x, dtype=torch.uint8).contiguous()
    test_x = torch.as_tensor(test_x, dtype=torch.uint8).contiguous()
    to_y = lambda y: None if y is None else torch.as_tensor(np.asarray(y), dtype=torch.long)  # noqa: E731
    train_y, test_y = to_y(train_y), to_y(test_y)
    num_classes = None
    if train_y is not None:
        num_classes = int(max(train_y.max(), test_y.max() if test_y is not None else 0)) + 1
    mean, std = _channel_stats(train_x)
    info = DataInfo(name=name, kind="image", shape=tuple(train_x.shape[1:]), num_classes=num_classes, mean=mean,
                    std=std, extra=dict(extra or {}))
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
#: Modes stored as one grey channel; every other mode is colour (→ RGB).
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_SHOW_SKIPPED = 5  # file names listed in the one-line note about skipped files


class _Unsupported(Exception):
    """An image that opens but whose values cannot be mapped to 8 bits unambiguously."""


def _as_uint8(img) -> np.ndarray:
    """One decoded PIL image → uint8 (H, W) (grey modes) or (H, W, 3) (every other mode), explicitly per mode.

    1, L → as is (1 → 0/255); LA → L (alpha dropped); I;16* (16-bit PNG/TIFF) → rescaled v/257 (0..65535 →
    0..255, not clipped); I (32-bit int) → the same 16-bit rescaling when its values lie in 0..65535, else
    unsupported; F (float) → ×255 when its values lie in [0, 1], as is in [0, 255], else unsupported;
    RGB → as is; RGBA/RGBX/RGBa, P/PA (palette), CMYK, YCbCr, LAB, HSV → RGB via Pillow (alpha dropped).
    """
    mode = img.mode
    if mode in ("1", "LA", "La"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if mode == "L":
        return np.asarray(img, dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img)
        if a.dtype.byteorder not in ("=", "|"):
            a = a.astype(a.dtype.newbyteorder("="))
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise _Unsupported(f"mode {mode} with values in [{lo}, {hi}] (only 0..65535, 16-bit, is supported)")
        return np.round(a.astype(np.float64) / 257.0).astype(np.uint8)
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        if not np.isfinite(a).all():
            raise _Unsupported("mode F (float) with NaN or inf values")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo >= 0 and hi <= 1.0:
            a = a * 255.0
        elif lo < 0 or hi > 255:
            raise _Unsupported(f"mode F (float) with values in [{lo:g}, {hi:g}] (need [0, 1] or [0, 255])")
        return np.round(a).astype(np.uint8)
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    try:  # RGBA, RGBX, RGBa, P, PA, CMYK, YCbCr, LAB, HSV, ...
        if mode in ("P", "PA"):  # via RGBA: Pillow warns when a palette with transparency goes straight to RGB
            img = img.convert("RGBA")
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (ValueError, OSError) as e:
        raise _Unsupported(f"mode {mode} cannot be converted to RGB ({e})") from e


# Folders of photos: when --image-size is not given and the first image is larger than LARGE_IMAGE px, images
# are brought to PHOTO_SIZE (the shorter side resized, then a centred square crop): a CPU trains 96-px images
# at a useful speed, and 4000x3000 photos would not fit in memory at full size. GPU users pass --image-size 224.
LARGE_IMAGE = 128
PHOTO_SIZE = 96


def _decode(path: Path, target: int | None = None) -> np.ndarray:
    """The file's first frame as uint8 (H, W) or (H, W, 3), turned upright by its EXIF orientation; raises on
    an unreadable or unsupported file. `target`: JPEGs are decoded at the smallest scale whose shorter side is
    still >= target (DCT scaling: 8x less work on a large photo)."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        if target and img.format == "JPEG":
            img.draft(img.mode if img.mode in ("L", "RGB") else "RGB", (target, target))
        img.load()  # decode now: truncated files fail here, not later
        img = ImageOps.exif_transpose(img)  # camera orientation
        return _as_uint8(img)


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """To (width, height) = size. A square size keeps the aspect ratio (shorter side resized, centred crop);
    another size (the first image's, for folders of same-sized images) is matched exactly."""
    from PIL import Image

    h, w = a.shape[:2]
    if (w, h) == size:
        return a
    img = Image.fromarray(a)
    if size[0] == size[1] and w != h:
        s = size[0]
        scale = s / min(w, h)
        nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
        img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None if max(w, h) < 4 * s else 2.0)
        left, top = (nw - s) // 2, (nh - s) // 2
        return np.asarray(img.crop((left, top, left + s, top + s)), dtype=np.uint8)
    return np.asarray(img.resize(size, Image.BILINEAR, reducing_gap=None), dtype=np.uint8)


def _read_one(path: Path, size: tuple[int, int] | None):
    """(image at `size`, None), or (None, why) for an unreadable file; size None: the decoded size."""
    from PIL import Image, UnidentifiedImageError

    try:
        a = _decode(path, None if size is None else min(size))
        return (a if size is None else _resize(a, size)), None
    except (UnidentifiedImageError, _Unsupported, OSError, ValueError, SyntaxError, EOFError,
            Image.DecompressionBombError) as e:
        return None, str(e) or type(e).__name__


def _read_images(paths: list[Path], size: tuple[int, int] | None, skipped: list[tuple[Path, str]],
                 workers: int | None = None):
    """Decoded, resized images (None for unreadable files, appended to `skipped`) and the size used.

    The first readable image fixes the size when none is given (PHOTO_SIZE square for photos larger than
    LARGE_IMAGE px). The rest are decoded by a pool of threads (Pillow decodes and resizes without the GIL),
    with a progress bar on a terminal for long folders."""
    out: list = [None] * len(paths)
    start = 0
    while size is None and start < len(paths):  # the first readable image decides the working size
        a, err = _read_one(paths[start], None)
        if a is None:
            skipped.append((paths[start], err))
            start += 1
            continue
        if max(a.shape[:2]) > LARGE_IMAGE:
            size = (PHOTO_SIZE, PHOTO_SIZE)
            import logging

            logging.getLogger("contrastkit").warning(
                f"note: the images are large (the first is {a.shape[1]}x{a.shape[0]} px): working at "
                f"{PHOTO_SIZE}x{PHOTO_SIZE} (shorter side resized, centred crop); --image-size sets another")
        else:
            size = (a.shape[1], a.shape[0])
        out[start] = _resize(a, size)
        start += 1
    rest = paths[start:]
    if rest:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(int(workers or min(8, os.cpu_count() or 1))) as pool:
            results = pool.map(lambda p: _read_one(p, size), rest)
            if len(rest) > 500:
                from rich.progress import track

                results = track(results, total=len(rest), description=f"decoding {len(rest)} images",
                                transient=True)
            for k, (img, err) in enumerate(results):
                out[start + k] = img
                if err is not None:
                    skipped.append((rest[k], err))
    return out, size


CACHE_MIN_FILES = 200  # smaller folders decode in a moment: no cache file for them


def _cache_dir(cfg: dict[str, Any]) -> Path:
    return Path(cfg.get("cache_dir") or os.environ.get("CONTRASTKIT_CACHE") or Path.home() / ".cache" / "contrastkit")


def _decode_folder(root: Path, files: list[Path], size, cfg: dict[str, Any]):
    """Every file decoded and resized (None where unreadable) and the skipped (path, why) list. A folder of
    CACHE_MIN_FILES or more is cached, decoded once: `<cache>/images/<key>.npy` + `.json`, the key hashing
    the files' names, sizes and modification times, the working size and this format's version; every later
    run (and epoch) starts without decoding."""
    import hashlib
    import json

    key = None
    if len(files) >= CACHE_MIN_FILES:
        stats = [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        key = hashlib.sha1(json.dumps([1, str(root.resolve()), size, stats]).encode()).hexdigest()[:20]
        base = _cache_dir(cfg) / "images" / key
        if base.with_suffix(".json").exists() and base.with_suffix(".npy").exists():
            meta = json.loads(base.with_suffix(".json").read_text())
            stacked = np.load(base.with_suffix(".npy"), allow_pickle=False)
            readable = iter(range(len(stacked)))
            imgs = [stacked[next(readable)] if ok else None for ok in meta["readable"]]
            return imgs, [(root / rel, why) for rel, why in meta["skipped"]]
    skipped: list[tuple[Path, str]] = []
    imgs, size = _read_images(files, size, skipped, cfg.get("decode_workers"))
    if key is not None and any(a is not None for a in imgs):
        _write_cache(_cache_dir(cfg) / "images" / key, root, imgs, skipped)
    return imgs, skipped


def _write_cache(base: Path, root: Path, imgs: list, skipped: list) -> None:
    import json

    from ..core.checkpoint import write_text_atomic

    colour = any(a is not None and a.ndim == 3 for a in imgs)
    ok = [a for a in imgs if a is not None]
    if colour:
        ok = [a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in ok]
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        tmp = base.with_name(base.name + ".tmp.npy")
        np.save(tmp, np.stack(ok))
        os.replace(tmp, base.with_suffix(".npy"))
        write_text_atomic(base.with_suffix(".json"), json.dumps({
            "readable": [a is not None for a in imgs],
            "skipped": [[str(p.relative_to(root)), why] for p, why in skipped]}))
    except Exception as e:  # noqa: BLE001 - a cache that cannot be written only costs time
        import logging

        logging.getLogger("contrastkit").warning(f"note: could not write the image cache in {base.parent}: {e}")


def load_image_folder(root: Path, cfg: dict[str, Any]) -> DataSplits:
    """A folder of images; class sub-folders are optional (their names become labels, for evaluation only).

    A `train/` + `test/` layout is respected; otherwise a seeded `test_fraction` (default 0.2) is held out.
    With `train/` + `test/`, a class folder of `test/` that `train/` lacks is an error (a class never seen in
    training cannot be evaluated; add training images for it or remove the folder).
    Images are resized to `image_size` (default: the first readable training image's size) and stored as uint8.
    Colour: the data set is RGB when ANY image is a colour image (grey ones are repeated into 3 channels), and
    one grey channel only when every image is grey (modes 1, L, LA, I, I;16, F). Every Pillow mode is converted
    explicitly (see `_as_uint8`): 16-bit images are rescaled to 8 bits (÷257), alpha is dropped, palette and
    CMYK images become RGB; multi-frame files (GIF, TIFF) contribute their first frame.
    Unreadable files (empty, truncated, not an image, an unsupported value range) are skipped with ONE
    warning line on the `contrastkit` logger (their count and the first names; also in
    `info.extra["skipped_files"]`); it is an error only when a split is left with no readable image.
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

    size = (int(cfg["image_size"]),) * 2 if cfg.get("image_size") else None
    imgs, skipped = _decode_folder(root, train_files + test_files, size, cfg)
    train_imgs, test_imgs = imgs[: len(train_files)], imgs[len(train_files):]
    colour = any(a is not None and a.ndim == 3 for a in imgs)

    def stack(imgs, labels, split):
        keep = [i for i, a in enumerate(imgs) if a is not None]
        if not keep:
            raise ContrastkitError(
                f"image folder {root}: no readable image left in the {split} split ({len(imgs)} file(s), all "
                f"unreadable, e.g. {skipped[0][0].name}: {skipped[0][1]}); replace or remove the files"
            )
        arr = [imgs[i] for i in keep]
        if colour:
            arr = [a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in arr]
        x = np.stack(arr)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        return x, None if labels is None else [labels[i] for i in keep]

    x_train, y_train = stack(train_imgs, train_labels, "training")
    x_test, y_test = stack(test_imgs, test_labels, "test")
    extra = {}
    if skipped:
        names = ", ".join(str(p.relative_to(root)) for p, _ in skipped[:_SHOW_SKIPPED])
        more = f" and {len(skipped) - _SHOW_SKIPPED} more" if len(skipped) > _SHOW_SKIPPED else ""
        import logging

        logging.getLogger("contrastkit").warning(
            f"note: skipped {len(skipped)} unreadable image file(s) in {root}: {names}{more} "
            f"(first: {skipped[0][1]})"
        )
        extra["skipped_files"] = [str(p.relative_to(root)) for p, _ in skipped]
    return make_image_splits(root.name, x_train, y_train, x_test, y_test, extra=extra)


def _scan_folder(root: Path, classes: list[str] | None = None):
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir())
    if subdirs:
        if classes is not None:
            unknown = [d for d in subdirs if d not in classes]
            if unknown:
                raise ContrastkitError(
                    f"image folder {root}: class folder(s) {unknown[:10]} are not in {root.parent / 'train'} "
                    f"(its classes: {classes[:10]}); a class never seen in training cannot be evaluated: add "
                    f"training images for it, or remove the folder"
                )
        classes = classes or subdirs
        files, labels = [], []
        for label, name in enumerate(classes):
            if not (root / name).is_dir():
                continue
            for p in sorted((root / name).rglob("*")):
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                    files.append(p)
                    labels.append(label)
    else:
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        labels = None
    if len(files) < 2:
        raise ContrastkitError(f"image folder {root} holds {len(files)} images; need at least 2 ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files, labels, classes


# ------------------------------------------------------------------------------------------------ arrays
#: Largest class id + 1 accepted in a label array (labels are class ids 0..C−1; C sizes every classifier).
MAX_CLASSES = 1 << 20


def _as_nchw(x: np.ndarray, path: Path, key: str = "x") -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise ContrastkitError(f"{path}: array {key!r} has dtype {x.dtype}; images must be numbers (uint8, or "
                               f"floats in [0, 1] or [0, 255])")
    if x.ndim == 3:  # (N, H, W) grayscale
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # NHWC → NCHW
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ContrastkitError(
            f"{path}: images must have shape (N, H, W), (N, C, H, W) or (N, H, W, C) with C in (1, 3); got {x.shape}"
        )
    if x.size == 0:
        raise ContrastkitError(f"{path}: array {key!r} is empty (shape {x.shape}); it must hold at least 2 images")
    if x.dtype != np.uint8:
        if not np.isfinite(x).all():
            raise ContrastkitError(f"{path}: the image array contains NaN or inf values")
        if x.min() >= 0 and x.max() <= 1.0:
            x = np.round(x * 255.0)
        elif x.min() < 0 or x.max() > 255:
            raise ContrastkitError(f"{path}: image values must lie in [0, 1] or [0, 255]; got [{x.min()}, {x.max()}]")
        x = x.astype(np.uint8)
    return np.ascontiguousarray(x)


def _check_labels(y, n: int, path: Path, key: str) -> np.ndarray | None:
    """Labels → int64 class ids (N,) or a ContrastkitError naming the array; strings are handled by the caller."""
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ContrastkitError(f"{path}: labels {key!r} must be one class id per image, shape ({n},); got {y.shape}")
    if len(y) != n:
        raise ContrastkitError(f"{path}: labels {key!r} hold {len(y)} values but the images number {n}; "
                               f"each image needs exactly one label")
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind not in "iuf":
        raise ContrastkitError(f"{path}: labels {key!r} have dtype {y.dtype}; use integer class ids 0..C-1 "
                               f"(or text labels)")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise ContrastkitError(f"{path}: labels {key!r} contain NaN or inf; every image needs a class id")
        if not np.all(y == np.round(y)):
            raise ContrastkitError(f"{path}: labels {key!r} are not whole numbers (e.g. {y[y != np.round(y)][0]}); "
                                   f"use integer class ids 0..C-1")
    if len(y) and y.min() < 0:
        raise ContrastkitError(f"{path}: labels {key!r} contain negative values (min {y.min()}); use class ids "
                               f"0..C-1")
    if len(y) and y.max() >= MAX_CLASSES:
        raise ContrastkitError(f"{path}: labels {key!r} go up to {int(y.max())}; labels are class ids 0..C-1 "
                               f"(C <= {MAX_CLASSES}), renumber them 0..K-1 for K classes")
    return y.astype(np.int64)


def _text_labels_to_codes(ys: list, path: Path) -> tuple[list, list[str] | None]:
    """Text (unicode/bytes) labels → codes over the sorted class names of all splits (None stays None)."""
    text = [y is not None and np.asarray(y).dtype.kind in "US" for y in ys]
    if not any(text):
        return ys, None
    if not all(t for t, y in zip(text, ys) if y is not None):
        raise ContrastkitError(f"{path}: the training and test labels must both be text or both be numbers")
    as_str = [None if y is None else np.char.strip(np.asarray(y).astype(str)) for y in ys]
    classes = sorted({str(v) for y in as_str if y is not None for v in y.ravel().tolist()})
    code = {c: k for k, c in enumerate(classes)}
    import logging

    logging.getLogger("contrastkit").warning(
        f"note: {path.name}: text labels mapped to class ids 0..{len(classes) - 1} in sorted order "
        f"({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}); kept in info.extra['classes']"
    )
    out = [None if y is None else np.vectorize(code.__getitem__, otypes=[np.int64])(y) if y.size
           else y.astype(np.int64) for y in as_str]
    return out, classes


def load_arrays(path: Path, cfg: dict[str, Any]) -> DataSplits:
    """.npz with keys x[_train]/y[_train] (and optional x_test/y_test), or a .npy image array (no labels).

    Labels are class ids 0..C−1 (integers, or whole-number floats), one per image; text labels (a unicode
    array) are mapped to ids in sorted order of the names (noted once on the `contrastkit` logger, names in
    `info.extra["classes"]`). Negative ids, ids ≥ 2^20, NaN, a length that differs from the images' and
    empty arrays are errors.
    """
    if path.stat().st_size == 0:
        raise ContrastkitError(f"cannot read {path}: the file is empty (0 bytes); save the array again")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            arrays = {"x": loaded}
        else:
            with loaded:
                arrays = {k: loaded[k] for k in loaded.files}
    except Exception as e:  # truncated/corrupt files, pickled objects (refused), zip errors, ...
        raise ContrastkitError(f"cannot read {path}: {e}; is it a valid .npy/.npz file (saved without pickle)?") \
            from None
    x = arrays.get("x_train", arrays.get("x"))
    if x is None:
        raise ContrastkitError(f"{path}: expected an array named 'x' or 'x_train' (found {sorted(arrays)})")
    xkey = "x_train" if "x_train" in arrays else "x"
    ykey = "y_train" if "y_train" in arrays else "y"
    x = _as_nchw(x, path, xkey)
    if len(x) < 2 and "x_test" not in arrays:
        raise ContrastkitError(f"{path}: {len(x)} image(s); need at least 2 (a training and a test image)")
    x_test = _as_nchw(arrays["x_test"], path, "x_test") if "x_test" in arrays else None
    (y, y_test), classes = _text_labels_to_codes([arrays.get(ykey), arrays.get("y_test")], path)
    y = _check_labels(y, len(x), path, ykey)
    extra = {"classes": classes} if classes is not None else None
    if x_test is not None:
        y_test = _check_labels(y_test, len(x_test), path, "y_test")
        return make_image_splits(path.stem, x, y, x_test, y_test, extra=extra)
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    order = rng.permutation(len(x))
    n_test = max(1, int(round(len(x) * float(cfg.get("test_fraction", 0.2)))))
    if n_test >= len(x):
        raise ContrastkitError(f"{path}: test_fraction={cfg.get('test_fraction', 0.2)} leaves no training images "
                               f"out of {len(x)}; use a smaller test_fraction or more images")
    te, tr = order[:n_test], order[n_test:]
    return make_image_splits(path.stem, x[tr], None if y is None else y[tr], x[te], None if y is None else y[te],
                             extra=extra)


from . import register_source, register_suffix  # noqa: E402  (after definitions: the package imports us)

register_source("fashion-mnist")(load_fashion_mnist)
register_source("digits")(load_digits)
register_suffix(".npy", ".npz")(load_arrays)
