"""Series views (METHODS §20): every batched op against a slow per-sample numpy reference, on ragged batches."""

import math

import numpy as np
import pytest
import torch

from contrastkit.data.base import DataInfo
from contrastkit.data.series import series_lengths
from contrastkit.errors import ContrastkitError
from contrastkit.views import create_views
from contrastkit.views.series import (DEFAULT_RECIPE, OPS, ChannelDropout, Crop, Jitter, MagnitudeWarp, Permutation,
                                      Scaling, SeriesViews, TimeMask, TimeWarp, WindowSlice, series_views)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def ragged_batch(b=12, c=3, t=40, seed=0, min_len=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, t, generator=g)
    lengths = torch.randint(min_len, t + 1, (b,), generator=g)
    lengths[0] = t
    lengths[1] = min_len
    x[torch.arange(t)[None, None, :].expand(b, c, t) >= lengths[:, None, None]] = float("nan")
    return x, lengths


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def np_params(p, i):
    return {k: v[i].numpy().astype(np.float32) for k, v in p.items()}


# ------------------------------------------------------------------------------------- per-sample references
def ref_curve(knots, n):  # knots (..., K) over [0, n-1], cosine interpolation
    k = knots.shape[-1]
    out = np.empty(knots.shape[:-1] + (n,), dtype=np.float64)
    span = max(n - 1, 1)
    for t in range(n):
        pos = min(max(np.float32(t) / np.float32(span), 0), 1) * (k - 1)
        j = min(int(math.floor(pos)), k - 2)
        f = (1 - math.cos(math.pi * (pos - j))) / 2
        out[..., t] = knots[..., j] + f * (knots[..., j + 1] - knots[..., j])
    return out


def ref_interp(xs, src):  # xs (C, L), src (L,) float positions
    n = xs.shape[1]
    return np.stack([np.interp(np.clip(src, 0, n - 1), np.arange(n), row) for row in xs])


def reference(op, xs, p):
    """xs: one series (C, L) without padding; p: its parameters."""
    n = xs.shape[1]
    if isinstance(op, Jitter):
        return xs + op.sigma * p["noise"][:, :n]
    if isinstance(op, Scaling):
        return xs * p["factor"][:, None]
    if isinstance(op, MagnitudeWarp):
        return xs * ref_curve(p["knots"], n)
    if isinstance(op, TimeWarp):
        speed = ref_curve(np.maximum(p["knots"], 0.1), n)
        cum = np.cumsum(speed) - speed[0]
        src = cum / max(cum[n - 1], 1e-6) * (n - 1)
        return ref_interp(xs, src)
    if isinstance(op, Crop):
        size = int(np.round(np.float32(n) * (np.float32(op.low) + p["u_frac"] * np.float32(op.high - op.low))))
        size = max(min(max(size, op.min_steps, 1), n), 1)
        start = min(int(math.floor(p["u_start"] * np.float32(n - size + 1))), n - size)
        window = xs[:, start : start + size]
        assert window.shape[1] == size  # a contiguous window
        return ref_interp(window, np.arange(n) * ((size - 1) / max(n - 1, 1)))
    if isinstance(op, Permutation):
        kmax = op.max_segments
        k = min(1 + int(p["u_k"] * kmax), kmax, n)
        bounds = [(j * n) // k for j in range(k + 1)]
        order = np.argsort(p["order"][:k], kind="stable")
        return np.concatenate([xs[:, bounds[j] : bounds[j + 1]] for j in order], axis=1)
    if isinstance(op, TimeMask):
        span = int(np.round(np.float32(n) * np.float32(op.fraction)))
        start = min(int(math.floor(p["u_start"] * np.float32(n - span + 1))), n - span)
        out = xs.copy()
        out[:, start : start + span] = 0
        return out
    if isinstance(op, ChannelDropout):
        drop = p["u"] < op.p
        if drop.all():
            drop[:] = False
        out = xs.copy()
        out[drop] = 0
        return out
    raise AssertionError(op)


ALL_OPS = [Jitter(0.3), Scaling(0.4), MagnitudeWarp(0.4, 3), TimeWarp(0.5, 4), Crop(0.3, 0.9), Crop(0.5, 1.0, 8),
           WindowSlice(0.8), Permutation(5), TimeMask(0.3), ChannelDropout(0.5)]


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda o: repr(o))
def test_batched_op_matches_per_sample_reference(op):
    x, lengths = ragged_batch()
    assert torch.equal(series_lengths(x), lengths)
    p = op.sample(x, lengths, gen(3))
    out = op.apply(x, lengths, p)
    assert out.shape == x.shape
    assert torch.equal(torch.isnan(out), torch.isnan(x))  # padding kept, no NaN introduced
    for i in range(x.shape[0]):
        n = int(lengths[i])
        expect = reference(op, x[i, :, :n].numpy().astype(np.float64), np_params(p, i))
        np.testing.assert_allclose(out[i, :, :n].numpy(), expect, rtol=1e-4, atol=1e-4, err_msg=f"sample {i}")
    assert torch.equal(torch.nan_to_num(op(x, gen(3)), 7.0), torch.nan_to_num(out, 7.0))  # forward = apply(sample) with lengths read from the padding


