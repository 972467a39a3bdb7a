"""The rollout manager with a scripted engine: token-exact records, failures stay local."""

from __future__ import annotations

import asyncio
import re

import pytest

import agentrl
from agentrl.engines import ScriptedEngine
from agentrl.rollout.manager import RolloutManager
from tests.helpers import CountEnv


def binary_search(tokenizer):
    """A policy that reads the chat so far and plays binary search on Guess."""

    def act(prompt_ids, _index):
        text = tokenizer.decode(prompt_ids)
        low, high = 1, int(re.search(r"from 1 to (\d+)", text).group(1))
        for guess, hint in re.findall(r"guess\[(\d+)\].*?user\n(Higher|Lower)", text, re.S):
            low, high = (int(guess) + 1, high) if hint == "Higher" else (low, int(guess) - 1)
        return f"guess[{(low + high) // 2}]"

    return act


def run(manager, tasks, **kwargs):
    try:
        return asyncio.run(manager.run(tasks, **kwargs))
    finally:
        manager.close()


def test_episodes_are_token_exact_chats(tokenizer):
    engine = ScriptedEngine(tokenizer, binary_search(tokenizer))
    manager = RolloutManager(engine, tokenizer, "guess", split="test", samples_per_task=2)
    episodes = run(manager, [0, 1, 2])
    assert [(e.task_index, e.sample_index) for e in episodes] == [
        (t, s) for t in (0, 1, 2) for s in (0, 1)
    ]
    for episode in episodes:
        episode.check()
        assert episode.success and episode.reward == 1.0 and episode.terminated
        assert episode.error is None and episode.num_invalid_actions == 0
        # The sequence is exactly the chat rendered by the template, all at once.
        text = tokenizer.decode(episode.token_ids)
        turns = re.findall(r"assistant\n(.*?)<\|im_end\|>", text)
        observations = re.findall(r"user\n(.*?)<\|im_end\|>", text, re.S)
        messages = [{"role": "system", "content": manager.chat.system_prompt}]
        for i, observation in enumerate(observations):
            messages.append({"role": "user", "content": observation})
            messages.append({"role": "assistant", "content": turns[i]})
        rendered = tokenizer.apply_chat_template(messages, tokenize=False)
        assert text == rendered
        # Only sampled tokens are trained, and each carries its logprob and entropy.
        sampled = [t for t, m in zip(episode.token_ids, episode.loss_mask, strict=True) if m]
        assert tokenizer.decode(sampled).count("guess[") == episode.num_turns
        assert all(
            lp == -0.5 for lp, m in zip(episode.logprobs, episode.loss_mask, strict=True) if m
        )
        assert episode.num_turns == max(episode.turn_index)


def test_an_env_error_stays_in_its_episode(tokenizer, registry_sandbox):
    class Flaky(CountEnv):
        def act(self, action):
            if self.task_index == 1 and self.turn == 3:
                raise RuntimeError("disk on fire")
            return super().act(action)

    agentrl.register("test/Flaky-v0", entry_point=Flaky)
    engine = ScriptedEngine(tokenizer, lambda ids, i: "count[1]")
    manager = RolloutManager(engine, tokenizer, "flaky", samples_per_task=1)
    episodes = run(manager, [0, 1, 2])
    failed = [e for e in episodes if e.error]
    assert [e.task_index for e in failed] == [1]
    assert "RuntimeError: disk on fire" in failed[0].error and failed[0].num_turns == 3
    assert all(e.error is None and e.num_turns > 0 for e in episodes if e.task_index != 1)


def test_unparseable_output_is_answered_and_counted(tokenizer):
    script = ["I think it is about fifty", "guess[50]", "no idea"]
    engine = ScriptedEngine(tokenizer, lambda ids, i: script[i % 3])
    manager = RolloutManager(engine, tokenizer, "guess", env_kwargs={"max_turns": 3})
    [episode] = run(manager, [0])
    assert episode.num_invalid_actions == 2 and episode.num_turns == 3
    assert episode.truncated and episode.truncation == "turns" and not episode.success
    text = tokenizer.decode(episode.token_ids)
    assert "user\nNo action found" in text or "user\nReply with" in text


def test_context_budget_truncates(tokenizer):
    engine = ScriptedEngine(tokenizer, lambda ids, i: "guess[1] " + "padding " * 40)
    manager = RolloutManager(engine, tokenizer, "guess", max_context_tokens=220)
    [episode] = run(manager, [0])
    assert episode.truncated and episode.truncation == "context"
    # A turn is cut to the room left; only the template's closing tokens may pass it.
    assert len(episode.token_ids) <= 220 + len(manager.chat.closing_ids)


