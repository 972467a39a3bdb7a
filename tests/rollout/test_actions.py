"""Action parsers: bracket, tags and json text to canonical `name[argument]` actions."""

from __future__ import annotations

import pytest

import agentrl
from agentrl.errors import ConfigError
from agentrl.rollout.actions import PARSERS, ParsedAction, make_parser

WEB = ["search", "click"]
CALC = ["calculate", "answer"]


def call(name: str, arguments: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {arguments}}}</tool_call>'


# ---------------------------------------------------------------------------- bracket


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("Thought: I should search. Action: search[red shoes]", "search[red shoes]"),
        ("click[Buy Now].", "click[Buy Now]"),
        ("search[foo [bar] baz]", "search[foo [bar] baz]"),
        ("search[ red shoes ]", "search[red shoes]"),
        ("search[]", "search[]"),
        ("]] stray ] search[x]]]", "search[x]"),
        ("Thought: a list [1, 2 ... Action: click[Next >]", "click[Next >]"),
        ("Action: search[chaussures rouges été]", "search[chaussures rouges été]"),
    ],
)
def test_bracket_finds_the_action(text, action):
    assert make_parser("bracket", WEB).parse(text) == ParsedAction(action, None)


def test_bracket_takes_the_last_complete_action():
    text = "Format: search[query] or click[button].\nAction: click[Add to Cart]\nsearch[unclosed"
    assert make_parser("bracket", WEB).parse(text).action == "click[Add to Cart]"


def test_bracket_keeps_nested_brackets_and_newlines():
    parser = make_parser("bracket", CALC)
    assert parser.parse("calculate[(3 + [4])]").action == "calculate[(3 + [4])]"
    text = "Action: calculate[\n  [1, 2][0]\n  + 3\n]"
    assert parser.parse(text).action == "calculate[[1, 2][0]\n  + 3]"


def test_bracket_action_names_filter_and_lower_case():
    parser = make_parser("bracket", ["Search", "click"])
    assert parser.parse("SEARCH[Red Shoes]").action == "search[Red Shoes]"
    # Only whole known names count: "research" and "buy" are not actions.
    assert parser.parse("search[a] then research[b] and buy[c]").action == "search[a]"
    assert parser.parse("buy[c]").action is None


def test_bracket_without_action_names_takes_any_word():
    parser = make_parser("bracket")
    assert parser.parse("a list[1] then Foo_Bar[x[1]]").action == "Foo_Bar[x[1]]"
    assert parser.parse("just [brackets]").action is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "No action found."),
        ("I will search for red shoes.", "No action found."),
        ("search [red shoes]", "No action found."),
        ("Action: search[red shoes", "The bracket of search[ is never closed."),
    ],
)
def test_bracket_failure_says_what_was_expected(text, problem):
    result = make_parser("bracket", WEB).parse(text)
    assert result.action is None
    assert result.error == f"{problem} Reply with one action: search[...] or click[...]."


def test_bracket_hint_without_names_has_an_example():
    assert make_parser("bracket").format_hint() == (
        "Reply with one action written like search[red shoes]."
    )


# ------------------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("<search>red shoes</search>", "search[red shoes]"),
        ("<think>I need data.</think>\n<search> red shoes \n</search>", "search[red shoes]"),
        ("<answer>84</answer>", "answer[84]"),
        ("<Answer>84</ANSWER>", "answer[84]"),
        ("<search></search>", "search[]"),
        ("<search>été</search>", "search[été]"),
    ],
)
def test_tags_find_the_call(text, action):
    parser = make_parser("tags", ["search", "python", "answer"])
    assert parser.parse(text) == ParsedAction(action, None)


def test_tags_keep_inner_newlines_of_code():
    text = "<python>\nfor i in range(3):\n    print(i)\n</python>"
    assert make_parser("tags", ["python"]).parse(text).action == (
        "python[for i in range(3):\n    print(i)]"
    )


def test_tags_take_the_first_pair_to_close():
    parser = make_parser("tags", ["search", "python", "answer"])
    assert parser.parse("<search>a</search> <answer>b</answer>").action == "search[a]"
    assert parser.parse("<answer>see <search>x</search></answer>").action == "search[x]"
    # A tag name inside another call's code is just text.
    text = "<python>print('<answer>')</python><answer>1</answer>"
    assert parser.parse(text).action == "python[print('<answer>')]"
    # The nearest opening tag starts the call; stray closing tags are skipped.
    assert parser.parse("<search><search>x</search>").action == "search[x]"
    assert parser.parse("</search> oops <search>y</search>").action == "search[y]"


