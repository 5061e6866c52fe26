"""contrastkit: self-supervised contrastive representation learning for any modality."""

__version__ = "0.1.0"
