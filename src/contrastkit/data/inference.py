"""New data for a trained encoder (`contrastkit embed RUN --data NEW`): every row, in input order, with ids.

Unlike training sources, nothing is split, shuffled or fitted: the run's own preprocessing is applied
(`DataInfo` saved with the run: image size and channels, a table's column schema and scaler).

* image folder: every image file below it, in sorted path order; id = the path relative to the folder, label =
  the first sub-folder's name (when files sit in class folders); unreadable files are skipped and reported.
* .npy / .npz of images: rows in order; id = the row number; labels from `y` when present.
* .csv / .parquet table: rows in order; id = `id_column` when given, else the row number; label = the run's
  label column when present (kept as written).
Other kinds (series, graphs, pairs) and built-in names return None: the caller uses the split-based path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import ContrastkitError
from .base import DataInfo


@dataclass
class InferenceData:
    x: torch.Tensor
    ids: list[str]
    labels: Optional[list[Any]] = None
    skipped: list[str] = field(default_factory=list)


def load_for_inference(data: str, info: DataInfo, id_column: Optional[str] = None) -> Optional[InferenceData]:
    path = Path(data).expanduser()
    if not path.exists():
        return None
    suffix = path.suffix.lower()
    if info.kind == "image" and path.is_dir():
        return _image_folder(path, info)
    if info.kind == "image" and suffix in (".npy", ".npz"):
        return _image_array(path, info)
    if info.kind == "table" and suffix in (".csv", ".parquet", ".pq") or path.name.endswith(".csv.gz"):
        return _table(path, info, id_column)
    return None


def _match_channels(a: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 → (C, H, W) with the run's channel count."""
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 3 and channels == 1:  # ITU-R 601 luma, as Pillow's "L"
        a = np.round(a @ np.array([0.299, 0.587, 0.114]))[:, :, None].astype(np.uint8)
    elif a.shape[2] == 1 and channels == 3:
        a = np.repeat(a, 3, axis=2)
    return a.transpose(2, 0, 1)


def _image_folder(root: Path, info: DataInfo) -> InferenceData:
    from .images import IMAGE_SUFFIXES, _read_images

    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ContrastkitError(f"--data {root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) below it")
    channels, height, width = info.shape
    skipped: list[tuple[Path, str]] = []
    imgs, _ = _read_images(files, (width, height), skipped)
    keep = [i for i, a in enumerate(imgs) if a is not None]
    if not keep:
        raise ContrastkitError(f"--data {root}: none of the {len(files)} image files could be read")
    x = torch.from_numpy(np.stack([_match_channels(imgs[i], channels) for i in keep]))
    rel = [files[i].relative_to(root) for i in keep]
    labels = [p.parts[0] for p in rel] if all(len(p.parts) > 1 for p in rel) else None
    return InferenceData(x, [str(p) for p in rel], labels, [str(p.relative_to(root)) for p, _ in skipped])


def _image_array(path: Path, info: DataInfo) -> InferenceData:
    from .images import _as_nchw

    loaded = np.load(path, allow_pickle=False)  # never executes code from the file
    if isinstance(loaded, np.ndarray):
        arrays = {"x": loaded}
    else:
        with loaded:
            arrays = {k: loaded[k] for k in loaded.files}
    key = "x" if "x" in arrays else next(iter(arrays))
    x = _as_nchw(np.asarray(arrays[key]), path, key)
    if tuple(x.shape[1:]) != tuple(info.shape):
        raise ContrastkitError(f"--data {path}: images of shape {tuple(x.shape[1:])}, the run's encoder expects "
                               f"{tuple(info.shape)}")
    y = arrays.get("y")
    labels = None if y is None or len(y) != len(x) else np.asarray(y).tolist()
    return InferenceData(torch.from_numpy(x), [str(i) for i in range(len(x))], labels)


def _table(path: Path, info: DataInfo, id_column: Optional[str]) -> InferenceData:
    from .table import TableSchema, read_table

    df = read_table(path)
    if id_column is not None and id_column not in df.columns:
        raise ContrastkitError(f"--id-column {id_column!r} is not a column of {path}; columns: {list(df.columns)[:20]}")
    x = TableSchema.from_extra(info.extra).transform_frame(df, source=str(path))
    ids = [str(v) for v in (df[id_column] if id_column else range(len(df)))]
    label = info.extra.get("label_column")
    labels = df[label].tolist() if label and label in df.columns else None
    return InferenceData(torch.as_tensor(x, dtype=torch.float32), ids, labels)
