"""Tool-integrated reasoning: solve a problem by running Python, then answer once.

    env = agentrl.make("code")                       # generated problems, bubblewrap sandbox
    obs, info = env.reset(seed=0)     # "Problem: Compute the sum of the digits of 87! ..."
    env.step("python[import math\\nprint(sum(map(int, str(math.factorial(87)))))]")
    # "<result>\\n576\\n</result>"
    env.step("answer[576]")           # reward 1.0, terminated

The agent writes `<python>code</python>` (ARPO's format; bracket and JSON tool calls work
too) and reads `<result>\\nstdout and stderr\\n</result>`, cut to the sandbox's output
budget. Code runs in the sandbox (`agentrl.tools.sandbox`, bubblewrap by default) as a
session: each call replays the episode's earlier cells in a fresh child first, so
variables persist across turns, nothing persists across episodes, and a forked episode
(ARPO/AEPO branching) has its parent's state. The answer (`<answer>...</answer>`, a
`\\boxed{}` inside it counts) is read as a number (`agentrl.envs.answers.parse_number`:
integers, decimals, fractions; never evaluated) and compared with the gold answer
within the problem's tolerance; `success` = correct. The gold answer is nowhere in the
sandbox: it sees only the code.

Problems are generated (`tasks.py`) or, with `data_dir`, GSM8K/MATH-style JSON lines
(`data.py`).
"""

from __future__ import annotations

import atexit
import threading
import time
import zlib
from pathlib import Path
from typing import Any, ClassVar

from agentrl.envs.answers import parse_number
from agentrl.envs.code.data import load_problems
from agentrl.envs.code.tasks import Problem, generated_problems
from agentrl.tools.base import Tool, Toolbox, ToolResult, ToolStats, split_call
from agentrl.tools.sandbox import BACKENDS, Limits, Sandbox, make_sandbox

from agentrl.core import InvalidAction, Outcome, Split, TextEnv
from agentrl.errors import InvalidArgument

_SANDBOXES: dict[tuple[Any, ...], Sandbox] = {}
_LOCK = threading.Lock()


def shared_sandbox(backend: str, workers: int, limits: Limits) -> Sandbox:
    """One sandbox per (backend, workers, limits) in a process, shared by every env."""
    key = (backend, workers, limits)
    with _LOCK:
        if key not in _SANDBOXES:
            _SANDBOXES[key] = make_sandbox(backend, workers=workers, limits=limits)
        return _SANDBOXES[key]


@atexit.register
def _close_sandboxes() -> None:
    for sandbox in _SANDBOXES.values():
        sandbox.close()


