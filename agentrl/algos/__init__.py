"""Advantages, losses and regularizers, each a pure function registered by name.

Importing this package registers the built-in methods; `get_advantage`, `get_loss` and
`get_regularizer` look them up, and the `register_*` decorators add your own. The maths
is in `docs/algorithms.md`.
"""

from __future__ import annotations

from agentrl.algos.advantages import (
    AdvantageInput,
    arpo_attribution,
    empg,
    empg_modulation,
    episode_grpo,
    gigpo,
    grpo,
    overlong_penalty,
)
from agentrl.algos.losses import aepo, clip_cov, entropy_aware_advantage, kl_cov, ppo_clip
from agentrl.algos.registry import (
    ADVANTAGES,
    AGGREGATIONS,
    LOSSES,
    REGULARIZERS,
    LossTraits,
    RegularizerTraits,
    aggregate,
    get_advantage,
    get_loss,
    get_regularizer,
    hyperparameters,
    register_advantage,
    register_loss,
    register_regularizer,
    traits,
)
from agentrl.algos.regularizers import entropy_bonus, epo, kl_penalty

__all__ = [
    "ADVANTAGES",
    "AGGREGATIONS",
    "LOSSES",
    "REGULARIZERS",
    "AdvantageInput",
    "LossTraits",
    "RegularizerTraits",
    "aepo",
    "aggregate",
    "arpo_attribution",
    "clip_cov",
    "empg",
    "empg_modulation",
    "entropy_aware_advantage",
    "entropy_bonus",
    "episode_grpo",
    "epo",
    "get_advantage",
    "get_loss",
    "get_regularizer",
    "gigpo",
    "grpo",
    "hyperparameters",
    "kl_cov",
    "kl_penalty",
    "overlong_penalty",
    "ppo_clip",
    "register_advantage",
    "register_loss",
    "register_regularizer",
    "traits",
]
