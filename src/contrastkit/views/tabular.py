"""Tabular views (METHODS §19): batched modules over (B, F) float tables, randomness from an explicit generator.

The table layout is the one `contrastkit.data.table` produces: standardised numeric columns at
`info.extra["numeric_index"]`, categorical codes (floats holding integers) at `info.extra["categorical_index"]`,
with `info.extra["cardinalities"][k] - 1` valid training categories (codes 0..card-2) and code card-1
reserved for unknown / masked values. A table without that metadata (e.g. an .npy matrix) is all numeric.

* `ScarfCorruption(train_x, rate)` — SCARF (Bahri et al. 2022): in each row a random subset of exactly
  ⌊rate·M⌋ of the M features is replaced, each by the same column's value in an independently drawn random
  training row, i.e. a draw from that feature's empirical marginal. `exact=False` replaces each feature
  independently with probability `rate` instead (contrastkit ≤ 0.x's sampling). The training matrix is kept as a
  (non-persistent) buffer, so every replaced value occurs in that column of the training data and categoricals
  stay in their training set.
* `GaussianNoise(std)` — adds N(0, std²) to the numeric columns only (they are standardised: std is in σ units).
* `FeatureMask(rate)` — sets each feature with probability `rate` to the "missing" token: 0 for a numeric
  column (its training mean) and the reserved code for a categorical column.
* `ClanAugment(p_f, low, high)` — CLAN's augmented negative (METHODS §14): each feature with probability p_f
  is replaced by U(low, high) (default U(−1.7, 1.7), standardised units) for numeric columns and by a uniformly
  drawn valid training category for categorical ones. `fit_training_range(train_x)` switches the numeric draw
  to U(min_j, max_j) of each training column j (cfg `aug_range: train`, see methods/clan.py for why).
* `TableViews(*modules)` — applies them in order: corruption → noise → mask.

Every module's `forward(x, generator)` draws all random numbers from `generator` (a torch.Generator on x's
device; None → the global RNG), so the same seed gives the same output. A rate of 0 returns x unchanged.

`table_views(info, train, cfg, view)` reads cfg keys `corruption_rate` (default 0.6), `noise_std` (0.0) and
`mask_rate` (0.0); each may be a pair [view1, view2] to give the two views different strengths.
`corruption_rate` follows SCARF (METHODS §19): one number c corrupts only the positive — view 1 is the anchor,
left intact; view 2 gets ⌊c·M⌋ features replaced — so each feature is intact in both views with probability
1 − c (0.4), not (1 − c)² (0.16). The former default, both views corrupted, is `corruption_rate: [0.6, 0.6]`.
(CLAN does not use these views: its negative is `ClanAugment`, METHODS §14.) `noise_std` and `mask_rate`, given
as one number, apply to both views.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from torch import nn

from ..core import random as per_sample
from ..data.base import DataInfo, Dataset
from ..errors import ContrastkitError

__all__ = ["ScarfCorruption", "GaussianNoise", "FeatureMask", "ClanAugment", "TableViews", "table_views",
           "table_layout"]


def table_layout(info: DataInfo) -> tuple[list[int], list[int], list[int]]:
    """(numeric_index, categorical_index, cardinalities) of a table; no metadata → every column numeric."""
    extra = info.extra or {}
    n_features = int(info.shape[0]) if info.shape else 0
    if "numeric_index" not in extra:
        return list(range(n_features)), [], []
    return list(extra["numeric_index"]), list(extra["categorical_index"]), list(extra["cardinalities"])


def _rand(shape: Sequence[int], x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    return per_sample.rand(shape, generator, x.device)  # shard-aware: see core/random.py


def _check_rate(name: str, rate: float) -> float:
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ContrastkitError(f"{name}={rate} must be a probability in [0, 1]")
    return rate


STREAMED_POOL_ROWS = 65_536  # a table streamed from disk lends a seeded sample of its rows as SCARF's pool


class ScarfCorruption(nn.Module):
    """Replace ⌊rate·M⌋ random features of each row (`exact`, SCARF) — or each entry with probability `rate`
    (`exact=False`) — by the same column of a uniformly random training row (of a seeded sample of
    `STREAMED_POOL_ROWS` rows when the table is streamed from disk: it need not fit in memory)."""

    def __init__(self, train_x: torch.Tensor, rate: float = 0.6, exact: bool = True):
        super().__init__()
        if not isinstance(train_x, torch.Tensor) and train_x.dim() == 2:
            n = train_x.shape[0]
            keep = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:STREAMED_POOL_ROWS]
            train_x = train_x[keep.sort().values.numpy()]
        if train_x.dim() != 2 or train_x.shape[0] == 0:
            raise ContrastkitError(f"SCARF corruption needs a non-empty (N, F) training table, "
                                   f"got {tuple(train_x.shape)}")
        self.rate = _check_rate("corruption_rate", rate)
        self.exact = bool(exact)
        # not persistent: the training data is not part of a checkpoint
        self.register_buffer("pool", train_x.detach().float().clone(), persistent=False)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.rate == 0.0:
            return x
        b, f = x.shape
        r = _rand((b, f), x, generator)
        if self.exact:
            k = min(f, math.floor(self.rate * f + 1e-9))  # ⌊c·M⌋ (1e-9: 0.29·100 is 28.999…)
            mask = torch.zeros((b, f), dtype=torch.bool, device=x.device)
            if k > 0:
                mask.scatter_(1, r.topk(k, dim=1, largest=False).indices, True)
        else:
            mask = r < self.rate
        rows = per_sample.randint(self.pool.shape[0], (b, f), generator, x.device)
        pool = self.pool.to(x.device)
        replacement = pool[rows, torch.arange(f, device=x.device).expand(b, f)].to(x.dtype)
        return torch.where(mask, replacement, x)

    def extra_repr(self) -> str:
        return f"rate={self.rate}, {'exact' if self.exact else 'bernoulli'}, pool={tuple(self.pool.shape)}"


class GaussianNoise(nn.Module):
    """x[:, numeric] += std · N(0, 1); categorical columns untouched."""

    def __init__(self, numeric_index: Sequence[int], std: float = 0.0):
        super().__init__()
        if float(std) < 0:
            raise ContrastkitError(f"noise_std={std} must be >= 0")
        self.std = float(std)
        self.register_buffer("numeric", torch.as_tensor(list(numeric_index), dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.std == 0.0 or self.numeric.numel() == 0:
            return x
        idx = self.numeric.to(x.device)
        noise = per_sample.randn((x.shape[0], idx.numel()), generator, x.device)
        out = x.clone()
        out[:, idx] = x[:, idx] + self.std * noise.to(x.dtype)
        return out

    def extra_repr(self) -> str:
        return f"std={self.std}"


class FeatureMask(nn.Module):
    """Each entry with prob `rate` → the missing token: 0 (numeric, = training mean) or the reserved code."""

    def __init__(self, n_features: int, categorical_index: Sequence[int], cardinalities: Sequence[int],
                 rate: float = 0.0):
        super().__init__()
        self.rate = _check_rate("mask_rate", rate)
        token = torch.zeros(n_features)
        for j, card in zip(categorical_index, cardinalities):
            token[j] = float(card - 1)
        self.register_buffer("token", token, persistent=False)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.rate == 0.0:
            return x
        mask = _rand(x.shape, x, generator) < self.rate
        return torch.where(mask, self.token.to(x.device, x.dtype).expand_as(x), x)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class ClanAugment(nn.Module):
    """CLAN's negative: each entry with prob p_f → U(low_j, high_j) (numeric) or a uniform valid category.

    `low`/`high` are one number for every column (the reference's U(−1.7, 1.7)) or one per column;
    `fit_training_range(train_x)` sets them to each column's training min / max (cfg `aug_range: train`).
    """

    def __init__(self, n_features: int, categorical_index: Sequence[int], cardinalities: Sequence[int],
                 p_f: float = 0.1, low: float = -1.7, high: float = 1.7, min_features: int = 0):
        super().__init__()
        self.p_f = _check_rate("p_f", p_f)
        if not 0 <= int(min_features) <= n_features:
            raise ContrastkitError(f"aug_min_features={min_features} must be between 0 and the number of features "
                                   f"({n_features})")
        self.min_features = int(min_features)
        if not float(low) < float(high):
            raise ContrastkitError(f"CLAN augmentation range low={low} must be < high={high}")
        is_cat = torch.zeros(n_features, dtype=torch.bool)
        n_valid = torch.ones(n_features)
        for j, card in zip(categorical_index, cardinalities):
            is_cat[j] = True
            n_valid[j] = float(max(1, card - 1))  # codes 0..card-2 are the training categories
        self.register_buffer("is_cat", is_cat, persistent=False)
        self.register_buffer("n_valid", n_valid, persistent=False)
        self.register_buffer("low", torch.full((n_features,), float(low)), persistent=False)
        self.register_buffer("high", torch.full((n_features,), float(high)), persistent=False)
        self.range_source, self.fixed_range = "fixed", (float(low), float(high))

    @torch.no_grad()
    def fit_training_range(self, train_x, info: Optional[DataInfo] = None) -> None:
        """Numeric replacements drawn from U(min_j, max_j) of each column j of the training table. A table
        streamed from disk (not a tensor) brings the range its loader computed chunk by chunk
        (`info.extra["feature_min"/"feature_max"]`), so the whole table is never read at once."""
        extra = (info.extra or {}) if info is not None else {}
        if not isinstance(train_x, torch.Tensor) and "feature_min" in extra and "feature_max" in extra:
            train_x = torch.tensor([extra["feature_min"], extra["feature_max"]], dtype=torch.float32)
        if not isinstance(train_x, torch.Tensor) or train_x.dim() != 2 or train_x.shape[1] != self.low.numel() or train_x.shape[0] == 0:
            raise ContrastkitError(f"aug_range: train needs the (N, {self.low.numel()}) training table, got shape "
                                   f"{tuple(getattr(train_x, 'shape', ()))}")
        x = train_x.detach().float()
        low, high = x.min(0).values.to(self.low.device), x.max(0).values.to(self.low.device)
        # a constant column (an .npy table is not checked for them) gets a tiny range instead of an empty one
        high = torch.where(high > low, high, low + 1e-6)
        self.low.copy_(low)
        self.high.copy_(high)
        self.range_source = "train"

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.p_f == 0.0 and self.min_features == 0:
            return x
        r = _rand(x.shape, x, generator)
        mask = r < self.p_f
        if self.min_features > 0:
            # also replace the `min_features` features with the smallest draws: rows keep their p_f-chosen
            # features and get at least min_features replaced ones (never an unchanged "negative")
            smallest = r.topk(self.min_features, dim=1, largest=False).indices
            mask = mask.scatter(1, smallest, True)
        u = _rand(x.shape, x, generator)
        low, high = self.low.to(x.device), self.high.to(x.device)
        numeric = low + (high - low) * u
        n_valid = self.n_valid.to(x.device)
        categorical = torch.minimum(torch.floor(u * n_valid), n_valid - 1)
        replacement = torch.where(self.is_cat.to(x.device), categorical, numeric).to(x.dtype)
        return torch.where(mask, replacement, x)

    def extra_repr(self) -> str:
        if self.range_source == "train":
            bounds = "range=training min/max per column"
        else:
            bounds = f"low={self.fixed_range[0]}, high={self.fixed_range[1]}"
        return f"p_f={self.p_f}, {bounds}, min_features={self.min_features}"


class TableViews(nn.Module):
    """Apply tabular view modules in order, all drawing from the same generator."""

    def __init__(self, *modules: nn.Module):
        super().__init__()
        self.steps = nn.ModuleList(modules)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        for step in self.steps:
            x = step(x, generator)
        return x


def _per_view(cfg: dict[str, Any], key: str, default: float, view: int, anchor_view_1: bool = False) -> float:
    """The setting for `view`; a pair gives each view its own. With `anchor_view_1`, one number applies to
    view 2 only (view 1 is SCARF's intact anchor)."""
    value = cfg.get(key, default)
    if value is None:
        value = default
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ContrastkitError(f"{key}={value!r}: give one number or a pair [view1, view2]")
        return float(value[view - 1])
    if anchor_view_1 and view == 1:
        _check_rate(key, float(value))
        return 0.0
    return float(value)


def table_views(info: DataInfo, train: Dataset, cfg: dict[str, Any], view: int = 1) -> nn.Module:
    """SCARF corruption (+ optional Gaussian noise and masking) for view `view` (1 or 2) of a table."""
    if view not in (1, 2):
        raise ContrastkitError(f"view must be 1 or 2, got {view}")
    if train is None or train.x.dim() != 2:
        raise ContrastkitError("tabular views need the training split as an (N, F) table "
                               f"(got {None if train is None else tuple(train.x.shape)})")
    numeric, categorical, cards = table_layout(info)
    n_features = train.x.shape[1]
    return TableViews(
        ScarfCorruption(train.x, _per_view(cfg, "corruption_rate", 0.6, view, anchor_view_1=True)),
        GaussianNoise(numeric, _per_view(cfg, "noise_std", 0.0, view)),
        FeatureMask(n_features, categorical, cards, _per_view(cfg, "mask_rate", 0.0, view)),
    )


def clan_augment(info: DataInfo, cfg: dict[str, Any]) -> ClanAugment:
    """CLAN's augmentation from cfg keys p_f (0.1), aug_low (−1.7), aug_high (1.7), aug_min_features (0)."""
    _, categorical, cards = table_layout(info)
    return ClanAugment(int(info.shape[0]), categorical, cards, p_f=float(cfg.get("p_f", 0.1)),
                       low=float(cfg.get("aug_low", -1.7)), high=float(cfg.get("aug_high", 1.7)),
                       min_features=int(cfg.get("aug_min_features", 0) or 0))
