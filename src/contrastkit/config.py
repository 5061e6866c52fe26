"""Settings: trainer defaults ← the method's pinned defaults ← a YAML file ← command-line flags.

The resolved dict is saved as config.yaml in every run folder, so a run can always be reproduced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ContrastkitError
from .settings import check_finite, coerce_all

TRAINER_DEFAULTS: dict[str, Any] = {
    "method": "simclr",
    "data": "fashion-mnist",
    "data_dir": None,
    "encoder": "auto",  # auto: by data kind (encoders.DEFAULT_BY_KIND: convnet for images, mlp for tables ...)
    "epochs": 100,
    "minutes": None,  # wall-clock budget for training; overrides steps and epochs when set
    "steps": None,  # optimizer steps, rounded up to whole epochs; overrides epochs (a method may pin it: ts2vec)
    "batch_size": 256,
    "optimizer": "sgd",  # sgd | lars | adamw
    "lr": 0.3,  # base lr for batch 256 (scaled linearly by batch_size / 256)
    "lr_scaling": "linear",  # linear | sqrt | none
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "warmup_epochs": 1.0,  # capped at 10 % of the planned steps
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "precision": "auto",  # auto (bf16 autocast where fast) | fp32 | bf16 | fp16
    "channels_last": True,
    "log_every": 20,  # steps between metrics.csv rows
    "tensorboard": False,  # also write the metrics rows to RUN/tensorboard/ (needs the tensorboard package)
    "monitor_every": 200,  # steps between diagnostics / online kNN monitors (0 = off)
    "evaluate": True,  # evaluation table at the end of pretraining
    "checkpoint_every": 0,  # steps between mid-epoch checkpoints (0: only at the end of each epoch)
    "skip_nonfinite": 0,  # steps with a NaN/inf loss or gradient to skip before the run stops
    "sync_bn": True,  # multi-process: BatchNorm statistics over the global batch (K processes = 1 process)
    "overwrite": False,  # write into an existing --out that holds another run or other files
    "stream": "auto",  # from disk, not memory: .npy images row by row (auto: above 1/4 of memory), CSV/Parquet
    # tables in chunks into a float32 cache (auto: above 1/16) | true | false
    "knn_t": 0.1,
    "layer": "backbone",  # evaluate: backbone (the encoder's output) | projection (after the projection head)
    "out": None,  # run folder; default runs/<method>-<data>-<time>
    "encoder_kwargs": {},
    "import_modules": [],  # plug-ins imported before the registries are read (--import MODULE, plugins.py)
    # data options (tables and folders use them; images ignore the ones that do not apply)
    "image_size": None,  # images: working resolution (default: the images' own, 96 for photos above 128 px)
    "decode_workers": 0,  # threads decoding an image folder (0: one per core, at most 8)
    "cache_dir": None,  # decoded image folders are cached here (default ~/.cache/contrastkit, or $CONTRASTKIT_CACHE)
    "test_fraction": 0.2,
    "test_data": None,
    "label_column": None,
    "anomaly_label": None,
    "impute": False,
    "drop_constant": True,  # tables: drop constant / all-missing columns with a note (false: refuse them)
    "normal_label": None,
    "drop_columns": None,
    "categorical_columns": None,
    "scaler": None,  # tables: standard (mean/std, default) | quantile (rank-Gauss)
    "pair_keys": None,  # paired data (data/paired.py): npz keys "a,b" | column groups "a1,a2;b1,b2" | "file,caption"
    "text_model": None,  # paired text sides: a LOCAL Hugging Face model folder for frozen features (never downloaded)
    "text_tokens": None,  # paired text sides: hashed (word + char n-grams, default) | bytes (small byte transformer)
    # graphs (data/graph.py): build a graph over --data (knn:K[:cosine|euclidean], edges:PATH, edges) ...
    "graph": None,
    "graph_smooth": None,  # ... Laplacian smoothing steps applied to the node features (None/0: raw)
    "graph_x": None,  # ... what a sample is: features (default) | ids (the gcn encoder looks the graph up)
    "graph_labels": None,  # ... node labels file (.npy / one-column .csv) for --graph edges:PATH
    "data_kind": None,  # .npy/.npz: image | series | None (auto, see data/series.py)
    "series_scaling": None,  # series: channel (per-channel standardisation on train, default) | none
    "series_id_column": None,  # series in a long-format CSV: the column naming each series (data/series.py)
    "time_column": None,  # ... and the column ordering its steps (default: file order)
    "forecast_horizon": None,  # series: also evaluate forecasting H steps ahead from the embedding (evaluate/series.py)
}

# View settings: accepted from flags and YAML; when absent the view module's documented default applies
# (it depends on the data, e.g. blur is off for images below 64 px).
VIEW_SETTINGS = {
    "crop_scale", "crop_ratio", "flip_p", "jitter_p", "jitter_strength", "grayscale_p", "blur_p", "blur_sigma",
    "blur_kernel", "solarize_p", "solarize_threshold",  # images (views/image.py)
    "corruption_rate", "noise_std", "mask_rate", "p_f", "aug_low", "aug_high", "aug_range",  # tables (views/tabular.py)
    "series_views", "noise_sigma", "scale_sigma", "mag_warp_sigma", "time_warp_sigma", "warp_knots", "crop_fraction",
    "crop_length", "slice_fraction", "permute_segments", "time_mask_fraction", "channel_drop_p",  # views/series.py
}


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ContrastkitError(f"--config {path}: file not found")
    except yaml.YAMLError as e:
        raise ContrastkitError(f"--config {path}: not valid YAML ({e})")
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ContrastkitError(f"--config {path}: expected a mapping of setting: value, got {type(loaded).__name__}")
    return {k: v for k, v in loaded.items() if k != RECORD_KEY}  # a run's record is not a setting


# config.yaml of a run also holds, under this key, what the run was (not settings: ignored when read back)
RECORD_KEY = "run_record"


def default_method(given: dict[str, Any]) -> str:
    """The method when none is given. csi when the run is anomaly detection on a table (--anomaly-label /
    --normal-label given): the best mean rank of the anomaly suite (bench/anomaly_suite.py, docs/anomaly.md).
    ts2vec for time series: on the bundled series sets SimCLR's embedding fell below its own untrained encoder,
    TS2Vec's rose above it or stayed within a few test series (docs/series.md). simclr otherwise."""
    if given.get("anomaly_label") is not None or given.get("normal_label") is not None:
        return "csi"
    from .data.series import looks_like_series

    if looks_like_series(str(given.get("data", TRAINER_DEFAULTS["data"])), given):
        return "ts2vec"
    return str(TRAINER_DEFAULTS["method"])


