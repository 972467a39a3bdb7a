"""Batch preparation: from one step's episodes to what the update's passes need.

    prepared = prepare(episodes, objective, BatchSettings("grpo", micro_batch_tokens=4096))
    for rows in prepared.micro_batches:
        batch = prepared.collate(rows)                # [B, T], with advantages and picks
        weight = prepared.share("token-mean", batch)  # its part of the whole batch's mean

In order: DAPO's overlong shaping of the rewards, the advantages, ARPO hard attribution,
which rows may run forward only, packing into micro-batches, and what needs the whole
batch at once: its token and row counts, the Clip-Cov / KL-Cov token pick, FSDP's
padding micro-batches, AEPO's entropy moments. With several processes those are the
whole batch's over all ranks (through `agentrl.distributed`, whose collectives do
nothing in one process); otherwise this is a pure function of the episodes and the
settings.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from agentrl import distributed
from agentrl.algos.advantages import AdvantageInput, arpo_attribution, overlong_penalty
from agentrl.algos.batch import (
    TokenBatch,
    advantage_input,
    collate,
    longest_turns,
    pack,
    token_advantages,
)
from agentrl.algos.objective import Objective
from agentrl.algos.registry import get_advantage
from agentrl.rollout.trajectory import Episode


@dataclass(frozen=True)
class BatchSettings:
    """How a step's episodes become training rows."""

    advantage: str
    """Registered advantage estimator."""
    advantage_kwargs: dict[str, Any] = field(default_factory=dict)
    attribution: str = "soft"
    """ARPO attribution over branching trees: 'soft' or 'hard'."""
    micro_batch_tokens: int = 4096
    """Most padded tokens (rows x longest row) per micro-batch."""
    overlong_max_length: int = 0
    """DAPO's overlong shaping: the turn length that costs `overlong_penalty` ..."""
    overlong_buffer: int = 0
    """... over its last `overlong_buffer` tokens; 0 disables the shaping."""
    overlong_penalty: float = 1.0
    selection_seed: int = 0
    """Seed of the whole-batch token pick's draw (same on every rank)."""
    sharded: bool = False
    """FSDP: every rank runs as many micro-batches as the busiest one, none forward only."""


@dataclass
class PreparedBatch:
    """One step's training rows and the whole batch's statistics."""

    episodes: list[Episode]
    """The episodes, loss masks changed by hard attribution (plus padding rows)."""
    advantages: list[list[float]]
    """Per episode, per token."""
    micro_batches: list[list[int]]
    """Episode indices per micro-batch: the trained ones, then the forward-only ones."""
    forward_only: frozenset[int]
    tokens: int
    """Sampled tokens of the whole batch (all ranks)."""
    rows: int
    """Episodes with a sampled token, of the whole batch (all ranks)."""
    entropy_stats: tuple[float, float]
    """Mean and population std of the sampled tokens' entropy over the whole batch."""
    selected: list[list[bool]] | None = None
    """The loss's whole-batch token pick, per episode and token (None: no selector)."""
    overlong_penalty: float = 0.0
    """Mean reward the overlong shaping took (0 or negative)."""
    advantage_abs_mean: float = 0.0
    """Mean |advantage| over turns."""

    def collate(self, rows: Sequence[int]) -> TokenBatch:
        return collate(self.episodes, rows, self.advantages, selected=self.selected)

    def trains(self, rows: Sequence[int]) -> bool:
        """Whether the micro-batch `rows` needs a backward pass."""
        return not set(rows) <= self.forward_only

    def share(self, mode: str, batch: TokenBatch) -> float:
        """`batch`'s weight in the whole batch's mean under aggregation `mode`: its
        tokens' share for token-mean, its rows' share otherwise."""
        if mode == "token-mean":
            return batch.tokens / max(self.tokens, 1)
        return int((batch.loss_mask.sum(1) > 0).sum()) / max(self.rows, 1)


