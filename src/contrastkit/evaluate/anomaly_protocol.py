"""Anomaly-detection protocol: the trained encoder next to baselines, same split, same run (METHODS §14, §18).

`anomaly_protocol(encoder, preprocess, splits, ...)` scores every test row, fitting only on the NORMAL training
rows (train rows with y == 0 when the training split has labels, else all of them), and returns one row per
(model, scorer) with AUROC and AUPR (anomaly = positive class, scikit-learn's roc_auc_score /
average_precision_score) and the seconds it took:

    <method>      centroid   −cos(h, c), c = mean normalised embedding of normal training rows; with centroid="raw"
                             (a method whose class sets `anomaly_centroid = "raw"`: CLAN, METHODS §14) the raw mean
    <method>      knn-k      1 − mean cosine similarity to the k nearest normal training embeddings
    <method>      centroid+raw  the mean of two standardised scores: the centroid score above and raw kNN-k distance
                             (below); each score is standardised by the normal training rows' own scores
                             ((s − median) / IQR; kNN scores leave the row itself out; on up to 4,096 seeded
                             training rows; anomaly.py)
    <method>      knn-k+raw  the same mixture of mean EUCLIDEAN distance to the k nearest normal training
                             embeddings (unnormalised: an embedding's length says how far out a row is, which
                             cosine discards) and raw kNN-k distance
    random init   centroid / knn-k / centroid+raw / knn-k+raw   the same (same centroid), for a freshly initialised
                                     encoder of the same architecture
    isolation forest  iforest        sklearn IsolationForest(n_estimators=100, random_state=seed) on the table x
    raw features  lof-20     sklearn LocalOutlierFactor(n_neighbors=min(20, n − 1), novelty=True) on the table x
    raw features  knn-k      mean Euclidean distance to the k nearest normal training rows of the table x

Every row also gets `rank`: its place by AUROC among all rows of this table (1 = best; ties share the mean
place), so the report says how each detector ranked on this table.

"table x" is `Dataset.x` as loaded: standardised numerics (training mean/std) and categorical codes.
With per-row anomaly classes in `splits.test.info.extra["class_ids"]` and more than one anomaly class, each row
also gets `balanced_auroc`: the mean over anomaly classes of AUROC(normal vs that class) (CLAN's metric).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from ..data.base import DataSplits
from ..errors import ContrastkitError
from .anomaly import anomaly_metrics, anomaly_score_values, knn_scores, loo_knn_scores, standardize_scores
from .embed import embed

__all__ = ["anomaly_protocol", "knn_distance_scores", "format_anomaly_table", "add_ranks", "MIX_REF_ROWS"]

# training rows whose leave-one-out kNN scores standardise a mixture's scores (seeded sample above this)
MIX_REF_ROWS = 4096


@torch.no_grad()
def knn_distance_scores(train: torch.Tensor, test: torch.Tensor, k: int = 5, chunk: int = 1024) -> np.ndarray:
    """Mean Euclidean distance of each test row to its k nearest training rows (higher = more anomalous)."""
    train, test = train.float(), test.float()
    k = min(int(k), train.shape[0])
    out = np.empty(test.shape[0], dtype=np.float64)
    for s in range(0, test.shape[0], chunk):
        d = torch.cdist(test[s : s + chunk], train)
        out[s : s + chunk] = d.topk(k, dim=1, largest=False).values.mean(1).double().numpy()
    return out


def anomaly_protocol(
    encoder: nn.Module,
    preprocess: Optional[Callable[[torch.Tensor], torch.Tensor]],
    splits: DataSplits,
    method_name: Optional[str] = None,
    seed: int = 0,
    random_encoder: Optional[Callable[[], nn.Module]] = None,
    k: int = 5,
    baselines: bool = True,
    device: Optional[torch.device | str] = None,
    centroid: str = "normalized",
) -> list[dict[str, Any]]:
    """Rows {"model", "scorer", "auroc", "aupr", "seconds"[, "balanced_auroc"]}; see the module docstring.

    `random_encoder`: a factory returning a fresh, untrained encoder of the same architecture; it is called with
    the global RNG seeded to `seed` (and the RNG state restored afterwards). Omit it to skip that baseline.
    `baselines=False` keeps only the encoder's own rows. `centroid`: "normalized" (mean of normalised
    embeddings) or "raw" (the raw mean: the method's `anomaly_centroid`, saved with its run; CLAN's).
    """
    test_y = splits.test.y
    if test_y is None:
        raise ContrastkitError("anomaly_protocol needs test labels (0 normal / 1 anomaly); load the table with "
                               "label_column and anomaly_label set")
    is_anomaly = test_y.detach().cpu().numpy().astype(np.int64)
    if not set(np.unique(is_anomaly).tolist()) == {0, 1}:
        raise ContrastkitError(f"anomaly_protocol needs test labels 0 (normal) and 1 (anomaly), both present; got "
                               f"values {sorted(set(np.unique(is_anomaly).tolist()))[:10]}; set anomaly_label "
                               f"when loading the table")
    train_x = splits.train.x
    if splits.train.y is not None:
        train_x = train_x[splits.train.y.to(train_x.device) == 0]
    if train_x.shape[0] == 0:
        raise ContrastkitError("anomaly_protocol: the training split has no normal rows (y == 0) to fit on")
    classes = None
    cls = (splits.test.info.extra or {}).get("class_ids")
    if cls is not None and len(cls) == len(is_anomaly):
        cls = np.asarray(cls)
        if len(np.unique(cls[is_anomaly == 1])) > 1:
            classes = cls
    kk = min(int(k), int(train_x.shape[0]))
    kk_loo = min(kk, int(train_x.shape[0]) - 1)  # a training row's neighbours exclude itself
    x_tr = train_x.detach().float().cpu().flatten(1)
    x_te = splits.test.x.detach().float().cpu().flatten(1)
    n_tr = int(x_tr.shape[0])
    ref = (np.arange(n_tr) if n_tr <= MIX_REF_ROWS
           else np.sort(np.random.default_rng(int(seed)).choice(n_tr, MIX_REF_ROWS, replace=False)))
    raw_mix: dict[str, np.ndarray] = {}

    def raw_standardised() -> np.ndarray:  # raw kNN distance, standardised (computed once, shared)
        if "z" not in raw_mix:
            t0 = time.perf_counter()
            raw_mix["z"] = standardize_scores(knn_scores(x_tr, x_te, k=kk, metric="euclidean"),
                                              loo_knn_scores(x_tr, k=kk_loo, metric="euclidean", rows=ref))
            raw_mix["seconds"] = time.perf_counter() - t0
        return raw_mix["z"]

    rows: list[dict[str, Any]] = []

    def score_encoder(name: str, enc: nn.Module) -> None:
        t0 = time.perf_counter()
        tr = embed(enc, train_x, preprocess, device=device)
        te = embed(enc, splits.test.x, preprocess, device=device)
        t_embed = time.perf_counter() - t0
        for scorer, kwargs in (("centroid", {}), (f"knn-{kk}", {"k": kk})):
            t1 = time.perf_counter()
            s = anomaly_score_values(tr, te, scorer="centroid" if scorer == "centroid" else "knn",
                                     centroid=centroid, **kwargs)
            rows.append({"model": name, "scorer": scorer, **anomaly_metrics(s, is_anomaly, classes),
                         "seconds": t_embed + time.perf_counter() - t1})
        if n_tr < 2:  # the mixtures need leave-one-out neighbours
            return
        for scorer in ("centroid+raw", f"knn-{kk}+raw"):
            t1 = time.perf_counter()
            if scorer == "centroid+raw":  # a training row's centroid score (c holds it with weight 1/n)
                emb = standardize_scores(anomaly_score_values(tr, te, "centroid", centroid=centroid),
                                         anomaly_score_values(tr, tr[torch.as_tensor(ref)], "centroid",
                                                              centroid=centroid))
            else:
                # Euclidean, not cosine: the embedding's length carries "how far out" a row is (docs/anomaly.md)
                emb = standardize_scores(knn_scores(tr, te, k=kk, metric="euclidean"),
                                         loo_knn_scores(tr, k=kk_loo, metric="euclidean", rows=ref))
            s = (emb + raw_standardised()) / 2.0
            rows.append({"model": name, "scorer": scorer, **anomaly_metrics(s, is_anomaly, classes),
                         "seconds": t_embed + time.perf_counter() - t1 + raw_mix["seconds"]})

    score_encoder(method_name or "encoder", encoder)
    if not baselines:
        return add_ranks(rows)
    if random_encoder is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            fresh = random_encoder()
        p = next(iter(encoder.parameters()), None)
        if p is not None:
            fresh = fresh.to(p.device)
        score_encoder("random init", fresh)

    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    t0 = time.perf_counter()
    forest = IsolationForest(n_estimators=100, random_state=int(seed), n_jobs=1).fit(x_tr.numpy())
    s = -forest.score_samples(x_te.numpy())  # score_samples: higher = more normal
    rows.append({"model": "isolation forest", "scorer": "iforest", **anomaly_metrics(s, is_anomaly, classes),
                 "seconds": time.perf_counter() - t0})
    if n_tr >= 2:
        t0 = time.perf_counter()
        n_lof = min(20, n_tr - 1)
        lof = LocalOutlierFactor(n_neighbors=n_lof, novelty=True).fit(x_tr.numpy())
        s = -lof.score_samples(x_te.numpy())  # score_samples: higher = more normal
        rows.append({"model": "raw features", "scorer": f"lof-{n_lof}",
                     **anomaly_metrics(s, is_anomaly, classes), "seconds": time.perf_counter() - t0})
    t0 = time.perf_counter()
    s = knn_distance_scores(x_tr, x_te, k=kk)
    rows.append({"model": "raw features", "scorer": f"knn-{kk}", **anomaly_metrics(s, is_anomaly, classes),
                 "seconds": time.perf_counter() - t0})
    return add_ranks(rows)


def add_ranks(rows: list[dict[str, Any]], key: str = "auroc") -> list[dict[str, Any]]:
    """Sets each row's `rank`: its place by `key` among the rows (1 = best, ties share the mean place: 2.5)."""
    vals = np.array([-float(r[key]) for r in rows])
    for r, v in zip(rows, vals):
        place = float((vals < v).sum() + ((vals == v).sum() + 1) / 2.0)
        r["rank"] = int(place) if place.is_integer() else place  # an int prints as a place, not as 100 %
    return rows


def format_anomaly_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of anomaly_protocol rows (AUROC/AUPR as fractions with 4 decimals)."""
    cols = (["model", "scorer", "auroc", "aupr"] + (["balanced_auroc"] if any("balanced_auroc" in r for r in rows)
                                                     else []) + (["rank"] if any("rank" in r for r in rows) else [])
            + ["seconds"])
    cells = [[c for c in cols]]
    for r in rows:
        cells.append([f"{r[c]:.4f}" if c in ("auroc", "aupr", "balanced_auroc") and c in r
                      else f"{r[c]:.1f}" if c == "seconds" else f"{r[c]:g}" if c == "rank" and c in r
                      else str(r.get(c, "")) for c in cols])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
