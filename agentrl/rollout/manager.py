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

With `branching` (ARPO / AEPO, `agentrl/rollout/branching.py`) a task's samples form a
tree: N paths start from the prompt, and after each observation a path whose next turn
is uncertain forks: the branch copies the tokens up to and including the observation
and the env (`fork()`, or a replay of the actions for envs without fork support), and
resamples that turn concurrently with everything else. Every leaf is an episode with
`parent`, `branch_turn` and `branch_token_index`. The branch's prompt is a prefix of
what its parent already computed, so the `hf` engine serves it from its prefix cache
(an engine with automatic prefix caching, such as vLLM's, does the same). Seeds and
branch draws derive from each path's place in the tree, not from timing; which paths
get a task's last branch slots can depend on which decisions come first.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import time
import traceback
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agentrl.core import TextEnv, replay
from agentrl.engines.base import Engine, GenerationRequest, SamplingParams
from agentrl.registration import make, resolve
from agentrl.rollout.branching import (
    BranchSettings,
    PathState,
    TreeBudget,
    decide,
    premonitor_globals,
    probe_entropy,
    uniform,
)
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
        if self.branching is not None:
            trees = [self._run_tree(t, limit, on_episode) for t in task_indices]
            return [leaf for leaves in await asyncio.gather(*trees) for leaf in leaves]

        async def one(task_index: int, sample_index: int) -> Episode:
            async with limit:
                episode = await self.run_episode(task_index, sample_index)
            if on_episode is not None:
                on_episode(episode)
            return episode

        jobs = [one(t, s) for t in task_indices for s in range(self.samples_per_task)]
        return list(await asyncio.gather(*jobs))

    async def _run_tree(
        self,
        task_index: int,
        limit: asyncio.Semaphore,
        on_episode: Callable[[Episode], None] | None,
    ) -> list[Episode]:
        """One task's tree: N roots, branches while budget is left, then top-ups to M."""
        assert self.branching is not None
        settings = self.branching
        tree = _Tree(task_index, TreeBudget(settings.samples))

        async def path(work: Any) -> None:
            async with limit:
                episode = await work
            tree.leaves.append(episode)
            if on_episode is not None:
                on_episode(episode)

        tree.spawn = lambda work: tree.pending.add(asyncio.ensure_future(path(work)))
        roots = settings.initial
        if settings.premonitor:  # AEPO: one probe episode sets the number of roots
            tree.budget.start(1)
            await path(self.run_episode(task_index, 0, tree=tree, may_branch=False))
            tree.roots = 1
            probe = tree.leaves[0]
            by_turn = probe.entropies_by_turn().values()
            turns = [probe_entropy(values, settings.probe_tokens) for values in by_turn]
            h_root = turns[0] if turns else 0.0
            h_tool = sum(turns[1:]) / len(turns[1:]) if len(turns) > 1 else h_root
            roots = premonitor_globals(h_root, h_tool, settings.samples)
        while True:
            for _ in range(tree.budget.start(roots - tree.roots)):
                tree.spawn(self.run_episode(task_index, tree.roots, tree=tree))
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

    async def run_episode(
        self,
        task_index: int,
        sample_index: int,
        *,
        tree: _Tree | None = None,
        may_branch: bool = True,
    ) -> Episode:
        """One episode of task `task_index`; never raises for env, parser or engine errors.

        Within a branching `tree`, `sample_index` numbers the roots and the episode may
        fork branches (unless `may_branch` is False)."""
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
            if tree is not None:
                episode.sample_index = tree.next_index()
                branch = _Path(f"s{sample_index}", sample_index, PathState(), may_branch)
                await self._turns(env, episode, task_index, branch.stream, 1, tree, branch)
            else:
                await self._turns(env, episode, task_index, sample_index)
        except Exception as exc:  # recorded on this episode; the batch goes on
            _record(episode, exc)
        finally:
            if env is not None:
                try:
                    await self._in_pool(env.close)
                except Exception as exc:
                    episode.error = (
                        episode.error or f"env.close() failed: {type(exc).__name__}: {exc}"
                    )
        return episode

    async def _run_branch(
        self,
        task_index: int,
        env: TextEnv | None,
        episode: Episode,
        tree: _Tree,
        branch: _Path,
        failure: Exception | None,
    ) -> Episode:
        """A branch from its branch turn on (its tokens and env are already copied)."""
        try:
            if failure is not None:
                raise failure
            assert env is not None and episode.branch_turn is not None
            await self._turns(
                env, episode, task_index, branch.stream, episode.branch_turn, tree, branch
            )
        except Exception as exc:
            _record(episode, exc)
        finally:
            if env is not None:
                with contextlib.suppress(Exception):
                    await self._in_pool(env.close)
        return episode

    def _fork(self, env: TextEnv) -> TextEnv:
        return env.fork() if env.supports_fork else replay(env, self._make_env())

    async def _maybe_branch(
        self,
        env: TextEnv,
        episode: Episode,
        task_index: int,
        turn: int,
        entropies: list[float],
        tree: _Tree,
        branch: _Path,
    ) -> None:
        """The decision after an observation: fork `copies` branches of this path at
        `turn` (before its generated tokens are appended) or go on alone."""
        assert self.branching is not None
        settings = self.branching
        h_turn = probe_entropy(entropies, settings.probe_tokens)
        state = branch.state
        if state.h_init is None:  # the first turn: H_init, nothing to decide
            state.h_init = episode.initial_entropy = h_turn
            return
        if turn == episode.branch_turn or not branch.may_branch or tree.budget.left == 0:
            return  # a branch's own first turn is the resample; no budget, no decision
        u = None
        if settings.threshold is None:  # one draw per (task, path, turn), not per timing
            u = uniform(self.seed, task_index, branch.key, turn)
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
                child_env = await self._in_pool(self._fork, env)
            except Exception as exc:  # the branch records it; the parent goes on
                failure = exc
            path = _Path(key, zlib.crc32(key.encode()), PathState(state.h_init, state.consecutive))
            tree.spawn(self._run_branch(task_index, child_env, child, tree, path, failure))

    async def _turns(
        self,
        env: TextEnv,
        episode: Episode,
        task_index: int,
        stream: int,
        first_turn: int = 1,
        tree: _Tree | None = None,
        branch: _Path | None = None,
    ) -> None:
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
                seed=_derive_seed(self.seed, task_index, stream, turn),
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
            if tree is not None and branch is not None:
                entropies = completion.entropies
                await self._maybe_branch(env, episode, task_index, turn, entropies, tree, branch)
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

    @functools.lru_cache(maxsize=64)  # noqa: B019 (a manager lives as long as its run)
    def _encode(self, text: str) -> tuple[int, ...]:
        """Tokens of a reply prefix, as the model would continue from them."""
        return tuple(self.tokenizer.encode(text, add_special_tokens=False))

    def close(self) -> None:
        """Stop the env worker threads."""
        self._pool.shutdown(wait=True)


@dataclass
class _Path:
    """A path of a branching tree: its key in the tree (seeds and draws derive from it),
    its sampling stream, and its branch-decision state."""

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
    spawn: Callable[[Any], None] = lambda work: None
    roots: int = 0
    created: int = 0

    def next_index(self) -> int:
        """Creation order: a parent's index is below its branches'."""
        self.created += 1
        return self.created - 1


def _record(episode: Episode, exc: BaseException) -> None:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({frame.filename}:{frame.lineno})" if frame else ""
    episode.error = f"{type(exc).__name__}: {exc}{where}"


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
