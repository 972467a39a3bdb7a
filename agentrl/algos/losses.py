"""Policy-gradient token losses: PPO-clip (GRPO / DAPO), AEPO's EBPO, Clip-Cov, KL-Cov.

Each registered loss is a pure function
`fn(logprobs, old_logprobs, advantages, mask, *, agg="token-mean", **hparams)` over
[B, T] tensors (advantages per token, mask 0/1) that returns the aggregated loss to
minimise and a dict of detached scalar metrics. δ = exp(logprobs − old_logprobs).
DAPO is `ppo_clip` with `clip_eps_high=0.28` (a trainer preset, not a separate name).
`entropy_aware_advantage` is AEPO's advantage reweighting, applied before the loss.
Each registration states the loss's traits: `advantage_weighted` (ppo_clip, aepo: a
token with advantage 0 has value and gradient 0), `clip_range` (takes the clip ranges),
`selector` (Clip-Cov / KL-Cov pick their tokens over the whole batch).
The maths and the defaults are those of `docs/algorithms.md`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from agentrl.algos.registry import aggregate, register_loss
from agentrl.errors import InvalidArgument

# exp() of a log-ratio beyond this overflows nothing but means the token is garbage
# (a masked position, or a policy far off the sampler); clamping keeps inf out of the loss.
_MAX_LOG_RATIO = 20.0


def _ratio(logprobs: Tensor, old_logprobs: Tensor) -> Tensor:
    log_ratio = (logprobs - old_logprobs).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)  # [B, T]
    return torch.exp(log_ratio)  # [B, T]


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Token-mean over valid tokens, detached, as a metric."""
    return aggregate(values.detach().to(torch.float32), mask.detach(), "token-mean")


def _check_clip(clip_eps_low: float, clip_eps_high: float, dual_clip_c: float | None) -> None:
    if not 0 <= clip_eps_low < 1 or clip_eps_high < 0:
        raise InvalidArgument(
            f"clip_eps_low must be in [0, 1) and clip_eps_high >= 0, got {clip_eps_low} and "
            f"{clip_eps_high}."
        )
    if dual_clip_c is not None and dual_clip_c <= 1:
        raise InvalidArgument(
            f"dual_clip_c must be > 1 (or None to disable the dual clip), got {dual_clip_c}."
        )


