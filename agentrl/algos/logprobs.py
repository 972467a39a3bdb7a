"""Per-token logprobs and full-vocabulary entropies of the policy, with gradient, in chunks.

The trainer needs, at every position of a batch of sequences, the log-probability of the
given next token and the entropy H = logsumexp(z) − Σ softmax(z)·z of the temperature-scaled
distribution z = logits / temperature (see docs/algorithms.md, "Token entropy"). Materialising
the [B, T, V] logits at once costs 3.2 GB in fp32 for B = 8, T = 2048, V = 49k, and autograd
would keep several such tensors for backward. Here the output projection is applied to
`chunk_tokens` positions at a time and only per-position statistics survive a chunk;
backward recomputes each chunk's logits (see `_ChunkedHead`).

`naive_logprobs_and_entropy` is the one-shot reference the chunked path is tested against.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from agentrl.distributed import is_sharded


def token_logprobs_and_entropy(
    hidden: Tensor,  # [B, T, D] final hidden states (after the model's final norm)
    lm_head: nn.Module | Tensor,  # nn.Linear, or its weight [V, D]
    targets: Tensor,  # [B, T] token ids
    *,
    temperature: float = 1.0,
    chunk_tokens: int = 1024,
    compute_entropy: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Logprobs of `targets` [B, T] and entropies [B, T] (nats, fp32), both differentiable.

    Never holds more than a few [chunk_tokens, V] fp32 buffers, forward or backward.
    The entropy is None when `compute_entropy` is False (and then costs nothing).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    weight, bias = _head_parameters(lm_head)
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} does not match targets {targets.shape}")
    shape = targets.shape
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])  # [N, D]
    flat_targets = targets.reshape(-1).long()  # [N]
    logprobs, entropy = _ChunkedHead.apply(
        flat_hidden, weight, bias, flat_targets, temperature, chunk_tokens, compute_entropy
    )
    return logprobs.view(shape), (entropy.view(shape) if compute_entropy else None)


def naive_logprobs_and_entropy(
    logits: Tensor,  # [B, T, V]
    targets: Tensor,  # [B, T]
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Reference: logprobs [B, T] and entropies [B, T] (fp32) from the whole logits at once."""
    z = logits.float() / temperature  # [B, T, V]
    log_probs = torch.log_softmax(z, dim=-1)  # [B, T, V]
    logprobs = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [B, T]
    entropy = torch.logsumexp(z, dim=-1) - (log_probs.exp() * z).sum(-1)  # [B, T]
    return logprobs, entropy


def sequence_logprobs(
    model: nn.Module,
    input_ids: Tensor,  # [B, T]
    attention_mask: Tensor | None,  # [B, T], 1 = real token
    *,
    temperature: float = 1.0,
    chunk_tokens: int = 1024,
    compute_entropy: bool = True,
    position_ids: Tensor | None = None,  # [B, T]; pass them for left-padded rows
) -> tuple[Tensor, Tensor | None]:
    """Per-position logprobs [B, T] and entropies [B, T] of `input_ids` under `model`.

    `out[:, t]` is the logprob of `input_ids[:, t]` given the tokens before it, and
    `entropy[:, t]` the entropy of that predictive distribution. Column 0 is 0 (nothing
    predicts the first token), and so is every position whose token is padding
    (`attention_mask` 0); the caller still masks its loss to the response tokens.

    `model` is a Hugging Face causal LM, or a peft model wrapping one. The body runs once
    (through the decoder, so the [B, T, V] logits are never built) and the head runs in
    chunks. Adapters injected into the layers (LoRA and kin) take part, since unwrapping
    keeps the injected modules; prompt-learning adapters, which change the inputs inside
    PeftModel.forward, are refused, and so are heads that post-process the logits
    (soft-capping, logit scales) or carry an adapter themselves.
    """
    causal_lm = _causal_lm(model)
    config = getattr(causal_lm, "config", None)
    for name in ("final_logit_softcapping", "logit_scale"):
        if getattr(config, name, None) not in (None, 1, 1.0):
            raise NotImplementedError(f"models with {name} are not supported")
    body = causal_lm.get_decoder()
    head = causal_lm.get_output_embeddings()
    outputs = body(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
    )
    hidden = outputs[0]  # [B, T, D], after the final norm
    logprobs, entropy = token_logprobs_and_entropy(
        hidden[:, :-1],  # position t - 1 predicts token t
        head,
        input_ids[:, 1:],
        temperature=temperature,
        chunk_tokens=chunk_tokens,
        compute_entropy=compute_entropy,
    )  # [B, T-1] each
    logprobs = _shift_in(logprobs, attention_mask)  # [B, T]
    if entropy is not None:
        entropy = _shift_in(entropy, attention_mask)  # [B, T]
    return logprobs, entropy


