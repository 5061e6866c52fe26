"""SogCLR / iSogCLR: the global contrastive loss with per-sample state (METHODS.md §5, §6).

Per-sample state, indexed by the dataset row id every `Batch` carries (`batch.index`), lives in registered
buffers of length n (the training-set size), so checkpoints hold it and a resumed run continues exactly:

    u    moving average of the negatives' partition function, stored *shifted*: u_true = u · exp(b)
    b    the per-sample log-shift (running max of s/τ over the negatives; keeps exp() in fp32 range)
    tau  per-sample temperature τ_i (constant = `tau` for SogCLR; learned by iSogCLR)
    m    per-sample momentum of iSogCLR's τ-gradient

One step, for each local anchor i (both views are anchors; 2(G−1) negatives each: the other view and the
same view of the other G−1 samples of the *global* batch — gathered with gradient under DDP):

    g_i = mean_z exp(s_iz / τ_i − b_i)
    u_i ← (1 − γ) u_i + γ g_i                 (γ = 1 on a sample's first visit, i.e. while u_i = 0)
    p_iz = sg(exp(s_iz / τ_i − b_i) / u_i)
    loss_i = −s_i⁺ + mean_z p_iz s_iz          (summed over the two views, mean over the global batch)

With γ = 1, ∇ loss_i = ∇[−s_i⁺ + τ_i log mean_z exp(s_iz / τ_i)] exactly. As in LibAUC `GCLoss_v1` (the
reference we follow), u and τ are shared by the two views of a sample: both views update from the same old
u_i, and the stored u_i is the average of the two; iSogCLR's τ-gradient is the average over the two views:

    ∇τ_i = log u_i + b_i + ρ − mean_z p_iz s_iz / τ_i      (= d/dτ [τ log mean exp(s/τ) + τρ] when γ = 1)
    m_i ← (1 − β) m_i + β ∇τ_i ;   τ_i ← clip(τ_i − η m_i, τ_min, τ_max)

(optionally ∇τ_i is clipped to ±`grad_clip`, as in the official iSogCLR code.) Using s_iz rather than the
positive-shifted h_iz = s_iz − s_i⁺ inside the exponential gives the same p and the same ∇τ (the shift
cancels) and makes iSogCLR with η = 0 identical to SogCLR even when γ < 1.

Distributed: every rank computes its local anchors against the gathered global batch; then the new
(index, u, b, m, τ) of every rank are all-gathered and written on every rank, so the state is identical
everywhere and equal to a single process on the concatenated batch (LibAUC PR #53, SogCLR#1).
Indices within one global batch must be distinct (the trainer's permutation guarantees it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import distributed

__all__ = ["GlobalContrastiveState"]


class GlobalContrastiveState(nn.Module):
    def __init__(self, n: int, tau: float = 0.1, gamma: float = 0.9, *, learn_tau: bool = False,
                 rho: float = 0.3, eta: float = 0.01, beta: float = 0.9, tau_min: float = 0.05,
                 tau_max: float = 0.7, grad_clip: float | None = None):
        super().__init__()
        if n < 1:
            raise ValueError(f"GlobalContrastiveState needs the training-set size n >= 1, got {n}")
        self.gamma, self.learn_tau = float(gamma), bool(learn_tau)
        self.rho, self.eta, self.beta = float(rho), float(eta), float(beta)
        self.tau_min, self.tau_max = float(tau_min), float(tau_max)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.register_buffer("u", torch.zeros(n))
        self.register_buffer("b", torch.zeros(n))
        self.register_buffer("tau", torch.full((n,), float(tau)))
        self.register_buffer("m", torch.zeros(n))

    def temperatures(self) -> Tensor:
        """Current per-sample temperatures (n,), a detached copy."""
        return self.tau.detach().clone()

    def _views_logits(self, z1: Tensor, z2: Tensor, Z1: Tensor, Z2: Tensor, offset: int):
        """Logits of the local anchors of each view against [other view, same view] of the global batch."""
        bsz, g = z1.shape[0], Z1.shape[0]
        la = torch.cat([z1 @ Z2.T, z1 @ Z1.T], dim=1)  # (B, 2G)
        lb = torch.cat([z2 @ Z1.T, z2 @ Z2.T], dim=1)
        rows = torch.arange(bsz, device=z1.device)
        pos_col = offset + rows
        neg = torch.ones(bsz, 2 * g, dtype=torch.bool, device=z1.device)
        neg[rows, pos_col] = False
        neg[rows, g + pos_col] = False
        return la, lb, pos_col, neg

    def forward(self, z1: Tensor, z2: Tensor, index: Tensor, gather: bool = True) -> Tensor:
        """Surrogate loss of the local batch (views z1, z2: (B, D), rows `index`); updates the state."""
        with torch.autocast(z1.device.type, enabled=False):  # loss math in fp32 even under AMP
            return self._forward(z1, z2, index, gather)

    def _forward(self, z1: Tensor, z2: Tensor, index: Tensor, gather: bool) -> Tensor:
        z1 = F.normalize(z1.float(), dim=1)
        z2 = F.normalize(z2.float(), dim=1)
        dist_on = gather and distributed.is_distributed()
        if dist_on:
            sizes = distributed.all_gather_sizes(z1.shape[0], z1.device)
            Z1 = distributed.all_gather_with_grad(z1, sizes)
            Z2 = distributed.all_gather_with_grad(z2, sizes)
            offset = sum(sizes[: distributed.rank()])
        else:
            Z1, Z2, offset = z1, z2, 0
        g = Z1.shape[0]
        if g < 2:
            raise ValueError("SogCLR needs a global batch of >= 2 samples (negatives come from the others)")
        n_neg = 2 * (g - 1)
        la, lb, pos_col, neg = self._views_logits(z1, z2, Z1, Z2, offset)
        rows = torch.arange(z1.shape[0], device=z1.device)
        index = index.to(self.u.device)

        with torch.no_grad():
            tau = self.tau[index].to(la.device)[:, None]
            sa, sb = la.detach() / tau, lb.detach() / tau
            ninf = torch.tensor(float("-inf"), device=la.device)
            sa, sb = torch.where(neg, sa, ninf), torch.where(neg, sb, ninf)  # positives/self never enter exp
            b_cur = torch.maximum(sa.amax(1), sb.amax(1))
            u_old, b_old = self.u[index].to(la.device), self.b[index].to(la.device)
            seen = u_old > 0
            b_new = torch.where(seen, torch.maximum(b_old, b_cur), b_cur)
            carried = torch.where(seen, u_old * torch.exp(b_old - b_new), torch.zeros_like(u_old))
            gamma = torch.where(seen, torch.full_like(u_old, self.gamma), torch.ones_like(u_old))
            ea = torch.exp(sa - b_new[:, None])  # exp(-inf) = 0 off the negatives
            eb = torch.exp(sb - b_new[:, None])
            tiny = torch.finfo(ea.dtype).tiny
            ua = ((1 - gamma) * carried + gamma * ea.sum(1) / n_neg).clamp_min(tiny)
            ub = ((1 - gamma) * carried + gamma * eb.sum(1) / n_neg).clamp_min(tiny)
            pa, pb = ea / ua[:, None], eb / ub[:, None]

        loss_a = -la[rows, pos_col] + (pa * la).sum(1) / n_neg
        loss_b = -lb[rows, pos_col] + (pb * lb).sum(1) / n_neg
        loss = self._reduce(loss_a + loss_b, g, dist_on)

        with torch.no_grad():
            u_new = (ua + ub) / 2
            tau_new, m_new = tau[:, 0], self.m[index].to(la.device)
            if self.learn_tau:
                ga = torch.log(ua) + b_new + self.rho - (pa * sa.nan_to_num(neginf=0.0)).sum(1) / n_neg
                gb = torch.log(ub) + b_new + self.rho - (pb * sb.nan_to_num(neginf=0.0)).sum(1) / n_neg
                grad = (ga + gb) / 2
                if self.grad_clip is not None:
                    grad = grad.clamp(-self.grad_clip, self.grad_clip)
                m_new = (1 - self.beta) * m_new + self.beta * grad
                tau_new = (tau_new - self.eta * m_new).clamp(self.tau_min, self.tau_max)
            self._write(index, torch.stack([u_new, b_new, tau_new, m_new], dim=1), dist_on)
        return loss

    @staticmethod
    def _reduce(rows: Tensor, global_count: int, dist_on: bool) -> Tensor:
        """Mean over anchors. Under DDP (same convention as `objectives.functional`): the value is the global
        mean (identical on every rank); the gradient is that of W · (local sum) / G, so DDP's averaging over
        the W ranks gives exactly the single-process gradient on the concatenated batch."""
        if not dist_on:
            return rows.mean()
        local = rows.sum() * (distributed.world_size() / global_count)
        total = distributed.all_reduce_sum(rows.sum().detach()) / global_count
        return local + (total - local).detach()

    @torch.no_grad()
    def _write(self, index: Tensor, values: Tensor, dist_on: bool) -> None:
        """Write (u, b, τ, m) rows; under DDP the whole global batch is written on every rank."""
        if dist_on:
            index = distributed.all_gather_with_grad(index.to(values.device))
            values = distributed.all_gather_with_grad(values)
        index = index.to(self.u.device)
        values = values.to(self.u.device)
        self.u[index] = values[:, 0]
        self.b[index] = values[:, 1]
        self.tau[index] = values[:, 2]
        self.m[index] = values[:, 3]

    def extra_repr(self) -> str:
        kind = "isogclr" if self.learn_tau else "sogclr"
        return f"{kind}, n={self.u.numel()}, gamma={self.gamma}"