def test_tags_ignore_unknown_tags():
    parser = make_parser("tags", ["search"])
    assert parser.parse("<think>hmm</think><click>Buy</click>").action is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "No complete tag pair found."),
        ("search[red shoes]", "No complete tag pair found."),
        ("<search>red shoes", "<search> is never closed with </search>."),
    ],
)
def test_tags_failure_says_what_was_expected(text, problem):
    result = make_parser("tags", ["search", "answer"]).parse(text)
    assert result == ParsedAction(
        None,
        f"{problem} Reply with one tool call written as <search>...</search>; "
        "tags: <search>, <answer>.",
    )


# ------------------------------------------------------------------------------- json


@pytest.mark.parametrize(
    ("text", "action"),
    [
        (call("calculate", '{"expression": "12*7"}'), "calculate[12*7]"),
        ("Let me compute.\n" + call("calculate", '{"expression": "12*7"}'), "calculate[12*7]"),
        (call("answer", '{"value": 84}'), "answer[84]"),
        (call("answer", '{"value": 2.5}'), "answer[2.5]"),
        (call("answer", '{"value": true}'), "answer[true]"),
        (call("Answer", '{"value": "84"}'), "answer[84]"),
        (call("calculate", '"{\\"expression\\": \\"12*7\\"}"'), "calculate[12*7]"),
        (call("answer", "{}"), "answer[]"),
        (call("answer", "null"), "answer[]"),
        ('<tool_call>{"name": "answer"}</tool_call>', "answer[]"),
        ('<tool_call>{"name": "answer", "parameters": {"x": 1}}</tool_call>', "answer[1]"),
        (
            call("calculate", '{"expression": "1+1", "precision": 2}'),
            'calculate[{"expression": "1+1", "precision": 2}]',
        ),
        (call("calculate", '{"b": [1, 2], "a": "x"}'), 'calculate[{"a": "x", "b": [1, 2]}]'),
        (call("calculate", '{"expression": "line 1\\nline 2"}'), "calculate[line 1\nline 2]"),
    ],
)
def test_json_finds_the_call(text, action):
    assert make_parser("json", CALC).parse(text) == ParsedAction(action, None)


def test_json_takes_the_first_block():
    text = call("calculate", '{"e": "1+1"}') + call("answer", '{"v": 2}')
    assert make_parser("json", CALC).parse(text).action == "calculate[1+1]"
    # A mention of the opening tag before the real block does not swallow it.
    text = "I will write <tool_call> now: " + call("answer", '{"v": 2}')
    assert make_parser("json", CALC).parse(text).action == "answer[2]"


def test_json_without_action_names_takes_any_word_name():
    parser = make_parser("json")
    assert parser.parse(call("Lookup", '{"q": "x"}')).action == "Lookup[x]"
    assert parser.parse(call("look up", '{"q": "x"}')).action is None


HINT = (
    'Reply with one tool call written as <tool_call>{"name": "calculate", "arguments": '
    '{"input": "..."}}</tool_call>; tools: calculate, answer.'
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "No <tool_call>...</tool_call> block found."),
        ("calculate[1+1]", "No <tool_call>...</tool_call> block found."),
        (
            '<tool_call>{"name": "answer", "arguments": {}}',
            "No <tool_call>...</tool_call> block found.",
        ),
        ('<tool_call>{"name": "answer", </tool_call>', "The tool call is not valid JSON."),
        ("<tool_call>[1, 2]</tool_call>", "The tool call must be a JSON object."),
        (
            '<tool_call>{"arguments": {}}</tool_call>',
            'The tool call needs a "name" that is a tool name.',
        ),
        (call("buy", "{}"), "Unknown tool 'buy'."),
        (call("answer", '"{not json"'), '"arguments" is a string that is not valid JSON.'),
        (call("answer", "[84]"), '"arguments" must be a JSON object.'),
        (call("answer", '"84"'), '"arguments" must be a JSON object.'),
    ],
)
def test_json_failure_says_what_was_expected(text, problem):
    assert make_parser("json", CALC).parse(text) == ParsedAction(None, f"{problem} {HINT}")


# ------------------------------------------------------------------ shared behaviour


def test_stop_strings():
    assert make_parser("bracket", WEB).stop_strings() == []
    assert make_parser("tags", ["search", "Answer"]).stop_strings() == ["</search>", "</answer>"]
    assert make_parser("json", CALC).stop_strings() == ["</tool_call>"]


