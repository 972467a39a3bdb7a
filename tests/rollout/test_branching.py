"""ARPO / AEPO branching: the decision functions by hand, and the trees the manager grows."""

from __future__ import annotations

import asyncio
import math
import re

import pytest

from agentrl.engines import ScriptedEngine
from agentrl.errors import InvalidArgument
from agentrl.rollout.branching import (
    BranchSettings,
    TreeBudget,
    branch_probability,
    decide,
    premonitor_globals,
    probe_entropy,
    tree_metrics,
    uniform,
)
from agentrl.rollout.manager import RolloutManager
from tests.helpers import CountEnv

ARPO = BranchSettings.arpo(samples=16)  # α = 0.5, β = 0.35
AEPO = BranchSettings.aepo(samples=16)  # and a penalty of 0.05 per consecutive branch


def test_probe_entropy_is_the_mean_of_the_first_k_tokens():
    assert probe_entropy([1.0, 2.0, 3.0, 4.0], k=2) == 1.5
    assert probe_entropy([1.0, 2.0], k=20) == 1.5  # a short turn: all its tokens
    assert probe_entropy([], k=20) == 0.0


def test_arpo_branch_probability_by_hand():
    # P = clip(0.5 + 0.35·ΔH, 0, 1)
    assert branch_probability(2.0, 1.0, ARPO) == pytest.approx(0.85)  # ΔH = 1
    assert branch_probability(1.0, 1.0, ARPO) == pytest.approx(0.5)  # ΔH = 0
    assert branch_probability(3.0, 1.0, ARPO) == 1.0  # 1.2 clipped
    assert branch_probability(0.0, 2.0, ARPO) == 0.0  # -0.2 clipped
    # ARPO has no penalty: the consecutive count changes nothing
    assert branch_probability(2.0, 1.0, ARPO, consecutive=5) == pytest.approx(0.85)


def test_aepo_consecutive_branch_penalty_by_hand():
    # P = clip((0.5 + 0.35·ΔH)·max(0, 1 − 0.05·c), 0, 1)
    assert branch_probability(2.0, 1.0, AEPO, consecutive=0) == pytest.approx(0.85)
    assert branch_probability(2.0, 1.0, AEPO, consecutive=2) == pytest.approx(0.85 * 0.9)
    assert branch_probability(3.0, 1.0, AEPO, consecutive=4) == pytest.approx(1.2 * 0.8)
    assert branch_probability(2.0, 1.0, AEPO, consecutive=25) == 0.0  # factor floored at 0


def test_decide_draws_or_thresholds():
    assert decide(2.0, 1.0, ARPO, u=0.84) == (pytest.approx(0.85), True)
    assert decide(2.0, 1.0, ARPO, u=0.85) == (pytest.approx(0.85), False)
    with pytest.raises(InvalidArgument, match="draw u"):
        decide(2.0, 1.0, ARPO)
    # deterministic variant: the score itself against τ, no draw
    fixed = BranchSettings.aepo(samples=16, threshold=0.8)
    assert decide(2.0, 1.0, fixed, consecutive=1)[1]  # 0.85·0.95 = 0.8075 > 0.8
    assert not decide(2.0, 1.0, fixed, consecutive=2)[1]  # 0.85·0.90 = 0.765


def test_draws_are_seeded_by_their_place_in_the_tree():
    u = uniform(0, 3, "s0", 2)
    assert u == uniform(0, 3, "s0", 2) and 0.0 <= u < 1.0
    draws = {uniform(0, 3, key, turn) for key in ("s0", "s1", "s0.t2c0") for turn in (2, 3)}
    assert len(draws) == 6


def test_premonitor_global_count_by_hand():
    # m = clip(int(M·σ(0.5·(H_root − H_tool))) + 1, 1, M)
    assert premonitor_globals(1.0, 1.0, 16) == 9  # σ(0) = 0.5: 8 + 1
    sigma = 1 / (1 + math.exp(-0.5))  # H_root − H_tool = 1: σ(0.5) = 0.6225, 16σ = 9.96
    assert premonitor_globals(2.0, 1.0, 16) == int(16 * sigma) + 1 == 10
    assert premonitor_globals(100.0, 0.0, 16) == 16  # 17 clipped to M
    assert premonitor_globals(0.0, 100.0, 16) == 1


def test_tree_budget_never_exceeds_m():
    budget = TreeBudget(4)
    assert budget.start(2) == 2 and budget.start(3) == 2 and budget.left == 0
    assert budget.start(1) == 0


