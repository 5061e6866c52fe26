"""Cheap monitors during pretraining: representation diagnostics and an online kNN on held-out slices
(for an anomaly table, whose training rows are all normal, the centroid-score AUROC instead of kNN accuracy).

They embed fixed slices in eval mode (BN statistics untouched) with their own generator, so they never
change what training does: a run with monitors is bit-identical to one without.
"""

from __future__ import annotations

from typing import Any

import torch
from sklearn.metrics import roc_auc_score

from ..data import DataSplits
from ..evaluate.anomaly import anomaly_score_values
from ..evaluate.diagnostics import collapse_warning, diagnostics
from ..evaluate.embed import embed
from ..evaluate.knn import knn_accuracy
from ..views import create_preprocess


class Monitor:
    def __init__(self, method, splits: DataSplits, cfg: dict[str, Any], device: torch.device,
                 bank_size: int = 5000, query_size: int = 1000):
        self.method, self.cfg, self.device = method, cfg, device
        g = torch.Generator().manual_seed(int(cfg["seed"]) + 12345)
        bank = torch.randperm(len(splits.train), generator=g)[:bank_size]
        query = torch.randperm(len(splits.test), generator=g)[:query_size]
        self.bank_x, self.query_x = splits.train.x[bank], splits.test.x[query]
        self.bank_y = None if splits.train.y is None else splits.train.y[bank]
        self.query_y = None if splits.test.y is None else splits.test.y[query]
        self.preprocess = create_preprocess(splits.info).to(device)
        self.warned = False
        # anomaly tables (one training class, test labels 0 normal / 1 anomaly): centroid AUROC, not kNN accuracy
        self.anomaly = (self.bank_y is not None and self.query_y is not None
                        and len(torch.unique(self.bank_y)) == 1 and set(torch.unique(self.query_y).tolist()) == {0, 1})

    def measure(self) -> dict[str, float]:
        encoder = self.method.encoder
        query = embed(encoder, self.query_x, self.preprocess, device=self.device)
        out: dict[str, float] = {}
        views = (getattr(self.method, "view1", None), getattr(self.method, "view2", None))
        if all(v is not None for v in views):
            g = torch.Generator(device=self.device).manual_seed(int(self.cfg["seed"]) + 777)
            x = self.query_x[:512].to(self.device)
            with torch.no_grad():
                v1, v2 = views[0](x, g), views[1](x, g)
            e1 = embed(encoder, v1, torch.nn.Identity(), device=self.device)
            e2 = embed(encoder, v2, torch.nn.Identity(), device=self.device)
            out["alignment"] = float(diagnostics(e1, e2)["alignment"])
        diag = diagnostics(query)
        out.update({k: float(diag[k]) for k in ("uniformity", "eff_rank", "std") if k in diag})
        if self.anomaly:  # normal-only training rows: kNN accuracy would just be the normal share
            model = self.method.anomaly_model()
            scores = anomaly_score_values(embed(model, self.bank_x, self.preprocess, device=self.device),
                                          embed(model, self.query_x, self.preprocess, device=self.device),
                                          scorer="centroid")
            out["auroc"] = float(roc_auc_score(self.query_y.cpu().numpy(), scores))
        elif self.bank_y is not None and self.query_y is not None:
            bank = embed(encoder, self.bank_x, self.preprocess, device=self.device)
            out["knn"] = knn_accuracy(bank, self.bank_y, query, self.query_y, k=20, t=float(self.cfg["knn_t"]))
        self.warning = collapse_warning(diag, query.shape[1])
        return out

    def describe(self, values: dict[str, float]) -> str:
        parts = []
        if "knn" in values:
            parts.append(f"kNN {100 * values['knn']:.1f}%")
        if "auroc" in values:
            parts.append(f"AUROC {values['auroc']:.4f}")
        if "eff_rank" in values:
            parts.append(f"rank {values['eff_rank']:.1f}")
        if self.warning:
            parts.append(f"[bold red]{self.warning}[/]")
        return " ".join(parts)
