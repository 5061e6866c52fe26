"""Series encoders: shapes, any length, padding masked (a padded series embeds like the unpadded one)."""

import pytest
import torch

from contrastkit.data.base import DataInfo
from contrastkit.encoders import ENCODERS, create_encoder
from contrastkit.errors import ContrastkitError

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

INFO = DataInfo("s", "series", (3, 40), extra={"min_length": 10})
SMALL = {"resnet1d": {"width": 8}, "tcn": {"hidden": 8, "out_dim": 16, "depth": 3},
         "tcn-causal": {"hidden": 8, "out_dim": 16, "depth": 3, "causal": True}}


def make(key):
    torch.manual_seed(0)
    return create_encoder(key.split("-")[0], INFO, **SMALL[key]).eval()


@pytest.mark.parametrize("key", list(SMALL))
def test_shapes_and_any_length(key):
    enc = make(key)
    for t in (40, 17, 123, 1):
        out = enc(torch.randn(5, 3, t))
        assert out.shape == (5, enc.out_dim) and torch.isfinite(out).all()


@pytest.mark.parametrize("key", list(SMALL))
def test_padding_is_masked(key):
    enc = make(key)
    x = torch.randn(4, 3, 25)
    padded = torch.cat([x, torch.full((4, 3, 15), float("nan"))], dim=2)
    with torch.no_grad():
        torch.testing.assert_close(enc(padded), enc(x), atol=1e-5, rtol=1e-5)
        # a mixed batch: each series embeds as it would alone
        mixed = torch.full((2, 3, 40), float("nan"))
        mixed[0] = torch.randn(3, 40)
        mixed[1, :, :12] = torch.randn(3, 12)
        torch.testing.assert_close(enc(mixed)[1], enc(mixed[1:2, :, :12])[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc(mixed)[0], enc(mixed[0:1])[0], atol=1e-5, rtol=1e-5)


def test_causal_tcn_sees_only_the_past():
    enc = make("tcn-causal")
    x = torch.randn(1, 3, 30)
    y = x.clone()
    y[:, :, 20:] += 5.0
    with torch.no_grad():
        hx, _ = enc.steps(x)
        hy, _ = enc.steps(y)
    torch.testing.assert_close(hx[:, :20], hy[:, :20])
    assert not torch.allclose(hx[:, 20:], hy[:, 20:])


def test_default_encoder_for_series_and_clear_errors():
    assert {"resnet1d", "tcn"} <= set(ENCODERS.names())
    enc = create_encoder("auto", INFO)  # the default name picks the series default (encoders.DEFAULT_BY_KIND)
    assert type(enc).__name__ == "ResNet1D" and enc.out_dim == 64
    with pytest.raises(ContrastkitError, match="series shaped"):
        create_encoder("resnet1d", DataInfo("img", "image", (1, 8, 8)))
    enc.train()
    out = enc(torch.randn(8, 3, 40))
    out.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())
