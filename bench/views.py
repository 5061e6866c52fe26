"""Images/s of the batched image views vs the per-sample reference pipeline, measured side by side.

    .venv/bin/python bench/views.py [--threads 1] [--batch 256] [--clock cpu|wall] [--device cpu]

The reference is `reference_view` from tests/test_views_image.py: the same recipe one image at a time with
PIL (crop, antialiased resize, flip) and NumPy (jitter in random order, grayscale, blur, solarize,
normalise), i.e. what a torchvision/lightly per-sample pipeline does inside one DataLoader worker.
Each number is the best of `--repeats` timings of this process's CPU time (`--clock wall` for wall-clock
time; CPU time is robust to other load on a shared machine, wall time is what a GPU run needs). Threads
default to 1 on both sides: the reference is single-threaded, and on a shared, busy 2-core machine torch's
OpenMP threads spin-wait against other processes (with --threads 2 set OMP_WAIT_POLICY=PASSIVE, or every
torch op, views included, slows down by an order of magnitude).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
from pathlib import Path

import torch

from contrastkit.data.base import DataInfo
from contrastkit.views.image import image_views

ROOT = Path(__file__).resolve().parents[1]


def load_reference():
    spec = importlib.util.spec_from_file_location("_views_reference", ROOT / "tests" / "test_views_image.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def best_time(fn, repeats: int, clock) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--ref-repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ref = load_reference()
    device = torch.device(args.device)
    clock = time.process_time if args.clock == "cpu" and device.type == "cpu" else time.perf_counter

    byol = {"blur_p": (1.0, 0.1), "solarize_p": (0.0, 0.2), "jitter_strength": (0.4, 0.4, 0.2, 0.1)}
    cases = [  # name, stored image shape, cfg, view (default recipes, then BYOL's always-blurred view)
        ("28x28 gray (MNIST)", (1, 28, 28), {}, 1),
        ("32x32 RGB (CIFAR)", (3, 32, 32), {}, 1),
        ("96x96 RGB (STL-10)", (3, 96, 96), {}, 1),
        ("96x96 RGB BYOL view 1", (3, 96, 96), byol, 1),
    ]
    clock_name = "process CPU time" if clock is time.process_time else "wall"
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"device {device}, clock {clock_name}")
    print(f"{'case':24s} {'batched img/s':>14s} {'per-sample img/s':>17s} {'ratio':>7s}")
    for name, shape, cfg, view in cases:
        c = shape[0]
        info = DataInfo("bench", "image", shape, mean=(0.5,) * c, std=(0.25,) * c)
        views = image_views(info, cfg, view).to(device)
        x = ref.smooth_images(args.batch, *shape, seed=0)
        xd = x.to(device)
        g = torch.Generator(device=device).manual_seed(0)

        def batched():
            views(xd, g)
            if device.type == "cuda":
                torch.cuda.synchronize()

        xs = x.numpy()
        rng = random.Random(0)

        def per_sample():
            for i in range(len(xs)):
                ref.reference_view(xs[i], views.config, info.mean, info.std, rng)

        t_b = best_time(batched, args.repeats, clock)
        t_r = best_time(per_sample, args.ref_repeats, clock)
        print(f"{name:24s} {args.batch / t_b:14.0f} {args.batch / t_r:17.0f} {t_r / t_b:6.1f}x")


if __name__ == "__main__":
    main()
