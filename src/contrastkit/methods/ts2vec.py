"""TS2Vec (Yue et al., AAAI 2022): hierarchical contrast of per-timestep representations of two overlapping crops.

One training step, as in the reference implementation (github.com/yuezhihan/ts2vec, ts2vec.py `fit`):

1. A crop length l ~ U{2, …, T} and a window [a, b) of that length; two enclosing segments [a1, b) and [a, b2)
   (a1 ≤ a, b2 ≥ b, drawn uniformly), shifted together by one random offset per sample (steps outside the
   series read as NaN = padding). The overlap [a, b) is what both views share.
2. Each segment goes through the encoder's per-step path (`encoder.steps(x, step_mask)`) with TS2Vec's
   timestamp masking: each step's input projection is zeroed with probability `mask_p` (0.5, "binomial").
   The overlap's representations z1, z2: (B, l, D).
3. `hierarchical_contrastive_loss(z1, z2, alpha)`: at every scale (max-pooling by 2 along time until one step
   is left) alpha · instance contrast (each step's positive is the same step of the other view of the same
   series, negatives the other series at that step) + (1 − alpha) · temporal contrast (negatives: the other
   steps of the same series), averaged over the scales.

Randomness comes from the explicit generator (crop, offsets, masks). The encoder must have `steps(x,
step_mask)` returning ((B, T, D), valid mask): `tcn` (the default, TS2Vec's own encoder) and `resnet1d` do.
Defaults follow the reference: batch 8, AdamW(lr 1e-3, no weight decay); evaluation embeds whole series
(max-pooled over time), as TS2Vec's `encode(encoding_window="full_series")`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.base import Batch, Dataset
from ..errors import ContrastkitError
from .base import Method, register_method

__all__ = ["TS2Vec", "hierarchical_contrastive_loss", "instance_contrastive_loss", "temporal_contrastive_loss",
           "take_per_row"]


def _contrast(z: torch.Tensor, n: int) -> torch.Tensor:
    """z (G, 2n, D): rows 0..n-1 view 1, n..2n-1 view 2; mean −log p(positive) over both directions, the
    candidate set being every other row of the same group (TS2Vec's tril/triu trick drops the diagonal)."""
    sim = z @ z.transpose(1, 2)  # (G, 2n, 2n)
    logits = torch.tril(sim, diagonal=-1)[:, :, :-1] + torch.triu(sim, diagonal=1)[:, :, 1:]
    logits = -F.log_softmax(logits, dim=-1)
    i = torch.arange(n, device=z.device)
    return (logits[:, i, n + i - 1].mean() + logits[:, n + i, i].mean()) / 2


def instance_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    b = z1.shape[0]
    if b == 1:
        return z1.new_zeros(())
    return _contrast(torch.cat([z1, z2], dim=0).transpose(0, 1), b)


def temporal_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    t = z1.shape[1]
    if t == 1:
        return z1.new_zeros(())
    return _contrast(torch.cat([z1, z2], dim=1), t)


def hierarchical_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5,
                                  temporal_unit: int = 0) -> torch.Tensor:
    """z1, z2: (B, T, D) representations of the same steps under two views."""
    loss = z1.new_zeros(())
    d = 0
    while z1.shape[1] > 1:
        if alpha != 0:
            loss = loss + alpha * instance_contrastive_loss(z1, z2)
        if d >= temporal_unit and 1 - alpha != 0:
            loss = loss + (1 - alpha) * temporal_contrastive_loss(z1, z2)
        d += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    if z1.shape[1] == 1:
        if alpha != 0:
            loss = loss + alpha * instance_contrastive_loss(z1, z2)
        d += 1
    return loss / d


