"""Time (and measure the memory of) the evaluation protocols on synthetic embeddings, 10 classes.

    .venv/bin/python bench/evaluate.py [--threads N] [--n-train 60000] [--n-test 10000] [--dim 128]
    .venv/bin/python bench/evaluate.py --n-train 1000000 --legacy-knn      # evaluation at scale

Prints seconds per protocol (kNN k=20 and k=200 from one shared search, the linear probe — L-BFGS up to 2**25
training values, mini-batch SGD above —, k-means clustering with ACC/NMI/ARI: mini-batch k-means above 100k
rows) and the metric values, so a regression in speed or result shows side by side. Target at 60k: all three
within 2 minutes on 2 cores.

Memory: for each protocol, the peak resident memory above what the process held before it (the embeddings,
generated in place, chunk by chunk): VmHWM after resetting it (`/proc/self/clear_refs`), which catches
short-lived peaks, and RssAnon sampled every 20 ms. `--legacy-knn` also runs the previous kNN search (a
whole-matrix isfinite check, a normalised copy and a transposed copy of the training rows) in the same process; `faiss` is timed when it is
installed (`pip install faiss-cpu`; or `PYTHONPATH` to a folder holding it).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Peak:
    """Peak memory inside a `with` block, above the resident memory at its start (MiB)."""

    def __enter__(self):
        try:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
            self.hwm_ok = True
        except OSError:
            self.hwm_ok = False
        self.rss0, self.anon0, self.anon, self.stop = status_mib("VmRSS"), status_mib("RssAnon"), 0.0, False
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.stop:
            self.anon = max(self.anon, status_mib("RssAnon"))
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()
        self.hwm = status_mib("VmHWM") - self.rss0 if self.hwm_ok else float("nan")
        self.anon_peak = self.anon - self.anon0

    def __str__(self):
        return f"peak +{self.hwm:6.0f} MiB (VmHWM), +{self.anon_peak:6.0f} MiB (RssAnon sampled)"


def make_data(n_train: int, n_test: int, dim: int, classes: int, seed: int = 0, chunk: int = 65536):
    """Overlapping gaussian clusters, written chunk by chunk into the arrays (no full-size temporaries)."""
    g = np.random.default_rng(seed)
    centers = g.normal(size=(classes, dim)).astype(np.float32) * 0.35
    out = []
    for n in (n_train, n_test):
        y = g.integers(0, classes, n)
        x = np.empty((n, dim), dtype=np.float32)
        for s in range(0, n, chunk):
            x[s : s + chunk] = centers[y[s : s + chunk]] + g.standard_normal((len(y[s : s + chunk]), dim),
                                                                            dtype=np.float32)
        out += [torch.from_numpy(x), torch.from_numpy(y)]
    return tuple(out)


@torch.no_grad()
def legacy_knn(xtr, ytr, xte, yte, ks=(20, 200), t=0.1, chunk_size=1024):
    """The kNN search as it was before (whole-matrix isfinite check, normalised copy, transposed contiguous copy),
    for the side by side."""
    from contrastkit.evaluate._common import chunk_rows, normalize

    assert bool(torch.isfinite(xtr).all()) and bool(torch.isfinite(xte).all())  # the check as it was
    tr, te = normalize(xtr), normalize(xte)
    trT = tr.t().contiguous()
    kmax, c = max(ks), int(ytr.max()) + 1
    correct = {k: 0 for k in ks}
    step = chunk_rows(tr.shape[0], chunk_size)
    for s in range(0, te.shape[0], step):
        sim = torch.mm(te[s : s + step], trT)
        top_sim, top_idx = sim.topk(kmax, dim=1)
        del sim
        w, lab = ((top_sim - top_sim[:, :1]) / t).exp(), ytr[top_idx]
        for k in ks:
            scores = torch.zeros(len(lab), c).scatter_add_(1, lab[:, :k], w[:, :k])
            correct[k] += int((scores.argmax(1) == yte[s : s + step]).sum())
    return {k: v / len(yte) for k, v in correct.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--n-train", type=int, default=60_000)
    ap.add_argument("--n-test", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--sgd", action="store_true", help="also time the SGD linear probe (auto picks it above 2**25)")
    ap.add_argument("--legacy-knn", action="store_true", help="also the previous kNN search, for the memory ratio")
    ap.add_argument("--skip", default="", help="comma-separated: knn,linear,cluster")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from contrastkit.evaluate import cluster_scores, knn_accuracies, linear_probe
    from contrastkit.evaluate.knn import _faiss
    from contrastkit.evaluate.linear import LBFGS_MAX_ELEMENTS

    xtr, ytr, xte, yte = make_data(args.n_train, args.n_test, args.dim, args.classes)
    emb_mib = (xtr.numel() + xte.numel()) * 4 / 2**20
    print(f"data: train {tuple(xtr.shape)}, test {tuple(xte.shape)} ({emb_mib:.0f} MiB fp32), {args.classes} "
          f"classes, torch threads {torch.get_num_threads()}; process RSS {status_mib('VmRSS'):.0f} MiB, "
          f"RssAnon {status_mib('RssAnon'):.0f} MiB")
    skip = set(args.skip.split(","))
    times = {}

    def knn_row(name, fn):
        with Peak() as p:
            t = time.perf_counter()
            acc = fn()
            times[name] = time.perf_counter() - t
        print(f"{name:<22} {times[name]:7.2f} s   k=20 {acc[20]:.4f}  k=200 {acc[200]:.4f}   {p}")
        return p

    if "knn" not in skip:
        new = knn_row("kNN k=20+200 (torch)", lambda: knn_accuracies(xtr, ytr, xte, yte, ks=(20, 200),
                                                                     backend="torch"))
        if args.legacy_knn:
            old = knn_row("kNN, previous search", lambda: legacy_knn(xtr, ytr, xte, yte))
            print(f"  previous / now: time {times['kNN, previous search'] / times['kNN k=20+200 (torch)']:.2f}x, "
                  f"peak memory {old.hwm / max(new.hwm, 1):.2f}x (VmHWM)")
        if _faiss() is not None:
            knn_row("kNN k=20+200 (faiss)", lambda: knn_accuracies(xtr, ytr, xte, yte, ks=(20, 200),
                                                                   backend="faiss"))
            print(f"  faiss / torch time: {times['kNN k=20+200 (faiss)'] / times['kNN k=20+200 (torch)']:.2f}x")

    if "linear" not in skip:
        solver = "L-BFGS" if xtr.numel() <= LBFGS_MAX_ELEMENTS else "SGD"
        with Peak() as p:
            t = time.perf_counter()
            lin = linear_probe(xtr, ytr, xte, yte)
            times["linear (auto)"] = time.perf_counter() - t
        print(f"linear auto ({solver:<6})  {times['linear (auto)']:7.2f} s   acc {lin:.4f}   {p}")
        if args.sgd and solver != "SGD":
            t = time.perf_counter()
            lin_sgd = linear_probe(xtr, ytr, xte, yte, method="sgd")
            print(f"linear SGD             {time.perf_counter() - t:7.2f} s   acc {lin_sgd:.4f}")

    if "cluster" not in skip:
        with Peak() as p:
            t = time.perf_counter()
            cl = cluster_scores(xtr, ytr)
            times["clustering"] = time.perf_counter() - t
        print(f"clustering             {times['clustering']:7.2f} s   acc {cl['acc']:.4f}  nmi {cl['nmi']:.4f}  "
              f"ari {cl['ari']:.4f}  (k-means on the {args.n_train} training rows)   {p}")

    main_three = [v for k, v in times.items() if k in ("kNN k=20+200 (torch)", "linear (auto)", "clustering")]
    print(f"total (kNN + linear probe + clustering): {sum(main_three):.2f} s")


if __name__ == "__main__":
    main()
