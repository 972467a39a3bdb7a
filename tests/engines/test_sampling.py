"""Next-token sampling: logprobs and entropies of the temperature-scaled distribution."""

from __future__ import annotations

import math

import torch

from agentrl.engines.sampling import sample_next


def params(rows, temperature=1.0, top_p=1.0, top_k=0):
    return (
        torch.full((rows,), float(temperature)),
        torch.full((rows,), float(top_p)),
        torch.full((rows,), top_k, dtype=torch.long),
    )


def test_logprob_and_entropy_by_hand():
    # logits [0, ln 3] -> probs [1/4, 3/4]; H = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.5623
    logits = torch.tensor([[0.0, math.log(3.0)]])
    tokens, logprobs, entropy = sample_next(logits, *params(1, temperature=0), generators=[None])
    assert tokens.tolist() == [1]  # greedy
    assert math.isclose(logprobs.item(), math.log(0.75), rel_tol=1e-6)
    assert math.isclose(entropy.item(), 0.562335, rel_tol=1e-5)


def test_temperature_scales_the_distribution():
    # T = 2: logits [0, ln 9] / 2 = [0, ln 3] -> the same probs as above
    logits = torch.tensor([[0.0, math.log(9.0)]])
    generator = torch.Generator().manual_seed(0)
    _, _, entropy = sample_next(logits, *params(1, temperature=2.0), generators=[generator])
    assert math.isclose(entropy.item(), 0.562335, rel_tol=1e-5)


def test_top_k_and_top_p_restrict_the_draw_not_the_logprob():
    logits = torch.tensor([[0.0, 1.0, 3.0, 2.0]] * 2)
    full = torch.log_softmax(logits[0], -1)
    generators = [torch.Generator().manual_seed(i) for i in range(2)]
    temperature = torch.ones(2)
    top_p = torch.tensor([1.0, 0.01])  # row 1: nucleus of the single most likely token
    top_k = torch.tensor([1, 0])  # row 0: only the top token
    for _ in range(20):
        tokens, logprobs, _ = sample_next(logits, temperature, top_p, top_k, generators)
        assert tokens.tolist() == [2, 2]
        assert torch.allclose(logprobs, full[2].expand(2))


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    # probs ~ [0.644, 0.237, 0.087, 0.032]: top_p 0.8 keeps tokens 0 and 1 only
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    generator = torch.Generator().manual_seed(1)
    seen = set()
    for _ in range(200):
        tokens, _, _ = sample_next(logits, *params(1, top_p=0.8), generators=[generator])
        seen.add(tokens.item())
    assert seen == {0, 1}


def test_seeded_generators_reproduce_draws():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    runs = []
    for _ in range(2):
        generators = [torch.Generator().manual_seed(7 + i) for i in range(3)]
        runs.append(sample_next(logits, *params(3), generators=generators)[0].tolist())
    assert runs[0] == runs[1]


def test_a_row_without_filtering_draws_the_same_whatever_its_batch_mates():
    logits = torch.randn(2, 5000, generator=torch.Generator().manual_seed(3))
    alone, mixed = [], []
    for draws, top_p in ((alone, 1.0), (mixed, 0.5)):
        generators = [torch.Generator().manual_seed(9), torch.Generator().manual_seed(10)]
        for _ in range(50):
            tokens, _, _ = sample_next(
                logits,
                torch.ones(2),
                torch.tensor([1.0, top_p]),
                torch.zeros(2, dtype=torch.long),
                generators,
            )
            draws.append(tokens[0].item())
    assert alone == mixed
