"""Advantage estimators and the registry, against numbers worked out by hand."""

from __future__ import annotations

import pytest
import torch

from agentrl.algos import (
    ADVANTAGES,
    AdvantageInput,
    arpo_attribution,
    empg,
    empg_modulation,
    get_advantage,
    gigpo,
    grpo,
    hyperparameters,
    register_advantage,
)
from agentrl.errors import ConfigError, InvalidArgument, RegistrationError


def make_input(rewards, groups, turn_episode, turn_index, entropy=None, reward=None, state=None):
    k = len(turn_episode)
    return AdvantageInput(
        rewards=torch.tensor(rewards, dtype=torch.float32),
        groups=torch.tensor(groups),
        turn_episode=torch.tensor(turn_episode),
        turn_index=torch.tensor(turn_index),
        turn_entropy=torch.tensor(entropy if entropy is not None else [0.0] * k),
        turn_reward=torch.tensor(reward if reward is not None else [0.0] * k),
        turn_state=torch.tensor(state if state is not None else list(range(k))),
    )


# Group 0: rewards [1, 0]; group 1: [3, 1, 2]; group 2: the singleton [7].
# Episode 0 has two turns, the others one each.
GROUPS = make_input(
    rewards=[1, 0, 3, 1, 2, 7],
    groups=[0, 0, 1, 1, 1, 2],
    turn_episode=[0, 0, 1, 2, 3, 4, 5],
    turn_index=[1, 2, 1, 1, 1, 1, 1],
)


def test_grpo_normalises_within_each_group():
    # group 0: mean 0.5, population std 0.5 -> ±0.5 / (0.5 + 1e-6) = ±0.999998
    # group 1: mean 2, std sqrt((1 + 1 + 0) / 3) = 0.816497 -> [1.224745, -1.224745, 0]
    # group 2: a singleton -> 0; episode 0's value repeats on both of its turns
    expected = [0.999998, 0.999998, -0.999998, 1.224743, -1.224743, 0.0, 0.0]
    assert torch.allclose(grpo(GROUPS), torch.tensor(expected), atol=1e-5)


def test_dr_grpo_only_centres():
    # group means 0.5 and 2, no std division
    expected = [0.5, 0.5, -0.5, 1.0, -1.0, 0.0, 0.0]
    assert torch.allclose(grpo(GROUPS, normalize_std=False), torch.tensor(expected))


# Two episodes of one task, rewards [1, 0] -> A_i = ±1 (to 1e-6).
# Episode 0 has turns with entropy 0 and 2, episode 1 a single turn with entropy 1.
EMPG_BATCH = make_input(
    rewards=[1, 0],
    groups=[0, 0],
    turn_episode=[0, 0, 1],
    turn_index=[1, 2, 1],
    entropy=[0.0, 2.0, 1.0],
)


def test_empg_confidence_scale_and_clarity_bonus():
    # H~ = [0, 1, 0.5]; exp(-H~) = [1, 0.367879, 0.606531], mean 0.658137
    # g = [1.519441, 0.558971, 0.921588]; the confident turn gets the largest scale
    g, f = empg_modulation(EMPG_BATCH)
    assert torch.allclose(g, torch.tensor([1.519441, 0.558971, 0.921588]), atol=1e-5)
    assert g.mean().item() == pytest.approx(1.0, abs=1e-6)
    # f: episode 0's first turn looks ahead to H~ = 1 -> e^-1; last turns get 0
    assert torch.allclose(f, torch.tensor([0.367879, 0.0, 0.0]), atol=1e-6)


def test_empg_advantage():
    # A_mod = [1.519441 + 0.1 * 0.367879, 0.558971, -0.921588] = [1.556229, 0.558971, -0.921588]
    # mean 0.397871 -> [1.158358, 0.161100, -1.319459]
    expected = torch.tensor([1.158358, 0.161100, -1.319459])
    assert torch.allclose(empg(EMPG_BATCH), expected, atol=1e-5)
    # confident turns of a successful episode are pushed up harder than uncertain ones
    assert empg(EMPG_BATCH, zeta=0.0)[0] > empg(EMPG_BATCH, zeta=0.0)[1]


def test_gigpo_step_groups():
    # group 0: episode 0 (R=1) visits states 10 -> 20; episode 1 (R=0) visits 10 -> 30 -> 20.
    # group 1: episode 2 (R=5) visits state 10 too, but another task: its own step group.
    # Turns are listed out of order on purpose.
    batch = make_input(
        rewards=[1, 0, 5],
        groups=[0, 0, 1],
        turn_episode=[1, 0, 2, 1, 0, 1],
        turn_index=[3, 2, 1, 1, 1, 2],
        reward=[0.0, 1.0, 5.0, 0.0, 0.0, 0.0],
        state=[20, 20, 10, 10, 10, 30],
    )
    # A_E: ±1 in group 0, 0 for the singleton group 1.
    # Returns (γ = 0.95): episode 0 [0.95, 1]; episode 1 [0, 0, 0]; episode 2 [5].
    # (g0, 10): 0.95 and 0 -> ±0.475; (g0, 20): 1 and 0 -> ±0.5; (g0, 30), (g1, 10): 0.
    # In input order: e1t3, e0t2, e2t1, e1t1, e0t1, e1t2
    expected = torch.tensor([-1.5, 1.5, 0.0, -1.475, 1.475, -1.0])
    assert torch.allclose(gigpo(batch), expected, atol=1e-5)


