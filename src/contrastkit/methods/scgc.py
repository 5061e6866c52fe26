"""SCGC / SCGC* (Kulatilleke et al.; gayanku/SCGC; METHODS.md §15): graph clustering without message passing.

The encoder is a plain MLP on node features; the graph enters only through the loss, as a soft target: a
node should be more similar to the nodes its r-step neighbourhood weights highly than to the rest.

    Â    = D̃⁻¹(A + I)                                    symmetrised, self-loops, row-normalised (data/graph.py)
    A_r  = Â^r                           (scgc)
         = Σ_{t=1..r} Â^t                (scgc-star, "influence augmented": every hop up to r, rows sum to r)
    z    = encoder(x)                    x = the node features after `graph_smooth` smoothing steps
    L    = alpha · L_NC(z, A_r, tau)  +  beta · KL(P ‖ Q)  +  recon_weight · MSE(decoder(z), x)
           L_NC: objectives/scgc.py. scgc: recon_weight 1 (the reference's autoencoder loss); scgc-star: 0 and
           no decoder ("half the parameters")
    Q    = student_t(z, μ) (DEC, v = 1), P = target_distribution(Q) of ALL nodes, refreshed once per epoch;
           μ (k centroids, k = n_clusters or the number of label classes) set by k-means (10 restarts) on every
           node's z once `kl_start` (half) of training has passed — the reference initialises them from its
           pretrained autoencoder before training; here the first half of training plays that part

Mini-batches of rows: each step draws B anchor nodes.
* `targets: exact` — A_r is formed once as a sparse matrix (r − 1 sparse products; at most n² entries, and
  exact is only chosen up to `exact_max_nodes`), each step takes its batch rows densely (B × n, O(B·n) memory)
  and every node is a key: z of all n nodes is computed each step. With B = n this is the reference's
  full-batch loss exactly.
* `targets: walk` — `walk_samples` random walks per anchor sample its A_r row (an r-step walk on Â ends at j
  with probability Â^r[i,j]); keys are the anchors and the walk ends (O(B²·m) memory, O(E) for the walk
  tables, independent of n otherwise). For graphs too large for exact rows (100k nodes and up).
* `targets: auto` (default) — exact up to `exact_max_nodes` (5000) nodes, walk above.
Batches default to 2048 nodes: a graph up to that size trains full-batch (200 steps), as the reference does.

Choices against the reference, on purpose:
* No pretrained autoencoder (the reference loads SDCN's pretrained AE weights): training starts from random
  weights and the DEC term starts at `kl_start`. The evaluation clusters the embeddings with k-means
  (evaluate/graph.py), not argmax Q. β = 0.1 (the reference's value for most data sets): on digits ACC/NMI/ARI
  89.32/87.61/82.22 without it, 89.43/87.80/82.56 with it (β = 1: 89.59/88.55/83.00); on ImageSegments
  64.33/55.13/44.96 without, 62.60/58.29/45.76 with (β = 1: 57.06/54.90/42.34).
* Node features are Laplacian-smoothed before the MLP (`graph_smooth: 2`, the filter of SGC/AGC; the
  reference feeds raw features), which helps most when the node features are noisy. Set `--graph-smooth 0`
  for the reference's raw input.
* CPU-sized MLP (width 256, depth 2, 64-d output, LayerNorm) instead of d → 500 → 500 → 2000 → 10.
* The self-similarity is masked to 0 as in the reference (so e^0 = 1 stays in the denominator).
Reference per-data-set settings (r, τ, α) are in METHODS.md §15; the defaults here (r 2, τ 1, α 1) are the
reference code's argparse defaults for r and τ, used for every data set.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import Batch, DataInfo, Dataset
from ..errors import ContrastkitError
from ..objectives.scgc import ncontrast_loss, ncontrast_sampled
from .base import Method, register_method

TARGETS = ("auto", "exact", "walk")


def student_t(z: torch.Tensor, centroids: torch.Tensor, v: float = 1.0) -> torch.Tensor:
    """DEC soft assignment q_ij ∝ (1 + ||z_i − μ_j||² / v)^{−(v+1)/2}, rows sum to 1."""
    q = (1.0 + torch.cdist(z, centroids.float()).pow(2) / v).pow(-(v + 1.0) / 2.0)
    return q / q.sum(1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC target p_ij = (q_ij² / f_j) / Σ_j' (q_ij'² / f_j'),  f_j = Σ_i q_ij (sharper than q)."""
    w = q.pow(2) / q.sum(0, keepdim=True)
    return w / w.sum(1, keepdim=True)


