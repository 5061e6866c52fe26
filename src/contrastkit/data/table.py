"""Tables: CSV / Parquet files → DataSplits, and the built-in `shuttle` anomaly-detection benchmark.

What a table becomes
--------------------
`Dataset.x` is float32 (N, F): the standardised numeric columns first, then one column per categorical
feature holding its integer code as a float. Everything the encoder, the views and later data need to repeat
the preprocessing is fitted on the TRAINING split only and stored in `info.extra` as plain Python values
(lists, floats, strings), so it can be written with the run as YAML/JSON and applied to new data with
`TableSchema.from_extra(info.extra).transform(frame)`:

    columns              feature names in the order of x's columns
    numeric_columns      names of the numeric features            (x[:, numeric_index])
    categorical_columns  names of the categorical features        (x[:, categorical_index])
    numeric_index / categorical_index   column positions in x
    mean / std           per numeric column, of the training split (ddof=0)
    scaler / quantiles   "standard" (x = (v − mean) / std, the default) or "quantile": x = Φ⁻¹(training quantile
                         rank of v), 1000 training quantiles per column stored (heavy-tailed columns, see below)
    vocab                {column: [category, ...]} of the training split; code k ↔ vocab[k]
    cardinalities        len(vocab) + 1 per categorical column: code len(vocab) is reserved for a category
                         never seen in training (and for masked values); embeddings are sized by it
    impute               {column: value} fitted on training (median / most frequent), only with impute=True
    dropped_columns      constant or all-missing columns removed with drop_constant=True

Column types are inferred from the training file: numeric dtypes are numeric; text columns whose values mostly
(≥ 50 % of the non-missing ones) parse as numbers are numeric too — then any value that does not parse is an
ERROR naming the column and its first bad row (never a silent switch to categorical); text columns whose values
mostly (≥ 50 %) look like dates or times ("2024-01-31", "31/01/2024", "Jan 31, 2024", "10:30") are an ERROR
saying to convert or drop them (as are datetime columns of a Parquet file); other text and boolean columns are
categorical. `categorical_columns: [a, b]` forces columns to be categorical (e.g. port numbers, or a code that
only looks like a date).

Also errors, each naming the column: a repeated column name in the header (pandas would silently rename the
second `a` to `a.1`); a finite value beyond float32's range (|v| > 3.4e38, e.g. ±1e308: it would become ±inf
in the float32 `x`), or one whose standardised value overflows float32 — rescale (e.g. log), clip, or drop it.

Settings (cfg keys)
-------------------
label_column    column with the labels; removed from the features, only used for evaluation (Dataset.y)
anomaly_label   value (or list of values) of label_column that marks the anomalous class: y becomes 0 normal /
                1 anomaly; the original class names go to info.extra["classes"] and each TEST row's original
                class id to `splits.test.info.extra["class_ids"]` (the test split carries its own DataInfo with
                that one extra key, so the training info stays small) for per-class AUROC.
                Training then keeps NORMAL rows only: the normal rows are split by test_fraction and every
                anomalous row goes to the test split; with a separate test_data file the anomalous rows of the
                training file are dropped (counted in info.extra["dropped_train_anomalies"]).
normal_label    alternative to anomaly_label: value(s) marking the normal class; every other value is anomalous
test_fraction   fraction of rows (of the normal rows with anomaly_label) held out for evaluation; default 0.2,
                seeded by `seed` (default 0)
test_data       path of a separate evaluation file with the same columns (test_fraction is then ignored)
impute          False (default): NaN / inf / missing is an error. True: median (numeric) / most frequent
                (categorical) of the training split fills them, in both splits
drop_constant   False (default): a constant or all-missing training column is an error. True: drop it
drop_columns    columns to remove before anything else (ids, timestamps, addresses)
categorical_columns  columns to treat as categorical whatever their type
scaler          "standard" (default): numerics standardised with the training mean/std. "quantile": each
                numeric column mapped through its training quantiles to a standard normal (rank-Gauss, as
                scikit-learn's QuantileTransformer), bounded to ±5.2. For heavy-tailed columns, where a few
                extreme rows inflate the std so that almost every row sits within ±0.1 "standard deviations",
                noise-based views (CLAN's U(−1.7, 1.7), Gaussian noise) then act on the bulk of the data

Shuttle
-------
`shuttle` is the ODDS version of Statlog Shuttle shipped inside `river` (49,097 rows, 9 integer features,
`anomaly` 0/1, 3,511 anomalies). Split: a seeded (cfg `seed`) 60/40 split of the 45,586 NORMAL rows; training
gets the 60 % (27,352 rows) and only those; the test split holds the other 40 % (18,234 rows) plus ALL
3,511 anomalies (21,745 rows, 16.1 % anomalies). The fraction is fixed (cfg `test_fraction` is not used) so
published numbers stay comparable.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from ..errors import ContrastkitError
from . import register_source, register_suffix
from .base import DataInfo, DataSplits, Dataset

__all__ = ["TableSchema", "load_table", "load_table_streamed", "load_shuttle", "table_splits", "read_table"]

NUMERIC_FRACTION = 0.5  # a text column is numeric when at least this share of its non-missing values parse
FLOAT32_MAX = float(np.finfo(np.float32).max)  # x is float32: larger magnitudes would become inf
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[ap]\.?m\.?)?"
#: Text that looks like a date, a date-time or a time of day (ISO 8601, d/m/y, m/d/y, d.m.yyyy, "31 Jan 2024",
#: "Jan 31, 2024", "10:30:00"), optionally with a time zone. Such columns are errors, not categories.
DATE_PATTERN = re.compile(
    rf"""^(?:
        (?:\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}}
          |\d{{1,2}}[-/]\d{{1,2}}[-/](?:\d{{4}}|\d{{2}})
          |\d{{1,2}}\.\d{{1,2}}\.\d{{4}}
          |\d{{1,2}}[ -]{_MONTH}[ -,]+\d{{2,4}}
          |{_MONTH}[ -]\d{{1,2}}(?:st|nd|rd|th)?,?[ -]\d{{2,4}})
        (?:[ T]+{_CLOCK})?
      |{_CLOCK})
      \s*(?:z|utc|gmt|[+-]\d{{2}}:?\d{{2}})?$""",
    re.IGNORECASE | re.VERBOSE,
)
SCALERS = ("standard", "quantile")
N_QUANTILES = 1000  # reference points of the quantile scaler (as scikit-learn's QuantileTransformer)
SHUTTLE_TEST_FRACTION = 0.4


# ------------------------------------------------------------------------------------------------- reading
def read_table(path: str | Path) -> pd.DataFrame:
    """Read a .csv, .csv.gz or .parquet file into a DataFrame; unreadable files raise ContrastkitError."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ContrastkitError(f"table file {str(path)!r} does not exist; check the path")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ContrastkitError(f"{str(path)!r}: reading Parquet needs pyarrow: pip install "
                                       f"'contrastkit[parquet]' (or save the table as .csv)") from None
            df = pd.read_parquet(path)
        elif name.endswith(".csv") or name.endswith(".csv.gz"):
            df = pd.read_csv(path, skipinitialspace=True)
        else:
            raise ContrastkitError(f"{str(path)!r}: unsupported table file type; use .csv, .csv.gz or .parquet")
    except ContrastkitError:
        raise
    except Exception as e:  # pandas / pyarrow parse errors, bad gzip, ...
        raise ContrastkitError(f"cannot read table {str(path)!r}: {e}") from e
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise ContrastkitError(f"table {str(path)!r} is empty ({df.shape[0]} rows, {df.shape[1]} columns)")
    df.columns = [str(c).strip() for c in df.columns]
    names = list(df.columns)
    if not name.endswith(".parquet"):  # pandas renames a repeated CSV header a, a → a, a.1: check the raw row
        try:
            names = [str(c).strip() for c in pd.read_csv(path, header=None, nrows=1, dtype=str,
                                                          keep_default_na=False).iloc[0].tolist()]
        except Exception:  # pragma: no cover - the full read above succeeded
            pass
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ContrastkitError(f"table {str(path)!r} has duplicate column name(s) {dup}; rename them")
    return df


