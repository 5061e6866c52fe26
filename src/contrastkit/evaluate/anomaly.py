"""Anomaly detection from embeddings of normal data only (CLAN protocol, METHODS.md §14 and §18).

`train_emb` must hold embeddings of *normal* (benign) training rows only. Two scores, both "higher = more
anomalous", computed on L2-normalised embeddings:

* centroid: score(x) = −cos(x, c), c = mean of the normalised normal training embeddings (`centroid="normalized"`,
  the default for every method), or their raw mean (`centroid="raw"`: CLAN's reference, METHODS §14 — the anomaly
  protocol uses it for methods whose class sets `anomaly_centroid = "raw"`).
* knn: score(x) = 1 − mean cosine similarity to the k nearest normal training embeddings (chunked search).

Two helpers build a mixture of scores that live on different scales (e.g. kNN distance in the embedding and
kNN distance on the raw features, `anomaly_protocol`'s "knn+raw" scorer):

* `loo_knn_scores(train, k, metric)`: each normal training row's own kNN score, itself left out (its nearest
  row is not itself) — the distribution an unseen normal row's score is drawn from.
* `standardize_scores(test_scores, train_scores)`: (s − median) / IQR of the training rows' scores (an IQR of 0,
  e.g. duplicated rows, falls back to the std, then to 1), so that one unit means the same spread of normal
  scores in every score being mixed; a mixture is the mean of standardised scores.

Metrics (scikit-learn): AUROC and AUPR (average precision, anomaly = positive class) over the whole test set;
with per-row anomaly classes (`anomaly_class`), also the mean over anomaly classes c of the AUROC of
"normal rows vs rows of class c" — CLAN's "balanced AUROC", which does not let a frequent attack class
dominate.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from ..errors import ContrastkitError
from ._common import as_embedding, check_same_dim, chunk_rows, normalize, pick_device, to_numpy

__all__ = ["anomaly_metrics", "anomaly_scores", "anomaly_score_values", "per_class_auroc", "knn_scores",
           "loo_knn_scores", "standardize_scores"]


@torch.no_grad()
def anomaly_score_values(train_emb: Any, test_emb: Any, scorer: Literal["centroid", "knn"] = "centroid",
                         k: int = 5, chunk_size: int = 1024,
                         centroid: Literal["normalized", "raw"] = "normalized") -> np.ndarray:
    """Anomaly score of every test row (float64 numpy, higher = more anomalous).

    `centroid` (centroid scorer only): c is the mean of the normalised ("normalized") or of the raw ("raw",
    CLAN's reference) normal training embeddings."""
    if centroid not in ("normalized", "raw"):
        raise ContrastkitError(f"centroid={centroid!r}: use 'normalized' or 'raw'")
    dev = pick_device(train_emb, test_emb)
    raw = as_embedding(train_emb, "train_emb", device=dev)
    tr = normalize(raw)
    te = normalize(as_embedding(test_emb, "test_emb", device=dev))
    check_same_dim(tr, te, "train_emb", "test_emb")
    if scorer == "centroid":
        c = normalize((raw.float() if centroid == "raw" else tr).mean(0, keepdim=True))
        return (-(te @ c.t()).squeeze(1)).double().cpu().numpy()
    if scorer == "knn":
        if int(k) != k or not 1 <= k <= tr.shape[0]:
            raise ContrastkitError(f"k={k}: must be an integer between 1 and the number of training rows "
                                   f"({tr.shape[0]})")
        out = torch.empty(te.shape[0], dtype=torch.float64)
        step = chunk_rows(tr.shape[0], chunk_size)
        trT = tr.t().contiguous()
        for s in range(0, te.shape[0], step):
            top = torch.mm(te[s : s + step], trT).topk(int(k), dim=1).values
            out[s : s + step] = (1.0 - top.mean(1)).double().cpu()
        return out.numpy()
    raise ContrastkitError(f"scorer={scorer!r}: use 'centroid' or 'knn'")


@torch.no_grad()
def knn_scores(train: Any, test: Any, k: int = 5, metric: Literal["cosine", "euclidean"] = "cosine",
               chunk_size: int = 1024, self_index: Optional[Any] = None) -> np.ndarray:
    """kNN score of each test row against the training rows (float64, higher = more anomalous).

    cosine: 1 − mean cosine similarity to the k most similar rows; euclidean: mean Euclidean distance to the k
    nearest rows. `self_index` (one training-row index per test row): that row is the test row itself and may
    not be its own neighbour (its duplicates still count); see `loo_knn_scores`."""
    if metric not in ("cosine", "euclidean"):
        raise ContrastkitError(f"metric={metric!r}: use 'cosine' or 'euclidean'")
    dev = pick_device(train, test)
    tr = as_embedding(train, "train", device=dev)
    te = as_embedding(test, "test", device=dev)
    check_same_dim(tr, te, "train", "test")
    n_avail = tr.shape[0] - (0 if self_index is None else 1)
    if int(k) != k or not 1 <= k <= n_avail:
        raise ContrastkitError(f"k={k}: must be an integer between 1 and the number of training rows available "
                               f"({n_avail})")
    if self_index is not None:
        self_index = torch.as_tensor(np.asarray(self_index), dtype=torch.long, device=dev).reshape(-1)
        if self_index.numel() != te.shape[0]:
            raise ContrastkitError(f"self_index has {self_index.numel()} entries for {te.shape[0]} test rows")
    if metric == "cosine":
        tr, te = normalize(tr), normalize(te)
    out = torch.empty(te.shape[0], dtype=torch.float64)
    step = chunk_rows(tr.shape[0], chunk_size)
    for s in range(0, te.shape[0], step):
        q = te[s : s + step]
        # closeness: cosine similarity, or minus the Euclidean distance (largest = nearest)
        # fp32 as raw kNN's knn_distance_scores (cdist's matmul path on big blocks: 2.5x faster than fp64)
        close = q @ tr.t() if metric == "cosine" else -torch.cdist(q, tr)
        if self_index is not None:
            close[torch.arange(q.shape[0], device=q.device), self_index[s : s + step]] = float("-inf")
        top = close.topk(int(k), dim=1).values.double()
        out[s : s + step] = ((1.0 - top.mean(1)) if metric == "cosine" else -top.mean(1)).cpu()
    return out.numpy()


def loo_knn_scores(train: Any, k: int = 5, metric: Literal["cosine", "euclidean"] = "cosine",
                   rows: Optional[Any] = None, chunk_size: int = 1024) -> np.ndarray:
    """kNN scores of training rows (`rows`: their indices, default all) against the OTHER training rows."""
    t = as_embedding(train, "train")
    idx = np.arange(t.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    return knn_scores(t, t[torch.as_tensor(idx)], k=k, metric=metric, chunk_size=chunk_size, self_index=idx)


def standardize_scores(test_scores: Any, train_scores: Any) -> np.ndarray:
    """(test − median(train)) / IQR(train), robust scale of the normal rows' scores; IQR 0 → std → 1."""
    t = np.asarray(train_scores, dtype=np.float64).reshape(-1)
    s = np.asarray(test_scores, dtype=np.float64).reshape(-1)
    if t.size == 0:
        raise ContrastkitError("standardize_scores: no training scores to standardise with")
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    scale = q3 - q1
    if not scale > 1e-12:
        scale = float(t.std())
    if not scale > 1e-12:
        scale = 1.0
    return (s - med) / scale


def per_class_auroc(scores: Any, is_anomaly: Any, anomaly_class: Any) -> dict:
    """{class: AUROC of normal rows vs rows of that anomaly class} for every class present among anomalies."""
    s = np.asarray(to_numpy(scores), dtype=np.float64).reshape(-1)
    a = np.asarray(to_numpy(is_anomaly)).reshape(-1).astype(bool)
    cls = np.asarray(to_numpy(anomaly_class)).reshape(-1)
    if not (s.size == a.size == cls.size):
        raise ContrastkitError(f"scores, is_anomaly and anomaly_class must have equal lengths, "
                               f"got {s.size}, {a.size}, {cls.size}")
    normal = ~a
    if not normal.any():
        raise ContrastkitError("is_anomaly: no normal test rows, AUROC is undefined")
    out = {}
    for c in np.unique(cls[a]):
        sel = normal | (a & (cls == c))
        out[c.item() if hasattr(c, "item") else c] = float(roc_auc_score(a[sel], s[sel]))
    return out


def anomaly_scores(train_emb: Any, test_emb: Any, is_anomaly: Any,
                   scorer: Literal["centroid", "knn"] = "centroid", k: int = 5,
                   anomaly_class: Optional[Any] = None) -> dict[str, float]:
    """Score the test rows against normal training embeddings: {auroc, aupr[, balanced_auroc]}.

    `is_anomaly`: one bool/0-1 per test row (both kinds must be present). `anomaly_class`: optional
    per-test-row class of the anomaly (its value on normal rows is ignored); adds `balanced_auroc` (use
    `per_class_auroc` for the individual classes).
    """
    s = anomaly_score_values(train_emb, test_emb, scorer=scorer, k=k)
    a = np.asarray(to_numpy(is_anomaly)).reshape(-1)
    if a.size != s.size:
        raise ContrastkitError(f"is_anomaly has {a.size} entries but test_emb has {s.size} rows")
    a = a.astype(bool)
    if a.all() or not a.any():
        raise ContrastkitError("is_anomaly: the test set needs both normal and anomalous rows for AUROC/AUPR")
    return anomaly_metrics(s, a, anomaly_class)


def anomaly_metrics(scores: np.ndarray, is_anomaly: np.ndarray, anomaly_class: Optional[Any] = None) -> dict:
    """{auroc, aupr[, balanced_auroc]} of scores (higher = more anomalous); balanced_auroc = the mean over
    anomaly classes of AUROC(normal vs that class), CLAN's metric, when per-row classes are given."""
    a = np.asarray(is_anomaly).astype(bool)
    out = {"auroc": float(roc_auc_score(a, scores)), "aupr": float(average_precision_score(a, scores))}
    if anomaly_class is not None:
        out["balanced_auroc"] = float(np.mean(list(per_class_auroc(scores, a, anomaly_class).values())))
    return out
