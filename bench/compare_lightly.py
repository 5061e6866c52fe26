"""contrastkit next to lightly: same encoder, heads, optimizer, schedule and wall-clock budget, same evaluation.

Run it with the bench environment (lightly needs torchvision, never a contrastkit dependency):

    bash scripts/bench_venv.sh                                   # once: creates bench/.venv
    bench/.venv/bin/python bench/compare_lightly.py              # full run, ~30 min on 2 CPU cores
    bench/.venv/bin/python bench/compare_lightly.py --budgets 1 2 --other-minutes 1 --json out.json
    bench/.venv/bin/python bench/compare_lightly.py --budgets 0.2 --other-minutes 0.2 \\
        --train-subset 2000 --test-subset 500 --phase-steps 5     # smoke test, ~3 min

Two ways of training the same model on Fashion-MNIST, one after the other in this process:

* **contrastkit** — its default job, `contrastkit pretrain --method M --minutes B` on fashion-mnist, through
  `contrastkit.build.train` (evaluation switched off there: both encoders are judged below, identically).
  Batched views on the training device inside the step (`method.view1/view2`), the library's loop.
* **lightly** — what a lightly user writes following lightly's examples: per-sample PIL transforms
  (`SimCLRTransform` / `BYOLTransform` / `MoCoV2Transform` sized for 28-px grey images: `input_size=28`, no
  blur, no random grayscale, Fashion-MNIST's mean/std) in a `torch.utils.data.DataLoader` with worker
  processes (`--num-workers`, default 1 on 2 cores), lightly's heads (`SimCLRProjectionHead`,
  `BYOLProjectionHead`/`BYOLPredictionHead`, `MoCoProjectionHead`), losses (`NTXentLoss`,
  `NegativeCosineSimilarity`, `NTXentLoss(memory_bank_size=...)`) and momentum updates
  (`lightly.models.utils.update_momentum`, `lightly.utils.scheduler.cosine_schedule`), one forward per view
  as in lightly's examples.

Held equal: the encoder (contrastkit's default image encoder, built through its registry from the same seed,
so both start from the same weights), the head sizes, the optimizer (contrastkit's `build_optimizer` with the
method's pinned lr/momentum/weight decay and its weight-decay groups), the lr schedule (contrastkit's warm-up
+ cosine, planned from the wall-clock budget by contrastkit's `BudgetPlanner`), the EMA schedule's end points,
temperature and queue size, the batch size, precision and memory format. Everything is read from
`contrastkit.config.resolve_config` at run time, so it follows the library's defaults when they change.

Evaluation, for both: contrastkit's own protocol on frozen backbone features — weighted kNN (k = 20 and 200,
t = `knn_t`, cosine; the Fashion-MNIST training split is the bank, the test split the queries) and the
L-BFGS linear probe (`contrastkit.evaluate`). img/s = images trained / training seconds.

Budgets (`--budgets`, default 1 2 5 8 minutes, SimCLR): by default each framework trains ONE run of the largest
budget and copies its encoder weights (< 1 ms) when its training clock passes each smaller budget; the copies
are evaluated after training, so evaluation is never on the clock. The lr schedule of such a snapshot is the
largest budget's (still high at 1 minute of 8), so `--separate-runs` trains one run per budget instead (more
honest for a cosine schedule, twice the time). The output says which was done.

BYOL and MoCo v2 (`--other-methods`, `--other-minutes`, default 2 minutes each): one run per framework.

Phases (`--phase-steps`, SimCLR): a separate short run per framework with synchronous timers (CUDA is
synchronised at every mark), after `--phase-warmup` steps: contrastkit: batch gather, views, forward (encoder +
head), loss, backward, optimizer; lightly: data-loader wait (what the loop waits for: the workers' per-sample
augmentation and collation, overlapped with training), forward, loss, backward, optimizer. The lightly
transform's own CPU cost per batch (measured in this process: what the workers do) is printed beside it.

contrastkit's clock starts at its loop's start (data loading and model construction excluded); lightly's at
its first `iter(loader)` (worker start-up included, as a user's loop pays it; each epoch starts the workers
again, as in lightly's examples). contrastkit's run keeps its default online monitor (`monitor_every`), which
is on its clock; `--ck-monitor-every 0` turns it off.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import contrastkit
from contrastkit.config import TRAINER_DEFAULTS, resolve_config
from contrastkit.data import load_data
from contrastkit.data.base import DataSplits
from contrastkit.encoders import create_encoder, resolve_encoder_name
from contrastkit.engine.budget import BudgetPlanner
from contrastkit.engine.loop import FitPlan, warmup_steps
from contrastkit.engine.precision import autocast_dtype, pick_device
from contrastkit.engine.schedule import lr_factor, set_lr
from contrastkit.evaluate.embed import embed
from contrastkit.evaluate.knn import knn_accuracies
from contrastkit.evaluate.linear import linear_probe
from contrastkit.methods import METHODS, create_method
from contrastkit.train.optim import build_optimizer
from contrastkit.views import create_preprocess

try:
    import lightly
    from lightly.loss import NegativeCosineSimilarity, NTXentLoss
    from lightly.models.modules import (
        BYOLPredictionHead,
        BYOLProjectionHead,
        MoCoProjectionHead,
        SimCLRProjectionHead,
    )
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms import BYOLTransform, MoCoV2Transform, SimCLRTransform
    from lightly.transforms.byol_transform import BYOLView1Transform, BYOLView2Transform
    from lightly.utils.scheduler import cosine_schedule
except ImportError as _e:  # pragma: no cover - depends on the environment
    sys.exit(f"bench/compare_lightly.py needs lightly and torchvision ({_e}); create the bench environment with "
             f"`bash scripts/bench_venv.sh` and run this script with bench/.venv/bin/python")

KS = (20, 200)
METHOD_TITLES = {"simclr": "SimCLR", "byol": "BYOL", "moco": "MoCo v2"}


# ------------------------------------------------------------------------------------------------ setup
def method_config(method: str, args: argparse.Namespace, data: str, minutes: float | None = None,
                  out: Path | None = None) -> dict[str, Any]:
    """contrastkit's resolved settings for `method` (its pinned defaults), with only what this bench fixes."""
    given = {"method": method, "data": data, "data_dir": args.data_dir, "seed": args.seed, "device": args.device,
             "precision": args.precision, "batch_size": args.batch_size, "minutes": minutes,
             "out": None if out is None else str(out), "evaluate": False,
             "monitor_every": args.ck_monitor_every, "data_kind": "image" if data.endswith(".npz") else None}
    return resolve_config({k: v for k, v in given.items() if v is not None})


