"""The rollout manager: many episodes at once, token-exact, a failure stays in its episode.

    manager = RolloutManager(engine, tokenizer, "guess", split="valid", samples_per_task=4)
    episodes = await manager.run(task_indices=[0, 1, 2])

Every episode is its own asyncio task (`agentrl.rollout.episode` plays it): while one
episode waits on a slow env, the engine decodes the others (the engine batches
concurrent requests). An exception from the env, the parser or the engine ends that
episode with `error` set; the others go on. With `branching` (ARPO / AEPO) a task's
samples grow as a tree (`agentrl.rollout.tree`). The manager builds what they share
from the env: the system prompt, the action parser (`agentrl.rollout.actions`), the
chat format, the stop strings and the env worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentrl.core import TextEnv
from agentrl.engines.base import Engine, SamplingParams
from agentrl.registration import make, resolve
from agentrl.rollout.actions import make_parser
from agentrl.rollout.branching import BranchSettings
from agentrl.rollout.chat import ChatFormat
from agentrl.rollout.episode import EpisodeRunner
from agentrl.rollout.trajectory import Episode
from agentrl.rollout.tree import TreeGrower

FORMAT_RULE = "Reply with exactly one action per turn."


def build_system_prompt(env: TextEnv, format_hint: str) -> str:
    """The env's instructions, then how to write an action."""
    parts = [env.instructions.strip(), format_hint.strip(), FORMAT_RULE]
    return "\n".join(p for p in parts if p)


