"""WebShop benchmark: env steps/s with search, and scripted baselines on the test split.

    python benchmarks/webshop.py [--steps N] [--repeats R] [--out FILE.json]

Throughput: `--steps` steps of random valid play (searches included, resetting when an
episode ends), `--repeats` times on the test split, each from a cold search cache; the
table reports the median, and the latency of an uncached BM25 search. Scores:
every test task played once by each scripted policy of `agentrl.envs.webshop.baselines`:
random valid actions, the WebShop paper's rule baseline (search the instruction, buy
the first result), and the oracle (reads the goal: an upper bound on what search and
budget allow). Writes benchmarks/results/webshop.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from agentrl.envs.webshop import WebShopEnv
from agentrl.envs.webshop.baselines import (
    Policy,
    first_result_policy,
    oracle_policy,
    play,
    random_policy,
)
from agentrl.envs.webshop.catalog import instruction_queries
from rich.console import Console
from rich.table import Table

import agentrl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results

from envs import steps_per_second as random_play_steps_per_second


def steps_per_second(env: WebShopEnv, steps: int, seed: int) -> float:
    """Random valid play from a cold search cache (the loop of benchmarks/envs.py)."""
    env.shop.engine.clear_cache()
    return random_play_steps_per_second(env, steps, seed)


def search_ms(env: WebShopEnv) -> float:
    """Mean milliseconds of one uncached search, over the instructions' queries."""
    queries = [
        query
        for split in ("valid", "test")
        for goal in env.shop.goals[split]
        for query in instruction_queries(goal.instruction)
    ]
    env.shop.engine.clear_cache()
    start = time.perf_counter()
    for query in queries:
        env.shop.engine.search(query)
    return (time.perf_counter() - start) / len(queries) * 1000


def score(env: WebShopEnv, policy: Policy) -> dict[str, float]:
    results = [play(env, policy, i) for i in range(env.num_tasks(env.split))]
    rewards = [r for r, _ in results]
    return {
        "episodes": len(results),
        "mean_reward": statistics.fmean(rewards),
        "success_rate": statistics.fmean(float(s) for _, s in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-products", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/webshop.json"))
    args = parser.parse_args()

    start = time.perf_counter()
    env = agentrl.make("webshop", split="test", num_products=args.num_products)
    build_s = time.perf_counter() - start
    runs = [steps_per_second(env, args.steps, seed) for seed in range(args.repeats)]
    search = search_ms(env)
    policies = {
        "random valid action": random_policy(0),
        "search instruction, buy first result": first_result_policy,
        "oracle (reads the goal)": oracle_policy,
    }
    scores = {name: score(env, policy) for name, policy in policies.items()}

    console = Console()
    speed = Table(title=f"WebShop steps/s (random valid actions, {args.steps} x {args.repeats})")
    columns = ("products", "build s", "search ms", "median steps/s", "min", "max")
    for column in columns:
        speed.add_column(column, justify="right")
    speed.add_row(
        str(args.num_products),
        f"{build_s:.2f}",
        f"{search:.3f}",
        f"{statistics.median(runs):,.0f}",
        f"{min(runs):,.0f}",
        f"{max(runs):,.0f}",
    )
    console.print(speed)
    table = Table(title=f"WebShop test split ({env.num_tasks('test')} tasks)")
    for column in ("policy", "mean reward", "success rate"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, row in scores.items():
        table.add_row(name, f"{row['mean_reward']:.3f}", f"{row['success_rate']:.1%}")
    console.print(table)

    result = {
        "build_s": build_s,
        "uncached_search_ms": search,
        "steps": args.steps,
        "steps_per_s": runs,
        "median_steps_per_s": statistics.median(runs),
        "test_scores": scores,
    }
    write_results(args.out, result, args, max_turns=env.max_turns)


if __name__ == "__main__":
    main()