def prepare_data(args: argparse.Namespace, workdir: Path) -> tuple[str, DataSplits]:
    """The data both frameworks train on: fashion-mnist, or (smoke tests) a seeded subset of it as a .npz."""
    cfg = resolve_config({"data": args.data, "data_dir": args.data_dir})
    splits = load_data(str(cfg["data"]), cfg)
    if not args.train_subset and not args.test_subset:
        return str(cfg["data"]), splits
    g = torch.Generator().manual_seed(args.seed)

    def pick(split, n):
        n = min(int(n or len(split)), len(split))
        idx = torch.randperm(len(split), generator=g)[:n].sort().values
        return split.x[idx].numpy(), split.y[idx].numpy()

    xtr, ytr = pick(splits.train, args.train_subset)
    xte, yte = pick(splits.test, args.test_subset)
    path = workdir / f"{Path(str(args.data)).stem}-subset-{len(xtr)}-{len(xte)}.npz"
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    sub_cfg = resolve_config({"data": str(path), "data_kind": "image"})
    return str(path), load_data(str(path), sub_cfg)


def new_encoder(cfg: dict[str, Any], splits: DataSplits) -> nn.Module:
    """contrastkit's encoder for these settings, through its registry (`encoder: auto` → the image default)."""
    name = resolve_encoder_name(str(cfg["encoder"]), splits.info)
    return create_encoder(name, splits.info, **dict(cfg.get("encoder_kwargs") or {}))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the module's weights on the CPU (a snapshot: ~1 ms for the default encoder)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class PhaseTimer:
    """Synchronous phase timer: `mark(name)` adds the time since the previous mark to `name`."""

    def __init__(self, device: torch.device, warmup: int):
        self.device, self.warmup = device, int(warmup)
        self.totals: dict[str, float] = defaultdict(float)
        self.steps = 0
        self._last = 0.0

    @property
    def counting(self) -> bool:
        return self.steps >= self.warmup

    def start(self) -> None:
        sync(self.device)
        self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        sync(self.device)
        now = time.perf_counter()
        if self.counting:
            self.totals[name] += now - self._last
        self._last = now

    def end_step(self) -> None:
        self.steps += 1

    def measured_steps(self) -> int:
        return max(0, self.steps - self.warmup)


# ------------------------------------------------------------------------------------------------ evaluation
def evaluate(state: dict[str, torch.Tensor], cfg: dict[str, Any], splits: DataSplits, device: torch.device,
             knn_t: float) -> dict[str, float]:
    """contrastkit's protocol (evaluate/protocol.py) on the frozen backbone: kNN k=20/200 and the linear probe."""
    t0 = time.perf_counter()
    encoder = new_encoder(cfg, splits)
    encoder.load_state_dict(state)
    encoder = encoder.to(device)
    preprocess = create_preprocess(splits.info).to(device)
    tr = embed(encoder, splits.train.x, preprocess, device=device)
    te = embed(encoder, splits.test.x, preprocess, device=device)
    ytr, yte = splits.train.y.cpu(), splits.test.y.cpu()
    ks = tuple(sorted({min(k, len(ytr)) for k in KS}))
    acc = knn_accuracies(tr, ytr, te, yte, ks=ks, t=knn_t)
    out = {f"knn_k{k}": acc[min(k, len(ytr))] for k in KS}
    out["linear"] = linear_probe(tr, ytr, te, yte)
    out["eval_s"] = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------------------------------------ contrastkit
