"""Name -> function registries for advantages, losses and regularizers, and `aggregate`.

The config names an algorithm by strings (`algorithm.advantage: empg`); the trainer looks
each one up here and calls a pure function over tensors. Researchers add their own with
the decorators:

```python
from agentrl.algos import register_advantage

@register_advantage("my_baseline")
def my_baseline(batch, *, scale: float = 1.0):
    ...
```

A function's hyper-parameters are its keyword-only parameters with defaults
(`hyperparameters(fn)`), which is what the config layer checks user keyword arguments
against. Every per-token loss is reduced by one `aggregate(loss, mask, mode)`.

What a loss or regularizer needs from the trainer is stated when it is registered, as
its traits (`LossTraits`, `RegularizerTraits`, read back with `traits(fn)`):

```python
@register_loss("my_clip", advantage_weighted=True, clip_range=True)
def my_clip(logprobs, old_logprobs, advantages, mask, *, agg="token-mean",
            clip_eps_low=0.2, clip_eps_high=0.2):
    ...
```

The trainer reads nothing else: no table lists which loss does what.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from agentrl.errors import ConfigError, RegistrationError
from agentrl.suggest import did_you_mean

F = TypeVar("F", bound=Callable[..., Any])

ADVANTAGES: dict[str, Callable[..., Any]] = {}
LOSSES: dict[str, Callable[..., Any]] = {}
REGULARIZERS: dict[str, Callable[..., Any]] = {}

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")


@dataclass(frozen=True)
class LossTraits:
    """What a loss needs from the trainer, stated by `register_loss`."""

    advantage_weighted: bool = False
    """Every token's value and gradient are 0 where its advantage is 0 (the loss is A
    times a function of the ratio): rows with no advantage may then run forward only."""
    clip_range: bool = False
    """It takes `clip_eps_low` / `clip_eps_high`, set by algorithm.clip_eps_low/high."""
    selector: Callable[..., torch.Tensor] | None = None
    """A token pick that needs the whole batch's statistics,
    `selector(logprobs, advantages, mask, **hparams) -> [B, T] bool`: the trainer calls
    it once over every sampled token of the update (all micro-batches, all ranks, with
    the rollout's logprobs) and hands the loss the pick as `selected` [B, T]. Its
    hyper-parameters come from algorithm.loss_kwargs; a `generator` parameter gets one
    seeded by (train.seed, step)."""

    @property
    def inputs(self) -> frozenset[str]:
        """Parameters that are data, not configuration: the pick `selected` the trainer
        hands the loss, and a `generator`, which it hands only the selector."""
        return frozenset({"selected", "generator"}) if self.selector is not None else frozenset()


@dataclass(frozen=True)
class RegularizerTraits:
    """What a regularizer needs from the trainer, stated by `register_regularizer`."""

    needs_reference: bool = False
    """It takes `ref_logprobs` [B, T], the reference (initial) policy's logprobs of the
    batch's tokens; the trainer then keeps a reference policy."""

    @property
    def inputs(self) -> frozenset[str]:
        """Keyword arguments the trainer supplies at call time: data, not configuration."""
        return frozenset({"ref_logprobs"}) if self.needs_reference else frozenset()


_TRAITS: dict[Callable[..., Any], Any] = {}


# Parameters that only a trait supplies, and the trait that does, per kind.
_DECLARED = {
    "loss": {
        "clip_eps_low": "clip_range=True",
        "clip_eps_high": "clip_range=True",
        "selected": "selector=...",
    },
    "regularizer": {"ref_logprobs": "needs_reference=True"},
}


def _needed(traits: Any) -> list[str]:
    """Parameters a function registered with `traits` must take."""
    if isinstance(traits, LossTraits):
        clip = ["clip_eps_low", "clip_eps_high"] if traits.clip_range else []
        return [*clip, *(["selected"] if traits.selector is not None else [])]
    return sorted(getattr(traits, "inputs", ()))


def _register(
    table: dict[str, Callable[..., Any]], kind: str, name: str, traits: Any = None
) -> Callable[[F], F]:
    if not isinstance(name, str) or not name:
        raise RegistrationError(f"A {kind} name must be a non-empty str, got {name!r}.")

    def decorator(fn: F) -> F:
        if not callable(fn):
            raise RegistrationError(f"{kind} {name!r}: expected a function, got {fn!r}.")
        if name in table:
            raise RegistrationError(
                f"A {kind} named {name!r} is already registered ({table[name].__module__}."
                f"{table[name].__qualname__}); pick another name."
            )
        taken = inspect.signature(fn).parameters
        needed = _needed(traits)
        missing = [p for p in needed if p not in taken]
        if missing:
            raise RegistrationError(
                f"{kind} {name!r} is registered with {traits}, which hands it "
                f"{', '.join(missing)}, but it takes no such parameter; add it (keyword-only)."
            )
        undeclared = [p for p in _DECLARED.get(kind, {}) if p in taken and p not in needed]
        if undeclared:
            raise RegistrationError(
                f"{kind} {name!r} takes {', '.join(undeclared)}, which only a trait supplies; "
                f"register it with {', '.join(sorted({_DECLARED[kind][p] for p in undeclared}))}, "
                "or rename the parameter."
            )
        table[name] = fn
        if traits is not None:
            _TRAITS[fn] = traits
        return fn

    return decorator


def _lookup(table: dict[str, Callable[..., Any]], kind: str, name: str) -> Callable[..., Any]:
    if name in table:
        return table[name]
    known = sorted(table)
    raise ConfigError(
        [f"unknown {kind} {name!r}; known: {', '.join(known)}.{did_you_mean(name, known)}"]
    )


def register_advantage(name: str) -> Callable[[F], F]:
    """Register `fn(batch: AdvantageInput, *, **hparams) -> Tensor [K]` under `name`."""
    return _register(ADVANTAGES, "advantage", name)


def register_loss(
    name: str,
    *,
    advantage_weighted: bool = False,
    clip_range: bool = False,
    selector: Callable[..., torch.Tensor] | None = None,
) -> Callable[[F], F]:
    """Register `fn(logprobs, old_logprobs, advantages, mask, *, agg, **hparams)` under
    `name`, with its traits (see `LossTraits`)."""
    return _register(LOSSES, "loss", name, LossTraits(advantage_weighted, clip_range, selector))


def register_regularizer(name: str, *, needs_reference: bool = False) -> Callable[[F], F]:
    """Register `fn(*, logprobs, entropy, mask, turn_index, step, total_steps, state, ...)`
    under `name`, with its traits (see `RegularizerTraits`)."""
    return _register(REGULARIZERS, "regularizer", name, RegularizerTraits(needs_reference))


def traits(fn: Callable[..., Any]) -> Any:
    """The traits `fn` was registered with: `LossTraits` for a loss, `RegularizerTraits`
    for a regularizer (None for an advantage or an unregistered function)."""
    return _TRAITS.get(fn)


def get_advantage(name: str) -> Callable[..., Any]:
    """The advantage function registered as `name`; ConfigError listing the known names."""
    return _lookup(ADVANTAGES, "advantage", name)


def get_loss(name: str) -> Callable[..., Any]:
    """The loss function registered as `name`; ConfigError listing the known names."""
    return _lookup(LOSSES, "loss", name)


def get_regularizer(name: str) -> Callable[..., Any]:
    """The regularizer registered as `name`; ConfigError listing the known names."""
    return _lookup(REGULARIZERS, "regularizer", name)


def hyperparameters(fn: Callable[..., Any]) -> dict[str, Any]:
    """Keyword-only parameters with defaults, minus the data the trainer supplies at call
    time (its traits' `inputs`, such as a regularizer's `ref_logprobs`)."""
    supplied = getattr(traits(fn), "inputs", frozenset())
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.default is not inspect.Parameter.empty
        and p.name not in supplied
    }


