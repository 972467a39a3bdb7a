"""Chat rendering as token deltas: tokens in, tokens out (TITO).

An episode is one growing token sequence. The prompt is the chat template rendered
over the system prompt and the task; after each turn the manager appends the tokens
the model sampled (never decoded and re-encoded), then `turn_end()` (what the template
puts after an assistant message that the model did not generate itself, e.g. the
newline after `<|im_end|>`), then `observation()` (the next user message and the
assistant header). Only sampled tokens are trained (loss mask 1).

This works only if rendering a longer conversation extends the rendering of a shorter
one. `preflight()` checks that for the model's template, on text and on tokens, and
raises `TemplateError` when it does not hold (templates that rewrite earlier turns,
e.g. by dropping reasoning from past assistant messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentrl.errors import TemplateError

# Placeholder contents: strings no tokenizer merges with the template around them.
_ASSISTANT = "ASSISTANT_7f3a"
_USER = "USER_7f3a"


class ChatFormat:
    """Token deltas of one model's chat template for multi-turn episodes.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template.
        system_prompt: the system message (None: the template's default, if any).
        observation_role: the role env observations are sent as.
        examples: demonstration turns (observation, action) rendered before the task, so
            that a small model sees the action format in use (few-shot).
        tools: the env's tool schemas (`Toolbox.schemas()`), rendered by templates that
            take `tools` (Qwen, Llama 3, Hermes...); `self.tools` is None when the
            template ignores them (then the env's instructions and the format hint name
            the tools).
    """

    def __init__(
        self,
        tokenizer: Any,
        system_prompt: str | None = None,
        observation_role: str = "user",
        examples: Sequence[tuple[str, str]] = (),
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise TemplateError(
                f"{type(tokenizer).__name__} has no chat template; token-exact rollouts need "
                "one. Use an instruction-tuned model, or set tokenizer.chat_template."
            )
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.observation_role = observation_role
        self.examples = [(str(o), str(a)) for o, a in examples]
        self.tools: list[dict[str, Any]] | None = None
        self._head = self._messages(_USER)
        if tools:
            plain = self.render(self._head, generation_prompt=True)
            self.tools = list(tools)
            if self.render(self._head, generation_prompt=True) == plain:
                self.tools = None  # the template has no place for tools
        self.closing_ids = self._closing()
        if not self.closing_ids:
            raise TemplateError(
                "The chat template puts nothing after an assistant message, so the end of a "
                "turn cannot be told apart from the model running on. Use a template that "
                "closes assistant messages with an end-of-turn token."
            )
        preflight(self)

    # ------------------------------------------------------------------ rendering

    def _messages(self, task: str) -> list[dict[str, str]]:
        messages = (
            []
            if self.system_prompt is None
            else [{"role": "system", "content": self.system_prompt}]
        )
        for observation, action in self.examples:
            messages.append({"role": self.observation_role, "content": observation})
            messages.append({"role": "assistant", "content": action})
        return [*messages, {"role": "user", "content": task}]

    def render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tools=self.tools, tokenize=False, add_generation_prompt=generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of template text (special tokens in it are recognised)."""
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _closing(self) -> list[int]:
        text = self.render([*self._head, {"role": "assistant", "content": _ASSISTANT}], False)
        closing = text[text.rindex(_ASSISTANT) + len(_ASSISTANT) :]
        return self.encode(closing)

    # ------------------------------------------------------------------ the deltas

    def prompt(self, task: str) -> list[int]:
        """Tokens of the system prompt, the task and the assistant header."""
        return self.encode(self.render(self._messages(task), generation_prompt=True))

    def turn_end(self, generated: list[int]) -> list[int]:
        """Template tokens that close an assistant message the model generated.

        If the model ended with (a prefix of) the closing tokens, only the rest is
        added; a turn cut by the token limit or a stop string gets all of them.
        """
        closing = self.closing_ids
        for k in range(len(closing), 0, -1):
            if generated[-k:] == closing[:k]:
                return closing[k:]
        return list(closing)

    def observation(self, text: str) -> list[int]:
        """Tokens of an env observation message and the next assistant header."""
        before = [*self._head, {"role": "assistant", "content": _ASSISTANT}]
        after = [*before, {"role": self.observation_role, "content": text}]
        shorter = self.render(before, generation_prompt=False)
        longer = self.render(after, generation_prompt=True)
        if not longer.startswith(shorter):
            raise TemplateError(
                "The chat template is not prefix-preserving: adding an observation changed "
                "the earlier messages' rendering."
            )
        return self.encode(longer[len(shorter) :])


def preflight(chat: ChatFormat) -> None:
    """Check that deltas rebuild the template's own rendering of a whole episode.

    Renders a three-turn conversation at once and piece by piece (prompt, assistant
    content, `turn_end`, `observation`, ...) and compares the texts. The turns hold a
    reasoning block, which templates that strip reasoning from past turns remove. Only
    the text must match: where a template's boundaries tokenize differently in context
    (e.g. a blank line before content), the episode keeps the tokens the model saw.
    """
    reasoning = "<think>\nREASON_7f3a\n</think>\n\n"
    turns = [f"{reasoning}{_ASSISTANT} one", f"{_ASSISTANT} two", f"{reasoning}{_ASSISTANT} 3"]
    observations = [f"{_USER} a", f"{_USER} b"]
    messages = list(chat._messages(f"{_USER} task"))
    ids = chat.prompt(f"{_USER} task")
    for index, content in enumerate(turns):
        generated = chat.encode(content) + chat.closing_ids[:1]  # the model's own stop token
        ids += generated + chat.turn_end(generated)
        messages.append({"role": "assistant", "content": content})
        if index < len(observations):
            ids += chat.observation(observations[index])
            messages.append({"role": chat.observation_role, "content": observations[index]})
    whole_text = chat.render(messages, generation_prompt=False)
    pieces = chat.tokenizer.decode(ids)
    if pieces != whole_text:
        raise TemplateError(
            "The chat template is not prefix-preserving for this model, so token-exact "
            "multi-turn rollouts would train on sequences the template never produces. "
            f"Rendered at once:\n{whole_text!r}\nBuilt turn by turn:\n{pieces!r}\n"
            "Use a template that renders earlier messages unchanged (no rewriting of past "
            "assistant turns), or a model whose template does."
        )
