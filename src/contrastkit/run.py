"""A finished run folder, reopened: its config, its encoder, and the data it was trained on."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from .data.base import DataInfo
from .errors import ContrastkitError
from .core.checkpoint import load_checkpoint, save_atomic


def save_encoder(path: Path, encoder: nn.Module, info: DataInfo, cfg: dict[str, Any],
                 anomaly_model: nn.Module | None = None) -> None:
    """encoder.pt: the encoder's weights, its DataInfo and the run's config; plus the weights of the method's
    anomaly model (`Method.anomaly_model()`) when that is more than the encoder (CLAN: encoder + projection)."""
    info_dict = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(info).items()}
    plain_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items() if not k.startswith("_")}
    payload = {"encoder": encoder.state_dict(), "info": info_dict, "config": plain_cfg}
    if anomaly_model is not None and anomaly_model is not encoder:
        payload["anomaly_model"] = anomaly_model.state_dict()
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


def load_encoder(run_dir: Path) -> tuple[nn.Module, DataInfo, dict[str, Any]]:
    """The trained encoder (eval mode), the DataInfo it expects and the run's config."""
    from .encoders import create_encoder

    state = _load_state(run_dir)
    info, cfg = info_from_dict(state["info"]), state["config"]
    encoder = create_encoder(cfg["encoder"], info, **dict(cfg.get("encoder_kwargs") or {}))
    encoder.load_state_dict(state["encoder"])
    return encoder.eval(), info, cfg


def untrained_anomaly_model(cfg: dict[str, Any], info: DataInfo) -> nn.Module:
    """The run's anomaly model (`Method.anomaly_model()`) freshly initialised from the global RNG."""
    from .methods import create_method

    return create_method(cfg, info).anomaly_model()


def load_anomaly_model(run_dir: Path) -> tuple[nn.Module, DataInfo, dict[str, Any]]:
    """The module the anomaly protocol scores (eval mode): the encoder, or what the method saved instead."""
    state = _load_state(run_dir)
    if "anomaly_model" not in state:
        return load_encoder(run_dir)
    info, cfg = info_from_dict(state["info"]), state["config"]
    model = untrained_anomaly_model(cfg, info)
    model.load_state_dict(state["anomaly_model"])
    return model.eval(), info, cfg


def load_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise ContrastkitError(f"{run_dir} has no config.yaml: is it a contrastkit run folder?")
    return yaml.safe_load(path.read_text())