def take_per_row(x: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """x (B, C, T) → (B, C, length): row b's steps start[b] .. start[b] + length − 1; outside [0, T) → NaN."""
    b, c, t = x.shape
    idx = start[:, None] + torch.arange(length, device=x.device)[None, :]
    valid = (idx >= 0) & (idx < t)
    out = x.gather(2, idx.clamp(0, t - 1)[:, None, :].expand(b, c, length))
    return out.masked_fill(~valid[:, None, :], float("nan"))


def _randint(low: int, high: int, g, device, size=()) -> torch.Tensor:
    """Uniform integers in [low, high) (numpy's randint convention)."""
    return torch.randint(int(low), int(high), size, generator=g, device=device)


@register_method("ts2vec")
class TS2Vec(Method):
    summary = "series: hierarchical instance + temporal contrast of two overlapping crops (TS2Vec)"
    kinds = ("series",)
    defaults = {
        "alpha": 0.5,  # weight of the instance contrast (1 − alpha: temporal)
        "mask_p": 0.5,  # timestamp masking probability
        "temporal_unit": 0,
        "max_train_length": 3000,  # longer series are cut into random windows of this length first
        "encoder": "tcn",
        "batch_size": 8,
        "optimizer": "adamw",
        "lr": 0.001,
        "lr_scaling": "none",
        "weight_decay": 0.0,
        "warmup_epochs": 0.0,
        # the paper's budget: 200 iterations (600 above 100,000 values in the training set: give --steps 600)
        "steps": 200,
    }

    def __init__(self, encoder, info, cfg, train: Dataset | None = None):
        super().__init__(encoder, info, cfg, train)
        if info.kind != "series":
            raise ContrastkitError(f"method 'ts2vec' needs series data; {info.name!r} is {info.kind}")
        if not hasattr(encoder, "steps"):
            raise ContrastkitError("method 'ts2vec' needs an encoder with per-step outputs: tcn or resnet1d")
        if not 0 <= float(cfg["alpha"]) <= 1 or not 0 <= float(cfg["mask_p"]) < 1:
            raise ContrastkitError(f"ts2vec: alpha in [0, 1] and mask_p in [0, 1) (got {cfg['alpha']}, "
                                   f"{cfg['mask_p']})")

    def views(self, x: torch.Tensor, g: torch.Generator):
        """The two overlapping segments and the overlap length (reference `fit`, lines with crop_*)."""
        dev = x.device
        t = x.shape[-1]
        max_len = int(self.cfg["max_train_length"])
        if t > max_len:  # random window of max_train_length per batch
            w0 = int(_randint(0, t - max_len + 1, g, dev))
            x, t = x[..., w0 : w0 + max_len], max_len
        low = min(2 ** (int(self.cfg["temporal_unit"]) + 1), t)
        crop_l = int(_randint(low, t + 1, g, dev))
        crop_left = int(_randint(0, t - crop_l + 1, g, dev))
        crop_right = crop_left + crop_l
        crop_eleft = int(_randint(0, crop_left + 1, g, dev))
        crop_eright = int(_randint(crop_right, t + 1, g, dev))
        offset = _randint(-crop_eleft, t - crop_eright + 1, g, dev, (x.shape[0],))
        v1 = take_per_row(x, offset + crop_eleft, crop_right - crop_eleft)
        v2 = take_per_row(x, offset + crop_left, crop_eright - crop_left)
        return v1, v2, crop_l

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        x = batch.x.float()
        v1, v2, crop_l = self.views(x, generator)
        p = float(self.cfg["mask_p"])
        m1 = torch.rand(v1.shape[0], v1.shape[-1], generator=generator, device=x.device) >= p
        m2 = torch.rand(v2.shape[0], v2.shape[-1], generator=generator, device=x.device) >= p
        z1, _ = self.encoder.steps(v1, m1)
        z2, _ = self.encoder.steps(v2, m2)
        z1, z2 = z1[:, -crop_l:].float(), z2[:, :crop_l].float()
        loss = hierarchical_contrastive_loss(z1, z2, float(self.cfg["alpha"]), int(self.cfg["temporal_unit"]))
        return {"loss": loss}
