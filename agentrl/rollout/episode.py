"""Running one episode: reset, then turns of generate -> parse -> step, token-exact.

    runner = EpisodeRunner(engine, tokenizer, env_id, env_kwargs, split, chat, parser, ...)
    episode = await runner.run(task_index=3, sample_index=0)

Each turn asks the engine for the policy's reply (the whole episode so far as its
prompt), parses the text into an action (`agentrl.rollout.actions`), steps the env in a
worker thread and appends the observation as tokens. Limits: the env's `max_turns`,
`max_new_tokens` per turn, and `max_context_tokens` (then the episode is truncated).
An exception from the env, the parser or the engine ends the episode with `error` set;
`run` never raises for them. Every seed derives from (seed, task, stream, turn), so
given the same engine outputs an episode does not depend on scheduling.

`turns` takes a hook called after each turn is generated and before it is appended:
the branching rollout (`agentrl.rollout.tree`) decides there whether to fork.
"""

from __future__ import annotations

import asyncio
import functools
import time
import traceback
import zlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from agentrl.core import Action, TextEnv
from agentrl.engines.base import Engine, GenerationRequest, SamplingParams
from agentrl.registration import make
from agentrl.rollout.actions import ActionParser
from agentrl.rollout.chat import ChatFormat
from agentrl.rollout.trajectory import Episode

#: `hook(env, episode, turn, entropies)`: after a turn is generated, before it is appended.
TurnHook = Callable[[TextEnv, Episode, int, list[float]], Awaitable[None]]


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from integers, stable across runs and platforms."""
    value = 0x9E3779B9
    for part in parts:
        value = (value * 1_000_003 ^ (part & 0xFFFFFFFF)) & 0xFFFFFFFFFFFF
    return value % (2**31)


@dataclass(eq=False)  # compared and hashed by identity (`_encode` caches per runner)
class EpisodeRunner:
    """Plays episodes of one env and split against one engine."""

    engine: Engine
    tokenizer: Any
    env_id: str
    env_kwargs: dict[str, Any]
    split: str
    chat: ChatFormat
    parser: ActionParser
    stop_strings: tuple[str, ...]
    stop_token_ids: tuple[int, ...]
    sampling: dict[str, Any]
    """temperature, top_p, top_k."""
    max_turns: int
    max_new_tokens: int
    max_context_tokens: int
    pool: ThreadPoolExecutor
    seed: int = 0

    def make_env(self) -> TextEnv:
        return make(self.env_id, split=self.split, **self.env_kwargs)

    async def in_pool(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` in an env worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    async def run(self, task_index: int, sample_index: int) -> Episode:
        """One whole episode of task `task_index`; never raises for env, parser or engine
        errors (they end the episode with `error` set)."""
        env, episode = await self.start(task_index, sample_index)
        try:
            if env is not None:
                await self.turns(env, episode, task_index, sample_index)
        except Exception as exc:  # recorded on this episode; the batch goes on
            record_error(episode, exc)
        finally:
            await self.close_env(env, episode)
        return episode

    async def start(self, task_index: int, sample_index: int) -> tuple[TextEnv | None, Episode]:
        """A new env reset to the task, and the episode holding its prompt (or the error
        that stopped it, with the env closed and None in its place)."""
        env_seed = derive_seed(self.seed, task_index)
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
            env = await self.in_pool(self.make_env)
            observation, info = await self.in_pool(
                env.reset, seed=env_seed, options={"task_index": task_index}
            )
            episode.env_s += time.perf_counter() - started
            episode.task_id = info["task_id"]
            episode.episode_id = f"{episode.task_id}/s{sample_index}"
            episode.observation_hashes.append(zlib.crc32(observation.encode()))
            prompt = self.chat.prompt(observation)
            episode.append(prompt, 0, 0)
            episode.prompt_length = len(prompt)
        except Exception as exc:
            record_error(episode, exc)
            await self.close_env(env, episode)
            return None, episode
        return env, episode

    async def close_env(self, env: TextEnv | None, episode: Episode) -> None:
        """Close `env`; a failure is the episode's error unless it already has one."""
        if env is None:
            return
        try:
            await self.in_pool(env.close)
        except Exception as exc:
            episode.error = episode.error or f"env.close() failed: {type(exc).__name__}: {exc}"

    async def turns(
        self,
        env: TextEnv,
        episode: Episode,
        task_index: int,
        stream: int,
        first_turn: int = 1,
        hook: TurnHook | None = None,
    ) -> None:
        """Play turns `first_turn`.. until the episode ends; sampling seeds derive from
        (seed, task_index, stream, turn)."""
        for turn in range(first_turn, self.max_turns + 1):
            # The env may write the start of the reply (e.g. "click["); it joins the
            # episode with the model's tokens, after any branch decision copies it.
            prefix_text = env.response_prefix()
            prefix = list(self._encode(prefix_text)) if prefix_text else []
            room = self.max_context_tokens - len(episode.token_ids) - len(prefix)
            if room <= 0:
                episode.truncated, episode.truncation = True, "context"
                return
            params = SamplingParams(
                **self.sampling,
                max_new_tokens=min(self.max_new_tokens, room),
                stop=self.stop_strings,
                stop_token_ids=self.stop_token_ids,
                seed=derive_seed(self.seed, task_index, stream, turn),
            )
            started = time.perf_counter()
            [[completion]] = await self.engine.generate(
                [GenerationRequest([*episode.token_ids, *prefix], params)]
            )
            episode.generate_s += time.perf_counter() - started
            episode.entropy_exact &= completion.entropy_exact
            episode.decoded_tokens += len(completion.token_ids)
            episode.prefill_tokens += completion.prefill_tokens
            generated = completion.token_ids
            if hook is not None:
                await hook(env, episode, turn, completion.entropies)
            episode.append(prefix, 0, turn)
            episode.append(generated, 1, turn, completion.logprobs, completion.entropies)
            episode.num_turns = turn
            text = prefix_text + self.tokenizer.decode(generated, skip_special_tokens=True)
            parsed = self.parser.parse(text)
            terminated = truncated = False
            reward = 0.0
            if parsed.action is None:
                observation = parsed.error or "No action found."
                episode.num_invalid_actions += 1
            else:
                started = time.perf_counter()
                action = Action(parsed.action, parsed.name, parsed.arguments, reply=text)
                observation, reward, terminated, truncated, info = await self.in_pool(
                    env.step, action
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

    @functools.lru_cache(maxsize=64)  # noqa: B019 (a runner lives as long as its manager)
    def _encode(self, text: str) -> tuple[int, ...]:
        """Tokens of a reply prefix, as the model would continue from them."""
        return tuple(self.tokenizer.encode(text, add_special_tokens=False))


def record_error(episode: Episode, exc: BaseException) -> None:
    """`exc`, with where it was raised, as the episode's error."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({frame.filename}:{frame.lineno})" if frame else ""
    episode.error = f"{type(exc).__name__}: {exc}{where}"


def _is_json(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None)))
