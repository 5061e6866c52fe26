"""Paired retrieval: recall@k and mean rank against brute force, the evaluation table's schema and baselines,
and a tiny end-to-end `pretrain(method="clip")` on a synthetic paired .npz."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import contrastkit  # noqa: F401
from contrastkit.evaluate.paired import paired_retrieval
from contrastkit.evaluate.protocol import EVALUATIONS

pytestmark = pytest.mark.usefixtures("one_thread")


def brute_force(a, b, k):
    a = torch.nn.functional.normalize(a, dim=1)
    b = torch.nn.functional.normalize(b, dim=1)
    sim = a @ b.T
    hits, ranks = [], []
    for i in range(len(a)):
        rank = sum(1 for j in range(len(b)) if j != i and sim[i, j] >= sim[i, i])  # ties count against i
        hits.append(rank < k)
        ranks.append(rank + 1)
    return float(np.mean(hits)), float(np.mean(ranks))


@pytest.mark.parametrize("seed", [0, 1])
def test_recall_at_k_and_mean_rank_match_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(37, 6, generator=g)
    b = a + 1.2 * torch.randn(37, 6, generator=g)
    b[5] = b[6]  # a tie in the gallery
    out = paired_retrieval(a, b, ("a", "b"))
    for k in (1, 5, 10):
        r_ab, mr_ab = brute_force(a, b, k)
        r_ba, mr_ba = brute_force(b, a, k)
        assert out[f"a→b R@{k}"] == pytest.approx(r_ab) and out[f"b→a R@{k}"] == pytest.approx(r_ba)
        assert out[f"mean R@{k}"] == pytest.approx((r_ab + r_ba) / 2)
    assert out["a→b mean rank"] == pytest.approx(mr_ab) and out["b→a mean rank"] == pytest.approx(mr_ba)


def test_collapsed_embeddings_score_zero():
    out = paired_retrieval(torch.ones(10, 4), torch.ones(10, 4))
    assert out["a→b R@1"] == 0.0 and out["a→b mean rank"] == 10.0


def _synthetic_npz(path, n=160, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))
    a = z @ rng.normal(size=(6, 12)) + 0.05 * rng.normal(size=(n, 12))
    b = np.tanh(z @ rng.normal(size=(6, 8))) + 0.05 * rng.normal(size=(n, 8))
    np.savez(path, left=a.astype(np.float32), right=b.astype(np.float32), y=(z[:, 0] > 0).astype(int))


def test_paired_evaluation_rows_have_the_baselines(tmp_path):
    from contrastkit.data import load_data
    from contrastkit.encoders import create_encoder

    _synthetic_npz(tmp_path / "p.npz")
    s = load_data(f"paired:{tmp_path / 'p.npz'}", {})
    make = lambda: create_encoder("paired", s.info, width=16, depth=1, out_dim=8, embed_dim=4)
    rows, extra = EVALUATIONS.get("paired")(make(), make, s, "cpu", {})
    metrics = [r["metric"] for r in rows]
    assert "left→right R@1" in metrics and "right→left mean rank" in metrics and "mean R@10" in metrics
    for r in rows:
        assert set(r) == {"metric", "encoder", "random init", "CCA"}
    cca = {r["metric"]: r["CCA"] for r in rows}
    assert cca["mean R@10"] > 0.5  # linear-ish synthetic pairs: CCA retrieves them
    assert extra["test_emb"].shape == (len(s.test), 8) and "timings" in extra


def test_pretrain_clip_end_to_end(tmp_path):
    from contrastkit.api import pretrain

    _synthetic_npz(tmp_path / "p.npz")
    result = pretrain(method="clip", data=f"paired:{tmp_path / 'p.npz'}", epochs=15, batch_size=32,
                      encoder_kwargs={"width": 32, "depth": 1, "out_dim": 16, "embed_dim": 16},
                      out=str(tmp_path / "run"), progress=False, monitor_every=0)
    rows = {r["metric"]: r for r in json.loads((tmp_path / "run" / "eval.json").read_text())["rows"]}
    assert rows["mean R@5"]["encoder"] > rows["mean R@5"]["random init"]
    assert (tmp_path / "run" / "encoder.pt").exists()
    assert result.method.scale().item() <= 100.0


def test_paired_evaluation_on_images_and_captions():
    from contrastkit.data.paired import RawSide, paired_splits
    from contrastkit.encoders import create_encoder

    rng = np.random.default_rng(0)
    colours = ["red", "green", "blue", "yellow"]
    idx = rng.integers(0, 4, 60)
    imgs = np.zeros((60, 3, 8, 8), dtype=np.uint8)
    for i, c in enumerate(idx):
        imgs[i, c % 3] = 60 * (c + 1)
        imgs[i] += rng.integers(0, 20, (3, 8, 8), dtype=np.uint8)
    caps = [f"a {colours[c]} square number {i}" for i, c in enumerate(idx)]
    s = paired_splits("pics", RawSide("image", "image", imgs), RawSide("text", "text", caps), idx, {})
    make = lambda: create_encoder("paired", s.info, embed_dim=8)
    rows, extra = EVALUATIONS.get("paired")(make(), make, s, "cpu", {})
    by = {r["metric"]: r for r in rows}
    assert by["image→text R@10"]["CCA"] is not None and "cca_error" not in extra
    assert extra["side_embeddings"][0].shape == (len(s.test), 8)
