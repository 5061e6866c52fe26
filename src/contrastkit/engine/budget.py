"""`--minutes`: turn a wall-clock budget into a number of steps, so the lr schedule ends when the time does.

The plan is made from the speed of the first steps (the cosine schedule needs a total), then refreshed every
`every` steps during the first half of the run from the speed measured since the first plan, which leaves out
the slow start-up steps and follows a machine that got faster or slower (a shared machine does both). The
refreshes stop at half-way so the schedule's tail is not moved late, and each one moves the lr only a little
(it is the cosine of the progress fraction). Whatever the plan, training stops at the deadline.

Under multi-process training every rank must run the same number of steps, or the collectives hang: each
decision is the minimum over ranks (one tiny all-reduce per step, only when a budget is set and world > 1).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist

from ..core import distributed

SAFETY = 0.97  # plan slightly fewer steps than the measured speed allows: end before the deadline, not after


def steps_that_fit(budget_s: float, elapsed_s: float, done: int, steps_per_s: float) -> int:
    """Total steps when `done` are done after `elapsed_s` and the rest run at `steps_per_s`; at least done + 1."""
    return max(done + 1, done + int((budget_s - elapsed_s) * steps_per_s * SAFETY))


def min_over_ranks(value: int) -> int:
    """The smallest `value` of any rank (the value itself for a world of one)."""
    if not distributed.is_distributed():
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.long)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


class BudgetPlanner:
    """`update(step, elapsed_s, total_steps)` after every optimizer step returns the (new) total."""

    def __init__(self, budget_s: Optional[float], first_plan_step: int, every: int = 50,
                 planned: bool = False, start_step: int = 0, start_elapsed_s: float = 0.0):
        self.budget_s, self.first_plan_step, self.every = budget_s, int(first_plan_step), int(every)
        self.planned = planned or budget_s is None
        # the speed is measured from here: the first plan (or the point a resumed run started again)
        self.ref_step, self.ref_elapsed = int(start_step), float(start_elapsed_s)

    def update(self, step: int, elapsed_s: float, total_steps: int) -> int:
        if self.budget_s is None:
            return total_steps
        new_total = total_steps
        if not self.planned and step >= self.first_plan_step:
            new_total = steps_that_fit(self.budget_s, elapsed_s, step, step / max(elapsed_s, 1e-6))
            self.planned, self.ref_step, self.ref_elapsed = True, step, elapsed_s
        elif (self.planned and step - self.ref_step > 0 and (step - self.ref_step) % self.every == 0
              and 2 * step < total_steps):
            rate = (step - self.ref_step) / max(elapsed_s - self.ref_elapsed, 1e-6)
            new_total = steps_that_fit(self.budget_s, elapsed_s, step, rate)
        if elapsed_s > self.budget_s:
            new_total = step  # out of time: stop here
        return min_over_ranks(new_total)
