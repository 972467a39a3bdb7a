"""Advantage estimators: GRPO / Dr.GRPO, EMPG, GiGPO, and ARPO's tree attribution.

Each registered estimator is a pure function `fn(batch: AdvantageInput, *, **hparams)`
that returns one advantage per *turn* [K]; the trainer broadcasts a turn's value to the
tokens the model generated in it. Episode-level methods give every turn of episode i the
episode's A_i. The maths and the defaults are those of `docs/algorithms.md`.

Letters: N episodes, K turns over all episodes, L leaves of one ARPO tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from agentrl.algos.registry import register_advantage
from agentrl.errors import InvalidArgument


@dataclass
class AdvantageInput:
    """Everything an advantage estimator may read, for N episodes holding K turns."""

    rewards: Tensor  # [N] episode returns
    groups: Tensor  # [N] int group id (episodes of the same task share it)
    turn_episode: Tensor  # [K] episode index of each turn (all turns of all episodes)
    turn_index: Tensor  # [K] 1-based turn number within its episode
    turn_entropy: Tensor  # [K] mean token entropy of that turn under the sampling policy
    turn_reward: Tensor  # [K] env reward of that step (for GiGPO step returns)
    turn_state: Tensor  # [K] int hash of the observation the turn answered (GiGPO step groups)

    def __post_init__(self) -> None:
        n, k = self.rewards.shape[0], self.turn_episode.shape[0]
        problems = []
        if tuple(self.groups.shape) != (n,):
            problems.append(f"groups has shape {tuple(self.groups.shape)}, expected ({n},)")
        for field in ("turn_index", "turn_entropy", "turn_reward", "turn_state"):
            shape = tuple(getattr(self, field).shape)
            if shape != (k,):
                problems.append(f"{field} has shape {shape}, expected ({k},) like turn_episode")
        if k and (int(self.turn_episode.min()) < 0 or int(self.turn_episode.max()) >= n):
            problems.append(f"turn_episode must index the {n} episodes (0..{n - 1})")
        if problems:
            raise InvalidArgument("AdvantageInput: " + "; ".join(problems))


def _float(values: Tensor) -> Tensor:
    return values if values.is_floating_point() else values.float()


def _group_mean(values: Tensor, ids: Tensor) -> Tensor:
    """Each element's mean over the elements sharing its id."""
    _, inverse = torch.unique(ids, dim=0, return_inverse=True)  # [M]
    size = int(inverse.max()) + 1 if inverse.numel() else 0
    sums = values.new_zeros(size).index_add_(0, inverse, values)  # [G]
    counts = values.new_zeros(size).index_add_(0, inverse, torch.ones_like(values))  # [G]
    return (sums / counts)[inverse]  # [M]


def episode_grpo(
    rewards: Tensor, groups: Tensor, *, eps: float = 1e-6, normalize_std: bool = True
) -> Tensor:
    """A_i = (R_i − mean_g R) / (std_g R + eps) per episode [N]; std is the population std."""
    rewards = _float(rewards)  # [N]
    centred = rewards - _group_mean(rewards, groups)  # [N]
    if not normalize_std:
        return centred
    std = _group_mean(centred.square(), groups).sqrt()  # [N]
    return centred / (std + eps)  # [N]


def overlong_penalty(
    lengths: Tensor, *, max_length: int, buffer: int, penalty: float = 1.0
) -> Tensor:
    """DAPO's soft overlong punishment, added to the reward of each response [N].

    0 for a length up to max_length − buffer, then falling linearly to −penalty at
    max_length (−penalty·(|y| − (max_length − buffer))/buffer), −penalty beyond it.
    buffer = 0 punishes only lengths over max_length.
    """
    if max_length < 1 or not 0 <= buffer <= max_length:
        raise InvalidArgument(
            f"overlong_penalty: need max_length >= 1 and 0 <= buffer <= max_length, "
            f"got max_length={max_length}, buffer={buffer}"
        )
    lengths = _float(lengths)  # [N]
    start = max_length - buffer
    ramp = (lengths - start).clamp_min(0) / max(buffer, 1)  # [N]
    shaped = torch.where(lengths > max_length, torch.ones_like(ramp), ramp.clamp_max(1.0))
    return -penalty * shaped  # [N]


