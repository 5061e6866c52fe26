"""`contrastkit export`: the exported model takes raw input and reproduces `load_encoder` + the evaluation
preprocessing, loaded with plain PyTorch (torch.jit.load), ONNX (when installed) or safetensors (when installed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from contrastkit.cli import app
from contrastkit.data.base import DataInfo
from contrastkit.encoders import create_encoder
from contrastkit.errors import ContrastkitError
from contrastkit.export import export_run
from contrastkit.run import load_encoder, save_encoder
from contrastkit.views import create_preprocess

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGE = DataInfo("tiny-images", "image", (3, 16, 16), num_classes=2, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
TABLE = DataInfo("tiny-table", "table", (7,), extra={"numeric_index": [0, 1, 2, 3, 4], "categorical_index": [5, 6],
                                                       "cardinalities": [3, 4], "numeric_columns": list("abcde"),
                                                       "categorical_columns": ["f", "g"]})
SERIES = DataInfo("tiny-series", "series", (2, 24))


def _run(tmp_path: Path, info: DataInfo, encoder: str, **kwargs) -> Path:
    torch.manual_seed(0)
    enc = create_encoder(encoder, info, **kwargs)
    # train-mode BatchNorm statistics that differ from the initial ones, so eval mode matters
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    run = tmp_path / f"run-{info.kind}"
    run.mkdir()
    save_encoder(run / "encoder.pt", enc, info, {"encoder": encoder, "encoder_kwargs": kwargs, "method": "simclr",
                                                 "data": info.name})
    return run


def _reference(run: Path, x: torch.Tensor) -> torch.Tensor:
    encoder, info, _ = load_encoder(run)
    with torch.no_grad():
        return encoder(create_preprocess(info)(x)).flatten(1).float()


def _raw(info: DataInfo, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if info.kind == "image":
        return torch.randint(0, 256, (n, *info.shape), generator=g, dtype=torch.uint8)
    x = torch.randn((n, *info.shape), generator=g)
    if info.kind == "table":
        x[:, 5] = torch.randint(0, 3, (n,), generator=g).float()
        x[:, 6] = torch.randint(0, 4, (n,), generator=g).float()
    return x


@pytest.mark.parametrize("info, encoder, kwargs", [(IMAGE, "convnet", {"width": 8}), (TABLE, "mlp", {"width": 16}),
                                                   (SERIES, "resnet1d", {"width": 8})])
def test_torchscript_loads_with_plain_torch_and_matches_load_encoder(tmp_path, info, encoder, kwargs):
    run = _run(tmp_path, info, encoder, **kwargs)
    out = export_run(run, "torchscript", tmp_path / "exported" / "model.pt")
    extra = {"contrastkit.json": ""}
    model = torch.jit.load(str(out), map_location="cpu", _extra_files=extra)  # no contrastkit code involved
    x = _raw(info, 5)  # another batch size than the one traced
    with torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got, _reference(run, x), rtol=1e-5, atol=1e-5)
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert meta == json.loads(extra["contrastkit.json"])
    assert meta["input"]["kind"] == info.kind and meta["input"]["shape"] == [None, *info.shape]
    assert meta["output"]["shape"] == [None, got.shape[1]] and meta["encoder"] == encoder
    if info.kind == "image":
        assert meta["input"]["dtype"] == "uint8" and meta["input"]["mean"] == list(info.mean)


@pytest.mark.parametrize("info, encoder, kwargs", [(IMAGE, "convnet", {"width": 8}), (SERIES, "resnet1d", {"width": 8})])
def test_pt2_loads_with_torch_export_and_matches_load_encoder(tmp_path, info, encoder, kwargs):
    run = _run(tmp_path, info, encoder, **kwargs)
    out = export_run(run, "pt2")
    assert out == run / "model.pt2" and Path(str(out) + ".json").exists()
    model = torch.export.load(str(out)).module()
    for n in (1, 5):  # the batch dimension is dynamic
        x = _raw(info, n)
        with torch.no_grad():
            torch.testing.assert_close(model(x), _reference(run, x), rtol=1e-5, atol=1e-5)


def test_exported_image_model_bundles_the_normalisation(tmp_path):
    """Raw uint8 in: the model is not the bare encoder (which would need normalised floats)."""
    run = _run(tmp_path, IMAGE, "convnet", width=8)
    model = torch.jit.load(str(export_run(run, "torchscript")))
    assert (run / "model.pt").exists() and (run / "model.pt.json").exists()  # the default --out
    encoder, _, _ = load_encoder(run)
    x = _raw(IMAGE, 3)
    with torch.no_grad():
        assert not torch.allclose(model(x), encoder(x.float()).flatten(1), atol=1e-3)


def test_onnx_export_when_onnx_is_installed(tmp_path):
    onnx = pytest.importorskip("onnx")
    run = _run(tmp_path, IMAGE, "convnet", width=8)
    out = export_run(run, "onnx", tmp_path / "m.onnx")
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["x"]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8  # raw pixels in
    try:
        import onnxruntime as ort
    except ImportError:
        return
    x = _raw(IMAGE, 4)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), _reference(run, x), rtol=1e-4, atol=1e-4)


def test_safetensors_weights_and_sidecar_rebuild_the_encoder(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file

    run = _run(tmp_path, IMAGE, "convnet", width=8)
    out = export_run(run, "safetensors", tmp_path / "w.safetensors")
    tensors = load_file(str(out))
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert meta["info"]["shape"] == list(IMAGE.shape) and meta["config"]["encoder"] == "convnet"
    torch.testing.assert_close(tensors["preprocess.mean"].flatten(), torch.tensor(IMAGE.mean))
    fresh = create_encoder(meta["encoder"], IMAGE, **meta["encoder_kwargs"]).eval()
    fresh.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("preprocess.")})
    x = _raw(IMAGE, 3)
    with torch.no_grad():
        got = fresh(create_preprocess(IMAGE)(x)).flatten(1)
    torch.testing.assert_close(got, _reference(run, x))


def test_missing_optional_package_is_one_clear_error(tmp_path, monkeypatch):
    import sys

    run = _run(tmp_path, IMAGE, "convnet", width=8)
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ContrastkitError, match=r"pip install"):
        export_run(run, "safetensors")


def test_cli_export_and_bad_input(tmp_path):
    run = _run(tmp_path, IMAGE, "convnet", width=8)
    runner = CliRunner()
    res = runner.invoke(app, ["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "cli.pt")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli.pt").exists() and "cli.pt.json" in res.output
    res = runner.invoke(app, ["export", str(run), "--format", "tflite"])
    assert isinstance(res.exception, ContrastkitError) and "torchscript, pt2, onnx, safetensors" in str(res.exception)
    res = runner.invoke(app, ["export", str(tmp_path / "nope")])
    assert isinstance(res.exception, ContrastkitError) and "encoder.pt" in str(res.exception)
    with pytest.raises(ContrastkitError, match="sidecar"):
        export_run(run, "torchscript", tmp_path / "x.json")
