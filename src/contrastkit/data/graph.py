"""Graphs: node features + a sparse adjacency → DataSplits of kind "graph" (one sample = one node).

Sources
-------
* ``--data karate`` — Zachary's karate club (networkx): 34 nodes, 78 edges, labels = the two clubs. It has no
  node attributes, so the features are the identity (one-hot node id, 34 columns), the usual choice.
* ``--graph knn:K[:cosine|euclidean]`` over any other loadable data set (``--data digits --graph knn:10``, a
  table, an image folder, .npy/.npz): the train and test splits of that source are joined (every row becomes a
  node; node i = train row i, then the test rows), features are the flattened rows (images scaled to [0, 1]),
  and each node is joined to its K nearest other nodes (scikit-learn ``kneighbors_graph``; cosine by default,
  as SCGC builds its USPS/HHAR graphs), then symmetrised. Memory O(n·K).
* ``--graph edges:PATH`` — an edge list over the rows of ``--data FEATURES`` (read in file order, NOT split):
  FEATURES is a .csv (``--label-column`` names an optional label column), a .npy (n, F) array, or a .npz with
  ``x`` (or ``features``) and optional ``y`` (or ``labels``). ``--graph-labels PATH`` (.npy or one-column .csv)
  gives labels for .npy features. The edge list is a .csv (columns source, target[, weight]; a header row is
  detected by non-numeric first cells), a .npy of shape (E, 2), (E, 3) or (2, E), or a .npz with ``edges``
  (E, 2) / ``edge_index`` (2, E) and optional ``weights``. Node ids are 0-based row positions.
* ``--graph edges`` (no path) with ``--data G.npz``: the edges come from the same .npz.

What the graph becomes (documented normalisation)
-------------------------------------------------
* Undirected: an edge listed as (u, v) also joins v to u. A pair listed more than once (either direction)
  keeps its LARGEST weight (so a file listing both directions with weight 1 is the same as one listing one).
* Self-loops in the input are dropped; the filters below add their own self-loop of weight 1 to every node.
* Weights must be finite and > 0 (0 or negative is an error: drop such edges from the file instead).
* Isolated nodes (no edge after the above) are kept: with the added self-loop they keep their own features
  under smoothing and are their own only positive in SCGC. Their number is reported in
  ``info.extra["isolated_nodes"]`` and printed as a warning.
* Errors: node ids out of range / negative / not integers (naming the first bad edge row and the number of
  feature rows — "an edge references a node with no features"), labels whose count differs from the feature
  rows, weights whose count differs from the edges, an empty graph (no nodes, or no edge left after dropping
  self-loops), a malformed edge file.

Stored as (``GraphDataset``): ``edge_index`` (2, E) int64 holding BOTH directions of every undirected edge,
sorted by source (CSR order), ``edge_weight`` (E,) float32, ``raw_x`` the features before smoothing. Nothing
is ever an n×n dense matrix. ``x`` is what the encoder sees:
* ``graph_x: features`` (default): the node features after ``graph_smooth`` steps of the Laplacian smoothing
  filter X ← D̃^{-1/2}(A + I)D̃^{-1/2} X (SGC / AGC's filter with k = 1; 0 steps = raw features). SCGC pins 2.
* ``graph_x: ids``: x = node ids (int64); the ``gcn`` encoder looks the features and adjacency up by
  ``info.extra["graph_key"]`` (GRACE). The graph is held in this process's ``GRAPHS`` cache, not in the run.

Train and test split are the same node set (graph clustering is transductive). ``info.extra`` holds only
plain values (num_nodes, num_edges, isolated_nodes, num_features, graph source string, graph_key).
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ContrastkitError
from . import register_source
from .base import DataInfo, Dataset, DataSplits

__all__ = [
    "GRAPHS",
    "GraphDataset",
    "build_graph",
    "graph_splits",
    "load_graph_data",
    "normalized_adjacency",
    "parse_graph_setting",
    "random_walk_targets",
    "row_sums_of_target",
    "smooth_features",
    "target_rows",
]

# graph_key → GraphDataset: lets the `gcn` encoder (created from a DataInfo only) find its graph in-process.
GRAPHS: dict[str, GraphDataset] = {}


@dataclasses.dataclass
class GraphDataset(Dataset):
    """One node set. `edge_index`/`edge_weight` are the symmetric edge list without self-loops (CSR order)."""

    edge_index: torch.Tensor | None = None
    edge_weight: torch.Tensor | None = None
    raw_x: torch.Tensor | None = None

    @property
    def num_nodes(self) -> int:
        return int(self.raw_x.shape[0])

    def to(self, device: torch.device | str) -> GraphDataset:
        y = None if self.y is None else self.y.to(device)
        return GraphDataset(self.x.to(device), y, self.info, self.edge_index.to(device),
                            self.edge_weight.to(device), self.raw_x.to(device))


# --------------------------------------------------------------------------------------------- operators
def _with_self_loops(edge_index: torch.Tensor, weight: torch.Tensor, n: int):
    loops = torch.arange(n, device=edge_index.device)
    ei = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
    w = torch.cat([weight.float(), torch.ones(n, device=weight.device)])
    return ei, w


def normalized_adjacency(edge_index: torch.Tensor, weight: torch.Tensor, n: int, kind: str = "row",
                         self_loops: bool = True) -> torch.Tensor:
    """Sparse (n × n, coalesced COO) Â: "row" = D̃⁻¹(A + I) (SCGC's target, rows sum to 1), "sym" = D̃^{-1/2}(A + I)D̃^{-1/2}
    (the smoothing filter and GCN propagation). Memory O(E + n)."""
    ei, w = _with_self_loops(edge_index, weight, n) if self_loops else (edge_index, weight.float())
    deg = torch.zeros(n, device=w.device).index_add_(0, ei[0], w)
    if kind == "row":
        val = w / deg.clamp_min(1e-12)[ei[0]]
    elif kind == "sym":
        dinv = deg.clamp_min(1e-12).rsqrt()
        val = dinv[ei[0]] * w * dinv[ei[1]]
    else:
        raise ContrastkitError(f"normalisation kind={kind!r}; valid: row, sym")
    return torch.sparse_coo_tensor(ei, val, (n, n), check_invariants=False).coalesce()


def smooth_features(x: torch.Tensor, edge_index: torch.Tensor, weight: torch.Tensor, steps: int) -> torch.Tensor:
    """Laplacian smoothing filter applied `steps` times: X ← D̃^{-1/2}(A + I)D̃^{-1/2} X (O(steps·E·F))."""
    if steps < 0:
        raise ContrastkitError(f"graph_smooth={steps} must be >= 0")
    if steps == 0:
        return x.float()
    a = normalized_adjacency(edge_index, weight, x.shape[0], "sym")
    out = x.float()
    for _ in range(int(steps)):
        out = torch.sparse.mm(a, out)
    return out


def target_rows(a_row: torch.Tensor, index: torch.Tensor, r: int, cumulative: bool = False) -> torch.Tensor:
    """Dense rows `index` of A_r = Â^r (or Σ_{t=1..r} Â^t when cumulative, SCGC*) as a (B × n) matrix.

    `a_row` is the row-normalised sparse Â. Computed as e_B Â Â … by sparse-dense products: O(r·E·B) time,
    O(B·n) memory (never n × n)."""
    n = a_row.shape[0]
    at = a_row.t().coalesce()  # (Y Â)ᵀ = Âᵀ Yᵀ
    y = torch.zeros(n, index.shape[0], device=index.device)
    y[index, torch.arange(index.shape[0], device=index.device)] = 1.0
    total = torch.zeros_like(y) if cumulative else None
    for _ in range(int(r)):
        y = torch.sparse.mm(at, y)
        if cumulative:
            total += y
    return (total if cumulative else y).t().contiguous()


def row_sums_of_target(r: int, cumulative: bool) -> float:
    """Every row of Â^r sums to 1; every row of Σ_{t=1..r} Â^t sums to r."""
    return float(r) if cumulative else 1.0


class WalkSampler:
    """Random walks on Â = D̃⁻¹(A + I): the endpoint of an r-step walk from i is distributed as row i of Â^r, so
    walks sample SCGC's soft positives without forming A_r. O(E) memory (CSR arrays + prefix sums)."""

    def __init__(self, edge_index: torch.Tensor, weight: torch.Tensor, n: int):
        src = edge_index[0]
        self.n = n
        self.col = edge_index[1]
        counts = torch.bincount(src, minlength=n)
        self.rowptr = torch.zeros(n + 1, dtype=torch.long, device=src.device)
        self.rowptr[1:] = torch.cumsum(counts, 0)
        w = weight.double()
        self.prefix = torch.cumsum(w, 0)  # global prefix sums (CSR order)
        self.start = torch.cat([torch.zeros(1, dtype=torch.float64, device=w.device), self.prefix])[self.rowptr[:-1]]
        self.wsum = torch.zeros(n, dtype=torch.float64, device=w.device).index_add_(0, src, w)

    def step(self, cur: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        total = self.wsum[cur] + 1.0  # + the self-loop of weight 1
        u = torch.rand(cur.shape, generator=generator, device=cur.device, dtype=torch.float64) * total
        move = u >= 1.0
        if not bool(move.any()):
            return cur
        c = cur[move]
        t = self.start[c] + (u[move] - 1.0)
        pos = torch.searchsorted(self.prefix, t, right=True)
        pos = torch.minimum(torch.maximum(pos, self.rowptr[c]), self.rowptr[c + 1] - 1)
        out = cur.clone()
        out[move] = self.col[pos]
        return out

    def sample(self, index: torch.Tensor, r: int, m: int, cumulative: bool,
               generator: torch.Generator | None) -> torch.Tensor:
        """(B, m) walk endpoints. Plain: r steps (∼ Â^r[i]). Cumulative: a uniform length t ∈ 1..r per walk
        (∼ Σ_t Â^t[i] / r)."""
        cur = index.repeat_interleave(m)
        if not cumulative:
            for _ in range(r):
                cur = self.step(cur, generator)
            return cur.view(-1, m)
        length = torch.randint(1, r + 1, cur.shape, generator=generator, device=cur.device)
        out = cur.clone()
        for t in range(1, r + 1):
            cur = self.step(cur, generator)
            out = torch.where(length == t, cur, out)
        return out.view(-1, m)


def random_walk_targets(edge_index, weight, n, index, r, m, cumulative=False, generator=None) -> torch.Tensor:
    return WalkSampler(edge_index, weight, n).sample(index, r, m, cumulative, generator)


# --------------------------------------------------------------------------------------------- building
def _as_int_ids(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1) if a.ndim == 2 else bad)[0])
            raise ContrastkitError(f"{what}: node ids must be integers; edge row {row} holds {a[row].tolist()}")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise ContrastkitError(f"{what}: node ids must be integers, got dtype {a.dtype}")
    return a.astype(np.int64)


