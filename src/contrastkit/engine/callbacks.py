"""Small parts the loop calls after every step: the progress bar, metrics.csv and periodic monitors."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Optional

from .loop import StepInfo


class MetricsCSV:
    """metrics.csv: one row per logged step; columns grow as new keys appear (the file is rewritten then).
    On resume, rows after the checkpoint's step are dropped (they will be logged again)."""

    def __init__(self, path: Path, keep_until_step: Optional[int] = None):
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        if keep_until_step is not None and self.path.exists():
            with self.path.open() as f:
                self.rows = [r for r in csv.DictReader(f) if int(float(r["step"])) <= keep_until_step]
        self._write_all()

    def _columns(self) -> list[str]:
        cols: list[str] = []
        for row in self.rows:
            cols += [k for k in row if k not in cols]
        return cols

    def _write_all(self) -> None:
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns() or ["step"])
            writer.writeheader()
            writer.writerows(self.rows)

    def log(self, row: dict[str, Any]) -> None:
        new_cols = [k for k in row if k not in self._columns()]
        self.rows.append(row)
        if new_cols or len(self.rows) == 1:
            self._write_all()
        else:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=self._columns()).writerow(row)

    def on_start(self, step: int, total_steps: int) -> None:
        pass

    def on_step(self, info: StepInfo) -> None:
        if info.row is not None:
            self.log(info.row)

    def on_end(self) -> None:
        pass


class MonitorCallback:
    """Every `every` steps (and at the last), adds `monitor.measure()` to the step's metrics row."""

    def __init__(self, monitor, every: int):
        self.monitor, self.every = monitor, int(every)

    def on_start(self, step: int, total_steps: int) -> None:
        pass

    def on_step(self, info: StepInfo) -> None:
        if info.step % self.every and info.step != info.total_steps:
            return
        values = self.monitor.measure()
        info.row = {**(info.row or {"step": info.step, "epoch": info.epoch, "loss": info.loss, "lr": info.lr}),
                    **values}
        self.status = self.monitor.describe(values)

    status = ""

    def on_end(self) -> None:
        pass


class ProgressBar:
    """A Rich progress bar with loss, lr, throughput and the monitors' latest summary."""

    def __init__(self, description: str, monitors: tuple = ()):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.description, self.monitors = description, monitors
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("lr {task.fields[lr]:.3g}"),
            TextColumn("{task.fields[ips]:.0f} samples/s"), TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        self.task = None

    def on_start(self, step: int, total_steps: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=total_steps, completed=step, loss=float("nan"),
                                           lr=0.0, ips=0.0, extra="")

    def on_step(self, info: StepInfo) -> None:
        extra = " ".join(m.status for m in self.monitors if m.status)
        self.progress.update(self.task, completed=info.step, total=info.total_steps, loss=info.loss, lr=info.lr,
                             ips=info.samples_per_s, extra=extra)

    def on_end(self) -> None:
        self.progress.stop()
