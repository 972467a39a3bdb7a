"""The training loop: presets end to end, learning, exact resume, checkpoints, metrics."""

from __future__ import annotations

import json

import pytest
import torch

import agentrl
from agentrl.checkpoint import latest_checkpoint
from agentrl.monitor import read_metrics
from agentrl.rollout.trajectory import Episode
from agentrl.train import PRESETS, train
from tests.helpers import SMALL_TRAIN

SMALL = SMALL_TRAIN


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_trains_end_to_end(preset, tmp_path):
    branching = preset in ("arpo", "aepo")  # trees of 4 leaves, 2 roots; eval samples plainly
    extra = ["rollout.samples_per_task=4", "train.eval_tasks=1"] if branching else []
    config = agentrl.load_config(
        None, [*PRESETS[preset], *SMALL, "env.name=guess", "train.steps=2", *extra]
    )
    result = train(config, tmp_path)
    if branching:
        assert result.eval_after["episodes"] == 1
        assert {"rollout/branch_rate", "rollout/top3_branch_share"} <= set(result.metrics[0])
    assert result.steps == 2 and len(result.metrics) == 2
    for metrics in result.metrics:
        if preset == "dapo":  # the tiny model never wins at Guess: every group is dropped
            assert metrics["train/skipped"] == 1.0 and metrics["rollout/groups_kept"] == 0
            continue
        assert metrics["train/tokens"] > 0 and torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert (latest_checkpoint(tmp_path) / "model" / "config.json").is_file()
    logged = read_metrics(tmp_path)
    assert [line["step"] for line in logged] == [1, 2]
    assert {"rollout/reward", "rollout/success", "perf/step_s"} <= set(logged[0])


def test_dapo_keeps_only_informative_groups(tmp_path, title_env):
    config = agentrl.load_config(
        None,
        [
            *PRESETS["dapo"],
            *SMALL,
            "env.name=titlecase",
            "rollout.samples_per_task=4",
            "train.steps=1",
        ],
    )
    [metrics] = train(config, tmp_path).metrics
    assert metrics["rollout/groups_kept"] == 2 and metrics["train/tokens"] > 0


@pytest.mark.parametrize("preset", ["grpo", "aepo"])
def test_a_tiny_model_learns(preset, tmp_path, title_env):
    # A random-init model writes capitalised words about a fifth of the time; with fixed
    # seeds, GRPO and the entropy-aware AEPO preset reach nearly always within 15 steps.
    config = agentrl.load_config(
        None,
        [
            *PRESETS[preset],
            "env.name=titlecase",
            "model.name=tiny",
            "model.lora=false",
            "rollout.tasks_per_step=4",
            "rollout.samples_per_task=8",
            "rollout.max_new_tokens=4",
            "optim.lr=3e-2",
            "train.steps=15",
            "log.tensorboard=false",
            "log.trajectories=false",
        ],
    )
    rewards = [m["rollout/reward"] for m in train(config, tmp_path).metrics]
    before, after = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert before < 0.3 and after > 0.6, rewards


def test_resume_gives_the_same_next_step(tmp_path, title_env):
    # TitleCase rewards differ within a group, so every step moves the weights; one
    # sequence per decode batch, so float rounding cannot depend on which requests the
    # engine happened to batch together
    overrides = [
        *PRESETS["grpo"],
        *SMALL,
        "env.name=titlecase",
        "optim.lr=1e-2",
        "engine.max_batch_size=1",
    ]
    straight = train(agentrl.load_config(None, [*overrides, "train.steps=2"]), tmp_path / "a")
    train(agentrl.load_config(None, [*overrides, "train.steps=1"]), tmp_path / "b")
    resumed = train(agentrl.load_config(None, [*overrides, "train.steps=2"]), tmp_path / "b")
    assert resumed.steps == 2 and len(resumed.metrics) == 1  # only step 2 ran
    weights = [
        torch.load(latest_checkpoint(path) / "optimizer.pt", weights_only=False)
        for path in (tmp_path / "a", tmp_path / "b")
    ]
    from safetensors.torch import load_file

    a, b = (
        load_file(latest_checkpoint(p) / "model" / "model.safetensors")
        for p in (tmp_path / "a", tmp_path / "b")
    )
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    assert straight.metrics[1]["rollout/reward"] == resumed.metrics[0]["rollout/reward"]
    assert all(m["train/grad_norm"] > 0 for m in straight.metrics)  # real updates
    state_a = json.loads((latest_checkpoint(tmp_path / "a") / "state.json").read_text())
    state_b = json.loads((latest_checkpoint(tmp_path / "b") / "state.json").read_text())
    assert (
        state_a == state_b
        and weights[0]["optimizer"]["state"].keys() == weights[1]["optimizer"]["state"].keys()
    )


