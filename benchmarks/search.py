"""Search benchmark: BM25 latency and throughput, the HTTP retriever, env steps/s, baselines.

    python benchmarks/search.py [--sizes 10000 100000] [--queries N] [--clients 32]

BM25: corpora of the generated world's pages (people, books, cities, countries) grown to
about each `--sizes` passages; `--queries` of the world's own questions, one query per
call as the search tool sends them, top-5; the table gives index build seconds, queries
per second (1 / mean latency), p50 and p99 latency, and the throughput of one batched
call. HTTP: `agentrl serve-retriever` over the smallest corpus in its own process; the
round trip of one client (p50, p99) and the throughput of `--clients` concurrent
clients (threads, one connection each), each client sending one query per request, and
of the same clients through one `BatchedSearch` (queries asked within 2 ms share a
request).
Env: steps/s of the oracle policy on the test split (every step a search or the
answer), the index already built. Baselines: every test question played by each scripted policy of
`agentrl.envs.search.baselines`. Writes benchmarks/results/search.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from agentrl.envs.search.baselines import (
    closed_book_policy,
    oracle_policy,
    play,
    top_passage_policy,
)
from agentrl.envs.search.world import generated_world
from agentrl.tools.retriever import HTTPSearch
from agentrl.tools.search import BatchedSearch, BM25Search
from rich.console import Console
from rich.table import Table

import agentrl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results

PASSAGES_PER_PERSON = 2.68  # a person's page, 1.5 books on average, and shared places


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def world_of(size: int):
    return generated_world(num_people=max(60, round(size / PASSAGES_PER_PERSON)), seed=0)


def bm25_row(size: int, queries: int, k: int, cache: Path) -> dict[str, float]:
    world = world_of(size)
    asked = [q.question for q in world.questions["train"][:queries]]
    start = time.perf_counter()
    backend = BM25Search(world.corpus, cache_dir=cache)
    build_s = time.perf_counter() - start
    latencies = []
    for query in asked:
        started = time.perf_counter()
        backend.search([query], k)
        latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    backend.search(asked, k)
    batched = len(asked) / (time.perf_counter() - started)
    return {
        "passages": len(world.corpus),
        "build_s": build_s,
        "queries": len(asked),
        "queries_per_s": 1 / statistics.fmean(latencies),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "batched_queries_per_s": batched,
    }


def http_row(size: int, queries: int, clients: int, k: int) -> dict[str, float]:
    world = world_of(size)
    asked = [q.question for q in world.questions["train"][:queries]]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        corpus.write_text("".join(json.dumps(d) + "\n" for d in world.corpus))
        port = 8765
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentrl.cli",
                "serve-retriever",
                "--corpus",
                str(corpus),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(1200):
                try:
                    if httpx.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            with HTTPSearch(url) as client:
                for query in asked[:20]:  # warm up
                    client.search([query], k)
                latencies = []
                for query in asked:
                    started = time.perf_counter()
                    client.search([query], k)
                    latencies.append(time.perf_counter() - started)

            def one_client(part: list[str]) -> None:
                with HTTPSearch(url) as client:
                    for query in part:
                        client.search([query], k)

            parts = [asked[i::clients] for i in range(clients)]
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                list(pool.map(one_client, parts))
            concurrent_qps = len(asked) / (time.perf_counter() - started)

            with HTTPSearch(url) as client:  # the same clients, their queries batched
                shared = BatchedSearch(client, window_s=0.002)

                def batched_client(part: list[str]) -> None:
                    for query in part:
                        shared.search([query], k)

                started = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                    list(pool.map(batched_client, parts))
                batched_qps = len(asked) / (time.perf_counter() - started)
                requests = shared.calls
        finally:
            server.kill()
            server.wait()
    return {
        "passages": len(world.corpus),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "one_client_queries_per_s": 1 / statistics.fmean(latencies),
        "clients": clients,
        "concurrent_queries_per_s": concurrent_qps,
        "batched_concurrent_queries_per_s": batched_qps,
        "batched_requests": requests,
    }


def env_steps_per_s(env) -> float:
    steps, started = 0, time.perf_counter()
    for index in range(env.num_tasks("test")):
        env.reset(options={"task_index": index})
        while not env.done:
            env.step(oracle_policy(env))
            steps += 1
    return steps / (time.perf_counter() - started)


def scores(env) -> dict[str, dict[str, float]]:
    policies = {
        "closed book (answers at once)": closed_book_policy(0),
        "search the question, answer from the top passage": top_passage_policy,
        "oracle (follows the gold chain)": oracle_policy,
    }
    out = {}
    for name, policy in policies.items():
        results = [play(env, policy, i) for i in range(env.num_tasks("test"))]
        row = {"exact_match": statistics.fmean(r["em"] for r in results)}
        row["f1"] = statistics.fmean(r["f1"] for r in results)
        row["searches"] = statistics.fmean(r.get("tool_calls.search", 0) for r in results)
        for kind in ("lookup", "bridge", "comparison"):
            row[f"em_{kind}"] = statistics.fmean(r["em"] for r in results if r["kind"] == kind)
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        bm25 = {size: bm25_row(size, args.queries, args.k, Path(cache)) for size in args.sizes}
    http = http_row(min(args.sizes), args.queries, args.clients, args.k)
    env = agentrl.make("search", split="test")
    env.tools.call("search", "warm up")  # builds the index and the tool first
    env_speed = env_steps_per_s(env)
    baseline = scores(env)

    console = Console()
    table = Table(title=f"BM25 (bm25s), one query per call, top-{args.k}")
    for column in ("passages", "build s", "queries/s", "p50 ms", "p99 ms", "batched q/s"):
        table.add_column(column, justify="right")
    for row in bm25.values():
        table.add_row(
            f"{row['passages']:,}",
            f"{row['build_s']:.1f}",
            f"{row['queries_per_s']:,.0f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['batched_queries_per_s']:,.0f}",
        )
    console.print(table)
    table = Table(title="HTTP retriever (agentrl serve-retriever, BM25), one query per request")
    columns = ("passages", "p50 ms", "p99 ms", "1 client q/s", f"{args.clients} clients q/s")
    for column in (*columns, "batched q/s", "requests"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{http['passages']:,}",
        f"{http['p50_ms']:.2f}",
        f"{http['p99_ms']:.2f}",
        f"{http['one_client_queries_per_s']:,.0f}",
        f"{http['concurrent_queries_per_s']:,.0f}",
        f"{http['batched_concurrent_queries_per_s']:,.0f}",
        f"{http['batched_requests']:,}",
    )
    console.print(table)
    table = Table(title=f"Search env, test split ({env.num_tasks('test')} questions)")
    for column in ("policy", "EM", "F1", "searches", "EM lookup", "EM bridge", "EM comparison"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, row in baseline.items():
        table.add_row(
            name,
            *(f"{row[key]:.3f}" for key in ("exact_match", "f1")),
            f"{row['searches']:.2f}",
            *(f"{row['em_' + kind]:.3f}" for kind in ("lookup", "bridge", "comparison")),
        )
    console.print(table)
    console.print(f"env steps/s (oracle play, BM25 search each step): {env_speed:,.0f}")
    result = {
        "bm25": list(bm25.values()),
        "http": http,
        "env_steps_per_s": env_speed,
        "test_scores": baseline,
    }
    write_results(args.out, result, args)


if __name__ == "__main__":
    main()
