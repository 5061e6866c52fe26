"""`--layer backbone|projection`: which layer every protocol evaluates, saved with the run and reloaded."""

from __future__ import annotations

import json

import pytest
import torch

from contrastkit.api import pretrain
from contrastkit.config import resolve_config
from contrastkit.core.checkpoint import load_checkpoint
from contrastkit.errors import ContrastkitError
from contrastkit.run import load_encoder

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = dict(data="digits", batch_size=64, epochs=1, log_every=5, monitor_every=0,
            encoder="mlp", encoder_kwargs={"width": 32, "depth": 1, "out_dim": 16},
            proj_hidden_dim=32, proj_dim=8, precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def projection_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "projection"
    return pretrain(**TINY, layer="projection", out=str(out), progress=False)


def test_projection_layer_is_saved_and_reloaded_as_encoder_then_head(projection_run):
    method = projection_run.method.eval()
    x = torch.randn(5, 64)
    with torch.no_grad():
        expected = method.head(method.encoder(x))
        model, _, cfg = load_encoder(projection_run.run_dir, layer="projection")
        assert torch.allclose(model(x), expected, atol=1e-6)
        backbone, _, _ = load_encoder(projection_run.run_dir)
        assert backbone(x).shape[1] == 16 and model(x).shape[1] == 8
    assert cfg["layer"] == "projection"


def test_projection_layer_is_what_the_evaluation_scored(projection_run, tmp_path):
    # the same run evaluated on the backbone gives other numbers: the layer reached the protocols
    backbone = pretrain(**TINY, out=str(tmp_path / "backbone"), progress=False)
    rows_p = json.loads((projection_run.run_dir / "eval.json").read_text())["rows"]
    rows_b = json.loads((backbone.run_dir / "eval.json").read_text())["rows"]
    assert len(rows_p) == len(rows_b) > 0
    assert rows_p != rows_b
    assert "layer evaluated" in (projection_run.run_dir / "report.html").read_text()


def test_a_run_without_a_saved_head_refuses_the_projection_layer(projection_run, tmp_path):
    state = load_checkpoint(projection_run.run_dir / "encoder.pt")
    del state["projection_head"]
    torch.save(state, tmp_path / "encoder.pt")
    with pytest.raises(ContrastkitError, match="--layer projection"):
        load_encoder(tmp_path, layer="projection")


def test_an_unknown_layer_is_refused_up_front():
    with pytest.raises(ContrastkitError, match="--layer middle"):
        resolve_config({"data": "digits", "layer": "middle"})
    with pytest.raises(ContrastkitError, match="backbone, projection"):
        resolve_config({"layer": "x"})


def test_evaluate_and_embed_follow_the_layer(projection_run, tmp_path):
    from contrastkit.evaluate.run_eval import embed_to_file, evaluate_run

    run = projection_run.run_dir
    own = evaluate_run(run, ["knn"], progress=False)  # the run's own --layer: projection
    assert own == evaluate_run(run, ["knn"], progress=False, layer="projection")
    assert own != evaluate_run(run, ["knn"], progress=False, layer="backbone")
    import numpy as np

    embed_to_file(run, "digits", tmp_path / "p.npy", layer="projection")
    embed_to_file(run, "digits", tmp_path / "b.npy")
    assert np.load(tmp_path / "p.npy").shape[1] == 8 and np.load(tmp_path / "b.npy").shape[1] == 16
