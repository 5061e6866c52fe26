"""Backbones from the ecosystem (`--encoder timm:NAME` / `torchvision:NAME`, with fake packages injected into
sys.modules: neither is a dependency), `.out_dim` inferred for backbones without it, and the plug-in route
(`--import MODULE`) honoured by every subcommand."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from contrastkit.cli import app
from contrastkit.config import resolve_config
from contrastkit.data.base import DataInfo
from contrastkit.encoders import ENCODERS, create_encoder, register_encoder
from contrastkit.errors import ContrastkitError

pytestmark = pytest.mark.usefixtures("one_thread")

GREY = DataInfo("grey", "image", (1, 12, 12))
RGB = DataInfo("rgb", "image", (3, 12, 12))


class _TinyNet(nn.Module):
    """A classifier with a `.fc` head and no `.out_dim` (like torchvision's ResNets)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, width, 3)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes) if num_classes else nn.Identity()
        self.num_classes, self.num_features = num_classes, width

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


@pytest.fixture
def fake_timm(monkeypatch):
    calls = []
    mod = types.ModuleType("timm")

    def create_model(name, pretrained=False, num_classes=1000, in_chans=3, **kwargs):
        calls.append({"name": name, "pretrained": pretrained, "num_classes": num_classes, "in_chans": in_chans,
                      **kwargs})
        if name != "tiny":
            raise RuntimeError(f"Unknown model ({name})")
        return _TinyNet(num_classes, in_chans, **kwargs)

    mod.create_model = create_model
    monkeypatch.setitem(sys.modules, "timm", mod)
    return calls


@pytest.fixture
def fake_torchvision(monkeypatch):
    tv, models = types.ModuleType("torchvision"), types.ModuleType("torchvision.models")

    def get_model(name, weights=None, **kwargs):
        if name != "tinynet":
            raise ValueError(f"Unknown model {name}")
        assert weights is None
        return _TinyNet(10, 3, **kwargs)

    models.get_model = get_model
    tv.models = models
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)


def test_timm_backbone_is_headless_with_the_data_channels(fake_timm):
    enc = create_encoder("timm:tiny", GREY, width=7)
    assert fake_timm[-1] == {"name": "tiny", "pretrained": False, "num_classes": 0, "in_chans": 1, "width": 7}
    assert enc.out_dim == 7
    assert enc(torch.randn(4, 1, 12, 12)).shape == (4, 7)


def test_torchvision_backbone_head_removed_grey_repeated_out_dim_inferred(fake_torchvision):
    enc = create_encoder("torchvision:tinynet", GREY, width=6)
    assert enc.out_dim == 6  # from a dummy forward (no .out_dim, no timm num_features)
    bn = next(m for m in enc.modules() if isinstance(m, nn.BatchNorm2d))
    assert int(bn.num_batches_tracked) == 0 and enc.training  # the dummy batch changed nothing
    assert enc(torch.randn(3, 1, 12, 12)).shape == (3, 6)
    assert create_encoder("torchvision:tinynet", RGB).out_dim == 5


def test_unknown_names_and_missing_packages_are_clear_errors(fake_timm, monkeypatch):
    with pytest.raises(ContrastkitError, match="Unknown model"):
        create_encoder("timm:nope", RGB)
    with pytest.raises(ContrastkitError, match="unknown prefix 'keras'"):
        create_encoder("keras:resnet", RGB)
    with pytest.raises(ContrastkitError, match="image models"):
        create_encoder("timm:tiny", DataInfo("t", "table", (5,)))
    monkeypatch.setitem(sys.modules, "timm", None)  # as if not installed
    with pytest.raises(ContrastkitError, match=r"needs the timm package.*pip install timm"):
        create_encoder("timm:tiny", RGB)
    # checked with the settings, before any run folder exists
    with pytest.raises(ContrastkitError, match="pip install timm"):
        resolve_config({"encoder": "timm:resnet18", "data": "digits"})
    with pytest.raises(ContrastkitError, match="timm:NAME / torchvision:NAME"):
        resolve_config({"encoder": "resnet9000"})


