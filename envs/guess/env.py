"""Number guessing: find a secret number from "higher" / "lower" hints.

The tutorial env: docs/adding-an-env.md walks through this file.

    env = agentrl.make("guess", split="train")
    obs, info = env.reset(seed=0)      # "I am thinking of a whole number from 1 to ..."
    obs, reward, terminated, truncated, info = env.step("guess[5]")   # "Higher.", "Lower."

A task is a pair (upper bound, secret). Every pair for the bounds in `RANGES` is
enumerated once, shuffled with a fixed seed and cut into train / valid / test, so the
splits are disjoint by construction. Reward 1 for finding the number, 0 otherwise.
Binary search always succeeds within the default budget of 10 guesses.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from agentrl.core import InvalidAction, Outcome, Split, TextEnv

RANGES = (10, 20, 50, 100)
SPLIT_FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}
# At most 9 digits: a longer number is out of range anyway, and int() of thousands of
# digits raises instead of answering.
_ACTION = re.compile(r"\s*guess\s*\[\s*(-?\d{1,9})\s*\]\s*", re.IGNORECASE)


@functools.cache
def _tasks() -> dict[str, list[tuple[int, int]]]:
    """(upper bound, secret) pairs per split: a fixed shuffle of every pair, cut in three."""
    pairs = [(high, secret) for high in RANGES for secret in range(1, high + 1)]
    order = np.random.default_rng(20261122).permutation(len(pairs))
    shuffled = [pairs[i] for i in order]
    n_train = int(len(pairs) * SPLIT_FRACTIONS["train"])
    n_valid = int(len(pairs) * SPLIT_FRACTIONS["valid"])
    return {
        "train": shuffled[:n_train],
        "valid": shuffled[n_train : n_train + n_valid],
        "test": shuffled[n_train + n_valid :],
    }


class GuessEnv(TextEnv):
    """Find a secret whole number from higher/lower hints; reply with guess[N]."""

    default_max_turns = 10
    instructions = (
        "You are playing a number guessing game. Guess the secret number; after each "
        "guess you are told whether it is higher or lower."
    )
    action_names = ("guess",)

    def __init__(
        self, split: Split = "train", max_turns: int | None = None, render_mode: str | None = None
    ) -> None:
        super().__init__(split=split, max_turns=max_turns, render_mode=render_mode)
        self.high = self.secret = 0
        self.low_bound = self.high_bound = 0

    def num_tasks(self, split: Split) -> int:
        return len(_tasks()[split])

    def task_id(self, split: Split, index: int) -> str:
        high, secret = _tasks()[split][index]
        return f"guess-{high}-{secret}"

    def load_task(self, split: Split, index: int) -> str:
        self.high, self.secret = _tasks()[split][index]
        self.low_bound, self.high_bound = 1, self.high  # what the hints so far allow
        return (
            f"I am thinking of a whole number from 1 to {self.high}. Find it in at most "
            f"{self.max_turns} guesses. Reply with guess[N]; after each guess I say "
            "whether the number is higher or lower."
        )

    def act(self, action: str) -> Outcome:
        match = _ACTION.fullmatch(action)
        if match is None:
            raise InvalidAction(
                f"Invalid action {action[:80]!r}. Reply with guess[N], N a whole number "
                f"from 1 to {self.high}, e.g. guess[{(1 + self.high) // 2}]."
            )
        number = int(match.group(1))
        if not 1 <= number <= self.high:
            raise InvalidAction(f"{number} is out of range: guess a number from 1 to {self.high}.")
        if number == self.secret:
            return Outcome(
                f"Correct! The number was {number}.", reward=1.0, terminated=True, success=True
            )
        if number < self.secret:
            self.low_bound = max(self.low_bound, number + 1)
            return Outcome("Higher.")
        self.high_bound = min(self.high_bound, number - 1)
        return Outcome("Lower.")

    def valid_actions(self) -> list[str]:
        middle = (self.low_bound + self.high_bound) // 2
        numbers = sorted({self.low_bound, middle, self.high_bound})
        return [f"guess[{n}]" for n in numbers]
