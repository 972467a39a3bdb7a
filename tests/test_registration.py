"""The registry: short names, versions, suggestions, third-party registration."""

from __future__ import annotations

import sys
import textwrap

import gymnasium as gym
import pytest

import agentrl
from agentrl.errors import EnvNotFound, RegistrationError
from agentrl.registration import register, resolve
from tests.helpers import CountEnv


@pytest.mark.parametrize(
    "name", ["guess", "Guess", "GUESS", "guess-v0", "agentrl/Guess-v0", "agentrl/guess"]
)
def test_names_resolve_case_insensitively(name):
    assert resolve(name) == "agentrl/Guess-v0"


def test_make_passes_split_and_kwargs():
    env = agentrl.make("calculator", split="test", num_operands=2, max_turns=3)
    assert env.split == "test" and env.num_operands == 2 and env.max_turns == 3
    obs, _ = env.reset(seed=0)
    assert obs.startswith("Compute ")


def test_typo_gets_a_suggestion():
    with pytest.raises(EnvNotFound, match=r"Did you mean 'agentrl/Guess-v0'\?") as caught:
        agentrl.make("gues")
    assert caught.value.suggestions[0] == "agentrl/Guess-v0"
    with pytest.raises(EnvNotFound, match="Did you mean 'agentrl/Calculator-v0'"):
        resolve("calculater")


def test_unrelated_name_lists_the_registry():
    with pytest.raises(EnvNotFound, match="Registered envs: .*agentrl/Guess-v0") as caught:
        resolve("zzzzzz")
    assert caught.value.suggestions == []


def test_short_name_picks_the_latest_version(registry_sandbox):
    register("agentrl/Guess-v3", entry_point="agentrl.envs.guess:GuessEnv")
    assert resolve("guess") == "agentrl/Guess-v3"
    assert resolve("guess-v0") == "agentrl/Guess-v0"


def test_same_name_in_two_namespaces_is_ambiguous(registry_sandbox):
    register("mylab/Guess-v0", entry_point="agentrl.envs.guess:GuessEnv")
    with pytest.raises(EnvNotFound, match="ambiguous.*agentrl/Guess-v0, mylab/Guess-v0"):
        resolve("guess")
    assert resolve("mylab/guess") == "mylab/Guess-v0"


@pytest.mark.parametrize(
    ("env_id", "entry_point", "message"),
    [
        ("Count-v0", "tests.helpers:CountEnv", "needs a namespace and a version"),
        ("mylab/Count", "tests.helpers:CountEnv", "needs a namespace and a version"),
        ("mylab/Count-v0", "tests.helpers.CountEnv", "expected 'package.module:ClassName'"),
        ("CartPole-v1", "tests.helpers:CountEnv", "malformed|needs a namespace"),
    ],
)
def test_bad_registrations_are_refused(registry_sandbox, env_id, entry_point, message):
    with pytest.raises(RegistrationError, match=message):
        register(env_id, entry_point=entry_point)


def test_gymnasium_ids_of_other_libraries_are_not_taken_over(registry_sandbox):
    gym.register("other/Thing-v0", entry_point="tests.helpers:CountEnv")
    with pytest.raises(RegistrationError, match="already registered by another library"):
        register("other/Thing-v0", entry_point="tests.helpers:CountEnv")


def test_registered_env_works_with_gymnasium_make_unwrapped(registry_sandbox):
    register("mylab/Count-v0", entry_point="tests.helpers:CountEnv", kwargs={"target": 2})
    env = gym.make("mylab/Count-v0")
    assert isinstance(env, CountEnv) and env.target == 2  # no wrappers: fork() is reachable
    assert agentrl.make("count", target=5).target == 5


def test_entry_point_that_is_not_a_text_env_is_rejected(registry_sandbox):
    register("mylab/Cart-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv")
    with pytest.raises(RegistrationError, match="not an agentrl.TextEnv subclass"):
        agentrl.make("cart")


def test_module_prefix_imports_a_third_party_module(registry_sandbox, tmp_path, monkeypatch):
    (tmp_path / "labenvs.py").write_text(
        textwrap.dedent("""
        import agentrl
        agentrl.register("lab/Count-v0", entry_point="tests.helpers:CountEnv")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "labenvs", raising=False)
    env = agentrl.make("labenvs:count")
    assert isinstance(env, CountEnv)
    with pytest.raises(EnvNotFound, match="Cannot import 'nosuchmodule'"):
        resolve("nosuchmodule:count")


def test_entry_point_plugins_load_on_a_miss(registry_sandbox, tmp_path, monkeypatch):
    (tmp_path / "plugenvs.py").write_text(
        'import agentrl\nagentrl.register("plug/Count-v0", entry_point="tests.helpers:CountEnv")\n'
    )
    dist = tmp_path / "plugenvs-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugenvs\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[agentrl.envs]\nplugenvs = plugenvs\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "plugenvs", raising=False)
    monkeypatch.setattr(agentrl.registration, "_plugins_loaded", False)
    assert resolve("count") == "plug/Count-v0"
    assert "plug/Count-v0" in agentrl.registered_ids()


def test_list_envs_reports_split_sizes_and_descriptions():
    infos = {info.id: info for info in agentrl.list_envs()}
    guess = infos["agentrl/Guess-v0"]
    assert guess.split_sizes == {"train": 144, "valid": 18, "test": 18}
    assert guess.description.startswith("Find a secret whole number")
    assert guess.name == "guess" and guess.max_turns == 10 and guess.supports_fork
