"""The Guess tutorial env."""

from __future__ import annotations

import re

import pytest

import agentrl


def binary_search(env) -> tuple[float, bool, int]:
    """Play the midpoint the env's hints allow (valid_actions()[middle]) until the end."""
    while True:
        actions = env.valid_actions()
        _, reward, terminated, truncated, info = env.step(actions[len(actions) // 2])
        if terminated or truncated:
            return reward, info["success"], env.turn


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_binary_search_solves_every_task(split):
    env = agentrl.make("guess", split=split)
    for index in range(env.num_tasks(split)):
        env.reset(options={"task_index": index})
        reward, success, turns = binary_search(env)
        assert (reward, success) == (1.0, True) and turns <= 7


def test_hints_point_to_the_secret():
    env = agentrl.make("guess")
    env.reset(options={"task_index": 0})
    high, secret = env.high, env.secret
    low_guess = "guess[1]" if secret > 1 else f"guess[{high}]"
    obs = env.step(low_guess)[0]
    assert obs == ("Higher." if secret > 1 else "Lower.")
    obs, reward, terminated, _, info = env.step(f"guess[{secret}]")
    assert obs.startswith("Correct!") and reward == 1.0 and terminated and info["success"]


def test_out_of_range_and_malformed_guesses_explain_the_format():
    env = agentrl.make("guess")
    obs, _ = env.reset(seed=1)
    high = int(re.search(r"from 1 to (\d+)", obs).group(1))
    obs, _, _, _, info = env.step(f"guess[{high + 1}]")
    assert "out of range" in obs and info["invalid_action"]
    obs, _, _, _, info = env.step("I think 5")
    assert "Reply with guess[N]" in obs and info["invalid_action"]
    assert env.step(" GUESS[ 1 ] ")[4]["invalid_action"] is False


def test_splits_are_disjoint_by_content_and_cover_every_pair():
    env = agentrl.make("guess")
    ids = {
        split: {env.task_id(split, i) for i in range(env.num_tasks(split))}
        for split in agentrl.SPLITS
    }
    assert not (ids["train"] & ids["test"]) and not (ids["train"] & ids["valid"])
    assert sum(map(len, ids.values())) == 10 + 20 + 50 + 100
