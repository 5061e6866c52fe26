"""Every registered method, same encoder, batch size and wall-clock budget, same evaluation: one table.

    python bench/methods.py                          # 1 minute of training per method on Fashion-MNIST
    python bench/methods.py --minutes 5 --methods moco byol sogclr isogclr

Each method runs in its own subprocess (`--worker`), so peak memory (`resource.getrusage` max RSS) is that
method's alone and one method's state cannot leak into the next. Training uses each method's pinned
defaults (lr, optimiser, temperature, heads); only the encoder, batch size, seed, precision and budget are
fixed here. Evaluation is the library's protocol (`contrastkit.api.pretrain(evaluate=True)`): weighted kNN
(k = 200 and 20, t = 0.1) and a linear probe on frozen features of the full train/test splits.
img/s is the median of the trainer's `img_per_s` column in metrics.csv (an EMA over steps; the first
logged rows include warm-up and are skipped when there are enough rows).

Methods run one after another (never in parallel): on a shared 2-core machine parallel runs would measure
the scheduler, not the methods. The numbers are short-budget numbers: they rank how fast each method
learns in a small budget, not where it ends up after hundreds of epochs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULT_TAG = "BENCH_RESULT "


def worker(args: argparse.Namespace) -> None:
    import torch

    from contrastkit.api import pretrain

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    result = pretrain(method=args.worker, data=args.data, encoder=args.encoder, batch_size=args.batch_size,
                      minutes=args.minutes, seed=args.seed, precision=args.precision, out=args.out,
                      monitor_every=0, log_every=10, progress=False)
    total = time.perf_counter() - t0
    rows = {r["metric"]: r for r in result.eval_rows}
    ips = []
    with open(Path(args.out) / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row.get("img_per_s"):
                ips.append(float(row["img_per_s"]))
    ips = ips[2:] if len(ips) > 4 else ips
    out = {
        "method": args.worker,
        "steps": result.steps,
        "train_s": result.train_seconds,
        "total_s": total,
        "img_per_s": statistics.median(ips) if ips else float("nan"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "rows": rows,
    }
    method = result.method
    if hasattr(method, "temperatures"):
        try:
            tau = method.temperatures().float()
            out["tau"] = {"mean": float(tau.mean()), "min": float(tau.min()), "max": float(tau.max())}
        except Exception:  # noqa: BLE001 - reporting only
            pass
    print(RESULT_TAG + json.dumps(out), flush=True)


def _metric(rows: dict, prefix: str, column: str = "encoder") -> float:
    for name, row in rows.items():
        if name.startswith(prefix):
            return float(row[column])
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget per method (wall clock)")
    parser.add_argument("--methods", nargs="*", default=None, help="default: every registered unsupervised method")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--encoder", default="convnet")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = torch's default)")
    parser.add_argument("--out", default=None, help="keep the run folders here (default: a temp dir)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from contrastkit.methods import METHODS

    names = args.methods or [n for n in METHODS.names() if not METHODS.get(n).needs_labels]
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-methods-"))
    results, failures = [], {}
    print(f"{len(names)} methods, {args.minutes} min each, batch {args.batch_size}, encoder {args.encoder}, "
          f"data {args.data}; runs in {base}", flush=True)
    for name in names:
        out = base / name
        cmd = [sys.executable, __file__, "--worker", name, "--out", str(out), "--minutes", str(args.minutes),
               "--data", args.data, "--encoder", args.encoder, "--batch-size", str(args.batch_size),
               "--seed", str(args.seed), "--precision", args.precision, "--threads", str(args.threads)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)), None)
        if proc.returncode != 0 or line is None:
            failures[name] = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            print(f"  {name:10s} FAILED: {failures[name][0]}", flush=True)
            continue
        res = json.loads(line[len(RESULT_TAG):])
        results.append(res)
        print(f"  {name:10s} done in {time.perf_counter() - t0:.0f} s", flush=True)

    header = f"| {'method':10s} | steps | img/s | kNN k=200 | kNN k=20 | linear | peak RSS MB | note |"
    print()
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in results:
        rows = r["rows"]
        note = ""
        if "tau" in r:
            note = f"τ mean {r['tau']['mean']:.3f} [{r['tau']['min']:.3f}, {r['tau']['max']:.3f}]"
        print(f"| {r['method']:10s} | {r['steps']:5d} | {r['img_per_s']:5.0f} | "
              f"{100 * _metric(rows, 'kNN k=200'):9.1f} | {100 * _metric(rows, 'kNN k=20'):8.1f} | "
              f"{100 * _metric(rows, 'linear'):6.1f} | {r['peak_rss_mb']:11.0f} | {note} |")
    if results:
        rows = results[0]["rows"]
        for column in ("random init", "raw input"):
            print(f"| {column:10s} |     - |     - | {100 * _metric(rows, 'kNN k=200', column):9.1f} | "
                  f"{100 * _metric(rows, 'kNN k=20', column):8.1f} | {100 * _metric(rows, 'linear', column):6.1f} "
                  f"|           - | baseline |")
    for name, msg in failures.items():
        print(f"FAILED {name}: {msg[0]}")


if __name__ == "__main__":
    main()
