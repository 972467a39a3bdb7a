"""Answer grading for open-domain QA: exact match and token F1 after SQuAD's answer
normalisation, the best over the gold answers (as Search-R1 and ARPO grade).

    normalize_answer("The  Amber Orchard!")       # "amber orchard"
    exact_match("the amber orchard", ["The Amber Orchard"])   # 1.0
    f1_score("amber orchard of x", ["The Amber Orchard"])     # 0.8

The grader compares strings and nothing else: model text is never evaluated.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_SPECIAL = ("yes", "no", "noanswer")


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation, drop the articles a/an/the, squeeze spaces
    (SQuAD's `normalize_answer`, in its order)."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer."""
    guess = normalize_answer(prediction)
    return float(any(guess == normalize_answer(answer) for answer in answers))


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """The best token F1 over the gold answers: SQuAD's (bags of normalised words) with
    HotpotQA's guard, which ARPO's grader keeps: when either side is "yes", "no" or
    "noanswer", anything but the same word scores 0."""
    normal = normalize_answer(prediction)
    guess = normal.split()
    best = 0.0
    for answer in answers:
        gold_text = normalize_answer(answer)
        if normal != gold_text and (normal in _SPECIAL or gold_text in _SPECIAL):
            continue
        gold = gold_text.split()
        same = sum((Counter(guess) & Counter(gold)).values())
        if same:
            precision, recall = same / len(guess), same / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best
