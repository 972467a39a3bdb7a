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
import contextlib
import copy
import dataclasses
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
from agentrl.algos.advantages import arpo_attribution, overlong_penalty
from agentrl.algos.batch import (
    TokenBatch,
    advantage_input,
    collate,
    longest_turns,
    pack,
    token_advantages,
)
from agentrl.algos.logprobs import sequence_logprobs
from agentrl.algos.losses import (
    ADVANTAGE_WEIGHTED,
    WHOLE_BATCH_SELECTORS,
    entropy_aware_advantage,
)
from agentrl.algos.registry import (
    aggregate,
    get_advantage,
    get_loss,
    get_regularizer,
    hyperparameters,
)
from agentrl.checkpoint import latest_checkpoint, load_checkpoint, load_weights, save_checkpoint
from agentrl.config import Config, config_problems
from agentrl.distributed import (
    any_rank,
    full_optimizer_state,
    full_state_dict,
    is_sharded,
    load_full_optimizer_state,
    local_value,
    max_over_ranks,
    shard,
    sum_gradients,
    sum_over_ranks,
)
from agentrl.engines import create_engine
from agentrl.errors import ConfigError
from agentrl.evaluate import evaluate
from agentrl.models import load_model
from agentrl.monitor import MetricsLogger, truncate_metrics
from agentrl.rollout.branching import tree_metrics
from agentrl.rollout.manager import RolloutManager, summarize
from agentrl.rollout.run import make_manager
from agentrl.rollout.trajectory import Episode, EpisodeWriter

PEFT_DEPRECATION = "`is_gradient_checkpointing` is deprecated"

#: `agentrl train --algo NAME`: the config overrides each preset stands for. DAPO is
#: its clip range, token-mean loss, dynamic sampling and soft overlong punishment (on
#: each episode's longest turn, against rollout.max_new_tokens). ARPO is its branching
#: rollout with soft attribution; AEPO is its branching rollout (consecutive-branch
#: penalty), EBPO loss and entropy-aware advantage.
PRESETS: dict[str, list[str]] = {
    "grpo": ["algorithm.advantage=grpo", "algorithm.loss=ppo_clip"],
    "dapo": [
        "algorithm.advantage=grpo",
        "algorithm.loss=ppo_clip",
        "algorithm.clip_eps_high=0.28",
        "algorithm.dynamic_sampling=true",
        "algorithm.loss_agg=token-mean",
        "algorithm.overlong_buffer=0.2",
    ],
    "epo": ["algorithm.advantage=grpo", "algorithm.loss=ppo_clip", "algorithm.regularizers=[epo]"],
    "empg": ["algorithm.advantage=empg", "algorithm.loss=ppo_clip"],
    "gigpo": ["algorithm.advantage=gigpo", "algorithm.loss=ppo_clip"],
    "arpo": [
        "rollout.branching=arpo",
        "algorithm.advantage=grpo",
        "algorithm.loss=ppo_clip",
        "algorithm.attribution=soft",
    ],
    "aepo": [
        "rollout.branching=aepo",
        "algorithm.advantage=grpo",
        "algorithm.loss=aepo",
        "algorithm.clip_eps_high=0.28",
        "algorithm.entropy_advantage=0.2",
    ],
}


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
    rank, world = distributed.rank(), distributed.world_size()
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
        model = shard(model)
    # KL to the initial policy: with LoRA it is the model with its adapters switched
    # off (no second copy); with full fine-tuning, a frozen copy loaded from the source
    # (never from a resumed checkpoint). No reference exists when the coefficient is 0.
    reference = None
    if config.algorithm.kl_coef > 0 and not config.model.lora:
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
        if is_sharded(model):
            state = load_checkpoint(
                checkpoint,
                None,  # loaded above
                optimizer,
                scheduler,
                load_optimizer=lambda saved: load_full_optimizer_state(model, optimizer, saved),
            )
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
            # 1. collect: tasks_per_step tasks x samples_per_task episodes from the train split
            manager.seed = config.train.seed * 1_000_003 + step
            episodes, rollout_metrics = _collect(config, manager, state, writer, rank, world)
            # 2-4. advantages, loss, optimizer step (none when no group was informative)
            # (the model stays in eval mode: no dropout, so trainer and engine logprobs agree)
            update_metrics = {"train/skipped": 1.0, "train/lr": scheduler.get_last_lr()[0]}
            if any_rank(bool(episodes)):
                update_metrics = update(config, model, optimizer, episodes, state, step, reference)
                update_metrics.update(
                    {"train/skipped": 0.0, "train/lr": scheduler.get_last_lr()[0]}
                )
                if world > 1:  # one regularizer history for all ranks: rank 0's
                    shared = [state["regularizers"]]
                    torch.distributed.broadcast_object_list(shared, src=0)
                    state["regularizers"] = shared[0]
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
                if world > 1:
                    torch.distributed.barrier()
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
                if world > 1:
                    torch.distributed.barrier()
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