def test_lora_checkpoint_is_an_adapter_that_loads(tmp_path):
    from peft import PeftModel

    from agentrl.models import load_model

    config = agentrl.load_config(
        None,
        [
            *PRESETS["grpo"],
            *SMALL,
            "model.lora=true",
            "model.lora_rank=4",
            "env.name=guess",
            "train.steps=1",
        ],
    )
    result = train(config, tmp_path)
    adapter = result.checkpoint / "model"
    assert (adapter / "adapter_model.safetensors").is_file()
    base, _ = load_model("tiny")
    loaded = PeftModel.from_pretrained(base, str(adapter))
    assert any("lora" in name for name, _ in loaded.named_parameters())


def test_a_crash_mid_save_leaves_no_complete_checkpoint(tmp_path, monkeypatch):
    from agentrl import checkpoint

    config = agentrl.load_config(
        None, [*PRESETS["grpo"], *SMALL, "env.name=guess", "train.steps=1"]
    )
    train(config, tmp_path)
    first = latest_checkpoint(tmp_path)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        train(
            agentrl.load_config(
                None, [*PRESETS["grpo"], *SMALL, "env.name=guess", "train.steps=2"]
            ),
            tmp_path,
        )
    assert latest_checkpoint(tmp_path) == first


def test_unavailable_knobs_are_refused(tmp_path, monkeypatch):
    with pytest.raises(agentrl.errors.ConfigError, match="train.eval_every"):
        agentrl.load_config(None, [*SMALL, "env.name=guess", "train.valid_tasks=4"])
    with pytest.raises(agentrl.errors.ConfigError, match="algorithm.loss: unknown loss 'ppo'"):
        agentrl.load_config(None, [*SMALL, "env.name=guess", "algorithm.loss=ppo"])
    config = agentrl.load_config(None, [*SMALL, "env.name=guess"])
    config.algorithm.loss = "ppo"  # a config changed in code is checked by train too
    with pytest.raises(agentrl.errors.ConfigError, match="ppo"):
        train(config, tmp_path)
    config = agentrl.load_config(None, [*SMALL, "env.name=guess", "train.fsdp=true"])
    with pytest.raises(agentrl.errors.ConfigError, match="several processes"):
        train(config, tmp_path)  # one process: nothing to shard over
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    config = agentrl.load_config(None, [*SMALL, "env.name=guess"])
    with pytest.raises(agentrl.errors.ConfigError, match="train.fsdp=true"):
        train(config, tmp_path)  # the launcher's FSDP flag is not silently ignored


def test_unknown_hyperparameters_are_refused(tmp_path):
    # load_config refuses them (before any model loads); train refuses them in a config
    # changed in code.
    for override, message in [
        ("algorithm.advantage_kwargs={zeta: 0.2}", "grpo has no hyper-parameter 'zeta'"),
        ("algorithm.regularizer_kwargs={epo: {alpha: 0.05}}", "not in algorithm.regularizers"),
    ]:
        with pytest.raises(agentrl.errors.ConfigError, match=message):
            agentrl.load_config(None, [*SMALL, "env.name=guess", override])
    config = agentrl.load_config(None, [*SMALL, "env.name=guess"])
    config.algorithm.advantage_kwargs = {"zeta": 0.2}
    with pytest.raises(agentrl.errors.ConfigError, match="grpo has no hyper-parameter 'zeta'"):
        train(config, tmp_path)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_micro_batching_does_not_change_the_update(agg, tmp_path):
    from agentrl.models import load_tokenizer, tiny_model
    from agentrl.train import _trainable, update
    from tests.test_distributed import episodes

    def updated(micro_batch_tokens):
        config = agentrl.load_config(
            None,
            [
                "model.lora=false",
                "optim.lr=1e-2",
                f"algorithm.loss_agg={agg}",
                f"train.micro_batch_tokens={micro_batch_tokens}",
                "algorithm.entropy_advantage=0.2",
                "algorithm.regularizers=[epo]",
            ],
        )
        model = _trainable(tiny_model(load_tokenizer("tiny"), seed=0), config)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.optim.lr)
        state = {"regularizers": {}}
        update(config, model, optimizer, episodes(model.config.vocab_size), state, 1)
        update(config, model, optimizer, episodes(model.config.vocab_size), state, 2)
        return model.state_dict(), state

    (one, state_one), (many, state_many) = updated(10**6), updated(64)
    for key in one:
        assert torch.allclose(one[key], many[key], atol=1e-5), key
    assert state_one["regularizers"]["epo"] == pytest.approx(state_many["regularizers"]["epo"])