def _where(source: str, row: int, is_csv: bool) -> str:
    return f"row {row} (file line {row + 2})" if is_csv else f"row {row}"


def _as_category(v: Any) -> str:
    """Text form of a category / label value; 80.0 and 80 are the same category (pandas turns an integer
    column with missing values into floats, so one file may hold 80 and another 80.0)."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (np.integer, np.bool_)):
        v = v.item()
    return str(v).strip()


def _infer_kind(col: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(col):
        return "categorical"
    if pd.api.types.is_numeric_dtype(col):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col):
        return "datetime"
    values = col.dropna()
    if len(values) == 0:
        return "numeric"  # all missing: reported by the constant / all-missing check
    text = values.astype(str).str.strip()
    parsed = pd.to_numeric(text, errors="coerce")
    if float(parsed.notna().mean()) >= NUMERIC_FRACTION:
        return "numeric"
    sample = text.drop_duplicates().head(2000)
    if float(sample.str.match(DATE_PATTERN).mean()) >= NUMERIC_FRACTION:
        return "datetime"
    return "categorical"


class _Frame:
    """One file's features after type checks: float64 numerics (NaN/inf kept) and str categoricals (None)."""

    def __init__(self, numeric: dict[str, np.ndarray], categorical: dict[str, np.ndarray], n: int):
        self.numeric, self.categorical, self.n = numeric, categorical, n

    def take(self, rows: np.ndarray) -> "_Frame":
        return _Frame({k: v[rows] for k, v in self.numeric.items()},
                      {k: v[rows] for k, v in self.categorical.items()}, len(rows))


def _parse(df: pd.DataFrame, kinds: dict[str, str], source: str, is_csv: bool) -> _Frame:
    """Convert each column to its kind; a value that cannot be a number in a numeric column is an error."""
    numeric, categorical = {}, {}
    for name, kind in kinds.items():
        col = df[name]
        if kind == "numeric":
            if pd.api.types.is_bool_dtype(col):
                numeric[name] = col.to_numpy(dtype=np.float64)
                continue
            if pd.api.types.is_numeric_dtype(col):
                numeric[name] = col.to_numpy(dtype=np.float64, na_value=np.nan)
                continue
            text = col.astype("string").str.strip()
            parsed = pd.to_numeric(text, errors="coerce")
            bad = (col.notna() & parsed.isna()).to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                share = float(parsed.notna().sum()) / max(1, int(col.notna().sum()))
                raise ContrastkitError(
                    f"{source}: column {name!r} is numeric ({share:.0%} of its values are numbers) but "
                    f"{_where(source, row, is_csv)} holds {str(col.iloc[row])!r} ({int(bad.sum())} such value(s)); "
                    f"fix or remove those values, or list the column in categorical_columns to treat it as a category"
                )
            numeric[name] = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = col.to_numpy(dtype=object)
            missing = pd.isna(col).to_numpy()
            out = np.array([None if m else _as_category(v) for v, m in zip(values, missing)], dtype=object)
            categorical[name] = out
    return _Frame(numeric, categorical, len(df))


def _check_range(frame: _Frame, source: str, is_csv: bool) -> None:
    """Finite numeric values beyond float32's range (|v| > 3.4e38, e.g. 1e308) would become ±inf in x: error."""
    for name, v in frame.numeric.items():
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(v) & (np.abs(v) > FLOAT32_MAX)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ContrastkitError(
                f"{source}: column {name!r} has {int(bad.sum())} value(s) too large for float32 (|v| > 3.4e38), "
                f"the first at {_where(source, row, is_csv)} ({v[row]:g}); rescale the column (e.g. log), clip "
                f"it, or remove it with drop_columns"
            )


