"""The training loop. It knows no method and no settings file: it receives what it trains and calls
`method(batch, generator)` (= `training_step`) and `method.after_step(step, total_steps)`.

What it owns: the data order, the views' generator, the lr schedule, precision, DDP, the wall-clock budget,
non-finite detection, checkpoints and resume. Progress bars, metrics.csv and monitors are callbacks.

Reproducibility: the data order is drawn from (seed, epoch); the views' generator and the global RNG are
seeded from (seed, epoch) at the start of every epoch and their states are saved with every checkpoint, so
a run resumed from any checkpoint (end of epoch or every `checkpoint_every` steps) replays the rest of the
run bit-for-bit on CPU.

Multi-process (torchrun): every rank draws the same permutation and takes its slice of each global batch;
the views' per-sample random numbers are drawn for the whole global batch on every rank (`core.random`), so
K processes train on exactly the augmentations one process would draw.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence

import torch
from torch import nn

from ..core import distributed
from ..core.random import sample_shard
from ..data.base import Dataset
from ..errors import ContrastkitError
from .budget import BudgetPlanner
from .checkpoint import Checkpointer
from .distributed import wrap_ddp
from .schedule import lr_factor, set_lr


class NonFiniteError(ContrastkitError):
    """The loss or a gradient became NaN/inf; the last good checkpoint is kept."""


@dataclass
class StepInfo:
    """What callbacks see after every optimizer step. A callback may add to `row` (logged to metrics.csv
    when not None) and set `status` (shown next to the progress bar)."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    lr: float
    samples_per_s: float
    values: dict[str, float]
    elapsed_s: float = 0.0  # training time on the loop's clock (a resumed run's earlier time included)
    row: Optional[dict[str, Any]] = None
    status: str = ""


class Callback(Protocol):
    def on_start(self, step: int, total_steps: int) -> None: ...

    def on_step(self, info: StepInfo) -> None: ...

    def on_end(self) -> None: ...


@dataclass
class FitPlan:
    """How long and in what order to train. `batch_size` is the global batch (split over the ranks)."""

    batch_size: int
    epochs: int
    seed: int = 0
    warmup_epochs: float = 1.0  # capped at 10 % of the planned steps
    minutes: Optional[float] = None  # wall-clock budget: overrides epochs
    log_every: int = 20
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints (0: at the end of each epoch only)
    skip_nonfinite: int = 0  # tolerate this many steps with a non-finite loss/gradient (skipped), then stop


@dataclass
class FitResult:
    steps: int
    seconds: float
    skipped_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return (int(seed) * 1_000_003 + epoch * 7_919 + stream) % (2**63)


def warmup_steps(plan: FitPlan, steps_per_epoch: int, total_steps: int) -> int:
    return min(int(round(float(plan.warmup_epochs) * steps_per_epoch)), total_steps // 10)


def _grads_finite(params: Sequence[torch.Tensor]) -> bool:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack(torch._foreach_norm(grads)).isfinite().all())