def test_a_task_is_drawn_once_per_step_across_an_epoch_boundary():
    from agentrl.rollout.groups import next_tasks as _next_tasks

    class Five:
        num_tasks = 5

    state = {"epoch": 0, "cursor": 0}
    for _ in range(10):
        tasks = _next_tasks(Five(), state, 4, seed=0, taken=set())
        assert len(tasks) == len(set(tasks)) == 4


def test_conflicting_loss_kwargs_and_changed_resume_configs_are_refused(tmp_path):
    with pytest.raises(agentrl.errors.ConfigError, match="set algorithm.loss_agg instead"):
        agentrl.load_config(  # refused on loading now, before any model
            None, [*SMALL, "env.name=guess", "algorithm.loss_kwargs={agg: seq-mean-token-sum}"]
        )
    train(
        agentrl.load_config(None, [*PRESETS["grpo"], *SMALL, "env.name=guess", "train.steps=1"]),
        tmp_path / "b",
    )
    changed = agentrl.load_config(
        None, [*PRESETS["grpo"], *SMALL, "env.name=guess", "train.steps=2", "optim.lr=5e-3"]
    )
    with pytest.raises(agentrl.errors.ConfigError, match=r"optim.lr: 0.001 -> 0.005"):
        train(changed, tmp_path / "b")


@pytest.mark.parametrize("lora", ["true", "false"])
def test_kl_to_the_initial_policy(lora, tmp_path, title_env):
    config = agentrl.load_config(
        None,
        [
            *PRESETS["grpo"],
            *SMALL,
            "env.name=titlecase",
            f"model.lora={lora}",
            "algorithm.kl_coef=0.1",
            "train.steps=2",
        ],
    )
    metrics = train(config, tmp_path).metrics
    assert all("train/kl" in m for m in metrics)
    assert metrics[0]["train/kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference
    assert metrics[1]["train/kl"] > 0, metrics  # one update later they differ


@pytest.mark.parametrize(
    "loss,kwargs",
    [
        ("kl_cov", "{kl_ratio: 0.2, coef: 1.0}"),
        ("clip_cov", "{clip_ratio: 0.2, cov_low: -1.0e9, cov_high: 1.0e9}"),
    ],
)
def test_covariance_losses_pick_tokens_over_the_whole_batch(loss, kwargs):
    # Clip-Cov / KL-Cov pick ⌊r·N⌋ tokens by their covariance over the whole batch:
    # split into micro-batches, the update must stay the one-batch update.
    from agentrl.models import load_tokenizer, tiny_model
    from agentrl.train import _trainable, update
    from tests.test_distributed import episodes

    def updated(micro_batch_tokens):
        config = agentrl.load_config(
            None,
            [
                "model.lora=false",
                "optim.lr=1e-2",
                f"algorithm.loss={loss}",
                f"algorithm.loss_kwargs={kwargs}",
                f"train.micro_batch_tokens={micro_batch_tokens}",
            ],
        )
        model = _trainable(tiny_model(load_tokenizer("tiny"), seed=0), config)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.optim.lr)
        batch = episodes(model.config.vocab_size)
        metrics = update(config, model, optimizer, batch, {"regularizers": {}}, 1)
        return model.state_dict(), metrics

    (one, metrics_one), (many, metrics_many) = updated(10**6), updated(64)
    frac = f"train/{loss}_frac"
    assert metrics_one[frac] > 0
    assert metrics_many[frac] == pytest.approx(metrics_one[frac])
    for key in one:
        assert torch.allclose(one[key], many[key], atol=1e-5), key


