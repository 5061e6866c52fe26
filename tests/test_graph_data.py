"""Graph sources: normalisation of edge lists, errors on bad input, the smoothing filter and A_r against dense
references, random walks against the rows of Â^r."""

import numpy as np
import pytest
import torch

from contrastkit.data import load_data
from contrastkit.data.graph import (
    WalkSampler,
    build_graph,
    graph_splits,
    normalized_adjacency,
    parse_graph_setting,
    smooth_features,
    target_rows,
)
from contrastkit.errors import ContrastkitError

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]


def dense_adj(edge_index, weight, n):
    a = torch.zeros(n, n, dtype=torch.float64)
    a[edge_index[0], edge_index[1]] = weight.double()
    return a


def random_graph(n=12, e=25, seed=0, weighted=True):
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, n, size=(e, 2))
    w = rng.uniform(0.5, 2.0, size=e) if weighted else None
    return edges, w


def test_build_graph_symmetrises_drops_self_loops_and_keeps_largest_duplicate_weight():
    edges = np.array([[0, 1], [1, 0], [1, 2], [2, 2], [0, 1]])
    w = np.array([1.0, 3.0, 0.5, 9.0, 2.0])
    ei, ew, isolated = build_graph(edges, 4, w)
    a = dense_adj(ei, ew, 4)
    expect = torch.zeros(4, 4, dtype=torch.float64)
    expect[0, 1] = expect[1, 0] = 3.0
    expect[1, 2] = expect[2, 1] = 0.5
    assert torch.equal(a, expect)
    assert isolated == 1  # node 3 (node 2 keeps its edge to 1; its self-loop is dropped)
    assert (ei[0][1:] >= ei[0][:-1]).all()  # CSR order


@pytest.mark.parametrize("edges,n,match", [
    (np.array([[0, 1], [1, 5]]), 5, r"edge row 1 \(1, 5\) references a node id outside 0..4"),
    (np.array([[0, -1]]), 5, "outside 0..4"),
    (np.array([[0.5, 1]]), 5, "must be integers"),
    (np.array([[1, 1], [2, 2]]), 5, "empty"),
    (np.zeros((0, 2), dtype=int), 5, "empty"),
    (np.array([[0, 1]]), 0, "no nodes"),
    (np.array([0, 1, 2]), 5, r"expected \(E, 2\)"),
])
def test_build_graph_errors(edges, n, match):
    with pytest.raises(ContrastkitError, match=match):
        build_graph(edges, n)


def test_weight_errors():
    with pytest.raises(ContrastkitError, match="2 weights for 3 edges"):
        build_graph(np.array([[0, 1], [1, 2], [2, 3]]), 4, [1.0, 2.0])
    with pytest.raises(ContrastkitError, match="finite and > 0"):
        build_graph(np.array([[0, 1], [1, 2]]), 4, [1.0, 0.0])


def test_graph_splits_label_count_and_isolated_nodes():
    x = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(ContrastkitError, match="4 labels for 5 nodes"):
        graph_splits("g", x, np.array([[0, 1]]), labels=[0, 1, 0, 1])
    with pytest.warns(UserWarning, match="3 isolated node"):
        s = graph_splits("g", x, np.array([[0, 1]]), labels=[0, 1, 0, 1, 1])
    assert s.info.kind == "graph" and s.info.extra["isolated_nodes"] == 3 and s.train is s.test
    assert s.info.num_classes == 2 and s.info.extra["num_edges"] == 1
    # an isolated node keeps its own features under smoothing (only its self-loop)
    s2 = graph_splits("g", x, np.array([[0, 1]]), cfg={"graph_smooth": 3})
    assert torch.allclose(s2.train.x[4], torch.as_tensor(x[4], dtype=torch.float32))


