"""Time series: (N, C, T) arrays, .npy/.npz files and the UCR/UEA data sets bundled in `sktime`, → DataSplits.

What a series split becomes
---------------------------
`Dataset.x` is float32 (N, C, T_max). Series shorter than T_max are padded with NaN AFTER their last step:
a time step is padding when every channel is NaN there, and padding is always a suffix. Views and encoders
read the per-sample length from the NaN padding (`series_lengths(x)`) and mask it; nothing is ever
truncated. `info.kind == "series"`, `info.shape == (C, T_max)`, and `info.extra` holds plain values:

    min_length / max_length   shortest / longest series of the training split (steps)
    equal_length              True when no series is padded (either split)
    classes                   the original label values, in code order (code k ↔ classes[k])
    scaling                   "channel" (default) or "none"
    channel_mean / channel_std  the per-channel statistics of the TRAINING split (over every valid step),
                              applied to both splits as x = (v − mean) / std; also in info.mean / info.std,
                              so they are saved with the run (encoder.pt) and can be applied to new data.

Inputs
------
* arrays shaped (N, T) (one channel) or (N, C, T);
* unequal lengths: a list / object array of (T_i,) or (C, T_i) arrays, or a padded array plus a length vector
  (`lengths`, `lengths_train`, `lengths_test` in an .npz: steps ≥ length are padding, whatever they hold), or a
  float array padded with NaN at the end;
* .npz keys `x`/`y` (a seeded `test_fraction` split, default 0.2) or `x_train`/`y_train`/`x_test`/`y_test`;
* bundled UCR/UEA names (GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf, BasicMotions, JapaneseVowels, ACSF1,
  PLAID): read from the `.ts` files inside the installed `sktime` package (no network, sktime is not imported;
  `pip install --no-deps sktime` is enough). Their own train/test split is kept.

Which .npy/.npz files are series (the suffix is shared with images)
-------------------------------------------------------------------
Setting `data_kind: series` (or `image`) decides. Otherwise (auto) an array is a SERIES when the .npz holds a
`lengths*` key, or x is a ragged (object) array, or x is not uint8 and either has 2 dims (N, T) or 3 dims whose
last two differ (N, C, T with C ≠ T). Everything else — uint8 arrays, 4-dim arrays, (N, S, S) square arrays —
goes to the image loader as before. A square float (N, C, T) series with C == T needs `--data-kind series`.

Errors (one clear ContrastkitError each): ragged input without lengths, NaN inside a series (a missing value
that is not end padding), a channel count that differs between splits, a series of length 0, fewer than 2
training series, non-finite values. (T shorter than a crop is reported by the views, which know the crop.)
"""

from __future__ import annotations

import importlib.util
import pickle
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..errors import ContrastkitError
from .base import DataInfo, DataSplits, Dataset

__all__ = ["series_splits", "series_lengths", "load_series_arrays", "load_ucr", "read_ts", "BUNDLED",
           "is_series_array", "looks_like_series"]

BUNDLED = ("ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand", "JapaneseVowels", "OSULeaf", "ACSF1",
           "PLAID")
SCALINGS = ("channel", "none")


# ------------------------------------------------------------------------------------------------ helpers
def series_lengths(x: torch.Tensor) -> torch.Tensor:
    """Valid length of each series of a NaN-padded (B, C, T) tensor: 1 + the last step where any channel is
    finite (0 for an all-NaN row). Cheap: one isnan pass."""
    valid = ~torch.isnan(x).all(dim=1)  # (B, T)
    t = x.shape[-1]
    steps = torch.arange(1, t + 1, device=x.device).expand_as(valid)
    return (steps * valid).amax(dim=1) if t > 0 else torch.zeros(x.shape[0], dtype=torch.long, device=x.device)


def _as_nct_list(x: Any, where: str) -> list[np.ndarray]:
    """A ragged list / object array of (T_i,) or (C, T_i) arrays → list of float64 (C, T_i)."""
    out = []
    for i, s in enumerate(x):
        a = np.asarray(s, dtype=np.float64)
        if a.ndim == 1:
            a = a[None]
        if a.ndim != 2:
            raise ContrastkitError(f"{where}: series {i} has shape {a.shape}; each series must be (T,) or (C, T)")
        out.append(a)
    return out