def test_strength_zero_is_identity():
    x, _ = ragged_batch()
    for op in (Jitter(0), Scaling(0), MagnitudeWarp(0), TimeWarp(0), Crop(1.0, 1.0), WindowSlice(1.0), Permutation(1),
               TimeMask(0), ChannelDropout(0)):
        out = op(x, gen())
        assert torch.equal(torch.nan_to_num(out, 7.0), torch.nan_to_num(x, 7.0)), op
    # the non-identity paths at strength ~0 are identities too (resampling at integer positions is exact)
    x2, lengths = ragged_batch(seed=1)
    for op in (Crop(0.999999, 1.0), TimeWarp(1e-9)):
        out = op.apply(x2, lengths, op.sample(x2, lengths, gen()))
        torch.testing.assert_close(torch.nan_to_num(out, 7.0), torch.nan_to_num(x2, 7.0), atol=1e-5, rtol=0)


def test_crop_keeps_a_contiguous_window():
    t = 50
    ramp = torch.arange(t, dtype=torch.float32).expand(64, 1, t).clone()
    lengths = torch.full((64,), t)
    op = Crop(0.2, 0.6)
    p = op.sample(ramp, lengths, gen(5))
    out = op.apply(ramp, lengths, p)
    d = out[:, 0, 1:] - out[:, 0, :-1]
    assert (d > 0).all() and torch.allclose(d, d[:, :1].expand_as(d), atol=1e-4)  # a linear ramp: no gaps/jumps
    size = out[:, 0, -1] - out[:, 0, 0] + 1
    assert (size >= 0.2 * t - 1).all() and (size <= 0.6 * t + 1).all()
    assert (out >= 0).all() and (out <= t - 1).all()


def test_permutation_is_a_rearrangement():
    x, lengths = ragged_batch(b=30, c=1, t=60)
    out = Permutation(6)(x, gen(2))
    for i in range(30):
        n = int(lengths[i])
        assert sorted(out[i, 0, :n].tolist()) == sorted(x[i, 0, :n].tolist())


def test_same_seed_same_views_and_parameters_differ_per_sample():
    x, _ = ragged_batch()
    v = series_views(DataInfo("s", "series", (3, 40), extra={"min_length": 5}), {}, 1)
    assert torch.equal(torch.nan_to_num(v(x, gen(4))), torch.nan_to_num(v(x, gen(4))))
    assert not torch.equal(torch.nan_to_num(v(x, gen(4))), torch.nan_to_num(v(x, gen(5))))
    same = x[:1].expand(8, -1, -1).clone()
    out = Scaling(0.5)(same, gen())
    assert not torch.allclose(out[0], out[1], equal_nan=True)


def test_default_recipe_and_config():
    info = DataInfo("s", "series", (3, 40), extra={"min_length": 20})
    v = create_views(info, None, {}, 1)
    assert isinstance(v, SeriesViews) and [type(o).__name__.lower() for o in v.ops] == ["crop", "scaling", "jitter",
                                                                                          "timemask"]
    assert tuple(DEFAULT_RECIPE) == ("crop", "scaling", "jitter", "time_mask")
    every = series_views(info, {"series_views": list(OPS), "noise_sigma": [0.1, 0.0]}, 2)
    assert len(every.ops) == len(OPS) and every.ops[0].sigma == 0.0
    x, _ = ragged_batch(t=40, min_len=20)
    out = every(x, gen())
    assert out.shape == x.shape and torch.equal(torch.isnan(out), torch.isnan(x))
    assert series_views(info, {"series_views": "jitter,permutation"}, 1).ops[1].max_segments == 5
    with pytest.raises(ContrastkitError, match="unknown op"):
        series_views(info, {"series_views": ["flip"]}, 1)
    with pytest.raises(ContrastkitError, match="crop_length=30.*20 steps"):
        series_views(info, {"crop_length": 30}, 1)
    with pytest.raises(ContrastkitError, match="noise_sigma"):
        series_views(info, {"series_views": ["jitter"], "noise_sigma": -1}, 1)
