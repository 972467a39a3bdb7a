"""Tree growth: a task's samples as an ARPO / AEPO rollout tree.

    grower = TreeGrower(runner, BranchSettings(method="arpo", samples=8, initial=4))
    leaves = await grower.grow(task_index, limit=asyncio.Semaphore(64))

N paths start from the prompt; after each observation a path whose next turn is
uncertain forks (the decision rules are in `agentrl.rollout.branching`): the branch
copies the tokens up to and including the observation and the env (`fork()`, or a
replay of the actions for envs without fork support), and resamples that turn
concurrently with everything else. Every leaf is an episode with `parent`,
`branch_turn` and `branch_token_index`. The branch's prompt is a prefix of what its
parent already computed, so an engine that reuses prefixes (the `hf` engine, vLLM's
automatic prefix caching) does not compute it again. Seeds and branch draws derive
from each path's place in the tree, not from timing; which paths get a task's last
branch slots can depend on which decisions come first.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agentrl.core import TextEnv, replay
from agentrl.rollout.branching import (
    BranchSettings,
    PathState,
    TreeBudget,
    decide,
    premonitor_globals,
    probe_entropy,
    uniform,
)
from agentrl.rollout.episode import EpisodeRunner, record_error
from agentrl.rollout.trajectory import Episode


@dataclass
class _Path:
    """A path of a tree: its key (seeds and draws derive from it), its sampling stream,
    and its branch-decision state."""

    key: str
    stream: int
    state: PathState
    may_branch: bool = True


@dataclass
class _Tree:
    """One task's tree while it grows."""

    task_index: int
    budget: TreeBudget
    leaves: list[Episode] = field(default_factory=list)
    pending: set[asyncio.Future] = field(default_factory=set)
    spawn: Callable[[Awaitable[Episode]], None] = lambda work: None
    roots: int = 0
    created: int = 0

    def next_index(self) -> int:
        """Creation order: a parent's index is below its branches'."""
        self.created += 1
        return self.created - 1


