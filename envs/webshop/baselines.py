"""Scripted WebShop policies: an oracle, the original rule baseline, and random play.

    policy = oracle_policy            # or first_result_policy, random_policy(seed)
    obs, info = env.reset(seed=0)
    while not env.done:
        env.step(policy(env))

Each policy maps the env's current state to an action string. The oracle reads the
goal (`env.goal`), so it measures how solvable the tasks are, not an agent: it searches
with the instruction's words, pages through the results to the goal's product, chooses
each goal option and buys. `first_result_policy` is the rule baseline of the WebShop
paper: search the instruction, buy the first result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from agentrl.envs.webshop.catalog import instruction_queries
from agentrl.envs.webshop.env import BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PREV_PAGE, WebShopEnv

from agentrl.errors import ResetNeeded

Policy = Callable[[WebShopEnv], str]


def oracle_policy(env: WebShopEnv) -> str:
    """Search the goal's words, find the goal's product, choose its options, buy."""
    goal = env.goal
    if goal is None:
        raise ResetNeeded("oracle_policy needs an env that has been reset; call reset() first.")
    if env.page == "search":
        # The product's own title when the instruction's words did not find it.
        retry = env.shop.by_asin[goal.asin].title if env.searches else None
        return f"search[{retry or instruction_queries(goal.instruction)[0]}]"
    if env.page == "results":
        if goal.asin in env.visible_results():
            return f"click[{goal.asin}]"
        if env.has_next_page():
            return f"click[{NEXT_PAGE}]"
        return f"click[{BACK_TO_SEARCH}]"
    if env.page == "item":
        if env.asin != goal.asin:
            return f"click[{PREV_PAGE}]"
        product = env.shop.by_asin[goal.asin]
        offered = {v for values in product.options.values() for v in values}
        for value in goal.options:
            if value in offered and value not in env.options.values():
                return f"click[{value}]"
        return f"click[{BUY_NOW}]"
    return f"click[{PREV_PAGE}]"  # description or features page


def first_result_policy(env: WebShopEnv) -> str:
    """The WebShop paper's rule baseline: search the instruction, buy the first result."""
    if env.goal is None:
        raise ResetNeeded(
            "first_result_policy needs an env that has been reset; call reset() first."
        )
    if env.page == "search":
        return f"search[{env.goal.instruction}]"
    if env.page == "results":
        shown = env.visible_results()
        return f"click[{shown[0]}]" if shown else f"click[{BACK_TO_SEARCH}]"
    if env.page == "item":
        return f"click[{BUY_NOW}]"
    return f"click[{PREV_PAGE}]"


def random_policy(seed: int) -> Policy:
    """A uniformly random action among `env.valid_actions()`."""
    rng = np.random.default_rng(seed)

    def act(env: WebShopEnv) -> str:
        actions = env.valid_actions()
        return actions[int(rng.integers(len(actions)))]

    return act


def play(env: WebShopEnv, policy: Policy, task_index: int) -> tuple[float, bool]:
    """One episode of `policy` on task `task_index`: (reward, success)."""
    env.reset(seed=task_index, options={"task_index": task_index})
    reward, info = 0.0, {}
    while not env.done:
        _, reward, _, _, info = env.step(policy(env))
    return float(reward), bool(info.get("success", False))