class RolloutManager:
    """Runs `samples_per_task` episodes for each task, concurrently, against one engine.

    Args:
        engine: anything with the `Engine` protocol.
        tokenizer: the policy's tokenizer (chat template, decoding for parsing).
        env: env name or id; `env_kwargs` go to its constructor.
        split: which split the task indices refer to.
        samples_per_task: episodes per task (the group size G).
        max_new_tokens: most tokens per turn.
        max_context_tokens: most tokens in an episode; reaching it truncates the episode.
        temperature, top_p, top_k: sampling parameters.
        workers: threads stepping envs.
        max_concurrent: most episodes in flight at once.
        seed: base of every env and sampling seed.
        system_prompt: overrides the env's instructions and format hint.
        action_format: overrides the env's `action_format`.
        branching: grow each task's samples as an ARPO / AEPO tree of
            `branching.samples` leaves (then `samples_per_task` must equal it).
    """

    def __init__(
        self,
        engine: Engine,
        tokenizer: Any,
        env: str,
        env_kwargs: dict[str, Any] | None = None,
        *,
        split: str = "train",
        samples_per_task: int = 1,
        max_new_tokens: int = 128,
        max_context_tokens: int = 2048,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        workers: int = 4,
        max_concurrent: int = 256,
        seed: int = 0,
        system_prompt: str | None = None,
        action_format: str | None = None,
        branching: BranchSettings | None = None,
    ) -> None:
        if branching is not None and branching.samples != samples_per_task:
            raise ValueError(
                f"branching grows {branching.samples} leaves per task but samples_per_task "
                f"is {samples_per_task}; make them equal"
            )
        self.branching = branching
        self.engine = engine
        self.tokenizer = tokenizer
        self.env_id = resolve(env)
        self.env_kwargs = dict(env_kwargs or {})
        self.split = split
        self.samples_per_task = samples_per_task
        self.max_new_tokens = max_new_tokens
        sampling = {"temperature": temperature, "top_p": top_p, "top_k": top_k}
        SamplingParams(**sampling, max_new_tokens=max_new_tokens)  # validate now
        probe = make(self.env_id, split=split, **self.env_kwargs)
        try:
            self.num_tasks = probe.num_tasks(split)  # type: ignore[arg-type]
            names = list(probe.action_names) or None
            examples = probe.action_examples or None
            self.parser = make_parser(action_format or probe.action_format, names, examples)
            if system_prompt is None:
                system_prompt = build_system_prompt(probe, self.parser.format_hint())
            # Tool schemas go to the template when the policy writes JSON tool calls (the
            # format templates that render tools ask for); other formats keep their hint.
            toolbox = probe.tools if self.parser.name == "json" else None
            self.chat = ChatFormat(
                tokenizer,
                system_prompt,
                examples=probe.demonstrations(),
                tools=toolbox.schemas() if toolbox is not None else None,
            )
            env_stops, max_turns = tuple(probe.stop_strings), probe.max_turns
        finally:
            with contextlib.suppress(Exception):  # a probe's failing close() is not ours
                probe.close()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="agentrl-env")
        self.runner = EpisodeRunner(
            engine=engine,
            tokenizer=tokenizer,
            env_id=self.env_id,
            env_kwargs=self.env_kwargs,
            split=split,
            chat=self.chat,
            parser=self.parser,
            stop_strings=(*self.parser.stop_strings(), *env_stops),
            # The template's end-of-turn token ends a turn even where it is not the eos.
            stop_token_ids=tuple(self.chat.closing_ids[:1]),
            sampling=sampling,
            max_turns=max_turns,
            max_new_tokens=max_new_tokens,
            max_context_tokens=max_context_tokens,
            pool=self._pool,
            seed=seed,
        )
        self.max_concurrent = max_concurrent
        self._grower = TreeGrower(self.runner, branching) if branching is not None else None

    @property
    def seed(self) -> int:
        """Base of every env and sampling seed (the trainer sets one per step)."""
        return self.runner.seed

    @seed.setter
    def seed(self, value: int) -> None:
        self.runner.seed = value

    @property
    def max_turns(self) -> int:
        return self.runner.max_turns

    async def run(
        self,
        task_indices: Sequence[int],
        on_episode: Callable[[Episode], None] | None = None,
    ) -> list[Episode]:
        """All samples of all tasks, in (task, sample) order; `on_episode` sees each as it ends."""
        bad = [i for i in task_indices if not 0 <= i < self.num_tasks]
        if bad:
            raise IndexError(
                f"task indices {bad[:5]} are outside split {self.split!r} of {self.env_id} "
                f"(it has {self.num_tasks} tasks)"
            )

        limit = asyncio.Semaphore(self.max_concurrent)  # bound to this run's event loop
        if self._grower is not None:
            trees = [self._grower.grow(t, limit, on_episode) for t in task_indices]
            return [leaf for leaves in await asyncio.gather(*trees) for leaf in leaves]

        async def one(task_index: int, sample_index: int) -> Episode:
            async with limit:
                episode = await self.runner.run(task_index, sample_index)
            if on_episode is not None:
                on_episode(episode)
            return episode

        jobs = [one(t, s) for t in task_indices for s in range(self.samples_per_task)]
        return list(await asyncio.gather(*jobs))

    def close(self) -> None:
        """Stop the env worker threads."""
        self._pool.shutdown(wait=True)


def summarize(episodes: Sequence[Episode], wall_s: float | None = None) -> dict[str, float]:
    """Means over episodes: reward, success, turns, tool calls, invalid actions, tokens/s."""
    n = max(len(episodes), 1)
    turns = sum(e.num_turns for e in episodes)
    generated = sum(e.num_generated for e in episodes)
    summary = {
        "episodes": float(len(episodes)),
        "reward": sum(e.reward for e in episodes) / n,
        "success": sum(e.success for e in episodes) / n,
        "turns": turns / n,
        "tool_calls": sum(e.num_tool_calls for e in episodes) / n,
        "invalid_action_rate": sum(e.num_invalid_actions for e in episodes) / max(turns, 1),
        "errors": float(sum(e.error is not None for e in episodes)),
        "generated_tokens": float(generated),
    }
    if wall_s:
        summary["tokens_per_s"] = generated / wall_s
    return summary
