"""Retrieval metrics: paired cross-modal recall@K (CLIP) and label-based MAP@R (PML), METHODS.md §18.

Both are chunked over query rows so memory stays bounded for 100k × 100k similarity matrices, and both use
cosine similarity (L2-normalised embeddings).

Ties are counted pessimistically in `retrieval_recall`: the rank of the true match is the number of *other*
candidates with similarity >= its own, so a collapsed embedding (all rows equal) scores recall 0, not 1.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from ..errors import ContrastkitError
from ._common import as_embedding, as_labels, check_same_dim, chunk_rows, normalize, pick_device

__all__ = ["retrieval_recall", "map_at_r", "label_retrieval_scores"]


@torch.no_grad()
def _match_ranks(q: torch.Tensor, db: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """rank[i] = #{j != i : sim(q_i, db_j) >= sim(q_i, db_i)} (0 = true match retrieved first)."""
    n = q.shape[0]
    ranks = torch.empty(n, dtype=torch.long)
    step = chunk_rows(db.shape[0], chunk_size)
    dbT = db.t().contiguous()
    for s in range(0, n, step):
        sim = torch.mm(q[s : s + step], dbT)
        rows = torch.arange(sim.shape[0], device=sim.device)
        own = sim[rows, rows + s].unsqueeze(1)
        ranks[s : s + step] = ((sim >= own).sum(1) - 1).cpu()
    return ranks


def retrieval_recall(a: Any, b: Any, ks: Iterable[int] = (1, 5, 10),
                     chunk_size: int = 1024) -> dict[str, float]:
    """Recall@K in both directions for paired embeddings (row i of `a` matches row i of `b`).

    Returns {"a2b_r1", "b2a_r1", "mean_r1", "a2b_r5", …} with values in [0, 1]: a2b_rK is the fraction of
    rows of `a` whose partner in `b` is among the K most similar rows of `b`.
    """
    dev = pick_device(a, b)
    qa = normalize(as_embedding(a, "a", device=dev))
    qb = normalize(as_embedding(b, "b", device=dev))
    check_same_dim(qa, qb, "a", "b")
    if qa.shape[0] != qb.shape[0]:
        raise ContrastkitError(f"a has {qa.shape[0]} rows but b has {qb.shape[0]}; "
                               f"paired data needs equal rows")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ContrastkitError(f"ks={ks}: give positive integers")
    ra = _match_ranks(qa, qb, chunk_size)
    rb = _match_ranks(qb, qa, chunk_size)
    out: dict[str, float] = {}
    for k in ks:
        out[f"a2b_r{k}"] = float((ra < k).float().mean())
        out[f"b2a_r{k}"] = float((rb < k).float().mean())
        out[f"mean_r{k}"] = 0.5 * (out[f"a2b_r{k}"] + out[f"b2a_r{k}"])
    return out


@torch.no_grad()
def label_retrieval_scores(emb: Any, labels: Any, chunk_size: int = 1024) -> dict[str, float]:
    """Label-based retrieval within one set (query = every row, database = all other rows), PML definitions:

    R = number of other rows sharing the query's label; the R nearest other rows are retrieved.
    * precision_at_1: fraction of queries whose nearest other row has the same label.
    * r_precision: mean over queries of (#relevant among the R retrieved) / R.
    * map_at_r: mean over queries of (1/R) Σ_{i≤R} P(i)·rel(i), P(i) = precision among the first i retrieved.
    Queries whose label occurs only once (R = 0) are left out, as in PML.
    """
    dev = pick_device(emb)
    x = normalize(as_embedding(emb, "emb", device=dev))
    y = as_labels(labels, x.shape[0], "labels", device=dev)
    _, inv, counts = torch.unique(y, return_inverse=True, return_counts=True)
    r_all = counts[inv] - 1  # R per query
    keep = r_all > 0
    if not bool(keep.any()):
        raise ContrastkitError("labels: every label occurs once, so no query has a relevant neighbour")
    rmax = int(r_all.max())
    n = x.shape[0]
    step = chunk_rows(n, chunk_size)
    xT = x.t().contiguous()
    p1 = torch.zeros((), dtype=torch.float64)
    rp = torch.zeros((), dtype=torch.float64)
    mp = torch.zeros((), dtype=torch.float64)
    pos = torch.arange(1, rmax + 1, device=dev, dtype=torch.float32)
    for s in range(0, n, step):
        sim = torch.mm(x[s : s + step], xT)
        rows = torch.arange(sim.shape[0], device=dev)
        sim[rows, rows + s] = float("-inf")  # a query never retrieves itself
        idx = sim.topk(rmax, dim=1, sorted=True).indices
        del sim
        rel = (y[idx] == y[s : s + step, None]).float()  # (b, rmax)
        r = r_all[s : s + step]
        k = keep[s : s + step]
        within = (pos[None, :] <= r[:, None]).float()  # first R positions only
        rel_r = rel * within
        rs = r.clamp(min=1).float()
        p1 += (rel[:, 0] * k).sum().double().cpu()
        rp += ((rel_r.sum(1) / rs) * k).sum().double().cpu()
        prec = rel_r.cumsum(1) / pos[None, :]
        mp += (((prec * rel_r).sum(1) / rs) * k).sum().double().cpu()
    m = float(keep.sum())
    return {"precision_at_1": float(p1) / m, "r_precision": float(rp) / m, "map_at_r": float(mp) / m}


def map_at_r(emb: Any, labels: Any, chunk_size: int = 1024) -> float:
    """MAP@R of label retrieval (Musgrave et al. 2020, PML's AccuracyCalculator definition); see
    `label_retrieval_scores`."""
    return label_retrieval_scores(emb, labels, chunk_size=chunk_size)["map_at_r"]