def _pad(series: list[np.ndarray], where: str) -> np.ndarray:
    chans = {s.shape[0] for s in series}
    if len(chans) > 1:
        raise ContrastkitError(f"{where}: the series have different channel counts {sorted(chans)}; every series "
                               "needs the same channels (C) in the same order")
    t_max = max(s.shape[1] for s in series)
    out = np.full((len(series), chans.pop(), t_max), np.nan)
    for i, s in enumerate(series):
        out[i, :, : s.shape[1]] = s
    return out


def _to_padded(x: Any, lengths: Optional[Any], where: str) -> np.ndarray:
    """Any accepted input → float64 (N, C, T) with NaN end padding; validated (see the module doc)."""
    if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.dtype == object):
        if lengths is not None:
            raise ContrastkitError(f"{where}: give either a ragged list of series or a padded array with "
                                   "lengths, not both")
        if len(x) == 0:
            raise ContrastkitError(f"{where}: no series")
        arr = _pad(_as_nct_list(x, where), where)
    else:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        arr = np.asarray(x)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ContrastkitError(f"{where}: expected numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        if arr.ndim == 2:
            arr = arr[:, None]
        if arr.ndim != 3:
            raise ContrastkitError(f"{where}: series arrays must have shape (N, T) or (N, C, T); got {arr.shape}")
        if arr.shape[0] == 0 or arr.shape[2] == 0:
            raise ContrastkitError(f"{where}: empty array of shape {arr.shape}")
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.shape != (arr.shape[0],) or not np.issubdtype(lengths.dtype, np.integer) and not np.all(
                    lengths == np.round(lengths)):
                raise ContrastkitError(f"{where}: lengths must be {arr.shape[0]} integers (one per series), got "
                                       f"shape {lengths.shape}")
            lengths = lengths.astype(np.int64)
            bad = np.flatnonzero((lengths < 1) | (lengths > arr.shape[2]))
            if bad.size:
                raise ContrastkitError(f"{where}: lengths[{bad[0]}] = {lengths[bad[0]]} is outside 1..{arr.shape[2]}")
            arr = arr.copy()
            arr[np.broadcast_to(np.arange(arr.shape[2])[None, None, :] >= lengths[:, None, None], arr.shape)] = np.nan
    if np.isinf(arr).any():
        i, c, t = np.argwhere(np.isinf(arr))[0]
        raise ContrastkitError(f"{where}: infinite value at series {i}, channel {c}, step {t}")
    _check_nan_padding(arr, where)
    return arr


def _check_nan_padding(arr: np.ndarray, where: str) -> None:
    nan = np.isnan(arr)
    if not nan.any():
        return
    step_pad = nan.all(axis=1)  # (N, T): every channel NaN
    t = arr.shape[2]
    # valid length = 1 + last step with any finite value
    any_valid = ~step_pad
    length = np.where(any_valid.any(1), t - np.argmax(any_valid[:, ::-1], axis=1), 0)
    empty = np.flatnonzero(length == 0)
    if empty.size:
        raise ContrastkitError(f"{where}: series {empty[0]} has no values (all NaN); remove it")
    inside = nan & (np.arange(t)[None, None, :] < length[:, None, None])
    if inside.any():
        i, c, s = np.argwhere(inside)[0]
        raise ContrastkitError(
            f"{where}: NaN inside a series (series {i}, channel {c}, step {s}, before its last value at step "
            f"{length[i] - 1}). NaN is only accepted as padding after the end of a series; fill missing values "
            "(e.g. interpolate) or pass a lengths vector")


def _encode_labels(y_train, y_test, where: str):
    if y_train is None:
        return None, None, None
    ytr = np.asarray(y_train).reshape(-1)
    yte = None if y_test is None else np.asarray(y_test).reshape(-1)
    values = np.concatenate([ytr, yte]) if yte is not None else ytr
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ContrastkitError(f"{where}: labels contain NaN")
    uniq = np.unique(values.astype(str) if values.dtype == object else values)
    if uniq.dtype.kind in "US":  # numeric-looking text labels ('1', '10', '2') sort as numbers
        try:
            uniq = uniq[np.argsort(uniq.astype(float), kind="stable")]
        except ValueError:
            pass
    lookup = {v: k for k, v in enumerate(uniq.tolist())}
    enc = lambda y: torch.as_tensor([lookup[v] for v in (y.astype(str) if y.dtype == object else y).tolist()],  # noqa
                                    dtype=torch.long)
    return enc(ytr), (None if yte is None else enc(yte)), [v if isinstance(v, (int, str)) else float(v)
                                                          for v in uniq.tolist()]


def series_splits(name: str, x_train: Any, y_train: Any = None, x_test: Any = None, y_test: Any = None, *,
                  lengths_train: Any = None, lengths_test: Any = None, scaling: Optional[str] = "channel",
                  ) -> DataSplits:
    """Validate, NaN-pad, label-encode and standardise (per channel, statistics of the training split)."""
    scaling = scaling or "channel"
    if scaling not in SCALINGS:
        raise ContrastkitError(f"series_scaling={scaling!r}; valid: {', '.join(SCALINGS)}")
    tr = _to_padded(x_train, lengths_train, f"{name} (train)")
    te = _to_padded(x_test, lengths_test, f"{name} (test)")
    if tr.shape[0] < 2:
        raise ContrastkitError(f"{name}: the training split holds {tr.shape[0]} series; need at least 2")
    if tr.shape[1] != te.shape[1]:
        raise ContrastkitError(f"{name}: the training series have {tr.shape[1]} channel(s) but the test series "
                               f"have {te.shape[1]}; both splits need the same channels")
    for split, (xs, ys) in {"train": (tr, y_train), "test": (te, y_test)}.items():
        if ys is not None and len(np.asarray(ys).reshape(-1)) != xs.shape[0]:
            raise ContrastkitError(f"{name}: {len(np.asarray(ys).reshape(-1))} {split} labels for "
                                   f"{xs.shape[0]} {split} series")
    t_max = max(tr.shape[2], te.shape[2])
    pad = lambda a: a if a.shape[2] == t_max else np.concatenate(  # noqa: E731
        [a, np.full(a.shape[:2] + (t_max - a.shape[2],), np.nan)], axis=2)
    tr, te = pad(tr), pad(te)
    if scaling == "channel":
        mean = np.nanmean(tr, axis=(0, 2))
        std = np.nanstd(tr, axis=(0, 2))
        std = np.where(std > 1e-8, std, 1.0)
    else:
        mean, std = np.zeros(tr.shape[1]), np.ones(tr.shape[1])
    tr = (tr - mean[None, :, None]) / std[None, :, None]
    te = (te - mean[None, :, None]) / std[None, :, None]
    ytr, yte, classes = _encode_labels(y_train, y_test, name)
    len_tr = (~np.isnan(tr).all(1)).sum(1)
    len_te = (~np.isnan(te).all(1)).sum(1)
    extra = {"min_length": int(len_tr.min()), "max_length": int(len_tr.max()),
             "equal_length": bool((len_tr == t_max).all() and (len_te == t_max).all()),
             "scaling": scaling, "channel_mean": [float(m) for m in mean], "channel_std": [float(s) for s in std]}
    if classes is not None:
        extra["classes"] = classes
    info = DataInfo(name=name, kind="series", shape=(int(tr.shape[1]), int(t_max)),
                    num_classes=None if classes is None else len(classes),
                    mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std), extra=extra)
    to_t = lambda a: torch.from_numpy(a.astype(np.float32)).contiguous()  # noqa: E731
    return DataSplits(Dataset(to_t(tr), ytr, info), Dataset(to_t(te), yte, info))