def build_graph(edges: Any, n: int, weights: Any = None, *, what: str = "edge list") -> tuple[torch.Tensor, torch.Tensor, int]:
    """(E, 2) node pairs (+ optional (E,) weights) over n nodes → (edge_index (2, E'), edge_weight, isolated).

    Applies the documented normalisation: symmetrise, drop self-loops, merge duplicates (largest weight)."""
    import scipy.sparse as sp

    if n < 1:
        raise ContrastkitError(f"{what}: the graph has no nodes (the feature source has 0 rows)")
    e = np.asarray(edges)
    if e.ndim != 2 or e.shape[1] != 2:
        raise ContrastkitError(f"{what}: expected (E, 2) node pairs, got shape {e.shape}")
    e = _as_int_ids(e, what)
    if weights is None:
        w = np.ones(len(e), dtype=np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(w) != len(e):
            raise ContrastkitError(f"{what}: {len(w)} weights for {len(e)} edges; give one weight per edge")
        bad = ~np.isfinite(w) | (w <= 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ContrastkitError(f"{what}: edge weights must be finite and > 0; edge row {row} has weight "
                                   f"{w[row]} ({int(bad.sum())} such edge(s)); remove those edges instead")
    out_of_range = (e < 0) | (e >= n)
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range.any(axis=1))[0])
        raise ContrastkitError(
            f"{what}: edge row {row} ({int(e[row, 0])}, {int(e[row, 1])}) references a node id outside 0..{n - 1}: "
            f"the features have {n} rows, so that node has no features ({int(out_of_range.any(axis=1).sum())} such "
            f"edge(s)); node ids are 0-based row positions of the feature file")
    keep = e[:, 0] != e[:, 1]
    e, w = e[keep], w[keep]
    if len(e) == 0:
        raise ContrastkitError(f"{what}: the graph is empty (no edges{' besides self-loops' if (~keep).any() else ''}); "
                               f"a graph method needs at least one edge")
    a = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 1], e[:, 0]]))),
                      shape=(n, n))
    # merge duplicates keeping the largest weight: sort by (row, col, weight) and keep the last of each pair
    order = np.lexsort((a.data, a.col, a.row))
    row, col, data = a.row[order], a.col[order], a.data[order]
    last = np.ones(len(row), dtype=bool)
    last[:-1] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
    row, col, data = row[last], col[last], data[last]
    isolated = int(n - len(np.unique(row)))
    edge_index = torch.as_tensor(np.stack([row, col]), dtype=torch.long)
    return edge_index, torch.as_tensor(data, dtype=torch.float32), isolated