@register_advantage("grpo")
def grpo(batch: AdvantageInput, *, eps: float = 1e-6, normalize_std: bool = True) -> Tensor:
    """GRPO: group-normalised episode return, the same for every turn of the episode.

    The group std is the population std (`unbiased=False`): a group of two with rewards
    0 and 1 gives ±1. `normalize_std=False` is Dr.GRPO (centred, not scaled). A singleton
    group, or a group whose rewards are all equal, gives 0.
    """
    episode = episode_grpo(batch.rewards, batch.groups, eps=eps, normalize_std=normalize_std)
    return episode[batch.turn_episode]  # [K]


def _turn_order(batch: AdvantageInput) -> Tensor:
    """Turn indices sorted by (episode, turn number) [K]."""
    span = int(batch.turn_index.max()) + 1
    key = batch.turn_episode.long() * span + batch.turn_index.long()  # [K]
    return torch.argsort(key, stable=True)  # [K]


def _next_in_episode(batch: AdvantageInput) -> tuple[Tensor, Tensor]:
    """For each turn, the index of the next turn of its episode, and whether it exists."""
    order = _turn_order(batch)  # [K]
    same = batch.turn_episode[order[1:]] == batch.turn_episode[order[:-1]]  # [K-1]
    nxt = torch.zeros_like(order)  # [K]
    has_next = torch.zeros_like(order, dtype=torch.bool)  # [K]
    nxt[order[:-1]] = order[1:]
    has_next[order[:-1]] = same
    return nxt, has_next


def empg_modulation(
    batch: AdvantageInput, *, k: float = 1.0, k_prime: float = 1.0
) -> tuple[Tensor, Tensor]:
    """EMPG's per-turn self-confidence scale g [K] (batch mean 1) and clarity bonus f [K].

    H̃ = turn entropy min-max normalised over the batch (+1e-8 in the denominator);
    g = exp(−k·H̃) / mean exp(−k·H̃); f = exp(−k′·H̃ of the episode's next turn), 0 after
    an episode's last turn.
    """
    entropy = _float(batch.turn_entropy)  # [K]
    if entropy.numel() == 0:
        return entropy.clone(), entropy.clone()
    norm = (entropy - entropy.min()) / (entropy.max() - entropy.min() + 1e-8)  # [K]
    confidence = torch.exp(-k * norm)  # [K]
    g = confidence / confidence.mean()  # [K]
    nxt, has_next = _next_in_episode(batch)
    f = torch.where(has_next, torch.exp(-k_prime * norm[nxt]), torch.zeros_like(norm))  # [K]
    return g, f


@register_advantage("empg")
def empg(
    batch: AdvantageInput,
    *,
    k: float = 1.0,
    k_prime: float = 1.0,
    zeta: float = 0.1,
    eps: float = 1e-6,
    normalize_std: bool = True,
) -> Tensor:
    """EMPG: A = g·A_i + ζ·f, centred on its batch mean over turns (see `empg_modulation`).

    Confident turns (low entropy) are amplified whichever the sign of A_i, uncertain
    ones damped, and a turn that leads to a clearer next turn earns a bonus. A_i is
    GRPO's episode advantage (`eps`, `normalize_std` as in `grpo`).
    """
    g, f = empg_modulation(batch, k=k, k_prime=k_prime)
    a_mod = g * grpo(batch, eps=eps, normalize_std=normalize_std) + zeta * f  # [K]
    return a_mod - a_mod.mean() if a_mod.numel() else a_mod  # [K]


def _discounted_returns(batch: AdvantageInput, gamma: float) -> Tensor:
    """return_t = r_t + γ·return_{t+1} within each episode [K]."""
    rewards = _float(batch.turn_reward)  # [K]
    order = _turn_order(batch).tolist()
    episode = batch.turn_episode.tolist()
    values = rewards.tolist()
    returns = [0.0] * len(values)
    running, last_episode = 0.0, None
    for turn in reversed(order):  # turns are few; a Python scan keeps it obvious
        if episode[turn] != last_episode:
            running, last_episode = 0.0, episode[turn]
        running = values[turn] + gamma * running
        returns[turn] = running
    return torch.tensor(returns, dtype=rewards.dtype, device=rewards.device)  # [K]