def test_registered_backbone_without_out_dim_gets_it_inferred():
    class NoDim(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 9)

        def forward(self, x):
            return self.lin(x)

    register_encoder("_test_nodim")(lambda info, **kw: NoDim())
    try:
        enc = create_encoder("_test_nodim", DataInfo("t", "table", (4,)))
        assert enc.out_dim == 9  # not an AttributeError in the projection head
    finally:
        ENCODERS._entries.pop("_test_nodim")


PLUGIN = '''
import torch
from torch import nn
from contrastkit.encoders import register_encoder


class PlugNet(nn.Module):  # no out_dim: contrastkit infers it
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, 6, 3)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean((2, 3))


@register_encoder("plugnet")
def plugnet(info, **kwargs):
    return PlugNet(info.shape[0])
'''


def test_import_plugin_is_honoured_by_every_subcommand(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "ck_plugin_mod.py").write_text(PLUGIN)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "imgs.npz", x=rng.integers(0, 256, (60, 1, 8, 8), dtype=np.uint8), y=np.arange(60) % 2)
    runner = CliRunner()

    def forget_plugin():  # what a new process would see
        ENCODERS._entries.pop("plugnet", None)
        sys.modules.pop("ck_plugin_mod", None)

    try:
        res = runner.invoke(app, ["pretrain", "--data", str(tmp_path / "imgs.npz"), "--encoder", "plugnet"])
        assert isinstance(res.exception, ContrastkitError) and "unknown encoder 'plugnet'" in str(res.exception)
        run = tmp_path / "run"
        res = runner.invoke(app, ["pretrain", "--import", "ck_plugin_mod", "--data", str(tmp_path / "imgs.npz"),
                                  "--encoder", "plugnet", "--epochs", "1", "--batch-size", "16", "--out", str(run),
                                  "--no-progress", "--monitor-every", "0", "--proj-dim", "8",
                                  "--proj-hidden-dim", "16"])
        assert res.exit_code == 0, (res.output, res.exception)
        assert "import_modules:\n- ck_plugin_mod" in (run / "config.yaml").read_text()
        for args in (["evaluate", str(run), "--protocol", "linear"],
                     ["embed", str(run), "--data", str(tmp_path / "imgs.npz"), "--out", str(tmp_path / "e.csv")],
                     ["report", str(run)],
                     ["export", str(run), "--out", str(tmp_path / "m.pt")]):
            forget_plugin()  # the run's config.yaml brings it back
            res = runner.invoke(app, args)
            assert res.exit_code == 0, (args, res.output, res.exception)
        assert torch.jit.load(str(tmp_path / "m.pt"))(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).shape == (2, 6)
        forget_plugin()  # --resume reads the run's config.yaml, import_modules included
        res = runner.invoke(app, ["pretrain", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"])
        assert res.exit_code == 0, (res.output, res.exception)
        res = runner.invoke(app, ["evaluate", str(run), "--import", "no_such_module_xyz"])
        assert isinstance(res.exception, ContrastkitError) and "--import no_such_module_xyz" in str(res.exception)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)  # the plug-in is not importable from here
        sys.path[:] = [p for p in sys.path if p not in ("", str(tmp_path))]
        forget_plugin()
        res = runner.invoke(app, ["evaluate", str(run), "--protocol", "linear"])
        assert isinstance(res.exception, ContrastkitError), res.output
        assert "the run imports ck_plugin_mod" in str(res.exception) and "PYTHONPATH" in str(res.exception)
    finally:
        forget_plugin()


def test_entry_point_plugins_are_imported_once(monkeypatch):
    import importlib.metadata as md

    from contrastkit import plugins

    class FakeEP:
        name, value = "fakeplug", "fake_plugin_mod"

        def load(self):
            register_encoder("_ep_net")(lambda info, **kw: nn.Linear(int(info.shape[0]), 3))

    calls = []
    monkeypatch.setattr(md, "entry_points", lambda group=None: calls.append(group) or [FakeEP()])
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    try:
        plugins.import_plugins(None)
        plugins.import_plugins(None)  # once only
        assert calls == ["contrastkit.plugins"]
        assert create_encoder("_ep_net", DataInfo("t", "table", (4,))).out_dim == 3  # inferred, too
    finally:
        ENCODERS._entries.pop("_ep_net", None)
