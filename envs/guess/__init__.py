"""Number guessing: the tutorial env (see docs/adding-an-env.md)."""

from agentrl.envs.guess.env import GuessEnv

__all__ = ["GuessEnv"]
