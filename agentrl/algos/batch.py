"""From episodes to training tensors: turn tables, token advantages, micro-batches.

    inputs = advantage_input(episodes)                  # per-episode and per-turn tensors
    turn_advantages = get_advantage("grpo")(inputs)      # [K]
    token_adv = token_advantages(episodes, inputs, turn_advantages)
    for rows in pack(episodes, micro_batch_tokens=4096):
        batch = collate(episodes, rows, token_adv)       # [B, T] tensors

A turn's advantage is broadcast to the tokens the model sampled in that turn; prompt,
template and observation tokens (loss mask 0) get 0 and are never trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agentrl.algos.advantages import AdvantageInput
from agentrl.rollout.trajectory import Episode


def advantage_input(episodes: Sequence[Episode]) -> AdvantageInput:
    """Episode rewards, task groups, and one row per turn (entropy, reward, state)."""
    groups: dict[tuple[str, str], int] = {}
    group_ids, turn_episode, turn_index, turn_entropy, turn_reward, turn_state = (
        [],
        [],
        [],
        [],
        [],
        [],
    )
    for i, episode in enumerate(episodes):
        group_ids.append(groups.setdefault((episode.split, episode.task_id), len(groups)))
        entropies = episode.entropies_by_turn()
        for turn in range(1, episode.num_turns + 1):
            turn_episode.append(i)
            turn_index.append(turn)
            values = entropies.get(turn, [])
            turn_entropy.append(sum(values) / max(len(values), 1))
            rewards = episode.step_rewards
            turn_reward.append(rewards[turn - 1] if turn <= len(rewards) else 0.0)
            states = episode.observation_hashes
            turn_state.append(states[turn - 1] if turn <= len(states) else -turn)
    return AdvantageInput(
        rewards=torch.tensor([e.reward for e in episodes], dtype=torch.float32),
        groups=torch.tensor(group_ids, dtype=torch.long),
        turn_episode=torch.tensor(turn_episode, dtype=torch.long),
        turn_index=torch.tensor(turn_index, dtype=torch.long),
        turn_entropy=torch.tensor(turn_entropy, dtype=torch.float32),
        turn_reward=torch.tensor(turn_reward, dtype=torch.float32),
        turn_state=torch.tensor(turn_state, dtype=torch.long),
    )


def longest_turns(episodes: Sequence[Episode]) -> torch.Tensor:
    """Tokens the model generated in each episode's longest turn [N]."""
    longest = [max(map(len, e.entropies_by_turn().values()), default=0) for e in episodes]
    return torch.tensor(longest, dtype=torch.float32)


def token_advantages(
    episodes: Sequence[Episode], inputs: AdvantageInput, turn_advantages: torch.Tensor
) -> list[list[float]]:
    """Per episode, per token: its turn's advantage on sampled tokens, 0 elsewhere."""
    by_turn: dict[tuple[int, int], float] = {
        (int(e), int(t)): float(a)
        for e, t, a in zip(inputs.turn_episode, inputs.turn_index, turn_advantages, strict=True)
    }
    return [
        [
            by_turn.get((i, turn), 0.0) if mask else 0.0
            for mask, turn in zip(episode.loss_mask, episode.turn_index, strict=True)
        ]
        for i, episode in enumerate(episodes)
    ]


def pack(episodes: Sequence[Episode], micro_batch_tokens: int) -> list[list[int]]:
    """Episode indices grouped so each micro-batch's padded size B x T_max fits the budget.

    Longest first, so padding stays small; an episode longer than the budget gets a
    micro-batch of its own.
    """
    order = sorted(range(len(episodes)), key=lambda i: -len(episodes[i].token_ids))
    batches: list[list[int]] = []
    for index in order:
        length = len(episodes[index].token_ids)
        if batches:
            current = batches[-1]
            width = len(episodes[current[0]].token_ids)  # the first is the longest
            if (len(current) + 1) * max(width, length) <= micro_batch_tokens:
                current.append(index)
                continue
        batches.append([index])
    return batches


@dataclass
class TokenBatch:
    """One micro-batch of right-padded episodes."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    loss_mask: torch.Tensor  # [B, T] 1 on sampled tokens
    old_logprobs: torch.Tensor  # [B, T] sampling logprobs, 0 where loss_mask is 0
    advantages: torch.Tensor  # [B, T]
    turn_index: torch.Tensor  # [B, T]
    rows: list[int]  # episode indices
    selected: torch.Tensor | None = None  # [B, T] bool, a whole-batch token pick

    def to(self, device: torch.device) -> TokenBatch:
        moved = {k: v.to(device) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return TokenBatch(**moved, rows=self.rows)

    @property
    def tokens(self) -> int:
        return int(self.loss_mask.sum())


def collate(
    episodes: Sequence[Episode],
    rows: Sequence[int],
    advantages: Sequence[Sequence[float]],
    pad_id: int = 0,
    selected: Sequence[Sequence[bool]] | None = None,
) -> TokenBatch:
    """Right-padded [B, T] tensors of the episodes `rows` (with their token picks
    `selected`, per episode and token, where given)."""
    width = max(len(episodes[i].token_ids) for i in rows)
    shape = (len(rows), width)
    batch = TokenBatch(
        input_ids=torch.full(shape, pad_id, dtype=torch.long),
        attention_mask=torch.zeros(shape, dtype=torch.long),
        loss_mask=torch.zeros(shape),
        old_logprobs=torch.zeros(shape),
        advantages=torch.zeros(shape),
        turn_index=torch.zeros(shape, dtype=torch.long),
        rows=list(rows),
        selected=None if selected is None else torch.zeros(shape, dtype=torch.bool),
    )
    for row, index in enumerate(rows):
        episode = episodes[index]
        n = len(episode.token_ids)
        batch.input_ids[row, :n] = torch.tensor(episode.token_ids)
        batch.attention_mask[row, :n] = 1
        batch.loss_mask[row, :n] = torch.tensor(episode.loss_mask, dtype=torch.float32)
        batch.old_logprobs[row, :n] = torch.tensor([lp or 0.0 for lp in episode.logprobs])
        batch.advantages[row, :n] = torch.tensor(advantages[index], dtype=torch.float32)
        batch.turn_index[row, :n] = torch.tensor(episode.turn_index)
        if selected is not None:
            batch.selected[row, :n] = torch.tensor(selected[index], dtype=torch.bool)
    return batch
