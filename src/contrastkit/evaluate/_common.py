"""Input checks and small helpers shared by the evaluation functions.

Every public evaluation function accepts embeddings as torch tensors or numpy arrays (any float dtype, any
device for tensors) and labels as integer-like arrays. Checks happen here, at the boundary, and raise
`ContrastkitError` naming the argument; inside, the code trusts its inputs.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
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
    if not _all_finite(t):
        raise ContrastkitError(f"{name}: contains NaN or inf values; check the encoder output "
                               f"(fp16 overflow?)")
    return t


def _all_finite(t: torch.Tensor, rows: int = 8192) -> bool:
    """Whether every value is finite, checked a block of rows at a time: `torch.isfinite` on the whole matrix
    builds full-size temporaries (|x| in fp32 and two masks: +857 MiB for 1,000,000 × 128 embeddings)."""
    return all(bool(torch.isfinite(t[s : s + rows]).all()) for s in range(0, t.shape[0], rows))


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


# --- progress --------------------------------------------------------------------------------------------------
# Each protocol function (embedding, kNN, linear probe, k-means, ...) opens one `progress_task` while it works and
# advances it as chunks, iterations or epochs finish. Nothing is shown unless a caller installed a reporter with
# `evaluation_progress` (the end-of-run evaluation and `contrastkit evaluate` do, on a terminal only), so the
# functions stay silent and cost nothing when used as a library.

class ProgressTask:
    """What a protocol advances; the no-op base is what it gets when no reporter is installed."""

    def advance(self, n: float = 1) -> None:
        pass

    def set_total(self, total: Optional[float]) -> None:
        pass


_NO_TASK = ProgressTask()
_REPORTER: ContextVar[Optional["ProgressReporter"]] = ContextVar("contrastkit_evaluation_progress", default=None)
_LABEL: ContextVar[str] = ContextVar("contrastkit_evaluation_label", default="")


class ProgressReporter:
    """Receives the tasks of the protocols; `start(description, total)` returns the task they advance."""

    def start(self, description: str, total: Optional[float]) -> ProgressTask:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, task: ProgressTask) -> None:
        pass


@contextmanager
def progress_task(description: str, total: Optional[float] = None):
    """A task line of the installed reporter (prefixed with the current `progress_label`), marked done at exit."""
    reporter = _REPORTER.get()
    if reporter is None:
        yield _NO_TASK
        return
    label = _LABEL.get()
    task = reporter.start(f"{label}: {description}" if label else description, total)
    try:
        yield task
    finally:
        reporter.finish(task)


@contextmanager
def progress_label(label: str):
    """Name what the tasks inside are about (e.g. "encoder", "random init", "raw input")."""
    token = _LABEL.set(label)
    try:
        yield
    finally:
        _LABEL.reset(token)


@contextmanager
def reporting_to(reporter: Optional[ProgressReporter]):
    """Install `reporter` for the protocols run inside the block (None: silence)."""
    token = _REPORTER.set(reporter)
    try:
        yield reporter
    finally:
        _REPORTER.reset(token)


class _RichTask(ProgressTask):
    def __init__(self, progress, task_id):
        self.progress, self.id = progress, task_id

    def advance(self, n: float = 1) -> None:
        self.progress.advance(self.id, n)

    def set_total(self, total: Optional[float]) -> None:
        self.progress.update(self.id, total=total)


class RichReporter(ProgressReporter):
    """One line per task: description, bar (a pulse while the total is unknown), done/total, elapsed time.
    Finished lines stay, so the output ends with where the evaluation's time went."""

    def __init__(self, console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("  {task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console)

    def start(self, description: str, total: Optional[float]) -> ProgressTask:
        return _RichTask(self.progress, self.progress.add_task(description, total=total))

    def finish(self, task: ProgressTask) -> None:
        t = self.progress.tasks[[x.id for x in self.progress.tasks].index(task.id)]
        total = t.completed if t.completed > 0 else (t.total or 1.0)  # what was done (L-BFGS may stop early)
        self.progress.update(task.id, total=total, completed=total)
        self.progress.stop_task(task.id)  # its elapsed time stops here


@contextmanager
def evaluation_progress(enabled: Optional[bool] = None, title: str = "evaluating", console=None):
    """Per-protocol progress lines on `console` (default: stderr) while the block runs, when it is a terminal;
    nothing at all when `enabled` is False (e.g. `progress=False`) or the output is not a terminal."""
    if enabled is not False and console is None:
        from rich.console import Console

        console = Console(stderr=True)
    if enabled is False or not console.is_terminal:
        with reporting_to(None):
            yield None
        return
    reporter = RichReporter(console)
    console.print(f"[bold]{title}[/bold]")
    with reporter.progress, reporting_to(reporter):
        yield reporter