class CodeEnv(TextEnv):
    """Solve a problem with `python[code]` calls, then `answer[number]` once."""

    default_max_turns = 6
    action_format = "tags"
    shared_on_fork = ("problems", "_tools")  # a branch copies its cells, not the problems
    action_examples: ClassVar[dict[str, str]] = {"python": "print(2 ** 10)", "answer": "1024"}
    instructions = (
        "Solve the problem. You may run Python by writing code inside <python> and "
        "</python>: what it prints comes back between <result> and </result>, and "
        "variables persist between runs. Give the final answer, a number, inside <answer> "
        "and </answer>, e.g. <answer> 1024 </answer>."
    )

    def __init__(
        self,
        split: Split = "train",
        data_dir: str | Path | None = None,
        seed: int = 0,
        sandbox: str = "bwrap",
        workers: int = 2,
        timeout_s: float = 10.0,
        memory_mb: int = 1024,
        output_chars: int = 2000,
        max_turns: int | None = None,
        render_mode: str | None = None,
        action_prefix: bool = False,
    ) -> None:
        super().__init__(split=split, max_turns=max_turns, render_mode=render_mode)
        if not isinstance(action_prefix, bool):
            raise InvalidArgument(f"action_prefix must be true or false; got {action_prefix!r}.")
        self.action_prefix = action_prefix
        if sandbox not in BACKENDS:
            raise InvalidArgument(
                f"sandbox must be one of {', '.join(BACKENDS)}; got {sandbox!r}. 'bwrap' "
                "isolates code with bubblewrap (the default); `agentrl doctor` says which "
                "work on this machine."
            )
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidArgument(f"workers must be a positive integer; got {workers!r}.")
        self.sandbox_backend, self.workers = sandbox, workers
        self.limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, output_chars=output_chars)
        self.data_dir = data_dir
        self.problems = generated_problems(seed) if data_dir is None else load_problems(data_dir)
        self.problem: Problem | None = None
        self.cells: list[str] = []
        self.last_output = ""  # the last run's stdout
        self.tool_stats = ToolStats()
        self._tools: Toolbox | None = None

    @property
    def sandbox(self) -> Sandbox:
        """The shared sandbox (started on first use)."""
        return shared_sandbox(self.sandbox_backend, self.workers, self.limits)

    @property
    def tools(self) -> Toolbox:  # type: ignore[override]
        """A `python(code)` tool, for its schema (JSON tool calls) and for use outside an
        episode; within one, `act` runs code with the episode's earlier cells."""
        if self._tools is None:
            sandbox = self.sandbox

            def python(code: str) -> str:
                """Run Python code and return what it prints.

                Args:
                    code: a Python program; print what you want to see
                """
                return sandbox.run(code).observation()

            self._tools = Toolbox([Tool.from_function(python, timeout_s=None)])
        return self._tools

    @property
    def action_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("python", "answer")

    def num_tasks(self, split: Split) -> int:
        return len(self.problems[split])

    def task_id(self, split: Split, index: int) -> str:
        return self.problems[split][index].id

    def load_task(self, split: Split, index: int) -> str:
        self.problem = self.problems[split][index]
        self.cells = []
        self.last_output = ""
        self.tool_stats = ToolStats()
        return f"Problem: {self.problem.question}"

    def act(self, action: str) -> Outcome:
        assert self.problem is not None
        call = split_call(action)
        name = call[0] if call else ""
        if name not in ("python", "answer"):
            raise InvalidAction(
                f"Invalid action {action[:80]!r}. Run code with <python> print(2 ** 10) "
                "</python>, or answer with <answer> 1024 </answer>."
            )
        arguments = call[1]
        text = arguments if isinstance(arguments, str) else str(next(iter(arguments.values()), ""))
        if name == "python":
            return self._run(text)
        guess = parse_number(text)
        gold = parse_number(self.problem.answer, lenient=False)
        correct = guess is not None and gold is not None
        correct = correct and abs(guess - gold) <= self.problem.tolerance
        return Outcome(
            f"Your answer: {text.strip()[:200]}",
            reward=float(correct),
            terminated=True,
            success=correct,
            info={
                "answer": text.strip()[:200],
                "parsed": guess is not None,
                "family": self.problem.family,
                **self.tool_stats.flat(),
            },
        )

    def _run(self, code: str) -> Outcome:
        if not code.strip():
            raise InvalidAction(
                "The <python> block is empty. Example: <python> print(2 ** 10) </python>"
            )
        started = time.perf_counter()
        seed = zlib.crc32(f"{self.episode_seed}:{self.problem.id if self.problem else ''}".encode())
        result = self.sandbox.run(code, cells=self.cells, seed=seed)
        observation = result.observation()
        if result.timed_out or result.error:  # replaying it would fail every later run
            observation += "\n(This cell was not kept: later runs start without it.)"
        else:
            self.cells.append(code)
        self.last_output = result.stdout
        tool = ToolResult("python", observation, result.ok, time.perf_counter() - started)
        self.tool_stats.add(tool)
        info = {
            "tool_call": "python",
            "tool_error": not result.ok,
            "tool_latency_s": tool.latency_s,
            "timed_out": result.timed_out,
            **self.tool_stats.flat(),
        }
        return Outcome(f"<result>\n{tool.observation}\n</result>", info=info)

    def response_prefix(self) -> str:
        """With `action_prefix` (an aid for small models, tags format; the CPU recipes
        turn it on): the first reply starts with "<python>" and the last with
        "<answer>", so the agent computes before answering and always answers."""
        if not self.action_prefix or self.problem is None or self.done:
            return ""
        if self.turn == 0:
            return "<python>"
        return "<answer>" if self.turn >= self.max_turns - 1 else ""

    def valid_actions(self) -> list[str]:
        return ["python[print(1 + 1)]", "answer[0]"]
