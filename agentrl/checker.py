"""`check_env`: gymnasium's env checker, then the checks agentrl's contract adds.

    from agentrl import check_env, make
    check_env(make("guess"))          # raises EnvContractError listing every failure

After `gymnasium.utils.env_checker.check_env` (spaces, reset/step signatures, seeding),
it checks what rollouts and branching rely on:

- splits: all three are non-empty, task ids are unique and no id is in two splits;
- determinism: the same seed gives the same task and, under the same actions, the
  same observations, rewards and ends;
- fork: a fork and its original, stepped in turns with the same actions, both give
  the transitions of an uninterrupted episode (or `fork()` raises `ForkNotSupported`
  when the env declares `supports_fork = False`);
- replay: `replay(env, fresh_env)` rebuilds an episode's state on a fresh env;
- malformed actions: garbage strings are answered as invalid (`info["invalid_action"]`)
  without ending the episode, and mangled valid actions never raise;
- budget: random valid play ends within `max_turns` steps, with `info["success"]`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

from agentrl.core import SPLITS, TextEnv, replay
from agentrl.errors import EnvContractError, ForkNotSupported

MALFORMED_ACTIONS = ("", "   ", "?!#$%", "[]", "\x00\n\t", "é" * 300, "x" * 5000)

Transition = tuple[str, str, float, bool, bool]  # action, observation, reward, ends


def check_env(
    env: TextEnv, seeds: tuple[int, ...] = (0, 1, 2), max_split_ids: int = 100_000
) -> None:
    """Run every check on `env`; raise `EnvContractError` naming each one that failed.

    Args:
        env: the env to check (it is reset and stepped; its state afterwards is arbitrary).
        seeds: reset seeds to play episodes from.
        max_split_ids: splits larger than this are checked on their first ids only.
    """
    if not isinstance(env, TextEnv):
        raise EnvContractError(
            f"check_env expects an agentrl.TextEnv; got {type(env).__name__}. "
            "Subclass agentrl.TextEnv (see docs/adding-an-env.md)."
        )
    checks: list[tuple[str, Callable[[], None]]] = [
        ("gymnasium check_env", lambda: _gymnasium(env)),
        ("splits", lambda: _splits(env, max_split_ids)),
        ("determinism", lambda: _determinism(env, seeds)),
        ("fork", lambda: _fork(env, seeds)),
        ("replay", lambda: _replay(env, seeds)),
        ("malformed actions", lambda: _malformed(env, seeds[0])),
        ("budget and success", lambda: _budget(env, seeds)),
    ]
    failures = []
    for name, check in checks:
        try:
            check()
        except Exception as exc:  # every failure is reported, not only the first
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
    if failures:
        lines = "\n".join(f"  - {f}" for f in failures)
        raise EnvContractError(f"{type(env).__name__} breaks the env contract:\n{lines}")


def _gymnasium(env: TextEnv) -> None:
    budget = env.max_turns
    # gymnasium's step check fails an env that truncates after one step; single-turn
    # envs are common here, so the check runs with a budget of at least two.
    env.max_turns = max(2, budget)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Without a spec (an env built directly, not by make) gymnasium cannot
            # re-create the env in other render modes and only warns; the render modes
            # are still checked for every registered env, built through make.
            gymnasium_check_env(env, skip_render_check=env.spec is None, skip_close_check=True)
    finally:
        env.max_turns = budget
    if caught:
        messages = (re.sub(r"\x1b\[[0-9;]*m", "", str(w.message)) for w in caught)
        raise EnvContractError("; ".join(messages))


def _splits(env: TextEnv, max_ids: int) -> None:
    owner: dict[str, str] = {}
    for split in SPLITS:
        size = env.num_tasks(split)  # type: ignore[arg-type]
        if size < 1:
            raise EnvContractError(f"split {split!r} has no tasks")
        for index in range(min(size, max_ids)):
            task_id = env.task_id(split, index)  # type: ignore[arg-type]
            if task_id in owner:
                where = "twice in" if owner[task_id] == split else f"in {owner[task_id]!r} and"
                raise EnvContractError(f"task id {task_id!r} is {where} {split!r}")
            owner[task_id] = split


Policy = Callable[[TextEnv], str]


def random_policy(seed: int) -> Policy:
    """A random valid action, or a random string when the env lists none."""
    rng = np.random.default_rng(seed)

    def act(env: TextEnv) -> str:
        actions = env.valid_actions()
        if actions:
            return actions[int(rng.integers(len(actions)))]
        return env.action_space.sample()

    return act


def first_action_policy(env: TextEnv) -> str:
    """The first valid action: for most envs one that keeps the episode going."""
    actions = env.valid_actions()
    return actions[0] if actions else env.action_space.sample()


def _play(env: TextEnv, policy: Policy, steps: int) -> list[Transition]:
    """Up to `steps` transitions from the env's current state; stops when it ends."""
    transitions: list[Transition] = []
    while not env.done and len(transitions) < steps:
        action = policy(env)
        observation, reward, terminated, truncated, _ = env.step(action)
        transitions.append((action, observation, reward, terminated, truncated))
    return transitions


