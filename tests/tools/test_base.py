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
    obs, _ = env.reset(seed=0)
    assert "Tools: calculate[expression], double[x]; answer[number]" in obs  # as given
    assert "Tools: calculate[expression] evaluates" in agentrl.make("calculator").reset(seed=0)[0]
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


def test_arguments_are_converted_to_their_declared_types():
    def flags(on: bool, items: list[int], n: int | None = None) -> str:
        """Echo.

        Args:
            on: a switch
            items: numbers
            n: a count, or nothing
        """
        return f"{on!r} {items!r} {n!r}"

    box = Toolbox([calculate, lookup, flags])
    assert box.call("calculate", {"expression": 12}).observation == "12"  # as calculate[12]
    assert box.call("lookup", {"query": "x", "topk": "2"}).observation == "2 results for x"
    assert box.call("flags", {"on": "false", "items": "[1, 2]"}).observation == "False [1, 2] None"
    assert box.call("flags", {"on": True, "items": [3], "n": None}).observation == "True [3] None"
    refused = box.call("lookup", {"query": "x", "topk": True})
    assert not refused.ok and "topk must be an integer" in refused.observation
    # One value under another name, as the json format's generic hint writes it.
    assert box.call("calculate", {"input": "2 + 2"}).observation == "4"


def test_tools_without_required_arguments_take_bracket_calls():
    def now() -> str:
        """The time."""
        return "noon"

    def ls(path: str = ".") -> str:
        """List a folder.

        Args:
            path: the folder
        """
        return f"listing {path}"

    box = Toolbox([now, ls])
    assert box.call("now", "").observation == "noon"
    assert box.call("ls", "").observation == "listing ."
    assert box.call("ls", "src").observation == "listing src"


def test_async_objects_and_timeouts_without_a_limit():
    class Remote:
        async def __call__(self, query: str) -> str:
            return f"remote {query}"

    class Flaky:
        def __call__(self, query: str) -> str:
            raise TimeoutError("socket timed out")

    schema = Tool.from_function(lookup).parameters
    remote = Tool("remote", "A remote lookup.", schema, Remote())
    flaky = Tool("flaky", "Times out itself.", schema, Flaky(), timeout_s=None)
    box = Toolbox([remote, flaky])
    assert box.call("remote", "x").observation == "remote x"
    failed = box.call("flaky", "x")
    assert not failed.ok and failed.observation == "flaky error: TimeoutError: socket timed out"


def test_a_shared_toolbox_counts_each_episode_apart_and_forks_with_its_env():
    import copy

    box = Toolbox([calculate])
    a = agentrl.make("calculator", tools=box)
    b = agentrl.make("calculator", tools=box)
    a.reset(seed=0)
    a.step("calculate[1 + 1]")
    a.step("calculate[2 + 2]")
    b.reset(seed=1)
    b.step("calculate[3]")
    info = a.step(f"answer[{a.result}]")[4]
    assert info["tool_calls.calculate"] == 2 and box.stats.calls["calculate"] == 3
    assert b.fork().tools is box and copy.deepcopy(box) is box  # tools are shared
    with pytest.raises(InvalidArgument, match="lower-case"):
        Toolbox([Tool("Get-Weather", "x", {"type": "object", "properties": {}}, lambda: "")])


def test_the_rollout_gives_tool_schemas_to_the_template_only_for_json_calls(tokenizer):
    import copy

    from agentrl.engines import ScriptedEngine
    from agentrl.rollout.manager import RolloutManager

    aware = copy.deepcopy(tokenizer)
    aware.chat_template = (
        "{% if tools %}<|im_start|>system\nTools:{% for t in tools %} {{ t.function.name }}"
        "{% endfor %}<|im_end|>\n{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    engine = ScriptedEngine(aware, ["answer[1]"])
    for action_format, expected in (("json", ["calculate"]), ("bracket", None)):
        manager = RolloutManager(engine, aware, "calculator", action_format=action_format)
        try:
            names = manager.chat.tools and [t["function"]["name"] for t in manager.chat.tools]
            assert names == expected, action_format
        finally:
            manager.close()


def test_validating_a_config_reads_no_tool_schema():
    # A tool's schema comes from transformers (a second of imports): the calculator env
    # builds its default toolbox on first use, not when a config naming it is checked.
    import subprocess
    import sys

    code = "import sys, agentrl; agentrl.load_config('calculator_grpo'); print(sorted(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "'transformers'" not in loaded