@pytest.mark.parametrize("kind", ["row", "sym"])
def test_normalized_adjacency_matches_dense(kind):
    edges, w = random_graph()
    ei, ew, _ = build_graph(edges, 12, w)
    a = dense_adj(ei, ew, 12) + torch.eye(12, dtype=torch.float64)
    d = a.sum(1)
    ref = a / d[:, None] if kind == "row" else a / torch.sqrt(d[:, None] * d[None, :])
    got = normalized_adjacency(ei, ew, 12, kind).to_dense().double()
    assert torch.allclose(got, ref, atol=1e-6)
    if kind == "row":
        assert torch.allclose(got.sum(1), torch.ones(12, dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_smoothing_filter_matches_dense_reference(steps):
    edges, w = random_graph(seed=3)
    ei, ew, _ = build_graph(edges, 12, w)
    x = torch.randn(12, 5, generator=torch.Generator().manual_seed(1))
    a = dense_adj(ei, ew, 12) + torch.eye(12, dtype=torch.float64)
    d = a.sum(1)
    s = a / torch.sqrt(d[:, None] * d[None, :])
    # I - L̃ with L̃ = I - D̃^{-1/2} Ã D̃^{-1/2}: the Laplacian smoothing filter, applied `steps` times
    lap = torch.eye(12, dtype=torch.float64) - s
    ref = torch.linalg.matrix_power(torch.eye(12, dtype=torch.float64) - lap, steps) @ x.double()
    assert torch.allclose(smooth_features(x, ei, ew, steps).double(), ref, atol=1e-5)


@pytest.mark.parametrize("cumulative", [False, True])
@pytest.mark.parametrize("r", [1, 2, 4])
def test_target_rows_match_dense_powers(r, cumulative):
    edges, w = random_graph(seed=5)
    ei, ew, _ = build_graph(edges, 12, w)
    a_row = normalized_adjacency(ei, ew, 12, "row")
    dense = a_row.to_dense().double()
    powers = [torch.linalg.matrix_power(dense, t) for t in range(1, r + 1)]
    ref = sum(powers) if cumulative else powers[-1]
    index = torch.tensor([3, 0, 11, 3])
    got = target_rows(a_row, index, r, cumulative).double()
    assert torch.allclose(got, ref[index], atol=1e-5)
    assert torch.allclose(got.sum(1), torch.full((4,), float(r if cumulative else 1), dtype=torch.float64), atol=1e-5)


@pytest.mark.parametrize("cumulative", [False, True])
def test_random_walk_endpoints_follow_the_rows_of_a_r(cumulative):
    edges, w = random_graph(n=8, e=14, seed=2)
    ei, ew, _ = build_graph(edges, 8, w)
    r = 3
    dense = normalized_adjacency(ei, ew, 8, "row").to_dense().double()
    powers = [torch.linalg.matrix_power(dense, t) for t in range(1, r + 1)]
    ref = (sum(powers) / r) if cumulative else powers[-1]
    walker = WalkSampler(ei, ew, 8)
    g = torch.Generator().manual_seed(0)
    m = 40000
    ends = walker.sample(torch.tensor([0, 5]), r, m, cumulative, g)
    for row, i in enumerate([0, 5]):
        freq = torch.bincount(ends[row], minlength=8).double() / m
        assert torch.allclose(freq, ref[i], atol=0.012)


def test_parse_graph_setting():
    assert parse_graph_setting("knn:10") == ("knn", {"k": 10, "metric": "cosine"})
    assert parse_graph_setting("knn:5:euclidean") == ("knn", {"k": 5, "metric": "euclidean"})
    assert parse_graph_setting("edges:/a/b.csv") == ("edges", {"path": "/a/b.csv"})
    for bad in ("knn", "knn:x", "knn:3:manhattan", "foo:1", "knn:0"):
        with pytest.raises(ContrastkitError):
            parse_graph_setting(bad)


def test_karate_source():
    cfg = {"batch_size": 256}
    s = load_data("karate", cfg)
    assert s.info.kind == "graph" and s.train.x.shape == (34, 34)
    assert s.info.extra["num_edges"] == 78 and s.info.num_classes == 2
    assert s.train.edge_index.shape == (2, 156)


def test_knn_graph_over_digits():
    s = load_data("digits", {"graph": "knn:5", "graph_smooth": 1})
    n = s.info.extra["num_nodes"]
    assert n == 1797 and s.train.x.shape == (n, 64) and s.train.y.shape == (n,)
    deg = torch.bincount(s.train.edge_index[0], minlength=n)
    assert deg.min() >= 5  # every node keeps its own 5 neighbours after symmetrisation
    assert s.info.extra["graph_source"] == "digits knn:5:cosine"
    with pytest.raises(ContrastkitError, match="already a graph"):
        load_data("karate", {"graph": "knn:3"})


def test_edge_list_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    feats = tmp_path / "feats.csv"
    lines = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{i % 2}" for i, r in enumerate(x)]
    feats.write_text("\n".join(lines) + "\n")
    (tmp_path / "edges.csv").write_text("src,dst,w\n0,1,1.0\n1,2,2.0\n2,3,1\n4,5,1\n")
    s = load_data(str(feats), {"graph": f"edges:{tmp_path / 'edges.csv'}", "label_column": "label"})
    assert s.train.x.shape == (6, 3) and s.train.y.tolist() == [0, 1, 0, 1, 0, 1]
    assert torch.allclose(s.train.raw_x, torch.as_tensor(x))  # file order = node ids, no split
    assert s.info.extra["num_edges"] == 4
    # npy features + npy edges (2, E) + labels file
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "e.npy", np.array([[0, 1, 2], [1, 2, 3]]))
    np.save(tmp_path / "y.npy", np.arange(6) % 3)
    s = load_data(str(tmp_path / "x.npy"), {"graph": f"edges:{tmp_path / 'e.npy'}",
                                            "graph_labels": str(tmp_path / "y.npy")})
    assert s.info.extra["num_edges"] == 3 and s.info.extra["isolated_nodes"] == 2 and s.info.num_classes == 3
    # one .npz holding everything
    np.savez(tmp_path / "g.npz", x=x, edge_index=np.array([[0, 1], [1, 2]]), y=np.zeros(6))
    s = load_data(str(tmp_path / "g.npz"), {"graph": "edges"})
    assert s.info.extra["num_edges"] == 2
    # an edge to a node without features
    (tmp_path / "bad.csv").write_text("0,1\n1,6\n")
    with pytest.raises(ContrastkitError, match=r"edge row 1 \(1, 6\).*features have 6 rows"):
        load_data(str(feats), {"graph": f"edges:{tmp_path / 'bad.csv'}", "label_column": "label"})
    (tmp_path / "text.csv").write_text("0,1\n1,x\n")
    with pytest.raises(ContrastkitError, match="edge row 1 is not numeric"):
        load_data(str(feats), {"graph": f"edges:{tmp_path / 'text.csv'}", "label_column": "label"})
    np.save(tmp_path / "y5.npy", np.arange(5))
    with pytest.raises(ContrastkitError, match="5 labels for 6 nodes"):
        load_data(str(tmp_path / "x.npy"), {"graph": f"edges:{tmp_path / 'e.npy'}",
                                            "graph_labels": str(tmp_path / "y5.npy")})
