"""The bundled UCR/UEA data sets: pretrained embedding vs. 1-NN Euclidean / 1-NN DTW / random init, one run.

    .venv/bin/python bench/series.py                                   # every bundled set, defaults
    .venv/bin/python bench/series.py --data GunPoint,ArrowHead --minutes 0.5 --method simclr --encoder tcn
    .venv/bin/python bench/series.py --set series_views=crop,jitter    # any other setting: --set key=value

Each data set goes through `contrastkit.api.pretrain` (the same path as `contrastkit pretrain --data NAME`),
so its own evaluation table (computed in the same run on the same test split) is what is reported. TS2Vec's
published accuracies (SVM on its representations) are quoted for comparison, from Yue et al., "TS2Vec: Towards
Universal Representation of Time Series", AAAI 2022, full UCR-128 / UEA-30 result tables of the appendix.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import contrastkit  # noqa: F401  (before torch: thread / OpenMP settings)
import yaml

# SVM accuracy of TS2Vec as published (appendix tables of the paper), transcribed by hand: check before citing.
TS2VEC = {"GunPoint": 0.980, "ArrowHead": 0.857, "ItalyPowerDemand": 0.925, "OSULeaf": 0.851,
          "BasicMotions": 0.975, "JapaneseVowels": 0.984}
DEFAULT_SETS = ("GunPoint", "ArrowHead", "ItalyPowerDemand", "BasicMotions", "JapaneseVowels", "OSULeaf")


def run_one(name: str, settings: dict, steps: int | None = None) -> dict:
    from contrastkit.api import pretrain
    from contrastkit.config import TRAINER_DEFAULTS
    from contrastkit.methods import method_defaults
    from contrastkit.data import load_data

    if steps:  # the same number of optimizer steps on every data set: epochs = steps / steps per epoch
        cfg = {**TRAINER_DEFAULTS, **method_defaults(settings["method"]), **settings}
        n = len(load_data(name, dict(cfg)).train)
        per_epoch = max(1, n // min(int(cfg["batch_size"]), n))
        settings = {**settings, "epochs": max(1, -(-steps // per_epoch))}
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = pretrain(data=name, out=str(Path(out) / name), progress=False, **settings)
        wall = time.perf_counter() - t0
        rows = {r["metric"]: r for r in result.eval_rows}
        dtw = next(v for k, v in rows.items() if k.startswith("1-NN DTW"))
        return {"data": name, "svm": rows["SVM (RBF)"]["encoder"], "svm_random": rows["SVM (RBF)"]["random init"],
                "svm_raw": rows["SVM (RBF)"]["raw input"], "linear": rows["linear probe"]["encoder"],
                "1nn_emb": rows["1-NN Euclidean"]["encoder"], "1nn_ed": rows["1-NN Euclidean"]["raw input"],
                "1nn_dtw": dtw["raw input"], "steps": result.steps, "train_s": result.train_seconds, "wall_s": wall,
                "ts2vec": TS2VEC.get(name)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=",".join(DEFAULT_SETS))
    ap.add_argument("--method", default="simclr")
    ap.add_argument("--encoder", default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--minutes", type=float, default=None, help="training budget per data set")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per data set (sets the epochs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="key=value (YAML value), repeatable")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    settings = {"method": args.method, "seed": args.seed}
    for key in ("encoder", "epochs", "minutes"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    for kv in args.set:
        k, _, v = kv.partition("=")
        settings[k] = yaml.safe_load(v)
    rows = []
    for name in [d.strip() for d in args.data.split(",") if d.strip()]:
        rows.append(run_one(name, settings, args.steps))
        r = rows[-1]
        print(f"{name}: SVM {r['svm']:.3f} (random {r['svm_random']:.3f}, raw {r['svm_raw']:.3f}) | 1-NN ED "
              f"{r['1nn_ed']:.3f} DTW {r['1nn_dtw']} | {r['steps']} steps {r['train_s']:.0f}s, wall "
              f"{r['wall_s']:.0f}s", file=sys.stderr, flush=True)
    print(f"settings: {settings}\n")
    print("| data set | SVM (encoder) | linear (encoder) | SVM (random init) | SVM (raw) | 1-NN ED (raw) | "
          "1-NN DTW (raw) | TS2Vec (published) | steps | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v: "—" if v is None else (f"{100 * v:.1f}" if isinstance(v, float) else str(v))  # noqa: E731
    for r in rows:
        print(f"| {r['data']} | {fmt(r['svm'])} | {fmt(r['linear'])} | {fmt(r['svm_random'])} | {fmt(r['svm_raw'])} | "
              f"{fmt(r['1nn_ed'])} | {fmt(r['1nn_dtw'])} | {fmt(r['ts2vec'])} | {r['steps']} | {r['wall_s']:.0f} |")
    mean = lambda k: sum(r[k] for r in rows if isinstance(r[k], float)) / len(rows)  # noqa: E731
    print(f"| **mean** | {fmt(mean('svm'))} | {fmt(mean('linear'))} | {fmt(mean('svm_random'))} | "
          f"{fmt(mean('svm_raw'))} | {fmt(mean('1nn_ed'))} | {fmt(mean('1nn_dtw'))} | | | |")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