@register_advantage("gigpo")
def gigpo(
    batch: AdvantageInput,
    *,
    gamma: float = 0.95,
    omega: float = 1.0,
    eps: float = 1e-6,
    normalize_std: bool = True,
) -> Tensor:
    """GiGPO: A = A_E + ω·A_S, with a step-level baseline over identical observations.

    A_E is GRPO's episode advantage. Turns of the same task group that answered the same
    observation (`turn_state`) form a step group; A_S = discounted step return − the
    step group's mean return (0 for a singleton step group; not divided by a std).
    """
    episode_adv = grpo(batch, eps=eps, normalize_std=normalize_std)  # [K]
    if batch.turn_episode.numel() == 0:
        return episode_adv
    returns = _discounted_returns(batch, gamma)  # [K]
    keys = torch.stack([batch.groups[batch.turn_episode].long(), batch.turn_state.long()], 1)
    step_adv = returns - _group_mean(returns, keys)  # [K]
    return episode_adv + omega * step_adv  # [K]


def arpo_attribution(
    lengths: Sequence[int],
    parents: Sequence[int],
    branch_points: Sequence[int],
    advantages: Tensor | Sequence[float],
    mode: str = "soft",
) -> tuple[list[Tensor], list[Tensor]]:
    """Per-token advantages and weights for the leaves of one ARPO rollout tree.

    Leaf i has `lengths[i]` tokens and copies its first `branch_points[i]` tokens from
    leaf `parents[i]` (−1 for a root, whose branch point must be 0); a parent's index is
    smaller than its child's. Returns `(token_advantages, token_weights)`, two lists of
    L tensors of shape [lengths[i]].

    - `soft`: every leaf trains all its tokens with its own advantage (weights 1).
    - `hard`: a token position shared by the set S of leaves is trained once, with
      mean_{j∈S} A_j, and weight 1 only in the leaf of S with the smallest index (the
      leaf that generated it); its copies in the other leaves get weight 0.
    """
    if mode not in ("soft", "hard"):
        raise InvalidArgument(f"arpo_attribution mode must be 'soft' or 'hard', got {mode!r}.")
    adv = torch.as_tensor(advantages, dtype=torch.float32).flatten()  # [L]
    count = len(lengths)
    if not (len(parents) == len(branch_points) == adv.numel() == count):
        raise InvalidArgument(
            f"arpo_attribution needs one entry per leaf: got {count} lengths, "
            f"{len(parents)} parents, {len(branch_points)} branch_points and "
            f"{adv.numel()} advantages."
        )
    for i, (length, parent, point) in enumerate(zip(lengths, parents, branch_points, strict=True)):
        if length < 0 or point < 0:
            raise InvalidArgument(f"leaf {i}: length {length} and branch point {point} < 0.")
        if parent == -1:
            if point != 0:
                raise InvalidArgument(
                    f"leaf {i} is a root (parent -1), so its branch point must be 0, got {point}."
                )
        elif not 0 <= parent < i:
            raise InvalidArgument(
                f"leaf {i}: parent {parent} must be -1 or an earlier leaf's index (0..{i - 1})."
            )
        elif point > min(length, lengths[parent]):
            raise InvalidArgument(
                f"leaf {i}: branch point {point} exceeds its length {length} or its parent "
                f"{parent}'s length {lengths[parent]}."
            )

    if mode == "soft":
        return (
            [adv[i].expand(n).clone() for i, n in enumerate(lengths)],
            [torch.ones(n) for n in lengths],
        )

    # Each leaf's positions split into segments owned by the ancestor that generated
    # them: [m_{j+1}, m_j) belongs to the j-th ancestor, m_j the running min of branch
    # points up the chain. Positions shared by a set S all have the same owner.
    segments: list[list[tuple[int, int, int]]] = []  # (owner, start, end) per leaf
    sums = [torch.zeros(n) for n in lengths]
    counts = [torch.zeros(n) for n in lengths]
    for i, length in enumerate(lengths):
        own, node, end = [], i, length
        while True:
            start = min(end, branch_points[node]) if parents[node] != -1 else 0
            if start < end:
                own.append((node, start, end))
                sums[node][start:end] += adv[i]
                counts[node][start:end] += 1
            if parents[node] == -1 or start == 0:
                break
            node, end = parents[node], start
        segments.append(own)

    token_adv, token_weights = [], []
    for i, length in enumerate(lengths):
        values, weights = torch.empty(length), torch.zeros(length)
        for owner, start, end in segments[i]:
            values[start:end] = sums[owner][start:end] / counts[owner][start:end]
            weights[start:end] = float(owner == i)
        token_adv.append(values)
        token_weights.append(weights)
    return token_adv, token_weights
