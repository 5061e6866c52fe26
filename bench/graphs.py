"""Graph clustering bench: SCGC (and SCGC*, GRACE) against k-means on raw / smoothed features, spectral
clustering and the random-init encoder, on karate and on k-NN graphs; plus time and peak memory against n.

    .venv/bin/python bench/graphs.py table --sets karate,digits          # the evaluation table per data set
    .venv/bin/python bench/graphs.py table --sets fmnist10k --epochs 50  # Fashion-MNIST (10k test images)
    .venv/bin/python bench/graphs.py table --sets segments --methods scgc,scgc-star,grace
    .venv/bin/python bench/graphs.py scale --nodes 10000,100000 --epochs 3

`table` trains through the product (`contrastkit.api.pretrain`, what `contrastkit pretrain` runs) with the
method's pinned defaults, on k-NN graphs with K = 10 (cosine) built over: digits (1,797 images), Fashion-MNIST's
10k test images (written to a temporary .npz), river's ImageSegments table (2,310 × 18, 7 classes; standardised
with the 80 % training rows' statistics, then all rows are nodes). `scale` generates a planted-partition graph
(10 communities, average degree 20 → 10 edges per node, 80 % inside the community; 64-d features = community
mean + noise of 3× its scale) with n nodes and n·10 undirected edges, and trains SCGC a few epochs in a child
process that reports the wall-clock time of loading (graph build + smoothing) and training, and its peak RSS.

Results (2 CPU cores shared with three other engineers' jobs, so times are pessimistic; pinned defaults;
seed 0; ACC / NMI / ARI in %) are in docs/graphs.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import contrastkit  # noqa: F401  (before torch: OpenMP wait policy)

warnings.filterwarnings("ignore")


def data_spec(name: str, tmp: Path) -> dict:
    if name == "karate":
        return {"data": "karate"}
    if name == "digits":
        return {"data": "digits", "graph": "knn:10"}
    if name == "fmnist10k":
        from contrastkit.data import load_data

        s = load_data("fashion-mnist", {})
        path = tmp / "fmnist10k.npz"
        np.savez(path, x=s.test.x[:, 0].numpy(), y=s.test.y.numpy())
        return {"data": str(path), "graph": "knn:10", "data_kind": "image"}
    if name == "segments":
        import zipfile

        import river.datasets as rd

        with zipfile.ZipFile(rd.ImageSegments().path) as z:
            member = z.namelist()[0]  # one CSV (named segment.csv.zip inside the zip)
            (tmp / "segments.csv").write_bytes(z.read(member))
        return {"data": str(tmp / "segments.csv"), "graph": "knn:10", "label_column": "category",
                "drop_constant": True}
    raise SystemExit(f"unknown set {name!r}")


def table(args) -> None:
    from contrastkit.api import pretrain

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in args.sets.split(","):
            spec = data_spec(name, tmp)
            for method in args.methods.split(","):
                over = {"epochs": args.epochs} if args.epochs else {}
                t0 = time.perf_counter()
                r = pretrain(method=method, seed=args.seed, out=str(tmp / f"{name}-{method}"), progress=False,
                             **spec, **over)
                secs = time.perf_counter() - t0
                print(f"\n{name} ({r.splits.info.extra['num_nodes']} nodes, {r.splits.info.extra['num_edges']} edges)"
                      f"  method {method}: {r.steps} steps, train {r.train_seconds:.0f} s, total {secs:.0f} s")
                cols = list(r.eval_rows[0])[1:]
                print(f"  {'metric':36s}" + "".join(f"{c:>18s}" for c in cols))
                for row in r.eval_rows:
                    cells = "".join(f"{100 * row[c]:17.2f}%" if c in row else f"{'—':>18s}" for c in cols)
                    print(f"  {row['metric']:36s}{cells}")


def planted_graph(n: int, communities: int = 10, per_node: int = 10, p_in: float = 0.8, dim: int = 64,
                  seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, communities, size=n)
    members = [np.flatnonzero(y == c) for c in range(communities)]
    src = np.repeat(np.arange(n), per_node)
    inside = rng.random(n * per_node) < p_in
    dst = rng.integers(0, n, size=n * per_node)
    for c in range(communities):
        sel = inside & (y[src] == c)
        dst[sel] = members[c][rng.integers(0, len(members[c]), size=int(sel.sum()))]
    centres = rng.normal(size=(communities, dim))
    x = (centres[y] + 3.0 * rng.normal(size=(n, dim))).astype(np.float32)
    return x, np.stack([src, dst], 1), y


def scale_one(args) -> None:
    """Child process: build, load and train on one generated graph; print one JSON line."""
    import torch

    from contrastkit.api import pretrain

    torch.set_num_threads(args.threads)
    n = args.one
    with tempfile.TemporaryDirectory() as d:
        x, edges, y = planted_graph(n)
        path = Path(d) / "g.npz"
        np.savez(path, x=x, edges=edges, y=y)
        del x, edges
        t0 = time.perf_counter()
        r = pretrain(method=args.methods.split(",")[0], data=str(path), graph="edges", epochs=args.epochs,
                     out=str(Path(d) / "run"), progress=False, evaluate=False, seed=args.seed)
        total = time.perf_counter() - t0
        info = r.splits.info.extra
        out = {"nodes": n, "edges": info["num_edges"], "steps": r.steps, "train_s": r.train_seconds,
               "load_and_train_s": total, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "mode": getattr(r.method, "mode", "")}
        if args.eval:
            from contrastkit.evaluate.cluster import cluster_scores
            from contrastkit.evaluate.embed import embed

            emb = embed(r.method.encoder, r.splits.train.x)
            out["encoder"] = cluster_scores(emb, r.splits.train.y, 10, n_init=1)
            out["raw kmeans"] = cluster_scores(r.splits.train.raw_x, r.splits.train.y, 10, normalize_emb=False,
                                               n_init=1)
        print(json.dumps(out))


def scale(args) -> None:
    print(f"{'nodes':>8s} {'edges':>9s} {'mode':>6s} {'steps':>6s} {'train s':>8s} {'load+train s':>13s} "
          f"{'peak RSS MiB':>13s}")
    for n in [int(v) for v in args.nodes.split(",")]:
        cmd = [sys.executable, __file__, "scale", "--one", str(n), "--epochs", str(args.epochs), "--threads",
               str(args.threads), "--methods", args.methods, "--seed", str(args.seed)] + (["--eval"] if args.eval else [])
        res = subprocess.run(cmd, capture_output=True, text=True, check=False,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if res.returncode or not line:
            print(f"{n:8d} failed: {res.stderr[-2000:]}")
            continue
        o = json.loads(line[-1])
        print(f"{o['nodes']:8d} {o['edges']:9d} {o['mode']:>6s} {o['steps']:6d} {o['train_s']:8.1f} "
              f"{o['load_and_train_s']:13.1f} {o['peak_rss_mib']:13.0f}")
        if "encoder" in o:
            print(f"         encoder ACC/NMI {o['encoder']['acc']:.4f}/{o['encoder']['nmi']:.4f}   raw k-means "
                  f"{o['raw kmeans']['acc']:.4f}/{o['raw kmeans']['nmi']:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["table", "scale"])
    p.add_argument("--sets", default="karate,digits")
    p.add_argument("--methods", default="scgc")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nodes", default="10000,30000,100000")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--eval", action="store_true", help="scale: also k-means the embeddings and the raw features")
    args = p.parse_args()
    if args.what == "table":
        table(args)
    elif args.one is not None:
        scale_one(args)
    else:
        if args.epochs is None:
            args.epochs = 3
        scale(args)


if __name__ == "__main__":
    main()
