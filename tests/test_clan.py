"""CLAN: the loss against a slow reference loop and its METHODS §14 invariants, the method, the anomaly protocol."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contrastkit.data.base import Batch, DataInfo, Dataset, DataSplits
from contrastkit.encoders import create_encoder
from contrastkit.errors import ContrastkitError
from contrastkit.evaluate.anomaly import anomaly_score_values
from contrastkit.evaluate.anomaly_protocol import anomaly_protocol, format_anomaly_table, knn_distance_scores
from contrastkit.methods import METHODS, method_defaults
from contrastkit.objectives.clan import clan_loss

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def reference_clan(z, z_aug, alpha, margin, eps=1e-8, reduction="active"):
    """Obviously-correct loop: i ≠ j original pairs are positives, every (original, augmented) pair a negative.

    reduction "active": each term averaged over the terms > eps (the reference); "mean": over all pairs."""
    z, z_aug = z.double().tolist(), z_aug.double().tolist()

    def d(a, b):
        cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
        return min(1.0, max(0.0, (1.0 - cos) / 2.0))

    pos = [d(z[i], z[j]) for i in range(len(z)) for j in range(len(z)) if i != j]
    neg = [max(0.0, margin - d(z[i], z_aug[j])) for i in range(len(z)) for j in range(len(z_aug))]
    n_pos, n_neg = len(pos), len(neg)
    pos, neg = [t for t in pos if t > eps], [t for t in neg if t > eps]
    if reduction == "active":
        n_pos, n_neg = len(pos), len(neg)
    l_sim = sum(pos) / n_pos if pos else 0.0
    l_dis = sum(neg) / n_neg if neg else 0.0
    return alpha * l_sim + (1 - alpha) * l_dis


@pytest.mark.parametrize("n,m,d", [(2, 2, 3), (5, 5, 8), (7, 4, 16), (16, 16, 4)])
@pytest.mark.parametrize("alpha,margin", [(0.5, 0.5), (0.2, 1.0), (1.0, 0.3), (0.0, 0.7)])
@pytest.mark.parametrize("reduction", ["active", "mean"])
def test_loss_matches_reference_loop(n, m, d, alpha, margin, reduction):
    g = torch.Generator().manual_seed(n * 100 + m + d)
    z, z_aug = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g)
    got = clan_loss(z, z_aug, alpha=alpha, margin=margin, reduction=reduction)
    assert got.item() == pytest.approx(reference_clan(z, z_aug, alpha, margin, reduction=reduction), abs=1e-6)
    assert got.item() >= 0.0


def test_mean_reduction_is_the_active_one_scaled_by_the_active_fraction():
    g = torch.Generator().manual_seed(5)
    z, za = torch.randn(9, 4, generator=g), torch.randn(7, 4, generator=g)
    _, act = clan_loss(z, za, alpha=0.0, margin=0.6, return_parts=True)
    _, mean = clan_loss(z, za, alpha=0.0, margin=0.6, return_parts=True, reduction="mean")
    assert 0.0 < act["frac_active_neg"].item() < 1.0
    assert mean["dis"].item() == pytest.approx(act["dis"].item() * act["frac_active_neg"].item(), rel=1e-5)
    with pytest.raises(ContrastkitError, match="reduction='max'; valid: active, mean"):
        clan_loss(z, za, reduction="max")


def test_loss_is_nonnegative_and_differentiable():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        z = torch.randn(12, 6, generator=g, requires_grad=True)
        za = torch.randn(12, 6, generator=g, requires_grad=True)
        loss = clan_loss(z, za)
        assert loss.item() >= 0.0
        loss.backward()
        assert torch.isfinite(z.grad).all() and torch.isfinite(za.grad).all()


def test_dis_term_vanishes_when_augmented_samples_are_beyond_the_margin():
    g = torch.Generator().manual_seed(1)
    e = torch.zeros(8)
    e[0] = 1.0
    z = F.normalize(e + 0.1 * torch.randn(10, 8, generator=g), dim=1)
    z_aug = F.normalize(-e + 0.1 * torch.randn(10, 8, generator=g), dim=1)  # ~antipodal: d ≈ 1 ≥ margin
    loss, parts = clan_loss(z, z_aug, alpha=0.5, margin=0.5, return_parts=True)
    assert parts["dis"].item() == 0.0 and parts["frac_active_neg"].item() == 0.0
    assert loss.item() == pytest.approx(0.5 * parts["sim"].item())
    assert clan_loss(z, z_aug, alpha=0.0, margin=0.5).item() == 0.0


@pytest.mark.parametrize("reduction", ["active", "mean"])
def test_no_active_terms_gives_zero_not_nan(reduction):
    z = torch.ones(6, 4, requires_grad=True)  # all originals identical: no positive term is active
    z_aug = -torch.ones(6, 4)  # all augmented antipodal: no negative term is active
    loss = clan_loss(z, z_aug, alpha=0.5, margin=1.0, reduction=reduction)
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert torch.isfinite(z.grad).all()
    single = clan_loss(torch.randn(1, 4), -torch.ones(1, 4) * 0 + torch.randn(1, 4))  # N = 1: no i ≠ j pairs
    assert torch.isfinite(single)


def test_own_augmentation_is_a_negative():
    z = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(2)), dim=1)
    _, parts = clan_loss(z, z.clone(), alpha=0.5, margin=0.5, return_parts=True)
    assert parts["frac_active_neg"].item() >= 4 / 16  # at least the diagonal (distance 0 < margin)


def test_loss_rejects_bad_arguments():
    z = torch.randn(4, 3)
    with pytest.raises(ContrastkitError, match="margin"):
        clan_loss(z, z, margin=1.5)
    with pytest.raises(ContrastkitError, match="alpha"):
        clan_loss(z, z, alpha=-0.1)
    with pytest.raises(ContrastkitError, match="same D"):
        clan_loss(z, torch.randn(4, 5))


# ------------------------------------------------------------------------------------------------ method
def toy_splits(n_train=512, n_test=300, seed=0):
    """Normal rows on a 2-d curve inside 6 standardised features; anomalies break the relation."""
    g = torch.Generator().manual_seed(seed)

    def normal(n):
        t = torch.rand(n, 1, generator=g) * 2 - 1
        base = torch.cat([t, t**2, -t, 0.5 * t, t**3, torch.zeros(n, 1)], 1)
        return base + 0.05 * torch.randn(n, 6, generator=g)

    anomalies = torch.randn(n_test // 3, 6, generator=g)
    x_test = torch.cat([normal(n_test - len(anomalies)), anomalies])
    y_test = torch.cat([torch.zeros(n_test - len(anomalies)), torch.ones(len(anomalies))]).long()
    info = DataInfo("toy", "table", (6,), num_classes=2, extra={"anomaly_label": 1})
    return DataSplits(Dataset(normal(n_train), torch.zeros(n_train, dtype=torch.long), info),
                      Dataset(x_test, y_test, info))


def make_clan(info, train=None, **overrides):
    cfg = {**method_defaults("clan"), **overrides}
    torch.manual_seed(0)
    enc = create_encoder(cfg["encoder"], info, width=32, depth=2, out_dim=16)
    if train is None:  # a table of the right width (the tests that check the info alone)
        train = Dataset(torch.randn(8, int(info.shape[0])), None, info)
    return METHODS.get("clan")(enc, info, cfg, train)


def test_method_is_registered_with_pinned_defaults():
    cls = METHODS.get("clan")
    d = cls.defaults
    assert (d["alpha"], d["margin"], d["p_f"], d["aug_low"], d["aug_high"]) == (0.5, 0.5, 0.1, -1.7, 1.7)
    assert (d["aug_range"], d["reduction"]) == ("train", "mean")  # the two measured departures (methods/clan.py)
    assert d["optimizer"] == "adamw" and d["weight_decay"] == 0.0 and d["encoder"] == "resmlp"
    assert d["proj_dim"] == 64 and d["lr_scaling"] == "none"


def test_training_step_and_short_training_beats_random_init():
    splits = toy_splits()
    method = make_clan(splits.info, splits.train, lr=3e-3)
    opt = torch.optim.AdamW(method.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(60):
        idx = torch.randint(0, len(splits.train), (128,), generator=g)
        out = method.training_step(Batch(splits.train.x[idx], idx), g)
        assert set(out) >= {"loss", "l_sim", "l_dis", "frac_neg"} and torch.isfinite(out["loss"])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    fresh = lambda: create_encoder("resmlp", splits.info, width=32, depth=2, out_dim=16)  # noqa: E731
    rows = anomaly_protocol(method.encoder, None, splits, method_name="clan", seed=0, random_encoder=fresh,
                            centroid=method.anomaly_centroid)
    table = {(r["model"], r["scorer"]): r for r in rows}
    scorers = ("centroid", "knn-5", "centroid+raw", "knn-5+raw")
    assert set(table) == {(m, s) for m in ("clan", "random init") for s in scorers} | {
        ("isolation forest", "iforest"), ("raw features", "lof-20"), ("raw features", "knn-5")}
    assert sum(r["rank"] for r in rows) == pytest.approx(len(rows) * (len(rows) + 1) / 2)
    for r in rows:
        assert 0.0 <= r["auroc"] <= 1.0 and 0.0 <= r["aupr"] <= 1.0 and r["seconds"] >= 0.0
    assert table[("clan", "centroid")]["auroc"] > 0.9
    assert table[("clan", "centroid")]["auroc"] > table[("random init", "centroid")]["auroc"]
    assert "isolation forest" in format_anomaly_table(rows)
    h = method.encoder(splits.test.x[:5])
    score = anomaly_score_values(method.encoder(splits.train.x).detach(), h.detach(), centroid="raw")
    assert score.shape == (5,) and (score >= -1).all() and (score <= 1).all()


def test_method_needs_a_table_and_normal_training_rows():
    with pytest.raises(ContrastkitError, match="needs tabular data"):
        make_clan(DataInfo("img", "image", (1, 8, 8)), encoder="mlp")
    splits = toy_splits()
    polluted = Dataset(splits.train.x, torch.ones(len(splits.train), dtype=torch.long), splits.info)
    with pytest.raises(ContrastkitError, match="normal rows only"):
        make_clan(splits.info, polluted)
    with pytest.raises(ContrastkitError, match="margin"):
        make_clan(splits.info, margin=2.0)
    with pytest.raises(ContrastkitError, match="aug_range='box'; valid: fixed"):
        make_clan(splits.info, aug_range="box")
    with pytest.raises(ContrastkitError, match="reduction='sum'; valid: active, mean"):
        make_clan(splits.info, reduction="sum")


def test_training_range_augmentation_draws_inside_each_training_column():
    splits = toy_splits()
    method = make_clan(splits.info, splits.train, p_f=0.5)  # default aug_range: train
    lo, hi = splits.train.x.min(0).values, splits.train.x.max(0).values
    assert torch.equal(method.augment.low, lo) and torch.equal(method.augment.high, hi)
    x = torch.full((4000, 6), 50.0)  # far outside every column: replaced entries show
    out = method.augment(x, torch.Generator().manual_seed(0))
    replaced = out != x
    assert 0.4 < replaced.float().mean() < 0.6 and (replaced.sum(1) >= 1).all()
    low, high = lo.expand_as(x)[replaced], hi.expand_as(x)[replaced]
    assert ((out[replaced] >= low) & (out[replaced] <= high)).all()
    for j in range(6):  # spread over the whole column range, not a fixed ±1.7
        v = out[:, j][replaced[:, j]]
        assert v.min() < lo[j] + 0.1 * (hi[j] - lo[j]) and v.max() > hi[j] - 0.1 * (hi[j] - lo[j])
    fixed = make_clan(splits.info, splits.train, aug_range="fixed")
    assert (fixed.augment.low == -1.7).all() and "low=-1.7" in repr(fixed.augment)
    assert "training min/max" in repr(method.augment)


# ------------------------------------------------------------------------------------------------ protocol
def test_protocol_per_class_auroc_and_errors():
    splits = toy_splits(n_test=90)
    cls = [0] * 60 + [1] * 15 + [2] * 15
    test_info = DataInfo("toy", "table", (6,), extra={"class_ids": cls})
    splits = DataSplits(splits.train, Dataset(splits.test.x, splits.test.y, test_info))
    enc = create_encoder("mlp", splits.info, width=16, depth=1, out_dim=8)
    rows = anomaly_protocol(enc, None, splits, baselines=False)
    assert [r["model"] for r in rows] == ["encoder"] * 4  # centroid, knn-5, centroid+raw, knn-5+raw
    assert all("balanced_auroc" in r for r in rows)
    no_labels = DataSplits(splits.train, Dataset(splits.test.x, None, test_info))
    with pytest.raises(ContrastkitError, match="needs test labels"):
        anomaly_protocol(enc, None, no_labels)
    multi = DataSplits(splits.train, Dataset(splits.test.x, torch.arange(90) % 3, test_info))
    with pytest.raises(ContrastkitError, match="0 \\(normal\\) and 1 \\(anomaly\\)"):
        anomaly_protocol(enc, None, multi)


def test_knn_distance_scores_match_brute_force():
    g = torch.Generator().manual_seed(0)
    tr, te = torch.randn(50, 3, generator=g), torch.randn(7, 3, generator=g)
    got = knn_distance_scores(tr, te, k=3, chunk=2)
    d = torch.cdist(te.double(), tr.double())
    want = d.sort(1).values[:, :3].mean(1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_pretrain_runs_clan_on_a_csv_through_the_trainer(tmp_path):
    import pandas as pd

    from contrastkit.api import pretrain

    rng = np.random.default_rng(0)
    n = 300
    pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], n),
                  "label": rng.choice(["ok", "bad"], n, p=[0.9, 0.1])}).to_csv(tmp_path / "t.csv", index=False)
    result = pretrain(method="clan", data=str(tmp_path / "t.csv"), label_column="label", anomaly_label="bad",
                      epochs=2, batch_size=64, evaluate=False, monitor_every=0, out=str(tmp_path / "run"),
                      progress=False, device="cpu", encoder_kwargs={"width": 16, "depth": 1, "out_dim": 8})
    assert result.steps == 2 * (len(result.splits.train) // 64)
    assert (tmp_path / "run" / "encoder.pt").exists()
    rows = anomaly_protocol(result.method.encoder, None, result.splits, method_name="clan", baselines=False)
    assert len(rows) == 4 and all(0.0 <= r["auroc"] <= 1.0 for r in rows)


def test_loss_math_stays_fp32_under_autocast():
    g = torch.Generator().manual_seed(3)
    z, za = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = clan_loss(z.bfloat16(), za.bfloat16())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(reference_clan(z.bfloat16().float(), za.bfloat16().float(), 0.5, 0.5), abs=1e-6)


def test_clan_centroid_is_the_raw_mean_other_methods_keep_the_normalised_mean():
    """METHODS §14 (corrected): CLAN's c is the raw mean of the outputs; the protocol's centroid score for every
    other method stays the mean of normalised embeddings."""
    from contrastkit.evaluate.anomaly import anomaly_score_values
    from contrastkit.methods import METHODS

    train = torch.tensor([[10.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # raw mean ≈ x-axis, normalised mean ≈ y-axis
    test = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    raw = anomaly_score_values(train, test, centroid="raw")
    nrm = anomaly_score_values(train, test)
    assert raw[0] < raw[1] and nrm[0] > nrm[1]
    c = train.mean(0, keepdim=True)  # the reference's c: the raw mean
    torch.testing.assert_close(torch.from_numpy(raw).float(), -torch.nn.functional.cosine_similarity(test, c))
    assert METHODS.get("clan").anomaly_centroid == "raw"  # saved with the run (encoder.pt "centroid")
    assert METHODS.get("simclr").anomaly_centroid == "normalized"
