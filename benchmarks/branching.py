"""Branching rollout: ARPO and AEPO trees against independent sampling, at equal samples.

    python benchmarks/branching.py --model default --tasks 4 --samples 4

Each mode samples M = `--samples` leaves for each of `--tasks` WebShop test tasks with a
fresh `hf` engine on the same model: independent (M samples from the prompt), ARPO and
AEPO (N = `--initial` samples from the prompt, the rest by branching after env
observations, or as top-ups). Reported per mode: env tool calls run per task (a branch
does not run its copied prefix again), tokens decoded and prefilled per leaf, wall time,
branch rate and the top-3 branch share; and, for branches, the shared prefix length and
the tokens the engine prefilled for a branch's first request (1 when the prefix comes
from the cache: only the prompt's last token is computed again). Writes
benchmarks/results/branching-<model>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import defaultdict
from pathlib import Path

from common import write_results
from rich.console import Console
from rich.table import Table

import agentrl
from agentrl.engines import create_engine
from agentrl.factory import make_manager
from agentrl.models import load_model
from agentrl.rollout.branching import tree_metrics
from agentrl.rollout.run import choose_tasks


class Recording:
    """Wraps an engine and remembers the prefill of every request, by prompt."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.prefill: dict[tuple[int, ...], list[int]] = defaultdict(list)

    async def generate(self, requests):
        results = await self.engine.generate(requests)
        for request, completions in zip(requests, results, strict=True):
            self.prefill[tuple(request.prompt_ids)].append(completions[0].prefill_tokens)
        return results

    def load_weights(self, state_dict) -> None:
        self.engine.load_weights(state_dict)

    async def close(self) -> None:
        await self.engine.close()


def run_mode(branching: str, args, model, tokenizer) -> dict[str, float]:
    config = agentrl.load_config(
        "webshop_grpo",
        [
            f"model.name={args.model}",
            f"rollout.branching={branching}",
            f"rollout.samples_per_task={args.samples}",
            f"rollout.initial_samples={args.initial if branching != 'none' else 0}",
            f"rollout.max_new_tokens={args.max_new_tokens}",
            f"rollout.temperature={args.temperature}",
            f"env.max_turns={args.turns}",
            f"train.seed={args.seed}",
        ],
    )
    engine = Recording(create_engine(config, model, tokenizer))
    manager = make_manager(config, engine, tokenizer, "test")
    tasks = choose_tasks(manager.num_tasks, args.tasks, args.seed)
    started = time.perf_counter()
    try:
        episodes = asyncio.run(manager.run(tasks))
    finally:
        asyncio.run(engine.close())
        manager.close()
    wall = time.perf_counter() - started
    row = {"wall_s": wall, **tree_metrics(episodes)}
    row["leaves_per_task"] = len(episodes) / args.tasks
    row["reward"] = statistics.mean(e.reward for e in episodes)
    branches = [e for e in episodes if e.parent is not None]
    # A branch's first prompt is its parent's prompt of that turn: the parent's request
    # comes first in the record, then the branches' (copies share one prompt).
    points = {tuple(e.token_ids[: e.branch_token_index]) for e in branches}
    first = [p for key in points for p in engine.prefill[key][1:]]
    saved = sum(len(key) - p for key in points for p in engine.prefill[key][1:])
    row["branch_shared_prefix"] = (
        statistics.mean(e.branch_token_index for e in branches) if branches else 0.0
    )
    row["branch_first_prefill"] = statistics.mean(first) if first else 0.0
    row["prefill_saved_per_task"] = saved / args.tasks  # shared tokens not computed again
    return {k: v for k, v in row.items() if not k.startswith("branch_rate/")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="'tiny', 'default' or a model dir")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--samples", type=int, default=4, help="M, leaves per task")
    parser.add_argument("--initial", type=int, default=2, help="N, samples from the prompt")
    parser.add_argument("--turns", type=int, default=5, help="env.max_turns")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    model, tokenizer = load_model(args.model)
    rows = {mode: run_mode(mode, args, model, tokenizer) for mode in ("none", "arpo", "aepo")}
    table = Table(
        title=(
            f"branching on WebShop (test): model {args.model}, {args.tasks} tasks x "
            f"{args.samples} leaves (N = {args.initial} for trees), {args.turns} turns x "
            f"{args.max_new_tokens} tokens, temperature {args.temperature}"
        )
    )
    columns = {
        "wall_s": "wall s",
        "tool_calls_per_task": "tool calls / task",
        "decoded_per_leaf": "decoded / leaf",
        "prefilled_per_leaf": "prefilled / leaf",
        "branches_per_task": "branches / task",
        "branch_rate": "branch rate",
        "top3_branch_share": "top-3 share",
        "branch_shared_prefix": "shared prefix",
        "branch_first_prefill": "branch 1st prefill",
        "prefill_saved_per_task": "prefill saved / task",
        "reward": "reward",
    }
    names = {"none": "independent", "arpo": "ARPO", "aepo": "AEPO"}
    table.add_column("per mode")
    for mode in rows:
        table.add_column(names[mode], justify="right")
    for key, label in columns.items():
        table.add_row(label, *(f"{rows[mode][key]:.2f}" for mode in rows))
    Console().print(table)
    out = args.out or Path(f"benchmarks/results/branching-{Path(args.model).name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_results(out, {"modes": rows}, args, out=out)


if __name__ == "__main__":
    main()
