"""Training loop, checkpoints, optimizers and the distributed gather primitive."""
