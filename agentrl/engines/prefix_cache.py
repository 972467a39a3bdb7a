"""A least-recently-used store of finished sequences' KV caches, reused by common prefix.

A multi-turn episode's next prompt is its previous prompt, the sampled turn and the
observation: everything but the observation was already computed. A branch's prompt
shares its parent's tokens up to the branch point. The engine stores each finished
sequence's keys and values here and, for a new prompt, reuses the longest common
prefix with any stored sequence, so only the remaining tokens are prefilled.

Entries hold per-layer tensors `[H, L, D]` (heads, tokens, head dim). Rotary position
embeddings are already applied to stored keys at positions 0..L-1, which is where the
shared tokens sit in any prompt that starts with them. Storing a sequence drops the
stored ones it extends (an episode's earlier turns), so an episode costs the memory
of its latest turn only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

Layers = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [H, L, D]


@dataclass
class Entry:
    tokens: np.ndarray  # [L] int64
    layers: Layers
    nbytes: int


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two token arrays."""
    length = min(len(a), len(b))
    differ = np.flatnonzero(a[:length] != b[:length])
    return int(differ[0]) if len(differ) else length


class PrefixCache:
    """Stored KV caches of token sequences, evicted least-recently-used past `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.lookups = 0
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, prompt: Sequence[int]) -> tuple[Entry, int] | None:
        """The stored entry sharing the longest prefix with `prompt`, and how many of its
        tokens to reuse (at most all but the prompt's last token, whose logits are needed)."""
        self.lookups += 1
        if not self._entries or len(prompt) < 2:
            return None
        query = np.asarray(prompt, dtype=np.int64)
        best: tuple[Entry, int] | None = None
        for entry in self._entries.values():
            shared = min(common_prefix(entry.tokens, query), len(prompt) - 1)
            if shared > 0 and (best is None or shared > best[1]):
                best = (entry, shared)
        if best is not None:
            self.hits += 1
            self._entries.move_to_end(best[0].tokens.tobytes())
        return best

    def store(self, tokens: Sequence[int], layers: Layers) -> None:
        """Keep `layers` (per layer keys and values `[H, L, D]`) for `tokens`."""
        if not tokens or self.max_bytes <= 0:
            return
        array = np.asarray(tokens, dtype=np.int64)
        key = array.tobytes()
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        nbytes = sum(k.nbytes + v.nbytes for k, v in layers)
        if nbytes > self.max_bytes:
            return
        for old_key, old in list(self._entries.items()):  # superseded: this one extends it
            if len(old.tokens) < len(array) and common_prefix(old.tokens, array) == len(old.tokens):
                del self._entries[old_key]
                self.nbytes -= old.nbytes
        self._entries[key] = Entry(array, layers, nbytes)
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.nbytes -= evicted.nbytes

    def clear(self) -> None:
        """Forget everything (after the weights change, stored keys are stale)."""
        self._entries.clear()
        self.nbytes = 0
