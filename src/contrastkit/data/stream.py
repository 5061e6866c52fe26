"""Data larger than memory: a `.npy` of images read row by row through a memory map, never whole; CSV/Parquet
tables read in chunks into a float32 memory-mapped cache that streams the same way (data/table.py,
`load_table_streamed`).

`--stream auto` (the default) streams a `.npy` whose size is above `STREAM_AUTO_BYTES` (a quarter of the
machine's memory, at least 1 GiB); `--stream true` always, `false` never. A streamed data set:

* keeps the file memory-mapped (`np.load(mmap_mode="r")`): pages come from the page cache, the process's own
  (anonymous) memory holds one batch at a time;
* splits off the seeded `test_fraction` by row ids, like the in-memory loader (same rows, same order);
* computes the normalisation statistics on the first 10,000 training rows, as the in-memory loader does, but in
  chunks with exact integer sums (the in-memory loader's float64 copy of 10,000 64×64 RGB images is 1 GiB);
* reads each batch with its rows sorted (sequential reads), in a background thread while the previous step
  trains (`Dataset.prefetch`);
* is evaluated on at most `EVAL_ROWS` training and test rows (a seeded sample), so evaluation is bounded too.

Only uint8 image arrays (N, C, H, W) or (N, H, W, C) stream (`.npz` files are compressed archives and cannot
be memory-mapped: save the images as `.npy`).
"""

from __future__ import annotations

import dataclasses
import math
import mmap
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import ContrastkitError
from .base import Batch, DataInfo, Dataset, DataSplits

EVAL_ROWS = 50_000


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30


STREAM_AUTO_BYTES = max(1 << 30, _memory_bytes() // 4)
# A CSV/Parquet table takes several times its file size once parsed (pandas objects, float64, then float32):
# `auto` streams tables from a sixteenth of the memory (at least 256 MiB of file) on.
TABLE_STREAM_AUTO_BYTES = max(256 << 20, _memory_bytes() // 16)
TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def _is_table(path: Path) -> bool:
    return path.name.lower().endswith(TABLE_SUFFIXES)


def wants_stream(path: Path, cfg: dict[str, Any]) -> bool:
    """Whether `path` is read from disk chunk by chunk: a .npy of images, or a CSV/Parquet table."""
    setting = cfg.get("stream", "auto")
    if setting in (True, "true"):
        if path.suffix.lower() != ".npy" and not _is_table(path):
            raise ContrastkitError(f"--stream true: {path} is neither a .npy file nor a .csv/.csv.gz/.parquet table; "
                                   "only those stream (save images with numpy.save), or use --stream auto")
        return True
    if setting in (False, "false"):
        return False
    if setting not in (None, "auto"):
        raise ContrastkitError(f"--stream {setting!r}: use auto, true or false")
    if _is_table(path):
        return path.stat().st_size > TABLE_STREAM_AUTO_BYTES
    return path.suffix.lower() == ".npy" and path.stat().st_size > STREAM_AUTO_BYTES


def load_streamed(path: Path, cfg: dict[str, Any]) -> DataSplits:
    """The streamed loader of `path`: images from a .npy, or a table read in chunks into a float32 cache."""
    if _is_table(path):
        from .table import load_table_streamed

        return load_table_streamed(path, cfg)
    return load_streamed_images(path, cfg)


class Rows:
    """Rows `ids` of a memory-mapped array — (N, C, H, W) uint8 images (stored NCHW or NHWC) or (N, F) float32
    table features — read on demand as tensors. Supports what the library does with `Dataset.x`: len, shape,
    ndim, slicing and indexing by a tensor of positions."""

    def __init__(self, array: np.ndarray, ids: np.ndarray, channels_last_file: bool = False):
        self.array, self.ids, self.nhwc = array, np.asarray(ids, dtype=np.int64), channels_last_file
        if channels_last_file:
            sample = (array.shape[3], array.shape[1], array.shape[2])
        else:
            sample = tuple(array.shape[1:])
        self.shape = torch.Size((len(self.ids),) + tuple(sample))
        self.ndim, self.dtype = len(self.shape), torch.from_numpy(np.empty(0, dtype=array.dtype)).dtype
        self.device = torch.device("cpu")  # where read rows land

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, positions: np.ndarray) -> torch.Tensor:
        rows = self.ids[positions]
        order = np.argsort(rows, kind="stable")  # sorted reads: the disk (or page cache) sees sequential access
        block = np.empty((len(rows),) + tuple(self.array.shape[1:]), dtype=self.array.dtype)
        block[order] = self.array[rows[order]]
        if self.nhwc:
            block = block.transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(block))

    def dim(self) -> int:
        return self.ndim

    def detach(self):
        """Code that needs every row in memory at once meets this: a clear error instead of a silent full read."""
        raise ContrastkitError(
            f"this step needs the whole training split ({tuple(self.shape)}) in memory, and the data set is streamed "
            "from disk (larger than memory, or --stream true); use --stream false where the data fits")

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            return self.read(np.arange(len(self.ids))[key])
        if isinstance(key, torch.Tensor):
            key = key.detach().cpu().numpy()
        if np.isscalar(key):
            return self.read(np.asarray([key]))[0]
        key = np.asarray(key)
        if key.dtype == bool:  # a boolean mask over the rows
            if key.shape != (len(self.ids),):
                raise IndexError(f"boolean mask of shape {key.shape} for {len(self.ids)} rows")
            key = np.flatnonzero(key)
        return self.read(key.astype(np.int64))

    def subset(self, positions: np.ndarray) -> "Rows":
        return Rows(self.array, self.ids[positions], self.nhwc)

    def to(self, device) -> "Rows":  # rows are read on the CPU; batches are moved by StreamingDataset
        return self