def aggregate(loss: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean") -> torch.Tensor:
    """Reduce a per-token `loss` [B, T] over the tokens where `mask` [B, T] is non-zero.

    - `token-mean`: sum(loss·mask) / sum(mask) over the whole batch (DAPO).
    - `seq-mean-token-mean`: each row's mean over its valid tokens, then the mean over
      rows that have at least one valid token.
    - `seq-mean-token-sum`: each row's sum, then the mean over rows that have at least
      one valid token (rows of padding do not dilute the loss).

    An empty mask gives 0, never NaN.
    """
    if mode not in AGGREGATIONS:
        hint = did_you_mean(mode, AGGREGATIONS)
        raise ConfigError(
            [f"unknown aggregation {mode!r}; known: {', '.join(AGGREGATIONS)}.{hint}"]
        )
    mask = mask.to(loss.dtype)  # [B, T]
    # where(), not a product alone: a masked-out position may hold inf or NaN.
    weighted = torch.where(mask != 0, loss * mask, torch.zeros_like(loss))  # [B, T]
    if mode == "token-mean":
        return weighted.sum() / mask.sum().clamp_min(1e-8)
    row_sum = weighted.sum(-1)  # [B]
    row_count = mask.sum(-1)  # [B]
    has_tokens = (row_count > 0).to(loss.dtype)  # [B]
    if mode == "seq-mean-token-mean":
        row_sum = row_sum / row_count.clamp_min(1e-8)  # [B]
    return (row_sum * has_tokens).sum() / has_tokens.sum().clamp_min(1.0)