def _determinism(env: TextEnv, seeds: tuple[int, ...]) -> None:
    for seed in seeds:
        runs = []
        for _ in range(2):
            observation, info = env.reset(seed=seed)
            env.action_space.seed(seed)
            play = _play(env, random_policy(seed), env.max_turns)
            runs.append((observation, info.get("task_id"), play))
        if runs[0][:2] != runs[1][:2]:
            raise EnvContractError(
                f"reset(seed={seed}) gave different tasks: {runs[0][1]!r} then {runs[1][1]!r}"
            )
        if runs[0][2] != runs[1][2]:
            raise EnvContractError(f"seed {seed}: the same actions gave different transitions")


def _fork(env: TextEnv, seeds: tuple[int, ...]) -> None:
    if not type(env).supports_fork:
        env.reset(seed=seeds[0])
        try:
            env.fork()
        except ForkNotSupported:
            return
        raise EnvContractError("supports_fork is False but fork() did not raise ForkNotSupported")
    policies: list[tuple[str, Callable[[int], Policy]]] = [
        ("random", random_policy),
        ("first-action", lambda seed: first_action_policy),
    ]
    for seed in seeds:
        for name, make_policy in policies:
            for prefix in (0, min(2, env.max_turns - 1)):
                # The reference: one uninterrupted episode, prefix then continuation.
                env.reset(seed=seed)
                head = _play(env, make_policy(seed), prefix)
                if env.done:
                    continue
                tail = _play(env, make_policy(seed + 1), env.max_turns)
                actions = [t[0] for t in tail]
                where = f"seed {seed}, {name} play, fork after {prefix} steps"

                env.reset(seed=seed)
                for transition in head:
                    env.step(transition[0])
                child = env.fork()
                if child is env:
                    raise EnvContractError("fork() returned the env itself, not a copy")
                # Step the two in turns: any state they share shows up as a difference
                # from the uninterrupted reference.
                child_run, original_run = [], []
                for action in actions:
                    for copy_, run in ((child, child_run), (env, original_run)):
                        if copy_.done:  # ended early: the runs' lengths differ below
                            continue
                        observation, reward, terminated, truncated, _ = copy_.step(action)
                        run.append((action, observation, reward, terminated, truncated))
                if child_run != tail:
                    raise EnvContractError(
                        f"{where}: the fork's transitions differ from the original's"
                    )
                if original_run != tail:
                    raise EnvContractError(f"{where}: stepping the fork changed the original")


def _replay(env: TextEnv, seeds: tuple[int, ...]) -> None:
    fresh = env.spec.make() if env.spec is not None else type(env)(split=env.split)
    fresh.max_turns = env.max_turns
    for seed in seeds:
        env.reset(seed=seed)
        _play(env, first_action_policy, min(2, env.max_turns - 1))
        if env.done:
            continue
        replay(env, fresh)
        action = first_action_policy(env)
        if fresh.step(action)[:4] != env.step(action)[:4]:
            raise EnvContractError(f"seed {seed}: replay(env, fresh_env) did not rebuild the state")


def _malformed(env: TextEnv, seed: int) -> None:
    for action in (*MALFORMED_ACTIONS, env.action_space.sample()):
        env.reset(seed=seed)
        _, _, terminated, _, info = _step_answers(env, action)
        if info.get("invalid_action") is not True or terminated:
            raise EnvContractError(
                f"step({action[:20]!r}) must be answered as invalid (info['invalid_action'] "
                f"True, episode going on); got terminated={terminated}, info={info!r}"
            )
    # Mangled variants of valid actions may or may not be valid, but must be answered.
    env.reset(seed=seed)
    for valid in env.valid_actions()[:3]:
        name = valid.split("[", 1)[0]
        for action in (f"{name}[]", f"{name}[{'9' * 5000}]", f"{name}[[[x]]", f"{name}[é\x00]"):
            env.reset(seed=seed)
            _step_answers(env, action)


def _step_answers(env: TextEnv, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
    try:
        result = env.step(action)
    except Exception as exc:
        raise EnvContractError(f"step({action[:20]!r}) raised {type(exc).__name__}: {exc}") from exc
    observation, reward, _, _, info = result
    if not isinstance(observation, str) or not observation:
        raise EnvContractError(f"step({action[:20]!r}) answered {observation!r}, not a message")
    _check_number(reward, f"step({action[:20]!r}) reward")
    if not isinstance(info.get("invalid_action"), bool):
        raise EnvContractError("info['invalid_action'] must be a bool on every step")
    return result


def _budget(env: TextEnv, seeds: tuple[int, ...]) -> None:
    for seed in seeds:
        env.reset(seed=seed)
        policy = random_policy(seed)
        info: dict[str, Any] = {}
        terminated = truncated = False
        for turn in range(1, env.max_turns + 1):
            _, reward, terminated, truncated, info = env.step(policy(env))
            _check_number(reward, "reward")
            if truncated and turn < env.max_turns:
                raise EnvContractError(
                    f"truncated at turn {turn} before the budget {env.max_turns}"
                )
            if terminated or truncated:
                break
        if not (terminated or truncated):
            raise EnvContractError(
                f"seed {seed}: episode still running after max_turns={env.max_turns}"
            )
        if not isinstance(info.get("success"), bool):
            raise EnvContractError(
                f"seed {seed}: info['success'] missing at episode end; got {info!r}"
            )


def _check_number(value: Any, what: str) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EnvContractError(f"{what} must be a finite float; got {value!r}")
