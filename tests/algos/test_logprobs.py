"""Chunked per-token logprobs and entropies: equal to the one-shot reference, with gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from agentrl.algos.logprobs import (
    naive_logprobs_and_entropy,
    sequence_logprobs,
    token_logprobs_and_entropy,
)

TOL = {"atol": 1e-5, "rtol": 1e-5}
B, T, D, V = 3, 7, 16, 50  # N = 21 positions


def make_inputs(seed=0, dtype=torch.float32, bias=False):
    generator = torch.Generator().manual_seed(seed)
    # Logits of unit scale, as a trained model's: larger ones only add fp32 cancellation noise.
    hidden = 0.25 * torch.randn(B, T, D, generator=generator, dtype=dtype)  # [B, T, D]
    head = nn.Linear(D, V, bias=bias, dtype=dtype)
    with torch.no_grad():
        head.weight.copy_(torch.randn(V, D, generator=generator))
        if bias:
            head.bias.copy_(torch.randn(V, generator=generator))
    targets = torch.randint(V, (B, T), generator=generator)  # [B, T]
    # Random loss weights, so that each position's gradient is checked, not just a sum.
    weights = torch.randn(2, B, T, generator=generator, dtype=torch.float32)  # [2, B, T]
    return hidden.requires_grad_(), head, targets, weights


def values_and_grads(fn, hidden, head, loss_of):
    hidden = hidden.detach().clone().requires_grad_()
    head.zero_grad(set_to_none=True)
    logprobs, entropy = fn(hidden, head)
    loss_of(logprobs, entropy).backward()
    grads = [hidden.grad] + [p.grad for p in head.parameters()]
    return logprobs.detach(), None if entropy is None else entropy.detach(), grads


def naive(targets, temperature=1.0):
    return lambda hidden, head: naive_logprobs_and_entropy(head(hidden), targets, temperature)


def chunked(targets, **kwargs):
    return lambda hidden, head: token_logprobs_and_entropy(hidden, head, targets, **kwargs)


@pytest.mark.parametrize("chunk_tokens", [1, 2, 4, 5, 8, 20, 21, 1024])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_equals_naive_values_and_gradients(chunk_tokens, temperature):
    hidden, head, targets, weights = make_inputs(seed=chunk_tokens)

    def loss_of(logprobs, entropy):
        return (weights[0] * logprobs).sum() + (weights[1] * entropy).sum()

    expected = values_and_grads(naive(targets, temperature), hidden, head, loss_of)
    got = values_and_grads(
        chunked(targets, temperature=temperature, chunk_tokens=chunk_tokens), hidden, head, loss_of
    )
    torch.testing.assert_close(got[0], expected[0], **TOL)
    torch.testing.assert_close(got[1], expected[1], **TOL)
    for got_grad, expected_grad in zip(got[2], expected[2], strict=True):
        torch.testing.assert_close(got_grad, expected_grad, **TOL)


@pytest.mark.parametrize("uses", ["logprobs", "entropy"])
def test_gradient_of_one_output_alone(uses):
    hidden, head, targets, weights = make_inputs(seed=1, bias=True)

    def loss_of(logprobs, entropy):
        return (weights[0] * (logprobs if uses == "logprobs" else entropy)).sum()

    expected = values_and_grads(naive(targets), hidden, head, loss_of)
    got = values_and_grads(chunked(targets, chunk_tokens=4), hidden, head, loss_of)
    assert len(got[2]) == 3  # hidden, weight, bias
    for got_grad, expected_grad in zip(got[2], expected[2], strict=True):
        torch.testing.assert_close(got_grad, expected_grad, **TOL)


def test_float64_matches_tightly():
    hidden, head, targets, weights = make_inputs(seed=2, dtype=torch.float64)

    def loss_of(logprobs, entropy):
        return (weights[0] * logprobs).sum() + (weights[1] * entropy).sum()

    expected = values_and_grads(naive(targets, 1.3), hidden, head, loss_of)
    got = values_and_grads(chunked(targets, temperature=1.3, chunk_tokens=6), hidden, head, loss_of)
    # fp64 logits are reduced in fp32 by design, so fp32 precision is what both reach.
    torch.testing.assert_close(got[0], expected[0], **TOL)
    for got_grad, expected_grad in zip(got[2], expected[2], strict=True):
        assert got_grad.dtype == torch.float64
        torch.testing.assert_close(got_grad, expected_grad, **TOL)


def test_compute_entropy_false_returns_none_and_still_differentiates():
    hidden, head, targets, weights = make_inputs(seed=3)

    def loss_of(logprobs, entropy):
        assert entropy is None or entropy.shape == (B, T)
        return (weights[0] * logprobs).sum()

    expected = values_and_grads(naive(targets), hidden, head, loss_of)
    got = values_and_grads(
        chunked(targets, chunk_tokens=5, compute_entropy=False), hidden, head, loss_of
    )
    assert got[1] is None
    torch.testing.assert_close(got[0], expected[0], **TOL)
    for got_grad, expected_grad in zip(got[2], expected[2], strict=True):
        torch.testing.assert_close(got_grad, expected_grad, **TOL)


def test_weight_tensor_as_head_and_frozen_head():
    hidden, head, targets, _ = make_inputs(seed=4)
    weight = head.weight.detach()  # frozen: no gradient wanted
    logprobs, entropy = token_logprobs_and_entropy(hidden, weight, targets, chunk_tokens=8)
    (logprobs.sum() + entropy.sum()).backward()
    reference = naive_logprobs_and_entropy(hidden.detach() @ weight.T, targets)
    torch.testing.assert_close(logprobs.detach(), reference[0], **TOL)
    torch.testing.assert_close(entropy.detach(), reference[1], **TOL)
    assert hidden.grad is not None


def test_bf16_hidden_and_head_reduce_in_fp32():
    hidden, head, targets, weights = make_inputs(seed=5, dtype=torch.bfloat16)
    logprobs, entropy = token_logprobs_and_entropy(hidden, head, targets, chunk_tokens=4)
    assert logprobs.dtype == entropy.dtype == torch.float32
    ((weights[0] * logprobs).sum() + (weights[1] * entropy).sum()).backward()
    assert hidden.grad.dtype == head.weight.grad.dtype == torch.bfloat16
    expected = naive_logprobs_and_entropy(head(hidden.detach()), targets)
    torch.testing.assert_close(logprobs.detach(), expected[0], atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(entropy.detach(), expected[1], atol=1e-3, rtol=1e-3)


def test_saves_no_vocabulary_sized_activation_for_backward():
    # Structural, not a measured threshold: nothing of [N, V] size is kept for backward.
    n, dim, vocab = 64, 8, 512  # N·V = 32768 > V·D = 4096 > N·D = 512
    hidden = torch.randn(1, n, dim, requires_grad=True)  # [1, N, D]
    weight = torch.randn(vocab, dim, requires_grad=True)  # [V, D]
    targets = torch.randint(vocab, (1, n))  # [1, N]

    def largest_saved(fn):
        sizes = []

        def pack(tensor):
            sizes.append(tensor.numel())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            fn()
        return max(sizes)

    assert (
        largest_saved(lambda: naive_logprobs_and_entropy(hidden @ weight.T, targets)) >= n * vocab
    )
    chunked_largest = largest_saved(
        lambda: token_logprobs_and_entropy(hidden, weight, targets, chunk_tokens=16)
    )
    assert chunked_largest == vocab * dim  # the weight itself


def test_rejects_bad_arguments():
    hidden, head, targets, _ = make_inputs()
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs_and_entropy(hidden, head, targets, temperature=0.0)
    with pytest.raises(ValueError, match="chunk_tokens"):
        token_logprobs_and_entropy(hidden, head, targets, chunk_tokens=0)
    with pytest.raises(ValueError, match="does not match"):
        token_logprobs_and_entropy(hidden, head, targets[:, :-1])
    with pytest.raises(TypeError, match="nn.Linear"):
        token_logprobs_and_entropy(hidden, nn.Sequential(head), targets)


# -- through a model ---------------------------------------------------------------------------


def tiny_llama(seed=0, tie=False):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=1000,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def model_inputs(seed=0, pad_tail=0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1000, (2, 9), generator=generator)  # [B, T]
    attention_mask = torch.ones_like(input_ids)  # [B, T]
    if pad_tail:
        attention_mask[1, -pad_tail:] = 0  # right padding in row 1
    return input_ids, attention_mask


def reference_sequence(model, input_ids, attention_mask, temperature=1.0):
    """The full logits, shifted: values for tokens 1.. as [B, T-1]."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # [B, T, V]
    return naive_logprobs_and_entropy(logits[:, :-1], input_ids[:, 1:], temperature)