def _next_tasks(
    manager: RolloutManager, state: dict[str, Any], count: int, seed: int, taken: set[int]
) -> list[int]:
    """The next `count` train tasks of a seeded permutation, reshuffled at each epoch,
    never one already in `taken` (a task appears once per step, even across an epoch)."""
    count = min(count, manager.num_tasks - len(taken))
    tasks: list[int] = []
    while len(tasks) < count:
        order = np.random.default_rng([seed, state["epoch"]]).permutation(manager.num_tasks)
        task = int(order[state["cursor"]])
        state["cursor"] += 1
        if state["cursor"] >= manager.num_tasks:
            state["epoch"], state["cursor"] = state["epoch"] + 1, 0
        if task not in taken:
            taken.add(task)
            tasks.append(task)
    return tasks


def _collect(
    config: Config,
    manager: RolloutManager,
    state: dict[str, Any],
    writer: EpisodeWriter | None,
    rank: int = 0,
    world: int = 1,
) -> tuple[list[Episode], dict[str, float]]:
    """One step's episodes; with dynamic sampling, groups with equal rewards are replaced."""
    wanted = config.rollout.tasks_per_step
    taken: set[int] = set()
    kept: list[Episode] = []
    collected: list[Episode] = []
    started = time.perf_counter()
    rounds = 1 + (
        config.algorithm.dynamic_sampling_rounds if config.algorithm.dynamic_sampling else 0
    )
    for _ in range(rounds):
        # all ranks' kept groups: every rank then draws the same tasks for the next round
        groups_kept = sum_over_ranks(len({e.task_index for e in kept}))
        if groups_kept >= wanted:
            break
        tasks = _next_tasks(manager, state, wanted - groups_kept, config.train.seed, taken)
        if not tasks:
            break
        # Every rank draws the same tasks (same seed and cursor) and runs its share of
        # whole groups, so group advantages never need another rank's episodes.
        tasks = tasks[rank::world]
        episodes = asyncio.run(manager.run(tasks, on_episode=writer.write if writer else None))
        collected += episodes
        for task in tasks:
            group = [e for e in episodes if e.task_index == task and e.error is None]
            informative = len({e.reward for e in group}) > 1
            if group and (informative or not config.algorithm.dynamic_sampling):
                kept += group
    wall = time.perf_counter() - started
    groups_kept = sum_over_ranks(len({e.task_index for e in kept}))
    collected = _gather_to_rank0(collected)  # metrics describe every rank's episodes
    summary = summarize(collected, wall)
    metrics = {f"rollout/{k}": v for k, v in summary.items()}
    metrics["rollout/groups_kept"] = float(groups_kept)
    if config.rollout.branching != "none":  # branch rate, top-3 share, prefill per leaf...
        metrics.update({f"rollout/{k}": v for k, v in tree_metrics(collected).items()})
    lengths = [e.num_generated for e in collected]
    metrics["rollout/response_tokens"] = float(np.mean(lengths)) if lengths else 0.0
    return kept, metrics


