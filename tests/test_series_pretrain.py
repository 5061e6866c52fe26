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
