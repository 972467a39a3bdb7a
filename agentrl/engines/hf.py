"""The `hf` engine: in-process transformers generation with exact per-token entropies.

    engine = HFEngine(model, tokenizer, max_batch_size=32)
    [[completion]] = await engine.generate([GenerationRequest(prompt_ids, SamplingParams())])

Continuous batching: a decode thread keeps one running batch. Between two decode
steps it admits every waiting request (up to `max_batch_size` sequences), prefills
them and merges their KV caches into the batch; a sequence that finishes leaves at
once and its caller is answered right away, so an episode can step its env while the
others keep decoding. The asyncio event loop never blocks on the model.

Prompts are left-padded; positions count real tokens only, so rows of different
lengths share a batch. A finished sequence's keys and values go to a prefix cache:
the next turn of the same episode (or a branch of it) prefills only the tokens it
adds. Every sampled token comes with its logprob and the exact entropy of the full
temperature-scaled distribution.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from agentrl.engines.base import Completion, GenerationRequest, SamplingParams
from agentrl.engines.prefix_cache import Entry, Layers, PrefixCache
from agentrl.engines.sampling import sample_next


@dataclass
class _Sequence:
    """One sample being generated, and the future its caller awaits."""

    prompt: list[int]
    params: SamplingParams
    generator: torch.Generator | None
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float
    started: float = 0.0
    weights_version: int = 0
    prefill: int = 0
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    finish_reason: str = "length"


@dataclass
class _Batch:
    """The running batch: its sequences and their decode state (decode thread only)."""

    sequences: list[_Sequence]
    cache: DynamicCache
    attention: torch.Tensor  # [B, W] 1 where the cache column is a real token
    positions: torch.Tensor  # [B] position of the last token fed
    logits: torch.Tensor  # [B, V] next-token logits
    temperature: torch.Tensor  # [B]
    top_p: torch.Tensor  # [B]
    top_k: torch.Tensor  # [B]

    def select(self, keep: list[int]) -> None:
        index = torch.tensor(keep, device=self.attention.device)
        self.sequences = [self.sequences[i] for i in keep]
        self.cache.batch_select_indices(index)
        for name in ("attention", "positions", "logits", "temperature", "top_p", "top_k"):
            setattr(self, name, getattr(self, name)[index])
        # Columns no remaining row uses (left padding of rows that left) are dropped.
        first = int(self.attention.any(0).long().argmax())
        if first:
            self.attention = self.attention[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]


@dataclass
class EngineStats:
    """Counters since the engine started (read by benchmarks and metrics)."""

    steps: int = 0
    sequences: int = 0
    decoded_tokens: int = 0
    prefill_tokens: int = 0
    busy_s: float = 0.0
    admissions: int = 0
    admit_s: float = 0.0

    @property
    def mean_batch(self) -> float:
        """Average sequences per decode step."""
        return self.decoded_tokens / max(self.steps, 1)


class HFEngine:
    """Continuously batched sampling from a transformers causal LM (CPU or GPU).

    Args:
        model: a causal LM (`AutoModelForCausalLM`); it is put in eval mode.
        tokenizer: its tokenizer (used for stop strings and the end-of-turn token).
        max_batch_size: most sequences decoded together.
        stop_token_ids: tokens that end a turn; default: the tokenizer's eos token.
        seed: seed of the engine RNG (used by requests without their own seed).
        prefix_cache_bytes: memory for finished sequences' KV caches, reused when a later
            prompt extends them (the next turn of an episode, a branch); 0 disables.
        admit_wait_steps: how many decode steps a newcomer may wait for others to gather
            before it is admitted into a running batch (0: at once).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        max_batch_size: int = 32,
        stop_token_ids: Sequence[int] | None = None,
        seed: int = 0,
        prefix_cache_bytes: int = 2 * 1024**3,
        admit_wait_steps: float = 4.0,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1; got {max_batch_size}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        if stop_token_ids is None:
            stop_token_ids = [tokenizer.eos_token_id, *_generation_eos(model)]
        self.stop_token_ids = frozenset(int(t) for t in stop_token_ids if t is not None)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.vocab_size = model.get_input_embeddings().num_embeddings
        self._cache_kwarg = cache_keyword(model)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.stats = EngineStats()
        # With a sliding attention window, the mask counts cache columns rather than
        # positions, so the holes a reused prefix leaves would hide in-window tokens.
        sliding = getattr(model.config, "sliding_window", None) is not None
        self.prefix_cache = PrefixCache(0 if sliding else prefix_cache_bytes)
        self._weights_version = 0
        self.admit_wait_steps = admit_wait_steps
        self._step_s = 0.0  # moving average of one decode step's time
        self._pending: list[_Sequence] = []
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Held during each decode step, so load_weights never swaps weights mid-forward.
        self._weights_lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ caller side

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """For each request, its `params.n` completions (batched with concurrent callers)."""
        if self._closed:
            raise RuntimeError("HFEngine.generate() called after close()")
        loop = asyncio.get_running_loop()
        groups: list[list[asyncio.Future]] = []
        sequences = []
        now = time.perf_counter()
        for request in requests:
            if not request.prompt_ids:
                raise ValueError("A GenerationRequest needs at least one prompt token")
            bad = [t for t in request.prompt_ids if not 0 <= t < self.vocab_size]
            if bad:
                raise ValueError(
                    f"prompt token ids {bad[:5]} are outside the vocabulary [0, {self.vocab_size})"
                )
            group = []
            for i in range(request.params.n):
                generator = None
                if request.params.seed is not None:
                    generator = torch.Generator(device=self.device)
                    generator.manual_seed(_sample_seed(request.params.seed, i))
                future = loop.create_future()
                sequences.append(
                    _Sequence(
                        list(request.prompt_ids), request.params, generator, future, loop, now
                    )
                )
                group.append(future)
            groups.append(group)
        with self._wakeup:
            self._pending.extend(sequences)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="agentrl-hf-engine", daemon=True
                )
                self._thread.start()
            self._wakeup.notify()
        return [list(await asyncio.gather(*group)) for group in groups]

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Copy new policy weights in (between decode steps; call it while idle)."""
        with self._weights_lock:
            known = self.model.state_dict().keys()
            unexpected = [key for key in state_dict if key not in known]
            if unexpected:
                raise KeyError(
                    f"load_weights got parameters the model does not have: {unexpected[:5]}"
                )
            self.model.load_state_dict(state_dict, strict=False)
            self._new_weights()

    def weights_updated(self) -> None:
        """Call after changing the shared model's weights in place (drops stale caches)."""
        with self._weights_lock:
            self._new_weights()

    def _new_weights(self) -> None:
        # Keys and values computed with the old weights are stale: drop the stored ones,
        # and never store those of sequences admitted before the change.
        self._weights_version += 1
        self.prefix_cache.clear()

    async def close(self) -> None:
        """Stop the decode thread; callers still waiting get a RuntimeError."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        for sequence in self._pending:
            _answer(sequence, RuntimeError("HFEngine closed"))
        self._pending.clear()

    # ------------------------------------------------------------------ decode thread

    def _serve(self) -> None:
        batch: _Batch | None = None
        while True:
            with self._wakeup:
                while not self._pending and batch is None and not self._closed:
                    self._wakeup.wait()
                if self._closed:
                    if batch is not None:
                        for sequence in batch.sequences:
                            _answer(sequence, RuntimeError("HFEngine closed"))
                    return
                admitted = []
                if self._should_admit(batch):
                    room = self.max_batch_size - (len(batch.sequences) if batch else 0)
                    admitted, self._pending = self._pending[:room], self._pending[room:]
            try:
                with self._weights_lock, torch.inference_mode():
                    started = time.perf_counter()
                    if admitted:
                        batch = self._admit_or_fail(batch, admitted)
                        self.stats.admit_s += time.perf_counter() - started
                    stepped = time.perf_counter()
                    batch = self._step(batch) if batch is not None else None
                    now = time.perf_counter()
                    self._step_s = 0.8 * self._step_s + 0.2 * (now - stepped)
                    self.stats.busy_s += now - started
            except Exception as exc:  # a failed step fails the sequences in flight only
                for sequence in batch.sequences if batch else []:
                    _answer(sequence, exc)
                batch = None

    def _should_admit(self, batch: _Batch | None) -> bool:
        """Admit waiting sequences now, or let a few more gather first?

        Every admission is a forward pass that does not advance the running rows, so
        on hardware where a step costs the same for 1 or 16 rows (a CPU), admitting
        callers one by one as they trickle back from their envs halves throughput.
        Newcomers join at once when nothing runs, when as many wait as run, or when
        the oldest has waited `admit_wait_steps` decode steps.
        """
        if not self._pending:
            return False
        if batch is None or len(self._pending) >= len(batch.sequences):
            return True
        if len(batch.sequences) >= self.max_batch_size:
            return False
        waited = time.perf_counter() - self._pending[0].enqueued
        return waited >= self.admit_wait_steps * self._step_s

    def _admit_or_fail(self, batch: _Batch | None, sequences: list[_Sequence]) -> _Batch | None:
        """Admit `sequences`; if their prefill fails, only they fail, not the running batch."""
        sequences = [s for s in sequences if not s.future.done()]  # skip cancelled callers
        if not sequences:
            return batch
        try:
            return self._admit(batch, sequences)
        except Exception as exc:
            for sequence in sequences:
                _answer(sequence, exc)
            return batch

    def _admit(self, batch: _Batch | None, sequences: list[_Sequence]) -> _Batch:
        now = time.perf_counter()
        for sequence in sequences:
            sequence.started = now
            sequence.weights_version = self._weights_version
        self.stats.sequences += len(sequences)
        self.stats.admissions += 1
        joined = self._prefill(sequences)
        return joined if batch is None else _merge(batch, joined)

    def _step(self, batch: _Batch) -> _Batch | None:
        """Sample one token for every row, answer finished rows, feed the others."""
        generators = [s.generator or self.generator for s in batch.sequences]
        tokens, logprobs, entropies = sample_next(
            batch.logits, batch.temperature, batch.top_p, batch.top_k, generators
        )
        self.stats.steps += 1
        self.stats.decoded_tokens += len(batch.sequences)
        keep = []
        # One transfer per step, not one per row (a device sync each on a GPU).
        token_list, logprob_list, entropy_list = (
            tokens.tolist(),
            logprobs.tolist(),
            entropies.tolist(),
        )
        for slot, sequence in enumerate(batch.sequences):
            if sequence.future.done():  # the caller was cancelled: stop decoding it
                continue
            token = token_list[slot]
            sequence.tokens.append(token)
            sequence.logprobs.append(logprob_list[slot])
            sequence.entropies.append(entropy_list[slot])
            stops = self.stop_token_ids | set(sequence.params.stop_token_ids)
            if token in stops or self._hit_stop_string(sequence):
                sequence.finish_reason = "stop"
            elif len(sequence.tokens) >= sequence.params.max_new_tokens:
                sequence.finish_reason = "length"
            else:
                keep.append(slot)
                continue
            self._remember(sequence, batch, slot)
            _answer(sequence, self._completion(sequence))
        if not keep:
            return None
        if len(keep) < len(batch.sequences):
            batch.select(keep)
            tokens = tokens[torch.tensor(keep, device=tokens.device)]
        batch.attention = torch.cat(
            [batch.attention, batch.attention.new_ones((len(keep), 1))], dim=1
        )  # [B, W+1]
        batch.positions = batch.positions + 1  # [B]
        batch.logits = self.model(
            input_ids=tokens[:, None],
            attention_mask=batch.attention,
            position_ids=batch.positions[:, None],
            use_cache=True,
            **{self._cache_kwarg: batch.cache},
        ).logits[:, -1, :]  # [B, V]
        return batch

    def _prefill(self, sequences: list[_Sequence]) -> _Batch:
        """A batch of new sequences with their prompts computed, reusing stored prefixes.

        Row layout: [pad, reused prefix | pad, new prompt tokens], the reused part
        right-aligned to the past width C and the new part to the new width N; the
        attention mask marks the holes, and positions count real tokens only.
        """
        device = self.device
        hits = [self.prefix_cache.lookup(s.prompt) for s in sequences]
        reused = [h[1] if h is not None else 0 for h in hits]
        for sequence, count in zip(sequences, reused, strict=True):
            sequence.prefill = len(sequence.prompt) - count
        past_width = max(reused)
        new_width = max(s.prefill for s in sequences)
        rows = len(sequences)
        input_ids = torch.full((rows, new_width), self.pad_id, dtype=torch.long)  # [B, N]
        attention = torch.zeros((rows, past_width + new_width), dtype=torch.long)  # [B, C+N]
        positions = torch.zeros((rows, new_width), dtype=torch.long)  # [B, N]
        for row, (sequence, count) in enumerate(zip(sequences, reused, strict=True)):
            fresh = sequence.prompt[count:]
            input_ids[row, new_width - len(fresh) :] = torch.tensor(fresh)
            attention[row, past_width - count : past_width] = 1
            attention[row, past_width + new_width - len(fresh) :] = 1
            positions[row, new_width - len(fresh) :] = torch.arange(count, len(sequence.prompt))
        cache = DynamicCache()
        if past_width:
            cache = DynamicCache(ddp_cache_data=_stack_prefixes(hits, past_width))
        input_ids, attention, positions = (t.to(device) for t in (input_ids, attention, positions))
        self.stats.prefill_tokens += sum(s.prefill for s in sequences)
        logits = self.model(
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=positions,
            use_cache=True,
            **{self._cache_kwarg: cache},
            logits_to_keep=1,
        ).logits[:, -1, :]  # [B, V]
        return _Batch(
            sequences=sequences,
            cache=cache,
            attention=attention,
            positions=positions[:, -1],
            logits=logits,
            temperature=torch.tensor([s.params.temperature for s in sequences], device=device),
            top_p=torch.tensor([s.params.top_p for s in sequences], device=device),
            top_k=torch.tensor([s.params.top_k for s in sequences], device=device),
        )

    def _remember(self, sequence: _Sequence, batch: _Batch, slot: int) -> None:
        """Store a finished row's keys and values: its prompt and all but the last token
        (the last sampled token was never fed to the model)."""
        if self.prefix_cache.max_bytes <= 0 or sequence.weights_version != self._weights_version:
            return
        columns = batch.attention[slot].nonzero().squeeze(1)  # [L]
        layers = [  # indexing with a tensor copies: no clone needed
            (layer.keys[slot][:, columns], layer.values[slot][:, columns])
            for layer in batch.cache.layers
        ]
        self.prefix_cache.store(sequence.prompt + sequence.tokens[:-1], layers)

    def _hit_stop_string(self, sequence: _Sequence) -> bool:
        """Whether the generated text now contains a stop string (decoded for detection only)."""
        stops = sequence.params.stop
        if not stops:
            return False
        # A stop string of n characters spans at most n tokens, plus one partial token.
        window = max(len(s) for s in stops) + 1
        tail = self.tokenizer.decode(sequence.tokens[-window:])
        return any(stop in tail for stop in stops)

    @staticmethod
    def _completion(sequence: _Sequence) -> Completion:
        return Completion(
            token_ids=sequence.tokens,
            logprobs=sequence.logprobs,
            entropies=sequence.entropies,
            finish_reason=sequence.finish_reason,  # type: ignore[arg-type]
            entropy_exact=True,
            prompt_tokens=len(sequence.prompt),
            prefill_tokens=sequence.prefill,
            queue_s=sequence.started - sequence.enqueued,
            generate_s=time.perf_counter() - sequence.started,
        )


def _answer(sequence: _Sequence, result: Completion | BaseException) -> None:
    """Resolve a caller's future from the decode thread, on the caller's event loop."""

    def resolve() -> None:
        if sequence.future.done():  # the caller was cancelled
            return
        if isinstance(result, BaseException):
            sequence.future.set_exception(result)
        else:
            sequence.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the caller's loop closed: nobody waits
        sequence.loop.call_soon_threadsafe(resolve)


def _sample_seed(seed: int, index: int) -> int:
    """The seed of sample `index` of a request: distinct streams for adjacent seeds."""
    return (seed * 0x9E3779B1 + index * 0x85EBCA77) % (2**63)


def cache_keyword(model: torch.nn.Module) -> str:
    """The name under which `model.forward` takes its KV cache.

    transformers 5.24 renamed `past_key_values` to `cache` (the old name warns, and goes
    in 5.40); earlier 5.x releases know only `past_key_values`. Asking the signature,
    rather than the version, also serves model classes converted at another release.
    """
    forward = getattr(model, "get_base_model", lambda: model)().forward
    parameters = inspect.signature(forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _generation_eos(model: torch.nn.Module) -> list[int]:
    """End-of-sequence ids from the model's generation config (an int or a list)."""
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        return []
    return [eos] if isinstance(eos, int) else list(eos)


