"""The `agentrl` command line.

agentrl envs [--json]                 registered envs with their split sizes
agentrl check [NAME ...]              run the env checker on some or all envs
agentrl validate CONFIG [key=value]   check a config without loading a model
agentrl --version
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

import agentrl
from agentrl.errors import AgentRLError

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


def _fail(exc: Exception) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=2)


@app.command()
def envs(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List registered environments with their task split sizes."""
    try:
        infos = agentrl.list_envs()
    except AgentRLError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([asdict(info) for info in infos], indent=2))
        return
    table = Table(title="agentrl environments")
    table.add_column("id", no_wrap=True)
    for column in ("train", "valid", "test", "turns"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("fork", no_wrap=True)
    table.add_column("description", ratio=1)
    for info in infos:
        sizes = info.split_sizes
        table.add_row(
            info.id,
            f"{sizes['train']:,}",
            f"{sizes['valid']:,}",
            f"{sizes['test']:,}",
            str(info.max_turns),
            "yes" if info.supports_fork else "replay",
            info.description,
        )
    console.print(table)


@app.command()
def check(
    names: Annotated[
        list[str] | None, typer.Argument(help="Env names; all registered envs when omitted.")
    ] = None,
) -> None:
    """Run gymnasium's env checker and agentrl's contract checks on environments."""
    failed = 0
    try:
        env_ids = [agentrl.resolve(name) for name in names] if names else agentrl.registered_ids()
    except AgentRLError as exc:
        raise _fail(exc) from None
    for env_id in env_ids:
        env = agentrl.make(env_id)
        try:
            agentrl.check_env(env)
            console.print(f"[green]ok[/]    {env_id}")
        except AgentRLError as exc:
            failed += 1
            console.print(f"[red]FAIL[/]  {env_id}\n{exc}", highlight=False)
        finally:
            env.close()
    if failed:
        raise typer.Exit(code=1)


@app.command()
def validate(
    config: Annotated[str, typer.Argument(help="A YAML file, or the name of a bundled recipe.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="section.field=value overrides.")
    ] = None,
    show: Annotated[bool, typer.Option("--print", help="Print the resolved config.")] = False,
) -> None:
    """Check a config's fields, types and env name without loading a model."""
    try:
        resolved = agentrl.load_config(config, overrides or [])
    except AgentRLError as exc:
        raise _fail(exc) from None
    if show:
        console.print(Syntax(resolved.to_yaml(), "yaml"))
    console.print(
        f"[green]valid[/]: {config} (env {agentrl.resolve(resolved.env.name)})", highlight=False
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
