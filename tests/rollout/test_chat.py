"""Chat rendering as token deltas, and the prefix-preservation preflight."""

from __future__ import annotations

import copy

import pytest

from agentrl.errors import TemplateError
from agentrl.rollout.chat import ChatFormat


def test_deltas_rebuild_the_template_rendering(tokenizer):
    chat = ChatFormat(tokenizer, "You play a game.")
    ids = chat.prompt("Find the number.")
    assert tokenizer.decode(ids) == (
        "<|im_start|>system\nYou play a game.<|im_end|>\n"
        "<|im_start|>user\nFind the number.<|im_end|>\n<|im_start|>assistant\n"
    )
    generated = [
        *tokenizer("guess[50]", add_special_tokens=False).input_ids,
        tokenizer.eos_token_id,
    ]
    ids += generated + chat.turn_end(generated) + chat.observation("Higher.")
    messages = [
        {"role": "system", "content": "You play a game."},
        {"role": "user", "content": "Find the number."},
        {"role": "assistant", "content": "guess[50]"},
        {"role": "user", "content": "Higher."},
    ]
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(ids) == expected


def test_turn_end_completes_what_the_model_did_not_generate(tokenizer):
    chat = ChatFormat(tokenizer, None)
    im_end, newline = chat.closing_ids  # "<|im_end|>", "\n"
    assert chat.turn_end([5, im_end]) == [newline]  # stopped on its own
    assert chat.turn_end([5, 6]) == [im_end, newline]  # cut by the token limit


def test_template_that_rewrites_past_turns_is_refused(tokenizer):
    broken = copy.copy(tokenizer)
    # Drops every assistant message but the last: earlier turns change as the chat grows.
    broken.chat_template = (
        "{% for m in messages %}{% if m.role != 'assistant' or loop.last %}"
        "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(TemplateError, match="not prefix-preserving"):
        ChatFormat(broken, "system")


def test_tokenizer_without_template_is_refused(tokenizer):
    bare = copy.copy(tokenizer)
    bare.chat_template = None
    with pytest.raises(TemplateError, match="has no chat template"):
        ChatFormat(bare)


def test_template_that_strips_past_reasoning_is_refused(tokenizer):
    stripping = copy.copy(tokenizer)
    stripping.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n"
        "{% if m.role == 'assistant' and not loop.last %}"
        "{{ m.content.split('</think>')[-1].lstrip() }}{% else %}{{ m.content }}{% endif %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(TemplateError, match="not prefix-preserving"):
        ChatFormat(stripping, "system")


def test_template_that_never_closes_a_turn_is_refused(tokenizer):
    open_ended = copy.copy(tokenizer)
    open_ended.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
        "{% if m.role != 'assistant' %}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(TemplateError, match="puts nothing after an assistant message"):
        ChatFormat(open_ended, "system")
