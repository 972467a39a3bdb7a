"""Trajectory records: aligned token lists, JSONL round trip, errors that name the line."""

from __future__ import annotations

import pytest

from agentrl.rollout.trajectory import (
    Episode,
    EpisodeWriter,
    TrajectoryFormatError,
    read_episodes,
    write_episodes,
)


def episode(**changes) -> Episode:
    ep = Episode(
        episode_id="t/s0",
        env_id="agentrl/Guess-v0",
        task_id="t",
        split="test",
        seed=1,
        task_index=0,
        sample_index=0,
    )
    ep.append([1, 2, 3], 0, 0)
    ep.append([4, 5], 1, 1, logprobs=[-0.1, -0.2], entropies=[1.0, 2.0])
    ep.append([6], 0, 1)
    for key, value in changes.items():
        setattr(ep, key, value)
    return ep


def test_append_keeps_the_lists_aligned():
    ep = episode()
    assert ep.loss_mask == [0, 0, 0, 1, 1, 0]
    assert ep.logprobs == [None, None, None, -0.1, -0.2, None]
    assert ep.turn_index == [0, 0, 0, 1, 1, 1]
    assert ep.num_generated == 2
    ep.check()


def test_round_trip(tmp_path):
    episodes = [
        episode(),
        episode(
            episode_id="t/s1",
            sample_index=1,
            reward=1.0,
            success=True,
            parent="t/s0",
            branch_turn=1,
            branch_token_index=3,
        ),
    ]
    path = tmp_path / "t.jsonl"
    assert write_episodes(path, episodes) == 2
    assert read_episodes(path) == episodes


def test_writer_flushes_every_line(tmp_path):
    path = tmp_path / "t.jsonl"
    with EpisodeWriter(path) as writer:
        writer.write(episode())
        assert len(read_episodes(path)) == 1  # readable before the writer closes


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not an episode record"),
        ('{"episode_id": "x"}', "missing"),
        ('{"bogus": 1}', "unknown fields"),
    ],
)
def test_bad_lines_are_reported_with_their_number(tmp_path, line, message):
    path = tmp_path / "t.jsonl"
    path.write_text(episode().to_json() + "\n" + line + "\n")
    with pytest.raises(TrajectoryFormatError, match=rf"t.jsonl:2: .*{message}"):
        read_episodes(path)


def test_misaligned_lists_are_rejected():
    with pytest.raises(TrajectoryFormatError, match="6 token_ids but {'turn_index': 5}"):
        episode(turn_index=[0] * 5).check()
    with pytest.raises(TrajectoryFormatError, match="token 0 has loss mask 0 but logprob -1"):
        episode(logprobs=[-1.0, None, None, -0.1, -0.2, None]).check()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"token_ids": ["1", 2, 3, 4, 5, 6]}, "token 0 is '1', not a token id"),
        ({"loss_mask": [0, 0, 0, 2, 1, 0]}, "token 3 has loss mask 2"),
        ({"entropies": [0.5, None, None, 1.0, 2.0, None]}, "token 0 has loss mask 0 but entropy"),
        ({"logprobs": [None, None, None, float("nan"), -0.2, None]}, "token 3 has logprob nan"),
        ({"reward": "lots"}, "reward must be"),
        ({"success": "yes"}, "success must be"),
        ({"prompt_length": 7}, "prompt_length 7 is outside"),
        ({"turn_index": [0, 0, 1, 0, 1, 1]}, "turn_index must be non-decreasing"),
    ],
)
def test_check_rejects_each_malformed_field(changes, message):
    with pytest.raises(TrajectoryFormatError, match=message):
        episode(**changes).check()


def test_writer_refuses_an_invalid_episode_and_reader_a_non_object(tmp_path):
    with EpisodeWriter(tmp_path / "t.jsonl") as writer, pytest.raises(TrajectoryFormatError):
        writer.write(episode(loss_mask=[0] * 6))
    path = tmp_path / "u.jsonl"
    path.write_text("5\n")
    with pytest.raises(TrajectoryFormatError, match="u.jsonl:1: .*expected a JSON object"):
        read_episodes(path)
