"""The evaluation printed at the end of pretraining: each metric for the trained encoder next to two
baselines computed in the same run on the same split — the raw input and the randomly initialised encoder."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

from ..data import DataSplits
from ..registry import Registry
from ..views import create_preprocess
from ._common import progress_label
from .embed import embed
from .knn import knn_accuracies
from .linear import linear_probe


# The end-of-run evaluation of each data kind: f(encoder, make_random_encoder, splits, device, cfg) ->
# (rows, extra). Rows share one schema {"metric", "encoder", <baseline>: value, ...}; extra holds "timings"
# and "test_emb" (the trained encoder's test embeddings, for the report). Kinds without an entry use
# `evaluation_table` (kNN and linear probe next to the raw input and the random-init encoder).
EVALUATIONS: Registry[Callable[..., tuple[list[dict[str, Any]], dict]]] = Registry("evaluation")


def register_evaluation(kind: str):
    return EVALUATIONS.register(kind)


def raw_features(x: torch.Tensor, preprocess: nn.Module, batch_size: int = 4096) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([preprocess(x[i : i + batch_size]).flatten(1).float().cpu()
                          for i in range(0, len(x), batch_size)])


def feature_sets(encoder: nn.Module, random_encoder: nn.Module, splits: DataSplits, device) -> dict[str, tuple]:
    """(train, test) features for the trained encoder and both baselines."""
    preprocess = create_preprocess(splits.info).to(device)
    sets = {}
    for name, enc in (("encoder", encoder), ("random init", random_encoder)):
        enc = enc.to(device)
        with progress_label(name):  # the progress lines say whose embedding (and below: whose kNN, probe)
            sets[name] = (embed(enc, splits.train.x, preprocess, device=device),
                          embed(enc, splits.test.x, preprocess, device=device))
    sets["raw input"] = (raw_features(splits.train.x.to(device), preprocess),
                         raw_features(splits.test.x.to(device), preprocess))
    return sets


def evaluation_table(encoder: nn.Module, make_random_encoder: Callable[[], nn.Module], splits: DataSplits,
                     device, knn_t: float = 0.1, linear: bool = True,
                     knn_ks: tuple[int, ...] = (200, 20)) -> tuple[list[dict[str, Any]], dict]:
    """Rows {"metric", "encoder", "random init", "raw input"} (accuracies in [0, 1]) and the feature sets.

    Needs labels on both splits; returns no rows without them.
    """
    sets = feature_sets(encoder, make_random_encoder(), splits, device)
    if splits.train.y is None or splits.test.y is None:
        return [], sets
    ytr, yte = splits.train.y.cpu(), splits.test.y.cpu()
    ks = tuple(sorted({min(int(k), len(ytr)) for k in knn_ks}, reverse=True))  # small data: k clamped, named
    rows: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    for name, (tr, te) in sets.items():
        with progress_label(name):
            t0 = time.perf_counter()
            acc = knn_accuracies(tr, ytr, te, yte, ks=ks, t=knn_t)
            for k in ks:
                rows.setdefault(f"kNN k={k} t={knn_t}", {})[name] = acc[k]
            timings[f"knn {name}"] = time.perf_counter() - t0
            if linear:
                t0 = time.perf_counter()
                rows.setdefault("linear probe", {})[name] = linear_probe(tr, ytr, te, yte)
                timings[f"linear {name}"] = time.perf_counter() - t0
    table = [{"metric": metric, **values} for metric, values in rows.items()]
    return table, {"features": sets, "timings": timings}
