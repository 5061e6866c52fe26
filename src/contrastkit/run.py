"""A finished run folder, reopened: its config, its encoder, and the data it was trained on."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from .core.checkpoint import load_checkpoint, save_atomic
from .data.base import DataInfo
from .errors import ContrastkitError

RUN_FILES = ("config.yaml", "metrics.csv", "encoder.pt", "eval.json", "evaluate.json", "report.html",
             "temperatures.npy", "checkpoints")


class RunFolder:
    """The files of one run, and the rules that keep two runs from writing into one folder:

    * a lock (`.lock`, flock) is held while a run trains: a second process is refused, not interleaved;
    * a folder that holds a checkpoint is continued only with `--resume`; `--overwrite` starts it afresh;
      `--resume` of a run stopped before its first checkpoint starts it again from step 0;
    * an existing, non-empty folder that is not a run folder is refused unless `--overwrite`.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.metrics_path = self.path / "metrics.csv"
        self.checkpoint_path = self.path / "checkpoints" / "last.pt"
        self.encoder_path = self.path / "encoder.pt"
        self._lock = None

    def is_run(self) -> bool:
        return self.config_path.exists() or self.checkpoint_path.exists()

    def claim(self, resume: bool, overwrite: bool = False) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ContrastkitError(f"--out {self.path} is a file; choose a folder")
        if resume and not self.checkpoint_path.exists() and not self.config_path.exists():
            raise ContrastkitError(f"--resume: {self.path} holds no checkpoint ({self.checkpoint_path}); "
                                   "start a new run without --resume")
        if not resume and self.checkpoint_path.exists() and not overwrite:
            raise ContrastkitError(f"{self.path} already holds a run; pass --resume to continue it, --overwrite "
                                   "to start it afresh, or choose another --out")
        if (not resume and not overwrite and self.path.is_dir() and not self.is_run()
                and any(p.name != ".lock" for p in self.path.iterdir())):
            raise ContrastkitError(f"--out {self.path} exists and is not a contrastkit run folder; choose a new "
                                   "folder, or pass --overwrite to write the run's files into it")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ContrastkitError(f"--out {self.path}: cannot create the run folder ({e.strerror})") from None
        self._acquire_lock()
        for stale in [*self.path.glob(".*.tmp"), *self.path.glob("checkpoints/.*.tmp")]:
            stale.unlink(missing_ok=True)  # a write killed half-way; the file it was replacing is intact
        if overwrite and not resume:
            import shutil

            for name in RUN_FILES:
                target = self.path / name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists() or target.is_symlink():
                    target.unlink()

    def _acquire_lock(self) -> None:
        import fcntl

        try:
            self._lock = open(self.path / ".lock", "a")
        except OSError as e:
            raise ContrastkitError(f"--out {self.path}: cannot write there ({e.strerror}); choose another "
                                   "folder") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise ContrastkitError(f"another contrastkit process is writing to {self.path}; wait for it to "
                                   "finish or choose another --out") from None

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops the flock
            self._lock = None

    def save_encoder(self, encoder: nn.Module, info: DataInfo, cfg: dict[str, Any],
                     scoring_head: nn.Module | None = None, centroid: str = "normalized",
                     projection_head: nn.Module | None = None) -> None:
        save_encoder(self.encoder_path, encoder, info, cfg, scoring_head, centroid, projection_head)


def save_encoder(path: Path, encoder: nn.Module, info: DataInfo, cfg: dict[str, Any],
                 scoring_head: nn.Module | None = None, centroid: str = "normalized",
                 projection_head: nn.Module | None = None) -> None:
    """encoder.pt: the encoder's weights, its DataInfo and the run's config; plus, when the method scores
    anomalies after a head (`Method.scoring_head()`, CLAN), that head's architecture (`.spec`) and weights, and
    the anomaly centroid the method scores with (`Method.anomaly_centroid`); plus the projection head
    (`Method.projection_head()`) when the method has one, for `--layer projection`."""
    info_dict = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(info).items()}
    plain_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items() if not k.startswith("_")}
    payload = {"encoder": encoder.state_dict(), "info": info_dict, "config": plain_cfg, "centroid": centroid}
    if scoring_head is not None:
        payload["scoring_head"] = {"spec": dict(scoring_head.spec), "state": scoring_head.state_dict()}
    if projection_head is not None:
        payload["projection_head"] = {"spec": dict(projection_head.spec), "state": projection_head.state_dict()}
    save_atomic(payload, path)


