"""CLIP and CleanCLIP on paired data (METHODS.md §16).

clip (Radford et al., 2021)
    One tower per side (the `paired` encoder: backbone + linear projection each), a learnable logit scale
    s = exp(t) with t initialised to ln(1/0.07) and clamped to [0, ln 100] after every optimizer step (open_clip
    `training/train.py`), and the symmetric loss ½[CE(s·U Vᵀ, arange) + CE(s·V Uᵀ, arange)] computed by
    `objectives.clip_loss` — the tiled kernel's one row+column pass on one process, local rows against the
    gathered other side under DDP (the gather primitive, pattern A of §17). No augmentation (CLIP uses none
    beyond a random crop). t gets no weight decay (0-d parameters never do, train/optim.py).

cleanclip (Bansal et al., 2023)
    clip + each side's own contrastive term between two augmented views of that side:
    L = clip_weight · L_CLIP(a, b) + inmodal_weight · ½ [L(a', a'') + L(b', b'')], both weights 1 as in the
    paper. The in-modal terms use the same logit scale and the same symmetric CE form (the CleanCLIP code's
    `inmodal` loss contrasts each sample's embedding with its augmented version against the batch).
    Views by side kind: tables — SCARF corruption (views/tabular.py), images — the image recipe
    (views/image.py), text — token dropout (`text_drop`, default 0.2, of the hashed n-gram ids).

sogclr_clip / isogclr_clip (METHODS.md §16, LibAUC `GCLoss_v2`)
    The bimodal global contrastive loss: per-sample moving-average normalisers (and, for isogclr_clip, learned
    per-sample temperatures) kept separately for each side's anchors (`BimodalGlobalState` below), so small
    batches do not bias the gradient. Hyper-parameters as the unimodal sogclr / isogclr (τ 0.1, γ 0.9 / 0.8,
    ρ 0.4, τ ∈ [0.05, 1]); optimiser as clip; the logit scale is unused (fixed).

Pinned defaults (all): AdamW lr 1e-3 without batch scaling, weight decay 0.1, batch 128, 1-epoch warm-up
(capped at 10 % of the steps by the trainer), 100 epochs — sized for the small paired sets that run on a CPU
(mfeat's 1,600 training pairs: 1,200 steps, ~20 s). On mfeat (bench/pairs.py) 50-100 epochs with the
towers' dropout 0.3 beat 200 epochs and any run without dropout: 1,600 pairs overfit quickly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .. import objectives
from ..data.base import Batch, Dataset
from ..errors import ContrastkitError
from .base import Method, register_method

__all__ = ["CLIP", "BimodalGlobalState", "CleanCLIP", "ISogCLRClip", "SogCLRClip", "TokenDropout"]

_DEFAULTS: dict[str, Any] = {
    "encoder": "paired",
    "logit_scale_init": 1 / 0.07,
    "logit_scale_max": 100.0,
    "learn_logit_scale": True,
    "optimizer": "adamw",
    "lr": 1e-3,
    "lr_scaling": "none",
    "weight_decay": 0.1,
    "batch_size": 128,
    "epochs": 100,
    "init_from": None,  # a finished paired run folder: start from its towers (CleanCLIP fine-tunes this way)
}


@register_method("clip")
class CLIP(Method):
    summary = "paired data: one tower per side, symmetric cross-modal InfoNCE, learnable logit scale (≤ 100)"
    kinds = ("paired",)
    defaults: dict[str, Any] = dict(_DEFAULTS)

    def __init__(self, encoder, info, cfg, train: Dataset | None = None):
        super().__init__(encoder, info, cfg, train)
        from ..encoders.paired import PairEncoder

        if info.kind != "paired":
            raise ContrastkitError(f"method {self.name!r} needs paired data (e.g. --data mfeat or "
                                   f"--data paired:A,B); {info.name!r} is {info.kind} data")
        if not isinstance(encoder, PairEncoder):
            raise ContrastkitError(f"method {self.name!r} needs --encoder paired (its default): one tower per "
                                   "side; choose the side backbones with encoder_kwargs {a: resmlp, b: mlp}")
        init, top = float(cfg["logit_scale_init"]), float(cfg["logit_scale_max"])
        if not 1.0 <= init <= top:
            raise ContrastkitError(f"need 1 <= logit_scale_init <= logit_scale_max; got {init}, {top}")
        self.max_log_scale = math.log(top)
        if cfg.get("init_from"):
            self._load_towers(cfg["init_from"])
        t = torch.tensor(math.log(init))
        if cfg["learn_logit_scale"]:
            self.logit_scale = nn.Parameter(t)
        else:
            self.register_buffer("logit_scale", t)
        if train is not None:  # built whole: views / per-sample state exist when the constructor returns
            self.setup(train)

    def setup(self, train: Dataset) -> None:
        """What needs the training split (clip: nothing; cleanclip: views; sogclr_clip: per-sample state)."""

    def _load_towers(self, run_dir) -> None:
        from pathlib import Path

        from ..core.checkpoint import load_checkpoint

        path = Path(run_dir) / "encoder.pt"
        if not path.exists():
            raise ContrastkitError(f"init_from={run_dir!r}: no encoder.pt there (a finished clip/cleanclip run?)")
        state = load_checkpoint(path)
        sides = state.get("info", {}).get("extra", {}).get("sides")
        mine = self.info.extra["sides"]
        def layout(ms):  # a text side's width (its longest caption) may differ: the bag does not depend on it
            return [(m["kind"], None if m["kind"] == "text" else list(m["shape"])) for m in ms]

        if sides is None or layout(sides) != layout(mine):
            raise ContrastkitError(f"init_from={run_dir!r}: that run's sides {None if sides is None else layout(sides)}"
                                   f" differ from this data's {layout(mine)}")
        try:
            self.encoder.load_state_dict(state["encoder"])
        except RuntimeError as e:
            raise ContrastkitError(f"init_from={run_dir!r}: its towers do not fit this encoder "
                                   f"(different encoder_kwargs?): {e}") from e

    def scale(self) -> Tensor:
        return self.logit_scale.exp()

    @torch.no_grad()
    def _clamp(self) -> None:
        self.logit_scale.clamp_(0.0, self.max_log_scale)

    def after_step(self, step: int, total_steps: int) -> None:
        self._clamp()  # open_clip: logit_scale.clamp_(0, ln 100) after the optimizer step

    def embed_pair(self, a: Tensor, b: Tensor, raw: bool = True) -> tuple[Tensor, Tensor]:
        return self.encoder.encode(0, a, raw).float(), self.encoder.encode(1, b, raw).float()

    def cross_modal(self, za: Tensor, zb: Tensor) -> Tensor:
        return objectives.clip_loss(za, zb, self.scale())

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, Tensor]:
        self._clamp()
        a, b = batch.x
        za, zb = self.embed_pair(a, b)
        loss = self.cross_modal(za, zb)
        return {"loss": loss, **self._logs(za, zb)}

    def _logs(self, za: Tensor, zb: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            pos = torch.nn.functional.cosine_similarity(za, zb).mean()
            return {"pos_sim": pos, "logit_scale": self.scale().detach()}


class TokenDropout(nn.Module):
    """Text view: each feature id (≠ 0) is dropped (set to padding) with probability p; a row never ends
    up empty (it keeps its ids then)."""

    def __init__(self, p: float = 0.2):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ContrastkitError(f"text_drop={p} must be in [0, 1)")
        self.p = float(p)

    def forward(self, ids: Tensor, generator: torch.Generator | None = None) -> Tensor:
        keep = torch.rand(ids.shape, generator=generator, device=ids.device) >= self.p
        out = torch.where(keep, ids, torch.zeros_like(ids))
        empty = (out == 0).all(1)
        return torch.where(empty[:, None], ids, out)


@register_method("cleanclip")
class CleanCLIP(CLIP):
    summary = "clip + each side's own contrastive term between two augmented views (robust to poisoned pairs)"
    defaults: dict[str, Any] = {**_DEFAULTS, "clip_weight": 1.0, "inmodal_weight": 1.0, "text_drop": 0.2}

    def setup(self, train: Dataset) -> None:
        from ..views import create_views

        if not hasattr(train, "side"):
            raise ContrastkitError("cleanclip needs paired data (a PairedDataset)")
        views = []
        for i in range(2):
            side = train.side(i)
            if side.info.kind == "text":
                pair = (TokenDropout(float(self.cfg["text_drop"])), TokenDropout(float(self.cfg["text_drop"])))
            else:
                pair = tuple(create_views(side.info, side, self.cfg, view=v) for v in (1, 2))
            views.append(nn.ModuleList(pair))
        # not named view1/view2: those would be applied to the packed input by the monitors
        self.side_views = nn.ModuleList(views)
        self.raw_views = [side.info.kind != "image" for side in (train.side(0), train.side(1))]

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, Tensor]:
        if not hasattr(self, "side_views"):
            raise ContrastkitError("cleanclip is built with the training split (its views need it): cls(encoder, info, cfg, train)")
        self._clamp()
        a, b = batch.x
        za, zb = self.embed_pair(a, b)
        cross = self.cross_modal(za, zb)
        inmodal = []
        for i, x in enumerate((a, b)):
            v1, v2 = (view(x, generator) for view in self.side_views[i])
            z1 = self.encoder.encode(i, v1, raw=self.raw_views[i]).float()
            z2 = self.encoder.encode(i, v2, raw=self.raw_views[i]).float()
            inmodal.append(objectives.clip_loss(z1, z2, self.scale()))
        within = 0.5 * (inmodal[0] + inmodal[1])
        loss = float(self.cfg["clip_weight"]) * cross + float(self.cfg["inmodal_weight"]) * within
        return {"loss": loss, "clip": cross.detach(), "inmodal": within.detach(), **self._logs(za, zb)}


# ------------------------------------------------------------------------ bimodal SogCLR / iSogCLR
class BimodalGlobalState(nn.Module):
    """Per-sample state of the bimodal global contrastive loss (METHODS.md §16; LibAUC `GCLoss_v2`).

    Like `objectives.sogclr.GlobalContrastiveState` (same moving-average normaliser, log-shift, τ update and
    DDP convention), but with one (u, b, τ, m) row per sample *per side*: side-a anchors contrast with the
    other samples' side-b embeddings and vice versa (G − 1 negatives each, no within-side negatives):

        g_i = mean_{j≠i} exp(s_ij / τ_i − b_i),  u_i ← (1 − γ) u_i + γ g_i,  p_ij = sg(exp(s_ij/τ_i − b_i) / u_i)
        loss_i = −s_ii + mean_{j≠i} p_ij s_ij   (side a; side b the same with sᵀ), summed over the two sides

    With γ = 1 the gradient is that of −s_ii + τ_i log mean_{j≠i} exp(s_ij / τ_i) (a per-anchor DCL-form
    CLIP loss). iSogCLR (learn_tau) moves each τ_i by ∇τ_i = log u_i + b_i + ρ − mean_j p_ij s_ij / τ_i.
    """

    def __init__(self, n: int, tau: float = 0.1, gamma: float = 0.9, *, learn_tau: bool = False,
                 rho: float = 0.3, eta: float = 0.01, beta: float = 0.9, tau_min: float = 0.05,
                 tau_max: float = 0.7, grad_clip: float | None = None):
        super().__init__()
        if n < 1:
            raise ValueError(f"BimodalGlobalState needs the training-set size n >= 1, got {n}")
        self.gamma, self.learn_tau = float(gamma), bool(learn_tau)
        self.rho, self.eta, self.beta = float(rho), float(eta), float(beta)
        self.tau_min, self.tau_max = float(tau_min), float(tau_max)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        for side in ("a", "b"):
            self.register_buffer(f"u_{side}", torch.zeros(n))
            self.register_buffer(f"b_{side}", torch.zeros(n))
            self.register_buffer(f"tau_{side}", torch.full((n,), float(tau)))
            self.register_buffer(f"m_{side}", torch.zeros(n))

    def temperatures(self) -> Tensor:
        """(n, 2): each sample's τ as a side-a anchor and as a side-b anchor."""
        return torch.stack([self.tau_a, self.tau_b], 1).detach().clone()

    def forward(self, za: Tensor, zb: Tensor, index: Tensor, gather: bool = True) -> Tensor:
        from ..core import distributed

        with torch.autocast(za.device.type, enabled=False):
            za = torch.nn.functional.normalize(za.float(), dim=1)
            zb = torch.nn.functional.normalize(zb.float(), dim=1)
            dist_on = gather and distributed.is_distributed()
            if dist_on:
                sizes = distributed.all_gather_sizes(za.shape[0], za.device)
                Za, Zb = distributed.all_gather_with_grad(za, sizes), distributed.all_gather_with_grad(zb, sizes)
                offset = sum(sizes[: distributed.rank()])
            else:
                Za, Zb, offset = za, zb, 0
            g = Za.shape[0]
            if g < 2:
                raise ContrastkitError("the bimodal global loss needs a global batch of >= 2 pairs")
            rows = torch.arange(za.shape[0], device=za.device)
            pos = offset + rows
            index = index.to(self.u_a.device)
            total, updates = 0.0, []
            for side, logits in (("a", za @ Zb.T), ("b", zb @ Za.T)):
                loss, upd = self._side(side, logits, rows, pos, index, g)
                total = total + loss
                updates.append(upd)
            loss = _reduce_rows(total, g, dist_on)
            self._write(index, torch.cat(updates, 1), dist_on)
        return loss

    def _side(self, side: str, logits: Tensor, rows: Tensor, pos: Tensor, index: Tensor, g: int):
        n_neg = g - 1
        u, b, tau_all, m = (getattr(self, f"{k}_{side}") for k in ("u", "b", "tau", "m"))
        with torch.no_grad():
            tau = tau_all[index].to(logits.device)[:, None]
            s = logits.detach() / tau
            neg = torch.ones_like(s, dtype=torch.bool)
            neg[rows, pos] = False
            s = torch.where(neg, s, torch.full_like(s, float("-inf")))
            b_cur = s.amax(1)
            u_old, b_old = u[index].to(s.device), b[index].to(s.device)
            seen = u_old > 0
            b_new = torch.where(seen, torch.maximum(b_old, b_cur), b_cur)
            carried = torch.where(seen, u_old * torch.exp(b_old - b_new), torch.zeros_like(u_old))
            gamma = torch.where(seen, torch.full_like(u_old, self.gamma), torch.ones_like(u_old))
            e = torch.exp(s - b_new[:, None])
            u_new = ((1 - gamma) * carried + gamma * e.sum(1) / n_neg).clamp_min(torch.finfo(e.dtype).tiny)
            p = e / u_new[:, None]
            tau_new, m_new = tau[:, 0], m[index].to(s.device)
            if self.learn_tau:
                grad = torch.log(u_new) + b_new + self.rho - (p * s.nan_to_num(neginf=0.0)).sum(1) / n_neg
                if self.grad_clip is not None:
                    grad = grad.clamp(-self.grad_clip, self.grad_clip)
                m_new = (1 - self.beta) * m_new + self.beta * grad
                tau_new = (tau_new - self.eta * m_new).clamp(self.tau_min, self.tau_max)
        loss = -logits[rows, pos] + (p * logits).sum(1) / n_neg
        return loss, torch.stack([u_new, b_new, tau_new, m_new], 1)

    @torch.no_grad()
    def _write(self, index: Tensor, values: Tensor, dist_on: bool) -> None:
        from ..core import distributed

        if dist_on:
            index = distributed.all_gather_with_grad(index.to(values.device))
            values = distributed.all_gather_with_grad(values)
        index, values = index.to(self.u_a.device), values.to(self.u_a.device)
        for k, name in enumerate(("u_a", "b_a", "tau_a", "m_a", "u_b", "b_b", "tau_b", "m_b")):
            getattr(self, name)[index] = values[:, k]


