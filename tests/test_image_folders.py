"""Folders of real photos: EXIF orientation, aspect ratio kept, a working size for large photos, and a decode
cache that makes the second run start without decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from contrastkit.data import images as image_data
from contrastkit.data import load_data


def test_exif_orientation_turns_the_photo_upright(tmp_path):
    a = np.zeros((20, 40, 3), dtype=np.uint8)  # a landscape frame ...
    a[:, :20] = 255
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6  # ... that the camera says to rotate by 90° (portrait)
    img.save(tmp_path / "p.jpg", exif=exif, quality=95)
    assert image_data._decode(tmp_path / "p.jpg").shape == (40, 20, 3)


def test_large_photos_keep_their_aspect_ratio_at_the_working_size(tmp_path, caplog):
    wide = np.zeros((100, 200), dtype=np.uint8)
    wide[:, 50:150] = 255  # a white square in the middle of a wide black frame
    out = image_data._resize(wide, (96, 96))
    assert out.shape == (96, 96) and out.mean() > 250  # centred crop; stretching would be half black
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(640, 480), (300, 900), (1000, 750), (500, 500)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    splits = load_data(str(folder), {"test_fraction": 0.25})
    assert splits.info.shape == (3, 96, 96) and "working at 96x96" in caplog.text


def test_a_decoded_folder_is_cached_and_reused(tmp_path, monkeypatch):
    folder = tmp_path / "many"
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(image_data.CACHE_MIN_FILES + 10):
        Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(folder / "ab"[i % 2] / f"{i}.png")
    (folder / "a" / "broken.png").write_bytes(b"nope")
    cfg = {"cache_dir": str(tmp_path / "cache")}
    first = load_data(str(folder), cfg)
    assert len(list((tmp_path / "cache" / "images").glob("*.npy"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(image_data, "_read_images", no_decoding)
    again = load_data(str(folder), cfg)
    assert torch.equal(first.train.x, again.train.x) and torch.equal(first.test.y, again.test.y)
    assert again.info.extra["skipped_files"] == first.info.extra["skipped_files"] == ["a/broken.png"]
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(folder / "b" / "new.png")  # the folder changed:
    with pytest.raises(AssertionError, match="decoded again"):  # a new key, so it is decoded again
        load_data(str(folder), cfg)
