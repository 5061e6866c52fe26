"""End-of-run evaluation of paired data: cross-modal retrieval on the test split, next to baselines.

Rows (one per metric): recall@1/5/10 in both directions ("pix→fou R@1", "fou→pix R@1", …), their mean
("mean R@1", the LibAUC tutorial's `r_mean` ingredients) and the mean rank of the true partner (1 = first;
lower is better), for

* encoder      the trained towers (projected embeddings, cosine similarity);
* random init  the same towers at their initialisation (same seed);
* CCA          scikit-learn's CCA fitted on the raw training sides (standardised; text sides as TF-IDF-free
               hashed-bag counts reduced by truncated SVD), test sides projected and compared by cosine.

Ties count against the query (retrieval.py): a collapsed embedding scores 0, not 1. Queries are every test
row; the gallery is every test row of the other side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ContrastkitError
from .protocol import register_evaluation
from .retrieval import _match_ranks

__all__ = ["cca_embeddings", "embed_sides", "match_ranks", "paired_evaluation", "paired_retrieval"]

KS = (1, 5, 10)


def match_ranks(q: torch.Tensor, db: torch.Tensor) -> torch.Tensor:
    """0-based rank of row i of `db` among all rows for query i (cosine; ties counted pessimistically)."""
    q = torch.nn.functional.normalize(q.float(), dim=1)
    db = torch.nn.functional.normalize(db.float(), dim=1)
    return _match_ranks(q, db, 1024)


def paired_retrieval(a: torch.Tensor, b: torch.Tensor, names=("a", "b"), ks=KS) -> dict[str, float]:
    """{"a→b R@k", "b→a R@k", "mean R@k", "a→b mean rank", "b→a mean rank"} for paired rows of a and b."""
    if a.shape[0] != b.shape[0]:
        raise ContrastkitError(f"retrieval needs paired rows; got {a.shape[0]} and {b.shape[0]}")
    na, nb = names
    ra, rb = match_ranks(a, b), match_ranks(b, a)
    out: dict[str, float] = {}
    for k in ks:
        out[f"{na}→{nb} R@{k}"] = float((ra < k).float().mean())
        out[f"{nb}→{na} R@{k}"] = float((rb < k).float().mean())
        out[f"mean R@{k}"] = 0.5 * (out[f"{na}→{nb} R@{k}"] + out[f"{nb}→{na} R@{k}"])
    out[f"{na}→{nb} mean rank"] = float((ra + 1).float().mean())
    out[f"{nb}→{na} mean rank"] = float((rb + 1).float().mean())
    return out


@torch.no_grad()
def embed_sides(encoder: nn.Module, a: torch.Tensor, b: torch.Tensor, device, batch_size: int = 1024):
    """Each side through its tower (eval mode, restored afterwards): fp32 CPU (N, D) twice."""
    modes = [(m, m.training) for m in encoder.modules()]
    encoder.eval()
    try:
        outs = []
        for i, x in enumerate((a, b)):
            parts = [encoder.encode(i, x[s:s + batch_size].to(device)).float().cpu()
                     for s in range(0, x.shape[0], batch_size)]
            outs.append(torch.cat(parts))
        return outs[0], outs[1]
    finally:
        for m, mode in modes:
            m.training = mode


def _raw_features(train_side: torch.Tensor, test_side: torch.Tensor, kind: str, max_dim: int = 256,
                  buckets: int = 2**16):
    """Raw features for CCA: tables as stored (standardised), images flattened, text as hashed-bag counts
    reduced by SVD (fitted on train) to at most max_dim columns."""
    if kind == "text":
        from scipy.sparse import csr_matrix
        from sklearn.decomposition import TruncatedSVD

        def bag(ids):
            ids = ids.cpu().numpy()
            rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
            cols = ids.reshape(-1)
            keep = cols > 0
            return csr_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])), shape=(ids.shape[0], buckets + 1))

        buckets = max(buckets, int(train_side.max()), int(test_side.max()))
        tr, te = bag(train_side), bag(test_side)
        svd = TruncatedSVD(min(max_dim, tr.shape[0] - 1), random_state=0).fit(tr)
        return svd.transform(tr), svd.transform(te)
    tr = train_side.flatten(1).float().cpu().numpy()
    te = test_side.flatten(1).float().cpu().numpy()
    if kind == "image":
        mean, std = tr.mean(0), tr.std(0)
        std[std < 1e-6] = 1.0
        tr, te = (tr - mean) / std, (te - mean) / std
    if tr.shape[1] > max_dim:  # PCA first (fitted on train) keeps CCA well posed and fast
        from sklearn.decomposition import PCA

        pca = PCA(max_dim, random_state=0).fit(tr)
        tr, te = pca.transform(tr), pca.transform(te)
    return tr, te


def cca_embeddings(train_a, train_b, test_a, test_b, kinds=("table", "table"), n_components: int | None = None):
    """CCA (scikit-learn) fitted on the raw training sides; returns the test sides' canonical variates."""
    from sklearn.cross_decomposition import CCA

    tra, tea = _raw_features(train_a, test_a, kinds[0])
    trb, teb = _raw_features(train_b, test_b, kinds[1])
    k = n_components or min(16, tra.shape[1], trb.shape[1], tra.shape[0] - 1)
    cca = CCA(n_components=k, max_iter=1000, scale=True).fit(tra, trb)
    ua, ub = cca.transform(tea, teb)
    return torch.as_tensor(ua, dtype=torch.float32), torch.as_tensor(ub, dtype=torch.float32)


@register_evaluation("paired")
def paired_evaluation(encoder: nn.Module, make_random_encoder: Callable[[], nn.Module], splits, device,
                      cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], dict]:
    sides = splits.info.extra["sides"]
    names = (sides[0]["name"], sides[1]["name"])
    kinds = (sides[0]["kind"], sides[1]["kind"])
    test = splits.test
    timings: dict[str, float] = {}
    results: dict[str, dict[str, float]] = {}

    t0 = time.perf_counter()
    za, zb = embed_sides(encoder.to(device), test.a, test.b, device)
    results["encoder"] = paired_retrieval(za, zb, names)
    timings["retrieval encoder"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ra, rb = embed_sides(make_random_encoder().to(device), test.a, test.b, device)
    results["random init"] = paired_retrieval(ra, rb, names)
    timings["retrieval random init"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    try:
        ca, cb = cca_embeddings(splits.train.a, splits.train.b, test.a, test.b, kinds)
        results["CCA"] = paired_retrieval(ca, cb, names)
    except (ValueError, np.linalg.LinAlgError) as e:  # a failing baseline must not lose the encoder's numbers
        results["CCA"] = {}
        cca_error = f"CCA baseline failed: {e}"
    else:
        cca_error = None
    timings["CCA"] = time.perf_counter() - t0

    rows = [{"metric": metric, **{col: results[col].get(metric) for col in ("encoder", "random init", "CCA")}}
            for metric in results["encoder"]]
    test_emb = torch.cat([torch.nn.functional.normalize(za, dim=1), torch.nn.functional.normalize(zb, dim=1)], 1)
    extra = {"timings": timings, "test_emb": test_emb, "side_embeddings": (za, zb)}
    if cca_error:
        extra["cca_error"] = cca_error
    return rows, extra