def _reduce_rows(rows: Tensor, global_count: int, dist_on: bool) -> Tensor:
    """Mean over anchors; under DDP the value is the global mean and the gradient W · local sum / G."""
    from ..core import distributed

    if not dist_on:
        return rows.mean()
    local = rows.sum() * (distributed.world_size() / global_count)
    total = distributed.all_reduce_sum(rows.sum().detach()) / global_count
    return local + (total - local).detach()


_GCL: dict[str, Any] = {**_DEFAULTS, "gamma": 0.9, "temperature": 0.1, "learn_logit_scale": False}


@register_method("sogclr_clip")
class SogCLRClip(CLIP):
    summary = "paired data: bimodal SogCLR (per-sample moving-average normaliser per side, fixed τ)"
    defaults: dict[str, Any] = dict(_GCL)

    def __init__(self, encoder, info, cfg, train: Dataset | None = None):
        if not 0.0 < float(cfg["gamma"]) <= 1.0:
            raise ContrastkitError(f"gamma={cfg['gamma']} must be in (0, 1]")
        super().__init__(encoder, info, cfg, train)
        if train is None:
            self.state: BimodalGlobalState | None = None

    def make_state(self, n: int) -> BimodalGlobalState:
        return BimodalGlobalState(n, tau=float(self.cfg["temperature"]), gamma=float(self.cfg["gamma"]))

    def setup(self, train: Dataset) -> None:
        device = next(self.parameters()).device
        self.state = self.make_state(len(train)).to(device)

    def temperatures(self) -> Tensor:
        if self.state is None:
            raise ContrastkitError(f"{self.name}: temperatures exist only after setup(train)")
        return self.state.temperatures()

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, Tensor]:
        if self.state is None:
            raise ContrastkitError(f"{self.name} needs setup(train) first (its state is per sample)")
        a, b = batch.x
        za, zb = self.embed_pair(a, b)
        loss = self.state(za, zb, batch.index)
        out = {"loss": loss}
        with torch.no_grad():
            out["pos_sim"] = torch.nn.functional.cosine_similarity(za, zb).mean()
            if self.state.learn_tau:
                out["tau_mean"] = self.state.tau_a[batch.index.to(self.state.tau_a.device)].mean()
        return out


@register_method("isogclr_clip")
class ISogCLRClip(SogCLRClip):
    summary = "paired data: bimodal iSogCLR (a learned temperature per sample and side)"
    defaults: dict[str, Any] = {**_GCL, "gamma": 0.8, "tau_init": 0.1, "tau_min": 0.05, "tau_max": 1.0,
                                "rho": 0.4, "tau_lr": 0.03, "tau_beta": 0.5, "tau_grad_clip": 3.0}

    def make_state(self, n: int) -> BimodalGlobalState:
        c = self.cfg
        clip = c.get("tau_grad_clip")
        return BimodalGlobalState(
            n, tau=float(c["tau_init"]), gamma=float(c["gamma"]), learn_tau=True, rho=float(c["rho"]),
            eta=float(c["tau_lr"]), beta=float(c["tau_beta"]), tau_min=float(c["tau_min"]),
            tau_max=float(c["tau_max"]), grad_clip=None if clip is None else float(clip))


