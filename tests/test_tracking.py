"""`--tensorboard true`: the metrics rows as TensorBoard scalars (a fake SummaryWriter stands in for the optional
tensorboard package), and one clear error before anything is written when the package is missing."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from contrastkit.engine.loop import StepInfo
from contrastkit.errors import ContrastkitError
from contrastkit.tracking import TensorBoardLogger

pytestmark = pytest.mark.usefixtures("one_thread")


class FakeWriter:
    made: list["FakeWriter"] = []

    def __init__(self, log_dir=None, purge_step=None):
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        FakeWriter.made.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tensorboard(monkeypatch):
    mod = types.ModuleType("torch.utils.tensorboard")
    mod.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", mod)
    FakeWriter.made = []
    return FakeWriter


def _info(step, row):
    return StepInfo(step=step, total_steps=10, epoch=1.0, loss=1.0, lr=0.1, samples_per_s=5.0, values={}, row=row)


def test_rows_become_scalars_and_resume_purges(fake_tensorboard, tmp_path):
    logger = TensorBoardLogger(tmp_path / "tb")
    logger.on_start(4, 10)
    logger.on_step(_info(5, None))  # a step without a metrics row logs nothing
    logger.on_step(_info(6, {"step": 6, "loss": 2.5, "lr": 0.1, "knn": 0.8, "note": "x", "bad": float("nan")}))
    logger.on_end()
    (w,) = fake_tensorboard.made
    assert w.log_dir == str(tmp_path / "tb") and w.purge_step == 4 and w.closed
    assert w.scalars == [("train/loss", 2.5, 6), ("train/lr", 0.1, 6), ("train/knn", 0.8, 6)]


def test_pretrain_with_tensorboard(fake_tensorboard, tmp_path):
    from contrastkit.api import pretrain

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "imgs.npz", x=rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8))
    pretrain(data=str(tmp_path / "imgs.npz"), epochs=2, batch_size=16, out=str(tmp_path / "run"), progress=False,
             monitor_every=0, log_every=1, evaluate=False, tensorboard=True, proj_dim=8, proj_hidden_dim=16)
    (w,) = fake_tensorboard.made
    assert w.log_dir == str(tmp_path / "run" / "tensorboard") and w.purge_step is None and w.closed
    steps = [s for tag, _, s in w.scalars if tag == "train/loss"]
    assert steps == sorted(steps) and len(steps) >= 2


def test_missing_tensorboard_is_refused_before_anything_is_written(monkeypatch, tmp_path):
    from contrastkit.api import pretrain

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ContrastkitError, match="pip install tensorboard"):
        pretrain(data="digits", out=str(tmp_path / "r"), tensorboard=True, progress=False)
    assert not (tmp_path / "r").exists()


def test_real_tensorboard_event_files_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path / "tb")
    logger.on_start(0, 3)
    for step, loss in ((1, 3.0), (2, 2.0), (3, 1.5)):
        logger.on_step(_info(step, {"step": step, "loss": loss, "lr": 0.1}))
    logger.on_end()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, 3.0), (2, 2.0), (3, 1.5)]