def fit(method: nn.Module, train: Dataset, optimizer: torch.optim.Optimizer, plan: FitPlan, *,
        device: torch.device, amp_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
        checkpointer: Optional[Checkpointer] = None, resume: Optional[dict[str, Any]] = None,
        callbacks: Sequence[Callback] = (), ddp_options: Optional[dict[str, Any]] = None) -> FitResult:
    """Train `method` (already on `device`) on `train` with `optimizer` following `plan`.

    `resume` is a checkpoint written by `checkpointer` (its "loop" entry restores the position); under
    torchrun the process group must be initialised before calling (see `engine.distributed`).
    """
    world, rank = distributed.world_size(), distributed.rank()
    n_train, batch_size = len(train), int(plan.batch_size)
    if batch_size % world:
        raise ContrastkitError(f"--batch-size {batch_size} is the global batch and must divide evenly over "
                               f"{world} processes; use a multiple of {world}")
    if n_train < batch_size:
        raise ContrastkitError(f"batch_size={batch_size} is larger than the training set ({n_train} samples); "
                               f"use --batch-size {n_train}")
    local = batch_size // world
    steps_per_epoch = n_train // batch_size
    total_steps = steps_per_epoch * int(plan.epochs)
    budget_s = None if plan.minutes is None else float(plan.minutes) * 60.0
    epoch, step, in_epoch, elapsed_before, planned = 0, 0, 0, 0.0, budget_s is None
    warmup = warmup_steps(plan, steps_per_epoch, total_steps)
    view_state = rng_state = None
    skipped = 0
    if resume is not None:
        try:
            method.load_state_dict(resume["method"])
            optimizer.load_state_dict(resume["optimizer"])
            loop = resume["loop"]
        except (KeyError, RuntimeError, ValueError) as e:
            raise ContrastkitError(
                f"the checkpoint does not fit this model and optimizer ({str(e).splitlines()[0][:200]}): it was "
                "written with other settings or by an earlier contrastkit version; start a new run (another --out)"
            ) from None
        epoch, step, in_epoch = loop["epoch"], loop["step"], loop["step_in_epoch"]
        elapsed_before, total_steps, planned = loop["elapsed"], loop["total_steps"], loop["planned"]
        warmup, skipped = loop["warmup_steps"], loop.get("skipped_steps", 0)
        view_state, rng_state = loop.get("view_rng"), loop.get("global_rng")
        if budget_s is None and steps_per_epoch * int(plan.epochs) != total_steps:
            total_steps = max(step, steps_per_epoch * int(plan.epochs))  # --epochs given again on resume
    planner = BudgetPlanner(budget_s, first_plan_step=min(20, steps_per_epoch), planned=planned, start_step=step,
                            start_elapsed_s=elapsed_before)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    step_fn = wrap_ddp(method, device, ddp_options) if world > 1 else method
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None

    reader = None
    if getattr(train, "prefetch", False):
        from concurrent.futures import ThreadPoolExecutor

        reader = ThreadPoolExecutor(1, thread_name_prefix="contrastkit-reader")
    crash_at = int(os.environ.get("CONTRASTKIT_CRASH_AT_STEP", "-1"))  # test hooks: simulate a hard kill
    crash_rank = int(os.environ.get("CONTRASTKIT_CRASH_RANK", "-1"))
    start_time = time.perf_counter()
    history: list[dict[str, Any]] = []
    ips = 0.0
    saved_at = -1

    def loop_state(next_in_epoch: int, view_gen: torch.Generator) -> dict[str, Any]:
        at_epoch_end = next_in_epoch >= steps_per_epoch
        return {"epoch": epoch + int(at_epoch_end), "step": step,
                "step_in_epoch": 0 if at_epoch_end else next_in_epoch, "total_steps": total_steps,
                "planned": planner.planned, "warmup_steps": warmup, "skipped_steps": skipped,
                "elapsed": elapsed_before + time.perf_counter() - start_time,
                # inside an epoch the random streams continue; a new epoch re-seeds them from (seed, epoch)
                "view_rng": None if at_epoch_end else view_gen.get_state(),
                "global_rng": None if at_epoch_end else torch.get_rng_state()}

    for cb in callbacks:
        cb.on_start(step, total_steps)
    try:
        while step < total_steps:
            method.train()
            perm_gen = torch.Generator().manual_seed(epoch_seed(plan.seed, epoch, 0))
            view_gen = torch.Generator(device=device).manual_seed(epoch_seed(plan.seed, epoch, 1))
            torch.manual_seed(epoch_seed(plan.seed, epoch, 2))
            if view_state is not None:  # resuming inside an epoch: continue both streams where they were
                view_gen.set_state(view_state)
                torch.set_rng_state(rng_state)
                view_state = rng_state = None
            order = torch.randperm(n_train, generator=perm_gen).to(device)
            mine = slice(rank * local, (rank + 1) * local)

            def fetch(i: int, order: torch.Tensor = order, mine: slice = mine):  # this epoch's order
                return train.batch(order[i * batch_size:(i + 1) * batch_size][mine])

            pending = reader.submit(fetch, in_epoch) if reader is not None else None
            for i in range(in_epoch, steps_per_epoch):
                if step >= total_steps:
                    break
                t0 = time.perf_counter()
                if pending is not None:  # data on disk: this batch was read while the last step trained
                    batch = pending.result()
                    pending = reader.submit(fetch, i + 1) if i + 1 < steps_per_epoch else None
                else:
                    batch = fetch(i)
                if channels_last and isinstance(batch.x, torch.Tensor) and batch.x.ndim == 4:
                    batch.x = batch.x.contiguous(memory_format=torch.channels_last)
                lr = set_lr(optimizer, lr_factor(step, total_steps, warmup))
                with sample_shard(rank * local, local, batch_size), \
                        torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    out = step_fn(batch, view_gen)
                loss = out["loss"]
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)  # skips steps with inf/NaN gradients and lowers the scale
                    scaler.update()
                    finite = True
                else:
                    loss.backward()  # under DDP the gradients are averaged here: every rank sees the same ones
                    # after DDP's all-reduce every rank holds the same gradients, so all ranks decide alike
                    finite = _grads_finite(params) and (world > 1 or bool(torch.isfinite(loss.detach())))
                    if finite:
                        optimizer.step()
                if not finite:
                    skipped += 1
                    if skipped > plan.skip_nonfinite:
                        last = f"; the last good checkpoint is {checkpointer.path}" if checkpointer else ""
                        raise NonFiniteError(
                            f"the loss or a gradient became {float(loss.detach())} at step {step + 1}{last}. "
                            "Lower --lr, use --precision fp32, or pass --skip-nonfinite N to skip up to N such "
                            "steps")
                else:
                    method.after_step(step, total_steps)
                step += 1
                if step == crash_at and crash_rank in (-1, rank):
                    os._exit(137)
                dt = time.perf_counter() - t0
                # the budget may move the end (or make this step the last) before this step is logged
                first_plan = not planner.planned
                elapsed = elapsed_before + time.perf_counter() - start_time
                new_total = planner.update(step, elapsed, total_steps)
                if first_plan and planner.planned:
                    warmup = warmup_steps(plan, steps_per_epoch, new_total)
                total_steps = new_total
                ips = 0.9 * ips + 0.1 * (batch_size / dt) if ips else batch_size / dt
                info = StepInfo(step=step, total_steps=total_steps, epoch=epoch + (i + 1) / steps_per_epoch,
                                loss=float(loss.detach()), lr=lr, samples_per_s=ips,
                                values={k: float(v) for k, v in out.items() if k != "loss"}, elapsed_s=elapsed)
                if step % max(1, int(plan.log_every)) == 0 or step == total_steps:
                    info.row = {"step": step, "epoch": info.epoch, "loss": info.loss, "lr": lr,
                                "img_per_s": ips, **info.values}
                    if skipped:
                        info.row["skipped_steps"] = skipped
                    history.append(info.row)
                if checkpointer is not None and step == total_steps:
                    # the last step is saved before the callbacks run: an error in an end-of-run monitor
                    # then loses nothing
                    checkpointer.save(method, optimizer, loop_state(i + 1, view_gen))
                    saved_at = step
                for cb in callbacks:
                    cb.on_step(info)
                if (checkpointer is not None and plan.checkpoint_every > 0 and step % plan.checkpoint_every == 0
                        and i + 1 < steps_per_epoch and saved_at != step):
                    checkpointer.save(method, optimizer, loop_state(i + 1, view_gen))
                    saved_at = step
            if checkpointer is not None and saved_at != step:
                checkpointer.save(method, optimizer, loop_state(steps_per_epoch, view_gen))
                saved_at = step
            epoch += 1
            in_epoch = 0
    finally:
        if reader is not None:
            reader.shutdown(wait=True, cancel_futures=True)
        for cb in callbacks:
            cb.on_end()
    return FitResult(steps=step, seconds=elapsed_before + time.perf_counter() - start_time, skipped_steps=skipped,
                     history=history)


__all__ = ["Callback", "FitPlan", "FitResult", "NonFiniteError", "StepInfo", "epoch_seed", "fit", "warmup_steps"]
