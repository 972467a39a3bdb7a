"""The engine checker: does an engine keep the contract of `agentrl.engines.base`?

    from agentrl.engines.checker import check_engine
    check_engine(lambda: create_engine(config, model, tokenizer), tokenizer)

`make` builds a fresh engine (each check closes its own). Every check runs; one
`EngineContractError` names all that failed. The test suite runs it on every
registered backend and on the scripted twin; run it on yours before registering it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

from agentrl.engines.base import Completion, Engine, GenerationRequest, SamplingParams
from agentrl.errors import EngineContractError

PROMPT = "The quick brown fox jumps over"


def check_engine(
    make: Callable[[], Any], tokenizer: Any, *, tolerance: float | None = 1e-4
) -> None:
    """Run every check on engines from `make`; raise `EngineContractError` naming each
    check that failed.

    `tolerance`: how far the logprobs of the same sample may differ between a run that
    reuses a prefix (or repeats a seed) and one that does not; the samples must then be
    equal too. float32 on a CPU agrees to 1e-6; an engine whose kernels differ between
    those paths (bf16 on a GPU, a server's prefix cache) passes a larger value, or None
    to check only the prefill counts.
    """
    checks = [
        _protocol,
        _limits,
        _concurrent_callers,
        _seeded,
        _prefix_reuse,
        _closed,
    ]
    failures, kind = [], "the engine"
    for check in checks:
        engine = make()
        kind = type(engine).__name__
        try:
            check(engine, tokenizer, tolerance)
        except Exception as exc:  # every check runs; all failures are reported together
            failures.append(f"{check.__name__.strip('_')}: {type(exc).__name__}: {exc}")
        finally:
            try:
                asyncio.run(engine.close())
            except Exception as exc:
                failures.append(f"close: {type(exc).__name__}: {exc}")
    if failures:
        raise EngineContractError(
            f"{kind} breaks the engine contract:\n  - " + "\n  - ".join(failures)
        )


def _ids(tokenizer: Any, text: str = PROMPT) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def _generate(engine: Engine, *requests: GenerationRequest) -> list[list[Completion]]:
    return asyncio.run(engine.generate(list(requests)))


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _valid(completion: Completion, request: GenerationRequest, tokenizer: Any) -> None:
    """What every completion of `request` must satisfy."""
    params, n = request.params, len(completion.token_ids)
    _expect(
        1 <= n <= params.max_new_tokens, f"{n} tokens for max_new_tokens={params.max_new_tokens}"
    )
    logprobs, entropies = len(completion.logprobs), len(completion.entropies)
    _expect(logprobs == entropies == n, f"{n} tokens, {logprobs} logprobs, {entropies} entropies")
    _expect(
        all(lp <= 1e-6 and math.isfinite(lp) for lp in completion.logprobs),
        "logprobs must be finite and <= 0",
    )
    _expect(
        all(h >= -1e-6 and math.isfinite(h) for h in completion.entropies),
        "entropies must be finite and >= 0",
    )
    _expect(completion.finish_reason in ("stop", "length"), f"{completion.finish_reason!r}")
    if completion.finish_reason == "length":
        _expect(n == params.max_new_tokens, "'length' before max_new_tokens")
    _expect(
        completion.prompt_tokens == len(request.prompt_ids),
        f"prompt_tokens {completion.prompt_tokens}, the prompt has {len(request.prompt_ids)}",
    )
    _expect(
        1 <= completion.prefill_tokens <= completion.prompt_tokens,
        f"prefill_tokens {completion.prefill_tokens} not in [1, {completion.prompt_tokens}]",
    )
    text = tokenizer.decode(completion.token_ids, skip_special_tokens=True)
    before_last = tokenizer.decode(completion.token_ids[:-1], skip_special_tokens=True)
    for stop in params.stop:  # a stop string ends the completion where it first appears
        if stop in text:
            _expect(stop not in before_last, f"generation went on after the stop {stop!r}")
            _expect(completion.finish_reason == "stop", f"stop {stop!r} but not 'stop'")


def _protocol(engine: Any, tokenizer: Any, tolerance: float | None) -> None:
    missing = [
        name
        for name in ("generate", "load_weights", "weights_updated", "close")
        if not callable(getattr(engine, name, None))
    ]
    _expect(not missing and isinstance(engine, Engine), f"missing methods: {missing}")


def _limits(engine: Engine, tokenizer: Any, tolerance: float | None) -> None:
    requests = [
        GenerationRequest(_ids(tokenizer), SamplingParams(max_new_tokens=3, n=2, seed=1)),
        GenerationRequest(_ids(tokenizer, "Hi"), SamplingParams(max_new_tokens=40, seed=2)),
        GenerationRequest(
            _ids(tokenizer, "Say ok"),
            SamplingParams(temperature=0.0, max_new_tokens=40, stop=("ok", "]")),
        ),
    ]
    results = _generate(engine, *requests)
    _expect([len(r) for r in results] == [2, 1, 1], "each request gets its n completions")
    for request, completions in zip(requests, results, strict=True):
        for completion in completions:
            _valid(completion, request, tokenizer)


def _concurrent_callers(engine: Engine, tokenizer: Any, tolerance: float | None) -> None:
    requests = [
        GenerationRequest(_ids(tokenizer, f"Count {i}"), SamplingParams(max_new_tokens=4))
        for i in range(3)
    ]

    async def together() -> Sequence[list[list[Completion]]]:
        return await asyncio.gather(*[engine.generate([r]) for r in requests])

    for request, answer in zip(requests, asyncio.run(together()), strict=True):
        _expect(len(answer) == 1 and len(answer[0]) == 1, "one completion per caller")
        _valid(answer[0][0], request, tokenizer)


def _seeded(engine: Engine, tokenizer: Any, tolerance: float | None) -> None:
    request = GenerationRequest(_ids(tokenizer), SamplingParams(max_new_tokens=8, seed=7))
    [[first]] = _generate(engine, request)
    engine.weights_updated()  # the same computation again, nothing reused
    [[again]] = _generate(engine, request)
    if tolerance is not None:
        _expect(again.token_ids == first.token_ids, "the same seed gave other tokens")
        _close(again.logprobs, first.logprobs, "the same seed gave other logprobs", tolerance)


def _prefix_reuse(engine: Engine, tokenizer: Any, tolerance: float | None) -> None:
    # The next turn of an episode: the first request's prompt and completion, then more.
    start = GenerationRequest(_ids(tokenizer), SamplingParams(max_new_tokens=6))
    [[first]] = _generate(engine, start)
    extended = [*start.prompt_ids, *first.token_ids, *_ids(tokenizer, " and then")]
    request = GenerationRequest(extended, SamplingParams(max_new_tokens=6, seed=3))
    [[reused]] = _generate(engine, request)
    _valid(reused, request, tokenizer)
    engine.weights_updated()
    [[fresh]] = _generate(engine, request)
    _expect(
        fresh.prefill_tokens == len(extended),
        f"after weights_updated() {len(extended) - fresh.prefill_tokens} prompt tokens were "
        "reused from before",
    )
    if tolerance is not None:
        _expect(fresh.token_ids == reused.token_ids, "reusing a prefix changed the sample")
        _close(fresh.logprobs, reused.logprobs, "reusing a prefix changed the logprobs", tolerance)
    _generate(engine, request)
    engine.load_weights({})  # the same weights, loaded again: nothing from before either
    [[loaded]] = _generate(engine, request)
    _expect(
        loaded.prefill_tokens == len(extended),
        "after load_weights() prompt tokens were reused from before",
    )


def _closed(engine: Engine, tokenizer: Any, tolerance: float | None) -> None:
    asyncio.run(engine.close())
    request = GenerationRequest(_ids(tokenizer), SamplingParams(max_new_tokens=2))
    try:
        _generate(engine, request)
    except RuntimeError:
        return
    raise AssertionError("generate() after close() must raise RuntimeError")


def _close(a: Sequence[float], b: Sequence[float], message: str, tol: float) -> None:
    _expect(len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b, strict=True)), message)
