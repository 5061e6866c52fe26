"""What a method is: a recipe (views, encoder, heads, objective) with pinned defaults, behind one interface.

The engine knows no method: it calls the method (`training_step(batch, generator)`) and `after_step(step,
total_steps)`. A method is built whole, in one call: `cls(encoder, info, cfg, train)` — its views (which may
need the training split's statistics) and any per-sample state exist when the constructor returns.
Everything stateful a method owns (EMA targets, queues, per-sample temperatures) must be a parameter or a
registered buffer, so `state_dict()` checkpoints it and a resumed CPU run is bit-identical.

`TwoViewMethod` is the recipe most methods share — two views → encoder → projection head → objective(z1, z2) —
so a method file keeps only what differs (its defaults and its objective).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..data.base import Batch, DataInfo, Dataset
from ..errors import ContrastkitError
from ..heads import ProjectionHead
from ..registry import Registry
from ..views import create_views

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
    # data kinds the recipe trains on; None: every kind whose batches are one tensor (all but "paired")
    kinds: ClassVar[tuple[str, ...] | None] = None
    # The paper's image views where they differ from SimCLR's (views/image.py); the user's settings win.
    # `image_recipe` applies at every size, `image_recipe_large` to images of 64 px and more only (blur and
    # ImageNet-strength jitter belong there; small images keep the CIFAR-style defaults).
    image_recipe: ClassVar[dict[str, Any]] = {}
    image_recipe_large: ClassVar[dict[str, Any]] = {}

    @classmethod
    def defaults_for(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults that depend on other settings the user gave (e.g. DCL's τ); the user's values still win."""
        return {}
    # the anomaly protocol's centroid: mean of normalised embeddings, or "raw" (CLAN's reference, METHODS §14)
    anomaly_centroid: ClassVar[str] = "normalized"

    def __init__(self, encoder: nn.Module, info: DataInfo, cfg: dict[str, Any], train: Dataset | None = None):
        super().__init__()
        self.encoder = encoder
        self.info = info
        self.cfg = cfg

    def view_settings(self) -> dict[str, Any]:
        """cfg with the method's image recipe under the user's own view settings."""
        if self.info.kind != "image" or not (self.image_recipe or self.image_recipe_large):
            return self.cfg
        small = min(self.info.shape[1:]) < 64
        recipe = {**self.image_recipe, **({} if small else self.image_recipe_large)}
        return {**recipe, **{k: v for k, v in self.cfg.items() if v is not None}}

    def make_views(self, train: Dataset) -> tuple[nn.Module, nn.Module]:
        """The recipe's two view modules for this data (`views.create_views`)."""
        cfg = self.view_settings()
        return (create_views(self.info, train, cfg, view=1), create_views(self.info, train, cfg, view=2))

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

    def projection_head(self) -> nn.Module | None:
        """The head after the encoder whose output the objective compares (a `ProjectionHead`, with `.spec`),
        saved with the encoder so `--layer projection` can evaluate its output; None when the method has no
        such head or it cannot be rebuilt from a spec."""
        head = getattr(self, "head", None)
        return head if isinstance(head, nn.Module) and hasattr(head, "spec") else None

    def anomaly_model(self) -> nn.Module:
        """The module whose output the anomaly protocol scores (−cos to the normal centroid): the encoder,
        followed by `scoring_head()` when the method has one."""
        head = self.scoring_head()
        return self.encoder if head is None else nn.Sequential(self.encoder, head)


class TwoViewMethod(Method):
    """Two views of the batch → the encoder (one forward over both, so BatchNorm sees both views, as in the
    reference code) → a projection head → `objective(z1, z2, batch)`. Subclasses set `defaults` and the
    objective; `logs` adds what is worth logging."""

    def __init__(self, encoder: nn.Module, info: DataInfo, cfg: dict[str, Any], train: Dataset):
        super().__init__(encoder, info, cfg, train)
        self.head = self.build_head()
        self.view1, self.view2 = self.make_views(train)

    def build_head(self) -> nn.Module:
        c = self.cfg
        return ProjectionHead(self.encoder.out_dim, int(c["proj_hidden_dim"]), int(c["proj_dim"]),
                              num_layers=int(c.get("proj_layers") or 2))

    def project(self, batch: Batch, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        v1, v2 = self.view1(batch.x, generator), self.view2(batch.x, generator)
        return self.head(self.encoder(torch.cat([v1, v2]))).float().chunk(2)

    def objective(self, z1: torch.Tensor, z2: torch.Tensor, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def logs(self, z1: torch.Tensor, z2: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        return {"pos_sim": torch.nn.functional.cosine_similarity(z1, z2).mean()}

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        z1, z2 = self.project(batch, generator)
        return {"loss": self.objective(z1, z2, batch), **self.logs(z1.detach(), z2.detach(), batch)}


ALL_KINDS = ("image", "table", "series", "graph", "paired")


def method_kinds(cls: type[Method]) -> tuple[str, ...]:
    return cls.kinds if cls.kinds is not None else tuple(k for k in ALL_KINDS if k != "paired")


def check_method_fits(name: str, info: DataInfo) -> None:
    """One clear error when the method cannot train on this kind of data, naming the methods that can."""
    if info.kind in method_kinds(METHODS.get(name)):
        return
    fits = [n for n in METHODS.names() if info.kind in method_kinds(METHODS.get(n))]
    raise ContrastkitError(f"method {name!r} trains on {', '.join(method_kinds(METHODS.get(name)))} data, and "
                           f"{info.name!r} is {info.kind} data; methods for {info.kind} data: {', '.join(fits)}")


def method_defaults(name: str) -> dict[str, Any]:
    return dict(METHODS.get(name).defaults)
