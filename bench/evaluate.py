"""Time the evaluation protocols on a synthetic 60k × 128 train / 10k × 128 test embedding, 10 classes.

    .venv/bin/python bench/evaluate.py [--threads N] [--n-train 60000] [--n-test 10000] [--dim 128]

Prints seconds per protocol (kNN k=20 and k=200 from one shared search, linear probe by L-BFGS, k-means
clustering with ACC/NMI/ARI) and the metric values, so a regression in speed or result shows side by side.
Target: all three within 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def make_data(n_train: int, n_test: int, dim: int, classes: int, seed: int = 0):
    g = np.random.default_rng(seed)
    centers = g.normal(size=(classes, dim)).astype(np.float32) * 0.35  # overlapping gaussian clusters
    ytr = g.integers(0, classes, n_train)
    yte = g.integers(0, classes, n_test)
    xtr = centers[ytr] + g.normal(size=(n_train, dim)).astype(np.float32)
    xte = centers[yte] + g.normal(size=(n_test, dim)).astype(np.float32)
    return torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--n-train", type=int, default=60_000)
    ap.add_argument("--n-test", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--sgd", action="store_true", help="also time the SGD linear probe")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from contrastkit.evaluate import cluster_scores, knn_accuracies, linear_probe

    xtr, ytr, xte, yte = make_data(args.n_train, args.n_test, args.dim, args.classes)
    print(f"data: train {tuple(xtr.shape)}, test {tuple(xte.shape)}, {args.classes} classes, "
          f"torch threads {torch.get_num_threads()}")
    times = {}

    t = time.perf_counter()
    knn = knn_accuracies(xtr, ytr, xte, yte, ks=(20, 200))
    times["kNN k=20+200"] = time.perf_counter() - t
    print(f"kNN           {times['kNN k=20+200']:7.2f} s   k=20 {knn[20]:.4f}  k=200 {knn[200]:.4f}")

    t = time.perf_counter()
    lin = linear_probe(xtr, ytr, xte, yte)
    times["linear (L-BFGS)"] = time.perf_counter() - t
    print(f"linear L-BFGS {times['linear (L-BFGS)']:7.2f} s   acc {lin:.4f}")

    if args.sgd:
        t = time.perf_counter()
        lin_sgd = linear_probe(xtr, ytr, xte, yte, method="sgd")
        times["linear (SGD)"] = time.perf_counter() - t
        print(f"linear SGD    {times['linear (SGD)']:7.2f} s   acc {lin_sgd:.4f}")

    t = time.perf_counter()
    cl = cluster_scores(xtr, ytr)
    times["clustering"] = time.perf_counter() - t
    print(f"clustering    {times['clustering']:7.2f} s   acc {cl['acc']:.4f}  nmi {cl['nmi']:.4f}  "
          f"ari {cl['ari']:.4f}  (k-means on the {args.n_train} training rows)")

    total = times["kNN k=20+200"] + times["linear (L-BFGS)"] + times["clustering"]
    print(f"total (kNN + L-BFGS probe + clustering): {total:.2f} s  (target < 120 s)")


if __name__ == "__main__":
    main()