def test_settings_are_validated():
    with pytest.raises(InvalidArgument, match="initial"):
        BranchSettings(samples=4, initial=5)
    with pytest.raises(InvalidArgument, match="AEPO"):
        BranchSettings(method="arpo", penalty=0.05)


# -- the manager: a scripted policy that always counts right, and scripted entropies --


def counter(tokenizer):
    def act(prompt_ids, _index):
        last = re.findall(r"user\n(.*?)<\|im_end\|>", tokenizer.decode(prompt_ids), re.S)[-1]
        value = int(re.search(r"-?\d+", last).group())
        return f"count[{value + 1}]"

    return act


def entropy_by_turn(tokenizer, first=1.0, later=2.0):
    """H = 1 on the first turn, 2 on every later one: ΔH = 1 after each observation."""

    def entropy(prompt_ids, _index):
        turn = tokenizer.decode(prompt_ids).count("<|im_start|>assistant")
        return first if turn == 1 else later

    return entropy


def grow(tokenizer, settings, target=5, tasks=(0,), seed=0):
    engine = ScriptedEngine(tokenizer, counter(tokenizer), entropy=entropy_by_turn(tokenizer))
    manager = RolloutManager(
        engine,
        tokenizer,
        "test/Count-v0",
        {"target": target},
        samples_per_task=settings.samples,
        branching=settings,
        seed=seed,
    )
    try:
        return asyncio.run(manager.run(list(tasks)))
    finally:
        manager.close()


@pytest.fixture
def count_env(registry_sandbox):
    import agentrl

    agentrl.register("test/Count-v0", entry_point=CountEnv)


def keys(episodes):
    return {e.episode_id.split("/", 1)[1]: e for e in episodes}


def test_aepo_penalty_shapes_the_tree(tokenizer, count_env):
    # Deterministic variant, τ = 0.8; ΔH = 1 at every decision, so the score is
    # 0.85·(1 − 0.05·c): c = 0 → 0.85 and c = 1 → 0.8075 branch, c = 2 → 0.765 does not
    # (and resets c). Five turns: decisions at turns 2..5 of each path.
    #   s0: t2 (c 0) yes, t3 (c 1) yes, t4 (c 2) no, t5 (c 0) yes
    #   s0.t2c0 (inherits c 1): t3 yes, t4 (c 2) no, t5 yes
    #   s0.t3c0 (c 2): t4 no, t5 yes;  s0.t2c0.t3c0 (c 2): t4 no, t5 yes
    settings = BranchSettings.aepo(samples=8, initial=1, threshold=0.8)
    leaves = keys(grow(tokenizer, settings))
    assert set(leaves) == {
        "s0",
        "s0.t2c0",
        "s0.t3c0",
        "s0.t5c0",
        "s0.t2c0.t3c0",
        "s0.t2c0.t5c0",
        "s0.t3c0.t5c0",
        "s0.t2c0.t3c0.t5c0",
    }
    assert leaves["s0"].branch_checks == [2, 3, 4, 5]
    assert leaves["s0"].branch_probs == pytest.approx([0.85, 0.8075, 0.765, 0.85])
    assert leaves["s0.t2c0"].branch_checks == [3, 4, 5]  # its turn 2 is the resample
    # ARPO under the same threshold has no penalty: every decision branches until the
    # budget of 8 is spent. Which paths take the last slots depends on which decisions
    # come first (paths run concurrently), so what is checked is what holds in any order:
    # 8 leaves, each branch's parent among them, and 7 decisions, each one a fork.
    arpo = keys(grow(tokenizer, BranchSettings.arpo(samples=8, initial=1, threshold=0.8)))
    assert len(arpo) == 8
    for key in arpo:
        assert key == "s0" or key.rsplit(".", 1)[0] in arpo
    probs = [p for leaf in arpo.values() for p in leaf.branch_probs]
    assert probs == pytest.approx([0.85] * 7)


