"""The update's pure parts on hand-made data: batch preparation and the objective; and
components that state their traits once (a new loss, a regularizer needing a reference)."""

from __future__ import annotations

import math

import pytest
import torch

import agentrl
from agentrl.algos import registry
from agentrl.algos.batch import TokenBatch
from agentrl.algos.objective import Objective, compute, diagnostics
from agentrl.algos.prepare import BatchSettings, prepare
from agentrl.algos.registry import (
    LossTraits,
    hyperparameters,
    register_loss,
    register_regularizer,
    traits,
)
from agentrl.errors import RegistrationError
from agentrl.rollout.trajectory import Episode
from agentrl.train import train
from tests.helpers import SMALL_TRAIN


def hand_batch(advantages, mask, logprobs=(-1.0, -2.0, -0.5)):
    shape = (1, len(mask))
    return TokenBatch(
        input_ids=torch.zeros(shape, dtype=torch.long),
        attention_mask=torch.ones(shape, dtype=torch.long),
        loss_mask=torch.tensor([mask], dtype=torch.float32),
        old_logprobs=torch.tensor([logprobs]),
        advantages=torch.tensor([advantages]),
        turn_index=torch.ones(shape, dtype=torch.long),
        rows=[0],
    )


def test_the_objective_adds_kl_like_any_regularizer_weighted_by_its_share():
    batch = hand_batch([2.0, 1.0, 5.0], [1, 1, 0])
    logprobs = batch.old_logprobs.clone()  # ratio 1: the loss is -mean(A) = -1.5
    entropy = torch.tensor([[0.5, 1.5, 9.0]])
    reference = logprobs - 0.1  # d = ref - log pi = -0.1 on every token
    objective = Objective.build("ppo_clip", {}, regularizers=[("kl", {"coef": 0.1})])
    assert objective.needs_reference and not objective.zero_advantage_rows_are_inert
    total, metrics = compute(
        objective,
        batch,
        logprobs,
        entropy,
        share=lambda mode: 0.5,  # half of the whole batch's tokens
        step=0,
        total_steps=1,
        state={},
        ref_logprobs=reference,
    )
    k3 = math.exp(-0.1) + 0.1 - 1
    assert float(total) == pytest.approx(-1.5 * 0.5 + 0.1 * k3 * 0.5, abs=1e-6)
    assert float(metrics["loss"]) == pytest.approx(-1.5)
    assert float(metrics["kl"]) == pytest.approx(k3, abs=1e-6)
    assert list(metrics)[-2:] == ["kl", "loss"]  # the loss's, each regularizer's, then loss
    more = diagnostics(batch, logprobs - 0.2, entropy)
    assert float(more["entropy"]) == pytest.approx(1.0)  # over the two sampled tokens
    assert float(more["logprob_mismatch_kl"]) == pytest.approx(0.2)


def test_only_regularizers_that_write_history_get_state():
    batch = hand_batch([1.0, 1.0, 0.0], [1, 1, 0])
    state: dict = {}
    objective = Objective.build("ppo_clip", {}, regularizers=[("entropy", {}), ("epo", {})])
    compute(
        objective,
        batch,
        batch.old_logprobs,
        torch.tensor([[1.0, 3.0, 0.0]]),
        share=lambda mode: 1.0,
        step=4,
        total_steps=8,
        state=state,
    )
    assert list(state) == ["epo"] and state["epo"]["epo_step_entropy"] == pytest.approx(2.0)


def test_clip_ranges_reach_only_losses_registered_with_them():
    clipped = Objective.build("ppo_clip", {}, clip_eps_low=0.1, clip_eps_high=0.3)
    assert clipped.loss_kwargs == {"clip_eps_low": 0.1, "clip_eps_high": 0.3}
    assert Objective.build("kl_cov", {"kl_ratio": 0.5}, clip_eps_high=0.3).loss_kwargs == {
        "kl_ratio": 0.5
    }


def episode(name, task, reward, sampled=3, entropy=1.0):
    e = Episode(f"{task}/{name}", "x", task, "train", 0, 0, 0, reward, num_turns=1)
    e.append([1, 2], 0, 0)
    e.append(list(range(3, 3 + sampled)), 1, 1, [-1.0] * sampled, [entropy] * sampled)
    return e