def _shift_in(values: Tensor, attention_mask: Tensor | None) -> Tensor:
    """[B, T-1] values for tokens 1.. as [B, T], with 0 at column 0 and at padding."""
    values = nn.functional.pad(values, (1, 0))  # [B, T]
    if attention_mask is None:
        return values
    # where(), not a product: a product would turn an inf at padding into NaN.
    return torch.where(attention_mask.bool(), values, torch.zeros_like(values))  # [B, T]


def _causal_lm(model: nn.Module) -> nn.Module:
    """The Hugging Face causal LM inside `model` (itself, or what a PeftModel wraps)."""
    if hasattr(model, "get_base_model"):  # PeftModel; duck-typed so peft stays optional
        peft_config = getattr(model, "active_peft_config", None)
        if getattr(peft_config, "is_prompt_learning", False):
            raise NotImplementedError("prompt-learning peft adapters are not supported")
        model = model.get_base_model()
    if not hasattr(model, "get_decoder") or not hasattr(model, "get_output_embeddings"):
        raise TypeError(f"{type(model).__name__} is not a Hugging Face causal LM")
    return model


def _head_parameters(lm_head: nn.Module | Tensor) -> tuple[Tensor, Tensor | None]:
    """The weight [V, D] and bias [V] (or None) of a plain linear output projection."""
    if isinstance(lm_head, Tensor):
        return lm_head, None
    # Exactly a Linear: a wrapper (a LoRA layer on the head, say) would be silently bypassed.
    if type(lm_head) is nn.Linear:
        return lm_head.weight, lm_head.bias
    raise TypeError(f"lm_head must be an nn.Linear or a [V, D] weight, got {type(lm_head)}")


