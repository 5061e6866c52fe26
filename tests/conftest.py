# Import contrastkit before any test imports torch, so its OpenMP wait policy applies to the test run too.
import contrastkit  # noqa: F401
