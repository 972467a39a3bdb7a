"""The `agentrl` command line.

agentrl envs [--json]                 registered envs with their split sizes
agentrl check [NAME ...]              run the env checker on some or all envs
agentrl validate CONFIG [key=value]   check a config without loading a model
agentrl --version
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

import agentrl
from agentrl.config import PURPOSES, Config, Purpose, bundled_configs
from agentrl.engines import create_engine
from agentrl.errors import AgentRLError, InvalidArgument
from agentrl.registration import describe

app = typer.Typer(
    name="agentrl",
    help="Train LLM agents with reinforcement learning in multi-turn, tool-using environments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentrl {agentrl.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Train LLM agents with reinforcement learning in multi-turn, tool-using environments."""


def _progress() -> Progress:
    """The progress display of long commands: description, bar, count, elapsed time."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _resolve(
    config: str | None,
    flags: dict[str, object],
    overrides: list[str] | None,
    split: str | None = None,
    purpose: Purpose = "train",
) -> Config:
    """The config of a command: a file or recipe, then the flags given, then overrides,
    validated for that command."""
    if split is not None and split not in agentrl.SPLITS:
        raise InvalidArgument(f"--split must be one of {', '.join(agentrl.SPLITS)}; got {split!r}")
    extra = [f"{key}={value}" for key, value in flags.items() if value is not None]
    return agentrl.load_config(config, [*extra, *(overrides or [])], purpose=purpose)


def _fail(exc: Exception) -> typer.Exit:
    # Messages quote actions like search[query]: print them as plain text, not markup.
    errors.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
    return typer.Exit(code=2)


@app.command()
def envs(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List registered environments with their task split sizes."""
    rows: list[dict] = []
    for env_id in agentrl.registered_ids():
        try:
            rows.append(asdict(describe(env_id)))
        except Exception as exc:  # one broken env must not hide the others
            rows.append({"id": env_id, "error": f"{type(exc).__name__}: {exc}"})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="agentrl environments")
    table.add_column("id", no_wrap=True)
    for column in ("train", "valid", "test", "turns"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("fork", no_wrap=True)
    table.add_column("description", ratio=1)
    for row in rows:
        if "error" in row:
            table.add_row(row["id"], "", "", "", "", "", Text(row["error"], style="red"))
            continue
        sizes = row["split_sizes"]
        table.add_row(
            row["id"],
            f"{sizes['train']:,}",
            f"{sizes['valid']:,}",
            f"{sizes['test']:,}",
            str(row["max_turns"]),
            "yes" if row["supports_fork"] else "replay",
            Text(row["description"]),
        )
    console.print(table)


@app.command()
def check(
    names: Annotated[
        list[str] | None, typer.Argument(help="Env names; all registered envs when omitted.")
    ] = None,
) -> None:
    """Run gymnasium's env checker and agentrl's contract checks on environments."""
    try:
        env_ids = [agentrl.resolve(name) for name in names] if names else agentrl.registered_ids()
    except AgentRLError as exc:
        raise _fail(exc) from None
    failed = 0
    for env_id in env_ids:
        try:
            env = agentrl.make(env_id)
            try:
                agentrl.check_env(env)
            finally:
                env.close()
            console.print(Text("ok    ", style="green") + Text(env_id))
        except Exception as exc:  # report every env, then fail
            failed += 1
            console.print(Text("FAIL  ", style="red") + Text(f"{env_id}\n{exc}"))
    if failed:
        raise typer.Exit(code=1)


@app.command()
def validate(
    config: Annotated[str, typer.Argument(help="A YAML file, or the name of a bundled recipe.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="section.field=value overrides.")
    ] = None,
    show: Annotated[bool, typer.Option("--print", help="Print the resolved config.")] = False,
    purpose: Annotated[
        str, typer.Option("--for", help="The command that will run it: train, rollout or eval.")
    ] = "train",
) -> None:
    """Check a config without loading a model: fields, types, the env and its arguments,
    and every setting the command would refuse (all problems at once)."""
    try:
        if purpose not in PURPOSES:
            raise InvalidArgument(f"--for must be one of {', '.join(PURPOSES)}; got {purpose!r}")
        resolved = agentrl.load_config(config, overrides or [], purpose=purpose)
    except AgentRLError as exc:
        raise _fail(exc) from None
    if show:
        console.print(Syntax(resolved.to_yaml(), "yaml"))
    env_id = agentrl.resolve(resolved.env.name)
    console.print(Text("valid", style="green") + Text(f": {config} (env {env_id})"))


@app.command()
def rollout(
    env: Annotated[str | None, typer.Option(help="Env name (default: the config's).")] = None,
    split: Annotated[str, typer.Option(help="Task split: train, valid or test.")] = "valid",
    episodes: Annotated[int, typer.Option(help="Episodes in all (tasks x samples).")] = 8,
    samples_per_task: Annotated[
        int | None, typer.Option(help="Episodes per task, G (default: the config's).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="'default', 'tiny' or a model directory.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the episodes (JSONL).")] = Path(
        "trajectories.jsonl"
    ),
    config: Annotated[
        str | None, typer.Option(help="A YAML config or bundled recipe name.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: the config's).")] = None,
    branching: Annotated[
        str | None,
        typer.Option(
            help="none, arpo or aepo: grow each task's samples as an entropy-branching tree "
            "(default: the config's)."
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="section.field=value overrides.")
    ] = None,
) -> None:
    """Sample episodes with a model and write them, token-exact, to a JSONL file."""
    flags = {
        "env.name": env,
        "rollout.samples_per_task": samples_per_task,
        "model.name": model,
        "train.seed": seed,
        "rollout.branching": branching,
    }
    if samples_per_task is None and config is None:
        flags["rollout.samples_per_task"] = 4 if branching not in (None, "none") else 1
    try:
        resolved = _resolve(config, flags, overrides, split, purpose="rollout")
        group = resolved.rollout.samples_per_task
        if episodes < 1 or episodes % group:
            raise InvalidArgument(
                f"--episodes must be a positive multiple of --samples-per-task ({group}); "
                f"got {episodes}"
            )
    except AgentRLError as exc:
        raise _fail(exc) from None
    from agentrl.factory import make_manager
    from agentrl.models import load_model
    from agentrl.rollout.manager import summarize
    from agentrl.rollout.run import choose_tasks, collect

    console.print(
        Text(
            f"rollout: {resolved.env.name} ({split}), model {resolved.model.name}, "
            f"{episodes} episodes = {episodes // group} tasks x {group}"
        )
    )
    try:
        with console.status("loading the model"):
            policy, tokenizer = load_model(
                resolved.model.name, resolved.model.dtype, resolved.engine.device
            )
            engine = create_engine(resolved, policy, tokenizer)
            manager = make_manager(resolved, engine, tokenizer, split)
        tasks = choose_tasks(manager.num_tasks, episodes // group, resolved.train.seed)
    except AgentRLError as exc:
        raise _fail(exc) from None
    with _progress() as progress:
        bar = progress.add_task("episodes", total=episodes)
        try:
            collected, wall = collect(
                manager, tasks, out, on_episode=lambda _: progress.advance(bar)
            )
        finally:
            manager.close()
    summary = summarize(collected, wall)
    if resolved.rollout.branching != "none":
        from agentrl.rollout.branching import tree_metrics

        summary.update(
            {k: v for k, v in tree_metrics(collected).items() if not k.startswith("branch_rate/")}
        )
    table = Table(title=f"{len(collected)} episodes -> {out}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3f}")
    console.print(table)
    failed = [e for e in collected if e.error]
    for episode in failed[:5]:
        errors.print(Text(f"{episode.episode_id}: {episode.error}", style="red"))
    if failed and len(failed) == len(collected):
        errors.print(Text("every episode failed; see the errors above", style="bold red"))
        raise typer.Exit(code=1)


@app.command()
def train(
    env: Annotated[str | None, typer.Option(help="Env name (default: the config's).")] = None,
    algo: Annotated[
        str | None,
        typer.Option(
            help="Preset: grpo, dapo, arpo, aepo, epo, empg, gigpo (sets only the fields it "
            "names; arpo and aepo use branching rollout)."
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (resumes from its last checkpoint).")
    ] = None,
    config: Annotated[
        str | None, typer.Option(help="A YAML config or bundled recipe name.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="'default', 'tiny' or a model directory.")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="section.field=value overrides.")
    ] = None,
) -> None:
    """Train a policy with RL on an environment's train split."""
    from agentrl.config import PRESETS
    from agentrl.train import train as run_training

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState()  # join the process group that `accelerate launch` or torchrun set up

    try:
        if algo is not None and algo not in PRESETS:
            raise InvalidArgument(f"--algo must be one of {', '.join(PRESETS)}; got {algo!r}")
        if config is None and env is not None:  # `--env webshop` runs its bundled recipe
            recipe = f"{re.sub(r'[^a-z0-9]', '', env.lower())}_{algo or 'grpo'}"
            if recipe in bundled_configs():
                config = recipe
                console.print(Text(f"recipe: configs/{recipe}.yaml (bundled)"))
        flags = {"env.name": env, "train.steps": steps, "model.name": model}
        resolved = _resolve(config, flags, [*PRESETS.get(algo or "", []), *(overrides or [])])
    except AgentRLError as exc:
        raise _fail(exc) from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    env_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", resolved.env.name)
    label = algo or (Path(config).stem.split("_", 1)[-1] if config else "custom")
    run_dir = out or Path(resolved.train.out_dir) / f"{env_name}-{label}-{stamp}"
    console.print(Syntax(resolved.to_yaml(), "yaml"))
    console.print(Text(f"run directory: {run_dir}"))
    from agentrl.checkpoint import latest_checkpoint

    if (previous := latest_checkpoint(run_dir)) is not None:
        console.print(Text(f"resuming from {previous}", style="yellow"))
    with _progress() as progress:
        bar = progress.add_task("training", total=resolved.train.steps)

        def on_step(step: int, metrics: dict) -> None:
            reward = metrics.get("rollout/reward", 0.0)
            progress.update(bar, completed=step, description=f"training (reward {reward:.3f})")

        try:
            result = run_training(resolved, run_dir, on_step=on_step)
        except AgentRLError as exc:
            raise _fail(exc) from None
    table = Table(title=f"{result.steps} steps -> {run_dir}")
    table.add_column("step", justify="right")
    for key in ("rollout/reward", "rollout/success", "train/loss", "train/entropy"):
        table.add_column(key, justify="right")
    for index, metrics in enumerate(result.metrics, start=result.steps - len(result.metrics) + 1):
        table.add_row(
            str(index),
            *(
                f"{metrics.get(k, float('nan')):.3f}"
                for k in ("rollout/reward", "rollout/success", "train/loss", "train/entropy")
            ),
        )
    console.print(table)
    if result.checkpoint is not None:
        console.print(Text(f"checkpoint: {result.checkpoint}"))
    if result.eval_before is not None and result.eval_after is not None:
        table = Table(title=f"held-out test split, {resolved.train.eval_tasks} tasks")
        for column in ("", "before", "after"):
            table.add_column(column, justify="left" if not column else "right")
        for key in ("success_rate", "mean_reward", "valid_action_rate", "turns", "tool_calls"):
            table.add_row(key, f"{result.eval_before[key]:.3f}", f"{result.eval_after[key]:.3f}")
        console.print(table)


@app.command("eval")
def eval_command(
    env: Annotated[str | None, typer.Option(help="Env name (default: the config's).")] = None,
    split: Annotated[
        str, typer.Option(help="Task split: test (held out), valid or train.")
    ] = "test",
    model: Annotated[
        str | None,
        typer.Option(help="'default', 'tiny', a model dir, a checkpoint or a run directory."),
    ] = None,
    episodes: Annotated[int, typer.Option(help="Tasks to evaluate (one episode each).")] = 50,
    out: Annotated[Path | None, typer.Option(help="Folder for eval.json and trajectories.")] = None,
    config: Annotated[
        str | None, typer.Option(help="A YAML config or bundled recipe name.")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="section.field=value overrides.")
    ] = None,
) -> None:
    """Evaluate a model on an env's held-out tasks; writes eval.json and trajectories."""
    from agentrl.evaluate import evaluate

    flags = {"env.name": env, "model.name": model}
    try:
        resolved = _resolve(config, flags, overrides, split, purpose="eval")
    except AgentRLError as exc:
        raise _fail(exc) from None
    env_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", resolved.env.name)
    folder = (
        out
        or Path(resolved.train.out_dir)
        / f"eval-{env_name}-{split}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    with _progress() as progress:
        bar = progress.add_task("evaluating", total=episodes)
        try:
            report = evaluate(
                resolved, split, episodes, folder, on_episode=lambda _: progress.advance(bar)
            )
        except AgentRLError as exc:
            raise _fail(exc) from None
    table = Table(title=f"{report['env']} {split}: {report['model']} -> {folder / 'eval.json'}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "episodes",
        "success_rate",
        "mean_reward",
        "valid_action_rate",
        "turns",
        "tool_calls",
        "errors",
    ):
        value = report[key]
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)


@app.command()
def doctor() -> None:
    """Say which code-sandbox backends work on this machine, and why the others do not."""
    from agentrl.tools.sandbox import sandbox_status

    table = Table(title="code sandbox backends (env.sandbox)")
    table.add_column("backend", no_wrap=True)
    table.add_column("status")
    for backend, status in sandbox_status().items():
        style = "green" if status.startswith("ok") else "red"
        table.add_row(backend, Text(status, style=style))
    console.print(table)


@app.command("serve-retriever")
def serve_retriever(
    corpus: Annotated[
        Path | None,
        typer.Option(
            help="JSON lines with 'id' and 'contents' (Search-R1 / FlashRAG); without it, "
            "the search env's generated corpus."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (other machines: 0.0.0.0).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    topk: Annotated[int, typer.Option(help="Passages per query when a request names none.")] = 3,
    mmap: Annotated[bool, typer.Option(help="Map the BM25 index from disk.")] = False,
    num_people: Annotated[
        int, typer.Option(help="Without --corpus: the generated world's size (env.num_people).")
    ] = 600,
    seed: Annotated[
        int, typer.Option(help="Without --corpus: the generated world's seed (env.seed).")
    ] = 0,
) -> None:
    """Serve BM25 search over a corpus with Search-R1's retriever API (POST /retrieve)."""
    import uvicorn

    from agentrl.tools.retriever import create_app, load_corpus
    from agentrl.tools.search import BM25Search

    try:
        if corpus is None:
            from agentrl.envs.search.world import generated_world

            documents = generated_world(num_people, seed).corpus
        else:
            documents = load_corpus(corpus)
        backend = BM25Search(documents, mmap=mmap)
    except AgentRLError as exc:
        raise _fail(exc) from None
    state = "loaded from its cache" if backend.loaded_from_cache else "built"
    console.print(
        Text(
            f"{len(backend.documents)} passages, index {state} ({backend.index_dir}); "
            f"serving http://{host}:{port}/retrieve"
        )
    )
    uvicorn.run(create_app(backend, default_topk=topk), host=host, port=port, log_level="warning")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
