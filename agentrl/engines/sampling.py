"""Drawing the next token from logits, with its logprob and the distribution's entropy.

A pure function over tensors, shared by the engines and tested on its own. Rows may
have different sampling parameters. The logprob and entropy are those of the
temperature-scaled *full* distribution (what the trainer recomputes); `top_p` and
`top_k` only restrict which token is drawn.
"""

from __future__ import annotations

import torch


def sample_next(
    logits: torch.Tensor,  # [B, V]
    temperature: torch.Tensor,  # [B], 0 = greedy
    top_p: torch.Tensor,  # [B], 1 = off
    top_k: torch.Tensor,  # [B], 0 = off
    generators: list[torch.Generator | None],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sampled tokens [B], their logprobs [B] and the entropies [B] (nats)."""
    logits = logits.float()  # [B, V]
    greedy = temperature <= 0  # [B]
    scale = torch.where(greedy, torch.ones_like(temperature), temperature).float()  # [B]
    scaled = logits / scale[:, None]  # [B, V]
    logprobs = torch.log_softmax(scaled, dim=-1)  # [B, V]
    probs = logprobs.exp()  # [B, V]
    entropy = torch.logsumexp(scaled, dim=-1) - (probs * scaled).sum(-1)  # [B]

    draw_probs = probs
    filtering = (top_p < 1) | (top_k > 0)  # [B]
    if bool(filtering.any()):
        # Only rows that asked for it: a seeded row's draw must not depend on its batch.
        draw_probs = torch.where(filtering[:, None], _filtered(scaled, top_p, top_k), probs)
    tokens = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)  # [B]
    for row, (generator, is_greedy) in enumerate(zip(generators, greedy.tolist(), strict=True)):
        if is_greedy:
            tokens[row] = torch.argmax(logits[row])
        else:
            tokens[row] = torch.multinomial(draw_probs[row], 1, generator=generator)[0]
    chosen = logprobs.gather(1, tokens[:, None]).squeeze(1)  # [B]
    return tokens, chosen, entropy


def _filtered(scaled: torch.Tensor, top_p: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
    """Probabilities renormalised over each row's top-k and nucleus."""
    sorted_logits, order = scaled.sort(dim=-1, descending=True)  # [B, V]
    rank = torch.arange(scaled.shape[-1], device=scaled.device)[None, :]  # [1, V]
    drop = (top_k[:, None] > 0) & (rank >= top_k[:, None])  # [B, V]
    sorted_probs = torch.softmax(sorted_logits.masked_fill(drop, float("-inf")), dim=-1)  # [B, V]
    mass_before = sorted_probs.cumsum(-1) - sorted_probs  # [B, V]
    drop |= mass_before >= top_p[:, None]  # the first token always stays (mass_before = 0)
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))  # [B, V]
    filtered = torch.full_like(scaled, float("-inf")).scatter(1, order, sorted_logits)  # [B, V]
    return torch.softmax(filtered, dim=-1)  # [B, V]
