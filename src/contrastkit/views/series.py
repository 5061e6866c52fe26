"""Time-series views (METHODS §20): batched modules over NaN-padded (B, C, T) series, per-sample parameters.

Every op is an nn.Module with `sample(x, lengths, generator) -> params` (all random numbers, drawn in one go on
x's device from the explicit generator), `apply(x, lengths, params)` (deterministic, batched) and
`forward(x, generator, lengths=None)`. `lengths` is each series' valid length (data/series.py: NaN padding
after the end); ops act on the valid part of each series only and keep the padding NaN, so a view never
truncates or mixes in padding. Invariants (tests/test_series_views.py checks each against a per-sample
reference): shape preserved, padding preserved, strength 0 ⇒ identity, crops are contiguous windows.

    jitter        x + σ·N(0, 1)                                                       noise_sigma     (0.1)
    scaling       x · (1 + σ·N(0, 1)), one factor per sample and channel               scale_sigma     (0.2)
    magnitude_warp  x · w(t), w a smooth curve through `warp_knots` + 2 knots ~ N(1, σ) per channel,
                  cosine-interpolated over each series' own length                   mag_warp_sigma  (0.2)
    time_warp     resample at warped times: speed curve through knots ~ N(1, σ) (clamped ≥ 0.1),
                  cumulated and rescaled so the first and last step stay put           time_warp_sigma (0.2)
    crop          random contiguous window of a fraction U(a, b) of the length (at least `crop_length`
                  steps), linearly resampled back to the series' length            crop_fraction ([0.5, 1])
    window_slice  a window of a fixed fraction of the length, random start, resampled (Le Guennec 2016)
                                                                                        slice_fraction  (0.9)
    permutation   split into k ~ U{1..K} equal segments, shuffle them (K = 1 ⇒ identity)  permute_segments (5)
    time_mask     set a random span of round(f · length) steps to 0 (the training mean)  time_mask_fraction (0.1)
    channel_dropout  zero each channel with probability p (never all channels of a series)  channel_drop_p (0.2)

`series_views(info, cfg, view)` builds `SeriesViews(*ops)` from cfg `series_views` (the op names, in order;
default DEFAULT_RECIPE) and the strengths above; each strength may be a pair [view1, view2]. Resampling is
linear interpolation (`resample`), the same for every op that moves samples in time.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from torch import nn

from ..data.base import DataInfo
from ..errors import ContrastkitError

__all__ = ["Jitter", "Scaling", "MagnitudeWarp", "TimeWarp", "Crop", "WindowSlice", "Permutation", "TimeMask",
           "ChannelDropout", "SeriesViews", "series_views", "resample", "smooth_curve", "OPS", "DEFAULT_RECIPE",
           "series_view_settings"]

DEFAULT_RECIPE = ("crop", "scaling", "jitter", "time_mask")


def _lengths(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    if lengths is not None:
        return lengths.to(x.device)
    from ..data.series import series_lengths

    return series_lengths(x)


def _pad_mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, 1, T) True on padding steps."""
    return (torch.arange(x.shape[-1], device=x.device)[None, :] >= lengths[:, None])[:, None, :]