def _stack_prefixes(hits: list[tuple[Entry, int] | None], width: int) -> Layers:
    """Per layer, the reused prefixes of the batch rows, right-aligned to `width`."""
    template = next(h for h in hits if h is not None)[0].layers
    stacked: Layers = []
    for layer, (k0, v0) in enumerate(template):
        heads, _, dim = k0.shape
        keys = k0.new_zeros((len(hits), heads, width, dim))  # [B, H, C, D]
        values = v0.new_zeros((len(hits), heads, width, dim))  # [B, H, C, D]
        for row, hit in enumerate(hits):
            if hit is not None:
                entry, count = hit
                k, v = entry.layers[layer]
                keys[row, :, width - count :] = k[:, :count]
                values[row, :, width - count :] = v[:, :count]
        stacked.append((keys, values))
    return stacked


def _merge(a: _Batch, b: _Batch) -> _Batch:
    """One batch from two: caches and masks left-padded to the wider one, then stacked."""
    width = max(a.attention.shape[1], b.attention.shape[1])

    def pad(t: torch.Tensor, dim_from_end: int) -> torch.Tensor:
        missing = width - t.shape[-dim_from_end]
        if not missing:
            return t
        spec = [0, 0] * (dim_from_end - 1) + [missing, 0]
        return F.pad(t, spec)

    layers = [
        (
            torch.cat([pad(la.keys, 2), pad(lb.keys, 2)]),  # [B, H, W, D]
            torch.cat([pad(la.values, 2), pad(lb.values, 2)]),  # [B, H, W, D]
        )
        for la, lb in zip(a.cache.layers, b.cache.layers, strict=True)
    ]
    return _Batch(
        sequences=a.sequences + b.sequences,
        cache=DynamicCache(ddp_cache_data=layers),
        attention=torch.cat([pad(a.attention, 1), pad(b.attention, 1)]),  # [B, W]
        positions=torch.cat([a.positions, b.positions]),
        logits=torch.cat([a.logits, b.logits]),
        temperature=torch.cat([a.temperature, b.temperature]),
        top_p=torch.cat([a.top_p, b.top_p]),
        top_k=torch.cat([a.top_k, b.top_k]),
    )


def from_config(config: Any, model: Any, tokenizer: Any) -> HFEngine:
    """The `hf` backend: an engine serving `model` in this process."""
    return HFEngine(
        model, tokenizer, max_batch_size=config.engine.max_batch_size, seed=config.train.seed
    )
