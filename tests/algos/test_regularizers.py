"""Regularizers: entropy bonus, EPO (hinge, β schedule, history) and the k3 KL."""

from __future__ import annotations

import math

import pytest
import torch

from agentrl.algos import (
    REGULARIZERS,
    entropy_bonus,
    epo,
    get_regularizer,
    hyperparameters,
    kl_penalty,
    register_regularizer,
)
from agentrl.errors import ConfigError, InvalidArgument, RegistrationError


def call(fn, entropy, mask=None, turn_index=None, step=0, total_steps=10, state=None, **kw):
    entropy = torch.tensor(entropy).requires_grad_()
    mask = torch.ones_like(entropy) if mask is None else torch.tensor(mask)
    turns = torch.ones_like(entropy, dtype=torch.long) if turn_index is None else turn_index
    loss, metrics = fn(
        logprobs=torch.zeros_like(entropy),
        entropy=entropy,
        mask=mask,
        turn_index=torch.as_tensor(turns),
        step=step,
        total_steps=total_steps,
        state={} if state is None else state,
        **kw,
    )
    if loss.requires_grad:  # the KL does not depend on the entropy
        loss.backward()
    return loss.item(), entropy.grad, metrics


def test_entropy_bonus():
    # -0.001 · (1 + 3) / 2 = -0.002; each valid token's gradient -0.001 / 2
    value, grad, _ = call(entropy_bonus, [[1.0, 3.0, 100.0]], mask=[[1.0, 1.0, 0.0]])
    assert value == pytest.approx(-0.002)
    assert torch.allclose(grad, torch.tensor([[-0.0005, -0.0005, 0.0]]))


def test_epo_hinge_is_zero_inside_the_band():
    # History H̄ = 1 -> band [0·1, 2·1] = [0, 2]; every entropy is inside: L_smooth = 0.
    # Row 0: turn 1 [0.5, 1.5] -> 1.0, turn 2 [1.9] -> 1.9, row mean 1.45.
    # Row 1: one token 0.2 in turn 1. L_H = (1.45 + 0.2) / 2 = 0.825; loss = -0.001 · 0.825
    state = {"epo_entropy_sum": 1.0, "epo_entropy_count": 1.0}
    value, _, metrics = call(
        epo,
        [[0.5, 1.5, 1.9], [0.2, 0.0, 0.0]],
        mask=[[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]],
        turn_index=[[1, 1, 2], [1, 0, 0]],
        step=1,
        state=state,
    )
    assert metrics["epo_entropy_mean_history"].item() == pytest.approx(1.0)
    assert metrics["epo_smooth"].item() == 0.0
    assert value == pytest.approx(-0.000825)


def test_epo_hinge_outside_the_band_has_a_gradient():
    # H̄ = 1, tokens [3, 1] in one turn: hinge [3 - 2, 0] -> turn mean 0.5, L_smooth = 0.05
    # step 1 of 10: k_mid = 5, β = 1 + e^-0.6 = 1.548812; L_H = 2
    # loss = -0.001 · (2 - 1.548812 · 0.05) = -0.00192256
    # dloss/dH = -0.001 · (0.5 - β · 0.1 · 0.5) = -0.00042256 for token 0, -0.0005 for token 1
    state = {"epo_entropy_sum": 1.0, "epo_entropy_count": 1.0}
    value, grad, metrics = call(epo, [[3.0, 1.0]], step=1, state=state)
    assert metrics["epo_smooth"].item() == pytest.approx(0.05)
    assert value == pytest.approx(-0.00192256, abs=1e-8)
    assert torch.allclose(grad, torch.tensor([[-0.00042256, -0.0005]]), atol=1e-8)


@pytest.mark.parametrize(("step", "beta"), [(0, 2.0), (5, 1 + math.exp(-3))])
def test_epo_beta_schedule(step, beta):
    # K = 10, k_mid = 5: β_0 = 1 + e^0 = 2; β_5 = 1 + e^-3 = 1.049787
    _, _, metrics = call(epo, [[1.0]], step=step, total_steps=10)
    assert metrics["epo_beta"].item() == pytest.approx(beta)


def test_epo_history_update():
    state: dict = {}
    # step 0: no history, so no smoothing term; the step's token-mean entropy 2 is recorded
    _, _, metrics = call(epo, [[3.0, 1.0]], step=0, state=state)
    assert metrics["epo_entropy_mean_history"].item() == 0.0
    assert metrics["epo_smooth"].item() == 0.0
    assert (state["epo_entropy_sum"], state["epo_entropy_count"]) == (2.0, 1.0)
    # step 1, first micro-batch [1, 1]: sees H̄ = 2; the history becomes 2 + 1, two steps
    _, _, metrics = call(epo, [[1.0, 1.0]], step=1, state=state)
    assert metrics["epo_entropy_mean_history"].item() == pytest.approx(2.0)
    assert (state["epo_entropy_sum"], state["epo_entropy_count"]) == (3.0, 2.0)
    # step 1, second micro-batch [4]: still H̄ = 2 (previous steps only); step 1's entry
    # becomes the token-mean (1 + 1 + 4) / 3 = 2, so the sum is 2 + 2 over two steps
    _, _, metrics = call(epo, [[4.0]], step=1, state=state)
    assert metrics["epo_entropy_mean_history"].item() == pytest.approx(2.0)
    assert state["epo_entropy_sum"] == pytest.approx(4.0)
    assert state["epo_entropy_count"] == 2.0
    assert all(isinstance(value, float | int) for value in state.values())  # JSON-safe


def test_kl_k3():
    # d = ref - logπ = [ln 2, 0]: k3 = [2 - ln 2 - 1, 0] = [0.306853, 0], mean 0.153426
    ref = torch.tensor([[math.log(2.0), 0.0]])
    value, _, metrics = call(kl_penalty, [[1.0, 1.0]], ref_logprobs=ref, coef=1.0)
    assert value == pytest.approx(0.153426, abs=1e-6)
    assert metrics["kl"].item() == pytest.approx(0.153426, abs=1e-6)
    with pytest.raises(InvalidArgument, match="ref_logprobs"):
        call(kl_penalty, [[1.0]])


def test_regularizer_registry():
    assert get_regularizer("epo") is epo
    assert hyperparameters(kl_penalty) == {"coef": 0.001, "agg": "token-mean"}
    with pytest.raises(ConfigError, match="Did you mean 'entropy'"):
        get_regularizer("entropi")
    with pytest.raises(RegistrationError, match="already registered"):
        register_regularizer("kl")(kl_penalty)
    assert REGULARIZERS["kl"] is kl_penalty