def epochs_asked_for(overrides: dict[str, Any], file_cfg: dict[str, Any]) -> bool:
    """Epochs given by the user without steps: flags first, then the YAML file (a run's config.yaml holds both,
    so resuming keeps its budget unless --epochs is given again)."""
    flags = {k for k, v in overrides.items() if v is not None}
    if "steps" in flags:
        return False
    return "epochs" in flags or ("epochs" in file_cfg and "steps" not in file_cfg)


def resolve_config(overrides: dict[str, Any], config_file: str | Path | None = None) -> dict[str, Any]:
    """Merge defaults, the method's pinned defaults, the YAML file and explicit overrides; validate."""
    from .methods import METHODS, method_defaults

    file_cfg = load_yaml(config_file) if config_file else {}
    given = {**file_cfg, **{k: v for k, v in overrides.items() if v is not None}}
    from .plugins import import_plugins

    import_plugins(given.get("import_modules"))  # before the registries are read: they may register encoders/methods
    method = given.get("method") or default_method(given)
    given["method"] = method
    METHODS.get(method)  # unknown method → clear error listing the valid ones
    cfg = {**TRAINER_DEFAULTS, **method_defaults(method), **METHODS.get(method).defaults_for(given), **given}
    known = set(TRAINER_DEFAULTS) | set(method_defaults(method)) | VIEW_SETTINGS
    unknown = sorted(set(given) - known)
    if unknown:
        raise ContrastkitError(
            f"unknown setting(s) {', '.join(unknown)} for method {method!r}; valid settings: {', '.join(sorted(known))}"
        )
    cfg.update(coerce_all(given, {**TRAINER_DEFAULTS, **method_defaults(method)}))  # types checked, not guessed
    if epochs_asked_for(overrides, file_cfg):
        cfg["steps"] = None  # the user's --epochs beats a method's pinned steps
    validate_config(cfg)
    return cfg


