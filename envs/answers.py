"""Reading final answers out of model text, shared by the envs that grade answers.

    last_boxed(r"so \\boxed{42}.")        # "42"
    parse_number("1,234.5")              # Fraction(2469, 2)
    parse_number(r"-\\frac{3}{4}")        # Fraction(-3, 4)

Nothing here runs model text: numbers are read with patterns and arithmetic with a
small interpreter of its own (`arithmetic`), never with `eval` or `sympify` (a grader
that runs model text can be made to print any reward).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from fractions import Fraction

_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_ANY_EXPRESSION = re.compile(r"[-(]*\d[\d.\s+\-*/^()]*")


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` in `text` (braces balanced), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j].strip()
    return None


def parse_number(text: str, lenient: bool = True) -> Fraction | None:
    """The number `text` states: an integer, a decimal, `a/b`, `\\frac{a}{b}`, or an
    arithmetic expression of them (`2^{10}`, `3 \\cdot (4 + 5)`; see `arithmetic`), in
    `\\boxed{}` or not, with thousands commas, `$` and a trailing period allowed; with
    `lenient`, otherwise the last number in the text ("The answer is 42." -> 42). None
    when there is none."""
    boxed = last_boxed(text)
    text = (boxed if boxed is not None else text).strip()
    cleaned = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text).replace("$", "").strip().rstrip(".")
    cleaned = cleaned.replace("\\!", "").replace("{,}", "").strip()
    value = _exact(cleaned)
    if value is None:
        value = arithmetic(cleaned)
    if value is not None or not lenient:
        return value
    if re.fullmatch(r"[\d\s.,+\-*/^(){}eE]+", cleaned):  # arithmetic it refused: no guess
        return None
    # the last number, or arithmetic, in prose (in its last 1,000 characters: the pattern
    # is quadratic on long runs of "(" or "-")
    found = _ANY_EXPRESSION.findall(cleaned[-1000:])
    if not found:
        return None
    last = found[-1].strip().rstrip(".").strip()
    value = _exact(last)
    if value is None:
        value = arithmetic(last)
    if value is None:  # "42 (approximately)": the expression pattern took a stray "("
        numbers = re.findall(_NUMBER, last)
        value = _exact(numbers[-1]) if numbers else None
    return value


def _exact(text: str) -> Fraction | None:
    if len(text) > 200 or any(abs(int(e)) > 400 for e in re.findall(r"[eE]([-+]?\d+)", text)):
        return None  # 1e999999999 would take the grader's memory, not just its time
    return Fraction(text) if re.fullmatch(_NUMBER, text) else None  # a/b: `arithmetic`


_LATEX = (
    (re.compile(r"\\d?frac\{([^{}]*)\}\{([^{}]*)\}"), r"((\1)/(\2))"),
    (re.compile(r"\\(?:cdot|times)"), "*"),
    (re.compile(r"\\left|\\right"), ""),
)
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def arithmetic(text: str) -> Fraction | None:
    """The exact value of an arithmetic expression: numbers, + - * / ^ (or **) and
    parentheses, LaTeX's \\frac, \\cdot, \\times and braces. Read with Python's
    parser and computed node by node over fractions, refusing anything else (names,
    calls, attributes): no model text is ever run. Exponents are integers up to 1,000
    and results below 10^1000, so no answer can take the grader's memory or time."""
    if len(text) > 200:
        return None
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    text = text.replace("{", "(").replace("}", ")").replace("^", "**")
    try:
        tree = ast.parse(text, mode="eval")
        return _value(tree.body, text)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def _value(node: ast.AST, source: str) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        # from its digits, exactly (a float would round 0.1000000000000000001), with the
        # exponent limits of plain numbers
        value = _exact(ast.get_source_segment(source, node) or "")
        if value is None:
            raise ValueError("not a number this grader reads")
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _value(node.operand, source)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        base, exponent = _value(node.left, source), _value(node.right, source)
        if exponent.denominator != 1 or abs(exponent) > 1000:
            raise ValueError("only integer exponents up to 1000")
        size = max(math.log10(abs(base.numerator) or 1), math.log10(base.denominator))
        if abs(exponent) * size >= 1000:  # digits of the result
            raise ValueError("too large")
        return base ** int(exponent)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        result = _OPERATORS[type(node.op)](_value(node.left, source), _value(node.right, source))
        if max(len(str(abs(result.numerator))), len(str(result.denominator))) > 1000:
            raise ValueError("too large")
        return result
    raise ValueError(f"not arithmetic: {type(node).__name__}")
