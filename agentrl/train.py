"""The training loop: collect -> advantages -> loss -> step -> sync -> evaluate -> log ->
checkpoint.

    result = train(load_config("calculator_grpo"), run_dir="runs/calc")

One function that reads top to bottom (`train`), and the small pieces it calls. The
policy and the `hf` engine share one model object in this process, so "sync" after an
optimizer step only tells the engine to drop its stale KV caches. Old logprobs are the
engine's sampling logprobs (the update is on-policy); the engine-vs-trainer mismatch on
the same tokens is logged as `train/logprob_mismatch_kl`. Resuming from a run directory
continues from its latest complete checkpoint, exactly (weights, optimizer, RNG, data
cursor, EPO history). Under torch.distributed (`torchrun --nproc_per_node N -m
agentrl.cli train ...`) every rank draws the same tasks and collects its share of whole
groups; gradients are summed over ranks with a global normalisation, so the ranks stay
identical to a single process on the same data; rank 0 logs and saves. With
`train.fsdp=true` the parameters, gradients and optimizer state are sharded over the
ranks (see agentrl.distributed) and each rank's engine samples from its own whole copy
of the weights, refreshed after every optimizer step.
"""

from __future__ import annotations

import asyncio
import copy
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentrl import distributed
from agentrl.algos.logprobs import policy_logprobs, reference_logprobs, sequence_logprobs
from agentrl.algos.objective import Objective, compute, diagnostics
from agentrl.algos.prepare import BatchSettings, prepare
from agentrl.checkpoint import latest_checkpoint, load_checkpoint, load_weights, save_checkpoint
from agentrl.config import PRESETS, Config, config_problems
from agentrl.distributed import (
    full_optimizer_state,
    full_state_dict,
    is_sharded,
    load_full_optimizer_state,
    local_value,
    shard,
)
from agentrl.engines import create_engine
from agentrl.errors import ConfigError
from agentrl.evaluate import evaluate
from agentrl.factory import make_manager
from agentrl.models import load_model
from agentrl.monitor import MetricsLogger, truncate_metrics
from agentrl.rollout.groups import collect_groups
from agentrl.rollout.trajectory import Episode, EpisodeWriter

__all__ = ["PRESETS", "TrainResult", "train", "update"]

PEFT_DEPRECATION = "`is_gradient_checkpointing` is deprecated"


@dataclass
class TrainResult:
    """What a finished run returns."""

    run_dir: Path
    steps: int
    metrics: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    eval_before: dict[str, Any] | None = None
    eval_after: dict[str, Any] | None = None