# ------------------------------------------------------------------------------------------- .npy / .npz
def is_series_array(x: np.ndarray, has_lengths: bool = False) -> bool:
    """The auto rule of the module doc: which arrays are series rather than images."""
    if has_lengths or x.dtype == object:
        return True
    if x.dtype == np.uint8:
        return False
    return x.ndim == 2 or (x.ndim == 3 and x.shape[1] != x.shape[2])


def auto_rule_keys(keys) -> tuple[Optional[str], bool]:
    """What the auto rule reads of a .npz: the key of the training array (x_train, else x) and whether a
    `lengths*` key is there. The loader and `looks_like_series` both use it, so they decide alike."""
    keys = list(keys)
    key = "x_train" if "x_train" in keys else "x" if "x" in keys else None
    return key, any(k.startswith("lengths") for k in keys)


def looks_like_series(data: str, cfg: dict[str, Any]) -> bool:
    """Whether `data` will load as series, decided before loading it (config.default_method uses it): the
    `data_kind` / `series_id_column` settings, a bundled name, or a .npy/.npz file's array header under the auto
    rule. Only headers are read; False when unsure (the loader reports a bad file later)."""
    if cfg.get("data_kind") in ("series", "image"):
        return cfg["data_kind"] == "series"
    if cfg.get("series_id_column") or data in BUNDLED:
        return True
    path = Path(data)
    try:
        if path.suffix == ".npy":
            with open(path, "rb") as f:
                return is_series_array(_array_header(f))
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as z:
                keys = [n[: -len(".npy")] for n in z.namelist() if n.endswith(".npy")]
                key, has_lengths = auto_rule_keys(keys)
                if key is not None:
                    with z.open(key + ".npy") as f:
                        return is_series_array(_array_header(f), has_lengths)
    except (OSError, ValueError, zipfile.BadZipFile):
        pass
    return False


