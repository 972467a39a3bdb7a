"""Two CPU processes (gloo) updating on halves of a batch end as one process on all of it,
with replicated parameters and with FSDP-sharded ones."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import agentrl
from agentrl.algos.logprobs import sequence_logprobs
from agentrl.distributed import full_state_dict, shard
from agentrl.models import load_tokenizer, tiny_model
from agentrl.rollout.trajectory import Episode
from agentrl.train import PRESETS, _trainable, update
from tests.helpers import SMALL_TRAIN


def episodes(vocab: int) -> list[Episode]:
    """Two task groups of four episodes with rewards that differ within each group."""
    generator = torch.Generator().manual_seed(0)
    result = []
    for i in range(8):
        episode = Episode(
            episode_id=f"e{i}",
            env_id="x",
            task_id=f"t{i // 4}",
            split="train",
            seed=0,
            task_index=i // 4,
            sample_index=i % 4,
            reward=float(i % 3),
            num_turns=1,
        )
        length = 20 + 3 * i  # ragged, so token normalisation matters
        ids = torch.randint(0, vocab, (length,), generator=generator).tolist()
        episode.append(ids[:12], 0, 0)
        sampled = length - 12
        logprobs = [-2.0 - 0.05 * ((7 * i + j) % 11) for j in range(sampled)]  # for cov
        episode.append(ids[12:], 1, 1, logprobs, [1.0] * sampled)
        result.append(episode)
    return result


def train_once(part: list[Episode], extra: list[str]) -> dict[str, torch.Tensor]:
    config = agentrl.load_config(
        None, ["model.lora=false", "optim.lr=1e-2", "train.micro_batch_tokens=64", *extra]
    )
    model = _trainable(tiny_model(load_tokenizer("tiny"), seed=0), config)
    if config.train.fsdp:
        model = shard(model, sequence_logprobs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr)
    update(config, model, optimizer, part, {"regularizers": {}}, 0)
    if config.train.fsdp:
        return full_state_dict(model, trainable_only=False)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def worker(rank: int, port: int, path: str, extra: list[str], split: int = 4) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        data = episodes(len(load_tokenizer("tiny")))
        part = data[:split] if rank == 0 else data[split:]
        torch.save(train_once(part, extra), f"{path}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # multiprocessing's fork notice
@pytest.mark.parametrize(
    ("extra", "split"),
    [
        ([], 4),
        (["algorithm.loss=kl_cov", "algorithm.loss_kwargs={kl_ratio: 0.2}"], 4),
        # sharded: rank 0 packs 2 micro-batches, rank 1 four, so rank 0 runs empty ones
        (["train.fsdp=true"], 4),
        # and here rank 0 has no episode at all, yet takes part in every pass
        (["train.fsdp=true", "algorithm.loss_agg=seq-mean-token-mean"], 0),
    ],
    ids=["ppo_clip", "kl_cov", "fsdp", "fsdp_idle_rank"],  # KL-Cov picks over both ranks
)
def test_two_ranks_match_one_process(tmp_path, tokenizer, extra, split):
    mp.start_processes(
        worker,
        args=(free_port(), str(tmp_path), extra, split),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    single = train_once(episodes(len(tokenizer)), [e for e in extra if "fsdp" not in e])
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for key, value in single.items():
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        # AdamW turns float-rounding noise on near-zero gradients into ~1e-5 moves
        assert torch.allclose(ranks[0][key], value, atol=1e-4), key


def train_worker(rank: int, port: int, path: str, extra: list[str] = ()) -> None:
    from agentrl.train import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    agentrl.register("test/TitleCase-v0", entry_point="tests.helpers:TitleCase")
    try:
        train(agentrl.load_config(None, [*TRAIN, *extra]), f"{path}/two")
    finally:
        dist.destroy_process_group()


TRAIN = [
    *SMALL_TRAIN,
    "env.name=titlecase",  # rewards differ within groups: every step moves the weights
    "optim.lr=1e-2",
    "train.steps=2",
]


# two-token replies: some groups tie and are replaced in a second round
DAPO = [
    *PRESETS["dapo"],
    "rollout.samples_per_task=2",
    "rollout.tasks_per_step=4",
    "rollout.max_new_tokens=2",
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "extra",
    [
        ["train.eval_every=1", "train.valid_tasks=2"],  # rank 1 waits while rank 0 evaluates
        DAPO,  # dynamic sampling: the ranks agree on how many groups they kept
    ],
    ids=["grpo", "dapo"],
)
def test_two_process_training_matches_one_process(tmp_path, title_env, extra):
    from safetensors.torch import load_file

    from agentrl.checkpoint import latest_checkpoint
    from agentrl.monitor import read_metrics
    from agentrl.train import train

    mp.start_processes(
        train_worker,
        args=(free_port(), str(tmp_path), extra),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    train(agentrl.load_config(None, [*TRAIN, *extra]), tmp_path / "one")
    metrics = [read_metrics(tmp_path / d) for d in ("two", "one")]
    for logged in zip(*metrics, strict=True):
        for key in ("rollout/episodes", "rollout/reward", "rollout/groups_kept"):
            assert logged[0][key] == pytest.approx(logged[1][key]), key  # both ranks' episodes
        if extra is DAPO:
            assert logged[0]["rollout/groups_kept"] == 4
        else:
            assert 0 <= logged[0]["eval/valid_mean_reward"] <= 1
    if extra is DAPO:  # a second round ran (more than 4 tasks x 2 samples)
        assert max(logged["rollout/episodes"] for logged in metrics[0]) > 8
    two, one = (
        load_file(latest_checkpoint(tmp_path / d) / "model" / "model.safetensors")
        for d in ("two", "one")
    )
    initial = tiny_model(load_tokenizer("tiny"), seed=0).state_dict()
    # AdamW turns the rounding noise of near-zero gradients (summed in another order)
    # into moves of up to ~2e-4, against ~2e-2 for the update itself
    for key in one:
        assert torch.allclose(two[key], one[key], atol=5e-4), key
    assert max(float((one[k] - initial[k]).abs().max()) for k in one) > 1e-2  # they moved
    assert (tmp_path / "two" / "trajectories.rank1.jsonl").is_file()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fsdp_training_resumes_and_matches_one_process(tmp_path, title_env):
    """Two sharded ranks (LoRA, KL to the adapter-free base) train a step, save, resume
    for a second step, and end with the adapter one process gets in two straight steps."""
    from peft import PeftModel

    from agentrl.checkpoint import latest_checkpoint
    from agentrl.models import load_model
    from agentrl.train import train

    lora = ["model.lora=true", "model.lora_rank=4", "algorithm.kl_coef=0.1"]  # base = reference
    sharded = [*lora, "train.fsdp=true"]
    for steps in (1, 2):  # the second launch resumes from the first one's checkpoint
        mp.start_processes(
            train_worker,
            args=(free_port(), str(tmp_path), [*sharded, f"train.steps={steps}"]),
            nprocs=2,
            join=True,
            start_method="spawn",
        )
    train(agentrl.load_config(None, [*TRAIN, *lora]), tmp_path / "one")
    checkpoints = [latest_checkpoint(tmp_path / d) / "model" for d in ("two", "one")]
    assert checkpoints[0].name == "model" and checkpoints[0].parent.name == "step-000002"
    two, one = (PeftModel.from_pretrained(load_model("tiny")[0], str(path)) for path in checkpoints)
    one_weights = dict(one.named_parameters())
    moved = 0.0
    for name, value in two.named_parameters():
        assert torch.allclose(value, one_weights[name], atol=5e-4), name
        if "lora_B" in name:  # zero at initialisation
            moved = max(moved, float(value.abs().max()))
    assert moved > 1e-2  # the adapters did train
