"""Encoder training throughput: forward + backward images/s, measured side by side in one run.

    .venv/bin/python bench/encoders.py                 # default convnet, 3 precisions; resnet18 (cifar stem)
    .venv/bin/python bench/encoders.py --sweep         # + candidate convnet sizes (how the default was picked)
    .venv/bin/python bench/encoders.py --resnet-bf16   # also resnet18 under bf16 autocast (slow on AVX2)

Modes: (a) fp32, (b) channels_last (model and input), (c) channels_last + bf16 autocast. Every round
runs every (model, mode) once, in turn, so load from other processes hits all of them alike; the table
reports the median over rounds (and the best), with each mode's ratio to fp32 of the same model.
A step is: zero grads, forward, a scalar loss (fp32), backward — what a pretraining step spends on the
encoder for one view. Parameters are not updated (the optimiser's cost does not depend on the mode).

On a shared, oversubscribed machine wall-clock rates with 2 OpenMP threads collapse (threads spin at
barriers while their partner is descheduled: 4× slower than 1 thread at load 7 on 2 cores). Then run
`--threads 1`: the table adds images per CPU-second, which is what one idle core would do and hardly
depends on the load; two idle cores do ~1.8× that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from contrastkit.data.base import DataInfo  # noqa: E402
from contrastkit.encoders import create_encoder  # noqa: E402

MODES = ("fp32", "channels_last", "channels_last+bf16")


@dataclass
class Case:
    label: str
    encoder: str
    shape: tuple[int, int, int]
    batch: int
    kwargs: dict
    modes: tuple[str, ...] = MODES
    rates: dict = field(default_factory=dict)  # mode -> list of img/s (wall), one per round
    cpu_rates: dict = field(default_factory=dict)  # mode -> list of img per CPU-second


def make_step(case: Case, mode: str):
    torch.manual_seed(0)
    enc = create_encoder(case.encoder, DataInfo("bench", "image", case.shape), **case.kwargs).train()
    x = torch.randn(case.batch, *case.shape)
    if mode != "fp32":
        enc = enc.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    bf16 = mode.endswith("bf16")

    def step() -> None:
        enc.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            h = enc(x)
        h.float().pow(2).mean().backward()

    return step


def measure(step, batch: int, iters: int, min_seconds: float) -> tuple[float, float]:
    """(images per wall-second, images per CPU-second of this process)."""
    step()  # warm-up: oneDNN primitive creation, allocator
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while n < iters or time.perf_counter() - start < min_seconds:
        step()
        n += 1
    return n * batch / (time.perf_counter() - start), n * batch / (time.process_time() - cpu)


def table(cases: list[Case], attr: str, title: str) -> None:
    print(f"\n{title}; ratio to fp32 of the same model")
    print(f"{'model':34s} {'batch':>5s} " + " ".join(f"{m:>26s}" for m in MODES))
    for c in cases:
        rates = getattr(c, attr)
        base = statistics.median(rates["fp32"])
        cells = []
        for m in MODES:
            if m not in rates:
                cells.append("-")
                continue
            med = statistics.median(rates[m])
            cells.append(f"{med:9.0f} ({max(rates[m]):6.0f}) x{med / base:4.2f}")
        print(f"{c.label:34s} {c.batch:5d} " + " ".join(f"{s:>26s}" for s in cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=3, help="timed steps per measurement (at least)")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="time per measurement (at least)")
    ap.add_argument("--batch", type=int, default=256, help="convnet batch")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--sweep", action="store_true", help="also candidate convnet sizes (fp32, channels_last)")
    ap.add_argument("--resnet-bf16", action="store_true", help="also resnet18 under bf16 autocast")
    ap.add_argument("--no-resnet", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    fast_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16 (oneDNN): {fast_bf16}")

    cases = [Case("convnet (default: width=24)", "convnet", (1, 28, 28), args.batch, {})]
    if args.sweep:
        two = ("fp32", "channels_last")
        cases += [
            Case("convnet width=16 (out 64)", "convnet", (1, 28, 28), args.batch, {"width": 16}, two),
            Case("convnet width=32 (out 128)", "convnet", (1, 28, 28), args.batch, {"width": 32}, two),
            Case("convnet width=32 depth=(0,1,1)", "convnet", (1, 28, 28), args.batch,
                 {"width": 32, "depth": (0, 1, 1)}, two),
            Case("convnet width=48 (out 192)", "convnet", (1, 28, 28), args.batch, {"width": 48}, two),
            Case("convnet width=64 (out 256)", "convnet", (1, 28, 28), args.batch, {"width": 64}, two),
            Case("convnet width=32 depth=2", "convnet", (1, 28, 28), args.batch,
                 {"width": 32, "depth": 2}, two),
            Case("convnet width=32, 4 stages (out 256)", "convnet", (1, 28, 28), args.batch,
                 {"width": 32, "num_stages": 4}, two),
            Case("convnet width=32 stem_stride=1", "convnet", (1, 28, 28), args.batch,
                 {"width": 32, "stem_stride": 1}, two),
            Case("convnet stem_stride=1 width=16", "convnet", (1, 28, 28), args.batch,
                 {"stem_stride": 1, "width": 16}, two),
        ]
    if not args.no_resnet:
        modes = MODES if (args.resnet_bf16 or fast_bf16) else MODES[:2]
        cases.append(Case("resnet18 cifar stem, 3x32x32", "resnet18", (3, 32, 32), 64, {"stem": "cifar"},
                          modes))

    steps = {(c.label, m): make_step(c, m) for c in cases for m in c.modes}
    for r in range(args.rounds):
        for c in cases:
            for m in c.modes:
                rate, cpu_rate = measure(steps[(c.label, m)], c.batch, args.iters, args.min_seconds)
                c.rates.setdefault(m, []).append(rate)
                c.cpu_rates.setdefault(m, []).append(cpu_rate)
                print(f"  round {r + 1}: {c.label:34s} {m:20s} {rate:8.0f} img/s  {cpu_rate:8.0f} img/CPU-s",
                      flush=True)

    table(cases, "rates", f"forward+backward images/s (wall), median over {args.rounds} rounds (best)")
    if torch.get_num_threads() == 1:
        table(cases, "cpu_rates", "forward+backward images per CPU-second (= one idle core), median (best)")
    if not fast_bf16:
        print("\nthis CPU has no native bf16 (AVX512-BF16/AMX): bf16 convolutions are emulated; "
              "use fp32 here")


if __name__ == "__main__":
    main()
