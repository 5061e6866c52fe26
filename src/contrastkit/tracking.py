"""Optional experiment tracking: `--tensorboard true` writes the training curves to RUN/tensorboard/.

Every row that goes to metrics.csv (loss, lr, throughput, the monitors' values) becomes TensorBoard scalars
under `train/<name>` at its step; a resumed run continues the same event files from its checkpoint's step
(later events are purged). Needs the `tensorboard` package (`pip install tensorboard`, not a dependency):
without it the setting is one clear error before anything is written.

    tensorboard --logdir runs/
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from .errors import ContrastkitError


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ContrastkitError("--tensorboard true needs the tensorboard package: pip install tensorboard "
                               "(or drop --tensorboard; metrics.csv has the same numbers)") from None
    return SummaryWriter


def require_tensorboard() -> None:
    _summary_writer()


class TensorBoardLogger:
    """An engine callback (on_start / on_step / on_end): metrics rows → TensorBoard scalars. Place it after the
    monitors, which add their values to the row."""

    def __init__(self, log_dir: Path | str):
        self.log_dir = Path(log_dir)
        self._writer_cls = _summary_writer()
        self.writer: Optional[Any] = None

    def on_start(self, step: int, total_steps: int) -> None:
        # purge_step: a resumed run drops the events logged after its checkpoint (they are logged again)
        self.writer = self._writer_cls(log_dir=str(self.log_dir), purge_step=step if step > 0 else None)

    def on_step(self, info) -> None:
        if info.row is None or self.writer is None:
            return
        for key, value in info.row.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(float(value)):
                self.writer.add_scalar(f"train/{key}", float(value), info.step)

    def on_end(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
