"""Image views: the SimCLR/BYOL augmentation recipe as one batched module with per-sample randomness.

    views = image_views(info, cfg, view=1)          # nn.Module
    v1 = views(x_uint8, generator)                   # (B, C, S, S) float32, normalised like ImagePreprocess

The recipe is torchvision's per-sample pipeline, reproduced for a whole batch on the batch's device:

    RandomResizedCrop(S, scale, ratio, antialias)  → RandomHorizontalFlip(flip_p)
    → RandomApply(ColorJitter(b, c, s, h), jitter_p)   (ops in a random order per sample)
    → RandomGrayscale(grayscale_p)  → RandomApply(GaussianBlur(k, sigma), blur_p)  → RandomSolarize(0.5, solarize_p)
    → ToTensor → Normalize(mean, std)

Every random number comes from the generator passed to `forward` (same seed ⇒ same views). The pixel work
is done in float in [0, 1] (torchvision's PIL path rounds to uint8 after each op; that is the only difference).
See `_image_ops.py` for each op and the torchvision definition it follows.

Defaults (cfg keys; "small" means the stored image's shorter side is below 64 px, e.g. MNIST/CIFAR 28–32 px):

    image_size        input height
    crop_scale        (0.08, 1.0); small: (0.2, 1.0)  — 0.08 removes too much of a 32-px image
    crop_ratio        (3/4, 4/3)
    flip_p            0.5
    jitter_p          0.8
    jitter_strength   SimCLR s = 1.0 → (0.8, 0.8, 0.8, 0.2); small: s = 0.5 → (0.4, 0.4, 0.4, 0.1).
                      A number s means (0.8s, 0.8s, 0.8s, 0.2s); four numbers are (brightness, contrast,
                      saturation, hue) as in ColorJitter (BYOL: (0.4, 0.4, 0.2, 0.1)).
    grayscale_p       0.2 (RGB only)
    blur_p            0.5; small: 0.0 (SimCLR blurs ImageNet, not CIFAR)
    blur_sigma        (0.1, 2.0)
    blur_kernel       odd size nearest below 10 % of image_size (23 at 224, 9 at 96, 3 at 32)
    solarize_p        0.0
    solarize_threshold 0.5

Any probability (flip_p, jitter_p, grayscale_p, blur_p, solarize_p) may be a pair (view 1, view 2) for
asymmetric recipes, e.g. BYOL: blur_p = (1.0, 0.1), solarize_p = (0.0, 0.2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Integral, Real
from typing import Any, Optional, Sequence

import torch
from torch import nn

from ..data.base import DataInfo
from ..errors import ContrastkitError
from . import _image_ops as ops

SMALL_IMAGE = 64  # images whose shorter side is below this get the CIFAR-style defaults

__all__ = [
    "ImagePreprocess",
    "ImageViews",
    "ImageViewConfig",
    "image_views",
    "image_view_config",
    "image_view_defaults",
]


# --------------------------------------------------------------------------------------------------------
# Normalisation (the evaluation transform)
# --------------------------------------------------------------------------------------------------------


def _mean_std(info: DataInfo) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if info.kind != "image" or len(info.shape) != 3:
        raise ContrastkitError(
            f"image views need DataInfo(kind='image', shape=(C, H, W)); got kind={info.kind!r}, shape={info.shape}"
        )
    c = info.shape[0]
    if c not in (1, 3):
        raise ContrastkitError(f"images must have 1 or 3 channels; {info.name!r} has shape {info.shape}")
    mean = tuple(info.mean) if info.mean is not None else (0.5,) * c
    std = tuple(info.std) if info.std is not None else (0.5,) * c
    if len(mean) != c or len(std) != c:
        raise ContrastkitError(f"{info.name!r}: mean/std need {c} values (one per channel); got {mean}, {std}")
    if any(s <= 0 for s in std):
        raise ContrastkitError(f"{info.name!r}: std must be > 0 per channel; got {std}")
    return mean, std


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 → float32 in [0, 1]; float input is taken to be in [0, 1] already."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


class _Normalize(nn.Module):
    def __init__(self, info: DataInfo):
        super().__init__()
        mean, std = _mean_std(info)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def normalize(self, y: torch.Tensor) -> torch.Tensor:
        """(y − mean) / std for float y in [0, 1] (one fused pass: y·(1/std) − mean/std)."""
        scale = self.std.to(y.device).reciprocal()
        return torch.addcmul(-self.mean.to(y.device) * scale, y, scale)


class ImagePreprocess(_Normalize):
    """Evaluation transform: uint8 (B, C, H, W) → float32 (x/255 − mean)/std, per channel (0.5/0.5 if unknown)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(_to_unit(x))