@pytest.mark.parametrize("tie", [False, True])
def test_sequence_logprobs_equals_full_model(tie):
    model = tiny_llama(tie=tie)
    input_ids, attention_mask = model_inputs()
    params = [model.model.layers[0].self_attn.q_proj.weight, model.lm_head.weight]

    logprobs, entropy = sequence_logprobs(
        model, input_ids, attention_mask, temperature=0.8, chunk_tokens=5
    )
    assert logprobs.shape == entropy.shape == input_ids.shape
    assert torch.all(logprobs[:, 0] == 0) and torch.all(entropy[:, 0] == 0)
    got_grads = torch.autograd.grad(logprobs.sum() + 0.5 * entropy.sum(), params)

    ref_logprobs, ref_entropy = reference_sequence(model, input_ids, attention_mask, 0.8)
    ref_grads = torch.autograd.grad(ref_logprobs.sum() + 0.5 * ref_entropy.sum(), params)
    torch.testing.assert_close(logprobs[:, 1:].detach(), ref_logprobs.detach(), **TOL)
    torch.testing.assert_close(entropy[:, 1:].detach(), ref_entropy.detach(), **TOL)
    for got, expected in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(got, expected, **TOL)


def test_sequence_logprobs_zero_at_padding():
    model = tiny_llama()
    input_ids, attention_mask = model_inputs(pad_tail=3)
    with torch.no_grad():
        logprobs, entropy = sequence_logprobs(model, input_ids, attention_mask)
        ref_logprobs, ref_entropy = reference_sequence(model, input_ids, attention_mask)
    real = attention_mask[:, 1:].bool()  # [B, T-1]
    torch.testing.assert_close(logprobs[:, 1:][real], ref_logprobs[real], **TOL)
    torch.testing.assert_close(entropy[:, 1:][real], ref_entropy[real], **TOL)
    assert torch.all(logprobs[1, -3:] == 0) and torch.all(entropy[1, -3:] == 0)


