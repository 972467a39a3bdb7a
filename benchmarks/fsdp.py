"""Replicated vs FSDP-sharded training state per process, and update time.

    python benchmarks/fsdp.py --model default --processes 2

Starts `--processes` CPU processes (gloo) twice: once replicated (every process holds
the whole model, its gradients and AdamW's two moments) and once with `train.fsdp`
(each holds its shard of them, plus the whole copy of the weights its engine samples
from). Each runs `agentrl.train.update` on its share of synthetic episodes (as in
benchmarks/trainer.py), full fine-tuning, and reports per process: bytes of
parameters, gradients and optimizer state it holds, the engine copy, and the median
update time. On CPUs the sharded update is slower (every forward gathers parameters
over gloo); the point here is the memory each process holds, the figure that decides
what fits on a GPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import socket
import statistics
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results


def local_bytes(tensors) -> int:
    """Bytes this process holds for `tensors` (a DTensor counts its local shard)."""
    from torch.distributed.tensor import DTensor

    total = 0
    for tensor in tensors:
        if tensor is None:
            continue
        local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
        total += local.numel() * local.element_size()
    return total


def worker(rank: int, world: int, port: int, args: argparse.Namespace, out: str) -> None:
    from trainer import synthetic_episodes

    import agentrl
    from agentrl.algos.logprobs import sequence_logprobs
    from agentrl.distributed import shard
    from agentrl.models import load_model
    from agentrl.train import _trainable, update

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
        config = agentrl.load_config(
            None,
            [
                f"model.name={args.model}",
                "model.lora=false",
                f"train.fsdp={str(args.fsdp).lower()}",
                "env.name=guess",
            ],
        )
        model, _ = load_model(args.model)
        vocab = model.config.vocab_size
        model = _trainable(model, config)
        engine_copy = 0
        if args.fsdp:
            engine_copy = local_bytes(copy.deepcopy(model).parameters())
            model = shard(model, sequence_logprobs)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        episodes = synthetic_episodes(args.episodes, args.length, args.generated, vocab)
        mine = episodes[rank::world]
        state: dict = {"regularizers": {}}
        times = []
        for step in range(args.repeats + 1):  # the first is a warm-up
            times.append(update(config, model, optimizer, mine, state, step)["perf/update_s"])
        moments = [t for s in optimizer.state.values() for t in s.values() if t.dim() > 0]
        result = {
            "parameters": local_bytes(model.parameters()),
            "gradients": local_bytes(p.grad for p in model.parameters()),
            "optimizer": local_bytes(moments),
            "engine_copy": engine_copy,
            "update_s": statistics.median(times[1:]),
        }
        Path(f"{out}.rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: argparse.Namespace, fsdp: bool, folder: Path) -> dict:
    args = argparse.Namespace(**{**vars(args), "fsdp": fsdp})
    out = str(folder / ("fsdp" if fsdp else "replicated"))
    mp.start_processes(
        worker,
        args=(args.processes, free_port(), args, out),
        nprocs=args.processes,
        join=True,
        start_method="spawn",
    )
    ranks = [json.loads(Path(f"{out}.rank{r}.json").read_text()) for r in range(args.processes)]
    return {key: max(rank[key] for rank in ranks) for key in ranks[0]}  # the fullest process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny', 'default' or a model directory")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--generated", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        results = {mode: run(args, mode == "fsdp", Path(folder)) for mode in ("replicated", "fsdp")}
    mib = 2**20
    table = Table(
        title=(
            f"per process, {args.processes} processes: model {args.model}, full fine-tuning, "
            f"{args.episodes} x {args.length} tokens"
        )
    )
    table.add_column("measure")
    for mode in results:
        table.add_column(mode, justify="right")
    table.add_column("fsdp / replicated", justify="right")
    for key in ("parameters", "gradients", "optimizer"):
        a, b = results["replicated"][key], results["fsdp"][key]
        table.add_row(f"{key} MiB", f"{a / mib:.0f}", f"{b / mib:.0f}", f"{b / max(a, 1):.2f}")
    trained = {
        m: sum(r[k] for k in ("parameters", "gradients", "optimizer")) for m, r in results.items()
    }
    table.add_row(
        "training state MiB",
        f"{trained['replicated'] / mib:.0f}",
        f"{trained['fsdp'] / mib:.0f}",
        f"{trained['fsdp'] / trained['replicated']:.2f}",
    )
    table.add_row(
        "engine's whole copy MiB", "shared", f"{results['fsdp']['engine_copy'] / mib:.0f}", ""
    )
    a, b = results["replicated"]["update_s"], results["fsdp"]["update_s"]
    table.add_row("update s (median)", f"{a:.2f}", f"{b:.2f}", f"{b / a:.2f}")
    Console().print(table)
    out = args.out or Path(f"benchmarks/results/fsdp-{Path(args.model).name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_results(out, {"results": results}, args)


if __name__ == "__main__":
    main()