def test_names_and_hints():
    assert PARSERS == ("bracket", "tags", "json", "fenced", "text")
    for kind in ("bracket", "tags", "json"):
        parser = make_parser(kind, ["search", "click"])
        assert parser.name == kind
        assert "search" in parser.format_hint() and "click" in parser.format_hint()


def test_duplicate_names_are_kept_once():
    parser = make_parser("tags", ["search", "SEARCH", "answer"])
    assert parser.stop_strings() == ["</search>", "</answer>"]


@pytest.mark.parametrize(
    ("kind", "names", "message"),
    [
        ("xml", None, "unknown action parser 'xml'; known parsers: bracket, tags, json, fenced"),
        ("tags", None, "the 'tags' parser needs action_names"),
        ("tags", [], "the 'tags' parser needs action_names"),
        ("bracket", [], "action_names is empty"),
        ("json", "search", "action_names must be a list of names"),
        ("bracket", ["search", "red shoes"], "action names must be words"),
        ("tags", ["<search>"], "action names must be words"),
    ],
)
def test_make_parser_rejects_bad_config(kind, names, message):
    with pytest.raises(ConfigError, match=message):
        make_parser(kind, names)


ADVERSARIAL = [
    "[" * 20000,
    "]" * 20000,
    "search[" * 10000,
    "a" * 20000 + "[" * 20000,
    "<search>" * 5000,
    "</search>" * 5000,
    "<tool_call>" * 5000,
    "</tool_call>" * 5000,
    "<tool_call>" + "[" * 20000 + "</tool_call>",
    "<tool_call>" + "{" * 20000 + "</tool_call>",
    "x" * 50000,
    "\x00\ud800\U0001f600 é İ" * 1000,
]


@pytest.mark.parametrize("kind", ["bracket", "tags", "json"])
def test_adversarial_text_never_raises(kind):
    parser = make_parser(kind, ["search", "answer"])
    for text in ADVERSARIAL:
        result = parser.parse(text)
        assert result.action is None and result.error


def test_deeply_nested_brackets_still_parse():
    text = "search[" * 10000 + "x" + "]" * 10000
    assert make_parser("bracket", ["search"]).parse(text).action == text


def test_text_parser_takes_the_whole_reply():
    parser = make_parser("text")
    assert parser.parse("  go north\n") == ParsedAction("go north", None)
    assert parser.parse("   ").action is None and "plain text" in parser.parse("").error
    assert parser.stop_strings() == []
    for text in ADVERSARIAL:
        assert parser.parse(text).action == text.strip()
    with pytest.raises(ConfigError, match="has no action names"):
        make_parser("text", ["search"])


def test_format_hints_show_examples_only_for_actions_there_are():
    examples = {"search": "capital of France", "answer": "Paris"}
    hint = make_parser("tags", ["lookup", "answer"], examples).format_hint()
    assert hint.startswith("Reply with one tool call, e.g. <lookup>...</lookup> or <answer>Paris")
    assert "search" not in hint
    bracket = make_parser("bracket", ["lookup"], examples).format_hint()
    assert bracket == "Reply with one action: lookup[...]."  # no example fits: the template
    assert make_parser("bracket", None, examples).format_hint() == (
        "Reply with one action, e.g. search[capital of France] or answer[Paris]."
    )


def test_fenced_code_runs_and_boxed_or_tagged_answers_answer():
    parser = make_parser("fenced", ["python", "answer"])
    reply = "Let me compute.\n```python\nx = 2 ** 10\nprint(x)\n```\nthen <answer>1</answer>"
    parsed = parser.parse(reply)
    assert parsed.action == "python[x = 2 ** 10\nprint(x)]" and parsed.name == "python"
    assert parser.parse("<answer> 42 </answer> ```py\n1\n```").action == "answer[42]"
    assert parser.parse(r"So it is \boxed{\frac{3}{4}}.").action == r"answer[\boxed{\frac{3}{4}}]"
    cut = parser.parse("```python\nprint(1)")  # cut off by the token limit: not a call
    assert cut.action is None and "never closed" in cut.error
    assert "```python" in parser.parse("hmm").error
    with pytest.raises(ConfigError, match="code action and 'answer'"):
        make_parser("fenced", ["search"])


def test_the_config_chooses_the_action_format(tokenizer):
    from agentrl.engines import ScriptedEngine
    from agentrl.factory import make_manager

    config = agentrl.load_config(None, ["env.name=code", "rollout.action_format=fenced"])
    manager = make_manager(config, ScriptedEngine(tokenizer, ["x"]), tokenizer, "train")
    try:
        assert manager.parser.name == "fenced"
    finally:
        manager.close()
