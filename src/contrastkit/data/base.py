"""The data contracts every modality shares: a split held as tensors, and the batch a training step sees."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import torch

Kind = Literal["image", "table", "series", "graph", "paired"]


@dataclass
class DataInfo:
    """What the encoder and views need to know about the data, without looking at it.

    `shape` is the shape of one sample as stored (images: (C, H, W)); `mean`/`std` are per-channel
    statistics of the training split used to normalise images (floats in [0, 1] units).
    """

    name: str
    kind: Kind
    shape: tuple[int, ...]
    num_classes: Optional[int] = None
    mean: Optional[tuple[float, ...]] = None
    std: Optional[tuple[float, ...]] = None
    extra: dict = field(default_factory=dict)  # modality-specific facts (e.g. table column types)


@dataclass
class Dataset:
    """One split. `x` holds every sample as one tensor (images: uint8 (N, C, H, W)); `y` labels or None.

    Labels are only ever used for evaluation (and by supervised methods such as SupCon).
    """

    x: torch.Tensor
    y: Optional[torch.Tensor]
    info: DataInfo

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> "Dataset":
        y = None if self.y is None else self.y.to(device)
        return Dataset(self.x.to(device), y, self.info)

    def batch(self, index: torch.Tensor) -> "Batch":
        """The samples at `index` (dataset row ids) as the Batch a training step sees. The engine only ever
        reads data through this method, so a modality that is not one tensor (pairs, graphs, data on disk)
        subclasses Dataset and overrides it."""
        return Batch(self.x[index], index, None if self.y is None else self.y[index])


@dataclass
class DataSplits:
    train: Dataset
    test: Dataset

    @property
    def info(self) -> DataInfo:
        return self.train.info


@dataclass
class Batch:
    """What `method.training_step` receives. `index` are dataset row ids (SogCLR state is keyed by them)."""

    x: torch.Tensor
    index: torch.Tensor
    y: Optional[torch.Tensor] = None
