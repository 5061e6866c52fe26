"""What each setting is: its type, group and meaning, so values are checked before anything is written and
`contrastkit config` can list them.

Types come from the default value (a float default makes a float setting) unless declared in `TYPES` (settings
whose default is None). Command-line values are parsed as plain scalars — `true`/`false`, integers, floats
(`5e-4` included), `null`, `[a, b]` / `{k: v}` — never YAML 1.1's `yes`/`no`/`on`/`off` booleans, so
`--anomaly-label yes` stays the string "yes".
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from .errors import ContrastkitError

# Declared types of settings whose default is None (or whose default's type is too narrow).
# "scalar" = any plain value (a label may be a number or a string); "path" and "str" are strings.
TYPES: dict[str, str] = {
    "minutes": "float", "steps": "int", "out": "path", "data_dir": "path", "image_size": "int", "test_data": "path",
    "label_column": "str", "anomaly_label": "scalar", "normal_label": "scalar", "drop_columns": "list",
    "categorical_columns": "list", "scaler": "str", "graph": "str", "graph_smooth": "int", "graph_x": "str",
    "graph_labels": "path", "data_kind": "str", "series_scaling": "str", "encoder_kwargs": "dict",
    "series_id_column": "str", "time_column": "str", "forecast_horizon": "int", "pair_keys": "str",
    "text_model": "path", "text_tokens": "str",
    "weight_decay": "float", "lr": "float", "momentum": "float", "warmup_epochs": "float", "knn_t": "float",
    "temperature": "float", "test_fraction": "float", "stream": "scalar", "cache_dir": "path",
    "import_modules": "list",
}

GROUPS = ("data", "method", "views", "encoder", "training", "evaluation", "run")

# name → (group, one-line meaning). Method settings not listed here are in group "method".
HELP: dict[str, tuple[str, str]] = {
    "method": ("method", "method name (contrastkit methods); default simclr, csi with --anomaly-label"),
    "data": ("data", "built-in data set name, or a path: image folder, .npy/.npz, .csv/.parquet"),
    "data_dir": ("data", "folder holding a built-in data set's files"),
    "image_size": ("data", "images: working resolution (default: their own size; 96 for photos above 128 px)"),
    "cache_dir": ("data", "where decoded image folders are cached (default ~/.cache/contrastkit)"),
    "decode_workers": ("data", "threads decoding an image folder (0: one per core, at most 8)"),
    "test_fraction": ("data", "share of the data held out for evaluation when there is no test split"),
    "test_data": ("data", "a separate test set (same kind as --data)"),
    "stream": ("data", "read data from disk instead of memory: .npy images row by row (auto: files above 1/4 of "
                       "memory), CSV/Parquet tables in chunks into a float32 cache (auto: above 1/16); true or false"),
    "label_column": ("data", "tables: the column holding labels (used for evaluation only)"),
    "anomaly_label": ("data", "tables: the label value of anomalies; training then sees normal rows only"),
    "normal_label": ("data", "tables: the label value of normal rows (all others are anomalies)"),
    "impute": ("data", "tables: fill missing values with the training median instead of refusing them"),
    "drop_constant": ("data", "tables: drop constant or all-missing columns with a note (false: refuse them)"),
    "drop_columns": ("data", "tables: columns to ignore, e.g. [id, timestamp]"),
    "categorical_columns": ("data", "tables: columns to treat as categorical"),
    "scaler": ("data", "tables: standard (mean/std) or quantile (rank-Gauss)"),
    "encoder": ("encoder", "backbone: auto (by data kind), convnet, resnet18, mlp, resmlp, resnet1d, tcn, ..., "
                            "timm:NAME, torchvision:NAME (when installed)"),
    "encoder_kwargs": ("encoder", "backbone options, e.g. {width: 64}"),
    "import_modules": ("encoder", "Python modules to import first (--import MOD): plug-ins that @register_encoder "
                                  "or @register_method; a run's evaluate/embed/report/export import them again"),
    "epochs": ("training", "passes over the training set"),
    "minutes": ("training", "wall-clock budget; overrides --steps and --epochs"),
    "steps": ("training", "optimizer steps, rounded up to whole epochs; overrides --epochs"),
    "batch_size": ("training", "global batch (split over processes under torchrun)"),
    "optimizer": ("training", "sgd, lars or adamw"),
    "lr": ("training", "base learning rate for batch 256 (scaled by --lr-scaling)"),
    "lr_scaling": ("training", "linear, sqrt or none: how lr scales with the batch"),
    "momentum": ("training", "optimizer momentum"),
    "weight_decay": ("training", "weight decay"),
    "warmup_epochs": ("training", "linear warm-up (capped at 10 % of the run)"),
    "seed": ("training", "seed of initialisation, data order and augmentations"),
    "device": ("training", "auto, cpu, cuda or cuda:N"),
    "precision": ("training", "auto (bf16 where fast), fp32, bf16 or fp16"),
    "channels_last": ("training", "images: channels-last memory format"),
    "sync_bn": ("training", "torchrun: BatchNorm statistics over the global batch (false: per process)"),
    "skip_nonfinite": ("training", "steps with a NaN/inf loss to skip before stopping"),
    "log_every": ("run", "steps between metrics.csv rows"),
    "tensorboard": ("run", "also log the metrics rows to RUN/tensorboard/ (pip install tensorboard)"),
    "monitor_every": ("run", "steps between online kNN / diagnostics (0 = off)"),
    "checkpoint_every": ("run", "steps between mid-epoch checkpoints (0 = end of epoch only)"),
    "out": ("run", "run folder (default runs/<method>-<data>-<time>)"),
    "overwrite": ("run", "write into an existing --out that holds another run or other files"),
    "evaluate": ("evaluation", "evaluate against baselines at the end"),
    "knn_t": ("evaluation", "temperature of the weighted kNN classifier"),
    "layer": ("evaluation", "what every protocol evaluates: backbone (encoder output) or projection (after the "
                            "projection head)"),
}

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf|infinity)$", re.IGNORECASE)


def parse_scalar(text: str) -> Any:
    """A command-line value: bool, int, float, None, a [list] / {mapping}, or the string itself."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none", "~"):
        return None
    if _INT.match(t):
        return int(t)
    if _FLOAT.match(t):
        return float(t)
    if t[:1] in "[{":
        try:
            return yaml.safe_load(t)
        except yaml.YAMLError:
            raise ContrastkitError(f"cannot read {text!r} as a list or mapping; write e.g. [a, b] or {{k: 1}}") from None
    return text


