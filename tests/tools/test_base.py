"""The tool layer: schemas from typed functions, calls whose failures are observations,
counts per tool; the calculator env on it."""

from __future__ import annotations

import asyncio
import time

import pytest
from agentrl.tools.base import Tool, Toolbox, ToolError
from agentrl.tools.calculator import calculate
from transformers.utils import get_json_schema

import agentrl
from agentrl.errors import InvalidArgument


def lookup(query: str, topk: int = 3) -> str:
    """Look something up.

    Args:
        query: what to look for
        topk: how many results
    """
    if not query:
        raise ToolError("lookup needs a non-empty query.")
    return f"{topk} results for {query}"


async def slow(seconds: float) -> str:
    """Wait.

    Args:
        seconds: how long
    """
    await asyncio.sleep(seconds)
    return "done"


def sleepy(seconds: float) -> str:
    """Wait, blocking.

    Args:
        seconds: how long
    """
    time.sleep(seconds)
    return "done"


def broken(x: int) -> str:
    """Always fails.

    Args:
        x: anything
    """
    raise KeyError(x)


def test_a_tools_schema_is_the_chat_template_format_of_its_function():
    tool = Tool.from_function(lookup)
    assert tool.schema() == {
        "type": "function",
        "function": {k: v for k, v in get_json_schema(lookup)["function"].items() if k != "return"},
    }
    assert tool.parameters["required"] == ["query"]

    def untyped(x):
        """No hints."""

    with pytest.raises(InvalidArgument, match="type hint"):
        Tool.from_function(untyped)


def test_arguments_bind_from_a_string_or_a_mapping():
    tool = Tool.from_function(lookup)
    assert tool.bind("red shoes") == {"query": "red shoes"}
    assert tool.bind({"query": "x", "topk": 5}) == {"query": "x", "topk": 5}
    with pytest.raises(ToolError, match="no argument 'top'. Did you mean 'topk'"):
        tool.bind({"query": "x", "top": 5})
    with pytest.raises(ToolError, match="needs the argument"):
        tool.bind({"topk": 5})
    two = Tool.from_function(lambda_two)
    with pytest.raises(ToolError, match="JSON object"):
        two.bind("just text")


def lambda_two(a: str, b: str) -> str:
    """Two arguments.

    Args:
        a: first
        b: second
    """
    return a + b


def test_every_failure_is_an_observation_and_is_counted():
    box = Toolbox([lookup, Tool.from_function(slow, timeout_s=0.05), broken])
    assert box.names == ("lookup", "slow", "broken")
    ok = box.call("lookup", {"query": "shoes", "topk": 2})
    assert ok.ok and ok.observation == "2 results for shoes"
    own = box.call("lookup", "")
    assert not own.ok and own.observation == "lookup needs a non-empty query."  # verbatim
    late = box.call("slow", "1")
    assert not late.ok and late.observation == "slow error: no result within 0.05 s."
    crash = box.call("broken", "3")
    assert not crash.ok and crash.observation.startswith("broken error: KeyError")
    unknown = box.call("lookp", "x")
    assert not unknown.ok and "Did you mean 'lookup'" in unknown.observation
    wrong = box.call("broken", "three")
    assert not wrong.ok and wrong.observation == "broken: x must be an integer; got 'three'."
    assert box.stats.calls == {"lookup": 2, "slow": 1, "broken": 2, "lookp": 1}
    assert box.stats.errors == {"lookup": 1, "slow": 1, "broken": 2, "lookp": 1}
    assert box.info(ok) == {
        "tool_call": "lookup",
        "tool_error": False,
        "tool_latency_s": ok.latency_s,
    }