def _gather_to_rank0(episodes: list[Episode]) -> list[Episode]:
    """Every rank's episodes on rank 0, without their token lists (enough for metrics);
    other ranks keep their own. One process: `episodes` unchanged."""
    world = distributed.world_size()
    if world == 1:
        return episodes
    light = [
        dataclasses.replace(e, token_ids=[], logprobs=[], entropies=[], turn_index=[])
        for e in episodes
    ]
    gathered: list[list[Episode]] | None = (
        [[] for _ in range(world)] if distributed.rank() == 0 else None
    )
    torch.distributed.gather_object(light, gathered, dst=0)
    return [e for part in gathered for e in part] if gathered is not None else episodes


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
    algo = config.algorithm
    turn_adv, token_adv = torch.zeros(0), []  # a rank may have no episodes this step
    shaping = 0.0
    if episodes:
        inputs = advantage_input(episodes)
        if algo.overlong_buffer > 0:  # DAPO: long turns cost reward (env rewards untouched)
            max_length = config.rollout.max_new_tokens
            penalty = overlong_penalty(
                longest_turns(episodes),
                max_length=max_length,
                buffer=max(1, round(algo.overlong_buffer * max_length)),
                penalty=algo.overlong_penalty,
            )  # [N]
            inputs.rewards = inputs.rewards + penalty
            shaping = float(penalty.mean())
        turn_adv = get_advantage(algo.advantage)(inputs, **algo.advantage_kwargs)  # [K]
        token_adv = token_advantages(episodes, inputs, turn_adv)
        if algo.attribution == "hard":  # a shared prefix is trained once, in its owner
            episodes, token_adv = _hard_attribution(episodes, inputs, turn_adv, token_adv)
    loss_fn = get_loss(algo.loss)
    loss_kwargs = {
        "clip_eps_low": algo.clip_eps_low,
        "clip_eps_high": algo.clip_eps_high,
        **algo.loss_kwargs,
    }
    loss_kwargs = {k: v for k, v in loss_kwargs.items() if k in _params(loss_fn)}
    device = next(model.parameters()).device
    # Rows with no advantage add nothing to an advantage-weighted loss's gradient: they
    # are packed apart and run forward only, for their metrics (none under FSDP, whose
    # backward is collective, nor with KL or regularizers, which train every row).
    forward_only = _forward_only_rows(config, model, token_adv)
    micro_batches = [
        mb
        for part in ([i for i in range(len(episodes)) if i not in forward_only], forward_only)
        for mb in _pack_rows(episodes, part, config.train.micro_batch_tokens)
    ]
    total_tokens = sum(sum(e.loss_mask) for e in episodes)
    total_rows = sum(1 for e in episodes if any(e.loss_mask))
    world = distributed.world_size()
    if world > 1:  # every rank normalises by the tokens (rows) of all ranks
        counts = torch.tensor([float(total_tokens), float(total_rows)])
        torch.distributed.all_reduce(counts)
        total_tokens, total_rows = int(counts[0].item()), int(counts[1].item())

    def share(mode: str, batch: TokenBatch) -> float:
        """This micro-batch's weight in the whole batch's mean under `mode`."""
        if mode == "token-mean":
            return batch.tokens / max(total_tokens, 1)
        return int((batch.loss_mask.sum(1) > 0).sum()) / max(total_rows, 1)

    # AEPO's z-score is over the whole batch: its mean and std come from the sampled
    # tokens' entropies (the current policy's, on-policy), not per micro-batch.
    sampled = torch.tensor(
        [h for e in episodes for h, m in zip(e.entropies, e.loss_mask, strict=True) if m],
        dtype=torch.float64,
    )
    moments = torch.stack(
        [
            torch.tensor(float(len(sampled)), dtype=torch.float64),
            sampled.sum(),
            sampled.square().sum(),
        ]
    )  # count, sum, sum of squares
    if world > 1:
        torch.distributed.all_reduce(moments)
    count = max(float(moments[0]), 1.0)
    mean = float(moments[1]) / count
    entropy_stats = (mean, max(float(moments[2]) / count - mean**2, 0.0) ** 0.5)
    selected = _whole_batch_selection(config, episodes, token_adv, step)
    if is_sharded(model):  # every forward is collective: run as many as the busiest rank
        padding = max_over_ranks(len(micro_batches)) - len(micro_batches)
        if padding:  # empty micro-batches: no loss, gradients of zero
            episodes, token_adv = [*episodes, _empty_episode()], [*token_adv, [0.0, 0.0]]
            selected = None if selected is None else [*selected, [False, False]]
            micro_batches += [[len(episodes) - 1]] * padding
    sums: dict[str, float] = {}
    started, fwd_bwd_s, forward_only_tokens = time.perf_counter(), 0.0, 0
    for epoch in range(config.train.ppo_epochs):
        optimizer.zero_grad(set_to_none=True)
        for rows in micro_batches:
            batch = collate(episodes, rows, token_adv).to(device)
            computing = time.perf_counter()
            trains = not set(rows) <= set(forward_only)
            with torch.set_grad_enabled(trains):
                logprobs, entropy = _policy_logprobs(
                    model, batch, config.rollout.temperature
                )  # [B, T], [B, T]
                advantages = batch.advantages  # [B, T]
                if algo.entropy_advantage > 0:
                    advantages = entropy_aware_advantage(
                        advantages,
                        entropy.detach(),
                        batch.loss_mask,
                        a=algo.entropy_advantage,
                        stats=entropy_stats,
                    )
                if selected is not None:
                    loss_kwargs["selected"] = _rows_tensor(selected, batch).to(device)
                loss, metrics = loss_fn(
                    logprobs,
                    batch.old_logprobs,
                    advantages,
                    batch.loss_mask,
                    agg=algo.loss_agg,
                    **loss_kwargs,
                )
                total = loss * share(algo.loss_agg, batch)
                terms = {  # what every regularizer sees
                    "logprobs": logprobs,
                    "entropy": entropy,
                    "mask": batch.loss_mask,
                    "turn_index": batch.turn_index,
                    "step": step,
                    "total_steps": config.train.steps,
                }
                if algo.kl_coef > 0:
                    kl, kl_metrics = get_regularizer("kl")(
                        **terms,
                        state={},
                        ref_logprobs=_reference_logprobs(model, reference, batch, config),
                        coef=algo.kl_coef,
                    )
                    total = total + kl * share("token-mean", batch)
                    metrics = {**metrics, **kl_metrics}
                for name in algo.regularizers:
                    regularizer = get_regularizer(name)
                    kwargs = algo.regularizer_kwargs.get(name, {})
                    extra, extra_metrics = regularizer(
                        **terms, state=state["regularizers"].setdefault(name, {}), **kwargs
                    )
                    # A regularizer with an `agg` mode is weighted by it; others (EPO's
                    # nested per-episode means) by their rows.
                    mode = kwargs.get("agg", hyperparameters(regularizer).get("agg", "seq-mean"))
                    total = total + extra * share(mode, batch)
                    metrics = {**metrics, **extra_metrics}
                if trains:
                    total.backward()
            fwd_bwd_s += time.perf_counter() - computing
            forward_only_tokens += 0 if trains or epoch else int(batch.attention_mask.sum())
            with torch.no_grad():
                mismatch = batch.old_logprobs - logprobs  # [B, T] engine vs trainer
                valid = entropy[batch.loss_mask > 0]  # [N]
                top = valid.topk(max(1, len(valid) // 5)).values.mean() if len(valid) else 0.0
                metrics = {
                    **metrics,
                    "loss": loss.detach(),
                    "entropy": aggregate(entropy.detach(), batch.loss_mask, "token-mean"),
                    "entropy_top20": top,
                    "logprob_mismatch_kl": aggregate(mismatch, batch.loss_mask, "token-mean"),
                }
            weight = share("token-mean", batch)
            for key, value in metrics.items():
                if key == "logprob_mismatch_kl" and epoch > 0:
                    continue  # after the first update it measures the update, not the engine
                sums[key] = sums.get(key, 0.0) + float(value) * weight / (
                    1 if key == "logprob_mismatch_kl" else config.train.ppo_epochs
                )
        if world > 1 and not is_sharded(model):  # FSDP has reduced them in backward
            sum_gradients(model)
        for parameter in model.parameters():  # no row trained: a step on zero gradients
            if parameter.requires_grad and parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        grad_norm = local_value(
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], config.optim.max_grad_norm
            )
        )
        optimizer.step()
    if world > 1:  # each rank holds its share of the whole-batch means: add them up
        shares: list[dict[str, float]] = [{} for _ in range(world)]
        torch.distributed.all_gather_object(shares, sums)
        sums = {k: sum(s.get(k, 0.0) for s in shares) for k in set().union(*shares)}
    out = {f"train/{k}": v for k, v in sums.items()}
    out["train/grad_norm"] = float(grad_norm)
    out["train/tokens"] = float(total_tokens)
    out["train/overlong_penalty"] = shaping
    out["train/advantage_abs_mean"] = float(turn_adv.abs().mean()) if len(turn_adv) else 0.0
    update_s = time.perf_counter() - started
    out["perf/update_s"] = update_s
    out["perf/fwd_bwd_share"] = fwd_bwd_s / max(update_s, 1e-9)
    sequence_tokens = sum(len(e.token_ids) for e in episodes)
    out["perf/forward_only_share"] = forward_only_tokens / max(sequence_tokens, 1)
    out["perf/train_tokens_per_s"] = total_tokens * config.train.ppo_epochs / max(update_s, 1e-9)
    return out


