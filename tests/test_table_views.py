"""Tabular views (METHODS §19 invariants) and the MLP encoders."""

import pytest
import torch

from contrastkit.data.base import DataInfo, Dataset
from contrastkit.encoders import ENCODERS, create_encoder
from contrastkit.errors import ContrastkitError
from contrastkit.views import create_views
from contrastkit.views.tabular import (ClanAugment, FeatureMask, GaussianNoise, ScarfCorruption, clan_augment,
                                       table_views)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

CARDS = [4, 6]  # 3 and 5 training categories + the reserved code


def table_info(n_num=3):
    extra = {"numeric_index": list(range(n_num)), "categorical_index": [n_num, n_num + 1], "cardinalities": CARDS}
    return DataInfo("t", "table", (n_num + 2,), extra=extra)


def train_table(n=50, n_num=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    num = torch.randn(n, n_num, generator=g)
    cat = torch.stack([torch.randint(0, c - 1, (n,), generator=g) for c in CARDS], 1).float()
    return Dataset(torch.cat([num, cat], 1), None, table_info(n_num))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_rate_zero_is_identity():
    train = train_table()
    x = train.x[:20] + 0.5
    info = table_info()
    for module in (ScarfCorruption(train.x, 0.0), GaussianNoise([0, 1, 2], 0.0), FeatureMask(5, [3, 4], CARDS, 0.0),
                   ClanAugment(5, [3, 4], CARDS, p_f=0.0),
                   table_views(info, train, {"corruption_rate": 0.0}, 1)):
        assert torch.equal(module(x, gen()), x)


def test_scarf_replaced_values_come_from_the_same_training_column():
    train = train_table(n=40)
    x = train_table(n=500, seed=1).x + 100.0  # every original value differs from every training value
    out = ScarfCorruption(train.x, 0.6)(x, gen())
    changed = out != x
    assert 0.55 < changed.float().mean() < 0.65
    for j in range(x.shape[1]):
        col = set(train.x[:, j].tolist())
        assert set(out[changed[:, j], j].tolist()) <= col
        assert torch.equal(out[~changed[:, j], j], x[~changed[:, j], j])


def test_categorical_columns_stay_in_their_category_set():
    train = train_table()
    x = train_table(n=400, seed=3).x
    for module in (table_views(train.info, train, {"corruption_rate": 0.9, "noise_std": 1.0}, 1),
                   ClanAugment(5, [3, 4], CARDS, p_f=0.9)):
        out = module(x, gen())
        for j, card in zip((3, 4), CARDS):
            assert set(out[:, j].tolist()) <= set(float(c) for c in range(card - 1))
    masked = FeatureMask(5, [3, 4], CARDS, 0.5)(x, gen())
    for j, card in zip((3, 4), CARDS):
        assert set(masked[:, j].tolist()) <= set(float(c) for c in range(card))  # + reserved "missing" code
        assert (masked[:, j] == card - 1).any()
    assert ((masked[:, :3] == 0) | (masked[:, :3] == x[:, :3])).all()


def test_same_seed_same_output_and_different_seed_differs():
    train = train_table()
    views = table_views(train.info, train, {"noise_std": 0.1, "mask_rate": 0.2}, 2)
    aug = ClanAugment(5, [3, 4], CARDS)
    x = train.x
    for m in (views, aug):
        assert torch.equal(m(x, gen(7)), m(x, gen(7)))
        assert not torch.equal(m(x, gen(7)), m(x, gen(8)))


def test_gaussian_noise_touches_numeric_columns_only():
    x = train_table(n=4000).x
    out = GaussianNoise([0, 1, 2], 0.5)(x, gen())
    assert torch.equal(out[:, 3:], x[:, 3:])
    assert (out[:, :3] - x[:, :3]).std().item() == pytest.approx(0.5, rel=0.05)


def test_clan_augment_distribution():
    x = torch.full((4000, 5), 9.0)
    x[:, 3:] = 0.0
    out = ClanAugment(5, [3, 4], CARDS, p_f=0.1)(x, gen())
    changed = out[:, :3] != 9.0
    assert 0.09 < changed.float().mean() < 0.11
    vals = out[:, :3][changed]
    assert vals.min() >= -1.7 and vals.max() <= 1.7 and abs(vals.mean()) < 0.1
    assert vals.var().item() == pytest.approx(3.4**2 / 12, rel=0.1)  # U(-1.7, 1.7)
    # categorical replacements are uniform over the training categories
    counts = torch.bincount(out[:, 4].long(), minlength=6)
    assert counts[5] == 0 and (counts[1:5] > 0).all()


def test_clan_augment_min_features_changes_every_row():
    x = torch.full((500, 5), 9.0)
    x[:, 3:] = 0.5  # not a valid code: every categorical replacement shows
    out = ClanAugment(5, [3, 4], CARDS, p_f=0.1, min_features=1)(x, gen())
    assert ((out != x).sum(1) >= 1).all()
    plain = ClanAugment(5, [3, 4], CARDS, p_f=0.1)(x, gen())
    assert ((plain != x).sum(1) == 0).any()  # 0.9**5 ≈ 59 % of rows unchanged by the reference recipe


def test_per_view_settings_and_registry_dispatch():
    train = train_table()
    v1 = create_views(train.info, train, {"corruption_rate": [0.0, 0.5]}, 1)
    v2 = create_views(train.info, train, {"corruption_rate": [0.0, 0.5]}, 2)
    assert torch.equal(v1(train.x, gen()), train.x) and not torch.equal(v2(train.x, gen()), train.x)
    with pytest.raises(ContrastkitError, match="corruption_rate=1.5"):
        table_views(train.info, train, {"corruption_rate": 1.5}, 1)
    aug = clan_augment(train.info, {"p_f": 0.2, "aug_low": -1.0, "aug_high": 1.0})
    assert aug.p_f == 0.2 and (aug.low == -1.0).all() and (aug.high == 1.0).all()


def test_table_without_metadata_is_all_numeric():
    info = DataInfo("arr", "table", (4,))
    train = Dataset(torch.randn(30, 4), None, info)
    out = table_views(info, train, {"corruption_rate": 0.5, "noise_std": 0.1}, 1)(train.x, gen())
    assert out.shape == (30, 4)


# ------------------------------------------------------------------------------------------------ encoders
@pytest.mark.parametrize("name", ["mlp", "resmlp"])
def test_encoders_embed_categoricals(name):
    assert name in ENCODERS
    info = table_info()
    enc = create_encoder(name, info, width=32, depth=2, out_dim=16)
    assert enc.out_dim == 16 and len(enc.input.embeddings) == 2
    x = train_table(n=8).x
    h = enc(x)
    assert h.shape == (8, 16) and torch.isfinite(h).all()
    x2 = x.clone()
    x2[:, 3] = (x2[:, 3] + 1) % 3  # another category changes the embedding
    assert not torch.allclose(enc(x2), h)
    x3 = x.clone()
    x3[:, 4] = 5.0  # reserved / unknown code is valid input
    assert torch.isfinite(enc(x3)).all()
    h.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_encoder_defaults_and_plain_input():
    enc = create_encoder("resmlp", DataInfo("arr", "table", (7,)))
    assert enc.out_dim == 128 and enc(torch.randn(5, 7)).shape == (5, 128)
    img = create_encoder("mlp", DataInfo("img", "image", (1, 4, 4)), width=16, depth=1, out_dim=8)
    assert img(torch.randint(0, 255, (3, 1, 4, 4), dtype=torch.uint8)).shape == (3, 8)
    with pytest.raises(ContrastkitError, match="norm='group'"):
        create_encoder("mlp", DataInfo("arr", "table", (7,)), norm="group")


# ------------------------------------------------------------------------- SCARF fidelity (issue 17, §19)
def test_scarf_default_keeps_the_anchor_and_corrupts_exactly_floor_c_m_features():
    train = train_table(n=60, n_num=8)  # M = 10 features
    x = train_table(n=300, n_num=8, seed=1).x + 100.0  # no original value equals a training value
    v1 = create_views(train.info, train, {}, 1)
    v2 = create_views(train.info, train, {}, 2)
    assert torch.equal(v1(x, gen()), x)  # the anchor is the row itself, uncorrupted
    changed = (v2(x, gen()) != x).sum(1)
    assert (changed == 6).all()  # ⌊0.6 · 10⌋ in every row
    changed = (create_views(train.info, train, {"corruption_rate": 0.35}, 2)(x, gen()) != x).sum(1)
    assert (changed == 3).all()


def test_scarf_feature_survives_in_both_views_with_probability_1_minus_c():
    train = train_table(n=60, n_num=8)
    x = train_table(n=2000, n_num=8, seed=2).x + 100.0
    kept_both = (create_views(train.info, train, {}, 1)(x, gen(1)) == x) & \
                (create_views(train.info, train, {}, 2)(x, gen(2)) == x)
    assert kept_both.float().mean().item() == pytest.approx(0.4, abs=0.01)  # not (1 − 0.6)² = 0.16


def test_scarf_both_views_corrupted_stays_selectable():
    train = train_table(n=60, n_num=8)
    x = train_table(n=200, n_num=8, seed=3).x + 100.0
    cfg = {"corruption_rate": [0.6, 0.6]}
    for view in (1, 2):
        assert ((create_views(train.info, train, cfg, view)(x, gen(view)) != x).sum(1) == 6).all()
    bern = ScarfCorruption(train.x, 0.6, exact=False)(x, gen())  # per-entry Bernoulli(c), the former sampling
    counts = (bern != x).sum(1)
    assert counts.float().mean().item() == pytest.approx(6.0, abs=0.3) and counts.min() < counts.max()