def test_overlong_punishment_separates_long_turns_from_short_ones():
    # Every episode earns 0, so GRPO alone has nothing to learn from; with DAPO's soft
    # overlong punishment (max 20 tokens, buffer 0.5 -> 10) the longer turns (8..29
    # generated tokens) lose reward and the group's advantages are no longer zero.
    from agentrl.models import load_tokenizer, tiny_model
    from agentrl.train import _trainable, update
    from tests.test_distributed import episodes

    def metrics(*extra):
        config = agentrl.load_config(
            None, ["model.lora=false", "rollout.max_new_tokens=20", *extra]
        )
        model = _trainable(tiny_model(load_tokenizer("tiny"), seed=0), config)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        batch = episodes(model.config.vocab_size)
        for episode in batch:
            episode.reward = 0.0
        return update(config, model, optimizer, batch, {"regularizers": {}}, 1)

    plain = metrics()
    shaped = metrics("algorithm.overlong_buffer=0.5")
    assert plain["train/advantage_abs_mean"] == 0.0
    assert plain["train/overlong_penalty"] == 0.0
    assert shaped["train/advantage_abs_mean"] > 0.3
    assert -1.0 < shaped["train/overlong_penalty"] < 0.0


def tree_episodes() -> list[Episode]:
    """A parent (reward 1) and its branch (reward 0) sharing prompt, turn 1 and the
    observation: 12 tokens, 4 of them sampled; each then samples its own turn 2."""

    def leaf(name, reward, turn2, parent=None):
        episode = Episode(
            episode_id=f"t/{name}",
            env_id="x",
            task_id="t",
            split="train",
            seed=0,
            task_index=0,
            sample_index=0 if parent is None else 1,
            reward=reward,
            num_turns=2,
        )
        episode.append([1, 2, 3, 4, 5], 0, 0)
        episode.append([6, 7, 8, 9], 1, 1, [-1.0] * 4, [1.0] * 4)
        episode.append([10, 11, 12], 0, 1)
        episode.append(turn2, 1, 2, [-1.0] * 4, [1.0] * 4)
        if parent is not None:
            episode.parent, episode.branch_turn, episode.branch_token_index = parent, 2, 12
        return episode

    return [leaf("s0", 1.0, [20, 21, 22, 23]), leaf("s0.t2c0", 0.0, [30, 31, 32, 33], "t/s0")]


def test_hard_attribution_trains_a_shared_prefix_once():
    from agentrl.algos.batch import advantage_input, token_advantages
    from agentrl.algos.prepare import hard_attribution as _hard_attribution

    episodes = tree_episodes()
    inputs = advantage_input(episodes)
    turn_adv = agentrl.algos.get_advantage("grpo")(inputs)  # leaves: +1 and -1
    soft = token_advantages(episodes, inputs, turn_adv)
    # soft: the copy trains with its own advantage
    assert soft[1][5:9] == pytest.approx([-1.0] * 4, abs=1e-5)
    hard_episodes, hard = _hard_attribution(episodes, inputs, turn_adv, soft)
    parent, branch = hard_episodes
    # the shared turn 1 is trained once, in the parent, with the mean advantage 0
    assert hard[0][5:9] == pytest.approx([0.0] * 4, abs=1e-5) and parent.loss_mask[5:9] == [1] * 4
    assert branch.loss_mask[5:9] == [0] * 4 and hard[1][5:9] == [0.0] * 4
    # each leaf's own turn 2 keeps its own advantage
    assert hard[0][12:] == pytest.approx([1.0] * 4, abs=1e-5)
    assert hard[1][12:] == pytest.approx([-1.0] * 4, abs=1e-5)
    assert episodes[1].loss_mask[5:9] == [1] * 4  # the inputs are not modified


