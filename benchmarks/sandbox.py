"""Sandbox benchmark: the round trip of a snippet, cold and warm, and under concurrency.

    python benchmarks/sandbox.py [--calls N] [--workers W]

Round trip of `print(1 + 1)` (p50 and p99 over `--calls` calls) for:
- a plain `python -c` subprocess, the reference (no isolation, no limits);
- a cold bubblewrap sandbox: a new sandbox and interpreter per call (a one-worker pool
  that does not preload numpy or sympy, started and closed around each call);
- the warm pool (`make_sandbox("bwrap")`, numpy and sympy preloaded): the target is
  p50 <= 15 ms and p99 <= 50 ms;
- the warm pool replaying a 3-cell session before the snippet (what a code-env turn
  pays late in an episode);
- the same fork server without isolation (`process`), so the isolation's own cost shows.
Throughput: 8 and 32 concurrent episodes (threads) sharing a pool of `--workers`.
Writes benchmarks/results/sandbox.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

from agentrl.tools.sandbox import Limits, make_sandbox
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results

SNIPPET = "print(1 + 1)"
SESSION = ["import math", "x = math.comb(40, 20)", "y = [i * i for i in range(1000)]"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(call, n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return {
        "p50_ms": percentile(times, 0.5) * 1000,
        "p99_ms": percentile(times, 0.99) * 1000,
        "mean_ms": statistics.fmean(times) * 1000,
    }


def cold_call() -> None:
    box = make_sandbox("bwrap", workers=1, preload=())
    try:
        assert box.run(SNIPPET).stdout == "2\n"
    finally:
        box.close()


def throughput(box, episodes: int, calls_each: int) -> float:
    def episode(_: int) -> None:
        for _ in range(calls_each):
            assert box.run(SNIPPET).ok

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(episodes) as pool:
        list(pool.map(episode, range(episodes)))
    return episodes * calls_each / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sandbox.json"))
    args = parser.parse_args()

    rows: dict[str, dict[str, float]] = {}
    plain = [sys.executable, "-c", SNIPPET]
    rows["plain subprocess (python -c)"] = timed(
        lambda: subprocess.run(plain, check=True, capture_output=True), args.calls // 3
    )
    rows["cold bubblewrap sandbox"] = timed(cold_call, args.calls // 3)
    limits = Limits(timeout_s=10)
    warm = make_sandbox("bwrap", workers=args.workers, limits=limits)
    warm.warm()
    warm.run(SNIPPET)
    rows["warm pool (bwrap)"] = timed(lambda: warm.run(SNIPPET), args.calls)
    rows["warm pool (bwrap), 3-cell session"] = timed(
        lambda: warm.run(SNIPPET, cells=SESSION), args.calls
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bare = make_sandbox("process", workers=args.workers, limits=limits)
    bare.warm()
    rows["warm pool (process, no isolation)"] = timed(lambda: bare.run(SNIPPET), args.calls)
    concurrency = {n: throughput(warm, n, max(1, args.calls // n)) for n in (8, 32)}
    warm.close()
    bare.close()

    console = Console()
    table = Table(title=f"sandbox round trip of {SNIPPET!r}")
    for column in ("mode", "p50 ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for name, row in rows.items():
        table.add_row(name, f"{row['p50_ms']:.1f}", f"{row['p99_ms']:.1f}", f"{row['mean_ms']:.1f}")
    console.print(table)
    for n, rate in concurrency.items():
        console.print(f"{n} concurrent episodes on {args.workers} warm workers: {rate:,.0f} runs/s")
    write_results(args.out, {"round_trip": rows, "runs_per_s": concurrency}, args)


if __name__ == "__main__":
    main()