def resample(x: torch.Tensor, src: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """out[b, :, t] = x[b, :, src[b, t]] by linear interpolation for t < lengths[b] (src in [0, len − 1]);
    NaN (padding) for t ≥ lengths[b]."""
    b, c, t = x.shape
    last = (lengths - 1).clamp_min(0)[:, None].to(src.dtype)
    src = torch.minimum(src.clamp_min(0), last)
    i0 = src.floor()
    w = (src - i0).to(x.dtype)
    i0 = i0.long()
    i1 = torch.minimum(i0 + 1, last.long())
    x0 = x.gather(2, i0[:, None, :].expand(b, c, t))
    x1 = x.gather(2, i1[:, None, :].expand(b, c, t))
    out = x0 + w[:, None, :] * (x1 - x0)
    out = torch.where(w[:, None, :] == 0, x0, out)  # exact copies where no interpolation is needed
    return out.masked_fill(_pad_mask(x, lengths), float("nan"))


def smooth_curve(knots: torch.Tensor, lengths: torch.Tensor, t: int) -> torch.Tensor:
    """Cosine interpolation of K knot values (…, K) placed evenly over [0, len − 1] of each series, evaluated at
    steps 0..t−1 → (…, t). `knots` is (B, K) or (B, C, K); steps past the length get the last knot."""
    k = knots.shape[-1]
    steps = torch.arange(t, device=knots.device, dtype=torch.float32)
    span = (lengths.to(torch.float32) - 1).clamp_min(1.0)
    pos = (steps[None, :] / span[:, None]).clamp(0, 1) * (k - 1)  # (B, t) in knot units
    j = pos.floor().long().clamp(max=k - 2)
    f = pos - j
    f = (1 - torch.cos(math.pi * f)) / 2
    if knots.dim() == 3:
        j, f = j[:, None, :].expand(knots.shape[0], knots.shape[1], t), f[:, None, :]
    a = knots.gather(-1, j)
    b = knots.gather(-1, j + 1)
    return a + f * (b - a)


def _randn(shape, x, g):
    return torch.randn(tuple(shape), generator=g, device=x.device, dtype=torch.float32)


def _rand(shape, x, g):
    return torch.rand(tuple(shape), generator=g, device=x.device, dtype=torch.float32)


def _nonneg(name: str, v: Any) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise ContrastkitError(f"{name}={v!r} must be a number")
    if v < 0 or not math.isfinite(v):
        raise ContrastkitError(f"{name}={v} must be a finite number >= 0")
    return v


class _Op(nn.Module):
    def sample(self, x: torch.Tensor, lengths: torch.Tensor, g: Optional[torch.Generator]) -> dict:
        return {}

    def apply(self, x: torch.Tensor, lengths: torch.Tensor, p: dict) -> torch.Tensor:
        raise NotImplementedError

    def is_identity(self) -> bool:
        return False

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.is_identity():
            return x
        lengths = _lengths(x, lengths)
        return self.apply(x, lengths, self.sample(x, lengths, generator))


class Jitter(_Op):
    def __init__(self, sigma: float = 0.1):
        super().__init__()
        self.sigma = _nonneg("noise_sigma", sigma)

    def is_identity(self):
        return self.sigma == 0

    def sample(self, x, lengths, g):
        return {"noise": _randn(x.shape, x, g)}

    def apply(self, x, lengths, p):
        return x + self.sigma * p["noise"].to(x.dtype)

    def extra_repr(self):
        return f"sigma={self.sigma}"


class Scaling(_Op):
    def __init__(self, sigma: float = 0.2):
        super().__init__()
        self.sigma = _nonneg("scale_sigma", sigma)

    def is_identity(self):
        return self.sigma == 0

    def sample(self, x, lengths, g):
        return {"factor": 1 + self.sigma * _randn(x.shape[:2], x, g)}

    def apply(self, x, lengths, p):
        return x * p["factor"][:, :, None].to(x.dtype)

    def extra_repr(self):
        return f"sigma={self.sigma}"


class _Warp(_Op):
    """A smooth random curve through `knots` + 2 points drawn around 1 with spread `sigma`."""

    setting = ""

    def __init__(self, sigma: float = 0.2, knots: int = 4):
        super().__init__()
        self.sigma = _nonneg(self.setting, sigma)
        self.knots = int(knots)
        if self.knots < 0:
            raise ContrastkitError(f"warp_knots={knots} must be >= 0")

    def is_identity(self):
        return self.sigma == 0

    def extra_repr(self):
        return f"sigma={self.sigma}, knots={self.knots}"


class MagnitudeWarp(_Warp):
    setting = "mag_warp_sigma"

    def sample(self, x, lengths, g):
        return {"knots": 1 + self.sigma * _randn((x.shape[0], x.shape[1], self.knots + 2), x, g)}

    def apply(self, x, lengths, p):
        return x * smooth_curve(p["knots"], lengths, x.shape[-1]).to(x.dtype)


def time_warp_positions(knots: torch.Tensor, lengths: torch.Tensor, t: int) -> torch.Tensor:
    """Source positions (B, t) of a time warp: cumulated speed curve, rescaled to map 0 → 0 and len−1 → len−1."""
    speed = smooth_curve(knots.clamp_min(0.1), lengths, t)
    cum = torch.cumsum(speed, dim=1) - speed[:, :1]
    last = (lengths - 1).clamp_min(0)
    end = cum.gather(1, last[:, None]).clamp_min(1e-6)
    return cum / end * last[:, None].to(cum.dtype)


class TimeWarp(_Warp):
    setting = "time_warp_sigma"

    def sample(self, x, lengths, g):
        return {"knots": 1 + self.sigma * _randn((x.shape[0], self.knots + 2), x, g)}

    def apply(self, x, lengths, p):
        return resample(x, time_warp_positions(p["knots"], lengths, x.shape[-1]), lengths)


def crop_window(u_frac: torch.Tensor, u_start: torch.Tensor, lengths: torch.Tensor, low: float, high: float,
                min_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, size) of each crop in steps: size = clamp(round(len · (low + u·(high − low))), min_steps, len)."""
    lf = lengths.to(torch.float32)
    size = torch.round(lf * (low + u_frac * (high - low))).long()
    size = torch.minimum(size.clamp_min(max(int(min_steps), 1)), lengths).clamp_min(1)
    start = torch.floor(u_start * (lengths - size + 1).to(torch.float32)).long()
    start = torch.minimum(start, lengths - size)
    return start, size


class Crop(_Op):
    """Random contiguous window, resampled to the series' own length."""

    def __init__(self, low: float = 0.5, high: float = 1.0, min_steps: int = 2):
        super().__init__()
        self.low, self.high = _nonneg("crop_fraction", low), _nonneg("crop_fraction", high)
        if not 0 < self.low <= self.high <= 1:
            raise ContrastkitError(f"crop_fraction=[{low}, {high}]: need 0 < low <= high <= 1")
        self.min_steps = int(min_steps)

    def is_identity(self):
        return self.low == 1.0

    def sample(self, x, lengths, g):
        u = _rand((x.shape[0], 2), x, g)
        return {"u_frac": u[:, 0], "u_start": u[:, 1]}

    def apply(self, x, lengths, p):
        start, size = crop_window(p["u_frac"], p["u_start"], lengths, self.low, self.high, self.min_steps)
        steps = torch.arange(x.shape[-1], device=x.device, dtype=torch.float32)[None, :]
        span = (lengths - 1).clamp_min(1).to(torch.float32)[:, None]
        src = start[:, None].to(torch.float32) + steps * ((size - 1).to(torch.float32)[:, None] / span)
        return resample(x, src, lengths)

    def extra_repr(self):
        return f"fraction=({self.low}, {self.high}), min_steps={self.min_steps}"


class WindowSlice(Crop):
    def __init__(self, fraction: float = 0.9, min_steps: int = 2):
        super().__init__(fraction, fraction, min_steps)


class Permutation(_Op):
    def __init__(self, max_segments: int = 5):
        super().__init__()
        self.max_segments = int(max_segments)
        if self.max_segments < 1:
            raise ContrastkitError(f"permute_segments={max_segments} must be >= 1 (1 = off)")

    def is_identity(self):
        return self.max_segments == 1

    def sample(self, x, lengths, g):
        u = _rand((x.shape[0], 1 + self.max_segments), x, g)
        return {"u_k": u[:, 0], "order": u[:, 1:]}

    def apply(self, x, lengths, p):
        return resample(x, permutation_positions(p["u_k"], p["order"], lengths, x.shape[-1]), lengths)

    def extra_repr(self):
        return f"max_segments={self.max_segments}"


def permutation_positions(u_k: torch.Tensor, order: torch.Tensor, lengths: torch.Tensor, t: int) -> torch.Tensor:
    """Source step of every output step: k = 1 + ⌊u_k · K⌋ segments (at most the length), segment j covering
    [⌊j·len/k⌋, ⌊(j+1)·len/k⌋); output = segments in the order argsort(order[:k])."""
    kmax = order.shape[1]
    k = torch.minimum((1 + (u_k * kmax).long()).clamp(max=kmax), lengths)
    j = torch.arange(kmax + 1, device=order.device)[None, :]
    bounds = torch.div(j * lengths[:, None], k[:, None], rounding_mode="floor")
    bounds = torch.minimum(bounds, lengths[:, None])  # (B, K+1); segments j >= k are empty
    seg_len = bounds[:, 1:] - bounds[:, :-1]
    keys = torch.where(j[:, :-1] < k[:, None], order, torch.full_like(order, 2.0))
    perm = torch.argsort(keys, dim=1)  # the first k entries permute the k real segments
    out_len = seg_len.gather(1, perm)
    out_end = torch.cumsum(out_len, dim=1)
    steps = torch.arange(t, device=order.device)[None, :].expand(order.shape[0], t).contiguous()
    which = torch.searchsorted(out_end, steps, right=True).clamp(max=kmax - 1)
    out_start = out_end.gather(1, which) - out_len.gather(1, which)
    src_seg = perm.gather(1, which)
    src = bounds[:, :-1].gather(1, src_seg) + (steps - out_start)
    return src.to(torch.float32)


class TimeMask(_Op):
    def __init__(self, fraction: float = 0.1):
        super().__init__()
        self.fraction = _nonneg("time_mask_fraction", fraction)
        if self.fraction >= 1:
            raise ContrastkitError(f"time_mask_fraction={fraction} must be < 1")

    def is_identity(self):
        return self.fraction == 0

    def sample(self, x, lengths, g):
        return {"u_start": _rand((x.shape[0],), x, g)}

    def apply(self, x, lengths, p):
        span = torch.round(lengths.to(torch.float32) * self.fraction).long()
        start = torch.minimum(torch.floor(p["u_start"] * (lengths - span + 1).to(torch.float32)).long(),
                              lengths - span)
        steps = torch.arange(x.shape[-1], device=x.device)[None, :]
        hit = (steps >= start[:, None]) & (steps < (start + span)[:, None])
        return x.masked_fill(hit[:, None, :], 0.0)

    def extra_repr(self):
        return f"fraction={self.fraction}"


class ChannelDropout(_Op):
    def __init__(self, p: float = 0.2):
        super().__init__()
        self.p = _nonneg("channel_drop_p", p)
        if self.p > 1:
            raise ContrastkitError(f"channel_drop_p={p} must be a probability in [0, 1]")

    def is_identity(self):
        return self.p == 0

    def sample(self, x, lengths, g):
        return {"u": _rand(x.shape[:2], x, g)}

    def apply(self, x, lengths, p):
        drop = p["u"] < self.p
        drop = drop & ~drop.all(dim=1, keepdim=True)  # never every channel
        pad = _pad_mask(x, lengths)
        return torch.where(drop[:, :, None] & ~pad, torch.zeros((), dtype=x.dtype, device=x.device), x)

    def extra_repr(self):
        return f"p={self.p}"


class SeriesViews(nn.Module):
    """The ops in order; lengths are read once from the NaN padding."""

    def __init__(self, *ops: _Op):
        super().__init__()
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x.float()
        lengths = _lengths(x, lengths)
        for op in self.ops:
            x = op(x, generator, lengths)
        return x


# --------------------------------------------------------------------------------------------- config
OPS = ("jitter", "scaling", "magnitude_warp", "time_warp", "crop", "window_slice", "permutation", "time_mask",
       "channel_dropout")
SETTINGS = {  # cfg key → default
    "series_views": list(DEFAULT_RECIPE), "noise_sigma": 0.1, "scale_sigma": 0.2, "mag_warp_sigma": 0.2,
    "time_warp_sigma": 0.2, "warp_knots": 4, "crop_fraction": [0.5, 1.0], "crop_length": 2, "slice_fraction": 0.9,
    "permute_segments": 5, "time_mask_fraction": 0.1, "channel_drop_p": 0.2,
}


def series_view_settings() -> set[str]:
    return set(SETTINGS)


def _per_view(cfg: dict, key: str, view: int) -> Any:
    v = cfg.get(key)
    if v is None:
        return SETTINGS[key]
    if key == "crop_fraction":  # a range [low, high], or a pair of ranges, or one number (fixed fraction)
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(e, (list, tuple)) for e in v):
            return v[view - 1]
        return v
    if key == "series_views":
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        if v and all(isinstance(e, (list, tuple)) for e in v) and len(v) == 2:
            return list(v[view - 1])
        return list(v)
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ContrastkitError(f"{key}={v!r}: give one value or a pair [view1, view2]")
        return v[view - 1]
    return v


