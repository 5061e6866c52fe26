"""End-of-run evaluation for graphs (`@register_evaluation("graph")`): node clustering and node classification.

For every node (graph clustering is transductive: training saw every node, never a label):
* clustering — k-means (k = number of classes, seeded, 10 restarts) on the representation, then ACC (Hungarian
  matching), NMI (arithmetic) and ARI against the labels (evaluate/cluster.py);
* node classification — GRACE's protocol (Zhu et al. 2020, and GCA after it): rows L2-normalised, logistic
  regression with C chosen from 2^-10 … 2^9 by stratified 5-fold cross-validation on the training nodes (a
  sample of them on large graphs), on a seeded, stratified 50/50 split of the nodes. Graph sets are often small (karate trains on 16 nodes): there a
  fixed, weak penalty lets the probe fit noise dimensions and its score says more about the penalty than about
  the representation (a karate embedding that k-means split with one node wrong probed at 61 %).

Columns, all computed in the same run on the same nodes:
    encoder            the trained encoder's embeddings (L2-normalised before k-means)
    random init        the same encoder architecture, randomly initialised (same seed)
    raw features       the node features before smoothing (k-means without normalisation: the classic baseline)
    smoothed features  the features after the Laplacian smoothing filter (the run's `graph_smooth` steps, or 2 when
                       the run used none), i.e. SGC/AGC-style "smooth then k-means", without any training
    spectral           spectral clustering of the graph itself (scikit-learn, precomputed sparse affinity); graphs
                       above SPECTRAL_MAX_NODES nodes skip it (cost), and it has no node-classification cell
A graph without labels gets no rows.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import ContrastkitError
from ._common import progress_task
from .cluster import cluster_scores
from .embed import embed
from .protocol import register_evaluation

__all__ = ["SPECTRAL_MAX_NODES", "graph_evaluation", "node_classification_accuracy", "node_split",
           "spectral_labels"]

SPECTRAL_MAX_NODES = 20000
# the node probe's C is cross-validated on at most this many values (nodes × dimensions), at least 200 nodes
NODE_PROBE_CV_VALUES = 1 << 17
METRICS = (("acc", "clustering ACC"), ("nmi", "clustering NMI"), ("ari", "clustering ARI"))


def node_split(y: np.ndarray, seed: int = 0, train_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split stratified by class: each class puts round(train_fraction · count) nodes (at least one, and
    at least one left for testing when the class has two or more) in the training part."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = round(train_fraction * len(idx))
        k = min(max(k, 1), max(len(idx) - 1, 1))
        train.append(idx[:k])
        test.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _rarest_class_count(y: np.ndarray) -> int:
    return int(np.unique(y, return_counts=True)[1].min())


def node_classification_accuracy(feats: torch.Tensor, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                                 seed: int = 0) -> float:
    """GRACE's node-classification probe: L2-normalised rows, logistic regression, C by stratified k-fold CV
    (k = 5, fewer when a class has fewer training nodes; C = 1 when some class has a single one).

    The search is 100 fits: on all 5,000 training nodes of a 10k-node graph it took 29 s at 784-d (one thread).
    So C is cross-validated on a seeded, stratified sample of the training nodes, with NODE_PROBE_CV_VALUES
    values (2,048 nodes at 64-d, 200 at 784-d), and the probe is then fitted once on all of them."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from threadpoolctl import threadpool_limits

    x = torch.nn.functional.normalize(feats.float().cpu(), dim=1).double().numpy()
    xtr, ytr = x[train], y[train]
    rows = max(200, NODE_PROBE_CV_VALUES // x.shape[1])
    if len(ytr) > rows:
        xs, _, ys, _ = train_test_split(xtr, ytr, train_size=rows, random_state=seed,
                                        stratify=ytr if _rarest_class_count(ytr) >= 2 else None)
    else:
        xs, ys = xtr, ytr
    folds = min(5, _rarest_class_count(ys))
    # one BLAS thread: on 2 cores two threads made these small fits 2–10× slower (a 784-d search 13.8 s vs 1.2 s)
    with progress_task(f"node classification: logistic regression, C by {folds}-fold CV on {len(ys):,} nodes"), \
            warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")  # ConvergenceWarning at the largest C of the grid: its score still counts
        c = 1.0
        if folds >= 2:
            cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
            search = LogisticRegressionCV(Cs=2.0 ** np.arange(-10, 10), cv=cv, scoring="accuracy", max_iter=1000)
            c = float(search.fit(xs, ys).C_[0])
        clf = LogisticRegression(C=c, max_iter=1000).fit(xtr, ytr)
    return float((clf.predict(x[test]) == y[test]).mean())


def spectral_labels(edge_index: torch.Tensor, weight: torch.Tensor, n: int, k: int, seed: int = 0) -> np.ndarray:
    """Spectral clustering of the graph (symmetric sparse affinity with unit self-loops)."""
    import scipy.sparse as sp
    from sklearn.cluster import SpectralClustering

    ei, w = edge_index.cpu().numpy(), weight.cpu().numpy().astype(np.float64)
    a = sp.csr_matrix((w, (ei[0], ei[1])), shape=(n, n)) + sp.identity(n, format="csr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Graph is not fully connected": the embedding is still defined
        sc = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed, assign_labels="kmeans",
                                n_init=10)
        return sc.fit_predict(a)


def _scores_from_labels(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from .cluster import clustering_accuracy

    return {"acc": clustering_accuracy(y, pred),
            "nmi": float(normalized_mutual_info_score(y, pred, average_method="arithmetic")),
            "ari": float(adjusted_rand_score(y, pred))}


@register_evaluation("graph")
def graph_evaluation(encoder, make_random_encoder: Callable[[], Any], splits, device, cfg: dict[str, Any]):
    """Rows {"metric", "encoder", "random init", "raw features", "smoothed features", "spectral"}; extra holds
    "timings" and "test_emb" (the trained encoder's embedding of every node)."""
    from ..data.graph import smooth_features

    g = splits.train
    if getattr(g, "edge_index", None) is None:
        raise ContrastkitError("graph evaluation needs graph data (a GraphDataset)")
    seed = int(cfg.get("seed", 0) or 0)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    emb = embed(encoder.to(device), g.x, device=device)
    timings["embed encoder"] = time.perf_counter() - t0
    extra: dict[str, Any] = {"timings": timings, "test_emb": emb}
    if g.y is None:
        return [], extra
    y = g.y.cpu().numpy()
    k = len(np.unique(y))
    t0 = time.perf_counter()
    random_emb = embed(make_random_encoder().to(device), g.x, device=device)
    timings["embed random init"] = time.perf_counter() - t0
    raw = g.raw_x.float().cpu()
    steps = int((g.info.extra or {}).get("graph_smooth") or 0)
    if steps > 0 and (g.info.extra or {}).get("graph_x", "features") == "features":
        smoothed = g.x.float().cpu()
    else:
        smoothed = smooth_features(g.raw_x.float(), g.edge_index, g.edge_weight, 2).cpu()
    sets = {"encoder": (emb, True), "random init": (random_emb, True), "raw features": (raw, False),
            "smoothed features": (smoothed, False)}
    n_init = 10 if len(y) <= 20000 else 3
    rows: dict[str, dict[str, Any]] = {name: {} for _, name in METRICS}
    rows["node classification (linear probe)"] = {}
    tr, te = node_split(y, seed)
    for name, (feats, normalize) in sets.items():
        t0 = time.perf_counter()
        sc = cluster_scores(feats, y, k, normalize_emb=normalize, seed=seed, n_init=n_init)
        for key, metric in METRICS:
            rows[metric][name] = sc[key]
        timings[f"kmeans {name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows["node classification (linear probe)"][name] = node_classification_accuracy(feats, y, tr, te, seed)
        timings[f"linear {name}"] = time.perf_counter() - t0
    if len(y) <= SPECTRAL_MAX_NODES:
        t0 = time.perf_counter()
        sc = _scores_from_labels(y, spectral_labels(g.edge_index, g.edge_weight, len(y), k, seed))
        for key, metric in METRICS:
            rows[metric]["spectral"] = sc[key]
        timings["spectral"] = time.perf_counter() - t0
    table = [{"metric": metric, **values} for metric, values in rows.items()]
    return table, extra