def test_tool_calls_are_counted(tokenizer):
    def calculator(ids, index):
        text = tokenizer.decode(ids)
        expression = re.search(r"Compute (.*?)\. Tools", text).group(1)
        results = re.findall(r"user\n(-?\d+)<\|im_end\|>", text)
        return f"answer[{results[-1]}]" if results else f"calculate[{expression}]"

    engine = ScriptedEngine(tokenizer, calculator)
    manager = RolloutManager(engine, tokenizer, "calculator", samples_per_task=2)
    episodes = run(manager, [3, 4])
    assert all(e.success and e.num_tool_calls == 1 and e.num_turns == 2 for e in episodes)


def test_same_seed_and_engine_outputs_give_the_same_episodes(tokenizer):
    def once():
        engine = ScriptedEngine(tokenizer, binary_search(tokenizer))
        manager = RolloutManager(engine, tokenizer, "guess", samples_per_task=3, seed=5)
        seen = []
        episodes = run(manager, [4, 9], on_episode=seen.append)
        assert sorted(e.episode_id for e in seen) == sorted(e.episode_id for e in episodes)
        return [(e.episode_id, e.seed, e.token_ids, e.reward) for e in episodes], [
            r.params.seed for r in engine.requests
        ]

    first, second = once(), once()
    assert first[0] == second[0]
    assert sorted(first[1]) == sorted(second[1])  # sampling seeds do not depend on timing


def test_out_of_range_tasks_are_refused(tokenizer):
    manager = RolloutManager(ScriptedEngine(tokenizer, ["x"]), tokenizer, "guess", split="test")
    with pytest.raises(IndexError, match="outside split 'test'"):
        run(manager, [18])


def test_a_manager_runs_again_in_a_new_event_loop(tokenizer):
    engine = ScriptedEngine(tokenizer, binary_search(tokenizer))
    manager = RolloutManager(engine, tokenizer, "guess", samples_per_task=2, max_concurrent=1)
    try:
        for _ in range(2):  # each collect() call runs its own event loop
            assert all(e.success for e in asyncio.run(manager.run([0, 1])))
    finally:
        manager.close()


def test_env_close_failure_is_recorded_not_raised(tokenizer, registry_sandbox):
    class BadClose(CountEnv):
        def close(self):
            raise RuntimeError("close failed")

    agentrl.register("test/BadClose-v0", entry_point=BadClose)
    manager = RolloutManager(
        ScriptedEngine(tokenizer, lambda ids, i: "stop"), tokenizer, "badclose"
    )
    [episode] = run(manager, [0])
    assert episode.error == "env.close() failed: RuntimeError: close failed"


def test_the_template_end_of_turn_token_is_a_stop_token(tokenizer):
    engine = ScriptedEngine(tokenizer, ["guess[5]"] * 10)
    manager = RolloutManager(engine, tokenizer, "guess", env_kwargs={"max_turns": 1})
    run(manager, [0])
    assert engine.requests[0].params.stop_token_ids == (manager.chat.closing_ids[0],)


def test_env_stop_strings_and_demonstrations_reach_the_engine_and_prompt(tokenizer):
    engine = ScriptedEngine(tokenizer, ["search[red shoes]"] * 10)
    manager = RolloutManager(
        engine, tokenizer, "webshop", split="test", env_kwargs={"max_turns": 1}
    )
    [episode] = run(manager, [0])
    assert "]" in engine.requests[0].params.stop
    text = tokenizer.decode(episode.token_ids[: episode.prompt_length])
    # Few-shot turns come before the task and are not trained (the prompt has mask 0).
    assert text.count("<|im_start|>assistant\nsearch[") == 1 and "click[B" in text
    assert set(episode.loss_mask[: episode.prompt_length]) == {0}


def test_an_env_reply_prefix_starts_the_turn_untrained(tokenizer):
    # The model writes only what follows "search[" / "click["; the prefix is part of the
    # sequence the model saw (and of the parsed action) but has loss mask 0.
    engine = ScriptedEngine(tokenizer, ["red shoes]", "1]", "Buy Now]"])
    manager = RolloutManager(
        engine,
        tokenizer,
        "webshop",
        split="test",
        env_kwargs={"max_turns": 3, "action_prefix": True, "numbered_results": True},
    )
    [episode] = run(manager, [0])
    episode.check()
    assert episode.num_invalid_actions == 0 and episode.terminated and episode.num_turns == 3
    text = tokenizer.decode(episode.token_ids)
    demo = tokenizer.decode(episode.token_ids[: episode.prompt_length])
    for action in ("search[red shoes]", "click[1]", "click[Buy Now]"):
        turn = f"<|im_start|>assistant\n{action}<|im_end|>"
        assert text.count(turn) == demo.count(turn) + 1  # the demonstrations, then ours
    sampled = [t for t, m in zip(episode.token_ids, episode.loss_mask, strict=True) if m]
    assert tokenizer.decode(sampled) == "red shoes]1]Buy Now]"
    request = engine.requests[1].prompt_ids  # the second turn's prompt ends with the prefix
    assert tokenizer.decode(request).endswith("<|im_start|>assistant\nclick[")
