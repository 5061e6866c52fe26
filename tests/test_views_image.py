"""Batched image views against slow per-sample references that follow torchvision's documented algorithms.

The reference half of this file (everything named `ref_*` and `reference_view`) is plain Python, NumPy and
PIL, one sample at a time, written from torchvision's source (transforms.RandomResizedCrop.get_params,
functional_tensor.adjust_* / _rgb2hsv / _hsv2rgb / gaussian_blur, PIL's Image.resize) without looking at
the batched code. bench/views.py times `reference_view` against the batched module.
"""

from __future__ import annotations

import colorsys
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image, ImageEnhance
from scipy import stats

from contrastkit.data.base import DataInfo
from contrastkit.errors import ContrastkitError
from contrastkit.views import _image_ops as ops
from contrastkit.views import create_preprocess
from contrastkit.views.image import (
    ImagePreprocess,
    ImageViewConfig,
    ImageViews,
    image_view_config,
    image_view_defaults,
    image_views,
)

# ==========================================================================================================
# Reference implementations (per sample)
# ==========================================================================================================


def ref_crop_params(u_area, u_ratio, u_top, u_left, height, width, scale, ratio):
    """torchvision RandomResizedCrop.get_params, with its random draws given as lists of uniforms."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for attempt in range(10):
        target_area = area * (scale[0] + (scale[1] - scale[0]) * u_area[attempt])
        aspect_ratio = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u_ratio[attempt])
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = int(u_top * (height - h + 1))  # torch.randint(0, height - h + 1)
            j = int(u_left * (width - w + 1))
            return i, j, h, w
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w = width
        h = height
    return (height - h) // 2, (width - w) // 2, h, w


def ref_crop_sampler(rng: random.Random, height, width, scale, ratio):
    return ref_crop_params(
        [rng.random() for _ in range(10)], [rng.random() for _ in range(10)], rng.random(), rng.random(),
        height, width, scale, ratio,
    )


def to_pil(a_chw_uint8: np.ndarray) -> Image.Image:
    return Image.fromarray(a_chw_uint8[0] if a_chw_uint8.shape[0] == 1 else a_chw_uint8.transpose(1, 2, 0))


def from_pil(img: Image.Image) -> np.ndarray:
    a = np.asarray(img, dtype=np.float32) / 255.0
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def ref_gray(a):
    return 0.2989 * a[0] + 0.587 * a[1] + 0.114 * a[2]


def ref_blend(a, b, f):
    return np.clip(f * a + (1.0 - f) * b, 0.0, 1.0).astype(np.float32)


def ref_brightness(a, f):
    return ref_blend(a, np.zeros_like(a), f)


def ref_contrast(a, f):
    mean = ref_gray(a).mean() if a.shape[0] == 3 else a.mean()
    return ref_blend(a, mean, f)


def ref_saturation(a, f):
    return a if a.shape[0] == 1 else ref_blend(a, ref_gray(a)[None], f)


def ref_rgb2hsv(img):  # torchvision functional_tensor._rgb2hsv, in NumPy
    r, g, b = img
    maxc, minc = img.max(0), img.min(0)
    eqc = maxc == minc
    cr = maxc - minc
    s = cr / np.where(eqc, 1.0, maxc)
    crd = np.where(eqc, 1.0, cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = np.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return np.stack((h, s, maxc))


def ref_hsv2rgb(img):  # torchvision functional_tensor._hsv2rgb, in NumPy
    h, s, v = img
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(np.int32) % 6
    p = np.clip(v * (1.0 - s), 0.0, 1.0)
    q = np.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = np.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros((3,) + h.shape, dtype=np.float32)
    for k, (rr, gg, bb) in enumerate(table):
        m = i == k
        out[0][m], out[1][m], out[2][m] = rr[m], gg[m], bb[m]
    return out


def ref_hue(a, shift):
    if a.shape[0] == 1:
        return a
    hsv = ref_rgb2hsv(a.astype(np.float64))
    hsv[0] = (hsv[0] + shift) % 1.0
    return ref_hsv2rgb(hsv)


REF_JITTER = [ref_brightness, ref_contrast, ref_saturation, ref_hue]


def ref_blur(a, sigma, ks):
    """torchvision gaussian_blur: reflect padding, 2-D kernel = outer product of the 1-D Gaussian taps."""
    half = (ks - 1) * 0.5
    t = np.linspace(-half, half, ks)
    pdf = np.exp(-0.5 * (t / sigma) ** 2)
    k1 = pdf / pdf.sum()
    k2 = np.outer(k1, k1)
    p = ks // 2
    _, height, width = a.shape
    padded = np.pad(a, ((0, 0), (p, p), (p, p)), mode="reflect")
    out = np.zeros_like(a, dtype=np.float64)
    for dy in range(ks):
        for dx in range(ks):
            out += k2[dy, dx] * padded[:, dy : dy + height, dx : dx + width]
    return out.astype(np.float32)


def reference_view(img: np.ndarray, cfg: ImageViewConfig, mean, std, rng: random.Random) -> np.ndarray:
    """The torchvision recipe on one uint8 (C, H, W) image with PIL crop/resize/flip (as lightly runs it)."""
    c, height, width = img.shape
    size = cfg.image_size
    i, j, h, w = ref_crop_sampler(rng, height, width, cfg.crop_scale, cfg.crop_ratio)
    pil = to_pil(img).crop((j, i, j + w, i + h)).resize((size, size), Image.BILINEAR)
    if rng.random() < cfg.flip_p:
        pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
    a = from_pil(pil)
    if rng.random() < cfg.jitter_p:
        order = rng.sample(range(4), 4)
        bs, cs, ss, hs = cfg.jitter_strength
        factors = [rng.uniform(max(0, 1 - bs), 1 + bs), rng.uniform(max(0, 1 - cs), 1 + cs),
                   rng.uniform(max(0, 1 - ss), 1 + ss), rng.uniform(-hs, hs)]
        for op in order:
            a = REF_JITTER[op](a, factors[op])
    if c == 3 and rng.random() < cfg.grayscale_p:
        a = np.repeat(ref_gray(a)[None], 3, axis=0).astype(np.float32)
    if rng.random() < cfg.blur_p:
        a = ref_blur(a, rng.uniform(*cfg.blur_sigma), cfg.blur_kernel)
    if rng.random() < cfg.solarize_p:
        a = np.where(a >= cfg.solarize_threshold, 1.0 - a, a)
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    return ((a - m) / s).astype(np.float32)


# ==========================================================================================================
# Helpers
# ==========================================================================================================


pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors (tests/conftest.py)


def info_for(c, h, w=None, mean=None, std=None):
    return DataInfo("test", "image", (c, h, w or h), mean=mean, std=std)


def smooth_images(n, c, h, w=None, seed=0):
    """Natural-ish uint8 images: smooth colour fields plus a little noise (so crops and colours matter)."""
    w = w or h
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, c, 4, 4, generator=g)
    x = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
    x = x + 0.05 * torch.randn(n, c, h, w, generator=g)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def gen(seed):
    return torch.Generator().manual_seed(seed)


IDENTITY = {"crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0), "flip_p": 0.0, "jitter_p": 0.0,
            "grayscale_p": 0.0, "blur_p": 0.0, "solarize_p": 0.0}


# ==========================================================================================================
# Contract: preprocess, shapes, reproducibility, identity recipe, devices
# ==========================================================================================================


def test_preprocess_is_per_channel_normalisation():
    x = smooth_images(4, 3, 8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    y = ImagePreprocess(info_for(3, 8, mean=mean, std=std))(x)
    expect = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert y.dtype == torch.float32 and y.shape == x.shape
    torch.testing.assert_close(y, expect, atol=1e-6, rtol=1e-6)
    y1 = create_preprocess(info_for(1, 8))(smooth_images(2, 1, 8))  # no statistics: 0.5 / 0.5 → [-1, 1]
    assert y1.min() >= -1 and y1.max() <= 1


@pytest.mark.parametrize(
    "shape,size", [((1, 28, 28), None), ((3, 32, 32), None), ((3, 40, 48), 24), ((3, 64, 64), 64)]
)
def test_shape_dtype_range_and_reproducibility(shape, size):
    c = shape[0]
    info = info_for(*shape, mean=(0.3,) * c, std=(0.2,) * c)
    cfg = {} if size is None else {"image_size": size}
    views = image_views(info, cfg, 1)
    x = smooth_images(9, *shape)
    out = views(x, gen(1))
    s = size or shape[1]
    assert out.shape == (9, c, s, s) and out.dtype == torch.float32
    lo, hi = (0 - 0.3) / 0.2, (1 - 0.3) / 0.2
    assert out.min() >= lo - 1e-5 and out.max() <= hi + 1e-5
    assert torch.equal(out, views(x, gen(1)))  # same seed ⇒ identical
    assert not torch.allclose(out, views(x, gen(2)))  # different seed ⇒ different
    g = gen(1)
    a, b = views(x, g), views(x, g)  # one generator advances: the two views differ
    assert not torch.allclose(a, b)


def test_no_global_rng_is_touched():
    views = image_views(info_for(3, 64), {"solarize_p": 0.5}, 1)
    x = smooth_images(4, 3, 64)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    views(x, gen(0))
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_identity_recipe_equals_preprocess(shape):
    info = info_for(*shape, mean=(0.2,) * shape[0], std=(0.3,) * shape[0])
    x = smooth_images(6, *shape)
    out = image_views(info, IDENTITY, 1)(x, gen(0))
    assert torch.equal(out, ImagePreprocess(info)(x))


def test_flip_always_mirrors():
    info = info_for(3, 16)
    x = smooth_images(5, 3, 16)
    out = image_views(info, {**IDENTITY, "flip_p": 1.0}, 1)(x, gen(0))
    assert torch.equal(out, ImagePreprocess(info)(x).flip(-1))


def test_cpu_grouping_does_not_change_the_result():
    info = info_for(3, 32)
    views = image_views(info, {"blur_p": 0.5, "solarize_p": 0.3}, 1)
    x = smooth_images(20, 3, 32)
    whole = views(x, gen(3))
    views.cpu_chunk_elements = 3 * 32 * 32 * 3  # groups of 3 samples
    torch.testing.assert_close(views(x, gen(3)), whole, atol=1e-6, rtol=0)


def test_generator_device_and_input_device_are_respected():
    info = info_for(3, 32)
    views = image_views(info, {}, 1)
    x = smooth_images(4, 3, 32)
    p = views.sample_params(4, 32, 32, gen(0), x.device)
    assert all(v.device == x.device for v in p.values())
    assert views(x.float() / 255, gen(0)).shape == (4, 3, 32, 32)  # float input in [0, 1] is accepted
    torch.testing.assert_close(views(x.float() / 255, gen(0)), views(x, gen(0)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape,cfg", [((3, 32, 32), {"blur_p": 0.5, "solarize_p": 0.3}), ((1, 28, 28), {}),
                                       ((3, 64, 64), {"blur_p": (1.0, 0.1), "image_size": 48})])
def test_accelerator_code_path_gives_the_cpu_result(shape, cfg, monkeypatch):
    """Accelerators run every op on every sample (no host sync), CPU groups the samples: same views."""
    views = image_views(info_for(*shape), cfg, 1)
    x = smooth_images(40, *shape)
    cpu = views(x, gen(4))
    monkeypatch.setattr(ops, "host_path", lambda t: False)
    torch.testing.assert_close(views(x, gen(4)), cpu, atol=2e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_given_the_same_parameters():
    info = info_for(3, 32)
    views = image_views(info, {"blur_p": 0.5, "solarize_p": 0.3}, 1)
    x = smooth_images(16, 3, 32)
    p = views.sample_params(16, 32, 32, gen(0), torch.device("cpu"))
    cpu = views.apply(x, p)
    cuda = views.to("cuda").apply(x.cuda(), {k: v.cuda() for k, v in p.items()})
    torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-4, rtol=0)
    g = torch.Generator(device="cuda").manual_seed(0)
    assert views(x.cuda(), g).device.type == "cuda"
    assert views(x.cuda(), gen(0)).device.type == "cuda"  # CPU generator, CUDA batch


# ==========================================================================================================
# Configuration
# ==========================================================================================================


def test_defaults_depend_on_image_size():
    small = image_view_config(info_for(1, 28), {}, 1)
    assert small.crop_scale == (0.2, 1.0) and small.blur_p == 0.0 and small.image_size == 28
    assert small.jitter_strength == pytest.approx((0.4, 0.4, 0.4, 0.1))
    big = image_view_config(info_for(3, 96), {}, 1)
    assert big.crop_scale == (0.08, 1.0) and big.blur_p == 0.5 and big.blur_kernel == 9
    assert big.jitter_strength == pytest.approx((0.8, 0.8, 0.8, 0.2))
    assert image_view_config(info_for(3, 224), {}, 1).blur_kernel == 23
    assert set(image_view_defaults(info_for(3, 32))) == set(ImageViewConfig.__dataclass_fields__)
    saved = yaml.safe_load(yaml.safe_dump(big.as_dict()))  # what a run writes to config.yaml and reads back
    assert saved["crop_scale"] == [0.08, 1.0] and image_view_config(info_for(3, 96), saved, 1) == big


def test_per_view_probabilities_and_overrides():
    cfg = {"blur_p": (1.0, 0.1), "solarize_p": [0.0, 0.2], "jitter_strength": (0.4, 0.4, 0.2, 0.1),
           "image_size": 24, "crop_scale": (0.3, 0.9), "flip_p": 0.0}
    v1 = image_view_config(info_for(3, 96), cfg, 1)
    v2 = image_view_config(info_for(3, 96), cfg, 2)
    assert (v1.blur_p, v1.solarize_p, v2.blur_p, v2.solarize_p) == (1.0, 0.0, 0.1, 0.2)
    assert v1.jitter_strength == (0.4, 0.4, 0.2, 0.1) and v1.image_size == 24 and v1.blur_kernel == 3
    assert v1.crop_scale == (0.3, 0.9) and v1.flip_p == 0.0
    assert image_view_config(info_for(3, 32), {"jitter_strength": 1.0}, 1).jitter_strength == pytest.approx(
        (0.8, 0.8, 0.8, 0.2))
    assert isinstance(image_views(info_for(3, 96), cfg, 2), ImageViews)


@pytest.mark.parametrize("cfg", [
    {"flip_p": 1.5}, {"blur_p": (0.5, 0.5, 0.5)}, {"crop_scale": (0.9, 0.1)}, {"crop_scale": (0.0, 1.0)},
    {"crop_ratio": (1.0,)}, {"jitter_strength": (1, 2)}, {"jitter_strength": (0.4, 0.4, 0.4, 0.7)},
    {"image_size": 0}, {"blur_kernel": 4}, {"solarize_p": "high"},
])
def test_bad_settings_raise_one_clear_error(cfg):
    with pytest.raises(ContrastkitError, match="image views"):
        image_views(info_for(3, 32), cfg, 1)


def test_bad_inputs_raise():
    with pytest.raises(ContrastkitError):
        image_views(info_for(3, 32), {}, 3)
    with pytest.raises(ContrastkitError):
        image_views(DataInfo("t", "table", (5,)), {}, 1)
    with pytest.raises(ContrastkitError):
        image_views(info_for(3, 32, mean=(0.5,)), {}, 1)
    with pytest.raises(ContrastkitError, match="batch"):
        image_views(info_for(3, 32), {}, 1)(smooth_images(2, 1, 32), gen(0))


# ==========================================================================================================
# (a) Random resized crop parameters
# ==========================================================================================================

CROP_CASES = [((32, 32), (0.2, 1.0), (3 / 4, 4 / 3)), ((96, 96), (0.08, 1.0), (3 / 4, 4 / 3)),
              ((28, 40), (0.5, 1.0), (0.25, 4.0)), ((20, 60), (0.9, 1.0), (3 / 4, 4 / 3))]


@pytest.mark.parametrize("size,scale,ratio", CROP_CASES)
def test_crop_params_equal_the_reference_given_the_same_uniforms(size, scale, ratio):
    height, width = size
    n = 3000
    u = torch.rand(n, 22, generator=gen(5))
    top, left, h, w = ops.crop_params_from_uniforms(
        u[:, :10], u[:, 10:20], u[:, 20:], height, width, scale, ratio
    )
    un = u.double().numpy()
    got = np.stack([top.numpy(), left.numpy(), h.numpy(), w.numpy()], 1)
    want = np.array([ref_crop_params(r[:10], r[10:20], r[20], r[21], height, width, scale, ratio)
                     for r in un])
    assert (got == want).all()


@pytest.mark.parametrize("size,scale,ratio", CROP_CASES)
def test_crop_param_distribution_matches_reference_sampler(size, scale, ratio):
    height, width = size
    n = 4000
    top, left, h, w = (t.double().numpy() for t in ops.sample_crop_params(
        n, height, width, scale, ratio, gen(11), torch.device("cpu")))
    rng = random.Random(12)
    ref = np.array([ref_crop_sampler(rng, height, width, scale, ratio) for _ in range(n)], dtype=np.float64)
    rt, rl, rh, rw = ref.T
    for ours, theirs in [(h * w / (height * width), rh * rw / (height * width)),  # area fraction
                         (np.log(w / h), np.log(rw / rh)),  # aspect ratio
                         ((top + h / 2) / height, (rt + rh / 2) / height),  # crop centre
                         ((left + w / 2) / width, (rl + rw / 2) / width)]:
        assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    assert np.all((top >= 0) & (left >= 0) & (top + h <= height) & (left + w <= width) & (h > 0) & (w > 0))


# ==========================================================================================================
# (b) Antialiased resize
# ==========================================================================================================

RESIZE_CASES = [  # (H, W, top, left, h, w, out): downscale, upscale, non-square, whole image
    (64, 64, 5, 9, 50, 41, 16), (32, 32, 4, 2, 11, 17, 32), (40, 48, 0, 0, 40, 48, 24),
    (96, 96, 10, 3, 80, 90, 96),
    (28, 28, 3, 5, 7, 22, 28)]


def _crop_resize(x_float, case):
    _, _, top, left, h, w, out = case
    t = lambda v: torch.tensor([v])  # noqa: E731
    return ops.resized_crop(x_float, t(top), t(left), t(h), t(w), out)


@pytest.mark.parametrize("case", RESIZE_CASES)
def test_resize_matches_pil_float_resampling(case):
    height, width, top, left, h, w, out = case
    x = torch.rand(1, 2, height, width, generator=gen(0))
    ours = _crop_resize(x, case)[0]
    for ch in range(2):
        pil = Image.fromarray(x[0, ch].numpy()).crop((left, top, left + w, top + h))
        pil = pil.resize((out, out), Image.BILINEAR)
        np.testing.assert_allclose(ours[ch].numpy(), np.asarray(pil), atol=2e-6)


@pytest.mark.parametrize("case", RESIZE_CASES)
def test_resize_matches_pil_uint8_rgb_and_torch_antialias(case):
    height, width, top, left, h, w, out = case
    x = smooth_images(1, 3, height, width, seed=1)
    ours = _crop_resize(x.float(), case)[0]
    pil = Image.fromarray(x[0].permute(1, 2, 0).numpy()).crop((left, top, left + w, top + h))
    pil = np.asarray(pil.resize((out, out), Image.BILINEAR), dtype=np.float32).transpose(2, 0, 1)
    err = np.abs(ours.numpy() - pil)
    assert err.mean() < 0.5 and err.max() <= 2.0  # PIL rounds to uint8 after each pass: within 2/255
    crop = x[:, :, top : top + h, left : left + w].float()
    tv = F.interpolate(crop, size=(out, out), mode="bilinear", align_corners=False, antialias=True)[0]
    torch.testing.assert_close(ours, tv, atol=1e-3, rtol=0)  # 255 scale; torch uses float32 weights


# ==========================================================================================================
# (c) Colour jitter ops
# ==========================================================================================================


def _batch01(n, c, size=12, seed=0):
    x = smooth_images(n, c, size, seed=seed).float() / 255
    x[0, :, 0, :3] = torch.tensor([0.5, 0.5, 0.5][:c]).view(c, 1)  # include achromatic pixels and ties
    if c == 3:
        x[0, :, 1, 0] = torch.tensor([1.0, 1.0, 0.2])
        x[0, :, 1, 1] = torch.tensor([0.3, 0.9, 0.9])
        x[0, :, 1, 2] = torch.tensor([0.7, 0.1, 0.7])
    return x


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation", "hue"])
def test_each_jitter_op_matches_torchvision_definition(name, c):
    n = 7
    x = _batch01(n, c)
    if name == "hue":
        factors = torch.linspace(-0.5, 0.5, n)
    else:
        factors = torch.tensor([0.0, 0.3, 0.6, 1.0, 1.2, 1.5, 1.8])
    fn = {"brightness": ops.adjust_brightness, "contrast": ops.adjust_contrast,
          "saturation": ops.adjust_saturation, "hue": ops.adjust_hue}[name]
    ref = {"brightness": ref_brightness, "contrast": ref_contrast,
           "saturation": ref_saturation, "hue": ref_hue}[name]
    ours = fn(x, factors)
    for i in range(n):
        np.testing.assert_allclose(ours[i].numpy(), ref(x[i].numpy(), float(factors[i])), atol=2e-6)
    if name != "hue":
        assert torch.equal(ours[3], x[3])  # factor 1 is an exact no-op


def test_hue_matches_colorsys_pixel_by_pixel():
    x = _batch01(3, 3, size=6, seed=4)
    shifts = torch.tensor([-0.37, 0.1, 0.5])
    ours = ops.adjust_hue(x, shifts)
    for i in range(3):
        for yy in range(6):
            for xx in range(6):
                h, s, v = colorsys.rgb_to_hsv(*x[i, :, yy, xx].double().tolist())
                want = colorsys.hsv_to_rgb((h + float(shifts[i])) % 1.0, s, v)
                np.testing.assert_allclose(ours[i, :, yy, xx].numpy(), want, atol=2e-6)


def test_jitter_ops_agree_with_pil_enhance_within_quantisation():
    x = smooth_images(1, 3, 32, seed=7)
    pil = Image.fromarray(x[0].permute(1, 2, 0).numpy())
    xf = x.float() / 255
    for fn, enhance, f in [(ops.adjust_brightness, ImageEnhance.Brightness, 1.3),
                           (ops.adjust_contrast, ImageEnhance.Contrast, 0.6),
                           (ops.adjust_saturation, ImageEnhance.Color, 1.4)]:
        ours = fn(xf, torch.tensor([f]))[0].numpy() * 255
        theirs = np.asarray(enhance(pil).enhance(f), dtype=np.float32).transpose(2, 0, 1)
        assert np.abs(ours - theirs).mean() < 1.0 and np.abs(ours - theirs).max() <= 2.5


@pytest.mark.parametrize("lockstep", [False, True])
@pytest.mark.parametrize("c", [1, 3])
def test_color_jitter_applies_ops_in_each_samples_order(c, lockstep, monkeypatch):
    if lockstep:  # the accelerator code path, on CPU
        monkeypatch.setattr(ops, "host_path", lambda t: False)
    n = 48
    x = _batch01(n, c, size=8, seed=2)
    g = gen(9)
    order = torch.argsort(torch.rand(n, 4, generator=g), dim=1)
    factors = torch.rand(n, 4, generator=g) * 1.2 + 0.4
    factors[:, 3] = torch.rand(n, generator=g) - 0.5
    active = torch.rand(n, generator=g) < 0.75
    ours = ops.color_jitter(x, factors, order, active)
    for i in range(n):
        a = x[i].numpy()
        if active[i]:
            for op in order[i].tolist():
                a = REF_JITTER[op](a, float(factors[i, op]))
        else:
            assert torch.equal(ours[i], x[i])  # RandomApply off: untouched
        np.testing.assert_allclose(ours[i].numpy(), a, atol=1e-5)


def test_jitter_order_is_a_uniform_permutation():
    views = image_views(info_for(3, 32), {"jitter_p": 1.0}, 1)
    order = views.sample_params(4800, 32, 32, gen(0), torch.device("cpu"))["jitter_order"]
    assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(4800, 4))
    codes = (order * torch.tensor([64, 16, 4, 1])).sum(1)
    counts = torch.bincount(codes, minlength=256)[torch.unique(codes)]
    assert len(counts) == 24 and stats.chisquare(counts.numpy()).pvalue > 1e-3


# ==========================================================================================================
# (d) Grayscale, blur, solarize
# ==========================================================================================================


def test_random_grayscale_matches_reference():
    x = _batch01(4, 3)
    mask = torch.tensor([True, False, True, False])
    ours = ops.random_grayscale(x, mask)
    for i in range(4):
        want = np.repeat(ref_gray(x[i].numpy())[None], 3, 0) if mask[i] else x[i].numpy()
        np.testing.assert_allclose(ours[i].numpy(), want, atol=1e-6)
    assert torch.equal(ours[1], x[1])


@pytest.mark.parametrize("ks,size", [(3, 12), (9, 20), (23, 24)])
def test_blur_matches_reference_convolution(ks, size):
    x = _batch01(4, 3, size=size, seed=3)
    sigma = torch.tensor([0.1, 0.7, 1.3, 2.0])
    kernel = ops.gaussian_kernel1d(sigma, ks)
    ours = ops.gaussian_blur(x, kernel)
    for i in range(4):
        np.testing.assert_allclose(ours[i].numpy(), ref_blur(x[i].numpy(), float(sigma[i]), ks), atol=2e-6)
    one_hot = torch.zeros(4, ks)
    one_hot[:, ks // 2] = 1
    assert torch.equal(ops.gaussian_blur(x, one_hot), x)


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_solarize_matches_reference(threshold):
    x = _batch01(4, 3)
    x[0, 0, 0, 0] = threshold
    mask = torch.tensor([True, False, True, True])
    ours = ops.solarize(x, mask, threshold)
    for i in range(4):
        a = x[i].numpy()
        want = np.where(a >= threshold, 1 - a, a) if mask[i] else a
        np.testing.assert_allclose(ours[i].numpy(), want, atol=1e-7)


def test_probabilities_are_honoured():
    n = 4000
    cfg = {"flip_p": 0.3, "jitter_p": 0.6, "grayscale_p": 0.2, "blur_p": (0.9, 0.1), "solarize_p": 0.25}
    p = image_views(info_for(3, 96), cfg, 2).sample_params(n, 96, 96, gen(0), torch.device("cpu"))
    for key, prob in [("flip", 0.3), ("jitter", 0.6), ("grayscale", 0.2), ("blur", 0.1), ("solarize", 0.25)]:
        assert stats.binomtest(int(p[key].sum()), n, prob).pvalue > 1e-3, key
    sigma = p["blur_sigma"].numpy()
    assert stats.kstest(sigma, stats.uniform(0.1, 1.9).cdf).pvalue > 1e-3


# ==========================================================================================================
# Whole recipe: batched views against the per-sample reference pipeline, distributionally
# ==========================================================================================================


def _view_statistics(v: np.ndarray) -> dict[str, np.ndarray]:
    """Per-view summaries sensitive to crop scale, flips, colour ops, blur and solarize."""
    mean_c = v.mean(axis=(2, 3))
    half = v.shape[-1] // 2
    return {
        "mean": mean_c.mean(1),
        "std": v.std(axis=(1, 2, 3)),
        "colourfulness": v.std(axis=1).mean(axis=(1, 2)),
        "sharpness": np.abs(np.diff(v, axis=3)).mean(axis=(1, 2, 3)),
        "left_minus_right": v[..., :half].mean(axis=(1, 2, 3)) - v[..., half:].mean(axis=(1, 2, 3)),
        "channel_0": mean_c[:, 0],
        "hue_axis": mean_c[:, 0] - mean_c[:, -1],  # red minus blue: moved by hue shifts
    }


@pytest.mark.parametrize("shape,n_img,reps,cfg", [
    ((3, 32, 32), 16, 64, {}),
    ((1, 28, 28), 16, 64, {}),
    ((3, 64, 64), 8, 50, {"solarize_p": 0.3, "jitter_strength": (0.4, 0.4, 0.2, 0.1)}),
])
def test_batched_views_match_reference_pipeline_distribution(shape, n_img, reps, cfg):
    c = shape[0]
    info = info_for(*shape, mean=(0.45,) * c, std=(0.25,) * c)
    views = image_views(info, cfg, 1)
    src = smooth_images(n_img, *shape, seed=21)
    # left-heavy images so flips show in left_minus_right
    src[..., : shape[2] // 3] = (src[..., : shape[2] // 3].float() * 0.5 + 127).to(torch.uint8)
    x = src.repeat(reps, 1, 1, 1)
    ours = views(x, gen(0)).numpy()
    rng = random.Random(0)
    xs = x.numpy()
    theirs = np.stack([reference_view(xs[i], views.config, info.mean, info.std, rng) for i in range(len(xs))])
    so, st = _view_statistics(ours), _view_statistics(theirs)
    for key in so:
        if c == 1 and key in ("colourfulness", "hue_axis"):
            continue
        p = stats.ks_2samp(so[key], st[key]).pvalue
        assert p > 1e-3, (key, p, so[key].mean(), st[key].mean())


def test_views_run_in_fp32_under_bf16_autocast():
    """Blur (a conv) under the step's autocast used to return bf16 into a float batch: a crash on 64 px images."""
    from contrastkit.data.base import DataInfo
    from contrastkit.views.image import image_views

    info = DataInfo("rgb64", "image", (3, 64, 64), mean=(0.5,) * 3, std=(0.25,) * 3)
    views = image_views(info, {"blur_p": 0.5}, view=1)
    x = torch.randint(0, 256, (16, 3, 64, 64), dtype=torch.uint8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = views(x, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32
    assert torch.equal(out, views(x, torch.Generator().manual_seed(0)))