class TreeGrower:
    """Grows each task's `settings.samples` leaves with `runner`'s episodes."""

    def __init__(self, runner: EpisodeRunner, settings: BranchSettings) -> None:
        self.runner = runner
        self.settings = settings

    async def grow(
        self,
        task_index: int,
        limit: asyncio.Semaphore,
        on_episode: Callable[[Episode], None] | None = None,
    ) -> list[Episode]:
        """One task's tree: N roots, branches while budget is left, then top-ups to M;
        the leaves in creation order."""
        settings = self.settings
        tree = _Tree(task_index, TreeBudget(settings.samples))

        async def path(work: Awaitable[Episode]) -> None:
            async with limit:
                episode = await work
            tree.leaves.append(episode)
            if on_episode is not None:
                on_episode(episode)

        tree.spawn = lambda work: tree.pending.add(asyncio.ensure_future(path(work)))
        roots = settings.initial
        if settings.premonitor:  # AEPO: one probe episode sets the number of roots
            tree.budget.start(1)
            await path(self._root(tree, 0, may_branch=False))
            tree.roots = 1
            probe = tree.leaves[0]
            by_turn = probe.entropies_by_turn().values()
            turns = [probe_entropy(values, settings.probe_tokens) for values in by_turn]
            h_root = turns[0] if turns else 0.0
            h_tool = sum(turns[1:]) / len(turns[1:]) if len(turns) > 1 else h_root
            roots = premonitor_globals(h_root, h_tool, settings.samples)
        while True:
            for _ in range(tree.budget.start(roots - tree.roots)):
                tree.spawn(self._root(tree, tree.roots))
                tree.roots += 1
            while tree.pending:
                done, _ = await asyncio.wait(tree.pending, return_when=asyncio.FIRST_COMPLETED)
                tree.pending -= done
                for task in done:
                    task.result()  # paths record their own errors; this surfaces bugs
            if tree.budget.left == 0:
                break
            roots = tree.roots + tree.budget.left  # top up with fresh global samples
        return sorted(tree.leaves, key=lambda e: e.sample_index)

    async def _root(self, tree: _Tree, root: int, may_branch: bool = True) -> Episode:
        """Root path number `root` of the tree, from the prompt; it may fork branches."""
        runner = self.runner
        env, episode = await runner.start(tree.task_index, root)
        try:
            if env is not None:
                episode.sample_index = tree.next_index()
                branch = _Path(f"s{root}", root, PathState(), may_branch)
                await runner.turns(
                    env, episode, tree.task_index, branch.stream, 1, self._hook(tree, branch)
                )
        except Exception as exc:
            record_error(episode, exc)
        finally:
            await runner.close_env(env, episode)
        return episode

    async def _branch(
        self,
        tree: _Tree,
        env: TextEnv | None,
        episode: Episode,
        branch: _Path,
        failure: Exception | None,
    ) -> Episode:
        """A branch from its branch turn on (its tokens and env are already copied)."""
        try:
            if failure is not None:
                raise failure
            assert env is not None and episode.branch_turn is not None
            hook = self._hook(tree, branch)
            await self.runner.turns(
                env, episode, tree.task_index, branch.stream, episode.branch_turn, hook
            )
        except Exception as exc:
            record_error(episode, exc)
        finally:
            if env is not None:
                with contextlib.suppress(Exception):
                    await self.runner.in_pool(env.close)
        return episode

    def _fork(self, env: TextEnv) -> TextEnv:
        return env.fork() if env.supports_fork else replay(env, self.runner.make_env())

    def _hook(self, tree: _Tree, branch: _Path) -> Any:
        async def hook(env: TextEnv, episode: Episode, turn: int, entropies: list[float]) -> None:
            await self._maybe_branch(env, episode, turn, entropies, tree, branch)

        return hook

    async def _maybe_branch(
        self,
        env: TextEnv,
        episode: Episode,
        turn: int,
        entropies: list[float],
        tree: _Tree,
        branch: _Path,
    ) -> None:
        """The decision after an observation: fork `copies` branches of this path at
        `turn` (before its generated tokens are appended) or go on alone."""
        settings = self.settings
        h_turn = probe_entropy(entropies, settings.probe_tokens)
        state = branch.state
        if state.h_init is None:  # the first turn: H_init, nothing to decide
            state.h_init = episode.initial_entropy = h_turn
            return
        if turn == episode.branch_turn or not branch.may_branch or tree.budget.left == 0:
            return  # a branch's own first turn is the resample; no budget, no decision
        u = None
        if settings.threshold is None:  # one draw per (task, path, turn), not per timing
            u = uniform(self.runner.seed, tree.task_index, branch.key, turn)
        probability, fork = decide(h_turn, state.h_init, settings, state.consecutive, u)
        episode.branch_checks.append(turn)
        episode.branch_probs.append(probability)
        granted = tree.budget.start(settings.copies) if fork else 0
        if not granted:
            state.consecutive = 0
            return
        state.consecutive += 1
        for copy_index in range(granted):
            child = copy.deepcopy(episode)
            key = f"{branch.key}.t{turn}c{copy_index}"
            child.episode_id = f"{episode.task_id}/{key}"
            child.sample_index = tree.next_index()
            child.parent, child.branch_turn = episode.episode_id, turn
            child.branch_token_index = len(episode.token_ids)
            child.branch_checks, child.branch_probs = [], []
            child.decoded_tokens = child.prefill_tokens = 0
            child.inherited_tool_calls = episode.num_tool_calls
            child.generate_s = child.env_s = 0.0
            child_env, failure = None, None
            try:
                child_env = await self.runner.in_pool(self._fork, env)
            except Exception as exc:  # the branch records it; the parent goes on
                failure = exc
            path = _Path(key, zlib.crc32(key.encode()), PathState(state.h_init, state.consecutive))
            tree.spawn(self._branch(tree, child_env, child, path, failure))
