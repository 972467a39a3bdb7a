"""The command line, run as a user would."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import agentrl
from agentrl.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"agentrl {agentrl.__version__}"


def test_envs_table_lists_ids_and_split_sizes():
    result = runner.invoke(app, ["envs"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert "agentrl/Guess-v0" in result.output and "agentrl/Calculator-v0" in result.output
    assert "2,000" in result.output  # calculator's train split


def test_envs_json_is_machine_readable():
    result = runner.invoke(app, ["envs", "--json"])
    assert result.exit_code == 0
    rows = {row["id"]: row for row in json.loads(result.output)}
    assert rows["agentrl/Guess-v0"]["split_sizes"] == {"train": 144, "valid": 18, "test": 18}
    assert rows["agentrl/Calculator-v0"]["entry_point"] == "agentrl.envs.calculator:CalculatorEnv"


def test_check_passes_registered_envs_and_rejects_typos():
    result = runner.invoke(app, ["check", "guess"])
    assert result.exit_code == 0 and "ok" in result.output
    result = runner.invoke(app, ["check", "gues"])
    assert result.exit_code == 2 and "Did you mean 'agentrl/Guess-v0'" in result.output


def test_validate_accepts_a_recipe_and_prints_it():
    result = runner.invoke(app, ["validate", "guess_grpo", "train.steps=3", "--print"])
    assert result.exit_code == 0, result.output
    assert "steps: 3" in result.output and "valid" in result.output


def test_validate_lists_every_problem_and_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("env:\n  name: webshoop\noptim:\n  lr: fast\n  momentum: 0.9\n")
    result = runner.invoke(app, ["validate", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    for fragment in (
        "3 problems",
        "No env named 'webshoop'",
        "optim.lr",
        "optim.momentum: unknown key",
    ):
        assert fragment in result.output


def test_messages_with_brackets_are_printed_verbatim():
    result = runner.invoke(app, ["validate", "guess_grpo", "env.name=guess[x]"])
    assert result.exit_code == 2 and "No env named 'guess[x]'" in result.output


def test_a_broken_env_is_reported_without_hiding_the_others(registry_sandbox):
    agentrl.register("broken/Env-v0", entry_point="no_such_module:Env")
    result = runner.invoke(app, ["envs", "--json"])
    assert result.exit_code == 0
    rows = {row["id"]: row for row in json.loads(result.output)}
    assert "no_such_module" in rows["broken/Env-v0"]["error"]
    assert rows["agentrl/Guess-v0"]["split_sizes"]["test"] == 18
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 1
    assert "FAIL  broken/Env-v0" in result.output and "ok    agentrl/Guess-v0" in result.output


def test_module_prefix_finds_a_module_in_the_current_directory(
    registry_sandbox, tmp_path, monkeypatch
):
    (tmp_path / "cwd_envs.py").write_text(
        "import agentrl\nagentrl.register('cwd/Count-v0', entry_point='tests.helpers:CountEnv')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        "sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))]
    )
    result = runner.invoke(app, ["check", "cwd_envs:count"])
    assert result.exit_code == 0, result.output
    assert "ok    cwd/Count-v0" in result.output
