"""A small sparse GCN (Kipf & Welling): `gcn`. No PyTorch Geometric needed.

    layer(X) = Â X W + b,     Â = D̃^{-1/2}(A + I)D̃^{-1/2}   (sparse COO, `data.graph.normalized_adjacency`)
    encoder  = [layer → PReLU] × (layers − 1) → layer            (out_dim features, no final activation)

Memory O(E + n·width) per forward; the product is `torch.sparse.mm` in fp32 (autocast is switched off around
it: sparse kernels have no bf16 path on CPU).

What a sample is: a NODE ID. The data must be loaded with `graph_x: ids` (GRACE pins it): `forward(ids)` runs
the full-graph forward and returns the rows of `ids`, so the evaluation and `contrastkit embed` embed
`splits.train.x` (the ids) like any other data. The features and adjacency are not parameters: the encoder
finds its graph by `info.extra["graph_key"]` in the process-wide `data.graph.GRAPHS` cache, filled whenever
that graph is loaded (so reopening a run needs the data loaded first; the error says so). In eval mode the
full-graph output is cached until a parameter changes. Methods that augment the graph (GRACE) call
`propagate(x, edge_index, edge_weight)` on their own views.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from ..data.base import DataInfo
from ..errors import ContrastkitError
from . import register_encoder

__all__ = ["GCNEncoder", "GCNLayer", "sparse_propagate"]


def sparse_propagate(a_hat: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Â h for a sparse Â, in fp32 whatever autocast says."""
    with torch.autocast(h.device.type, enabled=False):
        return torch.sparse.mm(a_hat, h.float())


class GCNLayer(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None
        nn.init.xavier_uniform_(self.linear.weight)

    def forward(self, x: torch.Tensor, a_hat: torch.Tensor) -> torch.Tensor:
        # Â (X W) = (Â X) W: propagate on the narrower side (O(E·min(in, out)) for the sparse product)
        if self.linear.in_features < self.linear.out_features:
            h = self.linear(sparse_propagate(a_hat, x))
        else:
            h = sparse_propagate(a_hat, self.linear(x))
        return h + self.bias if self.bias is not None else h


class GCNEncoder(nn.Module):
    def __init__(self, info: DataInfo, hidden: int = 256, out_dim: int = 128, layers: int = 2):
        super().__init__()
        extra = info.extra or {}
        if info.kind != "graph" or "graph_key" not in extra:
            raise ContrastkitError(f"encoder 'gcn' needs graph data, but {info.name!r} is of kind {info.kind!r}")
        if int(layers) < 1 or int(hidden) < 1 or int(out_dim) < 1:
            raise ContrastkitError(f"gcn needs layers, hidden, out_dim >= 1; got {layers}, {hidden}, {out_dim}")
        self.graph_key = str(extra["graph_key"])
        self.graph_x = str(extra.get("graph_x", "features"))
        dims = [int(extra.get("num_features", info.shape[0]))] + [int(hidden)] * (int(layers) - 1) + [int(out_dim)]
        self.layers = nn.ModuleList(GCNLayer(a, b) for a, b in itertools.pairwise(dims))
        self.acts = nn.ModuleList(nn.PReLU(b) for b in dims[1:-1])
        self.out_dim = int(out_dim)
        self._graph = None  # (x, Â) on the encoder's device, built lazily
        self._cache = None

    def propagate(self, x: torch.Tensor, a_hat: torch.Tensor) -> torch.Tensor:
        """Full-graph forward on features x (n, F) and a normalised sparse adjacency Â (n × n)."""
        h = x.float()
        for i, layer in enumerate(self.layers):
            h = layer(h, a_hat)
            if i < len(self.acts):
                h = self.acts[i](h)
        return h

    def graph(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        from ..data.graph import GRAPHS, normalized_adjacency

        if self._graph is None or self._graph[0].device != device:
            g = GRAPHS.get(self.graph_key)
            if g is None:
                raise ContrastkitError("the gcn encoder embeds the nodes of the graph it was trained on; load that "
                                       "graph in this process first (the same --data / --graph settings)")
            a = normalized_adjacency(g.edge_index.to(device), g.edge_weight.to(device), g.num_nodes, "sym")
            self._graph = (g.raw_x.to(device).float(), a)
        return self._graph

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.is_floating_point() or ids.dim() != 1:
            raise ContrastkitError(f"gcn takes node ids (int64, shape (B,)); got {ids.dtype} {tuple(ids.shape)}: load "
                                   f"the graph with --graph-x ids")
        device = next(self.parameters()).device
        if self.training or torch.is_grad_enabled():
            x, a = self.graph(device)
            return self.propagate(x, a)[ids.to(device)]
        key = (device, tuple(p._version for p in self.parameters()), tuple(id(p) for p in self.parameters()))
        if self._cache is None or self._cache[0] != key:
            x, a = self.graph(device)
            self._cache = (key, self.propagate(x, a))
        return self._cache[1][ids.to(device)]

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)


@register_encoder("gcn")
def gcn(info: DataInfo, hidden: int = 256, out_dim: int = 128, layers: int = 2) -> GCNEncoder:
    """Sparse GCN over the loaded graph; samples are node ids (graph_x: ids)."""
    return GCNEncoder(info, hidden, out_dim, layers)