def _array_header(f) -> Any:
    """dtype, ndim and shape of the array in an open .npy stream, from its header only."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(f)
    return SimpleNamespace(shape=shape, ndim=len(shape), dtype=dtype)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if path.stat().st_size == 0:
        raise ContrastkitError(f"cannot read {path}: the file is empty (0 bytes); save the array again")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (EOFError, pickle.UnpicklingError) as e:  # truncated file, or bytes that are not numpy at all
        raise ContrastkitError(f"cannot read {path}: {e}; is it a valid .npy/.npz file?") from None
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise ContrastkitError(f"cannot read {path}: {e}; is it a valid .npy/.npz file?")
        # ragged series saved as an object array need pickle; only then, and only for a real .npy/.npz file
        with open(path, "rb") as f:
            head = f.read(6)
        if head not in (b"\x93NUMPY", b"PK\x03\x04\x14\x00") and not head.startswith(b"PK"):
            raise ContrastkitError(f"cannot read {path}: not a .npy/.npz file")
        try:
            loaded = np.load(path, allow_pickle=True)
        except Exception as e2:  # noqa: BLE001 - any unpickling failure is a bad file
            raise ContrastkitError(f"cannot read {path}: {e2}; is it a valid .npy/.npz file?") from None
    except OSError as e:
        raise ContrastkitError(f"cannot read {path}: {e}; is it a valid .npy/.npz file?")
    if isinstance(loaded, np.ndarray):
        return {"x": loaded}
    try:
        return {k: loaded[k] for k in loaded.files}
    except Exception as e:  # noqa: BLE001 - a corrupt or truncated member of the .npz archive
        raise ContrastkitError(f"cannot read {path}: {e}; is it a valid .npz file?") from None


def _held_out_split(n: int, path, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows): a seeded `test_fraction` held out, at least 2 series left to train on."""
    if n < 3:
        raise ContrastkitError(f"{path}: {n} series; need at least 3 to hold some out for evaluation")
    order = np.random.default_rng(int(cfg.get("seed", 0))).permutation(n)
    n_test = min(n - 2, max(1, int(round(n * float(cfg.get("test_fraction") or 0.2)))))
    return order[n_test:], order[:n_test]


