"""The loop's checkpoints: method and optimizer state plus the loop's position, as plain data, written
atomically by rank 0 (`core.checkpoint`), loaded with weights_only=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..core import distributed
from ..core.checkpoint import load_checkpoint, save_atomic


class Checkpointer:
    """`save(method, optimizer, loop_state)` writes `path` (rank 0 only); `extra` (plain values, e.g. the run's
    settings) is stored alongside so a checkpoint explains itself."""

    def __init__(self, path: Path, extra: Optional[dict[str, Any]] = None):
        self.path = Path(path)
        self.extra = dict(extra or {})

    def save(self, method: nn.Module, optimizer: torch.optim.Optimizer, loop_state: dict[str, Any]) -> None:
        if distributed.rank() != 0:
            return
        save_atomic({"method": method.state_dict(), "optimizer": optimizer.state_dict(), "loop": loop_state,
                     **self.extra}, self.path)

    def load(self, map_location: Any = None) -> dict[str, Any]:
        return load_checkpoint(self.path, map_location=map_location)

    def exists(self) -> bool:
        return self.path.exists()
