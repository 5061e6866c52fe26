"""Cosine similarities of same-label ("positive") and different-label ("negative") test pairs, for the report."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def positive_negative_similarities(emb: torch.Tensor, labels: torch.Tensor | None, n_pairs: int = 20000,
                                   seed: int = 0) -> tuple[np.ndarray | None, np.ndarray | None]:
    if labels is None or len(emb) < 2:
        return None, None
    g = torch.Generator().manual_seed(seed)
    emb, labels = F.normalize(emb.float().cpu(), dim=1), labels.cpu()
    i = torch.randint(len(emb), (n_pairs,), generator=g)
    j = torch.randint(len(emb), (n_pairs,), generator=g)
    keep = i != j
    i, j = i[keep], j[keep]
    sims = (emb[i] * emb[j]).sum(1)
    same = labels[i] == labels[j]
    return sims[same].numpy(), sims[~same].numpy()