def setting_type(name: str, default: Any) -> str:
    if name in TYPES:
        return TYPES[name]
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, (list, tuple)):
        return "list"
    if isinstance(default, dict):
        return "dict"
    if isinstance(default, str):
        return "str"
    return "scalar"


def coerce(name: str, value: Any, kind: str) -> Any:
    """`value` as a `kind` setting, or one clear error naming the setting, the value and what to write."""
    if value is None or kind == "scalar":
        return value

    def bad(need: str) -> ContrastkitError:
        return ContrastkitError(f"--{name.replace('_', '-')} {value!r}: expected {need}")

    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad("true or false")
    if kind == "int":
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _INT.match(value.strip()):
            return int(value)
        raise bad("an integer" + (" (no fraction)" if isinstance(value, float) else ""))
    if kind == "float":
        if isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            return float(value)
        raise bad("a number")
    if kind in ("str", "path"):
        if isinstance(value, (dict, list)):
            raise bad("a single value")
        return str(value)
    if kind == "list":
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, str):
            return [value]
        raise bad("a list, e.g. [a, b]")
    if kind == "dict":
        if isinstance(value, dict):
            return value
        raise bad("a mapping, e.g. {width: 64}")
    return value


def coerce_all(given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: coerce(k, v, setting_type(k, defaults.get(k))) for k, v in given.items()}


def check_finite(cfg: dict[str, Any]) -> None:
    """No NaN/inf among the numbers (a `--minutes nan` would never end)."""
    for key, value in cfg.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ContrastkitError(f"--{key.replace('_', '-')} {value}: must be a finite number")


def describe(defaults: dict[str, Any], pinned: set[str]) -> list[dict[str, str]]:
    """Rows (group, setting, type, value, meaning) for `contrastkit config`."""
    rows = []
    for name, value in defaults.items():
        group, meaning = HELP.get(name, ("method" if name in pinned else "views", ""))
        if name in pinned and not meaning:
            meaning = "pinned by the method"
        rows.append({"group": group, "setting": "--" + name.replace("_", "-"), "type": setting_type(name, value),
                     "value": "" if value is None else str(value), "meaning": meaning})
    order = {g: i for i, g in enumerate(GROUPS)}
    return sorted(rows, key=lambda r: (order.get(r["group"], 99), r["setting"]))
