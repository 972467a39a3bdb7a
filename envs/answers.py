"""Reading final answers out of model text, shared by the envs that grade answers.

    last_boxed(r"so \\boxed{42}.")        # "42"
    parse_number("1,234.5")              # Fraction(2469, 2)
    parse_number(r"-\\frac{3}{4}")        # Fraction(-3, 4)

Nothing here evaluates model text: numbers are read with patterns, never with `eval`
or `sympify` (a grader that runs model text can be made to print any reward).
"""

from __future__ import annotations

import re
from fractions import Fraction

_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_FRACTION = re.compile(rf"^({_NUMBER})\s*/\s*({_NUMBER})$")
_LATEX_FRACTION = re.compile(r"^(-?)\\d?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}$")
_ANY_NUMBER = re.compile(rf"{_NUMBER}(?:\s*/\s*\d+)?")


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
    """The number `text` states: an integer, a decimal, `a/b`, `\\frac{a}{b}`, in
    `\\boxed{}` or not, with thousands commas, `$` and a trailing period allowed; with
    `lenient`, otherwise the last number in the text ("The answer is 42." -> 42). None
    when there is none."""
    boxed = last_boxed(text)
    text = (boxed if boxed is not None else text).strip()
    cleaned = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text).replace("$", "").strip().rstrip(".")
    cleaned = cleaned.replace("\\!", "").replace("{,}", "").strip()
    value = _exact(cleaned)
    if value is not None or not lenient:
        return value
    found = _ANY_NUMBER.findall(cleaned)
    return _exact(found[-1].strip()) if found else None


def _exact(text: str) -> Fraction | None:
    if len(text) > 200 or any(abs(int(e)) > 400 for e in re.findall(r"[eE]([-+]?\d+)", text)):
        return None  # 1e999999999 would take the grader's memory, not just its time
    if re.fullmatch(_NUMBER, text):
        return Fraction(text)
    match = _FRACTION.match(text)
    if match and Fraction(match.group(2)) != 0:
        return Fraction(match.group(1)) / Fraction(match.group(2))
    match = _LATEX_FRACTION.match(text)
    if match and int(match.group(3)) != 0:
        value = Fraction(int(match.group(2)), int(match.group(3)))
        return -value if match.group(1) else value
    return None
