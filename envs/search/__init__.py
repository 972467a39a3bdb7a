"""Knowledge-intensive QA with a search tool (Search-R1 / ARPO's setting).

env = agentrl.make("search")                            # generated multi-hop questions
env = agentrl.make("search", data_dir="~/data/nq")      # Search-R1 / FlashRAG files
env = agentrl.make("search", retriever="http://127.0.0.1:8000")   # a retriever server
"""

from agentrl.envs.search.env import SearchEnv

__all__ = ["SearchEnv"]
