"""Scripted search-env policies: an oracle, a one-search reader, and closed-book guessing.

    policy = oracle_policy            # or top_passage_policy, closed_book_policy(seed)
    obs, info = env.reset(seed=0)
    while not env.done:
        env.step(policy(env))

Each policy maps the env's state to an action. `oracle_policy` reads the question's gold
chain (`env.question.chain`): it searches each page's title in order and answers the
gold answer only if every page came back, so it measures whether the questions can be
solved with the retriever, not an agent (questions from `data_dir` have no chain: it
answers at once). `top_passage_policy` searches the question itself and answers with the
first span of the top passage that could answer it (a year for "what year", otherwise a
capitalised name the question does not contain). `closed_book_policy` never searches:
it guesses one of the two names of a comparison, a year, or a name from the question,
which is what answering without the corpus is worth.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
from agentrl.envs.search.env import SearchEnv
from agentrl.tools.search import split_contents

from agentrl.core import play  # noqa: F401 (re-exported: baselines are scored with it)
from agentrl.errors import ResetNeeded

Policy = Callable[[SearchEnv], str]

_YEAR = re.compile(r"\b\d{4}\b")
_NAME = re.compile(r"(?:The )?[A-Z][a-z]+(?: (?:of )?[A-Z][a-z]+)*")
_OPTIONS = re.compile(r",\s*(.+?) or (.+?)\?$")
_FIRST_DOC = re.compile(r"Doc 1\(Title: (.*?)\) (.*?)(?:\nDoc 2\(|</|\n?$)", re.DOTALL)


def _question(env: SearchEnv):
    if env.question is None:
        raise ResetNeeded("a search baseline needs an env that has been reset; call reset().")
    return env.question


def oracle_policy(env: SearchEnv) -> str:
    """Search each page of the gold chain by its title; answer gold if all were found."""
    question = _question(env)
    searched = len(env.results)
    if searched < len(question.chain):
        return f"search[{question.chain[searched]}]"
    found = all(
        f'(Title: "{title}")' in result
        for title, result in zip(question.chain, env.results, strict=True)
    )
    return f"answer[{question.answers[0] if found else 'not found'}]"


def top_passage_policy(env: SearchEnv) -> str:
    """Search the question; answer with the top passage's first fitting span."""
    question = _question(env).question
    if not env.results:
        return f"search[{question}]"
    match = _FIRST_DOC.search(env.results[0])
    text = split_contents(f"{match.group(1)}\n{match.group(2)}")[1] if match else ""
    if "year" in question.lower():
        spans = [y for y in _YEAR.findall(text) if y not in question]
    else:
        spans = [n for n in _NAME.findall(text) if n not in question]
    return f"answer[{spans[0] if spans else 'unknown'}]"


def closed_book_policy(seed: int = 0) -> Policy:
    """Answer at once, without searching: a seeded guess of the right shape."""
    rng = np.random.default_rng(seed)

    def policy(env: SearchEnv) -> str:
        question = _question(env).question
        options = _OPTIONS.search(question)
        if options:
            return f"answer[{options.group(int(rng.integers(1, 3)))}]"
        if "year" in question.lower():
            return f"answer[{int(rng.integers(1780, 2050))}]"
        names = _NAME.findall(question) or ["unknown"]
        return f"answer[{names[int(rng.integers(len(names)))]}]"

    return policy
