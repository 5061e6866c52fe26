"""One exception type for bad user input, raised at the boundary before any training starts."""


class ContrastkitError(ValueError):
    """Bad input: the message names the input and says how to fix it."""
