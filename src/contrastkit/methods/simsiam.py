"""SimSiam (Chen & He, 2021): BYOL without the momentum target (METHODS.md §8).

    z = proj(f(x)),  p = pred(z),   D(p, z) = −cos(p, sg z)
    L = ½ D(p₁, z₂) + ½ D(p₂, z₁)          ∈ [−1, 1]; the stop-gradient alone prevents collapse

Projector: 3 × Linear-BN(-ReLU), the last BN without affine parameters; predictor: bottleneck
d → d/4 → d (Linear-BN-ReLU-Linear). Pinned sizes follow lightly's ResNet-18 example (512 → 512 → 128,
predictor 128 → 64 → 128), small enough for CPU runs (the paper uses 2048 / 512). The predictor's learning
rate is not decayed (the paper: "fixed lr for the predictor"); its group is marked `scheduled: False`.
SGD, lr 0.12 at batch 256, wd 5e-4 (lightly's CIFAR-10 benchmark; the paper: 0.05 × B/256, wd 1e-4). Weight
decay applies to every parameter, BatchNorm and biases included, as in the reference (`decay_norm_bias`
groups, train/optim.py).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.base import Batch
from ..heads import PredictionHead, ProjectionHead
from ..objectives.regression import simsiam_loss
from .base import Method, register_method


@register_method("simsiam")
class SimSiam(Method):
    summary = "Siamese networks with a predictor and stop-gradient (no negatives, no momentum encoder)"
    decay_norm_bias = True  # the reference decays every parameter (SGD(model.parameters(), weight_decay=wd))
    # SimSiam's views are MoCo v2's (its main_simsiam.py): crop scale 0.2–1, jitter (0.4, 0.4, 0.4, 0.1)
    image_recipe_large = {"crop_scale": (0.2, 1.0), "jitter_strength": (0.4, 0.4, 0.4, 0.1)}
    defaults: dict[str, Any] = {
        "proj_hidden_dim": 512,
        "proj_dim": 128,
        "pred_hidden_dim": 64,
        "fixed_predictor_lr": True,
        "optimizer": "sgd",
        "lr": 0.12,
        "weight_decay": 5e-4,
    }

    def __init__(self, encoder, info, cfg, train):
        super().__init__(encoder, info, cfg, train)
        d = int(cfg["proj_dim"])
        self.head = ProjectionHead(encoder.out_dim, int(cfg["proj_hidden_dim"]), d, num_layers=3,
                                   batch_norm=True, last_bn=True, last_bn_affine=False)
        self.predictor = PredictionHead(d, int(cfg["pred_hidden_dim"]), d)
        self.view1, self.view2 = self.make_views(train)

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, Tensor]:
        v1, v2 = self.view1(batch.x, generator), self.view2(batch.x, generator)
        z = self.head(self.encoder(torch.cat([v1, v2])))
        p = self.predictor(z)
        z1, z2 = z.chunk(2)
        p1, p2 = p.chunk(2)
        loss = 0.5 * simsiam_loss(p1, z2) + 0.5 * simsiam_loss(p2, z1)
        with torch.no_grad():
            z_std = F.normalize(z.float(), dim=1).std(0).mean()
        return {"loss": loss, "z_std": z_std}

    def parameter_groups(self) -> list[dict[str, Any]]:
        pred = list(self.predictor.parameters())
        pred_ids = {id(p) for p in pred}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in pred_ids]
        return [{"params": rest, "decay_norm_bias": self.decay_norm_bias},
                {"params": [p for p in pred if p.requires_grad],
                 "scheduled": not bool(self.cfg["fixed_predictor_lr"]), "decay_norm_bias": self.decay_norm_bias}]
