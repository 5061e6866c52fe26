"""Image encoders: shapes, out_dim, stems, parameter counts, AMP/channels_last, gradient flow, registry."""

from __future__ import annotations

import pytest
import torch

from contrastkit.data.base import DataInfo
from contrastkit.encoders import ENCODERS, create_encoder
from contrastkit.encoders.convnet import ConvNet
from contrastkit.encoders.resnet import ResNet, default_stem
from contrastkit.errors import ContrastkitError

IMAGE_ENCODERS = ["convnet", "resnet18", "resnet50"]
OUT_DIM = {"convnet": 384, "resnet18": 512, "resnet50": 2048}


def info_for(shape) -> DataInfo:
    return DataInfo(name="test", kind="image", shape=tuple(shape))


def build(name: str, shape, **kwargs):
    torch.manual_seed(0)
    return create_encoder(name, info_for(shape), **kwargs)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_registered():
    for name in IMAGE_ENCODERS:
        assert name in ENCODERS


# (shape, kwargs): 64×64 is run with the imagenet stem (its default would be the cifar stem).
CASES = [((1, 28, 28), {}), ((3, 32, 32), {}), ((3, 64, 64), {"stem": "imagenet"})]


@pytest.mark.parametrize("name", IMAGE_ENCODERS)
@pytest.mark.parametrize("shape,kwargs", CASES, ids=["1x28x28", "3x32x32", "3x64x64-imagenet"])
def test_output_shape(name, shape, kwargs):
    if name == "convnet":
        kwargs = {}  # the convnet has one stem
    enc = build(name, shape, **kwargs)  # train mode: BN on batch statistics
    assert enc.out_dim == OUT_DIM[name]
    with torch.no_grad():
        h = enc(torch.randn(2, *shape))
    assert h.shape == (2, OUT_DIM[name])
    assert torch.isfinite(h).all()


def test_default_stem_from_image_size():
    assert default_stem(info_for((3, 32, 32))) == "cifar"
    assert default_stem(info_for((1, 28, 28))) == "cifar"
    assert default_stem(info_for((3, 64, 64))) == "cifar"
    assert default_stem(info_for((3, 96, 96))) == "imagenet"
    assert default_stem(info_for((3, 224, 224))) == "imagenet"
    enc = build("resnet18", (3, 32, 32), width=8)
    assert enc.stem == "cifar" and enc.conv1.kernel_size == (3, 3)
    assert isinstance(enc.maxpool, torch.nn.Identity)
    enc = build("resnet18", (3, 32, 32), stem="imagenet", width=8)
    assert enc.conv1.kernel_size == (7, 7) and enc.conv1.stride == (2, 2)
    assert isinstance(enc.maxpool, torch.nn.MaxPool2d)


def test_resnet_parameter_counts():
    # torchvision resnet18: 11,689,512 parameters, fc = 512·1000 + 1000 = 513,000 → 11,176,512 without fc.
    assert n_params(build("resnet18", (3, 224, 224))) == 11_176_512
    # cifar stem: conv1 3·64·3·3 = 1,728 instead of 3·64·7·7 = 9,408.
    assert n_params(build("resnet18", (3, 32, 32))) == 11_176_512 - 9_408 + 1_728
    # torchvision resnet50: 25,557,032, fc = 2048·1000 + 1000 = 2,049,000.
    assert n_params(build("resnet50", (3, 224, 224))) == 25_557_032 - 2_049_000
    # one input channel: conv1 shrinks by a third.
    assert n_params(build("resnet18", (1, 28, 28))) == 11_176_512 - 9_408 + 576


def test_resnet_state_dict_uses_torchvision_names():
    keys = set(build("resnet18", (3, 224, 224), width=4).state_dict())  # names do not depend on width
    for k in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
              "layer4.1.bn2.weight"]:
        assert k in keys
    assert not any(k.startswith("fc.") for k in keys)
    keys50 = set(build("resnet50", (3, 224, 224), width=4).state_dict())
    assert "layer3.5.conv3.weight" in keys50 and "layer1.0.downsample.1.weight" in keys50


# Autocast and channels_last. bf16 convolutions are emulated (10–30× slower than fp32) on CPUs without
# AVX512-BF16/AMX, so the ResNets run on small imagenet-stem inputs here (the cifar stem differs only
# in conv1).
AMP_CASES = [("convnet", (1, 28, 28), {}), ("resnet18", (3, 32, 32), {"stem": "imagenet"}),
             ("resnet50", (3, 32, 32), {"stem": "imagenet"})]


@pytest.mark.parametrize("name,shape,kwargs", AMP_CASES, ids=[c[0] for c in AMP_CASES])
def test_bf16_autocast_and_channels_last(name, shape, kwargs):
    enc = build(name, shape, **kwargs).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        ref = enc(x)
        enc_cl = enc.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        out_cl = enc_cl(x_cl)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_amp = enc_cl(x_cl)
    assert out_cl.shape == ref.shape
    torch.testing.assert_close(out_cl, ref, rtol=1e-4, atol=1e-4)
    assert out_amp.dtype == torch.bfloat16 and out_amp.shape == ref.shape
    rel = (out_amp.float() - ref).norm() / ref.norm()
    assert rel < 0.05, f"bf16 output too far from fp32: relative error {rel:.3f}"