def load_series_arrays(path: Path, cfg: dict[str, Any], arrays: Optional[dict] = None) -> DataSplits:
    """.npy / .npz series (see the module doc for the keys)."""
    arrays = _read_arrays(path) if arrays is None else arrays
    x = arrays.get("x_train", arrays.get("x"))
    if x is None:
        raise ContrastkitError(f"{path}: expected an array named 'x' or 'x_train' (found {sorted(arrays)})")
    y = arrays.get("y_train", arrays.get("y"))
    lengths = arrays.get("lengths_train", arrays.get("lengths"))
    scaling = cfg.get("series_scaling")
    if "x_test" in arrays:
        return series_splits(path.stem, x, y, arrays["x_test"], arrays.get("y_test"), lengths_train=lengths,
                             lengths_test=arrays.get("lengths_test"), scaling=scaling)
    if isinstance(x, np.ndarray) and x.dtype != object and x.ndim < 2:
        raise ContrastkitError(f"{path}: series arrays must have shape (N, T) or (N, C, T); got {x.shape}")
    tr, te = _held_out_split(len(x), path, cfg)
    pick = lambda a, idx: None if a is None else (  # noqa: E731
        [a[i] for i in idx] if isinstance(a, list) else np.asarray(a)[idx])
    return series_splits(path.stem, pick(x, tr), pick(y, tr), pick(x, te), pick(y, te),
                         lengths_train=pick(lengths, tr), lengths_test=pick(lengths, te), scaling=scaling)


def load_arrays_any(path: Path, cfg: dict[str, Any]) -> DataSplits:
    """The .npy/.npz suffix loader: series or images by `data_kind` or the auto rule (module doc)."""
    from .images import load_arrays as load_image_arrays

    kind = cfg.get("data_kind")
    if kind not in (None, "auto", "image", "series"):
        raise ContrastkitError(f"data_kind={kind!r}; valid for .npy/.npz arrays: image, series (or leave it unset)")
    if kind == "image":
        return load_image_arrays(path, cfg)
    arrays = _read_arrays(path)
    key, has_lengths = auto_rule_keys(arrays)
    x = None if key is None else arrays[key]
    if kind == "series" or (x is not None and is_series_array(np.asarray(x) if not isinstance(x, np.ndarray)
                                                              else x, has_lengths)):
        return load_series_arrays(path, cfg, arrays)
    return load_image_arrays(path, cfg)


# ------------------------------------------------------------------------------------ CSV in long format
def _long_to_series(df, path, id_col: str, time_col: Optional[str], label_col: Optional[str], drop) -> tuple:
    missing = [c for c in (id_col, time_col, label_col) if c is not None and c not in df.columns]
    if missing:
        raise ContrastkitError(f"{path}: column(s) {missing} not found; columns are {list(df.columns)}")
    skip = {id_col, time_col, label_col, *(drop or [])}
    values = [c for c in df.columns if c not in skip]
    bad = [c for c in values if not np.issubdtype(df[c].dtype, np.number)]
    if bad or not values:
        raise ContrastkitError(f"{path}: value columns must be numeric; {bad or 'none left'} (set drop_columns, "
                               f"label_column, time_column, series_id_column for the others)")
    if time_col is not None:
        df = df.sort_values([id_col, time_col], kind="stable")
    series, labels, ids = [], [], []
    for sid, part in df.groupby(id_col, sort=True):
        series.append(part[values].to_numpy(dtype=np.float64).T)  # (C, T_i)
        ids.append(sid)
        if label_col is not None:
            lab = part[label_col].unique()
            if len(lab) != 1:
                raise ContrastkitError(f"{path}: series {sid!r} has {len(lab)} different labels in {label_col!r}; "
                                       "a series has one label")
            labels.append(lab[0])
    return series, (np.asarray(labels) if label_col is not None else None), values


