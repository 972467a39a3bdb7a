"""Collect episodes for a config: model, engine, manager, JSONL output, progress bar.

What `agentrl rollout` runs; the trainer and `agentrl eval` reuse `collect`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrl.config import Config
from agentrl.engines import Engine
from agentrl.errors import InvalidArgument
from agentrl.rollout.branching import BranchSettings
from agentrl.rollout.manager import RolloutManager
from agentrl.rollout.trajectory import Episode, EpisodeWriter


def choose_tasks(num_tasks: int, count: int, seed: int) -> list[int]:
    """`count` distinct task indices of a split, in a seeded random order."""
    if not 1 <= count <= num_tasks:
        raise InvalidArgument(
            f"asked for {count} tasks but the split has {num_tasks}; use 1 to {num_tasks}"
        )
    return [int(i) for i in np.random.default_rng(seed).permutation(num_tasks)[:count]]


def branch_settings(config: Config) -> BranchSettings | None:
    """The config's branching rollout (None for independent samples)."""
    rollout = config.rollout
    if rollout.branching == "none":
        return None
    aepo = rollout.branching == "aepo"
    return BranchSettings(
        method=rollout.branching,
        samples=rollout.samples_per_task,
        initial=rollout.initial_samples or max(1, rollout.samples_per_task // 2),
        probe_tokens=rollout.branch_probe_tokens,
        alpha=rollout.branch_alpha,
        beta=rollout.branch_beta,
        threshold=rollout.branch_threshold,
        copies=rollout.branch_copies,
        penalty=rollout.branch_penalty if aepo else 0.0,
        premonitor=rollout.premonitor,
    )


def make_manager(config: Config, engine: Engine, tokenizer: Any, split: str) -> RolloutManager:
    """A rollout manager with the config's env, sampling and branching settings."""
    rollout = config.rollout
    return RolloutManager(
        engine,
        tokenizer,
        config.env.name,
        config.env.env_kwargs(),
        split=split,
        samples_per_task=rollout.samples_per_task,
        max_new_tokens=rollout.max_new_tokens,
        max_context_tokens=rollout.max_context_tokens,
        temperature=rollout.temperature,
        top_p=rollout.top_p,
        top_k=rollout.top_k,
        workers=rollout.workers,
        seed=config.train.seed,
        branching=branch_settings(config),
    )


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
