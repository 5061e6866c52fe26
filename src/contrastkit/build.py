"""Construction, in one place: from resolved settings to a trained method in a run folder.

`train(cfg)` loads the data, checks it against the method, prepares the run folder, builds the method and
the optimizer, then hands them to the engine (`engine.fit`), which knows none of this. The front ends
(`api.pretrain`, the CLI, `bench/`) all come through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .config import dump_config
from .core import distributed
from .data import DataSplits, load_data
from .encoders import resolve_encoder_name
from .engine import distributed as engine_dist
from .engine.callbacks import MetricsCSV, MonitorCallback, ProgressBar
from .engine.checkpoint import Checkpointer
from .engine.loop import Callback, FitPlan, fit
from .engine.precision import autocast_dtype, pick_device
from .errors import ContrastkitError
from .methods import METHODS, Method, check_method_fits, create_method
from .run import RunFolder
from .train.optim import build_optimizer


@dataclass
class RunResult:
    run_dir: Path
    method: Method
    splits: DataSplits
    device: torch.device
    eval_rows: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    train_seconds: float = 0.0
    is_main: bool = True  # rank 0 (the process that writes files and evaluates)
    folder: RunFolder | None = None  # locked while the run writes into it

    def release(self) -> None:
        if self.folder is not None:
            self.folder.release()


def default_run_dir(cfg: dict[str, Any]) -> Path:
    data = Path(str(cfg["data"])).stem or "data"
    return Path("runs") / f"{cfg['method']}-{data}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def epochs_for_steps(steps: int, n_train: int, batch_size: int) -> int:
    """Whole epochs that hold at least `steps` optimizer steps (an epoch is n_train // batch_size steps)."""
    return -(-steps // max(1, n_train // batch_size))


def plan_from_config(cfg: dict[str, Any]) -> FitPlan:
    return FitPlan(batch_size=int(cfg["batch_size"]), epochs=int(cfg["epochs"]), seed=int(cfg["seed"]),
                   warmup_epochs=float(cfg["warmup_epochs"]), minutes=cfg["minutes"],
                   log_every=int(cfg["log_every"]), checkpoint_every=int(cfg.get("checkpoint_every") or 0),
                   skip_nonfinite=int(cfg.get("skip_nonfinite") or 0))


def train(cfg: dict[str, Any], *, resume: bool = False, progress: bool = True,
          callbacks: Callable[[Method], Sequence[Callback]] | None = None) -> RunResult:
    """Pretrain `cfg["method"]` on `cfg["data"]` (under torchrun: one model on all processes).

    `callbacks(method)`, when given, returns the caller's own `engine.loop.Callback`s (built once the method
    exists, so they may read its weights); on rank 0 they run after every step, before the run's own
    (monitors, metrics.csv, progress bar)."""
    device = pick_device(str(cfg["device"]))
    engine_dist.init_from_env(device)
    is_main = distributed.rank() == 0
    splits = load_data(str(cfg["data"]), cfg)
    check_method_fits(cfg["method"], splits.info)
    cfg["encoder"] = resolve_encoder_name(str(cfg["encoder"]), splits.info)  # config.yaml names the real one
    if METHODS.get(cfg["method"]).needs_labels and splits.train.y is None:
        raise ContrastkitError(f"method {cfg['method']!r} needs labels, but data {cfg['data']!r} has none")
    cfg["batch_size"] = fit_batch_to_data(cfg, len(splits.train), is_main)
    if cfg.get("steps") and cfg["minutes"] is None:  # saved as epochs too: the run record and resume read them
        cfg["epochs"] = epochs_for_steps(int(cfg["steps"]), len(splits.train), int(cfg["batch_size"]))
    plan = plan_from_config(cfg)

    run_dir = Path(cfg["out"]) if cfg.get("out") else distributed.broadcast_object(default_run_dir(cfg))
    cfg["out"] = str(run_dir)
    folder = RunFolder(run_dir)
    if is_main:
        folder.claim(resume=resume, overwrite=bool(cfg.get("overwrite")))
        dump_config(cfg, folder.config_path)
    checkpointer = Checkpointer(folder.checkpoint_path, extra={"config": plain(cfg)})
    # a run stopped before its first checkpoint restarts from step 0 (same seed: the same run). Rank 0 reads
    # the checkpoint and sends it to the others: machines need not share a file system
    state = None
    if is_main and resume and checkpointer.exists():
        state = checkpointer.load(map_location="cpu")
    state = distributed.broadcast_object(state)

    torch.manual_seed(int(cfg["seed"]))
    train_set = splits.train.to(device)
    method = create_method(cfg, splits.info, train_set)
    if cfg["layer"] == "projection" and method.projection_head() is None:
        folder.release()
        raise ContrastkitError(f"--layer projection: method {cfg['method']!r} has no projection head to evaluate "
                               f"after; use --layer backbone")
    if cfg.get("sync_bn") and distributed.is_distributed():
        method = engine_dist.convert_sync_batchnorm(method)
    method = method.to(device)
    channels_last = bool(cfg["channels_last"]) and splits.info.kind == "image"
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(method.parameter_groups(), cfg)

    own = list(callbacks(method)) if callbacks is not None else []
    callbacks = [*own, *make_callbacks(cfg, method, splits, device, folder, state, progress)] if is_main else []
    record = run_record(cfg, method, device, distributed.world_size())
    if is_main:
        dump_config(cfg, folder.config_path, record)
    try:
        result = fit(method, train_set, optimizer, plan, device=device,
                     amp_dtype=autocast_dtype(str(cfg["precision"]), device), channels_last=channels_last,
                     checkpointer=checkpointer, resume=state, callbacks=callbacks,
                     ddp_options={"find_unused_parameters": bool(getattr(method, "has_unused_parameters", False))})
    except BaseException:
        folder.release()
        raise
    if is_main:
        record.update(steps=result.steps, skipped_steps=result.skipped_steps, train_seconds=round(result.seconds, 1),
                      epochs_done=round(result.steps / max(1, len(train_set) // plan.batch_size), 3))
        dump_config(cfg, folder.config_path, record)
        folder.save_encoder(method.encoder, splits.info, cfg, method.scoring_head(), method.anomaly_centroid,
                            method.projection_head())
    engine_dist.shutdown()
    # the folder stays locked (evaluation and the report still write into it) until `release()`
    return RunResult(run_dir, method, splits, device, steps=result.steps, train_seconds=result.seconds,
                     is_main=is_main, folder=folder)


def fit_batch_to_data(cfg: dict[str, Any], n_train: int, is_main: bool) -> int:
    """The global batch, lowered (with a note) to the training set when the data are smaller."""
    batch, world = int(cfg["batch_size"]), distributed.world_size()
    if n_train >= batch:
        return batch
    clamped = n_train - n_train % world
    if clamped < 2 * world:
        raise ContrastkitError(f"{cfg['data']}: {n_train} training samples; contrastive training needs at least "
                               f"{2 * world} (2 per process)")
    if is_main:
        import logging

        logging.getLogger("contrastkit").warning(
            f"note: --batch-size {batch} is larger than the training set ({n_train} samples); using {clamped}")
    return clamped


def make_callbacks(cfg: dict[str, Any], method: Method, splits: DataSplits, device: torch.device,
                   folder: RunFolder, state: dict | None, progress: bool) -> list:
    """Rank 0's callbacks: monitors (first: they add to the row), metrics.csv, TensorBoard, the progress bar."""
    from .engine.monitors import Monitor

    monitors = []
    if int(cfg["monitor_every"]) > 0:
        monitors.append(MonitorCallback(Monitor(method, splits, cfg, device), int(cfg["monitor_every"])))
    keep = state["loop"]["step"] if state is not None else None
    callbacks = [*monitors, MetricsCSV(folder.metrics_path, keep_until_step=keep)]
    if cfg.get("tensorboard"):  # optional (tracking.py): the rows metrics.csv gets, as TensorBoard scalars
        from .tracking import TensorBoardLogger

        callbacks.append(TensorBoardLogger(folder.path / "tensorboard"))
    if progress:
        callbacks.append(ProgressBar(str(cfg["method"]), tuple(monitors)))
    return callbacks


def run_record(cfg: dict[str, Any], method: Method, device: torch.device, world: int) -> dict[str, Any]:
    """What the run is, beyond its settings: versions, device, processes, the views as built, the plan."""
    import platform

    import numpy

    from . import __version__

    views = {}
    for name in ("view1", "view2"):
        module = getattr(method, name, None)
        config = getattr(module, "config", None)
        views[name] = config.as_dict() if hasattr(config, "as_dict") else (repr(module) if module is not None
                                                                              else None)
    return {"contrastkit": __version__, "torch": str(torch.__version__), "numpy": numpy.__version__,
            "python": platform.python_version(), "device": str(device), "processes": world,
            "precision": str(autocast_dtype(str(cfg["precision"]), device) or "float32").replace("torch.", ""),
            "planned_epochs": None if cfg["minutes"] is not None else int(cfg["epochs"]),
            "planned_minutes": cfg["minutes"], "views": views}


def plain(cfg: dict[str, Any]) -> dict[str, Any]:
    """Settings as plain python values (weights_only loading accepts them)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items() if not k.startswith("_")}