def train(
    config: Config, run_dir: str | Path, on_step: Callable[[int, dict], None] | None = None
) -> TrainResult:
    """Train `config.train.steps` steps in `run_dir` (resuming from its last checkpoint)."""
    run_dir = Path(run_dir)
    rank = distributed.rank()
    main = rank == 0  # the rank that logs and saves; every rank collects and trains
    _check(config)
    _check_resume(config, run_dir)
    if main:
        config.save(run_dir)
    _seed_everything(config.train.seed)

    model, tokenizer = load_model(config.model.name, config.model.dtype, config.engine.device)
    model = _trainable(model, config)
    checkpoint = latest_checkpoint(run_dir)
    # `policy` is what the engine samples from and what checkpoints save: the trained
    # model itself, or with FSDP a whole copy kept in step with the shards.
    policy = model
    if config.train.fsdp:
        if checkpoint is not None:  # weights go in whole, before they are split
            load_weights(model, checkpoint / "model")
        policy = copy.deepcopy(model)
        model = shard(model, sequence_logprobs)
    # The reference policy of regularizers that need one (KL): with LoRA the model with
    # its adapters switched off (no second copy); with full fine-tuning a frozen copy
    # loaded from the source (never from a resumed checkpoint).
    reference = None
    if objective_of(config).needs_reference and not config.model.lora:
        reference = load_model(config.model.name, config.model.dtype, config.engine.device)[0]
        reference.requires_grad_(False)
    engine = create_engine(config, policy, tokenizer)
    manager = make_manager(config, engine, tokenizer, split="train")
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.optim.lr,
        weight_decay=config.optim.weight_decay,
    )
    warmup = max(config.optim.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    state: dict[str, Any] = {"epoch": 0, "cursor": 0, "regularizers": {}}
    start = 0
    if checkpoint is not None:
        if is_sharded(model):  # the weights were loaded above
            load = lambda saved: load_full_optimizer_state(model, optimizer, saved)  # noqa: E731
            state = load_checkpoint(checkpoint, None, optimizer, scheduler, load_optimizer=load)
        else:
            state = load_checkpoint(checkpoint, model, optimizer, scheduler)
        start = state["step"]
        truncate_metrics(run_dir, start)  # steps logged after the checkpoint run again
    logger = (
        MetricsLogger(
            run_dir, config.log.tensorboard, config.log.wandb, config.model_dump(mode="json")
        )
        if main
        else None
    )
    name = "trajectories.jsonl" if main else f"trajectories.rank{rank}.jsonl"
    writer = EpisodeWriter(run_dir / name, append=True) if config.log.trajectories else None
    result = TrainResult(run_dir=run_dir, steps=start)
    if config.train.eval_tasks and start == 0 and main:
        result.eval_before = evaluate(
            config, "test", config.train.eval_tasks, run_dir / "eval-before", policy, tokenizer
        )
    try:
        for step in range(start, config.train.steps):
            started = time.perf_counter()
            # 1. collect: tasks_per_step tasks x samples_per_task episodes from the train
            # split (with dynamic sampling, groups with equal rewards are replaced)
            manager.seed = config.train.seed * 1_000_003 + step
            episodes, rollout_metrics = collect_groups(
                manager,
                state,
                wanted=config.rollout.tasks_per_step,
                seed=config.train.seed,
                informative_only=config.algorithm.dynamic_sampling,
                rounds=1 + config.algorithm.dynamic_sampling_rounds,
                on_episode=writer.write if writer else None,
            )
            # 2-4. advantages, loss, optimizer step (none when no group was informative)
            # (the model stays in eval mode: no dropout, so trainer and engine logprobs agree)
            update_metrics = {"train/skipped": 1.0, "train/lr": scheduler.get_last_lr()[0]}
            if distributed.any_rank(bool(episodes)):
                update_metrics = update(config, model, optimizer, episodes, state, step, reference)
                update_metrics.update(
                    {"train/skipped": 0.0, "train/lr": scheduler.get_last_lr()[0]}
                )
                # one regularizer history for all ranks: rank 0's
                state["regularizers"] = distributed.broadcast(state["regularizers"])
                scheduler.step()
            # 5. sync: the engine serves this same model, so its cached keys are stale now;
            # with FSDP it gets the new whole weights (only the adapters with LoRA)
            if is_sharded(model):
                engine.load_weights(full_state_dict(model, trainable_only=config.model.lora))
            else:
                engine.weights_updated()
            # 6. evaluate on the valid split every eval_every steps (rank 0; others wait)
            eval_metrics = {}
            if config.train.eval_every and (step + 1) % config.train.eval_every == 0:
                if main:
                    eval_metrics = _evaluate_valid(config, step + 1, run_dir, policy, tokenizer)
                distributed.barrier()
            # 7. log
            metrics = {
                **rollout_metrics,
                **update_metrics,
                **eval_metrics,
                "perf/step_s": time.perf_counter() - started,
            }
            if logger is not None:
                logger.log(step + 1, metrics)
            result.metrics.append(metrics)
            result.steps = step + 1
            if on_step is not None:
                on_step(step + 1, metrics)
            # 8. checkpoint
            every = config.train.save_every
            if step + 1 == config.train.steps or (every and (step + 1) % every == 0):
                # sharded optimizer state is gathered whole to rank 0 (every rank takes part)
                whole = full_optimizer_state(model, optimizer) if is_sharded(model) else None
                if main:
                    result.checkpoint = save_checkpoint(
                        run_dir,
                        step + 1,
                        policy,
                        tokenizer,
                        optimizer,
                        scheduler,
                        state,
                        optimizer_state=whole,
                    )
                distributed.barrier()
        if config.train.eval_tasks and main:
            engine.weights_updated()
            result.eval_after = evaluate(
                config, "test", config.train.eval_tasks, run_dir / "eval-after", policy, tokenizer
            )
    finally:
        if logger is not None:
            logger.close()
        if writer is not None:
            writer.close()
        asyncio.run(engine.close())
        manager.close()
    return result


def update(
    config: Config,
    model: Any,
    optimizer: torch.optim.Optimizer,
    episodes: list[Episode],
    state: dict[str, Any],
    step: int,
    reference: Any = None,
) -> dict[str, float]:
    """Advantages, then `ppo_epochs` passes of gradient accumulation over micro-batches,
    one optimizer step each. Returns the update's metrics."""
    objective = objective_of(config)
    prepared = prepare(episodes, objective, batch_settings(config, step, is_sharded(model)))
    started = time.perf_counter()
    device = next(model.parameters()).device
    epochs, sums = config.train.ppo_epochs, {}
    fwd_bwd_s, forward_only_tokens = 0.0, 0
    for epoch in range(epochs):
        optimizer.zero_grad(set_to_none=True)
        for rows in prepared.micro_batches:
            batch = prepared.collate(rows).to(device)
            trains = prepared.trains(rows)
            computing = time.perf_counter()
            with torch.set_grad_enabled(trains):
                logprobs, entropy = policy_logprobs(model, batch, config.rollout.temperature)
                total, metrics = compute(
                    objective,
                    batch,
                    logprobs,  # [B, T]
                    entropy,  # [B, T]
                    share=lambda mode, batch=batch: prepared.share(mode, batch),
                    step=step,
                    total_steps=config.train.steps,
                    state=state["regularizers"],
                    entropy_stats=prepared.entropy_stats,
                    ref_logprobs=(
                        reference_logprobs(model, reference, batch, config.rollout.temperature)
                        if objective.needs_reference
                        else None
                    ),
                )
                if trains:
                    total.backward()
            fwd_bwd_s += time.perf_counter() - computing
            forward_only_tokens += 0 if trains or epoch else int(batch.attention_mask.sum())
            metrics.update(diagnostics(batch, logprobs, entropy))
            _accumulate(sums, metrics, prepared.share("token-mean", batch), epoch, epochs)
        distributed.sum_gradients(model)  # nothing in one process or under FSDP
        grad_norm = _optimizer_step(model, optimizer, config.optim.max_grad_norm)
    sums = distributed.sum_dicts(sums)
    update_s = time.perf_counter() - started
    sequence_tokens = sum(len(e.token_ids) for e in prepared.episodes)
    return {
        **{f"train/{k}": v for k, v in sums.items()},
        "train/grad_norm": grad_norm,
        "train/tokens": float(prepared.tokens),
        "train/overlong_penalty": prepared.overlong_penalty,
        "train/advantage_abs_mean": prepared.advantage_abs_mean,
        "perf/update_s": update_s,
        "perf/fwd_bwd_share": fwd_bwd_s / max(update_s, 1e-9),
        "perf/forward_only_share": forward_only_tokens / max(sequence_tokens, 1),
        "perf/train_tokens_per_s": prepared.tokens * epochs / max(update_s, 1e-9),
    }


def objective_of(config: Config) -> Objective:
    """The config's loss and regularizers; `algorithm.kl_coef` > 0 is the `kl`
    regularizer with that coefficient, first."""
    algo = config.algorithm
    regularizers = [(name, algo.regularizer_kwargs.get(name, {})) for name in algo.regularizers]
    if algo.kl_coef > 0:
        regularizers.insert(0, ("kl", {"coef": algo.kl_coef}))
    return Objective.build(
        algo.loss,
        algo.loss_kwargs,
        agg=algo.loss_agg,
        clip_eps_low=algo.clip_eps_low,
        clip_eps_high=algo.clip_eps_high,
        entropy_advantage=algo.entropy_advantage,
        regularizers=regularizers,
    )


def batch_settings(config: Config, step: int, sharded: bool = False) -> BatchSettings:
    """How step `step`'s episodes become training rows, from the config."""
    algo, max_length = config.algorithm, config.rollout.max_new_tokens
    return BatchSettings(
        advantage=algo.advantage,
        advantage_kwargs=algo.advantage_kwargs,
        attribution=algo.attribution,
        micro_batch_tokens=config.train.micro_batch_tokens,
        overlong_max_length=max_length,
        overlong_buffer=max(1, round(algo.overlong_buffer * max_length))
        if algo.overlong_buffer > 0
        else 0,
        overlong_penalty=algo.overlong_penalty,
        selection_seed=config.train.seed * 1_000_003 + step,
        sharded=sharded,
    )


def _accumulate(
    sums: dict[str, float], metrics: dict[str, Any], weight: float, epoch: int, epochs: int
) -> None:
    """Add a micro-batch's metrics, weighted by its tokens' share, averaged over epochs;
    the engine mismatch only from the first epoch (later it measures the update)."""
    for key, value in metrics.items():
        if key == "logprob_mismatch_kl" and epoch > 0:
            continue
        per_epoch = 1 if key == "logprob_mismatch_kl" else epochs
        sums[key] = sums.get(key, 0.0) + float(value) * weight / per_epoch


def _optimizer_step(model: Any, optimizer: torch.optim.Optimizer, max_norm: float) -> float:
    """Clip the gradient norm and step; returns the norm before clipping."""
    for parameter in model.parameters():  # no row trained: a step on zero gradients
        if parameter.requires_grad and parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    trainable = [p for p in model.parameters() if p.requires_grad]
    grad_norm = local_value(torch.nn.utils.clip_grad_norm_(trainable, max_norm))
    optimizer.step()
    return float(grad_norm)


def _evaluate_valid(
    config: Config, step: int, run_dir: Path, policy: Any, tokenizer: Any
) -> dict[str, float]:
    """One periodic evaluation on the valid split, as `eval/valid_*` metrics."""
    report = evaluate(
        config,
        "valid",
        config.train.valid_tasks,
        run_dir / "eval-valid" / f"step-{step:06d}",
        policy,
        tokenizer,
    )
    keys = ("success_rate", "mean_reward", "valid_action_rate", "turns", "tool_calls")
    return {f"eval/valid_{key}": float(report[key]) for key in keys}


def _check(config: Config) -> None:
    """Knobs this run cannot honour are errors, not silent no-ops: what the config alone
    shows (`config_problems`, as `load_config` checks it), then the launch."""
    problems = config_problems(config, "train")
    world = distributed.world_size()
    if world > 1 and config.rollout.tasks_per_step % world:
        problems.append(
            f"rollout.tasks_per_step: {config.rollout.tasks_per_step} tasks cannot be split "
            f"evenly over {world} processes; use a multiple of {world}"
        )
    if config.train.fsdp and world == 1:
        problems.append(
            "train.fsdp: sharding needs several processes; launch them with `torchrun "
            "--nproc_per_node N -m agentrl.cli train ...` (or `accelerate launch`), or set "
            "train.fsdp=false"
        )
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true") and not (
        config.train.fsdp
    ):
        problems.append(
            "train.fsdp: `accelerate launch` was asked for FSDP, but agentrl shards only "
            "when train.fsdp=true; add that override (the launcher's FSDP options are not read)"
        )
    if problems:
        raise ConfigError(problems)