class Snapshots:
    """An engine callback: copies the encoder's weights when the training clock passes each time in `at_s`,
    and once more at the end (the final weights)."""

    def __init__(self, at_s: list[float]):
        self.pending = sorted(float(t) for t in at_s)
        self.taken: list[dict[str, Any]] = []
        self.method: nn.Module | None = None
        self.last_step = 0

    def bind(self, method: nn.Module) -> "Snapshots":
        self.method = method
        return self

    def on_start(self, step: int, total_steps: int) -> None:
        pass

    def on_step(self, info) -> None:
        self.last_step = info.step
        elapsed = info.elapsed_s  # the loop's own training clock
        while self.pending and elapsed >= self.pending[0]:
            self.taken.append({"budget_s": self.pending.pop(0), "elapsed_s": elapsed, "steps": info.step,
                               "state": weights(self.method.encoder)})

    def on_end(self) -> None:
        pass


def contrastkit_run(method: str, minutes: float, snapshot_min: list[float], args, data: str,
                    workdir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`contrastkit pretrain --method M --minutes B` (build.train, no end-of-run evaluation), with snapshots."""
    from contrastkit.build import train

    out = workdir / f"contrastkit-{method}-{minutes:g}min-{time.strftime('%H%M%S')}"
    cfg = method_config(method, args, data, minutes=minutes, out=out)
    snaps = Snapshots([60.0 * m for m in snapshot_min])
    result = train(cfg, progress=False, callbacks=lambda m: [snaps.bind(m)])
    try:
        batch = int(cfg["batch_size"])
        n_train = len(result.splits.train)
        final = {"budget_s": 60.0 * minutes, "elapsed_s": result.train_seconds, "steps": result.steps,
                 "state": weights(result.method.encoder)}
        runs = []
        for s in [*snaps.taken, final]:
            runs.append({**s, "img_per_s": s["steps"] * batch / max(s["elapsed_s"], 1e-9),
                         "epochs": s["steps"] * batch / n_train})
        info = {"cfg": cfg, "run_dir": str(out), "device": str(result.device)}
        return info, runs
    finally:
        result.release()


def contrastkit_phases(args, data: str, splits: DataSplits) -> dict[str, Any]:
    """Phase split of contrastkit's SimCLR step (bench/train_step.py's approach, on the method the job builds)."""
    cfg = method_config("simclr", args, data)
    device = pick_device(str(cfg["device"]))
    amp = autocast_dtype(str(cfg["precision"]), device)
    channels_last = bool(cfg["channels_last"])
    torch.manual_seed(int(cfg["seed"]))
    train = splits.train.to(device)
    method = create_method(cfg, splits.info, train).to(device)
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(method.parameter_groups(), cfg)
    method.train()
    bs = int(cfg["batch_size"])
    gen = torch.Generator(device=device).manual_seed(int(cfg["seed"]))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(int(cfg["seed"]))).to(device)
    timer = PhaseTimer(device, args.phase_warmup)
    steps_per_epoch = len(train) // bs
    t_all = None
    for step in range(args.phase_warmup + args.phase_steps):
        if step == args.phase_warmup:
            sync(device)
            t_all = time.perf_counter()
        i = step % steps_per_epoch
        timer.start()
        batch = train.batch(order[i * bs:(i + 1) * bs])
        if channels_last:
            batch.x = batch.x.contiguous(memory_format=torch.channels_last)
        timer.mark("data")
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            v = torch.cat([method.view1(batch.x, gen), method.view2(batch.x, gen)])
            timer.mark("views")
            z1, z2 = method.head(method.encoder(v)).float().chunk(2)
            timer.mark("forward")
            loss = method.objective(z1, z2, batch)
            timer.mark("loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        timer.mark("backward")
        optimizer.step()
        method.after_step(step, args.phase_warmup + args.phase_steps)
        timer.mark("optimizer")
        timer.end_step()
    sync(device)
    wall = time.perf_counter() - t_all
    return {"framework": "contrastkit", "steps": timer.measured_steps(), "batch_size": bs, "wall_s": wall,
            "phases_s": dict(timer.totals)}


# ------------------------------------------------------------------------------------------------ lightly
class FashionMNISTPIL(torch.utils.data.Dataset):
    """torchvision.datasets.FashionMNIST's `__getitem__` on the split contrastkit loaded: a mode-L PIL image
    through `transform`, and the label."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None, transform: Callable):
        self.x = x.cpu().numpy()  # (N, 1, H, W) uint8; shared with the workers (fork)
        self.y = None if y is None else y.cpu().numpy()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.x[i, 0], mode="L")
        return self.transform(img), (-1 if self.y is None else int(self.y[i]))


