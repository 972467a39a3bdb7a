"""The components a config names, built: the rollout manager (and its branching).

    manager = make_manager(config, engine, tokenizer, split="valid")

The engine comes from `agentrl.engines.create_engine(config, model, tokenizer)`.
"""

from __future__ import annotations

from typing import Any

from agentrl.config import Config
from agentrl.engines import Engine
from agentrl.rollout.branching import BranchSettings
from agentrl.rollout.manager import RolloutManager


def branch_settings(config: Config) -> BranchSettings | None:
    """The config's branching rollout (None for independent samples)."""
    rollout = config.rollout
    if rollout.branching == "none":
        return None
    aepo = rollout.branching == "aepo"
    return BranchSettings(
        method=rollout.branching,
        samples=rollout.samples_per_task,
        initial=rollout.initial_samples or max(1, rollout.samples_per_task // 2),
        probe_tokens=rollout.branch_probe_tokens,
        alpha=rollout.branch_alpha,
        beta=rollout.branch_beta,
        threshold=rollout.branch_threshold,
        copies=rollout.branch_copies,
        penalty=rollout.branch_penalty if aepo else 0.0,
        premonitor=rollout.premonitor,
    )


def make_manager(config: Config, engine: Engine, tokenizer: Any, split: str) -> RolloutManager:
    """A rollout manager with the config's env, sampling and branching settings."""
    rollout = config.rollout
    return RolloutManager(
        engine,
        tokenizer,
        config.env.name,
        config.env.env_kwargs(),
        split=split,
        samples_per_task=rollout.samples_per_task,
        max_new_tokens=rollout.max_new_tokens,
        max_context_tokens=rollout.max_context_tokens,
        temperature=rollout.temperature,
        top_p=rollout.top_p,
        top_k=rollout.top_k,
        workers=rollout.workers,
        seed=config.train.seed,
        action_format=rollout.action_format,
        branching=branch_settings(config),
    )
