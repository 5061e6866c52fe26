"""SCARF (Bahri et al., ICLR 2022; METHODS §19): SimCLR on tables with random-feature-corruption views.

    x̃ = corrupt(x)          ⌊c·M⌋ of the M features replaced by the same column of a random training row (c = 0.6;
                            the anchor view is x itself, views/tabular.py)
    loss = NT-Xent(head(encoder(x)), head(encoder(x̃)), τ)          (the SimCLR objective, methods/simclr.py)

It is SimCLR with the table recipe of the SCARF paper pinned instead of SimCLR's image recipe: Adam(W) at lr 1e-3
with no weight decay and no batch-size scaling, τ = 1.0 (SCARF's InfoNCE temperature), table data only. The
difference matters: with SimCLR's SGD at lr 0.3 the same views gave embeddings whose kNN anomaly score was worse
than raw kNN on 8 of the anomaly suite's 9 tables (bench/anomaly_suite.py).

For anomaly detection (train on normal rows: `--anomaly-label`), the anomaly protocol scores the encoder's
output; the suite's numbers (docs/anomaly.md) say which of its scores to use: `knn-5+raw`, kNN distance in the
embedding mixed with kNN distance on the standardised features (evaluate/anomaly_protocol.py).
"""

from __future__ import annotations

from typing import Any

from ..data.base import DataInfo, Dataset
from ..errors import ContrastkitError
from .base import register_method
from .simclr import SimCLR


@register_method("scarf")
class SCARF(SimCLR):
    summary = "SimCLR on tables with SCARF's corruption views and SCARF's Adam recipe (anomaly: knn+raw score)"
    kinds = ("table",)
    defaults = {
        **SimCLR.defaults,
        "objective": "ntxent",
        "temperature": 1.0,  # SCARF's InfoNCE temperature
        "corruption_rate": 0.6,  # SCARF's c; the anchor view stays intact
        "proj_hidden_dim": 256,
        "proj_dim": 128,
        "optimizer": "adamw",
        "lr": 1e-3,
        "lr_scaling": "none",
        "weight_decay": 0.0,
        "batch_size": 256,
        "epochs": 100,
    }

    def __init__(self, encoder, info: DataInfo, cfg: dict[str, Any], train: Dataset):
        if info.kind != "table":
            raise ContrastkitError(f"method 'scarf' needs tabular data (its views swap feature values between "
                                   f"rows), but data {info.name!r} is of kind {info.kind!r}; use simclr for "
                                   f"other kinds")
        super().__init__(encoder, info, cfg, train)