def _forward_only_rows(config: Config, model: Any, token_adv: list[list[float]]) -> list[int]:
    """Episodes whose tokens all have advantage 0, when the objective gives them no
    gradient (an advantage-weighted loss, no KL, no regularizer, no sharding)."""
    algo = config.algorithm
    if (
        algo.loss not in ADVANTAGE_WEIGHTED
        or algo.regularizers
        or algo.kl_coef > 0
        or is_sharded(model)
    ):
        return []
    return [i for i, values in enumerate(token_adv) if not any(values)]


def _pack_rows(episodes: list[Episode], rows: list[int], budget: int) -> list[list[int]]:
    """`pack` over the episodes `rows`, as indices into `episodes`."""
    return [[rows[k] for k in mb] for mb in pack([episodes[i] for i in rows], budget)]


def _hard_attribution(
    episodes: list[Episode],
    inputs: Any,
    turn_adv: torch.Tensor,
    token_adv: list[list[float]],
) -> tuple[list[Episode], list[list[float]]]:
    """ARPO hard attribution per task tree: each leaf's advantage (the mean of its turns'
    advantages, A_i for episode-level estimators) is averaged over the leaves sharing a
    prefix; the copies of a shared token in other leaves get loss mask 0."""
    leaf_adv = torch.zeros(len(episodes)).index_add_(0, inputs.turn_episode, turn_adv.float())
    turns = torch.zeros(len(episodes)).index_add_(
        0, inputs.turn_episode, torch.ones(len(inputs.turn_episode))
    )
    leaf_adv = leaf_adv / turns.clamp_min(1)  # [N]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, episode in enumerate(episodes):
        groups.setdefault((episode.split, episode.task_id), []).append(i)
    episodes, token_adv = list(episodes), list(token_adv)
    for members in groups.values():
        if all(episodes[i].parent is None for i in members):
            continue  # no tree: hard and soft are the same
        members.sort(key=lambda i: episodes[i].sample_index)  # parents before branches
        position = {episodes[i].episode_id: k for k, i in enumerate(members)}
        leaves = [episodes[i] for i in members]
        values, weights = arpo_attribution(
            [len(e.token_ids) for e in leaves],
            [position.get(e.parent, -1) if e.parent else -1 for e in leaves],
            [e.branch_token_index or 0 if e.parent in position else 0 for e in leaves],
            leaf_adv[members],
            mode="hard",
        )
        for i, episode, value, weight in zip(members, leaves, values, weights, strict=True):
            owned = weight.tolist()  # 1 where this leaf trains the token, 0 on copies
            mask = [int(m and w > 0) for m, w in zip(episode.loss_mask, owned, strict=True)]
            token_adv[i] = [v if m else 0.0 for v, m in zip(value.tolist(), mask, strict=True)]
            episodes[i] = dataclasses.replace(episode, loss_mask=mask)
    return episodes, token_adv


