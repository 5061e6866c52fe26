"""MoCo v2 (He et al., 2020; Chen et al., 2020) and two queue-based variants: MoCHi and MoCo-FT.

Read it like facebookresearch/moco `builder.py` (METHODS.md §3):

    q  = normalize(head(encoder(v1)))                          query branch, trained
    k₊ = normalize(key_head(key_encoder(v2)))                  key branch: EMA copy, no gradient
    L  = CE([qᵀk₊, qᵀn_1..qᵀn_K] / τ, 0)                       negatives n = the queue
    queue ← FIFO(all_gather(k₊));   θ_k ← m θ_k + (1 − m) θ_q  (after each optimizer step)

Choices made on purpose (all pinned in `defaults`):

* **Momentum** follows a cosine schedule from `ema_momentum` (0.99) to `ema_momentum_final` (1.0), as
  solo-learn and lightly do for CIFAR-sized runs; v2's fixed 0.999 assumes ~250k steps, far more than a
  CPU run makes. The update runs in `after_step`, i.e. right before the next step's keys — the reference's
  order.
* **Queue** of `queue_size` = 4096 keys (v2: 65536 for ImageNet). Fashion-MNIST runs on CPU make a few
  hundred to a few thousand steps of 256; 4096 keys are 16 steps old at most, so the keys stay consistent
  with a quickly moving key encoder. Use 16384 for long runs. K need not be a multiple of the batch.
* **Split-BN emulation on one device** (moco#47): the query and the key forward passes each run in
  `split_bn` sub-batches of B / split_bn samples (4 groups of 64 at batch 256 — what 4 GPUs see), so every
  BatchNorm layer of encoder and head normalises with sub-batch statistics; the key batch is randomly
  permuted first (and un-permuted after), so a query and its key sit in different sub-batches and cannot
  share BN statistics. Side effect: running statistics are updated once per sub-batch (G times a step).
  `split_bn: 1` turns it off. Under DDP each rank is already one BN group: the keys' inputs are gathered,
  shuffled across ranks with one permutation shared by all ranks, encoded, gathered back and un-shuffled
  (`_batch_shuffle_ddp` / `_batch_unshuffle_ddp` of the reference), and split_bn applies within each rank.
* **Symmetric loss** (`symmetric: true`, solo-learn style): L = ½[ℓ(q₁, k₂) + ℓ(q₂, k₁)], both terms against
  the queue as it was *before* this step; only then are k₁ and k₂ enqueued (lightly#564 enqueued k₂ before
  the second term and so used q₂'s own positive as a negative). Default off (v2 is asymmetric).
* The keys are named `ema_momentum*` because `momentum` is the optimiser's (SGD/LARS) momentum, 0.9.
* Optimiser: SGD, lr 0.12 at batch 256 (lr scales linearly with the batch), wd 5e-4, cosine schedule —
  lightly's CIFAR-10 benchmark settings (6e-2 × batch/128); v2 used 0.03 / 1e-4 for 200 ImageNet epochs.
  Weight decay applies to every parameter, BatchNorm and biases included, as in the reference
  (`SGD(model.parameters(), weight_decay=...)`; `decay_norm_bias` groups, train/optim.py) — also for MoCHi
  and MoCo-FT, whose reference code is MoCo's.
* Head: v2's 2-layer MLP, scaled to `proj_hidden_dim` 512 → `proj_dim` 128 for small encoders; τ = 0.2.

`mochi` and `moco-ft` only change how the logits of one (q, k) pair are formed (`pair_loss`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import objectives
from ..data.base import Batch
from ..errors import ContrastkitError
from ..heads import ProjectionHead
from ..objectives.mixing import beta_sample, ft_transform, mochi_negatives, queue_logits
from ..objectives.queue import KeyQueue
from ..core import distributed
from ..core.ema import cosine_momentum, ema_update, frozen_copy
from .base import Method, register_method

MOCO_DEFAULTS: dict[str, Any] = {
    "temperature": 0.2,
    "queue_size": 4096,
    "ema_momentum": 0.99,  # key-encoder EMA at step 0 ...
    "ema_momentum_final": 1.0,  # ... and at the last step (cosine in between); equal values = constant
    "split_bn": 4,  # BN sub-batches on one device (1 = off)
    "shuffle_keys": True,  # permute the key batch (across ranks under DDP) before the key encoder
    "symmetric": False,
    "proj_hidden_dim": 512,
    "proj_dim": 128,
    "optimizer": "sgd",
    "lr": 0.12,
    "weight_decay": 5e-4,
}


def forward_in_groups(net: nn.Module, x: Tensor, groups: int) -> Tensor:
    """net(x) computed on `groups` consecutive sub-batches: BatchNorm sees each sub-batch alone."""
    if groups <= 1 or x.shape[0] < 2 * groups:
        return net(x)
    return torch.cat([net(part) for part in x.chunk(groups)])


@register_method("moco")
class MoCo(Method):
    summary = "MoCo v2: momentum key encoder, queue of negatives, split-BN emulation / shuffled keys"
    defaults = dict(MOCO_DEFAULTS)
    decay_norm_bias = True  # the reference decays every parameter, BN and biases included
    # MoCo v2's views (its main_moco.py): crop scale 0.2–1, jitter (0.4, 0.4, 0.4, 0.1), blur p 0.5
    image_recipe_large = {"crop_scale": (0.2, 1.0), "jitter_strength": (0.4, 0.4, 0.4, 0.1)}

    def __init__(self, encoder, info, cfg, train):
        super().__init__(encoder, info, cfg, train)
        if float(cfg["temperature"]) <= 0:
            raise ContrastkitError(f"temperature={cfg['temperature']} must be > 0; MoCo v2 uses 0.2")
        if int(cfg["queue_size"]) < 0:
            raise ContrastkitError(f"queue_size={cfg['queue_size']} must be >= 0 (e.g. 4096)")
        if int(cfg["split_bn"]) < 1:
            raise ContrastkitError(f"split_bn={cfg['split_bn']} must be >= 1 (1 = no split)")
        for key in ("ema_momentum", "ema_momentum_final"):
            if not 0.0 <= float(cfg[key]) <= 1.0:
                raise ContrastkitError(f"{key}={cfg[key]} must be in [0, 1]; e.g. 0.99")
        # v2's head: Linear → ReLU → Linear, no BatchNorm (BN in the head arrived with MoCo v3); v1's (MoCo-FT,
        # `proj_layers: 1`): one Linear layer
        self.head = ProjectionHead(encoder.out_dim, int(cfg["proj_hidden_dim"]), int(cfg["proj_dim"]),
                                   num_layers=int(cfg.get("proj_layers") or 2), batch_norm=False)
        self.key_encoder = frozen_copy(self.encoder)
        self.key_head = frozen_copy(self.head)
        self.queue = KeyQueue(int(cfg["queue_size"]), int(cfg["proj_dim"]),
                              generator=torch.Generator().manual_seed(int(cfg.get("seed", 0))))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # optimizer steps taken
        self._momentum = float(cfg["ema_momentum"])  # last EMA momentum used (logged)
        self.view1, self.view2 = self.make_views(train)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The trained parameters (the key branch is frozen), every one with weight decay (`decay_norm_bias`)."""
        return [{**g, "decay_norm_bias": self.decay_norm_bias} for g in super().parameter_groups()]

    # ---------------------------------------------------------------------------------------- branches
    def _query_net(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))

    def _key_net(self, x: Tensor) -> Tensor:
        return self.key_head(self.key_encoder(x))

    def queries(self, x: Tensor, views: int = 1) -> Tensor:
        """Normalised queries (fp32) of `views` stacked batches; BN in split_bn sub-batches per view."""
        groups = int(self.cfg["split_bn"]) * views
        return F.normalize(forward_in_groups(self._query_net, x, groups).float(), dim=1)

    @torch.no_grad()
    def keys(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Normalised keys of the local batch x, with shuffled BN groups (across ranks under DDP)."""
        groups = int(self.cfg["split_bn"])
        shuffle = bool(self.cfg["shuffle_keys"])
        if shuffle and distributed.is_distributed():
            return self._keys_ddp(x, generator, groups)
        if not shuffle:
            return F.normalize(forward_in_groups(self._key_net, x, groups).float(), dim=1)
        # drawn even when it cannot matter (one BN group), so the generator's stream is the same as with
        # K processes, where the permutation moves keys between ranks
        perm = _randperm(x.shape[0], generator, x.device)
        k = forward_in_groups(self._key_net, x[perm], groups).float()
        out = torch.empty_like(k)
        out[perm] = k
        return F.normalize(out, dim=1)

    def _keys_ddp(self, x: Tensor, generator, groups: int) -> Tensor:
        sizes = distributed.all_gather_sizes(x.shape[0], x.device)
        if len(set(sizes)) != 1:
            raise ContrastkitError(f"shuffled MoCo keys need the same batch size on every rank, got {sizes}")
        b, rank = sizes[0], distributed.rank()
        x_all = distributed.all_gather_with_grad(x.detach(), sizes)
        # one permutation for all ranks: every rank draws one, rank 0's wins (gathered, not broadcast)
        perm = distributed.all_gather_with_grad(_randperm(x_all.shape[0], generator, x.device), sizes=[
            x_all.shape[0]] * distributed.world_size())[: x_all.shape[0]]
        mine = perm[rank * b : (rank + 1) * b]
        k_local = forward_in_groups(self._key_net, x_all[mine], groups).float()
        k_all = distributed.all_gather_with_grad(k_local, sizes)
        out = torch.empty_like(k_all)
        out[perm] = k_all
        return F.normalize(out[rank * b : (rank + 1) * b], dim=1)

    # ------------------------------------------------------------------------------------------- loss
    def pair_loss(self, q: Tensor, k: Tensor, negatives: Tensor, generator) -> Tensor:
        """InfoNCE of queries q against their keys k and the queue (overridden by MoCHi and FT)."""
        return objectives.info_nce(q, k, negatives, float(self.cfg["temperature"]))

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, Tensor]:
        v1, v2 = self.view1(batch.x, generator), self.view2(batch.x, generator)
        negatives = self.queue.negatives().clone()  # the queue as it was before this step
        if bool(self.cfg["symmetric"]):
            q1, q2 = self.queries(torch.cat([v1, v2]), views=2).chunk(2)
            k1, k2 = self.keys(v1, generator), self.keys(v2, generator)
            loss = 0.5 * (self.pair_loss(q1, k2, negatives, generator)
                          + self.pair_loss(q2, k1, negatives, generator))
            self.queue.enqueue(k1)  # only now, after both terms used the old queue (lightly#564)
            self.queue.enqueue(k2)
            pos = 0.5 * ((q1 * k2).sum(1).mean() + (q2 * k1).sum(1).mean())
        else:
            q = self.queries(v1)
            k = self.keys(v2, generator)
            loss = self.pair_loss(q, k, negatives, generator)
            self.queue.enqueue(k)
            pos = (q * k).sum(1).mean()
        return {"loss": loss, "pos_sim": pos.detach(), "ema_momentum": torch.tensor(self._momentum)}

    # ----------------------------------------------------------------------------------- after a step
    def after_step(self, step: int, total_steps: int) -> None:
        self._momentum = cosine_momentum(step, total_steps, float(self.cfg["ema_momentum"]),
                                         float(self.cfg["ema_momentum_final"]))
        ema_update(self.key_encoder, self.encoder, self._momentum)
        ema_update(self.key_head, self.head, self._momentum)
        self.step += 1


def _randperm(n: int, generator: torch.Generator | None, device) -> Tensor:
    dev = generator.device if generator is not None else device
    return torch.randperm(n, generator=generator, device=dev).to(device)


@register_method("mochi")
class MoCHi(MoCo):
    """MoCHi (Kalantidis et al., 2020) = MoCo + per-query synthetic hard negatives (METHODS.md §4).

    Once mixing has started, each query gets `mix_s` type-1 negatives (mixtures of two of its `mix_n`
    hardest queue entries) and `mix_s_prime` type-2 negatives (mixtures of itself, detached, with one of
    them), all unit-norm, detached and never enqueued. Before that, or with s = s′ = 0, the step is exactly
    MoCo's. `mix_start` < 1 is a fraction of the planned training steps (default 0.1: the paper mixes after a
    warm-up of the first epochs, once the queue holds meaningful keys), ≥ 1 a step count (the reference
    code's `start1_hard` / `start2_hard` thresholds). The switch is a buffer (`mixing`), so a resumed run
    mixes exactly when the uninterrupted one did. Sizes scale the paper's ImageNet-100 MoCHi(1024, 512, 256)
    at K = 16k to our K = 4096: N = 256, s = 128, s′ = 64.
    """

    summary = "MoCo + hard negative mixing (synthetic type-1/type-2 negatives from the hardest queue entries)"
    defaults = {**MOCO_DEFAULTS, "mix_n": 256, "mix_s": 128, "mix_s_prime": 64, "mix_start": 0.1}

    def __init__(self, encoder, info, cfg, train):
        super().__init__(encoder, info, cfg, train)
        if float(cfg["mix_start"]) < 0:
            raise ContrastkitError(f"mix_start={cfg['mix_start']} must be >= 0 (fraction < 1, or steps)")
        self.register_buffer("mixing", torch.tensor(float(cfg["mix_start"]) == 0.0))

    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        start = float(self.cfg["mix_start"])
        start = start * total_steps if start < 1 else start
        self.mixing.fill_(bool(int(self.step) >= start))

    def pair_loss(self, q, k, negatives, generator):
        s1, s2 = int(self.cfg["mix_s"]), int(self.cfg["mix_s_prime"])
        if not bool(self.mixing) or (s1 == 0 and s2 == 0) or negatives.shape[0] == 0:
            return super().pair_loss(q, k, negatives, generator)
        synthetic = mochi_negatives(q, negatives, int(self.cfg["mix_n"]), s1, s2, generator)
        logits = queue_logits(q, k, negatives, float(self.cfg["temperature"]), extra=synthetic)
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))

    def training_step(self, batch, generator):
        out = super().training_step(batch, generator)
        out["mixing"] = self.mixing.float()
        return out


@register_method("moco-ft")
class MoCoFT(MoCo):
    """MoCo + feature transformation (Zhu et al., 2021; DTennant `mem_moco.py`, METHODS.md §12).

    The reference is MoCo **v1** + FT: a linear head (one Linear layer to `proj_dim`, `proj_layers: 1`; no
    MLP) and τ = 0.07 (`--nce_t`); both are pinned here. Per step, λ⁺ = 1 + Beta(α⁺, α⁺) extrapolates the
    positive pair apart (q̂ = λ⁺q + (1−λ⁺)k, k̂ = λ⁺k + (1−λ⁺)q) and μ = Beta(α⁻, α⁻) interpolates each
    queue entry with a random other one (n̂_j = μ n_j + (1−μ) n_π(j)); logits [q̂ᵀk̂, q̂ᵀn̂] / τ without
    re-normalisation (reference default). One scalar λ⁺ and one μ per step (`dim_mask='none'`), drawn from
    the step's generator. The queue is updated with the ORIGINAL keys (MoCo's `training_step` enqueues k,
    never k̂). α⁺ = 2.0, α⁻ = 1.6 as in the reference scripts. Queue size, key-EMA schedule, split BN and the
    optimiser are our MoCo base's CPU-sized settings (reference: K = 65536, m = 0.999 / 0.99, SGD lr 0.03,
    batch 256, wd 1e-4 on every parameter, 200 epochs, cosine).
    """

    summary = "MoCo v1 + feature transformation: positive extrapolation, negative interpolation"
    defaults = {**MOCO_DEFAULTS, "temperature": 0.07, "proj_layers": 1, "ft_pos_alpha": 2.0, "ft_neg_alpha": 1.6}

    def pair_loss(self, q, k, negatives, generator):
        lam = 1.0 + beta_sample(float(self.cfg["ft_pos_alpha"]), generator)
        mu = beta_sample(float(self.cfg["ft_neg_alpha"]), generator)
        perm = _randperm(negatives.shape[0], generator, q.device)
        q_hat, k_hat, n_hat = ft_transform(q, k, negatives, lam, mu, perm)
        logits = queue_logits(q_hat, k_hat, n_hat, float(self.cfg["temperature"]))
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))