# peft 0.21 reads a property that transformers 5 deprecates; not ours to fix.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_sequence_logprobs_through_peft_lora():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        tiny_llama(seed=1),
        LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]),
    )
    with torch.no_grad():  # LoRA B starts at 0, which would leave A without gradient
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    lora = {name: p for name, p in model.named_parameters() if "lora_" in name}
    assert lora and all(p.requires_grad for p in lora.values())
    input_ids, attention_mask = model_inputs(seed=2)

    logprobs, entropy = sequence_logprobs(model, input_ids, attention_mask, chunk_tokens=7)
    got_grads = torch.autograd.grad(logprobs.sum() + entropy.sum(), list(lora.values()))
    ref_logprobs, ref_entropy = reference_sequence(model, input_ids, attention_mask)
    ref_grads = torch.autograd.grad(ref_logprobs.sum() + ref_entropy.sum(), list(lora.values()))

    torch.testing.assert_close(logprobs[:, 1:].detach(), ref_logprobs.detach(), **TOL)
    torch.testing.assert_close(entropy[:, 1:].detach(), ref_entropy.detach(), **TOL)
    for got, expected in zip(got_grads, ref_grads, strict=True):
        assert got.abs().sum() > 0
        torch.testing.assert_close(got, expected, **TOL)
    # The frozen base, head included, gets no gradient.
    logprobs, _ = sequence_logprobs(model, input_ids, attention_mask, compute_entropy=False)
    logprobs.sum().backward()
    assert all(p.grad is None for name, p in model.named_parameters() if "lora_" not in name)
    assert all(p.grad is not None for p in lora.values())


def test_sequence_logprobs_rejects_non_causal_lm():
    with pytest.raises(TypeError, match="causal LM"):
        sequence_logprobs(nn.Linear(2, 2), torch.zeros(1, 2, dtype=torch.long), None)