def test_leaves_share_their_parents_tokens_up_to_the_branch_point(tokenizer, count_env):
    settings = BranchSettings.arpo(samples=6, initial=2, threshold=0.0)
    episodes = grow(tokenizer, settings, tasks=(0, 1))
    by_id = {e.episode_id: e for e in episodes}
    assert [e.task_index for e in episodes] == [0] * 6 + [1] * 6
    for episode in episodes:
        episode.check()
        assert episode.success and episode.error is None
        if episode.parent is None:
            continue
        parent = by_id[episode.parent]
        cut = episode.branch_token_index
        assert episode.token_ids[:cut] == parent.token_ids[:cut]
        assert episode.loss_mask[:cut] == parent.loss_mask[:cut]
        assert episode.logprobs[:cut] == parent.logprobs[:cut]
        # the cut sits right after the observation that ended turn branch_turn - 1
        assert episode.turn_index[cut - 1] == episode.branch_turn - 1
        assert episode.loss_mask[cut] == 1 and episode.turn_index[cut] == episode.branch_turn
        assert parent.sample_index < episode.sample_index


def test_random_decisions_follow_the_seeded_draws(tokenizer, count_env):
    # M is large enough never to bind: every decision of every path is drawn.
    settings = BranchSettings.arpo(samples=64, initial=2)
    episodes = grow(tokenizer, settings, target=3, seed=7)
    leaves = keys(episodes)
    for key, episode in leaves.items():
        for turn, probability in zip(episode.branch_checks, episode.branch_probs, strict=True):
            assert probability == pytest.approx(0.85)  # ΔH = 1
            branched = f"{key}.t{turn}c0" in leaves
            assert branched == (uniform(7, 0, key, turn) < 0.85), (key, turn)
    # the tree grew fewer than M paths, so fresh global samples topped it up
    roots = [e for e in episodes if e.parent is None]
    assert len(episodes) == 64 and len(roots) > 2


def test_tree_metrics(tokenizer, count_env):
    settings = BranchSettings.aepo(samples=8, initial=1, threshold=0.8)
    metrics = tree_metrics(grow(tokenizer, settings))
    # decisions: s0 4, s0.t2c0 3, s0.t3c0 2, s0.t2c0.t3c0 2 = 11, of which 7 branched
    assert metrics["branch_rate"] == pytest.approx(7 / 11)
    assert metrics["branches_per_task"] == 7
    # branches by parent: s0 3, s0.t2c0 2, s0.t3c0 1, s0.t2c0.t3c0 1 → top 3 hold 6 of 7
    assert metrics["top3_branch_share"] == pytest.approx(6 / 7)
    assert metrics["branch_rate/turn4"] == 0.0  # c = 2 at every turn-4 decision
    assert metrics["tool_calls_per_task"] == 0  # CountEnv marks no step as a tool call


def test_premonitoring_sets_the_number_of_global_samples(tokenizer, count_env):
    # First turns are uncertain (H = 3) and tool turns confident (H = 1): the probe episode
    # gives m = int(8·σ(0.5·(3 − 1))) + 1 = int(5.85) + 1 = 6 roots, so 2 of the 8 leaves
    # are branches (threshold −1: every decision with budget left forks).
    engine_entropy = entropy_by_turn(tokenizer, first=3.0, later=1.0)
    settings = BranchSettings.aepo(samples=8, initial=4, threshold=-1.0, premonitor=True)
    engine = ScriptedEngine(tokenizer, counter(tokenizer), entropy=engine_entropy)
    manager = RolloutManager(
        engine,
        tokenizer,
        "test/Count-v0",
        {"target": 3},
        samples_per_task=8,
        branching=settings,
    )
    try:
        episodes = asyncio.run(manager.run([0]))
    finally:
        manager.close()
    roots = [e for e in episodes if e.parent is None]
    assert len(episodes) == 8 and len(roots) == 6
    assert keys(episodes)["s0"].branch_checks == []  # the probe episode never branches


def test_envs_without_fork_branch_by_replay(tokenizer, registry_sandbox):
    import agentrl

    class NoFork(CountEnv):
        supports_fork = False

    agentrl.register("test/NoFork-v0", entry_point=NoFork)
    engine = ScriptedEngine(tokenizer, counter(tokenizer), entropy=entropy_by_turn(tokenizer))
    settings = BranchSettings.arpo(samples=4, initial=2, threshold=0.0)
    manager = RolloutManager(
        engine, tokenizer, "test/NoFork-v0", {"target": 3}, samples_per_task=4, branching=settings
    )
    try:
        episodes = asyncio.run(manager.run([1]))
    finally:
        manager.close()
    branches = [e for e in episodes if e.parent is not None]
    assert len(branches) == 2
    # a replayed env continues where its parent was: the branch still counts to success
    assert all(e.success and e.error is None for e in episodes)
