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
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from agentrl.errors import ConfigError, RegistrationError

F = TypeVar("F", bound=Callable[..., Any])

ADVANTAGES: dict[str, Callable[..., Any]] = {}
LOSSES: dict[str, Callable[..., Any]] = {}
REGULARIZERS: dict[str, Callable[..., Any]] = {}

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")

# Keyword arguments the trainer supplies at call time: data, not configuration.
RUNTIME_ARGUMENTS = frozenset({"ref_logprobs", "generator", "selected"})


def _register(table: dict[str, Callable[..., Any]], kind: str, name: str) -> Callable[[F], F]:
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
        table[name] = fn
        return fn

    return decorator


def _lookup(table: dict[str, Callable[..., Any]], kind: str, name: str) -> Callable[..., Any]:
    if name in table:
        return table[name]
    known = sorted(table)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError([f"unknown {kind} {name!r}; known: {', '.join(known)}.{hint}"])


def register_advantage(name: str) -> Callable[[F], F]:
    """Register `fn(batch: AdvantageInput, *, **hparams) -> Tensor [K]` under `name`."""
    return _register(ADVANTAGES, "advantage", name)


def register_loss(name: str) -> Callable[[F], F]:
    """Register `fn(logprobs, old_logprobs, advantages, mask, *, agg, **hparams)` under `name`."""
    return _register(LOSSES, "loss", name)


def register_regularizer(name: str) -> Callable[[F], F]:
    """Register `fn(*, logprobs, entropy, mask, turn_index, step, total_steps, state, ...)`."""
    return _register(REGULARIZERS, "regularizer", name)


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
    """Keyword-only parameters with defaults (minus runtime data such as `ref_logprobs`)."""
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.default is not inspect.Parameter.empty
        and p.name not in RUNTIME_ARGUMENTS
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
        close = difflib.get_close_matches(str(mode), AGGREGATIONS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
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