def lightly_transform(method: str, splits: DataSplits):
    """lightly's transform for the method, sized for 28-px grey images as lightly's own small-image (CIFAR-10)
    benchmark does for 32 px: no blur; plus no random grayscale (already grey) and the data's mean/std."""
    size = int(splits.info.shape[1])
    norm = {"mean": list(splits.info.mean), "std": list(splits.info.std)}
    grey = {"input_size": size, "gaussian_blur": 0.0, "random_gray_scale": 0.0, "normalize": norm}
    if method == "simclr":
        return SimCLRTransform(cj_strength=0.5, **grey)
    if method == "byol":
        return BYOLTransform(view_1_transform=BYOLView1Transform(**grey), view_2_transform=BYOLView2Transform(**grey))
    if method == "moco":
        return MoCoV2Transform(**grey)
    raise SystemExit(f"no lightly counterpart for method {method!r} (simclr, byol, moco)")


def transform_description(method: str) -> str:
    return {"simclr": "SimCLRTransform(input_size=28, cj_strength=0.5, gaussian_blur=0, random_gray_scale=0, "
                      "normalize=data mean/std)",
            "byol": "BYOLTransform(BYOLView1Transform(input_size=28, gaussian_blur=0, random_gray_scale=0, ...), "
                    "BYOLView2Transform(same))",
            "moco": "MoCoV2Transform(input_size=28, gaussian_blur=0, random_gray_scale=0, normalize=data mean/std)",
            }[method]


class LightlySimCLR(nn.Module):
    def __init__(self, backbone: nn.Module, cfg: dict[str, Any]):
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(backbone.out_dim, int(cfg["proj_hidden_dim"]),
                                                    int(cfg["proj_dim"]), num_layers=int(cfg.get("proj_layers") or 2))
        self.criterion = NTXentLoss(temperature=float(cfg["temperature"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))

    def training_step(self, views, step: int, total_steps: int, mark, amp_ctx) -> torch.Tensor:
        x0, x1 = views
        with amp_ctx():
            z0, z1 = self(x0), self(x1)  # one forward per view, as lightly's examples
        mark("forward")
        loss = self.criterion(z0.float(), z1.float())
        mark("loss")
        return loss


class LightlyMomentum(nn.Module):
    """What lightly's BYOL and MoCo examples share: momentum copies of backbone and projection head, updated by
    `update_momentum` on `cosine_schedule` before each step."""

    def __init__(self, backbone: nn.Module, projection_head: nn.Module, cfg: dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.projection_head = projection_head
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)).detach()

    def update_momentum_copies(self, step: int, total_steps: int) -> None:
        m = cosine_schedule(step, total_steps, float(self.cfg["ema_momentum"]), float(self.cfg["ema_momentum_final"]))
        update_momentum(self.backbone, self.backbone_momentum, m=m)
        update_momentum(self.projection_head, self.projection_head_momentum, m=m)


class LightlyBYOL(LightlyMomentum):
    def __init__(self, backbone: nn.Module, cfg: dict[str, Any]):
        d = int(cfg["proj_dim"])
        super().__init__(backbone, BYOLProjectionHead(backbone.out_dim, int(cfg["proj_hidden_dim"]), d), cfg)
        self.prediction_head = BYOLPredictionHead(d, int(cfg["pred_hidden_dim"]), d)
        self.criterion = NegativeCosineSimilarity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1)))

    def training_step(self, views, step: int, total_steps: int, mark, amp_ctx) -> torch.Tensor:
        self.update_momentum_copies(step, total_steps)
        x0, x1 = views
        with amp_ctx():
            p0, z0 = self(x0), self.forward_momentum(x0)
            p1, z1 = self(x1), self.forward_momentum(x1)
        mark("forward")
        loss = 0.5 * (self.criterion(p0.float(), z1.float()) + self.criterion(p1.float(), z0.float()))
        mark("loss")
        return loss


class LightlyMoCo(LightlyMomentum):
    def __init__(self, backbone: nn.Module, cfg: dict[str, Any]):
        super().__init__(backbone, MoCoProjectionHead(backbone.out_dim, int(cfg["proj_hidden_dim"]),
                                                      int(cfg["proj_dim"])), cfg)
        self.criterion = NTXentLoss(temperature=float(cfg["temperature"]),
                                    memory_bank_size=(int(cfg["queue_size"]), int(cfg["proj_dim"])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))

    def training_step(self, views, step: int, total_steps: int, mark, amp_ctx) -> torch.Tensor:
        self.update_momentum_copies(step, total_steps)
        x_query, x_key = views
        with amp_ctx():
            query, key = self(x_query), self.forward_momentum(x_key)
        mark("forward")
        loss = self.criterion(query.float(), key.float())
        mark("loss")
        return loss


