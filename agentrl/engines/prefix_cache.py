"""A least-recently-used store of finished sequences' KV caches, found by token prefix.

A multi-turn episode's next prompt is its previous prompt, the sampled turn and the
observation: everything but the observation was already computed. A branch's prompt
is its parent's up to the branch point. The engine stores each finished sequence's
keys and values here and, for a new prompt, takes the longest stored sequence that is
a prefix of it, so only the remaining tokens are prefilled.

Entries hold per-layer tensors `[H, L, D]` (heads, tokens, head dim) for the tokens
they cover. Rotary position embeddings are already applied to stored keys at
positions 0..L-1, which is where the tokens sit in any prompt they prefix.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

Layers = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [H, L, D]


@dataclass
class Entry:
    tokens: tuple[int, ...]
    layers: Layers
    nbytes: int


class PrefixCache:
    """Stored KV caches of token sequences, evicted least-recently-used past `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.lookups = 0
        self._entries: OrderedDict[tuple[int, ...], Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, prompt: Sequence[int]) -> Entry | None:
        """The longest stored sequence that is a proper prefix of `prompt` (one token
        at least must stay to be computed, since the engine needs its logits)."""
        self.lookups += 1
        best: Entry | None = None
        for entry in self._entries.values():
            length = len(entry.tokens)
            if length >= len(prompt) or (best is not None and length <= len(best.tokens)):
                continue
            if tuple(prompt[:length]) == entry.tokens:
                best = entry
        if best is not None:
            self.hits += 1
            self._entries.move_to_end(best.tokens)
        return best

    def store(self, tokens: Sequence[int], layers: Layers) -> None:
        """Keep `layers` (per layer keys and values `[H, L, D]`) for `tokens`."""
        key = tuple(tokens)
        if not key or self.max_bytes <= 0:
            return
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        nbytes = sum(k.nbytes + v.nbytes for k, v in layers)
        if nbytes > self.max_bytes:
            return
        self._entries[key] = Entry(key, layers, nbytes)
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.nbytes -= evicted.nbytes

    def clear(self) -> None:
        """Forget everything (after the weights change, stored keys are stale)."""
        self._entries.clear()
        self.nbytes = 0
