"""One training step's task groups: which tasks come next, and DAPO's dynamic sampling.

    cursor = {"epoch": 0, "cursor": 0}           # saved in checkpoints, advanced here
    kept, metrics = collect_groups(manager, cursor, wanted=4, seed=0)

Tasks are drawn from a seeded permutation of the split, reshuffled at each epoch, and
never twice in one step. With several processes every rank draws the same tasks (same
seed, same cursor) and runs its share of whole groups, so a group's advantages never
need another rank's episodes. With `informative_only` (dynamic sampling), a group whose
rewards are all equal is dropped and more tasks are sampled, for at most `rounds`
rounds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from agentrl import distributed
from agentrl.rollout.branching import tree_metrics
from agentrl.rollout.manager import RolloutManager, summarize
from agentrl.rollout.trajectory import Episode


def next_tasks(
    manager: Any, cursor: dict[str, Any], count: int, seed: int, taken: set[int]
) -> list[int]:
    """The next `count` tasks of `manager`'s split in a seeded permutation, reshuffled at
    each epoch, never one already in `taken` (a task appears once per step, even across
    an epoch boundary). `cursor` ({"epoch", "cursor"}) advances."""
    count = min(count, manager.num_tasks - len(taken))
    tasks: list[int] = []
    while len(tasks) < count:
        order = np.random.default_rng([seed, cursor["epoch"]]).permutation(manager.num_tasks)
        task = int(order[cursor["cursor"]])
        cursor["cursor"] += 1
        if cursor["cursor"] >= manager.num_tasks:
            cursor["epoch"], cursor["cursor"] = cursor["epoch"] + 1, 0
        if task not in taken:
            taken.add(task)
            tasks.append(task)
    return tasks


def collect_groups(
    manager: RolloutManager,
    cursor: dict[str, Any],
    *,
    wanted: int,
    seed: int,
    informative_only: bool = False,
    rounds: int = 1,
    on_episode: Callable[[Episode], None] | None = None,
) -> tuple[list[Episode], dict[str, float]]:
    """This rank's kept episodes (whole groups of `wanted` tasks over all ranks) and the
    `rollout/*` metrics of every episode collected (on rank 0: all ranks')."""
    rank, world = distributed.rank(), distributed.world_size()
    taken: set[int] = set()
    kept: list[Episode] = []
    collected: list[Episode] = []
    started = time.perf_counter()
    for _ in range(rounds if informative_only else 1):
        # all ranks' kept groups: every rank then draws the same tasks for the next round
        groups_kept = distributed.sum_over_ranks(len({e.task_index for e in kept}))
        if groups_kept >= wanted:
            break
        tasks = next_tasks(manager, cursor, wanted - groups_kept, seed, taken)
        if not tasks:
            break
        tasks = tasks[rank::world]
        episodes = asyncio.run(manager.run(tasks, on_episode=on_episode))
        collected += episodes
        for task in tasks:
            group = [e for e in episodes if e.task_index == task and e.error is None]
            informative = len({e.reward for e in group}) > 1
            if group and (informative or not informative_only):
                kept += group
    wall = time.perf_counter() - started
    groups_kept = distributed.sum_over_ranks(len({e.task_index for e in kept}))
    # metrics describe every rank's episodes (without their token lists, enough for them)
    collected = distributed.gather_to_main([_light(e) for e in collected])
    metrics = {f"rollout/{k}": v for k, v in summarize(collected, wall).items()}
    metrics["rollout/groups_kept"] = float(groups_kept)
    if manager.branching is not None:  # branch rate, top-3 share, prefill per leaf...
        metrics.update({f"rollout/{k}": v for k, v in tree_metrics(collected).items()})
    lengths = [e.num_generated for e in collected]
    metrics["rollout/response_tokens"] = float(np.mean(lengths)) if lengths else 0.0
    return kept, metrics


def _light(episode: Episode) -> Episode:
    return dataclasses.replace(episode, token_ids=[], logprobs=[], entropies=[], turn_index=[])