# --------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageViewConfig:
    """One view's resolved recipe (every setting explicit, as saved in config.yaml)."""

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
        return asdict(self)


def _is_small(info: DataInfo) -> bool:
    return min(info.shape[1], info.shape[2]) < SMALL_IMAGE


def _default_blur_kernel(image_size: int) -> int:
    return max(3, int(0.1 * image_size) // 2 * 2 + 1)


def image_view_defaults(info: DataInfo) -> dict[str, Any]:
    """The default recipe for this data (both views), before any cfg override."""
    _mean_std(info)
    small = _is_small(info)
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
        "blur_kernel": None,  # resolved from image_size
        "solarize_p": 0.0,
        "solarize_threshold": 0.5,
    }


def _bad(key: str, value: Any, need: str) -> ContrastkitError:
    return ContrastkitError(f"image views: cfg[{key!r}] = {value!r} is invalid; it must be {need}")


def _number(key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(float(v)):
        raise _bad(key, v, "a finite number")
    return float(v)


def _prob(key: str, v: Any, view: int) -> float:
    if isinstance(v, Sequence) and not isinstance(v, str):
        if len(v) != 2:
            raise _bad(key, v, "a probability or a pair (view 1, view 2) of probabilities")
        v = v[view - 1]
    p = _number(key, v)
    if not 0.0 <= p <= 1.0:
        raise _bad(key, v, "a probability in [0, 1] (or a pair of them, one per view)")
    return p


def _pair(key: str, v: Any, lo: float, hi: float, strict_lo: bool = False) -> tuple[float, float]:
    if not isinstance(v, Sequence) or isinstance(v, str) or len(v) != 2:
        raise _bad(key, v, "a pair (min, max)")
    a, b = _number(key, v[0]), _number(key, v[1])
    if a > b or a < lo or b > hi or (strict_lo and a <= lo):
        raise _bad(key, v, f"a pair (min, max) with {lo} {'<' if strict_lo else '≤'} min ≤ max ≤ {hi}")
    return a, b


def image_view_config(info: DataInfo, cfg: dict[str, Any], view: int = 1) -> ImageViewConfig:
    """Resolve cfg (flat settings; absent keys take `image_view_defaults(info)`) for view 1 or 2."""
    if view not in (1, 2):
        raise ContrastkitError(f"image views: view must be 1 or 2; got {view!r}")
    d = image_view_defaults(info)

    def get(key: str) -> Any:
        value = cfg.get(key)
        return d[key] if value is None else value

    size = get("image_size")
    if isinstance(size, bool) or not isinstance(size, Integral) or size < 1:
        raise _bad("image_size", size, "a positive integer (output side in pixels)")
    js = get("jitter_strength")
    if isinstance(js, Real) and not isinstance(js, bool):
        s = _number("jitter_strength", js)
        if s < 0:
            raise _bad("jitter_strength", js, "a number ≥ 0 or four numbers (brightness, contrast, saturation, hue)")
        js = (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
    if not isinstance(js, Sequence) or isinstance(js, str) or len(js) != 4:
        raise _bad("jitter_strength", js, "a number s or four numbers (brightness, contrast, saturation, hue)")
    js = tuple(_number("jitter_strength", v) for v in js)
    if min(js) < 0 or js[3] > 0.5:
        raise _bad("jitter_strength", js, "non-negative, with hue ≤ 0.5")
    size = int(size)
    kernel = cfg.get("blur_kernel") or _default_blur_kernel(size)
    if isinstance(kernel, bool) or not isinstance(kernel, Integral) or kernel % 2 == 0 or not 1 <= kernel < 2 * size:
        raise _bad("blur_kernel", kernel, f"an odd positive integer below twice image_size ({2 * size})")
    kernel = int(kernel)
    return ImageViewConfig(
        image_size=size,
        crop_scale=_pair("crop_scale", get("crop_scale"), 0.0, 1.0, strict_lo=True),
        crop_ratio=_pair("crop_ratio", get("crop_ratio"), 0.0, math.inf, strict_lo=True),
        flip_p=_prob("flip_p", get("flip_p"), view),
        jitter_p=_prob("jitter_p", get("jitter_p"), view),
        jitter_strength=js,  # type: ignore[arg-type]
        grayscale_p=_prob("grayscale_p", get("grayscale_p"), view),
        blur_p=_prob("blur_p", get("blur_p"), view),
        blur_sigma=_pair("blur_sigma", get("blur_sigma"), 0.0, math.inf, strict_lo=True),
        blur_kernel=kernel,
        solarize_p=_prob("solarize_p", get("solarize_p"), view),
        solarize_threshold=_number("solarize_threshold", get("solarize_threshold")),
    )


# --------------------------------------------------------------------------------------------------------
# The view module
# --------------------------------------------------------------------------------------------------------


class ImageViews(_Normalize):
    """One view of the recipe for a whole batch: uint8 (B, C, H, W) → float32 (B, C, S, S), normalised.

    `forward(x, generator)` = `apply(x, sample_params(...))`: every per-sample parameter is drawn first, from
    `generator` (on the generator's device, then moved to x's), so the same generator state gives the same
    views. Without a generator it falls back to torch's global RNG (then not reproducible). On CPU the
    pixel work runs in groups of samples that fit in cache (the result does not depend on the grouping).
    """

    cpu_chunk_elements = 1 << 19  # floats per group on CPU (2 MiB); GPUs take the whole batch

    def __init__(self, info: DataInfo, config: ImageViewConfig):
        super().__init__(info)
        self.config = config
        self.channels = int(info.shape[0])

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.as_dict().items())

    def sample_params(
        self, n: int, height: int, width: int, generator: Optional[torch.Generator], device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Every random choice for n samples, as (n, ...) tensors on `device`. Draw order is fixed."""
        cfg = self.config
        gdev = generator.device if generator is not None else device

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=generator, device=gdev).to(device)

        top, left, h, w = ops.sample_crop_params(n, height, width, cfg.crop_scale, cfg.crop_ratio, generator, device)
        p: dict[str, torch.Tensor] = {"top": top, "left": left, "height": h, "width": w}
        p["flip"] = rand(n) < cfg.flip_p
        if self._jitter_on:
            b, c, s, hue = cfg.jitter_strength
            p["jitter"] = rand(n) < cfg.jitter_p
            p["jitter_order"] = torch.argsort(rand(n, 4), dim=1)  # a uniform random permutation per sample
            lo = torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -hue], device=device)
            hi = torch.tensor([1 + b, 1 + c, 1 + s, hue], device=device)
            p["jitter_factors"] = lo + (hi - lo) * rand(n, 4)
            p.update(ops.jitter_plan(p["jitter_factors"], p["jitter_order"], p["jitter"], self.channels, hue > 0))
        if self.channels == 3 and cfg.grayscale_p > 0:
            p["grayscale"] = rand(n) < cfg.grayscale_p
        if cfg.blur_p > 0:
            apply = rand(n) < cfg.blur_p
            lo_s, hi_s = cfg.blur_sigma
            sigma = lo_s + (hi_s - lo_s) * rand(n)
            kernel = ops.gaussian_kernel1d(sigma, cfg.blur_kernel)
            one_hot = torch.zeros_like(kernel)
            one_hot[:, cfg.blur_kernel // 2] = 1.0
            p["blur"] = apply
            p["blur_sigma"] = sigma
            p["blur_kernel"] = torch.where(apply[:, None], kernel, one_hot)  # one-hot: exactly no blur
        if cfg.solarize_p > 0:
            p["solarize"] = rand(n) < cfg.solarize_p
        return p

    @property
    def _jitter_on(self) -> bool:
        b, c, s, hue = self.config.jitter_strength
        return self.config.jitter_p > 0 and (b > 0 or c > 0 or (self.channels == 3 and (s > 0 or hue > 0)))

    def apply(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """The recipe with given parameters (deterministic), for a batch or any slice of it."""
        cfg = self.config
        # 1–2. random resized crop + horizontal flip: one antialiased resampling per sample
        divide = 255.0 if x.dtype == torch.uint8 else None
        y = ops.resized_crop(x, p["top"], p["left"], p["height"], p["width"], cfg.image_size, p["flip"], divide)
        # 3. colour jitter (RandomApply), ops in a random order per sample
        if "jitter" in p:
            y = ops.apply_jitter_plan(y, {k: p[k] for k in _JITTER_PLAN_KEYS if k in p}, inplace=True)
        # 4. random grayscale (RGB only)
        if "grayscale" in p:
            y = ops.random_grayscale(y, p["grayscale"])
        # 5. gaussian blur, per-sample sigma
        if "blur" in p:
            y = _on_samples(y, p["blur"], {"k": p["blur_kernel"]}, lambda z, q: ops.gaussian_blur(z, q["k"]))
        # 6. solarize
        if "solarize" in p:
            y = ops.solarize(y, p["solarize"], cfg.solarize_threshold)
        return self.normalize(y)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ContrastkitError(
                f"image views expect a batch (B, {self.channels}, H, W); got a tensor of shape {tuple(x.shape)}"
            )
        n, c, height, width = x.shape
        params = self.sample_params(n, height, width, generator, x.device)
        size = self.config.image_size
        chunk = max(1, self.cpu_chunk_elements // (c * max(height * width, size * size)))
        if x.device.type != "cpu" or chunk >= n:
            return self.apply(x, params)
        # Samples with the same colour-jitter schedule go to the same group (see ops.apply_jitter_plan).
        if "jitter_hue_pos" in params:
            key = torch.where(params["jitter_active"], params["jitter_hue_pos"], 4)
            order = torch.argsort(key, stable=True)
        elif "jitter_active" in params:
            order = torch.argsort((~params["jitter_active"]).to(torch.uint8), stable=True)
        else:
            order = torch.arange(n)
        out = torch.empty(n, c, size, size, dtype=torch.float32)
        for i in range(0, n, chunk):
            sel = order[i : i + chunk]
            out[sel] = self.apply(x[sel], {k: v[sel] for k, v in params.items()})
        return out


_JITTER_PLAN_KEYS = ("jitter_active", "jitter_factor", "jitter_contrast", "jitter_saturation", "jitter_hue",
                     "jitter_hue_on", "jitter_hue_pos")


def _on_samples(y: torch.Tensor, mask: torch.Tensor, params: dict[str, torch.Tensor], fn) -> torch.Tensor:
    """fn(y, params) where `mask`; elsewhere fn must already be an exact no-op given its params.

    On accelerators the whole batch runs (no host sync); on CPU only the masked samples are computed.
    """
    if y.device.type != "cpu":
        return fn(y, params)
    idx = mask.nonzero().squeeze(1)
    if idx.numel() == y.shape[0]:
        return fn(y, params)
    if idx.numel() > 0:
        y[idx] = fn(y[idx], {k: v[idx] for k, v in params.items()})
    return y


def image_views(info: DataInfo, cfg: dict[str, Any], view: int = 1) -> ImageViews:
    """The view module for view 1 or 2 of the recipe in `cfg` (see the module docstring for keys/defaults)."""
    return ImageViews(info, image_view_config(info, cfg, view))
