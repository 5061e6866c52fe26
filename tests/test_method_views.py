"""Each method gets its paper's image views where they differ from SimCLR's (read from the built modules)."""

from __future__ import annotations

import pytest
import torch

from contrastkit.config import resolve_config
from contrastkit.data.base import DataInfo, Dataset
from contrastkit.methods import create_method

LARGE = DataInfo("rgb96", "image", (3, 96, 96), mean=(0.5,) * 3, std=(0.25,) * 3)
SMALL = DataInfo("rgb32", "image", (3, 32, 32), mean=(0.5,) * 3, std=(0.25,) * 3)


def views(name: str, info: DataInfo, **settings):
    cfg = resolve_config({"method": name, "encoder": "mlp", "encoder_kwargs": {"width": 8, "depth": 1,
                                                                             "out_dim": 8}, **settings})
    train = Dataset(torch.zeros(4, *info.shape, dtype=torch.uint8), None, info)
    m = create_method(cfg, info, train)
    return m.view1.config, m.view2.config


def test_byol_views_are_asymmetric_with_its_jitter():
    v1, v2 = views("byol", LARGE)
    assert (v1.blur_p, v2.blur_p) == (1.0, 0.1) and (v1.solarize_p, v2.solarize_p) == (0.0, 0.2)
    assert v1.jitter_strength == (0.4, 0.4, 0.2, 0.1) and v1.crop_scale == (0.08, 1.0)
    s1, s2 = views("directpred", SMALL)  # small images: no blur (CIFAR-style), solarize still asymmetric
    assert (s1.blur_p, s2.blur_p) == (0.0, 0.0) and (s1.solarize_p, s2.solarize_p) == (0.0, 0.2)


@pytest.mark.parametrize("name", ["moco", "mochi", "moco-ft", "simsiam"])
def test_moco_v2_family_uses_its_crop_and_jitter(name):
    v1, v2 = views(name, LARGE)
    assert v1.crop_scale == v2.crop_scale == (0.2, 1.0)
    assert v1.jitter_strength == (0.4, 0.4, 0.4, 0.1) and v1.blur_p == 0.5


def test_simclr_keeps_its_own_and_the_user_wins():
    v1, _ = views("simclr", LARGE)
    assert v1.crop_scale == (0.08, 1.0) and v1.jitter_strength == (0.8, 0.8, 0.8, 0.2)
    b1, b2 = views("byol", LARGE, blur_p=0.3, solarize_p=0.0)
    assert b1.blur_p == b2.blur_p == 0.3 and b2.solarize_p == 0.0


def test_dcl_objective_gets_dcl_temperature_unless_given():
    assert resolve_config({"method": "simclr", "objective": "dcl"})["temperature"] == 0.1
    assert resolve_config({"method": "simclr", "objective": "dclw"})["temperature"] == 0.1
    assert resolve_config({"method": "simclr"})["temperature"] == 0.5
    assert resolve_config({"method": "simclr", "objective": "dcl", "temperature": 0.3})["temperature"] == 0.3