def _check_resume(config: Config, run_dir: Path) -> None:
    """Resuming must not change the run: only train.steps may differ from the saved config."""
    saved = run_dir / "config.yaml"
    if latest_checkpoint(run_dir) is None or not saved.is_file():
        return
    from agentrl.config import load_config

    before = load_config(saved).model_dump(mode="json")
    now = config.model_dump(mode="json")
    before["train"]["steps"] = now["train"]["steps"]
    changed = [
        f"{section}.{key}: {before[section][key]!r} -> {now[section][key]!r}"
        for section in now
        for key in now[section]
        if before[section].get(key) != now[section][key]
    ]
    if changed:
        raise ConfigError(
            [
                f"{run_dir} holds a run with another config; resuming would mix two runs "
                f"({'; '.join(changed)}). Use a new run directory, or the same config "
                "(only train.steps may change)."
            ]
        )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _trainable(model: Any, config: Config) -> Any:
    """LoRA adapters (peft) or all parameters, as the config says."""
    if not config.model.lora:
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.model.lora_rank,
        lora_alpha=config.model.lora_alpha,
        lora_dropout=config.model.lora_dropout,
        target_modules=config.model.lora_targets,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft asks transformers a question that transformers 5 answers with a
        # deprecation warning; nothing for our users to act on.
        warnings.filterwarnings("ignore", PEFT_DEPRECATION, FutureWarning)
        return get_peft_model(model, lora).eval()
