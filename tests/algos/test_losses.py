"""Token losses and `aggregate`, values and gradients worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from agentrl.algos import (
    aepo,
    aggregate,
    clip_cov,
    entropy_aware_advantage,
    get_loss,
    hyperparameters,
    kl_cov,
    ppo_clip,
)
from agentrl.errors import ConfigError, InvalidArgument

LOSS = torch.tensor([[1.0, 2.0, math.inf], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("token-mean", 7 / 3),  # (1 + 2 + 4) / 3 tokens; the masked inf is ignored
        ("seq-mean-token-mean", 2.75),  # rows 1.5 and 4; the empty row does not count
        ("seq-mean-token-sum", 3.5),  # rows 3 and 4
    ],
)
def test_aggregate_modes(mode, expected):
    assert aggregate(LOSS, MASK, mode).item() == pytest.approx(expected)
    assert aggregate(LOSS, torch.zeros_like(MASK), mode).item() == 0.0


def test_aggregate_unknown_mode():
    with pytest.raises(ConfigError, match="Did you mean 'token-mean'"):
        aggregate(LOSS, MASK, "token_mean")


# One row, old logprobs 0, so δ = exp(logprobs). Per token ℓ and dℓ/dlogπ (ε = 0.2, c = 3):
#   A=+1 δ=1.1: inside            ℓ = -1.1  grad -1.1
#   A=+1 δ=1.5: above 1.2, clip   ℓ = -1.2  grad 0
#   A=-1 δ=0.5: below 0.8, clip   ℓ = 0.8   grad 0
#   A=-1 δ=2.0: unclipped side    ℓ = 2.0   grad 2.0
#   A=-1 δ=4.0: dual clip at 3    ℓ = 3.0   grad 0   (without dual clip: 4.0, grad 4.0)
#   A=+1 δ=0.5: unclipped side    ℓ = -0.5  grad -0.5
# token-mean over 6: (-1.1 - 1.2 + 0.8 + 2 + 3 - 0.5) / 6 = 0.5
ADV = torch.tensor([[1.0, 1.0, -1.0, -1.0, -1.0, 1.0]])
RATIO = torch.tensor([[1.1, 1.5, 0.5, 2.0, 4.0, 0.5]])
ONES = torch.ones(1, 6)


def run(loss_fn, ratio=RATIO, adv=ADV, mask=ONES, old=None, **kwargs):
    logprobs = ratio.log().clone().requires_grad_()
    old = torch.zeros_like(ratio) if old is None else old
    loss, metrics = loss_fn(logprobs, old, adv, mask, **kwargs)
    loss.backward()
    return loss.item(), logprobs.grad, metrics


def test_ppo_clip_values_and_gradients():
    value, grad, metrics = run(ppo_clip)
    assert value == pytest.approx(0.5, abs=1e-6)
    expected = torch.tensor([[-1.1, 0.0, 0.0, 2.0, 0.0, -0.5]]) / 6
    assert torch.allclose(grad, expected, atol=1e-6)
    assert metrics["clip_frac_high"].item() == pytest.approx(1 / 6)
    assert metrics["clip_frac_low"].item() == pytest.approx(1 / 6)
    assert metrics["dual_clip_frac"].item() == pytest.approx(1 / 6)


def test_ppo_clip_without_dual_clip():
    value, grad, _ = run(ppo_clip, dual_clip_c=None)
    assert value == pytest.approx(4.0 / 6, abs=1e-6)  # the δ=4 token now costs 4, not 3
    assert grad[0, 4].item() == pytest.approx(4.0 / 6, abs=1e-6)
    with pytest.raises(InvalidArgument, match="dual_clip_c"):
        run(ppo_clip, dual_clip_c=0.5)


def test_ebpo_keeps_a_gradient_above_the_upper_bound():
    value, grad, metrics = run(aepo)
    assert value == pytest.approx(0.5, abs=1e-6)  # forward equals PPO-clip
    # the A=+1, δ=1.5 token: -A·(1 + ε_high) / N = -1.2 / 6 instead of PPO's 0
    expected = torch.tensor([[-1.1, -1.2, 0.0, 2.0, 0.0, -0.5]]) / 6
    assert torch.allclose(grad, expected, atol=1e-6)
    assert metrics["ebpo_kept_frac"].item() == pytest.approx(1 / 6)


def test_ebpo_keeps_its_gradient_beyond_the_log_ratio_clamp():
    # log δ = 25 and 60, beyond the ±20 clamp of the ratio; A = +2, ε_high = 0.28.
    # Each token's loss is −A·(1+ε_h) in value, with gradient −A·(1+ε_h) = −2.56; the
    # token-mean over 2 tokens halves it: −1.28 each. PPO-clip gives 0 there.
    logprobs = torch.tensor([[5.0, 10.0]], requires_grad=True)
    old = torch.tensor([[-20.0, -50.0]])
    adv = torch.full((1, 2), 2.0)
    loss, _ = aepo(logprobs, old, adv, torch.ones(1, 2), clip_eps_high=0.28)
    loss.backward()
    assert loss.item() == pytest.approx(-2.56)
    assert torch.allclose(logprobs.grad, torch.full((1, 2), -1.28))


# Clip-Cov / KL-Cov: four valid tokens and one masked-out garbage token.
# A = [2, 1, 0, -3] (mean 0), logπ = [-1, -2, -3, -6] (mean -3)
# cov = A · (logπ + 3) = [2·2, 1·1, 0·0, -3·-3] = [4, 1, 0, 9]
COV_ADV = torch.tensor([[2.0, 1.0, 0.0, -3.0, 50.0]])
COV_LOGP = torch.tensor([[-1.0, -2.0, -3.0, -6.0, -100.0]])
COV_MASK = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])


def test_clip_cov_detaches_exactly_the_selected_token():
    # δ = 1: nothing is clipped. Only token 0 has cov in (1, 5) (1 is excluded, 9 too high).
    # PPO gradient -A·δ / 4 = [-0.5, -0.25, 0, 0.75]; token 0's is cut, its value kept.
    value, grad, metrics = run(clip_cov, COV_LOGP.exp(), COV_ADV, COV_MASK, COV_LOGP)
    assert value == pytest.approx(0.0, abs=1e-6)  # -(2 + 1 + 0 - 3) / 4, as PPO
    assert torch.allclose(grad, torch.tensor([[0.0, -0.25, 0.0, 0.75, 0.0]]), atol=1e-6)
    assert metrics["clip_cov_frac"].item() == pytest.approx(0.25)


def test_clip_cov_spares_clipped_tokens():
    # Token 0 now has δ = 1.5 with A > 0: clipped, so no candidate is left.
    old = COV_LOGP.clone()
    old[0, 0] -= math.log(1.5)
    ppo_value, ppo_grad, _ = run(ppo_clip, COV_LOGP.exp(), COV_ADV, COV_MASK, old)
    value, grad, metrics = run(clip_cov, COV_LOGP.exp(), COV_ADV, COV_MASK, old)
    assert value == pytest.approx(ppo_value)
    assert torch.allclose(grad, ppo_grad)
    assert metrics["clip_cov_frac"].item() == 0.0


def test_clip_cov_draw_is_seeded():
    # A = [2, 0, 0, -2], logπ = [-1, -3, -3, -5]: cov = [4, 0, 0, 4], two candidates, one picked
    adv, logp = torch.tensor([[2.0, 0.0, 0.0, -2.0]]), torch.tensor([[-1.0, -3.0, -3.0, -5.0]])
    cut = []
    for _ in range(2):
        generator = torch.Generator().manual_seed(0)
        _, grad, _ = run(clip_cov, logp.exp(), adv, torch.ones(1, 4), logp, generator=generator)
        cut.append((grad[0] == 0).nonzero().flatten().tolist())
    assert cut[0] == cut[1]
    assert sorted(set(cut[0]) - {1, 2}) in ([0], [3])


def test_kl_cov_penalises_the_top_cov_tokens():
    # old = logπ - 0.1: δ = e^0.1 = 1.105171 everywhere, |logπ - old| = 0.1
    old = COV_LOGP - 0.1
    # default k = 2e-3: max(1, ⌊0.008⌋) = 1 token, the top cov (token 3, cov 9)
    _, grad, metrics = run(kl_cov, COV_LOGP.exp(), COV_ADV, COV_MASK, old)
    assert metrics["kl_cov_frac"].item() == pytest.approx(0.25)
    # k = 0.5: ⌊2⌋ = 2 tokens, 3 (cov 9) and 0 (cov 4)
    # ℓ = -A·δ + 0.1 on them; sum = (-2 + -1 + 0 + 3)·δ + 0.2 = 0.2; mean 0.05
    # dℓ/dlogπ = -A·δ + 1 on them: [-1.210342, -1.105171, 0, 4.315513] / 4
    value, grad, metrics = run(kl_cov, COV_LOGP.exp(), COV_ADV, COV_MASK, old, kl_ratio=0.5)
    assert value == pytest.approx(0.05, abs=1e-6)
    expected = torch.tensor([[-0.302585, -0.276293, 0.0, 1.078878, 0.0]])
    assert torch.allclose(grad, expected, atol=1e-5)
    assert metrics["kl_cov_frac"].item() == pytest.approx(0.5)


def test_entropy_aware_advantage():
    # valid H = [1, 2, 3]: mean 2, population std sqrt(2/3) = 0.816497, z = [-1.224745, 0, 1.224745]
    # Ã = A·(1 + 0.2·z) = [0.755051, 1, -1.244949]; the masked token keeps its A
    adv = torch.tensor([[1.0, 1.0, -1.0, 5.0]])
    entropy = torch.tensor([[1.0, 2.0, 3.0, 99.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    expected = torch.tensor([[0.755051, 1.0, -1.244949, 5.0]])
    assert torch.allclose(entropy_aware_advantage(adv, entropy, mask), expected, atol=1e-5)
    # equal entropies: z = 0, advantages unchanged
    flat = entropy_aware_advantage(adv, torch.full_like(entropy, 0.7), mask)
    assert torch.equal(flat, adv)


def test_loss_registry():
    assert get_loss("ppo_clip") is ppo_clip
    assert hyperparameters(ppo_clip) == {
        "agg": "token-mean",
        "clip_eps_low": 0.2,
        "clip_eps_high": 0.2,
        "dual_clip_c": 3.0,
    }
    assert "generator" not in hyperparameters(clip_cov)  # runtime data, not config
    with pytest.raises(ConfigError, match="known: aepo, clip_cov, kl_cov, ppo_clip"):
        get_loss("dapo")
