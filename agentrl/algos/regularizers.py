"""Regularizers added to the policy loss: an entropy bonus, EPO, and a k3 KL to a reference.

Each registered regularizer is a pure function
`fn(*, logprobs, entropy, mask, turn_index, step, total_steps, state, **hparams)`
returning `(loss, metrics)`; the trainer ADDS the loss to the policy loss, so a bonus is
negative. `entropy` [B, T] is the current policy's token entropy with gradient;
`turn_index` [B, T] numbers each token's turn (0 for prompt tokens); `state` is a dict
the trainer keeps across steps and saves in the checkpoint (so it holds only floats).
The maths and the defaults are those of `docs/algorithms.md`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from agentrl.algos.registry import aggregate, register_regularizer
from agentrl.errors import InvalidArgument


@register_regularizer("entropy")
def entropy_bonus(
    *,
    logprobs: Tensor,
    entropy: Tensor,
    mask: Tensor,
    turn_index: Tensor,
    step: int,
    total_steps: int,
    state: dict[str, Any],
    coef: float = 0.001,
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """Entropy bonus: −coef·aggregate(H, mask)."""
    mean = aggregate(entropy, mask, agg)
    return -coef * mean, {"entropy_mean": mean.detach()}


def _nested_mean(values: Tensor, mask: Tensor, turn_index: Tensor) -> Tensor:
    """Token-mean within each turn, mean over a row's turns, mean over rows (with grad)."""
    rows, _ = values.shape
    valid = mask > 0  # [B, T]
    span = int(turn_index.max()) + 1 if turn_index.numel() else 1
    row = torch.arange(rows, device=values.device)[:, None].expand_as(turn_index)  # [B, T]
    segment = (row * span + turn_index.long())[valid]  # [n], one id per (row, turn)
    picked = values[valid]  # [n]
    sums = values.new_zeros(rows * span).index_add(0, segment, picked)  # [B*S]
    counts = values.new_zeros(rows * span).index_add(0, segment, torch.ones_like(picked))
    turn_mean = (sums / counts.clamp_min(1)).view(rows, span)  # [B, S]
    has_turn = (counts > 0).view(rows, span).to(values.dtype)  # [B, S]
    turns = has_turn.sum(-1)  # [B]
    row_mean = (turn_mean * has_turn).sum(-1) / turns.clamp_min(1)  # [B]
    has_row = (turns > 0).to(values.dtype)  # [B]
    return (row_mean * has_row).sum() / has_row.sum().clamp_min(1)


def _previous_steps_entropy(state: dict[str, Any], step: int) -> tuple[float, int]:
    """Sum and count of the entropy history over steps before `step`."""
    total = float(state.get("epo_entropy_sum", 0.0))
    count = int(state.get("epo_entropy_count", 0))
    if count and state.get("epo_step") == step:  # a later micro-batch of this step
        total -= float(state["epo_step_entropy"])
        count -= 1
    return total, count


def _record_entropy(state: dict[str, Any], step: int, entropy: Tensor, mask: Tensor) -> None:
    """Fold this batch's token-mean entropy into this step's history entry."""
    valid = mask > 0  # [B, T]
    tokens = float(valid.sum())
    if tokens == 0:
        return
    batch_sum = float(entropy.detach()[valid].float().sum())
    if state.get("epo_step") == step and state.get("epo_entropy_count", 0):
        old_mean, old_tokens = float(state["epo_step_entropy"]), float(state["epo_step_tokens"])
    else:  # the first batch of a new step opens a new entry
        old_mean, old_tokens = 0.0, 0.0
        state["epo_entropy_count"] = float(state.get("epo_entropy_count", 0)) + 1
    new_mean = (old_mean * old_tokens + batch_sum) / (old_tokens + tokens)
    state["epo_entropy_sum"] = float(state.get("epo_entropy_sum", 0.0)) - old_mean + new_mean
    state["epo_step"] = step
    state["epo_step_entropy"] = new_mean
    state["epo_step_tokens"] = old_tokens + tokens


@register_regularizer("epo")
def epo(
    *,
    logprobs: Tensor,
    entropy: Tensor,
    mask: Tensor,
    turn_index: Tensor,
    step: int,
    total_steps: int,
    state: dict[str, Any],
    entropy_weight: float = 0.001,
    kappa_l: float = 0.0,
    kappa_r: float = 2.0,
    alpha: float = 0.1,
    gamma: float = 3.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """EPO: −λ·[L_H − β_k·L_smooth], λ = `entropy_weight`.

    L_H is the nested mean of token entropy (within a turn, over an episode's turns, over
    episodes). L_smooth = α·([κ_l·H̄ − H]₊ + [H − κ_r·H̄]₊) with the same nested means,
    H̄ the mean of the token-mean entropies of all previous steps (no history: 0).
    β_k = 1 + exp(−γ·k/k_mid), k_mid = max(1, ⌊K/2⌋). Afterwards this step's token-mean
    entropy joins the history in `state` (`epo_entropy_sum`, `epo_entropy_count`); later
    micro-batches of the same `step` update that one entry rather than adding steps.
    """
    if kappa_l > kappa_r:
        raise InvalidArgument(f"epo needs kappa_l <= kappa_r, got {kappa_l} > {kappa_r}.")
    k_mid = max(1, total_steps // 2)
    beta = 1 + math.exp(-gamma * step / k_mid)
    history_sum, history_count = _previous_steps_entropy(state, step)
    entropy_term = _nested_mean(entropy, mask, turn_index)
    if history_count:
        history = history_sum / history_count
        hinge = torch.relu(kappa_l * history - entropy) + torch.relu(entropy - kappa_r * history)
        smooth = alpha * _nested_mean(hinge, mask, turn_index)
    else:
        history, smooth = 0.0, entropy_term.new_zeros(())
    loss = -entropy_weight * (entropy_term - beta * smooth)
    _record_entropy(state, step, entropy, mask)
    metrics = {
        "epo_beta": torch.tensor(beta),
        "epo_entropy_mean_history": torch.tensor(history),
        "epo_smooth": smooth.detach(),
        "epo_entropy": entropy_term.detach(),
    }
    return loss, metrics


@register_regularizer("kl", needs_reference=True)
def kl_penalty(
    *,
    logprobs: Tensor,
    entropy: Tensor,
    mask: Tensor,
    turn_index: Tensor,
    step: int,
    total_steps: int,
    state: dict[str, Any],
    ref_logprobs: Tensor | None = None,
    coef: float = 0.001,
    agg: str = "token-mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """KL to a reference policy, k3 estimator: coef·aggregate(exp(d) − d − 1), d = ref − log π."""
    if ref_logprobs is None:
        raise InvalidArgument(
            "the 'kl' regularizer needs ref_logprobs, the reference model's logprobs of the "
            "same tokens [B, T]; the trainer supplies it to regularizers registered with "
            "needs_reference=True (as this one is)."
        )
    # Clamped like the PPO log-ratio: exp() of a garbage (masked) position must stay finite.
    diff = (ref_logprobs - logprobs).clamp(-20.0, 20.0)  # [B, T]
    k3 = torch.exp(diff) - diff - 1  # [B, T]
    kl = aggregate(k3, mask, agg)
    return coef * kl, {"kl": kl.detach()}
