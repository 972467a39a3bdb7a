"""Entropy-based branching rollout (ARPO, AEPO): the decisions, as pure functions.

    settings = BranchSettings.arpo(samples=16)          # M = 16 paths, N = 8 start
    h_init = probe_entropy(first_turn_entropies, settings.probe_tokens)
    p = branch_probability(probe_entropy(turn_entropies, 20), h_init, settings)
    branch = decide(p, h_t - h_init, settings, u=uniform(seed, task, path, turn))

A task's group is a tree: N global samples start from the prompt; after each env
observation a path generates its next turn, and the mean entropy of that turn's first
k tokens, H_t, against the path's initial entropy H_init (its first turn's first k
tokens) sets the branch probability. A branch copies the path up to and including the
observation and resamples the turn; the original path keeps its turn. Branching stops
when the task has M paths; if every path ends with fewer, fresh global samples top
the group up. The rollout manager calls these functions (`agentrl/rollout/manager.py`);
the maths and the decisions where the released code differs are in docs/algorithms.md:

- the decision uses the entropy of the turn *after* the current observation (the
  released ARPO code uses the previous turn's and never clears its H_init cache);
- AEPO's consecutive-branch count c is kept per path (the released code counts per
  task). A path's c is the number of its consecutive latest decisions that branched;
  a branch inherits its parent's count, the branching decision included.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from agentrl.errors import InvalidArgument
from agentrl.rollout.trajectory import Episode

Method = Literal["arpo", "aepo"]


@dataclass(frozen=True)
class BranchSettings:
    """How one task's tree is grown. Defaults are ARPO's (docs/algorithms.md).

    Attributes:
        method: 'arpo' or 'aepo' (AEPO adds the consecutive-branch penalty and, as an
            option, entropy pre-monitoring).
        samples: M, the paths (leaves) per task.
        initial: N, the global samples that start from the prompt (the rest branch).
        probe_tokens: k, the tokens whose mean entropy is a turn's entropy.
        alpha, beta: P_t = clip(alpha + beta·ΔH_t, 0, 1).
        threshold: deterministic variant: branch iff alpha + beta·ΔH_t (penalised for
            AEPO) > threshold, no draw. None: draw u ~ U(0, 1), branch iff u < P_t.
        copies: Z, new paths per branch decision (ARPO's beam size minus one).
        penalty: AEPO's per-consecutive-branch factor: P_t ·= max(0, 1 − penalty·c).
        premonitor: AEPO's entropy pre-monitoring sets the global count from one probe
            episode instead of `initial`.
    """

    method: Method = "arpo"
    samples: int = 16
    initial: int = 8
    probe_tokens: int = 20
    alpha: float = 0.5
    beta: float = 0.35
    threshold: float | None = None
    copies: int = 1
    penalty: float = 0.0
    premonitor: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.method not in ("arpo", "aepo"):
            problems.append(f"method must be 'arpo' or 'aepo'; got {self.method!r}")
        if self.samples < 1:
            problems.append(f"samples (M) must be >= 1; got {self.samples}")
        if not 1 <= self.initial <= self.samples:
            problems.append(
                f"initial (N) must be in [1, samples={self.samples}]; got {self.initial}"
            )
        if self.probe_tokens < 1:
            problems.append(f"probe_tokens (k) must be >= 1; got {self.probe_tokens}")
        if self.copies < 1:
            problems.append(f"copies (Z) must be >= 1; got {self.copies}")
        if self.penalty < 0:
            problems.append(f"penalty must be >= 0; got {self.penalty}")
        if self.method == "arpo" and (self.penalty or self.premonitor):
            problems.append("penalty and premonitor are AEPO's; use method='aepo'")
        if problems:
            raise InvalidArgument("BranchSettings: " + "; ".join(problems))

    @classmethod
    def arpo(cls, samples: int = 16, **overrides: object) -> BranchSettings:
        """ARPO: N = M/2 global samples, P_t = clip(0.5 + 0.35·ΔH_t, 0, 1)."""
        overrides.setdefault("initial", max(1, samples // 2))
        return cls(method="arpo", samples=samples, **overrides)  # type: ignore[arg-type]

    @classmethod
    def aepo(cls, samples: int = 16, **overrides: object) -> BranchSettings:
        """AEPO: ARPO plus the consecutive-branch penalty 0.05 per branch."""
        overrides.setdefault("initial", max(1, samples // 2))
        overrides.setdefault("penalty", 0.05)
        return cls(method="aepo", samples=samples, **overrides)  # type: ignore[arg-type]


def probe_entropy(entropies: Sequence[float | None], k: int = 20) -> float:
    """Mean entropy of a turn's first k sampled tokens (all of them if fewer; 0 if none)."""
    values = [float(h) for h in entropies[:k] if h is not None]
    return sum(values) / len(values) if values else 0.0


def branch_probability(
    h_turn: float, h_init: float, settings: BranchSettings, consecutive: int = 0
) -> float:
    """P_t = clip(α + β·(H_t − H_init), 0, 1); AEPO multiplies α + β·ΔH_t by
    max(0, 1 − penalty·c) before clipping, c the path's consecutive branches."""
    value = _score(h_turn, h_init, settings, consecutive)
    return min(1.0, max(0.0, value))


def _score(h_turn: float, h_init: float, settings: BranchSettings, consecutive: int) -> float:
    if consecutive < 0:
        raise InvalidArgument(f"consecutive branch count must be >= 0; got {consecutive}")
    value = settings.alpha + settings.beta * (h_turn - h_init)
    if settings.penalty:
        value *= max(0.0, 1.0 - settings.penalty * consecutive)
    return value


def decide(
    h_turn: float,
    h_init: float,
    settings: BranchSettings,
    consecutive: int = 0,
    u: float | None = None,
) -> tuple[float, bool]:
    """(P_t, whether to branch). Random variant: branch iff u < P_t (u from `uniform`);
    deterministic variant (settings.threshold set): branch iff the unclipped score
    α + β·ΔH_t (penalised for AEPO) exceeds the threshold, and u is not used."""
    probability = branch_probability(h_turn, h_init, settings, consecutive)
    if settings.threshold is not None:
        return probability, _score(h_turn, h_init, settings, consecutive) > settings.threshold
    if u is None or not 0.0 <= u < 1.0:
        raise InvalidArgument(f"decide needs a draw u in [0, 1); got {u!r}")
    return probability, u < probability


def uniform(seed: int, *keys: int | str) -> float:
    """A U(0, 1) draw fixed by (seed, keys): the same decision gets the same draw
    whatever order the paths reach it in."""
    words = [seed & 0xFFFFFFFF]
    for key in keys:
        if isinstance(key, str):
            words += list(key.encode())
        else:
            words.append(key & 0xFFFFFFFF)
    return float(np.random.default_rng(words).random())


def premonitor_globals(h_root: float, h_tool: float, samples: int) -> int:
    """AEPO's global sample count m = clip(int(M·σ(0.5·(H_root − H̄_tool))) + 1, 1, M):
    more global samples when the prompt is more uncertain than the tool turns."""
    sigma = 1.0 / (1.0 + math.exp(-0.5 * (h_root - h_tool)))
    return min(samples, max(1, int(samples * sigma) + 1))


class TreeBudget:
    """Paths of one task: at most `samples` (M); a branch reserves its copies."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.paths = 0

    @property
    def left(self) -> int:
        return self.samples - self.paths

    def start(self, count: int) -> int:
        """Reserve up to `count` new paths; returns how many were granted."""
        granted = max(0, min(count, self.left))
        self.paths += granted
        return granted


@dataclass
class PathState:
    """What a path carries from turn to turn for its branch decisions."""

    h_init: float | None = None
    consecutive: int = 0


def tree_metrics(episodes: Sequence[Episode]) -> dict[str, float]:
    """Branch statistics of the leaves of one or more task trees:

    - `branch_rate`: decisions that branched per decision taken (a decision is taken
      while the task has budget left), and `branch_rate/turn{t}` per turn;
    - `branches_per_task`: paths created by branching, per task;
    - `top3_branch_share`: per task, the share of its branches that hang off its three
      most-branched paths (AEPO's collapse statistic; lower is better), averaged over
      the tasks that branched;
    - `tool_calls_per_task`: env tool calls run (a branch's copied prefix is not run again);
    - `decoded_per_leaf`, `prefilled_per_leaf`: tokens each leaf's own requests decoded,
      and prompt tokens the engine computed for them (not served from its prefix cache).
    """
    checks: Counter[int] = Counter()
    decisions: set[tuple[str, int]] = set()
    tasks: dict[int, list[Episode]] = {}
    for e in episodes:
        tasks.setdefault(e.task_index, []).append(e)
        checks.update(e.branch_checks)
        if e.parent is not None and e.branch_turn is not None:
            decisions.add((e.parent, e.branch_turn))
    branched = Counter(turn for _, turn in decisions)
    shares, children = [], 0
    for leaves in tasks.values():
        by_parent = Counter(e.parent for e in leaves if e.parent is not None)
        total = sum(by_parent.values())
        children += total
        if total:
            shares.append(sum(n for _, n in by_parent.most_common(3)) / total)
    n_leaves, n_tasks = max(len(episodes), 1), max(len(tasks), 1)
    metrics = {
        "branch_rate": len(decisions) / max(sum(checks.values()), 1),
        "branches_per_task": children / n_tasks,
        "top3_branch_share": sum(shares) / len(shares) if shares else 0.0,
        "tool_calls_per_task": sum(e.num_tool_calls - e.inherited_tool_calls for e in episodes)
        / n_tasks,
        "decoded_per_leaf": sum(e.decoded_tokens for e in episodes) / n_leaves,
        "prefilled_per_leaf": sum(e.prefill_tokens for e in episodes) / n_leaves,
    }
    for turn in sorted(checks):
        metrics[f"branch_rate/turn{turn}"] = branched[turn] / checks[turn]
    return metrics
