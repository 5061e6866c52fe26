"""CSI for tables: contrast each normal row with its neighbours AND with shifted copies of the rows.

CSI (Tack et al., NeurIPS 2020) found that instance discrimination detects anomalies far better when
"distribution-shifting" transformations of the training samples are added as extra negatives (for images:
rotations). For tables the shifting transformation here is CLAN's augmented negative (METHODS §14): a copy of
the row with some features replaced by values drawn uniformly over the training range. One step:

    s = shift(x)                    each feature with prob p_f → U(min_j, max_j) of training column j (at least
                                    `aug_min_features` per row; categorical: a random training category)
    c = [x; s]                      2B instances: the B rows and their B shifted copies
    v1, v2 = view1(c), view2(c)     light views of every instance (Gaussian noise, `noise_std`, numerics only)
    loss = NT-Xent(head(enc(v1)), head(enc(v2)), τ)     each instance's positive is its own other view; the
                                    other 4B − 2 are negatives, so shifted rows are pushed away from normal rows
                                    and from each other, and normal rows stay apart from one another

Why this and not CLAN or SCARF (bench/anomaly_suite.py, docs/anomaly.md):
* CLAN's positive term pulls EVERY normal row towards every other, so a normal class made of several clusters
  (nine digits, six image-region classes) collapses to one point and the embedding's kNN score has nothing to
  work with; its centroid score assumes one cluster.
* SCARF's views make the encoder invariant to replaced features, so a row with unusual feature values (an
  anomaly) is mapped onto the normal row it resembles: on the suite's breast-cancer table SCARF's kNN score
  had AUROC below 0.5.
Here normal rows keep their neighbourhoods (instance discrimination), and "a row with replaced values" is what
the encoder learns to set apart, as CLAN does. Score: `knn-5+raw` of the anomaly protocol, the mean of the
standardised Euclidean kNN-5 distance in the encoder's output and the standardised raw kNN-5 distance.

Pinned defaults, chosen on the anomaly suite as a whole (bench/anomaly_suite.py, 9 tables × 3 split seeds):
the plain `mlp` encoder WITHOUT LayerNorm (LayerNorm after the first layer divides out a row's scale, so a row
of extreme values embeds like the normal row it is a multiple of: on breast-cancer the kNN score fell below 0.5
AUROC with it); τ = 0.1 (0.5 / 0.2 / 0.1 / 0.05 gave mean AUROC 0.922 / 0.926 / 0.928 / 0.923); SCARF's Adam
recipe (lr 1e-3, no weight decay), 50 epochs, batch 256 (lowered to small tables). Result: mean rank 5.17 of
19 detectors and mean AUROC 0.928, against raw kNN's 5.43 / 0.927 and IsolationForest's 10.04 / 0.848; head to
head it beats raw kNN on only 11 of 27 pairs (2 ties), IsolationForest on 18 (docs/anomaly.md).
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.base import Batch, DataInfo, Dataset
from ..errors import ContrastkitError
from ..views.tabular import clan_augment
from .base import register_method
from .simclr import SimCLR


@register_method("csi")
class CSI(SimCLR):
    summary = "tables: instance contrast with shifted copies (CLAN's augmented rows) as extra negatives (anomaly)"
    kinds = ("table",)
    defaults = {
        **SimCLR.defaults,
        "objective": "ntxent",
        "temperature": 0.1,  # suite: 0.5 → 0.2 → 0.1 raised knn-5+raw's mean AUROC (0.922, 0.926, 0.928); 0.05: 0.923
        "corruption_rate": 0.0,  # no SCARF swaps in the views: invariance to replaced values is what hurts
        "noise_std": 0.1,  # the views: N(0, 0.1²) on the standardised numeric columns
        "p_f": 0.1,  # the shift: CLAN's per-feature replacement probability ...
        "aug_min_features": 1,  # ... with at least one replaced feature per row
        "proj_hidden_dim": 256,
        "proj_dim": 128,
        "encoder": "mlp",
        # no LayerNorm: it divides out each row's scale, so a row of extreme values embeds like a normal row
        "encoder_kwargs": {"norm": "none"},
        "optimizer": "adamw",
        "lr": 1e-3,
        "lr_scaling": "none",
        "weight_decay": 0.0,
        "batch_size": 256,
        "epochs": 50,
    }

    def __init__(self, encoder, info: DataInfo, cfg: dict[str, Any], train: Dataset):
        if info.kind != "table":
            raise ContrastkitError(f"method 'csi' needs tabular data (its shifted rows replace feature values), but "
                                   f"data {info.name!r} is of kind {info.kind!r}")
        super().__init__(encoder, info, cfg, train)
        self.shift = clan_augment(info, {**self.defaults, **{k: v for k, v in cfg.items() if v is not None}})
        self.shift.fit_training_range(train.x, info)  # U(min_j, max_j) of the (normal) training rows

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        x = batch.x
        c = torch.cat([x, self.shift(x, generator)])
        v1, v2 = self.view1(c, generator), self.view2(c, generator)
        z1, z2 = self.head(self.encoder(torch.cat([v1, v2]))).float().chunk(2)
        with torch.no_grad():
            n = x.shape[0]
            zn1 = torch.nn.functional.normalize(z1, dim=1)
            shifted_sim = (zn1[:n] * zn1[n:]).sum(1).mean()  # a row vs its own shifted copy
        return {"loss": self.loss(z1, z2), **self.logs(z1.detach(), z2.detach(), batch), "shift_sim": shifted_sim}
