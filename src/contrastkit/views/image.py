"""Image views: the SimCLR/BYOL augmentation recipe as one batched module with per-sample randomness.

    views = image_views(info, cfg, view=1)      # an nn.Module
    v1 = views(x_uint8, generator)              # (B, C, S, S) float32, normalised like ImagePreprocess

The recipe is torchvision's per-sample pipeline, reproduced for a whole batch on the batch's device:

    RandomResizedCrop(S, scale, ratio, antialias=True) → RandomHorizontalFlip(flip_p)
    → RandomApply(ColorJitter(b, c, s, h), jitter_p)    (the four ops in a random order per sample)
    → RandomGrayscale(grayscale_p) → RandomApply(GaussianBlur(k, sigma), blur_p)
    → RandomSolarize(0.5, solarize_p) → ToTensor → Normalize(mean, std)

Every random number comes from the generator passed to `forward` (same seed ⇒ same views). Pixels stay
float in [0, 1] throughout and each op follows torchvision's tensor definition (`_image_ops.py` names it);
torchvision's PIL path differs only by rounding to uint8 after each op. The tests check every op, and the
whole recipe's output distribution, against slow per-sample references.

Settings (flat cfg keys, each optional). "Small" images have a shorter side below 64 px (MNIST, CIFAR):

    image_size          input height (output is image_size × image_size)
    crop_scale          (0.08, 1.0); small: (0.2, 1.0), as 0.08 of a 32-px image is a 9-px crop
    crop_ratio          (3/4, 4/3)
    flip_p              0.5
    jitter_p            0.8
    jitter_strength     SimCLR's s: 1.0 → (0.8, 0.8, 0.8, 0.2); small: s = 0.5 → (0.4, 0.4, 0.4, 0.1).
                        A number s means (0.8s, 0.8s, 0.8s, 0.2s); four numbers are ColorJitter's
                        (brightness, contrast, saturation, hue), e.g. BYOL's (0.4, 0.4, 0.2, 0.1)
    grayscale_p         0.2 (RGB only)
    blur_p              0.5; small: 0.0 (SimCLR blurs ImageNet-size images, not CIFAR)
    blur_sigma          (0.1, 2.0)
    blur_kernel         10 % of image_size made odd, at least 3 (23 at 224, 9 at 96, 7 at 64, 3 at 32)
    solarize_p          0.0
    solarize_threshold  0.5

Any probability (flip_p, jitter_p, grayscale_p, blur_p, solarize_p) may be a pair (view 1, view 2) for
asymmetric recipes, e.g. BYOL: blur_p = (1.0, 0.1), solarize_p = (0.0, 0.2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Integral, Real
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from ..data.base import DataInfo
from ..core import random as per_sample
from ..errors import ContrastkitError
from . import _image_ops as ops

__all__ = [
    "ImagePreprocess",
    "ImageViewConfig",
    "ImageViews",
    "image_view_config",
    "image_view_defaults",
    "image_views",
]

SMALL_IMAGE = 64  # images whose shorter side is below this get the CIFAR-style defaults


# --------------------------------------------------------------------------------------------------------
# Normalisation (the evaluation transform)
# --------------------------------------------------------------------------------------------------------


def _mean_std(info: DataInfo) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if info.kind != "image" or len(info.shape) != 3:
        raise ContrastkitError(
            f"image views need DataInfo(kind='image', shape=(C, H, W)); "
            f"got kind={info.kind!r}, shape={info.shape}"
        )
    c = info.shape[0]
    if c not in (1, 3):
        raise ContrastkitError(f"images must have 1 or 3 channels; {info.name!r} has shape {info.shape}")
    mean = tuple(info.mean) if info.mean is not None else (0.5,) * c
    std = tuple(info.std) if info.std is not None else (0.5,) * c
    if len(mean) != c or len(std) != c:
        raise ContrastkitError(
            f"{info.name!r}: mean and std need {c} values (one per channel); got {mean} and {std}"
        )
    if any(s <= 0 for s in std):
        raise ContrastkitError(f"{info.name!r}: std must be > 0 for every channel; got {std}")
    return mean, std


class _Normalize(nn.Module):
    def __init__(self, info: DataInfo):
        super().__init__()
        mean, std = _mean_std(info)
        for name, value in (("mean", mean), ("std", std)):
            column = torch.tensor(value, dtype=torch.float32).view(1, -1, 1, 1)
            self.register_buffer(name, column, persistent=False)

    def normalize_(self, y: torch.Tensor) -> torch.Tensor:
        """(y − mean) / std in place, for float y in [0, 1]."""
        return y.sub_(self.mean.to(y.device)).div_(self.std.to(y.device))


class ImagePreprocess(_Normalize):
    """Evaluation transform: uint8 (B, C, H, W) → float32 (x/255 − mean)/std per channel (0.5/0.5 if unknown).

    Float input is taken to be in [0, 1] already.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float() / 255.0 if x.dtype == torch.uint8 else x.float().clone()
        return self.normalize_(y)