class _ChunkedHead(torch.autograd.Function):
    """The head, log-softmax, gather and entropy over [N, D] hidden states, chunk by chunk.

    Why a Function rather than torch.utils.checkpoint around each chunk: checkpoint would
    also recompute in backward, but it replays the chunk under autograd, which keeps the
    chunk's logits, log-softmax, softmax and products ([chunk, V] fp32 each) alive while
    that chunk backpropagates, and its saved-tensor bookkeeping is per chunk. Here the
    gradient is closed-form — with p = softmax(z) and m = Σ p·z = logsumexp(z) − H,
        d logprob / dz = onehot(target) − p,    dH / dz = −p · (z − m),
    so forward keeps only logsumexp and m per position ([N] fp32), backward needs two
    [chunk, V] fp32 buffers, and the weight gradient is skipped for a frozen head (LoRA).
    """

    @staticmethod
    def forward(
        ctx,
        hidden: Tensor,  # [N, D]
        weight: Tensor,  # [V, D]
        bias: Tensor | None,  # [V]
        targets: Tensor,  # [N]
        temperature: float,
        chunk_tokens: int,
        compute_entropy: bool,
    ) -> tuple[Tensor, Tensor]:
        rows = hidden.shape[0]
        logsumexp = hidden.new_empty(rows, dtype=torch.float32)  # [N]
        logprobs = hidden.new_empty(rows, dtype=torch.float32)  # [N]
        mean_logit = hidden.new_zeros(rows, dtype=torch.float32)  # [N], Σ p·z
        for start in range(0, rows, chunk_tokens):
            stop = min(start + chunk_tokens, rows)
            z = _scaled_logits(hidden[start:stop], weight, bias, temperature)  # [C, V]
            lse = torch.logsumexp(z, dim=-1)  # [C]
            logsumexp[start:stop] = lse
            logprobs[start:stop] = z.gather(1, targets[start:stop, None]).squeeze(1) - lse
            if compute_entropy:
                probs = (z - lse[:, None]).exp_()  # [C, V]
                mean_logit[start:stop] = probs.mul_(z).sum(-1)
        entropy = logsumexp - mean_logit  # [N]
        ctx.save_for_backward(hidden, weight, bias, targets, logsumexp, mean_logit)
        ctx.temperature = temperature
        ctx.chunk_tokens = chunk_tokens
        ctx.compute_entropy = compute_entropy
        if not compute_entropy:
            ctx.mark_non_differentiable(entropy)
        return logprobs, entropy

    @staticmethod
    def backward(
        ctx,
        grad_logprobs: Tensor | None,  # [N]
        grad_entropy: Tensor | None,  # [N]
    ) -> tuple[Tensor | None, ...]:
        hidden, weight, bias, targets, logsumexp, mean_logit = ctx.saved_tensors
        needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        if not ctx.compute_entropy:
            grad_entropy = None
        grad_hidden = torch.zeros_like(hidden) if needs_hidden else None  # [N, D]
        # fp32 accumulators: summing many bf16 chunk gradients in bf16 would lose precision.
        grad_weight = (
            torch.zeros_like(weight, dtype=torch.float32) if needs_weight else None
        )  # [V, D]
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if needs_bias else None  # [V]
        if grad_logprobs is None and grad_entropy is None:
            return grad_hidden, grad_weight, grad_bias, None, None, None, None
        for start in range(0, hidden.shape[0], ctx.chunk_tokens):
            stop = min(start + ctx.chunk_tokens, hidden.shape[0])
            chunk = hidden[start:stop]  # [C, D]
            z = _scaled_logits(chunk, weight, bias, ctx.temperature)  # [C, V]
            probs = (z - logsumexp[start:stop, None]).exp_()  # [C, V]
            # grad_z = g_lp·(onehot − p) − g_H·p·(z − m), built in place in z.
            if grad_entropy is not None:
                g_h = grad_entropy[start:stop, None].float()  # [C, 1]
                grad_z = z.sub_(mean_logit[start:stop, None]).mul_(g_h)  # [C, V]
                if grad_logprobs is not None:
                    grad_z.add_(grad_logprobs[start:stop, None].float())
            else:
                grad_z = z.copy_(grad_logprobs[start:stop, None].float().expand_as(z))  # [C, V]
            grad_z.mul_(probs).neg_()
            del probs
            if grad_logprobs is not None:
                grad_z.scatter_add_(
                    1, targets[start:stop, None], grad_logprobs[start:stop, None].float()
                )
            grad_z.div_(ctx.temperature)  # now the gradient w.r.t. the raw logits
            grad_logits = grad_z.to(weight.dtype)  # [C, V], the matmul dtype, as autograd would
            if needs_hidden:
                grad_hidden[start:stop] = grad_logits @ weight  # [C, D]
            if needs_weight and grad_weight.dtype == weight.dtype:
                grad_weight.addmm_(grad_logits.T, chunk.to(weight.dtype))  # [V, D]
            elif needs_weight:
                grad_weight.add_(grad_logits.T @ chunk.to(weight.dtype))  # [V, D]
            if needs_bias:
                grad_bias.add_(grad_z.sum(0))  # [V]
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        if grad_bias is not None:
            grad_bias = grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None


def _scaled_logits(
    hidden: Tensor,  # [C, D]
    weight: Tensor,  # [V, D]
    bias: Tensor | None,  # [V]
    temperature: float,
) -> Tensor:
    """z = (hidden @ W^T + b) / temperature in fp32: the matmul in the model's dtype, the rest
    in fp32 (logsumexp and softmax of bf16 logits are too coarse for a policy ratio)."""
    logits = nn.functional.linear(hidden.to(weight.dtype), weight, bias)  # [C, V]
    z = logits.float()  # [C, V]; `logits` itself when fp32, fresh either way, so in place is safe
    return z.div_(temperature) if temperature != 1.0 else z  # [C, V]


def policy_logprobs(
    model: Any, batch: Any, temperature: float, compute_entropy: bool = True
) -> tuple[Tensor, Tensor | None]:
    """Logprobs [B, T] and entropies [B, T] of a `TokenBatch`'s tokens under `model` (a
    policy, or its FSDP root unit, whose forward is this same computation)."""
    if is_sharded(model):
        return model(batch.input_ids, batch.attention_mask, temperature, compute_entropy)
    return sequence_logprobs(
        model,
        batch.input_ids,
        batch.attention_mask,
        temperature=temperature,
        compute_entropy=compute_entropy,
    )


def reference_logprobs(model: Any, reference: Any, batch: Any, temperature: float) -> Tensor:
    """The initial policy's logprobs of a `TokenBatch`'s tokens [B, T] (no gradient):
    `reference`, or with LoRA (`reference` None) `model` with its adapters switched off."""
    if reference is None:
        peft_model = model.policy if is_sharded(model) else model
        adapters_off = peft_model.disable_adapter()
    else:
        adapters_off = contextlib.nullcontext()
    with torch.no_grad(), adapters_off:
        return policy_logprobs(
            model if reference is None else reference, batch, temperature, compute_entropy=False
        )[0]
