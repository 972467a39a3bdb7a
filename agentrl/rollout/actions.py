"""The rollout's action layer: parsers that turn generated text into one env action.

Environments take actions written `name[argument]` (`search[red shoes]`, `answer[84]`).
Policies are prompted in one of three formats, and a parser per format finds the action:

| kind      | the model writes                                                 | rule      |
|-----------|------------------------------------------------------------------|-----------|
| `bracket` | `Thought: ... Action: search[red shoes]` (ReAct)                 | last one  |
| `tags`    | `<search>red shoes</search>` (ARPO)                              | first one |
| `json`    | `<tool_call>{"name": "search", "arguments": {...}}</tool_call>` | first one |
| `fenced`  | a fenced code block, or `<answer>...</answer>` / `\\boxed{...}`    | first one |
| `text`    | anything: the whole reply is the action (free-text envs)         | all of it |

    parser = make_parser("tags", ["search", "answer"])
    parser.parse("I need data. <search> red shoes </search>")
    # ParsedAction(action='search[red shoes]', error=None)
    parser.parse("no idea")
    # ParsedAction(action=None, error='No complete tag pair found. Reply with ...')
    parser.stop_strings()   # ['</search>', '</answer>']: stop generation there

A parser never raises on the text: when no valid action is found it returns
`ParsedAction(None, error)`, and `error` is what the agent reads next, so it names the
expected format with an example (`format_hint()`, also meant for system prompts).

Names in `action_names` match case-insensitively and come out lower-case. "tags" and
"json" need the closing tag in the text: keep the stop string in the generated output
(vLLM: `include_stop_str_in_output=True`), so that a reply cut off by the token limit
is never taken for a finished call. Parsing is linear in the text length: brackets are
paired with a stack and tags are found with `str.find` and backtracking-free patterns.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentrl.core import Action
from agentrl.errors import ConfigError

PARSERS: tuple[str, ...] = ("bracket", "tags", "json", "fenced", "text")

_NAME = re.compile(r"\w+")
_BRACKET = re.compile(r"[\[\]]")
_TOOL_CALL_OPEN = "<tool_call>"
_TOOL_CALL_CLOSE = "</tool_call>"


@dataclass(frozen=True)
class ParsedAction:
    """The action found in a generated text, or why none was."""

    action: str | None
    """Canonical `name[argument]`, an `agentrl.core.Action` carrying the tool name and
    structured arguments; None when the text holds no valid action."""
    error: str | None
    """When `action` is None: what the agent should have written, with an example."""

    @property
    def name(self) -> str | None:
        """The tool or action name (None for free text or no action)."""
        return getattr(self.action, "name", None)

    @property
    def arguments(self) -> str | dict[str, Any] | None:
        """The argument text, or a JSON tool call's arguments as a mapping."""
        return getattr(self.action, "arguments", None)


class ActionParser(Protocol):
    """What the rollout manager needs from a parser of one output format."""

    name: str
    """The format: one of `PARSERS`."""

    def parse(self, text: str) -> ParsedAction:
        """The action in `text`; never raises."""
        ...

    def format_hint(self) -> str:
        """One or two sentences naming the format and the actions, with an example."""
        ...

    def stop_strings(self) -> list[str]:
        """Strings at which generation should stop (kept in the output)."""
        ...


