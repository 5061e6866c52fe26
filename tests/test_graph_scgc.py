"""SCGC / SCGC*: L_NC against a slow loop and its METHODS §15 invariants, the sampled estimate, the methods."""

import math

import numpy as np
import pytest
import torch

from contrastkit.data.graph import graph_splits, normalized_adjacency, target_rows
from contrastkit.encoders import create_encoder
from contrastkit.errors import ContrastkitError
from contrastkit.methods import METHODS, create_method, method_defaults
from contrastkit.objectives.scgc import ncontrast_loss, ncontrast_sampled

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]


def slow_ncontrast(z_rows, z_keys, target, tau, self_index=None):
    """The reference's formula, one term at a time: −log(Σ_j A_ij e^{τ S_ij} / Σ_j e^{τ S_ij} + 1e-8)."""
    zr, zk, t = z_rows.double().tolist(), z_keys.double().tolist(), target.double().tolist()
    total = 0.0
    for i, a in enumerate(zr):
        num = den = 0.0
        for j, b in enumerate(zk):
            cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
            if self_index is not None and j == int(self_index[i]):
                cos = 0.0
            e = math.exp(tau * cos)
            num += t[i][j] * e
            den += e
        total += -math.log(num / den + 1e-8)
    return total / len(zr)


def two_block_graph(n=16, seed=0):
    """Two dense communities joined by one edge; features = community signal + noise."""
    rng = np.random.default_rng(seed)
    half = n // 2
    edges = [(i, j) for i in range(half) for j in range(i + 1, half) if rng.random() < 0.6]
    edges += [(i, j) for i in range(half, n) for j in range(i + 1, n) if rng.random() < 0.6]
    edges += [(0, n - 1)]
    y = np.array([0] * half + [1] * (n - half))
    x = rng.normal(size=(n, 6)) + 1.5 * np.stack([y, 1 - y] * 3, axis=1)
    return x.astype(np.float32), np.array(edges), y


@pytest.mark.parametrize("n,b,d", [(5, 5, 3), (9, 4, 8), (12, 1, 2)])
@pytest.mark.parametrize("tau", [0.25, 1.0, 2.25])
def test_ncontrast_matches_slow_loop(n, b, d, tau):
    g = torch.Generator().manual_seed(n * 10 + b)
    z = torch.randn(n, d, generator=g)
    index = torch.randperm(n, generator=g)[:b]
    target = torch.rand(b, n, generator=g) * (torch.rand(b, n, generator=g) < 0.5)
    target[torch.arange(b), index] += 0.1
    got = ncontrast_loss(z[index], z, target, tau, self_index=index)
    assert got.item() == pytest.approx(slow_ncontrast(z[index], z, target, tau, index), rel=1e-5, abs=1e-6)
    got_noself = ncontrast_loss(z[index], z, target, tau)
    assert got_noself.item() == pytest.approx(slow_ncontrast(z[index], z, target, tau), rel=1e-5, abs=1e-6)


def test_tau_zero_gives_log_n_for_row_stochastic_targets():
    x, edges, _ = two_block_graph()
    s = graph_splits("g", x, edges)
    a = normalized_adjacency(s.train.edge_index, s.train.edge_weight, 16, "row")
    idx = torch.arange(16)
    z = torch.randn(16, 4)
    for r in (1, 3):
        t = target_rows(a, idx, r)
        assert ncontrast_loss(z, z, t, 0.0, self_index=idx).item() == pytest.approx(math.log(16), abs=1e-5)


def test_loss_is_node_permutation_equivariant_and_differentiable():
    x, edges, _ = two_block_graph()
    s = graph_splits("g", x, edges)
    a = normalized_adjacency(s.train.edge_index, s.train.edge_weight, 16, "row")
    t = target_rows(a, torch.arange(16), 2)
    z = torch.randn(16, 5, requires_grad=True)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    l1 = ncontrast_loss(z, z, t, 1.0, self_index=torch.arange(16))
    l2 = ncontrast_loss(z[perm], z[perm], t[perm][:, perm], 1.0, self_index=torch.arange(16))
    assert l1.item() == pytest.approx(l2.item(), rel=1e-6)
    l1.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    with pytest.raises(ContrastkitError, match="tau"):
        ncontrast_loss(z, z, t, -1.0)


