"""The sparse GCN against dense matrix products, graph views, GRACE."""

import numpy as np
import pytest
import torch

from contrastkit.data.graph import GRAPHS, build_graph, graph_splits, normalized_adjacency
from contrastkit.encoders import create_encoder
from contrastkit.encoders.graph import GCNLayer
from contrastkit.errors import ContrastkitError
from contrastkit.methods import create_method, method_defaults
from contrastkit.views.graph import FeatureMask, drop_edges, mask_features

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]


def graph(n=20, e=50, seed=0, f=7, labels=True):
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, n, size=(e, 2))
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = rng.integers(0, 2, size=n) if labels else None
    return x, edges, y


def dense_sym(ei, w, n):
    a = torch.zeros(n, n, dtype=torch.float64)
    a[ei[0], ei[1]] = w.double()
    a += torch.eye(n, dtype=torch.float64)
    d = a.sum(1)
    return a / torch.sqrt(d[:, None] * d[None, :])


@pytest.mark.parametrize("out_dim", [5, 12])  # narrower and wider than the 7 inputs (two product orders)
def test_gcn_layer_matches_dense_products_forward_and_backward(out_dim):
    x, edges, _ = graph()
    ei, w, _ = build_graph(edges, 20, np.random.default_rng(1).uniform(0.5, 2, len(edges)))
    a_sparse = normalized_adjacency(ei, w, 20, "sym")
    a_dense = dense_sym(ei, w, 20).float()
    layer = GCNLayer(7, out_dim)
    with torch.no_grad():
        layer.bias.normal_()
    xt = torch.tensor(x, requires_grad=True)
    out = layer(xt, a_sparse)
    ref_x = xt.detach().clone().requires_grad_(True)
    ref = a_dense @ (ref_x @ layer.linear.weight.T) + layer.bias
    assert torch.allclose(out, ref, atol=1e-5)
    g = torch.randn(20, out_dim)
    (out * g).sum().backward()
    grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    (ref * g).sum().backward()
    assert torch.allclose(xt.grad, ref_x.grad, atol=1e-5)
    for a, b in zip(grads, [p.grad for p in layer.parameters()]):
        assert torch.allclose(a, b, atol=1e-4)


def test_gcn_encoder_embeds_node_ids_like_the_dense_two_layer_formula():
    x, edges, y = graph(seed=4)
    s = graph_splits("g", x, edges, y, cfg={"graph_x": "ids"})
    assert s.train.x.dtype == torch.long and s.train.x.tolist() == list(range(20))
    enc = create_encoder("gcn", s.info, hidden=6, out_dim=3)
    a = dense_sym(s.train.edge_index, s.train.edge_weight, 20).float()
    l1, l2 = enc.layers
    h = enc.acts[0](a @ (torch.as_tensor(x) @ l1.linear.weight.T) + l1.bias)
    ref = a @ (h @ l2.linear.weight.T) + l2.bias
    ids = torch.tensor([3, 0, 19])
    assert torch.allclose(enc(ids), ref[ids], atol=1e-5)
    enc.eval()
    with torch.no_grad():
        first = enc(ids)
        assert torch.allclose(first, ref[ids].detach(), atol=1e-5)
        l2.bias.add_(1.0)  # a parameter change invalidates the eval cache
        assert torch.allclose(enc(ids), first + 1.0, atol=1e-5)
    with pytest.raises(ContrastkitError, match="node ids"):
        enc(torch.randn(3, 7))


def test_gcn_needs_its_graph_and_graph_data():
    from contrastkit.data.base import DataInfo

    with pytest.raises(ContrastkitError, match="needs graph data"):
        create_encoder("gcn", DataInfo("t", "table", (3,)))
    x, edges, y = graph(seed=8)
    s = graph_splits("g", x, edges, y, cfg={"graph_x": "ids"})
    enc = create_encoder("gcn", s.info)
    GRAPHS.pop(s.info.extra["graph_key"])
    with pytest.raises(ContrastkitError, match="load that graph"):
        enc(torch.tensor([0]))


def test_drop_edges_keeps_the_view_symmetric_and_drops_about_p():
    _, edges, _ = graph(n=200, e=3000, seed=2)
    ei, w, _ = build_graph(edges, 200)
    g = torch.Generator().manual_seed(0)
    e2, _ = drop_edges(ei, w, 0.3, g)
    pairs = set(map(tuple, e2.T.tolist()))
    assert all((v, u) in pairs for u, v in pairs)
    assert abs(e2.shape[1] / ei.shape[1] - 0.7) < 0.05
    assert drop_edges(ei, w, 0.0)[0] is ei
    with pytest.raises(ContrastkitError):
        drop_edges(ei, w, 1.0)


def test_mask_features_zeroes_whole_columns():
    x = torch.randn(50, 40) + 5
    out = mask_features(x, 0.5, torch.Generator().manual_seed(0))
    zero_cols = (out == 0).all(0)
    assert ((out == 0) == zero_cols[None, :]).all() and 5 < int(zero_cols.sum()) < 35
    assert mask_features(x, 0.0) is x
    fm = FeatureMask(0.25)(x, torch.Generator().manual_seed(0))
    assert 0.15 < float((fm == 0).float().mean()) < 0.35


def test_grace_trains_and_needs_node_ids():
    x, edges, y = graph(n=30, e=80, seed=3)
    s = graph_splits("g", x, edges, y, cfg={"graph_x": "ids"})
    cfg = {**method_defaults("grace"), "method": "grace"}
    torch.manual_seed(0)
    m = create_method(cfg, s.info, s.train)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        out = m.training_step(s.train.batch(torch.arange(30)), g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    s2 = graph_splits("g2", x, edges, y)  # features as samples
    with pytest.raises(ContrastkitError, match="graph_x: ids"):
        create_method({**cfg, "encoder": "mlp", "encoder_kwargs": {}}, s2.info, s2.train)


def test_simclr_on_graph_feature_rows_uses_feature_masking_views():
    from contrastkit.views import create_views

    x, edges, y = graph(seed=5)
    s = graph_splits("g", x, edges, y)
    v1 = create_views(s.info, s.train, {}, 1)
    assert isinstance(v1, FeatureMask) and v1.rate == 0.3
    s_ids = graph_splits("g", x, edges, y, cfg={"graph_x": "ids"})
    with pytest.raises(ContrastkitError, match="node ids"):
        create_views(s_ids.info, s_ids.train, {}, 1)


def test_grace_end_to_end_on_karate(tmp_path):
    from contrastkit.api import pretrain

    r = pretrain(method="grace", data="karate", epochs=20, out=str(tmp_path / "run"), progress=False)
    rows = {row["metric"]: row for row in r.eval_rows}
    assert 0.0 <= rows["clustering NMI"]["encoder"] <= 1.0
    assert (tmp_path / "run" / "encoder.pt").exists()