class BracketParser:
    """ReAct style `name[argument]`; the last complete action in the text wins.

    Models often restate the format ("Use search[query].") before acting, so the action
    closed last is taken. Arguments may hold balanced brackets and newlines. Without
    `action_names`, any word directly before a bracket pair is an action name.
    """

    name = "bracket"

    def __init__(
        self, action_names: Sequence[str] | None = None, examples: Mapping[str, str] | None = None
    ) -> None:
        self.action_names = _normalise_names(action_names)
        self.examples = dict(examples or {})

    def parse(self, text: str) -> ParsedAction:
        # Pair brackets with a stack: (position of "[", action name before it or None).
        open_brackets: list[tuple[int, str | None]] = []
        found: tuple[str, int, int] | None = None  # name, start and end of the argument
        for match in _BRACKET.finditer(text):
            position = match.start()
            if text[position] == "[":
                open_brackets.append((position, self._action_name(text, position)))
            elif open_brackets:  # a "]" with no "[" before it is prose, not an action
                start, name = open_brackets.pop()
                if name is not None:
                    found = (name, start + 1, position)  # sliced once, at the end
        if found is not None:
            name, start, end = found
            argument = text[start:end].strip()
            return ParsedAction(Action(f"{name}[{argument}]", name, argument), None)
        unclosed = next((name for _, name in open_brackets if name is not None), None)
        if unclosed is not None:
            return ParsedAction(
                None, f"The bracket of {unclosed[:40]}[ is never closed. {self.format_hint()}"
            )
        return ParsedAction(None, f"No action found. {self.format_hint()}")

    def _action_name(self, text: str, bracket: int) -> str | None:
        """The action name written right before `text[bracket]`, or None."""
        # The scan stops at the first non-word character, and "[" is one, so the scans
        # of all brackets together read each character at most once.
        start = bracket
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
            start -= 1
        word = text[start:bracket]
        if not word:
            return None
        if self.action_names is None:
            return word
        return word.lower() if word.lower() in self.action_names else None

    def format_hint(self) -> str:
        # Concrete actions only: small models copy a template such as "name[argument]"
        # word for word.
        examples = _examples(self.action_names, self.examples)
        if examples:
            calls = " or ".join(f"{name}[{arg}]" for name, arg in examples.items())
            return f"Reply with one action, e.g. {calls}."
        if self.action_names is None:
            return "Reply with one action written like search[red shoes]."
        actions = " or ".join(f"{name}[...]" for name in self.action_names)
        return f"Reply with one action: {actions}."

    def stop_strings(self) -> list[str]:
        return []  # the action is the last thing in the reply; nothing marks its end


class TagParser:
    """ARPO style `<tool>argument</tool>`; the first tag pair to close wins.

    Generation stops at a closing tag, so the pair closed first is the call. It opens at
    the nearest opening tag of the same name before that closing tag. The argument is
    stripped of surrounding whitespace; inner newlines (code) are kept.
    """

    name = "tags"

    def __init__(
        self, action_names: Sequence[str] | None, examples: Mapping[str, str] | None = None
    ) -> None:
        self.examples = dict(examples or {})
        names = _normalise_names(action_names) if action_names else None
        if names is None:
            raise ConfigError(
                ["the 'tags' parser needs action_names (the tag names), e.g. ['search', 'answer']"]
            )
        self.action_names: tuple[str, ...] = names
        alternatives = "|".join(re.escape(name) for name in names)
        self._any_open = re.compile(rf"<({alternatives})>", re.IGNORECASE)
        self._any_close = re.compile(rf"</({alternatives})>", re.IGNORECASE)
        self._open = {name: re.compile(rf"<{re.escape(name)}>", re.IGNORECASE) for name in names}

    def parse(self, text: str) -> ParsedAction:
        # Where to look for each name's opening tag: after its previous closing tag, which
        # had no opening tag before it. This keeps every character read a bounded number
        # of times even for thousands of stray closing tags.
        search_from = dict.fromkeys(self.action_names, 0)
        for close in self._any_close.finditer(text):
            name = close.group(1).lower()
            openings = self._open[name].finditer(text, search_from[name], close.start())
            nearest = deque(openings, maxlen=1)  # keeps only the last opening tag
            if nearest:
                argument = text[nearest[0].end() : close.start()].strip()
                return ParsedAction(Action(f"{name}[{argument}]", name, argument), None)
            search_from[name] = close.end()
        unclosed = self._any_open.search(text)
        if unclosed is not None:
            name = unclosed.group(1).lower()
            return ParsedAction(
                None, f"<{name}> is never closed with </{name}>. {self.format_hint()}"
            )
        return ParsedAction(None, f"No complete tag pair found. {self.format_hint()}")

    def format_hint(self) -> str:
        tags = ", ".join(f"<{name}>" for name in self.action_names)
        examples = _examples(self.action_names, self.examples)
        if examples:  # concrete calls: small models copy "..." word for word
            calls = " or ".join(f"<{name}>{arg}</{name}>" for name, arg in examples.items())
            return f"Reply with one tool call, e.g. {calls}; tags: {tags}."
        first = self.action_names[0]
        return f"Reply with one tool call written as <{first}>...</{first}>; tags: {tags}."

    def stop_strings(self) -> list[str]:
        return [f"</{name}>" for name in self.action_names]