# The ResNets run at width 16 here: the wiring (every block, shortcut and BN) is what is tested, not the size.
GRAD_CASES = [("convnet", (1, 28, 28), {}), ("convnet", (3, 32, 32), {}),
              ("resnet18", (1, 28, 28), {"width": 16}), ("resnet50", (3, 32, 32), {"width": 16})]


@pytest.mark.parametrize("name,shape,kwargs", GRAD_CASES,
                         ids=["convnet-bf16", "convnet-3ch", "resnet18", "resnet50"])
def test_gradient_reaches_every_parameter(name, shape, kwargs):
    enc = build(name, shape, **kwargs).train()
    x = torch.randn(4, *shape).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=(name == "convnet")):
        h = enc(x)
    (h.float() @ torch.randn(h.shape[1], 8)).pow(2).sum().backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or not (p.grad != 0).any()]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters())


def test_zero_init_residual():
    enc = build("resnet18", (3, 32, 32), zero_init_residual=True, width=8)
    assert all((b.bn2.weight == 0).all() for layer in [enc.layer1, enc.layer4] for b in layer)
    assert (enc.bn1.weight == 1).all()
    enc50 = build("resnet50", (3, 224, 224), zero_init_residual=True, width=8)
    assert (enc50.layer2[1].bn3.weight == 0).all() and (enc50.layer2[1].bn2.weight == 1).all()
    assert (build("resnet18", (3, 32, 32), width=8).layer1[0].bn2.weight == 1).all()
    conv = build("convnet", (1, 28, 28), zero_init_residual=True)
    assert (conv.stages[0][0].bn2.weight == 0).all()


def test_convnet_options():
    enc = build("convnet", (1, 28, 28))
    assert [s[0].conv2.out_channels for s in enc.stages] == [24, 48, 96]  # the documented default
    assert enc.stem[0].stride == (2, 2) and [len(s) for s in enc.stages] == [1, 1, 1]
    # out_dim = final channels × pool_size² (a 2×2 grid of average-pooled cells by default)
    assert build("convnet", (1, 28, 28), width=16).out_dim == 64 * 4
    assert build("convnet", (1, 28, 28), width=32, pool_size=1).out_dim == 128
    assert build("convnet", (1, 28, 28), num_stages=4, pool_size=1).out_dim == 192
    assert build("convnet", (1, 28, 28), pool_size=4).out_dim == 96 * 16
    enc = build("convnet", (1, 28, 28), depth=(1, 2, 3))
    assert [len(s) for s in enc.stages] == [1, 2, 3]
    enc = build("convnet", (3, 32, 32), width=8, depth=0)  # stem + pooling only (stages as 1×1 projections)
    assert enc(torch.randn(2, 3, 32, 32)).shape == (2, 32 * 4)
    enc = build("convnet", (1, 28, 28), stem_stride=1)
    assert enc.stem[0].stride == (1, 1)
    with torch.no_grad():
        assert enc(torch.randn(2, 1, 28, 28)).shape == (2, 384)
        # any H, W, including non-square and tiny images (a 1×1 final map is repeated over the 2×2 grid)
        assert build("convnet", (2, 9, 20))(torch.randn(2, 2, 9, 20)).shape == (2, 384)
        x = torch.randn(3, 1, 28, 28)
        pooled = build("convnet", (1, 28, 28), pool_size=2).eval()
        grid = pooled.pool(pooled.stages(pooled.stem(x)))  # (3, 96, 2, 2): the cells are the quadrant means
        assert torch.allclose(pooled(x), grid.flatten(1))
        assert torch.allclose(grid.mean((2, 3)), pooled.stages(pooled.stem(x)).mean((2, 3)), atol=1e-5)
    with pytest.raises(ContrastkitError, match="pool_size"):
        build("convnet", (1, 28, 28), pool_size=0)
    assert isinstance(build("convnet", (1, 28, 28)), ConvNet)
    assert isinstance(build("resnet18", (1, 28, 28)), ResNet)


def test_bad_input_raises_clear_error():
    table = DataInfo(name="flows", kind="table", shape=(42,))
    for name in IMAGE_ENCODERS:
        with pytest.raises(ContrastkitError, match="flows"):
            create_encoder(name, table)
    with pytest.raises(ContrastkitError, match="stem"):
        create_encoder("resnet18", info_for((3, 32, 32)), stem="tiny")
    with pytest.raises(ContrastkitError, match="unknown encoder"):
        create_encoder("resnet7", info_for((3, 32, 32)))
    with pytest.raises(ContrastkitError, match="stem_stride"):
        create_encoder("convnet", info_for((3, 32, 32)), stem_stride=3)
