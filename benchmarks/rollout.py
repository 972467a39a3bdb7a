"""Rollout throughput: the asynchronous manager against env waits and turn-synchronous batching.

    python benchmarks/rollout.py --model tiny
    python benchmarks/rollout.py --model default --tasks 8 --samples 2 --turns 4

The same requests run three ways on one model, each with a fresh `hf` engine:

  (a) async     the rollout manager; every env step sleeps 50-200 ms (seeded)
  (b) no-wait   the same, with steps that return at once: the engine's own pace
  (c) sync      turn-synchronous batching: each turn, every live episode is decoded in
                one batch, then all envs are stepped, and the next turn waits for the
                slowest of them

The env takes any text as its action (the `text` parser), so every turn steps it.
Reported: wall time, generated tokens, tokens/s, and the ratios a/b (target >= 0.9)
and a/c (target >= 2).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import write_results
from rich.console import Console
from rich.table import Table

import agentrl
from agentrl.core import Outcome, TextEnv
from agentrl.engines import GenerationRequest, SamplingParams
from agentrl.engines.hf import HFEngine
from agentrl.models import load_model
from agentrl.rollout.manager import RolloutManager, summarize


class SleepyEnv(TextEnv):
    """Any text is a valid action; each step sleeps a seeded 50-200 ms; no reward."""

    action_format = "text"
    instructions = "Write one short sentence each turn."

    def __init__(
        self,
        split="train",
        max_turns=None,
        render_mode=None,
        min_sleep: float = 0.05,
        max_sleep: float = 0.2,
    ) -> None:
        super().__init__(split=split, max_turns=max_turns, render_mode=render_mode)
        self.min_sleep, self.max_sleep = min_sleep, max_sleep

    def num_tasks(self, split):
        return 1000

    def task_id(self, split, index):
        return f"{split}-{index}"

    def load_task(self, split, index):
        return f"Task {index}: tell me about the number {index}."

    def act(self, action):
        if self.max_sleep > 0:
            time.sleep(float(self.np_random.uniform(self.min_sleep, self.max_sleep)))
        return Outcome(f"Noted ({len(action)} characters). Go on.")


def manager_for(model, tokenizer, args, sleep: bool) -> RolloutManager:
    bounds = (
        {"min_sleep": args.min_sleep, "max_sleep": args.max_sleep}
        if sleep
        else {"min_sleep": 0.0, "max_sleep": 0.0}
    )
    engine = HFEngine(model, tokenizer, max_batch_size=args.batch)
    return RolloutManager(
        engine,
        tokenizer,
        "bench/Sleepy-v0",
        {"max_turns": args.turns, **bounds},
        samples_per_task=args.samples,
        max_new_tokens=args.max_new_tokens,
        max_context_tokens=4096,
        workers=args.tasks * args.samples,
        seed=args.seed,
    )


def engine_stats(manager: RolloutManager) -> dict[str, float]:
    stats = manager.engine.stats
    return {
        "mean_batch": stats.mean_batch,
        "admissions": stats.admissions,
        "prefill_tokens": stats.prefill_tokens,
        "decode_steps": stats.steps,
    }


def run_async(manager: RolloutManager, tasks: list[int]) -> tuple[int, float]:
    async def go():
        try:
            return await manager.run(tasks)
        finally:
            await manager.engine.close()

    started = time.perf_counter()
    episodes = asyncio.run(go())
    wall = time.perf_counter() - started
    manager.close()
    assert not any(e.error for e in episodes), [e.error for e in episodes if e.error]
    return int(summarize(episodes)["generated_tokens"]), wall


def run_sync(manager: RolloutManager, tasks: list[int], turns: int) -> tuple[int, float]:
    """Turn-synchronous batching: decode all live episodes, then step all envs, repeat."""
    episodes = []
    for task in tasks:
        for sample in range(manager.samples_per_task):
            env = manager.runner.make_env()
            observation, _ = env.reset(seed=sample, options={"task_index": task})
            episodes.append(
                {
                    "env": env,
                    "ids": manager.chat.prompt(observation),
                    "turn": 0,
                    "task": task,
                    "sample": sample,
                }
            )
    pool = ThreadPoolExecutor(max_workers=len(episodes))
    generated = 0

    async def go() -> None:
        nonlocal generated
        for turn in range(1, turns + 1):
            requests = [
                GenerationRequest(
                    list(e["ids"]),
                    SamplingParams(
                        max_new_tokens=manager.max_new_tokens,
                        seed=e["task"] * 1000 + e["sample"] * 10 + turn,
                    ),
                )
                for e in episodes
            ]
            completions = await manager.engine.generate(requests)
            actions = []
            for episode, [completion] in zip(episodes, completions, strict=True):
                generated += len(completion.token_ids)
                episode["ids"] += completion.token_ids + manager.chat.turn_end(completion.token_ids)
                text = manager.tokenizer.decode(completion.token_ids, skip_special_tokens=True)
                actions.append(manager.parser.parse(text).action or "(empty)")
            steps = list(
                pool.map(
                    lambda pair: pair[0]["env"].step(pair[1]), zip(episodes, actions, strict=True)
                )
            )
            if turn < turns:
                for episode, step in zip(episodes, steps, strict=True):
                    episode["ids"] += manager.chat.observation(step[0])
        await manager.engine.close()

    started = time.perf_counter()
    asyncio.run(go())
    wall = time.perf_counter() - started
    pool.shutdown()
    manager.close()
    return generated, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny', 'default' or a model directory")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--batch", type=int, default=32, help="engine max_batch_size")
    parser.add_argument("--min-sleep", type=float, default=0.05)
    parser.add_argument("--max-sleep", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode (medians shown)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    agentrl.register("bench/Sleepy-v0", entry_point=SleepyEnv)
    model, tokenizer = load_model(args.model)
    tasks = [int(i) for i in np.arange(args.tasks)]
    modes = (
        ("a: async, env waits", True, run_async),
        ("b: async, no env waits", False, run_async),
        ("c: turn-synchronous, env waits", True, None),
    )
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in modes}
    run_async(manager_for(model, tokenizer, args, sleep=False), tasks)  # warm-up
    # Modes alternate within each repeat, so that load from other processes on this
    # shared machine falls on all of them alike; the table shows medians.
    for _ in range(args.repeats):
        for name, sleep, runner in modes:
            manager = manager_for(model, tokenizer, args, sleep)
            if runner is None:
                generated, wall = run_sync(manager, tasks, args.turns)
            else:
                generated, wall = runner(manager, tasks)
            runs[name].append(
                {
                    "wall_s": wall,
                    "generated_tokens": generated,
                    "tokens_per_s": generated / wall,
                    **engine_stats(manager),
                }
            )
    rows = {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for name, results in runs.items()
    }
    a, b, c = (rows[k]["tokens_per_s"] for k in rows)
    ratios = {"a/b (target >= 0.9)": a / b, "a/c speed-up (target >= 2)": a / c}
    table = Table(
        title=(
            f"rollout: model {args.model}, {args.tasks} tasks x {args.samples} samples, "
            f"{args.turns} turns x {args.max_new_tokens} tokens, env waits "
            f"{args.min_sleep * 1000:.0f}-{args.max_sleep * 1000:.0f} ms"
        )
    )
    columns = ("mode", "wall s", "generated tokens", "tokens/s", "mean batch", "admissions")
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right")
    for name, row in rows.items():
        table.add_row(
            name,
            f"{row['wall_s']:.2f}",
            f"{row['generated_tokens']:.0f}",
            f"{row['tokens_per_s']:.1f}",
            f"{row['mean_batch']:.1f}",
            f"{row['admissions']:.0f}",
        )
    for name, value in ratios.items():
        table.add_row(name, "", "", f"{value:.2f}", "", "")
    Console().print(table)
    out = args.out or Path(f"benchmarks/results/rollout-{Path(args.model).name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_results(out, {"medians": rows, "runs": runs, "ratios": ratios}, args, out=out)


if __name__ == "__main__":
    main()