def test_preparation_packs_rows_without_advantage_apart_and_counts_the_whole_batch():
    # t0's rewards tie (advantage 0 everywhere), t1's differ.
    episodes = [
        episode("a", "t0", 1.0),
        episode("b", "t0", 1.0),
        episode("c", "t1", 0.0, entropy=1.0),
        episode("d", "t1", 1.0, sampled=5, entropy=3.0),
    ]
    objective = Objective.build("ppo_clip", {})
    settings = BatchSettings("grpo", micro_batch_tokens=7)
    prepared = prepare(episodes, objective, settings)
    assert prepared.forward_only == {0, 1}
    assert prepared.micro_batches == [[3], [2], [0], [1]]  # trained ones first, longest first
    assert prepared.tokens == 14 and prepared.rows == 4
    mean = (1.0 * 9 + 3.0 * 5) / 14
    assert prepared.entropy_stats[0] == pytest.approx(mean)
    assert prepared.entropy_stats[1] == pytest.approx(math.sqrt((9 * 1.0 + 5 * 9.0) / 14 - mean**2))
    assert prepared.advantage_abs_mean == pytest.approx(0.5, abs=1e-5)  # |±1| on t1 only
    assert prepared.share("token-mean", prepared.collate([3])) == pytest.approx(5 / 14)
    assert prepared.share("seq-mean-token-mean", prepared.collate([0, 1])) == 0.5
    # A regularizer trains every row: nothing runs forward only.
    with_epo = Objective.build("ppo_clip", {}, regularizers=[("epo", {})])
    assert prepare(episodes, with_epo, settings).forward_only == frozenset()
    # DAPO's overlong shaping: the 5-token turn runs 2 tokens into a 3-token buffer of 6.
    shaped = prepare(
        episodes,
        objective,
        BatchSettings("grpo", overlong_max_length=6, overlong_buffer=3, overlong_penalty=1.0),
    )
    assert shaped.overlong_penalty == pytest.approx(-(2 / 3) / 4)


def test_a_whole_batch_pick_is_made_once_and_laid_out_per_micro_batch():
    episodes = [episode("a", "t0", 0.0), episode("b", "t0", 1.0, sampled=5)]
    objective = Objective.build("kl_cov", {"kl_ratio": 0.3})
    prepared = prepare(episodes, objective, BatchSettings("grpo", micro_batch_tokens=7))
    picked = [sum(row) for row in prepared.selected]
    assert sum(picked) == 2  # max(1, floor(0.3 * 8)) over the whole batch
    for rows in prepared.micro_batches:
        batch = prepared.collate(rows)
        assert batch.selected.sum() == sum(picked[i] for i in rows)


def test_a_new_loss_states_its_traits_once_and_trains(algo_sandbox, tmp_path):
    seen = []

    def every_nth(logprobs, advantages, mask, *, every: int = 2):
        """Every `every`-th sampled token of the whole batch."""
        position = torch.cumsum(mask.reshape(-1), 0).reshape(mask.shape)  # [1, N]
        return (mask > 0) & (position % every == 0)

    @register_loss("sparse_clip", advantage_weighted=True, clip_range=True, selector=every_nth)
    def sparse_clip(
        logprobs,
        old_logprobs,
        advantages,
        mask,
        *,
        agg="token-mean",
        clip_eps_low=0.2,
        clip_eps_high=0.2,
        every: int = 2,
        selected=None,
    ):
        """PPO-clip on the picked tokens only."""
        seen.append((clip_eps_high, int(selected.sum())))
        ppo_clip = registry.get_loss("ppo_clip")
        picked = mask * selected
        loss, metrics = ppo_clip(
            logprobs,
            old_logprobs,
            advantages,
            picked,
            agg=agg,
            clip_eps_low=clip_eps_low,
            clip_eps_high=clip_eps_high,
        )
        return loss, {**metrics, "picked": picked.sum() / mask.sum().clamp_min(1)}

    assert traits(sparse_clip) == LossTraits(True, True, every_nth)
    assert hyperparameters(sparse_clip) == {
        "agg": "token-mean",
        "clip_eps_low": 0.2,
        "clip_eps_high": 0.2,
        "every": 2,
    }
    config = agentrl.load_config(
        None,
        [
            *SMALL_TRAIN,
            "env.name=guess",
            "algorithm.loss=sparse_clip",
            "algorithm.loss_kwargs={every: 3}",
            "algorithm.clip_eps_high=0.3",
            "train.steps=2",
        ],
    )
    metrics = train(config, tmp_path).metrics
    assert seen and {eps for eps, _ in seen} == {0.3}
    assert sum(n for _, n in seen) > 0
    assert all(0 < m["train/picked"] < 0.5 for m in metrics if m["train/skipped"] == 0)


def test_traits_are_checked_against_the_signature(algo_sandbox):
    with pytest.raises(RegistrationError, match="clip_eps_low, clip_eps_high"):

        @register_loss("no_clip_params", clip_range=True)
        def no_clip_params(logprobs, old_logprobs, advantages, mask, *, agg="token-mean"):
            raise AssertionError

    with pytest.raises(RegistrationError, match="register it with clip_range=True"):

        @register_loss("undeclared_clip")
        def undeclared_clip(logprobs, old_logprobs, advantages, mask, *, clip_eps_high=0.2):
            raise AssertionError

    with pytest.raises(RegistrationError, match="ref_logprobs"):

        @register_regularizer("needs_ref", needs_reference=True)
        def needs_ref(*, logprobs, entropy, mask, turn_index, step, total_steps, state):
            raise AssertionError


def test_kl_can_be_named_as_a_regularizer(tmp_path):
    config = agentrl.load_config(
        None,
        [
            *SMALL_TRAIN,
            "env.name=guess",
            "algorithm.regularizers=[kl]",
            "algorithm.regularizer_kwargs={kl: {coef: 0.1}}",
            "train.steps=1",
        ],
    )
    assert "train/kl" in train(config, tmp_path).metrics[0]
    with pytest.raises(agentrl.errors.ConfigError, match="algorithm.kl_coef: it is the coef"):
        agentrl.load_config(None, ["algorithm.regularizers=[kl]", "algorithm.kl_coef=0.1"])
