"""Two CPU processes (gloo) updating on halves of a batch end as one process on all of it."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import agentrl
from agentrl.models import load_tokenizer, tiny_model
from agentrl.rollout.trajectory import Episode
from agentrl.train import _trainable, update


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


def train_once(shard: list[Episode], extra: list[str]) -> dict[str, torch.Tensor]:
    config = agentrl.load_config(
        None, ["model.lora=false", "optim.lr=1e-2", "train.micro_batch_tokens=64", *extra]
    )
    model = _trainable(tiny_model(load_tokenizer("tiny"), seed=0), config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr)
    update(config, model, optimizer, shard, {"regularizers": {}}, 0)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def worker(rank: int, port: int, path: str, extra: list[str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        data = episodes(len(load_tokenizer("tiny")))
        torch.save(train_once(data[rank * 4 : rank * 4 + 4], extra), f"{path}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # multiprocessing's fork notice
@pytest.mark.parametrize(
    "extra",
    [[], ["algorithm.loss=kl_cov", "algorithm.loss_kwargs={kl_ratio: 0.2}"]],
    ids=["ppo_clip", "kl_cov"],  # KL-Cov picks its tokens over both ranks' batch
)
def test_two_ranks_match_one_process(tmp_path, tokenizer, extra):
    mp.start_processes(
        worker,
        args=(free_port(), str(tmp_path), extra),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    single = train_once(episodes(len(tokenizer)), extra)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for key, value in single.items():
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        # AdamW turns float-rounding noise on near-zero gradients into ~1e-5 moves
        assert torch.allclose(ranks[0][key], value, atol=1e-4), key


def train_worker(rank: int, port: int, path: str) -> None:
    from agentrl.train import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        train(agentrl.load_config(None, TRAIN), f"{path}/two")
    finally:
        dist.destroy_process_group()


TRAIN = [
    "env.name=guess",
    "model.name=tiny",
    "model.lora=false",
    "rollout.tasks_per_step=2",
    "rollout.samples_per_task=2",
    "rollout.max_new_tokens=6",
    "env.max_turns=2",
    "log.tensorboard=false",
    "optim.lr=1e-3",
    "train.steps=2",
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_two_process_training_matches_one_process(tmp_path):
    from safetensors.torch import load_file

    from agentrl.checkpoint import latest_checkpoint
    from agentrl.train import train

    mp.start_processes(
        train_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    train(agentrl.load_config(None, TRAIN), tmp_path / "one")
    two, one = (
        load_file(latest_checkpoint(tmp_path / d) / "model" / "model.safetensors")
        for d in ("two", "one")
    )
    for key in one:
        assert torch.allclose(two[key], one[key], atol=1e-5), key
    assert (tmp_path / "two" / "trajectories.rank1.jsonl").is_file()
