"""Rollout: the manager (`manager.py`) runs episodes (`episode.py`) or grows ARPO / AEPO
trees of them (`tree.py`, decisions in `branching.py`); `actions.py` parses replies into
actions, `chat.py` renders turns as token deltas, `trajectory.py` records episodes, and
`groups.py` draws a training step's task groups (with DAPO's dynamic sampling)."""

from agentrl.rollout.chat import ChatFormat
from agentrl.rollout.manager import RolloutManager, summarize
from agentrl.rollout.trajectory import Episode, EpisodeWriter, read_episodes, write_episodes

__all__ = [
    "ChatFormat",
    "Episode",
    "EpisodeWriter",
    "RolloutManager",
    "read_episodes",
    "summarize",
    "write_episodes",
]
