"""Trajectory records: one episode per JSONL line, exactly the tokens the model saw.

    with EpisodeWriter("traj.jsonl") as writer:
        writer.write(episode)             # checked, then flushed: a crash loses nothing written
    episodes = read_episodes("traj.jsonl")

`token_ids`, `loss_mask`, `logprobs`, `entropies` and `turn_index` are aligned: one
entry per token of the episode's sequence. Sampled tokens have loss mask 1 and their
logprob and entropy; prompt, template and observation tokens have mask 0 and null
logprob and entropy. `turn_index` is the turn a token belongs to (0 for the prompt,
t for the model's t-th turn and the observation that answers it). `parent`,
`branch_turn` and `branch_token_index` place a branched episode in its task's tree.
Lines are written as episodes finish, so their order follows completion, not tasks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

from agentrl.errors import AgentRLError


class TrajectoryFormatError(AgentRLError, ValueError):
    """A trajectory file line that is not a valid episode record."""


@dataclass
class Episode:
    """One finished episode: its outcome and its token sequence."""

    episode_id: str
    """Unique id within a rollout, e.g. 'guess-20-7/s3'."""
    env_id: str
    """The registered env id."""
    task_id: str
    """The env's id of the task."""
    split: str
    """The split the task comes from."""
    seed: int | None
    """The seed the env was reset with."""
    task_index: int
    """The task's index in its split."""
    sample_index: int
    """Which of the task's samples this is (0 .. G-1)."""
    reward: float = 0.0
    """Sum of the env's rewards over the episode."""
    success: bool = False
    """Whether the env reported the task solved."""
    terminated: bool = False
    """The task ended (answer given, item bought)."""
    truncated: bool = False
    """A budget ran out: turns, tokens per turn, or context."""
    num_turns: int = 0
    """Turns the model took."""
    num_tool_calls: int = 0
    """Steps the env marked as tool calls (info['tool_call'])."""
    num_invalid_actions: int = 0
    """Turns whose output could not be parsed or that the env rejected."""
    error: str | None = None
    """The exception that ended the episode, if any (the batch went on)."""
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    entropies: list[float | None] = field(default_factory=list)
    turn_index: list[int] = field(default_factory=list)
    prompt_length: int = 0
    """Tokens of the initial prompt (system prompt, task, assistant header)."""
    entropy_exact: bool = True
    """False when entropies were estimated from top-k logprobs."""
    truncation: str | None = None
    """What ran out when truncated: 'turns', 'context' or 'env'."""
    info: dict[str, Any] = field(default_factory=dict)
    """The env's final info (reward components)."""
    step_rewards: list[float] = field(default_factory=list)
    """Reward of each turn's env step (0 for a turn whose output did not parse)."""
    observation_hashes: list[int] = field(default_factory=list)
    """CRC32 of the observation each turn answered (the task for turn 1): GiGPO's states."""
    parent: str | None = None
    """Episode id this one branched from (None for a root sample)."""
    branch_turn: int | None = None
    """Turn at which it branched from its parent."""
    branch_token_index: int | None = None
    """Tokens shared with the parent (the branch point in token_ids)."""
    initial_entropy: float | None = None
    """Branching: H_init, the mean entropy of the first turn's first k tokens."""
    branch_checks: list[int] = field(default_factory=list)
    """Branching: turns at which this path drew a branch decision."""
    branch_probs: list[float] = field(default_factory=list)
    """Branching: the branch probability P_t of each of those decisions."""
    inherited_tool_calls: int = 0
    """Branching: tool calls in the prefix copied from the parent (not run again)."""
    decoded_tokens: int = 0
    """Tokens this path's own engine requests decoded (a branch excludes its parent's)."""
    prefill_tokens: int = 0
    """Prompt tokens the engine computed for this path's requests (not served from its
    prefix cache)."""
    generate_s: float = 0.0
    """Seconds spent waiting for the engine."""
    env_s: float = 0.0
    """Seconds spent in env reset and steps."""

    def append(
        self,
        ids: list[int],
        mask: int,
        turn: int,
        logprobs: list[float] | None = None,
        entropies: list[float] | None = None,
    ) -> None:
        """Add tokens: sampled ones with their logprobs and entropies, others with None."""
        self.token_ids += ids
        self.loss_mask += [mask] * len(ids)
        self.turn_index += [turn] * len(ids)
        self.logprobs += logprobs if logprobs is not None else [None] * len(ids)
        self.entropies += entropies if entropies is not None else [None] * len(ids)

    def entropies_by_turn(self) -> dict[int, list[float]]:
        """The sampled tokens' entropies, grouped by turn (turns in order)."""
        turns: dict[int, list[float]] = {}
        for mask, turn, entropy in zip(
            self.loss_mask, self.turn_index, self.entropies, strict=True
        ):
            if mask:
                turns.setdefault(turn, []).append(float(entropy or 0.0))
        return turns

    @property
    def num_generated(self) -> int:
        """Tokens the model sampled."""
        return sum(self.loss_mask)

    def check(self) -> None:
        """Raise `TrajectoryFormatError` naming the first field that is not as documented."""
        name = f"episode {self.episode_id}"
        n = len(self.token_ids)
        lengths = {
            key: len(getattr(self, key))
            for key in ("loss_mask", "logprobs", "entropies", "turn_index")
        }
        bad = {key: length for key, length in lengths.items() if length != n}
        if bad:
            raise TrajectoryFormatError(f"{name}: {n} token_ids but {bad}")
        for key, kind in (
            ("reward", (int, float)),
            ("success", bool),
            ("terminated", bool),
            ("truncated", bool),
            ("num_turns", int),
            ("prompt_length", int),
        ):
            value = getattr(self, key)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise TrajectoryFormatError(f"{name}: {key} must be {kind}; got {value!r}")
        if not math.isfinite(self.reward):
            raise TrajectoryFormatError(f"{name}: reward must be finite; got {self.reward}")
        if not 0 <= self.prompt_length <= n:
            raise TrajectoryFormatError(
                f"{name}: prompt_length {self.prompt_length} is outside [0, {n}]"
            )
        if (self.parent is None) != (self.branch_token_index is None) or (self.parent is None) != (
            self.branch_turn is None
        ):
            raise TrajectoryFormatError(
                f"{name}: parent, branch_turn and branch_token_index are set together or not at all"
            )
        if self.branch_token_index is not None and not (
            self.prompt_length <= self.branch_token_index <= n
        ):
            raise TrajectoryFormatError(
                f"{name}: branch_token_index {self.branch_token_index} is outside "
                f"[prompt_length, {n}]"
            )
        if len(self.branch_checks) != len(self.branch_probs):
            raise TrajectoryFormatError(
                f"{name}: {len(self.branch_checks)} branch_checks but "
                f"{len(self.branch_probs)} branch_probs"
            )
        previous_turn = 0
        for i in range(n):
            token, mask, turn = self.token_ids[i], self.loss_mask[i], self.turn_index[i]
            if not isinstance(token, int) or isinstance(token, bool) or token < 0:
                raise TrajectoryFormatError(f"{name}: token {i} is {token!r}, not a token id")
            if mask not in (0, 1) or isinstance(mask, bool):
                raise TrajectoryFormatError(f"{name}: token {i} has loss mask {mask!r}")
            for key, label in (("logprobs", "logprob"), ("entropies", "entropy")):
                value = getattr(self, key)[i]
                if (mask == 1) != (value is not None):
                    raise TrajectoryFormatError(
                        f"{name}: token {i} has loss mask {mask} but {label} {value}"
                    )
                if value is not None and not (isinstance(value, float) and math.isfinite(value)):
                    raise TrajectoryFormatError(f"{name}: token {i} has {label} {value!r}")
            if not isinstance(turn, int) or turn < previous_turn:
                raise TrajectoryFormatError(
                    f"{name}: turn_index must be non-decreasing integers; token {i} has {turn!r}"
                )
            previous_turn = turn

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrajectoryFormatError(f"unknown fields {unknown}")
        try:
            episode = cls(**data)
        except TypeError as exc:
            raise TrajectoryFormatError(str(exc)) from None
        episode.check()
        return episode


class EpisodeWriter:
    """Appends episodes to a JSONL file, one flushed line each."""

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = self.path.open("a" if append else "w", encoding="utf-8")
        self.count = 0

    def write(self, episode: Episode) -> None:
        episode.check()
        self._file.write(episode.to_json() + "\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_episodes(path: str | Path, episodes: Iterable[Episode]) -> int:
    """Write episodes to a JSONL file (replacing it); returns how many."""
    with EpisodeWriter(path) as writer:
        for episode in episodes:
            writer.write(episode)
        return writer.count


def iter_episodes(path: str | Path) -> Iterator[Episode]:
    """Episodes of a JSONL file, validated; errors name the line."""
    with Path(path).open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise TrajectoryFormatError(
                        f"expected a JSON object; got {type(data).__name__}"
                    )
                yield Episode.from_dict(data)
            except (json.JSONDecodeError, TrajectoryFormatError) as exc:
                raise TrajectoryFormatError(
                    f"{path}:{number}: not an episode record: {exc}"
                ) from None


def read_episodes(path: str | Path) -> list[Episode]:
    """All episodes of a JSONL file."""
    return list(iter_episodes(path))