def _whole_batch_selection(
    config: Config, episodes: list[Episode], token_adv: list[list[float]], step: int
) -> list[list[bool]] | None:
    """Clip-Cov / KL-Cov token picks made once over the whole batch (all micro-batches,
    all ranks), per episode and token; None for losses that need none.

    cov uses the rollout's logprobs: on the first, on-policy pass they are the current
    policy's. The draw is seeded by (train.seed, step), so every rank and a resumed run
    pick the same tokens.
    """
    selector = WHOLE_BATCH_SELECTORS.get(config.algorithm.loss)
    if selector is None:
        return None
    rows = [
        [(lp or 0.0, a) for lp, a, m in zip(e.logprobs, adv, e.loss_mask, strict=True) if m]
        for e, adv in zip(episodes, token_adv, strict=True)
    ]  # per episode: (old logprob, advantage) of each sampled token
    world, rank = distributed.world_size(), distributed.rank()
    gathered: list[list[list[tuple[float, float]]]] = [rows]
    if world > 1:
        gathered = [[] for _ in range(world)]
        torch.distributed.all_gather_object(gathered, rows)
    flat = [pair for rank_rows in gathered for row in rank_rows for pair in row]
    values = torch.tensor(flat, dtype=torch.float64).reshape(1, -1, 2)  # [1, N, 2]
    kwargs = {
        k: v for k, v in config.algorithm.loss_kwargs.items() if k in hyperparameters(selector)
    }
    if "generator" in _params(selector):
        kwargs["generator"] = torch.Generator().manual_seed(config.train.seed * 1_000_003 + step)
    pick = selector(values[..., 0], values[..., 1], torch.ones(values.shape[:2]), **kwargs)
    pick = pick.reshape(-1).tolist()  # [N]
    offset = sum(len(row) for rank_rows in gathered[:rank] for row in rank_rows)
    out = []
    for episode in episodes:
        flags = []
        for m in episode.loss_mask:
            flags.append(bool(m) and bool(pick[offset]))
            offset += 1 if m else 0
        out.append(flags)
    return out