def test_a_blocking_tool_times_out_and_a_call_works_inside_an_event_loop():
    box = Toolbox([Tool.from_function(sleepy, timeout_s=0.05)])
    started = time.perf_counter()
    assert not box.call("sleepy", "0.5").ok
    assert time.perf_counter() - started < 0.4  # the caller does not wait for the thread

    async def inside():
        return box.call("sleepy", "0"), await box.acall("sleepy", "0")

    first, second = asyncio.run(inside())
    assert first.ok and second.ok
    with pytest.raises(InvalidArgument, match="two tools are named"):
        Toolbox([lookup, lookup])


def test_the_calculator_env_hands_tool_actions_to_its_toolbox():
    env = agentrl.make("calculator")
    env.reset(seed=0)
    assert env.action_names == ("calculate", "answer")
    obs, _, _, _, info = env.step("calculate[12 * 7]")
    assert obs == "84" and info["tool_call"] == "calculate" and not info["tool_error"]
    obs, _, _, _, info = env.step("calculate[1 / 0]")
    assert obs == "Calculator error: division by zero." and info["tool_error"]
    _, _, terminated, _, info = env.step(f"answer[{env.result}]")
    assert terminated and info["tool_calls.calculate"] == 2
    assert info["tool_errors.calculate"] == 1 and info["tool_seconds.calculate"] >= 0


def test_an_env_takes_more_tools_as_an_argument():
    def double(x: int) -> str:
        """Twice a number.

        Args:
            x: the number
        """
        return str(2 * x)

    env = agentrl.make("calculator", tools=Toolbox([calculate, double]))
    env.reset(seed=0)
    assert env.action_names == ("calculate", "double", "answer")
    assert env.step("double[21]")[0] == "42"
    assert "Use calculate[expression], double[x]" in env.step("triple[2]")[0]


def test_a_json_call_reaches_the_tool_with_its_arguments_as_written():
    import copy
    import pickle

    from agentrl.tools.base import split_call

    from agentrl.rollout.actions import make_parser

    reply = '<tool_call>{"name": "lookup", "arguments": {"query": "a [b]", "topk": 2}}</tool_call>'
    parsed = make_parser("json", ["lookup"]).parse(reply)
    assert parsed.name == "lookup" and parsed.arguments == {"query": "a [b]", "topk": 2}
    assert parsed.action == 'lookup[{"query": "a [b]", "topk": 2}]'  # the text every env reads
    box = Toolbox([lookup])
    assert split_call(parsed.action) == ("lookup", {"query": "a [b]", "topk": 2})
    assert box.call(*split_call(parsed.action)).observation == "2 results for a [b]"
    # The text alone (a replay, a hand-written action) binds the same arguments.
    assert box.call(*split_call(str(parsed.action))).observation == "2 results for a [b]"
    for copied in (copy.deepcopy(parsed.action), pickle.loads(pickle.dumps(parsed.action))):
        assert copied == parsed.action and copied.arguments == parsed.arguments
    bracket = make_parser("bracket", ["lookup"]).parse("Action: lookup[red shoes]")
    assert (bracket.name, bracket.arguments) == ("lookup", "red shoes")


def test_tool_schemas_reach_a_template_that_takes_tools(tokenizer):
    import copy

    from agentrl.rollout.chat import ChatFormat

    schemas = Toolbox([calculate]).schemas()
    # SmolLM2's template has no place for tools: the prompt is as without them.
    plain = ChatFormat(tokenizer, "Be brief.")
    ignored = ChatFormat(tokenizer, "Be brief.", tools=schemas)
    assert ignored.tools is None and ignored.prompt("task") == plain.prompt("task")
    # A template that renders tools (as Qwen's and Llama 3's do) gets them in its prompt.
    aware = copy.deepcopy(tokenizer)
    aware.chat_template = (
        "{% if tools %}<|im_start|>system\nTools:{% for t in tools %} "
        "{{ t.function.name }}({{ t.function.parameters.required | join(', ') }})"
        "{% endfor %}<|im_end|>\n{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    chat = ChatFormat(aware, "Be brief.", tools=schemas)
    assert chat.tools == schemas
    assert "Tools: calculate(expression)" in aware.decode(chat.prompt("Compute 2 + 2."))
