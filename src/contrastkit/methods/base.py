"""What a method is: a recipe (views, encoder, heads, objective) with pinned defaults, behind one interface.

The trainer knows no method: it calls `training_step(batch, generator)` and `after_step(step, total_steps)`.
Everything stateful a method owns (EMA targets, queues, per-sample temperatures) must be a parameter or a
registered buffer, so `state_dict()` checkpoints it and a resumed CPU run is bit-identical.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..data.base import Batch, DataInfo
from ..registry import Registry

METHODS: Registry[type["Method"]] = Registry("method")


def register_method(name: str):
    """Class decorator: `@register_method("simclr")` makes the method available by name everywhere."""

    def decorator(cls: type[Method]) -> type[Method]:
        cls.name = name
        return METHODS.register(name)(cls)

    return decorator


class Method(nn.Module):
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # Pinned defaults: method hyper-parameters plus any trainer setting the recipe fixes (lr, optimizer, ...).
    # They are merged over the trainer's defaults and saved in every run's config.yaml.
    defaults: ClassVar[dict[str, Any]] = {}
    needs_labels: ClassVar[bool] = False  # supervised methods (SupCon) refuse unlabelled data
    # the anomaly protocol's centroid: mean of normalised embeddings, or "raw" (CLAN's reference, METHODS §14)
    anomaly_centroid: ClassVar[str] = "normalized"

    def __init__(self, encoder: nn.Module, info: DataInfo, cfg: dict[str, Any]):
        super().__init__()
        self.encoder = encoder
        self.info = info
        self.cfg = cfg

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Return a dict with at least "loss" (a scalar with grad); other entries are logged (detached)."""
        raise NotImplementedError

    def forward(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The engine calls the method itself (so DistributedDataParallel can wrap it): one training step."""
        return self.training_step(batch, generator)

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after each optimizer step (EMA updates, queue maintenance). Default: nothing."""

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups; override to exclude targets or set per-group lr."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def scoring_head(self) -> nn.Module | None:
        """A head (with `.spec`, see heads.ProjectionHead) whose output the anomaly protocol scores instead
        of the encoder's, when the method's objective shapes that space for the score (CLAN). Default: none."""
        return None

    def anomaly_model(self) -> nn.Module:
        """The module whose output the anomaly protocol scores (−cos to the normal centroid): the encoder,
        followed by `scoring_head()` when the method has one."""
        head = self.scoring_head()
        return self.encoder if head is None else nn.Sequential(self.encoder, head)


def method_defaults(name: str) -> dict[str, Any]:
    return dict(METHODS.get(name).defaults)
