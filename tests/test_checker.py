"""The env checker: every registered env passes; broken envs are caught."""

from __future__ import annotations

import copy
import random

import pytest

import agentrl
from agentrl.core import Outcome
from agentrl.errors import EnvContractError
from tests.helpers import CountEnv


@pytest.mark.parametrize("env_id", agentrl.registered_ids())
@pytest.mark.parametrize("split", agentrl.SPLITS)
def test_every_registered_env_passes_the_checker(env_id, split):
    agentrl.check_env(agentrl.make(env_id, split=split))


@pytest.mark.parametrize("recipe", sorted(agentrl.config.bundled_configs()))
def test_envs_as_the_bundled_recipes_configure_them_pass(recipe):
    config = agentrl.load_config(recipe)
    agentrl.check_env(agentrl.make(config.env.name, **config.env.env_kwargs()))


def test_single_turn_envs_can_pass():
    agentrl.check_env(agentrl.make("calculator", max_turns=1))


def test_a_correct_env_passes():
    agentrl.check_env(CountEnv())


class SharedFork(CountEnv):
    def fork(self):
        return self


class ShallowFork(CountEnv):
    def fork(self):
        return copy.copy(self)  # shares the history list with the original


class EndsOnGarbage(CountEnv):
    def act(self, action):
        if not action.startswith("count[") and action != "stop":
            return Outcome("Bye.", terminated=True, success=False)
        return super().act(action)


class NoReplay(CountEnv):
    def load_task(self, split, index):
        observation = super().load_task(split, index)
        self.value = index + int(random.random() * 1000)  # state that the seed does not fix
        return observation


class Overlapping(CountEnv):
    def task_id(self, split, index):
        return f"task-{index}"


class Unseeded(CountEnv):
    def load_task(self, split, index):
        super().load_task(split, index)
        return f"Start at {index}; lucky number {random.random()}."


class Fragile(CountEnv):
    def act(self, action):
        if not action.strip():
            raise ValueError("empty action")
        return super().act(action)


class Endless(CountEnv):
    def act(self, action):
        return Outcome("still going")

    def step(self, action):
        obs, reward, _, _, info = super().step(action)
        self._done = False
        return obs, reward, False, False, info


@pytest.mark.parametrize(
    ("env_class", "check", "detail"),
    [
        (SharedFork, "fork", "returned the env itself"),
        (ShallowFork, "fork", "the fork's transitions differ"),
        (EndsOnGarbage, "malformed actions", "must be answered as invalid"),
        (NoReplay, "replay", "did not rebuild the state"),
        (Overlapping, "splits", "task id 'task-0' is in 'train' and 'valid'"),
        (Unseeded, "determinism", "gave different tasks"),
        (Fragile, "malformed actions", "raised ValueError: empty action"),
        (Endless, "budget and success", "still running after max_turns"),
    ],
)
def test_broken_envs_are_reported_by_check(env_class, check, detail):
    with pytest.raises(EnvContractError) as caught:
        agentrl.check_env(env_class())
    message = str(caught.value)
    assert f"{check}:" in message and detail in message


def test_non_text_env_is_refused():
    import gymnasium as gym

    with pytest.raises(EnvContractError, match="expects an agentrl.TextEnv"):
        agentrl.check_env(gym.make("CartPole-v1"))  # type: ignore[arg-type]