class StreamingDataset(Dataset):
    """A split whose samples stay on disk; `batch(index)` reads them (on the CPU) and moves them to `device`."""

    prefetch = True  # the engine prepares the next batch in a background thread

    def __init__(self, x: Rows, y: Optional[torch.Tensor], info: DataInfo, device: torch.device | str = "cpu"):
        super().__init__(x, y, info)
        self.device = torch.device(device)

    def to(self, device) -> "StreamingDataset":
        return StreamingDataset(self.x, None if self.y is None else self.y.to(device), self.info, device)

    def batch(self, index: torch.Tensor) -> Batch:
        x = self.x[index].to(self.device, non_blocking=True)
        return Batch(x, index, None if self.y is None else self.y[index])

    def sample(self, n: int, seed: int = 0) -> "StreamingDataset":
        """At most n rows (a seeded sample, in file order), for evaluation."""
        if len(self) <= n:
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        y = None if self.y is None else self.y[torch.as_tensor(keep)]
        info = self.info
        per_row = info.extra.get("class_ids")  # a test split's per-row class ids (anomaly tables) follow its rows
        if per_row is not None and len(per_row) == len(self):
            info = dataclasses.replace(info, extra={**info.extra, "class_ids": [per_row[i] for i in keep]})
        return StreamingDataset(self.x.subset(keep), y, info, self.device)

    def in_memory(self) -> Dataset:
        """The rows read into an ordinary Dataset (for a sample small enough to hold)."""
        return Dataset(self.x[:], self.y, self.info)


def channel_stats(rows: "Rows", n: int = 10_000, chunk_bytes: int = 1 << 24) -> tuple[tuple, tuple]:
    """Per-channel mean/std in [0, 1] units of the first `n` rows, read `chunk_bytes` at a time: exact integer
    sums, so the result is the in-memory loader's (`images._channel_stats`) to rounding, in bounded memory."""
    n = min(n, len(rows))
    c = rows.shape[1]
    per_row = int(np.prod(rows.shape[1:]))
    step = max(1, chunk_bytes // per_row)
    s, ss = [0] * c, [0] * c
    for i in range(0, n, step):
        block = rows[i : min(n, i + step)].numpy()
        for ch in range(c):
            v = block[:, ch].astype(np.int64)
            s[ch] += int(v.sum())
            ss[ch] += int((v * v).sum())
    count = n * per_row // c
    mean = tuple(si / count / 255.0 for si in s)
    if count < 2:
        return mean, (1.0,) * c
    std = tuple(max(1e-3, math.sqrt((ssi * count - si * si) / (count * (count - 1))) / 255.0)
                for si, ssi in zip(s, ss))
    return mean, std


def _no_readahead(array: np.ndarray) -> None:
    """Tell the kernel the mapping is read at random (MADV_RANDOM): a batch touches a few pages at scattered
    places, and the default readahead of each fault pulled in ~100× more than the batch needed. Measured on a
    4 GiB file (not cached) in a 1 GiB memory cgroup: 61 GB read from disk in the first 10 steps and 160 img/s
    with readahead (each window evicted before use), see bench/data.py --epoch-gb."""
    m = getattr(array, "_mmap", None)
    if m is not None and hasattr(m, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        try:
            m.madvise(mmap.MADV_RANDOM)
        except OSError:  # pragma: no cover - a file system that refuses the hint: reads stay correct
            pass


def load_streamed_images(path: Path, cfg: dict[str, Any]) -> DataSplits:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:
        raise ContrastkitError(f"cannot memory-map {path}: {e}; is it a .npy array saved without pickle?") from None
    nhwc = array.ndim == 4 and array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3)
    if array.dtype != np.uint8 or array.ndim != 4 or (array.shape[3] if nhwc else array.shape[1]) not in (1, 3):
        raise ContrastkitError(f"{path}: streaming reads uint8 images shaped (N, C, H, W) or (N, H, W, C) with C in "
                               f"(1, 3); got {array.dtype} {array.shape}. Convert it, or use --stream false")
    _no_readahead(array)
    n = len(array)
    n_test = max(1, int(round(n * float(cfg.get("test_fraction", 0.2)))))
    if n < 2 or n_test >= n:
        raise ContrastkitError(f"{path}: {n} images with test_fraction={cfg.get('test_fraction', 0.2)} leaves no "
                               "training images")
    order = np.random.default_rng(int(cfg.get("seed", 0))).permutation(n)  # the in-memory loader's split
    train_rows, test_rows = Rows(array, order[n_test:], nhwc), Rows(array, order[:n_test], nhwc)
    mean, std = channel_stats(train_rows)
    info = DataInfo(name=path.stem, kind="image", shape=tuple(train_rows.shape[1:]), mean=mean, std=std,
                    extra={"streamed": True})
    return DataSplits(StreamingDataset(train_rows, None, info), StreamingDataset(test_rows, None, info))