LIGHTLY_MODELS = {"simclr": LightlySimCLR, "byol": LightlyBYOL, "moco": LightlyMoCo}


def lightly_run(method: str, args, data: str, splits: DataSplits, minutes: float | None,
                snapshot_min: list[float] = (), timer: PhaseTimer | None = None,
                max_steps: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The lightly way, trained for `minutes` (contrastkit's budget planner and lr schedule) or `max_steps`."""
    cfg = method_config(method, args, data, minutes=minutes)
    device = pick_device(str(cfg["device"]))
    amp = autocast_dtype(str(cfg["precision"]), device)
    channels_last = bool(cfg["channels_last"])
    torch.manual_seed(int(cfg["seed"]))  # the same seed contrastkit's run starts from: the same encoder weights
    backbone = new_encoder(cfg, splits)
    model = LIGHTLY_MODELS[method](backbone, cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    groups = [{"params": [p for p in model.parameters() if p.requires_grad],
               "decay_norm_bias": bool(getattr(METHODS.get(method), "decay_norm_bias", False))}]
    optimizer = build_optimizer(groups, cfg)
    batch_size = int(cfg["batch_size"])
    dataset = FashionMNISTPIL(splits.train.x, splits.train.y, lightly_transform(method, splits))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=args.num_workers,
        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(int(cfg["seed"])))
    steps_per_epoch = len(loader)
    plan = FitPlan(batch_size=batch_size, epochs=int(cfg["epochs"]), seed=int(cfg["seed"]),
                   warmup_epochs=float(cfg["warmup_epochs"]), minutes=minutes)
    total_steps = int(max_steps) if max_steps is not None else steps_per_epoch * plan.epochs
    budget_s = None if minutes is None else 60.0 * float(minutes)
    planner = BudgetPlanner(budget_s, first_plan_step=min(20, steps_per_epoch), planned=budget_s is None)
    warmup = warmup_steps(plan, steps_per_epoch, total_steps)
    pending = sorted(60.0 * float(m) for m in snapshot_min)
    taken: list[dict[str, Any]] = []

    def amp_ctx():
        return torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None)

    mark = timer.mark if timer is not None else (lambda name: None)
    model.train()
    step = 0
    sync(device)
    start = time.perf_counter()
    while step < total_steps:
        it = iter(loader)  # a new epoch: the workers start again (no persistent_workers, as in lightly's examples)
        while step < total_steps:
            if timer is not None:
                timer.start()
            try:
                views, _ = next(it)
            except StopIteration:
                break
            views = [v.to(device, non_blocking=True) for v in views]
            if channels_last:
                views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            mark("data wait")
            set_lr(optimizer, lr_factor(step, total_steps, warmup))
            loss = model.training_step(views, step, total_steps, mark, amp_ctx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            mark("backward")
            optimizer.step()
            mark("optimizer")
            if timer is not None:
                timer.end_step()
            step += 1
            elapsed = time.perf_counter() - start
            first_plan = not planner.planned
            new_total = planner.update(step, elapsed, total_steps)
            if first_plan and planner.planned:
                warmup = warmup_steps(plan, steps_per_epoch, new_total)
            total_steps = new_total
            while pending and elapsed >= pending[0]:
                taken.append({"budget_s": pending.pop(0), "elapsed_s": elapsed, "steps": step,
                              "state": weights(model.backbone)})
        del it
    sync(device)
    seconds = time.perf_counter() - start
    final = {"budget_s": budget_s, "elapsed_s": seconds, "steps": step, "state": weights(model.backbone)}
    runs = [{**s, "img_per_s": s["steps"] * batch_size / max(s["elapsed_s"], 1e-9),
             "epochs": s["steps"] * batch_size / len(dataset)} for s in [*taken, final]]
    return {"cfg": cfg, "device": str(device)}, runs


def lightly_phases(args, data: str, splits: DataSplits) -> dict[str, Any]:
    device = pick_device(str(method_config("simclr", args, data)["device"]))
    timer = PhaseTimer(device, args.phase_warmup)
    t0 = time.perf_counter()
    info, _ = lightly_run("simclr", args, data, splits, minutes=None, timer=timer,
                             max_steps=args.phase_warmup + args.phase_steps)
    bs = int(info["cfg"]["batch_size"])
    # the transform's own cost per batch (what the workers do while the loop trains), measured here
    dataset = FashionMNISTPIL(splits.train.x, splits.train.y, lightly_transform("simclr", splits))
    collate = torch.utils.data.default_collate
    g = torch.Generator().manual_seed(args.seed)
    per_batch = []
    for _ in range(3):
        idx = torch.randperm(len(dataset), generator=g)[:bs].tolist()
        t = time.perf_counter()
        collate([dataset[i] for i in idx])
        per_batch.append(time.perf_counter() - t)
    total = sum(timer.totals.values())
    return {"framework": "lightly", "steps": timer.measured_steps(), "batch_size": bs, "wall_s": total,
            "phases_s": dict(timer.totals), "transform_s_per_batch": float(np.median(per_batch)),
            "num_workers": args.num_workers, "run_s": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------------ driver
def compare(method: str, budgets: list[float], separate: bool, args, data: str, splits: DataSplits,
            workdir: Path, knn_t: float, section: str) -> list[dict[str, Any]]:
    """Rows for both frameworks at each budget (snapshots of one run of the largest budget, or separate runs)."""
    rows: list[dict[str, Any]] = []
    budgets = sorted(budgets)
    plans = [[b] for b in budgets] if separate else [budgets]
    for plan in plans:
        largest, smaller = plan[-1], plan[:-1]
        for framework in (("lightly", "contrastkit") if args.lightly_first else ("contrastkit", "lightly")):
            print(f"  training {framework} {method} for {largest:g} min"
                  + (f" (snapshots at {', '.join(f'{b:g}' for b in smaller)} min)" if smaller else "") + " ...",
                  flush=True)
            if framework == "contrastkit":
                info, runs = contrastkit_run(method, largest, smaller, args, data, workdir)
            else:
                info, runs = lightly_run(method, args, data, splits, largest, smaller)
            cfg = info["cfg"]
            device = pick_device(str(cfg["device"]))
            final = runs[-1]
            snaps = {round(s["budget_s"], 6): s for s in runs[:-1]}
            for budget in plan:
                run = final if budget == largest else snaps.get(round(60.0 * budget, 6))
                if run is None:  # the run ended before this snapshot time: its final weights stand in
                    print(f"    note: {framework} stopped after {final['elapsed_s']:.1f} s, before the {budget:g}-min "
                          "snapshot; its final weights stand in")
                    run = final
                scores = evaluate(run["state"], cfg, splits, device, knn_t)
                row = {"section": section, "method": method, "framework": framework, "budget_min": budget,
                       "mode": ("separate run" if separate else f"end of {largest:g}-min run" if budget == largest
                                else f"snapshot of {largest:g}-min run"),
                       "train_s": round(run["elapsed_s"], 2), "steps": run["steps"], "epochs": round(run["epochs"], 3),
                       "img_per_s": round(run["img_per_s"], 1), **{k: round(v, 4) for k, v in scores.items()},
                       "batch_size": int(cfg["batch_size"]), "device": info["device"]}
                rows.append(row)
                print(f"    {budget:g} min: {row['steps']} steps, {row['img_per_s']:.0f} img/s, "
                      f"kNN k=20 {100 * row['knn_k20']:.2f} %, k=200 {100 * row['knn_k200']:.2f} %, "
                      f"linear {100 * row['linear']:.2f} % (evaluated in {row['eval_s']:.0f} s)", flush=True)
    return rows


def print_accuracy_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    head = (f"{'budget':>7}  {'framework':<12} {'mode':<24} {'steps':>6} {'epochs':>7} {'img/s':>7} "
            f"{'kNN k=20':>9} {'kNN k=200':>10} {'linear':>7}")
    print(head)
    print("-" * len(head))
    for r in sorted(rows, key=lambda r: (r["budget_min"], r["framework"])):
        print(f"{r['budget_min']:>5g} m  {r['framework']:<12} {r['mode']:<24} {r['steps']:>6} {r['epochs']:>7.2f} "
              f"{r['img_per_s']:>7.0f} {100 * r['knn_k20']:>8.2f}% {100 * r['knn_k200']:>9.2f}% "
              f"{100 * r['linear']:>6.2f}%")
    by = defaultdict(dict)
    for r in rows:
        by[(r["method"], r["budget_min"])][r["framework"]] = r
    ratios = [f"{b:g} m: {p['contrastkit']['img_per_s'] / p['lightly']['img_per_s']:.2f}×"
              for (m, b), p in by.items() if {"contrastkit", "lightly"} <= set(p) and p["lightly"]["img_per_s"] > 0]
    if ratios:
        print("img/s contrastkit / lightly: " + ", ".join(ratios))


PHASE_ROWS = [("views / data wait", {"contrastkit": ("data", "views"), "lightly": ("data wait",)}),
              ("forward", {"contrastkit": ("forward",), "lightly": ("forward",)}),
              ("loss", {"contrastkit": ("loss",), "lightly": ("loss",)}),
              ("backward", {"contrastkit": ("backward",), "lightly": ("backward",)}),
              ("optimizer", {"contrastkit": ("optimizer",), "lightly": ("optimizer",)})]


def phase_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for res in results:
        steps = max(1, res["steps"])
        total = sum(res["phases_s"].values())
        for name, seconds in res["phases_s"].items():
            rows.append({"section": "phases", "method": "simclr", "framework": res["framework"], "phase": name,
                         "ms_per_step": round(1000 * seconds / steps, 3),
                         "share": round(seconds / total, 4) if total else None, "steps": res["steps"]})
        rows.append({"section": "phases", "method": "simclr", "framework": res["framework"], "phase": "total",
                     "ms_per_step": round(1000 * total / steps, 3), "share": 1.0, "steps": res["steps"],
                     "img_per_s": round(res["batch_size"] * steps / total, 1) if total else None,
                     **({"transform_ms_per_batch": round(1000 * res["transform_s_per_batch"], 2),
                         "num_workers": res["num_workers"]} if "transform_s_per_batch" in res else {})})
    return rows


def print_phase_table(results: list[dict[str, Any]]) -> None:
    print("\nSimCLR training step, where the time goes (synchronous timers, ms per step; share of the step)")
    fw = [r["framework"] for r in results]
    head = f"{'phase':<20}" + "".join(f"{f:>24}" for f in fw)
    print(head)
    print("-" * len(head))
    for label, parts in PHASE_ROWS + [("step total", None)]:
        cells = []
        for res in results:
            steps = max(1, res["steps"])
            total = sum(res["phases_s"].values())
            s = total if parts is None else sum(res["phases_s"].get(p, 0.0) for p in parts[res["framework"]])
            cells.append(f"{1000 * s / steps:>10.1f} ms ({100 * s / total if total else 0:5.1f} %)")
        print(f"{label:<20}" + "".join(f"{c:>24}" for c in cells))
    cells = [f"{r['batch_size'] * max(1, r['steps']) / max(sum(r['phases_s'].values()), 1e-9):>17.0f} img/s"
             for r in results]
    print(f"{'throughput':<20}" + "".join(f"{c:>24}" for c in cells))
    for r in results:
        if r["framework"] == "contrastkit":
            d, v = (1000 * r["phases_s"].get(p, 0.0) / max(1, r["steps"]) for p in ("data", "views"))
            print(f"contrastkit: batch gather {d:.1f} ms + views (both, batched on the device) {v:.1f} ms per step")
        if "transform_s_per_batch" in r:
            print(f"lightly: the per-sample transforms + collate cost {1000 * r['transform_s_per_batch']:.0f} ms of "
                  f"CPU per batch of {r['batch_size']} (in {r['num_workers']} worker process(es), overlapped "
                  f"with training; 'data wait' is what the loop still waits for)")


def estimate_minutes(args) -> float:
    simclr = 2 * (sum(args.budgets) if args.separate_runs else max(args.budgets)) if args.simclr else 0
    others = 2 * args.other_minutes * len(args.other_methods) if args.other_methods else 0
    n_evals = (2 * len(args.budgets) if args.simclr else 0) + 2 * len(args.other_methods)
    evals = 0.5 * n_evals  # 25-70 s per evaluation of the full splits on 2 cores
    phases = 1.0 if args.phase_steps > 0 else 0.0
    return simclr + others + evals + phases


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--budgets", type=float, nargs="+", default=[1.0, 2.0, 5.0, 8.0],
                    help="SimCLR wall-clock budgets in minutes (default 1 2 5 8)")
    ap.add_argument("--separate-runs", action="store_true",
                    help="one run per budget and framework (default: snapshots inside one run of the largest)")
    ap.add_argument("--other-methods", nargs="*", default=["byol", "moco"], choices=["byol", "moco"],
                    help="also compare these methods (default byol moco; none: --other-methods)")
    ap.add_argument("--other-minutes", type=float, default=2.0, help="budget of each BYOL / MoCo run (default 2)")
    ap.add_argument("--no-simclr", dest="simclr", action="store_false", help="skip the SimCLR budgets")
    ap.add_argument("--phase-steps", type=int, default=30, help="steps timed per framework for the phase split "
                                                                 "(0: skip it)")
    ap.add_argument("--phase-warmup", type=int, default=5, help="steps run before the phase timers count")
    ap.add_argument("--num-workers", type=int, default=1, help="lightly's DataLoader worker processes (default 1)")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (default: contrastkit's)")
    ap.add_argument("--train-subset", type=int, default=None, help="train on a seeded subset (smoke tests)")
    ap.add_argument("--test-subset", type=int, default=None, help="evaluate on a seeded test subset (smoke tests)")
    ap.add_argument("--batch-size", type=int, default=None, help="both frameworks (default: contrastkit's)")
    ap.add_argument("--device", default=None, help="both frameworks (default: contrastkit's, auto)")
    ap.add_argument("--precision", default=None, help="both frameworks (default: contrastkit's, auto)")
    ap.add_argument("--lightly-first", action="store_true",
                    help="train lightly before contrastkit at each budget (default: contrastkit first)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ck-monitor-every", type=int, default=None,
                    help="contrastkit's online monitor interval (default: its own; 0 turns it off)")
    ap.add_argument("--knn-t", type=float, default=None, help="kNN temperature (default: contrastkit's knn_t)")
    ap.add_argument("--json", type=Path, default=None, help="write the raw rows here")
    ap.add_argument("--keep-runs", type=Path, default=None, help="keep contrastkit's run folders here")
    args = ap.parse_args(argv)
    if min(args.budgets) <= 0 or args.other_minutes <= 0:
        ap.error("budgets must be > 0 minutes")
    if args.num_workers < 0:
        ap.error("--num-workers must be >= 0")
    knn_t = float(args.knn_t if args.knn_t is not None else TRAINER_DEFAULTS["knn_t"])

    workdir = Path(tempfile.mkdtemp(prefix="compare-lightly-")) if args.keep_runs is None else args.keep_runs
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        data, splits = prepare_data(args, workdir)
        cfg0 = method_config("simclr", args, data)
        device = pick_device(str(cfg0["device"]))
        meta = {"contrastkit": contrastkit.__version__, "lightly": lightly.__version__, "torch": torch.__version__,
                "python": platform.python_version(), "device": str(device), "threads": torch.get_num_threads(),
                "data": data, "n_train": len(splits.train), "n_test": len(splits.test),
                "encoder": resolve_encoder_name(str(cfg0["encoder"]), splits.info),
                "batch_size": int(cfg0["batch_size"]), "precision": str(autocast_dtype(str(cfg0["precision"]), device)
                                                                       or "float32").replace("torch.", ""),
                "channels_last": bool(cfg0["channels_last"]), "knn_t": knn_t, "num_workers": args.num_workers,
                "budgets_min": sorted(args.budgets), "separate_runs": args.separate_runs,
                "budget_mode": "separate runs per budget" if args.separate_runs else
                               f"snapshots inside one {max(args.budgets):g}-min run per framework "
                               "(weights copied at each budget, evaluated after training: evaluation off the clock)",
                "other_methods": args.other_methods, "other_minutes": args.other_minutes,
                "lightly_transforms": {m: transform_description(m) for m in ("simclr", *args.other_methods)},
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
        print(f"contrastkit {meta['contrastkit']} vs lightly {meta['lightly']} | torch {meta['torch']} | "
              f"{meta['device']}, {meta['threads']} threads | {data}: {meta['n_train']} train / {meta['n_test']} test")
        print(f"same for both: encoder {meta['encoder']}, batch {meta['batch_size']}, precision {meta['precision']}, "
              f"channels_last {meta['channels_last']}, SGD + warm-up/cosine from contrastkit's method defaults; "
              f"lightly DataLoader workers: {args.num_workers}")
        print(f"estimated wall clock: ~{estimate_minutes(args):.0f} min", flush=True)
        rows: list[dict[str, Any]] = []
        tables: list[tuple[str, list[dict[str, Any]]]] = []
        if args.simclr:
            print(f"\nSimCLR, budgets {', '.join(f'{b:g}' for b in sorted(args.budgets))} min: {meta['budget_mode']}")
            r = compare("simclr", args.budgets, args.separate_runs, args, data, splits, workdir, knn_t, "simclr")
            rows += r
            tables.append((f"SimCLR on {Path(data).stem} — {meta['budget_mode']}", r))
        for method in args.other_methods:
            print(f"\n{METHOD_TITLES[method]}, {args.other_minutes:g} min per framework")
            r = compare(method, [args.other_minutes], True, args, data, splits, workdir, knn_t, method)
            rows += r
            title = f"{METHOD_TITLES[method]} on {Path(data).stem} — one {args.other_minutes:g}-min run per framework"
            tables.append((title, r))
        phases = []
        if args.phase_steps > 0:
            print(f"\nphase timing: {args.phase_steps} SimCLR steps per framework after {args.phase_warmup} warm-up "
                  "steps ...", flush=True)
            phases = [contrastkit_phases(args, data, splits), lightly_phases(args, data, splits)]
            rows += phase_rows(phases)

        print("\n" + "=" * 100)
        print("lightly transforms: " + "; ".join(f"{m}: {d}" for m, d in meta["lightly_transforms"].items()))
        print(f"evaluation: contrastkit's kNN (weighted, cosine, t={knn_t}, train split as bank, test split as "
              f"queries) and linear probe (L-BFGS) on frozen backbone features")
        for title, r in tables:
            print_accuracy_table(title, r)
        if phases:
            print_phase_table(phases)
        total_min = (time.perf_counter() - started) / 60
        print(f"\ntotal wall clock: {total_min:.1f} min")
        meta["wall_clock_min"] = round(total_min, 2)
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
            print(f"raw rows: {args.json}")
    finally:
        if args.keep_runs is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