def _check_missing(frame: _Frame, source: str, is_csv: bool) -> None:
    """Without impute, NaN / inf (numeric) and missing values (categorical) are errors naming the first row."""
    for name, v in frame.numeric.items():
        bad = ~np.isfinite(v)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "NaN (missing)" if np.isnan(v[row]) else ("inf" if v[row] > 0 else "-inf")
            raise ContrastkitError(
                f"{source}: column {name!r} has {int(bad.sum())} missing or infinite value(s), the first at "
                f"{_where(source, row, is_csv)} ({what}); fill or remove them, or set impute: true to replace them "
                f"with the training median"
            )
    for name, v in frame.categorical.items():
        bad = np.array([x is None for x in v], dtype=bool)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ContrastkitError(
                f"{source}: categorical column {name!r} has {int(bad.sum())} missing value(s), the first at "
                f"{_where(source, row, is_csv)}; fill or remove them, or set impute: true to use the most frequent "
                f"training category"
            )


# ------------------------------------------------------------------------------------------------- schema
def _gaussianize(v: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Training-quantile rank → standard normal (scikit-learn's QuantileTransformer(output_distribution="normal")):
    ties get the middle of their rank range; values outside the training range map to ±5.2."""
    from scipy.special import ndtri

    levels = np.linspace(0.0, 1.0, len(q))
    u = 0.5 * (np.interp(v, q, levels) - np.interp(-v, -q[::-1], -levels[::-1]))
    return ndtri(np.clip(u, 1e-7, 1.0 - 1e-7))
@dataclasses.dataclass
class TableSchema:
    """Preprocessing fitted on the training split; `transform` applies it to any frame with the same columns."""

    numeric_columns: list[str]
    categorical_columns: list[str]
    mean: list[float]
    std: list[float]
    vocab: dict[str, list[str]]
    impute: dict[str, Any]
    dropped_columns: list[str]
    scaler: str = "standard"
    quantiles: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    @classmethod
    def fit(cls, frame: _Frame, impute: bool, drop_constant: bool, source: str,
            scaler: str = "standard") -> "TableSchema":
        numeric_cols, cat_cols, dropped = [], [], []
        mean, std, vocab, fill, quantiles = [], [], {}, {}, {}
        if scaler not in SCALERS:
            raise ContrastkitError(f"scaler={scaler!r}; valid: {', '.join(SCALERS)}")
        fix = "remove the column, or set drop_constant: true to drop constant and all-missing columns"
        for name, v in frame.numeric.items():
            finite = v[np.isfinite(v)]
            if finite.size == 0 or np.all(finite == finite[0]):
                if drop_constant:
                    dropped.append(name)
                    continue
                what = "all-missing" if finite.size == 0 else f"constant (every value is {finite[0]:g})"
                raise ContrastkitError(f"{source}: column {name!r} is {what} in the training split, so it "
                                       f"carries no information and cannot be standardised; {fix}")
            if impute:
                fill[name] = float(np.median(finite))
            numeric_cols.append(name)
            mean.append(float(finite.mean()))
            std.append(float(finite.std()))
            if scaler == "quantile":
                levels = np.linspace(0.0, 1.0, min(N_QUANTILES, finite.size))
                quantiles[name] = [float(q) for q in np.quantile(finite, levels)]
        for name, v in frame.categorical.items():
            present = [x for x in v if x is not None]
            uniq, counts = np.unique(np.array(present, dtype=object).astype(str), return_counts=True) if present \
                else (np.array([]), np.array([]))
            if len(uniq) <= 1:
                if drop_constant:
                    dropped.append(name)
                    continue
                what = "all-missing" if len(uniq) == 0 else f"constant (every value is {uniq[0]!r})"
                raise ContrastkitError(f"{source}: column {name!r} is {what} in the training split; {fix}")
            if impute:
                fill[name] = str(uniq[int(np.argmax(counts))])  # ties → first in sorted order
            cat_cols.append(name)
            vocab[name] = [str(u) for u in uniq]
        if not numeric_cols and not cat_cols:
            raise ContrastkitError(f"{source}: no feature columns left (dropped: {dropped}); the table needs at "
                                   f"least one non-constant column besides the label")
        if dropped:
            import logging

            logging.getLogger("contrastkit").warning(
                f"note: dropped {len(dropped)} constant or all-missing column(s) of {source}: "
                f"{', '.join(map(str, dropped[:10]))}{' ...' if len(dropped) > 10 else ''} (drop_constant: false "
                "refuses them instead)")
        return cls(numeric_cols, cat_cols, mean, std, vocab, fill, dropped, scaler, quantiles)

    @property
    def columns(self) -> list[str]:
        return self.numeric_columns + self.categorical_columns

    def transform(self, frame: _Frame, source: str = "data") -> np.ndarray:
        """float32 (N, F): standardised numerics, then category codes (unknown → len(vocab)).

        A finite value whose standardised form overflows float32 is an error naming the column."""
        out = np.empty((frame.n, len(self.columns)), dtype=np.float32)
        for j, name in enumerate(self.numeric_columns):
            v = frame.numeric[name].copy()
            if name in self.impute:
                v[~np.isfinite(v)] = self.impute[name]
            with np.errstate(over="ignore", invalid="ignore"):
                if self.scaler == "quantile":
                    out[:, j] = _gaussianize(v, np.asarray(self.quantiles[name]))
                else:
                    out[:, j] = (v - self.mean[j]) / self.std[j]
            overflow = np.isfinite(v) & ~np.isfinite(out[:, j])
            if overflow.any():
                row = int(np.flatnonzero(overflow)[0])
                raise ContrastkitError(
                    f"{source}: column {name!r} row {row} holds {v[row]:g}, which standardised with the training "
                    f"mean {self.mean[j]:g} and std {self.std[j]:g} exceeds float32's range; rescale the column "
                    f"(e.g. log), clip it, or remove it with drop_columns"
                )
        base = len(self.numeric_columns)
        for j, name in enumerate(self.categorical_columns):
            lookup = {c: k for k, c in enumerate(self.vocab[name])}
            unknown = len(self.vocab[name])
            fill = self.impute.get(name)
            out[:, base + j] = [lookup.get(fill if x is None else x, unknown) for x in frame.categorical[name]]
        return out

    def to_extra(self) -> dict[str, Any]:
        n = len(self.numeric_columns)
        return {
            "columns": self.columns,
            "numeric_columns": list(self.numeric_columns),
            "categorical_columns": list(self.categorical_columns),
            "numeric_index": list(range(n)),
            "categorical_index": list(range(n, n + len(self.categorical_columns))),
            "mean": list(self.mean),
            "std": list(self.std),
            "vocab": {k: list(v) for k, v in self.vocab.items()},
            "cardinalities": [len(self.vocab[c]) + 1 for c in self.categorical_columns],
            "impute": dict(self.impute),
            "dropped_columns": list(self.dropped_columns),
            "scaler": self.scaler,
            "quantiles": {k: list(v) for k, v in self.quantiles.items()},
        }

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> "TableSchema":
        return cls(list(extra["numeric_columns"]), list(extra["categorical_columns"]), list(extra["mean"]),
                   list(extra["std"]), {k: list(v) for k, v in extra["vocab"].items()}, dict(extra.get("impute", {})),
                   list(extra.get("dropped_columns", [])), extra.get("scaler", "standard"),
                   {k: list(v) for k, v in extra.get("quantiles", {}).items()})

    def transform_frame(self, df: pd.DataFrame, source: str = "data") -> np.ndarray:
        """Apply to a new DataFrame (same feature columns; extra columns are ignored)."""
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise ContrastkitError(f"{source}: missing column(s) {missing} that the model was trained with")
        kinds = {c: "numeric" for c in self.numeric_columns} | {c: "categorical" for c in self.categorical_columns}
        frame = _parse(df, kinds, source, is_csv=False)
        _check_range(frame, source, is_csv=False)
        if not self.impute:
            _check_missing(frame, source, is_csv=False)
        return self.transform(frame, source)


# ------------------------------------------------------------------------------------------------- labels
def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple, set)) else [v]


def _label_matches(labels: pd.Series, targets: Sequence[Any]) -> np.ndarray:
    """Rows whose label equals any target, comparing as text and, when both parse, as numbers (1 == '1.0')."""
    text = np.array([_as_category(v) for v in labels.tolist()], dtype=object)
    num = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    out = np.zeros(len(labels), dtype=bool)
    for t in targets:
        out |= text == _as_category(t)
        try:
            tf = float(t)
        except (TypeError, ValueError):
            continue
        if math.isfinite(tf):
            out |= num == tf
    return out


def _class_names(labels: list[pd.Series]) -> list[str]:
    values = sorted({_as_category(v) for s in labels for v in s.tolist()})
    try:
        return sorted(values, key=float)
    except ValueError:
        return values


# ------------------------------------------------------------------------------------------------- splits
def table_splits(
    train_df: pd.DataFrame,
    cfg: dict[str, Any],
    *,
    name: str,
    test_df: Optional[pd.DataFrame] = None,
    train_source: str = "training data",
    test_source: str = "test data",
    csv: tuple[bool, bool] = (False, False),
) -> DataSplits:
    """The whole table pipeline on DataFrames (the file loaders and `shuttle` call this)."""
    seed = int(cfg.get("seed") or 0)
    impute, drop_constant = bool(cfg.get("impute", False)), bool(cfg.get("drop_constant", False))
    label = cfg.get("label_column")
    anomaly_label, normal_label = cfg.get("anomaly_label"), cfg.get("normal_label")
    if anomaly_label is not None and normal_label is not None:
        raise ContrastkitError("set either anomaly_label or normal_label, not both")
    anomaly_mode = anomaly_label is not None or normal_label is not None
    if anomaly_mode and label is None:
        raise ContrastkitError(f"{'anomaly_label' if anomaly_label is not None else 'normal_label'} needs "
                               f"label_column: the name of the column that holds the labels")

    # columns to drop, and the same columns on both sides
    for c in _as_list(cfg.get("drop_columns") or []):
        if c not in train_df.columns:
            raise ContrastkitError(f"{train_source}: drop_columns names {c!r}, which is not a column; "
                                   f"columns: {list(train_df.columns)}")
        train_df = train_df.drop(columns=[c])
        if test_df is not None and c in test_df.columns:
            test_df = test_df.drop(columns=[c])
    if test_df is not None:
        only_train = [c for c in train_df.columns if c not in test_df.columns]
        only_test = [c for c in test_df.columns if c not in train_df.columns]
        if only_train or only_test:
            parts = []
            if only_train:
                parts.append(f"column(s) {only_train} are in {train_source} but missing from {test_source}")
            if only_test:
                parts.append(f"column(s) {only_test} are in {test_source} but not in {train_source}")
            raise ContrastkitError("training and evaluation data must have the same columns: " + "; ".join(parts))
        test_df = test_df[list(train_df.columns)]
    if label is not None and label not in train_df.columns:
        raise ContrastkitError(f"{train_source}: label_column {label!r} is not a column; "
                               f"columns: {list(train_df.columns)}")

    # feature kinds, inferred on the training file
    forced = [str(c) for c in _as_list(cfg.get("categorical_columns") or [])]
    for c in forced:
        if c not in train_df.columns or c == label:
            raise ContrastkitError(f"{train_source}: categorical_columns names {c!r}, which is not a feature column")
    kinds = {}
    for c in train_df.columns:
        if c == label:
            continue
        kinds[c] = "categorical" if c in forced else _infer_kind(train_df[c])
        if kinds[c] == "datetime":
            example = str(train_df[c].dropna().iloc[0]) if train_df[c].notna().any() else ""
            raise ContrastkitError(f"{train_source}: column {c!r} holds dates/times (e.g. {example!r}); convert it "
                                   f"to numbers (e.g. seconds, day of week) or list it in drop_columns (or, if it is "
                                   f"not a date, in categorical_columns)")
    if not kinds:
        raise ContrastkitError(f"{train_source}: no feature columns besides the label column {label!r}")
    train_frame = _parse(train_df, kinds, train_source, csv[0])
    test_frame = None if test_df is None else _parse(test_df, kinds, test_source, csv[1])
    _check_range(train_frame, train_source, csv[0])
    if test_frame is not None:
        _check_range(test_frame, test_source, csv[1])
    if not impute:
        _check_missing(train_frame, train_source, csv[0])
        if test_frame is not None:
            _check_missing(test_frame, test_source, csv[1])

    # labels
    extra: dict[str, Any] = {}
    y_train = y_test = None
    num_classes = None
    if label is not None:
        frames = [train_df[label]] + ([test_df[label]] if test_df is not None else [])
        for s, src, is_csv in zip(frames, (train_source, test_source), csv):
            miss = s.isna().to_numpy()
            if miss.any():
                row = int(np.flatnonzero(miss)[0])
                raise ContrastkitError(f"{src}: label_column {label!r} is missing at {_where(src, row, is_csv)}; "
                                       f"every row needs a label (or leave label_column unset)")
        classes = _class_names(frames)
        code = {c: k for k, c in enumerate(classes)}
        class_ids = [np.array([code[_as_category(v)] for v in s.tolist()], dtype=np.int64) for s in frames]
        extra.update(label_column=label, classes=classes)
        if anomaly_mode:
            targets = _as_list(anomaly_label if anomaly_label is not None else normal_label)
            flags = [_label_matches(s, targets) for s in frames]
            if normal_label is not None:
                flags = [~f for f in flags]
            n_anom = sum(int(f.sum()) for f in flags)
            if anomaly_label is not None and n_anom == 0:
                raise ContrastkitError(f"anomaly_label={anomaly_label!r} never occurs in label_column {label!r}; "
                                       f"its values are {classes[:20]}")
            if normal_label is not None and all(f.all() for f in flags):
                raise ContrastkitError(f"normal_label={normal_label!r} never occurs in label_column {label!r}; "
                                       f"its values are {classes[:20]}")
            extra.update(anomaly_label=anomaly_label, normal_label=normal_label,
                         anomaly_classes=[c for c in classes if _label_matches(pd.Series([c]), targets)[0]
                                          != (normal_label is not None)])
            y_all = [f.astype(np.int64) for f in flags]
            num_classes = 2
        else:
            y_all = class_ids
            num_classes = len(classes)

    # split
    if test_frame is None:
        fraction = float(cfg.get("test_fraction", 0.2) if cfg.get("test_fraction") is not None else 0.2)
        if not 0.0 < fraction < 1.0:
            raise ContrastkitError(f"test_fraction={fraction} must be between 0 and 1 (e.g. 0.2), "
                                   f"or pass a separate evaluation file as test_data")
        rng = np.random.default_rng(seed)
        n = train_frame.n
        if anomaly_mode:
            normal_rows = np.flatnonzero(y_all[0] == 0)
            anomalous = np.flatnonzero(y_all[0] == 1)
        else:
            normal_rows, anomalous = np.arange(n), np.array([], dtype=np.int64)
        perm = rng.permutation(normal_rows)
        n_test = int(round(fraction * len(perm)))
        if n_test == 0 or n_test == len(perm):
            raise ContrastkitError(f"test_fraction={fraction} leaves an empty split of {len(perm)} "
                                   f"{'normal ' if anomaly_mode else ''}rows; use more rows or another fraction")
        train_rows = np.sort(perm[n_test:])
        test_rows = np.sort(np.concatenate([perm[:n_test], anomalous]))
        test_frame = train_frame.take(test_rows)
        train_frame = train_frame.take(train_rows)
        if label is not None:
            y_test_raw, cls_test = y_all[0][test_rows], class_ids[0][test_rows]
            y_train_raw = y_all[0][train_rows]
        extra["split"] = {"test_fraction": fraction, "seed": seed,
                          "rule": "seeded split of the normal rows; every anomaly in test" if anomaly_mode
                          else "seeded random split"}
    else:
        if label is not None:
            y_train_raw, y_test_raw, cls_test = y_all[0], y_all[1], class_ids[1]
            if anomaly_mode:
                keep = np.flatnonzero(y_train_raw == 0)
                extra["dropped_train_anomalies"] = int(train_frame.n - len(keep))
                train_frame, y_train_raw = train_frame.take(keep), y_train_raw[keep]
        extra["split"] = {"rule": "separate test_data file"}
    if train_frame.n < 2:
        raise ContrastkitError(f"{train_source}: only {train_frame.n} training row(s) left; need at least 2")

    schema = TableSchema.fit(train_frame, impute, drop_constant, train_source, str(cfg.get("scaler") or "standard"))
    x_train = torch.from_numpy(schema.transform(train_frame, train_source))
    x_test = torch.from_numpy(schema.transform(test_frame, test_source))
    extra = {**schema.to_extra(), **extra, "n_train": int(train_frame.n), "n_test": int(test_frame.n)}
    info = DataInfo(name=name, kind="table", shape=(x_train.shape[1],), num_classes=num_classes, extra=extra)
    test_info = info
    if label is not None:
        y_train, y_test = torch.from_numpy(y_train_raw), torch.from_numpy(y_test_raw)
        if anomaly_mode:
            test_info = dataclasses.replace(info, extra={**extra, "class_ids": cls_test.tolist()})
    return DataSplits(Dataset(x_train, y_train, info), Dataset(x_test, y_test, test_info))


# ------------------------------------------------------------------------------------------------- sources
@register_suffix(".csv", ".parquet", ".csv.gz")
def load_table(path: str | Path, cfg: dict[str, Any]) -> DataSplits:
    """A CSV / Parquet file (and optionally cfg["test_data"] for evaluation) → DataSplits. See module doc."""
    path = Path(path).expanduser()
    train_df = read_table(path)
    test_df, test_source, test_csv = None, "test data", False
    if cfg.get("test_data"):
        tpath = Path(cfg["test_data"]).expanduser()
        test_df, test_source = read_table(tpath), f"test_data {str(tpath)!r}"
        test_csv = not tpath.name.lower().endswith(".parquet")
    name = path.name.split(".")[0] or "table"
    return table_splits(train_df, cfg, name=name, test_df=test_df, train_source=f"{str(path)!r}",
                        test_source=test_source, csv=(not path.name.lower().endswith(".parquet"), test_csv))


def shuttle_path() -> Path:
    try:
        from river import datasets
    except ImportError as e:  # pragma: no cover - river is a dependency of the tabular extra
        raise ContrastkitError("the shuttle data set ships with the `river` package: pip install river") from e
    return Path(datasets.Shuttle().path)


@register_source("shuttle")
def load_shuttle(cfg: dict[str, Any]) -> DataSplits:
    """ODDS Shuttle from river: train on 60 % of the normal rows, test on the rest + all anomalies (module doc)."""
    df = read_table(shuttle_path())
    sub = {"label_column": "anomaly", "anomaly_label": 1, "test_fraction": SHUTTLE_TEST_FRACTION,
           "seed": cfg.get("seed", 0), "impute": False, "drop_constant": False, "scaler": cfg.get("scaler")}
    return table_splits(df, sub, name="shuttle", train_source="shuttle", csv=(True, False))


# ------------------------------------------------------------------------------------------------- streamed
# Tables larger than memory (`stream: true`, or `auto` above data/stream.TABLE_STREAM_AUTO_BYTES) are read in
# chunks of CHUNK_ROWS rows (pandas `chunksize` for CSV, pyarrow `iter_batches` for Parquet), never whole:
#   pass 1  the label column alone (or the row count): labels, anomaly flags, the seeded split — the same rows
#           as the in-memory loader;
#   pass 2  every column, chunk by chunk: the same type and range checks, and the training rows' statistics
#           (count, mean and sum of squared deviations merged chunk by chunk; min/max; the categories);
#   pass 3  each chunk transformed with the fitted schema into a float32 (N, F) memory-mapped cache file,
#           which then trains through the streaming path (data/stream.py: sorted reads, background prefetch).
# Column kinds are inferred on the first chunk (a numeric column with text further down is still an error).
# The cache (`cache_dir`/tables/<key>/) is reused by the next run on the same file and settings.
CHUNK_ROWS = 65536


def _chunks(path: Path, columns: Optional[list[str]] = None, chunk_rows: Optional[int] = None):
    """DataFrames of at most `chunk_rows` rows, column names stripped as `read_table` strips them."""
    chunk_rows = int(chunk_rows or CHUNK_ROWS)
    try:
        if path.name.lower().endswith(".parquet"):
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise ContrastkitError(f"{str(path)!r}: reading Parquet needs pyarrow: pip install "
                                       f"'contrastkit[parquet]' (or save the table as .csv)") from None
            pf = pq.ParquetFile(path)
            raw = {str(c).strip(): c for c in pf.schema_arrow.names}
            cols = None if columns is None else [raw[c] for c in columns]
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=cols):
                df = batch.to_pandas()
                df.columns = [str(c).strip() for c in df.columns]
                yield df
        else:
            raw = {str(c).strip(): c for c in pd.read_csv(path, nrows=0, skipinitialspace=True).columns}
            cols = None if columns is None else [raw[c] for c in columns]
            for df in pd.read_csv(path, skipinitialspace=True, chunksize=chunk_rows, usecols=cols):
                df.columns = [str(c).strip() for c in df.columns]
                yield df if cols is None else df[[str(c).strip() for c in cols]]
    except ContrastkitError:
        raise
    except Exception as e:  # pandas / pyarrow parse errors, bad gzip, ...
        raise ContrastkitError(f"cannot read table {str(path)!r}: {e}") from e


def _header(path: Path) -> list[str]:
    """Column names (stripped); repeated names are an error, as in `read_table`."""
    try:
        if path.name.lower().endswith(".parquet"):
            import pyarrow.parquet as pq

            names = [str(c).strip() for c in pq.ParquetFile(path).schema_arrow.names]
        else:
            names = [str(c).strip() for c in pd.read_csv(path, header=None, nrows=1, dtype=str,
                                                          keep_default_na=False).iloc[0].tolist()]
    except ImportError:
        raise ContrastkitError(f"{str(path)!r}: reading Parquet needs pyarrow: pip install 'contrastkit[parquet]' "
                               f"(or save the table as .csv)") from None
    except Exception as e:
        raise ContrastkitError(f"cannot read table {str(path)!r}: {e}") from e
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ContrastkitError(f"table {str(path)!r} has duplicate column name(s) {dup}; rename them")
    if not names:
        raise ContrastkitError(f"table {str(path)!r} is empty (no columns)")
    return names


class _Moments:
    """Count, mean, sum of squared deviations, min and max of a column, merged chunk by chunk (Chan et al.)."""

    def __init__(self):
        self.n, self.mean, self.m2, self.lo, self.hi = 0, 0.0, 0.0, math.inf, -math.inf

    def add(self, v: np.ndarray) -> None:
        v = v[np.isfinite(v)]
        if v.size == 0:
            return
        nb, mb = v.size, float(v.mean())
        m2b = float(((v - mb) ** 2).sum())
        n = self.n + nb
        delta = mb - self.mean
        self.mean += delta * nb / n
        self.m2 += m2b + delta * delta * self.n * nb / n
        self.n = n
        self.lo, self.hi = min(self.lo, float(v.min())), max(self.hi, float(v.max()))


def _streamed_labels(path: Path, cfg: dict[str, Any], label: Optional[str], source: str):
    """Pass 1: (n, y, class ids, extra, train rows, test rows) from the label column alone."""
    seed = int(cfg.get("seed") or 0)
    anomaly_label, normal_label = cfg.get("anomaly_label"), cfg.get("normal_label")
    anomaly_mode = anomaly_label is not None or normal_label is not None
    extra: dict[str, Any] = {}
    y = class_ids = None
    num_classes = None
    if label is None:
        n = sum(len(df) for df in _chunks(path, columns=[_header(path)[0]]))
    else:
        # labels as small integer codes, chunk by chunk: each distinct value is turned into text (and matched
        # against anomaly_label / normal_label) once, never a column of Python strings for every row
        keys: dict[str, int] = {}
        raw_of: list[Any] = []
        ids, n = [], 0
        for df in _chunks(path, columns=[label]):
            s = df[label]
            miss = s.isna().to_numpy()
            if miss.any():
                row = n + int(np.flatnonzero(miss)[0])
                raise ContrastkitError(f"{source}: label_column {label!r} is missing at row {row}; every row needs "
                                       f"a label (or leave label_column unset)")
            codes, uniques = pd.factorize(s)
            local = np.empty(len(uniques), dtype=np.int64)
            for j, u in enumerate(uniques):
                key = _as_category(u)
                if key not in keys:
                    keys[key] = len(keys)
                    raw_of.append(u)
                local[j] = keys[key]
            ids.append(local[codes])
            n += len(s)
        ids = np.concatenate(ids)
        classes = _class_names([pd.Series(list(keys))])
        remap = np.empty(len(keys), dtype=np.int64)
        for key, k in keys.items():
            remap[k] = classes.index(key)
        class_ids = remap[ids]
        del ids
        extra.update(label_column=label, classes=classes)
        if anomaly_mode:
            targets = _as_list(anomaly_label if anomaly_label is not None else normal_label)
            per_key = np.zeros(len(keys), dtype=bool)
            for key, k in keys.items():
                per_key[remap[k]] = bool(_label_matches(pd.Series([raw_of[k]]), targets)[0])
            flags = per_key[class_ids]
            if normal_label is not None:
                flags = ~flags
            if anomaly_label is not None and not flags.any():
                raise ContrastkitError(f"anomaly_label={anomaly_label!r} never occurs in label_column {label!r}; "
                                       f"its values are {classes[:20]}")
            if normal_label is not None and flags.all():
                raise ContrastkitError(f"normal_label={normal_label!r} never occurs in label_column {label!r}; "
                                       f"its values are {classes[:20]}")
            extra.update(anomaly_label=anomaly_label, normal_label=normal_label,
                         anomaly_classes=[c for c in classes if _label_matches(pd.Series([c]), targets)[0]
                                          != (normal_label is not None)])
            y, num_classes = flags.astype(np.int64), 2
        else:
            y, num_classes = class_ids, len(classes)
    fraction = float(cfg.get("test_fraction", 0.2) if cfg.get("test_fraction") is not None else 0.2)
    if not 0.0 < fraction < 1.0:
        raise ContrastkitError(f"test_fraction={fraction} must be between 0 and 1 (e.g. 0.2)")
    if anomaly_mode:
        normal_rows, anomalous = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    else:
        normal_rows, anomalous = np.arange(n), np.array([], dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(normal_rows)  # the in-memory loader's split
    n_test = int(round(fraction * len(perm)))
    if n_test == 0 or n_test == len(perm):
        raise ContrastkitError(f"test_fraction={fraction} leaves an empty split of {len(perm)} "
                               f"{'normal ' if anomaly_mode else ''}rows; use more rows or another fraction")
    train_rows, test_rows = np.sort(perm[n_test:]), np.sort(np.concatenate([perm[:n_test], anomalous]))
    extra["split"] = {"test_fraction": fraction, "seed": seed,
                      "rule": "seeded split of the normal rows; every anomaly in test" if anomaly_mode
                      else "seeded random split"}
    return n, y, class_ids, num_classes, extra, train_rows, test_rows


def _streamed_schema(path: Path, cfg: dict[str, Any], features: list[str], kinds: dict[str, str],
                     is_train: np.ndarray, source: str) -> TableSchema:
    """Pass 2: type and range checks on every chunk; statistics and categories of the training rows."""
    drop_constant = bool(cfg.get("drop_constant", False))
    moments = {c: _Moments() for c, k in kinds.items() if k == "numeric"}
    cats: dict[str, set] = {c: set() for c, k in kinds.items() if k == "categorical"}
    start = 0
    for df in _chunks(path, columns=features):
        where = f"{source} (the chunk of rows from {start})"
        frame = _parse(df, kinds, where, is_csv=False)
        _check_range(frame, where, is_csv=False)
        _check_missing(frame, where, is_csv=False)
        mask = is_train[start : start + frame.n]
        for c, m in moments.items():
            m.add(frame.numeric[c][mask])
        for c, s in cats.items():
            s.update(x for x in frame.categorical[c][mask] if x is not None)
        start += frame.n
    numeric, categorical, dropped, mean, std, vocab = [], [], [], [], [], {}
    fix = "remove the column, or set drop_constant: true to drop constant and all-missing columns"
    for c, m in moments.items():
        if m.n == 0 or m.lo == m.hi:
            if drop_constant:
                dropped.append(c)
                continue
            what = "all-missing" if m.n == 0 else f"constant (every value is {m.lo:g})"
            raise ContrastkitError(f"{source}: column {c!r} is {what} in the training split, so it carries no "
                                   f"information and cannot be standardised; {fix}")
        numeric.append(c)
        mean.append(m.mean)
        std.append(math.sqrt(m.m2 / m.n))
    for c, s in cats.items():
        if len(s) <= 1:
            if drop_constant:
                dropped.append(c)
                continue
            what = "all-missing" if not s else f"constant (every value is {next(iter(s))!r})"
            raise ContrastkitError(f"{source}: column {c!r} is {what} in the training split; {fix}")
        categorical.append(c)
        vocab[c] = sorted(str(x) for x in s)
    if not numeric and not categorical:
        raise ContrastkitError(f"{source}: no feature columns left (dropped: {dropped}); the table needs at "
                               f"least one non-constant column besides the label")
    return TableSchema(numeric, categorical, mean, std, vocab, {}, dropped, "standard", {})


def _table_cache_key(path: Path, cfg: dict[str, Any]) -> str:
    import hashlib
    import json

    st = path.stat()
    keys = ("label_column", "anomaly_label", "normal_label", "test_fraction", "seed", "drop_columns",
            "categorical_columns", "drop_constant")
    spec = {"path": str(path.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns, "chunk": CHUNK_ROWS,
            "version": 1, **{k: cfg.get(k) for k in keys}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]


def load_table_streamed(path: str | Path, cfg: dict[str, Any]) -> DataSplits:
    """A CSV / Parquet table larger than memory → streamed DataSplits (see the comment above CHUNK_ROWS)."""
    import json
    import os

    from .stream import Rows, StreamingDataset, _no_readahead

    path = Path(path).expanduser()
    source = f"{str(path)!r}"
    if not path.exists():
        raise ContrastkitError(f"table file {source} does not exist; check the path")
    unsupported = [k for k in ("test_data", "impute") if cfg.get(k)]
    if str(cfg.get("scaler") or "standard") != "standard":
        unsupported.append(f"scaler: {cfg.get('scaler')}")
    if unsupported:
        raise ContrastkitError(f"{source}: a streamed table (stream: true, or a table too large for memory) does not "
                               f"support {', '.join(unsupported)} (they need the whole table at once); remove the "
                               f"setting, or use --stream false on a machine where the table fits")
    names = _header(path)
    label = cfg.get("label_column")
    for c in _as_list(cfg.get("drop_columns") or []):
        if c not in names:
            raise ContrastkitError(f"{source}: drop_columns names {c!r}, which is not a column; columns: {names}")
    if label is not None and label not in names:
        raise ContrastkitError(f"{source}: label_column {label!r} is not a column; columns: {names}")
    if (cfg.get("anomaly_label") is not None or cfg.get("normal_label") is not None) and label is None:
        raise ContrastkitError("anomaly_label / normal_label needs label_column: the name of the column that holds "
                               "the labels")
    if cfg.get("anomaly_label") is not None and cfg.get("normal_label") is not None:
        raise ContrastkitError("set either anomaly_label or normal_label, not both")
    drop = set(_as_list(cfg.get("drop_columns") or []))
    features = [c for c in names if c not in drop and c != label]
    if not features:
        raise ContrastkitError(f"{source}: no feature columns besides the label column {label!r}")
    forced = [str(c) for c in _as_list(cfg.get("categorical_columns") or [])]
    for c in forced:
        if c not in features:
            raise ContrastkitError(f"{source}: categorical_columns names {c!r}, which is not a feature column")

    from .images import _cache_dir

    folder = _cache_dir(cfg) / "tables" / _table_cache_key(path, cfg)
    n, y, class_ids, num_classes, extra, train_rows, test_rows = _streamed_labels(path, cfg, label, source)
    if not ((folder / "x.npy").exists() and (folder / "schema.json").exists()):
        first = next(iter(_chunks(path, columns=features)))
        kinds = {c: "categorical" if c in forced else _infer_kind(first[c]) for c in features}
        for c, k in kinds.items():
            if k == "datetime":
                example = str(first[c].dropna().iloc[0]) if first[c].notna().any() else ""
                raise ContrastkitError(f"{source}: column {c!r} holds dates/times (e.g. {example!r}); convert it to "
                                       f"numbers (e.g. seconds, day of week) or list it in drop_columns (or, if it "
                                       f"is not a date, in categorical_columns)")
        is_train = np.zeros(n, dtype=bool)
        is_train[train_rows] = True
        schema = _streamed_schema(path, cfg, features, kinds, is_train, source)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"x.{os.getpid()}.tmp.npy"
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, len(schema.columns)))
        kinds = {c: "numeric" for c in schema.numeric_columns} | {c: "categorical" for c in schema.categorical_columns}
        start, lo, hi = 0, np.full(len(schema.columns), np.inf, np.float32), np.full(len(schema.columns), -np.inf,
                                                                                    np.float32)
        for df in _chunks(path, columns=schema.columns):  # pass 3: the float32 cache, a chunk at a time
            x = schema.transform(_parse(df, kinds, source, is_csv=False), source)
            out[start : start + len(x)] = x
            mask = is_train[start : start + len(x)]
            if mask.any():
                lo, hi = np.minimum(lo, x[mask].min(0)), np.maximum(hi, x[mask].max(0))
            start += len(x)
        out.flush()
        del out
        os.replace(tmp, folder / "x.npy")
        (folder / "schema.json").write_text(json.dumps({**schema.to_extra(), "feature_min": lo.tolist(),
                                                        "feature_max": hi.tolist()}))
    saved = json.loads((folder / "schema.json").read_text())
    schema = TableSchema.from_extra(saved)
    array = np.load(folder / "x.npy", mmap_mode="r")
    _no_readahead(array)
    # feature_min / feature_max: each feature's range over the training rows (what CLAN's aug_range: train fits)
    extra = {**schema.to_extra(), "feature_min": saved["feature_min"], "feature_max": saved["feature_max"], **extra, "n_train": int(len(train_rows)), "n_test": int(len(test_rows)),
             "streamed": True, "cache": str(folder)}
    info = DataInfo(name=path.name.split(".")[0] or "table", kind="table", shape=(len(schema.columns),),
                    num_classes=num_classes, extra=extra)
    y_train = None if y is None else torch.from_numpy(y[train_rows])
    y_test = None if y is None else torch.from_numpy(y[test_rows])
    test_info = info
    if y is not None and (cfg.get("anomaly_label") is not None or cfg.get("normal_label") is not None):
        test_info = dataclasses.replace(info, extra={**extra, "class_ids": class_ids[test_rows].tolist()})
    return DataSplits(StreamingDataset(Rows(array, train_rows), y_train, info),
                      StreamingDataset(Rows(array, test_rows), y_test, test_info))
