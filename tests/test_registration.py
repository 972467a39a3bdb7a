"""The registry: short names, versions, suggestions, third-party registration."""

from __future__ import annotations

import sys
import textwrap

import gymnasium as gym
import pytest

import agentrl
from agentrl.errors import EnvNotFound, InvalidArgument, RegistrationError
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


def test_registering_the_same_env_twice_is_a_no_op_but_a_clash_is_an_error(registry_sandbox):
    register("mylab/Count-v0", entry_point="tests.helpers:CountEnv")
    register("mylab/Count-v0", entry_point="tests.helpers:CountEnv")  # no warning, no error
    with pytest.raises(RegistrationError, match="already registered with entry point"):
        register("mylab/Count-v0", entry_point="agentrl.envs.guess:GuessEnv")


@pytest.mark.parametrize("name", [":guess", "guess:", " : "])
def test_malformed_module_prefix(name):
    with pytest.raises(EnvNotFound, match="malformed: expected 'package.module:name'"):
        resolve(name)


def test_versions_are_matched_exactly_not_by_punctuation(registry_sandbox):
    register("lab/Guessv1-v0", entry_point="agentrl.envs.guess:GuessEnv")
    assert resolve("guessv1") == "lab/Guessv1-v0"
    with pytest.raises(EnvNotFound, match="No env named 'guess-v1'"):
        resolve("guess-v1")


def test_unknown_constructor_arguments_name_the_accepted_ones():
    with pytest.raises(
        InvalidArgument,
        match="does not take the argument 'num_operand'. Did you mean 'num_operands'",
    ):
        agentrl.make("calculator", num_operand=2)
    with pytest.raises(InvalidArgument, match="the step budget is max_turns"):
        agentrl.make("guess", max_episode_steps=3)


def test_an_entry_point_that_cannot_be_imported_says_so(registry_sandbox):
    register("broken/Env-v0", entry_point="no_such_module:Env")
    with pytest.raises(RegistrationError, match="'no_such_module:Env' cannot be loaded"):
        agentrl.make("broken/Env-v0")


def test_a_broken_plugin_does_not_hide_the_others(registry_sandbox, tmp_path, monkeypatch):
    (tmp_path / "goodplug.py").write_text(
        'import agentrl\nagentrl.register("good/Count-v0", entry_point="tests.helpers:CountEnv")\n'
    )
    (tmp_path / "badplug.py").write_text("raise RuntimeError('boom')\n")
    for dist_name, module in (("aaa_bad", "badplug"), ("zzz_good", "goodplug")):
        dist = tmp_path / f"{dist_name}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[agentrl.envs]\n{module} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(agentrl.registration, "_plugins_loaded", False)
    assert "good/Count-v0" in agentrl.registered_ids()
    with pytest.raises(EnvNotFound, match="Plug-ins that failed to load: badplug.*boom"):
        resolve("nothing-like-this")
