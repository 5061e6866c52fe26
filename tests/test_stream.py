"""Images larger than memory: a memory-mapped .npy trains exactly like the same array held in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastkit.build import train
from contrastkit.config import resolve_config
from contrastkit.data import load_data
from contrastkit.data.stream import Rows, StreamingDataset
from contrastkit.errors import ContrastkitError

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = dict(epochs=2, batch_size=32, evaluate=False, monitor_every=0, log_every=5, precision="fp32",
                device="cpu", encoder="convnet", encoder_kwargs={"width": 8}, proj_hidden_dim=16, proj_dim=8)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npy"
    np.save(path, rng.integers(0, 256, (300, 12, 12, 3), dtype=np.uint8))  # NHWC, as photos are often stored
    return path


def test_streamed_splits_are_the_in_memory_splits(images):
    mem = load_data(str(images), {"stream": False, "seed": 3})
    disk = load_data(str(images), {"stream": True, "seed": 3})
    assert isinstance(disk.train, StreamingDataset) and isinstance(disk.train.x, Rows)
    assert disk.info.shape == mem.info.shape == (3, 12, 12)
    # statistics from exact integer sums in chunks: the in-memory float64 ones to rounding
    assert disk.info.mean == pytest.approx(mem.info.mean, rel=1e-12)
    assert disk.info.std == pytest.approx(mem.info.std, rel=1e-12)
    assert torch.equal(disk.train.x[:], mem.train.x) and torch.equal(disk.test.x[:], mem.test.x)
    index = torch.tensor([7, 2, 200, 2, 0])  # unsorted, repeated: read sorted, returned in the asked order
    assert torch.equal(disk.train.batch(index).x, mem.train.x[index])


def test_channel_stats_in_small_chunks_match_the_in_memory_statistics():
    from contrastkit.data.images import _channel_stats
    from contrastkit.data.stream import channel_stats

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (700, 3, 9, 9), dtype=np.uint8)
    a[:, 1] //= 4  # channels that differ
    rows = Rows(a, np.arange(700)[::-1].copy(), False)  # in split order, not file order
    mean, std = channel_stats(rows, n=500, chunk_bytes=1000)  # 4 rows per chunk: many partial sums
    ref_mean, ref_std = _channel_stats(rows[:500])
    assert mean == pytest.approx(ref_mean, rel=1e-12) and std == pytest.approx(ref_std, rel=1e-12)
    assert mean[1] < 0.2 < mean[0]


def test_a_streamed_run_trains_the_same_weights_as_in_memory(images, tmp_path):
    a = train(resolve_config({**SETTINGS, "data": str(images), "stream": False, "out": str(tmp_path / "a")}),
              progress=False)
    b = train(resolve_config({**SETTINGS, "data": str(images), "stream": True, "out": str(tmp_path / "b")}),
              progress=False)
    assert a.steps == b.steps == 2 * (240 // 32)
    sa, sb = a.method.state_dict(), b.method.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # same batches, same order, read in a background thread


def test_streaming_refuses_what_it_cannot_map(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((10, 3, 8, 8), dtype=np.float32))
    with pytest.raises(ContrastkitError, match="streaming reads uint8 images"):
        load_data(str(tmp_path / "f.npy"), {"stream": True})
    np.savez(tmp_path / "z.npz", x=np.zeros((10, 3, 8, 8), dtype=np.uint8))
    with pytest.raises(ContrastkitError, match="neither a .npy file nor a .csv"):
        load_data(str(tmp_path / "z.npz"), {"stream": True})
