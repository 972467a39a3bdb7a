"""Trainer speed and memory: update throughput, forward/backward share, chunked logprob memory.

    python benchmarks/trainer.py --model tiny
    python benchmarks/trainer.py --model default --lora --episodes 8 --length 256

Runs `agentrl.train.update` (advantages, micro-batching, chunked logprobs and
entropies, loss, backward, optimizer step) on synthetic episodes: `--episodes` rows of
`--length` tokens whose last `--generated` tokens are "sampled" (loss mask 1), in
groups of 4 with random rewards. Reports, as medians over `--repeats` updates:
sequence tokens/s (all tokens through forward and backward), sampled tokens/s, and the
share of the update spent in forward + backward (target >= 80%; the rest is
collation, advantages, clipping and the optimizer). Then, unless `--no-memory`, the
peak memory of chunked vs naive [B, T, V] logprobs and entropies, measured as in
benchmarks/logprobs_memory.py (a fresh process per case; target <= 0.5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import agentrl
from agentrl.models import load_model
from agentrl.rollout.trajectory import Episode
from agentrl.train import _trainable, update

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results
from logprobs_memory import measure, parse_case


def synthetic_episodes(count: int, length: int, generated: int, vocab: int) -> list[Episode]:
    generator = torch.Generator().manual_seed(0)
    episodes = []
    for i in range(count):
        episode = Episode(
            episode_id=f"e{i}",
            env_id="bench",
            task_id=f"t{i // 4}",
            split="train",
            seed=0,
            task_index=i // 4,
            sample_index=i % 4,
            reward=float(torch.rand(1, generator=generator)),
            num_turns=1,
        )
        ids = torch.randint(0, vocab, (length,), generator=generator).tolist()
        episode.append(ids[: length - generated], 0, 0)
        episode.append(ids[length - generated :], 1, 1, [-1.0] * generated, [1.0] * generated)
        episodes.append(episode)
    return episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny', 'default' or a model directory")
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters, not all weights")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--generated", type=int, default=64)
    parser.add_argument("--micro-batch-tokens", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-cases", default="4x512", help="BxT cases for the memory test")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    config = agentrl.load_config(
        None,
        [
            f"model.name={args.model}",
            f"model.lora={str(args.lora).lower()}",
            f"train.micro_batch_tokens={args.micro_batch_tokens}",
            "env.name=guess",
        ],
    )
    model, _ = load_model(args.model)
    model = _trainable(model, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    episodes = synthetic_episodes(
        args.episodes, args.length, args.generated, model.config.vocab_size
    )
    state: dict = {"regularizers": {}}
    update(config, model, optimizer, episodes, state, 0)  # warm-up
    runs = [update(config, model, optimizer, episodes, state, i + 1) for i in range(args.repeats)]
    seconds = statistics.median(r["perf/update_s"] for r in runs)
    result = {
        "update_s": seconds,
        "sequence_tokens_per_s": args.episodes * args.length / seconds,
        "sampled_tokens_per_s": args.episodes * args.generated / seconds,
        "fwd_bwd_share": statistics.median(r["perf/fwd_bwd_share"] for r in runs),
    }
    table = Table(
        title=(
            f"trainer update: model {args.model}{' + LoRA' if args.lora else ''}, "
            f"{args.episodes} x {args.length} tokens ({args.generated} sampled)"
        )
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("update time (median s)", f"{seconds:.2f}")
    table.add_row("sequence tokens/s", f"{result['sequence_tokens_per_s']:.0f}")
    table.add_row("sampled tokens/s", f"{result['sampled_tokens_per_s']:.0f}")
    table.add_row("forward+backward share (target >= 0.8)", f"{result['fwd_bwd_share']:.2f}")
    memory = []
    if not args.no_memory:
        vocab, dim = model.config.vocab_size, model.config.hidden_size
        for case in args.memory_cases.split(","):
            batch, length = parse_case(case)
            spec = {
                "batch": batch,
                "length": length,
                "vocab": vocab,
                "dim": dim,
                "dtype": "float32",
                "chunk_tokens": 1024,
            }
            naive = measure({**spec, "method": "naive"})
            chunked = measure({**spec, "method": "chunked"})
            row = {
                "batch": batch,
                "length": length,
                "vocab": vocab,
                "dim": dim,
                "naive_peak_mib": naive["peak_bytes"] / 2**20,
                "chunked_peak_mib": chunked["peak_bytes"] / 2**20,
            }
            row["ratio"] = row["chunked_peak_mib"] / row["naive_peak_mib"]
            memory.append(row)
            table.add_row(
                f"peak memory {case}, V={vocab}: naive MiB", f"{row['naive_peak_mib']:.0f}"
            )
            table.add_row(f"peak memory {case}: chunked MiB", f"{row['chunked_peak_mib']:.0f}")
            table.add_row(
                f"peak memory {case}: chunked/naive (target <= 0.5)", f"{row['ratio']:.2f}"
            )
    Console().print(table)
    out = args.out or Path(f"benchmarks/results/trainer-{Path(args.model).name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_results(out, {"update": result, "runs": runs, "memory": memory}, args)


if __name__ == "__main__":
    main()