def load_series_table(path: Path, cfg: dict[str, Any]) -> DataSplits:
    """A CSV / Parquet table in long format: one row per (series, time step); `series_id_column` names the
    series, `time_column` (optional) orders the steps (else the file order), `label_column` (optional, one
    value per series) the label; every other column (minus `drop_columns`) is a channel and must be numeric.
    Split: `test_data` (a second file of the same format) or a seeded `test_fraction` of the series."""
    from .table import read_table

    id_col = cfg.get("series_id_column")
    if not id_col:
        raise ContrastkitError(f"{path}: a series table needs --series-id-column (the column naming each series)")
    args = (id_col, cfg.get("time_column"), cfg.get("label_column"), cfg.get("drop_columns"))
    xs, ys, channels = _long_to_series(read_table(path), path, *args)
    if cfg.get("test_data"):
        xt, yt, ch_t = _long_to_series(read_table(cfg["test_data"]), cfg["test_data"], *args)
        if ch_t != channels:
            raise ContrastkitError(f"{cfg['test_data']}: channel columns {ch_t} differ from the training file's "
                                   f"{channels}")
        splits = series_splits(Path(path).stem, xs, ys, xt, yt, scaling=cfg.get("series_scaling"))
    else:
        tr, te = _held_out_split(len(xs), path, cfg)
        pick_y = lambda idx: None if ys is None else ys[idx]  # noqa: E731
        splits = series_splits(Path(path).stem, [xs[i] for i in tr], pick_y(tr), [xs[i] for i in te], pick_y(te),
                               scaling=cfg.get("series_scaling"))
    splits.info.extra["channels"] = channels
    return splits


def load_table_any(path: Path, cfg: dict[str, Any]) -> DataSplits:
    """The .csv/.parquet suffix loader: a long-format series table with `data_kind: series` or a
    `series_id_column`, otherwise the tabular loader (data/table.py) as before."""
    if cfg.get("data_kind") == "series" or cfg.get("series_id_column"):
        return load_series_table(path, cfg)
    from .table import load_table

    return load_table(path, cfg)


# ----------------------------------------------------------------------------------------- UCR / UEA .ts
def read_ts(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """A sktime/UEA `.ts` file → (list of (C, T_i) float arrays, labels as strings). '?' / NaN = missing."""
    series, labels = [], []
    in_data = False
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise ContrastkitError(f"cannot read {path}: {e}")
    has_labels = True
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        low = line.lower()
        if not in_data:
            if low.startswith("@classlabel"):
                has_labels = low.split()[1] == "true"
            if low.startswith("@data"):
                in_data = True
            continue
        parts = line.split(":")
        if has_labels:
            labels.append(parts[-1].strip())
            parts = parts[:-1]
        chans = [np.array([float("nan") if v.strip() in ("?", "") else float(v) for v in p.split(",")])
                 for p in parts]
        t = max(len(c) for c in chans)
        arr = np.full((len(chans), t), np.nan)
        for i, c in enumerate(chans):
            arr[i, : len(c)] = c
        series.append(arr)
    if not series:
        raise ContrastkitError(f"{path}: no @data section or no series in it")
    return series, np.asarray(labels) if has_labels else None


def ucr_directory() -> Path:
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        raise ContrastkitError(
            "the bundled UCR/UEA data sets are read from the sktime package, which is not installed: "
            "pip install 'contrastkit[series]' (or `pip install --no-deps sktime`; only its data files are used)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def load_ucr(name: str, cfg: dict[str, Any]) -> DataSplits:
    root = ucr_directory() / name
    files = {s: root / f"{name}_{s}.ts" for s in ("TRAIN", "TEST")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise ContrastkitError(f"{name}: {', '.join(missing)} not found; this sktime install does not bundle it")
    (xtr, ytr), (xte, yte) = read_ts(files["TRAIN"]), read_ts(files["TEST"])
    # a '?' inside a series would be reported as "NaN inside a series" by series_splits (never dropped)
    return series_splits(name, xtr, ytr, xte, yte, scaling=cfg.get("series_scaling"))


from . import register_source, register_suffix  # noqa: E402  (after definitions: the package imports us)

for _name in BUNDLED:
    register_source(_name)(lambda cfg, _n=_name: load_ucr(_n, cfg))
register_suffix(".npy", ".npz")(load_arrays_any)  # replaces images.load_arrays, which it calls for images
register_suffix(".csv", ".csv.gz", ".parquet")(load_table_any)  # replaces table.load_table, which it calls
