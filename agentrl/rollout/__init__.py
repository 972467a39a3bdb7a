"""Rollout: chat rendering as token deltas, the asynchronous manager, trajectory records."""

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
