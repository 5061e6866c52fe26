# Import contrastkit before any test imports torch, so its OpenMP wait policy applies to the test run too.
import contrastkit  # noqa: F401

import os  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402

# decoded image folders are cached; the tests' caches go to a temporary folder, not ~/.cache
os.environ.setdefault("CONTRASTKIT_CACHE", tempfile.mkdtemp(prefix="contrastkit-test-cache-"))
import torch  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and robust when the (2) shared cores are busy.
    A test module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
