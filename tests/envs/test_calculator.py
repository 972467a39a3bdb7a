"""The Calculator env."""

from __future__ import annotations

import pytest
from agentrl.envs.calculator.env import _tasks

import agentrl


def test_calculate_then_answer_solves_the_task():
    env = agentrl.make("calculator", split="test")
    env.reset(seed=4)
    obs, reward, terminated, _, info = env.step(f"calculate[{env.expression}]")
    assert not terminated and reward == 0.0 and info["tool_call"] == "calculate"
    obs, reward, terminated, _, info = env.step(f"answer[{obs}]")
    assert (obs, reward, terminated, info["success"]) == ("Correct.", 1.0, True, True)


def test_a_wrong_answer_ends_the_episode_with_zero():
    env = agentrl.make("calculator")
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(f"answer[{env.result + 1}]")
    assert reward == 0.0 and terminated and not info["success"]
    assert obs == f"Wrong: the answer was {env.result}."


def test_tool_errors_are_observations_and_malformed_actions_explain_the_format():
    env = agentrl.make("calculator")
    env.reset(seed=0)
    obs, _, terminated, _, info = env.step("calculate[1 / 0]")
    assert (
        obs == "Calculator error: division by zero."
        and not terminated
        and not info["invalid_action"]
    )
    obs, _, _, _, info = env.step("answer[forty]")
    assert "needs a number" in obs and info["invalid_action"]
    obs, _, _, _, info = env.step("the answer is 5")
    assert "Use calculate[expression]" in obs and info["invalid_action"]


def test_no_expression_is_in_two_splits():
    tasks = _tasks(3, 99)
    assert not set(tasks["train"]) & set(tasks["test"])
    assert not set(tasks["train"]) & set(tasks["valid"])
    assert [len(tasks[s]) for s in agentrl.SPLITS] == [2000, 250, 250]


def test_too_small_task_space_is_refused():
    with pytest.raises(ValueError, match="allow only 12 expressions"):
        agentrl.make("calculator", num_operands=2, max_operand=2)
