"""Environment throughput: steps per second of each registered env under random valid play.

    python benchmarks/envs.py [NAME ...] [--steps N] [--repeats R] [--out FILE.json]

Each repeat plays `--steps` steps (resetting when an episode ends) with a policy that
picks uniformly among `env.valid_actions()`; the table reports the median and the
spread over repeats, and the JSON keeps every repeat.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from common import write_results
from rich.console import Console
from rich.table import Table

import agentrl


def steps_per_second(env: agentrl.TextEnv, steps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        actions = env.valid_actions()
        env.step(actions[int(rng.integers(len(actions)))])
        if env.done:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="env names; every registered env when omitted")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/envs.json"))
    args = parser.parse_args()

    env_ids = [agentrl.resolve(n) for n in args.names] or agentrl.registered_ids()
    rows = []
    for env_id in env_ids:
        env = agentrl.make(env_id)
        runs = [steps_per_second(env, args.steps, seed) for seed in range(args.repeats)]
        rows.append(
            {
                "env": env_id,
                "steps": args.steps,
                "steps_per_s": runs,
                "median_steps_per_s": statistics.median(runs),
            }
        )

    table = Table(title=f"env steps/s (random valid actions, {args.steps} steps x {args.repeats})")
    for column in ("env", "median steps/s", "min", "max"):
        table.add_column(column, justify="left" if column == "env" else "right")
    for row in rows:
        runs = row["steps_per_s"]
        table.add_row(
            row["env"],
            f"{row['median_steps_per_s']:,.0f}",
            f"{min(runs):,.0f}",
            f"{max(runs):,.0f}",
        )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, {"results": rows}, args)


if __name__ == "__main__":
    main()
