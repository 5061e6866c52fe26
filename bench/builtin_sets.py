"""Every built-in data set with the default method and recipe: the trained encoder next to its random-init copy.

    .venv/bin/python bench/builtin_sets.py --minutes 1             # all built-in sets, 1 minute of training each
    .venv/bin/python bench/builtin_sets.py --sets digits GunPoint --epochs 50

For each set it prints every evaluation row that has an "encoder" and a "random init" column, and flags a
linear-probe row where the trained encoder scores below the random-init encoder (a recipe that makes the
representation worse than no training at all). The default method of each data kind is used (simclr for images
and tables, ts2vec for series, ...): whatever `contrastkit pretrain --data NAME` would train.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from contrastkit.api import pretrain  # noqa: E402
from contrastkit.data import SOURCES  # noqa: E402

# the method a user would pick for each built-in set (simclr does not train on graphs or pairs)
METHOD_FOR = {"karate": "scgc", "mfeat": "clip", "shuttle": "clan"}


def fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=None, help="default: every built-in set")
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=None, help="train for epochs instead of --minutes")
    ap.add_argument("--defaults", action="store_true", help="the method's own budget (no --minutes/--epochs)")
    ap.add_argument("--method", default=None, help="one method for every set (default: the set's own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    names = args.sets or SOURCES.names()
    worse, results = [], []
    for name in names:
        budget = {} if args.defaults else {"epochs": args.epochs} if args.epochs else {"minutes": args.minutes}
        settings = {"data": name, "seed": args.seed, "monitor_every": 0, **budget}
        if args.method or name in METHOD_FOR:
            settings["method"] = args.method or METHOD_FOR[name]
        with tempfile.TemporaryDirectory() as tmp:
            try:
                result = pretrain(progress=False, out=str(Path(tmp) / "run"), **settings)
            except Exception as e:  # one set failing must not hide the others
                print(f"{name}: FAILED {type(e).__name__}: {e}", flush=True)
                results.append({"data": name, "error": str(e)})
                continue
        for row in result.eval_rows:
            if "encoder" not in row or "random init" not in row:
                continue
            label = row.get("metric") or row.get("protocol") or row.get("model") or "?"
            enc, rnd = row["encoder"], row["random init"]
            flag = ""
            if "linear" in str(label).lower() and isinstance(enc, float) and isinstance(rnd, float) and enc < rnd:
                flag = "  <-- linear probe below random init"
                worse.append((name, label))
            raw = row.get("raw input")
            print(f"{name:18s} {str(label):28s} encoder {fmt(enc)}  random init {fmt(rnd)}"
                  + (f"  raw {fmt(raw)}" if raw is not None else "") + flag, flush=True)
            results.append({"data": name, "row": label, "encoder": enc, "random_init": rnd, "raw": raw})
    print(f"\nlinear probe below random init: {worse or 'none'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
