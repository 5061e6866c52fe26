"""Every registered method, same encoder, batch size and wall-clock budget, same evaluation: one table.

    python bench/methods.py                          # 1 minute of training per method on Fashion-MNIST
    python bench/methods.py --minutes 5 --methods moco byol sogclr isogclr

Each method runs in its own subprocess (`--worker`), so peak memory (`resource.getrusage` max RSS) is that
method's alone and one method's state cannot leak into the next. Training uses each method's pinned
defaults (lr, optimiser, temperature, heads); only the encoder, batch size, seed, precision and budget are
fixed here. Evaluation is the library's protocol (the functions `contrastkit.api.pretrain(evaluate=True)`
uses: weighted kNN k = 200 and 20, t = 0.1, and the linear probe, on frozen features of the full train/test
splits), applied to the trained encoder only; the two baselines (random-init encoder, raw pixels) do not
depend on the method and are computed once, in their own subprocess (pretrain would recompute them for
every method: ~4 minutes each on 2 cores). `--full-eval` uses pretrain's own table instead.
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


def _evaluate(encoder, splits, device, knn_t: float) -> dict:
    """The library's protocol (evaluate/protocol.py) for one feature extractor: kNN k=200/20, linear probe."""
    from contrastkit.evaluate.embed import embed
    from contrastkit.evaluate.knn import knn_accuracies
    from contrastkit.evaluate.linear import linear_probe
    from contrastkit.evaluate.protocol import raw_features
    from contrastkit.views import create_preprocess

    preprocess = create_preprocess(splits.info).to(device)
    if encoder is None:  # raw pixels
        tr = raw_features(splits.train.x.to(device), preprocess)
        te = raw_features(splits.test.x.to(device), preprocess)
    else:
        encoder = encoder.to(device)
        tr = embed(encoder, splits.train.x, preprocess, device=device)
        te = embed(encoder, splits.test.x, preprocess, device=device)
    ytr, yte = splits.train.y.cpu(), splits.test.y.cpu()
    acc = knn_accuracies(tr, ytr, te, yte, ks=(200, 20), t=knn_t)
    return {f"kNN k=200 t={knn_t}": acc[200], f"kNN k=20 t={knn_t}": acc[20],
            "linear probe": linear_probe(tr, ytr, te, yte)}


def worker(args: argparse.Namespace) -> None:
    import torch

    from contrastkit.api import pretrain

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    settings = dict(data=args.data, encoder=args.encoder, batch_size=args.batch_size, seed=args.seed,
                    precision=args.precision, monitor_every=0, log_every=10)
    if args.warmup_epochs is not None:
        settings["warmup_epochs"] = args.warmup_epochs
    if args.worker == "@baselines":
        from contrastkit.config import resolve_config
        from contrastkit.data import load_data
        from contrastkit.encoders import create_encoder

        cfg = resolve_config({**settings, "method": "simclr"})
        splits = load_data(args.data, cfg)
        torch.manual_seed(args.seed)
        rand = create_encoder(args.encoder, splits.info)
        rows = {"random init": _evaluate(rand, splits, torch.device("cpu"), float(cfg["knn_t"])),
                "raw input": _evaluate(None, splits, torch.device("cpu"), float(cfg["knn_t"]))}
        print(RESULT_TAG + json.dumps({"method": "@baselines", "rows": rows}), flush=True)
        return
    result = pretrain(method=args.worker, minutes=args.minutes, out=args.out, evaluate=args.full_eval,
                      progress=False, **settings)
    train_done = time.perf_counter()
    if args.full_eval:  # pretrain's own table (it recomputes both baselines: ~4 more minutes on 2 cores)
        rows = {r["metric"]: r["encoder"] for r in result.eval_rows}
    else:
        knn_t = float(result.method.cfg["knn_t"])
        rows = _evaluate(result.method.encoder, result.splits, result.device, knn_t)
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
        "eval_s": time.perf_counter() - train_done,
        "total_s": time.perf_counter() - t0,
        "img_per_s": statistics.median(ips) if ips else float("nan"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "rows": {"encoder": rows},
    }
    method = result.method
    if hasattr(method, "temperatures"):
        try:
            tau = method.temperatures().float()
            out["tau"] = {"mean": float(tau.mean()), "min": float(tau.min()), "max": float(tau.max()),
                          "std": float(tau.std())}
        except Exception:  # noqa: BLE001 - reporting only
            pass
    print(RESULT_TAG + json.dumps(out), flush=True)


