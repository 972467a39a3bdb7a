"""Tool-integrated reasoning: problems solved by running Python in a sandbox.

env = agentrl.make("code")                           # generated problems, bubblewrap
env = agentrl.make("code", data_dir="~/data/gsm8k")  # GSM8K / MATH-style JSON lines
"""

from agentrl.envs.code.env import CodeEnv

__all__ = ["CodeEnv"]
