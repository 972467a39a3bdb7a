"""An engine that replays scripted outputs: the fake twin of the real engines, for tests.

    engine = ScriptedEngine(tokenizer, ["guess[50]", "guess[75]"])   # texts, in call order
    engine = ScriptedEngine(tokenizer, lambda prompt_ids, index: "guess[50]")
    engine = ScriptedEngine(tokenizer, texts, entropy=lambda prompt_ids, index: 2.0)

Each scripted text is tokenised and ended with the end-of-turn token (or cut after a
stop string, like the real engines); logprobs and entropies are fixed values so
layers above can be tested without a model; `entropy` may be a function of the prompt
and the call index (branching decisions read it). It keeps the whole engine protocol:
`prefill_tokens` follows the prefix-reuse contract (a prompt sharing a prefix with a
prompt and completion it answered since the last weight change is prefilled after the
longest such prefix, never fewer than 1 token),
and `load_weights` / `weights_updated` drop what it would reuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from agentrl.engines.base import Completion, GenerationRequest

Script = Sequence[str] | Callable[[Sequence[int], int], str]


class ScriptedEngine:
    """Answers requests with scripted texts, in call order or from a function of the prompt."""

    def __init__(
        self,
        tokenizer,
        script: Script,
        logprob: float = -0.5,
        entropy: float | Callable[[Sequence[int], int], float] = 1.0,
        delay_s: float = 0.0,
    ) -> None:
        self.tokenizer = tokenizer
        self.script = script
        self.logprob = logprob
        self.entropy = entropy
        self.delay_s = delay_s
        self.calls = 0
        self.requests: list[GenerationRequest] = []
        self.stop_id = tokenizer.eos_token_id
        self.weight_updates = 0
        self._computed: list[tuple[int, ...]] = []  # prompt + completion, since new weights
        self._closed = False

    def _text(self, prompt_ids: Sequence[int]) -> str:
        index = self.calls
        self.calls += 1
        if callable(self.script):
            return self.script(prompt_ids, index)
        if index >= len(self.script):
            raise RuntimeError(f"ScriptedEngine ran out of script after {len(self.script)} calls")
        return self.script[index]

    def _prefill(self, prompt: Sequence[int]) -> int:
        """Prompt tokens to compute: those after the longest prefix already computed."""
        prompt = tuple(prompt)
        reused = 0
        for seen in self._computed:
            shared = next(
                (i for i, (a, b) in enumerate(zip(prompt, seen, strict=False)) if a != b),
                min(len(prompt), len(seen)),
            )
            reused = max(reused, shared)
        return len(prompt) - min(reused, len(prompt) - 1)

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        if self._closed:
            raise RuntimeError("ScriptedEngine.generate() called after close()")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        results = []
        for request in requests:
            self.requests.append(request)
            completions = []
            for _ in range(request.params.n):
                index = self.calls
                text, finish = self._text(request.prompt_ids), "stop"
                entropy = (
                    self.entropy(request.prompt_ids, index)
                    if callable(self.entropy)
                    else self.entropy
                )
                cut = [text.index(s) + len(s) for s in request.params.stop if s in text]
                ids = self.tokenizer(
                    text[: min(cut)] if cut else text, add_special_tokens=False
                ).input_ids
                if cut:  # stopped by a stop string, as the real engines do: no end token
                    ids = ids[: request.params.max_new_tokens]
                elif len(ids) < request.params.max_new_tokens:
                    ids = [*ids, self.stop_id]
                else:
                    ids, finish = ids[: request.params.max_new_tokens], "length"
                completions.append(
                    Completion(
                        token_ids=ids,
                        logprobs=[self.logprob] * len(ids),
                        entropies=[float(entropy)] * len(ids),
                        finish_reason=finish,
                        prompt_tokens=len(request.prompt_ids),
                        prefill_tokens=self._prefill(request.prompt_ids),
                    )
                )
                self._computed = [*self._computed[-255:], (*request.prompt_ids, *ids)]
            results.append(completions)
        return results

    def load_weights(self, state_dict: dict) -> None:
        """Scripted outputs have no weights: counted, and nothing is reused afterwards."""
        self.weights_updated()

    def weights_updated(self) -> None:
        """Counted; nothing computed before is reused afterwards."""
        self.weight_updates += 1
        self._computed = []

    async def close(self) -> None:
        """Nothing to release; generate() refuses afterwards, as the real engines do."""
        self._closed = True
