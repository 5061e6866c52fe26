"""Batched image ops with per-sample parameters, each following torchvision's definition of the same op.

Every function takes a whole batch `x` of float images in [0, 1], shape (B, C, H, W), on any device, and its
per-sample parameters as tensors of length B. Nothing here draws random numbers except
`sample_crop_params`, which takes an explicit generator; `image.py` draws the rest.

References (torchvision 0.2x): `transforms.RandomResizedCrop.get_params`; PIL's `Image.resize(BILINEAR)`
(= `F.interpolate(mode="bilinear", antialias=True)`); `functional_tensor`'s adjust_brightness /
adjust_contrast / adjust_saturation / adjust_hue (`_rgb2hsv`, `_hsv2rgb`), rgb_to_grayscale,
gaussian_blur (`_get_gaussian_kernel1d`) and solarize.

Speed notes. On CPU, `torch.where` with a full-size mask and `remainder` cost 10–20 multiplies, so the
colour ops use arithmetic, lerp and clamp; a per-sample on/off switch is a lerp with weight exactly 0 or 1
(torch.lerp returns start / end exactly), so a sample that skips an op is untouched. Accelerators run every
op on every sample in lockstep with such no-op parameters (no host sync); the CPU (`host_path`) instead
groups and subsets samples so that each runs only its own ops. Both paths give the same result.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from ..core import random as per_sample

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale (ITU-R 601-2 luma)

# Colour-jitter ops, numbered as in torchvision's ColorJitter.
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3
_NONE = -1


def host_path(t: torch.Tensor) -> bool:
    """Whether to take the CPU code paths (grouping and subsets of samples, which read the data on the host).

    The tests switch this off to run the accelerator (lockstep) paths on CPU.
    """
    return t.device.type == "cpu"


def _exact_float(device: torch.device) -> torch.dtype:
    """float64 where the device has it (coordinates mirror torchvision's Python floats), else float32."""
    return torch.float64 if device.type in ("cpu", "cuda") else torch.float32


def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-sample value (B,) as a (B, 1, 1[, 1]) column of like's dtype, broadcasting against like."""
    return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


# --------------------------------------------------------------------------------------------------------
# 1. Random resized crop and flip
# --------------------------------------------------------------------------------------------------------


def center_crop_fallback(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """torchvision's fallback after 10 failed attempts: the whole image, aspect ratio clamped to `ratio`."""
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return h, w


def crop_params_from_uniforms(
    u_area: torch.Tensor,
    u_log_ratio: torch.Tensor,
    u_pos: torch.Tensor,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """torchvision's RandomResizedCrop sampler, every attempt of every sample at once.

    u_area, u_log_ratio: (B, A) uniforms in [0, 1) for A attempts (torchvision: 10); u_pos: (B, 2) uniforms
    for the crop's top and left. Per sample: area = H·W·U(scale), aspect = exp(U(log ratio)),
    w = round(√(area·aspect)), h = round(√(area/aspect)); the first attempt with 0 < w ≤ W and 0 < h ≤ H
    wins and its top-left is uniform over the valid positions; if none wins, the centred crop of
    `center_crop_fallback`. Returns top, left, h, w as int64 (B,) tensors.
    """
    dt = _exact_float(u_area.device)
    target = float(height * width) * (scale[0] + (scale[1] - scale[0]) * u_area.to(dt))
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(lo + (hi - lo) * u_log_ratio.to(dt))
    w = torch.round(torch.sqrt(target * aspect))  # rounds half to even, as Python's round()
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.to(torch.int32).argmax(dim=1, keepdim=True)  # the first valid attempt
    found = ok.any(dim=1)
    fh, fw = center_crop_fallback(height, width, ratio)
    h = torch.where(found, h.gather(1, first).squeeze(1), float(fh)).long()
    w = torch.where(found, w.gather(1, first).squeeze(1), float(fw)).long()
    u_pos = u_pos.to(dt)
    top = torch.minimum(torch.floor(u_pos[:, 0] * (height - h + 1)).long(), height - h)
    left = torch.minimum(torch.floor(u_pos[:, 1] * (width - w + 1)).long(), width - w)
    top = torch.where(found, top, torch.div(height - h, 2, rounding_mode="floor"))
    left = torch.where(found, left, torch.div(width - w, 2, rounding_mode="floor"))
    return top, left, h, w


def sample_crop_params(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: Optional[torch.Generator],
    device: torch.device,
    attempts: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw n crops (top, left, h, w) from `generator` (on the generator's device), returned on `device`."""
    u = per_sample.rand((n, 2 * attempts + 2), generator, device)
    params = crop_params_from_uniforms(
        u[:, :attempts], u[:, attempts : 2 * attempts], u[:, 2 * attempts :], height, width, scale, ratio
    )
    return params  # type: ignore[return-value]


def resample_taps(
    start: torch.Tensor,
    length: torch.Tensor,
    in_size: int,
    out_size: int,
    flip: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and weights, both (B, out_size, T), that crop [start, start + length) and resize it.

    PIL's antialiased `Image.resize(BILINEAR)` filter, per sample: output pixel o is centred at
    c = (o + ½)·length/out_size in the crop; the triangle filter is stretched by the downscale factor
    s = max(length/out_size, 1) and summed over [max(⌊c − s + ½⌋, 0), min(⌊c + s + ½⌋, length)), weights
    renormalised. T = max(2, ⌈2·in_size/out_size⌉) taps hold the widest window; spare taps weigh 0.
    Where `flip`, output o takes the taps of out_size − 1 − o (a mirrored result).
    """
    dt = _exact_float(start.device)  # float32 coordinates would cost ~1e-5 in the weights
    dev = start.device
    taps = max(2, -(-2 * in_size // out_size))
    o = torch.arange(out_size, device=dev, dtype=dt).expand(start.shape[0], out_size)
    if flip is not None:
        o = torch.where(flip[:, None], (out_size - 1) - o, o)
    length_f = length.to(dt)[:, None, None]
    scale = length_f / out_size
    support = scale.clamp(min=1.0)
    center = (o + 0.5)[:, :, None] * scale  # (B, out, 1), in crop pixels
    first = torch.floor(center - support + 0.5).clamp_(min=0.0)
    stop = torch.minimum(torch.floor(center + support + 0.5), length_f)
    j = first + torch.arange(taps, device=dev, dtype=dt)  # (B, out, T)
    w = (1.0 - (j + 0.5 - center).abs_() / support).clamp_(min=0.0) * (j < stop)
    w = w / w.sum(dim=-1, keepdim=True)
    idx = torch.minimum(j, length_f - 1).long() + start[:, None, None]
    return idx, w.to(torch.float32)


def _resample_rows(
    rows: torch.Tensor, n: int, in_size: int, idx: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """(n·in_size, D) rows → (n·out, D): row (b, o) = Σ_t w[b, o, t] · rows[b·in_size + idx[b, o, t]]."""
    taps = w.shape[-1]
    flat = (idx + (torch.arange(n, device=idx.device) * in_size)[:, None, None]).view(-1, taps)
    w = w.view(-1, taps, 1)
    acc = rows.index_select(0, flat[:, 0]).mul_(w[:, 0])
    for t in range(1, taps):
        acc.addcmul_(rows.index_select(0, flat[:, t]), w[:, t])
    return acc


def resized_crop(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    h: torch.Tensor,
    w: torch.Tensor,
    size: int,
    flip: Optional[torch.Tensor] = None,
    divide: Optional[float] = None,
) -> torch.Tensor:
    """Crop each sample to (top, left, h, w), resize it antialiased to size × size, mirror it where `flip`.

    Separable (`resample_taps`): the rows pass gathers whole image rows, all channels at once, and sums
    them with the filter weights; the columns pass does the same on the transposed result. x: (B, C, H, W)
    of any dtype (uint8 is converted on the way); returns contiguous float32 (B, C, size, size), divided
    by `divide` if given.
    """
    n, c, height, width = x.shape
    ry, wy = resample_taps(top, h, height, size)
    rx, wx = resample_taps(left, w, width, size, flip)
    xt = torch.empty(n, height, c, width, dtype=torch.float32, device=x.device)
    xt.copy_(x.transpose(1, 2))  # (B, H, C, W): image row y of every channel is one contiguous row
    t = _resample_rows(xt.view(n * height, c * width), n, height, ry, wy)  # (B·S, C·W)
    tt = t.view(n, size * c, width).transpose(1, 2).contiguous()  # (B, W, S·C)
    u = _resample_rows(tt.view(n * width, size * c), n, width, rx, wx)  # (B·S, S·C): rows (b, x) of (y, c)
    u = u.view(n, size, size, c).permute(0, 3, 2, 1)  # (B, C, y, x)
    out = torch.empty(n, c, size, size, dtype=torch.float32, device=x.device)
    return out.copy_(u) if divide is None else torch.div(u, divide, out=out)


# --------------------------------------------------------------------------------------------------------
# 2. Colour ops
# --------------------------------------------------------------------------------------------------------


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) → (B, 1, H, W) luma 0.2989 R + 0.587 G + 0.114 B; a 1-channel image is returned as is."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(dim=1)
    luma = torch.add(torch.add(r * GRAY_WEIGHTS[0], g, alpha=GRAY_WEIGHTS[1]), b, alpha=GRAY_WEIGHTS[2])
    return luma.unsqueeze(1)


def blend(
    img: torch.Tensor, other: torch.Tensor, factor: torch.Tensor, out: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """torchvision `_blend`: clamp(factor·img + (1 − factor)·other, 0, 1) with a per-sample factor (B,).

    Factor 1 returns img exactly. `out` may be img itself (in place).
    """
    return torch.lerp(other, img, _col(factor, img), out=out).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with black."""
    return blend(x, torch.zeros_like(x[:, :1, :1, :1]), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the mean of the image's luma (of the image itself for 1 channel)."""
    return blend(x, rgb_to_grayscale(x).mean(dim=(-3, -2, -1), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the luma image; 1-channel images are returned unchanged, as torchvision does."""
    return x if x.shape[1] == 1 else blend(x, rgb_to_grayscale(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """torchvision adjust_hue: RGB→HSV, h ← (h + shift) mod 1, HSV→RGB, per-sample shift (B,) in [−½, ½].

    Computed without materialising HSV. With M = max, m = min and chroma c = M − m, torchvision's hue
    sector h6 = 6h is (g − b)/c where M = r, 2 + (b − r)/c where M = g ≠ r, else 4 + (r − g)/c. With
    w = (h6 + 6·shift) mod 6, `_hsv2rgb` (v = M, v·s = c) reduces to the piecewise-linear
        R = m + c·clamp(|w − 3| − 1, 0, 1),
        G = M − c·clamp(|w − 2| − 1, 0, 1),
        B = M − c·clamp(|w − 4| − 1, 0, 1),
    equal to torchvision up to float rounding. 1-channel images are unchanged. `out` may be x (in place).
    """
    if x.shape[1] == 1:
        return x if out is None else out.copy_(x)
    r, g, b = x.unbind(dim=1)
    maxc = x.amax(dim=1)
    minc = x.amin(dim=1)
    chroma = maxc - minc
    inv = chroma.clamp(min=torch.finfo(x.dtype).tiny).reciprocal_()  # |numerators| ≤ c: c = 0 gives 0
    is_r = torch.floor(r - maxc).add_(1.0)  # 1.0 exactly where r is the maximum, else 0.0 (cheaper than ==)
    is_g = torch.floor(g - maxc).add_(1.0)
    num = torch.lerp(torch.lerp(r - g, b - r, is_g), g - b, is_r)  # lerp with a 0/1 weight selects exactly
    offset = (is_g * -2.0).add_(4.0).mul_(1.0 - is_r)  # 0 (max r), 2 (max g), 4 (max b)
    h6 = torch.addcmul(offset, num, inv).add_(_col(6.0 * shift, offset))
    w = h6.sub_(torch.floor(h6 * (1.0 / 6.0)).mul_(6.0))  # wrapped into [0, 6]
    out = torch.empty_like(x) if out is None else out
    torch.addcmul(minc, chroma, (w - 3.0).abs_().sub_(1.0).clamp_(0.0, 1.0), out=out[:, 0])
    torch.addcmul(maxc, chroma, (w - 2.0).abs_().sub_(1.0).clamp_(0.0, 1.0), value=-1.0, out=out[:, 1])
    torch.addcmul(maxc, chroma, (w - 4.0).abs_().sub_(1.0).clamp_(0.0, 1.0), value=-1.0, out=out[:, 2])
    return out


def _blend_stage(
    x: torch.Tensor,
    factor: torch.Tensor,
    contrast: torch.Tensor,
    saturation: torch.Tensor,
    out: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """One position of the jitter order: per sample brightness, contrast, saturation, or nothing.

    All three blend with a "degenerate" image: black (brightness), the luma mean (contrast: `contrast` is
    1), the luma image (saturation: `saturation` is 1). Nothing is factor 1.
    """
    gray = rgb_to_grayscale(x)
    mean = gray.mean(dim=(-2, -1), keepdim=True)
    other = torch.addcmul(mean * _col(contrast, x), gray, _col(saturation, x))  # exact: one term is 0·finite
    return blend(x, other, factor, out=out)


def jitter_plan(
    factors: torch.Tensor,
    order: torch.Tensor,
    active: torch.Tensor,
    channels: int,
    use_hue: bool = True,
) -> dict[str, torch.Tensor]:
    """Turn per-sample ColorJitter draws into a schedule of stages that a batch can run together.

    factors: (B, 4) brightness, contrast and saturation factors and the hue shift; order: (B, 4) a
    permutation of 0..3 per sample (applied left to right, like ColorJitter's `fn_idx`); active: (B,) bool
    (RandomApply). 1-channel images use brightness and contrast only; `use_hue=False` drops hue.

    Hue, the costly op, runs once for all samples: each sample's order is split into the blend ops before
    its hue and those after, giving k − 1 blend stages, hue, k − 1 blend stages for k ops (without hue:
    k blend stages). A sample with nothing to do at a stage has factor 1 there. Returns (B, stages)
    `jitter_factor`, `jitter_contrast`, `jitter_saturation` (0/1 floats), (B,) `jitter_active`, and with
    hue (B,) `jitter_hue`, `jitter_hue_on` (0/1 float) and `jitter_hue_pos` (blend ops before hue).
    """
    dev = factors.device
    ops = [BRIGHTNESS, CONTRAST] + ([SATURATION] + ([HUE] if use_hue else []) if channels == 3 else [])
    k = len(ops)
    pos = torch.argsort(order.to(dev), dim=1)  # pos[b, op]: where op comes in sample b's order
    ops_t = torch.tensor(ops, device=dev)
    seq = ops_t[torch.argsort(pos[:, ops_t], dim=1)]  # (B, k): the ops used, in application order
    if HUE in ops:
        hpos = (seq == HUE).to(torch.int32).argmax(dim=1, keepdim=True)
        s = torch.arange(k - 1, device=dev)
        before = torch.where(s < hpos, seq[:, : k - 1], _NONE)
        after = hpos + 1 + s
        after = torch.where(after < k, seq.gather(1, after.clamp(max=k - 1)), _NONE)
        seq = torch.cat([before, after], dim=1)
    seq = torch.where(active[:, None], seq, _NONE)
    factor = factors.gather(1, seq.clamp(min=0))
    plan = {
        "jitter_active": active.clone(),
        "jitter_factor": torch.where(seq == _NONE, torch.ones_like(factor), factor),
        "jitter_contrast": (seq == CONTRAST).to(factors.dtype),
        "jitter_saturation": (seq == SATURATION).to(factors.dtype),
    }
    if HUE in ops:
        plan["jitter_hue"] = factors[:, HUE].clone()
        plan["jitter_hue_on"] = (active & (factors[:, HUE] != 0)).to(factors.dtype)
        plan["jitter_hue_pos"] = hpos.squeeze(1).long()
    return plan


def jitter_group_key(plan: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per sample: how many blend ops precede its hue (0 .. k−1; 0 without hue), or k if not jittered."""
    active = plan["jitter_active"]
    if "jitter_hue_pos" in plan:
        return torch.where(active, plan["jitter_hue_pos"], plan["jitter_factor"].shape[1] // 2 + 1)
    return (~active).long()


def apply_jitter_plan(x: torch.Tensor, plan: dict[str, torch.Tensor], inplace: bool = False) -> torch.Tensor:
    """Run a `jitter_plan` (or a slice of one along the batch) on x.

    Accelerators: every sample runs every stage (no-op stages are exact). CPU: samples are ordered by
    `jitter_group_key` (nothing to do when the caller already sorted them), so each stage is a contiguous
    slice of the samples that really apply it: a sample runs its own blend ops and hue once, and samples
    without jitter run nothing. `inplace=True` lets the CPU path write into x.
    """
    factor, contrast, saturation = plan["jitter_factor"], plan["jitter_contrast"], plan["jitter_saturation"]
    stages = factor.shape[1]
    has_hue = "jitter_hue" in plan
    if not host_path(x):
        for s in range(stages):
            if has_hue and s == stages // 2:
                x = torch.lerp(x, adjust_hue(x, plan["jitter_hue"]), _col(plan["jitter_hue_on"], x))
            x = _blend_stage(x, factor[:, s], contrast[:, s], saturation[:, s])
        return x

    key = jitter_group_key(plan)
    perm = None
    if key.numel() > 1 and bool((key[1:] < key[:-1]).any()):
        perm = torch.argsort(key, stable=True)
        key, x = key[perm], x[perm]
        plan = {name: v[perm] for name, v in plan.items()}
        factor, contrast = plan["jitter_factor"], plan["jitter_contrast"]
        saturation = plan["jitter_saturation"]
    elif not inplace:
        x = x.clone()
    k1 = stages // 2 if has_hue else stages
    starts = [0] + torch.bincount(key, minlength=k1 + 2).cumsum(0).tolist()  # key g: [starts[g], starts[g+1])

    def stage(col: int, a: int, b: int) -> None:
        if a < b:
            z = x[a:b]
            _blend_stage(z, factor[a:b, col], contrast[a:b, col], saturation[a:b, col], out=z)

    if has_hue:
        n_on = starts[k1 + 1]
        for s in range(k1):  # before hue: the samples with more than s ops before their hue
            stage(s, starts[s + 1], n_on)
        if n_on:
            adjust_hue(x[:n_on], plan["jitter_hue"][:n_on], out=x[:n_on])
        for s in range(k1):  # after hue: the samples with fewer than k1 − s ops before their hue
            stage(k1 + s, 0, starts[k1 - s])
    else:
        for s in range(stages):
            stage(s, 0, starts[1])
    if perm is None:
        return x
    out = torch.empty_like(x)
    out[perm] = x
    return out


def color_jitter(
    x: torch.Tensor,
    factors: torch.Tensor,
    order: torch.Tensor,
    active: Optional[torch.Tensor] = None,
    use_hue: bool = True,
) -> torch.Tensor:
    """torchvision ColorJitter with per-sample factors and op order, for a whole batch (see `jitter_plan`).

    Samples where `active` is False are returned unchanged.
    """
    if active is None:
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    plan = jitter_plan(factors.to(x.device), order, active.to(x.device), x.shape[1], use_hue)
    return apply_jitter_plan(x, plan)


def random_grayscale(x: torch.Tensor, mask: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Replace the masked samples by their luma on every channel (RandomGrayscale). `out` may be x."""
    if x.shape[1] == 1:
        return x if out is None else out.copy_(x)
    return torch.lerp(x, rgb_to_grayscale(x).expand_as(x), _col(mask, x), out=out)


# --------------------------------------------------------------------------------------------------------
# 3. Blur and solarize
# --------------------------------------------------------------------------------------------------------


def gaussian_kernel1d(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(B, k) normalised Gaussian taps with a per-sample sigma, torchvision `_get_gaussian_kernel1d`."""
    half = (kernel_size - 1) * 0.5
    t = torch.linspace(-half, half, kernel_size, dtype=torch.float32, device=sigma.device)
    pdf = torch.exp(-0.5 * (t / sigma.float()[:, None]).pow(2))
    return pdf / pdf.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-sample separable blur with reflect padding (torchvision gaussian_blur); kernel (B, k), k odd.

    A one-hot kernel (1 at the centre) leaves its sample exactly unchanged.
    """
    n, c, height, width = x.shape
    k = kernel.shape[1]
    p = k // 2
    xp = F.pad(x, (p, p, p, p), mode="reflect").view(1, n * c, height + 2 * p, width + 2 * p)
    taps = kernel.to(x.dtype).repeat_interleave(c, dim=0)  # (B·C, k)
    y = F.conv2d(xp, taps.view(n * c, 1, k, 1), groups=n * c)
    y = F.conv2d(y, taps.view(n * c, 1, 1, k), groups=n * c)
    return y.view(n, c, height, width)


def solarize(
    x: torch.Tensor, mask: torch.Tensor, threshold: float, out: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """torchvision solarize on the masked samples: pixels ≥ threshold become 1 − pixel. `out` may be x."""
    if threshold == 0.5:  # on [0, 1], where(x ≥ ½, 1 − x, x) = min(x, 1 − x); + inf switches a sample off
        off = torch.zeros_like(mask, dtype=x.dtype).masked_fill_(~mask, math.inf)
        return torch.minimum(x, (1.0 - x).add_(_col(off, x)), out=out)
    y = torch.where(_col(mask, x).bool() & (x >= threshold), 1.0 - x, x)
    return y if out is None else out.copy_(y)