def _rows_tensor(values: list[list[bool]], batch: TokenBatch) -> torch.Tensor:
    """Per-episode token values laid out like `batch` [B, T] (False on padding)."""
    out = torch.zeros(batch.loss_mask.shape, dtype=torch.bool)  # [B, T]
    for row, index in enumerate(batch.rows):
        out[row, : len(values[index])] = torch.tensor(values[index], dtype=torch.bool)
    return out


def _policy_logprobs(
    model: Any, batch: TokenBatch, temperature: float, compute_entropy: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logprobs [B, T] and entropies [B, T] of the batch's tokens under `model` (a
    policy, or its FSDP root unit, whose forward is this same computation)."""
    if is_sharded(model):
        return model(batch.input_ids, batch.attention_mask, temperature, compute_entropy)
    return sequence_logprobs(
        model,
        batch.input_ids,
        batch.attention_mask,
        temperature=temperature,
        compute_entropy=compute_entropy,
    )


def _reference_logprobs(
    model: Any, reference: Any, batch: TokenBatch, config: Config
) -> torch.Tensor:
    """The initial policy's logprobs of the batch's tokens [B, T] (no gradient)."""
    # LoRA: the base model, adapters switched off, is the initial policy.
    if reference is None:
        peft_model = model.policy if is_sharded(model) else model
        adapters_off = peft_model.disable_adapter()
    else:
        adapters_off = contextlib.nullcontext()
    with torch.no_grad(), adapters_off:
        return _policy_logprobs(
            model if reference is None else reference,
            batch,
            config.rollout.temperature,
            compute_entropy=False,
        )[0]


def _empty_episode() -> Episode:
    """Two padding tokens with no loss: a micro-batch that only takes part in collectives."""
    episode = Episode("padding", "", "", "", None, -1, 0)
    episode.append([0, 0], 0, 0)
    return episode


def _params(fn: Callable) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)
