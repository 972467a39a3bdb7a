"""agentrl: reinforcement learning for LLM agents in multi-turn, tool-using environments.

    import agentrl
    env = agentrl.make("guess", split="test")
    obs, info = env.reset(seed=0)

The public names: `make`, `register`, `list_envs`, `check_env`, `TextEnv`, `Outcome`,
`InvalidAction`, `TextSpace`, and the config loader `load_config`.
"""

__version__ = "0.1.0"

import agentrl.envs  # noqa: F401 -- registers the built-in envs
from agentrl.checker import check_env
from agentrl.config import Config, load_config
from agentrl.core import SPLITS, InvalidAction, Outcome, TextEnv, TextSpace
from agentrl.registration import list_envs, make, register, registered_ids, resolve

__all__ = [
    "SPLITS",
    "Config",
    "InvalidAction",
    "Outcome",
    "TextEnv",
    "TextSpace",
    "__version__",
    "check_env",
    "list_envs",
    "load_config",
    "make",
    "register",
    "registered_ids",
    "resolve",
]
