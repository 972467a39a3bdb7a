"""A safe arithmetic evaluator, and `calculate`, the calculator tool built on it.

    >>> evaluate("12 * (3 + 4)")
    84
    >>> calculate("12 * (3 + 4)")   # the tool: text in, text out, ToolError on bad input
    '84'

Only numbers, `+ - * / // % **`, unary signs and parentheses are accepted, and the
sizes of operands, exponents and results are bounded, so an agent cannot hang the
process with `9**9**9`. Python's `eval` is never used. A third-party evaluator
(simpleeval, numexpr) would bring a dependency for these thirty lines and looser
limits, so it is written here.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable

from agentrl.tools.base import ToolError

MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 64
MAX_MAGNITUDE = 10**30

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, or its value is out of bounds."""


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression.

    Args:
        expression: numbers, + - * / // % ** and parentheses, e.g. 12 * (3 + 4).
    """
    try:
        return str(evaluate(expression))
    except CalculatorError as exc:
        raise ToolError(f"Calculator error: {exc}.") from None


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression; `CalculatorError` says what is wrong."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise CalculatorError(f"cannot parse {expression.strip()!r} as arithmetic") from None
    value = _eval(tree.body)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculatorError(f"exponent {right} is larger than {MAX_EXPONENT}")
        try:
            return _bounded(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        except OverflowError:
            raise CalculatorError("result too large") from None
    raise CalculatorError("only numbers, + - * / // % **, and parentheses are allowed")


def _bounded(value: Number) -> Number:
    if isinstance(value, complex):
        raise CalculatorError("the result is not a real number")
    if abs(value) > MAX_MAGNITUDE:
        raise CalculatorError(f"result is larger than {MAX_MAGNITUDE:.0e}")
    return value