def info_from_dict(d: dict[str, Any]) -> DataInfo:
    d = dict(d)
    for key in ("shape", "mean", "std"):
        if d.get(key) is not None:
            d[key] = tuple(d[key])
    return DataInfo(**d)


def _load_state(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not (run_dir / "encoder.pt").exists():
        raise ContrastkitError(f"{run_dir} has no encoder.pt: is it a finished run folder? (resume it with --resume)")
    return load_checkpoint(run_dir / "encoder.pt")


def _new_encoder(cfg: dict[str, Any], info: DataInfo) -> nn.Module:
    from .encoders import create_encoder

    return create_encoder(cfg["encoder"], info, **dict(cfg.get("encoder_kwargs") or {}))


LAYERS = ("backbone", "projection")


def check_layer(layer: str) -> str:
    if layer not in LAYERS:
        raise ContrastkitError(f"--layer {layer}: valid layers are {', '.join(LAYERS)}")
    return layer


def no_projection_head(cfg: dict[str, Any]) -> ContrastkitError:
    return ContrastkitError(f"--layer projection: the {cfg.get('method')} run has no saved projection head "
                            f"(method without a ProjectionHead, or a run saved before heads were kept); "
                            f"use --layer backbone")


def load_encoder(run_dir: Path, layer: str = "backbone") -> tuple[nn.Module, DataInfo, dict[str, Any]]:
    """The trained model (eval mode) up to `layer` — the encoder ("backbone") or the encoder followed by
    the projection head ("projection") — the DataInfo it expects and the run's config."""
    state = _load_state(run_dir)
    info, cfg = info_from_dict(state["info"]), state["config"]
    encoder = _new_encoder(cfg, info)
    encoder.load_state_dict(state["encoder"])
    if check_layer(layer) == "backbone":
        return encoder.eval(), info, cfg
    head = state.get("projection_head")
    if head is None:
        raise no_projection_head(cfg)
    from .heads import build_head

    projection = build_head(head["spec"])
    projection.load_state_dict(head["state"])
    return nn.Sequential(encoder, projection).eval(), info, cfg


def projection_spec(run_dir: Path) -> dict | None:
    """The saved projection head's spec (None without one): an untrained copy is built from it."""
    head = _load_state(run_dir).get("projection_head")
    return None if head is None else head["spec"]


def untrained_scoring_model(cfg: dict[str, Any], info: DataInfo, head_spec: dict | None = None) -> nn.Module:
    """A freshly initialised model of the scoring architecture (encoder [+ head]), from the global RNG."""
    encoder = _new_encoder(cfg, info)
    if head_spec is None:
        return encoder
    from .heads import build_head

    return nn.Sequential(encoder, build_head(head_spec))


def load_scoring_model(run_dir: Path) -> tuple[nn.Module, DataInfo, dict[str, Any], dict | None]:
    """The module the anomaly protocol scores (eval mode): the encoder, or encoder + the saved scoring head;
    also returns the head's spec (None without one) for building an untrained copy."""
    state = _load_state(run_dir)
    info, cfg = info_from_dict(state["info"]), state["config"]
    head = state.get("scoring_head")
    model = untrained_scoring_model(cfg, info, head["spec"] if head else None)
    if head:
        model[0].load_state_dict(state["encoder"])
        model[1].load_state_dict(head["state"])
    else:
        model.load_state_dict(state["encoder"])
    return model.eval(), info, cfg, head["spec"] if head else None


def load_centroid(run_dir: Path) -> str:
    """The anomaly centroid the run's method scores with ("normalized" for runs saved before it was stored)."""
    return str(_load_state(run_dir).get("centroid", "normalized"))


def load_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise ContrastkitError(f"{run_dir} has no config.yaml: is it a contrastkit run folder?")
    return yaml.safe_load(path.read_text())
