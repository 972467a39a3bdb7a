"""The env contract that every TextEnv inherits from the base class."""

from __future__ import annotations

import numpy as np
import pytest

from agentrl.core import Outcome, TextEnv, TextSpace, replay
from agentrl.errors import (
    EnvContractError,
    ForkNotSupported,
    InvalidActionType,
    InvalidArgument,
    InvalidResetOptions,
    InvalidSplit,
    ResetNeeded,
)
from tests.helpers import CountEnv


def test_reset_returns_task_statement_and_ids():
    env = CountEnv(split="valid")
    obs, info = env.reset(options={"task_index": 1})
    assert obs == "Start at 1; count up 3 times."
    assert info == {"task_id": "valid-1", "task_index": 1, "split": "valid", "turn": 0}


def test_same_seed_gives_same_task_and_seeds_spread_over_tasks():
    env = CountEnv()
    picks = [env.reset(seed=seed)[1]["task_id"] for seed in range(20)]
    again = [env.reset(seed=seed)[1]["task_id"] for seed in range(20)]
    assert picks == again
    assert len(set(picks)) > 3


def test_split_sizes_and_bad_split():
    assert CountEnv().split_sizes() == {"train": 8, "valid": 2, "test": 2}
    with pytest.raises(InvalidSplit, match="one of train, valid, test; got 'eval'"):
        CountEnv(split="eval")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task_index": 8}, r"in \[0, 8\)"),
        ({"task_index": "1"}, "integer"),
        ({"task": 1}, "Unknown reset option"),
    ],
)
def test_bad_reset_options_say_what_is_allowed(options, message):
    with pytest.raises(InvalidResetOptions, match=message):
        CountEnv().reset(options=options)


def test_malformed_action_is_an_observation_and_the_episode_goes_on():
    env = CountEnv()
    env.reset(options={"task_index": 0})
    obs, reward, terminated, truncated, info = env.step("hello")
    assert (obs, reward, terminated, truncated) == ("Expected count[1].", 0.0, False, False)
    assert info["invalid_action"] is True
    obs, _, _, _, info = env.step("count[1]")
    assert obs == "1" and info["invalid_action"] is False


def test_success_and_reward_at_termination():
    env = CountEnv()
    env.reset(options={"task_index": 0})
    for n in (1, 2):
        env.step(f"count[{n}]")
    _, reward, terminated, truncated, info = env.step("count[3]")
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    assert env.done


def test_budget_truncates_with_success_false():
    env = CountEnv(max_turns=2)
    env.reset(options={"task_index": 0})
    assert env.step("oops")[3] is False
    _, _, terminated, truncated, info = env.step("oops")
    assert (terminated, truncated, info["success"]) == (False, True, False)


def test_step_before_reset_or_after_end_raises_reset_needed():
    env = CountEnv()
    with pytest.raises(ResetNeeded, match="before reset"):
        env.step("count[1]")
    env.reset()
    env.step("stop")
    with pytest.raises(ResetNeeded, match="after the episode ended"):
        env.step("count[1]")


def test_non_string_action_is_a_type_error():
    env = CountEnv()
    env.reset()
    with pytest.raises(InvalidActionType, match="must be a str"):
        env.step(3)  # type: ignore[arg-type]


def test_termination_without_success_is_rejected():
    class Sloppy(CountEnv):
        def act(self, action):
            return Outcome("done", terminated=True)

    env = Sloppy()
    env.reset()
    with pytest.raises(EnvContractError, match="without success"):
        env.step("x")


def test_fork_is_independent_and_continues_identically():
    env = CountEnv()
    env.reset(options={"task_index": 2})
    env.step("count[3]")
    child = env.fork()
    assert child.step("count[4]")[0] == "4"
    assert env.history == ["count[3]"]  # the original did not move
    assert env.step("count[4]")[0] == "4"
    assert child.turn == env.turn == 2


def test_fork_refused_when_unsupported():
    class External(CountEnv):
        supports_fork = False

    env = External()
    env.reset()
    with pytest.raises(ForkNotSupported, match=r"Use agentrl.core.replay\(env, fresh_env\)"):
        env.fork()


def test_render_ansi_shows_last_observation():
    env = CountEnv(render_mode="ansi")
    obs, _ = env.reset(options={"task_index": 0})
    assert env.render() == obs
    assert CountEnv().render() is None
    with pytest.raises(ValueError, match="render_mode"):
        CountEnv(render_mode="human")


def test_text_space_accepts_any_characters_within_length():
    space = TextSpace(max_length=10)
    assert space.contains("héllo, wörld"[:10])
    assert not space.contains("x" * 11)
    assert not space.contains(b"bytes")
    assert space.contains(space.sample())


def test_subclass_must_implement_the_hooks():
    class Empty(TextEnv):
        pass

    with pytest.raises(NotImplementedError, match="must implement num_tasks"):
        Empty().reset()


def test_numpy_integers_are_accepted_and_bools_refused():
    env = CountEnv(max_turns=np.int64(4))
    assert env.max_turns == 4
    _, info = env.reset(seed=np.int64(3), options={"task_index": np.int32(2)})
    assert info["task_index"] == 2 and env.episode_seed == 3
    with pytest.raises(InvalidArgument, match="max_turns must be an integer; got True"):
        CountEnv(max_turns=True)
    with pytest.raises(InvalidArgument, match="max_turns must be a positive integer"):
        CountEnv(max_turns=0)


def test_options_must_be_a_mapping():
    with pytest.raises(InvalidResetOptions, match="options must be a dict"):
        CountEnv().reset(options="task_index=1")  # type: ignore[arg-type]


def test_replay_rebuilds_an_unseeded_episode_on_a_fresh_env():
    env = CountEnv()
    env.reset(seed=5)
    env.reset()  # no seed: the drawn seed is recorded so the episode can be rebuilt
    env.step("oops")
    env.step(f"count[{env.value + 1}]")
    fresh = replay(env, CountEnv())
    assert (fresh.task_index, fresh.value, fresh.turn, fresh.actions) == (
        env.task_index,
        env.value,
        2,
        env.actions,
    )
    with pytest.raises(InvalidArgument, match="fresh CountEnv on split 'train'"):
        replay(env, CountEnv(split="test"))
    with pytest.raises(ResetNeeded):
        replay(CountEnv(), CountEnv())


def test_fork_shares_what_the_env_declares_and_copies_the_rest():
    class Shared(CountEnv):
        shared_on_fork = ("table",)

    env = Shared()
    env.table, env.notes = {"big": list(range(5))}, ["a"]
    env.reset(seed=0)
    child = env.fork()
    assert child.table is env.table  # shared, as declared
    assert child.notes == env.notes and child.notes is not env.notes  # copied
    child.step("count[1]")
    assert child.turn == env.turn + 1