# --------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageViewConfig:
    """One view's resolved recipe, every setting explicit (what a run saves in config.yaml)."""

    image_size: int
    crop_scale: tuple[float, float]
    crop_ratio: tuple[float, float]
    flip_p: float
    jitter_p: float
    jitter_strength: tuple[float, float, float, float]  # brightness, contrast, saturation, hue
    grayscale_p: float
    blur_p: float
    blur_sigma: tuple[float, float]
    blur_kernel: int
    solarize_p: float
    solarize_threshold: float

    def as_dict(self) -> dict[str, Any]:
        """Plain types only (tuples become lists), ready for yaml.safe_dump."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def image_view_defaults(info: DataInfo) -> dict[str, Any]:
    """The default recipe for this data, before cfg overrides (blur_kernel None: 10 % of image_size)."""
    _mean_std(info)
    small = min(info.shape[1], info.shape[2]) < SMALL_IMAGE
    s = 0.5 if small else 1.0
    return {
        "image_size": int(info.shape[1]),
        "crop_scale": (0.2, 1.0) if small else (0.08, 1.0),
        "crop_ratio": (3 / 4, 4 / 3),
        "flip_p": 0.5,
        "jitter_p": 0.8,
        "jitter_strength": (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s),
        "grayscale_p": 0.2,
        "blur_p": 0.0 if small else 0.5,
        "blur_sigma": (0.1, 2.0),
        "blur_kernel": None,
        "solarize_p": 0.0,
        "solarize_threshold": 0.5,
    }


def _bad(key: str, value: Any, need: str) -> ContrastkitError:
    return ContrastkitError(f"image views: cfg[{key!r}] = {value!r} is invalid; it must be {need}")


def _is_pair(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, str)


def _number(key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(float(v)):
        raise _bad(key, v, "a finite number")
    return float(v)


def _prob(key: str, v: Any, view: int) -> float:
    p = v
    if _is_pair(v):
        if len(v) != 2:
            raise _bad(key, v, "a probability, or a pair of them (view 1, view 2)")
        p = v[view - 1]
    p = _number(key, p)
    if not 0.0 <= p <= 1.0:
        raise _bad(key, v, "a probability in [0, 1], or a pair of them (view 1, view 2)")
    return p


def _range(key: str, v: Any, hi: float) -> tuple[float, float]:
    if not _is_pair(v) or len(v) != 2:
        raise _bad(key, v, "a pair (min, max)")
    a, b = _number(key, v[0]), _number(key, v[1])
    if not 0.0 < a <= b <= hi:
        raise _bad(key, v, f"a pair (min, max) with 0 < min ≤ max ≤ {hi}")
    return a, b


def _jitter_strength(v: Any) -> tuple[float, float, float, float]:
    need = "a number s ≥ 0 or four numbers ≥ 0 (brightness, contrast, saturation, hue ≤ 0.5)"
    if isinstance(v, Real) and not isinstance(v, bool):
        s = _number("jitter_strength", v)
        v = (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
    if not _is_pair(v) or len(v) != 4:
        raise _bad("jitter_strength", v, need)
    b, c, s, h = (_number("jitter_strength", x) for x in v)
    if min(b, c, s, h) < 0 or h > 0.5:
        raise _bad("jitter_strength", v, need)
    return b, c, s, h


def _positive_int(key: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, Integral) or v < 1:
        raise _bad(key, v, "a positive integer")
    return int(v)


def image_view_config(info: DataInfo, cfg: dict[str, Any], view: int = 1) -> ImageViewConfig:
    """Resolve cfg (flat settings; absent or None keys take `image_view_defaults(info)`) for view 1 or 2."""
    if view not in (1, 2):
        raise ContrastkitError(f"image views: view must be 1 or 2; got {view!r}")
    defaults = image_view_defaults(info)

    def get(key: str) -> Any:
        value = cfg.get(key)
        return defaults[key] if value is None else value

    size = _positive_int("image_size", get("image_size"))
    kernel = get("blur_kernel")
    kernel = max(3, int(0.1 * size) // 2 * 2 + 1) if kernel is None else _positive_int("blur_kernel", kernel)
    if kernel % 2 == 0 or kernel >= 2 * size:
        raise _bad("blur_kernel", kernel, f"odd and below twice image_size ({2 * size})")
    return ImageViewConfig(
        image_size=size,
        crop_scale=_range("crop_scale", get("crop_scale"), 1.0),
        crop_ratio=_range("crop_ratio", get("crop_ratio"), math.inf),
        flip_p=_prob("flip_p", get("flip_p"), view),
        jitter_p=_prob("jitter_p", get("jitter_p"), view),
        jitter_strength=_jitter_strength(get("jitter_strength")),
        grayscale_p=_prob("grayscale_p", get("grayscale_p"), view),
        blur_p=_prob("blur_p", get("blur_p"), view),
        blur_sigma=_range("blur_sigma", get("blur_sigma"), math.inf),
        blur_kernel=kernel,
        solarize_p=_prob("solarize_p", get("solarize_p"), view),
        solarize_threshold=_number("solarize_threshold", get("solarize_threshold")),
    )


# --------------------------------------------------------------------------------------------------------
# The view module
# --------------------------------------------------------------------------------------------------------

_JITTER_PLAN_KEYS = (
    "jitter_active", "jitter_factor", "jitter_contrast", "jitter_saturation",
    "jitter_hue", "jitter_hue_on", "jitter_hue_pos",
)


class ImageViews(_Normalize):
    """One view of the recipe for a whole batch: uint8 (B, C, H, W) → float32 (B, C, S, S), normalised.

    `forward(x, generator)` = `apply(x, sample_params(...))`: all per-sample parameters are drawn first,
    in a fixed order, from `generator` (on the generator's device, then moved to x's), so the same
    generator state gives the same views. Without a generator torch's global RNG is used (not
    reproducible). On CPU the pixel work runs in cache-sized chunks of samples grouped by colour-jitter
    schedule; each sample's result does not depend on the grouping.
    """

    cpu_chunk_elements = 1 << 20  # floats per chunk on CPU (4 MiB); accelerators take the whole batch

    def __init__(self, info: DataInfo, config: ImageViewConfig):
        super().__init__(info)
        self.config = config
        self.channels = int(info.shape[0])
        b, c, s, h = config.jitter_strength
        rgb = self.channels == 3
        self._jitter = config.jitter_p > 0 and (b > 0 or c > 0 or (rgb and (s > 0 or h > 0)))
        self._grayscale = rgb and config.grayscale_p > 0

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.as_dict().items())

    def sample_params(
        self, n: int, height: int, width: int, generator: Optional[torch.Generator], device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Every random choice for n samples of size height × width, as (n, ...) tensors on `device`.

        All uniforms come from one draw of (n, K) columns, K fixed by the config, so the same generator
        state gives the same parameters.
        """
        cfg = self.config
        widths = {
            "crop": 22, "flip": 1, "jitter": 9 if self._jitter else 0, "grayscale": int(self._grayscale),
            "blur": 2 if cfg.blur_p > 0 else 0, "solarize": int(cfg.solarize_p > 0),
        }
        u = per_sample.rand((n, sum(widths.values())), generator, device)  # one row per sample, shard-aware
        cols = dict(zip(widths, u.split(list(widths.values()), dim=1)))

        crop = ops.crop_params_from_uniforms(
            cols["crop"][:, :10], cols["crop"][:, 10:20], cols["crop"][:, 20:], height, width,
            cfg.crop_scale, cfg.crop_ratio,
        )
        p = dict(zip(("top", "left", "height", "width"), crop))
        p["flip"] = cols["flip"][:, 0] < cfg.flip_p
        if self._jitter:
            b, c, s, hue = cfg.jitter_strength
            uj = cols["jitter"]
            p["jitter"] = uj[:, 0] < cfg.jitter_p
            p["jitter_order"] = torch.argsort(uj[:, 1:5], dim=1)  # a uniform random permutation per sample
            lo = u.new_tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -hue])
            hi = u.new_tensor([1 + b, 1 + c, 1 + s, hue])
            p["jitter_factors"] = lo + (hi - lo) * uj[:, 5:9]
            order, factors = p["jitter_order"], p["jitter_factors"]
            p.update(ops.jitter_plan(factors, order, p["jitter"], self.channels, use_hue=hue > 0))
        if self._grayscale:
            p["grayscale"] = cols["grayscale"][:, 0] < cfg.grayscale_p
        if cfg.blur_p > 0:
            p["blur"] = cols["blur"][:, 0] < cfg.blur_p
            lo_s, hi_s = cfg.blur_sigma
            p["blur_sigma"] = lo_s + (hi_s - lo_s) * cols["blur"][:, 1]
            kernel = ops.gaussian_kernel1d(p["blur_sigma"], cfg.blur_kernel)
            one_hot = torch.zeros_like(kernel)
            one_hot[:, cfg.blur_kernel // 2] = 1.0  # an exact no-op for samples that are not blurred
            p["blur_kernel"] = torch.where(p["blur"][:, None], kernel, one_hot)
        if cfg.solarize_p > 0:
            p["solarize"] = cols["solarize"][:, 0] < cfg.solarize_p
        return p

    def apply(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """The recipe with the given parameters (deterministic), for a batch or any slice of one."""
        cfg = self.config
        # 1–2. random resized crop and horizontal flip: one antialiased resampling per sample
        divide = 255.0 if x.dtype == torch.uint8 else None
        crop = p["top"], p["left"], p["height"], p["width"]
        y = ops.resized_crop(x, *crop, cfg.image_size, p["flip"], divide)
        # 3. colour jitter (RandomApply), the four ops in each sample's own order
        if "jitter" in p:
            y = ops.apply_jitter_plan(y, {k: p[k] for k in _JITTER_PLAN_KEYS if k in p}, inplace=True)
        # 4. random grayscale
        if "grayscale" in p:
            y = ops.random_grayscale(y, p["grayscale"], out=y)
        # 5. gaussian blur with a per-sample sigma
        if "blur" in p:
            y = _on_samples(y, p["blur"], p["blur_kernel"], ops.gaussian_blur)
        # 6. solarize
        if "solarize" in p:
            y = ops.solarize(y, p["solarize"], cfg.solarize_threshold, out=y)
        return self.normalize_(y)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        # views are computed in fp32 whatever the step's autocast (the blur's conv would otherwise come back
        # in bf16 and mix dtypes); the encoder casts their output itself
        with torch.autocast(x.device.type, enabled=False):
            return self._views(x, generator)

    def _views(self, x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ContrastkitError(
                f"image views expect a batch (B, {self.channels}, H, W); "
                f"got a tensor of shape {tuple(x.shape)}"
            )
        n, c, height, width = x.shape
        params = self.sample_params(n, height, width, generator, x.device)
        if not ops.host_path(x):
            return self.apply(x, params)
        size = self.config.image_size
        chunk = max(1, self.cpu_chunk_elements // (c * max(height * width, size * size)))
        if chunk >= n:
            return self.apply(x, params)
        if "jitter" in params:  # same jitter schedule → same chunk, in order (see ops.apply_jitter_plan)
            order = torch.argsort(ops.jitter_group_key(params), stable=True)
        else:
            order = torch.arange(n)
        out = torch.empty(n, c, size, size, dtype=torch.float32)
        for i in range(0, n, chunk):
            sel = order[i : i + chunk]
            out[sel] = self.apply(x[sel], {k: v[sel] for k, v in params.items()})
        return out


def _on_samples(
    y: torch.Tensor,
    mask: torch.Tensor,
    param: torch.Tensor,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """fn(y, param) for the masked samples, where fn is an exact no-op for the others given their param.

    Accelerators run the whole batch (no host sync); on CPU only the masked samples are computed.
    """
    if not ops.host_path(y):
        return fn(y, param)
    idx = mask.nonzero().squeeze(1)
    if idx.numel() == y.shape[0]:
        return fn(y, param)
    if idx.numel() > 0:
        y[idx] = fn(y[idx], param[idx])
    return y


def image_views(info: DataInfo, cfg: dict[str, Any], view: int = 1) -> ImageViews:
    """The view module for view 1 or 2 of the recipe in cfg (keys and defaults: this module's docstring)."""
    return ImageViews(info, image_view_config(info, cfg, view))
