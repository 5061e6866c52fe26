"""Input checks and small helpers shared by the evaluation functions.

Every public evaluation function accepts embeddings as torch tensors or numpy arrays (any float dtype, any
device for tensors) and labels as integer-like arrays. Checks happen here, at the boundary, and raise
`ContrastkitError` naming the argument; inside, the code trusts its inputs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ContrastkitError

# Elements of one (rows × n) similarity block: 2**26 fp32 = 256 MiB. A chunk of query rows is sized so that
# its similarity block against all database rows stays within this, whatever n is (100k × 100k included).
MAX_BLOCK_ELEMENTS = 2**26


def as_embedding(x: Any, name: str, *, device: Optional[torch.device] = None) -> torch.Tensor:
    """`x` as a 2-D fp32 tensor (on `device`, or where it already is); raises on bad shape or NaN/inf."""
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except Exception as e:  # pragma: no cover - exotic inputs
            raise ContrastkitError(f"{name}: expected a torch tensor or numpy array, "
                                   f"got {type(x).__name__}") from e
    if t.ndim == 1:
        raise ContrastkitError(f"{name}: expected a 2-D (n, d) embedding matrix, got shape {tuple(t.shape)}; "
                               f"use x.reshape(-1, 1) for one feature")
    if t.ndim > 2:
        t = t.flatten(1)
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ContrastkitError(f"{name}: expected a non-empty (n, d) matrix, got shape {tuple(t.shape)}")
    if device is not None:
        t = t.to(device)
    t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise ContrastkitError(f"{name}: contains NaN or inf values; check the encoder output "
                               f"(fp16 overflow?)")
    return t


def as_labels(y: Any, n: int, name: str, *, device: Optional[torch.device] = None) -> torch.Tensor:
    """Return labels as a 1-D int64 tensor of length `n`."""
    if isinstance(y, torch.Tensor):
        t = y.detach()
    else:
        a = np.asarray(y)
        if a.dtype.kind not in "biu":
            if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
                a = a.astype(np.int64)
            else:
                # arbitrary hashable labels (strings, …): map to 0..C-1
                _, a = np.unique(a, return_inverse=True)
        t = torch.from_numpy(np.ascontiguousarray(a.astype(np.int64)))
    t = t.reshape(-1)
    if t.dtype.is_floating_point:
        if not bool((t == t.round()).all()):
            raise ContrastkitError(f"{name}: labels must be integers, got non-integer floats")
    t = t.long()
    if t.numel() != n:
        raise ContrastkitError(f"{name}: has {t.numel()} labels but the embeddings have {n} rows")
    if device is not None:
        t = t.to(device)
    return t


def _is_integer_like(y: Any) -> bool:
    if isinstance(y, torch.Tensor):
        return True  # float tensors are checked for integrality by as_labels
    a = np.asarray(y)
    return a.dtype.kind in "biu" or (a.dtype.kind == "f" and bool(np.all(np.isfinite(a) & (a == np.round(a)))))


def as_label_pair(ytr: Any, yte: Any, ntr: int, nte: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test labels as int64 CPU tensors; non-integer labels (strings, …) get one joint coding."""
    if _is_integer_like(ytr) and _is_integer_like(yte):
        return as_labels(ytr, ntr, "train_y"), as_labels(yte, nte, "test_y")
    a, b = np.asarray(to_numpy(ytr)).reshape(-1), np.asarray(to_numpy(yte)).reshape(-1)
    codes = np.unique(np.concatenate([a.astype(str), b.astype(str)]), return_inverse=True)[1]
    return as_labels(codes[: a.size], ntr, "train_y"), as_labels(codes[a.size :], nte, "test_y")


def check_same_dim(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ContrastkitError(f"{na} has dimension {a.shape[1]} but {nb} has {b.shape[1]}; "
                               f"embed both with the same encoder")


def normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows in fp32 (zero rows stay zero)."""
    return F.normalize(x.float(), dim=1, eps=1e-12)


def chunk_rows(n_db: int, chunk_size: int) -> int:
    """Rows per query chunk so that a (rows × n_db) block stays within MAX_BLOCK_ELEMENTS."""
    return max(1, min(int(chunk_size), MAX_BLOCK_ELEMENTS // max(1, n_db)))


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def pick_device(*xs: Any) -> torch.device:
    """The device of the first torch tensor among `xs` (CPU for numpy inputs)."""
    for x in xs:
        if isinstance(x, torch.Tensor):
            return x.device
    return torch.device("cpu")


# Below this many input elements, a solver runs single-threaded: its per-call work is so small that OpenMP
# start-up/synchronisation dominates, and on a busy 2-core machine two spinning threads made a 2000 × 32
# L-BFGS probe 25× slower (4.9 s vs 0.18 s) and a 600-row k-means 75× slower than one thread.
SMALL_WORK_ELEMENTS = 1 << 21


@contextmanager
def single_thread_if_small(n_elements: int, threshold: int = SMALL_WORK_ELEMENTS):
    """Run torch and OpenMP/BLAS pools single-threaded inside the block when the input is small."""
    if n_elements >= threshold:
        yield
        return
    from threadpoolctl import threadpool_limits

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(prev)