@register_method("scgc")
class SCGC(Method):
    summary = "graph clustering without message passing: MLP on smoothed features, A^r as the soft target"
    kinds = ("graph",)
    influence = False
    defaults = {
        "alpha": 1.0,  # weight of L_NC
        "tau": 1.0,  # MULTIPLIES the cosine similarities (inverse temperature), as in the reference
        "order": 2,  # r: hops of the soft target A_r
        "recon_weight": 1.0,  # MSE reconstruction of x through a decoder (SCGC); 0 = no decoder
        "targets": "auto",  # auto | exact | walk (see the module docstring)
        "walk_samples": 4,  # m: random walks per anchor with targets walk
        "exact_max_nodes": 5000,  # auto: exact rows up to this many nodes
        "beta": 0.1,  # weight of the DEC clustering term β·KL(P‖Q) (the reference's 0.1; 0 = off)
        "n_clusters": None,  # k of the DEC term; default: the number of label classes (the reference's known k)
        "kl_start": 0.5,  # fraction of training after which the centroids are set by k-means and KL starts
        "graph_smooth": 2,  # Laplacian smoothing steps of the node features (data/graph.py)
        "encoder": "mlp",
        "encoder_kwargs": {"width": 256, "depth": 2, "out_dim": 64},
        "optimizer": "adamw",
        "lr": 1e-3,
        "lr_scaling": "none",
        "weight_decay": 0.0,
        "batch_size": 2048,  # graphs up to 2048 nodes train full-batch, as the reference
        "epochs": 200,
        "warmup_epochs": 0.0,
        "monitor_every": 0,  # train and test are the same nodes: the online kNN monitor would see itself
    }

    def __init__(self, encoder: nn.Module, info: DataInfo, cfg: dict[str, Any], train: Dataset):
        super().__init__(encoder, info, cfg, train)
        if info.kind != "graph":
            raise ContrastkitError(f"method {self.name!r} needs graph data (--data karate, --graph knn:K over a data "
                                   f"set, or --graph edges:PATH), but {info.name!r} is of kind {info.kind!r}")
        if (info.extra or {}).get("graph_x") == "ids":
            raise ContrastkitError(f"method {self.name!r} embeds node features; drop --graph-x ids")
        c = {**self.defaults, **{k: v for k, v in cfg.items() if v is not None}}
        self.alpha, self.tau, self.order = float(c["alpha"]), float(c["tau"]), int(c["order"])
        self.recon_weight = float(c["recon_weight"])
        self.targets, self.walk_samples = str(c["targets"]), int(c["walk_samples"])
        self.exact_max_nodes = int(c["exact_max_nodes"])
        if self.order < 1:
            raise ContrastkitError(f"order={self.order}: r must be >= 1")
        if self.tau < 0:
            raise ContrastkitError(f"tau={self.tau} must be >= 0 (it multiplies the cosine similarities)")
        if self.targets not in TARGETS:
            raise ContrastkitError(f"targets={self.targets!r}; valid: {', '.join(TARGETS)}")
        if self.walk_samples < 1:
            raise ContrastkitError(f"walk_samples={self.walk_samples} must be >= 1")
        n_in = int(info.shape[0])
        width = int((c.get("encoder_kwargs") or {}).get("width", 256))
        self.decoder = (nn.Sequential(nn.Linear(encoder.out_dim, width), nn.ReLU(inplace=True), nn.Linear(width, n_in))
                        if self.recon_weight > 0 else None)
        self.beta, self.kl_start = float(c["beta"]), float(c["kl_start"])
        k = c.get("n_clusters") or info.num_classes
        self.n_clusters = int(k) if self.beta > 0 and k else 0
        if self.beta > 0 and not self.n_clusters:
            warnings.warn(f"{self.name}: no labels to count clusters from, so the DEC term (beta) is off; pass "
                          f"--n-clusters K to use it", stacklevel=2)
        if self.n_clusters:
            n_nodes = int((info.extra or {}).get("num_nodes", 0))
            self.centroids = nn.Parameter(torch.zeros(self.n_clusters, encoder.out_dim))
            self.register_buffer("kl_ready", torch.zeros((), dtype=torch.bool))
            self.register_buffer("p_target", torch.zeros(n_nodes, self.n_clusters))
        self.graph = None
        self.setup(train)

    def setup(self, train: Dataset) -> None:
        """Called by the constructor: attaches the training graph (and builds the soft-target tables)."""
        from ..data.graph import WalkSampler, normalized_adjacency

        if getattr(train, "edge_index", None) is None:
            raise ContrastkitError(f"{self.name}: the training data carries no graph")
        n = train.num_nodes
        mode = self.targets if self.targets != "auto" else ("exact" if n <= self.exact_max_nodes else "walk")
        self.mode = mode
        self.graph = train
        self.n = n
        if mode == "exact":
            a = normalized_adjacency(train.edge_index, train.edge_weight, n, "row")
            power, total = a, a
            with warnings.catch_warnings():  # sparse @ sparse goes through CSR, which warns that it is "beta"
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                for _ in range(self.order - 1):  # sparse A_r once (n ≤ exact_max_nodes: at most n² entries)
                    power = torch.sparse.mm(power, a).coalesce()
                    total = (total + power).coalesce() if self.influence else power
            self.a_r = total
        else:
            self.walker = WalkSampler(train.edge_index, train.edge_weight, n)

    def _target(self, index: torch.Tensor) -> torch.Tensor:
        """Dense rows `index` of A_r (B × n)."""
        return torch.index_select(self.a_r, 0, index).to_dense()

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if self.graph is None:
            raise ContrastkitError(f"{self.name}: setup(train) must run before training")
        index = batch.index
        x_all = self.graph.x
        if self.mode == "exact":
            z_all = self.encoder(x_all)
            z = z_all[index]
            l_nc = ncontrast_loss(z, z_all, self._target(index), self.tau, self_index=index)
        else:
            pos = self.walker.sample(index, self.order, self.walk_samples, self.influence, generator)
            z_cat = self.encoder(torch.cat([batch.x, x_all[pos.reshape(-1)]]))
            z, zp = z_cat[: index.shape[0]], z_cat[index.shape[0]:]
            row_sum = float(self.order) if self.influence else 1.0
            l_nc = ncontrast_sampled(z, index, zp.view(index.shape[0], self.walk_samples, -1), pos, self.tau,
                                     row_sum, self.n)
        loss = self.alpha * l_nc
        out = {"l_nc": l_nc.detach()}
        if self.decoder is not None:
            rec = F.mse_loss(self.decoder(z).float(), batch.x.float())
            loss = loss + self.recon_weight * rec
            out["l_rec"] = rec.detach()
        if self.n_clusters and bool(self.kl_ready):
            kl = F.kl_div(student_t(z.float(), self.centroids).log(), self.p_target[index], reduction="batchmean")
            loss = loss + self.beta * kl
            out["l_kl"] = kl.detach()
        return {"loss": loss, **out}

    @torch.no_grad()
    def _embed_all(self) -> torch.Tensor:
        x = self.graph.x
        return torch.cat([self.encoder(x[i : i + 8192]).float() for i in range(0, x.shape[0], 8192)])

    def after_step(self, step: int, total_steps: int) -> None:
        """DEC term: at `kl_start` of training set the centroids by k-means of every node's z, then refresh the
        target P from Q of every node once per epoch (the reference refreshes it every full-batch epoch)."""
        if not self.n_clusters:
            return
        start = int(self.kl_start * total_steps)
        if step + 1 < start:
            return
        every = max(1, -(-self.n // max(1, int(self.cfg.get("batch_size") or self.n))))
        if not bool(self.kl_ready):
            from sklearn.cluster import KMeans

            z = self._embed_all()
            km = KMeans(self.n_clusters, n_init=10 if self.n <= 20000 else 2,  # large graphs: fewer restarts
                        random_state=int(self.cfg.get("seed") or 0)).fit(z.cpu().numpy())
            self.centroids.data.copy_(torch.as_tensor(km.cluster_centers_, dtype=torch.float32))
            self.kl_ready.fill_(True)
        elif (step + 1 - start) % every:
            return
        self.p_target.copy_(target_distribution(student_t(self._embed_all(), self.centroids.detach())))


@register_method("scgc-star")
class SCGCStar(SCGC):
    summary = "SCGC*: influence-augmented target Σ_t A^t (every hop up to r), encoder only (no decoder)"
    influence = True
    defaults = {**SCGC.defaults, "recon_weight": 0.0}
