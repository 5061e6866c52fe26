"""The base layer every other layer may import: the distributed gather/reduce primitive, EMA helpers and atomic
checkpoint I/O (with `contrastkit.errors` and `contrastkit.registry`). It imports nothing else from contrastkit."""
