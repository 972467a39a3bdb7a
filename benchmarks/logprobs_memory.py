"""Trainer memory: peak memory of chunked logprob/entropy vs the naive [B, T, V] path, on CPU.

    python benchmarks/logprobs_memory.py [--cases 4x512,8x512] [--vocab 49152] [--dim 576]
        [--chunk-tokens 1024] [--dtype float32] [--out FILE.json]

For each B x T case, one forward + backward of loss = Σ a·logprob + Σ b·entropy (random a,
b, so both outputs carry gradient to the hidden states [B, T, D] and the head [V, D]) is
run by (a) the naive path, `naive_logprobs_and_entropy(hidden @ W^T, ...)`, which builds
the [B, T, V] logits at once, and (b) `token_logprobs_and_entropy`, chunked.

Method: every measurement runs in a fresh Python process (this script re-invoked with
`--child`), so no allocator cache or earlier peak leaks between measurements. The child
builds its inputs, warms the kernels up on 16 positions, reads its current RSS from
/proc/self/statm, runs the step once, and reads the peak RSS (getrusage ru_maxrss). The
reported peak is the difference: the most memory the step added on top of its inputs,
gradients included (the same [B, T, D] and [V, D] gradients for both paths). The time is
that one step's wall time, so it is indicative only. The target (docs/BENCHMARKS.md) is a
chunked/naive ratio of at most 0.5. The default run takes about a minute on 2 cores and
needs about 7 GB free for the naive 8x512 case (`--cases 8x1024`: about 13 GB, 70 s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import write_results
from rich.console import Console
from rich.table import Table

MIB = 1024 * 1024


def current_rss() -> int:
    """Resident set size now, in bytes (Linux); the peak so far elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss()


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def child(spec: dict) -> dict:
    """One measurement, in this (fresh) process."""
    import torch

    from agentrl.algos.logprobs import naive_logprobs_and_entropy, token_logprobs_and_entropy

    torch.manual_seed(0)
    dtype = getattr(torch, spec["dtype"])
    batch, length, vocab, dim = spec["batch"], spec["length"], spec["vocab"], spec["dim"]
    hidden = (0.05 * torch.randn(batch, length, dim)).to(dtype).requires_grad_()  # [B, T, D]
    weight = (0.05 * torch.randn(vocab, dim)).to(dtype).requires_grad_()  # [V, D]
    targets = torch.randint(vocab, (batch, length))  # [B, T]
    loss_weights = torch.randn(2, batch, length)  # [2, B, T]

    def step(hidden: torch.Tensor, targets: torch.Tensor, loss_weights: torch.Tensor) -> None:
        if spec["method"] == "naive":
            logits = hidden @ weight.T  # [B, T, V]
            logprobs, entropy = naive_logprobs_and_entropy(logits, targets)
        else:
            logprobs, entropy = token_logprobs_and_entropy(
                hidden, weight, targets, chunk_tokens=spec["chunk_tokens"]
            )
        loss = (loss_weights[0] * logprobs).sum() + (loss_weights[1] * entropy).sum()
        loss.backward()

    # Warm-up on a few positions: loads kernels and thread pools outside the measurement.
    step(hidden[:1, :16], targets[:1, :16], loss_weights[:, :1, :16])
    hidden.grad = weight.grad = None
    baseline = current_rss()
    start = time.perf_counter()
    step(hidden, targets, loss_weights)
    seconds = time.perf_counter() - start
    return {"peak_bytes": peak_rss() - baseline, "seconds": seconds}


def measure(spec: dict) -> dict:
    """Run `child(spec)` in a fresh interpreter and return its result."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement {spec} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_case(text: str) -> tuple[int, int]:
    batch, length = text.lower().split("x")
    return int(batch), int(length)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="4x512,8x512", help="comma-separated BxT")
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--chunk-tokens", type=int, default=1024)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/logprobs_memory.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    rows = []
    for batch, length in map(parse_case, args.cases.split(",")):
        row = {"batch": batch, "length": length, "vocab": args.vocab, "dim": args.dim}
        row.update(dtype=args.dtype, chunk_tokens=args.chunk_tokens)
        for method in ("naive", "chunked"):
            result = measure({**row, "method": method})
            row[f"{method}_peak_bytes"] = result["peak_bytes"]
            row[f"{method}_seconds"] = result["seconds"]
        row["ratio"] = row["chunked_peak_bytes"] / row["naive_peak_bytes"]
        rows.append(row)

    table = Table(
        title=f"logprob+entropy fwd+bwd peak memory, V={args.vocab}, D={args.dim}, {args.dtype}, "
        f"chunk {args.chunk_tokens}"
    )
    columns = ("B x T", "logits MiB", "naive MiB", "chunked MiB", "ratio", "naive s")
    for column in (*columns, "chunked s", "<= 0.5"):
        table.add_column(column, justify="left" if column == "B x T" else "right")
    for row in rows:
        table.add_row(
            f"{row['batch']} x {row['length']}",
            f"{row['batch'] * row['length'] * row['vocab'] * 4 / MIB:,.0f}",  # [B, T, V] fp32
            f"{row['naive_peak_bytes'] / MIB:,.0f}",
            f"{row['chunked_peak_bytes'] / MIB:,.0f}",
            f"{row['ratio']:.3f}",
            f"{row['naive_seconds']:.2f}",
            f"{row['chunked_seconds']:.2f}",
            "yes" if row["ratio"] <= 0.5 else "NO",
        )
    Console().print(table)
    print("peak = RSS high-water mark minus RSS before the step, fresh process each")
    import torch

    write_results(
        args.out,
        {"results": rows},
        args,
        torch_threads=torch.get_num_threads(),
        method="peak RSS (ru_maxrss) minus RSS before the step, fresh process per measurement",
    )


if __name__ == "__main__":
    main()