def validate_config(cfg: dict[str, Any]) -> None:
    from .encoders import ENCODERS

    if cfg["encoder"] != "auto":
        ENCODERS.get(cfg["encoder"])
    if int(cfg["batch_size"]) < 2:
        raise ContrastkitError(
            f"batch_size={cfg['batch_size']}: contrastive objectives need at least 2 samples per batch "
            "(negatives come from the other samples); use --batch-size 2 or more"
        )
    for key in ("temperature", "tau_init"):
        if key in cfg and cfg[key] is not None and float(cfg[key]) <= 0:
            raise ContrastkitError(f"{key}={cfg[key]} must be > 0 (it divides the similarities); try 0.1–0.5")
    if cfg["optimizer"] not in ("sgd", "lars", "adamw"):
        raise ContrastkitError(f"optimizer={cfg['optimizer']!r}; valid optimizers: adamw, lars, sgd")
    if cfg["precision"] not in ("auto", "fp32", "bf16", "fp16"):
        raise ContrastkitError(f"precision={cfg['precision']!r}; valid: auto, bf16, fp16, fp32")
    check_finite(cfg)
    if cfg.get("tensorboard"):
        from .tracking import require_tensorboard

        require_tensorboard()  # before the run folder is written
    for key in ("lr", "weight_decay", "warmup_epochs"):
        if float(cfg[key]) < 0:
            raise ContrastkitError(f"--{key.replace('_', '-')} {cfg[key]}: must be >= 0")
    if int(cfg["log_every"]) < 1:
        raise ContrastkitError(f"--log-every {cfg['log_every']}: must be >= 1 (steps between metrics.csv rows)")
    for key in ("monitor_every", "checkpoint_every", "skip_nonfinite"):
        if int(cfg[key]) < 0:
            raise ContrastkitError(f"--{key.replace('_', '-')} {cfg[key]}: must be >= 0 (0 turns it off)")
    if cfg["layer"] not in ("backbone", "projection"):
        raise ContrastkitError(f"--layer {cfg['layer']}: valid layers are backbone, projection")
    if float(cfg["knn_t"]) <= 0:
        raise ContrastkitError(f"--knn-t {cfg['knn_t']}: must be > 0 (it divides the similarities); try 0.1")
    if cfg["minutes"] is not None and float(cfg["minutes"]) <= 0:
        raise ContrastkitError(f"minutes={cfg['minutes']} must be > 0")
    if cfg["minutes"] is None and int(cfg["epochs"]) < 1:
        raise ContrastkitError(f"epochs={cfg['epochs']} must be >= 1")
    if cfg.get("steps") is not None and int(cfg["steps"]) < 1:
        raise ContrastkitError(f"steps={cfg['steps']} must be >= 1 (or leave it unset to train for --epochs)")


def dump_config(cfg: dict[str, Any], path: Path, record: dict[str, Any] | None = None) -> None:
    """config.yaml: every setting (defaults resolved), plus the run's record (versions, device, resolved views,
    planned and effective steps) under `run_record`, written atomically."""
    from .core.checkpoint import write_text_atomic

    plain = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items() if not k.startswith("_")}
    text = yaml.safe_dump(plain, sort_keys=True)
    if record:
        text += "\n" + yaml.safe_dump({RECORD_KEY: record}, sort_keys=False)
    write_text_atomic(Path(path), text)
