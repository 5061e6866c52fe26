"""CLAN (Wilkie et al.; jackwilkie/CLAN; METHODS §14): contrastive learning with augmented negatives.

Anomaly detection from normal data only. Every original row of a batch is a positive of every other original
row (the normal class is pulled into one tight region); a copy of each row with some features replaced by
uniform noise is a negative of every original row (pushed at least `margin` away in cosine distance):

    x̃ = augment(x)              each feature with prob p_f → U(min_j, max_j) of training column j (categorical: a
                                random training category); aug_range: fixed → U(aug_low, aug_high), the reference
    z, z̃ = normalize(head(encoder([x; x̃])))          one forward on the concatenation
    loss = clan_loss(z, z̃, alpha, margin, reduction)  objectives/clan.py
    anomaly score(x) = −cos(head(encoder(x)), c),  c = RAW mean of the normal training rows' outputs (not a mean
                                               of normalised outputs, METHODS §14; `anomaly_centroid = "raw"`
                                               tells the anomaly protocol) (`anomaly_model()`; the run saves
                                               encoder + head for it)

Train it on normal rows only (the table loader does that when `anomaly_label` is set, and `shuttle` does it).

Pinned defaults, and where they differ from the reference (4 × 1024 MLP, 64-d linear projection, batch 8192,
AdamW lr 1e-4, wd 0, 200 epochs, 10 % warm-up + cosine, α = 0.5, m = 0.5, p_f = 0.1, U(−1.7, 1.7)):
* loss settings (α, m, non-squared cosine distance) and the augmentation's p_f are the reference's;
* `aug_range: train` (reference: `fixed`, U(aug_low, aug_high) = U(−1.7, 1.7) on every standardised column) —
  a replaced numeric value is drawn from U(min_j, max_j) of training column j. Heavy-tailed columns break the
  fixed range: in shuttle, 98 % of the rows of columns 2, 4 and 6 lie within ±0.2 "standard deviations" (a few
  extreme rows inflate the std), so U(−1.7, 1.7) there lands either on the bulk (a "negative" identical to a
  normal row) or exactly where the rare-but-normal rows are, which the model then learns to call anomalous;
* `reduction: mean` (reference: `active`) — the loss terms are averaged over every pair, not only over the
  active ones (objectives/clan.py). Late in training only 1–3 % of the hinge terms are active and they are
  mostly negatives that cannot be told from normal rows, so "active" weights each of them 30–100× a pull term;
  runs then ended, seemingly at random, with a few hundred normal rows mapped beyond the anomalies;
* `aug_min_features: 1` (reference: 0) — every augmented row has at least one replaced feature. With p_f = 0.1 a
  row of F features stays unchanged with probability 0.9^F: 0.05 % for the reference's 72 network-flow
  features, but 39 % for shuttle's 9, and an unchanged "negative" is identical to a positive (the two loss
  terms then pull and push the same pair). Set it to 0 for the exact reference recipe;
* the projection is one Linear layer to 64-d, as in the reference (`ContrastiveMLP.proj`); `proj_layers: 0`
  scores/trains the encoder output directly (worse on shuttle), `proj_layers: 2` a 2-layer MLP head.
  The anomaly score is taken where the loss acts and where the reference scores, the projection's output; the
  encoder output (what `embed` exports) scores a little lower and less steadily on shuttle, see below;
* CPU-sized: encoder `resmlp` (width 256, depth 3, 128-d output, LayerNorm), batch 512, 15 epochs, lr 3e-3
  (not scaled by batch size: `lr_scaling: none`), warm-up 1.5 epochs (10 %) then cosine. The 30× larger lr
  compensates for ~16× smaller batches and ~13× fewer epochs.
Results on shuttle (bench/shuttle.py, split seeds 0–8, 1 CPU thread, 50–61 s of training each): the centroid
AUROC beats IsolationForest's in the same run on all nine seeds (0.9973–0.9999 against 0.9951–0.9978), its AUPR
on seven. Ablation on seeds 0–5 (how many beat IsolationForest, projection / encoder output): the reference
augmentation + "active" 5 / 4, training range + "active" 4 / 4, fixed range + "mean" 1 / 1, the defaults 6 / 6.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import Batch, DataInfo, Dataset
from ..errors import ContrastkitError
from ..heads import ProjectionHead
from ..objectives.clan import REDUCTIONS, clan_loss
from ..views.tabular import clan_augment
from .base import Method, register_method


def _head(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> nn.Module:
    if num_layers <= 0:
        return nn.Identity()
    # one layer is a plain Linear(in_dim, out_dim) with bias
    return ProjectionHead(in_dim, hidden_dim, out_dim, num_layers=num_layers, batch_norm=False)


@register_method("clan")
class CLAN(Method):
    summary = "augmented negatives for anomaly detection on tables: normal rows together, noisy copies apart"
    kinds = ("table",)
    anomaly_centroid = "raw"  # the reference's centroid: the raw mean of the outputs (METHODS §14)
    defaults = {
        "alpha": 0.5,  # weight of the positive (pull-together) term
        "margin": 0.5,  # cosine-distance margin for augmented negatives, in (0, 1]
        "p_f": 0.1,  # per-feature replacement probability of the augmentation
        "aug_low": -1.7,
        "aug_high": 1.7,
        "aug_min_features": 1,  # reference: 0; see the module docstring
        "aug_range": "train",  # reference: fixed (U(aug_low, aug_high)); see the module docstring
        "reduction": "mean",  # reference: active (mean over the active terms only); see the module docstring
        "proj_dim": 64,
        "proj_hidden_dim": 256,
        "proj_layers": 1,
        "encoder": "resmlp",
        "optimizer": "adamw",
        "lr": 3e-3,
        "lr_scaling": "none",
        "weight_decay": 0.0,
        "batch_size": 512,
        "epochs": 15,
        "warmup_epochs": 1.5,
    }

    def __init__(self, encoder: nn.Module, info: DataInfo, cfg: dict[str, Any], train: Dataset):
        super().__init__(encoder, info, cfg, train)
        if info.kind != "table":
            raise ContrastkitError(f"method 'clan' needs tabular data (its augmentation draws standardised feature "
                                   f"values), but data {info.name!r} is of kind {info.kind!r}; use a CSV/Parquet "
                                   f"file or --data shuttle")
        c = {**self.defaults, **{k: v for k, v in cfg.items() if v is not None}}
        self.alpha, self.margin = float(c["alpha"]), float(c["margin"])
        if not 0.0 <= self.alpha <= 1.0:
            raise ContrastkitError(f"alpha={self.alpha} must be in [0, 1]")
        if not 0.0 < self.margin <= 1.0:
            raise ContrastkitError(f"margin={self.margin} must be in (0, 1] (cosine distance lies in [0, 1])")
        self.head = _head(encoder.out_dim, int(c["proj_hidden_dim"]), int(c["proj_dim"]), int(c["proj_layers"]))
        self.augment = clan_augment(info, c)
        self.reduction = str(c["reduction"])
        if self.reduction not in REDUCTIONS:
            raise ContrastkitError(f"reduction={self.reduction!r}; valid: {', '.join(REDUCTIONS)}")
        self.aug_range = str(c["aug_range"])
        if self.aug_range not in ("fixed", "train"):
            raise ContrastkitError(f"aug_range={self.aug_range!r}; valid: fixed (U(aug_low, aug_high) for every "
                                   f"numeric column, the reference) or train (U(min, max) of each training column)")
        # the training rows must all be normal; the augmentation's value range is fitted on them
        if train.x.dim() != 2 or train.x.shape[1] != int(info.shape[0]):
            raise ContrastkitError(f"clan: training table has shape {tuple(train.x.shape)}, expected (N, "
                                   f"{info.shape[0]})")
        extra = info.extra or {}
        if train.y is not None and ("anomaly_label" in extra or "normal_label" in extra) and bool((train.y != 0).any()):
            raise ContrastkitError("clan trains on normal rows only, but the training split holds anomalies; "
                                   "load the table with anomaly_label set")
        if self.aug_range == "train":
            self.augment.fit_training_range(train.x, info)

    def embed_pair(self, x: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        x_aug = self.augment(x, generator)
        z = F.normalize(self.head(self.encoder(torch.cat([x, x_aug]))).float(), dim=1)
        return z[: x.shape[0]], z[x.shape[0] :]

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        z, z_aug = self.embed_pair(batch.x, generator)
        loss, parts = clan_loss(z, z_aug, alpha=self.alpha, margin=self.margin, return_parts=True,
                                reduction=self.reduction)
        return {"loss": loss, "l_sim": parts["sim"], "l_dis": parts["dis"], "frac_neg": parts["frac_active_neg"]}

    def scoring_head(self) -> nn.Module | None:
        """The projection, scored after the encoder: the loss pulls normal rows together and pushes negatives
        past the margin in the projection's output, and the reference scores there; on shuttle it is the higher
        and steadier of the two scores (bench/shuttle.py)."""
        return None if isinstance(self.head, nn.Identity) else self.head