def test_update_counts_a_shared_prefix_once_under_hard_attribution():
    from agentrl.models import load_tokenizer, tiny_model
    from agentrl.train import _trainable, update

    def tokens(attribution):
        config = agentrl.load_config(
            None, ["model.lora=false", f"algorithm.attribution={attribution}"]
        )
        model = _trainable(tiny_model(load_tokenizer("tiny"), seed=0), config)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        metrics = update(config, model, optimizer, tree_episodes(), {"regularizers": {}}, 1)
        return metrics["train/tokens"]

    assert tokens("soft") == 16 and tokens("hard") == 12


def test_periodic_evaluation_on_the_valid_split(tmp_path):
    config = agentrl.load_config(
        None,
        [
            *SMALL,
            "env.name=guess",
            "train.steps=3",
            "train.eval_every=2",
            "train.valid_tasks=2",
        ],
    )
    result = train(config, tmp_path)
    evaluated = [m for m in read_metrics(tmp_path) if "eval/valid_success_rate" in m]
    assert [m["step"] for m in evaluated] == [2]  # every 2 steps: step 2 only
    report = json.loads((tmp_path / "eval-valid" / "step-000002" / "eval.json").read_text())
    assert report["split"] == "valid" and report["episodes"] == 2
    assert evaluated[0]["eval/valid_mean_reward"] == report["mean_reward"]
    assert "eval/valid_turns" not in result.metrics[0]


def test_rows_without_advantage_run_forward_only_and_change_nothing(monkeypatch):
    # Group t1 ties (rewards all 1), so its rows have advantage 0: under ppo_clip they
    # run forward only. The update, its metrics, and a following step whose groups all
    # tie (zero gradients, AdamW's momentum still moves) equal the all-backward path.
    import dataclasses

    from agentrl.algos import registry
    from agentrl.models import load_tokenizer, tiny_model
    from agentrl.train import _trainable, update

    def batch(rewards):
        generator = torch.Generator().manual_seed(len(rewards))
        out = []
        for i, reward in enumerate(rewards):
            episode = Episode(f"e{i}", "x", f"t{i // 4}", "train", 0, i // 4, i % 4, reward)
            ids = torch.randint(0, 500, (20 + 3 * i,), generator=generator).tolist()
            episode.append(ids[:12], 0, 0)
            episode.append(ids[12:], 1, 1, [-2.0] * (len(ids) - 12), [1.0] * (len(ids) - 12))
            episode.num_turns = 1
            out.append(episode)
        return out

    config = agentrl.load_config(None, [*SMALL, "optim.lr=1e-2", "train.micro_batch_tokens=64"])
    results = []
    for skipping in (True, False):
        if not skipping:
            ppo_clip = registry.get_loss("ppo_clip")  # as if its zero rows could train
            plain = dataclasses.replace(registry.traits(ppo_clip), advantage_weighted=False)
            monkeypatch.setitem(registry._TRAITS, ppo_clip, plain)
        model = _trainable(tiny_model(load_tokenizer("tiny"), seed=0), config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr)
        state = {"regularizers": {}}
        first = update(config, model, optimizer, batch([0, 1, 2, 0, 1, 1, 1, 1]), state, 0)
        second = update(config, model, optimizer, batch([1.0] * 8), state, 1)
        results.append((first, second, {k: v.clone() for k, v in model.state_dict().items()}))
    (first, second, weights), (first_ref, second_ref, weights_ref) = results
    assert 0 < first["perf/forward_only_share"] < 1 and second["perf/forward_only_share"] == 1
    assert first_ref["perf/forward_only_share"] == 0
    for key in ("train/loss", "train/entropy", "train/logprob_mismatch_kl", "train/grad_norm"):
        assert first[key] == pytest.approx(first_ref[key], rel=1e-5, abs=1e-7), key
    assert second["train/grad_norm"] == 0 == second_ref["train/grad_norm"]
    assert second["train/entropy"] == pytest.approx(second_ref["train/entropy"], rel=1e-5)
    for key, value in weights_ref.items():
        assert torch.allclose(weights[key], value, atol=1e-6), key
    initial = tiny_model(load_tokenizer("tiny"), seed=0).state_dict()
    assert any(not torch.allclose(weights[k], initial[k]) for k in initial)
