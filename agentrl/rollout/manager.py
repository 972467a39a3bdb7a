"""The rollout manager: many episodes at once, token-exact, a failure stays in its episode.

    manager = RolloutManager(engine, tokenizer, "guess", split="valid", samples_per_task=4)
    episodes = await manager.run(task_indices=[0, 1, 2])

Every episode is its own asyncio task: it asks the engine for a turn, parses the text
into an action, steps its env in a worker thread, and appends the observation as
tokens. So while one episode waits on a slow env, the engine decodes the others (the
engine batches concurrent requests). Limits per episode: the env's `max_turns`,
`max_new_tokens` per turn, and `max_context_tokens` (then the episode is truncated).
An exception from the env, the parser or the engine ends that episode with `error`
set; the others go on. Given the same engine outputs, results do not depend on
scheduling: every sampling seed derives from (seed, task, sample, turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import traceback
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentrl.core import TextEnv
from agentrl.engines.base import Engine, GenerationRequest, SamplingParams
from agentrl.registration import make, resolve
from agentrl.rollout.chat import ChatFormat
from agentrl.rollout.trajectory import Episode
from agentrl.tools.parsers import make_parser

FORMAT_RULE = "Reply with exactly one action per turn."


def build_system_prompt(env: TextEnv, format_hint: str) -> str:
    """The env's instructions, then how to write an action."""
    parts = [env.instructions.strip(), format_hint.strip(), FORMAT_RULE]
    return "\n".join(p for p in parts if p)


def _derive_seed(*parts: int) -> int:
    """A 31-bit seed from integers, stable across runs and platforms."""
    value = 0x9E3779B9
    for part in parts:
        value = (value * 1_000_003 ^ (part & 0xFFFFFFFF)) & 0xFFFFFFFFFFFF
    return value % (2**31)


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
    ) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.env_id = resolve(env)
        self.env_kwargs = dict(env_kwargs or {})
        self.split = split
        self.samples_per_task = samples_per_task
        self.max_new_tokens = max_new_tokens
        self.max_context_tokens = max_context_tokens
        self.sampling = {"temperature": temperature, "top_p": top_p, "top_k": top_k}
        SamplingParams(**self.sampling, max_new_tokens=max_new_tokens)  # validate now
        self.seed = seed
        probe = self._make_env()
        self.max_turns = probe.max_turns
        self.num_tasks = probe.num_tasks(split)  # type: ignore[arg-type]
        names = list(probe.action_names) or None
        self.parser = make_parser(action_format or probe.action_format, names)
        if system_prompt is None:
            system_prompt = build_system_prompt(probe, self.parser.format_hint())
        examples = probe.demonstrations()
        self.stop_strings = (*self.parser.stop_strings(), *probe.stop_strings)
        with contextlib.suppress(Exception):  # a probe's failing close() is not our concern
            probe.close()
        self.chat = ChatFormat(tokenizer, system_prompt, examples=examples)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="agentrl-env")
        self.max_concurrent = max_concurrent
        # The template's end-of-turn token ends a turn even where it is not the eos token.
        self.stop_token_ids = tuple(self.chat.closing_ids[:1])

    def _make_env(self) -> TextEnv:
        return make(self.env_id, split=self.split, **self.env_kwargs)

    async def _in_pool(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

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

        async def one(task_index: int, sample_index: int) -> Episode:
            async with limit:
                episode = await self.run_episode(task_index, sample_index)
            if on_episode is not None:
                on_episode(episode)
            return episode

        jobs = [one(t, s) for t in task_indices for s in range(self.samples_per_task)]
        return list(await asyncio.gather(*jobs))

    async def run_episode(self, task_index: int, sample_index: int) -> Episode:
        """One episode of task `task_index`; never raises for env, parser or engine errors."""
        env_seed = _derive_seed(self.seed, task_index)
        episode = Episode(
            episode_id=f"{self.split}-{task_index}/s{sample_index}",
            env_id=self.env_id,
            task_id="",
            split=self.split,
            seed=env_seed,
            task_index=task_index,
            sample_index=sample_index,
        )
        env: TextEnv | None = None
        try:
            started = time.perf_counter()
            env = await self._in_pool(self._make_env)
            observation, info = await self._in_pool(
                env.reset, seed=env_seed, options={"task_index": task_index}
            )
            episode.env_s += time.perf_counter() - started
            episode.task_id = info["task_id"]
            episode.episode_id = f"{episode.task_id}/s{sample_index}"
            episode.observation_hashes.append(zlib.crc32(observation.encode()))
            prompt = self.chat.prompt(observation)
            episode.append(prompt, 0, 0)
            episode.prompt_length = len(prompt)
            await self._turns(env, episode, task_index, sample_index)
        except Exception as exc:  # recorded on this episode; the batch goes on
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            episode.error = f"{type(exc).__name__}: {exc} ({frame.filename}:{frame.lineno})"
        finally:
            if env is not None:
                try:
                    await self._in_pool(env.close)
                except Exception as exc:
                    episode.error = (
                        episode.error or f"env.close() failed: {type(exc).__name__}: {exc}"
                    )
        return episode

    async def _turns(self, env: TextEnv, episode: Episode, task_index: int, sample: int) -> None:
        for turn in range(1, self.max_turns + 1):
            room = self.max_context_tokens - len(episode.token_ids)
            if room <= 0:
                episode.truncated, episode.truncation = True, "context"
                return
            params = SamplingParams(
                **self.sampling,
                max_new_tokens=min(self.max_new_tokens, room),
                stop=self.stop_strings,
                stop_token_ids=self.stop_token_ids,
                seed=_derive_seed(self.seed, task_index, sample, turn),
            )
            started = time.perf_counter()
            [[completion]] = await self.engine.generate(
                [GenerationRequest(list(episode.token_ids), params)]
            )
            episode.generate_s += time.perf_counter() - started
            episode.entropy_exact &= completion.entropy_exact
            generated = completion.token_ids
            episode.append(generated, 1, turn, completion.logprobs, completion.entropies)
            episode.num_turns = turn
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            parsed = self.parser.parse(text)
            terminated = truncated = False
            reward = 0.0
            if parsed.action is None:
                observation = parsed.error or "No action found."
                episode.num_invalid_actions += 1
            else:
                started = time.perf_counter()
                observation, reward, terminated, truncated, info = await self._in_pool(
                    env.step, parsed.action
                )
                episode.env_s += time.perf_counter() - started
                episode.reward += float(reward)
                episode.num_tool_calls += int(bool(info.get("tool_call")))
                episode.num_invalid_actions += int(bool(info.get("invalid_action")))
                if terminated or truncated:
                    episode.success = bool(info.get("success", False))
                    episode.info = {k: v for k, v in info.items() if _is_json(v)}
            episode.step_rewards.append(float(reward))
            episode.append(self.chat.turn_end(generated), 0, turn)
            if terminated or truncated:
                episode.terminated, episode.truncated = terminated, truncated
                episode.truncation = "env" if truncated else None
                return
            if turn == self.max_turns:
                episode.truncated, episode.truncation = True, "turns"
                return
            reply = self.chat.observation(observation)
            if len(episode.token_ids) + len(reply) >= self.max_context_tokens:
                # No room for the reply and a next turn: the episode ends within budget.
                episode.truncated, episode.truncation = True, "context"
                return
            episode.append(reply, 0, turn)
            episode.observation_hashes.append(zlib.crc32(observation.encode()))

    def close(self) -> None:
        """Stop the env worker threads."""
        self._pool.shutdown(wait=True)


def _is_json(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None)))


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