def _metric(rows: dict, prefix: str, column: str = "encoder") -> float:
    for name, value in rows.get(column, {}).items():
        if name.startswith(prefix):
            return float(value)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget per method (wall clock)")
    parser.add_argument("--methods", nargs="*", default=None,
                        help="default: every registered method that needs no labels")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--encoder", default="convnet")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = torch's default)")
    parser.add_argument("--warmup-epochs", type=float, default=None,
                        help="lr warm-up for every method (default: the trainer's, 1 epoch — longer than a "
                             "1-minute CPU run, so the lr never reaches its peak)")
    parser.add_argument("--out", default=None, help="keep the run folders here (default: a temp dir)")
    parser.add_argument("--full-eval", action="store_true",
                        help="use pretrain's own evaluation (recomputes the baselines for every method)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the random-init / raw-pixel rows")
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
          f"data {args.data}, warm-up {args.warmup_epochs or 'trainer default'}, threads {args.threads or 'default'}; "
          f"runs in {base}", flush=True)
    jobs = names + ([] if args.no_baselines else ["@baselines"])
    baselines = None
    for name in jobs:
        out = base / name
        cmd = [sys.executable, __file__, "--worker", name, "--out", str(out), "--minutes", str(args.minutes),
               "--data", args.data, "--encoder", args.encoder, "--batch-size", str(args.batch_size),
               "--seed", str(args.seed), "--precision", args.precision, "--threads", str(args.threads)]
        if args.full_eval:
            cmd.append("--full-eval")
        if args.warmup_epochs is not None:
            cmd += ["--warmup-epochs", str(args.warmup_epochs)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)), None)
        if proc.returncode != 0 or line is None:
            failures[name] = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            print(f"  {name:10s} FAILED: {failures[name][0]}", flush=True)
            continue
        res = json.loads(line[len(RESULT_TAG):])
        if name == "@baselines":
            baselines = res["rows"]
        else:
            results.append(res)
        print(f"  {name:10s} done in {time.perf_counter() - t0:.0f} s", flush=True)

    header = f"| {'method':10s} | steps | img/s | kNN k=200 | kNN k=20 | linear | peak RSS MB | note |"
    print()
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in results:
        rows = r["rows"]
        note = ""
        if "tau" in r and r["tau"]["max"] > r["tau"]["min"]:
            note = f"τ mean {r['tau']['mean']:.3f} [{r['tau']['min']:.3f}, {r['tau']['max']:.3f}]"
        print(f"| {r['method']:10s} | {r['steps']:5d} | {r['img_per_s']:5.0f} | "
              f"{100 * _metric(rows, 'kNN k=200'):9.1f} | {100 * _metric(rows, 'kNN k=20 '):8.1f} | "
              f"{100 * _metric(rows, 'linear'):6.1f} | {r['peak_rss_mb']:11.0f} | {note} |")
    if baselines:
        for column in ("random init", "raw input"):
            print(f"| {column:10s} |     - |     - | {100 * _metric(baselines, 'kNN k=200', column):9.1f} | "
                  f"{100 * _metric(baselines, 'kNN k=20 ', column):8.1f} | "
                  f"{100 * _metric(baselines, 'linear', column):6.1f} |           - | baseline |")
    for name, msg in failures.items():
        print(f"FAILED {name}: {msg[0]}")


if __name__ == "__main__":
    main()
