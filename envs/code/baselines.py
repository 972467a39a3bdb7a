"""Scripted code-env policies: a solver that writes the right program, and answering
without code.

    obs, info = env.reset(seed=0)
    while not env.done:
        env.step(solver_policy(env))

`solver_policy` runs the problem's own solution program in the sandbox, then answers
with what it printed: it measures that every problem is solvable through the sandbox
within its limits (problems from `data_dir` have no program: it answers the gold answer
at once, an upper bound). `no_code_policy` answers at once with the last number in the
question, which is what answering without computing is worth.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agentrl.envs.code.env import CodeEnv

from agentrl.core import play  # noqa: F401 (re-exported: baselines are scored with it)
from agentrl.errors import ResetNeeded

Policy = Callable[[CodeEnv], str]


def _problem(env: CodeEnv):
    if env.problem is None:
        raise ResetNeeded("a code baseline needs an env that has been reset; call reset().")
    return env.problem


def solver_policy(env: CodeEnv) -> str:
    """Run the solution program; answer with its last printed line."""
    problem = _problem(env)
    if not problem.program:
        return f"answer[{problem.answer}]"
    if not env.cells:
        return f"python[{problem.program}]"
    printed = env.last_output.strip().splitlines()
    return f"answer[{printed[-1] if printed else 'no output'}]"


def no_code_policy(env: CodeEnv) -> str:
    """Answer at once with the question's last number."""
    numbers = re.findall(r"\d+(?:\.\d+)?", _problem(env).question)
    return f"answer[{numbers[-1] if numbers else 0}]"