class JsonParser:
    """Qwen / Hermes style `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.

    The first block to close is the call. The action carries the arguments as a mapping
    (`Action.arguments`); its text is `name[value]` for one argument (strings as they
    are, numbers with `str`, other values as JSON), `name[]` for none, and
    `name[<the arguments as JSON with sorted keys>]` for several. `arguments` may be a JSON-encoded
    string (some models write that) or be called `parameters` (Llama style).
    """

    name = "json"

    def __init__(
        self, action_names: Sequence[str] | None = None, examples: Mapping[str, str] | None = None
    ) -> None:
        self.action_names = _normalise_names(action_names)
        self.examples = dict(examples or {})

    def parse(self, text: str) -> ParsedAction:
        end = text.find(_TOOL_CALL_CLOSE)
        start = text.rfind(_TOOL_CALL_OPEN, 0, end) if end >= 0 else -1
        if start < 0:
            return self._fail(f"No {_TOOL_CALL_OPEN}...{_TOOL_CALL_CLOSE} block found.")
        body = text[start + len(_TOOL_CALL_OPEN) : end].strip()
        try:
            call = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: thousands of nested "["
            return self._fail("The tool call is not valid JSON.")
        if not isinstance(call, dict):
            return self._fail("The tool call must be a JSON object.")
        name = call.get("name")
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            return self._fail('The tool call needs a "name" that is a tool name.')
        if self.action_names is not None:
            if name.lower() not in self.action_names:
                return self._fail(f"Unknown tool {name[:40]!r}.")
            name = name.lower()
        arguments = call.get("arguments", call.get("parameters"))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except (ValueError, RecursionError):
                return self._fail('"arguments" is a string that is not valid JSON.')
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            return self._fail('"arguments" must be a JSON object.')
        try:
            text = f"{name}[{_argument_text(arguments)}]"
            return ParsedAction(Action(text, name, arguments), None)
        except RecursionError:  # json.loads accepts a little deeper nesting than dumps
            return self._fail('"arguments" are nested too deeply.')

    def _fail(self, problem: str) -> ParsedAction:
        return ParsedAction(None, f"{problem} {self.format_hint()}")

    def format_hint(self) -> str:
        first = self.action_names[0] if self.action_names else "search"
        value = json.dumps(self.examples.get(first, "..."))
        example = f'{{"name": "{first}", "arguments": {{"input": {value}}}}}'
        tools = f"; tools: {', '.join(self.action_names)}" if self.action_names else ""
        return (
            f"Reply with one tool call written as {_TOOL_CALL_OPEN}{example}{_TOOL_CALL_CLOSE}"
            f"{tools}."
        )

    def stop_strings(self) -> list[str]:
        return [_TOOL_CALL_CLOSE]


class FencedParser:
    """Code in a Markdown fence runs; an `<answer>` tag or a `\\boxed{}` answers: what
    models trained on maths and code write unprompted. The first fenced block (any or
    no language tag) is a call of the first action (the env's code tool, e.g.
    `python[...]`); without one, `<answer>...</answer>`, else the last `\\boxed{...}`,
    is `answer[...]`. The closing fence is required (a cut-off block is not a call)."""

    name = "fenced"
    _BLOCK = re.compile(r"```[\w+-]*[ \t]*\n(.*?)```", re.DOTALL)
    _ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)

    def __init__(
        self, action_names: Sequence[str] | None, examples: Mapping[str, str] | None = None
    ) -> None:
        names = _normalise_names(action_names) if action_names else None
        if names is None or "answer" not in names or len(names) < 2:
            raise ConfigError(
                [
                    "the 'fenced' parser needs a code action and 'answer' among the action "
                    f"names, e.g. ['python', 'answer']; got {action_names!r}"
                ]
            )
        self.action_names = names
        self.code = next(name for name in names if name != "answer")
        self.examples = dict(examples or {})

    def parse(self, text: str) -> ParsedAction:
        block = self._BLOCK.search(text)
        answer = self._ANSWER.search(text)
        if block is not None and (answer is None or block.start() < answer.start()):
            code = block.group(1).strip("\n")
            return ParsedAction(Action(f"{self.code}[{code}]", self.code, code), None)
        if answer is not None:
            value = answer.group(1).strip()
            return ParsedAction(Action(f"answer[{value}]", "answer", value), None)
        start = text.rfind("\\boxed{")
        if start >= 0:
            depth = 0
            for end in range(start + len("\\boxed"), len(text)):
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                if depth == 0:
                    value = text[start : end + 1]
                    return ParsedAction(Action(f"answer[{value}]", "answer", value), None)
        if "```" in text:
            return ParsedAction(
                None, f"The code block is never closed with ```. {self.format_hint()}"
            )
        return ParsedAction(None, f"No code block or answer found. {self.format_hint()}")

    def format_hint(self) -> str:
        code = self.examples.get(self.code, "print(2 ** 10)")
        answer = self.examples.get("answer", "1024")
        return (
            f"Run code in a fenced block, e.g. ```python\n{code}\n```, or give the final "
            f"answer as \\boxed{{{answer}}}."
        )

    def stop_strings(self) -> list[str]:
        return ["</answer>"]  # a fence opens and closes with the same ```: no stop there


