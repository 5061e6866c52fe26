"""sogclr / isogclr methods: per-sample state keyed by batch.index, temperatures exposed."""

from __future__ import annotations

import pytest
import torch

from test_moco_helpers import batch_of, gen, make_method

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_sogclr_state_is_per_dataset_row_and_in_the_state_dict():
    method, train = make_method("sogclr", n=64)
    assert method.state.u.shape == (64,)
    keys = set(method.state_dict())
    assert {"state.u", "state.b", "state.tau", "state.m"} <= keys
    index = [5, 9, 40, 2, 33, 17, 60, 1]
    out = method.training_step(batch_of(train, index), gen())
    out["loss"].backward()
    seen = torch.zeros(64, dtype=torch.bool)
    seen[index] = True
    assert (method.state.u[seen] > 0).all() and (method.state.u[~seen] == 0).all()
    assert torch.equal(method.temperatures(), torch.full((64,), 0.1))


def test_isogclr_temperatures_move_and_stay_in_bounds():
    method, train = make_method("isogclr", n=64, tau_lr=0.5)
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.05)
    for step in range(4):
        out = method.training_step(batch_of(train, range(16 * step, 16 * step + 16)), gen(step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        method.after_step(step, 4)
    tau = method.temperatures()
    assert tau.shape == (64,)
    assert (tau >= 0.05).all() and (tau <= 1.0).all()
    assert (tau != 0.1).any()
    assert "tau_mean" in out
