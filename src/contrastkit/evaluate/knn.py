"""Weighted k-nearest-neighbour classification of embeddings (InstDisc protocol, METHODS.md §18).

Features are L2-normalised, similarity is cosine, the k most similar training rows vote for their class with
weight exp(sim / t) (weighted=True) or weight 1 (weighted=False, majority vote); the predicted class is the
one with the largest summed weight (ties → the smallest class index). This is lightly's `knn_predict` and
solo-learn's `WeightedKNNClassifier`; defaults k=200, t=0.1 are lightly's ResNet values (use t=0.07 for ViT,
k=20 for solo-learn / Imagenette comparisons).

The search is chunked over test rows (torch.mm + topk), so memory stays bounded at 100k × 100k scale, and
`knn_accuracies` answers several k from one top-max(k) search.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch

from ..errors import ContrastkitError
from ._common import (as_embedding, as_label_pair, as_labels, check_same_dim, chunk_rows, normalize,
                      pick_device)

__all__ = ["knn_accuracy", "knn_accuracies", "knn_predict"]


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
) -> dict[int, torch.Tensor]:
    """Predicted class of every test row for each k in `ks`: {k: int64 tensor (n_test,)} on the CPU.

    `device` defaults to the device of the first torch tensor argument (CPU for numpy inputs).
    """
    ks = sorted({int(k) for k in ks})
    dev = torch.device(device) if device is not None else pick_device(train_emb, test_emb)
    tr = normalize(as_embedding(train_emb, "train_emb", device=dev))
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
    trT = tr.t().contiguous()
    for s in range(0, te.shape[0], step):
        sim = torch.mm(te[s : s + step], trT)  # (b, n_train) cosine similarities
        top_sim, top_idx = sim.topk(kmax, dim=1, largest=True, sorted=True)
        del sim
        top_lab = ytr[top_idx]  # (b, kmax)
        if weighted:
            # exp(sim/t) rescaled per row by exp(-max/t): same argmax, no overflow for small t
            w = ((top_sim - top_sim[:, :1]) / t).exp()
        else:
            w = torch.ones_like(top_sim)
        for k in ks:
            scores = torch.zeros(top_sim.shape[0], c, device=dev, dtype=torch.float32)
            scores.scatter_add_(1, top_lab[:, :k], w[:, :k])
            preds[k][s : s + step] = scores.argmax(dim=1).cpu()
    return preds


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
) -> dict[int, float]:
    """Top-1 kNN accuracy in [0, 1] for each k in `ks`, sharing one top-max(k) search: {k: accuracy}."""
    ytr, yte = as_label_pair(train_y, test_y, len(train_emb), len(test_emb))
    c = int(max(int(ytr.max()), int(yte.max()))) + 1
    preds = knn_predict(train_emb, ytr, test_emb, ks=ks, t=t, weighted=weighted, num_classes=c,
                        chunk_size=chunk_size, device=device)
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
) -> float:
    """Top-1 weighted-kNN accuracy in [0, 1] of `test_emb` classified by its k nearest `train_emb` rows."""
    return knn_accuracies(train_emb, train_y, test_emb, test_y, ks=(k,), t=t, weighted=weighted,
                          chunk_size=chunk_size, device=device)[int(k)]
