"""Arithmetic with a calculator tool: compute an expression, then answer once.

    env = agentrl.make("calculator")
    obs, info = env.reset(seed=0)             # "Compute 57 * 38 - 12. ..."
    env.step("calculate[57 * 38 - 12]")       # "2154"
    env.step("answer[2154]")                  # reward 1.0, terminated, success

The env's tools come from its `tools` argument, a `Toolbox` (by default the calculator
tool, `agentrl.tools.calculator.calculate`): `act` handles `answer` itself and hands
every other action to the toolbox, which reports each call in `info` (`tool_call`,
`tool_error`, `tool_latency_s`). Expressions are drawn with a fixed seed, duplicates
skipped, and cut into train / valid / test, so no expression is in two splits.
Reward 1 for the right answer; a wrong answer ends the episode with 0.
"""

from __future__ import annotations

import functools

import numpy as np
from agentrl.tools.base import Tool, Toolbox, ToolStats, split_call
from agentrl.tools.calculator import calculate, evaluate

from agentrl.core import InvalidAction, Outcome, Split, TextEnv
from agentrl.errors import InvalidArgument

OPERATORS = ("+", "-", "*")
SPLIT_FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}
MAX_TASKS = 2500


@functools.cache
def _tasks(num_operands: int, max_operand: int) -> dict[str, list[str]]:
    """Distinct expressions per split, drawn with a fixed seed."""
    space = max_operand**num_operands * len(OPERATORS) ** (num_operands - 1)
    total = min(MAX_TASKS, space // 2)  # half the space keeps rejection sampling quick
    if total < 10:
        raise InvalidArgument(
            f"num_operands={num_operands}, max_operand={max_operand} allow only {space} "
            "expressions; raise max_operand or num_operands to get at least 20."
        )
    rng = np.random.default_rng([num_operands, max_operand, 7])
    seen: dict[str, None] = {}
    while len(seen) < total:
        numbers = rng.integers(1, max_operand + 1, size=num_operands)
        ops = rng.choice(OPERATORS, size=num_operands - 1)
        parts = [str(numbers[0])]
        for op, number in zip(ops, numbers[1:], strict=True):
            parts += [str(op), str(number)]
        seen.setdefault(" ".join(parts))
    expressions = list(seen)
    n_train = int(total * SPLIT_FRACTIONS["train"])
    n_valid = int(total * SPLIT_FRACTIONS["valid"])
    return {
        "train": expressions[:n_train],
        "valid": expressions[n_train : n_train + n_valid],
        "test": expressions[n_train + n_valid :],
    }


class CalculatorEnv(TextEnv):
    """Compute an arithmetic expression with calculate[...], then reply answer[...]."""

    default_max_turns = 5
    instructions = (
        "Compute the value of an arithmetic expression. You may check your work with the "
        "calculator, then give your final answer once."
    )

    def __init__(
        self,
        split: Split = "train",
        num_operands: int = 3,
        max_operand: int = 99,
        max_turns: int | None = None,
        render_mode: str | None = None,
        tools: Toolbox | None = None,
    ) -> None:
        if num_operands < 2 or max_operand < 2:
            raise InvalidArgument(
                f"num_operands and max_operand must be at least 2; got {num_operands}, "
                f"{max_operand}."
            )
        super().__init__(split=split, max_turns=max_turns, render_mode=render_mode)
        self.num_operands = num_operands
        self.max_operand = max_operand
        self._tools = tools
        self.tool_stats = ToolStats()
        self.expression = ""
        self.result = 0
        _tasks(num_operands, max_operand)  # fail early on a too-small task space

    @property
    def tools(self) -> Toolbox:  # type: ignore[override]
        """The env's tools; the default toolbox is built on first use (reading a tool's
        schema imports transformers, which validating a config need not)."""
        if self._tools is None:
            # The evaluator bounds its own work (expression size, exponents, magnitudes),
            # so the tool needs no timeout and runs inline: env steps stay cheap.
            self._tools = Toolbox([Tool.from_function(calculate, timeout_s=None)])
        return self._tools

    @property
    def action_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.tools.names, "answer")

    def _split_tasks(self, split: Split) -> list[str]:
        return _tasks(self.num_operands, self.max_operand)[split]

    def num_tasks(self, split: Split) -> int:
        return len(self._split_tasks(split))

    def task_id(self, split: Split, index: int) -> str:
        return f"calc-{self._split_tasks(split)[index]}"

    def load_task(self, split: Split, index: int) -> str:
        self.tool_stats = ToolStats()  # this episode's calls (the toolbox may be shared)
        self.expression = self._split_tasks(split)[index]
        self.result = evaluate(self.expression)
        if self._tools is None or self.tools.names == ("calculate",):
            tools = "calculate[expression] evaluates arithmetic"
        else:  # a toolbox of the user's: name its tools
            tools = ", ".join(self._tool_calls())
        return (
            f"Compute {self.expression}. Tools: {tools}; answer[number] submits your final "
            "answer (one try)."
        )

    def _tool_calls(self) -> list[str]:
        """Each tool as the agent calls it, e.g. calculate[expression]."""
        return [
            f"{name}[{next(iter(tool.parameters['properties']), '')}]"
            for name, tool in self.tools.tools.items()
        ]

    def act(self, action: str) -> Outcome:
        call = split_call(action)
        name = call[0] if call else ""
        if name != "answer" and name not in self.tools.names:
            tools = ", ".join(self._tool_calls())
            raise InvalidAction(
                f"Invalid action {action[:80]!r}. Use {tools}, e.g. calculate[12 * 7], or "
                "answer[number], e.g. answer[84]."
            )
        arguments = call[1]
        if name != "answer":  # the toolbox's: its result, or its error, is the observation
            result = self.tools.call(name, arguments)
            self.tool_stats.add(result)
            # the episode's counts so far: an episode cut off by its turn limit has them too
            info = {**self.tools.info(result), **self.tool_stats.flat()}
            return Outcome(result.observation, info=info)
        argument = arguments if isinstance(arguments, str) else next(iter(arguments.values()), "")
        argument = str(argument).strip()
        try:
            value = float(argument.replace(",", ""))
        except ValueError:
            raise InvalidAction(
                f"answer[...] needs a number; got {argument[:40]!r}. Example: answer[84]."
            ) from None
        correct = abs(value - self.result) < 1e-9
        verdict = "Correct." if correct else f"Wrong: the answer was {self.result}."
        return Outcome(
            verdict,
            reward=float(correct),
            terminated=True,
            success=correct,
            info=self.tool_stats.flat(),
        )

    def valid_actions(self) -> list[str]:
        return [f"calculate[{self.expression}]", "answer[0]"]