# Leaf 0 is the root (6 tokens); leaf 1 copies its first 3, leaf 2 copies leaf 1's first 2.
TREE = {"lengths": [6, 5, 4], "parents": [-1, 0, 1], "branch_points": [0, 3, 2]}
TREE_ADV = [0.9, -0.3, 0.6]


def test_arpo_soft_trains_every_leaf_with_its_own_advantage():
    values, weights = arpo_attribution(**TREE, advantages=TREE_ADV, mode="soft")
    for value, weight, adv, n in zip(values, weights, TREE_ADV, TREE["lengths"], strict=True):
        assert torch.allclose(value, torch.full((n,), adv))
        assert weight.tolist() == [1.0] * n


def test_arpo_hard_trains_shared_tokens_once_with_the_mean():
    values, weights = arpo_attribution(**TREE, advantages=TREE_ADV, mode="hard")
    # positions 0-1 are shared by {0, 1, 2}: (0.9 - 0.3 + 0.6) / 3 = 0.4
    # position 2 is shared by {0, 1}: (0.9 - 0.3) / 2 = 0.3; the rest is each leaf's own
    assert torch.allclose(values[0], torch.tensor([0.4, 0.4, 0.3, 0.9, 0.9, 0.9]))
    assert torch.allclose(values[1], torch.tensor([0.4, 0.4, 0.3, -0.3, -0.3]))
    assert torch.allclose(values[2], torch.tensor([0.4, 0.4, 0.6, 0.6]))
    # weight 1 only in the leaf that generated the token (the smallest index)
    assert weights[0].tolist() == [1, 1, 1, 1, 1, 1]
    assert weights[1].tolist() == [0, 0, 0, 1, 1]
    assert weights[2].tolist() == [0, 0, 1, 1]
    # 6 + 2 + 2 distinct tokens in the tree
    assert sum(w.sum().item() for w in weights) == 10


@pytest.mark.parametrize(
    ("parents", "branch_points", "match"),
    [
        ([-1, 2, 0], [0, 3, 2], "earlier leaf"),
        ([-1, 0, 1], [0, 7, 2], "exceeds"),
        ([-1, 0, 1], [1, 3, 2], "root"),
    ],
)
def test_arpo_rejects_a_malformed_tree(parents, branch_points, match):
    with pytest.raises(InvalidArgument, match=match):
        arpo_attribution([6, 5, 4], parents, branch_points, TREE_ADV, mode="hard")


def test_unknown_advantage_lists_the_known_and_a_close_match():
    with pytest.raises(ConfigError, match="Did you mean 'grpo'") as caught:
        get_advantage("grpoo")
    assert "empg, gigpo, grpo" in str(caught.value)


@pytest.fixture
def clean_advantages():
    saved = dict(ADVANTAGES)
    yield
    ADVANTAGES.clear()
    ADVANTAGES.update(saved)


def test_custom_advantage_registration(clean_advantages):
    @register_advantage("constant")
    def constant(batch: AdvantageInput, *, value: float = 1.0) -> torch.Tensor:
        return torch.full(batch.turn_episode.shape, value)

    assert get_advantage("constant") is constant
    assert hyperparameters(constant) == {"value": 1.0}
    assert get_advantage("constant")(EMPG_BATCH, value=2.0).tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(RegistrationError, match="already registered"):
        register_advantage("grpo")(constant)


def test_input_shapes_are_checked():
    with pytest.raises(InvalidArgument, match="turn_index"):
        AdvantageInput(
            rewards=torch.zeros(2),
            groups=torch.zeros(2, dtype=torch.long),
            turn_episode=torch.tensor([0, 1]),
            turn_index=torch.tensor([1]),
            turn_entropy=torch.zeros(2),
            turn_reward=torch.zeros(2),
            turn_state=torch.zeros(2, dtype=torch.long),
        )


def test_overlong_penalty_is_dapos_soft_punishment():
    from agentrl.algos import overlong_penalty

    # max 100, buffer 20: free up to 80; 90 is halfway down the ramp (-(90-80)/20 = -0.5);
    # 100 reaches -1; anything beyond is -1; with penalty 0.5 everything halves.
    lengths = torch.tensor([10.0, 80.0, 90.0, 100.0, 130.0])
    got = overlong_penalty(lengths, max_length=100, buffer=20)
    assert got.tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0])
    half = overlong_penalty(lengths, max_length=100, buffer=20, penalty=0.5)
    assert half.tolist() == pytest.approx([0.0, 0.0, -0.25, -0.5, -0.5])
    with pytest.raises(InvalidArgument, match="buffer"):
        overlong_penalty(lengths, max_length=10, buffer=20)