def series_views(info: DataInfo, cfg: dict[str, Any], view: int = 1) -> SeriesViews:
    names = _per_view(cfg, "series_views", view)
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise ContrastkitError(f"series_views: unknown op(s) {unknown}; valid: {', '.join(OPS)}")
    crop_length = int(_per_view(cfg, "crop_length", view))
    min_len = int((info.extra or {}).get("min_length", info.shape[-1]))
    uses_crop = any(n in ("crop", "window_slice") for n in names)
    if uses_crop and crop_length > min_len:
        raise ContrastkitError(
            f"crop_length={crop_length} steps, but the shortest training series of {info.name!r} has {min_len} "
            f"steps: lower crop_length (at most {min_len}) or remove crop/window_slice from series_views")
    knots = int(_per_view(cfg, "warp_knots", view))
    ops: list[_Op] = []
    for n in names:
        if n == "jitter":
            ops.append(Jitter(_per_view(cfg, "noise_sigma", view)))
        elif n == "scaling":
            ops.append(Scaling(_per_view(cfg, "scale_sigma", view)))
        elif n == "magnitude_warp":
            ops.append(MagnitudeWarp(_per_view(cfg, "mag_warp_sigma", view), knots))
        elif n == "time_warp":
            ops.append(TimeWarp(_per_view(cfg, "time_warp_sigma", view), knots))
        elif n == "crop":
            fr = _per_view(cfg, "crop_fraction", view)
            low, high = (fr, fr) if not isinstance(fr, (list, tuple)) else fr
            ops.append(Crop(float(low), float(high), crop_length))
        elif n == "window_slice":
            ops.append(WindowSlice(float(_per_view(cfg, "slice_fraction", view)), crop_length))
        elif n == "permutation":
            ops.append(Permutation(int(_per_view(cfg, "permute_segments", view))))
        elif n == "time_mask":
            ops.append(TimeMask(_per_view(cfg, "time_mask_fraction", view)))
        elif n == "channel_dropout":
            ops.append(ChannelDropout(_per_view(cfg, "channel_drop_p", view)))
    return SeriesViews(*ops)
