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

Pinned defaults (both): AdamW lr 1e-3 without batch scaling, weight decay 0.1, batch 128, 1-epoch warm-up
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

__all__ = ["CLIP", "CleanCLIP", "TokenDropout"]

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
    defaults: dict[str, Any] = dict(_DEFAULTS)

    def __init__(self, encoder, info, cfg):
        super().__init__(encoder, info, cfg)
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
            raise ContrastkitError("cleanclip needs setup(train) first (it builds each side's views)")
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


from ..evaluate import paired as _paired_evaluation  # noqa: E402,F401  (registers the "paired" evaluation)
