"""WebShop (Yao et al. 2022), text mode: search a shop and buy what an instruction asks for.

    env = agentrl.make("webshop", split="test")               # generated catalog, 3000 products
    env = agentrl.make("webshop", data_dir="~/webshop/data")  # the original WebShop files

Modules: `env` (the environment and its pages), `synthetic` and `vocab` (the generated
catalog), `data` (the original files), `catalog` (products, goals, splits), `search`
(BM25 with bm25s) and `reward` (the original `get_reward`).
"""

from agentrl.envs.webshop.env import WebShopEnv

__all__ = ["WebShopEnv"]
