"""Weighted k-nearest-neighbour classification of embeddings (InstDisc protocol, METHODS.md §18).

Features are L2-normalised, similarity is cosine, the k most similar training rows vote for their class with
weight exp(sim / t) (weighted=True) or weight 1 (weighted=False, majority vote); the predicted class is the
one with the largest summed weight (ties → the smallest class index). This is lightly's `knn_predict` and
solo-learn's `WeightedKNNClassifier`; defaults k=200, t=0.1 are lightly's ResNet values (use t=0.07 for ViT,
k=20 for solo-learn / Imagenette comparisons).

The search is chunked over test rows (torch.mm + topk, each similarity block within 256 MiB), and
`knn_accuracies` answers several k from one top-max(k) search. The training embeddings are never copied: their
inverse norms scale each block's columns instead of a normalised copy (and the block is multiplied against
the transposed view, not a transposed copy), and the finiteness check runs block by block, so the memory is
the input plus one block: 1,000,000 × 128 training rows (488 MiB) are searched with +297 MiB (before: +1233 MiB;
bench/evaluate.py). The price is time: multiplying against the transposed view (+14 %) and scaling the block
(+10 %) made the search 1.13–1.18× slower than with the two copies (3 alternating runs, 1M × 128, 2 cores); a
variant scanning normalised blocks of 65,536 training rows with a running top-k kept the memory but was 1.34×
slower. `backend="faiss"` runs the same exact inner-product search in faiss (`IndexFlatIP`, one normalised copy
of the training rows; `pip install faiss-cpu`, never required); "auto" (the default) is torch: on 2 CPU cores
faiss took 1.40× torch's time for k=200 over 1,000,000 rows.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import numpy as np
import torch

from ..errors import ContrastkitError
from ._common import (as_embedding, as_label_pair, as_labels, check_same_dim, chunk_rows, normalize,
                      pick_device, progress_task)

__all__ = ["knn_accuracy", "knn_accuracies", "knn_predict"]

def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _backend(backend: str, n_train: int, dev: torch.device) -> str:
    if backend not in ("auto", "torch", "faiss"):
        raise ContrastkitError(f"backend={backend!r}: use 'auto', 'torch' or 'faiss'")
    if backend == "faiss":
        if _faiss() is None:
            raise ContrastkitError("backend='faiss' needs faiss: pip install faiss-cpu (or use backend='torch')")
        if dev.type != "cpu":
            raise ContrastkitError(f"backend='faiss' searches on the CPU; the embeddings are on {dev}: "
                                   f"use backend='torch' there")
        return "faiss"
    return "torch"  # auto: measured faster than faiss's flat search on the CPU (module docstring)


def _inverse_norms(x: torch.Tensor, step: int = 65536) -> torch.Tensor:
    """1 / ||row|| (rows of zeros: 0, as `normalize` leaves them), computed a chunk at a time."""
    out = torch.empty(x.shape[0], device=x.device, dtype=torch.float32)
    for s in range(0, x.shape[0], step):
        out[s : s + step] = x[s : s + step].norm(dim=1).clamp_min(1e-12).reciprocal()
    return out


def _top_torch(tr, inv_tr, te, kmax, step, task):
    """(top similarities, indices), a chunk of query rows at a time."""
    for s in range(0, te.shape[0], step):
        sim = torch.mm(te[s : s + step], tr.t())  # (b, n_train): BLAS reads tr transposed, no copy
        sim.mul_(inv_tr)  # cosine: the columns scaled by the training rows' inverse norms
        top_sim, top_idx = sim.topk(kmax, dim=1, largest=True, sorted=True)
        del sim
        task.advance(top_sim.shape[0])
        yield s, top_sim, top_idx


def _top_faiss(tr, inv_tr, te, kmax, step, task):
    faiss = _faiss()
    index = faiss.IndexFlatIP(tr.shape[1])
    for s in range(0, tr.shape[0], 65536):  # the index holds one normalised copy; added a chunk at a time
        index.add(np.ascontiguousarray((tr[s : s + 65536] * inv_tr[s : s + 65536, None]).numpy()))
    step = max(step, 1024)
    for s in range(0, te.shape[0], step):
        sims, idx = index.search(np.ascontiguousarray(te[s : s + step].numpy()), kmax)
        task.advance(len(idx))
        yield s, torch.from_numpy(sims), torch.from_numpy(idx)


def _check_args(ks: list[int], t: float, n_train: int) -> None:
    if not ks:
        raise ContrastkitError("ks: give at least one k")
    for k in ks:
        if int(k) != k or k < 1:
            raise ContrastkitError(f"k={k}: must be a positive integer")
    if max(ks) > n_train:
        raise ContrastkitError(f"k={max(ks)} is larger than the number of training embeddings ({n_train}); "
                               f"use a smaller k")
    if not t > 0:
        raise ContrastkitError(f"t={t}: the kNN temperature must be > 0 (lightly uses 0.1, ViT 0.07)")


@torch.no_grad()
def knn_predict(
    train_emb: Any,
    train_y: Any,
    test_emb: Any,
    ks: Iterable[int] = (200,),
    t: float = 0.1,
    weighted: bool = True,
    num_classes: Optional[int] = None,
    chunk_size: int = 1024,
    device: Optional[torch.device | str] = None,
    backend: str = "auto",
) -> dict[int, torch.Tensor]:
    """Predicted class of every test row for each k in `ks`: {k: int64 tensor (n_test,)} on the CPU.

    `device` defaults to the device of the first torch tensor argument (CPU for numpy inputs). `backend`:
    "torch" (chunked torch.mm + topk), "faiss" (exact IndexFlatIP on the CPU; needs faiss-cpu) or "auto"
    (torch; see the module docstring).
    """
    ks = sorted({int(k) for k in ks})
    dev = torch.device(device) if device is not None else pick_device(train_emb, test_emb)
    tr = as_embedding(train_emb, "train_emb", device=dev)  # not copied (fp32 already): see _inverse_norms
    te = normalize(as_embedding(test_emb, "test_emb", device=dev))
    check_same_dim(tr, te, "train_emb", "test_emb")
    ytr = as_labels(train_y, tr.shape[0], "train_y", device=dev)
    _check_args(ks, t, tr.shape[0])
    if ytr.min() < 0:
        raise ContrastkitError("train_y: labels must be >= 0")
    c = int(ytr.max()) + 1 if num_classes is None else int(num_classes)
    kmax = ks[-1]
    preds = {k: torch.empty(te.shape[0], dtype=torch.long) for k in ks}
    step = chunk_rows(tr.shape[0], chunk_size)
    use = _backend(backend, tr.shape[0], dev)
    inv_tr = _inverse_norms(tr)
    search = _top_faiss if use == "faiss" else _top_torch
    with progress_task(f"kNN: {te.shape[0]:,} queries in {tr.shape[0]:,} rows"
                       f"{' (faiss)' if use == 'faiss' else ''}", total=te.shape[0]) as task:
        for s, top_sim, top_idx in search(tr, inv_tr, te, kmax, step, task):
            _vote(preds, ks, s, top_sim.to(dev), top_idx.to(dev), ytr, c, t, weighted)
    return preds


def _vote(preds, ks, s, top_sim, top_idx, ytr, c, t, weighted):
    """Each k's weighted (or majority) vote of the chunk's top rows into preds[k][s : s + b]."""
    b = top_sim.shape[0]
    top_lab = ytr[top_idx]  # (b, kmax)
    if weighted:
        # exp(sim/t) rescaled per row by exp(-max/t): same argmax, no overflow for small t
        w = ((top_sim - top_sim[:, :1]) / t).exp()
    else:
        w = torch.ones_like(top_sim)
    for k in ks:
        scores = torch.zeros(b, c, device=top_sim.device, dtype=torch.float32)
        scores.scatter_add_(1, top_lab[:, :k], w[:, :k])
        preds[k][s : s + b] = scores.argmax(dim=1).cpu()


def knn_accuracies(
    train_emb: Any,
    train_y: Any,
    test_emb: Any,
    test_y: Any,
    ks: Iterable[int] = (20, 200),
    t: float = 0.1,
    weighted: bool = True,
    chunk_size: int = 1024,
    device: Optional[torch.device | str] = None,
    backend: str = "auto",
) -> dict[int, float]:
    """Top-1 kNN accuracy in [0, 1] for each k in `ks`, sharing one top-max(k) search: {k: accuracy}."""
    ytr, yte = as_label_pair(train_y, test_y, len(train_emb), len(test_emb))
    c = int(max(int(ytr.max()), int(yte.max()))) + 1
    preds = knn_predict(train_emb, ytr, test_emb, ks=ks, t=t, weighted=weighted, num_classes=c,
                        chunk_size=chunk_size, device=device, backend=backend)
    return {k: float((p == yte).float().mean()) for k, p in preds.items()}


def knn_accuracy(
    train_emb: Any,
    train_y: Any,
    test_emb: Any,
    test_y: Any,
    k: int = 200,
    t: float = 0.1,
    weighted: bool = True,
    chunk_size: int = 1024,
    device: Optional[torch.device | str] = None,
    backend: str = "auto",
) -> float:
    """Top-1 weighted-kNN accuracy in [0, 1] of `test_emb` classified by its k nearest `train_emb` rows."""
    return knn_accuracies(train_emb, train_y, test_emb, test_y, ks=(k,), t=t, weighted=weighted,
                          chunk_size=chunk_size, device=device, backend=backend)[int(k)]