def slow_sampled(za, aid, zp, pid, tau, row_sum, n_total):
    b, m, _ = zp.shape
    keys = [(zp_i, k) for zp_i, k in zip(list(za) + list(zp.reshape(b * m, -1)), aid.tolist() + pid.reshape(-1).tolist())]

    def s(u, v, same):
        return 0.0 if same else float(torch.nn.functional.cosine_similarity(u, v, dim=0))

    total = 0.0
    for i in range(b):
        den = sum(math.exp(tau * s(za[i], v, k == int(aid[i]))) for v, k in keys) * n_total / len(keys)
        num = row_sum * sum(math.exp(tau * s(za[i], zp[i, j], int(pid[i, j]) == int(aid[i]))) for j in range(m)) / m
        total += -math.log(num / den + 1e-8)
    return total / b


def test_sampled_estimate_matches_its_slow_loop():
    g = torch.Generator().manual_seed(0)
    za, zp = torch.randn(5, 4, generator=g), torch.randn(5, 3, 4, generator=g)
    aid = torch.tensor([0, 3, 4, 7, 9])
    pid = torch.tensor([[0, 1, 2], [3, 3, 8], [5, 4, 4], [1, 2, 9], [0, 9, 9]])
    for tau, row_sum in ((1.0, 1.0), (0.5, 3.0)):
        got = ncontrast_sampled(za, aid, zp, pid, tau, row_sum, 100).item()
        assert got == pytest.approx(slow_sampled(za, aid, zp, pid, tau, row_sum, 100), rel=1e-5)


def test_sampled_estimate_is_close_to_the_exact_loss_when_the_batch_is_every_node():
    """With every node an anchor, keys ⊇ all nodes; the walk average estimates the A_r-weighted numerator."""
    x, edges, _ = two_block_graph()
    s = graph_splits("g", x, edges)
    a = normalized_adjacency(s.train.edge_index, s.train.edge_weight, 16, "row")
    from contrastkit.data.graph import WalkSampler

    walker = WalkSampler(s.train.edge_index, s.train.edge_weight, 16)
    z = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    idx = torch.arange(16)
    exact = ncontrast_loss(z, z, target_rows(a, idx, 2), 1.0, self_index=idx).item()
    g = torch.Generator().manual_seed(2)
    est = np.mean([ncontrast_sampled(z, idx, z[p], p, 1.0, 1.0, 16).item()
                   for p in (walker.sample(idx, 2, 64, False, g) for _ in range(20))])
    assert est == pytest.approx(exact, rel=0.1)


def _method(name, splits, **over):
    cfg = {**method_defaults(name), "method": name, **over}
    torch.manual_seed(0)
    return create_method(cfg, splits.info, splits.train)


@pytest.mark.parametrize("name", ["scgc", "scgc-star"])
@pytest.mark.parametrize("targets", ["exact", "walk"])
def test_methods_train_and_separate_two_communities(name, targets):
    x, edges, y = two_block_graph(n=24)
    splits = graph_splits("g", x, edges, y, cfg={"graph_smooth": 2})
    m = _method(name, splits, targets=targets)
    assert m.mode == targets and (m.decoder is None) == (name == "scgc-star")
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(60):
        idx = torch.randperm(24, generator=g)[:12]
        out = m.training_step(splits.train.batch(idx), g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["l_nc"].item())
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    from contrastkit.evaluate.cluster import cluster_scores

    with torch.no_grad():
        z = m.encoder.eval()(splits.train.x)
    assert cluster_scores(z, y, 2)["acc"] >= 0.95