def _graph_key(edge_index: torch.Tensor, weight: torch.Tensor, x: torch.Tensor) -> str:
    h = hashlib.sha1()
    for t in (edge_index, weight, x):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def graph_splits(name: str, features: Any, edges: Any, labels: Any = None, weights: Any = None,
                 cfg: dict[str, Any] | None = None, source: str = "") -> DataSplits:
    """Features (n, F) + edges (E, 2) (+ labels (n,), weights (E,)) → DataSplits of kind "graph"."""
    cfg = cfg or {}
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        x = x.flatten(1)
    n = int(x.shape[0])
    if n == 0 or x.shape[1] == 0:
        raise ContrastkitError(f"{name}: the graph has no nodes or no features (features of shape {tuple(x.shape)})")
    if not bool(torch.isfinite(x).all()):
        raise ContrastkitError(f"{name}: node features contain NaN or inf values")
    y = None
    if labels is not None:
        lab = np.asarray(labels).reshape(-1)
        if len(lab) != n:
            raise ContrastkitError(f"{name}: {len(lab)} labels for {n} nodes (feature rows); give one label per node")
        _, codes = np.unique(lab, return_inverse=True)
        y = torch.as_tensor(codes, dtype=torch.long)
    edge_index, weight, isolated = build_graph(edges, n, weights, what=f"{name} edges")
    if isolated:
        warnings.warn(f"{name}: {isolated} isolated node(s) (no edges); they are kept, with only their self-loop",
                      stacklevel=2)
    steps = int(cfg.get("graph_smooth") or 0)
    as_ids = str(cfg.get("graph_x") or "features")
    if as_ids not in ("features", "ids"):
        raise ContrastkitError(f"graph_x={as_ids!r}; valid: features, ids")
    key = _graph_key(edge_index, weight, x)
    info = DataInfo(name=name, kind="graph", shape=(int(x.shape[1]),),
                    num_classes=None if y is None else int(y.max()) + 1,
                    extra={"num_nodes": n, "num_edges": int(edge_index.shape[1] // 2), "isolated_nodes": isolated,
                           "num_features": int(x.shape[1]), "graph_source": source or name, "graph_smooth": steps,
                           "graph_x": as_ids, "graph_key": key})
    xs = smooth_features(x, edge_index, weight, steps) if as_ids == "features" else torch.arange(n)
    ds = GraphDataset(xs, y, info, edge_index, weight, x)
    GRAPHS[key] = ds
    return DataSplits(ds, ds)


# --------------------------------------------------------------------------------------------- sources
@register_source("karate")
def load_karate(cfg: dict[str, Any]) -> DataSplits:
    try:
        import networkx as nx
    except ImportError:
        raise ContrastkitError("--data karate needs networkx: pip install 'contrastkit[graph]'") from None
    g = nx.karate_club_graph()
    nodes = sorted(g.nodes())
    edges = np.array([(u, v) for u, v in g.edges()], dtype=np.int64)
    labels = np.array([0 if g.nodes[i]["club"] == "Mr. Hi" else 1 for i in nodes])
    return graph_splits("karate", np.eye(len(nodes), dtype=np.float32), edges, labels, cfg=cfg, source="karate")


def parse_graph_setting(value: str) -> tuple[str, dict[str, Any]]:
    """"knn:10", "knn:10:euclidean", "edges:PATH", "edges" → (kind, options)."""
    text = str(value).strip()
    kind, _, rest = text.partition(":")
    if kind == "knn":
        parts = rest.split(":") if rest else []
        try:
            k = int(parts[0])
        except (IndexError, ValueError):
            raise ContrastkitError(f"--graph {text!r}: expected knn:K (K an integer, e.g. knn:10) "
                                   f"[optionally knn:K:cosine or knn:K:euclidean]") from None
        metric = parts[1] if len(parts) > 1 else "cosine"
        if metric not in ("cosine", "euclidean") or len(parts) > 2:
            raise ContrastkitError(f"--graph {text!r}: metric must be cosine or euclidean")
        if k < 1:
            raise ContrastkitError(f"--graph {text!r}: K must be >= 1")
        return "knn", {"k": k, "metric": metric}
    if kind == "edges":
        return "edges", {"path": rest or None}
    raise ContrastkitError(f"--graph {text!r}: expected knn:K, knn:K:cosine|euclidean, edges:PATH or edges")


def knn_edges(x: np.ndarray, k: int, metric: str = "cosine") -> np.ndarray:
    """(n·k, 2) pairs: each row joined to its k nearest other rows. O(n·k) memory."""
    from sklearn.neighbors import NearestNeighbors

    n = x.shape[0]
    if k >= n:
        raise ContrastkitError(f"--graph knn:{k}: K must be smaller than the number of nodes ({n})")
    nn_ = NearestNeighbors(n_neighbors=k + 1, metric=metric, algorithm="brute" if metric == "cosine" else "auto")
    nn_.fit(x)
    _, idx = nn_.kneighbors(x)
    src = np.repeat(np.arange(n), k + 1)
    pairs = np.stack([src, idx.reshape(-1)], axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]  # itself (duplicates of a row may take its place: fine)
    return pairs


def _flat_float(ds: Dataset) -> np.ndarray:
    x = ds.x
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return x.flatten(1).float().numpy()


def _read_labels(path: str) -> np.ndarray:
    p = Path(path).expanduser()
    if not p.exists():
        raise ContrastkitError(f"graph_labels {str(p)!r} does not exist")
    if p.suffix == ".npy":
        return np.load(p, allow_pickle=False).reshape(-1)
    import pandas as pd

    return pd.read_csv(p, header=None).iloc[:, -1].to_numpy()


def _read_features(path: Path, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Features in FILE ORDER (rows = node ids), labels or None, and any other arrays of an .npz."""
    name = path.name.lower()
    arrays: dict = {}
    if name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        x = arrays.get("x", arrays.get("features"))
        if x is None:
            raise ContrastkitError(f"{path}: expected node features named 'x' or 'features' (found {sorted(arrays)})")
        y = arrays.get("y", arrays.get("labels"))
    elif name.endswith(".npy"):
        x, y = np.load(path, allow_pickle=False), None
    elif name.endswith((".csv", ".csv.gz")):
        from .table import read_table

        df = read_table(path)
        col = cfg.get("label_column")
        y = None
        if col is not None:
            if col not in df.columns:
                raise ContrastkitError(f"{path}: label_column {col!r} is not a column ({', '.join(df.columns)})")
            y = df.pop(col).to_numpy()
        try:
            x = df.to_numpy(dtype=np.float32)
        except (TypeError, ValueError):
            raise ContrastkitError(f"{path}: node feature columns must all be numeric") from None
    else:
        raise ContrastkitError(f"{path}: node features must be a .csv, .npy or .npz file")
    if cfg.get("graph_labels"):
        y = _read_labels(str(cfg["graph_labels"]))
    return np.asarray(x), (None if y is None else np.asarray(y)), arrays


def _read_edges(source: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Edge pairs (E, 2) and optional weights from a .csv/.npy/.npz path or the arrays of an .npz."""
    if isinstance(source, dict):
        arrays, where = source, "the .npz"
    else:
        p = Path(source).expanduser()
        where = str(p)
        if not p.exists():
            raise ContrastkitError(f"edge list {where!r} does not exist")
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        elif p.suffix == ".npy":
            a = np.load(p, allow_pickle=False)
            if a.ndim == 2 and a.shape[0] == 2 and a.shape[1] != 2:
                a = a.T
            if a.ndim != 2 or a.shape[1] not in (2, 3):
                raise ContrastkitError(f"{where}: edge array must have shape (E, 2), (E, 3) or (2, E); got {a.shape}")
            return a[:, :2], (a[:, 2] if a.shape[1] == 3 else None)
        elif p.name.endswith(".csv") or p.name.endswith(".csv.gz"):
            import pandas as pd

            try:
                df = pd.read_csv(p, header=None, skipinitialspace=True)
            except Exception as e:
                raise ContrastkitError(f"cannot read edge list {where!r}: {e}") from e
            if len(df) and pd.to_numeric(df.iloc[0], errors="coerce").isna().any():
                df = df.iloc[1:]  # header row
            if df.shape[1] not in (2, 3):
                raise ContrastkitError(f"{where}: an edge list CSV has 2 columns (source, target) or 3 (+ weight); "
                                       f"got {df.shape[1]}")
            num = df.apply(pd.to_numeric, errors="coerce")
            bad = num.isna().any(axis=1).to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ContrastkitError(f"{where}: edge row {row} is not numeric: {df.iloc[row].tolist()}")
            a = num.to_numpy(dtype=np.float64)
            return a[:, :2], (a[:, 2] if a.shape[1] == 3 else None)
        else:
            raise ContrastkitError(f"{where}: an edge list must be a .csv, .npy or .npz file")
    if "edges" in arrays:
        e = np.asarray(arrays["edges"])
    elif "edge_index" in arrays:
        e = np.asarray(arrays["edge_index"]).T
    else:
        raise ContrastkitError(f"{where}: expected an array named 'edges' (E, 2) or 'edge_index' (2, E) "
                               f"(found {sorted(arrays)})")
    w = arrays.get("weights", arrays.get("edge_weight"))
    return e, w


def load_graph_data(data: str, cfg: dict[str, Any]) -> DataSplits:
    """`load_data` entry point when cfg["graph"] is set (see the module docstring)."""
    from . import SOURCES, load_data

    kind, opts = parse_graph_setting(cfg["graph"])
    sub_cfg = {k: v for k, v in cfg.items() if k != "graph"}
    if kind == "knn":
        if data in SOURCES and data == "karate":
            raise ContrastkitError("karate is already a graph; drop --graph")
        splits = load_data(data, sub_cfg)
        if splits.info.kind == "graph":
            raise ContrastkitError(f"--data {data!r} is already a graph; drop --graph")
        parts = [splits.train] + ([splits.test] if splits.test is not splits.train else [])
        feats = np.concatenate([_flat_float(p) for p in parts])
        ys = [p.y for p in parts]
        labels = None if any(y is None for y in ys) else torch.cat(ys).numpy()
        edges = knn_edges(feats, opts["k"], opts["metric"])
        name = f"{splits.info.name}-knn{opts['k']}"
        return graph_splits(name, feats, edges, labels, cfg=cfg, source=f"{data} knn:{opts['k']}:{opts['metric']}")
    path = Path(data).expanduser()
    if not path.exists():
        raise ContrastkitError(f"--graph edges: --data {data!r} must be the node feature file (.csv, .npy or .npz)")
    feats, labels, arrays = _read_features(path, cfg)
    if opts["path"] is None:
        if not arrays:
            raise ContrastkitError("--graph edges without a path reads the edges from --data G.npz; give "
                                   "--graph edges:EDGES_FILE for other feature files")
        edges, weights = _read_edges(arrays)
    else:
        edges, weights = _read_edges(opts["path"])
    return graph_splits(path.stem, feats, edges, labels, weights, cfg=cfg, source=f"{path.name} {cfg['graph']}")