def prepare(
    episodes: Sequence[Episode], objective: Objective, settings: BatchSettings
) -> PreparedBatch:
    """Advantages, attribution, packing and whole-batch statistics for one update."""
    episodes = list(episodes)
    turn_adv, token_adv, shaping = torch.zeros(0), [], 0.0  # a rank may have no episodes
    if episodes:
        inputs = advantage_input(episodes)
        if settings.overlong_buffer > 0:  # DAPO: long turns cost reward (env rewards kept)
            penalty = overlong_penalty(
                longest_turns(episodes),
                max_length=settings.overlong_max_length,
                buffer=settings.overlong_buffer,
                penalty=settings.overlong_penalty,
            )  # [N]
            inputs.rewards = inputs.rewards + penalty
            shaping = float(penalty.mean())
        turn_adv = get_advantage(settings.advantage)(inputs, **settings.advantage_kwargs)  # [K]
        token_adv = token_advantages(episodes, inputs, turn_adv)
        if settings.attribution == "hard":  # a shared prefix is trained once, in its owner
            episodes, token_adv = hard_attribution(episodes, inputs, turn_adv, token_adv)
    # Rows with no advantage add nothing to an advantage-weighted loss's gradient: they
    # are packed apart and run forward only, for their metrics (never under FSDP, whose
    # backward is collective, nor with regularizers, which train every row).
    forward_only = []
    if objective.zero_advantage_rows_are_inert and not settings.sharded:
        forward_only = [i for i, values in enumerate(token_adv) if not any(values)]
    trained = [i for i in range(len(episodes)) if i not in forward_only]
    micro_batches = [
        [part[k] for k in mb]
        for part in (trained, forward_only)
        for mb in pack([episodes[i] for i in part], settings.micro_batch_tokens)
    ]
    counts = distributed.sum_tensor(  # every rank normalises by the tokens (rows) of all
        torch.tensor(
            [
                float(sum(sum(e.loss_mask) for e in episodes)),
                float(sum(1 for e in episodes if any(e.loss_mask))),
            ]
        )
    )
    selected = whole_batch_selection(objective, episodes, token_adv, settings.selection_seed)
    if settings.sharded:  # every forward is collective: run as many as the busiest rank
        padding = distributed.max_over_ranks(len(micro_batches)) - len(micro_batches)
        if padding:  # empty micro-batches: no loss, gradients of zero
            episodes, token_adv = [*episodes, _empty_episode()], [*token_adv, [0.0, 0.0]]
            selected = None if selected is None else [*selected, [False, False]]
            micro_batches += [[len(episodes) - 1]] * padding
    return PreparedBatch(
        episodes=episodes,
        advantages=token_adv,
        micro_batches=micro_batches,
        forward_only=frozenset(forward_only),
        tokens=int(counts[0].item()),
        rows=int(counts[1].item()),
        entropy_stats=entropy_moments(episodes),
        selected=selected,
        overlong_penalty=shaping,
        advantage_abs_mean=float(turn_adv.abs().mean()) if len(turn_adv) else 0.0,
    )


def entropy_moments(episodes: Sequence[Episode]) -> tuple[float, float]:
    """Mean and population std of the sampled tokens' entropy over the whole batch (the
    current policy's, on-policy): AEPO's z-score is over the batch, not a micro-batch."""
    sampled = torch.tensor(
        [h for e in episodes for h, m in zip(e.entropies, e.loss_mask, strict=True) if m],
        dtype=torch.float64,
    )
    moments = distributed.sum_tensor(
        torch.stack(
            [
                torch.tensor(float(len(sampled)), dtype=torch.float64),
                sampled.sum(),
                sampled.square().sum(),
            ]
        )
    )  # count, sum, sum of squares
    count = max(float(moments[0]), 1.0)
    mean = float(moments[1]) / count
    return mean, max(float(moments[2]) / count - mean**2, 0.0) ** 0.5


