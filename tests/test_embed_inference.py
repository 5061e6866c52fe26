"""`contrastkit embed RUN --data NEW`: every row of new data, in input order, with ids and labels; the run's
own preprocessing (image size/channels, table scaler) applied, nothing split or shuffled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from contrastkit.api import pretrain
from contrastkit.evaluate.run_eval import embed_to_file
from contrastkit.run import load_encoder
from contrastkit.views import create_preprocess

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

FAST = dict(epochs=1, batch_size=16, evaluate=False, monitor_every=0, precision="fp32", device="cpu",
            proj_hidden_dim=16, proj_dim=8)


def _folder(root, n_per_class=12, size=(12, 10), seed=0):
    rng = np.random.default_rng(seed)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            Image.fromarray(rng.integers(0, 256, size[::-1] + (3,), dtype=np.uint8)).save(root / cls / f"{i:02d}.png")


def test_an_image_folder_is_embedded_whole_in_order_with_file_names(tmp_path):
    _folder(tmp_path / "train")
    pretrain(data=str(tmp_path / "train"), encoder="convnet", encoder_kwargs={"width": 8},
             out=str(tmp_path / "run"), progress=False, **FAST)
    new = tmp_path / "new"
    new.mkdir()
    rng = np.random.default_rng(1)
    names = ["b.png", "a.jpg", "c.png"]
    for name, size in zip(names, [(40, 30), (12, 10), (8, 8)]):  # other sizes: resized like training images
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(new / name)
    (new / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "emb.npz"
    assert embed_to_file(tmp_path / "run", str(new), out) == 3  # not 80/20, not shuffled
    saved = np.load(out)
    assert saved["ids"].tolist() == ["a.jpg", "b.png", "c.png"]
    encoder, info, _ = load_encoder(tmp_path / "run")
    img = np.array(Image.open(new / "a.jpg").convert("RGB")).transpose(2, 0, 1)[None].copy()
    with torch.no_grad():
        direct = encoder(create_preprocess(info)(torch.from_numpy(img)))
    assert np.allclose(saved["embeddings"][0], direct.numpy()[0], atol=1e-4)


def test_a_table_is_embedded_with_the_runs_scaler_and_an_id_column(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(5, 2, (200, 3)), columns=["a", "b", "c"])
    df["kind"] = rng.choice(["x", "y"], 200)
    df.to_csv(tmp_path / "train.csv", index=False)
    pretrain(data=str(tmp_path / "train.csv"), label_column="kind", encoder="mlp",
             encoder_kwargs={"width": 16, "depth": 1, "out_dim": 8}, out=str(tmp_path / "run"), progress=False,
             **FAST)
    new = pd.DataFrame({"uid": ["r9", "r3", "r5"], "a": [5.0, 50.0, 5.0], "b": [5.0, 5.0, 5.0],
                        "c": [1.0, 2.0, 3.0], "kind": ["x", "y", "x"]})
    new.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "emb.csv"
    assert embed_to_file(tmp_path / "run", str(tmp_path / "new.csv"), out, id_column="uid") == 3
    got = pd.read_csv(out)
    assert got["id"].tolist() == ["r9", "r3", "r5"] and got["label"].tolist() == ["x", "y", "x"]
    assert [c for c in got.columns if c.startswith("e")] == [f"e{i}" for i in range(8)]
    # the training split's scaling, not the new file's: one row alone embeds the same as inside the file
    new.iloc[[1]].to_csv(tmp_path / "one.csv", index=False)
    embed_to_file(tmp_path / "run", str(tmp_path / "one.csv"), tmp_path / "one.csv.npz")
    alone = np.load(tmp_path / "one.csv.npz")["embeddings"][0]
    assert np.allclose(alone, got.iloc[1][[f"e{i}" for i in range(8)]].to_numpy(float), atol=1e-5)
