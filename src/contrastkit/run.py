"""A finished run folder, reopened: its config, its encoder, and the data it was trained on."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from .data.base import DataInfo
from .errors import ContrastkitError
from .train.checkpoint import load_checkpoint, save_atomic


def save_encoder(path: Path, encoder: nn.Module, info: DataInfo, cfg: dict[str, Any]) -> None:
    info_dict = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(info).items()}
    plain_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items() if not k.startswith("_")}
    save_atomic({"encoder": encoder.state_dict(), "info": info_dict, "config": plain_cfg}, path)


def info_from_dict(d: dict[str, Any]) -> DataInfo:
    d = dict(d)
    for key in ("shape", "mean", "std"):
        if d.get(key) is not None:
            d[key] = tuple(d[key])
    return DataInfo(**d)


def load_encoder(run_dir: Path) -> tuple[nn.Module, DataInfo, dict[str, Any]]:
    """The trained encoder (eval mode), the DataInfo it expects and the run's config."""
    from .encoders import create_encoder

    run_dir = Path(run_dir)
    if not (run_dir / "encoder.pt").exists():
        raise ContrastkitError(f"{run_dir} has no encoder.pt: is it a finished run folder? (resume it with --resume)")
    state = load_checkpoint(run_dir / "encoder.pt")
    info, cfg = info_from_dict(state["info"]), state["config"]
    encoder = create_encoder(cfg["encoder"], info, **dict(cfg.get("encoder_kwargs") or {}))
    encoder.load_state_dict(state["encoder"])
    return encoder.eval(), info, cfg


def load_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise ContrastkitError(f"{run_dir} has no config.yaml: is it a contrastkit run folder?")
    return yaml.safe_load(path.read_text())
