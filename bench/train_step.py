"""End-to-end SimCLR training throughput (images/s) and where a step's time goes.

Runs the default recipe (encoder, batch size, precision) on Fashion-MNIST-shaped data and times, per step:
views (both), forward (encoder + head), loss, backward, optimizer step. Phases are timed back to back in the
same loop, so their shares are comparable; absolute numbers drift on a shared machine.

    .venv/bin/python bench/train_step.py [--steps 30] [--batch-size 256] [--encoder convnet] [--precision auto]
"""

from __future__ import annotations

import argparse
import time

import contrastkit  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)
import torch

from contrastkit.config import resolve_config
from contrastkit.data import load_data
from contrastkit.methods import create_method
from contrastkit.train.optim import build_optimizer
from contrastkit.engine.precision import autocast_dtype


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--encoder", default=None)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--data", default="fashion-mnist")
    args = ap.parse_args()
    overrides = {"data": args.data, "precision": args.precision, "batch_size": args.batch_size,
                 "encoder": args.encoder}
    cfg = resolve_config({k: v for k, v in overrides.items() if v is not None})
    splits = load_data(cfg["data"], cfg)
    torch.manual_seed(0)
    method = create_method(cfg, splits.info, splits.train)
    method = method.to(memory_format=torch.channels_last) if cfg["channels_last"] else method
    optimizer = build_optimizer(method.parameter_groups(), cfg)
    amp = autocast_dtype(cfg["precision"], torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    bs = int(cfg["batch_size"])
    phases = {"views": 0.0, "forward": 0.0, "loss": 0.0, "backward": 0.0, "optimizer": 0.0}
    for step in range(args.warmup + args.steps):
        idx = torch.randint(len(splits.train), (bs,), generator=gen)
        x = splits.train.x[idx].contiguous(memory_format=torch.channels_last)
        t = [time.perf_counter()]
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            v = torch.cat([method.view1(x, gen), method.view2(x, gen)])
            t.append(time.perf_counter())
            z1, z2 = method.head(method.encoder(v)).float().chunk(2)
            t.append(time.perf_counter())
            loss = method.loss(z1, z2)
            t.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.append(time.perf_counter())
        optimizer.step()
        t.append(time.perf_counter())
        if step >= args.warmup:
            for name, a, b in zip(phases, t, t[1:]):
                phases[name] += b - a
    total = sum(phases.values())
    print(f"encoder={cfg['encoder']} batch={bs} precision={cfg['precision']} (autocast {amp}) "
          f"threads={torch.get_num_threads()}")
    print(f"end-to-end: {bs * args.steps / total:,.0f} images/s ({2 * bs * args.steps / total:,.0f} views/s), "
          f"{1000 * total / args.steps:.1f} ms/step")
    for name, seconds in phases.items():
        print(f"  {name:<10} {1000 * seconds / args.steps:8.1f} ms/step  {100 * seconds / total:5.1f} %")


if __name__ == "__main__":
    main()
