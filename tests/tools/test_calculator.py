"""The calculator tool: arithmetic only, with bounds."""

from __future__ import annotations

import pytest
from agentrl.tools.calculator import CalculatorError, evaluate


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("12 * (3 + 4)", 84),
        ("7 / 2", 3.5),
        ("8 / 2", 4),
        ("-3 ** 2", -9),
        ("17 // 5 + 17 % 5", 5),
        ("2 ** 10", 1024),
        (" 1.5 + 1.5 ", 3),
    ],
)
def test_arithmetic(expression, value):
    result = evaluate(expression)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "only numbers"),
        ("x + 1", "only numbers"),
        ("1 / 0", "division by zero"),
        ("9 ** 9 ** 9", "exponent"),
        ("10 ** 40", "larger than"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 +", "cannot parse"),
        ("1" * 201, "longer than"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
    ],
)
def test_rejects_anything_but_bounded_arithmetic(expression, message):
    with pytest.raises(CalculatorError, match=message):
        evaluate(expression)
