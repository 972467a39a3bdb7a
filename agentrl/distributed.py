"""Training in several processes: ranks, collectives, and FSDP sharding.

Processes are started by `torchrun` or `accelerate launch`; `agentrl train` joins the
process group they set up. Every rank collects whole task groups and trains on them.
Two ways to keep the ranks' parameters equal:

- replicated (the default): each rank holds the whole model and optimizer; after
  gradient accumulation `sum_gradients` adds the ranks' gradients (each loss is already
  normalised by the whole batch's token count, so the sum is the single-process
  gradient).
- sharded (`train.fsdp=true`): PyTorch's FSDP2 (`fully_shard`) splits parameters,
  gradients and optimizer state over the ranks, one unit per decoder layer plus a root
  unit for the rest (embeddings, final norm, output head: tied weights stay in one
  unit). The root unit is `ShardedPolicy`, whose forward is the trainer's chunked
  logprob/entropy pass, so the head's chunks run while the root's parameters are
  gathered. Every forward gathers parameters from all ranks, so every rank must run
  the same number of forward/backward passes (batch preparation pads with empty
  micro-batches); the inference engine cannot sample from sharded weights, so it gets
  its own whole copy, refreshed from `full_state_dict` after each optimizer step.

Why fully_shard itself rather than accelerate's FSDP wrapper: the trainer already
decides where gradients are summed and what the engine receives; `fully_shard` is the
piece accelerate's FSDP2 path calls, without the Accelerator object around the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

T = TypeVar("T")

# Every collective below does nothing in one process (no process group), so the
# trainer calls them unconditionally: its loop has no world-size branches.


def rank() -> int:
    """This process's rank (0 unless torch.distributed is initialised)."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Processes training together (1 unless torch.distributed is initialised, e.g. by
    `accelerate launch` or torchrun)."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _single() -> bool:
    return world_size() == 1


def any_rank(flag: bool) -> bool:
    """Whether `flag` holds on any rank (all ranks must agree to update together)."""
    if _single():
        return flag
    value = torch.tensor(float(flag))
    torch.distributed.all_reduce(value)
    return bool(value.item())


def sum_over_ranks(value: int) -> int:
    """The sum of `value` over all ranks."""
    return _reduce(value, "SUM")


def max_over_ranks(value: int) -> int:
    """The largest `value` of all ranks."""
    return _reduce(value, "MAX")


def _reduce(value: int, op: str) -> int:
    if _single():
        return value
    tensor = torch.tensor(value)
    torch.distributed.all_reduce(tensor, op=getattr(torch.distributed.ReduceOp, op))
    return int(tensor.item())


def sum_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over the ranks, in place (and returned)."""
    if not _single():
        torch.distributed.all_reduce(tensor)
    return tensor


def sum_dicts(values: dict[str, float]) -> dict[str, float]:
    """Per key, the sum of every rank's `values` (a key missing on a rank counts 0)."""
    if _single():
        return values
    parts = all_gather(values)
    keys = dict.fromkeys(k for part in parts for k in part)  # first seen first, every rank
    return {k: sum(p.get(k, 0.0) for p in parts) for k in keys}


def all_gather(value: T) -> list[T]:
    """Every rank's `value` (picklable), in rank order, on every rank."""
    if _single():
        return [value]
    out: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(out, value)
    return out


def gather_to_main(value: list[T]) -> list[T]:
    """Every rank's list, joined on rank 0; other ranks get their own list back."""
    if _single():
        return value
    out: list[Any] | None = [None] * world_size() if rank() == 0 else None
    torch.distributed.gather_object(value, out, dst=0)
    return [x for part in out for x in part] if out is not None else value


def broadcast(value: T) -> T:
    """Rank 0's `value` (picklable), on every rank."""
    if _single():
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every rank."""
    if not _single():
        torch.distributed.barrier()


def sum_gradients(model: Any) -> None:
    """Sum each trainable parameter's gradient over the ranks (replicated training);
    nothing in one process or for a sharded model (FSDP reduced them in backward).

    One all-reduce per parameter after accumulation (rather than DDP's bucketed
    overlap) keeps the chunked logprob path, which calls the model's body and head
    separately, correct.
    """
    if _single() or is_sharded(model):
        return
    for parameter in model.parameters():
        if parameter.requires_grad:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
            torch.distributed.all_reduce(parameter.grad)


class ShardedPolicy(nn.Module):
    """The FSDP root unit around a policy (a causal LM or a peft model wrapping one).

    `forward` is `logprobs_fn` (the trainer's `sequence_logprobs`) of the policy:
    per-token logprobs and entropies.
    """

    def __init__(self, policy: nn.Module, logprobs_fn: Callable[..., Any]) -> None:
        super().__init__()
        self.policy = policy
        self.logprobs_fn = logprobs_fn

    def forward(
        self,
        input_ids: torch.Tensor,  # [B, T]
        attention_mask: torch.Tensor,  # [B, T]
        temperature: float = 1.0,
        compute_entropy: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.logprobs_fn(
            self.policy,
            input_ids,
            attention_mask,
            temperature=temperature,
            compute_entropy=compute_entropy,
        )


def shard(policy: nn.Module, logprobs_fn: Callable[..., Any]) -> ShardedPolicy:
    """Shard `policy` over the ranks in place and return its root unit, whose forward
    is `logprobs_fn(policy, input_ids, attention_mask, temperature=, compute_entropy=)`.

    Each decoder layer (the model's `_no_split_modules` classes, as transformers names
    them) becomes an FSDP unit; the rest belongs to the root. Gradients are summed
    over ranks, not averaged: the trainer normalises each rank's loss by the whole
    batch already.
    """
    from torch.distributed.fsdp import FSDPModule, fully_shard

    layer_names = set(_no_split_modules(policy))
    layers = [m for m in policy.modules() if type(m).__name__ in layer_names]
    if not layers:
        raise ValueError(
            f"{type(policy).__name__} names no decoder layer class (_no_split_modules); "
            "FSDP needs one to split the model into units"
        )
    for layer in layers:
        fully_shard(layer)
    root = ShardedPolicy(policy, logprobs_fn)
    fully_shard(root)
    for module in root.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)  # plain SUM: gloo has no PREMUL_SUM
    return root


def _no_split_modules(policy: nn.Module) -> list[str]:
    model = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
    return list(getattr(model, "_no_split_modules", None) or [])


def full_state_dict(root: ShardedPolicy, trainable_only: bool) -> dict[str, torch.Tensor]:
    """The policy's whole (unsharded) weights on every rank, keyed as the policy's own
    `state_dict()` (collective: every rank must call it). `trainable_only` leaves the
    frozen weights out (LoRA: only the adapters changed)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, ignore_frozen_params=trainable_only)
    state = get_model_state_dict(root, options=options)
    prefix = "policy."
    return {k.removeprefix(prefix): v for k, v in state.items()}


def full_optimizer_state(root: ShardedPolicy, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer state of sharded parameters, whole and keyed by parameter name, on
    rank 0 (collective): one file for the checkpoint, whatever the number of ranks."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(root, optimizer, options=options)


def load_full_optimizer_state(
    root: ShardedPolicy, optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Give each rank its shard of a whole optimizer state (from `full_optimizer_state`)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(root, optimizer, optim_state_dict=state, options=options)


def is_sharded(model: Any) -> bool:
    return isinstance(model, ShardedPolicy)


def local_value(tensor: torch.Tensor) -> torch.Tensor:
    """A plain tensor from a DTensor (e.g. the gradient norm of sharded gradients)."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
