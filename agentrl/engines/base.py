"""The engine protocol: token ids in, sampled token ids with logprobs and entropies out.

    completions = await engine.generate([GenerationRequest(prompt_ids, SamplingParams(n=4))])
    completions[0][2].token_ids, completions[0][2].logprobs, completions[0][2].entropies

`logprobs` are those of the sampled tokens under the temperature-scaled full
distribution (what the trainer recomputes); `top_p` and `top_k` only restrict which
token is drawn. `entropies` are the Shannon entropies (nats) of that same
distribution at each sampled position: exact where the engine sees the full logits
(`entropy_exact=True`), from the top-k logprobs otherwise.

A request always carries its whole prompt as tokens, and `Completion.prefill_tokens`
says how many of them the engine computed. The prefix-reuse contract:

- An engine may reuse what it computed for a prompt prefix it has seen (the previous
  turn of an episode, its prompt plus its completion; the shared part of a branch of a
  rollout tree): the `hf` engine with its prefix cache, a vLLM server with automatic
  prefix caching. Reuse changes no result beyond numerics, only `prefill_tokens`
  (1 <= prefill_tokens <= prompt_tokens: the last prompt token is always computed).
- After the policy's weights change, nothing computed before may be reused: the trainer
  calls `load_weights(state_dict)` when the engine holds its own copy of the weights, or
  `weights_updated()` when it changed the engine's (shared) model in place.

`tests/engines/test_contract.py` checks every registered engine against this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one request."""

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy (logprobs and entropies then use temperature 1)."""
    top_p: float = 1.0
    """Nucleus mass: draw only from the smallest set of tokens whose probability reaches it."""
    top_k: int = 0
    """Draw only from the k most likely tokens; 0 disables."""
    max_new_tokens: int = 128
    """Most tokens to generate."""
    stop: tuple[str, ...] = ()
    """Stop once the generated text contains one of these (the tokens that form it are kept)."""
    stop_token_ids: tuple[int, ...] = ()
    """Extra token ids that end the turn (besides the engine's end-of-sequence ids)."""
    n: int = 1
    """Independent samples of this prompt."""
    seed: int | None = None
    """Seed of this request's sampling (each of its n samples gets its own stream derived
    from it). None draws from the engine RNG."""

    def __post_init__(self) -> None:
        problems = []
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0; got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1]; got {self.top_p}")
        if self.top_k < 0:
            problems.append(f"top_k must be >= 0 (0 disables); got {self.top_k}")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be >= 1; got {self.max_new_tokens}")
        if self.n < 1:
            problems.append(f"n must be >= 1; got {self.n}")
        if any(not s for s in self.stop):
            problems.append("stop strings must be non-empty (an empty one stops at once)")
        if problems:
            raise ValueError("Invalid SamplingParams: " + "; ".join(problems))


@dataclass(frozen=True)
class GenerationRequest:
    """A prompt, as token ids, and how to sample it."""

    prompt_ids: Sequence[int]
    params: SamplingParams = field(default_factory=SamplingParams)


@dataclass
class Completion:
    """One sampled continuation of a request's prompt."""

    token_ids: list[int]
    """Sampled tokens, the stop token included."""
    logprobs: list[float]
    """Log-probability of each sampled token under the temperature-scaled distribution."""
    entropies: list[float]
    """Entropy (nats) of the temperature-scaled next-token distribution at each position."""
    finish_reason: FinishReason
    """'stop' (end-of-turn token or stop string) or 'length' (max_new_tokens reached)."""
    entropy_exact: bool = True
    """False when entropies come from top-k logprobs rather than full logits."""
    prompt_tokens: int = 0
    """Tokens in the prompt."""
    prefill_tokens: int = 0
    """Prompt tokens the engine actually computed (fewer when a prefix cache hit)."""
    queue_s: float = 0.0
    """Seconds the request waited before its batch started."""
    generate_s: float = 0.0
    """Seconds its batch took."""


@runtime_checkable
class Engine(Protocol):
    """What the rollout manager and trainer need from an inference engine."""

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """For each request, its `params.n` completions. Concurrent callers may be batched."""
        ...

    def load_weights(self, state_dict: dict) -> None:
        """Replace the policy weights (between training steps); nothing computed with the
        old weights is reused afterwards."""
        ...

    def weights_updated(self) -> None:
        """The model the engine serves was changed in place (an optimizer step on shared
        weights): nothing computed before is reused afterwards."""
        ...

    async def close(self) -> None:
        """Release resources; generate() may not be called afterwards."""
        ...