def hard_attribution(
    episodes: list[Episode],
    inputs: AdvantageInput,
    turn_adv: torch.Tensor,
    token_adv: list[list[float]],
) -> tuple[list[Episode], list[list[float]]]:
    """ARPO hard attribution per task tree: each leaf's advantage (the mean of its turns'
    advantages, A_i for episode-level estimators) is averaged over the leaves sharing a
    prefix; the copies of a shared token in other leaves get loss mask 0. The inputs
    are not modified."""
    leaf_adv = torch.zeros(len(episodes)).index_add_(0, inputs.turn_episode, turn_adv.float())
    turns = torch.zeros(len(episodes)).index_add_(
        0, inputs.turn_episode, torch.ones(len(inputs.turn_episode))
    )
    leaf_adv = leaf_adv / turns.clamp_min(1)  # [N]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, episode in enumerate(episodes):
        groups.setdefault((episode.split, episode.task_id), []).append(i)
    episodes, token_adv = list(episodes), list(token_adv)
    for members in groups.values():
        if all(episodes[i].parent is None for i in members):
            continue  # no tree: hard and soft are the same
        members.sort(key=lambda i: episodes[i].sample_index)  # parents before branches
        position = {episodes[i].episode_id: k for k, i in enumerate(members)}
        leaves = [episodes[i] for i in members]
        values, weights = arpo_attribution(
            [len(e.token_ids) for e in leaves],
            [position.get(e.parent, -1) if e.parent else -1 for e in leaves],
            [e.branch_token_index or 0 if e.parent in position else 0 for e in leaves],
            leaf_adv[members],
            mode="hard",
        )
        for i, episode, value, weight in zip(members, leaves, values, weights, strict=True):
            owned = weight.tolist()  # 1 where this leaf trains the token, 0 on copies
            mask = [int(m and w > 0) for m, w in zip(episode.loss_mask, owned, strict=True)]
            token_adv[i] = [v if m else 0.0 for v, m in zip(value.tolist(), mask, strict=True)]
            episodes[i] = dataclasses.replace(episode, loss_mask=mask)
    return episodes, token_adv


def whole_batch_selection(
    objective: Objective, episodes: list[Episode], token_adv: list[list[float]], seed: int
) -> list[list[bool]] | None:
    """The loss's whole-batch token pick (its `selector` trait) made once over every
    sampled token of all micro-batches and ranks, per episode and token; None for a
    loss without one.

    cov uses the rollout's logprobs: on the first, on-policy pass they are the current
    policy's. A `generator` of the selector is seeded by `seed`, so every rank and a
    resumed run pick the same tokens.
    """
    selector = objective.traits.selector
    if selector is None:
        return None
    rows = [
        [(lp or 0.0, a) for lp, a, m in zip(e.logprobs, adv, e.loss_mask, strict=True) if m]
        for e, adv in zip(episodes, token_adv, strict=True)
    ]  # per episode: (old logprob, advantage) of each sampled token
    gathered = distributed.all_gather(rows)
    flat = [pair for rank_rows in gathered for row in rank_rows for pair in row]
    values = torch.tensor(flat, dtype=torch.float64).reshape(1, -1, 2)  # [1, N, 2]
    kwargs = objective.selector_kwargs()
    if "generator" in inspect.signature(selector).parameters:
        kwargs["generator"] = torch.Generator().manual_seed(seed)
    pick = selector(values[..., 0], values[..., 1], torch.ones(values.shape[:2]), **kwargs)
    pick = pick.reshape(-1).tolist()  # [N]
    offset = sum(len(row) for rank_rows in gathered[: distributed.rank()] for row in rank_rows)
    out = []
    for episode in episodes:
        flags = []
        for m in episode.loss_mask:
            flags.append(bool(m) and bool(pick[offset]))
            offset += 1 if m else 0
        out.append(flags)
    return out


def _empty_episode() -> Episode:
    """Two padding tokens with no loss: a micro-batch that only takes part in collectives."""
    episode = Episode("padding", "", "", "", None, -1, 0)
    episode.append([0, 0], 0, 0)
    return episode
