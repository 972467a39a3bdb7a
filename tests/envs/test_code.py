"""The code env: generated problems and their splits, the sandboxed session, grading
without evaluation, the baselines, and GSM8K/MATH files."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from agentrl.envs.answers import parse_number
from agentrl.envs.code.baselines import no_code_policy, play, solver_policy
from agentrl.envs.code.env import CodeEnv
from agentrl.envs.code.tasks import FAMILIES, generated_problems

import agentrl
from agentrl.errors import InvalidArgument


def test_splits_are_disjoint_and_test_phrasings_are_held_out():
    problems = generated_problems()
    questions = {s: {p.question for p in problems[s]} for s in agentrl.SPLITS}
    assert (
        not questions["train"] & questions["test"] and not questions["train"] & questions["valid"]
    )
    assert not questions["valid"] & questions["test"]
    held_out = [phrasings[2].split("{")[0] for phrasings, _ in FAMILIES.values()]
    for p in problems["train"] + problems["valid"]:
        assert not any(p.question.startswith(h) and h for h in held_out), p.question
    assert {p.family for p in problems["test"]} == set(FAMILIES)


def test_numbers_are_read_never_evaluated():
    assert parse_number("42") == 42 and parse_number("1,234.5") == Fraction(2469, 2)
    assert parse_number(r"-\frac{3}{4}") == Fraction(-3, 4)
    assert parse_number(r"The final answer is \[ \boxed{-4289/45961} \]") == Fraction(-4289, 45961)
    assert parse_number("The answer is 42.") == 42 and parse_number("$87.79") == Fraction(8779, 100)
    assert parse_number("The answer is 42.", lenient=False) is None
    # arithmetic is computed by a small interpreter of numbers and operators; anything
    # else (names, calls) is refused, so nothing is run and nothing can forge a reward
    assert parse_number("2^10", lenient=False) == 1024 == parse_number(r"\boxed{2^{10}}")
    assert parse_number(r"\frac{1}{2} + 3 \cdot 2") == Fraction(13, 2)
    assert parse_number("The answer is (2 + 3) * 4.") == 20
    assert parse_number("__import__('os').getpid()") is None and parse_number("3/0") is None
    assert parse_number("abs(-5)", lenient=False) is None
    # nothing can take the grader's memory or time
    assert parse_number("1e999999999") is None and parse_number("9**9**9") is None
    assert parse_number("(2**10)**(10**9)") is None and parse_number("10**999") == 10**999


def test_run_then_answer():
    env = agentrl.make("code", split="test")
    env.reset(options={"task_index": 0})
    obs, _, terminated, _, info = env.step(f"python[{env.problem.program}]")
    assert obs.startswith("<result>\n") and obs.endswith("\n</result>")
    assert not terminated and info["tool_call"] == "python" and info["tool_calls.python"] == 1
    printed = obs.split("\n")[1]
    *_, info = env.step(f"answer[{printed}]")
    assert info["success"] and info["family"] == env.problem.family


def test_the_session_keeps_variables_within_an_episode_only():
    env = agentrl.make("code")
    env.reset(seed=0)
    env.step("python[x = 41]")
    assert env.step("python[print(x + 1)]")[0] == "<result>\n42\n</result>"
    child = env.fork()  # a branch has its parent's state at the fork point
    assert child.step("python[print(x * 2)]")[0] == "<result>\n82\n</result>"
    assert child.cells[:2] == env.cells and child.problems is env.problems
    env.reset(seed=1)
    assert "NameError" in env.step("python[print(x)]")[0]  # a new episode starts empty


def test_errors_and_timeouts_are_observations():
    env = CodeEnv(timeout_s=1.0)
    env.reset(seed=0)
    obs, _, terminated, _, info = env.step("python[1 / 0]")
    assert "ZeroDivisionError" in obs and info["tool_error"] and not terminated
    obs, *_, info = env.step("python[while True:\n    pass]")
    assert "Timed out" in obs and info["timed_out"]
    obs, *_, info = env.step("python[   ]")
    assert info["invalid_action"] and "empty" in obs
    obs, *_, info = env.step("run[1]")
    assert info["invalid_action"] and "<python>" in obs


def test_the_gold_answer_is_not_in_the_sandbox():
    env = agentrl.make("code", split="test")
    env.reset(options={"task_index": 3})
    gold = env.problem.answer
    code = (  # looked for inside: the output budget would hide most of what is seen
        "import os\n"
        "seen = [repr(dict(os.environ)), repr(os.listdir('/tmp')), repr(os.listdir('.'))]\n"
        "for p in os.listdir('/proc'):\n"
        "    if p.isdigit():\n"
        "        try:\n"
        "            raw = open(f'/proc/{p}/cmdline', 'rb').read()\n"
        "            seen.append(raw.decode(errors='replace'))\n"
        "        except OSError:\n"
        "            pass\n"
        f"print('looked at', len(seen), 'found', any({gold!r} in s for s in seen))"
    )
    obs = env.step(f"python[{code}]")[0]
    assert "found False" in obs and "looked at" in obs
    assert (
        "agentrl" not in env.step("python[import agentrl]")[0].split("ModuleNotFoundError")[0][:0]
    )
    assert "ModuleNotFoundError" in env.step("python[import agentrl.envs.code.tasks]")[0]


def test_a_cell_that_timed_out_is_not_replayed_and_draws_repeat():
    env = CodeEnv(timeout_s=1.0)
    env.reset(seed=0)
    obs = env.step("python[import time\ntime.sleep(5)]")[0]
    assert "Timed out" in obs and "not kept" in obs and env.cells == []
    assert env.step("python[print(6 * 7)]")[0] == "<result>\n42\n</result>"
    first = env.step("python[import random\nr = random.random()\nprint(r)]")[0]
    assert env.step("python[print(r)]")[0] == first  # replayed with the same seed


def test_answers_are_graded_within_tolerance():
    env = CodeEnv(split="test")
    index = next(i for i, p in enumerate(env.problems["test"]) if p.family == "conversion")
    env.reset(options={"task_index": index})
    gold = float(env.problem.answer)
    assert env.step(f"answer[\\boxed{{{gold + 0.004:.3f}}}]")[1] == 1.0
    env.reset(options={"task_index": index})
    assert env.step(f"answer[{gold + 0.05:.2f}]")[1] == 0.0
    env.reset(options={"task_index": index})
    *_, info = env.step("answer[about twelve]")
    assert not info["success"] and not info["parsed"]


def test_solver_solves_and_guessing_does_not():
    env = agentrl.make("code", split="valid")
    tasks = range(0, env.num_tasks("valid"), 4)
    assert all(play(env, solver_policy, i)["return"] == 1.0 for i in tasks)
    guesses = [play(env, no_code_policy, i)["return"] for i in tasks]
    assert sum(guesses) / len(guesses) < 0.05


def test_settings_are_checked():
    with pytest.raises(InvalidArgument, match="sandbox must be one of bwrap, docker, process"):
        CodeEnv(sandbox="firejail")
    with pytest.raises(InvalidArgument, match="workers"):
        CodeEnv(workers=0)


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_gsm8k_fixture_loads_and_plays(tmp_path):
    solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    solution += "Altogether 48+24 = <<48+24=72>>72.\n#### 72"
    write(
        tmp_path / "train.jsonl",
        [{"question": f"Q{i}?", "answer": f"so\n#### {i}"} for i in range(20)],
    )
    write(
        tmp_path / "test.jsonl",
        [
            {
                "question": "Natalia sold clips to 48 friends ... How many clips?",
                "answer": solution,
            },
            {
                "problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?",
                "solution": "It is $\\boxed{\\frac{3}{4}}$.",
            },
        ],
    )
    env = agentrl.make("code", data_dir=str(tmp_path), split="test")
    assert env.split_sizes() == {"train": 18, "valid": 2, "test": 2}
    env.reset(options={"task_index": 0})
    assert env.step("python[print(48 + 48 // 2)]")[0] == "<result>\n72\n</result>"
    assert env.step("answer[72]")[1] == 1.0
    env.reset(options={"task_index": 1})
    assert env.step("answer[0.75]")[1] == 1.0  # 3/4 either way
    agentrl.check_env(agentrl.make("code", data_dir=str(tmp_path), split="valid"))


def test_bad_files_are_named(tmp_path):
    with pytest.raises(InvalidArgument, match="is not one"):
        CodeEnv(data_dir=tmp_path / "missing")
    write(tmp_path / "train.jsonl", [{"question": "q", "answer": "#### 1"}] * 20)
    with pytest.raises(InvalidArgument, match="no test.jsonl"):
        CodeEnv(data_dir=tmp_path)
    write(tmp_path / "test.jsonl", [{"question": "q", "answer": "#### many"}])
    with pytest.raises(InvalidArgument, match=r"test.jsonl:1: the answer 'many' is not a number"):
        CodeEnv(data_dir=tmp_path)
