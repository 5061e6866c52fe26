"""Method registry. Each module registers its recipe with `@register_method(name)` when imported."""

from .base import METHODS, Method, check_method_fits, method_defaults, register_method

__all__ = ["METHODS", "Method", "method_defaults", "register_method", "create_method"]


def create_method(cfg, info, train) -> Method:
    """Build the method named in cfg around a fresh encoder, whole: `cls(encoder, info, cfg, train)`."""
    from ..encoders import create_encoder

    cls = METHODS.get(cfg["method"])
    check_method_fits(cfg["method"], info)  # before the encoder, whose error would be about shapes
    encoder = create_encoder(cfg["encoder"], info, **dict(cfg.get("encoder_kwargs") or {}))
    return cls(encoder, info, cfg, train)


# Importing the modules registers the methods.
import importlib as _importlib  # noqa: E402

for _name in ("simclr", "scarf", "csi", "supcon", "clan", "moco", "byol", "simsiam", "directpred", "sogclr", "clip",
              "scgc", "grace", "ts2vec"):
    try:
        _importlib.import_module(f".{_name}", __name__)
    except ModuleNotFoundError as _e:  # a method module not written yet
        if _e.name != f"{__name__}.{_name}":
            raise
