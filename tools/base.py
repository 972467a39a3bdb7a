"""Tools: typed functions an env lets the agent call, and the toolbox that calls them.

    def calculate(expression: str) -> str:
        '''Evaluate an arithmetic expression.

        Args:
            expression: numbers, + - * / // % ** and parentheses.
        '''
        ...

    toolbox = Toolbox([Tool.from_function(calculate, timeout_s=2)])
    result = toolbox.call("calculate", "12 * (3 + 4)")   # or {"expression": "12 * (3 + 4)"}
    result.observation, result.ok, result.latency_s       # "84", True, 0.0001
    toolbox.info(result)   # {"tool_call": "calculate", "tool_error": False, ...} for step's info
    toolbox.schemas()   # JSON schemas, for apply_chat_template(tools=...)

A tool's JSON schema comes from its signature and docstring, as
`transformers.utils.get_json_schema` builds it (the format chat templates take). A
call's failure never raises: a `ToolError` (the tool's own words for the agent), a
wrong or missing argument, an unknown tool, a timeout or any other exception becomes
the observation the agent reads, with `ok` False (a `ToolError`'s message as it is; an
unknown tool names the tools there are; other failures start with the tool's name).
The exception is `ToolUnavailable`: a service the tool needs is down (a retriever
server that stopped), which is no fault of the agent's, so it propagates and the
rollout records the episode as failed rather than training on it.
Arguments are converted to their declared types (`"12"` for an integer, `12` for a
string). Async functions (or objects whose `__call__` is async) are awaited; sync ones
run in a pool of worker threads of their own (32), so a timeout returns at once; a
stuck sync call keeps its thread until it ends, and the process waits for it at exit:
code that must be stopped belongs in a sandbox process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentrl.core import Action
from agentrl.errors import AgentRLError, InvalidArgument
from agentrl.suggest import did_you_mean

_CALL = re.compile(r"\s*(\w+)\s*\[(.*)\]\s*", re.DOTALL)

# Sync tools run here rather than in the event loop's default executor, which
# `asyncio.run` joins on exit: a call that timed out must not hold its caller.
_SYNC_CALLS = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="agentrl-tool")


def split_call(action: str) -> tuple[str, str | dict[str, Any]] | None:
    """The name and arguments of an action: those a parser put on an `Action` (a JSON
    call's mapping as it came), or read from the text `name[argument]`; None when the
    text is no call."""
    if isinstance(action, Action) and action.name is not None and action.arguments is not None:
        return action.name.lower(), action.arguments
    match = _CALL.fullmatch(action)
    return (match.group(1).lower(), match.group(2).strip()) if match else None


class ToolError(Exception):
    """Raised by a tool for a bad call; its message, as it is, is what the agent reads."""


@dataclass(frozen=True)
class Tool:
    """A callable the agent may use, with its JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments: {"type": "object", "properties": ..., "required": ...}."""
    fn: Callable[..., Any]
    timeout_s: float | None = 10.0
    """Longest a call may take before its observation is a timeout; None waits forever."""

    @classmethod
    def from_function(
        cls, fn: Callable[..., Any], *, name: str | None = None, timeout_s: float | None = 10.0
    ) -> Tool:
        """A tool from a typed function whose docstring describes it and its arguments
        (Google style `Args:`); `InvalidArgument` says what is missing."""
        from transformers.utils import get_json_schema  # heavy: only when tools are built

        try:
            schema = get_json_schema(fn)["function"]
        except Exception as exc:  # transformers raises its own types for each gap
            raise InvalidArgument(
                f"tool {getattr(fn, '__name__', fn)!r}: its schema cannot be read from the "
                f"signature and docstring ({type(exc).__name__}: {exc}). Give every argument a "
                "type hint and describe each one under 'Args:' in the docstring."
            ) from exc
        return cls(
            name=name or schema["name"],
            description=schema.get("description", ""),
            parameters=schema["parameters"],
            fn=fn,
            timeout_s=timeout_s,
        )

    def schema(self) -> dict[str, Any]:
        """The tool as chat templates take it (`apply_chat_template(tools=[...])`)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def bind(self, arguments: str | Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments, each converted to its declared type, from a mapping or from
        one string (`calculate[12 * 3]`: the tool's one required argument, or its only
        argument; "" for a tool that needs none; a JSON object for named arguments);
        `ToolError` names what is wrong."""
        properties = self.parameters.get("properties", {})
        required = list(self.parameters.get("required", []))
        if isinstance(arguments, str):
            arguments = self._from_text(arguments, properties, required)
        arguments = dict(arguments)
        unknown = [k for k in arguments if k not in properties]
        if len(unknown) == 1 and len(properties) == 1 and len(arguments) == 1:
            # One value under another name ({"input": ...}, as generic hints write it):
            # it can only be the tool's one argument.
            arguments = {next(iter(properties)): arguments[unknown[0]]}
            unknown = []
        if unknown:
            hint = did_you_mean(unknown[0], list(properties))
            raise ToolError(
                f"{self.name} has no argument {unknown[0]!r}.{hint} It takes: "
                f"{', '.join(properties) or 'nothing'}."
            )
        missing = [k for k in required if k not in arguments]
        if missing:
            raise ToolError(f"{self.name} needs the argument(s) {', '.join(missing)}.")
        return {k: self._convert(k, v) for k, v in arguments.items()}

    def _from_text(
        self, text: str, properties: Mapping[str, Any], required: list[str]
    ) -> dict[str, Any]:
        if len(properties) > 1 and text.lstrip()[:1] == "{":
            try:  # named arguments written as text: `lookup[{"query": "x", "topk": 2}]`
                decoded = json.loads(text)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                return decoded
        if not text.strip() and not required:
            return {}
        if len(required) == 1:
            return {required[0]: text}
        if not required and len(properties) == 1:
            return {next(iter(properties)): text}
        names = ", ".join(properties) or "none"
        raise ToolError(
            f"{self.name} takes named arguments ({names}); write them as a JSON object, "
            f'e.g. {self.name}[{{"{(required or list(properties) or ["x"])[0]}": ...}}]'
        )

    def _convert(self, name: str, value: Any) -> Any:
        """`value` (from JSON or text) as the JSON type the schema declares for `name`."""
        declared = self.parameters.get("properties", {}).get(name, {})
        kind = declared.get("type", "string")
        kinds = kind if isinstance(kind, list) else [kind]
        if value is None and ("null" in kinds or declared.get("nullable")):
            return None
        kind = next((k for k in kinds if k != "null"), "string")
        text = value.strip() if isinstance(value, str) else None
        article = "an" if kind in ("integer", "array", "object") else "a"
        wrong = ToolError(f"{self.name}: {name} must be {article} {kind}; got {str(value)[:40]!r}.")
        if kind == "string":
            if isinstance(value, str):
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)  # as the text form `name[12]` gives it
            raise wrong
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if text is not None and text.lower() in ("true", "false"):
                return text.lower() == "true"
            raise wrong
        if kind in ("integer", "number"):
            if isinstance(value, bool):
                raise wrong
            if isinstance(value, int) or (kind == "number" and isinstance(value, float)):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            try:
                return int(text) if kind == "integer" else float(text)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise wrong from None
        if kind in ("array", "object") and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise wrong from None
        expected = list if kind == "array" else dict if kind == "object" else object
        if not isinstance(value, expected):
            raise wrong
        return value

    @property
    def is_async(self) -> bool:
        """An async function, or an object whose `__call__` is async."""
        method = type(self.fn).__dict__.get("__call__")
        return inspect.iscoroutinefunction(self.fn) or inspect.iscoroutinefunction(method)

    def call(self, arguments: str | Mapping[str, Any]) -> str:
        """A sync tool's result as text, from sync code: run in the tool pool, waited
        for at most `timeout_s`, or in this thread when there is no limit (raises like
        `acall`)."""
        kwargs = self.bind(arguments)
        if self.timeout_s is None:  # no limit: no thread to wait on either
            result = self.fn(**kwargs)
            return result if isinstance(result, str) else str(result)
        future = _SYNC_CALLS.submit(self.fn, **kwargs)
        try:
            result = future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            if future.done():  # the tool's own TimeoutError, not the wait's
                raise
            raise ToolTimeout(
                f"{self.name} error: no result within {self.timeout_s:g} s."
            ) from None
        return result if isinstance(result, str) else str(result)

    async def acall(self, arguments: str | Mapping[str, Any]) -> str:
        """The tool's result as text (raises `ToolError`, `ToolTimeout` or the tool's own
        exception; `Toolbox.call` turns them into observations)."""
        kwargs = self.bind(arguments)
        if self.is_async:
            work = self.fn(**kwargs)
        else:
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(_SYNC_CALLS, functools.partial(self.fn, **kwargs))
        try:
            result = await asyncio.wait_for(work, self.timeout_s)
        except asyncio.TimeoutError:  # the builtin TimeoutError from 3.11; not before
            if self.timeout_s is None:
                raise
            raise ToolTimeout(
                f"{self.name} error: no result within {self.timeout_s:g} s."
            ) from None
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            result = await asyncio.wait_for(result, self.timeout_s)
        return result if isinstance(result, str) else str(result)


class ToolUnavailable(AgentRLError):
    """A service the tool needs did not answer: raised through the toolbox, never shown
    to the agent (its episode is recorded with the error)."""


class ToolTimeout(Exception):
    """A call ran past its tool's `timeout_s` (its message is the observation)."""


@dataclass
class ToolResult:
    """One call: what the agent reads, whether it worked, how long it took."""

    name: str
    observation: str
    ok: bool
    latency_s: float


@dataclass
class ToolStats:
    """Calls, failures and time per tool, over a toolbox's life (or since `reset`)."""

    calls: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """`tool_calls.NAME`, `tool_errors.NAME` and `tool_seconds.NAME` per tool, as an
        episode's final info carries them (flat numbers: trajectories keep those)."""
        out: dict[str, float] = {}
        for name in self.calls:
            out[f"tool_calls.{name}"] = self.calls[name]
            out[f"tool_errors.{name}"] = self.errors[name]
            out[f"tool_seconds.{name}"] = self.seconds[name]
        return out

    def add(self, result: ToolResult) -> None:
        self.calls[result.name] = self.calls.get(result.name, 0) + 1
        self.errors[result.name] = self.errors.get(result.name, 0) + (not result.ok)
        self.seconds[result.name] = self.seconds.get(result.name, 0.0) + result.latency_s


class Toolbox:
    """The tools an env offers: their names, schemas and calls, counted per tool.

    One toolbox may serve many envs at once (it is an env argument): `stats` counts every
    call of all of them (thread-safe), and each `ToolResult` goes back to its caller, so
    an env keeps its own episode's counts. Copying a toolbox (an env's `fork()`) shares
    its tools and their backends."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]]) -> None:
        self.tools: dict[str, Tool] = {}
        for item in tools:
            tool = item if isinstance(item, Tool) else Tool.from_function(item)
            if not re.fullmatch(r"[a-z0-9_]+", tool.name):
                raise InvalidArgument(
                    f"tool name {tool.name!r}: use lower-case letters, digits and _ (action "
                    "parsers read names case-insensitively and as words)"
                )
            if tool.name in self.tools:
                raise InvalidArgument(f"two tools are named {tool.name!r}; rename one")
            self.tools[tool.name] = tool
        self.stats = ToolStats()
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> Toolbox:
        # Tools hold backends (indexes, clients, locks): shared, never copied.
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.tools)

    def schemas(self) -> list[dict[str, Any]]:
        """Every tool's schema, for `apply_chat_template(tools=...)`."""
        return [tool.schema() for tool in self.tools.values()]

    def call(self, name: str, arguments: str | Mapping[str, Any]) -> ToolResult:
        """Call tool `name` from sync code (an env's `act`, in a worker thread). A sync
        tool runs in the tool pool without an event loop (env steps stay cheap); an async
        one on an event loop of its own."""
        tool = self.tools.get(name)
        if tool is None or tool.is_async:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(self.acall(name, arguments))
            # Called from inside an event loop: run the call on a loop of its own.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, self.acall(name, arguments)).result()
        started = time.perf_counter()
        try:
            text, ok = tool.call(arguments), True
        except ToolUnavailable:
            self._record(name, "", False, started)
            raise
        except Exception as exc:  # the agent reads it; the episode goes on
            text, ok = _failure(name, exc), False
        return self._record(name, text, ok, started)

    async def acall(self, name: str, arguments: str | Mapping[str, Any]) -> ToolResult:
        """Call tool `name`; every failure but `ToolUnavailable` is an observation."""
        started = time.perf_counter()
        tool = self.tools.get(name)
        if tool is None:
            hint = did_you_mean(name, list(self.tools))
            text = f"There is no tool {name!r}.{hint} Tools: {', '.join(self.tools)}."
            return self._record(name, text, False, started)
        try:
            text, ok = await tool.acall(arguments), True
        except ToolUnavailable:
            self._record(name, "", False, started)
            raise
        except Exception as exc:  # the agent reads it; the episode goes on
            text, ok = _failure(name, exc), False
        return self._record(name, text, ok, started)

    def _record(self, name: str, text: str, ok: bool, started: float) -> ToolResult:
        result = ToolResult(name, text, ok, time.perf_counter() - started)
        with self._lock:
            self.stats.add(result)
        return result

    def info(self, result: ToolResult) -> dict[str, Any]:
        """What `step`'s info reports for a call: `tool_call`, the tool's name (every
        env marks a tool call this way, so the rollout counts them alike), whether it
        failed, and its latency."""
        return {
            "tool_call": result.name,
            "tool_error": not result.ok,
            "tool_latency_s": result.latency_s,
        }


def _failure(name: str, exc: Exception) -> str:
    """The observation for a failed call: a `ToolError`'s or a timeout's own message,
    otherwise the exception under the tool's name."""
    if isinstance(exc, (ToolError, ToolTimeout)):
        return str(exc)
    return f"{name} error: {type(exc).__name__}: {exc}"
