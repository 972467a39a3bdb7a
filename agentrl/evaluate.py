"""Evaluation on held-out tasks: success, reward, valid actions, turns, tool calls.

    report = evaluate(config, split="test", tasks=50, out_dir="runs/x/eval-test")

Runs one episode per task on the first `tasks` tasks of a seeded order of the split,
writes `trajectories.jsonl` and `eval.json` into
`out_dir`, and returns the report. Sampling follows `config.rollout` (set
`rollout.temperature` low for near-greedy evaluation).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentrl.config import Config
from agentrl.engines import create_engine
from agentrl.factory import make_manager
from agentrl.models import load_model
from agentrl.rollout.manager import summarize
from agentrl.rollout.run import choose_tasks, collect
from agentrl.rollout.trajectory import Episode


def evaluate(
    config: Config,
    split: str,
    tasks: int,
    out_dir: str | Path,
    model: Any = None,
    tokenizer: Any = None,
    on_episode: Callable[[Episode], None] | None = None,
) -> dict[str, Any]:
    """Evaluate `config.model.name` (or the given model) on `tasks` tasks of `split`."""
    config = config.model_copy(deep=True)
    config.rollout.branching = "none"  # one independent episode per held-out task
    config.rollout.initial_samples = 0
    config.rollout.samples_per_task = 1
    if model is None:
        model, tokenizer = load_model(config.model.name, config.model.dtype, config.engine.device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine = create_engine(config, model, tokenizer)
    manager = make_manager(config, engine, tokenizer, split)
    try:
        chosen = choose_tasks(manager.num_tasks, min(tasks, manager.num_tasks), config.train.seed)
        episodes, wall = collect(manager, chosen, out / "trajectories.jsonl", on_episode)
    finally:
        manager.close()
    report = report_of(episodes, wall)
    report.update(env=manager.env_id, split=split, model=config.model.name, tasks=len(chosen))
    (out / "eval.json").write_text(json.dumps(report, indent=2))
    return report


def report_of(episodes: list[Episode], wall_s: float | None = None) -> dict[str, Any]:
    """The evaluation figures of a list of episodes."""
    summary = summarize(episodes, wall_s)
    return {
        "episodes": len(episodes),
        "success_rate": summary["success"],
        "mean_reward": summary["reward"],
        "valid_action_rate": 1.0 - summary["invalid_action_rate"],
        "turns": summary["turns"],
        "tool_calls": summary["tool_calls"],
        "errors": int(summary["errors"]),
    }
