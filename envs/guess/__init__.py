"""Number guessing: the tutorial env that docs/adding-an-env.md walks through."""

from agentrl.envs.guess.env import GuessEnv

__all__ = ["GuessEnv"]
