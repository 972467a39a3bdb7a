"""The objective of one micro-batch: the policy loss plus its regularizers.

    objective = Objective.build("ppo_clip", {}, regularizers=[("kl", {"coef": 0.1})])
    total, metrics = compute(objective, batch, logprobs, entropy, share=share, step=3,
                             total_steps=10, state=history, ref_logprobs=ref)

A function of its arguments, except that regularizers with a history (EPO) update it in
`state`. `total` is what the trainer backpropagates: each term weighted by this micro-batch's
share of the whole batch under the term's aggregation (`share(mode)`), so that summing
the micro-batches' gradients gives the whole batch's. Nothing here knows which loss or
regularizer it runs: what they need is in their registered traits (`traits(fn)`). KL to
the reference is the `kl` regularizer, like any other (`algorithm.kl_coef` is its
shorthand).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from agentrl.algos.batch import TokenBatch
from agentrl.algos.losses import entropy_aware_advantage
from agentrl.algos.registry import (
    LossTraits,
    aggregate,
    get_loss,
    get_regularizer,
    hyperparameters,
    traits,
)


@dataclass(frozen=True)
class Term:
    """One regularizer of the objective, with its hyper-parameters."""

    name: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_reference(self) -> bool:
        return bool(getattr(traits(self.fn), "needs_reference", False))

    @property
    def weighting(self) -> str:
        """How its value is shared over micro-batches: its `agg` mode where it has one,
        by rows otherwise (EPO's nested per-episode means)."""
        return self.kwargs.get("agg", hyperparameters(self.fn).get("agg", "seq-mean"))


@dataclass(frozen=True)
class Objective:
    """A registered loss with its hyper-parameters, and the regularizers added to it."""

    loss: Callable[..., Any]
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    agg: str = "token-mean"
    entropy_advantage: float = 0.0
    """AEPO's entropy-aware advantage weight a; 0 leaves the advantages as they are."""
    regularizers: tuple[Term, ...] = ()

    @classmethod
    def build(
        cls,
        loss: str,
        loss_kwargs: dict[str, Any],
        *,
        agg: str = "token-mean",
        clip_eps_low: float = 0.2,
        clip_eps_high: float = 0.2,
        entropy_advantage: float = 0.0,
        regularizers: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> Objective:
        """By registered names; the clip ranges reach a loss registered with `clip_range`."""
        fn = get_loss(loss)
        kwargs = dict(loss_kwargs)
        if cls._traits_of(fn).clip_range:
            kwargs = {"clip_eps_low": clip_eps_low, "clip_eps_high": clip_eps_high, **kwargs}
        terms = tuple(Term(name, get_regularizer(name), dict(kw)) for name, kw in regularizers)
        return cls(fn, kwargs, agg, entropy_advantage, terms)

    @staticmethod
    def _traits_of(fn: Callable[..., Any]) -> LossTraits:
        return traits(fn) or LossTraits()

    @property
    def traits(self) -> LossTraits:
        return self._traits_of(self.loss)

    @property
    def needs_reference(self) -> bool:
        """Whether a regularizer takes the reference policy's logprobs."""
        return any(term.needs_reference for term in self.regularizers)

    @property
    def zero_advantage_rows_are_inert(self) -> bool:
        """Whether a row whose advantages are all 0 adds nothing to the gradient (an
        advantage-weighted loss and no regularizer), so it may run forward only."""
        return self.traits.advantage_weighted and not self.regularizers

    def selector_kwargs(self) -> dict[str, Any]:
        """The loss's hyper-parameters that its whole-batch selector takes."""
        selector = self.traits.selector
        if selector is None:
            return {}
        taken = hyperparameters(selector)
        return {k: v for k, v in self.loss_kwargs.items() if k in taken}


def compute(
    objective: Objective,
    batch: TokenBatch,
    logprobs: Tensor,  # [B, T] under the current policy
    entropy: Tensor,  # [B, T] under the current policy, with gradient
    *,
    share: Callable[[str], float],
    step: int,
    total_steps: int,
    state: dict[str, dict[str, Any]],
    entropy_stats: tuple[float, float] | None = None,
    ref_logprobs: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """This micro-batch's weighted objective and its metrics (the loss's, then each
    regularizer's, then `loss`, the policy loss alone).

    `share(mode)` is the micro-batch's weight in the whole batch's mean under `mode`;
    `entropy_stats` the whole batch's token entropy (mean, std) for AEPO's advantage;
    `state` holds each regularizer's history by name (a regularizer that writes nothing
    gets no entry); `ref_logprobs` [B, T] the reference policy's, for regularizers that
    need it.
    """
    advantages = batch.advantages  # [B, T]
    if objective.entropy_advantage > 0:
        advantages = entropy_aware_advantage(
            advantages,
            entropy.detach(),
            batch.loss_mask,
            a=objective.entropy_advantage,
            stats=entropy_stats,
        )
    kwargs = dict(objective.loss_kwargs)
    if batch.selected is not None:
        kwargs["selected"] = batch.selected
    loss, metrics = objective.loss(
        logprobs, batch.old_logprobs, advantages, batch.loss_mask, agg=objective.agg, **kwargs
    )
    total = loss * share(objective.agg)
    for term in objective.regularizers:
        inputs = {"ref_logprobs": ref_logprobs} if term.needs_reference else {}
        history = state.get(term.name, {})
        value, extra = term.fn(
            logprobs=logprobs,
            entropy=entropy,
            mask=batch.loss_mask,
            turn_index=batch.turn_index,
            step=step,
            total_steps=total_steps,
            state=history,
            **inputs,
            **term.kwargs,
        )
        if history:
            state[term.name] = history
        total = total + value * share(term.weighting)
        metrics = {**metrics, **extra}
    return total, {**metrics, "loss": loss.detach()}


def diagnostics(batch: TokenBatch, logprobs: Tensor, entropy: Tensor) -> dict[str, Tensor]:
    """Token entropy (mean, mean of the top fifth) and the engine-vs-trainer logprob gap
    on the sampled tokens (no gradient)."""
    with torch.no_grad():
        mismatch = batch.old_logprobs - logprobs  # [B, T] engine vs trainer
        valid = entropy[batch.loss_mask > 0]  # [N]
        top = valid.topk(max(1, len(valid) // 5)).values.mean() if len(valid) else 0.0
        return {
            "entropy": aggregate(entropy.detach(), batch.loss_mask, "token-mean"),
            "entropy_top20": top,
            "logprob_mismatch_kl": aggregate(mismatch, batch.loss_mask, "token-mean"),
        }
