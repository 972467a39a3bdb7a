"""Collect episodes: choose tasks, run them, write each episode as it ends (JSONL).

What `agentrl rollout` runs (with a manager from `agentrl.factory.make_manager`);
`agentrl eval` reuses `collect`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agentrl.errors import InvalidArgument
from agentrl.rollout.manager import RolloutManager
from agentrl.rollout.trajectory import Episode, EpisodeWriter


def choose_tasks(num_tasks: int, count: int, seed: int) -> list[int]:
    """`count` distinct task indices of a split, in a seeded random order."""
    if not 1 <= count <= num_tasks:
        raise InvalidArgument(
            f"asked for {count} tasks but the split has {num_tasks}; use 1 to {num_tasks}"
        )
    return [int(i) for i in np.random.default_rng(seed).permutation(num_tasks)[:count]]


def collect(
    manager: RolloutManager,
    task_indices: Sequence[int],
    out: str | Path | None = None,
    on_episode: Callable[[Episode], None] | None = None,
    close_engine: bool = True,
) -> tuple[list[Episode], float]:
    """Run the episodes, writing each to `out` (JSONL) as it ends; returns them and the
    wall time in seconds. The engine is closed afterwards unless `close_engine` is False."""
    writer = EpisodeWriter(out) if out is not None else None

    def done(episode: Episode) -> None:
        if writer is not None:
            writer.write(episode)
        if on_episode is not None:
            on_episode(episode)

    started = time.perf_counter()
    try:
        episodes = asyncio.run(_run(manager, task_indices, done, close_engine))
    finally:
        if writer is not None:
            writer.close()
    return episodes, time.perf_counter() - started


async def _run(
    manager: RolloutManager,
    task_indices: Sequence[int],
    done: Callable[[Episode], None],
    close_engine: bool,
) -> list[Episode]:
    try:
        return await manager.run(task_indices, on_episode=done)
    finally:
        if close_engine:
            await manager.engine.close()
