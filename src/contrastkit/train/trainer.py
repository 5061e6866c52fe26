"""The training loop. It knows no method: it calls `training_step` and `after_step`, and owns the rest
(data order, views' random generator, precision, schedule, checkpoints, resume, logging, progress).

Reproducibility: the data order, the views' generator and the global RNG are re-seeded from (seed, epoch) at
the start of every epoch, and everything else that changes (weights, optimizer, method buffers, step) is in the
checkpoint, so resuming from the end of epoch e replays epoch e+1 bit-for-bit on CPU.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from ..config import dump_config
from ..data import DataSplits, load_data
from ..data.base import Batch
from ..errors import ContrastkitError
from ..methods import Method, create_method
from ..core import distributed
from .budget import BudgetPlanner
from ..core.checkpoint import load_checkpoint, save_atomic
from .optim import build_optimizer, lr_factor, set_lr


@dataclass
class RunResult:
    run_dir: Path
    method: Method
    splits: DataSplits
    device: torch.device
    eval_rows: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    train_seconds: float = 0.0


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ContrastkitError(f"device={name!r} but no CUDA device is available; use --device cpu")
    return torch.device(name)


def _cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision for the encoder; loss math stays fp32 (objectives upcast)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_has_fast_bf16() else None


def default_run_dir(cfg: dict[str, Any]) -> Path:
    data = Path(str(cfg["data"])).stem or "data"
    return Path("runs") / f"{cfg['method']}-{data}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return (int(seed) * 1_000_003 + epoch * 7_919 + stream) % (2**63)


class MetricsLog:
    """metrics.csv: one row per logged step; columns grow as new keys appear (rewritten then)."""

    def __init__(self, path: Path, keep_until_step: int | None = None):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if keep_until_step is not None and path.exists():
            with path.open() as f:
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


def _progress(enabled: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("lr {task.fields[lr]:.3g}"),
        TextColumn("{task.fields[ips]:.0f} img/s"),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def train(cfg: dict[str, Any], *, resume: bool = False, progress: bool = True) -> RunResult:
    """Pretrain `cfg["method"]` on `cfg["data"]`; returns the trained method and the run folder."""
    device = pick_device(str(cfg["device"]))
    splits = load_data(str(cfg["data"]), cfg)
    method_cls_needs_labels = _needs_labels(cfg)
    if method_cls_needs_labels and splits.train.y is None:
        raise ContrastkitError(f"method {cfg['method']!r} needs labels, but data {cfg['data']!r} has none")
    n_train, batch_size = len(splits.train), int(cfg["batch_size"])
    world = distributed.world_size()
    local_batch = batch_size // world
    if n_train < batch_size:
        raise ContrastkitError(
            f"batch_size={batch_size} is larger than the training set ({n_train} samples); use --batch-size {n_train}"
        )
    run_dir = Path(cfg["out"]) if cfg.get("out") else default_run_dir(cfg)
    cfg["out"] = str(run_dir)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if not resume and ckpt_path.exists():
        raise ContrastkitError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    is_main = distributed.rank() == 0
    if is_main:
        dump_config(cfg, run_dir / "config.yaml")

    torch.manual_seed(int(cfg["seed"]))
    train_set = splits.train.to(device)
    method = create_method(cfg, splits.info, train_set).to(device)
    channels_last = bool(cfg["channels_last"]) and splits.info.kind == "image"
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(method.parameter_groups(), cfg)
    amp_dtype = autocast_dtype(str(cfg["precision"]), device)

    steps_per_epoch = n_train // batch_size
    total_steps = steps_per_epoch * int(cfg["epochs"])
    budget_s = None if cfg["minutes"] is None else float(cfg["minutes"]) * 60.0
    start_epoch, step, elapsed_before, planned = 0, 0, 0.0, budget_s is None
    if resume:
        state = load_checkpoint(ckpt_path, map_location=device)
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step, elapsed_before = state["epoch"], state["step"], state["elapsed"]
        total_steps, planned = state["total_steps"], state["planned"]
    warmup_steps = _warmup(cfg, steps_per_epoch, total_steps)
    if resume and "warmup_steps" in state:
        warmup_steps = state["warmup_steps"]  # a --minutes plan may have moved total_steps since it was set
    planner = BudgetPlanner(budget_s, first_plan_step=min(20, steps_per_epoch), planned=planned, start_step=step,
                            start_elapsed_s=elapsed_before)
    metrics = MetricsLog(run_dir / "metrics.csv", keep_until_step=step if resume else None) if is_main else None
    from .monitors import Monitor

    monitor = Monitor(method, splits, cfg, device) if int(cfg["monitor_every"]) > 0 else None

    crash_at = int(os.environ.get("CONTRASTKIT_CRASH_AT_STEP", "-1"))  # test hook: simulate a hard kill
    start_time, epoch = time.perf_counter(), start_epoch
    last_loss, last_lr, ips, extra = float("nan"), 0.0, 0.0, ""
    with _progress(progress and is_main) as bar:
        task = bar.add_task(f"{cfg['method']}", total=total_steps, completed=step, loss=last_loss, lr=0.0,
                            ips=0.0, extra="")
        while step < total_steps:
            method.train()
            perm_gen = torch.Generator().manual_seed(epoch_seed(cfg["seed"], epoch, 0))
            # each rank draws its own augmentations (rank 0 matches a single-process run)
            view_gen = torch.Generator(device=device).manual_seed(
                epoch_seed(cfg["seed"], epoch, 1 + 16 * distributed.rank()))
            torch.manual_seed(epoch_seed(cfg["seed"], epoch, 2))
            order = torch.randperm(n_train, generator=perm_gen).to(device)
            rank_slice = slice(distributed.rank() * local_batch, (distributed.rank() + 1) * local_batch)
            for i in range(steps_per_epoch):
                if step >= total_steps:
                    break
                t0 = time.perf_counter()
                index = order[i * batch_size : (i + 1) * batch_size][rank_slice]
                batch = train_set.batch(index)
                if channels_last and isinstance(batch.x, torch.Tensor) and batch.x.ndim == 4:
                    batch.x = batch.x.contiguous(memory_format=torch.channels_last)
                lr = set_lr(optimizer, lr_factor(step, total_steps, warmup_steps))
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    out = method.training_step(batch, view_gen)
                loss = out["loss"]
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss became {loss.item()} at step {step}; lower --lr or use --precision fp32 "
                        f"(last checkpoint: {ckpt_path})"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                method.after_step(step, total_steps)
                step += 1
                if step == crash_at:
                    os._exit(137)
                dt = time.perf_counter() - t0
                ips = 0.9 * ips + 0.1 * (batch_size / dt) if ips else batch_size / dt
                last_loss, last_lr = float(loss.detach()), lr
                row = None
                if step % int(cfg["log_every"]) == 0 or step == total_steps:
                    row = {"step": step, "epoch": epoch + (i + 1) / steps_per_epoch, "loss": last_loss, "lr": lr,
                           "img_per_s": ips, **{k: float(v) for k, v in out.items() if k != "loss"}}
                if monitor is not None and (step % int(cfg["monitor_every"]) == 0 or step == total_steps):
                    mon = monitor.measure()
                    extra = monitor.describe(mon)
                    row = {**(row or {"step": step, "epoch": epoch + (i + 1) / steps_per_epoch,
                                      "loss": last_loss, "lr": lr}), **mon}
                if row is not None and metrics is not None:
                    metrics.log(row)
                bar.update(task, completed=step, loss=last_loss, lr=lr, ips=ips, extra=extra)
                first_plan = not planner.planned
                new_total = planner.update(step, elapsed_before + time.perf_counter() - start_time, total_steps)
                if first_plan and planner.planned:
                    warmup_steps = _warmup(cfg, steps_per_epoch, new_total)
                if new_total != total_steps:
                    total_steps = new_total
                    bar.update(task, total=total_steps)
            epoch += 1
            if is_main:
                save_atomic(
                    {"method": method.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                     "step": step, "total_steps": total_steps, "planned": planner.planned,
                     "warmup_steps": warmup_steps, "config": _plain(cfg),
                     "elapsed": elapsed_before + time.perf_counter() - start_time},
                    ckpt_path,
                )
    train_seconds = elapsed_before + time.perf_counter() - start_time
    if is_main:
        from ..run import save_encoder

        save_encoder(run_dir / "encoder.pt", method.encoder, splits.info, cfg, method.anomaly_model())
    return RunResult(run_dir, method, splits, device, steps=step, train_seconds=train_seconds)


def _warmup(cfg: dict[str, Any], steps_per_epoch: int, total_steps: int) -> int:
    """`warmup_epochs` of linear warm-up, capped at 10 % of the run so short budgets reach the peak lr."""
    return min(int(round(float(cfg["warmup_epochs"]) * steps_per_epoch)), total_steps // 10)


def _needs_labels(cfg: dict[str, Any]) -> bool:
    from ..methods import METHODS

    return bool(METHODS.get(cfg["method"]).needs_labels)


def _plain(cfg: dict[str, Any]) -> dict[str, Any]:
    """Config as plain python values (weights_only loading accepts them)."""
    out = {}
    for k, v in cfg.items():
        if k.startswith("_"):
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out

