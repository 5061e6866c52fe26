"""--minutes planning (train/budget.py): the plan, its refreshes, the deadline, resume, and ranks agreeing."""

import json
import os

import torch.distributed as dist
import torch.multiprocessing as mp

from contrastkit.engine.budget import BudgetPlanner, steps_that_fit


def test_no_budget_never_changes_the_total():
    planner = BudgetPlanner(None, first_plan_step=20)
    assert planner.planned and planner.update(20, 1e9, 500) == 500


def test_first_plan_from_the_first_steps_then_refreshed_from_the_later_speed():
    planner = BudgetPlanner(60.0, first_plan_step=20, every=50)
    assert planner.update(19, 1.9, 1000) == 1000  # not planned yet
    total = planner.update(20, 2.0, 1000)  # 10 steps/s for the remaining 58 s, 3 % held back
    assert total == 20 + int(58 * 10 * 0.97) == steps_that_fit(60.0, 2.0, 20, 10.0)
    assert planner.update(21, 2.1, total) == total  # between refreshes: unchanged
    faster = planner.update(70, 4.0, total)  # 50 steps in 2 s since the plan: 25 steps/s
    assert faster == 70 + int(56 * 25 * 0.97)
    slower = planner.update(120, 10.0, faster)  # 100 steps in 8 s since the plan: 12.5 steps/s
    assert slower == 120 + int(50 * 12.5 * 0.97)


def test_no_refresh_in_the_second_half_but_always_a_stop_at_the_deadline():
    planner = BudgetPlanner(60.0, first_plan_step=20, every=10, planned=True)
    assert planner.update(40, 1.0, 100) != 100  # a refresh step in the first half: re-planned
    assert planner.update(50, 1.0, 100) == 100  # a refresh step at half-way: left alone
    assert planner.update(51, 60.5, 100) == 51  # out of time: stop after this step


def test_a_resumed_run_measures_its_speed_from_where_it_started_again():
    planner = BudgetPlanner(120.0, first_plan_step=20, every=50, planned=True, start_step=100,
                            start_elapsed_s=30.0)
    assert planner.update(150, 35.0, 2000) == 150 + int(85 * 10 * 0.97)  # 50 steps in 5 s


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    planner = BudgetPlanner(60.0, first_plan_step=20)
    first = planner.update(20, 2.0 + 2.0 * rank, 1000)  # rank 1 measured half the speed
    stop = planner.update(21, 61.0 if rank == 1 else 3.0, first)  # only rank 1 is past the deadline
    with open(f"{out_dir}/{rank}.json", "w") as f:
        json.dump([first, stop], f)
    dist.destroy_process_group()
    os._exit(0)  # skip C++ static destructors: gloo's threads can abort a finished spawned worker there


def test_ranks_agree_on_the_plan_and_on_the_stop(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    got = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    assert got[0] == got[1]
    assert got[0][0] == steps_that_fit(60.0, 4.0, 20, 5.0)  # the slower rank's plan: the minimum
    assert got[0][1] == 21