class TextParser:
    """The whole reply, stripped, is the action: for envs that read free text."""

    name = "text"

    def parse(self, text: str) -> ParsedAction:
        action = text.strip()
        if not action:
            return ParsedAction(None, f"The reply was empty. {self.format_hint()}")
        return ParsedAction(Action(action), None)

    def format_hint(self) -> str:
        return "Reply with your action as plain text."

    def stop_strings(self) -> list[str]:
        return []


def make_parser(
    kind: str,
    action_names: Sequence[str] | None = None,
    examples: Mapping[str, str] | None = None,
) -> ActionParser:
    """The parser of output format `kind` ("bracket", "tags", "json" or "text").

    `action_names` limits the actions (tools, tags) that count; "tags" requires it.
    `examples` (action name -> an example argument, an env's `action_examples`) make the
    format hint show concrete calls. Raises `ConfigError` for an unknown kind or bad names.
    """
    if kind == "bracket":
        return BracketParser(action_names, examples)
    if kind == "tags":
        return TagParser(action_names, examples)
    if kind == "json":
        return JsonParser(action_names, examples)
    if kind == "fenced":
        return FencedParser(action_names, examples)
    if kind == "text":
        if action_names is not None:
            raise ConfigError(
                ["the 'text' parser takes the whole reply as the action; it has no action names"]
            )
        return TextParser()
    raise ConfigError([f"unknown action parser {kind!r}; known parsers: {', '.join(PARSERS)}"])


def _examples(names: tuple[str, ...] | None, examples: Mapping[str, str]) -> dict[str, str]:
    """The example argument of each action ("..." for an action without one), or none
    at all when no given example names an action there is."""
    examples = {name.lower(): arg for name, arg in examples.items()}
    if names is None:
        return examples
    if not any(name in examples for name in names):
        return {}
    return {name: examples.get(name, "...") for name in names}


def _normalise_names(action_names: Sequence[str] | None) -> tuple[str, ...] | None:
    """Lower-cased names without duplicates, in order; None means any name counts."""
    if action_names is None:
        return None
    if isinstance(action_names, str):  # a lone name would otherwise become its letters
        raise ConfigError(
            [f"action_names must be a list of names; got the string {action_names!r}"]
        )
    bad = [name for name in action_names if not isinstance(name, str) or not _NAME.fullmatch(name)]
    if bad:
        raise ConfigError(
            [f"action names must be words (letters, digits, _); got {name!r}" for name in bad]
        )
    names = tuple(dict.fromkeys(name.lower() for name in action_names))
    if not names:
        raise ConfigError(["action_names is empty; pass None to accept any action name"])
    return names


def _argument_text(arguments: dict[str, Any]) -> str:
    """The text inside `name[...]`: "", the one value, or all of them as JSON."""
    if len(arguments) != 1:
        return json.dumps(arguments, sort_keys=True) if arguments else ""
    value = next(iter(arguments.values()))
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True)  # true / null / lists / objects as JSON
