"""Close matches for a mistyped name: every "did you mean" of agentrl comes from here.

    close_matches("temprature", ["temperature", "top_p"])   # ['temperature']
    did_you_mean("gues", {"agentrl/Guess-v0": "Guess"})      # " Did you mean 'agentrl/Guess-v0'?"

Names are compared by rapidfuzz's normalised Indel similarity (`fuzz.ratio`, 0-100)
after lower-casing and dropping everything but letters and digits, so case, `-`, `_`
and `/` never count as typos; choices scoring under 60 are not offered. That is about
difflib's `get_close_matches` cut-off (0.6) without its quadratic matcher, and it stays
quiet where a partial-match scorer (`WRatio`) would offer `max_turns` for `x`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from rapidfuzz import fuzz, process

CUTOFF = 60


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def close_matches(
    word: object, choices: Iterable[str] | Mapping[str, str], *, n: int = 1
) -> list[str]:
    """Up to `n` of `choices` that look like `word`, best first (ties in the choices'
    order). A mapping offers its keys and compares its values (e.g. env ids by their
    names)."""
    table = dict(choices) if isinstance(choices, Mapping) else {c: c for c in choices}
    if not table:
        return []
    scored = process.extract(
        str(word), table, scorer=fuzz.ratio, processor=_normalise, limit=n, score_cutoff=CUTOFF
    )
    return [key for _, _, key in scored]


def did_you_mean(word: object, choices: Iterable[str] | Mapping[str, str], *, n: int = 1) -> str:
    """ " Did you mean 'a'?" (or "'a' or 'b'" for several) for the close matches of
    `word`; "" when none is close."""
    close = close_matches(word, choices, n=n)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
