"""Clustering quality of embeddings: k-means, then ACC (Hungarian), NMI, ARI, macro-F1 (METHODS.md §18).

Protocol (SCGC `evaluation.py`, PML): cluster the embeddings with k-means into as many clusters as there are
classes, then compare the cluster ids with the labels:

* acc — clustering accuracy: the best one-to-one mapping of clusters to classes (Hungarian algorithm on the
  contingency table, scipy `linear_sum_assignment`), then the fraction of rows whose mapped cluster is
  their class. Works for unequal numbers of clusters and classes (unmatched clusters count as wrong).
* nmi — normalised mutual information, arithmetic-mean normalisation (scikit-learn's default, SCGC's choice).
* ari — adjusted Rand index.
* f1 — macro-F1 of the Hungarian-mapped predictions (SCGC reports it next to ACC).

Embeddings are L2-normalised before k-means by default (contrastive embeddings live on the sphere; this makes
k-means approximately spherical k-means). k-means is scikit-learn's with a fixed `random_state`: full Lloyd
k-means with `n_init` restarts up to 100k rows, MiniBatchKMeans above that.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score

from ..errors import ContrastkitError
from ._common import as_embedding, as_labels, normalize, progress_task, single_thread_if_small

__all__ = ["cluster_scores", "clustering_accuracy", "hungarian_map", "kmeans_labels"]


def _contingency(y_true: np.ndarray, y_pred: np.ndarray):
    classes, t = np.unique(y_true, return_inverse=True)
    clusters, p = np.unique(y_pred, return_inverse=True)
    m = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(m, (p, t), 1)
    return m, classes, clusters


def hungarian_map(y_true: Any, y_pred: Any) -> dict:
    """The cluster → class mapping maximising the number of agreeing rows (one-to-one)."""
    yt, yp = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    m, classes, clusters = _contingency(yt, yp)
    rows, cols = linear_sum_assignment(m, maximize=True)
    return {clusters[r].item(): classes[c].item() for r, c in zip(rows, cols)}


def clustering_accuracy(y_true: Any, y_pred: Any) -> float:
    """Hungarian-matched clustering accuracy in [0, 1] (label ids of y_pred are arbitrary)."""
    yt = np.asarray(y_true.cpu() if hasattr(y_true, "cpu") else y_true).reshape(-1)
    yp = np.asarray(y_pred.cpu() if hasattr(y_pred, "cpu") else y_pred).reshape(-1)
    if yt.shape != yp.shape or yt.size == 0:
        raise ContrastkitError(f"y_true and y_pred must be non-empty and of equal length, "
                               f"got {yt.size} and {yp.size}")
    m, _, _ = _contingency(yt, yp)
    rows, cols = linear_sum_assignment(m, maximize=True)
    return float(m[rows, cols].sum() / yt.size)


def kmeans_labels(emb: Any, n_clusters: int, *, normalize_emb: bool = True, seed: int = 0, n_init: int = 3,
                  minibatch_above: int = 100_000) -> np.ndarray:
    """k-means cluster id of every row (fixed `seed`, so deterministic)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = as_embedding(emb, "emb", device="cpu")
    if normalize_emb:
        x = normalize(x)
    x = x.numpy()
    if not 1 <= n_clusters <= x.shape[0]:
        raise ContrastkitError(f"n_clusters={n_clusters}: must be between 1 and the number of rows "
                               f"({x.shape[0]})")
    if x.shape[0] > minibatch_above:
        km = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, n_init=n_init, batch_size=4096)
        kind = "mini-batch k-means"
    else:
        km = KMeans(n_clusters=n_clusters, random_state=seed, n_init=n_init)
        kind = "k-means"
    with progress_task(f"clustering: {kind}, {n_clusters} clusters, {x.shape[0]:,} rows"), \
            single_thread_if_small(x.size):
        return km.fit_predict(x)


def cluster_scores(emb: Any, y: Any, n_clusters: Optional[int] = None, *, normalize_emb: bool = True,
                   seed: int = 0, n_init: int = 3) -> dict[str, float]:
    """k-means the embeddings and score the clusters against labels y.

    Returns {acc, nmi, ari, f1}, each in [0, 1] (ari can dip below 0 for worse-than-chance clusters).

    `n_clusters` defaults to the number of distinct labels.
    """
    x = as_embedding(emb, "emb", device="cpu")
    yt = as_labels(y, x.shape[0], "y").numpy()
    k = int(len(np.unique(yt))) if n_clusters is None else int(n_clusters)
    pred = kmeans_labels(x, k, normalize_emb=normalize_emb, seed=seed, n_init=n_init)
    mapping = hungarian_map(yt, pred)
    mapped = np.array([mapping.get(p, -1) for p in range(int(pred.max()) + 1)])[pred]
    return {
        "acc": clustering_accuracy(yt, pred),
        "nmi": float(normalized_mutual_info_score(yt, pred, average_method="arithmetic")),
        "ari": float(adjusted_rand_score(yt, pred)),
        "f1": float(f1_score(yt, mapped, average="macro", labels=np.unique(yt))),
    }