def test_scgc_refuses_non_graph_data_and_bad_settings():
    from contrastkit.data.base import DataInfo

    info = DataInfo("t", "table", (4,))
    enc = create_encoder("mlp", info)
    with pytest.raises(ContrastkitError, match="needs graph data"):
        METHODS.get("scgc")(enc, info, {**method_defaults("scgc"), "method": "scgc"}, None)
    x, edges, y = two_block_graph()
    splits = graph_splits("g", x, edges, y)
    for bad, match in (({"order": 0}, "order"), ({"targets": "dense"}, "targets"), ({"tau": -1}, "tau")):
        with pytest.raises(ContrastkitError, match=match):
            _method("scgc", splits, **bad)


def test_scgc_star_target_is_the_cumulative_sum():
    x, edges, y = two_block_graph()
    splits = graph_splits("g", x, edges, y)
    m = _method("scgc-star", splits, targets="exact", order=3)
    idx = torch.tensor([0, 5, 9])
    t = m._target(idx)
    a = normalized_adjacency(splits.train.edge_index, splits.train.edge_weight, 16, "row")
    assert torch.allclose(t, target_rows(a, idx, 3, cumulative=True), atol=1e-6)
    assert torch.allclose(t.sum(1), torch.full((3,), 3.0), atol=1e-5)


def test_pretrain_end_to_end_on_karate(tmp_path):
    from contrastkit.api import pretrain

    r = pretrain(method="scgc", data="karate", epochs=30, out=str(tmp_path / "run"), progress=False, seed=0)
    rows = {row["metric"]: row for row in r.eval_rows}
    assert set(rows["clustering ACC"]) == {"metric", "encoder", "random init", "raw features",
                                          "smoothed features", "spectral"}
    assert rows["clustering ACC"]["encoder"] >= 0.8
    assert "node classification (linear probe)" in rows
    assert (tmp_path / "run" / "report.html").exists() and (tmp_path / "run" / "eval.json").exists()


def test_dec_target_rows_sum_to_one_and_are_sharper_than_q():
    from contrastkit.methods.scgc import student_t, target_distribution

    g = torch.Generator().manual_seed(0)
    z, mu = torch.randn(50, 4, generator=g), torch.randn(3, 4, generator=g)
    q = student_t(z, mu)
    p = target_distribution(q)
    assert torch.allclose(q.sum(1), torch.ones(50)) and torch.allclose(p.sum(1), torch.ones(50))
    entropy = lambda a: -(a * a.log()).sum(1)  # noqa: E731
    assert (entropy(p) <= entropy(q) + 1e-6).all()
    ref = (1 + ((z[:, None] - mu[None]) ** 2).sum(-1)) ** -1.0
    assert torch.allclose(q, ref / ref.sum(1, keepdim=True), atol=1e-6)


def test_dec_term_starts_at_kl_start_and_is_optional():
    x, edges, y = two_block_graph(n=24)
    splits = graph_splits("g", x, edges, y, cfg={"graph_smooth": 2})
    m = _method("scgc", splits, targets="exact", batch_size=24, beta=0.1, kl_start=0.5)
    assert m.n_clusters == 2 and not bool(m.kl_ready)
    g = torch.Generator().manual_seed(0)
    assert "l_kl" not in m.training_step(splits.train.batch(torch.arange(24)), g)
    m.after_step(3, 10)  # before half of training: nothing
    assert not bool(m.kl_ready)
    m.after_step(4, 10)
    assert bool(m.kl_ready) and torch.allclose(m.p_target.sum(1), torch.ones(24))
    out = m.training_step(splits.train.batch(torch.arange(24)), g)
    assert out["l_kl"].item() >= 0 and "centroids" in dict(m.named_parameters())
    assert _method("scgc", splits, beta=0.0).n_clusters == 0
    unlabelled = graph_splits("g", x, edges)
    with pytest.warns(UserWarning, match="DEC term"):
        assert _method("scgc", unlabelled).n_clusters == 0
