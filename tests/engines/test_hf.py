"""The hf engine on a tiny model: exact logprobs and entropies, batching, prefix reuse."""

from __future__ import annotations

import asyncio

import pytest
import torch

from agentrl.engines.base import GenerationRequest, SamplingParams
from agentrl.engines.hf import HFEngine


def reference(model, prompt, completion, temperature=1.0):
    """Logprobs and entropies of a completion by one plain forward pass."""
    ids = torch.tensor([prompt + completion.token_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float() / temperature
    logprobs = torch.log_softmax(logits, -1)
    chosen = logprobs.gather(1, torch.tensor(completion.token_ids)[:, None]).squeeze(1)
    entropy = -(logprobs.exp() * logprobs).sum(-1)
    return chosen, entropy


def assert_exact(model, prompt, completion, temperature=1.0):
    chosen, entropy = reference(model, prompt, completion, temperature)
    assert torch.allclose(torch.tensor(completion.logprobs), chosen, atol=1e-3)
    assert torch.allclose(torch.tensor(completion.entropies), entropy, atol=1e-3)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def engine(tiny, tokenizer):
    return HFEngine(tiny, tokenizer, max_batch_size=8)


def words(tokenizer, text):
    return tokenizer(text, add_special_tokens=False).input_ids


def test_batched_samples_carry_exact_logprobs_and_entropies(engine, tiny, tokenizer):
    prompts = [words(tokenizer, "Hello there, how are you"), words(tokenizer, "Hi")]
    temperatures = [1.0, 0.7]

    async def go():
        calls = [
            engine.generate(
                [GenerationRequest(p, SamplingParams(temperature=t, max_new_tokens=12, seed=i))]
            )
            for i, (p, t) in enumerate(zip(prompts, temperatures, strict=True))
        ]
        results = await asyncio.gather(*calls)
        await engine.close()
        return results

    results = run(go())
    assert engine.stats.mean_batch > 1  # the two callers shared decode steps
    for prompt, temperature, [[completion]] in zip(prompts, temperatures, results, strict=True):
        assert len(completion.token_ids) == 12 and completion.finish_reason == "length"
        assert completion.prefill_tokens == len(prompt)
        assert_exact(tiny, prompt, completion, temperature)


def test_next_turn_reuses_the_cached_prefix(engine, tiny, tokenizer):
    prompt = words(tokenizer, "A prompt of a few words")

    async def go():
        [[first]] = await engine.generate(
            [GenerationRequest(prompt, SamplingParams(max_new_tokens=6, seed=1))]
        )
        extended = prompt + first.token_ids + words(tokenizer, " and then")
        [[second]] = await engine.generate(
            [GenerationRequest(extended, SamplingParams(max_new_tokens=6, seed=2))]
        )
        await engine.close()
        return extended, second

    extended, second = run(go())
    # Cached: the prompt and all sampled tokens but the last, which was never fed.
    assert second.prefill_tokens == 1 + 2
    assert engine.prefix_cache.hits == 1
    assert_exact(tiny, extended, second)


def test_a_branch_reuses_its_parents_cache(engine, tiny, tokenizer):
    # A branch resamples a turn whose prompt the parent already computed (and extended
    # with its own turn): only the prompt's last token is prefilled again.
    prompt = words(tokenizer, "An observation the agent just read")

    async def go():
        [[parent]] = await engine.generate(
            [GenerationRequest(prompt, SamplingParams(max_new_tokens=6, seed=1))]
        )
        [[branch]] = await engine.generate(
            [GenerationRequest(prompt, SamplingParams(max_new_tokens=6, seed=2))]
        )
        await engine.close()
        return parent, branch

    parent, branch = run(go())
    assert parent.prefill_tokens == len(prompt) and branch.prefill_tokens == 1
    assert branch.token_ids != parent.token_ids  # its own sample
    assert_exact(tiny, prompt, branch)


def test_requests_arriving_mid_decode_join_the_running_batch(engine, tiny, tokenizer):
    prompts = [words(tokenizer, "word " * n) for n in (3, 40, 7)]
    lengths = [60, 20, 30]

    async def late(prompt, delay, length):
        await asyncio.sleep(delay)
        return await engine.generate(
            [GenerationRequest(prompt, SamplingParams(max_new_tokens=length, seed=3))]
        )

    async def go():
        results = await asyncio.gather(
            *(late(p, 0.02 * i, n) for i, (p, n) in enumerate(zip(prompts, lengths, strict=True)))
        )
        await engine.close()
        return results

    results = run(go())
    for prompt, length, [[completion]] in zip(prompts, lengths, results, strict=True):
        assert len(completion.token_ids) == length
        assert_exact(tiny, prompt, completion)


def test_stop_tokens_and_stop_strings(tiny, tokenizer):
    prompt = words(tokenizer, "Count with me")
    greedy = SamplingParams(temperature=0, max_new_tokens=8)

    async def go():
        engine = HFEngine(tiny, tokenizer)
        [[base]] = await engine.generate([GenerationRequest(prompt, greedy)])
        stop_text = tokenizer.decode(base.token_ids[:3])
        [[stopped]] = await engine.generate(
            [
                GenerationRequest(
                    prompt, SamplingParams(temperature=0, max_new_tokens=8, stop=(stop_text,))
                )
            ]
        )
        await engine.close()
        # The first position whose token did not occur before it.
        first_new = max(
            i for i in range(len(base.token_ids)) if base.token_ids[i] not in base.token_ids[:i]
        )
        engine = HFEngine(tiny, tokenizer, stop_token_ids=[base.token_ids[first_new]])
        [[eos]] = await engine.generate([GenerationRequest(prompt, greedy)])
        await engine.close()
        return base, stopped, eos, first_new

    base, stopped, eos, first_new = run(go())
    assert stopped.finish_reason == "stop" and stopped.token_ids == base.token_ids[:3]
    assert eos.finish_reason == "stop"
    assert eos.token_ids == base.token_ids[: base.token_ids.index(base.token_ids[first_new]) + 1]


def test_seeded_samples_are_reproducible_and_n_gives_distinct_samples(tiny, tokenizer):
    prompt = words(tokenizer, "Say something")
    params = SamplingParams(max_new_tokens=10, n=3, seed=11)

    async def go():
        engine = HFEngine(tiny, tokenizer, prefix_cache_bytes=0)
        first = await engine.generate([GenerationRequest(prompt, params)])
        second = await engine.generate([GenerationRequest(prompt, params)])
        await engine.close()
        return first[0], second[0]

    first, second = run(go())
    assert [c.token_ids for c in first] == [c.token_ids for c in second]
    assert len({tuple(c.token_ids) for c in first}) == 3


def test_load_weights_changes_the_policy_and_drops_stale_prefixes(tokenizer):
    from agentrl.models import tiny_model

    model = tiny_model(tokenizer, seed=0)
    other = tiny_model(tokenizer, seed=1)
    prompt = words(tokenizer, "Weights")

    async def go():
        engine = HFEngine(model, tokenizer)
        params = SamplingParams(temperature=0, max_new_tokens=5)
        [[before]] = await engine.generate([GenerationRequest(prompt, params)])
        engine.load_weights(other.state_dict())
        assert len(engine.prefix_cache) == 0
        [[after]] = await engine.generate([GenerationRequest(prompt, params)])
        with pytest.raises(KeyError, match="does not have"):
            engine.load_weights({"not.a.weight": torch.zeros(1)})
        await engine.close()
        with pytest.raises(RuntimeError, match="after close"):
            await engine.generate([GenerationRequest(prompt, params)])
        return before, after

    before, after = run(go())
    assert_exact(other, prompt, after)
    assert before.logprobs != after.logprobs


def test_bad_sampling_params_are_refused():
    with pytest.raises(ValueError, match="top_p must be in"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1"):
        SamplingParams(max_new_tokens=0)


def test_bad_token_ids_fail_only_their_own_request(tiny, tokenizer):
    async def go():
        engine = HFEngine(tiny, tokenizer)
        with pytest.raises(ValueError, match="outside the vocabulary"):
            await engine.generate([GenerationRequest([10**7], SamplingParams())])
        [[ok]] = await engine.generate(
            [GenerationRequest([5, 6], SamplingParams(max_new_tokens=3))]
        )
        await engine.close()
        return ok

    assert len(run(go()).token_ids) == 3


def test_cancelled_callers_stop_decoding(tiny, tokenizer):
    async def go():
        engine = HFEngine(tiny, tokenizer)
        long = asyncio.ensure_future(
            engine.generate([GenerationRequest([5, 6, 7], SamplingParams(max_new_tokens=3000))])
        )
        await asyncio.sleep(0.3)
        long.cancel()
        await asyncio.sleep(0.3)
        decoded = engine.stats.decoded_tokens
        await asyncio.sleep(0.3)
        after = engine.stats.decoded_tokens
        await engine.close()
        return decoded, after

    decoded, after = run(go())
    assert decoded < 3000 and after == decoded  # nothing decoded for nobody


def test_sequences_admitted_before_a_weight_change_are_not_cached(tokenizer):
    from agentrl.models import tiny_model

    model, other = tiny_model(tokenizer, seed=0), tiny_model(tokenizer, seed=1)
    prompt = words(tokenizer, "Stale keys")

    async def go():
        engine = HFEngine(model, tokenizer)
        running = asyncio.ensure_future(
            engine.generate([GenerationRequest(prompt, SamplingParams(max_new_tokens=200, seed=0))])
        )
        await asyncio.sleep(0.1)
        engine.load_weights(other.state_dict())  # mid-generation
        [[first]] = await running
        [[second]] = await engine.generate(
            [GenerationRequest(prompt + first.token_ids, SamplingParams(max_new_tokens=4))]
        )
        await engine.close()
        return first, second

    first, second = run(go())
    assert second.prefill_tokens == len(prompt) + len(first.token_ids)  # no stale reuse
    assert_exact(other, prompt + first.token_ids, second)


def test_request_stop_token_ids_end_the_turn(tiny, tokenizer):
    prompt = words(tokenizer, "Stop tokens")

    async def go():
        engine = HFEngine(tiny, tokenizer)
        [[base]] = await engine.generate(
            [GenerationRequest(prompt, SamplingParams(temperature=0, max_new_tokens=6))]
        )
        [[cut]] = await engine.generate(
            [
                GenerationRequest(
                    prompt,
                    SamplingParams(
                        temperature=0, max_new_tokens=6, stop_token_ids=(base.token_ids[0],)
                    ),
                )
            ]
        )
        await engine.close()
        return base, cut

    base, cut = run(go())
    assert cut.token_ids == base.token_ids[:1] and cut.finish_reason == "stop"


def test_sliding_window_models_do_not_reuse_prefixes(tokenizer):
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        sliding_window=8,
    )
    engine = HFEngine(MistralForCausalLM(config), tokenizer)
    assert engine.prefix_cache.max_bytes == 0


def test_forward_calls_use_the_cache_keyword_of_the_installed_transformers(tiny, tokenizer):
    import inspect
    import warnings

    from peft import LoraConfig, get_peft_model

    from agentrl.engines.hf import cache_keyword

    named = set(inspect.signature(tiny.forward).parameters)
    expected = "cache" if "cache" in named else "past_key_values"
    assert cache_keyword(tiny) == expected
    lora = get_peft_model(tiny, LoraConfig(r=2, target_modules=["q_proj"]))
    try:
        assert cache_keyword(lora) == expected  # asks the wrapped model, not peft's **kwargs
        engine = HFEngine(lora, tokenizer, max_batch_size=4)
        prompt = words(tokenizer, "Hello there")

        async def go():
            first = await engine.generate(
                [GenerationRequest(prompt, SamplingParams(max_new_tokens=4, seed=0))]
            )
            # The next turn reuses the stored prefix: a prefill over a non-empty cache.
            longer = prompt + first[0][0].token_ids + words(tokenizer, " ok")
            await engine.generate(
                [GenerationRequest(longer, SamplingParams(max_new_tokens=4, seed=1))]
            )
            await engine.close()

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a deprecation on any forward call fails here
            run(go())
        assert engine.stats.prefill_tokens < 2 * len(prompt) + 8
    finally:
        lora.unload()
