"""`python -m contrastkit ...` is the `contrastkit` command (and what `torchrun -m contrastkit` launches)."""

from .cli import main

main()
