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