def _clipped_loss(
    ratio: Tensor,  # [B, T]
    upper: Tensor,  # [B, T], the value 1 + ε_high (EBPO gives it a gradient)
    advantages: Tensor,  # [B, T]
    mask: Tensor,  # [B, T]
    clip_eps_low: float,
    clip_eps_high: float,
    dual_clip_c: float | None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token PPO loss max(−A·δ, −A·clip(δ)), dual-clipped for A < 0, and its metrics."""
    above = ratio > 1 + clip_eps_high  # [B, T]
    clipped_ratio = torch.where(above, upper, ratio.clamp_min(1 - clip_eps_low))  # [B, T]
    unclipped = -advantages * ratio  # [B, T]
    loss = torch.maximum(unclipped, -advantages * clipped_ratio)  # [B, T]
    negative = advantages < 0  # [B, T]
    dual = torch.zeros_like(above)  # [B, T]
    if dual_clip_c is not None:
        dual = negative & (ratio > dual_clip_c)  # [B, T]
        loss = torch.where(negative, torch.minimum(loss, -advantages * dual_clip_c), loss)
    metrics = {
        "clip_frac_low": _masked_mean(negative & (ratio < 1 - clip_eps_low), mask),
        "clip_frac_high": _masked_mean((advantages > 0) & above, mask),
        "dual_clip_frac": _masked_mean(dual, mask),
        "ratio_mean": _masked_mean(ratio, mask),
    }
    return loss, metrics


@register_loss("ppo_clip", advantage_weighted=True, clip_range=True)
def ppo_clip(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    agg: str = "token-mean",
    clip_eps_low: float = 0.2,
    clip_eps_high: float = 0.2,
    dual_clip_c: float | None = 3.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO-clip: ℓ = max(−A·δ, −A·clip(δ, 1−ε_low, 1+ε_high)); ℓ = min(ℓ, −A·c) for A < 0."""
    _check_clip(clip_eps_low, clip_eps_high, dual_clip_c)
    ratio = _ratio(logprobs, old_logprobs)  # [B, T]
    upper = torch.full_like(ratio, 1 + clip_eps_high)  # [B, T]
    loss, metrics = _clipped_loss(
        ratio, upper, advantages, mask, clip_eps_low, clip_eps_high, dual_clip_c
    )
    return aggregate(loss, mask, agg), metrics


@register_loss("aepo", advantage_weighted=True, clip_range=True)
def aepo(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    agg: str = "token-mean",
    clip_eps_low: float = 0.2,
    clip_eps_high: float = 0.2,
    dual_clip_c: float | None = 3.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """AEPO's EBPO: PPO-clip whose upper bound is (1+ε_high)·δ/sg(δ).

    Forward values equal `ppo_clip`'s. Backward, a token with A > 0 and δ > 1+ε_high
    keeps the gradient −A·(1+ε_high) with respect to its logprob instead of 0, so the
    (mostly high-entropy) tokens above the bound still learn. The lower bound is PPO's.
    """
    _check_clip(clip_eps_low, clip_eps_high, dual_clip_c)
    ratio = _ratio(logprobs, old_logprobs)  # [B, T]
    # δ/sg(δ) = exp(log δ − sg(log δ)): value 1, gradient 1 with respect to log π at any
    # ratio. Built from the unclamped log-ratio, so that tokens beyond the clamp of
    # `_ratio` keep their gradient (the clamped δ/sg(δ) has none there).
    log_ratio = logprobs - old_logprobs  # [B, T]
    upper = (1 + clip_eps_high) * torch.exp(log_ratio - log_ratio.detach())  # [B, T]
    loss, metrics = _clipped_loss(
        ratio, upper, advantages, mask, clip_eps_low, clip_eps_high, dual_clip_c
    )
    metrics["ebpo_kept_frac"] = metrics["clip_frac_high"].clone()
    return aggregate(loss, mask, agg), metrics


def _covariance(logprobs: Tensor, advantages: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """cov_t = (A_t − mean A)·(log π_t − mean log π) over valid tokens, detached [B, T]."""
    valid = mask > 0  # [B, T]
    logprobs, advantages = logprobs.detach().float(), advantages.detach().float()  # [B, T]
    cov = (advantages - _masked_mean(advantages, mask)) * (
        logprobs - _masked_mean(logprobs, mask)
    )  # [B, T]
    return cov, valid


def clip_cov_select(
    logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_ratio: float = 2e-4,
    cov_low: float = 1.0,
    cov_high: float = 5.0,
    eligible: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Clip-Cov's pick [B, T] bool: max(1, ⌊clip_ratio·N_valid⌋) tokens drawn uniformly
    (with `generator`) among the valid, `eligible` tokens whose cov is in (cov_low, cov_high).

    The trainer calls it once over the whole batch (rows of all micro-batches) so that
    the means and the count are the batch's, then passes the pick to `clip_cov`.
    """
    cov, valid = _covariance(logprobs, advantages, mask)
    candidates = valid & (cov > cov_low) & (cov < cov_high)  # [B, T]
    if eligible is not None:
        candidates &= eligible
    positions = torch.nonzero(candidates)  # [C, 2]
    n_pick = max(1, math.floor(clip_ratio * int(valid.sum())))
    chosen = torch.zeros_like(candidates)  # [B, T]
    if len(positions) > 0:
        # randperm on the CPU: a CPU generator then seeds the draw whatever the device.
        order = torch.randperm(len(positions), generator=generator)[:n_pick]  # [n]
        picked = positions[order.to(positions.device)]  # [n, 2]
        chosen[picked[:, 0], picked[:, 1]] = True
    return chosen


def kl_cov_select(
    logprobs: Tensor, advantages: Tensor, mask: Tensor, *, kl_ratio: float = 2e-3
) -> Tensor:
    """KL-Cov's pick [B, T] bool: the top max(1, ⌊kl_ratio·N_valid⌋) valid tokens by cov
    (none when there is no valid token). Called over the whole batch like `clip_cov_select`."""
    cov, valid = _covariance(logprobs, advantages, mask)
    n_valid = int(valid.sum())
    flat_chosen = torch.zeros(valid.numel(), dtype=torch.bool, device=valid.device)  # [B*T]
    if n_valid > 0:
        n_pick = max(1, math.floor(kl_ratio * n_valid))
        scores = cov.masked_fill(~valid, float("-inf")).reshape(-1)  # [B*T]
        flat_chosen[torch.topk(scores, n_pick).indices] = True
    return flat_chosen.view(valid.shape)  # [B, T]


@register_loss("clip_cov", clip_range=True, selector=clip_cov_select)
def clip_cov(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    agg: str = "token-mean",
    clip_eps_low: float = 0.2,
    clip_eps_high: float = 0.2,
    dual_clip_c: float | None = 3.0,
    clip_ratio: float = 2e-4,
    cov_low: float = 1.0,
    cov_high: float = 5.0,
    generator: torch.Generator | None = None,
    selected: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clip-Cov: PPO-clip, with a few high-covariance tokens' gradients detached.

    Among valid tokens the clip leaves alone whose cov lies in (cov_low, cov_high),
    max(1, ⌊clip_ratio·N_valid⌋) are drawn uniformly (with `generator`); their loss
    keeps its value but passes no gradient. No candidate, nothing detached. `selected`
    [B, T] is a pick made beforehand over a larger batch (`clip_cov_select`); clipped
    tokens are then spared from it.
    """
    _check_clip(clip_eps_low, clip_eps_high, dual_clip_c)
    ratio = _ratio(logprobs, old_logprobs)  # [B, T]
    upper = torch.full_like(ratio, 1 + clip_eps_high)  # [B, T]
    loss, metrics = _clipped_loss(
        ratio, upper, advantages, mask, clip_eps_low, clip_eps_high, dual_clip_c
    )
    clipped = (-advantages * ratio.clamp(1 - clip_eps_low, 1 + clip_eps_high)) > (
        -advantages * ratio
    )  # [B, T]
    if selected is None:
        chosen = clip_cov_select(
            logprobs,
            advantages,
            mask,
            clip_ratio=clip_ratio,
            cov_low=cov_low,
            cov_high=cov_high,
            eligible=~clipped,
            generator=generator,
        )
    else:
        chosen = selected.bool() & ~clipped & (mask > 0)  # [B, T]
    loss = torch.where(chosen, loss.detach(), loss)  # [B, T]
    metrics["clip_cov_frac"] = _masked_mean(chosen, mask)
    return aggregate(loss, mask, agg), metrics


@register_loss("kl_cov", selector=kl_cov_select)
def kl_cov(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    agg: str = "token-mean",
    kl_ratio: float = 2e-3,
    coef: float = 1.0,
    selected: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """KL-Cov: no clip; ℓ = −A·δ, plus coef·|log π − log π_old| on the top-cov tokens.

    The top max(1, ⌊kl_ratio·N_valid⌋) valid tokens by cov get the penalty (none when
    there is no valid token); `selected` [B, T] is a pick made beforehand over a larger
    batch (`kl_cov_select`).
    """
    ratio = _ratio(logprobs, old_logprobs)  # [B, T]
    loss = -advantages * ratio  # [B, T]
    if selected is None:
        chosen = kl_cov_select(logprobs, advantages, mask, kl_ratio=kl_ratio)
    else:
        chosen = selected.bool() & (mask > 0)  # [B, T]
    penalty = coef * (logprobs - old_logprobs).abs()  # [B, T]
    loss = torch.where(chosen, loss + penalty, loss)  # [B, T]
    metrics = {
        "kl_cov_frac": _masked_mean(chosen, mask),
        "ratio_mean": _masked_mean(ratio, mask),
    }
    return aggregate(loss, mask, agg), metrics


def entropy_aware_advantage(
    advantages: Tensor,
    entropy: Tensor,
    mask: Tensor,
    *,
    a: float = 0.2,
    stats: tuple[float, float] | None = None,
) -> Tensor:
    """AEPO: Ã_t = A_t·(1 + a·z_t), z_t the entropy's z-score over the batch's valid tokens.

    z uses the population std of the current policy's token entropy, detached; a batch
    whose entropies are all equal (std < 1e-6 nats) gets z = 0, and so do masked tokens.
    `stats` = (mean, std) over the whole batch, for callers that pass one micro-batch
    at a time; by default they are taken over `entropy` itself.
    """
    entropy = entropy.detach().float()  # [B, T]
    if stats is None:
        mean = _masked_mean(entropy, mask)
        std = _masked_mean((entropy - mean).square(), mask).sqrt()
    else:
        mean, std = (torch.tensor(float(v), device=entropy.device) for v in stats)
    z = torch.where(
        (mask > 0) & (std >= 1e-6), (entropy - mean) / std.clamp_min(1e-6), 0.0
    )  # [B, T]
    return advantages * (1 + a * z.to(advantages.dtype))  # [B, T]
