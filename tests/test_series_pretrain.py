"""End to end: a user's (N, C, T) .npz through `pretrain` (views, default series encoder, series evaluation)."""

import numpy as np
import pytest

from contrastkit.api import pretrain

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("method,extra", [("simclr", {"encoder_kwargs": {"width": 4}}),
                                          ("ts2vec", {"encoder_kwargs": {"hidden": 4, "out_dim": 8, "depth": 2}})])
def test_pretrain_on_an_npz_prints_the_series_table(tmp_path, method, extra):
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 32)
    y = np.arange(40) % 2
    x = np.stack([np.sin(2 * np.pi * (1 + 2 * y[:, None]) * t + rng.uniform(0, 6, (40, 1))),
                  rng.normal(size=(40, 32))], axis=1) + 0.1 * rng.normal(size=(40, 2, 32))
    x[::5, :, 28:] = np.nan  # some shorter series (NaN end padding)
    np.savez(tmp_path / "s.npz", x_train=x[:24], y_train=y[:24], x_test=x[24:], y_test=y[24:])
    result = pretrain(method=method, data=str(tmp_path / "s.npz"), epochs=2, batch_size=8, out=str(tmp_path / "run"),
                      progress=False, monitor_every=0, **extra)
    assert result.splits.info.kind == "series"
    metrics = [r["metric"] for r in result.eval_rows]
    assert metrics[:3] == ["SVM (RBF)", "linear probe", "1-NN Euclidean"] and metrics[3].startswith("1-NN DTW")
    assert all(0 <= r["raw input"] <= 1 for r in result.eval_rows)
    assert (tmp_path / "run" / "eval.json").exists()


def test_ts2vec_trains_its_pinned_steps_unless_epochs_are_given(tmp_path):
    """TS2Vec's budget is iterations (the paper's 200, here --steps 5): rounded up to whole epochs of 24 // 8 = 3
    steps; --epochs given by the user wins over the pinned steps."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "s.npz", x_train=rng.normal(size=(24, 1, 16)), x_test=rng.normal(size=(8, 1, 16)))
    common = {"method": "ts2vec", "data": str(tmp_path / "s.npz"), "batch_size": 8, "progress": False,
              "monitor_every": 0, "evaluate": False, "encoder_kwargs": {"hidden": 4, "out_dim": 8, "depth": 1}}
    by_steps = pretrain(steps=5, out=str(tmp_path / "a"), **common)
    assert by_steps.steps == 6 and by_steps.method.cfg["epochs"] == 2
    by_epochs = pretrain(epochs=1, out=str(tmp_path / "b"), **common)
    assert by_epochs.steps == 3 and by_epochs.method.cfg["steps"] is None
